"""The training loop: ticks, snapshots, logs. `train(config)` runs (or continues) one run and returns its directory.

    tick        every --tick kimg: one progress line, one line of stats.jsonl (rank 0 prints and writes)
    snapshot    every --snap ticks and at the end: network-snapshot-<kimg>.safetensors, fakes<kimg>.png,
                training-state-<nimg>.safetensors (written last, so a state always has its snapshot), metrics,
                curves.png
All files are written atomically. A run stopped at any moment continues with `--resume latest` from its last
complete training state, as if it had never stopped.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import torch

from stylegan.core import dist
from stylegan.core.errors import StyleGANError
from stylegan.core.files import atomic_write
from stylegan.core.misc import derive_seed
from stylegan.data import ImageDataset
from stylegan.training import rundir
from stylegan.training.config import TrainingConfig
from stylegan.training.images import grid_indices, grid_shape, save_image_grid
from stylegan.training.plots import plot_curves
from stylegan.training.state import load_training_state, save_training_state
from stylegan.training.stats import TickLog, format_duration, peak_memory_gb
from stylegan.training.phases import Trainer

# A run stops when the losses have been NaN or Inf for this many consecutive steps (the gradients of such
# steps are zeroed, so the networks stop changing and the run would only burn time).
MAX_NONFINITE_STEPS = 10


class TrainingDiverged(StyleGANError):
    """The losses stayed non-finite; the run stopped without overwriting its last good snapshot."""


def train(config: TrainingConfig) -> Path:
    """Train as `config` says (see prepare.prepare_config); under torchrun, every process calls this."""
    device = dist.process_device(config.run.device)
    dist.init(device.type)
    if dist.get_world_size() != config.run.gpus:
        raise StyleGANError(f"this run expects {config.run.gpus} processes but {dist.get_world_size()} were started")
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True
    set_tf32(config.network.precision)
    dist.barrier()                                        # every rank has resolved its config before rank 0 writes
    state = load_training_state(config.run.resume) if _resuming_state(config) else None
    run_dir = Path(config.run.run_dir) if state is not None else _new_run_dir(config)
    config.run.run_dir = str(run_dir)
    log_path = run_dir / "log.txt" if dist.get_rank() == 0 else None
    with rundir.tee_output(log_path):
        _Loop(config, device, run_dir, state).run()
    return run_dir


def set_tf32(precision: str) -> None:
    """TF32 matmuls and convolutions (CUDA only; the flags are plain booleans elsewhere) for a resolved --precision.

    fp32 keeps them off, as NVIDIA's train.py does: its numbers are exact fp32. With fp16 or bf16 the run has
    chosen speed over exact numbers already, so the layers left in fp32 may use TF32 too."""
    on = precision in ("fp16", "bf16")
    torch.backends.cuda.matmul.allow_tf32 = on
    torch.backends.cudnn.allow_tf32 = on


def _resuming_state(config: TrainingConfig) -> bool:
    return bool(config.run.resume) and Path(config.run.resume).name.startswith(rundir.STATE_PREFIX)


def _new_run_dir(config: TrainingConfig) -> Path:
    """Rank 0 numbers and creates the directory; the others receive its name."""
    name = torch.zeros([4096], dtype=torch.uint8)
    if dist.get_rank() == 0:
        path = rundir.next_run_dir(config.run.outdir, config.describe())
        path.mkdir(parents=True, exist_ok=False)
        encoded = str(path).encode()
        name[:len(encoded)] = torch.tensor(list(encoded), dtype=torch.uint8)
    if dist.get_world_size() > 1:
        carrier = name.to("cuda" if torch.distributed.get_backend() == "nccl" else "cpu")
        dist.broadcast_(carrier, src=0)
        name = carrier.cpu()
    return Path(bytes(name[name != 0].tolist()).decode())


class _Loop:
    def __init__(self, config: TrainingConfig, device: torch.device, run_dir: Path, state):
        self.config, self.device, self.run_dir, self.state = config, device, run_dir, state
        self.rank0 = dist.get_rank() == 0
        self.skipped_metrics: set[str] = set()      # metrics whose feature network is unavailable (offline)

    def run(self) -> None:
        c, print0 = self.config, dist.print0
        start_time = time.time()
        resumed = self.state is not None
        print0(f"{'Resuming' if resumed else 'Starting'} {self.run_dir}")
        dataset = ImageDataset(c.data.path, use_labels=c.data.cond, xflip=c.data.mirror)
        print0(f"Dataset: {dataset.name}, {len(dataset):,} images of {dataset.image_shape} "
               f"(labels: {dataset.label_dim or 'none'}, mirror: {c.data.mirror})")
        trainer = Trainer(c, dataset, self.device)
        tick, total_sec = 0, 0.0
        if resumed:
            trainer.load_state(self.state)
            tick, total_sec = int(self.state.counters["tick"]), float(self.state.counters["total_sec"])
            print0(f"Continuing from {Path(c.run.resume).name}: kimg {trainer.nimg / 1000:g}, tick {tick}")
            self.state = None
            if self.rank0:
                rundir.remove_stale_temporaries(self.run_dir)
        elif c.run.resume:
            from stylegan.training.transfer import load_pretrained
            load_pretrained(trainer, c.run.resume)
            print0(f"Initialised G, D and G_ema from {c.run.resume}")
        print0(f"G: {_count(trainer.G):,} parameters, D: {_count(trainer.D):,} parameters; "
               f"precision {c.network.precision} on {self.device}; {c.run.gpus} process(es), batch {c.run.batch} "
               f"= {c.run.gpus} x {c.accum_rounds} x {c.run.batch_gpu}{_accumulation(c)}")

        self.grid = None
        if self.rank0:
            self._setup_grid(dataset, trainer, write_start_images=not resumed)
            with atomic_write(self.run_dir / "training_options.json", "w") as f:
                f.write(c.to_json())
        tick_log = TickLog(self.run_dir, resume_nimg=trainer.nimg if resumed else None) if self.rank0 else None

        print0(f"Training for {c.run.kimg:g} kimg...")
        total_nimg = c.total_nimg
        tick_start_nimg, tick_start_time = trainer.nimg, time.time()
        maintenance = tick_start_time - start_time
        done = trainer.nimg >= total_nimg
        while not done:
            trainer.step()
            done = trainer.nimg >= total_nimg
            if not done and tick != 0 and trainer.nimg < tick_start_nimg + c.run.tick * 1000:
                continue

            # Tick: report.
            tick_end_time = time.time()
            stats = trainer.collect_stats()
            tick_sec = tick_end_time - tick_start_time
            total_sec += tick_end_time - tick_start_time + maintenance
            sec_per_kimg = tick_sec / max(trainer.nimg - tick_start_nimg, 1) * 1000
            fields = {"tick": tick, "kimg": trainer.nimg / 1000, "total_sec": total_sec, "sec_per_tick": tick_sec,
                      "sec_per_kimg": sec_per_kimg, "maintenance_sec": maintenance,
                      "peak_mem_gb": peak_memory_gb(self.device), **stats, "timestamp": time.time()}
            if self.device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(self.device)
            print0(_progress_line(fields, (total_nimg - trainer.nimg) / 1000 * sec_per_kimg))
            if tick_log is not None:
                tick_log.write(fields)
            if stats["nonfinite_streak"] >= MAX_NONFINITE_STEPS:
                raise TrainingDiverged(
                    f"training diverged: the losses were NaN or Inf for {int(stats['nonfinite_streak'])} steps in a "
                    f"row by kimg {trainer.nimg / 1000:g}; the last good snapshot and training state in "
                    f"{self.run_dir} are kept. Start a new run from that network-snapshot with --resume and a "
                    "lower --glr/--dlr, a larger --gamma, or --fp32")

            # Snapshot, unless losses were NaN/Inf in this tick: the last good state must not be pruned for it.
            if (done or tick % c.run.snap == 0) and stats["nonfinite_steps"] > 0:
                print0(f"warning: no snapshot at kimg {trainer.nimg / 1000:g}: the losses were NaN or Inf in "
                       f"{int(stats['nonfinite_steps'])} step(s) of this tick")
            elif done or tick % c.run.snap == 0:
                self._snapshot(trainer, tick + 1, total_sec)
            tick += 1
            tick_start_nimg, tick_start_time = trainer.nimg, time.time()
            maintenance = tick_start_time - tick_end_time

        if tick_log is not None:
            tick_log.close()
        if self.rank0:
            last = rundir.snapshot_name(trainer.nimg)
            print0(f"Done: {trainer.nimg / 1000:g} kimg in {format_duration(total_sec)}.")
            print0(f"  network: {self.run_dir / last}")
            print0(f"  fakes:   {self.run_dir / rundir.fakes_name(trainer.nimg)}")
            print0(f"  curves:  {self.run_dir / 'curves.png'}")

    # ---- pictures -----------------------------------------------------------------------------------------

    def _setup_grid(self, dataset, trainer: Trainer, write_start_images: bool) -> None:
        c = self.config
        gw, gh = grid_shape(c.data.resolution)
        indices = grid_indices(dataset, gw, gh, c.run.seed)
        gen = torch.Generator().manual_seed(derive_seed(c.run.seed, "grid"))
        z = torch.randn([len(indices), trainer.G.z_dim], generator=gen)
        labels = torch.stack([torch.from_numpy(dataset.get_label(i)) for i in indices])
        self.grid = ((gw, gh), z, labels)
        if write_start_images:
            reals = torch.stack([torch.from_numpy(dataset[i][0]) for i in indices])
            save_image_grid(reals, self.run_dir / "reals.png", drange=(0, 255), grid=(gw, gh))
            self._save_fakes(trainer, self.run_dir / "fakes_init.png")

    @torch.no_grad()
    def _save_fakes(self, trainer: Trainer, path: Path) -> None:
        grid, z, labels = self.grid
        batch = self.config.run.batch_gpu
        images = [trainer.G_ema(zb.to(self.device), cb.to(self.device), noise_mode="const").cpu()
                  for zb, cb in zip(z.split(batch), labels.split(batch))]
        save_image_grid(torch.cat(images), path, drange=(-1, 1), grid=grid)

    # ---- snapshots ----------------------------------------------------------------------------------------

    def _snapshot(self, trainer: Trainer, next_tick: int, total_sec: float) -> None:
        c = self.config
        snapshot = self.run_dir / rundir.snapshot_name(trainer.nimg)
        if self.rank0:      # every rank holds the same networks and optimizer states; rank 0 writes them
            tensors, groups = trainer.state_tensors()
            counters = {**trainer.state_counters(), "tick": next_tick, "total_sec": total_sec,
                        "kimg": trainer.nimg / 1000}
            self._save_fakes(trainer, self.run_dir / rundir.fakes_name(trainer.nimg))
            _save_network_snapshot(snapshot, trainer, c)
            save_training_state(self.run_dir / rundir.state_name(trainer.nimg), tensors, config=c.to_dict(),
                                counters=counters, optimizers=groups)
            rundir.prune_states(self.run_dir)
        dist.barrier()
        if c.run.metrics:
            from stylegan.training.metrics_hook import evaluate_metrics
            evaluate_metrics(c, trainer.G_ema, self.run_dir, snapshot, trainer.nimg, self.device,
                             skipped=self.skipped_metrics)
        if self.rank0:
            plot_curves(self.run_dir)


def _save_network_snapshot(path: Path, trainer: Trainer, config: TrainingConfig) -> None:
    from stylegan.io import save_networks
    nets = {"G": trainer.G, "D": trainer.D, "G_ema": trainer.G_ema}
    # ADA's p travels with the networks, as in NVIDIA's snapshots, so that fine-tuning from this file starts there.
    augment_p = float(trainer.augment_pipe.p) if trainer.augment_pipe is not None else None
    save_networks(nets, path, extra_metadata={"kimg": trainer.nimg / 1000, "augment_p": augment_p,
                                              "training_options": config.to_dict()})


def _accumulation(config: TrainingConfig) -> str:
    """How the chunks of a step combine, when there are several (loss.py)."""
    if config.accum_rounds == 1:
        return ""
    if config.loss.accumulate == "nvidia":
        return f"; {config.accum_rounds} chunks summed, statistics per chunk, as NVIDIA's loop"
    return f"; {config.accum_rounds} chunks averaged"


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _progress_line(f: dict, eta_sec: float) -> str:
    kimg = f"{f['kimg']:.3f}" if f["kimg"] < 10 else f"{f['kimg']:.1f}"
    parts = [f"tick {f['tick']:<4d}", f"kimg {kimg:<8s}", f"time {format_duration(f['total_sec']):<8s}",
             f"sec/kimg {f['sec_per_kimg']:<7.2f}", f"ETA {format_duration(eta_sec):<8s}"]
    for key, label in (("loss/G", "G"), ("loss/D", "D"), ("r1_penalty", "r1"), ("pl_penalty", "pl"),
                       ("augment_p", "p")):
        if key in f:
            parts.append(f"{label} {f[key]:.3f}")
    parts.append(f"mem {f['peak_mem_gb']:.2f}GB")
    if f.get("nonfinite_grads"):
        parts.append(f"nonfinite {int(f['nonfinite_grads'])}")
    return "  ".join(parts)


def describe_config(config: TrainingConfig) -> str:
    """What --dry-run prints: the resolved options and a summary."""
    return "\n".join([
        "Training options:", config.to_json(), "",
        f"Output directory:    {config.run.run_dir or os.path.join(config.run.outdir, '<next>-' + config.describe())}",
        f"Processes:           {config.run.gpus}",
        f"Batch:               {config.run.batch} images ({config.run.batch_gpu} per forward pass"
        f"{_accumulation(config)})",
        f"Training length:     {config.run.kimg:g} kimg",
        f"Dataset:             {config.data.path} ({config.data.size:,} images, {config.data.resolution}x"
        f"{config.data.resolution}, labels: {config.data.label_dim or 'none'}, mirror: {config.data.mirror})",
    ])


