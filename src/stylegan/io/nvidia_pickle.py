"""NVIDIA's network pickles, opened without running their code and without NVIDIA's packages.

Two kinds of file are supported:

  * Snapshots of NVlabs/stylegan3 and NVlabs/stylegan2-ada-pytorch (network-snapshot-*.pkl, and every published
    model of both): a pickled dict with G, D, G_ema, augment_pipe and training_set_kwargs. Every module in it is a
    "persistent object": the stream calls torch_utils.persistence._reconstruct_persistent_obj(meta), where meta holds
    type='class', version=6, module_src (the whole source file of the class), class_name, and state (the module's
    __dict__: _parameters, _buffers, _modules, plain attributes, and _init_args/_init_kwargs, the arguments it was
    constructed with). NVIDIA's loader executes module_src; we keep it as text and read only the state.
  * TF-era StyleGAN2 / StyleGAN2-ADA pickles, a tuple (G, D, Gs) of dnnlib.tflib.network.Network; see tf_pickle.py.

Either way the result is one `NetworkRecord` per network: the constructor arguments in the stylegan3 repo's layout
and every tensor under NVIDIA's PyTorch name. `build_network` turns a record into our module; since our parameter
names equal NVIDIA's, loading is a strict name-for-name copy (every shape must match, nothing may be left over).
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
from torch.overrides import TorchFunctionMode

from stylegan.core.errors import StyleGANError, UsageError
from stylegan.io.formats import sniff_format
from stylegan.io.limits import build_network_within, network_budget
from stylegan.io.nvidia_kwargs import discriminator_config_from_nvidia_kwargs, generator_config_from_nvidia_kwargs
from stylegan.io.tf_pickle import TFNetwork, convert_discriminator, convert_generator
from stylegan.io.unpickler import BASIC_GLOBALS, NUMPY_GLOBALS, TORCH_GLOBALS, restricted_load

PERSISTENCE_VERSION = 6         # torch_utils.persistence._version of both NVIDIA repos


# --- stand-ins for NVIDIA's classes ----------------------------------------------------------------------------------

class AttrDict(dict):
    """Stand-in for dnnlib.util.EasyDict (a dict whose keys are also attributes); holds data, nothing more."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


@dataclass
class PersistentObject:
    """Stand-in for a torch_utils.persistence object: its class name, its source as text, and its state."""
    class_name: str
    module_src: str             # the NVIDIA module that defined the class; never executed
    state: dict
    version: int = PERSISTENCE_VERSION

    @classmethod
    def from_meta(cls, meta: Any) -> "PersistentObject":
        """What the stream's call to _reconstruct_persistent_obj(meta) becomes."""
        if not isinstance(meta, dict):
            raise StyleGANError(f"a persistent object's meta must be a dict, got {type(meta).__name__}")
        if meta.get("type") != "class":
            raise StyleGANError(f"persistent object of type {meta.get('type')!r}; only 'class' exists")
        state, name = meta.get("state"), meta.get("class_name")
        if not isinstance(state, dict) or not isinstance(name, str):
            raise StyleGANError("a persistent object needs a class_name string and a state dict")
        return cls(class_name=name, module_src=str(meta.get("module_src", "")), state=state,
                   version=int(meta.get("version", 0)))

    @property
    def init_args(self) -> tuple:
        return tuple(to_plain(self.state.get("_init_args") or ()))

    @property
    def init_kwargs(self) -> dict:
        return to_plain(dict(self.state.get("_init_kwargs") or {}))

    def child(self, name: str) -> "PersistentObject | None":
        child = (self.state.get("_modules") or {}).get(name)
        return child if isinstance(child, PersistentObject) else None

    def children(self) -> dict[str, "PersistentObject"]:
        return {k: v for k, v in (self.state.get("_modules") or {}).items() if isinstance(v, PersistentObject)}

    def attr(self, name: str, default: Any = None) -> Any:
        return to_plain(self.state.get(name, default))

    def tensors(self, prefix: str = "") -> dict[str, torch.Tensor]:
        """Every parameter and buffer below this module, by dotted name (like named_parameters + named_buffers)."""
        out: dict[str, torch.Tensor] = {}
        for group in ("_parameters", "_buffers"):
            for name, value in (self.state.get(group) or {}).items():
                if value is None:
                    continue
                if not isinstance(value, torch.Tensor):
                    raise StyleGANError(f"{prefix}{name} should be a tensor, got {type(value).__name__}")
                out[prefix + name] = value
        for name, child in (self.state.get("_modules") or {}).items():
            if child is None:
                continue
            if not isinstance(child, PersistentObject):
                raise StyleGANError(f"submodule {prefix}{name} is a {type(child).__name__}, not an NVIDIA module")
            out.update(child.tensors(f"{prefix}{name}."))
        return out

    def __repr__(self) -> str:      # the source and state are large; keep reprs readable
        return f"PersistentObject({self.class_name})"


