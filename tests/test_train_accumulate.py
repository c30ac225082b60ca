"""Gradient accumulation (a step in several batch_gpu chunks) in its two modes, --accumulate mean and nvidia.

mean (the default) averages the chunks: the chunk gradients, and the path length mean a and G's w_avg each updated
from the phase's start and then averaged. nvidia is NVIDIA's loop: the chunk gradients are summed, and a and w_avg
advance once per chunk, each chunk continuing from the last. The expected values are computed here from the
formulas (StyleGAN2 eq. 4's running mean, the mapping's w_avg lerp) from what each chunk saw in a real step.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from stylegan.augment import AugmentConfig
from stylegan.cli import main
from stylegan.core.errors import UsageError
from stylegan.data import ImageDataset
from stylegan.training.config import (DataOptions, LossOptions, NetworkOptions, RunOptions, TrainingConfig,
                                     TrainingFlags, new_run_config, resumed_run_config)
from stylegan.training.ema import TrackedBuffers
from stylegan.training.loop import describe_config
from stylegan.training.state import load_training_state, save_training_state
from stylegan.training.phases import Trainer, fold_chunk_grads
from test_train_common import write_dataset

CHUNKS = 2


def tiny_config(data: Path, accumulate: str, cfg: str = "stylegan2") -> TrainingConfig:
    """Tiny StyleGAN2 (or StyleGAN3-T) at 16x16, batch 8 in two chunks of 4, every phase in the first step."""
    sg2 = cfg == "stylegan2"
    config = TrainingConfig(
        network=NetworkOptions(cfg=cfg, cbase=1024 if sg2 else 512, cmax=32 if sg2 else 16, map_depth=2,
                               precision="fp32"),
        loss=(LossOptions(r1_gamma=1.0, style_mixing_prob=0.9, pl_weight=2.0, pl_interval=4, accumulate=accumulate)
              if sg2 else LossOptions(r1_gamma=1.0, accumulate=accumulate)),
        augment=AugmentConfig(mode="noaug"),
        data=DataOptions(path=str(data), name="blobs", resolution=16, channels=3, size=16, workers=0),
        run=RunOptions(batch=8, batch_gpu=8 // CHUNKS, device="cpu", seed=2))
    return config


def record_step(data: Path, accumulate: str, pl_mean: float, w_avg_seed: int) -> dict:
    """One step from a running mean a = pl_mean and a random w_avg, recording what each chunk saw."""
    seen = {"pl_grads": [], "w": [], "Gmain_grads": None}
    with ImageDataset(str(data)) as dataset:
        trainer = Trainer(tiny_config(data, accumulate), dataset, torch.device("cpu"))
        mapping = trainer.G.mapping
        trainer.loss.pl_mean.fill_(pl_mean)
        mapping.w_avg.copy_(torch.randn(mapping.w_avg.shape, generator=torch.Generator().manual_seed(w_avg_seed)))
        start = {"pl_mean": trainer.loss.pl_mean.clone(), "w_avg": mapping.w_avg.clone()}

        def on_mapping(module, args, kwargs, ws):
            if kwargs.get("update_emas"):
                seen["w"].append(ws[:, 0].detach().clone())         # [N, w_dim]: the w whose mean w_avg tracks

        real_grad = torch.autograd.grad

        def spy_grad(outputs, inputs, **kwargs):
            grads = real_grad(outputs, inputs, **kwargs)
            if grads[0].ndim == 3:                                  # d(img * y) / d ws: Greg's, per chunk
                seen["pl_grads"].append(grads[0].detach().clone())
            return grads

        real_step = trainer.opt_G.step

        def spy_step(*args, **kwargs):
            if seen["Gmain_grads"] is None:                         # the first G step of the run is Gmain's
                seen["Gmain_grads"] = [p.grad.clone() for p in trainer.phases[0].params]
            return real_step(*args, **kwargs)

        hook = mapping.register_forward_hook(on_mapping, with_kwargs=True)
        trainer.opt_G.step = spy_step
        torch.autograd.grad = spy_grad
        try:
            trainer.step()
        finally:
            torch.autograd.grad = real_grad
            hook.remove()
    return {**seen, "start": start, "pl_mean": trainer.loss.pl_mean.clone(), "w_avg": mapping.w_avg.clone(),
            "pl_decay": trainer.config.loss.pl_decay, "w_avg_beta": mapping.w_avg_beta}


@pytest.fixture(scope="module")
def steps(tmp_path_factory):
    data = write_dataset(tmp_path_factory.mktemp("data") / "blobs.zip", count=16)
    return {mode: record_step(data, mode, pl_mean=0.3, w_avg_seed=1) for mode in ("mean", "nvidia")}


def lerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    return a + (b - a) * t


def expected_pl_mean(run: dict, per_chunk: bool) -> torch.Tensor:
    a0, decay = run["start"]["pl_mean"].double(), run["pl_decay"]
    # |J_w^T y| per image: the gradient's squared norm summed over w's dimensions, averaged over the ws, rooted.
    means = [g.double().square().sum(2).mean(1).sqrt().mean() for g in run["pl_grads"]]
    if not per_chunk:
        return torch.stack([lerp(a0, m, decay) for m in means]).mean()
    a = a0
    for m in means:
        a = lerp(a, m, decay)
    return a


def expected_w_avg(run: dict, per_chunk: bool) -> torch.Tensor:
    w0, beta = run["start"]["w_avg"].double(), run["w_avg_beta"]
    means = [w.double().mean(0) for w in run["w"]]
    if not per_chunk:
        return torch.stack([lerp(m, w0, beta) for m in means]).mean(0)
    w = w0
    for m in means:
        w = lerp(m, w, beta)
    return w


@pytest.mark.slow                   # with the fixture: two trainers and a step of each, about 15 s of CPU
@pytest.mark.parametrize("mode", ["mean", "nvidia"])
def test_pl_mean_and_w_avg_follow_the_modes_formula(steps, mode):
    run = steps[mode]
    assert len(run["pl_grads"]) == CHUNKS and len(run["w"]) == CHUNKS
    for key, expected in (("pl_mean", expected_pl_mean), ("w_avg", expected_w_avg)):
        start = run["start"][key].double()
        moved = run[key].double() - start
        want, other = expected(run, mode == "nvidia") - start, expected(run, mode != "nvidia") - start
        # Compared as the update (new - old), which the two modes make about 1x and 2x as large.
        torch.testing.assert_close(moved, want, rtol=1e-4, atol=1e-7, msg=key)
        assert (moved - other).abs().max() > 100 * (moved - want).abs().max() + 1e-6, key


@pytest.mark.slow
def test_nvidia_sums_the_chunk_gradients_and_mean_averages_them(steps):
    # Gmain is the step's first phase: both modes start it from the same networks, latents and noise, and add the
    # same chunk gradients in the same order; mean then divides by 2, which is exact.
    for mean, summed in zip(steps["mean"]["Gmain_grads"], steps["nvidia"]["Gmain_grads"]):
        assert torch.equal(summed, CHUNKS * mean)


@pytest.mark.slow                   # a StyleGAN3 step on the CPU, about 10 s
def test_nvidia_mode_advances_stylegan3s_magnitude_emas_once_per_chunk(tmp_path):
    data = write_dataset(tmp_path / "blobs.zip", count=16)
    seen: dict[str, list[torch.Tensor]] = {}
    with ImageDataset(str(data)) as dataset:
        trainer = Trainer(tiny_config(data, "nvidia", cfg="stylegan3-t"), dataset, torch.device("cpu"))
        layers = {name: m for name, m in trainer.G.synthesis.named_modules() if hasattr(m, "magnitude_ema")}
        start = {name: float(m.magnitude_ema) for name, m in layers.items()}

        def spy(name):
            def hook(module, args, kwargs):
                if kwargs.get("update_emas"):   # the mean square of the layer's input, which the EMA tracks
                    seen.setdefault(name, []).append(args[0].detach().double().square().mean())
            return hook

        hooks = [m.register_forward_pre_hook(spy(name), with_kwargs=True) for name, m in layers.items()]
        trainer.step()
        for h in hooks:
            h.remove()
    assert layers and all(len(seen[name]) == CHUNKS for name in layers)
    for name, m in layers.items():
        beta = m.magnitude_ema_beta
        first = torch.tensor(start[name], dtype=torch.float64)
        per_chunk = first
        for x in seen[name]:
            per_chunk = lerp(x, per_chunk, beta)
        averaged = torch.stack([lerp(x, first, beta) for x in seen[name]]).mean()
        moved = float(m.magnitude_ema) - start[name]
        assert moved == pytest.approx(float(per_chunk) - start[name], rel=1e-3, abs=1e-7), name
        assert abs(moved - (float(averaged) - start[name])) > 100 * abs(moved - (float(per_chunk) - start[name])), name


@pytest.mark.slow                   # three trainers and four steps, about 15 s of CPU
def test_nvidia_mode_resumes_exactly(tmp_path):
    # Nothing of the per-chunk statistics lives outside the training state: a step taken after saving and
    # loading ends where the uninterrupted run's second step does (w_avg moved per chunk in both).
    data = write_dataset(tmp_path / "blobs.zip", count=16)
    with ImageDataset(str(data)) as dataset:
        def trainer():
            return Trainer(tiny_config(data, "nvidia"), dataset, torch.device("cpu"))
        straight = trainer()
        straight.step()
        straight.step()
        first = trainer()
        first.step()
        tensors, groups = first.state_tensors()
        path = save_training_state(tmp_path / "state.safetensors", tensors, config=first.config.to_dict(),
                                   counters=first.state_counters(), optimizers=groups)
        resumed = trainer()
        resumed.load_state(load_training_state(path))
        resumed.step()
    want, got = straight.state_tensors()[0], resumed.state_tensors()[0]
    assert want.keys() == got.keys()
    assert [k for k in want if not torch.equal(want[k], got[k])] == []


def test_chunks_backpropagate_into_empty_grads_and_add_in_chunk_order():
    # What makes one process with two chunks compute what two processes compute: a chunk's backward passes (Dmain's
    # fakes, then reals) add up on their own, and the chunks then add as the all-reduce adds the ranks.
    param = torch.nn.Parameter(torch.zeros(1000))
    terms = torch.randn([2, 2, 1000], generator=torch.Generator().manual_seed(0))     # [chunk, pass, param]
    total: list = []
    for chunk in terms:
        for term in chunk:
            (param * term).sum().backward()
        total = fold_chunk_grads([param], total)
    assert param.grad is None
    assert torch.equal(total[0], (terms[0, 0] + terms[0, 1]) + (terms[1, 0] + terms[1, 1]))
    assert not torch.equal(total[0], ((terms[0, 0] + terms[0, 1]) + terms[1, 0]) + terms[1, 1])   # .grad's order


class _Tracker(torch.nn.Module):
    """A stand-in for StyleGAN3's layers: magnitude_ema follows the mean square of the input, as they do."""

    def __init__(self, beta: float):
        super().__init__()
        self.beta = beta
        self.register_buffer("magnitude_ema", torch.ones([]))

    def forward(self, x: torch.Tensor) -> None:
        self.magnitude_ema.copy_(x.square().mean().lerp(self.magnitude_ema, self.beta))


