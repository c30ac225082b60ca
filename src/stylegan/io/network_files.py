"""Reading network files in any format we know, and describing them (what `stylegan info` prints).

A reader is picked by sniffing the file's first bytes; each format registers a Loader in LOADERS.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

import torch

from stylegan.core.device import resolve_device
from stylegan.core.errors import StyleGANError
from stylegan.io.formats import describe_format, sniff_format
from stylegan.io.nvidia_pickle import is_nvidia_pickle, load_nvidia_network, load_nvidia_networks
from stylegan.io.safetensors_format import (
    is_safetensors_file, load_network_safetensors, load_networks_safetensors, read_network_file)
from stylegan.io.fetch import resolve_source
from stylegan.networks.presets import module_summary


class Loader:
    """One file format load_network understands: a cheap test on the path and the functions that read it."""

    def __init__(self, name: str, sniff: Callable[[Path], bool], load_one: Callable[..., torch.nn.Module],
                 load_all: Callable[..., dict[str, torch.nn.Module]]):
        self.name = name
        self.sniff = sniff                  # path -> True if this loader reads the file
        self.load_one = load_one            # (path, what, device) -> module
        self.load_all = load_all            # (path, device) -> {key: module}


LOADERS: list[Loader] = [
    Loader("safetensors", is_safetensors_file, load_network_safetensors, load_networks_safetensors),
    Loader("NVIDIA pickle", is_nvidia_pickle, load_nvidia_network, load_nvidia_networks),
]


def _loader_for(path: str | os.PathLike) -> tuple[Path, Loader]:
    path = resolve_source(path)             # a local file, or a URL's verified download in the cache
    for loader in LOADERS:
        if loader.sniff(path):
            return path, loader
    known = ", ".join(loader.name for loader in LOADERS)
    raise StyleGANError(f"{path}: not a network file this stylegan can read (it reads: {known}); "
                        f"it looks like {describe_format(sniff_format(path))}")


def load_network(path: str | os.PathLike, what: str = "g_ema", device: str | torch.device = "cpu") -> torch.nn.Module:
    """Rebuild one network from a file: what='g_ema' (default), 'g' or 'd'. A file holding a single generator
    answers to both 'g' and 'g_ema'. The module comes back in eval mode without gradients, on `device`
    (auto|cpu|cuda|mps or a torch.device)."""
    path, loader = _loader_for(path)
    return loader.load_one(path, what=what, device=resolve_device(device))


def load_networks(path: str | os.PathLike, device: str | torch.device = "cpu") -> dict[str, torch.nn.Module]:
    """Every network in a file, by key ('G', 'D', 'G_ema')."""
    path, loader = _loader_for(path)
    return loader.load_all(path, device=resolve_device(device))


def describe_network_file(path: str | os.PathLike) -> dict[str, Any]:
    """What `stylegan info` reports, as a JSON-ready dict: per module its architecture, resolution, channels,
    parameter counts per top-level submodule and in total, and its config; plus the file's metadata."""
    path, loader = _loader_for(path)
    modules = loader.load_all(path, device=torch.device("cpu"))
    info: dict[str, Any] = {"path": str(path), "format": loader.name, "format_version": None,
                            "stylegan_version": None, "extra": {}}
    if loader.name == "safetensors":
        _, meta = read_network_file(path)
        info.update(format_version=meta["format_version"], stylegan_version=meta["stylegan_version"],
                    extra=meta["extra"])
    info["modules"] = {key: module_summary(module) for key, module in modules.items()}
    return info


def _flatten(config: dict, prefix: str = "") -> list[str]:
    lines = []
    for key, value in config.items():
        if isinstance(value, dict):
            lines += _flatten(value, f"{prefix}{key}.")
        else:
            lines.append(f"{prefix}{key} = {json.dumps(value)}")
    return lines


def format_description(info: dict[str, Any]) -> str:
    """describe_network_file's dict as readable text."""
    lines = [f"file:           {info['path']}"]
    if info["format"] == "safetensors":
        lines.append(f"format:         stylegan network file v{info['format_version']}"
                     f" (written by stylegan {info.get('stylegan_version') or '?'})")
    else:
        lines.append(f"format:         {info['format']}")
    if info.get("extra"):
        shown = [f"{k}={json.dumps(v)}" if not isinstance(v, (dict, list)) else f"{k}=(...)"
                 for k, v in sorted(info["extra"].items())]
        lines.append(f"metadata:       {', '.join(shown)}  (--json shows all)")
    for key, s in info["modules"].items():
        lines += ["", f"[{key}] {s['architecture']}",
                  f"  resolution:   {s['resolution']}x{s['resolution']}, {s['img_channels']} image channels"]
        if s["family"] == "stylegan3":
            lines.append("  layers:       " + " ".join(s["channels"]) + "  (L<index>_<size>_<channels>)")
        else:
            lines.append("  channels:     " + " ".join(f"{r}:{c}" for r, c in s["channels"].items())
                         + "  (resolution:channels)")
        dims = [f"{name}={s[name]}" for name in ("z_dim", "c_dim", "w_dim", "num_ws") if name in s]
        lines.append(f"  dimensions:   {', '.join(dims)}")
        lines.append("  parameters:")
        for name, count in s["parameters"].items():
            lines.append(f"    {name:<16}{count:>14,}")
        lines.append(f"    {'total':<16}{s['total_parameters']:>14,}")
        lines.append("  config:")
        lines += ["    " + line for line in _flatten(s["config"])]
    return "\n".join(lines)
