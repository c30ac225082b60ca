"""`stylegan video`: interpolation through W between keyframe seeds, one path per grid cell, written as H.264 MP4.

Seeds are dealt to the cells in order: with --grid 2x1 and --seeds 0-5, the left cell visits 0, 1, 2 and the right
cell 3, 4, 5 (as NVIDIA's gen_video.py deals them). Each cell moves through its K keyframes, `w_frames` frames per
step between two of them:

    open path (default):  key 0 -> ... -> key K-1,           (K-1) * w_frames + 1 frames
    --loop:               key 0 -> ... -> key K-1 -> key 0,  K * w_frames + 1 frames

Every video ends on a keyframe, so with --loop the last frame is the first frame again, bit for bit before
encoding. 'cubic' is a cubic spline through the keyframes (periodic for --loop, so speed and direction are
continuous where the loop closes); 'linear' moves in straight lines at constant speed.

For StyleGAN3, --translate-path and --rotate-path move the input transform along their own keyframes, spread
evenly over the whole video: with an equivariant network the picture moves as a whole, texture included.

The ffmpeg binary comes inside the imageio-ffmpeg wheel; no system ffmpeg is needed.
"""
from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import torch

from stylegan.core.errors import UsageError
from stylegan.core.files import atomic_path
from stylegan.generate.files import prepare_output_file
from stylegan.generate.render import (
    RenderOptions, image_grid, is_stylegan3, seeds_to_ws, synthesize)

KINDS = ("cubic", "linear")


@dataclass(frozen=True)
class VideoOptions:
    """What `stylegan video` makes. Field names follow its flags."""
    grid: tuple[int, int] = (1, 1)              # --grid: columns x rows of independent loops
    w_frames: int = 120                         # --w-frames: frames from one keyframe to the next
    kind: str = "cubic"                         # --kind: cubic | linear interpolation between keyframes
    loop: bool = False                          # --loop: return to the first keyframe; last frame == first frame
    psi: float = 1.0                            # --trunc
    cutoff: int | None = None                   # --trunc-cutoff
    class_idx: int | None = None                # --class
    noise_mode: str = "const"                   # --noise-mode; 'random' flickers, 'const' is what videos want
    fps: float = 60.0                           # --fps
    quality: float = 8.0                        # --quality: imageio's 0-10 H.264 quality (10 = best, largest)
    translate_path: tuple[tuple[float, float], ...] = ()   # --translate-path: StyleGAN3 input shift keyframes
    rotate_path: tuple[float, ...] = ()         # --rotate-path: StyleGAN3 input rotation keyframes, degrees

    def __post_init__(self):
        if self.grid[0] < 1 or self.grid[1] < 1:
            raise UsageError(f"--grid: {self.grid[0]}x{self.grid[1]} has an empty side; use e.g. 2x2")
        if self.w_frames < 1:
            raise UsageError(f"--w-frames: {self.w_frames} is not allowed; use 1 or more frames per keyframe step")
        if self.kind not in KINDS:
            raise UsageError(f"--kind: {self.kind!r} is not allowed; choose one of {', '.join(KINDS)}")
        if not (self.fps > 0 and math.isfinite(self.fps)):
            raise UsageError(f"--fps: {self.fps} is not allowed; use a positive number such as 30 or 60")
        if not 0 <= self.quality <= 10:
            raise UsageError(f"--quality: {self.quality} is not allowed; use 0 to 10")
        # RenderOptions checks psi, cutoff, class and noise mode with the same messages as `stylegan generate`.
        RenderOptions(psi=self.psi, cutoff=self.cutoff, class_idx=self.class_idx, noise_mode=self.noise_mode)

    @property
    def cells(self) -> int:
        return self.grid[0] * self.grid[1]

    def num_frames(self, num_keyframes: int) -> int:
        return (num_keyframes if self.loop else num_keyframes - 1) * self.w_frames + 1


