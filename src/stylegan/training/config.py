"""Training configuration: typed options per component, a table of presets, and the rules that resolve them.

A run is described by one `TrainingConfig`. It is resolved from the preset for `--cfg` plus the flags, checked
before any work starts, written to `training_options.json`, and stored in every snapshot and training state.
The defaults and presets are those of NVIDIA's stylegan3 `train.py`, so its users get the dynamics they know.

Every `stylegan train` flag is one row of `OPTIONS`: its config field, type, default, help and whether --resume
may change it. The click options (cli/train.py), the dataclass defaults, `TrainingFlags`, `config_as_flags` and
the resume rules are all read from that table.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from stylegan.augment import AUG_MODES, AugmentConfig
from stylegan.core.device import DEVICE_CHOICES
from stylegan.core.errors import UsageError
from stylegan.networks.presets import PRESETS as NETWORK_PRESETS


def parse_metrics(text: str | list[str] | None) -> list[str]:
    if text is None:
        return []
    if isinstance(text, (list, tuple)):
        return [str(t) for t in text]
    names = [t.strip() for t in str(text).split(",") if t.strip()]
    return [] if names in ([], ["none"]) else names


def data_path(text: str) -> str:
    """--data as an absolute path (so a run can be resumed from another folder); a bundled set's name ('demo',
    'openmoji') stays a name."""
    from stylegan.data import is_bundled_dataset
    return text if is_bundled_dataset(text) else str(Path(text).expanduser().resolve())


# ---------------------------------------------------------------------------------------------------------------
# The flag table. One row per `stylegan train` option: the click option (cli/train.py), the TrainingConfig field
# and its default (the dataclasses below), config_as_flags and the --resume rules all come from these rows, so a
# new training option is one row here plus the code that uses its field.

KEEP = "keep"           # a resumed run must agree with the saved value (it shapes the networks or the dynamics)
CHANGE = "change"       # a resumed run may change it: how long it runs, how often it reports, where it runs
SPLIT = "split"         # a resumed run may change it when the saved batch still splits evenly (--gpus)
PLACE = "place"         # not compared: where the runs are, or what --resume itself points at


@dataclass(frozen=True)
class Option:
    """One row of the flag table."""
    name: str                       # the flag, with underscores: batch_gpu is --batch-gpu
    field: str | None               # 'section.field' of TrainingConfig that holds it; None = no field of its own
    type: type                      # int | float | bool | str
    default: Any                    # the value when the flag is not given; None = none fixed (a preset, batch/gpus)
    help: str                       # --help text; the note in brackets is added from `default` or `note`
    resume: str                     # KEEP | CHANGE | SPLIT | PLACE, see above
    choices: tuple[str, ...] = ()   # the allowed values, for a choice
    min: float | None = None        # the allowed range, shown by --help as [x>=min]
    max: float | None = None
    metavar: str | None = None
    note: str | None = None         # the bracketed note in --help when it is not "default: <default>"; "" = none
    required: bool = False          # a new run needs it (unless --cfg picks it; a resumed run has it saved)
    convert: Callable[[Any], Any] | None = None     # flag value -> field value; None = `type`

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def to_field(self, value: Any) -> Any:
        return (self.convert or self.type)(value)

    @property
    def help_note(self) -> str:
        if self.note is not None:
            return f"  [{self.note}]" if self.note else ""
        return f"  [default: {self.default}]" if self.default is not None else ""


CFG_CHOICES = ("stylegan3-t", "stylegan3-r", "stylegan2", "auto")
PRECISION_CHOICES = ("auto", "fp32", "fp16", "bf16")
ACCUMULATE_CHOICES = ("mean", "nvidia")      # how a step's batch_gpu chunks combine (training/loss.py)
_AUGMENT = AugmentConfig()              # the augmentation flags' defaults are the augment config's own
_NEW = "required for a new run"
_PICKED = "required for a new stylegan2 run; auto and stylegan3 pick it"

OPTIONS: tuple[Option, ...] = (
    Option("outdir", "run.outdir", str, None, "Where the numbered run directories go.", PLACE,
           metavar="DIR", note="required", required=True, convert=lambda text: str(Path(text).expanduser().resolve())),
    Option("cfg", "network.cfg", str, None,
           "Base configuration; auto = StyleGAN2 with StyleGAN2-ADA's settings for the resolution and GPU count.",
           KEEP, choices=CFG_CHOICES, note=_NEW, required=True),
    Option("data", "data.path", str, None, "Training images ('demo', 'openmoji' = the bundled sets).", KEEP,
           metavar="ZIP|DIR", note=_NEW, required=True, convert=lambda text: data_path(str(text))),
    Option("batch", "run.batch", int, None, "Total batch size, over all GPUs.", KEEP, metavar="INT", note=_PICKED,
           required=True),
    Option("gamma", "loss.r1_gamma", float, None, "R1 regularisation weight.", KEEP, metavar="FLOAT", note=_PICKED,
           required=True),
    Option("gpus", "run.gpus", int, 1, "Processes to launch on this machine (under torchrun: the world size).",
           SPLIT, min=1, metavar="INT"),
    Option("batch_gpu", "run.batch_gpu", int, None,
           "Images per forward pass; less than batch/gpus accumulates gradients.", KEEP, min=1, metavar="INT",
           note="default: batch/gpus"),
    Option("accumulate", "loss.accumulate", str, "mean",
           "With --batch-gpu below batch/gpus: 'mean' averages the chunks (the same dynamics however the batch is "
           "split); 'nvidia' sums their gradients and advances pl_mean, w_avg and the magnitude EMAs once per "
           "chunk, as NVIDIA's train.py does.", KEEP, choices=ACCUMULATE_CHOICES),
    Option("cond", "data.cond", bool, False, "Condition on the dataset's labels.", KEEP),
    Option("mirror", "data.mirror", bool, False, "Add x-flipped copies of the images.", KEEP),
    Option("aug", "augment.mode", str, _AUGMENT.mode, "Augmentation mode.", KEEP, choices=AUG_MODES),
    Option("p", "augment.p", float, None,
           "Probability for --aug fixed (required there); starting p for --aug ada.", KEEP, min=0, max=1,
           metavar="FLOAT", note="default: 0, or the p stored in a snapshot given to --resume"),
    Option("target", "augment.target", float, _AUGMENT.target, "ADA target.", KEEP, min=0, max=1, metavar="FLOAT"),
    Option("augpipe", "augment.augpipe", str, _AUGMENT.augpipe, "Augmentation pipeline preset.", KEEP,
           metavar="NAME"),
    Option("resume", "run.resume", str, None,
           "Continue a run ('latest' or a training-state file), or start from the weights of a network file "
           "(.safetensors, NVIDIA .pkl, or a URL of one).", PLACE, metavar="latest|STATE|NETWORK",
           convert=lambda text: str(text or "")),
    Option("resume_kimg", "run.resume_kimg", float, 0, "With a network file: the kimg to start counting from.",
           KEEP, min=0, metavar="KIMG"),
    Option("freezed", "network.freezed", int, 0, "Freeze the first N layers of D (Freeze-D).", KEEP, min=0,
           metavar="INT"),
    Option("freeze_mapping", "network.freeze_mapping", bool, False, "Keep G's mapping network fixed.", KEEP),
    Option("cbase", "network.cbase", int, 32768, "Capacity multiplier.", KEEP, min=1, metavar="INT"),
    Option("cmax", "network.cmax", int, 512, "Max. feature maps.", KEEP, min=1, metavar="INT"),
    Option("map_depth", "network.map_depth", int, None, "Mapping network depth.", KEEP, min=1, metavar="INT",
           note="default: 8 stylegan2, 2 stylegan3"),
    Option("mbstd_group", "network.mbstd_group", int, 4, "Minibatch stddev group size.", KEEP, min=1,
           metavar="INT"),
    Option("glr", "optim.glr", float, None, "G learning rate.", KEEP, min=0, metavar="FLOAT",
           note="default: 0.002 stylegan2, 0.0025 stylegan3"),
    Option("dlr", "optim.dlr", float, 0.002, "D learning rate.", KEEP, min=0, metavar="FLOAT"),
    Option("desc", "run.desc", str, "", "Text appended to the run directory's name.", KEEP, metavar="STR", note="",
           convert=lambda text: str(text or "")),
    Option("metrics", "run.metrics", str, "fid50k_full", "Metrics at each snapshot.", CHANGE,
           metavar="NAME,...|none", convert=parse_metrics),
    Option("kimg", "run.kimg", float, 25000, "Training length, thousands of images.", CHANGE, metavar="KIMG"),
    Option("tick", "run.tick", float, 4, "Progress line every this many kimg.", CHANGE, metavar="KIMG"),
    Option("snap", "run.snap", int, 50, "Snapshot every this many ticks.", CHANGE, metavar="TICKS"),
    Option("seed", "run.seed", int, 0, "Random seed.", KEEP, min=0, metavar="INT"),
    Option("fp32", None, bool, False, "Disable mixed precision (same as --precision fp32).", KEEP),
    Option("precision", "network.precision", str, "auto",
           "auto = fp16 in the top 4 resolutions on CUDA, fp32 elsewhere; bf16 = autocast, no clamp (CPU, or a "
           "GPU with bfloat16).", KEEP, choices=PRECISION_CHOICES),
    # --compile changes speed, not dynamics: compiled code draws the same random numbers (core/compile.py).
    Option("compile", "run.compile", bool, False,
           "torch.compile G and D (eager with one warning if that fails; R1 and path length stay eager). A "
           "resumed run may turn it on or off.", CHANGE),
    Option("workers", "data.workers", int, 3, "DataLoader worker processes.", CHANGE, min=0, metavar="INT"),
    Option("device", "run.device", str, "auto", "Where to run: auto picks CUDA, then MPS, then CPU.", CHANGE,
           metavar="|".join(DEVICE_CHOICES)),
)
OPTION = {o.name: o for o in OPTIONS}


@dataclass(frozen=True)
class Preset:
    """What differs between the three configurations in training (NVIDIA stylegan3 train.py, "Base
    configuration"); the mapping depth, which shapes the network, is networks.presets' `map_depth`."""
    glr: float                  # generator learning rate
    style_mixing_prob: float    # style mixing regularisation (StyleGAN2 paper, sec. 3.2 of StyleGAN)
    pl_weight: float            # path length regularisation weight (StyleGAN2 eq. 4)
    pl_interval: int            # lazy regularisation interval for G; 0 = no Greg phase
    blur_init_sigma: float      # blur of D's input images at kimg 0, in pixels
    blur_fade_kimg_32: float    # the blur fades out over this many kimg at batch 32 (scaled with the batch)


PRESETS: dict[str, Preset] = {
    #                         glr     style_mixing  pl_weight  pl_interval  blur_sigma  blur_fade
    "stylegan3-t": Preset(    0.0025, 0.0,          0.0,       0,           0.0,        0.0),
    "stylegan3-r": Preset(    0.0025, 0.0,          0.0,       0,           10.0,       200.0),
    "stylegan2":   Preset(    0.002,  0.9,          2.0,       4,           0.0,        0.0),
}


def _default(path: str) -> Any:
    """The dataclass default of a field that a flag sets: the flag's default, as the field holds it."""
    option = _BY_FIELD[path]
    return option.to_field(option.default)


_BY_FIELD = {o.field: o for o in OPTIONS if o.field}


@dataclass
class NetworkOptions:
    cfg: str = "stylegan3-t"            # stylegan3-t | stylegan3-r | stylegan2
    cbase: int = _default("network.cbase")      # capacity multiplier: channels = min(cbase / resolution, cmax)
    cmax: int = _default("network.cmax")        # maximum number of feature maps
    map_depth: int = 2                  # mapping network depth (preset: 8 for stylegan2, 2 for stylegan3)
    mbstd_group: int = _default("network.mbstd_group")  # minibatch stddev group size, within each batch_gpu chunk
    freezed: int = _default("network.freezed")  # freeze the first N layers of D (Freeze-D), counted from the input
    freeze_mapping: bool = _default("network.freeze_mapping")   # keep the mapping network fixed (transfer learning)
    precision: str = _default("network.precision")
    # auto | fp32 | fp16 | bf16; auto = fp16 on CUDA, fp32 elsewhere. fp16: the top 4 resolutions in fp16 with
    # conv_clamp 256 (CUDA only); bf16: autocast everywhere, no clamp (bf16 has fp32's exponent range)


@dataclass
class LossOptions:
    r1_gamma: float = 10.0              # R1 weight; the penalty is gamma/2 * |grad D(x)|^2 (Mescheder et al. 2018)
    r1_interval: int = 16               # lazy R1: one Dreg minibatch every 16 D minibatches (StyleGAN2 sec. 3.1)
    style_mixing_prob: float = 0.0
    pl_weight: float = 0.0
    pl_interval: int = 0                # lazy path length regularisation; 0 = off
    pl_batch_shrink: int = 2            # the Greg phase uses batch_gpu / 2 images
    pl_decay: float = 0.01              # decay of the running path length mean a
    accumulate: str = _default("loss.accumulate")   # mean | nvidia: how a step's batch_gpu chunks combine (loss.py)
    blur_init_sigma: float = 0.0
    blur_fade_kimg: float = 0.0


@dataclass
class OptimizerOptions:
    glr: float = 0.0025                 # G learning rate (preset: 0.002 for stylegan2)
    dlr: float = _default("optim.dlr")  # D learning rate
    betas: tuple[float, float] = (0.0, 0.99)
    eps: float = 1e-8
    ema_kimg: float = 10.0              # half-life of the G_ema average, in kimg: batch * 10 / 32
    ema_rampup: float | None = 0.05     # the half-life is at most rampup * nimg at the start; None = no rampup


@dataclass
class DataOptions:
    path: str = ""                      # zip, folder, or 'demo'
    name: str = ""                      # resolved from the dataset
    resolution: int = 0                 # resolved from the dataset
    channels: int = 0                   # resolved from the dataset
    label_dim: int = 0                  # resolved: 0 unless --cond
    size: int = 0                       # number of images, before --mirror doubles them
    cond: bool = _default("data.cond")  # condition G and D on the dataset's labels
    mirror: bool = _default("data.mirror")      # add x-flipped copies of every image
    workers: int = _default("data.workers")     # DataLoader worker processes (0 = load in the training process)


@dataclass
class RunOptions:
    outdir: str = ""
    run_dir: str = ""                   # resolved: <outdir>/<id>-<cfg>-<data>-gpus<N>-batch<B>-gamma<G>[-desc]
    desc: str = _default("run.desc")
    kimg: float = _default("run.kimg")  # total training length, in thousands of real images shown to D
    tick: float = _default("run.tick")  # progress line every this many kimg
    snap: int = _default("run.snap")    # snapshot every this many ticks
    seed: int = _default("run.seed")
    batch: int = 32                     # global batch, summed over processes
    batch_gpu: int = 32                 # images per process per forward pass; less than batch/gpus accumulates
    gpus: int = _default("run.gpus")    # number of processes (world size)
    device: str = _default("run.device")
    metrics: list[str] = field(default_factory=lambda: _default("run.metrics"))
    resume: str = ""                    # '' | training state path | network file used as initial weights
    resume_kimg: float = _default("run.resume_kimg")    # kimg to start counting from
    compile: bool = _default("run.compile")     # torch.compile G and D in the phases that differentiate once


@dataclass
class TrainingConfig:
    network: NetworkOptions = field(default_factory=NetworkOptions)
    loss: LossOptions = field(default_factory=LossOptions)
    optim: OptimizerOptions = field(default_factory=OptimizerOptions)
    augment: AugmentConfig = field(default_factory=AugmentConfig)     # --aug --p --target --augpipe (ADA)
    data: DataOptions = field(default_factory=DataOptions)
    run: RunOptions = field(default_factory=RunOptions)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainingConfig":
        """Rebuild from to_dict(); keys this version does not know are an error, missing keys take defaults."""
        parts = {}
        for f in dataclasses.fields(cls):
            sub_cls = type(getattr(cls(), f.name))
            values = dict(data.get(f.name, {}))
            known = {sf.name for sf in dataclasses.fields(sub_cls)}
            unknown = set(values) - known
            if unknown:
                raise ValueError(f"unknown training option(s) {sorted(unknown)} in section '{f.name}'")
            if "betas" in values:
                values["betas"] = tuple(values["betas"])
            parts[f.name] = sub_cls(**values)
        return cls(**parts)

    @classmethod
    def from_json(cls, text: str) -> "TrainingConfig":
        return cls.from_dict(json.loads(text))

    @property
    def batch_per_gpu(self) -> int:
        return self.run.batch // self.run.gpus

    @property
    def accum_rounds(self) -> int:
        """How many batch_gpu chunks each process accumulates per step."""
        return self.batch_per_gpu // self.run.batch_gpu

    @property
    def total_nimg(self) -> int:
        return int(round(self.run.kimg * 1000))

    def describe(self) -> str:
        """The run directory name after its number: stylegan3-t-demo-gpus1-batch32-gamma2."""
        desc = (f"{self.network.cfg}-{self.data.name}-gpus{self.run.gpus}-batch{self.run.batch}"
                f"-gamma{self.loss.r1_gamma:g}")
        return f"{desc}-{self.run.desc}" if self.run.desc else desc


# ---------------------------------------------------------------------------------------------------------------
# Flags -> config. Every flag is optional here; None means "not given", so that a resumed run can tell the
# flags the user changed from the ones they left alone.

class _Flags:
    """Methods of TrainingFlags (whose fields are made from OPTIONS below)."""

    def given(self) -> dict[str, Any]:
        """The flags that were given, by name."""
        return {name: value for name, value in dataclasses.asdict(self).items() if value is not None}

    def as_args(self, *, leave_out: tuple[str, ...] = ()) -> list[str]:
        """The given flags as `stylegan train` arguments (--batch-gpu=4 ...), e.g. to launch more processes."""
        return [f"{OPTION[name].flag}={value}" for name, value in self.given().items() if name not in leave_out]


# The flags of one `stylegan train` call, typed: TrainingFlags(outdir="runs", cfg="stylegan2", data="ffhq.zip",
# batch=32, gamma=10). One field per row of OPTIONS, each None unless given; a misspelt name is a TypeError.
TrainingFlags = dataclasses.make_dataclass(
    "TrainingFlags", [(o.name, f"{o.type.__name__} | None", field(default=None)) for o in OPTIONS],
    bases=(_Flags,), frozen=True)
TrainingFlags.__module__ = __name__

# Flags without a default: a new run needs all of them.
FRESH_RUN_FLAGS = tuple(o.name for o in OPTIONS if o.required)

# Flags that a resumed run may change (--gpus last: it may change only when the saved batch splits across it).
RESUME_MAY_CHANGE = tuple(o.name for o in OPTIONS if o.resume == CHANGE) + \
    tuple(o.name for o in OPTIONS if o.resume == SPLIT)


def _set(config: TrainingConfig, path: str, value: Any) -> None:
    section, name = path.split(".")
    setattr(getattr(config, section), name, value)


def _get(config: TrainingConfig, path: str) -> Any:
    section, name = path.split(".")
    return getattr(getattr(config, section), name)


def new_run_config(flags: TrainingFlags) -> TrainingConfig:
    """Resolve the preset for --cfg plus the given flags into a config for a new run (dataset not opened yet)."""
    f = flags.given()
    if f.get("cfg") == "auto":
        raise UsageError("--cfg auto picks its settings from the dataset's resolution: prepare_config reads it "
                         "(or call auto_flags with the resolution first)")
    for name in FRESH_RUN_FLAGS:
        if name not in f:
            raise UsageError(f"{OPTION[name].flag} is required to start a new run "
                             "(only --outdir is needed with --resume latest)")
    get = lambda name: f.get(name, OPTION[name].default)  # noqa: E731
    cfg = get("cfg")
    if cfg not in PRESETS:
        raise UsageError(f"--cfg {cfg}: unknown configuration; choose one of {', '.join(CFG_CHOICES)}")
    preset = PRESETS[cfg]
    batch = int(get("batch"))
    gpus = int(get("gpus"))
    if batch < 1:
        raise UsageError(f"--batch {batch}: must be at least 1")
    if gpus < 1:
        raise UsageError(f"--gpus {gpus}: must be at least 1")
    if batch % gpus != 0:
        raise UsageError(f"--batch {batch} does not divide evenly across --gpus {gpus}; use a multiple of {gpus}")
    batch_gpu = int(f.get("batch_gpu") or batch // gpus)
    if batch_gpu < 1 or (batch // gpus) % batch_gpu != 0:
        raise UsageError(f"--batch-gpu {batch_gpu} does not divide the per-GPU batch {batch // gpus} "
                         f"(--batch {batch} / --gpus {gpus}); use a divisor of {batch // gpus}")
    mbstd = int(get("mbstd_group"))
    if batch_gpu % min(mbstd, batch_gpu) != 0 or batch_gpu < mbstd:
        raise UsageError(f"--batch-gpu {batch_gpu} must be a multiple of --mbstd-group {mbstd} "
                         "(the minibatch-stddev groups are formed within each batch_gpu chunk)")
    gamma = float(get("gamma"))
    if gamma < 0:
        raise UsageError(f"--gamma {gamma:g}: must be zero or positive")
    precision = get("precision")
    if f.get("fp32"):
        precision = "fp32"
    if precision not in PRECISION_CHOICES:
        raise UsageError(f"--precision {precision}: choose one of {', '.join(PRECISION_CHOICES)}")
    if get("accumulate") not in ACCUMULATE_CHOICES:
        raise UsageError(f"--accumulate {get('accumulate')}: choose one of {', '.join(ACCUMULATE_CHOICES)}")
    for name in ("kimg", "tick"):
        if float(get(name)) <= 0:
            raise UsageError(f"--{name} {get(name)}: must be positive")
    if int(get("snap")) < 1:
        raise UsageError(f"--snap {get('snap')}: must be at least 1 tick")
    for name in ("glr", "dlr"):
        if name in f and float(f[name]) < 0:
            raise UsageError(f"--{name} {f[name]}: must be zero or positive")

    config = TrainingConfig()
    for o in OPTIONS:       # every flag with a field of its own lands there; augment resolves its four itself
        if o.field and not o.field.startswith("augment.") and get(o.name) is not None:
            _set(config, o.field, o.to_field(get(o.name)))
    # What the flags do not set one to one: the preset's values, and what follows from the batch and --resume.
    transfer = bool(f.get("resume"))  # a network file: fine-tuning from its weights (NVIDIA's --resume pkl)
    config.run.batch_gpu = batch_gpu
    config.network.map_depth = int(f.get("map_depth") or NETWORK_PRESETS[cfg].map_depth)
    config.network.precision = precision
    config.loss = LossOptions(
        r1_gamma=gamma, style_mixing_prob=preset.style_mixing_prob, pl_weight=preset.pl_weight,
        pl_interval=preset.pl_interval, accumulate=config.loss.accumulate,
        # NVIDIA turns the blur off when fine-tuning: the resumed D already knows sharp images.
        blur_init_sigma=0.0 if transfer else preset.blur_init_sigma,
        blur_fade_kimg=preset.blur_fade_kimg_32 * batch / 32)
    config.optim.glr = float(f.get("glr", preset.glr))
    config.optim.ema_kimg = batch * 10 / 32
    config.optim.ema_rampup = None if transfer else 0.05
    # --p: the fixed probability with --aug fixed, the starting p with --aug ada (0 unless given).
    config.augment = AugmentConfig.from_flags(aug=f.get("aug"), p=f.get("p"), target=f.get("target"),
                                              augpipe=f.get("augpipe"), speed_kimg=100.0 if transfer else 500.0)
    return config


def resumed_run_config(saved: TrainingConfig, flags: TrainingFlags, state_path: str) -> TrainingConfig:
    """The config of a run continued from its training state: the saved one, with only RESUME_MAY_CHANGE flags
    taking new values. Any other flag that is given must agree with the saved run."""
    config = TrainingConfig.from_dict(saved.to_dict())
    saved_flags = config_as_flags(saved)
    given = {k: v for k, v in flags.given().items() if OPTION[k].resume in (KEEP, CHANGE)}
    if given.get("cfg") == "auto":      # the saved run's settings are what auto picked when it started
        del given["cfg"]
    if "data" in given:
        given["data"] = data_path(str(given["data"]))
    if given.pop("fp32", False):
        given["precision"] = "fp32"
    if given.get("precision") == "auto":
        del given["precision"]
    for name, value in given.items():
        if OPTION[name].resume != CHANGE and not _same(saved_flags.get(name), value):
            flag = OPTION[name].flag
            raise UsageError(
                f"{flag} {value}: the run being resumed ({state_path}) was trained with "
                f"{flag} {saved_flags.get(name, '(unset)')}; drop the flag to continue it, or "
                f"start a new run without --resume. Flags a resumed run may change: "
                + ", ".join(OPTION[n].flag for n in RESUME_MAY_CHANGE))
    gpus = flags.gpus
    if gpus is not None and int(gpus) != saved.run.gpus:
        # With the same batch_gpu chunks the dynamics do not depend on the world size (see loop.py), so a run
        # may move to more or fewer GPUs.
        gpus = int(gpus)
        if saved.run.batch % gpus != 0 or (saved.run.batch // gpus) % saved.run.batch_gpu != 0:
            raise UsageError(f"--gpus {gpus}: the resumed run's --batch {saved.run.batch} and --batch-gpu "
                             f"{saved.run.batch_gpu} do not divide evenly across {gpus} GPUs")
        if saved.loss.accumulate == "nvidia":
            # NVIDIA's accumulation advances the statistics once per chunk of a process: another world size
            # changes the chunks per process, and with them the dynamics.
            raise UsageError(f"--gpus {gpus}: the resumed run accumulates with --accumulate nvidia, whose dynamics "
                             f"depend on the chunks per process; continue it on --gpus {saved.run.gpus}")
    for name in RESUME_MAY_CHANGE:
        value = getattr(flags, name)
        if value is not None:
            _set(config, OPTION[name].field, OPTION[name].to_field(value))
    return config


def config_as_flags(config: TrainingConfig) -> dict[str, Any]:
    """The flag values that produce `config`: one per row of OPTIONS that has a field (for comparing a resumed
    run's flags with the saved ones; new_run_config of them gives the config back)."""
    return {o.name: _get(config, o.field) for o in OPTIONS if o.field}


def missing_for_new_run(flags: TrainingFlags) -> list[str]:
    """The flags a new run needs that were not given (--cfg auto and stylegan3 pick --batch and --gamma)."""
    return [OPTION[name].flag for name in FRESH_RUN_FLAGS if getattr(flags, name) is None
            and not (name in ("batch", "gamma") and picks_batch_and_gamma(flags.cfg))]


# ---------------------------------------------------------------------------------------------------------------
# Settings picked from the resolution and the GPU count: --cfg auto, and stylegan3 runs without --batch or --gamma.

AUTO_MAP_DEPTH = 2              # StyleGAN2-ADA's auto config: a shallow mapping network, as StyleGAN3's
# NVIDIA's recommended --batch-gpu for stylegan3 runs (docs/configs.md), by resolution: what fits a 16-32 GB GPU.
SG3_BATCH_GPU = {"stylegan3-t": {128: 16, 256: 16, 512: 8, 1024: 4},
                 "stylegan3-r": {128: 16, 256: 8, 512: 4, 1024: 4}}
SG3_BATCH = 32                  # every recommended stylegan3 configuration trains with batch 32


def picks_batch_and_gamma(cfg: str | None) -> bool:
    """Whether --cfg chooses --batch and --gamma itself when they are not given."""
    return cfg == "auto" or str(cfg).startswith("stylegan3")


def stylegan2_ada_auto(resolution: int, gpus: int, batch: int | None = None) -> dict[str, Any]:
    """StyleGAN2-ADA's `--cfg auto` (Karras et al. 2020, train.py): a StyleGAN2 whose batch, R1 gamma, learning
    rates, mapping depth, capacity and minibatch-stddev group follow from the resolution and the GPU count. A given
    batch replaces the picked one, and gamma, the group and the EMA (batch * 10/32 kimg) follow the batch in use."""
    if batch is None:
        # As many images per GPU as keep the memory at bay (4096 / resolution, at most 32), 64 at most in all.
        batch = max(min(gpus * min(4096 // resolution, 32), 64), gpus)
    lr = 0.002 if resolution >= 1024 else 0.0025
    return dict(cfg="stylegan2", batch=batch,
                gamma=0.0002 * resolution ** 2 / batch,     # NVIDIA's heuristic: R1 weight ~ pixels / batch
                glr=lr, dlr=lr, map_depth=AUTO_MAP_DEPTH, cbase=32768 if resolution >= 512 else 16384,
                mbstd_group=min(batch // gpus, 4))


def stylegan3_recommended(cfg: str, resolution: int, gpus: int, batch: int | None = None) -> dict[str, Any]:
    """NVIDIA's recommended stylegan3 settings (stylegan3 docs/configs.md): batch 32 on any number of GPUs, gamma
    0.5, 2, 8 and 32 at 128, 256, 512 and 1024 px (x4 for each doubling of the resolution, the rule of thumb given
    there), and the --batch-gpu that fits a GPU's memory there. A given batch keeps the gamma and sets no
    --batch-gpu."""
    gamma = resolution ** 2 / 32768
    if batch is not None:
        return dict(gamma=gamma)
    if SG3_BATCH % gpus != 0:
        raise UsageError(f"--cfg {cfg}: NVIDIA's recommended --batch {SG3_BATCH} does not split across --gpus "
                         f"{gpus}; give --batch, a multiple of {gpus}")
    picked = dict(batch=SG3_BATCH, gamma=gamma)
    table = SG3_BATCH_GPU[cfg]
    cap = table.get(resolution, table[1024] if resolution > 1024 else None)     # below 128 px: no limit
    if cap is not None and cap < SG3_BATCH // gpus:
        picked["batch_gpu"] = cap
    return picked


def auto_flags(flags: TrainingFlags, resolution: int) -> tuple[TrainingFlags, str]:
    """The flags with what --cfg picks from the resolution and GPU count filled in where they were not given, and
    a line that says what was picked (printed, and shown by --dry-run)."""
    gpus = int(flags.gpus or 1)
    if flags.cfg == "auto":
        picked = stylegan2_ada_auto(resolution, gpus, flags.batch)
        what, source = "StyleGAN2 with ", "StyleGAN2-ADA's --cfg auto"
    else:
        picked = stylegan3_recommended(flags.cfg, resolution, gpus, flags.batch)
        what, source = "", "NVIDIA's recommended stylegan3 settings"
    picked = {k: v for k, v in picked.items() if k == "cfg" or getattr(flags, k) is None}
    batch = picked.get("batch", flags.batch)
    shown = " ".join(f"{OPTION[k].flag} {v:g}" for k, v in picked.items() if k != "cfg")
    line = (f"--cfg {flags.cfg} at {resolution}x{resolution} on {gpus} GPU{'s' if gpus > 1 else ''}: {what}{shown} "
            f"({source}; G_ema half-life {batch * 10 / 32:g} kimg)")
    return dataclasses.replace(flags, **picked), line


def _same(a: Any, b: Any) -> bool:
    if a is None:
        return False
    if isinstance(a, float) or isinstance(b, float):
        try:
            return float(a) == float(b)
        except (TypeError, ValueError):
            return False
    return str(a) == str(b)
