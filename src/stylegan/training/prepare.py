"""From flags to a checked TrainingConfig, before any work starts.

Every kind of bad input is reported here, as one line that names the flag: a missing or invalid dataset, --cond
without labels, a batch that does not split across processes and --batch-gpu, an unwritable outdir, a device
that is not there, a damaged resume file, weights that do not fit the run.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import safetensors
import torch

from stylegan.core import dist
from stylegan.core.device import resolve_device
from stylegan.core.errors import StyleGANError, UsageError
from stylegan.data import ImageDataset
from stylegan.io.fetch import is_url, local_source, resolve_source
from stylegan.networks import generator_config
from stylegan.training import rundir
from stylegan.training.config import (
    TrainingConfig, TrainingFlags, auto_flags, data_path, missing_for_new_run, new_run_config, picks_batch_and_gamma,
    resumed_run_config)
from stylegan.training.state import is_training_state, load_training_state


def prepare_config(flags: TrainingFlags, *, quiet: bool = False) -> TrainingConfig:
    """Resolve and check the options of `stylegan train` (each flag None when not given).

    --resume latest         continue the newest run in --outdir from its newest training state; if that run has
                            none, start a new run when the flags describe one
    --resume STATE          continue the run that wrote this training-state-*.safetensors, in its directory
    --resume NETWORK|URL    a new run initialised from a network file (transfer learning); from a
                            training snapshot, --aug ada without --p starts at the snapshot's ADA p
    """
    say = (lambda *a: None) if quiet else dist.print0
    flags = dataclasses.replace(flags, gpus=dist.torchrun_world(flags.gpus))
    outdir = flags.outdir
    if not outdir:
        raise UsageError("--outdir is required: the folder that holds the numbered run directories")
    resume = flags.resume or None
    state_path = None
    if resume == "latest":
        state_path = rundir.find_latest_state(outdir)
        if state_path is None:
            missing = missing_for_new_run(flags)
            if missing:
                raise UsageError(f"--resume latest: the newest run in {outdir} has no training state to continue; "
                                 f"to start a new run instead, give {', '.join(missing)}")
            say(f"--resume latest: no training state in {outdir} yet; starting a new run")
            flags = dataclasses.replace(flags, resume=None)
    elif resume is not None:
        if is_url(resume):      # NVIDIA's docs fine-tune from a URL: downloaded once into the cache, then a file
            try:
                resume = str(resolve_source(resume))       # once per machine: the cache locks the download
            except StyleGANError as exc:
                raise UsageError(f"--resume: {exc}") from None
        path = local_source(resume)     # the file, or the shipped network by name (`--resume emoji`)
        if not path.is_file():
            raise UsageError(f"--resume {resume}: no such file; give a training-state-*.safetensors, a network "
                             "file, or 'latest'")
        if path.name.startswith(rundir.STATE_PREFIX) or is_training_state(path):
            state_path = path
        flags = dataclasses.replace(flags, resume=str(path))

    if state_path is not None:
        saved = _saved_config(state_path)
        config = resumed_run_config(saved, flags, str(state_path))
        config.run.resume = str(state_path)
        config.run.run_dir = str(Path(state_path).parent)
    else:
        if flags.resume:
            flags = _architecture_from_file(flags, Path(flags.resume), say)
        flags = _picked_for_resolution(flags, say)
        config = new_run_config(flags)
    rundir.check_outdir_writable(config.run.outdir)
    device = resolve_device(config.run.device)
    if device.type == "cuda" and config.run.gpus > 1 and not dist.launched_by_torchrun():
        if torch.cuda.device_count() < config.run.gpus:
            raise UsageError(f"--gpus {config.run.gpus}: only {torch.cuda.device_count()} CUDA GPU(s) are visible")
    _check_precision(config, device)
    _check_dataset(config, fresh=state_path is None)
    if config.run.metrics:
        from stylegan.training.metrics_hook import check_metrics
        check_metrics(config.run.metrics)
    if state_path is None and config.run.resume:
        from stylegan.training.transfer import adopt_file_settings, check_pretrained
        augment_p = check_pretrained(config, config.run.resume)
        adopt_file_settings(config, config.run.resume, augment_p, p_given=flags.p is not None,
                            kimg_given=flags.resume_kimg is not None, say=say)
    return config


def _architecture_from_file(flags: TrainingFlags, path: Path, say) -> TrainingFlags:
    """Fine-tuning one of our network files: --cfg, --cbase, --cmax and --map-depth that are not given are read from
    the file's generator config (given ones are checked against it later, by the transfer fit check)."""
    from stylegan.io.safetensors_format import is_safetensors_file, read_network_file
    from stylegan.training.transfer import architecture_flags
    if not is_safetensors_file(path):
        return flags                    # NVIDIA's pickles: the flags are given, as with NVIDIA's train.py
    try:
        configs, _ = read_network_file(path)
    except StyleGANError:
        return flags                    # a damaged file: the transfer check says what is wrong with it
    G = configs.get("G_ema") or configs.get("G")
    if G is None or getattr(G, "cfg", None) is None:
        return flags
    taken = {k: v for k, v in architecture_flags(G).items() if getattr(flags, k) is None}
    if taken:
        say(f"--resume {path.name}: " + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in taken.items()) +
            " taken from the file")
    return dataclasses.replace(flags, **taken)


