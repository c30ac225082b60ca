"""TF-era StyleGAN2 and StyleGAN2-ADA (TensorFlow) network pickles, read without TensorFlow.

Such a file is a pickled tuple (G, D, Gs) of `dnnlib.tflib.network.Network` objects. Each one's state holds
`version`, `name`, `build_module_src` (the network code: kept as text, never run), `build_func_name`,
`static_kwargs` (the build function's arguments), `components` (sub-networks: G has 'mapping' and 'synthesis') and
`variables`, a list of (name, numpy array) pairs named by TF variable scope (e.g. '4x4/Conv/mod_weight').

We translate each network into what a stylegan3-repo pickle would record: constructor arguments in NVIDIA's PyTorch
layout and every tensor under its PyTorch name. The correspondence (the facts NVIDIA's legacy.py also relies on):

  * fmap_base counts channels at stage 0 (the 1x1 "resolution"); channel_base counts them at resolution 1,
    so channel_base = 2 * fmap_base (TF nf(1) at 4x4 = fmap_base / 2 = channel_base / 4).
  * Dense weights are [in, out] -> transpose. Conv weights are [kh, kw, in, out] -> [out, in, kh, kw]; the
    generator's upsampling convs (Conv0_up, Skip) are applied as transposed convolutions in TF, so their kernels
    are also flipped in both spatial dimensions.
  * The modulation bias is stored without the +1 that TF adds at run time; PyTorch stores it with it.
  * The 4x4 const is [1, C, 4, 4] -> [C, 4, 4]; noise inputs are [1, 1, R, R] -> [R, R] (noise<i>: i = 0 is the
    4x4 conv, then two per resolution: 2 log2(R) - 5 for conv0 and 2 log2(R) - 4 for conv1).
  * dlatent_avg is the mapping's w_avg.
  * num_fp16_res and conv_clamp are taken from StyleGAN2-ADA's kwargs; TF StyleGAN2 had neither (0 and None).
  * Progressive-growing pickles (configs B-D) name their RGB layers ToRGB_lod<n> / FromRGB_lod<n>: only the layer
    at full resolution is used once growing is finished (lod = 0), which is the 'orig' architecture.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from stylegan.core.errors import StyleGANError


class TFNetwork:
    """Stand-in for dnnlib.tflib.network.Network: the unpickler fills in its state as plain data."""

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict):
            raise StyleGANError(f"a TensorFlow network's state must be a dict, got {type(state).__name__}")
        self.state = state

    @property
    def version(self) -> int:
        return int(self.state.get("version", 0))

    @property
    def name(self) -> str:
        return str(self.state.get("name"))

    @property
    def build_func_name(self) -> str:
        return str(self.state.get("build_func_name"))

    @property
    def static_kwargs(self) -> dict:
        return dict(self.state.get("static_kwargs") or {})

    @property
    def components(self) -> dict[str, "TFNetwork"]:
        return dict(self.state.get("components") or {})

    def variables(self, prefix: str = "") -> dict[str, np.ndarray]:
        """Every variable of this network and its components, named '<component>/<scope>/<var>'."""
        out = {prefix + str(name): value for name, value in self.state.get("variables") or []}
        for comp_name, comp in self.components.items():
            if not isinstance(comp, TFNetwork):
                raise StyleGANError(f"TensorFlow component {comp_name!r} is a {type(comp).__name__}, not a network")
            out.update(comp.variables(prefix + comp_name + "/"))
        return out

    def __repr__(self) -> str:
        return f"TFNetwork(name={self.name!r}, build_func_name={self.build_func_name!r})"


@dataclass
class TFConversion:
    """A TF network in NVIDIA's PyTorch terms: constructor kwargs (stylegan3 layout) and tensors by PyTorch name."""
    init_kwargs: dict
    tensors: dict[str, torch.Tensor]
    ignored: list[str] = field(default_factory=list)    # TF variables with no PyTorch counterpart, and why


