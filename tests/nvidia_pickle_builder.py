"""Test helper: writes pickles with the structure of NVIDIA's, built from OUR modules (no NVIDIA code inside).

A snapshot written here has what a real network-snapshot-*.pkl has, as far as a reader can tell:
  * the same globals in the stream: torch_utils.persistence._reconstruct_persistent_obj, dnnlib.util.EasyDict,
    torch's tensor rebuilders, numpy arrays and scalars, collections.OrderedDict;
  * the same meta fields per module (type='class', version=6, module_src, class_name, state) with NVIDIA's class
    names, and a dummy one-line module_src;
  * the same state layout: an nn.Module __dict__ (_parameters, _buffers, _modules, hook dicts, plain attributes),
    _init_args and _init_kwargs; and the snapshot dict G, D, G_ema, augment_pipe, training_set_kwargs.
TF pickles get a (G, D, Gs) tuple of dnnlib.tflib.network.Network objects whose state holds version, name,
static_kwargs, components, build_module_src, build_func_name and variables named as TF StyleGAN2 names them.

To make pickle write those global names, placeholder modules stand in sys.modules while dumping, and only then.
"""
from __future__ import annotations

import collections
import contextlib
import copy
import pickle
import re
import sys
import types
from pathlib import Path

import numpy as np
import torch

from stylegan.io.nvidia_kwargs import discriminator_config_from_nvidia_kwargs, generator_config_from_nvidia_kwargs
from stylegan.networks.presets import build_from_config

DUMMY_SOURCE = "# test stand-in for an NVIDIA module's source; never executed\n"


def _placeholder(*args, **kwargs):
    raise AssertionError("placeholder: a reader must never call this")


class EasyDict(dict):
    """Pickles as dnnlib.util.EasyDict."""


class Network:
    """Pickles as dnnlib.tflib.network.Network (NEWOBJ + BUILD with the state dict)."""

    def __init__(self, state: dict):
        self._state = state

    def __getstate__(self):
        return self._state


class _Persistent:
    """Pickles as torch_utils.persistence._reconstruct_persistent_obj(meta), exactly like NVIDIA's decorator."""

    def __init__(self, meta: dict):
        self.meta = meta

    def __reduce__(self):
        return (_placeholder, (self.meta,))


@contextlib.contextmanager
def _nvidia_globals():
    names = {"torch_utils": None, "torch_utils.persistence": {"_reconstruct_persistent_obj": _placeholder},
             "dnnlib": {"EasyDict": EasyDict}, "dnnlib.util": {"EasyDict": EasyDict},
             "dnnlib.tflib": None, "dnnlib.tflib.network": {"Network": Network}}
    saved = {name: sys.modules.get(name) for name in names}
    try:
        for name, attrs in names.items():
            mod = types.ModuleType(name)
            for attr, obj in (attrs or {}).items():
                setattr(mod, attr, obj)
            sys.modules[name] = mod
        _placeholder.__module__, _placeholder.__qualname__ = "torch_utils.persistence", "_reconstruct_persistent_obj"
        EasyDict.__module__, Network.__module__ = "dnnlib.util", "dnnlib.tflib.network"
        yield
    finally:
        for name, mod in saved.items():
            if mod is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = mod


def dump(obj, path: str | Path, protocol: int = 4) -> Path:
    """Pickle `obj` (built from the helpers here) as NVIDIA would."""
    with _nvidia_globals(), open(path, "wb") as f:
        pickle.dump(obj, f, protocol=protocol)
    return Path(path)


def _easydict(value):
    if isinstance(value, dict):
        return EasyDict({k: _easydict(v) for k, v in value.items()})
    return value


# --- persistent objects from our modules ------------------------------------------------------------------------------

def _class_name(kind: str, path: str, module: torch.nn.Module) -> str:
    leaf = path.rpartition(".")[2]
    if kind == "generator":
        table = [(r"", "Generator"), (r"mapping", "MappingNetwork"), (r"synthesis", "SynthesisNetwork"),
                 (r"synthesis\.input", "SynthesisInput"), (r"synthesis\.b\d+", "SynthesisBlock"),
                 (r"synthesis\.L\d+_\d+_\d+", "SynthesisLayer"), (r".*\.conv[01]", "SynthesisLayer"),
                 (r".*\.torgb", "ToRGBLayer"), (r".*\.skip", "Conv2dLayer")]
    else:
        table = [(r"", "Discriminator"), (r"mapping", "MappingNetwork"), (r"b4", "DiscriminatorEpilogue"),
                 (r"b\d+", "DiscriminatorBlock"), (r"b4\.mbstd", "MinibatchStdLayer"),
                 (r".*\.(fromrgb|conv|conv0|conv1|skip)", "Conv2dLayer")]
    for pattern, name in table:
        if re.fullmatch(pattern, path):
            return name
    if leaf in ("affine", "embed", "fc", "out") or re.fullmatch(r"fc\d+", leaf):
        return "FullyConnectedLayer"
    return type(module).__name__


