"""The training-time augmentation settings (flags --aug, --p, --target, --augpipe) as a typed config."""
from __future__ import annotations

import dataclasses
import math

from stylegan.augment.ada import AdaController
from stylegan.augment.pipeline import AugmentPipe
from stylegan.augment.presets import DEFAULT_AUGPIPE, augment_pipe_from_preset, check_augpipe
from stylegan.core.errors import UsageError

AUG_MODES = ("ada", "noaug", "fixed")


@dataclasses.dataclass
class AugmentConfig:
    """Discriminator augmentation for training (Karras et al. 2020). Stored with every run and checkpoint."""

    mode: str = "ada"              # --aug: 'ada' adapts p to the target, 'fixed' keeps p, 'noaug' disables augmentation
    p: float = 0.0                 # --p: the fixed p (--aug fixed) or the starting p (--aug ada)
    target: float = 0.6            # --target: the r_t = E[sign(D(real))] that ADA steers toward
    augpipe: str = DEFAULT_AUGPIPE  # --augpipe: a preset of presets.AUGMENT_PRESETS
    interval: int = 4              # minibatches between adjustments of p
    speed_kimg: float = 500.0      # thousands of images for p to move from 0 to 1 (NVIDIA uses 100 when fine-tuning)

    @classmethod
    def from_flags(cls, aug: str | None = None, p: float | None = None, target: float | None = None,
                   augpipe: str | None = None, **fields) -> "AugmentConfig":
        """Resolve the command-line flags (None = not given) into a validated config, rejecting flags that
        have no effect in the chosen mode."""
        mode = "ada" if aug is None else aug
        if mode not in AUG_MODES:
            raise UsageError(f"--aug: unknown mode {mode!r}; choose one of {', '.join(AUG_MODES)}")
        if mode == "fixed" and p is None:
            raise UsageError("--aug fixed needs --p, the fixed augmentation probability in [0, 1]")
        if mode == "noaug":
            flags = (("--p", p), ("--target", target), ("--augpipe", augpipe))
            given = [name for name, value in flags if value is not None]
            if given:
                raise UsageError(f"{', '.join(given)} cannot be used with --aug noaug; use --aug ada or --aug fixed")
        if mode != "ada" and target is not None:
            raise UsageError(f"--target only applies to --aug ada, not --aug {mode}")
        if p is not None and not (isinstance(p, (int, float)) and 0 <= p <= 1):
            raise UsageError(f"--p must be a number in [0, 1], got {p!r}")
        cfg = cls(mode=mode, **fields)
        if p is not None:
            cfg.p = p
        if target is not None:
            cfg.target = target
        if augpipe is not None:
            cfg.augpipe = augpipe
        return cfg.validate()

    def validate(self) -> "AugmentConfig":
        """Raise UsageError naming the flag and the allowed values; return self when all is well."""
        if self.mode not in AUG_MODES:
            raise UsageError(f"--aug: unknown mode {self.mode!r}; choose one of {', '.join(AUG_MODES)}")
        check_augpipe(self.augpipe)
        # --p itself is a probability (from_flags checks it), but a run may start from a snapshot's p, which ADA
        # can have carried past 1 (see ada.py).
        if not isinstance(self.p, (int, float)) or not (self.p >= 0 and math.isfinite(self.p)):
            raise UsageError(f"--p must be a number >= 0, got {self.p!r}")
        if not isinstance(self.target, (int, float)) or not 0 <= self.target <= 1:
            raise UsageError(f"--target must be a number in [0, 1], got {self.target!r}")
        if not isinstance(self.interval, int) or self.interval < 1:
            raise UsageError(f"augment interval must be a whole number of minibatches >= 1, got {self.interval!r}")
        speed = self.speed_kimg
        if not isinstance(speed, (int, float)) or not (speed > 0 and math.isfinite(speed)):
            raise UsageError(f"augment speed_kimg must be a number > 0, got {self.speed_kimg!r}")
        return self


def build_augment(cfg: AugmentConfig, batch_size: int, device: str | None = None
                  ) -> tuple[AugmentPipe | None, AdaController | None]:
    """The pipeline and, for --aug ada, its controller: (None, None) for noaug, (pipe, None) for fixed.
    batch_size is the global minibatch (all ranks together)."""
    cfg.validate()
    if cfg.mode == "noaug":
        return None, None
    pipe = augment_pipe_from_preset(cfg.augpipe, p=cfg.p).requires_grad_(False)
    if device is not None:
        pipe = pipe.to(device)
    if cfg.mode == "fixed":
        return pipe, None
    ada = AdaController(pipe, batch_size=batch_size, target=cfg.target, interval=cfg.interval,
                        speed_kimg=cfg.speed_kimg, p=cfg.p)
    return pipe, ada

