"""End to end in real headless Chromium: the page loads from a live server, the seed and translate controls change
the picture, and what the page shows is exactly what the API renders for the same parameters.

Needs Debian's chromium (`apt-get install -y chromium`; `make test` installs it via scripts/ensure_chromium.sh) and
the `playwright` package (the `test` extra). Playwright drives that browser; it never downloads its own.
"""
from __future__ import annotations

import base64
import io
import os
import shutil
import tempfile

import numpy as np
import PIL.Image
import pytest

from test_viz_support import make_tree

CHROMIUM = os.environ.get("STYLEGAN_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WAIT_MS = 120_000                   # one render on a busy 2-core machine can take seconds; never near this


def require_browser():
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.fail("the browser test needs Playwright: pip install -e '.[test,viz]' (never `playwright install`; "
                    "it drives Debian's chromium)")
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(f"Chromium not found at {CHROMIUM}: install it with `apt-get install -y chromium` (`make test` "
                    "does this through scripts/ensure_chromium.sh), or point STYLEGAN_CHROMIUM at a chromium binary")


def decode(png: bytes) -> np.ndarray:
    return np.asarray(PIL.Image.open(io.BytesIO(png)).convert("RGB"))


@pytest.mark.slow
def test_page_controls_change_the_picture_and_match_the_api(tmp_path):
    require_browser()
    import httpx
    from playwright.sync_api import sync_playwright

    from stylegan.viz.server import ServeConfig, background_server
    tree = make_tree(tmp_path)
    config = ServeConfig(networks=[str(tree["models"] / "sub" / "sg3.safetensors")], device="cpu")
    profile = tempfile.mkdtemp(prefix="stylegan-chromium-")
    with background_server(config) as base, httpx.Client(base_url=base, timeout=60) as api, sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                                        headless=True, viewport={"width": 1200, "height": 800})
        try:
            page = browser.new_page()
            requested, problems = [], []
            page.on("request", lambda r: requested.append(r.url))
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.goto(base + "/")

            def shown_after(check: str) -> tuple[dict, np.ndarray]:
                """Wait until the shown picture's parameters pass `check` (JS on p), then return them and its pixels."""
                page.wait_for_function(
                    f"() => {{ const d = document.querySelector('#view-image').dataset;"
                    f" if (!d.params) return false; const p = JSON.parse(d.params); return {check}; }}",
                    timeout=WAIT_MS)
                params, data = page.evaluate("""async () => {
                    const img = document.querySelector('#view-image');
                    const bytes = new Uint8Array(await (await fetch(img.src)).arrayBuffer());
                    let text = ''; for (const b of bytes) text += String.fromCharCode(b);
                    return [JSON.parse(img.dataset.params), btoa(text)];
                }""")
                return params, decode(base64.b64decode(data))

            def api_render(params: dict) -> np.ndarray:
                response = api.post("/api/render", json=params)
                assert response.status_code == 200, response.text
                return decode(response.content)

            first_params, first = shown_after("p.seed === 0")
            np.testing.assert_array_equal(first, api_render(first_params))
            # A 16 px network opens enlarged to fit the stage, not at 100 %.
            assert int(page.input_value("#zoom")) > 100
            assert page.evaluate("document.querySelector('#view-image').getBoundingClientRect().width") > 16 * 2

            page.click("#seed-next")
            seed_params, after_seed = shown_after("p.seed === 1")
            assert not np.array_equal(after_seed, first)
            np.testing.assert_array_equal(after_seed, api_render(seed_params))

            page.focus("#tx")
            for _ in range(10):
                page.keyboard.press("ArrowRight")                            # 0.01 per step
            moved_params, moved = shown_after("p.translate && Math.abs(p.translate[0] - 0.1) < 1e-9")
            assert moved_params["seed"] == 1 and moved_params["translate"] == [0.1, 0]
            assert not np.array_equal(moved, after_seed)
            np.testing.assert_array_equal(moved, api_render(moved_params))

            assert page.inner_text("#timing").startswith("render ")
            assert problems == []
            assert all(url.startswith(base) or url.startswith(("blob:", "data:")) for url in requested), requested
        finally:
            browser.close()
            shutil.rmtree(profile, ignore_errors=True)
