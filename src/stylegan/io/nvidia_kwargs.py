"""NVIDIA's recorded constructor arguments (a pickle's init_kwargs) -> our configs.

NVIDIA pickles record only the arguments that were passed; the rest are the class defaults, which differ by
repository: stylegan2-ada-pytorch ('training.networks') defaults to num_fp16_res=0, conv_clamp=None,
w_avg_beta=0.995 and nests the synthesis arguments under 'synthesis_kwargs'; the stylegan3 repository
('training.networks_stylegan2' / 'training.networks_stylegan3') uses our defaults, except that its StyleGAN3
mapping network has 2 layers by default.

The toolkit's own networks know nothing of NVIDIA's argument names; this module, beside the pickle readers,
is the one place that maps them.
"""
from __future__ import annotations

import dataclasses

from stylegan.core.errors import StyleGANError
from stylegan.networks.config import (
    SYNTHESIS_CONFIGS, DiscriminatorConfig, GeneratorConfig, MappingConfig, StyleGAN2SynthesisConfig,
    StyleGAN3SynthesisConfig)

NVIDIA_MODULES = {
    "training.networks": "stylegan2-ada",
    "training.networks_stylegan2": "stylegan2",
    "training.networks_stylegan3": "stylegan3",
}
_NV_TOP = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels")
_NV_MAPPING = {
    "stylegan2": {f.name for f in dataclasses.fields(MappingConfig)},
    "stylegan3": {"num_layers", "lr_multiplier", "w_avg_beta"},
}
_NV_DEFAULTS = {   # source -> (mapping defaults, synthesis defaults) where they differ from ours
    "stylegan2-ada": ({"w_avg_beta": 0.995}, {"num_fp16_res": 0, "conv_clamp": None,
                                               # ADA picks the grouped conv exactly when not training
                                               "fused_modconv_default": "inference_only"}),
    "stylegan2": ({}, {}),
    "stylegan3": ({"num_layers": 2}, {}),
}


def _nvidia_source(class_name: str | None, kwargs: dict) -> str:
    if class_name:
        module = class_name if class_name in NVIDIA_MODULES else class_name.rpartition(".")[0]
        if module not in NVIDIA_MODULES:
            raise StyleGANError(f"NVIDIA network class {class_name!r} is not supported; expected a class from "
                                f"{', '.join(NVIDIA_MODULES)}")
        return NVIDIA_MODULES[module]
    if "synthesis_kwargs" in kwargs:
        return "stylegan2-ada"
    sg3_only = {f.name for f in dataclasses.fields(StyleGAN3SynthesisConfig)} - \
        {f.name for f in dataclasses.fields(StyleGAN2SynthesisConfig)}
    return "stylegan3" if sg3_only & set(kwargs) else "stylegan2"


def _take(kwargs: dict, allowed: set[str], what: str) -> dict:
    unknown = sorted(set(kwargs) - allowed)
    if unknown:
        raise StyleGANError(f"NVIDIA {what} argument(s) {', '.join(unknown)} are not supported by this toolkit")
    return {k: (tuple(v) if isinstance(v, list) else v) for k, v in kwargs.items()}


def _infer_cfg(family: str, synthesis: StyleGAN2SynthesisConfig | StyleGAN3SynthesisConfig) -> str:
    if family == "stylegan2":
        return "stylegan2"
    return "stylegan3-r" if synthesis.use_radial_filters and synthesis.conv_kernel == 1 else "stylegan3-t"


def generator_config_from_nvidia_kwargs(init_kwargs: dict, class_name: str | None = None) -> GeneratorConfig:
    """The GeneratorConfig for NVIDIA's Generator(**init_kwargs).

    class_name: the pickled class ('training.networks_stylegan3.Generator', ...) or its module; it decides the
    defaults of unrecorded arguments. None guesses from the arguments (nested synthesis_kwargs = ADA; any
    StyleGAN3-only argument = StyleGAN3; otherwise the stylegan3 repository's StyleGAN2)."""
    kwargs = {k: v for k, v in dict(init_kwargs).items()}
    source = _nvidia_source(class_name, kwargs)
    family = "stylegan3" if source == "stylegan3" else "stylegan2"
    missing = [k for k in _NV_TOP if k not in kwargs]
    if missing:
        raise StyleGANError(f"NVIDIA generator arguments lack {', '.join(missing)}")
    top = {k: kwargs.pop(k) for k in _NV_TOP}
    mapping_kwargs = dict(kwargs.pop("mapping_kwargs", None) or {})
    synthesis_kwargs = dict(kwargs.pop("synthesis_kwargs", None) or {}) if source == "stylegan2-ada" else {}
    synthesis_kwargs.update(kwargs)
    if family == "stylegan2" and synthesis_kwargs.get("kernel_size", 3) == 3:
        synthesis_kwargs.pop("kernel_size", None)                     # NVIDIA's only value; not a field of ours

    mapping_defaults, synthesis_defaults = _NV_DEFAULTS[source]
    synthesis_cls = SYNTHESIS_CONFIGS[family]
    mapping = MappingConfig(**{**mapping_defaults, **_take(mapping_kwargs, _NV_MAPPING[family], "mapping")})
    synthesis_fields = {f.name for f in dataclasses.fields(synthesis_cls)}
    synthesis = synthesis_cls(**{**synthesis_defaults, **_take(synthesis_kwargs, synthesis_fields, "synthesis")})
    return GeneratorConfig(family=family, cfg=_infer_cfg(family, synthesis), mapping=mapping, synthesis=synthesis,
                           **top)


def discriminator_config_from_nvidia_kwargs(init_kwargs: dict, class_name: str | None = None) -> DiscriminatorConfig:
    """The DiscriminatorConfig for NVIDIA's Discriminator(**init_kwargs); class_name as for the generator
    ('training.networks.Discriminator' selects ADA's defaults; None = the stylegan3 repository's)."""
    kwargs = dict(init_kwargs)
    missing = [k for k in ("c_dim", "img_resolution", "img_channels") if k not in kwargs]
    if missing:
        raise StyleGANError(f"NVIDIA discriminator arguments lack {', '.join(missing)}")
    source = _nvidia_source(class_name, {}) if class_name else "stylegan2"
    if source == "stylegan3":
        raise StyleGANError("NVIDIA's stylegan3 module has no discriminator; StyleGAN3 uses the StyleGAN2 one")
    block = dict(kwargs.pop("block_kwargs", None) or {})
    epilogue = dict(kwargs.pop("epilogue_kwargs", None) or {})
    mapping_kwargs = dict(kwargs.pop("mapping_kwargs", None) or {})
    mapping_kwargs.pop("w_avg_beta", None)                               # NVIDIA forces None for D's mapping
    activation = {block.pop("activation", "lrelu"), epilogue.pop("activation", "lrelu")}
    if len(activation) != 1:
        raise StyleGANError(f"NVIDIA discriminator uses different block and epilogue activations {sorted(activation)};"
                            " this toolkit supports one activation")
    flat = dict(kwargs, **block, **epilogue, activation=activation.pop())
    if source == "stylegan2-ada":
        flat = {"num_fp16_res": 0, "conv_clamp": None, **flat}
    fields = {f.name for f in dataclasses.fields(DiscriminatorConfig)} - {"mapping", "cfg"}
    flat = _take(flat, fields, "discriminator")
    mapping = MappingConfig(**_take(mapping_kwargs, _NV_MAPPING["stylegan2"], "discriminator mapping"),
                            w_avg_beta=None)
    return DiscriminatorConfig(mapping=mapping, **flat)
