"""Convert a network file (an NVIDIA pickle, or one of ours) into our .safetensors format; `stylegan convert`.

    convert_network("stylegan3-t-ffhq-1024x1024.pkl", "ffhq.safetensors")            # G_ema only
    convert_network("network-snapshot-000400.pkl", "snapshot.safetensors", what="all")   # G, D, G_ema + extras

With what='all', the snapshot's training extras (ADA's p and pipeline arguments, the dataset arguments) go into the
file's metadata under 'nvidia', so fine-tuning can start from them.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from stylegan.core.errors import UsageError
from stylegan.io.formats import sniff_format
from stylegan.io.nvidia_pickle import build_network, read_nvidia_pickle
from stylegan.io.fetch import resolve_source

WHAT_CHOICES = ("g_ema", "all")


@dataclass
class ConvertResult:
    source: Path                        # the local file read (the cached download for a URL)
    dest: Path                          # the file written
    modules: dict[str, int]             # key -> parameter count, for each network written


def convert_network(src: str | os.PathLike, dest: str | os.PathLike, what: str = "g_ema", *,
                    overwrite: bool = False, progress: bool = False) -> ConvertResult:
    """Read `src` (path or URL) and write `dest` (.safetensors): G_ema alone, or every network with what='all'."""
    from stylegan.io import load_networks, save_networks

    if what not in WHAT_CHOICES:
        raise UsageError(f"--what: {what!r} is not allowed; choose one of {', '.join(WHAT_CHOICES)}")
    dest = Path(dest).expanduser()
    if dest.suffix != ".safetensors":
        raise UsageError(f"DEST: {dest.name} must end in .safetensors (our network format)")
    if dest.exists() and not overwrite:
        raise UsageError(f"DEST: {dest} exists; pass --overwrite to replace it")
    source = resolve_source(src, progress=progress)

    extra: dict = {"converted_from": source.name}
    if sniff_format(source) == "pickle":
        data = read_nvidia_pickle(source, progress=progress)
        keys = ["G_ema"] if what == "g_ema" else [k for k in ("G", "D", "G_ema") if k in data.networks]
        missing = [k for k in keys if k not in data.networks]
        if missing:
            raise UsageError(f"{source.name} has no {missing[0]} (it holds {', '.join(data.networks)}); "
                             "use --what all")
        modules = {k: build_network(data.networks[k], "cpu", what=f"{source.name}: {k}") for k in keys}
        extra["source_format"] = "nvidia-" + data.format
        if what == "all":
            extra["nvidia"] = dataclasses.asdict(data.extras)
    else:
        # One of ours (or an unreadable file, which load_networks explains): re-save all of it, or just G_ema.
        everything = load_networks(source)
        modules = everything if what == "all" else {"G_ema": _generator(everything, source)}
    save_networks(modules, dest, extra_metadata=extra)
    return ConvertResult(source, dest, {k: sum(p.numel() for p in m.parameters()) for k, m in modules.items()})


def _generator(modules: dict[str, torch.nn.Module], source: Path) -> torch.nn.Module:
    for key in ("G_ema", "G"):
        if key in modules:
            return modules[key]
    raise UsageError(f"{source.name} holds no generator ({', '.join(modules)}); use --what all")