def _picked_for_resolution(flags: TrainingFlags, say) -> TrainingFlags:
    """--cfg auto, or a stylegan3 cfg without --batch or --gamma: fill in what it picks for the dataset's resolution
    and the GPU count, and say what that is."""
    if flags.data is None or not (flags.cfg == "auto" or (picks_batch_and_gamma(flags.cfg) and
                                                           (flags.batch is None or flags.gamma is None))):
        return flags                    # no dataset: new_run_config names the missing flag
    with _open_dataset(data_path(flags.data), cond=bool(flags.cond), mirror=bool(flags.mirror)) as dataset:
        resolution = dataset.resolution
    flags, line = auto_flags(flags, resolution)
    say(line)
    return flags


def _open_dataset(path: str, cond: bool, mirror: bool) -> ImageDataset:
    try:
        return ImageDataset(path, use_labels=cond, xflip=mirror)
    except StyleGANError as exc:
        raise UsageError(f"--data: {exc}") from None


def _saved_config(path: Path) -> TrainingConfig:
    try:
        with safetensors.safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        return TrainingConfig.from_dict(json.loads(meta["config"]))
    except Exception:  # noqa: BLE001
        load_training_state(path)       # raises the precise message for a damaged file
        raise StyleGANError(f"--resume {path}: the training state holds no readable config") from None


def _check_precision(config: TrainingConfig, device: torch.device) -> None:
    n = config.network
    if n.precision == "auto":
        # Mixed precision is a CUDA feature; on a CPU it would only change conv_clamp.
        n.precision = "fp16" if device.type == "cuda" else "fp32"
    # bf16 autocast runs on the CPU and on CUDA GPUs with bfloat16 (Ampere and later).
    if n.precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise UsageError(f"--precision bf16: this GPU ({torch.cuda.get_device_name(device)}) does not support "
                         "bfloat16; use --precision fp16 or fp32")
    if n.precision == "bf16" and device.type not in ("cuda", "cpu"):
        raise UsageError(f"--precision bf16: runs on the CPU or a CUDA GPU, not on {device.type}; "
                         "use --precision fp32")


def _check_dataset(config: TrainingConfig, fresh: bool) -> None:
    d = config.data
    with _open_dataset(d.path, d.cond, d.mirror) as dataset:
        if d.cond and not dataset.has_labels:
            raise UsageError(f"--cond: the dataset {d.path} has no labels (no dataset.json with labels); "
                             "drop --cond, or build the dataset with labels (stylegan dataset --help)")
        found = dict(name=dataset.name, resolution=dataset.resolution, channels=dataset.num_channels,
                     label_dim=dataset.label_dim, size=len(dataset) // (2 if d.mirror else 1))
    if not fresh:
        for key in ("resolution", "channels", "label_dim"):
            if getattr(d, key) != found[key]:
                raise UsageError(f"--data {d.path}: the dataset now has {key} {found[key]}, but the run being "
                                 f"resumed was trained with {key} {getattr(d, key)}")
    for key, value in found.items():
        setattr(d, key, value)
    try:
        generator_config(config.network.cfg, d.resolution, d.label_dim)
    except UsageError:
        low = 16 if config.network.cfg.startswith("stylegan3") else 8
        raise UsageError(f"--data {d.path}: images are {d.resolution}x{d.resolution}; --cfg {config.network.cfg} "
                         f"needs square images whose side is a power of two >= {low}") from None
