"""The p controller (simulated r_t), its exact state round trip, the presets and the training config."""
import dataclasses
import json

import pytest
import torch

from stylegan.augment import (AUGMENT_PRESETS, AdaController, AugmentConfig, AugmentPipe, augment_pipe_from_preset,
                              build_augment)
from stylegan.core.errors import UsageError


def _logits(rt: float, n: int, gen: torch.Generator) -> torch.Tensor:
    """n discriminator outputs for real images whose signs average rt in expectation."""
    positive = torch.rand([n, 1], generator=gen) < (1 + rt) / 2
    return torch.where(positive, 1.0, -1.0) * torch.rand([n, 1], generator=gen).add(0.1)


def _run(ada: AdaController, rts, batch: int, gen: torch.Generator) -> list[float]:
    ps = []
    for rt in rts:
        ada.accumulate(_logits(rt, batch, gen))
        ada.step()
        ps.append(ada.p)
    return ps


def test_p_rises_when_rt_is_above_target_and_falls_when_below():
    gen = torch.Generator().manual_seed(0)
    pipe = AugmentPipe(xflip=1, p=0.0)
    ada = AdaController(pipe, batch_size=32, target=0.6, interval=4, speed_kimg=500, p=0.5)
    step = 32 * 4 / 500_000
    assert ada.step_size == step
    # D overfits (every real logit positive): p holds for three minibatches, then rises by one step.
    ps = _run(ada, [1.0] * 8, 32, gen)
    assert ps == pytest.approx([0.5, 0.5, 0.5, 0.5 + step] + [0.5 + step] * 3 + [0.5 + 2 * step], abs=1e-15)
    assert ada.rt == 1.0 and float(pipe.p) == pytest.approx(0.5 + 2 * step)
    # D is fooled half the time (r_t near 0): p falls.
    ps = _run(ada, [-0.2] * 8, 32, gen)
    assert ps[-1] == pytest.approx(0.5) and ada.rt < 0.6
    # Exactly at the target: p stays.
    ada.accumulate(torch.tensor([1.0, 1.0, 1.0, -1.0, 1.0]))   # 3 of 5 net positive: r_t = 0.6
    for _ in range(4):
        ada.step()
    assert ada.rt == pytest.approx(0.6) and ada.p == pytest.approx(0.5)


def test_p_stops_at_zero_but_not_at_one():
    # As in NVIDIA's loop: p is clamped below at 0 only, so an overfitting D keeps pushing it past 1.
    gen = torch.Generator().manual_seed(1)
    pipe = AugmentPipe(xflip=1, p=0.0)
    ada = AdaController(pipe, batch_size=500, interval=1, speed_kimg=1, p=0.0)   # one step = 0.5
    ps = _run(ada, [-1.0, 1.0, 1.0, 1.0, 1.0, -1.0, -1.0, -1.0, -1.0, -1.0], 16, gen)
    assert ps == [0.0, 0.5, 1.0, 1.5, 2.0, 1.5, 1.0, 0.5, 0.0, 0.0]
    ada.accumulate(torch.ones([16, 1]))
    ada.step()
    assert float(pipe.p) == ada.p == 0.5
    # p > 1 survives the state round trip (a resumed run continues from it).
    for _ in range(3):
        ada.accumulate(torch.ones([16, 1]))
        ada.step()
    clone = AdaController(AugmentPipe(xflip=1, p=0.0), batch_size=500, interval=1, speed_kimg=1)
    clone.load_state_dict(ada.state_dict())
    assert clone.p == 2.0 and float(clone.pipe.p) == 2.0


