"""The training state: everything needed to continue a run bit for bit, in one safetensors file (no pickle).

Tensors (named `<group>.<name>`):
    G.* D.* G_ema.*             parameters and persistent buffers of the three networks
    opt_G.<i>.<key>, opt_D.*    Adam state per parameter index (step, exp_avg, exp_avg_sq)
    augment_pipe.*              the augmentation pipe's buffers, p among them (the ADA controller is in counters)
    loss.pl_mean                running path length mean
    rng.torch_cpu, rng.cuda.<i> torch generator states
Metadata (JSON strings):
    stylegan_training_state     format version
    config                      the resolved TrainingConfig
    counters                    nimg, tick, batch_idx, data_pos (position in the global data order), ...
    optimizers                  param_groups of both optimizers (lr, betas, eps, ...)
    rng                         numpy and python global generator states

Everything the loop draws at random is derived from (seed, nimg, phase, chunk), so the RNG states are kept for
completeness rather than necessity. The file is written atomically: a SIGKILL at any moment leaves either the
previous complete state or the new one, never half a file under the final name.
"""
from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import safetensors
import safetensors.torch
import torch

from stylegan.core.errors import StyleGANError
from stylegan.core.files import atomic_write

FORMAT_KEY = "stylegan_training_state"
FORMAT_VERSION = "1"


@dataclass
class TrainingState:
    tensors: dict[str, torch.Tensor]
    config: dict[str, Any]
    counters: dict[str, Any]
    optimizers: dict[str, Any] = field(default_factory=dict)
    rng: dict[str, Any] = field(default_factory=dict)

    def group(self, prefix: str) -> dict[str, torch.Tensor]:
        """The tensors named `<prefix>.*`, with the prefix removed."""
        p = prefix + "."
        return {k[len(p):]: v for k, v in self.tensors.items() if k.startswith(p)}


def module_tensors(prefix: str, module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v for k, v in module.state_dict().items()}


def optimizer_tensors(prefix: str, opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list[dict]]:
    """Split an optimizer's state_dict into tensors (per parameter index) and JSON-able param_groups."""
    sd = opt.state_dict()
    tensors = {}
    for idx, entry in sd["state"].items():
        for key, value in entry.items():
            tensors[f"{prefix}.{idx}.{key}"] = value if torch.is_tensor(value) else torch.tensor(value)
    return tensors, sd["param_groups"]


def load_optimizer(opt: torch.optim.Optimizer, state: TrainingState, prefix: str) -> None:
    entries: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in state.group(prefix).items():
        idx, key = name.split(".", 1)
        entries.setdefault(int(idx), {})[key] = value
    opt.load_state_dict({"state": entries, "param_groups": state.optimizers[prefix]})


def rng_tensors() -> dict[str, torch.Tensor]:
    tensors = {"rng.torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    return tensors


def rng_meta() -> dict[str, Any]:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, pstate, gauss = random.getstate()
    return {"numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)],
            "python": [version, list(pstate), gauss]}


def restore_rng(state: TrainingState) -> None:
    torch.set_rng_state(state.tensors["rng.torch_cpu"])
    cuda = [state.tensors[k] for k in sorted(state.tensors) if k.startswith("rng.cuda.")]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    if "numpy" in state.rng:
        kind, keys, pos, has_gauss, cached = state.rng["numpy"]
        np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    if "python" in state.rng:
        version, pstate, gauss = state.rng["python"]
        random.setstate((version, tuple(pstate), gauss))


def save_training_state(path: str | os.PathLike, tensors: dict[str, torch.Tensor], *, config: dict[str, Any],
                        counters: dict[str, Any], optimizers: dict[str, Any]) -> Path:
    """Write a training state atomically (temporary file, fsync, rename)."""
    tensors = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in tensors.items()}
    tensors.update(rng_tensors())
    metadata = {
        FORMAT_KEY: FORMAT_VERSION,
        "config": json.dumps(config),
        "counters": json.dumps(counters),
        "optimizers": json.dumps(optimizers),
        "rng": json.dumps(rng_meta()),
    }
    data = safetensors.torch.save(tensors, metadata=metadata)
    path = Path(path)
    with atomic_write(path, "wb") as f:
        f.write(data)
    return path


def is_training_state(path: str | os.PathLike) -> bool:
    """True when `path` is a complete training state written by save_training_state."""
    try:
        with safetensors.safe_open(str(path), framework="pt") as f:
            return (f.metadata() or {}).get(FORMAT_KEY) is not None
    except Exception:  # noqa: BLE001 - any unreadable file is simply not a training state
        return False


def load_training_state(path: str | os.PathLike) -> TrainingState:
    """Read a training state; a missing, truncated or foreign file is a StyleGANError that names it."""
    path = Path(path)
    if not path.is_file():
        raise StyleGANError(f"--resume {path}: no such file")
    try:
        with safetensors.safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if FORMAT_KEY not in meta:
                raise StyleGANError(f"--resume {path}: this is not a training state (no '{FORMAT_KEY}' entry)")
            if meta[FORMAT_KEY] != FORMAT_VERSION:
                raise StyleGANError(f"--resume {path}: training state format {meta[FORMAT_KEY]} is not supported "
                                    f"by this version (it reads format {FORMAT_VERSION})")
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        state = TrainingState(tensors=tensors, config=json.loads(meta["config"]),
                              counters=json.loads(meta["counters"]), optimizers=json.loads(meta["optimizers"]),
                              rng=json.loads(meta.get("rng", "{}")))
        _check_networks_fit(state, path)
        return state
    except StyleGANError:
        raise
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types for damaged files
        raise StyleGANError(f"--resume {path}: the file is damaged or incomplete and cannot be read ({exc}); "
                            "resume from an earlier training-state file") from None


def _check_networks_fit(state: TrainingState, path: Path) -> None:
    """The networks a state's config describes may be no larger than the tensors the state holds for them: the
    trainer builds them before it compares a single tensor, so a forged config would otherwise be allocated first
    (the limits network files get, io/limits.py)."""
    from stylegan.io.limits import build_network_within, network_budget
    from stylegan.training.config import TrainingConfig
    from stylegan.training.phases import network_configs

    with torch.random.fork_rng(devices=[]):     # the trial build draws random weights; the run's stream stays
        for key, config in zip(("G", "D"), network_configs(TrainingConfig.from_dict(state.config))):
            held = sum(t.numel() * t.element_size() for t in state.group(key).values())
            build_network_within(config, network_budget(held), f"--resume {path}: {key}")
