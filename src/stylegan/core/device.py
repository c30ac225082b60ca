"""Device choice: --device auto|cpu|cuda|mps. Auto picks CUDA, then MPS, then CPU."""
from __future__ import annotations

import torch

from stylegan.core.errors import UsageError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """Turn a --device value into a torch.device, with a clear error when that device is not present."""
    if isinstance(name, torch.device):
        return name
    name = (name or "auto").strip().lower()
    kind = name.split(":")[0]
    if kind not in DEVICE_CHOICES:
        raise UsageError(f"--device: unknown device '{name}'; choose one of {', '.join(DEVICE_CHOICES)} "
                         "(cuda:N also works)")
    if kind == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if kind == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA GPU is visible to PyTorch here; use --device cpu or auto")
    if kind == "mps" and not _mps_available():
        raise UsageError("--device mps: Apple's MPS backend is not available here; use --device cpu or auto")
    return torch.device(name)
