"""The visualizer's HTTP API through the ASGI test client: every endpoint, every validation error, traversal attempts,
the body and host guards, stale-request dropping, the command line and export."""
from __future__ import annotations

import asyncio
import io
import json
import re
import shlex

import numpy as np
import PIL.Image
import pytest
from fastapi.testclient import TestClient          # the `test` extra installs FastAPI; without it, fail loudly

import stylegan
from stylegan.generate import RenderOptions, render
from stylegan.viz import ServeConfig, create_app
from stylegan.viz.server import STATIC_DIR
from test_viz_support import make_tree

BASE = "http://127.0.0.1:7860"


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return make_tree(tmp_path_factory.mktemp("viz"))


@pytest.fixture(scope="module")
def client(tree):
    config = ServeConfig(networks=[str(tree["cli_sg2"])], models_dir=str(tree["models"]),
                         export_dir=str(tree["export"]), device="cpu", max_size=512, max_body=4096)
    with TestClient(create_app(config), base_url=BASE) as c:
        yield c


@pytest.fixture(scope="module")
def bare_client(tree):
    """No --models-dir, no --export-dir: one network from the command line."""
    with TestClient(create_app(ServeConfig(networks=[str(tree["cli_sg2"])], device="cpu")), base_url=BASE) as c:
        yield c


def pixels(png: bytes) -> np.ndarray:
    return np.asarray(PIL.Image.open(io.BytesIO(png)))


