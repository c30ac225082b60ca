"""`stylegan directions` and `stylegan edit`: unsupervised edit directions by PCA of W, and edits along them.

GANSpace (Härkönen et al. 2020, "Discovering Interpretable GAN Controls") samples many w = mapping(z), takes
their principal components, and edits an image by moving its w along one component, in units of that
component's standard deviation, in a chosen range of layers only: coarse layers (the first ws) change pose and
shape, middle ones smaller features, fine ones colour (StyleGAN, Sec. 3.1). Which component does what is
different for every network; look at the strips.

A directions file (.npz) holds
    directions          [K, w_dim]  unit vectors, orthogonal, sorted by explained variance (largest first)
    stdev               [K]         standard deviation of w along each, the unit of edit strength
    explained_variance  [K]         fraction of W's total variance each explains
    mean                [w_dim]     the mean w of the samples
    layer_start, layer_end [K]      layers (first, last, inclusive) each direction is meant to edit
    num_ws, w_dim, num_samples, seed
`stylegan directions --layers 0-5` records 0-5 for every component; the default is every layer. `stylegan edit`
uses the recorded range unless --layers says otherwise. A file with one plain vector (`.npy`, or an `.npz` with a
single array, such as InterFaceGAN's boundaries) also works as a direction, with stdev 1 and every layer.
"""
from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from stylegan.core.errors import UsageError
from stylegan.core.files import atomic_path
from stylegan.generate.files import prepare_outdir, prepare_output_file, save_png
from stylegan.generate.render import (
    RenderOptions, check_class, check_layers, image_grid, network_device, require_one_source, seeds_to_ws, synthesize,
    truncate)


@dataclass
class Directions:
    vectors: torch.Tensor                       # [K, w_dim] orthonormal, sorted by variance
    stdev: torch.Tensor                         # [K] standard deviation of w along each vector
    explained: torch.Tensor                     # [K] fraction of the total variance of W
    mean: torch.Tensor                          # [w_dim] mean w of the samples
    layers: list[tuple[int, int]]               # per vector: first and last layer to edit (inclusive)
    num_ws: int                                 # layers of the network the directions were found for
    num_samples: int = 0
    seed: int = 0

    def __len__(self) -> int:
        return len(self.vectors)

    def layer_list(self, index: int) -> list[int]:
        first, last = self.layers[index]
        return list(range(first, last + 1))


@torch.no_grad()
def compute_directions(G, num_samples: int = 10000, components: int = 20, seed: int = 0,
                       class_idx: int | None = None, layers: Sequence[int] | None = None,
                       batch: int = 1000) -> Directions:
    """The first `components` principal components of W over `num_samples` seeds, as GANSpace finds them.

    Conditional networks: samples of class `class_idx`, or of uniformly random classes when it is None."""
    if num_samples < 2:
        raise UsageError(f"--num-samples: {num_samples} is too few; use at least 2 (10000 is a good default)")
    if not 1 <= components <= min(G.w_dim, num_samples - 1):
        raise UsageError(f"--components: {components} is not allowed; use 1 to {min(G.w_dim, num_samples - 1)} "
                         f"(w_dim is {G.w_dim}, and K components need more than K samples)")
    if G.c_dim == 0 or class_idx is not None:
        check_class(G, class_idx)
    layer_range = _range_of(layers, G.num_ws)
    device = network_device(G)
    rng = np.random.RandomState(seed)
    ws = []
    for start in range(0, num_samples, batch):
        n = min(batch, num_samples - start)
        z = torch.from_numpy(rng.randn(n, G.z_dim)).to(device, torch.float32)
        c = torch.zeros([n, G.c_dim], device=device)
        if G.c_dim:
            c[torch.arange(n), torch.from_numpy(rng.randint(G.c_dim, size=n)) if class_idx is None else class_idx] = 1
        ws.append(G.mapping(z, c)[:, 0].to(torch.float64))                      # [n, w_dim]
    w = torch.cat(ws)
    mean = w.mean(dim=0)
    cov = (w - mean).T @ (w - mean) / (num_samples - 1)                          # [w_dim, w_dim]
    eigval, eigvec = torch.linalg.eigh(cov)                                      # ascending
    order = torch.argsort(eigval, descending=True)[:components]
    vectors = eigvec[:, order].T.contiguous()                                    # [K, w_dim]
    # A component's sign is arbitrary; fix it (largest coordinate positive) so reruns give the same file.
    signs = torch.sign(vectors.gather(1, vectors.abs().argmax(dim=1, keepdim=True)))
    vectors = vectors * signs
    variance = eigval[order].clamp(min=0)
    return Directions(vectors=vectors.float().cpu(), stdev=variance.sqrt().float().cpu(),
                      explained=(variance / eigval.clamp(min=0).sum()).float().cpu(), mean=mean.float().cpu(),
                      layers=[layer_range] * components, num_ws=G.num_ws, num_samples=num_samples, seed=seed)