# --- kwargs ----------------------------------------------------------------------------------------------------------

# Arguments that steer evaluation, training or the TF graph, not the architecture.
_RUNTIME_KWARGS = {
    "truncation_psi", "truncation_cutoff", "truncation_psi_val", "truncation_cutoff_val", "style_mixing_prob",
    "structure", "conditioning", "fused_modconv", "randomize_noise", "dtype", "is_training", "is_validation",
    "return_dlatents", "force_clean_graph", "mapping_func", "synthesis_func", "augment_strength", "score_size",
    "num_gpus",
}


class _Kwargs:
    """Reads TF static kwargs with defaults, and remembers which were read so unknown ones can be reported."""

    def __init__(self, kwargs: dict, what: str):
        self.kwargs = kwargs
        self.what = what
        self.used: set[str] = set(_RUNTIME_KWARGS)

    def get(self, name: str, default: Any = None) -> Any:
        self.used.add(name)
        value = self.kwargs.get(name, default)
        return default if value is None else value

    def require(self, name: str, allowed: Any) -> None:
        value = self.get(name, allowed)
        if value != allowed:
            raise StyleGANError(f"{self.what}: {name}={value!r} has no PyTorch counterpart (only {allowed!r} does)")

    def check_unknown(self) -> None:
        unknown = sorted(set(self.kwargs) - self.used)
        if unknown:
            raise StyleGANError(f"{self.what}: unknown TensorFlow kwargs {', '.join(unknown)}; "
                                "this is not a StyleGAN2 / StyleGAN2-ADA network we know how to map")


def _nf(stage: int, fmap_base: int, fmap_max: int) -> int:
    # TF's feature-map count at a stage (stage 1 is 4x4), with fmap_decay = 1 and fmap_min = 1.
    return int(np.clip(int(fmap_base / (2.0 ** stage)), 1, fmap_max))


def _filter(kernel: Any) -> list:
    # resample_kernel=None meant a box filter of the resampling factor (2) in TF.
    return [1, 1] if kernel is None else [float(v) if not float(v).is_integer() else int(v) for v in kernel]


def _check_lod(variables: dict[str, np.ndarray], what: str) -> list[str]:
    ignored = []
    for name in [n for n in variables if n == "lod" or n.endswith("/lod")]:
        if float(np.asarray(variables[name])) != 0:
            raise StyleGANError(f"{what} was saved while still growing progressively ({name}="
                                f"{float(np.asarray(variables[name]))}); only finished networks (lod = 0) can be used")
        ignored.append(f"{name} (progressive-growing level, 0)")
    return ignored


def generator_kwargs(net: TFNetwork) -> dict:
    """NVIDIA PyTorch Generator kwargs (stylegan3 layout) for a TF generator."""
    what = "TensorFlow generator"
    kw = _Kwargs(net.static_kwargs, what)
    for name, allowed in (("fmap_decay", 1), ("fmap_min", 1), ("normalize_latents", True)):
        kw.require(name, allowed)
    fmap_base = int(kw.get("fmap_base", 16384))
    fmap_max = int(kw.get("fmap_max", 512))
    fmap_const = kw.get("fmap_const", None)
    if fmap_const is not None and int(fmap_const) != _nf(1, fmap_base, fmap_max):
        raise StyleGANError(f"{what}: fmap_const={fmap_const} differs from the 4x4 width; PyTorch has no such option")
    w_avg_beta = kw.get("dlatent_avg_beta", kw.get("w_avg_beta", 0.995))
    kwargs = dict(
        z_dim=int(kw.get("latent_size", 512)),
        c_dim=int(kw.get("label_size", 0)),
        w_dim=int(kw.get("dlatent_size", 512)),
        img_resolution=int(kw.get("resolution", 1024)),
        img_channels=int(kw.get("num_channels", 3)),
        channel_base=2 * fmap_base,                           # see the module docstring
        channel_max=fmap_max,
        num_fp16_res=int(kw.get("num_fp16_res", 0)),
        conv_clamp=kw.get("conv_clamp", None),
        architecture=str(kw.get("architecture", "skip")),
        resample_filter=_filter(kw.kwargs.get("resample_kernel", [1, 3, 3, 1])),
        use_noise=bool(kw.get("use_noise", True)),
        activation=str(kw.get("nonlinearity", "lrelu")),
        mapping_kwargs=dict(
            num_layers=int(kw.get("mapping_layers", 8)),
            embed_features=kw.get("label_fmaps", None),
            layer_features=kw.get("mapping_fmaps", None),
            activation=str(kw.get("mapping_nonlinearity", "lrelu")),
            lr_multiplier=float(kw.get("mapping_lrmul", 0.01)),
            w_avg_beta=float(w_avg_beta),
        ),
    )
    kw.used.add("resample_kernel")
    kw.check_unknown()
    return kwargs


