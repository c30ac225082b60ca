"""The renderer: RenderParams in, PNG bytes (or JSON-ready dicts) out. Pure apart from its caches.

It holds nothing a request could change: networks are loaded once per file and kept (least recently used first
out), along with each network's layer list and the directions files that fit it. Given the same parameters it gives
the same bytes, and with view 'output' and a plain seed these are the bytes `stylegan generate` writes, because
both go through stylegan.generate's seeds_to_ws and synthesize. Everything a request asks for is checked before
any synthesis runs; a bad value raises ParamError naming the field.

Not thread-safe by design: the RenderWorker calls it from one thread. Its inputs and outputs are plain data, so it
could equally run in a process of its own.
"""
from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import logging
import os
import re
import shlex
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from stylegan.core.device import resolve_device
from stylegan.core.errors import StyleGANError
from stylegan.core.files import atomic_save_bytes
from stylegan.generate import (
    Directions, RenderOptions, apply_direction, generate_command, is_stylegan3, load_directions, png_bytes, save_png,
    save_ws, seeds_to_ws, style_mix, synthesize)
from stylegan.generate.files import prepare_outdir
from stylegan.viz.inspect import (
    OUTPUT, LayerInfo, activation_image, list_layers, power_spectrum_image, resize, run_capturing)
from stylegan.viz.params import DEFAULT_MAX_IMAGE_SIZE, ParamError, RenderParams
from stylegan.viz.isolated import LoadFailed, LoadTimedOut, load_isolated
from stylegan.viz.allowed_files import AllowedFiles, Source, is_url, quote_name

log = logging.getLogger("stylegan.viz")
DEFAULT_CACHE_SIZE = 4              # networks kept in memory
DEFAULT_LOAD_TIMEOUT = 60.0         # seconds a network may take to load before the request is answered 503
# A directions file holds a few dozen vectors (a few MB at most). numpy allocates what an .npz member's header
# claims before reading it, so a small hostile .npz could ask for gigabytes: sizes are checked first.


@dataclass(frozen=True)
class Rendered:
    """One answer to a render request."""
    png: bytes
    width: int
    height: int
    render_ms: float                # mapping + synthesis + view + PNG encoding
    load_ms: float                  # loading the network, when this request had to (else 0)
    layer: str | None               # the layer shown (view 'layer' or 'fft' of a layer)
    layer_shape: tuple[int, ...] | None     # its [C, H, W]


class _Network:
    def __init__(self, G: torch.nn.Module, source: Source):
        self.G = G
        self.source = source
        self.layers: list[LayerInfo] | None = None      # found on first use (one forward pass)


class _Load:
    """load_network on a thread of its own, so that a slow file holds neither the render worker nor the requests
    behind it. Pickles and URLs, which may be built to expand until memory runs out or to load forever, are read
    by a child process with a time and memory limit (isolated.py), which is killed when its time is up. Our own
    safetensors are read here; Python cannot stop a thread, so one that runs past its time is kept by the
    renderer and its result used if it ever finishes."""

    def __init__(self, location: str, device: torch.device, timeout: float):
        self.done = threading.Event()
        self.result: torch.nn.Module | None = None
        self.error: BaseException | None = None
        self.started = time.perf_counter()
        self._thread = threading.Thread(target=self._run, args=(location, device, timeout), name="stylegan-load",
                                        daemon=True)
        self._thread.start()

    def _run(self, location: str, device: torch.device, timeout: float) -> None:
        from stylegan.io import load_network
        try:
            if _untrusted_format(location):
                with tempfile.TemporaryDirectory(prefix="stylegan-serve-", ignore_cleanup_errors=True) as folder:
                    converted = load_isolated(location, Path(folder), timeout)
                    self.result = load_network(converted, what="g_ema", device=device)
            else:
                self.result = load_network(location, what="g_ema", device=device)
        except BaseException as exc:                    # handed to the request that waits for it
            self.error = exc
        finally:
            self.done.set()


def _untrusted_format(location: str) -> bool:
    """Whether the file is read in a child process: a pickle or a URL (which may turn out to be one)."""
    from stylegan.io.formats import sniff_format
    if is_url(location):
        return True
    try:
        return sniff_format(location) == "pickle"
    except OSError:
        return False


