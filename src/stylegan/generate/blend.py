"""`stylegan blend`: layer swapping between two networks of one architecture (Pinkney & Adler 2020).

"Resolution Dependent GAN Interpolation for Controllable Image Synthesis Between Domains" observes that in a
network B fine-tuned from a network A, the layers at low resolution still decide pose and shape the way A's do,
while the high-resolution layers decide texture and style. Taking the coarse layers from A and the fine ones
from B gives a network that draws A's structures in B's style (the "toonify" trick), reached with A's latents.

Every synthesis layer gets a weight t: 0 takes it from A, 1 from B. The layers, in the order they run:
  * StyleGAN2: b4.const, b4.conv1, b4.torgb, b8.conv0, b8.conv1, b8.torgb, ... (b<r>.skip before conv0 with the
    resnet architecture); a layer's resolution is its block's, r.
  * StyleGAN3: input, L0_<size>_<channels>, L1_..., ... L<n> (ToRGB); a layer's resolution is its output sampling
    rate s[i] of the StyleGAN3 paper (Appendix F.1): the pixels per image width of the signal it carries, a power
    of two. The stored size (the name's middle number) adds the margin of 2 * margin_size pixels, and the last two
    layers crop it, so size would call the same signal 52 px in one layer and 32 px in the next. The Fourier input's
    resolution is that of L0.
The swap point is the first layer taken from B: the first at or above --swap-res, or the named --swap-layer.
With --smooth WIDTH the weights follow a ramp instead of a step, centred between the last A layer and the first B
layer, WIDTH layers wide: linear, or a sigmoid with the same slope at its centre (t = sigmoid(4 d / WIDTH), d the
distance from the centre in layers). Learned parameters are interpolated, (1 - t) A + t B; buffers (StyleGAN2's
noise maps, StyleGAN3's Fourier frequencies, filters and magnitude averages) are taken whole from the side with
t >= 0.5, since an average of two noise draws is not a noise draw. The mapping network and w_avg come whole from
A (the latent space of A), or from B with mapping_from='b'.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from stylegan.core.errors import StyleGANError, UsageError
from stylegan.generate.files import prepare_outdir, save_png
from stylegan.generate.network import load_generator
from stylegan.generate.render import check_class, image_grid, is_stylegan3, seeds_to_ws, seeds_to_z, synthesize

RAMPS = ("sigmoid", "linear")
SIDES = ("a", "b")
# Config fields two blendable networks may disagree on: a preset label, the decay rates of averages that are
# only updated while training (StyleGAN3's magnitude_ema_beta follows the batch size, which fine-tuning may change),
# and the mixed-precision settings, which follow the device a network was trained on (fp16 on CUDA, fp32 on a CPU)
# and do not change what the weights mean.
IGNORED_FIELDS = ("cfg", "mapping.w_avg_beta", "synthesis.magnitude_ema_beta", "synthesis.num_fp16_res",
                  "synthesis.conv_clamp", "synthesis.fp16_channels_last")


@dataclass(frozen=True)
class BlendOptions:
    """Where and how to swap. Exactly one of swap_res and swap_layer."""
    swap_res: int | None = None                 # --swap-res: layers at this resolution and above from B
    swap_layer: str | None = None               # --swap-layer: this layer (name or index) and all after it from B
    smooth: float = 0.0                         # --smooth: width of the ramp in layers; 0 = a hard swap
    ramp: str = "sigmoid"                       # --ramp: sigmoid | linear
    mapping_from: str = "a"                     # --mapping-from: whose mapping network and w_avg
    flag_prefix: str = "--"                     # how errors spell the flags ('--blend-' in `stylegan translate`)

    def __post_init__(self):
        p = self.flag_prefix
        if (self.swap_res is None) == (self.swap_layer is None):
            raise UsageError(f"give either {p}swap-res or {p}swap-layer, not both and not neither")
        if self.swap_res is not None and not (self.swap_res >= 1 and self.swap_res & (self.swap_res - 1) == 0):
            raise UsageError(f"{p}swap-res: {self.swap_res} is not allowed; use a power of two such as 16 "
                             "(layers at that resolution and above come from B)")
        if not (math.isfinite(self.smooth) and self.smooth >= 0):
            raise UsageError(f"{p}smooth: {self.smooth} is not allowed; use a width in layers >= 0 (0 = hard swap)")
        if self.ramp not in RAMPS:
            raise UsageError(f"{p}ramp: {self.ramp!r} is not allowed; choose one of {', '.join(RAMPS)}")
        if self.mapping_from not in SIDES:
            raise UsageError(f"--mapping-from: {self.mapping_from!r} is not allowed; choose one of {', '.join(SIDES)}")


@dataclass(frozen=True)
class Layer:
    name: str                                   # under G.synthesis: b16.conv0, L3_52_64, input
    resolution: int                             # see the module docstring


def synthesis_layers(G) -> list[Layer]:
    """The synthesis layers of G in the order they run, each with its resolution."""
    syn = G.synthesis
    if is_stylegan3(G):
        specs = syn.schedule
        return [Layer("input", specs[0].sampling_rate)] + [
            Layer(name, spec.sampling_rate) for name, spec in zip(syn.layer_names, specs)]
    layers = []
    for res in syn.block_resolutions:
        block = getattr(syn, f"b{res}")
        parts = ["const", "skip", "conv0", "conv1", "torgb"]          # forward order within a block
        layers += [Layer(f"b{res}.{part}", res) for part in parts if hasattr(block, part)]
    return layers


def config_difference(config_a, config_b) -> str | None:
    """The first config field (dotted path) in which two generators differ, with both values; None if none."""
    def walk(a: dict, b: dict, prefix: str) -> str | None:
        for key in list(a) + [k for k in b if k not in a]:
            path = prefix + key
            va, vb = a.get(key), b.get(key)
            if path in IGNORED_FIELDS:
                continue
            if isinstance(va, dict) and isinstance(vb, dict):
                found = walk(va, vb, path + ".")
                if found:
                    return found
            elif va != vb:
                return f"{path} (A: {va!r}, B: {vb!r})"
        return None
    return walk(config_a.to_dict(), config_b.to_dict(), "")


def check_blendable(G_a, G_b) -> None:
    """Refuse two generators whose layers do not correspond one to one, naming the field that differs."""
    difference = config_difference(G_a.config, G_b.config)
    if difference:
        raise UsageError(f"networks A and B differ in {difference}; blending swaps layers between two networks "
                         "of the same architecture, such as B fine-tuned from A")


def swap_index(layers: Sequence[Layer], options: BlendOptions) -> int:
    """Index of the first layer taken from B (len(layers): none)."""
    if options.swap_res is not None:
        return next((i for i, layer in enumerate(layers) if layer.resolution >= options.swap_res), len(layers))
    text = str(options.swap_layer).strip()
    names = [layer.name for layer in layers]
    if text.isdigit() and int(text) < len(layers):
        return int(text)
    for i, name in enumerate(names):
        # A full name, a StyleGAN2 block (b16: its first layer) or a StyleGAN3 layer by index (L5 = L5_<size>_<ch>).
        if text in (name, name.split(".")[0], name.split("_")[0]):
            return i
    raise UsageError(f"{options.flag_prefix}swap-layer: {text!r} is not a layer of this network; give an index "
                     f"0-{len(layers) - 1} or a name: {', '.join(names)}")


def blend_weights(G, options: BlendOptions) -> dict[str, float]:
    """Layer name -> weight of B (0 = all A, 1 = all B), in the order the layers run."""
    layers = synthesis_layers(G)
    centre = swap_index(layers, options) - 0.5                 # between the last layer of A and the first of B
    weights = {}
    for i, layer in enumerate(layers):
        d = i - centre
        if options.smooth == 0:
            t = 1.0 if d > 0 else 0.0
        elif options.ramp == "linear":
            t = min(1.0, max(0.0, d / options.smooth + 0.5))
        else:
            t = 1.0 / (1.0 + math.exp(-4.0 * d / options.smooth))  # slope 1/WIDTH at the centre, as the linear ramp
        weights[layer.name] = t
    return weights


def _layer_of(state_name: str, index: dict[str, str]) -> str:
    """The layer a synthesis state entry belongs to: 'b8.conv0.weight' -> 'b8.conv0'; block-level buffers such as
    'b8.resample_filter' go with the block's first layer."""
    parts = state_name.split(".")
    for key in (".".join(parts[:2]), parts[0]):
        if key in index:
            return index[key]
    raise StyleGANError(f"blend: synthesis.{state_name} belongs to no known layer; this network's layout is not "
                        "one blend understands")