def discriminator_kwargs(net: TFNetwork) -> dict:
    """NVIDIA PyTorch Discriminator kwargs for a TF discriminator (D_stylegan2 of StyleGAN2, D_main of ADA)."""
    what = "TensorFlow discriminator"
    kw = _Kwargs(net.static_kwargs, what)
    for name, allowed in (("fmap_decay", 1), ("fmap_min", 1), ("use_pagan", False), ("use_spectral_norm", False),
                          ("adaptive_dropout", 0), ("score_max", 1)):
        kw.require(name, allowed)
    kw.used.update({"pagan_num", "pagan_fade"})
    fmap_base = int(kw.get("fmap_base", 16384))
    fmap_max = int(kw.get("fmap_max", 512))
    c_dim = int(kw.get("label_size", 0))
    is_ada = net.build_func_name == "D_main"        # StyleGAN2-ADA; D_stylegan2 / D_stylegan are StyleGAN2's
    if c_dim and not is_ada:
        raise StyleGANError(f"{what}: conditional TF StyleGAN2 discriminators (labels multiplied into the output) "
                            "have no PyTorch counterpart; only StyleGAN2-ADA's projection discriminator does")
    # TF StyleGAN2 grouped the minibatch-stddev by 4; ADA's TF default (None) uses the whole minibatch.
    mbstd_group_size = kw.get("mbstd_group_size", None if is_ada else 4)
    mbstd_num_channels = int(kw.get("mbstd_num_features", 1))
    if not is_ada and mbstd_group_size <= 1:
        mbstd_num_channels = 0                      # TF StyleGAN2 skipped the layer for group sizes 0 and 1
    mapping_fmaps = kw.get("mapping_fmaps", None)
    cmap_dim = int(mapping_fmaps) if mapping_fmaps is not None else _nf(0, fmap_base, fmap_max)
    activation = str(kw.get("nonlinearity", "lrelu"))
    kwargs = dict(
        c_dim=c_dim,
        img_resolution=int(kw.get("resolution", 1024)),
        img_channels=int(kw.get("num_channels", 3)),
        architecture=str(kw.get("architecture", "resnet")),
        channel_base=2 * fmap_base,
        channel_max=fmap_max,
        num_fp16_res=int(kw.get("num_fp16_res", 0)),
        conv_clamp=kw.get("conv_clamp", None),
        cmap_dim=cmap_dim if c_dim else None,
        block_kwargs=dict(activation=activation,
                          resample_filter=_filter(kw.kwargs.get("resample_kernel", [1, 3, 3, 1])),
                          freeze_layers=int(kw.get("freeze_layers", 0))),
        mapping_kwargs=dict(num_layers=int(kw.get("mapping_layers", 0)), embed_features=cmap_dim,
                            layer_features=cmap_dim, activation=activation,
                            lr_multiplier=float(kw.get("mapping_lrmul", 0.1))),
        epilogue_kwargs=dict(mbstd_group_size=None if mbstd_group_size is None else int(mbstd_group_size),
                             mbstd_num_channels=mbstd_num_channels, activation=activation),
    )
    kw.used.add("resample_kernel")
    kw.check_unknown()
    return kwargs


