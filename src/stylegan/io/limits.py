"""The limits every reader of a model file enforces before it allocates what the file claims.

A file of a few bytes can claim terabytes: a length prefix past its own end, a tensor larger than its storage, a
config whose layers multiply to more memory than any machine has, containers nested deeper than Python's stack,
or shared references that multiply a small object graph exponentially. Each reader checks such claims against the
file's real size and the limits below first, and refuses with `FileLimitError`, one line that names the file.

    MAX_DEPTH            containers nested in one pickle
    MAX_OBJECTS          objects a pickle builds, counting every shared reference as a full copy
    MAX_NETWORK_BYTES    parameters and buffers of one network, whatever the file
    MAX_RESOLUTION, MAX_LAYERS, MAX_NUMBER   what a network config may say (resolution, counts of layers and
                         filter taps, and any other number: channels, dimensions)
    build_network_within(config, budget_bytes, what)   build a network from a file's config, which must stay
                         within those limits and may allocate no more than budget_bytes while it is built
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch.overrides import TorchFunctionMode

from stylegan.core.errors import StyleGANError

# The real files are far inside these: a StyleGAN3 snapshot nests fewer than 30 deep and builds fewer than 100,000
# objects; building the largest published networks (StyleGAN3-R at 1024: G 186 MiB, D 443 MiB) allocates about
# 1.15 times their tensors, in a few hundred tensors.
MAX_DEPTH = 100
MAX_OBJECTS = 10_000_000
MAX_NETWORK_BYTES = 16 << 30
MAX_NETWORK_TENSORS = 100_000       # tensors one constructor may create
MAX_RESOLUTION = 1 << 13            # NVIDIA's largest networks are 1024x1024
MAX_LAYERS = 256                    # for each count of layers, filter taps, oversampling and margin pixels
MAX_NUMBER = 1 << 20                # for every other number in a config
_LAYER_COUNTS = ("num_layers", "num_critical", "filter_size", "lrelu_upsampling", "conv_kernel", "margin_size")


class FileLimitError(StyleGANError):
    """A file claims more than it holds or more than a sane limit; refused before anything was allocated for it."""


def network_budget(file_bytes: int) -> int:
    """Bytes a network built from a file of `file_bytes` may take: its tensors all come from the file, plus room
    for the buffers our constructors compute (filters, which no file stores)."""
    return min(2 * file_bytes + (64 << 20), MAX_NETWORK_BYTES)


def _gib(n: int) -> str:
    return f"{n / (1 << 30):.3g} GiB"


_SIZED_FACTORIES = {torch.empty, torch.zeros, torch.ones, torch.randn, torch.rand, torch.full}


def _claimed_numel(args: tuple) -> int | None:
    """The element count a sized factory call (torch.empty(3, 4), torch.zeros((3, 4)), ...) asks for."""
    if not args:
        return None
    size = args[0] if isinstance(args[0], (tuple, list, torch.Size)) else [a for a in args if isinstance(a, int)]
    numel = 1
    for n in size:
        if not isinstance(n, int):
            return None
        numel *= max(n, 0)
    return numel


class _Budget(TorchFunctionMode):
    """Counts the bytes and tensors that torch calls create; a sized factory is checked before it allocates."""

    def __init__(self, budget_bytes: int, what: str):
        super().__init__()
        self.budget, self.what = budget_bytes, what
        self.used = self.count = 0
        self.storages: set[int] = set()

    def _refuse(self, need: int) -> None:
        raise FileLimitError(f"{self.what}: its config describes a network of more than {_gib(need)}, more than "
                             f"the file holds or than {_gib(self.budget)} allowed for it; the config is damaged "
                             "or forged")

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _SIZED_FACTORIES:
            numel = _claimed_numel(args)
            if numel is not None:
                dtype = kwargs.get("dtype") or torch.get_default_dtype()
                need = self.used + numel * dtype.itemsize
                if need > self.budget:
                    self._refuse(need)
        out = func(*args, **kwargs)
        if isinstance(out, torch.Tensor) and out.device.type != "meta":
            storage = out.untyped_storage()
            if storage.data_ptr() not in self.storages and storage.nbytes():
                self.storages.add(storage.data_ptr())
                self.used += storage.nbytes()
                self.count += 1
                if self.used > self.budget:
                    self._refuse(self.used)
                if self.count > MAX_NETWORK_TENSORS:
                    raise FileLimitError(f"{self.what}: its config describes a network of more than "
                                         f"{MAX_NETWORK_TENSORS:,} tensors; the config is damaged or forged")
        return out


def build_within(build: Callable[[], Any], budget_bytes: int, what: str) -> Any:
    """`build()` with every tensor it creates counted; FileLimitError as soon as they would exceed budget_bytes."""
    with _Budget(budget_bytes, what):
        return build()


def check_config_numbers(config: dict, what: str, prefix: str = "") -> None:
    """Refuse a network config (as a dict) whose numbers no real network has: some constructors loop or design
    filters over them before they allocate any tensor that build_within could count."""
    for key, value in config.items():
        if isinstance(value, dict):
            check_config_numbers(value, what, f"{prefix}{key}.")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            limit = MAX_RESOLUTION if key == "img_resolution" else MAX_LAYERS if key in _LAYER_COUNTS else MAX_NUMBER
            if not abs(value) <= limit:         # also catches NaN
                raise FileLimitError(f"{what}: its config has {prefix}{key} = {value}, beyond the {limit:,} that "
                                     "any real network stays within; the config is damaged or forged")


def build_network_within(config, budget_bytes: int, what: str) -> torch.nn.Module:
    """Our network for a config read from a file (GeneratorConfig or DiscriminatorConfig), refused with one line
    when its numbers are beyond the limits or building it would allocate more than budget_bytes."""
    from stylegan.networks.presets import build_from_config
    check_config_numbers(config.to_dict(), what)
    return build_within(lambda: build_from_config(config), budget_bytes, what)
