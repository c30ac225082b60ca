"""Where the feature networks' weights come from, and how each file format is read.

Search order: `feature_dir` (--feature-dir), then `$STYLEGAN_CACHE/features` (default ~/.cache/stylegan/features).
In each folder the first file found wins, in this order:

Inception-v3 (FID, KID, IS)
  inception-2015-12-05.safetensors        ours (`export_safetensors`)
  inception-2015-12-05.pkl                NVIDIA's detector pickle, read by `safe_pickle` (its code never runs)
  pt_inception-2015-12-05-6726825d.pth    pytorch-fid's state dict (downloaded when missing and online)
VGG16 (precision/recall) and LPIPS heads (PPL)
  vgg16.safetensors                       ours: torchvision VGG16 + `lpips.lin{k}` heads
  vgg16-397923af.pth                      torchvision's VGG16 (downloaded when missing and online)
  vgg.pth                                 the LPIPS v0.1 heads from the `lpips` package (downloaded likewise)

Downloads go through the one download cache (stylegan.io.fetch): into the cache's `features` folder, checked
against their SHA-256 before use, once per machine under torchrun. Set STYLEGAN_OFFLINE=1 to never try; a missing
file then stops with one line (`WeightsUnavailable`) naming the file and where to get it, and so does a download
that fails, with its reason.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from stylegan.core.errors import StyleGANError
from stylegan.core.files import atomic_path
from stylegan.io import fetch
from stylegan.metrics import inception as inception_mod
from stylegan.metrics import vgg as vgg_mod
from stylegan.metrics.safe_pickle import read_pickled_tensors


@dataclass(frozen=True)
class WeightFile:
    name: str
    url: str | None = None
    sha256: str | None = None   # full digest, or the prefix a file name carries (torch hub's convention)


INCEPTION_OURS = WeightFile("inception-2015-12-05.safetensors")
INCEPTION_NVIDIA = WeightFile(
    "inception-2015-12-05.pkl",
    "https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan3/versions/1/files/metrics/inception-2015-12-05.pkl")
INCEPTION_PYTORCH_FID = WeightFile(
    "pt_inception-2015-12-05-6726825d.pth",
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
    "6726825d")
VGG16_OURS = WeightFile("vgg16.safetensors")
VGG16_TORCHVISION = WeightFile(
    "vgg16-397923af.pth", "https://download.pytorch.org/models/vgg16-397923af.pth", "397923af")
LPIPS_VGG_HEADS = WeightFile(
    "vgg.pth", "https://raw.githubusercontent.com/richzhang/PerceptualSimilarity/master/lpips/weights/v0.1/vgg.pth",
    "a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868")

INCEPTION_FILES = (INCEPTION_OURS, INCEPTION_NVIDIA, INCEPTION_PYTORCH_FID)


class WeightsUnavailable(StyleGANError):
    """A metric's feature network is neither on disk nor downloadable here (offline, or the download failed)."""


def search_dirs(feature_dir: str | os.PathLike | None) -> list[Path]:
    dirs = [Path(feature_dir).expanduser()] if feature_dir else []
    return dirs + [fetch.cache_dir() / "features"]


def _find(candidates, dirs: list[Path]) -> Path | None:
    for folder in dirs:
        for file in candidates:
            if (folder / file.name).is_file():
                return folder / file.name
    return None