def to_plain(value: Any) -> Any:
    """Recursively turn AttrDicts, OrderedDicts, tuples and numpy scalars into plain dicts, lists and numbers."""
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_plain(v) for v in value) if type(value) in (list, tuple) else [to_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


NVIDIA_GLOBALS: dict[str, Any] = {
    **BASIC_GLOBALS, **TORCH_GLOBALS, **NUMPY_GLOBALS,
    "torch_utils.persistence._reconstruct_persistent_obj": PersistentObject.from_meta,
    "dnnlib.util.EasyDict": AttrDict,
    "dnnlib.EasyDict": AttrDict,
    "dnnlib.tflib.network.Network": TFNetwork,
}
"""The allowlist for NVIDIA network pickles: tensors, numpy arrays, OrderedDict, and the stand-ins above."""


# --- what a pickle holds, as data ------------------------------------------------------------------------------------

@dataclass
class NetworkRecord:
    """One network of an NVIDIA pickle, as data: what to build and the tensors to load into it."""
    kind: str                                   # 'generator' or 'discriminator'
    family: str                                 # 'stylegan2', 'stylegan3' or 'discriminator'
    origin: str                                 # 'stylegan3', 'stylegan2-ada-pytorch' or 'tensorflow'
    init_kwargs: dict                           # NVIDIA constructor arguments as recorded (synthesis_kwargs flattened)
    tensors: dict[str, torch.Tensor]            # parameters and buffers by NVIDIA's (= our) dotted names
    derived_buffers: tuple[str, ...] = ()       # name suffixes our constructor computes that the file may lack (TF)
    ignored: list[str] = field(default_factory=list)   # file contents with no counterpart, and why


@dataclass
class TrainingExtras:
    """What else a training snapshot carries, for fine-tuning from it (e.g. to start ADA at the pickle's p)."""
    augment_p: float | None = None              # ADA's augmentation probability when the snapshot was taken
    augment_kwargs: dict | None = None          # AugmentPipe arguments (xflip=1, rotate90=1, ...)
    training_set_kwargs: dict | None = None     # the dataset arguments NVIDIA's train.py used
    resolution: int | None = None               # from training_set_kwargs
    xflip: bool | None = None                   # dataset x-flips were on
    use_labels: bool | None = None              # the dataset's labels conditioned the networks


@dataclass
class NvidiaPickle:
    """Everything read from an NVIDIA pickle, before any network is built."""
    format: str                                 # 'snapshot' (PyTorch repos) or 'tensorflow'
    networks: dict[str, NetworkRecord]          # a subset of 'G', 'D', 'G_ema'
    extras: TrainingExtras


@dataclass
class ImportedSnapshot:
    """Our modules built from an NVIDIA pickle, plus the training extras. Absent networks are None."""
    G: torch.nn.Module | None
    D: torch.nn.Module | None
    G_ema: torch.nn.Module | None
    extras: TrainingExtras
    format: str


WHAT_KEYS = {"g_ema": "G_ema", "g": "G", "d": "D"}


# --- reading ---------------------------------------------------------------------------------------------------------

def _describe(obj: Any) -> str:
    if isinstance(obj, dict):
        keys = ", ".join(repr(k) for k in list(obj)[:8]) + (", ..." if len(obj) > 8 else "")
        return f"a dict with keys {keys}"
    if isinstance(obj, (list, tuple)):
        kinds = ", ".join(type(v).__name__ for v in obj[:5])
        return f"a {type(obj).__name__} of {len(obj)} items ({kinds})"
    if isinstance(obj, PersistentObject):
        return f"a single NVIDIA {obj.class_name} module, not a snapshot dict"
    return f"a {type(obj).__name__}"


def read_nvidia_pickle(file: str | os.PathLike | BinaryIO, *, name: str | None = None,
                       progress: bool = False) -> NvidiaPickle:
    """Read an NVIDIA network pickle into records without building networks. Runs no code from the file.

    progress=True shows a byte counter on stderr for files over 16 MB (when stderr is a terminal).
    """
    if isinstance(file, (str, os.PathLike)):
        name = name or Path(file).name
        with open(file, "rb") as f:
            if progress and os.fstat(f.fileno()).st_size > 16 << 20 and sys.stderr.isatty():
                from tqdm import tqdm
                with tqdm(total=os.fstat(f.fileno()).st_size, unit="B", unit_scale=True, file=sys.stderr,
                          desc=f"reading {name}") as bar:
                    return read_nvidia_pickle(_CountingReader(f, bar.update), name=name)
            return read_nvidia_pickle(f, name=name)
    name = name or "the pickle"
    data = restricted_load(file, NVIDIA_GLOBALS, what=name)

    if isinstance(data, tuple) and len(data) == 3 and all(isinstance(v, TFNetwork) for v in data):
        tf_g, tf_d, tf_gs = data
        networks = {"G": _tf_record(tf_g, "generator"), "D": _tf_record(tf_d, "discriminator"),
                    "G_ema": _tf_record(tf_gs, "generator")}
        return NvidiaPickle("tensorflow", networks, TrainingExtras())

    if isinstance(data, dict) and any(isinstance(data.get(k), PersistentObject) for k in ("G", "D", "G_ema")):
        for key in ("G", "D", "G_ema"):
            if data.get(key) is not None and not isinstance(data[key], PersistentObject):
                raise StyleGANError(f"{name}: {key} is a {type(data[key]).__name__}, not an NVIDIA network")
        gens = [data[k] for k in ("G_ema", "G") if data.get(k) is not None and data[k].class_name == "Generator"]
        ada = is_ada_generator(gens[0]) if gens else None
        networks = {key: snapshot_record(data[key], ada=ada) for key in ("G", "D", "G_ema")
                    if data.get(key) is not None}
        return NvidiaPickle("snapshot", networks, _extras(data))

    raise StyleGANError(f"{name} is a pickle but not an NVIDIA network pickle: it holds {_describe(data)} "
                        "(expected a snapshot dict with G, D and G_ema, or a TensorFlow (G, D, Gs) tuple)")


class _CountingReader:
    """A file wrapper that reports how many bytes the unpickler has read (for a progress bar)."""

    def __init__(self, f: BinaryIO, report):
        self._f, self._report = f, report

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        self._report(len(data))
        return data

    def readline(self) -> bytes:
        data = self._f.readline()
        self._report(len(data))
        return data

    def tell(self) -> int:
        return self._f.tell()

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        # The bar follows the position: the checking pass moves it to the end, the reading pass starts over.
        before = self._f.tell()
        after = self._f.seek(offset, whence)
        self._report(after - before)
        return after


def _extras(data: dict) -> TrainingExtras:
    extras = TrainingExtras()
    pipe = data.get("augment_pipe")
    if isinstance(pipe, PersistentObject):
        p = (pipe.state.get("_buffers") or {}).get("p")
        extras.augment_p = float(p) if isinstance(p, torch.Tensor) and p.numel() == 1 else None
        extras.augment_kwargs = pipe.init_kwargs
    tsk = data.get("training_set_kwargs")
    if isinstance(tsk, dict):
        tsk = to_plain(tsk)
        extras.training_set_kwargs = tsk
        extras.resolution = tsk.get("resolution")
        extras.xflip = None if tsk.get("xflip") is None else bool(tsk.get("xflip"))
        extras.use_labels = None if tsk.get("use_labels") is None else bool(tsk.get("use_labels"))
    return extras


def _tf_record(net: TFNetwork, kind: str) -> NetworkRecord:
    conv = convert_generator(net) if kind == "generator" else convert_discriminator(net)
    family = "stylegan2" if kind == "generator" else "discriminator"
    # The resampling filters are computed by the constructor; TF never stored them.
    return NetworkRecord(kind, family, "tensorflow", conv.init_kwargs, conv.tensors,
                         derived_buffers=(".resample_filter",), ignored=conv.ignored)


# Positional constructor arguments, should a file record any (NVIDIA's train.py passes keywords only).
_POSITIONAL = {"Generator": ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels"),
               "Discriminator": ("c_dim", "img_resolution", "img_channels")}

def snapshot_record(obj: PersistentObject, *, ada: bool | None = None) -> NetworkRecord:
    """A record for one network of a PyTorch snapshot: G / G_ema (StyleGAN2 or StyleGAN3) or D.

    `ada` says whether the snapshot came from stylegan2-ada-pytorch, where known (its generator tells; see below).
    """
    kwargs = obj.init_kwargs
    for name, value in zip(_POSITIONAL.get(obj.class_name, ()), obj.init_args):
        kwargs.setdefault(name, value)

    if obj.class_name == "Generator":
        synthesis = obj.child("synthesis")
        if synthesis is None or obj.child("mapping") is None:
            raise StyleGANError("this Generator has no synthesis or mapping network; it is not one of NVIDIA's")
        if synthesis.child("input") is not None:                 # SynthesisInput: the Fourier features of StyleGAN3
            return NetworkRecord("generator", "stylegan3", "stylegan3", kwargs, obj.tensors())
        if synthesis.child("b4") is None:
            raise StyleGANError("this Generator's synthesis network is neither StyleGAN2's nor StyleGAN3's")
        if ada is None:
            ada = is_ada_generator(obj)
        kwargs.update(kwargs.pop("synthesis_kwargs", None) or {})
        blocks = [b for n, b in synthesis.children().items() if n.startswith("b")]
        _apply_recorded_precision(kwargs, blocks, "conv1")
        origin = "stylegan2-ada-pytorch" if ada else "stylegan3"
        return NetworkRecord("generator", "stylegan2", origin, kwargs, obj.tensors())

    if obj.class_name == "Discriminator":
        if obj.child("b4") is None:
            raise StyleGANError("this Discriminator has no 4x4 epilogue; it is not one of NVIDIA's")
        blocks = [b for n, b in obj.children().items() if n.startswith("b") and n != "b4"]
        _apply_recorded_precision(kwargs, blocks, "conv0")
        origin = "stylegan2-ada-pytorch" if ada else "stylegan3"
        return NetworkRecord("discriminator", "discriminator", origin, kwargs, obj.tensors())

    raise StyleGANError(f"an NVIDIA {obj.class_name} is not a network we can build "
                        "(expected Generator or Discriminator)")


def is_ada_generator(obj: PersistentObject) -> bool:
    """Whether a StyleGAN2 Generator comes from stylegan2-ada-pytorch rather than the stylegan3 repo.

    stylegan2-ada-pytorch nests the synthesis arguments in synthesis_kwargs (the stylegan3 repo passes them flat),
    and only the stylegan3 repo's SynthesisBlock has the attribute fused_modconv_default.
    """
    if "synthesis_kwargs" in (obj.state.get("_init_kwargs") or {}):
        return True
    synthesis = obj.child("synthesis")
    b4 = synthesis.child("b4") if synthesis is not None else None
    return b4 is not None and "fused_modconv_default" not in b4.state


def _apply_recorded_precision(kwargs: dict, blocks: list[PersistentObject], layer: str) -> None:
    """Take num_fp16_res and conv_clamp from what the blocks recorded, not from repo-dependent defaults.

    Each block stores use_fp16 and each conv layer its conv_clamp. The two repos' constructors default these
    differently (stylegan2-ada-pytorch: 0 and None; stylegan3: 4 and 256), so where the state has them, they decide.
    Blocks at resolution >= max(2 ** (log2(res) + 1 - num_fp16_res), 8) use fp16, so the count of fp16 blocks is
    the num_fp16_res that reproduces them.
    """
    flags = [b.state.get("use_fp16") for b in blocks]
    if flags and all(f is not None for f in flags):
        kwargs["num_fp16_res"] = int(sum(bool(f) for f in flags))
    layers = [b.child(layer) for b in blocks]
    if layers and all(c is not None and "conv_clamp" in c.state for c in layers):
        kwargs["conv_clamp"] = to_plain(layers[0].state["conv_clamp"])


# --- building our networks -------------------------------------------------------------------------------------------

def _nvidia_class(record: NetworkRecord) -> str:
    # The class NVIDIA's code would have built; it tells our config converter which repository's defaults apply.
    name = "Generator" if record.kind == "generator" else "Discriminator"
    if record.origin == "stylegan2-ada-pytorch":
        return f"training.networks.{name}"
    return f"training.networks_{'stylegan3' if record.family == 'stylegan3' else 'stylegan2'}.{name}"


def network_config(record: NetworkRecord):
    """Our GeneratorConfig or DiscriminatorConfig for a record."""
    if record.kind == "generator":
        return generator_config_from_nvidia_kwargs(record.init_kwargs, _nvidia_class(record))
    return discriminator_config_from_nvidia_kwargs(record.init_kwargs, _nvidia_class(record))


class _SkipRandomInit(TorchFunctionMode):
    """Inside this mode the random initialisers return uninitialised memory: for building a module whose every
    parameter and random buffer is then overwritten from a file (load_tensors checks that none is left)."""

    _RANDOM = {torch.randn: torch.empty, torch.rand: torch.empty, torch.randn_like: torch.empty_like,
               torch.rand_like: torch.empty_like}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        return self._RANDOM.get(func, func)(*args, **(kwargs or {}))


def build_network(record: NetworkRecord, device: str | torch.device = "cpu", *,
                  what: str = "network") -> torch.nn.Module:
    """Our module for a record, with every parameter and buffer taken from the file (eval mode, no grads)."""
    config = network_config(record)
    # Every parameter is then copied from the file's tensors, so arguments that describe a larger network than
    # those tensors (forged channel counts, say) are refused as soon as building it would exceed them. Counted as
    # float32, which our modules are, even where a file stores halves.
    budget = network_budget(sum(t.numel() * max(t.element_size(), 4) for t in record.tensors.values()))
    with _SkipRandomInit():             # drawing ~30M random numbers per network would double the load time
        module = build_network_within(config, budget, what)
    load_tensors(module, record, what=what)
    return module.eval().requires_grad_(False).to(device)


def load_tensors(module: torch.nn.Module, record: NetworkRecord, *, what: str = "network") -> None:
    """Copy record.tensors into `module` by name: every shape must match and nothing may be missing or left over
    (but for record.derived_buffers, which the constructor computes)."""
    ours = dict(module.named_parameters())
    ours.update(module.named_buffers())
    theirs = record.tensors
    derived = tuple(record.derived_buffers)
    missing = [n for n in ours if n not in theirs and not (derived and n.endswith(derived))]
    unused = [n for n in theirs if n not in ours]
    if missing or unused:
        parts = []
        if missing:
            parts.append(f"missing from the file: {', '.join(missing[:4])}" + (" ..." if len(missing) > 4 else ""))
        if unused:
            parts.append(f"not in our network: {', '.join(unused[:4])}" + (" ..." if len(unused) > 4 else ""))
        raise StyleGANError(f"{what}: the file does not match the network built from its arguments "
                            f"({'; '.join(parts)})")
    adopted: set[int] = set()
    with torch.no_grad():
        for name, dst in ours.items():
            if name not in theirs:
                continue
            src = theirs[name]
            if tuple(src.shape) != tuple(dst.shape):
                raise StyleGANError(f"{what}: {name} has shape {list(src.shape)} in the file but {list(dst.shape)} "
                                    "in the network built from its arguments")
            # A tensor that alone owns its storage is adopted as is (no copy); anything shared is copied, so
            # no two of our tensors ever alias.
            storage = src.untyped_storage()
            if (src.dtype == dst.dtype and src.device == dst.device and src.is_contiguous() and dst.is_contiguous()
                    and src.storage_offset() == 0 and storage.nbytes() == src.numel() * src.element_size()
                    and storage.data_ptr() not in adopted):
                adopted.add(storage.data_ptr())
                dst.data = src
            else:
                dst.copy_(src)


def _key_for(what: str, keys: list[str], name: str) -> str:
    """The snapshot key for what='g_ema'|'g'|'d'; a file with a single generator answers to both 'g' and 'g_ema'."""
    if what not in WHAT_KEYS:
        raise UsageError(f"what: {what!r} is not allowed; choose one of {', '.join(WHAT_KEYS)}")
    key = WHAT_KEYS[what]
    generators = [k for k in keys if k in ("G", "G_ema")]
    if key not in keys and what in ("g", "g_ema") and len(generators) == 1:
        key = generators[0]
    if key not in keys:
        raise StyleGANError(f"{name} has no {key} (it holds {', '.join(keys) or 'no networks'})")
    return key


def load_nvidia_network(path: str | os.PathLike, what: str = "g_ema",
                        device: str | torch.device = "cpu") -> torch.nn.Module:
    """One network ('g_ema', 'g' or 'd') of an NVIDIA pickle, as our module."""
    name = Path(path).name
    data = read_nvidia_pickle(path)
    key = _key_for(what, list(data.networks), name)
    return build_network(data.networks[key], device, what=f"{name}: {key}")


def load_nvidia_networks(path: str | os.PathLike, device: str | torch.device = "cpu") -> dict[str, torch.nn.Module]:
    """Every network of an NVIDIA pickle as our modules, by key ('G', 'D', 'G_ema')."""
    snap = load_nvidia_snapshot(path, device)
    return {key: net for key, net in (("G", snap.G), ("D", snap.D), ("G_ema", snap.G_ema)) if net is not None}


def load_nvidia_snapshot(path: str | os.PathLike, device: str | torch.device = "cpu") -> ImportedSnapshot:
    """Every network of an NVIDIA pickle as our modules, plus augment p and the dataset arguments."""
    name = Path(path).name
    data = read_nvidia_pickle(path)
    nets = {key: build_network(rec, device, what=f"{name}: {key}") for key, rec in data.networks.items()}
    return ImportedSnapshot(G=nets.get("G"), D=nets.get("D"), G_ema=nets.get("G_ema"), extras=data.extras,
                            format=data.format)


def is_nvidia_pickle(path: str | os.PathLike) -> bool:
    """Whether `path` is a pickle (which read_nvidia_pickle then examines); judged from its first bytes."""
    return sniff_format(path) == "pickle"