def error_of(response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert isinstance(body["error"], str) and body["error"]
    return body


# --- the page and its files ---------------------------------------------------------------------------------------

def test_page_and_static_files_are_served_and_load_nothing_from_elsewhere(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    referenced = re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text)
    assert sorted(referenced) == ["/static/app.js", "/static/style.css"]
    for path in referenced:
        assert client.get(path).status_code == 200
    for file in STATIC_DIR.iterdir():
        # Offline: no CDN, no web font, no absolute URL of any kind in the page's files.
        assert not re.search(r"https?://|//cdn|@import|url\(", file.read_text()), file.name


@pytest.mark.parametrize("path", ["/static/..%2f..%2fparams.py", "/static/%2e%2e/%2e%2e/server.py",
                                  "/static/..%2F..%2F..%2Fpyproject.toml", "/static/nope.js"])
def test_static_traversal_is_refused(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert b"import" not in response.content


def test_health(client):
    body = client.get("/api/health").json()
    assert body["status"] == "ok" and body["device"] == "cpu" and body["version"] == stylegan.__version__


def test_networks_lists_allowed_files_only(client, tree):
    body = client.get("/api/networks").json()
    names = [n["name"] for n in body["networks"]]
    assert names[0] == str(tree["cli_sg2"]) and body["networks"][0]["origin"] == "command line"
    # broken.safetensors is listed (the name is allowed); loading it answers 422 below. The training state in
    # run/ is not a network and is not listed.
    assert sorted(names[1:]) == ["broken.safetensors", "sg2.safetensors", "sub/cond.safetensors", "sub/sg3.safetensors"]
    assert [d["name"] for d in body["directions"]] == ["dirs.npz"]
    assert body["export"] is True and body["limits"]["max_size"] == 512


# --- POST /api/network --------------------------------------------------------------------------------------------

def test_network_info_stylegan2(client):
    info = client.post("/api/network", json={"network": "sg2.safetensors"}).json()
    assert (info["family"], info["resolution"], info["num_ws"], info["w_dim"]) == ("stylegan2", 16, 6, 32)
    assert info["stylegan3"] is False and info["has_noise"] is True and info["c_dim"] == 0
    layers = {layer["name"]: layer["shape"] for layer in info["layers"]}
    assert layers["b8.conv0"] == [32, 8, 8] and layers["output"] == [3, 16, 16]
    assert [d["name"] for d in info["directions"]] == ["dirs.npz"]
    assert info["directions"][0]["components"] == 4


def test_network_info_stylegan3(client):
    info = client.post("/api/network", json={"network": "sub/sg3.safetensors"}).json()
    G = stylegan.load_network(client.app.state.files.network("sub/sg3.safetensors").location)
    names = [layer["name"] for layer in info["layers"]]
    assert info["stylegan3"] is True and info["has_noise"] is False
    assert names == ["input"] + list(G.synthesis.layer_names) + ["output"]
    assert info["directions"] == []        # dirs.npz was made for the StyleGAN2 network (other num_ws)


@pytest.mark.parametrize("body, status, field", [
    ({}, 422, "network"),
    ({"network": 3}, 422, "network"),
    ({"network": "sg2.safetensors", "seed": 1}, 422, "seed"),
    ({"network": "missing.safetensors"}, 404, "network"),
    ({"network": "broken.safetensors"}, 422, "network"),
    ({"network": "../outside/secret.safetensors"}, 403, "network"),
])
def test_network_info_errors(client, body, status, field):
    assert error_of(client.post("/api/network", json=body), status)["field"] == field


# --- POST /api/render ---------------------------------------------------------------------------------------------

def test_render_is_the_generation_suites_image(client, tree):
    response = client.post("/api/render", json={"network": "sg2.safetensors", "seed": 7, "psi": 0.7,
                                                 "noise_mode": "random"})
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    assert (response.headers["x-image-width"], response.headers["x-image-height"]) == ("16", "16")
    assert float(response.headers["x-render-ms"]) > 0
    G = stylegan.load_network(tree["models"] / "sg2.safetensors")
    expected = render(G, seeds=[7], options=RenderOptions(psi=0.7, noise_mode="random"))[0].numpy()
    np.testing.assert_array_equal(pixels(response.content), expected)


def test_render_stylegan3_translate_and_rotate(client, tree):
    body = {"network": "sub/sg3.safetensors", "seed": 3, "translate": [0.25, -0.125], "rotate": 30}
    response = client.post("/api/render", json=body)
    G = stylegan.load_network(tree["models"] / "sub" / "sg3.safetensors")
    expected = render(G, seeds=[3], options=RenderOptions(translate=(0.25, -0.125), rotate=30))[0].numpy()
    np.testing.assert_array_equal(pixels(response.content), expected)
    plain = client.post("/api/render", json={"network": "sub/sg3.safetensors", "seed": 3})
    assert not np.array_equal(pixels(plain.content), expected)


def test_render_conditional_network_by_class(client):
    shown = [pixels(client.post("/api/render", json={"network": "sub/cond.safetensors", "seed": 1, "class": k}).content)
             for k in (0, 2)]
    assert not np.array_equal(*shown)


def test_render_layer_views_and_shape(client):
    grid = client.post("/api/render", json={"network": "sg2.safetensors", "view": "layer", "layer": "b8.conv0"})
    assert grid.headers["x-layer"] == "b8.conv0" and grid.headers["x-layer-shape"] == "32,8,8"
    assert pixels(grid.content).shape == (6 * 9 - 1, 6 * 9 - 1)        # 32 tiles of 8x8 in a 6x6 grid, 1 px lines
    one = client.post("/api/render", json={"network": "sg2.safetensors", "view": "layer", "layer": "b8.conv0",
                                           "channel": 5, "size": 64})
    assert pixels(one.content).shape == (64, 64)
    fft = client.post("/api/render", json={"network": "sg2.safetensors", "view": "fft"})
    assert fft.headers["x-layer"] == "output" and pixels(fft.content).shape == (16, 16, 3)
    fft_layer = client.post("/api/render", json={"network": "sg2.safetensors", "view": "fft", "layer": "b16.conv0",
                                                 "channel": 0})
    assert fft_layer.headers["x-layer-shape"] == "32,16,16"


def test_render_size_changes_the_image_not_the_picture(client):
    small = pixels(client.post("/api/render", json={"network": "sg2.safetensors", "seed": 2}).content)
    big = pixels(client.post("/api/render", json={"network": "sg2.safetensors", "seed": 2, "size": 64}).content)
    np.testing.assert_array_equal(big[::4, ::4], small)                 # enlarged pixel for pixel


def test_render_style_mixing_and_directions_change_the_picture(client):
    base = {"network": "sg2.safetensors", "seed": 4}
    plain = pixels(client.post("/api/render", json=base).content)
    mixed = pixels(client.post("/api/render", json={**base, "mix_seed": 9, "mix_layers": [0, 2]}).content)
    moved = pixels(client.post("/api/render", json={**base, "directions": "dirs.npz", "strengths": [0, 3]}).content)
    zero = pixels(client.post("/api/render", json={**base, "directions": "dirs.npz", "strengths": [0, 0]}).content)
    between = pixels(client.post("/api/render", json={**base, "seed_frac": 0.5}).content)
    assert not np.array_equal(plain, mixed) and not np.array_equal(plain, moved)
    assert not np.array_equal(plain, between)
    np.testing.assert_array_equal(plain, zero)


# Every validation error: (request fields over a valid base, status, field named in the answer, words in the message).
BASE_BODY = {"network": "sg2.safetensors"}
INVALID = [
    ({"seed": -1}, "seed", "out of range"),
    ({"seed": 2 ** 32}, "seed", "out of range"),
    ({"seed": "1"}, "seed", "not a whole number"),
    ({"seed": 1.5}, "seed", "not a whole number"),
    ({"seed": True}, "seed", "not a whole number"),
    ({"seed_frac": 1.0}, "seed_frac", "not allowed"),
    ({"seed_frac": -0.1}, "seed_frac", "out of range"),
    ({"seed": 2 ** 32 - 1, "seed_frac": 0.5}, "seed_frac", "no next seed"),
    ({"psi": 2.5}, "psi", "out of range"),
    ({"psi": -3}, "psi", "out of range"),
    ({"psi": "0.7"}, "psi", "not a number"),
    ({"cutoff": -1}, "cutoff", "out of range"),
    ({"cutoff": 7}, "cutoff", "this network has 6 layers"),
    ({"class": 0}, "class", "unconditional"),
    ({"noise_mode": "loud"}, "noise_mode", "const, random, none"),
    ({"translate": [0.1]}, "translate", "two numbers"),
    ({"translate": [0, 11]}, "translate[1]", "out of range"),
    ({"translate": [0.1, 0]}, "translate", "StyleGAN2"),
    ({"rotate": 400}, "rotate", "out of range"),
    ({"rotate": 10}, "rotate", "StyleGAN2"),
    ({"mix_seed": 1}, "mix_layers", "both"),
    ({"mix_layers": [0, 1]}, "mix_seed", "both"),
    ({"mix_seed": 1, "mix_layers": [3, 1]}, "mix_layers", "backwards"),
    ({"mix_seed": 1, "mix_layers": [0, 6]}, "mix_layers", "0 to 5"),
    ({"strengths": [1]}, "strengths", "directions file"),
    ({"directions": "dirs.npz", "strengths": [1] * 33}, "strengths", "at most 32"),
    ({"directions": "dirs.npz", "strengths": [25]}, "strengths[0]", "out of range"),
    ({"directions": "dirs.npz", "strengths": [1] * 5}, "strengths", "4 components"),
    ({"view": "xray"}, "view", "output, layer, fft"),
    ({"view": "layer"}, "layer", "needs a layer"),
    ({"view": "layer", "layer": "b1024.conv0"}, "layer", "b8.conv0"),
    ({"layer": "b8.conv0"}, "layer", "view 'output'"),
    ({"view": "layer", "layer": "b8.conv0", "channel": 32}, "channel", "0 to 31"),
    ({"view": "layer", "channel": 0}, "layer", "needs a layer"),
    ({"view": "fft", "channel": 0}, "channel", "belongs to a layer"),
    ({"size": 8}, "size", "out of range"),
    ({"size": 513}, "size", "out of range"),
    ({"client": "not ok!", "seq": 1}, "client", "letters, digits"),
    ({"client": "page"}, "seq", "go together"),
    ({"client": "page", "seq": -1}, "seq", "out of range"),
    ({"shape": "round"}, "shape", "unknown field"),
]


@pytest.mark.parametrize("fields, field, words", INVALID, ids=[f for _, f, _ in INVALID])
def test_render_validation_errors(client, fields, field, words):
    body = error_of(client.post("/api/render", json={**BASE_BODY, **fields}), 422)
    assert body["field"] == field
    assert words in body["error"], body["error"]


def test_render_class_checks_on_a_conditional_network(client):
    body = {"network": "sub/cond.safetensors"}
    assert "conditional" in error_of(client.post("/api/render", json=body), 422)["error"]
    assert "0 to 2" in error_of(client.post("/api/render", json={**body, "class": 3}), 422)["error"]


def test_render_not_a_number_and_not_json(client):
    raw = b'{"network": "sg2.safetensors", "psi": NaN}'            # Python's json reads NaN; we refuse it
    body = error_of(client.post("/api/render", content=raw, headers={"content-type": "application/json"}), 422)
    assert body["field"] == "psi"
    body = error_of(client.post("/api/render", content=b"{nope", headers={"content-type": "application/json"}), 400)
    assert "not valid JSON" in body["error"]
    assert error_of(client.post("/api/render", json=[1, 2]), 400)["field"] == "body"


def test_render_needs_json_content_type(client):
    body = error_of(client.post("/api/render", content=json.dumps(BASE_BODY),
                                headers={"content-type": "text/plain"}), 415)
    assert "application/json" in body["error"]


TRAVERSALS = [
    "../outside/secret.safetensors",
    "sub/../../outside/secret.safetensors",
    "/etc/passwd",
    "__ABSOLUTE_SECRET__",
    "..\\outside\\secret.safetensors",
    "~/secret.safetensors",
    ".hidden/secret.safetensors",
    "sub/./../../outside/secret.safetensors",
    "escape.safetensors",                    # a symbolic link inside --models-dir to a file outside
    "notes.txt",                             # inside, but not a network file
    "C:/outside/secret.safetensors",
    "file:///etc/passwd",
]


@pytest.mark.parametrize("name", TRAVERSALS)
@pytest.mark.parametrize("endpoint", ["/api/render", "/api/network"])
def test_traversal_is_refused(client, tree, name, endpoint):
    name = str(tree["outside"]) if name == "__ABSOLUTE_SECRET__" else name
    body = error_of(client.post(endpoint, json={"network": name}), 403)
    assert body["field"] == "network" and "refused" in body["error"]


@pytest.mark.parametrize("name", ["../dirs.npz", "/tmp/dirs.npz", "sg2.safetensors"])
def test_directions_traversal_is_refused(client, name):
    body = error_of(client.post("/api/render", json={**BASE_BODY, "directions": name}), 403)
    assert body["field"] == "directions"


def test_unknown_names_are_404(client, bare_client):
    assert "GET /api/networks" in error_of(client.post("/api/render", json={"network": "nope.pkl"}), 404)["error"]
    body = error_of(bare_client.post("/api/render", json={"network": "sg2.safetensors"}), 404)
    assert "--models-dir" in body["error"]
    body = error_of(bare_client.post("/api/render", json={"network": "../../etc/passwd"}), 404)
    assert "not offered" in body["error"]


def test_body_size_limit(client):
    big = json.dumps({**BASE_BODY, "pad": "x" * 5000})
    assert error_of(client.post("/api/render", content=big, headers={"content-type": "application/json"}),
                    413)["field"] == "body"

    def chunks():                                       # no Content-Length: counted as it arrives
        for _ in range(10):
            yield b" " * 1000

    response = client.post("/api/render", content=chunks(), headers={"content-type": "application/json"})
    assert error_of(response, 413)["field"] == "body"


def test_host_header_must_be_loopback(client):
    response = client.get("/api/health", headers={"host": "evil.example:7860"})
    assert error_of(response, 400)["field"] == "host"
    for host in ("localhost:7860", "127.0.0.1", "[::1]:7860"):
        assert client.get("/api/health", headers={"host": host}).status_code == 200


# --- stale requests --------------------------------------------------------------------------------------------------

def test_superseded_requests_answer_409_and_only_the_newest_renders(client):
    import httpx
    app, worker = client.app, client.app.state.worker
    gate = __import__("threading").Event()
    blocker = worker.submit(gate.wait)                  # hold the worker so the requests queue up
    before = dict(worker.stats)

    async def main():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
            tasks = [asyncio.create_task(http.post("/api/render", json={**BASE_BODY, "seed": seq, "client": "tab-1",
                                                                         "seq": seq})) for seq in range(1, 6)]
            for _ in range(600):                        # every request has reached the worker: 4 dropped, 1 waits
                if worker.stats["superseded"] - before["superseded"] == 4 and worker.pending() == 1:
                    break
                await asyncio.sleep(0.01)
            gate.set()
            return await asyncio.gather(*tasks)

    responses = asyncio.run(main())
    blocker.result(timeout=10)
    statuses = {json.loads(r.request.content)["seq"]: r.status_code for r in responses}
    assert statuses == {1: 409, 2: 409, 3: 409, 4: 409, 5: 200}
    answer = next(r for r in responses if r.status_code == 409).json()
    assert answer["status"] == "superseded" and answer["newest"] >= answer["seq"]
    late = client.post("/api/render", json={**BASE_BODY, "client": "tab-1", "seq": 2})   # older than seen: dropped
    assert late.status_code == 409 and late.json()["newest"] == 5
    assert worker.stats["run"] - before["run"] == 2     # the blocker and seq 5


# --- the command line and export -------------------------------------------------------------------------------------

def run_command(command: str, outdir) -> np.ndarray:
    """Run a `stylegan generate ...` line (with --outdir replaced) and return the one image it wrote."""
    from stylegan.cli import main
    argv = shlex.split(command)
    assert argv[:2] == ["stylegan", "generate"]
    argv[argv.index("--outdir") + 1] = str(outdir)
    main(argv[1:])
    (png,) = sorted(outdir.glob("*.png"))
    return np.asarray(PIL.Image.open(png))


def test_command_reproduces_the_picture(client, tmp_path):
    body = {"network": "sub/sg3.safetensors", "seed": 12, "psi": 0.5, "cutoff": 3, "translate": [0.1, 0.2],
            "rotate": 15}
    answer = client.post("/api/command", json=body).json()
    assert answer["exact"] is True and answer["note"] == ""
    assert "--seeds 12" in answer["command"] and "--trunc 0.5" in answer["command"]
    shown = pixels(client.post("/api/render", json=body).content)
    np.testing.assert_array_equal(run_command(answer["command"], tmp_path), shown)


def test_command_notes_what_it_cannot_express(client):
    answer = client.post("/api/command", json={**BASE_BODY, "mix_seed": 3, "mix_layers": [0, 1]}).json()
    assert answer["command"] is None and answer["exact"] is False and "style mixing" in answer["note"]
    answer = client.post("/api/command", json={**BASE_BODY, "view": "fft", "size": 64}).json()
    assert answer["exact"] is True and "FFT" in answer["note"] and "16 px" in answer["note"]
    answer = client.post("/api/command", json={"network": "sub/sg3.safetensors", "translate": [0.1234567, 0]}).json()
    assert answer["exact"] is False and "translate" in answer["note"]
    assert error_of(client.post("/api/command", json={**BASE_BODY, "seed": -4}), 422)["field"] == "seed"


def test_export_writes_only_into_the_export_dir_and_its_command_reproduces(client, tree, tmp_path):
    body = {**BASE_BODY, "seed": 5, "psi": 0.8, "mix_seed": 6, "mix_layers": [2, 5], "directions": "dirs.npz",
            "strengths": [1.5], "view": "layer", "layer": "b8.conv1", "client": "tab-9", "seq": 1}
    before = {p for p in tree["root"].rglob("*")}
    answer = client.post("/api/export", json=body).json()
    written = {p for p in tree["root"].rglob("*")} - before
    assert written and all(p.parent == tree["export"] for p in written)
    assert {str(p) for p in written} == {answer["png"], answer["latents"], answer["params"]}
    assert answer["exact"] is True and "--ws" in answer["command"]
    output = {k: v for k, v in body.items() if k not in ("view", "layer", "client", "seq")}
    shown = pixels(client.post("/api/render", json=output).content)
    np.testing.assert_array_equal(pixels(open(answer["png"], "rb").read()), shown)
    np.testing.assert_array_equal(run_command(answer["command"], tmp_path), shown)
    assert json.loads(open(answer["params"]).read())["request"]["mix_seed"] == 6


def test_export_is_off_without_export_dir(bare_client, tmp_path):
    body = error_of(bare_client.post("/api/export", json={"network": bare_client.app.state.config.networks[0]}), 403)
    assert "--export-dir" in body["error"]
    body = error_of(bare_client.post("/api/export", json={"network": "x", "seed": -1}), 422)
    assert body["field"] == "seed"