def keyframe_seeds(seeds: Sequence[int], cells: int) -> np.ndarray:
    """Seeds as [cells, K]: consecutive seeds go to the same cell."""
    if len(seeds) % cells != 0 or len(seeds) < 2 * cells:
        raise UsageError(f"--seeds: {len(seeds)} seeds cannot be dealt to {cells} grid cells; give a multiple of "
                         f"{cells} and at least 2 per cell (e.g. --seeds 0-{2 * cells - 1})")
    return np.asarray(seeds, dtype=np.int64).reshape(cells, -1)


def interpolate(keys: np.ndarray, w_frames: int, kind: str = "cubic", loop: bool = False) -> np.ndarray:
    """Frames [F, ...] through keyframes keys [K, ...] along axis 0, w_frames per step, ending on a keyframe.

    With `loop`, time wraps around (frame F-1 evaluates t = K, i.e. t = 0), so the last frame equals the first."""
    keys = np.asarray(keys, dtype=np.float64)
    k = len(keys)
    if k < 2:
        raise UsageError("a path needs at least 2 keyframes")
    steps = k if loop else k - 1
    t = np.arange(steps * w_frames + 1) / w_frames                      # keyframe units, 0 .. steps
    if loop:
        t = np.mod(t, k)
    knots = np.arange(k + 1 if loop else k, dtype=np.float64)
    values = np.concatenate([keys, keys[:1]]) if loop else keys
    if kind == "linear":
        i = np.minimum(np.floor(t).astype(np.int64), len(knots) - 2)
        frac = (t - i).reshape([-1] + [1] * (keys.ndim - 1))
        return values[i] * (1 - frac) + values[i + 1] * frac
    import scipy.interpolate
    bc = "periodic" if loop else "natural"
    return scipy.interpolate.CubicSpline(knots, values, axis=0, bc_type=bc)(t)


def transform_path(points: Sequence, num_frames: int, loop: bool) -> np.ndarray:
    """Per-frame values [num_frames, ...] moving linearly through `points`, spread evenly over the whole video.
    With `loop` the path is closed back to its first point (a rotation of a full turn already is)."""
    points = np.asarray(points, dtype=np.float64)
    if len(points) == 0:
        return np.zeros([num_frames] + list(points.shape[1:]))
    if len(points) == 1 or num_frames == 1:
        return np.repeat(points[:1], num_frames, axis=0)
    if points.ndim == 1:                                                # angles: a whole number of turns is closed
        gap = np.mod(points[-1] - points[0], 360)
        closed = min(gap, 360 - gap) < 1e-9
    else:
        closed = np.allclose(points[-1], points[0])
    if loop and not closed:
        points = np.concatenate([points, points[:1]])
    t = np.linspace(0, len(points) - 1, num_frames)
    i = np.minimum(np.floor(t).astype(np.int64), len(points) - 2)
    frac = (t - i).reshape([-1] + [1] * (points.ndim - 1))
    return points[i] * (1 - frac) + points[i + 1] * frac


def parse_translate_path(text: str | None) -> tuple[tuple[float, float], ...]:
    """'0,0:0.2,0:0,0.2' -> ((0, 0), (0.2, 0), (0, 0.2)): X,Y points separated by colons."""
    if not text:
        return ()
    try:
        points = tuple(tuple(float(v) for v in p.split(",")) for p in text.split(":"))
    except ValueError:
        points = ((),)
    if not all(len(p) == 2 for p in points):
        raise UsageError(f"--translate-path: cannot read {text!r}; write X,Y points separated by colons, "
                         "such as 0,0:0.2,0:0,0")
    return points  # type: ignore[return-value]


def parse_rotate_path(text: str | None) -> tuple[float, ...]:
    """'0,360' -> (0.0, 360.0): angles in degrees."""
    if not text:
        return ()
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise UsageError(f"--rotate-path: cannot read {text!r}; write angles in degrees such as 0,360") from None


