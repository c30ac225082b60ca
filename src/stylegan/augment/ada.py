"""Adaptive discriminator augmentation: the controller that sets the augmentation probability p.

Karras et al. 2020, Sec. 3: the overfitting heuristic r_t = E[sign(D(x_real))] is 0 when the discriminator
cannot tell training images from generated ones and approaches 1 as it memorises the training set. Every
`interval` minibatches, r_t is measured over those minibatches and p moves one step toward the target:

    p <- max(p + sign(r_t - target) * batch_size * interval / (speed_kimg * 1000), 0)

so p can travel from 0 to 1 in `speed_kimg` thousand images (500 in the paper; NVIDIA uses 100 when
fine-tuning a pretrained network). As in NVIDIA's loop, p stops at 0 but not at 1: a discriminator that still
overfits with every augmentation always on keeps pushing p up. The pipeline treats p >= 1 as "always" for the
transforms whose multiplier is 1; p beyond 1 still raises the rate of those with a smaller multiplier, and once
r_t falls p has to come back down through the excess before the augmentations thin out.
"""
from __future__ import annotations

import math
from typing import Any

import torch

from stylegan.augment.pipeline import AugmentPipe
from stylegan.core import dist


class AdaController:
    """Tracks r_t and adjusts p. Usage in a training loop (see docs/augment.md):

        ada = AdaController(pipe, batch_size=64)      # batch_size: the global batch, all ranks together
        ...each D step:   ada.accumulate(real_logits)  # D's raw outputs for the augmented real images
        ...each minibatch, after the optimiser steps:  ada.step()
    """

    def __init__(
        self,
        pipe: AugmentPipe | None = None,   # the pipeline whose buffer p follows this controller (None: just track p)
        *,
        batch_size: int,                   # images per minibatch over all ranks
        target: float = 0.6,               # the r_t that p steers toward
        interval: int = 4,                 # minibatches between adjustments
        speed_kimg: float = 500.0,         # thousands of images for p to move by 1
        p: float = 0.0,                    # starting p
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if interval < 1:
            raise ValueError(f"interval must be >= 1, got {interval}")
        if not speed_kimg > 0:
            raise ValueError(f"speed_kimg must be > 0, got {speed_kimg}")
        if not 0 <= target <= 1:
            raise ValueError(f"target must be in [0, 1], got {target}")
        self.pipe = pipe
        self.batch_size, self.target = int(batch_size), float(target)
        self.interval, self.speed_kimg = int(interval), float(speed_kimg)
        self.p = 0.0
        self.rt: float | None = None        # r_t of the last completed interval; None before the first one
        self._batches = 0                   # minibatches since the last adjustment
        self._signs: torch.Tensor | None = None   # float64 [2]: (sum of sign(D(real)), number of logits)
        self._set_p(p)

    @property
    def step_size(self) -> float:
        """How far p moves at one adjustment."""
        return self.batch_size * self.interval / (self.speed_kimg * 1000)

    def _set_p(self, p: float) -> None:
        self.p = max(float(p), 0.0)          # no upper bound, as NVIDIA's (see the module docstring)
        if self.pipe is not None:
            self.pipe.p.fill_(self.p)

    @torch.no_grad()
    def accumulate(self, real_logits: torch.Tensor) -> None:
        """Add one batch of D's outputs for (augmented) real images to r_t's estimate. No host sync.
        Under torch.distributed this is a collective (a sum of two numbers over ranks): every rank calls it."""
        signs = real_logits.detach().sign()
        part = torch.stack([signs.sum(dtype=torch.float64),
                            torch.tensor(signs.numel(), dtype=torch.float64, device=signs.device)])
        dist.all_reduce_sum_(part)
        self._signs = part if self._signs is None else self._signs.to(part.device) + part

    def step(self) -> bool:
        """Call once per minibatch. Every `interval` calls, update r_t and move p; returns True when it did."""
        self._batches += 1
        if self._batches < self.interval:
            return False
        self._batches = 0
        signs, self._signs = self._signs, None
        if signs is None:
            return False                  # nothing was measured in this interval: leave p alone
        sign_sum, count = signs.tolist()  # the one host sync, once per interval
        if count == 0:
            return False
        self.rt = sign_sum / count
        direction = (self.rt > self.target) - (self.rt < self.target)     # sign(r_t - target)
        self._set_p(self.p + direction * self.step_size)
        return True

    def stats(self) -> dict[str, float]:
        """Values to report: p and the last r_t (NaN before the first adjustment)."""
        return {"augment_p": self.p, "ada_rt": math.nan if self.rt is None else self.rt}

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: p, the last r_t and the partial sums of the current interval.
        Plain Python numbers, identical on every rank."""
        sign_sum, count = (0.0, 0.0) if self._signs is None else self._signs.tolist()
        return {"p": self.p, "rt": self.rt, "batches": self._batches, "sign_sum": sign_sum, "count": count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        missing = {"p", "rt", "batches", "sign_sum", "count"} - set(state)
        if missing:
            raise KeyError(f"ADA state lacks {sorted(missing)}")
        self._set_p(state["p"])
        self.rt = None if state["rt"] is None else float(state["rt"])
        self._batches = int(state["batches"])
        self._signs = None
        if state["count"] > 0:
            self._signs = torch.tensor([float(state["sign_sum"]), float(state["count"])], dtype=torch.float64)