def _range_of(layers: Sequence[int] | None, num_ws: int) -> tuple[int, int]:
    if layers is None:
        return 0, num_ws - 1
    layers = sorted(layers)
    check_layers(layers, num_ws, "--layers")
    if layers != list(range(layers[0], layers[-1] + 1)):
        raise UsageError(f"--layers: {layers} is not one range; give consecutive layers such as 0-5")
    return layers[0], layers[-1]


def save_directions(path: str | os.PathLike, d: Directions) -> Path:
    path = prepare_output_file(path, "--out", (".npz",))
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, directions=d.vectors.numpy(), stdev=d.stdev.numpy(), explained_variance=d.explained.numpy(),
                 mean=d.mean.numpy(), layer_start=np.array([a for a, _ in d.layers], dtype=np.int64),
                 layer_end=np.array([b for _, b in d.layers], dtype=np.int64), num_ws=d.num_ws,
                 w_dim=d.vectors.shape[1], num_samples=d.num_samples, seed=d.seed)
    return path


# A directions file from `stylegan directions` holds a few MB. numpy allocates whatever an .npz member claims,
# so a file is refused by its unpacked size before numpy reads it.
MAX_DIRECTIONS_BYTES = 64 * 2 ** 20


def _check_unpacked_size(path: Path, flag: str) -> None:
    size = path.stat().st_size
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            size = max(size, sum(i.file_size for i in zf.infolist()))
    if size > MAX_DIRECTIONS_BYTES:
        raise UsageError(f"{flag} {path}: it holds {size:,} bytes (unpacked); a directions file from "
                         f"`stylegan directions` holds a few MB, and at most {MAX_DIRECTIONS_BYTES // 2 ** 20} MiB "
                         "is read")


