"""Where a network comes from: a local path, or a URL downloaded once into a cache and reused.

    resolve_source("~/models/ffhq.pkl")                  -> that file (must exist)
    resolve_source("https://host/stylegan3-t-ffhq.pkl")  -> $STYLEGAN_CACHE/downloads/<hash>-stylegan3-t-ffhq.pkl

A download is written to a temporary name and renamed when complete, so a cached file is never half-written.
Next to it, `<file>.json` records the URL, size and SHA-256; a cached file is reused only while it still matches
(otherwise it is downloaded again). A URL may pin the expected content with a `#sha256=<hex>` fragment.
The cache is `$STYLEGAN_CACHE` if set, else `~/.cache/stylegan`.
"""
from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import BinaryIO

from stylegan.core.errors import StyleGANError
from stylegan.core.files import atomic_path, atomic_write
from stylegan.io.bundled import BUNDLED_NETWORKS, bundled_network_path

URL_SCHEMES = ("http", "https", "file")
_CHUNK = 1 << 20


def cache_dir() -> Path:
    """The download cache: $STYLEGAN_CACHE, or ~/.cache/stylegan."""
    env = os.environ.get("STYLEGAN_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "stylegan"


def is_url(source: str | os.PathLike) -> bool:
    return isinstance(source, str) and urllib.parse.urlsplit(source).scheme in URL_SCHEMES and "://" in source


def local_source(source: str | os.PathLike) -> Path:
    """Where `source` is on this machine without downloading anything: the path itself, or the shipped network when
    `source` is a bundled name and no such file exists (`emoji`; `./emoji` is always a file). May not exist."""
    path = Path(source).expanduser()
    bundled = bundled_network_path(source)
    return bundled if bundled is not None and not path.exists() else path


def resolve_source(source: str | os.PathLike, *, progress: bool = True) -> Path:
    """A local path for `source`: the file itself, a bundled network, or the cached download of a URL."""
    if is_url(source):
        return download(str(source), progress=progress)
    path = local_source(source)
    if bundled_network_path(source) == path and not path.is_file():
        raise StyleGANError(f"the bundled network '{source}' is missing ({path}); reinstall stylegan")
    if not path.exists():
        names = ", ".join(BUNDLED_NETWORKS)
        raise StyleGANError(f"{source}: no such file (pass a .pkl or .safetensors file, an http(s):// URL, or a "
                            f"bundled network: {names})")
    if path.is_dir():
        raise StyleGANError(f"{source} is a folder; pass a network file (.pkl or .safetensors) or a URL")
    return path


def cached_path(url: str) -> Path:
    """Where `url` is cached: a short hash of the URL (without fragment) keeps names unique, the basename readable."""
    base_url = urllib.parse.urldefrag(url)[0]
    name = Path(urllib.parse.unquote(urllib.parse.urlsplit(base_url).path)).name or "download"
    name = re.sub(r"[^A-Za-z0-9._-]", "_", name)[-100:]
    digest = hashlib.sha256(base_url.encode()).hexdigest()[:16]
    return cache_dir() / "downloads" / f"{digest}-{name}"


def _pinned_sha256(url: str) -> str | None:
    fragment = urllib.parse.urlsplit(url).fragment
    m = re.fullmatch(r"sha256=([0-9a-fA-F]{64})", fragment)
    return m[1].lower() if m else None


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _cache_is_valid(path: Path, url: str, pinned: str | None) -> bool:
    meta_path = path.with_name(path.name + ".json")
    if not (path.is_file() and meta_path.is_file()):
        return False
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        return False
    if meta.get("url") != urllib.parse.urldefrag(url)[0] or meta.get("size") != path.stat().st_size:
        return False
    digest = file_sha256(path)
    return digest == meta.get("sha256") and (pinned is None or digest == pinned)


def download(url: str, *, progress: bool = True, timeout: float = 60) -> Path:
    """Download `url` into the cache (or reuse a verified earlier download) and return its path."""
    dest = cached_path(url)
    pinned = _pinned_sha256(url)
    if _cache_is_valid(dest, url, pinned):
        return dest
    base_url = urllib.parse.urldefrag(url)[0]
    try:
        response = urllib.request.urlopen(base_url, timeout=timeout)
    except urllib.error.HTTPError as exc:
        raise StyleGANError(f"could not download {base_url}: the server answered {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise StyleGANError(
            f"could not download {base_url} ({reason}); without network access, fetch the file elsewhere and pass "
            f"its local path instead (e.g. --network ~/models/{dest.name.split('-', 1)[1]})") from None
    with response:
        total = response.headers.get("Content-Length")
        total = int(total) if total and total.isdigit() else None
        h = hashlib.sha256()
        size = 0
        with atomic_path(dest) as tmp, open(tmp, "wb") as f, _progress(total, dest.name, progress) as bar:
            while chunk := _read(response, base_url):
                f.write(chunk)
                h.update(chunk)
                size += len(chunk)
                bar(len(chunk))
            if total is not None and size != total:
                raise StyleGANError(f"download of {base_url} stopped after {size} of {total} bytes; try again")
            if pinned is not None and h.hexdigest() != pinned:
                raise StyleGANError(f"{base_url}: SHA-256 is {h.hexdigest()}, not the pinned {pinned}; "
                                    "the file differs from the one expected")
    meta = {"url": base_url, "size": size, "sha256": h.hexdigest(), "downloaded": time.strftime("%Y-%m-%dT%H:%M:%S")}
    with atomic_write(dest.with_name(dest.name + ".json"), "w") as f:
        json.dump(meta, f, indent=2)
    return dest


def _read(response: BinaryIO, url: str) -> bytes:
    try:
        return response.read(_CHUNK)
    except (OSError, http.client.HTTPException) as exc:
        raise StyleGANError(f"download of {url} failed midway ({exc}); try again") from None


class _progress:
    """A tqdm bar on stderr for downloads over 16 MB (only when stderr is a terminal); a no-op otherwise."""

    def __init__(self, total: int | None, name: str, enabled: bool):
        self.bar = None
        if enabled and (total is None or total > 16 << 20) and sys.stderr.isatty():
            from tqdm import tqdm
            self.bar = tqdm(total=total, unit="B", unit_scale=True, desc=f"downloading {name}", file=sys.stderr)

    def __enter__(self):
        return self.bar.update if self.bar is not None else (lambda n: None)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.close()