@torch.no_grad()
def blend_networks(G_a, G_b, options: BlendOptions) -> torch.nn.Module:
    """A new generator with A's config: each synthesis layer (1 - t) A + t B by blend_weights, the mapping network
    and w_avg from options.mapping_from. Neither input is changed; the result is frozen, in eval mode, on A's
    device."""
    from stylegan.networks.presets import build_from_config
    check_blendable(G_a, G_b)
    weights = blend_weights(G_a, options)
    index: dict[str, str] = {}
    for name in weights:
        index.setdefault(name, name)
        index.setdefault(name.split(".")[0], name)              # b8 -> b8's first layer
    learned = {name for name, _ in G_a.named_parameters()}
    state_b = G_b.state_dict()
    mapping_t = 0.0 if options.mapping_from == "a" else 1.0
    state = {}
    for name, a in G_a.state_dict().items():
        b = state_b[name].to(a.device)
        prefix = "synthesis."
        t = weights[_layer_of(name[len(prefix):], index)] if name.startswith(prefix) else mapping_t
        if name in learned and 0 < t < 1 and a.is_floating_point():
            state[name] = torch.lerp(a, b, t)
        else:
            state[name] = (b if t >= 0.5 else a).clone()
    G = build_from_config(G_a.config)
    G.load_state_dict(state, strict=True)
    return G.to(next(iter(G_a.parameters())).device).eval().requires_grad_(False)


