"""Training configuration: typed options per component, a table of presets, and the rules that resolve them.

A run is described by one `TrainingConfig`. It is resolved from the preset for `--cfg` plus the flags, checked
before any work starts, written to `training_options.json`, and stored in every snapshot and training state.
The defaults and presets are those of NVIDIA's stylegan3 `train.py`, so its users get the dynamics they know.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stylegan.augment import AUG_MODES, AugmentConfig
from stylegan.core.errors import UsageError

CFG_CHOICES = ("stylegan3-t", "stylegan3-r", "stylegan2")
PRECISION_CHOICES = ("auto", "fp32", "fp16", "bf16")


@dataclass(frozen=True)
class Preset:
    """What differs between the three configurations (NVIDIA stylegan3 train.py, "Base configuration")."""
    map_depth: int              # mapping network layers
    glr: float                  # generator learning rate
    style_mixing_prob: float    # style mixing regularisation (StyleGAN2 paper, sec. 3.2 of StyleGAN)
    pl_weight: float            # path length regularisation weight (StyleGAN2 eq. 4)
    pl_interval: int            # lazy regularisation interval for G; 0 = no Greg phase
    blur_init_sigma: float      # blur of D's input images at kimg 0, in pixels
    blur_fade_kimg_32: float    # the blur fades out over this many kimg at batch 32 (scaled with the batch)


PRESETS: dict[str, Preset] = {
    #                         map_depth  glr     style_mixing  pl_weight  pl_interval  blur_sigma  blur_fade
    "stylegan3-t": Preset(    2,         0.0025, 0.0,          0.0,       0,           0.0,        0.0),
    "stylegan3-r": Preset(    2,         0.0025, 0.0,          0.0,       0,           10.0,       200.0),
    "stylegan2":   Preset(    8,         0.002,  0.9,          2.0,       4,           0.0,        0.0),
}


@dataclass
class NetworkOptions:
    cfg: str = "stylegan3-t"            # stylegan3-t | stylegan3-r | stylegan2
    cbase: int = 32768                  # capacity multiplier: channels = min(cbase / resolution, cmax)
    cmax: int = 512                     # maximum number of feature maps
    map_depth: int = 2                  # mapping network depth (preset: 8 for stylegan2, 2 for stylegan3)
    mbstd_group: int = 4                # minibatch standard deviation group size, within each batch_gpu chunk
    freezed: int = 0                    # freeze the first N layers of D (Freeze-D), counted from the input
    freeze_mapping: bool = False        # keep the mapping network fixed (transfer learning)
    precision: str = "auto"             # auto | fp32 | fp16 | bf16; auto = fp16 on CUDA, fp32 elsewhere.
                                        # fp16: the top 4 resolutions in fp16 with conv_clamp 256 (CUDA only);
                                        # bf16: autocast everywhere, no clamp (bf16 has fp32's exponent range)


@dataclass
class LossOptions:
    r1_gamma: float = 10.0              # R1 weight; the penalty is gamma/2 * |grad D(x)|^2 (Mescheder et al. 2018)
    r1_interval: int = 16               # lazy R1: one Dreg minibatch every 16 D minibatches (StyleGAN2 sec. 3.1)
    style_mixing_prob: float = 0.0
    pl_weight: float = 0.0
    pl_interval: int = 0                # lazy path length regularisation; 0 = off
    pl_batch_shrink: int = 2            # the Greg phase uses batch_gpu / 2 images
    pl_decay: float = 0.01              # decay of the running path length mean a
    blur_init_sigma: float = 0.0
    blur_fade_kimg: float = 0.0


@dataclass
class OptimizerOptions:
    glr: float = 0.0025                 # G learning rate (preset: 0.002 for stylegan2)
    dlr: float = 0.002                  # D learning rate
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
    cond: bool = False                  # condition G and D on the dataset's labels
    mirror: bool = False                # add x-flipped copies of every image
    workers: int = 3                    # DataLoader worker processes (0 = load in the training process)


@dataclass
class RunOptions:
    outdir: str = ""
    run_dir: str = ""                   # resolved: <outdir>/<id>-<cfg>-<data>-gpus<N>-batch<B>-gamma<G>[-desc]
    desc: str = ""
    kimg: float = 25000.0               # total training length, in thousands of real images shown to D
    tick: float = 4.0                   # progress line every this many kimg
    snap: int = 50                      # snapshot every this many ticks
    seed: int = 0
    batch: int = 32                     # global batch, summed over processes
    batch_gpu: int = 32                 # images per process per forward pass; less than batch/gpus accumulates
    gpus: int = 1                       # number of processes (world size)
    device: str = "auto"
    metrics: list[str] = field(default_factory=list)
    resume: str = ""                    # '' | training state path | network file used as initial weights
    resume_kimg: float = 0.0            # kimg to start counting from
    compile: bool = False               # torch.compile G and D in the phases that differentiate once


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

# Defaults of the flags that have one (shown in --help and docs/training.md).
FLAG_DEFAULTS: dict[str, Any] = dict(
    gpus=1, cond=False, mirror=False, aug="ada", target=0.6, augpipe="bgc", freezed=0, freeze_mapping=False,
    cbase=32768, cmax=512, dlr=0.002, mbstd_group=4, desc="", metrics="fid50k_full", kimg=25000, tick=4, snap=50,
    seed=0, precision="auto", fp32=False, workers=3, device="auto", resume_kimg=0, compile=False,
)

# Flags without a default: a new run needs all of them.
FRESH_RUN_FLAGS = ("outdir", "cfg", "data", "batch", "gamma")

# Flags that a resumed run may change: how long it runs, how often it reports, where and how it runs (and --gpus).
# --compile changes speed, not dynamics: compiled code draws the same random numbers (core/compile.py).
RESUME_MAY_CHANGE = ("kimg", "tick", "snap", "metrics", "workers", "device", "compile")


def parse_metrics(text: str | list[str] | None) -> list[str]:
    if text is None:
        return []
    if isinstance(text, (list, tuple)):
        return [str(t) for t in text]
    names = [t.strip() for t in str(text).split(",") if t.strip()]
    return [] if names in ([], ["none"]) else names


def new_run_config(flags: dict[str, Any]) -> TrainingConfig:
    """Resolve the preset for --cfg plus the given flags into a config for a new run (dataset not opened yet).

    `flags` holds the CLI's values by option name (outdir, cfg, data, batch, gamma, ...); None = not given.
    """
    f = {k: v for k, v in flags.items() if v is not None}
    for name in FRESH_RUN_FLAGS:
        if name not in f:
            raise UsageError(f"--{name.replace('_', '-')} is required to start a new run "
                             "(only --outdir is needed with --resume latest)")
    get = lambda name: f.get(name, FLAG_DEFAULTS.get(name))  # noqa: E731
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
    for name in ("kimg", "tick"):
        if float(get(name)) <= 0:
            raise UsageError(f"--{name} {get(name)}: must be positive")
    if int(get("snap")) < 1:
        raise UsageError(f"--snap {get('snap')}: must be at least 1 tick")
    for name in ("glr", "dlr"):
        if name in f and float(f[name]) < 0:
            raise UsageError(f"--{name} {f[name]}: must be zero or positive")

    transfer = bool(f.get("resume"))  # a network file: fine-tuning from its weights (NVIDIA's --resume pkl)
    # --p: the fixed probability with --aug fixed, the starting p with --aug ada (0 unless given).
    augment = AugmentConfig.from_flags(aug=f.get("aug"), p=f.get("p"), target=f.get("target"),
                                       augpipe=f.get("augpipe"), speed_kimg=100.0 if transfer else 500.0)
    config = TrainingConfig(
        network=NetworkOptions(
            cfg=cfg, cbase=int(get("cbase")), cmax=int(get("cmax")),
            map_depth=int(f.get("map_depth") or preset.map_depth), mbstd_group=mbstd,
            freezed=int(get("freezed")), freeze_mapping=bool(get("freeze_mapping")), precision=precision),
        loss=LossOptions(
            r1_gamma=gamma, style_mixing_prob=preset.style_mixing_prob, pl_weight=preset.pl_weight,
            pl_interval=preset.pl_interval,
            # NVIDIA turns the blur off when fine-tuning: the resumed D already knows sharp images.
            blur_init_sigma=0.0 if transfer else preset.blur_init_sigma,
            blur_fade_kimg=preset.blur_fade_kimg_32 * batch / 32),
        optim=OptimizerOptions(
            glr=float(f.get("glr", preset.glr)), dlr=float(get("dlr")),
            ema_kimg=batch * 10 / 32, ema_rampup=None if transfer else 0.05),
        augment=augment,
        data=DataOptions(path=data_path(str(get("data"))), cond=bool(get("cond")), mirror=bool(get("mirror")),
                         workers=int(get("workers"))),
        run=RunOptions(
            outdir=str(Path(str(get("outdir"))).expanduser().resolve()), desc=str(get("desc") or ""), kimg=float(get("kimg")), tick=float(get("tick")),
            snap=int(get("snap")), seed=int(get("seed")), batch=batch, batch_gpu=batch_gpu, gpus=gpus,
            device=str(get("device")), metrics=parse_metrics(get("metrics")), resume=str(f.get("resume") or ""),
            resume_kimg=float(get("resume_kimg")), compile=bool(get("compile"))),
    )
    return config


def data_path(text: str) -> str:
    """--data as an absolute path (so a run can be resumed from another folder); a bundled set's name ('demo',
    'openmoji') stays a name."""
    from stylegan.data import is_bundled_dataset
    return text if is_bundled_dataset(text) else str(Path(text).expanduser().resolve())


def resumed_run_config(saved: TrainingConfig, flags: dict[str, Any], state_path: str) -> TrainingConfig:
    """The config of a run continued from its training state: the saved one, with only RESUME_MAY_CHANGE flags
    taking new values. Any other flag that is given must agree with the saved run."""
    config = TrainingConfig.from_dict(saved.to_dict())
    saved_flags = config_as_flags(saved)
    given = {k: v for k, v in flags.items() if v is not None and k not in ("outdir", "resume", "gpus")}
    if "data" in given:
        given["data"] = data_path(str(given["data"]))
    if given.pop("fp32", False):
        given["precision"] = "fp32"
    if given.get("precision") == "auto":
        del given["precision"]
    for name, value in given.items():
        if name not in RESUME_MAY_CHANGE and not _same(saved_flags.get(name), value):
            raise UsageError(
                f"--{name.replace('_', '-')} {value}: the run being resumed ({state_path}) was trained with "
                f"--{name.replace('_', '-')} {saved_flags.get(name, '(unset)')}; drop the flag to continue it, or "
                f"start a new run without --resume. Flags a resumed run may change: "
                + ", ".join('--' + n for n in RESUME_MAY_CHANGE + ("gpus",)))
    for name, (section, convert) in _RESUME_OVERRIDES.items():
        if flags.get(name) is not None:
            setattr(getattr(config, section), name, convert(flags[name]))
    if flags.get("gpus") is not None and int(flags["gpus"]) != saved.run.gpus:
        # With the same batch_gpu chunks the dynamics do not depend on the world size (see loop.py), so a run
        # may move to more or fewer GPUs.
        gpus = int(flags["gpus"])
        if saved.run.batch % gpus != 0 or (saved.run.batch // gpus) % saved.run.batch_gpu != 0:
            raise UsageError(f"--gpus {gpus}: the resumed run's --batch {saved.run.batch} and --batch-gpu "
                             f"{saved.run.batch_gpu} do not divide evenly across {gpus} GPUs")
        config.run.gpus = gpus
    return config


def config_as_flags(config: TrainingConfig) -> dict[str, Any]:
    """The flag values that produce `config` (for comparing a resumed run's flags with the saved ones)."""
    return dict(
        cfg=config.network.cfg, data=config.data.path, batch=config.run.batch, batch_gpu=config.run.batch_gpu,
        gamma=config.loss.r1_gamma, cond=config.data.cond, mirror=config.data.mirror, aug=config.augment.mode,
        p=config.augment.p, target=config.augment.target, augpipe=config.augment.augpipe,
        freezed=config.network.freezed, freeze_mapping=config.network.freeze_mapping, cbase=config.network.cbase,
        cmax=config.network.cmax, map_depth=config.network.map_depth, mbstd_group=config.network.mbstd_group,
        glr=config.optim.glr, dlr=config.optim.dlr, desc=config.run.desc, seed=config.run.seed,
        resume_kimg=config.run.resume_kimg, precision=config.network.precision, compile=config.run.compile,
    )


_RESUME_OVERRIDES = {"kimg": ("run", float), "tick": ("run", float), "snap": ("run", int),
                     "metrics": ("run", parse_metrics), "workers": ("data", int), "device": ("run", str),
                     "compile": ("run", bool)}


def _same(a: Any, b: Any) -> bool:
    if a is None:
        return False
    if isinstance(a, float) or isinstance(b, float):
        try:
            return float(a) == float(b)
        except (TypeError, ValueError):
            return False
    return str(a) == str(b)