def video_frames(G, seeds: Sequence[int], options: VideoOptions = VideoOptions(), batch: int = 8
                 ) -> tuple[int, Iterator[np.ndarray]]:
    """The number of frames and an iterator over them, uint8 [grid_h*H, grid_w*W, 3] each.

    Frames are rendered as they are consumed, so a long video never has to fit in memory."""
    render_opts = RenderOptions(psi=options.psi, cutoff=options.cutoff, class_idx=options.class_idx,
                                noise_mode=options.noise_mode)
    render_opts.check(G)
    if (options.translate_path or options.rotate_path) and not is_stylegan3(G):
        raise UsageError("--translate-path and --rotate-path animate StyleGAN3's input transform; this is a "
                         "StyleGAN2 network, which has none: leave them out")
    cell_seeds = keyframe_seeds(seeds, options.cells)                                 # [cells, K]
    cells, k = cell_seeds.shape
    ws = seeds_to_ws(G, cell_seeds.reshape(-1).tolist(), options.psi, options.cutoff, options.class_idx)
    ws = ws.reshape(cells, k, G.num_ws, G.w_dim).cpu().numpy()
    paths = np.stack([interpolate(ws[i], options.w_frames, options.kind, options.loop) for i in range(cells)], axis=1)
    num_frames = paths.shape[0]                                                       # [F, cells, num_ws, w_dim]
    translate = transform_path(options.translate_path, num_frames, options.loop)
    rotate = transform_path(options.rotate_path, num_frames, options.loop)
    cols, rows = options.grid

    def frames() -> Iterator[np.ndarray]:
        for f in range(num_frames):
            images = synthesize(G, torch.from_numpy(paths[f]).to(torch.float32), options.noise_mode,
                                translate=tuple(translate[f]) if options.translate_path else (0.0, 0.0),
                                rotate=float(rotate[f]) if options.rotate_path else 0.0, batch=batch,
                                noise_seeds=[f * cells + i for i in range(cells)])
            frame = image_grid(images.numpy(), cols, rows)
            yield np.repeat(frame, 3, axis=2) if frame.shape[2] == 1 else frame[:, :, :3]

    return num_frames, frames()


@contextlib.contextmanager
def mp4_writer(path: str | os.PathLike, fps: float = 60.0, quality: float = 8.0
               ) -> Iterator[Callable[[np.ndarray], None]]:
    """Yields append(frame) for uint8 RGB frames [H, W, 3], encoded as H.264 (yuv420p) MP4 by imageio-ffmpeg.
    The file appears under `path` only once it is complete."""
    import imageio
    with atomic_path(path) as tmp:
        writer = imageio.get_writer(tmp, format="FFMPEG", mode="I", fps=fps, codec="libx264", quality=quality,
                                    pixelformat="yuv420p", macro_block_size=2, ffmpeg_log_level="error")
        try:
            yield writer.append_data
        finally:
            writer.close()


def write_video(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: float = 60.0, quality: float = 8.0,
                total: int | None = None, progress: bool = True, desc: str = "video") -> Path:
    """Encode frames to `path` with mp4_writer, showing a progress bar."""
    from tqdm import tqdm
    with mp4_writer(path, fps, quality) as append:
        for frame in tqdm(frames, total=total, desc=desc, unit="frame", disable=not progress, leave=False):
            append(frame)
    return Path(path)


def make_video(G, output: str | os.PathLike, seeds: Sequence[int], options: VideoOptions = VideoOptions(),
               batch: int = 8, progress: bool = True) -> tuple[Path, int]:
    """Render the interpolation video and write it to `output` (.mp4). Returns the path and the frame count."""
    path = prepare_output_file(output, "--output", (".mp4",))
    num_frames, frames = video_frames(G, seeds, options, batch)
    write_video(path, frames, options.fps, options.quality, total=num_frames, progress=progress)
    return path, num_frames
