"""NVIDIA pickles through the public entry points: stylegan.load_network (paths and URLs), load_networks and
`stylegan info`; and malicious pickles refused by them."""
from __future__ import annotations

import http.server
import json
import pickle
import threading

import pytest
import torch

import nvidia_pickle_builder as nb
import stylegan
from stylegan.cli import main
from stylegan.core.errors import StyleGANError
from stylegan.io import load_networks


@pytest.fixture
def snapshot(tmp_path):
    path = tmp_path / "network-snapshot-000000.pkl"
    return path, nb.tiny_snapshot(path)


def _equal(a, b):
    assert a.state_dict().keys() == b.state_dict().keys()
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())


def test_load_network_reads_pickles(snapshot):
    path, refs = snapshot
    _equal(stylegan.load_network(path), refs["G_ema"])
    _equal(stylegan.load_network(str(path), what="d"), refs["D"])
    assert sorted(load_networks(path)) == ["D", "G", "G_ema"]


def test_load_network_from_file_and_http_urls(snapshot):
    path, refs = snapshot
    _equal(stylegan.load_network(path.as_uri()), refs["G_ema"])

    body = path.read_bytes()

    class Handler(http.server.BaseHTTPRequestHandler):
        hits = 0

        def do_GET(self):
            Handler.hits += 1
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/stylegan3-t-ffhq-1024x1024.pkl"
        _equal(stylegan.load_network(url, what="g"), refs["G"])
        _equal(stylegan.load_network(url), refs["G_ema"])
        assert Handler.hits == 1                             # the second load used the cache
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_info_describes_pickles(snapshot, capsys):
    path, refs = snapshot
    main(["info", str(path)])
    out = capsys.readouterr().out
    assert "format:         NVIDIA pickle" in out and "[G_ema] StyleGAN2" in out and "[D]" in out
    assert f"{sum(p.numel() for p in refs['G_ema'].parameters()):,}" in out


def test_files_that_are_not_networks_say_what_they_are(tmp_path, capsys):
    page = tmp_path / "ffhq.pkl"
    page.write_text("<!DOCTYPE html><html><body>Google Drive - quota exceeded</body></html>")
    with pytest.raises(StyleGANError, match="looks like an HTML page"):
        stylegan.load_network(page)
    with pytest.raises(SystemExit):
        main(["info", str(page)])
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "HTML page" in err


def test_info_refuses_malicious_pickles(tmp_path, capsys):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"G_ema": nb.SystemCall(f"touch {marker}")}, protocol=4))
    with pytest.raises(SystemExit) as info:
        main(["info", str(evil)])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "system" in err and "not on the allowlist" in err and "Traceback" not in err
    assert not marker.exists()
    with pytest.raises(StyleGANError):
        stylegan.load_network(evil)
    assert not marker.exists()


def test_tf_pickle_through_load_network(tmp_path):
    G = nb.build_generator(nb.TINY_G, "stylegan2")
    D = nb.build_discriminator(nb.TINY_D)
    common = dict(num_channels=3, resolution=8, label_size=0, fmap_base=32, fmap_max=8)
    tf_G = nb.tf_generator(G, dict(common, latent_size=8, dlatent_size=8, mapping_layers=1), ada=False)
    tf_D = nb.tf_discriminator(D, dict(common, mbstd_group_size=2), ada=False)
    path = nb.dump((tf_G, tf_D, tf_G), tmp_path / "stylegan2-ffhq-config-f.pkl")
    ours = stylegan.load_network(path)
    g = torch.Generator().manual_seed(0)
    z = torch.randn([2, 8], generator=g)
    with torch.no_grad():
        assert torch.allclose(ours(z, None), G(z, None), atol=1e-6)
    assert json.loads(json.dumps(ours.config.to_dict()))["synthesis"]["channel_base"] == 64