@pytest.mark.parametrize("per_chunk", [False, True])
def test_tracked_buffers_restart_or_continue_per_chunk(per_chunk):
    beta, chunks = 0.9, [torch.full([4], 2.0), torch.full([4], 3.0)]       # mean squares 4 and 9
    module = _Tracker(beta)
    tracked = TrackedBuffers(module, chunks=len(chunks), per_chunk=per_chunk)
    tracked.begin()
    for x in chunks:
        tracked.before_chunk()
        module(x)
        tracked.after_chunk()
    tracked.end()
    if per_chunk:       # NVIDIA's: 4 -> 1 + 0.1 (4 - 1) = 1.3, then 1.3 + 0.1 (9 - 1.3) = 2.07
        want = lerp(lerp(1.0, 4.0, 1 - beta), 9.0, 1 - beta)
    else:               # each chunk from 1, averaged: (1.3 + 1.8) / 2 = 1.55
        want = (lerp(1.0, 4.0, 1 - beta) + lerp(1.0, 9.0, 1 - beta)) / 2
    assert float(module.magnitude_ema) == pytest.approx(want, rel=1e-6)


def test_dry_run_says_how_the_chunks_combine():
    lines = {mode: describe_config(tiny_config(Path("blobs.zip"), mode)) for mode in ("mean", "nvidia")}
    assert "(4 per forward pass; 2 chunks averaged)" in lines["mean"]
    assert "2 chunks summed, statistics per chunk, as NVIDIA's loop" in lines["nvidia"]
    one = tiny_config(Path("blobs.zip"), "nvidia")
    one.run.batch_gpu = 8
    assert "(8 per forward pass)" in describe_config(one)        # one chunk: the modes are the same