# --- variables -------------------------------------------------------------------------------------------------------

def _dense(v: np.ndarray) -> np.ndarray:
    return v.T                                              # [in, out] -> [out, in]


def _conv(v: np.ndarray) -> np.ndarray:
    return v.transpose(3, 2, 0, 1)                          # [kh, kw, in, out] -> [out, in, kh, kw]


def _conv_up(v: np.ndarray) -> np.ndarray:
    return v[::-1, ::-1].transpose(3, 2, 0, 1)             # transposed conv in TF: flip the kernel as well


def _tensor(v: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(v, dtype=np.float32, order="C"))    # a copy; keeps 0-d arrays 0-d


def _modulated(prefix: str, var: str, value: np.ndarray, up: bool) -> tuple[str, np.ndarray]:
    # A modulated conv (SynthesisLayer or ToRGBLayer) and its affine (style) layer.
    if var == "weight":
        return f"{prefix}.weight", _conv_up(value) if up else _conv(value)
    if var == "mod_weight":
        return f"{prefix}.affine.weight", _dense(value)
    if var == "mod_bias":
        return f"{prefix}.affine.bias", value + 1           # TF adds the 1 at run time
    if var in ("bias", "noise_strength"):
        return f"{prefix}.{var}", value
    raise KeyError(var)


def _check_network(net: TFNetwork, kind: str, funcs: tuple[str, ...]) -> None:
    if net.version < 4:
        raise StyleGANError(f"TensorFlow network version {net.version} is too old (StyleGAN2 pickles have 4)")
    if net.build_func_name not in funcs:
        raise StyleGANError(f"TensorFlow {kind} built by {net.build_func_name!r} is not a StyleGAN2 network "
                            f"(expected {' or '.join(funcs)}; original StyleGAN / config-a is not supported)")


_IGNORED = object()


def _convert(net: TFNetwork, kind: str, kwargs: dict, map_one) -> TFConversion:
    """Map every variable with map_one(name, value, kwargs, ignored) -> (torch name, value), _IGNORED or None
    (no counterpart: an error naming the variables)."""
    variables = net.variables()
    ignored = _check_lod(variables, f"TensorFlow {kind}")
    tensors: dict[str, torch.Tensor] = {}
    unknown = []
    for name, value in variables.items():
        if name == "lod" or name.endswith("/lod"):
            continue                                        # checked to be 0 by _check_lod
        target = map_one(name, np.asarray(value), kwargs, ignored)
        if target is None:
            unknown.append(name)
        elif target is not _IGNORED:
            tensors[target[0]] = _tensor(target[1])
    if unknown:
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        raise StyleGANError(f"TensorFlow {kind}: variables with no PyTorch counterpart: {', '.join(unknown[:5])}{more}")
    return TFConversion(kwargs, tensors, ignored)


def _progressive_rgb(name: str, lod: str, kwargs: dict, ignored: list[str]) -> int | None:
    """ToRGB_lod<n> / FromRGB_lod<n> of a progressive-growing network: the full-resolution one makes the
    architecture 'orig' (its resolution is returned); the rest are unused once growing has finished."""
    r = kwargs["img_resolution"] >> int(lod)
    if r == kwargs["img_resolution"]:
        kwargs["architecture"] = "orig"
        return r
    ignored.append(f"{name} (RGB layer of a lower resolution, unused once growing has finished)")
    return None