def test_p_settles_where_rt_meets_the_target():
    # A simulated discriminator that overfits less as augmentation grows: r_t(p) = 0.95 - 0.8 p, which reaches the
    # target 0.6 at p = 0.4375. From p = 0, ADA must climb there and then hover around it.
    gen = torch.Generator().manual_seed(2)
    ada = AdaController(batch_size=64, interval=4, speed_kimg=20)              # step = 0.0128
    ps = []
    for _ in range(1600):
        ada.accumulate(_logits(0.95 - 0.8 * ada.p, 64, gen))
        ada.step()
        ps.append(ada.p)
    assert 0.25 < ps[100] <= 25 * ada.step_size + 1e-12                          # climbing at first, a step at a time
    late = torch.tensor(ps[-400:])
    assert late.mean().item() == pytest.approx(0.4375, abs=0.05)
    assert late.max().item() - late.min().item() < 0.2


def test_interval_without_measurements_leaves_p_alone():
    ada = AdaController(batch_size=8, interval=2, p=0.3)
    assert [ada.step(), ada.step()] == [False, False]
    assert ada.p == 0.3 and ada.rt is None
    assert ada.stats()["augment_p"] == 0.3


def test_state_round_trips_exactly_mid_interval():
    gen_a = torch.Generator().manual_seed(3)
    rts = [0.9, 0.7, 0.2, 0.95, 0.8, 0.1, 0.99, 0.65, 0.7, 0.3, 0.9, 1.0, 0.5, 0.75]
    a = AdaController(batch_size=16, interval=4, speed_kimg=1, p=0.25)
    _run(a, rts[:6], 16, gen_a)                                    # stop between two adjustments
    state = json.loads(json.dumps(a.state_dict()))                 # what a training state file would hold
    assert set(state) == {"p", "rt", "batches", "sign_sum", "count"}
    gen_b = torch.Generator()
    gen_b.set_state(gen_a.get_state())
    pipe = AugmentPipe(xflip=1, p=0.0)
    b = AdaController(pipe, batch_size=16, interval=4, speed_kimg=1)
    b.load_state_dict(state)
    assert float(pipe.p) == pytest.approx(a.p)
    assert _run(a, rts[6:], 16, gen_a) == _run(b, rts[6:], 16, gen_b)
    assert a.state_dict() == b.state_dict()


def test_controller_rejects_bad_settings():
    with pytest.raises(ValueError, match="batch_size"):
        AdaController(batch_size=0)
    with pytest.raises(ValueError, match="target"):
        AdaController(batch_size=8, target=1.5)
    with pytest.raises(KeyError, match="count"):
        AdaController(batch_size=8).load_state_dict({"p": 0.1, "rt": None, "batches": 0, "sign_sum": 0.0})


# ------------------------------------------------------------------------------------------------------------
# Presets and the pipe's saved state.

def test_presets_are_the_papers_groups():
    assert list(AUGMENT_PRESETS) == ["blit", "geom", "color", "filter", "noise", "cutout",
                                     "bg", "bgc", "bgcf", "bgcfn", "bgcfnc"]
    blit, geom, color = (set(AUGMENT_PRESETS[k]) for k in ("blit", "geom", "color"))
    assert blit == {"xflip", "rotate90", "xint"}
    assert geom == {"scale", "rotate", "aniso", "xfrac"}
    assert color == {"brightness", "contrast", "lumaflip", "hue", "saturation"}
    assert set(AUGMENT_PRESETS["bgc"]) == blit | geom | color
    assert set(AUGMENT_PRESETS["bgcfnc"]) == blit | geom | color | {"imgfilter", "noise", "cutout"}
    for name, spec in AUGMENT_PRESETS.items():
        pipe = augment_pipe_from_preset(name)
        assert all(getattr(pipe, k) == 1 for k in spec)
        strengths = [k for k in pipe.init_kwargs if not k.endswith(("_max", "_std", "_size", "_bands"))]
        assert sum(getattr(pipe, k) > 0 for k in strengths) == len(spec)


