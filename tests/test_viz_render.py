"""The visualizer below HTTP: request parsing, the layer and spectrum views, the renderer, and the worker's stale
dropping."""
from __future__ import annotations

import math
import threading
import time

import numpy as np
import pytest
import torch

from stylegan.generate import RenderOptions, render
from stylegan.viz import AllowedFiles, Busy, ParamError, RenderParams, Renderer, RenderWorker, Superseded
from stylegan.viz.inspect import activation_image, list_layers, power_spectrum_image, resize, run_capturing
from test_viz_support import make_tree, tiny_generator


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return make_tree(tmp_path_factory.mktemp("viz"))


@pytest.fixture(scope="module")
def renderer(tree):
    return Renderer(AllowedFiles(models_dir=tree["models"]), device="cpu")


# --- requests -------------------------------------------------------------------------------------------------------

def test_params_round_trip_through_json():
    body = {"network": "a.pkl", "seed": 3, "seed_frac": 0.25, "psi": 0.5, "cutoff": 2, "class": 1,
            "noise_mode": "none", "translate": [0.5, -1], "rotate": 90, "mix_seed": 4, "mix_layers": [0, 3],
            "directions": "d.npz", "strengths": [1, -2], "view": "fft", "layer": "L3", "channel": 2, "size": 128,
            "client": "tab_1", "seq": 9}
    p = RenderParams.from_json(body)
    assert p.class_idx == 1 and p.translate == (0.5, -1.0) and p.mix_layers == (0, 3)
    assert RenderParams.from_json(p.to_json()) == p
    assert not p.plain_seed
    assert RenderParams.from_json({"network": "a.pkl", "strengths": [0], "directions": "d"}).plain_seed


def test_params_errors_name_the_field():
    with pytest.raises(ParamError) as err:
        RenderParams.from_json({"network": "a.pkl", "psi": float("inf")})
    assert err.value.field == "psi" and err.value.status == 422 and "not a number" in str(err.value)
    with pytest.raises(ParamError) as err:
        RenderParams.from_json("seed=3")
    assert err.value.status == 400


