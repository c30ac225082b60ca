"""Our network file: one `.safetensors` file, tensors plus the resolved configs as JSON in its metadata.

Layout (format version 1):
  tensors:   '<key>.<state_dict name>' for every module saved, e.g. 'G_ema.synthesis.b64.conv0.weight'
  metadata:  'format'          = 'stylegan-network'
             'format_version'  = '1'
             'modules'         = JSON list of keys, e.g. ["G", "D", "G_ema"]
             'config.<key>'    = JSON of that module's config (GeneratorConfig / DiscriminatorConfig .to_dict())
             'extra'           = JSON object of caller metadata (training snapshots: kimg, ...); '{}' if none
             'stylegan_version'= the package version that wrote it
Loading rebuilds each module from its config and fills it by name, strictly: no pickle, no code from the file.
"""
from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any

import torch

from stylegan.core.errors import StyleGANError
from stylegan.core.files import atomic_path
from stylegan.io.limits import FileLimitError, build_network_within, network_budget
from stylegan.networks.config import DiscriminatorConfig, GeneratorConfig, config_from_dict

FORMAT_NAME = "stylegan-network"
FORMAT_VERSION = 1
# Keys a file may hold, and the names load_network's `what` uses for them.
MODULE_KEYS = {"g": "G", "d": "D", "g_ema": "G_ema"}


def _config_of(module: torch.nn.Module, key: str) -> GeneratorConfig | DiscriminatorConfig:
    config = getattr(module, "config", None)
    if not isinstance(config, (GeneratorConfig, DiscriminatorConfig)):
        raise StyleGANError(f"cannot save {key!r}: a {type(module).__name__} is not a stylegan network with a "
                            ".config; build it with stylegan.build_generator / build_discriminator")
    return config


def save_networks(modules: dict[str, torch.nn.Module], path: str | os.PathLike,
                  extra_metadata: dict[str, Any] | None = None) -> Path:
    """Write several networks (e.g. {'G': G, 'D': D, 'G_ema': G_ema}) to one safetensors file, atomically."""
    from safetensors.torch import save_file

    if not modules:
        raise StyleGANError("save_networks: nothing to save; pass a dict such as {'G': G, 'D': D, 'G_ema': G_ema}")
    path = Path(path)
    tensors: dict[str, torch.Tensor] = {}
    metadata = {"format": FORMAT_NAME, "format_version": str(FORMAT_VERSION), "modules": json.dumps(list(modules))}
    seen: set[int] = set()
    for key, module in modules.items():
        if not isinstance(key, str) or not key or "." in key:
            raise StyleGANError(f"save_networks: module key {key!r} must be a non-empty name without dots")
        metadata[f"config.{key}"] = json.dumps(_config_of(module, key).to_dict())
        for name, tensor in module.state_dict().items():
            t = tensor.detach().to("cpu").contiguous()
            # safetensors refuses tensors that share memory; copy the rare ones that do.
            if t.data_ptr() in seen or t.untyped_storage().nbytes() != t.numel() * t.element_size():
                t = t.clone()
            seen.add(t.data_ptr())
            tensors[f"{key}.{name}"] = t
    try:
        metadata["extra"] = json.dumps(extra_metadata or {})
    except TypeError as exc:
        raise StyleGANError(f"save_networks: extra_metadata must be JSON-serialisable ({exc})") from None
    from stylegan import __version__
    metadata["stylegan_version"] = __version__
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return path


def save_network(module: torch.nn.Module, path: str | os.PathLike,
                 extra_metadata: dict[str, Any] | None = None) -> Path:
    """Write one generator (key 'G') or discriminator (key 'D') to a safetensors file, atomically."""
    key = "D" if isinstance(_config_of(module, "module"), DiscriminatorConfig) else "G"
    return save_networks({key: module}, path, extra_metadata=extra_metadata)


def is_safetensors_file(path: str | os.PathLike) -> bool:
    """True if the file starts like a safetensors file: an 8-byte header length, then a JSON object."""
    try:
        with open(path, "rb") as f:
            head = f.read(9)
            size = os.fstat(f.fileno()).st_size
    except OSError:
        return False
    if len(head) < 9:
        return False
    (n,) = struct.unpack("<Q", head[:8])
    return head[8:9] == b"{" and 8 + n <= size


