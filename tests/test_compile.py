"""--compile (stylegan.core.compile): compiled G and D compute what eager does, a failure to compile falls back to
eager with one warning, and `train`, `generate` and `metrics` run with it.

Compiling is slow on a CPU (tracing the networks takes tens of seconds even at 8x8), so the networks are the
smallest StyleGAN2 there is, and most tests trace with the 'eager' or 'aot_eager' backends (dynamo, and
dynamo + AOTAutograd, without code generation); one test runs inductor itself. What only a GPU can check:
CUDA graphs (`cuda_graphs=True` is a no-op on the CPU) and inductor's Triton code.
"""
from __future__ import annotations

import copy
import json
import sys
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import stylegan
import stylegan.core.compile as compile_mod
from stylegan.cli import main as cli_main
from stylegan.core.compile import Compiled, compiled, compiled_forward
from stylegan.data import ImageDataset
from stylegan.networks import build_discriminator
from stylegan.training import prepare_config
from stylegan.training.config import TrainingConfig, TrainingFlags, new_run_config, resumed_run_config
from stylegan.training.phases import Trainer
from test_train_common import flags, write_dataset

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from test_metrics_api import _folder, _images  # noqa: E402

TINY8 = dict(cbase=256, cmax=16, map_depth=2)       # StyleGAN2 at 8x8: two blocks, 16 channels


@pytest.fixture(autouse=True)
def _fresh_fallback(monkeypatch):
    """Every test starts as a new process would: no compile failure seen yet."""
    monkeypatch.setattr(compile_mod, "_failure", None)


