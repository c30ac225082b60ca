"""Files of the generation suite: PNGs with reproducible bytes, latents (.npz), target photos, output folders.

Latent files hold `w` [N, num_ws, w_dim] float32, NVIDIA's projector layout, so their projected_w.npz loads here
and ours loads there. A projection adds the StyleGAN2 noise maps it optimised as `noise.<buffer name>` arrays
(e.g. noise.synthesis.b8.conv0.noise_const) and a few scalars describing how it was made; readers that only
know `w` ignore them.
"""
from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np
import PIL.Image
import torch

from stylegan.core.errors import StyleGANError, UsageError
from stylegan.core.files import atomic_path, atomic_save_bytes

NOISE_PREFIX = "noise."


def png_bytes(image: np.ndarray | torch.Tensor) -> bytes:
    """uint8 [H, W, C] (C = 1, 3 or 4) -> PNG bytes. Pillow writes no time or software chunks, so the same pixels
    always give the same bytes."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise ValueError(f"expected uint8 [H, W, 1|3|4], got {image.dtype} {list(image.shape)}")
    pil = PIL.Image.fromarray(image[:, :, 0] if image.shape[2] == 1 else image)
    buf = io.BytesIO()
    pil.save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def save_png(path: str | os.PathLike, image: np.ndarray | torch.Tensor) -> Path:
    """Write uint8 [H, W, C] to `path` atomically (never a half-written PNG)."""
    atomic_save_bytes(path, png_bytes(image))
    return Path(path)


def prepare_outdir(outdir: str | os.PathLike, flag: str = "--outdir") -> Path:
    """Create `outdir` if needed and make sure files can be written in it, before any work starts."""
    path = Path(outdir).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".stylegan-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"{flag} {outdir}: cannot write there ({exc.strerror or exc}); "
                         "choose a folder you can write to") from None
    return path


def prepare_output_file(path: str | os.PathLike, flag: str, suffixes: tuple[str, ...]) -> Path:
    """Check an output file's name and that its folder is writable, before any work starts."""
    path = Path(path).expanduser()
    if path.suffix.lower() not in suffixes:
        raise UsageError(f"{flag} {path}: name it with {' or '.join(suffixes)}")
    prepare_outdir(path.parent if str(path.parent) else ".", flag)
    return path


# --- latents -------------------------------------------------------------------------------------------------------

def save_ws(path: str | os.PathLike, ws: torch.Tensor, noise: dict[str, torch.Tensor] | None = None,
            **extra) -> Path:
    """Write latents ws [N, num_ws, w_dim] (and optionally noise maps and scalar notes) to a .npz file."""
    arrays = {"w": ws.detach().to("cpu", torch.float32).numpy()}
    for name, value in (noise or {}).items():
        arrays[NOISE_PREFIX + name] = value.detach().to("cpu", torch.float32).numpy()
    arrays.update({k: np.asarray(v) for k, v in extra.items()})
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)
    return Path(path)


def load_ws(path: str | os.PathLike, num_ws: int, w_dim: int, flag: str = "--ws"
            ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Latents ws [N, num_ws, w_dim] and any saved noise maps from a .npz (key `w`) or .npy file.

    W latents [N, w_dim] or [w_dim] are broadcast to every layer; a single W+ latent [num_ws, w_dim] becomes N = 1."""
    path = Path(path).expanduser()
    try:
        data = np.load(path, allow_pickle=False)
        if isinstance(data, np.ndarray):
            w, noise = data, {}
        else:
            with data:
                if "w" not in data.files:
                    have = ", ".join(data.files) or "none"
                    raise UsageError(f"{flag} {path}: no array named 'w' in it (it has {have}); "
                                     "use a projected_w.npz from `stylegan project`")
                w = data["w"]
                noise = {k[len(NOISE_PREFIX):]: torch.from_numpy(data[k]) for k in data.files
                         if k.startswith(NOISE_PREFIX)}
    except FileNotFoundError:
        raise UsageError(f"{flag} {path}: no such file") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise UsageError(f"{flag} {path}: cannot read it as .npz or .npy ({exc})") from None
    w = torch.from_numpy(np.asarray(w, dtype=np.float32))
    if w.ndim == 1:
        w = w[None]
    if w.ndim == 2 and w.shape == (num_ws, w_dim) and num_ws != 1:
        w = w[None]
    if w.ndim == 2 and w.shape[1] == w_dim:
        w = w[:, None].repeat(1, num_ws, 1)
    if w.ndim != 3 or w.shape[1:] != (num_ws, w_dim):
        raise UsageError(f"{flag} {path}: latents of shape {list(w.shape)} do not fit this network, which takes "
                         f"[N, {num_ws}, {w_dim}] (W+) or [N, {w_dim}] (W); were they made with another network?")
    return w, noise


# --- target photos -------------------------------------------------------------------------------------------------

def load_target(path: str | os.PathLike, resolution: int, channels: int = 3, flag: str = "--target") -> np.ndarray:
    """A photo as uint8 [resolution, resolution, channels]: the centre square, resized with Lanczos."""
    path = Path(path).expanduser()
    try:
        with PIL.Image.open(path) as pil:
            pil.load()
            pil = pil.convert("L" if channels == 1 else "RGB")
    except FileNotFoundError:
        raise UsageError(f"{flag} {path}: no such file") from None
    except (OSError, PIL.Image.DecompressionBombError, ValueError) as exc:
        raise UsageError(f"{flag} {path}: cannot read it as an image ({exc}); use a PNG or JPEG photo") from None
    w, h = pil.size
    s = min(w, h)
    pil = pil.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
    pil = pil.resize((resolution, resolution), PIL.Image.LANCZOS)
    image = np.asarray(pil, dtype=np.uint8)
    return image[:, :, None] if image.ndim == 2 else image


def check_exists(path: str | os.PathLike, flag: str) -> Path:
    path = Path(path).expanduser()
    if not path.is_file():
        raise StyleGANError(f"{flag} {path}: no such file")
    return path