def _read_header(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    if not is_safetensors_file(path):
        raise StyleGANError(f"{path}: not a safetensors file; expected a network saved by stylegan "
                            "(save_network or a training snapshot)")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
    except Exception as exc:  # safetensors raises its own error types for corrupt headers
        raise StyleGANError(f"{path}: the safetensors header cannot be read ({exc})") from None
    if metadata.get("format") != FORMAT_NAME:
        raise StyleGANError(f"{path}: a safetensors file, but not a stylegan network file (no '{FORMAT_NAME}' "
                            "metadata); save networks with stylegan.save_network")
    try:
        version = int(metadata.get("format_version", ""))
    except ValueError:
        version = -1
    if version < 1 or version > FORMAT_VERSION:
        raise StyleGANError(f"{path}: network file format version {metadata.get('format_version')!r} is not "
                            f"supported (this stylegan reads up to {FORMAT_VERSION}); upgrade stylegan")
    return metadata


def read_network_file(path: str | os.PathLike) -> tuple[dict[str, GeneratorConfig | DiscriminatorConfig], dict]:
    """The configs in a network file, by module key, and its metadata, without loading any tensors.

    metadata: {'format', 'format_version', 'modules', 'extra', 'stylegan_version', 'path'}."""
    path = _existing(path)
    raw = _read_header(path)
    try:
        keys = json.loads(raw.get("modules", "[]"))
        configs = {key: config_from_dict(json.loads(raw[f"config.{key}"])) for key in keys}
        extra = json.loads(raw.get("extra", "{}"))
    except StyleGANError as exc:
        raise StyleGANError(f"{path}: the stored config is not valid: {exc}") from None
    except RecursionError:
        raise FileLimitError(f"{path}: the network metadata nests deeper than Python can read (damaged or "
                             "forged)") from None
    except (KeyError, ValueError, TypeError, AttributeError) as exc:   # JSONDecodeError is a ValueError
        raise StyleGANError(f"{path}: the network metadata is damaged ({type(exc).__name__}: {exc})") from None
    meta = {"format": raw["format"], "format_version": int(raw["format_version"]), "modules": keys,
            "extra": extra, "stylegan_version": raw.get("stylegan_version"), "path": str(path)}
    return configs, meta


def _existing(path: str | os.PathLike) -> Path:
    path = Path(path).expanduser()
    if not path.is_file():
        raise StyleGANError(f"{path}: no such file")
    return path


def _answers(keys: list[str]) -> dict[str, str]:
    """what -> key for a file holding `keys`; a file with one generator answers to both 'g' and 'g_ema'."""
    generators = [k for k in keys if k in ("G", "G_ema")]
    out = {}
    for what, key in MODULE_KEYS.items():
        if key in keys:
            out[what] = key
        elif what in ("g", "g_ema") and len(generators) == 1:
            out[what] = generators[0]
    return out


def _resolve_key(what: str, keys: list[str], path: Path) -> str:
    want = (what or "").lower()
    if want not in MODULE_KEYS:
        raise StyleGANError(f"what={what!r}: choose one of {', '.join(MODULE_KEYS)}")
    answers = _answers(keys)
    if want not in answers:
        raise StyleGANError(f"{path}: holds {', '.join(keys) or 'nothing'}, not {MODULE_KEYS[want]}; "
                            f"use what={' or '.join(repr(w) for w in answers)}")
    return answers[want]


def _load_modules(path: Path, keys: list[str], configs: dict, device) -> dict[str, torch.nn.Module]:
    from safetensors import safe_open

    # Every tensor of a module comes from the file, so a config that describes more than the file holds is refused
    # as soon as building it would exceed that, long before it exhausts the machine.
    budget = network_budget(path.stat().st_size)
    modules = {key: build_network_within(configs[key], budget, f"{path}: {key}") for key in keys}
    with safe_open(str(path), framework="pt", device="cpu") as f:
        stored = set(f.keys())
        for key, module in modules.items():
            expected = module.state_dict()
            prefix = f"{key}."
            names = {n[len(prefix):] for n in stored if n.startswith(prefix)}
            missing = sorted(set(expected) - names)
            unexpected = sorted(names - set(expected))
            if missing or unexpected:
                parts = []
                if missing:
                    parts.append(f"missing {len(missing)} tensor(s) such as {missing[0]!r}")
                if unexpected:
                    parts.append(f"{len(unexpected)} unexpected tensor(s) such as {unexpected[0]!r}")
                raise StyleGANError(f"{path}: {key}'s tensors do not match its config: {'; '.join(parts)}")
            state = {}
            for name, ref in expected.items():
                t = f.get_tensor(prefix + name)
                if tuple(t.shape) != tuple(ref.shape):
                    raise StyleGANError(f"{path}: {key}.{name} has shape {list(t.shape)} but the config needs "
                                        f"{list(ref.shape)}; the file's tensors do not match its config")
                state[name] = t
            module.load_state_dict(state, strict=True)
    # Like NVIDIA's snapshots: ready for inference. Call .train().requires_grad_(True) to train.
    return {key: m.eval().requires_grad_(False).to(device) for key, m in modules.items()}


def load_networks_safetensors(path: str | os.PathLike,
                              device: str | torch.device = "cpu") -> dict[str, torch.nn.Module]:
    """Every network in the file, by key ('G', 'D', 'G_ema')."""
    path = _existing(path)
    configs, meta = read_network_file(path)
    return _load_modules(path, meta["modules"], configs, device)


def load_network_safetensors(path: str | os.PathLike, what: str = "g_ema",
                             device: str | torch.device = "cpu") -> torch.nn.Module:
    """One network from the file: what='g_ema' (default), 'g' or 'd'."""
    path = _existing(path)
    configs, meta = read_network_file(path)
    key = _resolve_key(what, meta["modules"], path)
    return _load_modules(path, [key], configs, device)[key]
