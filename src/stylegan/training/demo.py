"""The demo: from the shipped emoji network to fine-tuning, blending, translation and video, on a laptop CPU.

    from stylegan.training.demo import run_demo, run_demo_from_scratch
    demo_dir = run_demo('demo-runs')                 # about 10 minutes on two CPU cores
    run_dir = run_demo_from_scratch('demo-runs')     # the old demo: train a small StyleGAN3-T from nothing

`run_demo` writes, in a new numbered folder under outdir:
  1-emoji.png            the shipped network (`--network emoji`, StyleGAN2 at 32x32, trained on the bundled Noto
                         emoji), 32 fixed seeds, within seconds;
  finetune/              a real `stylegan train` run: that network fine-tuned on the bundled OpenMoji set (flat
                         colours, black outlines) with Freeze-D, as transfer learning is done on small datasets;
  2-before-after.png     the same seeds before (top) and after (bottom) fine-tuning;
  3-blend.safetensors    the coarse layers of the emoji network with the fine layers of the fine-tuned one
  3-blend.png            (Pinkney & Adler 2020); rows: emoji, blend, fine-tuned;
  4-translate.png        held-out Noto emoji (not in the training set) projected into the emoji network and drawn
  4-translate/           by the fine-tuned network and the blend: columns input, reconstruction, OpenMoji style,
                         blend;
  5-interpolation.mp4    a latent walk through the fine-tuned network.
Each step is a library function any user can call; the commands that do the same are printed at the end.
"""
from __future__ import annotations

import os
import shlex
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stylegan.core import dist
from stylegan.data import ConvertOptions, convert_dataset
from stylegan.data.bundled import bundled_training_set, held_out_images, is_bundled_dataset
from stylegan.training.loop import train
from stylegan.training.config import TrainingFlags
from stylegan.training.prepare import prepare_config
from stylegan.training.rundir import next_run_dir

DEMO_RESOLUTION = 32
# The from-scratch demo: sized so that 2 CPU cores finish in about 10 minutes (docs/benchmarks.md, "Training").
DEMO_FLAGS = dict(cfg="stylegan3-t", batch=16, gamma=0.05, cbase=4096, cmax=32, kimg=4, tick=0.5, snap=2,
                  mirror=True, aug="noaug", workers=0, seed=0, metrics="none")
# Fine-tuning the shipped network: its own training flags (scripts/train_emoji_model.py), with D's first block
# (fromrgb, conv0, conv1, skip at 32 px) frozen (Freeze-D, Mo et al. 2020) and a short length. --cfg, --cbase,
# --cmax and --map-depth come from the file.
FINETUNE_FLAGS = dict(batch=32, gamma=0.05, freezed=4, mirror=True, aug="ada", tick=1, snap=1000, workers=0, seed=0,
                      metrics="none")


@dataclass
class DemoOptions:
    network: str = "emoji"              # the network to start from: the shipped one, or any 32x32 network file
    finetune_data: str = "openmoji"     # a bundled dataset name, or a dataset zip/folder at the network's size
    finetune_kimg: float = 6.0          # fine-tuning length; about 3 minutes on two idle CPU cores
    grid_seeds: int = 32                # images in 1-emoji.png (rows of 8)
    compare_seeds: int = 8              # columns of 2-before-after.png and 3-blend.png
    blend_swap_res: int = 16            # layers at this resolution and above come from the fine-tuned network
    project_steps: int = 300            # projection steps per held-out image
    translate_count: int = 8            # held-out emoji to translate (at most 8)
    video_frames: int = 60              # frames between the video's keyframes
    video_seeds: int = 4                # keyframes (the video loops)


def stylegan_command() -> str:
    """How to run `stylegan` from here, as a user can paste it: `stylegan` when the shell finds this very install,
    else the script next to this Python (e.g. `.venv/bin/stylegan`, relative to the current folder when inside it)."""
    script = Path(sys.executable).with_name("stylegan")
    found = shutil.which("stylegan")
    if found and Path(found).resolve() == script.resolve():
        return "stylegan"
    try:
        return str(script.relative_to(Path.cwd()))
    except ValueError:
        return str(script)


