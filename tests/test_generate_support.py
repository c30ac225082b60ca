"""Shared by the test_generate* modules: tiny networks, saved once per session, and an in-process CLI runner.
(No tests here; the name only keeps the file with the generation tests.)"""
from __future__ import annotations

import pytest
import torch

import stylegan
from stylegan.cli import main as cli_main

TINY = dict(cbase=1024, cmax=64, z_dim=64, w_dim=64)
SG3_TINY = dict(num_layers=4, num_critical=1)       # 6 ws instead of 16: the same code, a quarter of the work
SPECS = {                                           # name: (cfg, resolution, c_dim)
    "sg2": ("stylegan2", 16, 0),
    "sg2_32": ("stylegan2", 32, 0),
    "sg3": ("stylegan3-t", 16, 0),
    "cond": ("stylegan2", 16, 4),
}
_saved: dict[str, object] = {}


def tiny_generator(cfg: str = "stylegan2", resolution: int = 16, c_dim: int = 0, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    extra = SG3_TINY if cfg.startswith("stylegan3") else {}
    G = stylegan.build_generator(cfg, resolution, c_dim=c_dim, **TINY, **extra)
    # A fresh network's w_avg is zero and its noise strengths are 0; give them values training would.
    n = 256
    c = torch.zeros([n, c_dim])
    if c_dim:
        c[torch.arange(n), torch.arange(n) % c_dim] = 1
    with torch.no_grad():
        G.mapping.w_avg.copy_(G.mapping(torch.randn(n, G.z_dim), c)[:, 0].mean(0))
        for name, p in G.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(0.1)
    return G.eval().requires_grad_(False)


@pytest.fixture(scope="session")
def nets(tmp_path_factory):
    """Paths of the saved tiny networks by name (see SPECS)."""
    if not _saved:
        folder = tmp_path_factory.mktemp("generate-nets")
        for name, (cfg, res, c_dim) in SPECS.items():
            _saved[name] = stylegan.save_network(tiny_generator(cfg, res, c_dim), folder / f"{name}.safetensors")
    return dict(_saved)


@pytest.fixture
def one_thread():
    """Run a test on one torch thread. The tiny networks' ops are too small to split across threads, and on a
    busy 2-core machine the second thread mostly waits for a core: projections ran 10x slower with two here."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def run_cli(args: list, capsys) -> tuple[int, str, str]:
    """Run `stylegan ARGS` in-process: (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exit_info:
        cli_main([str(a) for a in args])
        raise SystemExit(0)
    out = capsys.readouterr()
    return exit_info.value.code, out.out, out.err