# --- layers and views ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("cfg", ["stylegan2", "stylegan3-t"])
def test_capturing_a_layer_early_gives_the_full_passes_activations(cfg):
    G = tiny_generator(cfg)
    ws = G.mapping(torch.randn([1, G.z_dim]), None)
    layers = list_layers(lambda: G.synthesis(ws), G.synthesis)
    assert layers[-1].name == "output" and layers[-1].shape == (3, 16, 16)
    assert len({layer.name for layer in layers}) == len(layers)
    middle = layers[len(layers) // 2]
    full, x = run_capturing(lambda: G.synthesis(ws), G.synthesis, middle.name, stop_early=False)
    stopped, y = run_capturing(lambda: G.synthesis(ws), G.synthesis, middle.name, stop_early=True)
    assert full is not None and stopped is None
    assert tuple(x.shape) == middle.shape
    torch.testing.assert_close(x, y, rtol=0, atol=0)
    _, out = run_capturing(lambda: G.synthesis(ws), G.synthesis, "output", stop_early=True)
    torch.testing.assert_close(out, full[0], rtol=0, atol=0)


def test_activation_grid_scales_each_channel():
    x = torch.zeros([5, 3, 4])
    x[1] = 0.001                                                # quiet but not silent: still shows white
    x[2, 0, 0] = -7
    grid = activation_image(x, None)
    assert grid.shape == (2 * 4 - 1, 3 * 5 - 1, 1)               # 3 columns, 2 rows, 1-pixel lines
    assert grid[0, 0, 0] == 128 and grid[0, 5, 0] == 255 and grid[0, 10, 0] == 0
    assert activation_image(x, 2).shape == (3, 4, 1)


def test_power_spectrum_peaks_at_the_signals_frequency():
    h = w = 32
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    wave = torch.cos(2 * math.pi * (5 * xx / w + 3 * yy / h))[None]          # 5 cycles across, 3 down
    image = power_spectrum_image(wave).astype(np.int64).sum(axis=2)
    peaks = sorted(zip(*np.nonzero(image == image.max())))
    assert peaks == [(h // 2 - 3, w // 2 - 5), (h // 2 + 3, w // 2 + 5)]


def test_resize_keeps_pixels_when_enlarging_and_caps_the_size():
    image = np.random.RandomState(0).randint(0, 255, [8, 6, 3]).astype(np.uint8)
    big = resize(image, 32, max_size=64)
    assert big.shape == (32, 24, 3)
    np.testing.assert_array_equal(big[::4, ::4], image)
    assert resize(image, None, max_size=4).shape == (4, 3, 3)
    assert resize(image, None, max_size=64) is image


# --- the renderer -----------------------------------------------------------------------------------------------------

def test_renderer_matches_generate_and_leaves_the_network_unchanged(renderer, tree):
    import io

    import PIL.Image
    p = RenderParams.from_json({"network": "sub/sg3.safetensors", "seed": 8, "psi": 0.6, "translate": [0.2, 0.1],
                                "rotate": -40})
    shown = np.asarray(PIL.Image.open(io.BytesIO(renderer.render(p).png)))
    net, _ = renderer._network("sub/sg3.safetensors")
    G = net.G
    expected = render(G, seeds=[8], options=RenderOptions(psi=0.6, translate=(0.2, 0.1), rotate=-40))[0].numpy()
    np.testing.assert_array_equal(shown, expected)
    # A layer view stops the pass early; the transform is restored all the same.
    renderer.render(RenderParams.from_json({**p.to_json(), "view": "layer", "layer": G.synthesis.layer_names[1]}))
    torch.testing.assert_close(G.synthesis.input.transform, torch.eye(3), rtol=0, atol=0)


def test_renderer_caches_networks_by_path(tree):
    files = AllowedFiles(networks=[str(tree["models"] / "sg2.safetensors")], models_dir=tree["models"])
    r = Renderer(files, device="cpu", cache_size=1)
    first = r.render(RenderParams.from_json({"network": str(tree["models"] / "sg2.safetensors")}))
    again = r.render(RenderParams.from_json({"network": "sg2.safetensors"}))      # the same file by another name
    assert first.load_ms > 0 and again.load_ms == 0 and first.png == again.png
    r.render(RenderParams.from_json({"network": "sub/cond.safetensors", "class": 0}))  # evicts sg2 (cache of 1)
    assert r.render(RenderParams.from_json({"network": "sg2.safetensors"})).load_ms > 0


def test_seed_blend_is_linear_in_w(renderer):
    net, _ = renderer._network("sg2.safetensors")
    p = RenderParams.from_json({"network": "sg2.safetensors", "seed": 10, "seed_frac": 0.25})
    ws = renderer._latents(net.G, p)
    a = renderer._latents(net.G, RenderParams.from_json({"network": "sg2.safetensors", "seed": 10}))
    b = renderer._latents(net.G, RenderParams.from_json({"network": "sg2.safetensors", "seed": 11}))
    torch.testing.assert_close(ws, a + 0.25 * (b - a))


# --- the worker -----------------------------------------------------------------------------------------------------

@pytest.fixture
def worker():
    w = RenderWorker(max_pending=3)
    yield w
    w.close()


def hold(worker: RenderWorker) -> tuple[threading.Event, object]:
    """Occupy the worker until the returned event is set; returns once the blocking job is running."""
    gate = threading.Event()
    blocker = worker.submit(gate.wait)
    for _ in range(1000):
        if blocker.running():
            return gate, blocker
        time.sleep(0.01)
    raise AssertionError("the worker did not start the blocking job within 10 s")


def test_worker_drops_stale_requests_per_client(worker):
    gate, blocker = hold(worker)
    first = worker.submit(lambda: "a1", client="a", seq=1)
    other = worker.submit(lambda: "b1", client="b", seq=1)            # another client: not affected
    anonymous = worker.submit(lambda: "x")                            # no client: never dropped
    second = worker.submit(lambda: "a2", client="a", seq=2)
    assert first.done() and isinstance(first.exception(), Superseded) and first.exception().newest == 2
    late = worker.submit(lambda: "a0", client="a", seq=0)
    assert isinstance(late.exception(timeout=0), Superseded)
    gate.set()
    assert [f.result(timeout=10) for f in (other, anonymous, second)] == ["b1", "x", "a2"]
    blocker.result(timeout=10)
    assert worker.stats["superseded"] == 2 and worker.stats["run"] == 4


def test_worker_is_bounded_and_reports_errors(worker):
    gate, blocker = hold(worker)
    jobs = [worker.submit(lambda i=i: i) for i in range(2)] + [worker.submit(lambda: 2, client="a", seq=1)]
    with pytest.raises(Busy):
        worker.submit(lambda: 99)
    replaced = worker.submit(lambda: 3, client="a", seq=2)          # replacing its own waiting job needs no room
    gate.set()
    assert [f.result(timeout=10) for f in jobs[:2] + [replaced]] == [0, 1, 3]
    assert isinstance(jobs[2].exception(timeout=0), Superseded)
    blocker.result(timeout=10)
    failing = worker.submit(lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        failing.result(timeout=10)


def test_worker_close_cancels_waiting_jobs():
    w = RenderWorker()
    gate, blocker = hold(w)
    waiting = w.submit(lambda: 1)
    threading.Timer(0.2, gate.set).start()
    w.close()
    assert waiting.cancelled() and blocker.result(timeout=10) is True
    with pytest.raises(RuntimeError):
        w.submit(lambda: 2)


def test_the_shipped_network_is_offered_by_name():
    from stylegan.io.bundled import bundled_network_path
    files = AllowedFiles(networks=["emoji"])
    assert files.network("emoji").location == str(bundled_network_path("emoji").resolve())