def _plain_attrs(module: torch.nn.Module) -> dict:
    out = {}
    for key, value in vars(module).items():
        if key.startswith("_") or key == "training":
            continue
        if value is None or isinstance(value, (bool, int, float, str, np.ndarray, np.generic)):
            out[key] = value
        elif isinstance(value, (list, tuple)) and all(isinstance(v, (bool, int, float, str)) for v in value):
            out[key] = copy.copy(value)
    return out


def persistent(module: torch.nn.Module, kind: str, init_kwargs: dict | None = None, *, origin: str = "stylegan3",
               path: str = "") -> _Persistent:
    """`module` and its children as NVIDIA persistent objects (state = an nn.Module __dict__, as NVIDIA pickles)."""
    attrs = _plain_attrs(module)
    if "use_fp16" in attrs and kind == "generator" and ".L" in f".{path}":
        attrs["use_fp16"] = np.bool_(attrs["use_fp16"])          # StyleGAN3 layers record a numpy bool
    if origin == "stylegan2-ada-pytorch":
        attrs.pop("fused_modconv_default", None)                 # that repo's blocks lack the attribute
    state = {
        "training": False,
        "_parameters": collections.OrderedDict(module._parameters),
        "_buffers": collections.OrderedDict(module._buffers),
        "_non_persistent_buffers_set": set(),
        "_backward_hooks": collections.OrderedDict(),
        "_forward_hooks": collections.OrderedDict(),
        "_forward_pre_hooks": collections.OrderedDict(),
        "_state_dict_hooks": collections.OrderedDict(),
        "_load_state_dict_pre_hooks": collections.OrderedDict(),
        "_modules": collections.OrderedDict(
            (name, persistent(child, kind, {}, origin=origin, path=f"{path}.{name}".lstrip("."))
             if child is not None else None) for name, child in module._modules.items()),
        **attrs,
        "_init_args": (),
        "_init_kwargs": _easydict(init_kwargs or {}),
    }
    meta = dict(type="class", version=6, module_src=DUMMY_SOURCE, class_name=_class_name(kind, path, module),
                state=state)
    return _Persistent(meta)


def augment_pipe(p: float = 0.25, **kwargs) -> _Persistent:
    """An AugmentPipe-shaped persistent object: p and a wavelet buffer, with its constructor kwargs."""
    kwargs = kwargs or dict(xflip=1, rotate90=1, xint=1, scale=1, rotate=1, aniso=1, xfrac=1, brightness=1,
                            contrast=1, lumaflip=1, hue=1, saturation=1)
    state = {"training": True, "_parameters": collections.OrderedDict(),
             "_buffers": collections.OrderedDict(p=torch.tensor(float(p)), Hz_geom=torch.randn(12)),
             "_modules": collections.OrderedDict(), "_init_args": (), "_init_kwargs": _easydict(kwargs), **kwargs}
    return _Persistent(dict(type="class", version=6, module_src=DUMMY_SOURCE, class_name="AugmentPipe", state=state))