def _step(number: int, text: str, start: float) -> None:
    dist.print0(f"\n[{number}/5 at {time.time() - start:4.0f} s] {text}")


def run_demo(outdir: str | os.PathLike = "demo-runs", device: str = "cpu", options: DemoOptions | None = None
             ) -> Path:
    """The demo (module docstring); returns its folder. Each call makes a new numbered folder under outdir."""
    import torch

    from stylegan.generate.blend import BlendOptions, blend_networks, blend_preview
    from stylegan.generate.files import load_target, save_png
    from stylegan.generate.network import load_generator
    from stylegan.generate.project import ProjectOptions
    from stylegan.generate.render import image_grid, render, synthesize
    from stylegan.generate.translate import translate_images
    from stylegan.generate.video import VideoOptions, make_video
    from stylegan.io import save_network
    from stylegan.io.fetch import resolve_source

    o = options or DemoOptions()
    start = time.time()
    demo_dir = next_run_dir(outdir, "emoji-demo")
    demo_dir.mkdir(parents=True)
    cmd = stylegan_command()

    _step(1, f"The shipped network '{o.network}' ({resolve_source(o.network)})", start)
    G = load_generator(o.network, device)
    res = G.img_resolution
    grid_path = save_png(demo_dir / "1-emoji.png", image_grid(render(G, seeds=range(o.grid_seeds)).numpy(), cols=8))
    dist.print0(f"  {o.grid_seeds} images: {grid_path}")

    _step(2, f"Fine-tuning it on '{o.finetune_data}' for {o.finetune_kimg:g} kimg with Freeze-D "
             f"(`stylegan train --resume {o.network} --freezed 4`)", start)
    data = (bundled_training_set(o.finetune_data, Path(outdir) / f"{o.finetune_data}-{res}-train.zip", res)
            if is_bundled_dataset(o.finetune_data) else o.finetune_data)
    flags = dict(FINETUNE_FLAGS, outdir=str(demo_dir / "finetune"), data=str(data),
                 resume=str(resolve_source(o.network)), kimg=o.finetune_kimg, device=device)
    run_dir = train(prepare_config(TrainingFlags(**flags)))
    G_ft = load_generator(sorted(Path(run_dir).glob("network-snapshot-*.safetensors"))[-1], device)
    seeds = range(o.compare_seeds)
    before_after = np.concatenate([render(G, seeds=seeds).numpy(), render(G_ft, seeds=seeds).numpy()])
    save_png(demo_dir / "2-before-after.png", image_grid(before_after, cols=len(seeds)))
    dist.print0(f"  before (top) and after (bottom): {demo_dir / '2-before-after.png'}")

    _step(3, f"Blending: layers below {o.blend_swap_res} px from '{o.network}', the rest from the fine-tuned "
             "network", start)
    G_blend = blend_networks(G, G_ft, BlendOptions(swap_res=o.blend_swap_res))
    save_network(G_blend, demo_dir / "3-blend.safetensors")
    save_png(demo_dir / "3-blend.png", blend_preview(G, G_blend, G_ft, seeds))
    dist.print0(f"  rows emoji, blend, fine-tuned: {demo_dir / '3-blend.png'}")

    _step(4, f"Translating {o.translate_count} held-out Noto emoji (never seen in training) into the new style",
          start)
    inputs = demo_dir / "4-translate" / "inputs"
    inputs.mkdir(parents=True)
    for name, png in held_out_images("demo")[:o.translate_count]:
        (inputs / name).write_bytes(png)
    results = translate_images(G, G_ft, sorted(inputs.glob("*.png")), demo_dir / "4-translate",
                               ProjectOptions(steps=o.project_steps, seed=0), progress=False)
    rows = []
    with torch.no_grad():
        for path, (result, _) in zip(sorted(inputs.glob("*.png")), results):
            rows += [load_target(path, res, G.img_channels), result.image,        # [H, W, C] each
                     synthesize(G_ft, result.ws, noise=result.noise)[0].numpy(),
                     synthesize(G_blend, result.ws, noise=result.noise)[0].numpy()]
    save_png(demo_dir / "4-translate.png", image_grid(np.stack(rows), cols=4))
    dist.print0(f"  columns input, reconstruction, fine-tuned, blend: {demo_dir / '4-translate.png'}")

    _step(5, "An interpolation video through the fine-tuned network", start)
    video, frames = make_video(G_ft, demo_dir / "5-interpolation.mp4", list(range(o.video_seeds)),
                               VideoOptions(w_frames=o.video_frames, loop=True, fps=30), progress=False)
    dist.print0(f"  {frames} frames: {video}")

    finetune_outdir = shlex.quote(str(demo_dir / "finetune"))
    dist.print0(f"""
Done in {time.time() - start:.0f} s. Everything is in {demo_dir}:
  1-emoji.png  2-before-after.png  3-blend.png  4-translate.png  5-interpolation.mp4

Go further (these commands run as printed):
  Fine-tune longer:      {cmd} train --outdir {finetune_outdir} --resume latest --kimg 40
  Your own images:       {cmd} dataset --source ~/my-images --dest mine.zip --resolution {res}x{res}
                         {cmd} train --outdir runs --data mine.zip --resume {o.network} --batch 32 --gamma 0.05 \\
                             --freezed 4 --mirror --kimg 20 --metrics none
  More emoji:            {cmd} generate --network {o.network} --seeds 0-63 --grid 8x8 --outdir out
  Translate your image:  {cmd} translate --network-a {o.network} --network-b {shlex.quote(str(_newest(run_dir)))} \\
                             --target my-emoji.png --outdir out/translate
  In a browser:          {cmd} serve --network {o.network}""")
    return demo_dir


