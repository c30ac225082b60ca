"""Transfer learning: start a new run from the weights in a network file (`--resume NETWORK`).

The file is read with stylegan.io (our .safetensors networks, NVIDIA's network-snapshot-*.pkl and TF pickles).
The run is new: kimg starts at 0 (or --resume-kimg), the optimizers are fresh, and, as in NVIDIA's train.py, the
EMA rampup and the blur are off and ADA reacts 5x faster. A training snapshot (NVIDIA's .pkl, or our
network-snapshot-*.safetensors) also carries ADA's p; with --aug ada and no --p the new run starts from it
(NVIDIA's own train.py starts at 0 and relearns it).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable

import torch

from stylegan.core.errors import StyleGANError, UsageError
from stylegan.training.config import TrainingConfig

# Config fields that decide the shapes and meaning of the weights, and the flag that sets each.
_G_FIELDS = {
    "family": "--cfg", "cfg": "--cfg", "img_resolution": "--data (resolution)", "img_channels": "--data (channels)",
    "c_dim": "--cond", "z_dim": "z_dim", "w_dim": "w_dim", "mapping.num_layers": "--map-depth",
    "synthesis.channel_base": "--cbase", "synthesis.channel_max": "--cmax", "synthesis.conv_kernel": "--cfg",
    "synthesis.use_radial_filters": "--cfg", "synthesis.architecture": "architecture",
}
_D_FIELDS = {
    "img_resolution": "--data (resolution)", "img_channels": "--data (channels)", "c_dim": "--cond",
    "channel_base": "--cbase", "channel_max": "--cmax", "architecture": "architecture",
}


def architecture_flags(config) -> dict[str, Any]:
    """The `stylegan train` flags that rebuild a generator config's architecture: cfg, cbase, cmax, map_depth."""
    from stylegan.networks.presets import PRESETS
    mult = PRESETS[config.cfg].g_channel_mult                # stylegan3-r doubles --cbase and --cmax in G
    return dict(cfg=config.cfg, cbase=config.synthesis.channel_base // mult,
                cmax=config.synthesis.channel_max // mult, map_depth=config.mapping.num_layers)


def _flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _differences(ours: Any, theirs: Any, fields: dict[str, str]) -> list[str]:
    a, b = _flatten(ours.to_dict()), _flatten(theirs.to_dict())
    out = []
    for key, flag in fields.items():
        if key in a and key in b and a[key] != b[key] and not (key == "cfg" and b[key] is None):
            out.append(f"{key} {b[key]} in the file vs {a[key]} for this run ({flag})")
    return out


# The networks that prepare_config's check read from a --resume file, kept until the training loop copies them into
# its own, so that the file (a large pickle, perhaps) is read once: {(path, size, mtime): networks}, one entry.
_read_once: dict[tuple[str, int, int], dict[str, Any]] = {}


def _file_key(path: str) -> tuple[str, int, int]:
    stat = Path(path).stat()
    return str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns


def _networks(path: str, *, keep: bool) -> dict[str, Any]:
    """The file's networks, read now or taken from the copy an earlier call kept (keep=True keeps this one)."""
    key = _file_key(path)
    nets = _read_once.pop(key, None) or _read_networks(path)
    _read_once.clear()
    if keep:
        _read_once[key] = nets
    return nets


def _read_networks(path: str) -> dict[str, Any]:
    """{'g', 'g_ema', 'd', 'augment_p'} from the file; a file with one generator serves as both G and G_ema, D may
    be absent, augment_p is ADA's p in a training snapshot, NVIDIA's or ours (None elsewhere)."""
    from stylegan.io import load_networks, read_network_file
    from stylegan.io.nvidia_pickle import is_nvidia_pickle, load_nvidia_snapshot
    from stylegan.io.safetensors_format import is_safetensors_file
    augment_p = None
    try:
        if is_nvidia_pickle(path):
            snap = load_nvidia_snapshot(path)
            modules = {k: m for k, m in (("G", snap.G), ("D", snap.D), ("G_ema", snap.G_ema)) if m is not None}
            augment_p = snap.extras.augment_p
        else:
            modules = load_networks(path)
            if is_safetensors_file(Path(path)):      # our network snapshots record ADA's p in their metadata
                augment_p = read_network_file(path)[1]["extra"].get("augment_p")
    except StyleGANError as exc:
        raise UsageError(f"--resume {path}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - a damaged file raises whatever its reader raises
        raise UsageError(f"--resume {path}: cannot read this network file ({exc})") from None
    g, g_ema = modules.get("G"), modules.get("G_ema")
    if g is None and g_ema is None:
        raise UsageError(f"--resume {path}: the file holds no generator (it has {', '.join(modules) or 'nothing'})")
    return {"g": g or g_ema, "g_ema": g_ema or g, "d": modules.get("D"), "augment_p": augment_p}


def check_pretrained(config: TrainingConfig, path: str) -> float | None:
    """Raise a UsageError that names every difference between the file's networks and this run's; return the
    file's ADA p (a training snapshot's augment_pipe.p), or None when it has none. The networks read are kept
    for load_pretrained."""
    from stylegan.training.phases import network_configs
    g_config, d_config = network_configs(config)
    nets = _networks(path, keep=True)
    diffs = _differences(g_config, nets["g_ema"].config, _G_FIELDS)
    if nets["d"] is not None:
        diffs += [f"D {d}" for d in _differences(d_config, nets["d"].config, _D_FIELDS)]
    if diffs:
        raise UsageError(f"--resume {path}: the weights do not fit this run: " + "; ".join(diffs))
    return nets["augment_p"]


_SNAPSHOT_KIMG = re.compile(r"network-snapshot-(\d+)\.\w+$")     # a download's cached name has a prefix


def adopt_file_settings(config: TrainingConfig, path: str, augment_p: float | None, *, p_given: bool,
                        kimg_given: bool, say: Callable[[str], None]) -> None:
    """What a new run takes from its --resume network file besides the weights, each said aloud.

    ADA's p: with --aug ada and no --p, the run starts at the file's p, so that D is not suddenly shown
    unaugmented images it learned to see augmented. The kimg: the run counts from 0 (or --resume-kimg), as
    NVIDIA's train.py does for transfer learning; a snapshot's kimg in the file name is only pointed out."""
    name = Path(path).name
    if config.augment.mode == "ada" and not p_given and augment_p is not None:
        config.augment.p = float(augment_p)
        config.augment.validate()
        say(f"--resume {name}: ADA starts at the file's augment p = {config.augment.p:.4f} "
            "(give --p to start elsewhere)")
    match = _SNAPSHOT_KIMG.search(name)
    if match and not kimg_given and int(match.group(1)) > 0:
        kimg = int(match.group(1))
        say(f"--resume {name}: a new run, counting from kimg {config.run.resume_kimg:g}; to count on from the "
            f"snapshot's kimg, give --resume-kimg {kimg}")


def load_pretrained(trainer, path: str) -> None:
    """Copy G, G_ema and (when the file has it) D from the network file into the trainer's networks (those that
    check_pretrained read, when the file has not changed since)."""
    nets = _networks(path, keep=False)
    pairs = [(trainer.G, nets["g"]), (trainer.G_ema, nets["g_ema"])]
    if nets["d"] is not None:
        pairs.append((trainer.D, nets["d"]))
    else:
        print(f"note: {path} holds no discriminator; D starts from random weights")
    with torch.no_grad():
        for ours, theirs in pairs:
            src = theirs.state_dict()
            for name, tensor in ours.state_dict().items():
                if name not in src or src[name].shape != tensor.shape:
                    raise UsageError(f"--resume {path}: {name} is missing or has another shape in the file")
                tensor.copy_(src[name])
