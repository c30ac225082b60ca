"""Adaptive discriminator augmentation (StyleGAN2-ADA, Karras et al. 2020): the pipeline and its p controller.

    AugmentPipe(p=..., xflip=1, ...)        differentiable augmentation, images [N, C, H, W] -> same shape
    augment_pipe_from_preset('bgc', p=...)  one of AUGMENT_PRESETS
    AdaController(pipe, batch_size=...)     r_t = E[sign(D(real))] -> p, with state_dict()/load_state_dict()
    AugmentConfig / build_augment(cfg, batch_size)   the training flags --aug --p --target --augpipe

See docs/augment.md.
"""
from stylegan.augment.ada import AdaController
from stylegan.augment.config import AUG_MODES, AugmentConfig, build_augment
from stylegan.augment.pipeline import AugmentPipe
from stylegan.augment.presets import AUGMENT_PRESETS, DEFAULT_AUGPIPE, augment_pipe_from_preset

__all__ = ["AUG_MODES", "AUGMENT_PRESETS", "AdaController", "AugmentConfig", "AugmentPipe", "DEFAULT_AUGPIPE",
           "augment_pipe_from_preset", "build_augment"]