def load_directions(path: str | os.PathLike, num_ws: int | None = None, flag: str = "--direction") -> Directions:
    """A directions file from save_directions, or a single plain direction vector (.npy / one-array .npz)."""
    path = Path(path).expanduser()
    try:
        _check_unpacked_size(path, flag)
        data = np.load(path, allow_pickle=False)
        arrays = {"": data} if isinstance(data, np.ndarray) else {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise UsageError(f"{flag} {path}: no such file") from None
    except UsageError:
        raise
    except Exception as exc:    # a corrupt or foreign file: say which, not a traceback
        raise UsageError(f"{flag} {path}: cannot read it as .npz or .npy ({exc})") from None
    if "directions" in arrays:
        vectors = torch.from_numpy(arrays["directions"].astype(np.float32))
        k = len(vectors)
        file_ws = int(arrays.get("num_ws", num_ws or 1))
        layers = list(zip(arrays["layer_start"].tolist(), arrays["layer_end"].tolist())) \
            if "layer_start" in arrays else [(0, file_ws - 1)] * k
        d = Directions(vectors=vectors, stdev=torch.from_numpy(arrays["stdev"].astype(np.float32)),
                       explained=torch.from_numpy(arrays.get("explained_variance", np.zeros(k)).astype(np.float32)),
                       mean=torch.from_numpy(arrays.get("mean", np.zeros(vectors.shape[1])).astype(np.float32)),
                       layers=layers, num_ws=file_ws, num_samples=int(arrays.get("num_samples", 0)),
                       seed=int(arrays.get("seed", 0)))
    elif len(arrays) == 1:
        v = torch.from_numpy(np.asarray(next(iter(arrays.values())), dtype=np.float32)).reshape(1, -1)
        ws = num_ws or 1
        d = Directions(vectors=v, stdev=torch.ones(1), explained=torch.zeros(1), mean=torch.zeros(v.shape[1]),
                       layers=[(0, ws - 1)], num_ws=ws)
    else:
        raise UsageError(f"{flag} {path}: no 'directions' array and more than one array; use a file written by "
                         "`stylegan directions`, or a single direction vector")
    if num_ws is not None and d.num_ws != num_ws:
        raise UsageError(f"{flag} {path}: made for a network with {d.num_ws} layers, this one has {num_ws}; "
                         "run `stylegan directions` on this network")
    return d


def parse_direction(text: str) -> tuple[str, int]:
    """'dirs.npz:3' -> ('dirs.npz', 3); 'dirs.npz' -> ('dirs.npz', 0)."""
    head, sep, tail = str(text).rpartition(":")
    if sep and tail.strip().isdigit():
        return head, int(tail)
    return str(text), 0


def apply_direction(ws: torch.Tensor, direction: torch.Tensor, strength: float,
                    layers: Sequence[int] | None = None) -> torch.Tensor:
    """ws [N, num_ws, w_dim] moved by strength * direction [w_dim] in `layers` (all when None). Strength 0 returns
    ws unchanged."""
    out = ws.clone()
    if strength == 0:
        return out
    idx = list(range(ws.shape[1])) if layers is None else list(layers)
    check_layers(idx, ws.shape[1], "--layers")
    out[:, idx] += strength * direction.to(ws.device, ws.dtype)
    return out


def parse_strengths(text: str, steps: int) -> list[float]:
    """--strength -3,3 --steps 7 -> [-3, -2, -1, 0, 1, 2, 3]; a single value gives just that strength."""
    try:
        values = [float(v) for v in str(text).split(",")]
    except ValueError:
        raise UsageError(f"--strength: cannot read {text!r}; write LOW,HIGH in standard deviations, such as -3,3"
                         ) from None
    if len(values) == 1:
        return values
    if len(values) != 2:
        raise UsageError(f"--strength: {text!r} has {len(values)} numbers; write LOW,HIGH such as -3,3")
    if steps < 2:
        raise UsageError(f"--steps: {steps} is too few for a range of strengths; use 2 or more")
    return np.linspace(values[0], values[1], steps).tolist()


def edit_strips(G, ws: torch.Tensor, directions: Directions, index: int, strengths: Sequence[float],
                layers: Sequence[int] | None = None, options: RenderOptions = RenderOptions(),
                noise: dict[str, torch.Tensor] | None = None, batch: int = 8) -> torch.Tensor:
    """Edited images uint8 [N, S, H, W, C]: row n is ws[n] moved by strengths[s] standard deviations along
    direction `index`, in `layers` (default: the layers recorded for that direction)."""
    if not 0 <= index < len(directions):
        raise UsageError(f"--direction: index {index} does not exist; the file has {len(directions)} directions "
                         f"(0-{len(directions) - 1})")
    if directions.vectors.shape[1] != G.w_dim:
        raise UsageError(f"--direction: vectors have {directions.vectors.shape[1]} numbers, but this network's w has "
                         f"{G.w_dim}; use directions made for this network")
    layers = directions.layer_list(index) if layers is None else list(layers)
    check_layers(layers, G.num_ws, "--layers")
    step = directions.vectors[index] * directions.stdev[index]                   # one standard deviation
    ws = ws.to(network_device(G), torch.float32)
    edited = torch.stack([apply_direction(ws, step, s, layers) for s in strengths], dim=1)   # [N, S, num_ws, w_dim]
    images = synthesize(G, edited.flatten(0, 1), options.noise_mode, options.translate, options.rotate,
                        batch=batch, noise=noise)
    return images.reshape(len(ws), len(strengths), *images.shape[1:])


def write_edits(G, outdir: str | os.PathLike, directions_path: str | os.PathLike, index: int,
                strengths: Sequence[float], seeds: Sequence[int] | None = None,
                ws_file: str | os.PathLike | None = None, layers: Sequence[int] | None = None,
                options: RenderOptions = RenderOptions(), batch: int = 8) -> list[Path]:
    """`stylegan edit`: one strip per seed (edit-seed0001.png) or latent (edit-w0000.png), strengths left to right."""
    from stylegan.generate.files import load_ws
    require_one_source(seeds, ws_file)
    options.check(G, seeds=seeds is not None)
    directions = load_directions(directions_path, G.num_ws)
    if seeds is not None:
        ws, noise = seeds_to_ws(G, seeds, options.psi, options.cutoff, options.class_idx), None
        names = [f"edit-seed{s:04d}.png" for s in seeds]
    else:
        ws, noise = load_ws(ws_file, G.num_ws, G.w_dim)
        ws = truncate(G, ws.to(network_device(G)), options.psi, options.cutoff)
        names = [f"edit-w{i:04d}.png" for i in range(len(ws))]
    out = prepare_outdir(outdir)
    strips = edit_strips(G, ws, directions, index, strengths, layers, options, noise, batch).numpy()
    return [save_png(out / name, image_grid(strip, cols=len(strengths))) for name, strip in zip(names, strips)]