# ------------------------------------------------------------------------------------------------------------
# The flag.

BASE = dict(outdir="o", cfg="stylegan2", data="d", batch=32, gamma=1)


def test_flag_sets_the_mode_and_the_run_keeps_it():
    assert new_run_config(TrainingFlags(**BASE)).loss.accumulate == "mean"
    saved = new_run_config(TrainingFlags(**BASE, batch_gpu=8, accumulate="nvidia"))
    assert saved.loss.accumulate == "nvidia"
    assert TrainingConfig.from_json(saved.to_json()) == saved                   # training_options.json, states
    assert resumed_run_config(saved, TrainingFlags(kimg=10), "state").loss.accumulate == "nvidia"
    with pytest.raises(UsageError, match="--accumulate mean: the run being resumed"):
        resumed_run_config(saved, TrainingFlags(accumulate="mean"), "state")
    # The chunks per process shape NVIDIA's dynamics, so such a run stays on its number of GPUs; a mean run may
    # move.
    with pytest.raises(UsageError, match="--gpus 2: the resumed run accumulates with --accumulate nvidia"):
        resumed_run_config(saved, TrainingFlags(gpus=2), "state")
    moved = resumed_run_config(new_run_config(TrainingFlags(**BASE, batch_gpu=8)), TrainingFlags(gpus=2), "state")
    assert moved.run.gpus == 2


def test_bad_mode_is_one_line_naming_the_choices(capsys):
    with pytest.raises(UsageError, match="--accumulate sum: choose one of mean, nvidia"):
        new_run_config(TrainingFlags(**BASE, accumulate="sum"))
    with pytest.raises(SystemExit) as exc:
        main(["train", "--outdir", "o", "--cfg", "stylegan2", "--data", "d", "--batch", "8", "--gamma", "1",
              "--accumulate", "sum"])
    assert exc.value.code == 2 and "'sum' is not one of 'mean', 'nvidia'" in capsys.readouterr().err
