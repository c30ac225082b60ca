"""stylegan: a pure-PyTorch toolkit for the StyleGAN family.

Public API (stable names):
    build_generator(cfg, resolution, c_dim=0, **overrides) -> Generator
    build_discriminator(cfg, resolution, c_dim=0, **overrides) -> Discriminator
    save_network(module, path)
    load_network(path_or_url, what='g_ema', device='cpu')

Imports are lazy so `stylegan --help` starts fast.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "build_generator": "stylegan.networks.presets",
    "build_discriminator": "stylegan.networks.presets",
    "save_network": "stylegan.io",
    "load_network": "stylegan.io",
    "resolve_device": "stylegan.core.device",
    "StyleGANError": "stylegan.core.errors",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'stylegan' has no attribute '{name}'")