def test_default_standard_deviations_are_the_papers():
    pipe = AugmentPipe()
    assert (pipe.xint_max, pipe.scale_std, pipe.rotate_max, pipe.aniso_std, pipe.xfrac_std) == \
        (0.125, 0.2, 1, 0.2, 0.125)
    assert (pipe.brightness_std, pipe.contrast_std, pipe.hue_max, pipe.saturation_std) == (0.2, 0.5, 1, 1)
    assert (pipe.imgfilter_std, pipe.imgfilter_bands, pipe.noise_std, pipe.cutout_size) == (1, [1, 1, 1, 1], 0.1, 0.5)


def test_unknown_preset_names_the_choices():
    with pytest.raises(UsageError, match="--augpipe.*bgc, bgcf"):
        augment_pipe_from_preset("bgcx")


def test_pipe_state_is_p_and_rebuilds_from_init_kwargs():
    pipe = augment_pipe_from_preset("bgcf", p=0.37, xint_max=0.25)
    assert list(pipe.state_dict()) == ["p"]
    clone = AugmentPipe(**pipe.init_kwargs)
    clone.load_state_dict(pipe.state_dict())
    assert clone.init_kwargs == pipe.init_kwargs and float(clone.p) == pytest.approx(0.37)
    x = torch.rand([2, 3, 16, 16]) * 2 - 1
    torch.manual_seed(0)
    a = pipe(x)
    torch.manual_seed(0)
    assert torch.equal(clone(x), a)
    with pytest.raises(ValueError, match="xflip"):
        AugmentPipe(xflip=-1)


# ------------------------------------------------------------------------------------------------------------
# The training config.

def test_config_defaults_are_ada_bgc_target_06():
    cfg = AugmentConfig.from_flags()
    assert (cfg.mode, cfg.p, cfg.target, cfg.augpipe, cfg.interval, cfg.speed_kimg) == \
        ("ada", 0.0, 0.6, "bgc", 4, 500.0)
    assert AugmentConfig(**json.loads(json.dumps(dataclasses.asdict(cfg)))) == cfg


@pytest.mark.parametrize("flags, message", [
    (dict(aug="sometimes"), r"--aug.*ada, noaug, fixed"),
    (dict(aug="fixed"), r"--aug fixed needs --p"),
    (dict(aug="fixed", p=0.2, target=0.5), r"--target only applies to --aug ada"),
    (dict(aug="noaug", augpipe="bg"), r"--augpipe cannot be used with --aug noaug"),
    (dict(p=1.5), r"--p must be a number in \[0, 1\]"),
    (dict(target=-0.1), r"--target must be a number in \[0, 1\]"),
    (dict(augpipe="bgcnf"), r"--augpipe.*blit, geom"),
])
def test_config_errors_name_the_flag_and_the_allowed_values(flags, message):
    with pytest.raises(UsageError, match=message):
        AugmentConfig.from_flags(**flags)


def test_a_config_may_start_past_one_but_the_flag_may_not():
    # A run fine-tuned from a snapshot starts at that snapshot's p, which ADA may have carried past 1.
    pipe, ada = build_augment(AugmentConfig(p=1.25), batch_size=32)
    assert float(pipe.p) == ada.p == 1.25
    with pytest.raises(UsageError, match="--p must be a number >= 0"):
        AugmentConfig(p=-0.1).validate()
    with pytest.raises(ValueError, match="p must be a finite number >= 0"):
        AugmentPipe(xflip=1, p=float("inf"))


def test_build_augment_per_mode():
    assert build_augment(AugmentConfig.from_flags(aug="noaug"), batch_size=32) == (None, None)
    pipe, ada = build_augment(AugmentConfig.from_flags(aug="fixed", p=0.3, augpipe="bg"), batch_size=32)
    assert ada is None and float(pipe.p) == pytest.approx(0.3)
    assert pipe.brightness == 0 and pipe.xflip == 1
    pipe, ada = build_augment(AugmentConfig.from_flags(p=0.2, target=0.7), batch_size=32)
    assert ada.pipe is pipe and ada.p == 0.2 and ada.target == 0.7 and ada.batch_size == 32
    assert float(pipe.p) == pytest.approx(0.2) and pipe.hue == 1
