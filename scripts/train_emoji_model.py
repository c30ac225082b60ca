"""Retrain the shipped emoji network (`--network emoji`) from scratch, and export it into the package.

    python scripts/train_emoji_model.py --outdir ~/emoji-runs                 # train (days on 2 CPU cores; resumes)
    python scripts/train_emoji_model.py --outdir ~/emoji-runs --kimg 600      # stop at another length
    python scripts/train_emoji_model.py --outdir ~/emoji-runs --export        # newest snapshot -> the package
    python scripts/train_emoji_model.py --outdir ~/emoji-runs --swd           # its SWD, an untrained one's, the floor

What it does, so the shipped file can be checked:
  1. Converts the bundled Noto emoji ('demo') to 32x32 and leaves out the held-out images
     (stylegan.data.bundled.HELD_OUT), which the demo translates as unseen inputs.
  2. Runs `stylegan train` exactly as a user would (the command is printed), with the flags below. A run that was
     stopped goes on from its newest training state (`--resume latest`), bit for bit.
  3. --export takes G_ema and D of the newest snapshot (and ADA's p), writes them to
     src/stylegan/io/assets/emoji-stylegan2-32.safetensors (float32), and prints its SHA-256 and size;
     tests/test_pretrained.py holds the file to that hash and to reference pixels that it stores beside it
     (regenerate them with --export).

docs/pretrained.md records the command, kimg, hardware, wall time, curves and grid of the shipped network.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

# StyleGAN2 at 32x32 with 64 feature maps and a 2-layer mapping network: about 1.1 M parameters (4.6 MB), fast
# enough on two CPU cores (27 s/kimg on an idle machine), and large enough to draw recognisable emoji.
TRAIN_FLAGS = dict(cfg="stylegan2", batch=32, gamma=0.05, cbase=16384, cmax=64, map_depth=2, mirror=True,
                   aug="ada", tick=4, snap=2, workers=0, metrics="none", seed=0)
RESOLUTION = 32


def train_command(outdir: Path, kimg: float, device: str) -> list[str]:
    from stylegan.data.bundled import bundled_training_set
    data = bundled_training_set("demo", outdir / f"emoji-{RESOLUTION}-train.zip", RESOLUTION)
    flags = dict(TRAIN_FLAGS, outdir=str(outdir), data=str(data), kimg=kimg, device=device)
    if any(outdir.glob("0*/training-state-*.safetensors")):
        flags = dict(outdir=str(outdir), resume="latest", kimg=kimg, device=device)
    stylegan = Path(sys.executable).with_name("stylegan")
    return [str(stylegan), "train"] + [f"--{k.replace('_', '-')}={v}" for k, v in flags.items()]


def export(outdir: Path, snapshot: Path | None = None) -> Path:
    """G_ema and D of the newest snapshot (or `snapshot`) into the package: G_ema to draw with, D so that
    fine-tuning (`--resume emoji --freezed N`) starts from a trained discriminator, as transfer learning needs,
    and ADA's p. G itself is left out to stay under 8 MB (G_ema serves as both when fine-tuning)."""
    import stylegan
    from stylegan.generate.showcase import reference_images
    from stylegan.io import read_network_file, save_networks
    from stylegan.io.bundled import BUNDLED_NETWORKS, bundled_network_dir
    snapshots = [snapshot] if snapshot else sorted(outdir.glob("0*/network-snapshot-*.safetensors"))
    if not snapshots:
        sys.exit(f"no network-snapshot-*.safetensors under {outdir}; train first")
    nets = {key: stylegan.load_network(str(snapshots[-1]), what=key.lower()) for key in ("G_ema", "D")}
    augment_p = read_network_file(snapshots[-1])[1]["extra"].get("augment_p")
    dest = bundled_network_dir() / BUNDLED_NETWORKS["emoji"]
    save_networks(nets, dest, extra_metadata=None if augment_p is None else {"augment_p": augment_p})
    digest = hashlib.sha256(dest.read_bytes()).hexdigest()
    kimg = int(snapshots[-1].stem.rsplit("-", 1)[1])
    seeds, pooled = reference_images(stylegan.load_network(str(dest)))
    record = dict(sha256=digest, kimg=kimg, snapshot=snapshots[-1].name, reference_seeds=seeds,
                  reference_pooled=[round(v, 6) for v in pooled.flatten().tolist()])
    dest.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"exported {snapshots[-1]}\n  -> {dest} ({dest.stat().st_size / 1e6:.2f} MB)\n  sha256 {digest}")
    return dest


def swd_report(outdir: Path, snapshot: Path | None = None) -> dict:
    """SWD x 1e3 (stylegan.metrics.swd) of the shipped network, of an untrained network of the same config, and of
    the real-vs-real floor (or of `snapshot` in place of the shipped network, to judge it before exporting it):
    each set against a random half of the training images, with equal counts (the first
    half of the reals, or as many generated images), since SWD's sampling bias depends on the counts."""
    import numpy as np
    import torch

    import stylegan
    from stylegan.data import ImageDataset
    from stylegan.data.bundled import bundled_training_set
    from stylegan.generate.render import render
    from stylegan.metrics.swd import swd_between

    data = ImageDataset(str(bundled_training_set("demo", outdir / f"emoji-{RESOLUTION}-train.zip", RESOLUTION)))
    reals = np.stack([data[i][0] for i in range(len(data))])                   # uint8 [N, C, H, W]
    reals = reals[np.random.default_rng(0).permutation(len(reals))]   # the set is sorted by code point: shuffle
    half = len(reals) // 2
    first, second = reals[:half], reals[half:2 * half]
    G = stylegan.load_network(snapshot or "emoji")
    torch.manual_seed(0)
    untrained = stylegan.build_generator(G.config.cfg, G.img_resolution, **_architecture(G)).eval()

    def fakes(net):
        return render(net, seeds=range(half), batch=64).numpy().transpose(0, 3, 1, 2)   # uint8 [N, C, H, W]

    report = {"images_per_set": half,
              "real_vs_real": swd_between(first, second),
              "network_vs_real": swd_between(fakes(G), second),        # the shipped one, or --snapshot
              "untrained_vs_real": swd_between(fakes(untrained), second)}
    print(json.dumps(report, indent=1))
    return report


def _architecture(G) -> dict:
    from stylegan.training.transfer import architecture_flags
    flags = architecture_flags(G.config)
    flags.pop("cfg")
    return flags


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--outdir", type=Path, required=True, help="where the training runs go")
    parser.add_argument("--kimg", type=float, default=5000, help="training length (the run can be stopped earlier)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, mps or auto")
    parser.add_argument("--export", action="store_true",
                        help="copy G_ema and D of the newest snapshot into the package")
    parser.add_argument("--snapshot", type=Path,
                        help="with --export or --swd: this network-snapshot-*.safetensors instead")
    parser.add_argument("--swd", action="store_true", help="SWD of the shipped network, an untrained one, and the "
                        "real-vs-real floor (docs/pretrained.md)")
    args = parser.parse_args()
    if args.export or args.swd:
        if args.export:
            export(args.outdir, args.snapshot)
        if args.swd:
            swd_report(args.outdir, args.snapshot)
        return
    args.outdir.mkdir(parents=True, exist_ok=True)
    command = train_command(args.outdir, args.kimg, args.device)
    print(" ".join(command), flush=True)
    sys.exit(subprocess.call(command, cwd=os.getcwd()))


if __name__ == "__main__":
    main()