class Renderer:
    def __init__(self,
                 files: AllowedFiles,                       # what may be loaded
                 device: str | torch.device = "auto",       # auto | cpu | cuda | mps
                 cache_size: int = DEFAULT_CACHE_SIZE,      # networks kept loaded
                 max_size: int = DEFAULT_MAX_IMAGE_SIZE,    # longest edge of any returned image, px
                 export_dir: str | os.PathLike | None = None,   # where export() may write; None = export off
                 load_timeout: float = DEFAULT_LOAD_TIMEOUT):    # seconds to wait for a network to load
        self.files = files
        self.load_timeout = load_timeout
        self._loads: dict[str, _Load] = {}              # loads that ran past load_timeout, by location
        self.device = resolve_device(device)
        self.cache_size = cache_size
        self.max_size = max_size
        self.export_dir = prepare_outdir(export_dir, "--export-dir") if export_dir is not None else None
        self._networks: collections.OrderedDict[str, _Network] = collections.OrderedDict()
        self._directions: dict[tuple[str, float, int], Directions] = {}

    # --- networks ------------------------------------------------------------------------------------------------

    def _network(self, name: str) -> tuple[_Network, float]:
        """The loaded network a request names, and the ms spent loading it now (0 when it was cached)."""
        source = self.files.network(name)
        net = self._networks.get(source.location)
        if net is not None:
            self._networks.move_to_end(source.location)
            return net, 0.0
        load = self._loads.get(source.location) or _Load(source.location, self.device, self.load_timeout)
        # A little longer than the child's own limit, so that a child killed on time is reported as such.
        if not load.done.wait(self.load_timeout + 2):
            self._loads[source.location] = load         # one runaway load per file, never a pile of them
            raise self._too_slow(name)
        self._loads.pop(source.location, None)
        if isinstance(load.error, LoadTimedOut):
            raise self._too_slow(name)
        if load.error is not None:
            # The message, not the type: every reader error names what is wrong with the file. Anything else
            # (a bug in a reader, a hostile file that reaches one) is still the file's fault as far as the page
            # can tell, so it is a 422 too; the log keeps the details.
            if not isinstance(load.error, (StyleGANError, MemoryError, LoadFailed)):
                log.warning("loading %s failed", source.location, exc_info=load.error)
            raise ParamError("network", f"cannot load {quote_name(name)}: {self._public(load.error, source)}") from None
        G = load.result
        start = load.started
        if not hasattr(G, "mapping") or not hasattr(G, "synthesis"):
            raise ParamError("network", f"{quote_name(name)} holds no generator")
        net = _Network(G.eval().requires_grad_(False), source)
        self._networks[source.location] = net
        while len(self._networks) > self.cache_size:
            self._networks.popitem(last=False)
        return net, (time.perf_counter() - start) * 1000

    def _too_slow(self, name: str) -> ParamError:
        return ParamError("network", f"{quote_name(name)} did not load within {self.load_timeout:g} s; the file "
                                     "may be damaged, built to exhaust the server, or too large for this machine", 503)

    def _public(self, exc: BaseException, source: Source) -> str:
        """An error message fit to send to the page: one line, with no path of this machine in it (the file is
        named as the request named it, --models-dir by its flag)."""
        text = str(exc) or type(exc).__name__
        if not isinstance(exc, (StyleGANError, LoadFailed)):
            text = f"{type(exc).__name__}: {text}"
        text = text.replace(source.location, source.name)
        if self.files.models_dir is not None:
            text = text.replace(str(self.files.models_dir), "--models-dir")
        text = _ABSOLUTE_PATH.sub(lambda m: m.group(1) + "…/" + m.group(2), text)
        text = " ".join(text.split())
        return text if len(text) <= 500 else text[:497] + "..."

    def _layers(self, net: _Network) -> list[LayerInfo]:
        if net.layers is None:
            G = net.G
            ws = G.mapping.w_avg.reshape(1, 1, -1).repeat(1, G.num_ws, 1)       # [1, num_ws, w_dim]
            net.layers = list_layers(lambda: synthesize(G, ws), G.synthesis)
        return net.layers

    def _directions_file(self, name: str, G) -> Directions:
        source = self.files.directions_file(name)
        try:
            # num_ws in the key: a single-vector file takes the layer count of the network it is loaded for.
            key = (source.location, os.path.getmtime(source.location), G.num_ws)
        except OSError:
            raise ParamError("directions", f"{quote_name(name)} is no longer there", 404) from None
        if key not in self._directions:
            try:
                self._directions[key] = load_directions(source.location, G.num_ws, flag="directions")
            except Exception as exc:                    # numpy and zipfile raise many kinds for a hostile file
                if not isinstance(exc, StyleGANError):
                    log.warning("loading %s failed", source.location, exc_info=exc)
                raise ParamError("directions", f"cannot load {quote_name(name)}: {self._public(exc, source)}") from None
        d = self._directions[key]
        if d.num_ws != G.num_ws or d.vectors.shape[1] != G.w_dim:
            raise ParamError("directions", f"{quote_name(name)} was made for a network with {d.num_ws} layers of "
                                           f"{d.vectors.shape[1]} numbers; this one has {G.num_ws} of {G.w_dim}. "
                                           "Run `stylegan directions` on this network")
        return d

    def info(self, name: str) -> dict:
        """What the page needs to build its controls for a network."""
        net, load_ms = self._network(name)
        G = net.G
        directions = []
        for source in self.files.list_directions():
            try:
                d = self._directions_file(source.name, G)
            except ParamError:
                continue                        # made for another network, or not a directions file
            directions.append({"name": source.name, "components": len(d),
                               "explained": [round(float(v), 6) for v in d.explained],
                               "layers": [list(r) for r in d.layers]})
        has_noise = any(name.endswith("noise_const") for name, _ in G.synthesis.named_buffers())
        return {
            "network": name, "origin": net.source.origin, "family": G.config.family, "cfg": G.config.cfg,
            "resolution": G.img_resolution, "img_channels": G.img_channels, "z_dim": G.z_dim, "w_dim": G.w_dim,
            "c_dim": G.c_dim, "num_ws": G.num_ws, "stylegan3": is_stylegan3(G), "has_noise": has_noise,
            "layers": [{"name": layer.name, "shape": list(layer.shape)} for layer in self._layers(net)],
            "directions": directions, "load_ms": round(load_ms, 1), "device": str(self.device),
        }

    # --- checks that need the network ----------------------------------------------------------------------------

    def _check(self, net: _Network, p: RenderParams) -> RenderOptions:
        G = net.G
        if G.c_dim == 0 and p.class_idx is not None:
            raise ParamError("class", "this network is unconditional; leave class out (or null)")
        if G.c_dim > 0 and p.class_idx is None:
            raise ParamError("class", f"this network is conditional; give a class from 0 to {G.c_dim - 1}")
        if G.c_dim > 0 and p.class_idx >= G.c_dim:
            raise ParamError("class", f"{p.class_idx} is out of range; this network has classes 0 to {G.c_dim - 1}")
        if p.cutoff is not None and p.cutoff > G.num_ws:
            raise ParamError("cutoff", f"{p.cutoff} is out of range; this network has {G.num_ws} layers (0 to "
                                       f"{G.num_ws}, or null for all)")
        if (p.translate != (0.0, 0.0) or p.rotate != 0) and not is_stylegan3(G):
            raise ParamError("translate" if p.translate != (0.0, 0.0) else "rotate",
                             "this is a StyleGAN2 network, which has no input transform; send [0, 0] and 0")
        if p.mix_layers is not None and p.mix_layers[1] >= G.num_ws:
            raise ParamError("mix_layers", f"{list(p.mix_layers)} is out of range; this network's layers are 0 to "
                                           f"{G.num_ws - 1}")
        if p.directions is not None:
            d = self._directions_file(p.directions, G)
            if len(p.strengths) > len(d):
                raise ParamError("strengths", f"{len(p.strengths)} strengths, but {p.directions!r} has "
                                              f"{len(d)} components")
        if p.layer is not None:
            layers = {layer.name: layer for layer in self._layers(net)}
            if p.layer not in layers:
                shown = ", ".join(list(layers)[:40]) + (", ..." if len(layers) > 40 else "")
                raise ParamError("layer", f"{p.layer!r} is not a layer of this network; its layers are {shown}")
            channels = layers[p.layer].shape[0]
            if p.channel is not None and p.channel >= channels:
                raise ParamError("channel", f"{p.channel} is out of range; {p.layer} has channels 0 to "
                                            f"{channels - 1}")
        try:
            options = RenderOptions(psi=p.psi, cutoff=p.cutoff, class_idx=p.class_idx, noise_mode=p.noise_mode,
                                    translate=p.translate, rotate=p.rotate)
            options.check(G)
        except StyleGANError as exc:
            raise ParamError("params", str(exc)) from None
        return options

    # --- rendering -----------------------------------------------------------------------------------------------

    @torch.no_grad()
    def _latents(self, G, p: RenderParams) -> torch.Tensor:
        """ws [1, num_ws, w_dim]: the seed's (blended towards the next seed), style-mixed, moved along directions."""
        ws = seeds_to_ws(G, [p.seed], p.psi, p.cutoff, p.class_idx)             # exactly as `stylegan generate`
        if p.seed_frac > 0:
            # Linear in W between neighbouring seeds, as the seed animation walks through them.
            ws = ws.lerp(seeds_to_ws(G, [p.seed + 1], p.psi, p.cutoff, p.class_idx), p.seed_frac)
        if p.mix_seed is not None:
            other = seeds_to_ws(G, [p.mix_seed], p.psi, p.cutoff, p.class_idx)
            ws = style_mix(ws, other, range(p.mix_layers[0], p.mix_layers[1] + 1))
        if p.directions is not None:
            d = self._directions_file(p.directions, G)
            for i, strength in enumerate(p.strengths):
                if strength:
                    ws = apply_direction(ws, d.vectors[i] * d.stdev[i], strength, d.layer_list(i))
        return ws

    def render(self, p: RenderParams) -> Rendered:
        """One view of one picture, as PNG bytes."""
        net, load_ms = self._network(p.network)
        start = time.perf_counter()
        options = self._check(net, p)
        G = net.G
        ws = self._latents(G, p)

        def run() -> torch.Tensor:
            return synthesize(G, ws, options.noise_mode, options.translate, options.rotate, noise_seeds=[p.seed])

        shown = None
        if p.view == "output":
            image = run()[0].numpy()                                             # uint8 [H, W, C]
        else:
            shown = p.layer or OUTPUT
            # Stop after the layer when only it is needed (the image itself is the last "layer").
            _, x = run_capturing(run, G.synthesis, shown, stop_early=True)       # [C, H, W]
            if p.view == "layer":
                image = activation_image(x, p.channel)
            else:
                image = power_spectrum_image(x if p.channel is None else x[p.channel:p.channel + 1])
            shape = tuple(int(s) for s in x.shape)
        image = resize(image, p.size, self.max_size)
        png = png_bytes(image)
        render_ms = (time.perf_counter() - start) * 1000
        return Rendered(png=png, width=int(image.shape[1]), height=int(image.shape[0]), render_ms=render_ms,
                        load_ms=load_ms, layer=shown, layer_shape=shape if shown else None)

    # --- the equivalent command line, and export ------------------------------------------------------------------

    def command(self, p: RenderParams) -> dict:
        """The `stylegan generate` line that writes this picture, when there is one (exact = True)."""
        net, _ = self._network(p.network)
        options = self._check(net, p)
        notes = self._view_notes(net.G, p)
        if p.plain_seed:
            rounded = _rounded_flags(p)
            if rounded:
                notes.insert(0, f"The command writes {', '.join(rounded)} with 6 significant digits, so its image "
                                "may differ slightly.")
            return {"command": generate_command(net.source.location, [p.seed], options), "exact": not rounded,
                    "note": " ".join(notes)}
        made_of = [what for what, on in (("a blend of two seeds", p.seed_frac > 0),
                                         ("style mixing", p.mix_seed is not None),
                                         ("latent directions", any(p.strengths))) if on]
        how = ("Export saves its latents and answers with a `stylegan generate --ws` line that renders it"
               if self.export_dir is not None else
               "restart stylegan serve with --export-dir DIR and use Export: it saves the latents and answers "
               "with a `stylegan generate --ws` line that renders it")
        notes.insert(0, f"This picture uses {' and '.join(made_of)}, which `stylegan generate --seeds` cannot "
                        f"express; {how}.")
        return {"command": None, "exact": False, "note": " ".join(notes)}

    def export(self, p: RenderParams) -> dict:
        """Write the picture (the network's output, at its own resolution) as PNG, its latents as .npz and the
        request as .json into --export-dir; answer with their paths and a command that renders the PNG again."""
        if self.export_dir is None:
            raise ParamError("export", "export is off; start stylegan serve with --export-dir DIR to allow it", 403)
        net, _ = self._network(p.network)
        options = self._check(net, p)
        G = net.G
        ws = self._latents(G, p)
        image = synthesize(G, ws, options.noise_mode, options.translate, options.rotate, noise_seeds=[p.seed])
        request = {k: v for k, v in p.to_json().items() if k not in ("client", "seq", "view", "layer", "channel",
                                                                      "size")}
        digest = hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()[:8]
        stem = self.export_dir / f"seed{p.seed:04d}-{digest}"
        png = save_png(stem.with_suffix(".png"), image[0].numpy())
        latents = save_ws(stem.with_suffix(".npz"), ws)
        if p.plain_seed:
            command, exact = generate_command(net.source.location, [p.seed], options), True
        else:
            command = _ws_command(net.source.location, latents, options)
            # `generate --ws` draws random noise from seed 0 for its first latent; we draw it from the seed.
            has_noise = any(n.endswith("noise_const") for n, _ in G.synthesis.named_buffers())
            exact = not (options.noise_mode == "random" and has_noise and p.seed != 0)
        rounded = _rounded_flags(p, psi=p.plain_seed)
        note = " ".join(
            ([] if exact else ["With noise mode 'random' the command draws other noise; use const or none."])
            + ([f"The command writes {', '.join(rounded)} with 6 significant digits."] if rounded else []))
        exact = exact and not rounded
        sidecar = stem.with_suffix(".json")
        atomic_save_bytes(sidecar, json.dumps({"request": request, "command": command, "exact": exact},
                                              indent=2).encode())
        return {"png": str(png), "latents": str(latents), "params": str(sidecar), "command": command,
                "exact": exact, "note": note}

    @staticmethod
    def _view_notes(G, p: RenderParams) -> list[str]:
        notes = []
        if p.view != "output":
            notes.append("The command writes the network's output image; the layer and FFT views are the "
                         "visualizer's own.")
        if p.size is not None and p.size != G.img_resolution:
            notes.append(f"It writes the image at the network's {G.img_resolution} px, not the {p.size} px shown.")
        return notes


# A POSIX or Windows absolute path with at least one folder: the folders are dropped, the file name kept.
_ABSOLUTE_PATH = re.compile(r"(^|[\s'\"(=])(?:/|[A-Za-z]:\\)(?:[^\s'\"/\\]+[/\\])+([^\s'\"/\\]*)")


def _rounded_flags(p: RenderParams, psi: bool = True) -> list[str]:
    """The flags whose values a command line (`{value:g}`, 6 significant digits) would not carry exactly."""
    values = {"translate": p.translate, "rotate": (p.rotate,)}
    if psi:
        values["psi"] = (p.psi,)
    return [name for name, vals in values.items() if any(float(f"{v:g}") != v for v in vals)]


def _ws_command(network: str, latents: Path, options: RenderOptions) -> str:
    """`stylegan generate --ws FILE ...`: generate_command's line for these options, with the latents in place of
    the seed. The latents already hold truncation, class, mixing and directions, so only synthesis flags remain."""
    synthesis_only = dataclasses.replace(options, psi=1.0, cutoff=None, class_idx=None)
    argv = shlex.split(generate_command(network, "0", synthesis_only))
    at = argv.index("--seeds")
    argv[at:at + 2] = ["--ws", str(latents)]
    return shlex.join(argv)