def randomize_(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Trained-looking values in every parameter and in the noise / w_avg / magnitude buffers."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in list(module.named_parameters()) + list(module.named_buffers()):
            if name.endswith("magnitude_ema"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            elif isinstance(t, torch.nn.Parameter) or name.endswith(("noise_const", "w_avg")):
                t.copy_(torch.randn(t.shape, generator=g) * 0.5)
    return module


_CLASSES = {"stylegan3": ("training.networks_stylegan3.Generator", "training.networks_stylegan2.Discriminator"),
            "stylegan2": ("training.networks_stylegan2.Generator", "training.networks_stylegan2.Discriminator"),
            "stylegan2-ada-pytorch": ("training.networks.Generator", "training.networks.Discriminator")}


def build_generator(G_kwargs: dict, family: str, origin: str = "stylegan3", seed: int = 0) -> torch.nn.Module:
    """Our generator for NVIDIA kwargs (ADA layout when origin is 'stylegan2-ada-pytorch'), with random values."""
    cls = _CLASSES["stylegan3" if family == "stylegan3" else origin if origin != "stylegan3" else "stylegan2"][0]
    return randomize_(build_from_config(generator_config_from_nvidia_kwargs(G_kwargs, cls)), seed).eval()


def build_discriminator(D_kwargs: dict, origin: str = "stylegan3", seed: int = 1) -> torch.nn.Module:
    cls = _CLASSES["stylegan2" if origin == "stylegan3" else origin][1]
    return randomize_(build_from_config(discriminator_config_from_nvidia_kwargs(D_kwargs, cls)), seed).eval()


def write_snapshot(path: str | Path, *, G_kwargs: dict, D_kwargs: dict, family: str, origin: str = "stylegan3",
                   augment_p: float | None = 0.25, training_set_kwargs: dict | None = None, protocol: int = 4,
                   seed: int = 0) -> dict:
    """Write a network-snapshot-style pickle; return our original modules {'G', 'D', 'G_ema'} to compare with."""
    G = build_generator(G_kwargs, family, origin, seed)
    G_ema = randomize_(copy.deepcopy(G), seed + 10)
    D = build_discriminator(D_kwargs, origin, seed + 1)
    data = dict(G=persistent(G, "generator", G_kwargs, origin=origin),
                D=persistent(D, "discriminator", D_kwargs, origin=origin),
                G_ema=persistent(G_ema, "generator", G_kwargs, origin=origin),
                augment_pipe=augment_pipe(augment_p) if augment_p is not None else None,
                training_set_kwargs=training_set_kwargs if training_set_kwargs is not None else dict(
                    class_name="training.dataset.ImageFolderDataset", path="/data/set.zip", use_labels=True,
                    max_size=70000, xflip=True, resolution=G.img_resolution, random_seed=0))
    dump(data, path, protocol)
    return dict(G=G, D=D, G_ema=G_ema)


# --- TensorFlow pickles ----------------------------------------------------------------------------------------------
# The inverse of the documented mapping, written from the TF side: for each of our tensors, the TF variable that
# holds it. Tests check the importer's forward mapping against this one and against hand-picked elements.

def _tf_conv(w: torch.Tensor, up: bool = False) -> np.ndarray:
    w = w.permute(2, 3, 1, 0)                                     # [out, in, kh, kw] -> [kh, kw, in, out]
    return (w.flip(0, 1) if up else w).numpy().copy()


def tf_generator_variables(G: torch.nn.Module, orig_lods: bool = False) -> dict[str, dict[str, np.ndarray]]:
    """{component: {tf_name: value}} for a StyleGAN2 generator; component '' is G itself."""
    out: dict[str, dict[str, np.ndarray]] = {"": {}, "mapping": {}, "synthesis": {}}
    res = G.img_resolution
    for name, t in list(G.named_parameters()) + list(G.named_buffers()):
        t = t.detach()
        if name.endswith("resample_filter"):
            continue
        if name == "mapping.w_avg":
            out[""]["dlatent_avg"] = t.numpy().copy()
            continue
        if m := re.fullmatch(r"mapping\.(embed|fc(\d+))\.(weight|bias)", name):
            scope = "LabelEmbed" if m[1] == "embed" else f"Dense{m[2]}"
            out["mapping"][f"{scope}/{m[3]}"] = (t.T if m[3] == "weight" else t).numpy().copy()
            continue
        if name == "synthesis.b4.const":
            out["synthesis"]["4x4/Const/const"] = t[None].numpy().copy()
            continue
        m = re.fullmatch(r"synthesis\.b(\d+)\.(\w+?)(?:\.(affine))?\.(\w+)", name)
        r, layer, affine, var = int(m[1]), m[2], m[3], m[4]
        if layer == "skip":
            out["synthesis"][f"{r}x{r}/Skip/weight"] = _tf_conv(t, up=True)
            continue
        if r == 4 and layer == "conv1":
            scope = "4x4/Conv"
        elif layer == "torgb" and orig_lods:
            scope = f"ToRGB_lod{int(np.log2(res // r))}"
        else:
            scope = f"{r}x{r}/" + {"conv0": "Conv0_up", "conv1": "Conv1", "torgb": "ToRGB"}[layer]
        if var == "noise_const":
            k = int(np.log2(r))
            index = 0 if r == 4 else 2 * k - 5 if layer == "conv0" else 2 * k - 4
            out["synthesis"][f"noise{index}"] = t[None, None].numpy().copy()
        elif affine:
            out["synthesis"][f"{scope}/mod_{var}"] = (t.T if var == "weight" else t - 1).numpy().copy()
        elif var == "weight":
            out["synthesis"][f"{scope}/weight"] = _tf_conv(t, up=layer == "conv0")
        else:
            out["synthesis"][f"{scope}/{var}"] = t.numpy().copy()
    if orig_lods:                                                 # progressive growing kept lower-res ToRGBs
        for lod in range(1, int(np.log2(res)) - 1):
            for var, v in list(out["synthesis"].items()):
                if var.startswith("ToRGB_lod0/"):
                    out["synthesis"][var.replace("lod0", f"lod{lod}")] = np.random.randn(*v.shape).astype(np.float32)
    return out


def tf_discriminator_variables(D: torch.nn.Module, orig_lods: bool = False) -> dict[str, np.ndarray]:
    out = {}
    res = D.img_resolution
    for name, t in D.named_parameters():
        t = t.detach()
        if m := re.fullmatch(r"mapping\.(embed|fc(\d+))\.(weight|bias)", name):
            scope = "LabelEmbed" if m[1] == "embed" else f"Mapping{m[2]}"
            out[f"{scope}/{m[3]}"] = (t.T if m[3] == "weight" else t).numpy().copy()
            continue
        m = re.fullmatch(r"b(\d+)\.(\w+)\.(weight|bias)", name)
        r, layer, var = int(m[1]), m[2], m[3]
        if r == 4 and layer in ("conv", "fc", "out"):
            scope = {"conv": "4x4/Conv", "fc": "4x4/Dense0", "out": "Output"}[layer]
        elif layer == "fromrgb" and orig_lods:
            scope = f"FromRGB_lod{int(np.log2(res // r))}"
        else:
            scope = f"{r}x{r}/" + {"fromrgb": "FromRGB", "conv0": "Conv0", "conv1": "Conv1_down", "skip": "Skip"}[layer]
        if var == "bias":
            out[f"{scope}/bias"] = t.numpy().copy()
        elif layer in ("fc", "out"):
            out[f"{scope}/weight"] = t.T.numpy().copy()
        else:
            out[f"{scope}/weight"] = _tf_conv(t)
    if orig_lods:
        for lod in range(1, int(np.log2(res)) - 1):
            for var, v in list(out.items()):
                if var.startswith("FromRGB_lod0/"):
                    out[var.replace("lod0", f"lod{lod}")] = np.random.randn(*v.shape).astype(np.float32)
    return out


def tf_network(name: str, func: str, static_kwargs: dict, variables: dict, components: dict | None = None) -> Network:
    return Network(dict(version=4, name=name, static_kwargs=dict(static_kwargs), components=dict(components or {}),
                        build_module_src=DUMMY_SOURCE, build_func_name=func, variables=list(variables.items())))


def tf_generator(G: torch.nn.Module, static_kwargs: dict, *, ada: bool, orig_lods: bool = False) -> Network:
    vars_ = tf_generator_variables(G, orig_lods)
    top = dict(vars_[""])
    if not ada:
        top["lod"] = np.float32(0)                                # TF StyleGAN2's G_main keeps a lod variable
    synth = "G_synthesis" if ada else ("G_synthesis_stylegan_revised" if orig_lods else "G_synthesis_stylegan2")
    comps = {"synthesis": tf_network("G_synthesis", synth, static_kwargs, vars_["synthesis"]),
             "mapping": tf_network("G_mapping", "G_mapping", static_kwargs, vars_["mapping"])}
    return tf_network("G", "G_main", static_kwargs, top, comps)


def tf_discriminator(D: torch.nn.Module, static_kwargs: dict, *, ada: bool, orig_lods: bool = False) -> Network:
    vars_ = tf_discriminator_variables(D, orig_lods)
    if orig_lods:
        vars_["lod"] = np.float32(0)
    func = "D_main" if ada else ("D_stylegan" if orig_lods else "D_stylegan2")
    return tf_network("D", func, static_kwargs, vars_)


# --- small shared fixtures -------------------------------------------------------------------------------------------

TINY_G = dict(z_dim=8, w_dim=8, c_dim=0, img_resolution=8, img_channels=3, channel_base=64, channel_max=8,
              mapping_kwargs=dict(num_layers=1), architecture="skip")
TINY_D = dict(c_dim=0, img_resolution=8, img_channels=3, channel_base=64, channel_max=8,
              epilogue_kwargs=dict(mbstd_group_size=2))


def tiny_snapshot(path: str | Path, augment_p: float = 0.4) -> dict:
    """An 8x8 StyleGAN2 snapshot (a fraction of a second to write and read); returns the original modules."""
    return write_snapshot(path, G_kwargs=TINY_G, D_kwargs=TINY_D, family="stylegan2", augment_p=augment_p)


class SystemCall:
    """Pickles as os.system(cmd): an attacker's payload, for tests that it is refused."""

    def __init__(self, cmd: str):
        self.cmd = cmd

    def __reduce__(self):
        import os
        return os.system, (self.cmd,)
