"""The demo's five steps end to end, with a tiny budget: a small network stands in for the shipped one (the shipped
one is exercised in tests/test_pretrained.py), fine-tuned on the bundled OpenMoji set."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import PIL.Image
import pytest

import stylegan
from stylegan.training.demo import DemoOptions, run_demo, stylegan_command
from stylegan.training.transfer import architecture_flags


@pytest.fixture(scope="module")
def tiny_network(tmp_path_factory):
    G = stylegan.build_generator("stylegan2", resolution=32, cbase=512, cmax=16, map_depth=2)
    path = tmp_path_factory.mktemp("net") / "tiny.safetensors"
    stylegan.save_network(G, path)
    return path


def test_architecture_flags_rebuild_the_network():
    for cfg in ("stylegan2", "stylegan3-r"):
        G = stylegan.build_generator(cfg, resolution=16, cbase=256, cmax=8, map_depth=1)
        flags = architecture_flags(G.config)
        again = stylegan.build_generator(flags.pop("cfg"), resolution=16, **flags)
        assert again.config.to_dict() == G.config.to_dict()


@pytest.mark.slow
def test_demo_runs_every_step_and_says_where_everything_is(tmp_path, tiny_network, capsys):
    options = DemoOptions(network=str(tiny_network), finetune_kimg=0.032, grid_seeds=8, compare_seeds=3,
                          project_steps=3, translate_count=2, video_frames=2, video_seeds=2)
    demo_dir = run_demo(tmp_path, device="cpu", options=options)
    out = capsys.readouterr().out
    sizes = {name: PIL.Image.open(demo_dir / name).size for name in
             ("1-emoji.png", "2-before-after.png", "3-blend.png", "4-translate.png")}
    assert sizes == {"1-emoji.png": (8 * 32, 32), "2-before-after.png": (3 * 32, 2 * 32),
                     "3-blend.png": (3 * 32, 3 * 32), "4-translate.png": (4 * 32, 2 * 32)}
    assert (demo_dir / "5-interpolation.mp4").stat().st_size > 0
    assert stylegan.load_network(demo_dir / "3-blend.safetensors").img_resolution == 32
    finetuned = sorted((demo_dir / "finetune").glob("*/network-snapshot-*.safetensors"))
    assert len(finetuned) == 1
    # Fine-tuning changed the network: the bottom row of before/after differs from the top row.
    grid = np.asarray(PIL.Image.open(demo_dir / "2-before-after.png"))
    assert not np.array_equal(grid[:32], grid[32:])
    # The held-out inputs are the bundled ones and are not in the fine-tuning set.
    inputs = sorted(p.name for p in (demo_dir / "4-translate" / "inputs").iterdir())
    assert inputs == ["img00000835.png", "img00000844.png"]
    # Every command printed at the end starts with a stylegan that runs as printed.
    cmd = stylegan_command()
    assert f"{cmd} train --outdir" in out and f"{cmd} serve --network" in out and "[5/5" in out
    assert Path(cmd).name == "stylegan"