def locate(candidates: tuple[WeightFile, ...], what: str, feature_dir=None, download: bool = True) -> Path:
    """The first candidate file present; else the last downloadable one fetched into the cache; else an error."""
    dirs = search_dirs(feature_dir)
    found = _find(candidates, dirs)
    if found is not None:
        return found
    fetchable = [c for c in candidates if c.url and c.sha256]
    target = fetchable[-1] if fetchable else candidates[-1]
    where = " or ".join(str(d) for d in dirs)
    if download and not fetch.offline() and target.url and target.sha256:
        try:
            return fetch.download(
                target.url, dest=fetch.cache_dir() / "features" / target.name, sha256=target.sha256,
                by_hand=f"place {target.name} in {dirs[0]} by hand (or pass --feature-dir DIR holding it)")
        except fetch.DownloadError as exc:
            raise WeightsUnavailable(f"{what} weights not found in {where}, and {exc}") from None
    names = ", ".join(c.name for c in candidates)
    raise WeightsUnavailable(f"{what} weights not found (looked for {names} in {where}); download {target.url} "
                             f"into {dirs[0]} (or pass --feature-dir DIR holding it)")


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a .safetensors, .pth (state dict, loaded with weights_only) or NVIDIA .pkl file."""
    try:
        if path.suffix == ".safetensors":
            import safetensors.torch
            return safetensors.torch.load_file(str(path), device="cpu")
        if path.suffix == ".pkl":
            return read_pickled_tensors(path.read_bytes())
        state = torch.load(path, map_location="cpu", weights_only=True)
    except StyleGANError as exc:            # keeps its class (FileLimitError, UnsafePickleError) for callers
        raise type(exc)(f"{path}: {exc}") from None
    except Exception as exc:  # a truncated or foreign file: say which, not a traceback
        # torch's UnpicklingError explains weights_only over many lines; its first line names the problem.
        first_line = (str(exc).strip().splitlines() or [""])[0]
        raise StyleGANError(f"cannot read {path} ({type(exc).__name__}: {first_line}); "
                            "replace it with a good copy") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise StyleGANError(f"{path} does not hold a state dict; use one of the files docs/metrics.md lists")
    return {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}


def file_digest(path: Path, sample_mib: int = 64) -> str:
    """The feature network's identity in cache keys: SHA-256 of the file's size and contents (memoised).

    Files over `sample_mib` MiB are hashed on 64 evenly spaced 1 MiB windows (VGG16 is 528 MiB): any real
    change of weights changes them, and hashing stays well under a second.
    """
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _digests:
        h = hashlib.sha256(str(st.st_size).encode())
        with open(path, "rb") as f:
            if st.st_size <= sample_mib << 20:
                while chunk := f.read(1 << 22):
                    h.update(chunk)
            else:
                for i in range(64):
                    f.seek((st.st_size - (1 << 20)) * i // 63)
                    h.update(f.read(1 << 20))
        _digests[key] = h.hexdigest()
    return _digests[key]


_digests: dict[tuple, str] = {}
_loaded: dict[tuple, tuple[torch.nn.Module, str]] = {}


def load_inception(feature_dir=None, device: torch.device | str = "cpu", download: bool = True
                   ) -> tuple[inception_mod.InceptionV3, str]:
    """The FID Inception network on `device`, and an identity string for cache keys (file name + digest)."""
    path = locate(INCEPTION_FILES, "Inception-v3 (2015-12-05)", feature_dir, download)
    key = ("inception", str(path.resolve()), path.stat().st_mtime_ns, str(device))
    if key not in _loaded:
        tensors = read_tensors(path)
        if path.suffix == ".pkl":
            try:
                tensors = inception_mod.nvidia_to_ours(tensors)
            except KeyError as exc:
                raise StyleGANError(f"{path} is not NVIDIA's Inception detector (no tensor {exc}); use "
                                    "inception-2015-12-05.pkl from the StyleGAN3 metrics") from None
        model = inception_mod.load_state(empty_model(inception_mod.InceptionV3), tensors, str(path)).to(device)
        _loaded[key] = (model, f"inception-2015-12-05:{file_digest(path)[:16]}")
    return _loaded[key]  # type: ignore[return-value]


def load_vgg16(feature_dir=None, device: torch.device | str = "cpu", need_lpips: bool = False, need_fc: bool = True,
               download: bool = True) -> tuple[vgg_mod.VGG16, str]:
    """torchvision's VGG16 (with LPIPS heads when available) on `device`, and an identity for cache keys.

    PPL needs the heads but not the fully connected layers (need_fc=False); precision/recall the reverse."""
    dirs = search_dirs(feature_dir)
    ours = _find((VGG16_OURS,), dirs)
    body = ours or locate((VGG16_TORCHVISION,), "VGG16", feature_dir, download)
    heads = None
    if ours is None and (need_lpips or _find((LPIPS_VGG_HEADS,), dirs)):
        heads = locate((LPIPS_VGG_HEADS,), "LPIPS (vgg, v0.1) heads", feature_dir, download)
    key = ("vgg16", str(body.resolve()), body.stat().st_mtime_ns, str(heads), str(device), need_lpips, need_fc)
    if key not in _loaded:
        tensors = read_tensors(body)
        if heads is not None:
            tensors.update(vgg_mod.lpips_heads_from_package(_check_heads(read_tensors(heads), heads)))
        with_fc = need_fc or "classifier.0.weight" in tensors
        model = empty_model(lambda: vgg_mod.VGG16(fc=with_fc))
        model.reset_constants()
        model = vgg_mod.load_state(model, tensors, str(body), need_lpips, need_fc).to(device)
        _loaded[key] = (model, f"vgg16:{file_digest(body)[:16]}")
    return _loaded[key]  # type: ignore[return-value]


def _check_heads(tensors: dict[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    if not all(f"lin{k}.model.1.weight" in tensors for k in range(5)):
        raise StyleGANError(f"{path} is not LPIPS's vgg.pth (no lin0.model.1.weight ... lin4.model.1.weight); "
                            "take lpips/weights/v0.1/vgg.pth from the lpips package")
    return tensors


def empty_model(build):
    """A feature network from `build()` with uninitialised weights (no random init), to be loaded."""
    with torch.device("meta"):
        model = build()
    return model.to_empty(device="cpu")


def export_safetensors(model: torch.nn.Module, path: str | os.PathLike) -> Path:
    """Write a feature network's weights in our format (what `load_inception` / `load_vgg16` read first)."""
    import safetensors.torch
    path = Path(path)
    skip = ()
    if isinstance(model, vgg_mod.VGG16):  # parts that were never loaded hold no weights
        skip = (() if model.has_lpips else ("lpips.",)) + (() if model.has_fc else ("classifier.",))
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()
             if not k.endswith("num_batches_tracked") and not (skip and k.startswith(skip))}
    with atomic_path(path) as tmp:
        safetensors.torch.save_file(state, str(tmp))
    return path
