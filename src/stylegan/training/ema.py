"""Moving averages: G_ema (the generator people use) and the running statistics G tracks in its buffers."""
from __future__ import annotations

import re

import torch

from stylegan.core import dist

# Buffers that G updates itself when called with update_emas=True: the mapping's w_avg and StyleGAN3's
# magnitude_ema. The same naming rule NVIDIA uses to exempt them from its cross-GPU consistency check.
_TRACKED_BUFFER = re.compile(r"(^|\.)[^.]+_(avg|ema)$")


def ema_beta(nimg: int, batch: int, ema_kimg: float, ema_rampup: float | None) -> float:
    """Per-step decay for a half-life of ema_kimg thousand images, shorter at the start with the rampup
    (StyleGAN2-ADA, Appendix: the half-life is at most rampup * nimg)."""
    ema_nimg = ema_kimg * 1000
    if ema_rampup is not None:
        ema_nimg = min(ema_nimg, nimg * ema_rampup)
    return 0.5 ** (batch / max(ema_nimg, 1e-8))


@torch.no_grad()
def update_ema(G_ema: torch.nn.Module, G: torch.nn.Module, beta: float) -> None:
    """G_ema <- lerp(G, G_ema, beta) for parameters; buffers are copied (w_avg, magnitude EMAs, noise)."""
    for p_ema, p in zip(G_ema.parameters(), G.parameters()):
        p_ema.copy_(p.lerp(p_ema, beta))
    for b_ema, b in zip(G_ema.buffers(), G.buffers()):
        b_ema.copy_(b)


class TrackedBuffers:
    """Makes G's self-updating buffers independent of how a step's batch is split into chunks and ranks.

    Every chunk starts from the buffer values at the start of the phase; at the end the buffers are the average of
    what each chunk produced, across ranks too. For an update x <- lerp(mean(batch), x, beta) this equals one
    update with the mean of the whole batch. With a single chunk on a single process it is a no-op.
    """

    def __init__(self, module: torch.nn.Module, chunks: int):
        self.buffers = [b for name, b in module.named_buffers() if _TRACKED_BUFFER.search(name)
                        and b.is_floating_point()]
        self.active = bool(self.buffers) and (chunks > 1 or dist.get_world_size() > 1)
        self._start: list[torch.Tensor] = []
        self._sum: list[torch.Tensor] = []
        self._chunks = 0

    def begin(self) -> None:
        if self.active:
            self._start = [b.detach().clone() for b in self.buffers]
            self._sum = [torch.zeros_like(b) for b in self.buffers]
            self._chunks = 0

    @torch.no_grad()
    def before_chunk(self) -> None:
        if self.active:
            for b, s in zip(self.buffers, self._start):
                b.copy_(s)

    @torch.no_grad()
    def after_chunk(self) -> None:
        if self.active:
            for acc, b in zip(self._sum, self.buffers):
                acc.add_(b)
            self._chunks += 1

    @torch.no_grad()
    def end(self) -> None:
        if self.active and self._chunks > 0:
            flat = torch.cat([s.flatten() for s in self._sum]) / self._chunks
            dist.all_reduce_mean_(flat)
            for b, v in zip(self.buffers, flat.split([b.numel() for b in self.buffers])):
                b.copy_(v.reshape(b.shape))