def _generator_variable(name: str, value: np.ndarray, kwargs: dict, ignored: list[str]):
    if name == "dlatent_avg":
        return "mapping.w_avg", value
    if m := re.fullmatch(r"mapping/(LabelEmbed|Dense(\d+))/(weight|bias)", name):
        layer = "embed" if m[1] == "LabelEmbed" else f"fc{m[2]}"
        return f"mapping.{layer}.{m[3]}", _dense(value) if m[3] == "weight" else value
    if name == "mapping/LabelConcat/weight":
        raise StyleGANError("TensorFlow generator: conditional TF StyleGAN2 (LabelConcat) has no PyTorch "
                            "counterpart; only StyleGAN2-ADA's label embedding does")
    if name == "synthesis/4x4/Const/const":
        return "synthesis.b4.const", value[0]
    if m := re.fullmatch(r"synthesis/4x4/Conv/(\w+)", name):
        return _modulated("synthesis.b4.conv1", m[1], value, up=False)
    if m := re.fullmatch(r"synthesis/(\d+)x\1/(Conv0_up|Conv1|ToRGB)/(\w+)", name):
        layer = {"Conv0_up": "conv0", "Conv1": "conv1", "ToRGB": "torgb"}[m[2]]
        return _modulated(f"synthesis.b{m[1]}.{layer}", m[3], value, up=m[2] == "Conv0_up")
    if m := re.fullmatch(r"synthesis/(\d+)x\1/Skip/weight", name):
        return f"synthesis.b{m[1]}.skip.weight", _conv_up(value)
    if m := re.fullmatch(r"synthesis/noise(\d+)", name):
        # noise0 is the 4x4 conv; then conv0 of resolution 2**k is 2k-5 (odd) and conv1 is 2k-4 (even).
        i = int(m[1])
        layer = "b4.conv1" if i == 0 else f"b{2 ** ((i + 5) // 2)}.conv0" if i % 2 else f"b{2 ** ((i + 4) // 2)}.conv1"
        return f"synthesis.{layer}.noise_const", value[0, 0]
    if m := re.fullmatch(r"synthesis/ToRGB_lod(\d+)/(\w+)", name):
        r = _progressive_rgb(name, m[1], kwargs, ignored)
        return _IGNORED if r is None else _modulated(f"synthesis.b{r}.torgb", m[2], value, up=False)
    return None


_D_LAYERS = {"4x4/Conv": ("b4.conv", "conv"), "4x4/Dense0": ("b4.fc", "dense"), "Output": ("b4.out", "dense"),
             "LabelEmbed": ("mapping.embed", "dense")}


def _discriminator_variable(name: str, value: np.ndarray, kwargs: dict, ignored: list[str]):
    scope, _, var = name.rpartition("/")
    if var not in ("weight", "bias"):
        return None
    if scope in _D_LAYERS:
        layer, kind = _D_LAYERS[scope]
    elif m := re.fullmatch(r"Mapping(\d+)", scope):
        layer, kind = f"mapping.fc{m[1]}", "dense"
    elif m := re.fullmatch(r"(\d+)x\1/(FromRGB|Conv0|Conv1_down|Skip)", scope):
        layer = f"b{m[1]}." + {"FromRGB": "fromrgb", "Conv0": "conv0", "Conv1_down": "conv1", "Skip": "skip"}[m[2]]
        kind = "conv"                                       # downsampling convs are plain convs in TF too: no flip
    elif m := re.fullmatch(r"FromRGB_lod(\d+)", scope):
        r = _progressive_rgb(name, m[1], kwargs, ignored)
        if r is None:
            return _IGNORED
        layer, kind = f"b{r}.fromrgb", "conv"
    else:
        return None
    if var == "bias":
        return f"{layer}.bias", value
    return f"{layer}.weight", _dense(value) if kind == "dense" else _conv(value)


def convert_generator(net: TFNetwork) -> TFConversion:
    """Translate a TF generator (G or Gs) into NVIDIA PyTorch kwargs and tensors."""
    _check_network(net, "generator", ("G_main",))
    return _convert(net, "generator", generator_kwargs(net), _generator_variable)


def convert_discriminator(net: TFNetwork) -> TFConversion:
    """Translate a TF discriminator into NVIDIA PyTorch kwargs and tensors."""
    _check_network(net, "discriminator", ("D_main", "D_stylegan2", "D_stylegan"))
    return _convert(net, "discriminator", discriminator_kwargs(net), _discriminator_variable)
