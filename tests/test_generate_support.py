"""Shared by the test_generate* modules: tiny networks, saved once per session, and an in-process CLI runner.
(No tests here; the name only keeps the file with the generation tests. The fixtures `nets` and `one_thread`
built from it live in conftest.py, so every test module gets them without importing them.)"""
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


def run_cli(args: list, capsys) -> tuple[int, str, str]:
    """Run `stylegan ARGS` in-process: (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exit_info:
        cli_main([str(a) for a in args])
        raise SystemExit(0)
    out = capsys.readouterr()
    return exit_info.value.code, out.out, out.err
