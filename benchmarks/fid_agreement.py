"""FID agreement with pytorch-fid, an established peer: same weights file, same two folders of 299x299 images.

pytorch-fid needs torchvision, which does not import beside the CPU build of torch that the project pins,
so this runs in a venv of its own (outside the repo) and imports our code from the repo's src/:

    python3 -m venv /tmp/fidvenv
    /tmp/fidvenv/bin/pip install torch==2.14.1 torchvision==0.29.1 pytorch-fid numpy scipy pillow tqdm
    /tmp/fidvenv/bin/python benchmarks/fid_agreement.py --images 200

Nothing is downloaded: the script writes random Inception weights (He-scaled, batch norm calibrated on the
images so activations stay well scaled) in pytorch-fid's state-dict layout and places them where pytorch-fid's
loader looks ($TORCH_HOME/hub/checkpoints/pt_inception-2015-12-05-6726825d.pth). Our loader reads the same file.

It prints JSON with three FIDs of folder A against folder B:
  pytorch_fid         pytorch-fid's calculate_fid_given_paths.
  ours_same_inputs    our Inception on pytorch-fid's input scaling (2 x / 255 - 1) and covariance (N - 1),
                      with our Frechet distance: isolates network and formula; should agree to ~1e-6.
  ours                `stylegan metrics` as it runs (NVIDIA's conventions: inputs (x - 128) / 128, covariance
                      over N); differs from pytorch-fid by those two documented conventions only.
  ours_with_n_minus_1_covariance   the same features with covariance over N - 1: what is left is the
                      input scaling (x - 128) / 128 against pytorch-fid's (x - 127.5) / 127.5.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import PIL.Image
import torch

REPO_SRC = Path(__file__).resolve().parents[1] / "src"


def make_folder(path: Path, n: int, seed: int, roughness: float) -> Path:
    """n 299x299 RGB images: smooth random colour fields plus pixel noise (more of it with `roughness`)."""
    path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.linspace(0, 1, 299), np.linspace(0, 1, 299), indexing="ij")
    for i in range(n):
        img = np.zeros((299, 299, 3))
        for _ in range(4):
            fx, fy = rng.uniform(0.5, 4, size=2)
            wave = np.sin(2 * np.pi * (fx * xx + fy * yy) + rng.uniform(0, 6.3))[..., None]
            img += wave * rng.uniform(20, 60, size=3)
        img += 128 + rng.normal(0, roughness, size=img.shape)
        PIL.Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path / f"{i:05d}.png")
    return path


class Folder:
    """The images of a folder as (uint8 [3, H, W], label) items: what our metrics read from a dataset.
    (ImageDataset insists on power-of-two sizes, as training does; 299x299 keeps the resize out of the test.)"""

    def __init__(self, path: Path):
        self.path, self.name = path, path.name
        self.files = sorted(path.glob("*.png"))

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        return np.asarray(PIL.Image.open(self.files[i])).transpose(2, 0, 1).copy(), np.zeros(0, np.float32)


def load_batches(folder: Path, batch: int = 25):
    files = sorted(folder.glob("*.png"))
    for start in range(0, len(files), batch):
        images = np.stack([np.asarray(PIL.Image.open(f)) for f in files[start:start + batch]])
        yield torch.from_numpy(images).permute(0, 3, 1, 2)


def calibrated_random_weights(model, folders, seed: int) -> dict:
    """He-scaled random convolutions, batch norm statistics measured on the images (momentum None = average)."""
    torch.manual_seed(seed)
    for name, p in model.named_parameters():
        if name.endswith("conv.weight") or name == "fc.weight":
            p.data.normal_(0, (2 / p[0].numel()) ** 0.5)
        elif name.endswith("bn.bias") or name == "fc.bias":
            p.data.normal_(0, 0.1)
        elif name.endswith("bn.weight"):
            p.data.uniform_(0.8, 1.2)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
            m.train()
    with torch.no_grad():
        calib = torch.cat([next(load_batches(f, 8)) for f in folders])
        model.trunk(model.preprocess(calib))
    model.eval()
    return {k: v.clone() for k, v in model.state_dict().items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=200, help="images per folder")
    parser.add_argument("--workdir", type=Path, default=None, help="where folders and weights go [a temp dir]")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    sys.path.insert(0, str(REPO_SRC))
    from stylegan.metrics import formulas, weights
    from stylegan.metrics.features import MetricOptions, dataset_stats
    from stylegan.metrics.inception import InceptionV3

    work = args.workdir or Path(tempfile.mkdtemp(prefix="fid-agreement-"))
    os.environ["TORCH_HOME"] = str(work / "torch")
    checkpoints = work / "torch" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    folder_a = make_folder(work / "a", args.images, args.seed + 1, roughness=4)
    folder_b = make_folder(work / "b", args.images, args.seed + 2, roughness=24)

    state = calibrated_random_weights(InceptionV3(), [folder_a, folder_b], args.seed)
    torch.save(state, checkpoints / weights.INCEPTION_PYTORCH_FID.name)

    import pytorch_fid
    from pytorch_fid.fid_score import calculate_fid_given_paths
    t0 = time.time()
    fid_peer = float(calculate_fid_given_paths([str(folder_a), str(folder_b)], batch_size=25, device="cpu", dims=2048,
                                               num_workers=0))
    t_peer = time.time() - t0

    model, _ = weights.load_inception(checkpoints, download=False)  # the very file pytorch-fid just loaded
    t0 = time.time()
    with torch.no_grad():
        acts = [np.concatenate([model.trunk(b.float() / 255 * 2 - 1).numpy() for b in load_batches(f)])
                .astype(np.float64) for f in (folder_a, folder_b)]
    fid_same = formulas.frechet_distance(acts[0].mean(0), np.cov(acts[0], rowvar=False),
                                         acts[1].mean(0), np.cov(acts[1], rowvar=False))
    opts = MetricOptions(device=torch.device("cpu"), cache=False, num_workers=0, progress=False, batch_size=25)
    stats = [dataset_stats(opts, Folder(f), model, "agreement", None, capture_mean_cov=True)
             for f in (folder_a, folder_b)]
    fid_ours = formulas.frechet_distance(stats[0].mean, stats[0].cov, stats[1].mean, stats[1].cov)
    unbias = [s.num_items / (s.num_items - 1) for s in stats]  # the covariance convention alone
    fid_ours_unbiased = formulas.frechet_distance(stats[0].mean, stats[0].cov * unbias[0],
                                                  stats[1].mean, stats[1].cov * unbias[1])
    t_ours = time.time() - t0

    n = args.images
    print(json.dumps({
        "images_per_folder": n,
        "pytorch_fid_version": pytorch_fid.__version__,
        "torch": torch.__version__,
        "fid": {"pytorch_fid": fid_peer, "ours_same_inputs": fid_same, "ours": fid_ours,
                "ours_with_n_minus_1_covariance": fid_ours_unbiased},
        "relative_difference": {
            "ours_same_inputs_vs_pytorch_fid": abs(fid_same - fid_peer) / abs(fid_peer),
            "ours_vs_pytorch_fid": abs(fid_ours - fid_peer) / abs(fid_peer),
            "ours_with_n_minus_1_covariance_vs_pytorch_fid": abs(fid_ours_unbiased - fid_peer) / abs(fid_peer),
        },
        "seconds": {"pytorch_fid": round(t_peer, 1), "ours_both_passes": round(t_ours, 1)},
        "workdir": str(work),
    }, indent=2))


if __name__ == "__main__":
    main()
