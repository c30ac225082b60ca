"""The training phases (Gmain, Greg, Dmain, Dreg), their optimizers and counters: `Trainer.step()` trains on one
global minibatch.

Order of operations per step (NVIDIA's training loop): Gmain, Greg (every pl_interval steps), Dmain, Dreg (every
r1_interval steps), each phase zeroing, accumulating (over batch_gpu chunks: the mean of the chunks, or with
--accumulate nvidia their sum; see loss.py), averaging across ranks and applying its gradient; then the G_ema
update, the counters, and ADA's p.

Randomness. Everything random at a step is a function of the seed and the image count nimg, never of the
process layout:
  - the real images are positions [nimg, nimg + batch) of the sampler's global stream, the latents z and the
    labels for fakes are drawn for the whole global batch from generators seeded by (seed, nimg);
  - process `rank` takes its slice of these, and splits it into batch_gpu chunks; chunk j of rank r is global
    chunk r * chunks + j;
  - before every chunk of every phase, torch's global generators are seeded from (seed, nimg, phase, global
    chunk), which fixes the synthesis noise, style mixing, the path length noise and the augmentations.
So N processes with batch/N images each compute what one process computes with batch_gpu-sized chunks, and a
resumed run repeats exactly what the uninterrupted run would have done: only the model, optimizer, EMA, ADA and
path length state and the counters need to be restored.

Float order. Each chunk backpropagates into empty .grads and the chunks' gradients are added in chunk order
(fold_chunk_grads), summed over ranks and divided once by the chunks in the step (ema.average_), so one process
adds its chunks as the all-reduce adds the ranks'. For two chunks against two processes that is the same single
add, and the bits are the same (on one CPU thread each: a convolution's gradient sums in an order that depends on
the thread count). More chunks split another way add in other orders (one process left to right, the backend's
own order over more ranks), and agree to float rounding; docs/training.md has the figures.
"""
from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from stylegan.augment import build_augment
from stylegan.core import dist
from stylegan.core.misc import derive_seed
from stylegan.data import InfiniteSampler
from stylegan.networks import build_from_config, discriminator_config, generator_config
from stylegan.training.config import TrainingConfig
from stylegan.training.ema import TrackedBuffers, average_, ema_beta, update_ema
from stylegan.training.loss import StyleGANLoss
from stylegan.training.state import TrainingState, load_optimizer, module_tensors, optimizer_tensors, restore_rng
from stylegan.training.stats import TrainingStats


@dataclass
class Phase:
    name: str                           # Gmain | Greg | Dmain | Dreg
    opt: torch.optim.Optimizer          # shared by the main and reg phases of one network
    interval: int                       # runs when batch_idx % interval == 0; its gradient is scaled by interval
    params: list[torch.nn.Parameter]    # what this phase trains


def network_configs(config: TrainingConfig):
    """The GeneratorConfig and DiscriminatorConfig of a resolved training config (networks.presets)."""
    n, d = config.network, config.data
    # fp16: NVIDIA's mixed precision, the top 4 resolutions in fp16 (on CUDA) with conv_clamp 256 to keep fp16's
    # range. bf16 builds the fp32 networks (no clamp) and runs them under autocast: bfloat16 has fp32's exponent
    # range, so activations cannot overflow and clamping would only change the dynamics.
    fp16 = n.precision == "fp16"
    g = generator_config(n.cfg, d.resolution, d.label_dim, cbase=n.cbase, cmax=n.cmax, map_depth=n.map_depth,
                         batch=config.run.batch, fp16=fp16, img_channels=d.channels)
    dc = discriminator_config(n.cfg, d.resolution, d.label_dim, cbase=n.cbase, cmax=n.cmax,
                              mbstd_group=n.mbstd_group, freezed=n.freezed, fp16=fp16, img_channels=d.channels)
    return g, dc


class _RankBatches:
    """Batch sampler: each step takes the next `batch` positions of the global stream; this rank's slice of them."""

    def __init__(self, sampler: InfiniteSampler, batch: int, rank: int, per_rank: int):
        self.sampler, self.batch, self.lo, self.hi = sampler, batch, rank * per_rank, (rank + 1) * per_rank

    def __iter__(self) -> Iterator[list[int]]:
        stream = iter(self.sampler)
        while True:
            step = [next(stream) for _ in range(self.batch)]
            yield step[self.lo:self.hi]


