"""A whole network on the Triton kernels: a tiny StyleGAN2 generator and discriminator (upfirdn2d and bias_act in
every layer, R1-style second order through D) give the reference's images, scores and gradients when every op runs
its Triton kernel, here in Triton's CPU interpreter (benchmarks/gpu.py checks whole networks on a GPU).

StyleGAN3's generator is left to tests/test_ops_triton_filtered_lrelu.py, which checks the fused kernel on every
StyleGAN3-T and -R layer geometry: a whole StyleGAN3 generator takes minutes in the interpreter."""
from __future__ import annotations

import pytest
import torch

import stylegan
from stylegan.ops import _dispatch

pytestmark = pytest.mark.skipif(_dispatch.triton_import_error() is not None or not _dispatch.interpreting(),
                                reason="needs triton, run in its interpreter (TRITON_INTERPRET=1, see conftest.py)")


def _run(G, D, impl):
    torch.manual_seed(0)
    z = torch.randn([2, G.z_dim])
    params = list(G.parameters()) + list(D.parameters())
    with _dispatch.auto_impl(impl):
        img = G(z, None, noise_mode="const")
        score = D(img, None)
        grads = torch.autograd.grad(score.square().sum(), params)
        real = img.detach().requires_grad_(True)                          # R1: the gradient of D's gradient
        (r1,) = torch.autograd.grad(D(real, None).sum(), real, create_graph=True)
        r1_grads = torch.autograd.grad(r1.square().sum(), list(D.parameters()), allow_unused=True,
                                       materialize_grads=True)
    return img.detach(), score.detach(), grads + r1_grads


def test_tiny_stylegan2_matches_the_reference_on_the_kernels():
    torch.manual_seed(1)
    G = stylegan.build_generator("stylegan2", 8, cbase=128, cmax=4, z_dim=4, w_dim=4, map_depth=1).requires_grad_(True)
    D = stylegan.build_discriminator("stylegan2", 8, cbase=128, cmax=4).requires_grad_(True)
    launched = []
    import triton.runtime.jit as jit
    original = jit.KernelInterface.__getitem__

    def counting(self, grid):
        launched.append(getattr(self, "__name__", str(self)))
        return original(self, grid)

    jit.KernelInterface.__getitem__ = counting
    try:
        img_t, score_t, grads_t = _run(G, D, "triton")
    finally:
        jit.KernelInterface.__getitem__ = original
    img_r, score_r, grads_r = _run(G, D, "ref")
    assert launched, "no Triton kernel ran"
    torch.testing.assert_close(img_t, img_r, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(score_t, score_r, rtol=1e-4, atol=1e-5)
    for gt, gr in zip(grads_t, grads_r):
        torch.testing.assert_close(gt, gr, rtol=1e-3, atol=1e-5 * max(1.0, gr.abs().max().item()))
