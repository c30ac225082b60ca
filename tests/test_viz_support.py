"""Shared by the visualizer tests (no tests here): tiny networks on disk, in a tree that tests what may be loaded.

    root/cli/sg2.safetensors            given on the command line
    root/models/sg2.safetensors         inside --models-dir
    root/models/sub/sg3.safetensors     StyleGAN3-T
    root/models/sub/cond.safetensors    conditional StyleGAN2, 3 classes
    root/models/dirs.npz                latent directions for sg2 (num_ws 6, w_dim 32)
    root/models/run/training-state-000000000064.safetensors   a training state: not offered as a network
    root/models/notes.txt, root/models/.hidden/secret.safetensors, root/models/escape.safetensors -> ../outside/
    root/outside/secret.safetensors     must never be reachable
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

import stylegan

TINY = dict(cbase=1024, cmax=32, z_dim=32, w_dim=32)


def tiny_generator(cfg: str, c_dim: int = 0, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    G = stylegan.build_generator(cfg, resolution=16, c_dim=c_dim, **TINY)
    with torch.no_grad():
        # Fresh networks have zero noise strength and an untrained magnitude average; give both some life so the
        # noise mode and every layer visibly matter.
        for name, param in G.named_parameters():
            if name.endswith("noise_strength"):
                param.fill_(0.5)
        G.mapping.w_avg.normal_(0, 0.3)
    return G.eval()


def make_tree(root: Path) -> dict[str, Path]:
    from stylegan.generate import compute_directions, save_directions
    models, outside, cli = root / "models", root / "outside", root / "cli"
    for folder in (models / "sub", models / "run", models / ".hidden", outside, cli, root / "export"):
        folder.mkdir(parents=True, exist_ok=True)
    sg2 = tiny_generator("stylegan2")
    stylegan.save_network(sg2, cli / "sg2.safetensors")
    stylegan.save_network(sg2, models / "sg2.safetensors")
    stylegan.save_network(tiny_generator("stylegan3-t", seed=1), models / "sub" / "sg3.safetensors")
    stylegan.save_network(tiny_generator("stylegan2", c_dim=3, seed=2), models / "sub" / "cond.safetensors")
    stylegan.save_network(sg2, outside / "secret.safetensors")
    stylegan.save_network(sg2, models / ".hidden" / "secret.safetensors")
    save_directions(models / "dirs.npz", compute_directions(sg2, num_samples=64, components=4, seed=0))
    from stylegan.training.state import save_training_state
    save_training_state(models / "run" / "training-state-000000000064.safetensors",
                        {f"G.{k}": v for k, v in sg2.state_dict().items()}, config={}, counters={"nimg": 64},
                        optimizers={})
    (models / "notes.txt").write_text("not a network")
    (models / "broken.safetensors").write_bytes(b"not a network either")
    os.symlink(outside / "secret.safetensors", models / "escape.safetensors")
    return {"root": root, "models": models, "cli_sg2": cli / "sg2.safetensors", "export": root / "export",
            "outside": outside / "secret.safetensors"}