def tiny_G(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    G = stylegan.build_generator("stylegan2", 8, z_dim=16, w_dim=16, **TINY8)
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(0.1)            # a fresh network ignores its noise; this one must draw the same noise
    return G.eval().requires_grad_(False)


# --- the wrapper ---------------------------------------------------------------------------------------------------

def _broken_compile(monkeypatch, at_call: bool = True):
    """torch.compile that fails as inductor does without a C++ compiler: at the first call (or right away)."""
    def fake(fn, **kwargs):
        if not at_call:
            raise RuntimeError("Dynamo is not supported on this Python")

        def run(*args, **kw):
            raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found\nsecond line of the report")
        return run
    monkeypatch.setattr(torch, "compile", fake)


@pytest.mark.parametrize("at_call", [True, False])
def test_a_failing_compile_warns_once_and_runs_eagerly(monkeypatch, at_call):
    _broken_compile(monkeypatch, at_call)
    G, D = tiny_G(), build_discriminator("stylegan2", 8, **{k: v for k, v in TINY8.items() if k != "map_depth"},
                                         mbstd_group=2).eval()
    mapping, synthesis, disc = compiled(G.mapping), compiled(G.synthesis), compiled(D)
    z, c = torch.randn(2, 16), torch.zeros(2, 0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
            ws = mapping(z, c)
            img = synthesis(ws, noise_mode="const")
            logits = disc(img, c)
    ours = [w for w in caught if "--compile" in str(w.message)]
    assert len(ours) == 1, [str(w.message) for w in caught]
    message = str(ours[0].message)
    assert "RuntimeError" in message and "\n" not in message and "running eagerly" in message
    assert torch.equal(logits, D(G.synthesis(G.mapping(z, c), noise_mode="const"), c))
    assert compile_mod.compile_failure() is not None


def test_an_error_that_eager_raises_too_is_raised_without_a_warning(monkeypatch):
    _broken_compile(monkeypatch)
    G = tiny_G()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(Exception):
            compiled(G.mapping)(torch.randn(2, 3), torch.zeros(2, 0))       # z_dim is 16: a real error
    assert not [w for w in caught if "--compile" in str(w.message)] and compile_mod.compile_failure() is None


def test_compiled_forward_leaves_names_and_modules_as_they_were(monkeypatch):
    monkeypatch.setattr(torch, "compile", lambda fn, **kwargs: fn)     # tracing is not what is under test here
    G = tiny_G()
    keys = list(G.state_dict())
    with compiled_forward(G.mapping, G.synthesis):
        assert isinstance(G.synthesis.forward, Compiled) and list(G.state_dict()) == keys
        copied = copy.deepcopy(G.synthesis)     # a copy runs on its own weights, not the original's
        assert copied.forward.eager.__self__ is copied
    assert "forward" not in vars(G.synthesis) and "forward" not in vars(G.mapping)
    assert compiled(G.mapping, enabled=False) is G.mapping


def test_compile_is_a_run_option_that_a_resume_may_change():
    saved = new_run_config(TrainingFlags(outdir="o", cfg="stylegan2", data="d", batch=32, gamma=10))
    assert saved.run.compile is False
    assert resumed_run_config(saved, TrainingFlags(compile=True), "state").run.compile is True
    assert TrainingConfig.from_json(saved.to_json()).run.compile is False


# --- compiled networks compute what eager does ---------------------------------------------------------------------

@pytest.mark.slow
def test_inductor_matches_eager_noise_included():
    """The real backend, inductor's C++ code, on one synthesis layer: its affine, the modulated conv, bias_act and
    StyleGAN2's random noise, which must be drawn as eager draws it (inductor's own RNG would not). One layer, not
    the networks: inductor takes minutes for all of G on two busy cores; the other tests trace all of it."""
    layer = tiny_G().synthesis.b4.conv1
    x, w = torch.randn(2, layer.in_channels, 4, 4), torch.randn(2, layer.w_dim)
    with torch.no_grad():
        torch.manual_seed(1)
        expected = layer(x, w, noise_mode="random")
        with compiled_forward(layer, backend="inductor"):
            torch.manual_seed(1)
            got = layer(x, w, noise_mode="random")
    assert compile_mod.compile_failure() is None
    assert (got - expected).abs().max().item() < 1e-5


@pytest.mark.slow
def test_a_compiled_training_step_matches_eager_and_saves_the_same_names(tmp_path, monkeypatch):
    """All four phases (Gmain, Greg, Dmain, Dreg run at step 0) with compiled G and D through AOTAutograd, as
    --compile runs them; the training state's tensors have the eager run's names and values."""
    monkeypatch.setattr(compile_mod, "BACKEND", "aot_eager")
    data = write_dataset(tmp_path / "blobs8.zip", count=8, resolution=8)
    runs = {}
    for compile_ in (False, True):
        config = prepare_config(flags(tmp_path, data, batch=4, compile=compile_, **TINY8), quiet=True)
        assert config.run.compile is compile_
        with ImageDataset(config.data.path) as dataset:
            trainer = Trainer(config, dataset, torch.device("cpu"))
            trainer.step()
            runs[compile_] = trainer.state_tensors()[0], trainer.collect_stats()
    assert compile_mod.compile_failure() is None
    (eager, eager_stats), (fast, fast_stats) = runs[False], runs[True]
    assert list(fast) == list(eager) and not any("_orig_mod" in k for k in fast)
    worst = max((fast[k].double() - eager[k].double()).abs().max().item() for k in eager if eager[k].numel())
    assert worst < 1e-5
    for key in ("loss/G", "loss/D", "loss/D_reg", "pl_penalty"):
        assert fast_stats[key] == pytest.approx(eager_stats[key], abs=1e-5), key


@pytest.mark.parametrize("cfg", ["stylegan2", "stylegan3-t"])
def test_generator_and_discriminator_trace_as_one_graph_each(cfg):
    # A graph break splits a network into graphs that inductor cannot fuse across, and each break runs Python
    # between them: the ops decide per filter, outside the graph, and take gains and clamps as Python floats.
    torch._dynamo.reset()
    torch.manual_seed(0)
    size = dict(cbase=256, cmax=8, map_depth=2)
    G = stylegan.build_generator(cfg, 16, z_dim=8, w_dim=8, **size).eval()
    D = build_discriminator(cfg, 16, cbase=256, cmax=8, mbstd_group=2).eval()
    ws = G.mapping(torch.randn(2, 8), torch.zeros(2, 0))
    for fn, args in [(G.synthesis, (ws,)), (D, (torch.randn(2, 3, 16, 16), torch.zeros(2, 0)))]:
        explained = torch._dynamo.explain(fn)(*args)            # dynamo only: nothing is compiled
        assert explained.graph_count == 1, [str(b.reason).splitlines()[0] for b in explained.break_reasons]


# --- the commands --------------------------------------------------------------------------------------------------

def _run(args: list, capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as info:
        cli_main([str(a) for a in args])
        raise SystemExit(0)
    out = capsys.readouterr()
    return info.value.code, out.out + out.err


@pytest.mark.slow
def test_generate_with_compile_writes_the_eager_images(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(compile_mod, "BACKEND", "eager")
    net = stylegan.save_network(tiny_G(), tmp_path / "tiny8.safetensors")
    for name, extra in (("eager", []), ("compiled", ["--compile"])):
        code, out = _run(["generate", "--network", net, "--seeds", "0-3", "--noise-mode", "random", "--batch", "2",
                          "--grid", "2x2", "--outdir", tmp_path / name, "--device", "cpu", *extra], capsys)
        assert code == 0, out
    assert compile_mod.compile_failure() is None
    assert (tmp_path / "compiled" / "grid.png").read_bytes() == (tmp_path / "eager" / "grid.png").read_bytes()


class _PoolDetector(nn.Module):
    """12 features per image: 2x2 average colours (a stand-in for Inception, without its download)."""

    def forward(self, img):
        return F.adaptive_avg_pool2d(img.float() / 255, 2).flatten(1)


@pytest.mark.slow
def test_metrics_with_compile_gives_the_eager_number(tmp_path, capsys, monkeypatch):
    from stylegan.metrics import registry
    monkeypatch.setenv("STYLEGAN_OFFLINE", "1")
    monkeypatch.setattr(compile_mod, "BACKEND", "eager")
    monkeypatch.setattr(registry, "load_inception", lambda *a, **k: (_PoolDetector(), "pool:0"))
    data = _folder(tmp_path / "data", _images(8, res=8))
    net = stylegan.save_network(tiny_G(), tmp_path / "run" / "tiny8.safetensors")
    results = []
    for extra in ([], ["--compile"]):
        code, out = _run(["metrics", "--network", net, "--data", data, "--metrics", "fid50k_full", "--num-gen", "8",
                          "--device", "cpu", "--workers", "0", "--cache-dir", tmp_path / "stats", *extra], capsys)
        assert code == 0, out
        results.append(json.loads((net.parent / "metric-fid50k_full.jsonl").read_text().splitlines()[-1]))
    assert compile_mod.compile_failure() is None
    assert np.isclose(results[1]["results"]["fid50k_full"], results[0]["results"]["fid50k_full"], rtol=1e-4)
