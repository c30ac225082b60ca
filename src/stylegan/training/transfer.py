"""Transfer learning: start a new run from the weights in a network file (`--resume NETWORK`).

The file is read with stylegan.io.load_network, so whatever it reads (our .safetensors networks, NVIDIA
pickles once supported) works here. The run is new: kimg starts at 0 (or --resume-kimg), the optimizers are
fresh, and, as in NVIDIA's train.py, the EMA rampup and the blur are off and ADA reacts 5x faster.
"""
from __future__ import annotations

from typing import Any

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


def _networks(path: str) -> dict[str, torch.nn.Module | None]:
    """{'g', 'g_ema', 'd'} from the file; a file with one generator serves as both G and G_ema, D may be absent."""
    from stylegan.io import load_networks
    try:
        modules = load_networks(path)
    except StyleGANError as exc:
        raise UsageError(f"--resume {path}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - a damaged file raises whatever its reader raises
        raise UsageError(f"--resume {path}: cannot read this network file ({exc})") from None
    g, g_ema = modules.get("G"), modules.get("G_ema")
    if g is None and g_ema is None:
        raise UsageError(f"--resume {path}: the file holds no generator (it has {', '.join(modules) or 'nothing'})")
    return {"g": g or g_ema, "g_ema": g_ema or g, "d": modules.get("D")}


def check_pretrained(config: TrainingConfig, path: str) -> None:
    """Raise a UsageError that names every difference between the file's networks and this run's."""
    from stylegan.training.trainer import network_configs
    g_config, d_config = network_configs(config)
    nets = _networks(path)
    diffs = _differences(g_config, nets["g_ema"].config, _G_FIELDS)
    if nets["d"] is not None:
        diffs += [f"D {d}" for d in _differences(d_config, nets["d"].config, _D_FIELDS)]
    if diffs:
        raise UsageError(f"--resume {path}: the weights do not fit this run: " + "; ".join(diffs))


def load_pretrained(trainer, path: str) -> None:
    """Copy G, G_ema and (when the file has it) D from the network file into the trainer's networks."""
    nets = _networks(path)
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
