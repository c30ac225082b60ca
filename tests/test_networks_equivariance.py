"""Translation equivariance (StyleGAN3, Sec. 3 and the EQ-T metric of Sec. 4).

The measurement, the same for every generator: synthesize a reference image; move the network's *input* by an
integer number d of output pixels; shift the reference by d pixels in the same direction; compare the two over the
pixels that both images cover, at least `border` pixels away from the image edges; report PSNR with peak 2 (images
in [-1, 1]), after dividing both images by the reference's standard deviation so that a quiet untrained network
cannot score well by being quiet.
  StyleGAN3: the input moves through `G.synthesis.input.transform` (the inverse transform, as NVIDIA's
    gen_images.py and EQ-T set it: translate x by t means transform[0, 2] = -t, in units of the image width).
  StyleGAN2: the input is the learned 4x4 constant, so the only integer move it allows is whole constant pixels,
    i.e. d = resolution / 4 output pixels; the constant is shifted with zeros filling the gap, noise is off.
The same d = resolution / 4 is used for all generators so the masks are identical.
"""
import math

import pytest
import torch

import stylegan


def shift_image(img: torch.Tensor, dx: int, dy: int) -> tuple[torch.Tensor, torch.Tensor]:
    """img moved right by dx and down by dy pixels, zeros where nothing moved in; and the mask of valid pixels."""
    h, w = img.shape[-2:]
    out = torch.zeros_like(img)
    mask = torch.zeros_like(img)
    dst = (..., slice(max(dy, 0), h + min(dy, 0)), slice(max(dx, 0), w + min(dx, 0)))
    src = (..., slice(max(-dy, 0), h + min(-dy, 0)), slice(max(-dx, 0), w + min(-dx, 0)))
    out[dst] = img[src]
    mask[dst] = 1
    return out, mask


def psnr(img: torch.Tensor, ref: torch.Tensor, mask: torch.Tensor, border: int) -> float:
    """PSNR in dB (peak 2) over the masked pixels at least `border` from the edges, scale-normalised by ref."""
    inner = torch.zeros_like(mask)
    inner[..., border:mask.shape[-2] - border, border:mask.shape[-1] - border] = 1
    mask = mask * inner
    scale = ref.std()
    mse = ((img - ref) / scale).square().mul(mask).sum() / mask.sum()
    return 20 * math.log10(2) - 10 * math.log10(max(mse.item(), 1e-30))


@torch.no_grad()
def translated(G, ws: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """G's image for ws with its input moved by (dx, dy) output pixels."""
    if G.config.family == "stylegan3":
        transform = G.synthesis.input.transform
        saved = transform.clone()
        transform[0, 2] = -dx / G.img_resolution
        transform[1, 2] = -dy / G.img_resolution
        try:
            return G.synthesis(ws)
        finally:
            transform.copy_(saved)
    step = G.img_resolution // 4
    assert dx % step == 0 and dy % step == 0, "StyleGAN2's 4x4 input moves in steps of resolution / 4"
    const = G.synthesis.b4.const
    saved = const.clone()
    const.copy_(shift_image(saved, dx // step, dy // step)[0])
    try:
        return G.synthesis(ws, noise_mode="none")
    finally:
        const.copy_(saved)


def rotation90_psnr(G, ws: torch.Tensor, border: int) -> float:
    """PSNR of G rotated by +90 degrees through `transform` against the reference turned by torch.rot90."""
    with torch.no_grad():
        ref = G.synthesis(ws)
        transform = G.synthesis.input.transform
        saved = transform.clone()
        # NVIDIA's make_transform(angle=90) inverted: what gen_images.py writes to rotate by +90 degrees.
        transform.copy_(torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]))
        try:
            img = G.synthesis(ws)
        finally:
            transform.copy_(saved)
    return psnr(img, torch.rot90(ref, 1, dims=(2, 3)), torch.ones_like(ref), border)


@torch.no_grad()
def translation_psnr(G, ws: torch.Tensor, dx: int, dy: int, border: int) -> tuple[float, float]:
    """(PSNR against the reference shifted with the input, PSNR against the unshifted reference)."""
    noise = {} if G.config.family == "stylegan3" else dict(noise_mode="none")
    ref = G.synthesis(ws, **noise)
    img = translated(G, ws, dx, dy)
    moved, mask = shift_image(ref, dx, dy)
    return psnr(img, moved, mask, border), psnr(img, ref, torch.ones_like(ref), border)


def _network(cfg: str, resolution: int = 32):
    torch.manual_seed(0)
    G = stylegan.build_generator(cfg, resolution, cbase=2048, cmax=32, z_dim=32, w_dim=32).eval()
    ws = G.mapping(torch.randn(2, G.z_dim), None)
    return G, ws


@pytest.mark.parametrize("cfg", ["stylegan3-t", "stylegan3-r"])
def test_transform_translation_moves_the_content(cfg):
    G, ws = _network(cfg)
    d = G.img_resolution // 4
    with_shift, without = translation_psnr(G, ws, d, 0, border=G.img_resolution // 8)
    sg2, _ = translation_psnr(*_network("stylegan2"), d, 0, border=G.img_resolution // 8)
    assert without < 30                  # the content really moved ...
    assert with_shift > 40               # ... by exactly d pixels, away from the borders ...
    assert with_shift > sg2 + 20         # ... far more faithfully than StyleGAN2 measured the same way


@pytest.mark.slow
def test_small_integer_shifts_in_both_axes():
    G, ws = _network("stylegan3-t")
    for dx, dy in [(1, 0), (0, 2), (-3, 1)]:
        with_shift, without = translation_psnr(G, ws, dx, dy, border=G.img_resolution // 8)
        assert with_shift > 40 and with_shift > without + 15


@pytest.mark.slow
def test_rotation_by_90_degrees_through_transform():
    # A quarter turn maps the pixel grid onto itself, so no resampling is needed to compare; -R, with radial filters
    # and 1x1 convolutions, is rotation equivariant; -T is not (Sec. 3.3).
    scores = {cfg: rotation90_psnr(*_network(cfg), border=4) for cfg in ("stylegan3-t", "stylegan3-r")}
    assert scores["stylegan3-r"] > 60 and scores["stylegan3-t"] < 40


def report(resolution: int = 64, cbase: int = 8192, cmax: int = 256, batch: int = 4, seed: int = 0) -> dict:
    """The figures in docs/networks.md: python tests/test_networks_equivariance.py [resolution cbase cmax batch]."""
    rows = {}
    border = resolution // 8
    for cfg in ("stylegan2", "stylegan3-t", "stylegan3-r"):
        torch.manual_seed(seed)
        G = stylegan.build_generator(cfg, resolution, cbase=cbase, cmax=cmax).eval()
        ws = G.mapping(torch.randn(batch, G.z_dim), None)
        row = {"shift res/4": translation_psnr(G, ws, resolution // 4, 0, border)}
        if cfg != "stylegan2":
            row["shift 1 px"] = translation_psnr(G, ws, 1, 0, border)
            row["shift 3,-2 px"] = translation_psnr(G, ws, 3, -2, border)
            row["shift res/8"] = translation_psnr(G, ws, resolution // 8, resolution // 16, border)
            row["rotate 90"] = rotation90_psnr(G, ws, border)
        rows[cfg] = row
        print(cfg, {k: tuple(round(x, 1) for x in v) if isinstance(v, tuple) else round(v, 1)
                    for k, v in row.items()}, flush=True)
    return rows


if __name__ == "__main__":
    import sys
    report(*map(int, sys.argv[1:]))
