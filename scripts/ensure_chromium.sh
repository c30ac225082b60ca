#!/usr/bin/env bash
# The visualizer's end-to-end test drives Debian's Chromium through Playwright. Install it when missing.
# Failure here is not fatal: that one test then reports what is missing.
set -u
if command -v chromium >/dev/null 2>&1; then exit 0; fi
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
  echo "Installing chromium with apt-get (used by the visualizer's browser test)..."
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1 || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1 || echo "apt-get could not install chromium"
fi
command -v chromium >/dev/null 2>&1