def fold_chunk_grads(params: list[torch.nn.Parameter], total: list[torch.Tensor | None]) -> list[torch.Tensor | None]:
    """Move the gradient of the chunk just backpropagated out of .grad into the step's running sum, in chunk order.

    Each chunk's backward passes (two in Dmain: fakes, then reals) start from empty .grads, so a chunk's gradient
    is the same sum of the same terms whether its process holds one chunk or several, and one process adds the
    chunks' gradients as the all-reduce adds the ranks': (gen0 + real0) + (gen1 + real1), not
    ((gen0 + real0) + gen1) + real1. The cost is one gradient-sized buffer per parameter, for steps of several
    chunks only."""
    if not total:
        total = [None] * len(params)
    for i, p in enumerate(params):
        if p.grad is not None:
            if total[i] is None:
                total[i] = p.grad
            else:
                total[i].add_(p.grad)
            p.grad = None
    return total


class Trainer:
    def __init__(self, config: TrainingConfig, dataset, device: torch.device):
        c = config
        self.config = config
        self.dataset = dataset
        self.device = device
        self.rank = dist.get_rank()
        self.per_rank = c.batch_per_gpu
        self.chunks = c.accum_rounds
        self.seed = c.run.seed

        torch.manual_seed(derive_seed(self.seed, "init"))
        G, D = (build_from_config(cfg) for cfg in network_configs(c))
        self.G = G.train().requires_grad_(False).to(device)
        self.D = D.train().requires_grad_(False).to(device)
        self.G_ema = copy.deepcopy(self.G).eval()
        for module in (self.G, self.D, self.G_ema):
            for t in list(module.parameters()) + list(module.buffers()):
                dist.broadcast_(t.data, src=0)

        # Lazy regularisation (StyleGAN2, Sec. 3.1): a regulariser applied every k minibatches with its gradient
        # scaled by k; Adam's lr and betas are adjusted by c = k / (k + 1) to keep the dynamics.
        o = c.optim
        g_params = [p for name, p in self.G.named_parameters()
                    if not (c.network.freeze_mapping and name.startswith("mapping."))]
        d_params = list(self.D.parameters())
        self.phases: list[Phase] = []
        for net, params, lr, reg_interval, reg_on in [
                ("G", g_params, o.glr, c.loss.pl_interval, c.loss.pl_weight > 0),
                ("D", d_params, o.dlr, c.loss.r1_interval, c.loss.r1_gamma > 0)]:
            ratio = reg_interval / (reg_interval + 1) if reg_interval else 1.0
            opt = torch.optim.Adam(params, lr=lr * ratio, betas=tuple(b ** ratio for b in o.betas), eps=o.eps)
            self.phases.append(Phase(f"{net}main", opt, 1, params))
            if reg_interval and reg_on:
                self.phases.append(Phase(f"{net}reg", opt, reg_interval, params))
        self.opt_G, self.opt_D = self.phases[0].opt, self.phases[-1].opt

        # ADA (Karras et al. 2020): D sees reals and fakes through the same augmentations, p set by the controller.
        self.augment_pipe, self.ada = build_augment(c.augment, batch_size=c.run.batch, device=device)
        # --accumulate nvidia: chunk gradients summed and running statistics advanced once per chunk (loss.py).
        self.per_chunk = c.loss.accumulate == "nvidia"
        self.loss = StyleGANLoss(self.G, self.D, c.loss, self.augment_pipe, ada=self.ada, per_chunk=self.per_chunk)
        if c.run.compile:
            self.loss.compile()
        self.tracked = TrackedBuffers(self.G, self.chunks, per_chunk=self.per_chunk)
        self.stats = TrainingStats(device)
        # bf16: autocast on CUDA or the CPU (prepare.py refuses devices without bfloat16).
        self.autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if c.network.precision == "bf16"
                         else contextlib.nullcontext())

        self.nimg = int(round(c.run.resume_kimg * 1000))   # images shown to D, the clock of the whole run
        self.batch_idx = 0                                  # steps taken; decides when lazy phases run
        self.data_pos = 0                                   # position in the sampler's global stream
        self.nonfinite_grads = torch.zeros([], dtype=torch.float64, device=device)
        self.nonfinite_streak = torch.zeros([], dtype=torch.int64, device=device)   # consecutive bad steps
        self.max_nonfinite_streak = torch.zeros([], dtype=torch.int64, device=device)
        self.nonfinite_steps = torch.zeros([], dtype=torch.int64, device=device)      # in this tick
        self._labels = (np.stack([dataset.get_label(i) for i in range(len(dataset))])
                        if c.data.label_dim > 0 else None)
        self._data: Iterator | None = None

    # ---- data ---------------------------------------------------------------------------------------------

    def _next_reals(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        if self._data is None:
            c = self.config
            sampler = InfiniteSampler(len(self.dataset), seed=self.seed, start_index=self.data_pos)
            loader = torch.utils.data.DataLoader(
                self.dataset, batch_sampler=_RankBatches(sampler, c.run.batch, self.rank, self.per_rank),
                num_workers=c.data.workers, pin_memory=self.device.type == "cuda",
                prefetch_factor=2 if c.data.workers > 0 else None, persistent_workers=c.data.workers > 0)
            self._data = iter(loader)
        images, labels = next(self._data)                                       # uint8 [B, C, H, W], [B, label_dim]
        images = images.to(self.device, non_blocking=True).to(torch.float32) / 127.5 - 1
        chunk = self.config.run.batch_gpu
        return list(images.split(chunk)), list(labels.to(self.device).split(chunk))

    def _latents(self) -> tuple[torch.Tensor, torch.Tensor]:
        """z [phases, per_rank, z_dim] and labels [phases, per_rank, label_dim] for this rank, from (seed, nimg)."""
        c = self.config
        num = len(self.phases)
        lo, hi = self.rank * self.per_rank, (self.rank + 1) * self.per_rank
        gen = torch.Generator().manual_seed(derive_seed(self.seed, "latents", self.nimg))
        z = torch.randn([num, c.run.batch, self.G.z_dim], generator=gen)[:, lo:hi]
        if self._labels is None:
            labels = torch.zeros([num, hi - lo, 0])
        else:
            rnd = np.random.default_rng(derive_seed(self.seed, "labels", self.nimg))
            labels = torch.from_numpy(self._labels[rnd.integers(len(self._labels), size=[num, c.run.batch])[:, lo:hi]])
        return z.to(self.device), labels.to(self.device)

    # ---- one step -----------------------------------------------------------------------------------------

    def step(self) -> None:
        c = self.config
        real_img, real_c = self._next_reals()
        gen_z, gen_c = self._latents()
        for phase_idx, phase in enumerate(self.phases):
            if self.batch_idx % phase.interval == 0:
                self._run_phase(phase_idx, phase, real_img, real_c, gen_z[phase_idx].split(c.run.batch_gpu),
                                gen_c[phase_idx].split(c.run.batch_gpu))

        update_ema(self.G_ema, self.G, ema_beta(self.nimg, c.run.batch, c.optim.ema_kimg, c.optim.ema_rampup))
        self.nimg += c.run.batch
        self.data_pos += c.run.batch
        self.batch_idx += 1
        if self.ada is not None:
            self.ada.step()
        bad = self.loss.take_nonfinite()
        self.nonfinite_steps += bad
        self.nonfinite_streak = torch.where(bad, self.nonfinite_streak + 1, torch.zeros_like(self.nonfinite_streak))
        self.max_nonfinite_streak = torch.maximum(self.max_nonfinite_streak, self.nonfinite_streak)

    def _run_phase(self, phase_idx: int, phase: Phase, real_img, real_c, gen_z, gen_c) -> None:
        phase.opt.zero_grad(set_to_none=True)
        for p in phase.params:
            p.requires_grad_(True)
        tracked = phase.name == "Dmain"     # the phase that runs G with update_emas=True
        self.loss.begin_phase(phase.name)
        if tracked:
            self.tracked.begin()
        total: list[torch.Tensor | None] = []
        for j in range(self.chunks):
            torch.manual_seed(derive_seed(self.seed, "noise", self.nimg, phase_idx, self.rank * self.chunks + j))
            if tracked:
                self.tracked.before_chunk()
            with self.autocast:
                # Lazy regularisation scales the gradient by the interval.
                self.loss.accumulate_gradients(phase.name, real_img[j], real_c[j], gen_z[j], gen_c[j],
                                               gain=phase.interval, nimg=self.nimg, stats=self.stats)
            if tracked:
                self.tracked.after_chunk()
            if self.chunks > 1:
                total = fold_chunk_grads(phase.params, total)
        for p, g in zip(phase.params, total):
            p.grad = g
        self.loss.end_phase(phase.name)
        if tracked:
            self.tracked.end()
        for p in phase.params:
            p.requires_grad_(False)

        params = [p for p in phase.params if p.grad is not None]
        if params:
            flat = torch.cat([p.grad.flatten() for p in params])
            # The chunks' gradients are averaged over the whole step, or with --accumulate nvidia summed on each
            # rank as in NVIDIA's loop (and averaged over the ranks).
            average_(flat, 1 if self.per_chunk else self.chunks)
            # As NVIDIA: non-finite gradient values are replaced (NaN -> 0, +-Inf -> +-1e5) rather than applied.
            self.nonfinite_grads += (~torch.isfinite(flat)).sum()
            torch.nan_to_num(flat, nan=0.0, posinf=1e5, neginf=-1e5, out=flat)
            for p, g in zip(params, flat.split([p.numel() for p in params])):
                p.grad = g.reshape(p.shape)
        phase.opt.step()

    # ---- reporting ----------------------------------------------------------------------------------------

    def collect_stats(self) -> dict[str, float]:
        """Tick statistics, the same on every rank; resets the accumulators. Every rank must call it."""
        out = self.stats.collect()
        counts = torch.stack([self.nonfinite_grads, self.max_nonfinite_streak.to(torch.float64),
                              self.nonfinite_steps.to(torch.float64)])
        dist.all_reduce_sum_(counts)    # grads are already averaged: every rank counted the same values
        out["nonfinite_grads"] = counts[0].item() / dist.get_world_size()
        out["nonfinite_streak"] = counts[1].item()      # > 0 on any rank is > 0 in the sum
        out["nonfinite_steps"] = counts[2].item()
        self.nonfinite_grads.zero_()
        self.nonfinite_steps.zero_()
        self.max_nonfinite_streak.copy_(self.nonfinite_streak)
        out["pl_mean"] = float(self.loss.pl_mean)
        if self.augment_pipe is not None:
            out["augment_p"] = float(self.augment_pipe.p)
        if self.ada is not None and self.ada.rt is not None:
            out["ada_rt"] = float(self.ada.rt)
        return out

    # ---- state --------------------------------------------------------------------------------------------

    def state_tensors(self) -> tuple[dict[str, torch.Tensor], dict[str, list]]:
        """(tensors, optimizer param_groups) for save_training_state."""
        tensors = {**module_tensors("G", self.G), **module_tensors("D", self.D), **module_tensors("G_ema", self.G_ema)}
        groups = {}
        for name, opt in (("opt_G", self.opt_G), ("opt_D", self.opt_D)):
            t, groups[name] = optimizer_tensors(name, opt)
            tensors.update(t)
        tensors["loss.pl_mean"] = self.loss.pl_mean
        tensors["nonfinite_streak"] = self.nonfinite_streak
        if self.augment_pipe is not None:
            tensors.update(module_tensors("augment_pipe", self.augment_pipe))
        return tensors, groups

    def state_counters(self) -> dict:
        return {"nimg": self.nimg, "batch_idx": self.batch_idx, "data_pos": self.data_pos,
                "ada": self.ada.state_dict() if self.ada is not None else None}

    def load_state(self, state: TrainingState) -> None:
        for name, module in (("G", self.G), ("D", self.D), ("G_ema", self.G_ema)):
            module.load_state_dict(state.group(name))
        load_optimizer(self.opt_G, state, "opt_G")
        load_optimizer(self.opt_D, state, "opt_D")
        self.loss.pl_mean.copy_(state.tensors["loss.pl_mean"])
        self.nonfinite_streak.copy_(state.tensors["nonfinite_streak"])
        if self.augment_pipe is not None and state.group("augment_pipe"):
            self.augment_pipe.load_state_dict(state.group("augment_pipe"))
        if self.ada is not None and state.counters.get("ada"):
            self.ada.load_state_dict(state.counters["ada"])
        self.nimg = int(state.counters["nimg"])
        self.batch_idx = int(state.counters["batch_idx"])
        self.data_pos = int(state.counters["data_pos"])
        self._data = None
        restore_rng(state)
