"""The augmentation pipelines of the StyleGAN2-ADA paper (Karras et al. 2020, Fig. 4 and Appendix B), by name.

Letters name the groups: b = pixel blitting, g = general geometric, c = colour, f = image-space filtering,
n = noise, and a final c = cutout.
'bgc' is the default: the paper found it the best trade-off across datasets.
"""
from __future__ import annotations

from stylegan.augment.pipeline import AugmentPipe
from stylegan.core.errors import UsageError

_B = dict(xflip=1, rotate90=1, xint=1)
_G = dict(scale=1, rotate=1, aniso=1, xfrac=1)
_C = dict(brightness=1, contrast=1, lumaflip=1, hue=1, saturation=1)
_F = dict(imgfilter=1)
_N = dict(noise=1)
_X = dict(cutout=1)

AUGMENT_PRESETS: dict[str, dict[str, float]] = {
    "blit":   {**_B},
    "geom":   {**_G},
    "color":  {**_C},
    "filter": {**_F},
    "noise":  {**_N},
    "cutout": {**_X},
    "bg":     {**_B, **_G},
    "bgc":    {**_B, **_G, **_C},
    "bgcf":   {**_B, **_G, **_C, **_F},
    "bgcfn":  {**_B, **_G, **_C, **_F, **_N},
    "bgcfnc": {**_B, **_G, **_C, **_F, **_N, **_X},
}

DEFAULT_AUGPIPE = "bgc"


def check_augpipe(name: str, flag: str = "--augpipe") -> str:
    """Return `name` if it is a preset, otherwise raise a UsageError that lists the presets."""
    if name not in AUGMENT_PRESETS:
        raise UsageError(f"{flag}: unknown pipeline {name!r}; choose one of {', '.join(AUGMENT_PRESETS)}")
    return name


def augment_pipe_from_preset(name: str = DEFAULT_AUGPIPE, p: float = 1.0, **overrides) -> AugmentPipe:
    """Build the named pipeline with overall probability p. `overrides` change any AugmentPipe argument,
    e.g. augment_pipe_from_preset('bgc', p=0.2, xint_max=0.25)."""
    return AugmentPipe(p=p, **{**AUGMENT_PRESETS[check_augpipe(name)], **overrides})
