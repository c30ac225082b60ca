"""Where a file comes from: a local path, or a URL downloaded once into a cache and reused.

    resolve_source("~/models/ffhq.pkl")                  -> that file (must exist)
    resolve_source("https://host/stylegan3-t-ffhq.pkl")  -> $STYLEGAN_CACHE/downloads/<hash>-stylegan3-t-ffhq.pkl
    download(url, dest=cache_dir() / "features" / name, sha256=prefix, by_hand=...)   (metrics/weights.py)

This is the one download cache: networks, and the metrics' feature networks, come through `download`.
- A download is written to a temporary name and renamed when complete, so a cached file is never half-written.
  Next to it, `<file>.json` records the URL, size and SHA-256; a cached file is reused only while it still
  matches (otherwise it is downloaded again).
- The expected SHA-256 (`sha256=`, or a URL's `#sha256=<hex>` fragment) may be the full digest or the prefix a
  file name carries (torch hub's convention); a file that differs is refused.
- Once per machine: the processes that want the same file take turns on a lock next to it, so under torchrun
  the first one downloads and the others find the cached copy. Nothing here is collective, so a rank that has
  the file already never waits for one that does not.
- Every failure is one line (`DownloadError`) that names the URL and the file to place by hand instead.
- With STYLEGAN_OFFLINE=1 nothing is fetched over the network (file:// URLs still work).
The cache is `$STYLEGAN_CACHE` if set, else `~/.cache/stylegan`.
"""
from __future__ import annotations

import contextlib
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
from typing import BinaryIO, Callable, Iterator

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


class DownloadError(StyleGANError):
    """A URL could not be fetched (offline, refused, cut off, or not the expected file); the message says which
    URL, why, and what to place by hand instead."""


def offline() -> bool:
    """STYLEGAN_OFFLINE=1: never reach the network (downloads that are not cached stop with DownloadError)."""
    return os.environ.get("STYLEGAN_OFFLINE", "").strip() not in ("", "0")


def cached_path(url: str) -> Path:
    """Where `url` is cached: a short hash of the URL (without fragment) keeps names unique, the basename readable."""
    base_url = urllib.parse.urldefrag(url)[0]
    digest = hashlib.sha256(base_url.encode()).hexdigest()[:16]
    return cache_dir() / "downloads" / f"{digest}-{url_basename(url)}"


def url_basename(url: str) -> str:
    """The file name at the end of `url`, made safe for any file system."""
    name = Path(urllib.parse.unquote(urllib.parse.urlsplit(urllib.parse.urldefrag(url)[0]).path)).name or "download"
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)[-100:]


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


def _cache_is_valid(path: Path, url: str, expected: str | None) -> bool:
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
    return digest == meta.get("sha256") and digest.startswith(expected or "")


@contextlib.contextmanager
def _machine_lock(dest: Path) -> Iterator[None]:
    """Hold `<dest>.lock` exclusively: one process of this machine (of all machines, on a shared cache that
    supports locks) downloads `dest` while the others wait, then find it. Without file locks, no waiting."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest.with_name(dest.name + ".lock"), "a") as f:
        try:
            import fcntl
            fcntl.flock(f, fcntl.LOCK_EX)
        except (ImportError, OSError):     # Windows, or a file system without locks: each process fetches alone
            pass
        yield                              # closing the file releases the lock


def download(url: str, *, dest: Path | None = None, sha256: str | None = None, by_hand: str | None = None,
             progress: bool = True, timeout: float = 60) -> Path:
    """Download `url` to `dest` (default: `cached_path(url)`), or reuse a verified earlier download; returns `dest`.

    sha256: the expected digest or its prefix (else the URL's #sha256= pin, else anything goes).
    by_hand: what a failure message tells the user to do instead (default: pass a local path to --network)."""
    dest = Path(dest) if dest is not None else cached_path(url)
    expected = (sha256 or _pinned_sha256(url) or "").lower() or None
    base_url = urllib.parse.urldefrag(url)[0]
    if by_hand is None:
        by_hand = (f"without network access, fetch the file elsewhere and pass its local path instead "
                   f"(e.g. --network ~/models/{url_basename(url)})")

    def failed(why: str) -> DownloadError:
        return DownloadError(f"could not download {base_url} ({why}); {by_hand}")

    with _machine_lock(dest):
        if _cache_is_valid(dest, url, expected):
            return dest
        if offline() and urllib.parse.urlsplit(base_url).scheme != "file":
            raise failed("STYLEGAN_OFFLINE is set")
        try:
            response = urllib.request.urlopen(base_url, timeout=timeout)
        except urllib.error.HTTPError as exc:
            raise failed(f"the server answered {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise failed(str(getattr(exc, "reason", exc))) from None
        with response:
            total = response.headers.get("Content-Length")
            total = int(total) if total and total.isdigit() else None
            h = hashlib.sha256()
            size = 0
            with atomic_path(dest) as tmp, open(tmp, "wb") as f, _progress(total, dest.name, progress) as bar:
                while chunk := _read(response, failed):
                    f.write(chunk)
                    h.update(chunk)
                    size += len(chunk)
                    bar(len(chunk))
                if total is not None and size != total:
                    raise failed(f"it stopped after {size} of {total} bytes; try again")
                if expected is not None and not h.hexdigest().startswith(expected):
                    raise failed(f"its SHA-256 is {h.hexdigest()}, not the pinned {expected}: the file differs "
                                 "from the one expected")
        meta = {"url": base_url, "size": size, "sha256": h.hexdigest(),
                "downloaded": time.strftime("%Y-%m-%dT%H:%M:%S")}
        with atomic_write(dest.with_name(dest.name + ".json"), "w") as f:
            json.dump(meta, f, indent=2)
    return dest


def _read(response: BinaryIO, failed: Callable[[str], DownloadError]) -> bytes:
    try:
        return response.read(_CHUNK)
    except (OSError, http.client.HTTPException) as exc:
        raise failed(f"it failed midway: {exc}; try again") from None


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

