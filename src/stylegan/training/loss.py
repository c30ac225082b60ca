"""The StyleGAN2/StyleGAN3 losses: non-saturating logistic loss, lazy R1, path length regularisation.

Four phases, as in NVIDIA's training loop (Karras et al. 2020, "Analyzing and Improving the Image Quality of
StyleGAN", Sec. 3.1 and 3.2):
    Gmain  G maximises D's logits for fakes:            softplus(-D(G(z)))
    Greg   path length penalty on a shrunk batch:       w_pl * (|J_w^T y| - a)^2         (eq. 4)
    Dmain  D separates reals from fakes:                softplus(D(G(z))) + softplus(-D(x))
    Dreg   R1 penalty on reals:                         gamma / 2 * |grad_x D(x)|^2       (Mescheder et al. 2018)
A phase's gradient is accumulated over the batch_gpu chunks of one step, in one of two ways (--accumulate). In
both, every chunk backpropagates mean(loss) * gain into empty .grads, and the phase (phases.py) adds the chunks'
gradients in chunk order, as the all-reduce adds the ranks'.

    mean    the sum of the chunks' gradients, summed over the ranks, is divided once by the number of chunks in
            the step, so the result is the gradient of the mean over the whole batch, whatever the chunking.
            Running statistics that NVIDIA updates chunk by chunk (the path length mean a, and G's w_avg and
            magnitude EMAs, see ema.TrackedBuffers) are updated from the value at the start of the phase in every
            chunk, then summed over chunks and ranks and divided likewise (ema.average_). With one chunk on one
            process this is NVIDIA's update exactly; with more, one process with two chunks computes the same
            bits as two processes with one chunk each.
    nvidia  NVIDIA's loop under gradient accumulation: the chunk gradients are summed, and the statistics advance
            once per chunk, each chunk continuing from the last. Only the ranks' values are averaged at the end
            of the phase, so that every rank holds the same state.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from stylegan.core.compile import compiled
from stylegan.ops.upfirdn2d import filter2d
from stylegan.training.config import LossOptions
from stylegan.training.ema import average_
from stylegan.training.stats import TrainingStats

PHASES = ("Gmain", "Greg", "Dmain", "Dreg")


class StyleGANLoss:
    def __init__(self,
                 G: torch.nn.Module,                            # generator being trained
                 D: torch.nn.Module,                            # discriminator being trained
                 options: LossOptions,                          # weights, intervals, blur schedule
                 augment_pipe: torch.nn.Module | None = None,   # applied to every image D sees (ADA)
                 ada=None,                                      # AdaController fed with D's logits for reals
                 per_chunk: bool = False,                       # --accumulate nvidia: a advances once per chunk
                 ):
        self.G = G
        self.D = D
        self.options = options
        self.augment_pipe = augment_pipe
        self.ada = ada
        self.per_chunk = per_chunk
        device = next(G.parameters()).device
        self._nonfinite = torch.zeros([], dtype=torch.bool, device=device)   # a main loss was NaN/Inf this step
        self.pl_mean = torch.zeros([], device=device)       # running mean a of the path lengths
        self._pl_mean_start = self.pl_mean.clone()
        self._pl_mean_sum = torch.zeros([], device=device)
        self._pl_chunks = 0
        # The forward passes of the phases that differentiate once (Gmain, Dmain); see compile().
        self._mapping, self._synthesis, self._D = G.mapping, G.synthesis, D

    def compile(self) -> None:
        """--compile: Gmain and Dmain run G and D through torch.compile (stylegan.core.compile). Greg and Dreg stay
        eager: the path length penalty and R1 differentiate a gradient (create_graph=True), and torch.compile's
        AOTAutograd cannot backpropagate twice through a compiled graph. The modules themselves are not wrapped,
        so their state dicts and saved names do not change."""
        self._mapping, self._synthesis, self._D = compiled(self.G.mapping), compiled(self.G.synthesis), compiled(self.D)

    def blur_sigma(self, nimg: int) -> float:
        """StyleGAN3 (Sec. 6, appendix): D's inputs are blurred at first, the blur fading out linearly."""
        o = self.options
        if o.blur_fade_kimg <= 0:
            return 0.0
        return max(1 - nimg / (o.blur_fade_kimg * 1e3), 0) * o.blur_init_sigma

    def run_G(self, z: torch.Tensor, c: torch.Tensor, update_emas: bool = False, ws_grad: bool = False,
              fast: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """fast: through the compiled forwards when --compile is on (not for a double backward)."""
        mapping, synthesis = (self._mapping, self._synthesis) if fast else (self.G.mapping, self.G.synthesis)
        ws = mapping(z, c, update_emas=update_emas)                                         # [N, num_ws, w_dim]
        if self.options.style_mixing_prob > 0:
            # Style mixing regularisation (StyleGAN, Sec. 3.1): from a random layer on, the ws of another z.
            cutoff = torch.empty([], dtype=torch.int64, device=ws.device).random_(1, ws.shape[1])
            mix = torch.rand([], device=ws.device) < self.options.style_mixing_prob
            cutoff = torch.where(mix, cutoff, torch.full_like(cutoff, ws.shape[1]))
            ws[:, cutoff:] = mapping(torch.randn_like(z), c, update_emas=False)[:, cutoff:]
        if ws_grad and not ws.requires_grad:
            ws = ws.detach().requires_grad_(True)     # a frozen mapping: the path length still needs d img / d ws
        img = synthesis(ws, noise_mode="random", update_emas=update_emas)                  # [N, C, H, W]
        return img, ws

    def run_D(self, img: torch.Tensor, c: torch.Tensor, blur_sigma: float = 0, update_emas: bool = False,
              fast: bool = False) -> torch.Tensor:
        blur_size = math.floor(blur_sigma * 3)
        if blur_size > 0:
            # Gaussian blur: taps exp2(-(x/sigma)^2) out to 3 sigma, normalised.
            f = torch.arange(-blur_size, blur_size + 1, device=img.device).div(blur_sigma).square().neg().exp2()
            img = filter2d(img, f / f.sum())
        if self.augment_pipe is not None:
            img = self.augment_pipe(img)
        return (self._D if fast else self.D)(img, c, update_emas=update_emas)               # [N, 1]

    def take_nonfinite(self) -> torch.Tensor:
        """Whether a main loss was NaN or Inf since the last call (a device tensor: no sync)."""
        bad, self._nonfinite = self._nonfinite, torch.zeros_like(self._nonfinite)
        return bad

    def _check(self, loss: torch.Tensor) -> None:
        self._nonfinite |= ~torch.isfinite(loss.detach()).all()

    # ---- phases ---------------------------------------------------------------------------------------------

    def begin_phase(self, phase: str) -> None:
        if phase == "Greg":
            self._pl_mean_start = self.pl_mean.detach().clone()
            self._pl_mean_sum.zero_()
            self._pl_chunks = 0

    def end_phase(self, phase: str) -> None:
        if phase == "Greg" and self._pl_chunks > 0:
            self.pl_mean.copy_(average_(self._pl_mean_sum.clone(), self._pl_chunks))

    def accumulate_gradients(self, phase: str, real_img: torch.Tensor, real_c: torch.Tensor, gen_z: torch.Tensor,
                             gen_c: torch.Tensor, gain: float, nimg: int, stats: TrainingStats) -> None:
        """Backpropagate this chunk's loss for `phase`, times gain, into the .grad of the module being trained."""
        o = self.options
        blur_sigma = self.blur_sigma(nimg)

        if phase == "Gmain":
            gen_img, _ = self.run_G(gen_z, gen_c, fast=True)
            gen_logits = self.run_D(gen_img, gen_c, blur_sigma=blur_sigma, fast=True)
            loss_G = F.softplus(-gen_logits)                                                # -log(sigmoid(D(G(z))))
            stats.add("loss/G", loss_G)
            stats.add("scores/fake", gen_logits)
            self._check(loss_G)
            loss_G.mean().mul(gain).backward()

        elif phase == "Greg":
            n = max(gen_z.shape[0] // o.pl_batch_shrink, 1)
            # Eager even with --compile: the penalty's gradient goes through d img / d ws (double backward).
            gen_img, gen_ws = self.run_G(gen_z[:n], gen_c[:n], ws_grad=True)
            # y ~ N(0, I) / sqrt(H*W), so that |J^T y| does not depend on the resolution.
            pl_noise = torch.randn_like(gen_img) / math.sqrt(gen_img.shape[2] * gen_img.shape[3])
            pl_grads = torch.autograd.grad(outputs=[(gen_img * pl_noise).sum()], inputs=[gen_ws],
                                           create_graph=True, only_inputs=True)[0]          # [n, num_ws, w_dim]
            pl_lengths = pl_grads.square().sum(2).mean(1).sqrt()                            # [n]
            pl_mean = self._pl_mean_start.lerp(pl_lengths.mean(), o.pl_decay)
            if self.per_chunk:
                # NVIDIA's order: the next chunk continues from this one's a; the phase ends with the last a.
                self._pl_mean_start = pl_mean.detach()
                self._pl_mean_sum.copy_(pl_mean.detach())
                self._pl_chunks = 1
            else:
                self._pl_mean_sum += pl_mean.detach()
                self._pl_chunks += 1
            pl_penalty = (pl_lengths - pl_mean).square()
            loss_Gpl = pl_penalty * o.pl_weight
            stats.add("pl_penalty", pl_penalty)
            stats.add("loss/G_reg", loss_Gpl)
            loss_Gpl.mean().mul(gain).backward()

        elif phase == "Dmain":
            # Fakes: update_emas=True is where G's w_avg and magnitude EMAs move (as in NVIDIA's loop).
            gen_img, _ = self.run_G(gen_z, gen_c, update_emas=True, fast=True)
            gen_logits = self.run_D(gen_img, gen_c, blur_sigma=blur_sigma, update_emas=True, fast=True)
            loss_Dgen = F.softplus(gen_logits)                                              # -log(1 - sigmoid(D(G(z))))
            stats.add("scores/fake", gen_logits)
            loss_Dgen.mean().mul(gain).backward()

            real_logits = self.run_D(real_img.detach(), real_c, blur_sigma=blur_sigma, fast=True)
            loss_Dreal = F.softplus(-real_logits)                                           # -log(sigmoid(D(x)))
            stats.add("scores/real", real_logits)
            stats.add("signs/real", real_logits.sign())
            stats.add("loss/D", loss_Dgen + loss_Dreal)
            self._check(loss_Dgen + loss_Dreal)
            if self.ada is not None:
                self.ada.accumulate(real_logits)
            loss_Dreal.mean().mul(gain).backward()

        elif phase == "Dreg":
            real_img_tmp = real_img.detach().requires_grad_(True)
            # Eager even with --compile: R1's gradient goes through d D(x) / d x (double backward).
            real_logits = self.run_D(real_img_tmp, real_c, blur_sigma=blur_sigma)
            stats.add("scores/real", real_logits)            # NVIDIA reports the Dreg reals' scores as Dmain's
            stats.add("signs/real", real_logits.sign())
            if self.ada is not None:
                self.ada.accumulate(real_logits)        # NVIDIA's ADA statistic counts the Dreg reals too
            r1_grads = torch.autograd.grad(outputs=[real_logits.sum()], inputs=[real_img_tmp],
                                           create_graph=True, only_inputs=True)[0]          # [N, C, H, W]
            r1_penalty = r1_grads.square().sum([1, 2, 3])                                   # [N]
            loss_Dr1 = r1_penalty * (o.r1_gamma / 2)
            stats.add("r1_penalty", r1_penalty)
            stats.add("loss/D_reg", loss_Dr1)
            loss_Dr1.mean().mul(gain).backward()

        else:
            raise ValueError(f"unknown phase {phase!r}; expected one of {PHASES}")