def _newest(run_dir: str | os.PathLike) -> Path:
    return sorted(Path(run_dir).glob("network-snapshot-*.safetensors"))[-1]


def demo_dataset(outdir: str | os.PathLike) -> Path:
    """The bundled emoji resized to 32x32, converted once into outdir."""
    path = Path(outdir) / f"demo-{DEMO_RESOLUTION}x{DEMO_RESOLUTION}.zip"
    if not path.exists():
        dist.print0(f"Converting the bundled demo dataset to {DEMO_RESOLUTION}x{DEMO_RESOLUTION}: {path}")
        convert_dataset("demo", path, ConvertOptions(resolution=(DEMO_RESOLUTION, DEMO_RESOLUTION)))
    return path


def run_demo_from_scratch(outdir: str | os.PathLike = "demo-runs", device: str = "cpu", kimg: float | None = None,
                          **overrides) -> Path:
    """Train the small StyleGAN3-T from nothing in a new run directory under outdir; returns the run directory.

    kimg: training length (default 4, about 10 minutes on two cores, soft coloured blobs); overrides: any other
    train flag."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    data = demo_dataset(outdir)
    flags = dict(DEMO_FLAGS, outdir=str(outdir), data=str(data), device=device, **overrides)
    if kimg is not None:
        flags["kimg"] = kimg
    cmd = stylegan_command()
    command = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in flags.items())
    dist.print0(f"Demo: {cmd} train {command}\n")
    run_dir = train(prepare_config(TrainingFlags(**flags)))
    networks = sorted(Path(run_dir).glob("network-snapshot-*.safetensors"))    # the loop said where they are
    if networks:
        dist.print0(f"More images:       {cmd} generate --network {networks[-1]} --seeds 0-15 --grid 4x4 "
                    f"--outdir {Path(run_dir) / 'generated'}")
    dist.print0(f"Train it further:  {cmd} train --outdir {outdir} --resume latest --kimg 24")
    return run_dir