def describe_blend(G, options: BlendOptions) -> str:
    """One line saying how a blend was made, for the file's metadata and the command's report."""
    layers = synthesis_layers(G)
    i = swap_index(layers, options)
    where = (f"layers from {layers[i].name} ({layers[i].resolution} px) on from B, before it from A"
             if i < len(layers) else "every layer from A")
    if options.swap_res is not None:
        where = f"swap at {options.swap_res} px: " + where
    width = f"{options.smooth:g} layer{'' if options.smooth == 1 else 's'}"
    how = "hard swap" if options.smooth == 0 else f"{options.ramp} ramp {width} wide"
    return f"{where}; {how}; mapping network and w_avg from {options.mapping_from.upper()}"


def blend_preview(G_a, G_blend, G_b, seeds: Sequence[int], class_idx: int | None = None) -> np.ndarray:
    """uint8 grid: one column per seed; rows A, the blend, B, all drawn from the blend's ws of that seed."""
    ws = seeds_to_ws(G_blend, seeds, class_idx=class_idx)             # [N, num_ws, w_dim]
    rows = [synthesize(G, ws).numpy() for G in (G_a, G_blend, G_b)]    # 3 x [N, H, W, C]
    return image_grid(np.concatenate(rows), cols=len(seeds), rows=3)


def load_pair(network_a, network_b, device) -> tuple[torch.nn.Module, torch.nn.Module]:
    """Both generators of a blend or translation (--network-a, --network-b), checked to correspond."""
    G_a = load_generator(network_a, device, flag="--network-a")
    G_b = load_generator(network_b, device, flag="--network-b")
    check_blendable(G_a, G_b)
    return G_a, G_b


def write_blend(network_a, network_b, out: str | os.PathLike, options: BlendOptions,
                preview_seeds: Sequence[int] | None = None, preview_class: int | None = None,
                overwrite: bool = False, device: str | torch.device = "auto") -> tuple[dict[str, Path], str]:
    """`stylegan blend`: blend two networks (paths, URLs or modules) and write the result as a network file, and
    with preview_seeds a PNG next to it (<name>-preview.png: rows A, blend, B). Returns the paths and the note."""
    out = Path(out).expanduser()
    if out.suffix != ".safetensors":
        raise UsageError(f"--out: {out.name} must end in .safetensors (our network format)")
    if out.exists() and not overwrite:
        raise UsageError(f"--out: {out} exists; pass --overwrite to replace it")
    if preview_seeds is not None and not preview_seeds:
        raise UsageError("--preview-seeds: no seeds given; write e.g. 0-5")
    prepare_outdir(out.parent, "--out")
    G_a, G_b = load_pair(network_a, network_b, device)
    G = blend_networks(G_a, G_b, options)
    note = describe_blend(G_a, options)
    if preview_seeds is not None:                                     # bad seeds or class stop here, before any file
        seeds_to_z(preview_seeds, G.z_dim)
        check_class(G, preview_class)
    from stylegan.io import save_network
    extra = {"blended": note, "blend": {
        "network_a": str(network_a), "network_b": str(network_b), "swap_res": options.swap_res,
        "swap_layer": options.swap_layer, "smooth": options.smooth, "ramp": options.ramp,
        "mapping_from": options.mapping_from, "weights_of_b": blend_weights(G_a, options)}}
    paths = {"network": save_network(G, out, extra_metadata=extra)}
    if preview_seeds is not None:
        paths["preview"] = save_png(out.with_name(out.stem + "-preview.png"),
                                    blend_preview(G_a, G, G_b, preview_seeds, preview_class))
    return paths, note
