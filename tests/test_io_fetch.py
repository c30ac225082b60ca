"""Fetching files: local paths, and URLs downloaded into the cache, verified and reused. Only file:// URLs and a
local HTTP server on 127.0.0.1 are used; nothing leaves the machine."""
from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import http.server
import json
import socket
import threading
import time

import pytest

from stylegan.core.errors import StyleGANError
from stylegan.io.formats import describe_format, sniff_format
from stylegan.io.fetch import DownloadError, cache_dir, cached_path, download, is_url, resolve_source

PAYLOAD = b"\x80\x04" + bytes(range(256)) * 64


class _Handler(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}
    hits: list[str] = []
    lie_about_length: set[str] = set()

    delay_s = 0.0

    def do_GET(self):
        self.hits.append(self.path)
        time.sleep(self.delay_s)
        body = self.files.get(self.path)
        if body is None:
            self.send_error(404, "Not Found")
            return
        self.send_response(200)
        length = len(body) + (100 if self.path in self.lie_about_length else 0)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    _Handler.files, _Handler.hits, _Handler.lie_about_length = {"/models/net.pkl": PAYLOAD}, [], set()
    _Handler.delay_s = 0.0
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", _Handler
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_cache_location_follows_env(tmp_path, monkeypatch):
    monkeypatch.setenv("STYLEGAN_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    monkeypatch.delenv("STYLEGAN_CACHE")
    assert cache_dir().parts[-2:] == (".cache", "stylegan")


def test_local_paths(tmp_path):
    f = tmp_path / "a.pkl"
    f.write_bytes(PAYLOAD)
    assert resolve_source(str(f)) == f
    with pytest.raises(StyleGANError, match="no such file"):
        resolve_source(tmp_path / "missing.pkl")
    with pytest.raises(StyleGANError, match="is a folder"):
        resolve_source(tmp_path)
    assert is_url("https://x/y.pkl") and is_url("file:///tmp/y.pkl") and not is_url(str(f))


def test_http_download_is_cached_and_reused(server):
    base, handler = server
    url = f"{base}/models/net.pkl"
    path = download(url)
    assert path.read_bytes() == PAYLOAD and path.parent == cache_dir() / "downloads"
    assert path.name.endswith("-net.pkl")
    meta = json.loads(path.with_name(path.name + ".json").read_text())
    assert meta["sha256"] == hashlib.sha256(PAYLOAD).hexdigest() and meta["size"] == len(PAYLOAD)
    assert resolve_source(url) == path
    assert handler.hits == ["/models/net.pkl"]              # the second call was served from the cache


def test_corrupted_cache_is_downloaded_again(server):
    base, handler = server
    url = f"{base}/models/net.pkl"
    path = download(url)
    path.write_bytes(PAYLOAD[:-1] + b"X")                   # same size, different content
    assert download(url).read_bytes() == PAYLOAD
    assert len(handler.hits) == 2


def test_file_url_goes_through_the_cache(tmp_path):
    src = tmp_path / "model.pkl"
    src.write_bytes(PAYLOAD)
    url = src.as_uri()
    path = resolve_source(url)
    assert path != src and path.read_bytes() == PAYLOAD and path == cached_path(url)
    src.unlink()                                            # reused without the source
    assert resolve_source(url) == path


def test_pinned_hash(tmp_path):
    src = tmp_path / "model.pkl"
    src.write_bytes(PAYLOAD)
    good = hashlib.sha256(PAYLOAD).hexdigest()
    assert download(f"{src.as_uri()}#sha256={good}").read_bytes() == PAYLOAD
    with pytest.raises(StyleGANError, match="not the pinned"):
        download(f"{src.as_uri()}#sha256={'0' * 64}")


def test_http_errors_are_one_line(server):
    base, handler = server
    with pytest.raises(StyleGANError, match="answered 404"):
        download(f"{base}/nope.pkl")
    handler.lie_about_length.add("/models/net.pkl")
    with pytest.raises(StyleGANError) as info:
        download(f"{base}/models/net.pkl")
    assert "\n" not in str(info.value)
    assert not cached_path(f"{base}/models/net.pkl").exists()     # nothing half-written is left


def test_offline_error_says_how_to_pass_a_local_file():
    with contextlib.closing(socket.socket()) as s:               # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(StyleGANError, match=r"without network access.*local path.*--network .*model\.pkl"):
        download(f"http://127.0.0.1:{port}/model.pkl", timeout=5)


def test_a_file_wanted_by_several_processes_is_downloaded_once(server):
    # What torchrun's ranks on one machine do: ask for the same file at the same time. Each thread opens the lock
    # file itself, as a process would, so they contend exactly as processes do.
    base, handler = server
    handler.delay_s = 0.3                                   # the first download is still running when the rest ask
    url = f"{base}/models/net.pkl"
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        paths = list(pool.map(lambda _: download(url), range(4)))
    assert handler.hits == ["/models/net.pkl"]
    assert all(p == paths[0] and p.read_bytes() == PAYLOAD for p in paths)


def test_download_to_a_named_file_checks_a_digest_prefix(tmp_path):
    src = tmp_path / "weights.pth"
    src.write_bytes(PAYLOAD)
    digest = hashlib.sha256(PAYLOAD).hexdigest()
    dest = cache_dir() / "features" / "weights-1234.pth"
    assert download(src.as_uri(), dest=dest, sha256=digest[:8]) == dest and dest.read_bytes() == PAYLOAD
    dest.unlink()
    with pytest.raises(DownloadError) as info:
        download(src.as_uri(), dest=dest, sha256="0123abcd", by_hand="place weights-1234.pth in DIR by hand")
    assert str(info.value).startswith(f"could not download {src.as_uri()} (")
    assert "not the pinned 0123abcd" in str(info.value)
    assert str(info.value).endswith("place weights-1234.pth in DIR by hand")
    assert not dest.exists()


def test_offline_fetches_nothing_over_the_network(server, tmp_path, monkeypatch):
    base, handler = server
    monkeypatch.setenv("STYLEGAN_OFFLINE", "1")
    url = f"{base}/models/net.pkl"
    with pytest.raises(DownloadError, match=rf"could not download {url} \(STYLEGAN_OFFLINE is set\)"):
        download(url)
    assert handler.hits == []
    src = tmp_path / "model.pkl"
    src.write_bytes(PAYLOAD)
    assert download(src.as_uri()).read_bytes() == PAYLOAD      # a file:// URL is no network access


def test_feature_weights_come_through_the_download_cache(server, tmp_path):
    from stylegan.metrics import weights
    base, handler = server
    handler.files["/fid/pt_inception-abc.pth"] = PAYLOAD
    digest = hashlib.sha256(PAYLOAD).hexdigest()
    good = weights.WeightFile("pt_inception-abc.pth", f"{base}/fid/pt_inception-abc.pth", digest[:8])
    path = weights.locate((good,), "Inception-v3", tmp_path / "features")
    assert path == cache_dir() / "features" / good.name and path.read_bytes() == PAYLOAD
    assert weights.locate((good,), "Inception-v3", tmp_path / "features") == path and len(handler.hits) == 1


@pytest.mark.parametrize("file,why", [("/fid/missing.pth", "answered 404"), ("/models/net.pkl", "not the pinned")])
def test_a_failed_feature_download_is_one_line_naming_url_and_file(server, tmp_path, file, why):
    from stylegan.metrics import weights
    base, _ = server
    wanted = weights.WeightFile("vgg16-0000beef.pth", base + file, "0000beef")
    with pytest.raises(weights.WeightsUnavailable) as info:
        weights.locate((wanted,), "VGG16", tmp_path / "features")
    message = str(info.value)
    assert "\n" not in message and why in message and f"could not download {base}{file}" in message
    assert f"place vgg16-0000beef.pth in {tmp_path / 'features'} by hand" in message


@pytest.mark.parametrize("content,kind", [
    (b"", "empty"),
    (b"<!DOCTYPE html><html>quota exceeded</html>", "html"),
    (b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\n", "git-lfs"),
    (b"\x80\x04\x95", "pickle"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"hello world\n", "text"),
    (b"\x00\x01\x02\xff" * 8, "unknown"),
])
def test_sniffing(tmp_path, content, kind):
    f = tmp_path / "file"
    f.write_bytes(content)
    assert sniff_format(f) == kind
    assert describe_format(kind)


def test_sniffing_safetensors_and_torch_zip(tmp_path):
    import torch
    from safetensors.torch import save_file
    save_file({"x": torch.zeros(2)}, str(tmp_path / "a.safetensors"))
    assert sniff_format(tmp_path / "a.safetensors") == "safetensors"
    torch.save({"x": torch.zeros(2)}, tmp_path / "b.pt")
    assert sniff_format(tmp_path / "b.pt") == "torch-zip"
