"""Opening the generator a command works on: every --network goes through stylegan.io.load_network, so .safetensors
files, NVIDIA pickles and URLs (downloaded once into the cache) all work the same way here."""
from __future__ import annotations

import torch

from stylegan.core.device import resolve_device
from stylegan.core.errors import StyleGANError


def load_generator(network, device: str | torch.device = "auto", flag: str = "--network") -> torch.nn.Module:
    """The generator (G_ema when the file has one) from a path, URL, bundled name or an already built module, in eval
    mode, frozen, on `device`. flag: the option that named it, for error messages."""
    device = resolve_device(device)
    if isinstance(network, torch.nn.Module):
        G = network.to(device)
    else:
        from stylegan.io import load_network
        try:
            G = load_network(str(network), what="g_ema", device=device)
        except StyleGANError as exc:        # the same class (FileLimitError, UnsafePickleError, ...), for callers
            raise type(exc)(f"{flag}: {exc}") from None
    return G.eval().requires_grad_(False)
