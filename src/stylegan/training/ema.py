"""Moving averages: G_ema (the generator people use) and the running statistics G tracks in its buffers."""
from __future__ import annotations

import re

import torch

from stylegan.core import dist

# Buffers that G updates itself when called with update_emas=True: the mapping's w_avg and StyleGAN3's
# magnitude_ema. The same naming rule NVIDIA uses to exempt them from its cross-GPU consistency check.
_TRACKED_BUFFER = re.compile(r"(^|\.)[^.]+_(avg|ema)$")


def average_(total: torch.Tensor, count: int) -> torch.Tensor:
    """In place, the mean of `count` values per rank whose sum on this rank is `total`: summed across ranks, then
    divided once by count * world size. One process with k chunks and k processes with one chunk each thus do the
    same float operations as long as the in-process sum adds the chunks as the all-reduce adds the ranks, which for
    k = 2 is the single, commutative add a + b. A no-op for one value in a world of one."""
    dist.all_reduce_sum_(total)
    count *= dist.get_world_size()
    return total.div_(count) if count > 1 else total


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
    """Makes G's self-updating buffers follow the run's accumulation mode, and keeps them equal on every rank.

    mean (the default): every chunk starts from the buffer values at the start of the phase; at the end the
    buffers are the average of what each chunk produced, across ranks too. For an update
    x <- lerp(mean(batch), x, beta) this equals one update with the mean of the whole batch, however the step
    is split. With a single chunk on a single process it is a no-op.

    per_chunk (--accumulate nvidia): the buffers advance once per chunk, each chunk continuing from the last, as
    in NVIDIA's loop; only the ranks' results are averaged at the end (NVIDIA leaves them to drift apart, which
    a training state saved by rank 0 could not resume exactly).
    """

    def __init__(self, module: torch.nn.Module, chunks: int, per_chunk: bool = False):
        self.buffers = [b for name, b in module.named_buffers() if _TRACKED_BUFFER.search(name)
                        and b.is_floating_point()]
        self.per_chunk = per_chunk
        self.active = bool(self.buffers) and (dist.get_world_size() > 1 or (chunks > 1 and not per_chunk))
        self._restart = self.active and not per_chunk       # every chunk starts again from the phase's start
        self._start: list[torch.Tensor] = []
        self._sum: list[torch.Tensor] = []
        self._chunks = 0

    def begin(self) -> None:
        if self._restart:
            self._start = [b.detach().clone() for b in self.buffers]
            self._sum = [torch.zeros_like(b) for b in self.buffers]
            self._chunks = 0

    @torch.no_grad()
    def before_chunk(self) -> None:
        if self._restart:
            for b, s in zip(self.buffers, self._start):
                b.copy_(s)

    @torch.no_grad()
    def after_chunk(self) -> None:
        if self._restart:
            for acc, b in zip(self._sum, self.buffers):
                acc.add_(b)
            self._chunks += 1

    @torch.no_grad()
    def end(self) -> None:
        if not self.active:
            return
        if self._restart:
            if self._chunks == 0:
                return
            flat = average_(torch.cat([s.flatten() for s in self._sum]), self._chunks)
        else:
            flat = average_(torch.cat([b.flatten() for b in self.buffers]), 1)
        for b, v in zip(self.buffers, flat.split([b.numel() for b in self.buffers])):
            b.copy_(v.reshape(b.shape))
