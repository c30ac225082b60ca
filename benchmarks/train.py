"""Training speed: seconds per kimg and peak memory for each cfg, measured on real training steps. Prints JSON.

    .venv/bin/python benchmarks/train.py              CPU: every cfg at 32 and 64 px with the demo's network size
                                                      (cbase 4096, cmax 32, batch 16); ours with --compile and
                                                      NVIDIA's training step side by side at 32 px; on a CUDA
                                                      machine also stylegan3-t at 256 px, batch 32, batch-gpu
                                                      16, full size, one GPU, eager and compiled
    .venv/bin/python benchmarks/train.py --quick      1 warm-up and 1 timed step per case: a smoke run of this
                                                      script, not a measurement (it misses the lazy regularisers)
    .venv/bin/python benchmarks/train.py --threads 1  torch CPU threads (default: torch's choice, the core count)
    .venv/bin/python benchmarks/train.py --impls ours --resolutions 32,64 --nvidia-resolutions 32
    .venv/bin/python benchmarks/train.py --impls ours,ours-compile,nvidia --resolutions 32 --cfgs stylegan3-t
                                                      the comparison with NVIDIA: ours with --compile, ours eager
                                                      and NVIDIA's, at the demo's size (32 px)

'ours-compile' is our Trainer with `--compile` (stylegan.core.compile: G and D through torch.compile in the
Gmain and Dmain phases, R1 and the path length penalty eager). Compiling happens in the warm-up steps; their
time is reported as warmup_s, apart from s/kimg. If compiling fails, the run goes on eagerly and the result
says so (compile_failure), so that an eager figure is never read as a compiled one. Compiling is slow on a CPU:
in the --quick smoke run, stylegan3-t at 32 px took 17 minutes to compile on 2 busy cores (most of the default
--timeout of 30 minutes per measurement).

What one measurement times. The lazy regularisers make steps unequal: R1 (Dreg) runs every 16th step, the path
length penalty (Greg, stylegan2) every 4th. So the timed window is a whole number of 16-step periods (any 16
consecutive steps hold exactly one Dreg and four Gregs), after 2 warm-up steps; s/kimg = window / images in it.
Data loading from the zip (workers=0) is inside the step; file writing (snapshots, grids) is not. Augmentation
is off (`--aug noaug`, as in the demo): with ADA on, its cost grows with p, which a short run cannot reproduce.

OMP_WAIT_POLICY is PASSIVE in every measurement by default (as in benchmarks/networks.py): on a machine shared
with other work, OpenMP threads spinning at the end of each parallel region take the cores from the threads that
still compute, which made steps several times slower here. `--omp-wait-policy default` leaves it unset.

Each measurement runs in its own process, so that its peak memory (CUDA: max allocated; CPU: max resident set
size, imports included) is its own. Ours and NVIDIA's measurements of one case run back to back, so they see the
same machine load: on a shared machine compare their ratio, not absolute times from different runs.

'nvidia' is NVIDIA's own code from their stylegan3 checkout (--reference; nothing of it is copied here): their
networks with the arguments their train.py passes for --cfg with --fp32, their StyleGAN2Loss, Adam with the
lazy-regularisation adjustment, and their phase schedule (Gmain, Greg every 4, Dmain, Dreg every 16, NaN
cleanup, G_ema update), driven by this script because their training loop itself runs only on CUDA (it
hard-codes torch.device('cuda')). On a CPU their code runs its pure-PyTorch reference ops.
NVIDIA's reference for stylegan3-t at 256 px, batch 32, batch-gpu 16, one GPU: 49.81 s/kimg on an A100, 89.15 on
a V100 (their docs/configs.md).
"""
from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import zipfile
from io import BytesIO
from pathlib import Path

import _nvidia

DEMO_SIZE = dict(batch=16, cbase=4096, cmax=32)         # stylegan.training.demo.DEMO_FLAGS
CPU_CFGS = ("stylegan2", "stylegan3-t", "stylegan3-r")
GPU_CASES = [dict(cfg="stylegan3-t", resolution=256, batch=32, batch_gpu=16, cbase=32768, cmax=512, device="cuda")]
PERIOD = 16                                             # steps: lcm of the R1 (16) and path length (4) intervals


def _synthetic_dataset(path: Path, resolution: int, count: int = 64) -> Path:
    import numpy as np
    import PIL.Image
    rnd = np.random.default_rng(0)
    with zipfile.ZipFile(path, "w") as zf:
        for i in range(count):
            buf = BytesIO()
            PIL.Image.fromarray(rnd.integers(0, 256, [resolution, resolution, 3], dtype=np.uint8)).save(buf, "PNG")
            zf.writestr(f"00000/img{i:08d}.png", buf.getvalue())
    return path


class _NvidiaSteps:
    """NVIDIA's networks and loss, stepped the way their training loop steps them (written here from the
    description of the algorithm in their paper and code; their loop itself needs CUDA)."""

    def __init__(self, case: dict, dataset, reference: str, gamma: float):
        import torch
        _nvidia.add_to_path(reference)
        from training import networks_stylegan2, networks_stylegan3
        from training.loss import StyleGAN2Loss

        batch, sg2, sg3r = case["batch"], case["cfg"] == "stylegan2", case["cfg"] == "stylegan3-r"
        # precision 'fp16' is their default mixed precision (4 fp16 resolutions, clamp 256); else their --fp32.
        fp16 = case.get("precision") == "fp16"
        common = dict(c_dim=0, img_resolution=case["resolution"], img_channels=3, num_fp16_res=4 if fp16 else 0,
                      conv_clamp=256 if fp16 else None)
        self.device = torch.device(case.get("device", "cpu"))
        mult = 2 if sg3r else 1                             # train.py doubles G's feature maps for stylegan3-r
        g_kwargs = dict(z_dim=512, w_dim=512, mapping_kwargs=dict(num_layers=8 if sg2 else 2),
                        channel_base=case["cbase"] * mult, channel_max=case["cmax"] * mult, **common)
        if sg2:
            G = networks_stylegan2.Generator(fused_modconv_default="inference_only", **g_kwargs)
        else:
            extra = dict(conv_kernel=1, use_radial_filters=True) if sg3r else {}
            G = networks_stylegan3.Generator(magnitude_ema_beta=0.5 ** (batch / 20e3), **extra, **g_kwargs)
        D = networks_stylegan2.Discriminator(channel_base=case["cbase"], channel_max=case["cmax"],
                                             block_kwargs=dict(freeze_layers=0), mapping_kwargs={},
                                             epilogue_kwargs=dict(mbstd_group_size=4), **common)
        self.G = G.train().requires_grad_(False).to(self.device)
        self.D = D.train().requires_grad_(False).to(self.device)
        self.G_ema = copy.deepcopy(self.G).eval()
        self.loss = StyleGAN2Loss(device=self.device, G=self.G, D=self.D, r1_gamma=gamma,
                                  style_mixing_prob=0.9 if sg2 else 0, pl_weight=2 if sg2 else 0,
                                  pl_no_weight_grad=sg2, blur_init_sigma=10 if sg3r else 0,
                                  blur_fade_kimg=batch * 200 / 32)
        self.phases = []
        for name, module, lr, interval in [("G", self.G, 0.002 if sg2 else 0.0025, 4 if sg2 else 0),
                                           ("D", self.D, 0.002, 16)]:
            ratio = interval / (interval + 1) if interval else 1
            opt = torch.optim.Adam(module.parameters(), lr=lr * ratio, betas=(0.0, 0.99 ** ratio), eps=1e-8)
            self.phases.append((name + "main", module, opt, 1))
            if interval:
                self.phases.append((name + "reg", module, opt, interval))
        self.dataset, self.batch, self.ema_nimg = dataset, batch, batch * 10 / 32 * 1000
        self.batch_gpu = case.get("batch_gpu") or batch        # their loop accumulates batch_gpu-sized chunks
        self.nimg = self.batch_idx = 0

    def step(self) -> None:
        import torch
        n = self.batch
        idx = [(self.nimg + i) % len(self.dataset) for i in range(n)]
        real = torch.stack([torch.from_numpy(self.dataset[i][0]) for i in idx]).to(self.device, torch.float32)
        real = real / 127.5 - 1
        c = torch.zeros([n, 0], device=self.device)
        zs = torch.randn([len(self.phases), n, self.G.z_dim]).to(self.device)
        for (name, module, opt, interval), z in zip(self.phases, zs):
            if self.batch_idx % interval != 0:
                continue
            opt.zero_grad(set_to_none=True)
            module.requires_grad_(True)
            for real_j, c_j, z_j in zip(real.split(self.batch_gpu), c.split(self.batch_gpu), z.split(self.batch_gpu)):
                self.loss.accumulate_gradients(phase=name, real_img=real_j, real_c=c_j, gen_z=z_j, gen_c=c_j,
                                               gain=interval, cur_nimg=self.nimg)
            module.requires_grad_(False)
            for p in module.parameters():
                if p.grad is not None:
                    torch.nan_to_num(p.grad, nan=0, posinf=1e5, neginf=-1e5, out=p.grad)
            opt.step()
        beta = 0.5 ** (n / max(min(self.ema_nimg, self.nimg * 0.05), 1e-8))
        with torch.no_grad():
            for p_ema, p in zip(self.G_ema.parameters(), self.G.parameters()):
                p_ema.copy_(p.lerp(p_ema, beta))
            for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers()):
                b_ema.copy_(b)
        self.nimg += n
        self.batch_idx += 1


def measure(case: dict, warmup: int, steps: int, reference: str) -> dict:
    """Time `steps` training steps (after `warmup`) of one configuration and implementation in this process."""
    import torch
    from stylegan.data import ImageDataset
    from stylegan.training.config import TrainingFlags
    from stylegan.training.prepare import prepare_config
    from stylegan.training.stats import peak_memory_gb
    from stylegan.training.phases import Trainer

    gamma = 1.0
    from stylegan.core.compile import compile_failure
    with tempfile.TemporaryDirectory() as tmp:
        data = _synthetic_dataset(Path(tmp) / f"noise{case['resolution']}.zip", case["resolution"])
        flags = TrainingFlags(outdir=tmp, data=str(data), cfg=case["cfg"], batch=case["batch"], gamma=gamma,
                              batch_gpu=case.get("batch_gpu"), cbase=case["cbase"], cmax=case["cmax"],
                              device=case["device"], workers=0, metrics="none", aug="noaug",
                              compile=case["impl"] == "ours-compile")
        config = prepare_config(flags, quiet=True)
        device = torch.device(case["device"])
        torch.manual_seed(0)
        with ImageDataset(config.data.path) as dataset:
            if case["impl"] == "nvidia":
                trainer = _NvidiaSteps(case, dataset, reference, gamma)
            else:
                trainer = Trainer(config, dataset, device)
            sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
            start = time.perf_counter()
            for _ in range(warmup):
                trainer.step()
            sync()
            warmup_s = time.perf_counter() - start
            start = time.perf_counter()
            for _ in range(steps):
                trainer.step()
            sync()
            elapsed = time.perf_counter() - start
    extra = dict(compile_failure=compile_failure()) if case["impl"] == "ours-compile" else {}
    return dict(case, precision=config.network.precision, threads=torch.get_num_threads(), warmup=warmup,
                warmup_s=round(warmup_s, 1), **extra, steps=steps,
                sec_per_kimg=round(elapsed / (steps * case["batch"]) * 1000, 2),
                sec_per_step=round(elapsed / steps, 3), peak_mem_gb=round(peak_memory_gb(device), 3),
                G_params=sum(p.numel() for p in trainer.G.parameters()),
                D_params=sum(p.numel() for p in trainer.D.parameters()),
                device_name=torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_model())


def _run_case(case: dict, args) -> dict:
    extra = (["--quick"] if args.quick else []) + (["--threads", str(args.threads)] if args.threads else [])
    env = dict(os.environ)
    if args.omp_wait_policy != "default":
        env["OMP_WAIT_POLICY"] = args.omp_wait_policy.upper()
    start = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, __file__, "--one", json.dumps(case), "--reference", args.reference]
                              + extra, capture_output=True, text=True, timeout=args.timeout, env=env)
    except subprocess.TimeoutExpired:
        return dict(case, error=f"still running after {args.timeout} s (--timeout)")
    if proc.returncode != 0:
        return dict(case, error=(proc.stderr.strip().splitlines()[-1:] or [f"exit {proc.returncode}"])[0][:300])
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["wall_s"] = round(time.perf_counter() - start, 1)
    result["load_avg_after"] = round(os.getloadavg()[0], 2)
    result["omp_wait_policy"] = env.get("OMP_WAIT_POLICY", "unset")
    return result


def _cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration):
        return platform.processor()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 warm-up and 1 timed step per case (a smoke run)")
    parser.add_argument("--threads", type=int, help="torch CPU threads in each measurement")
    parser.add_argument("--impls", default="ours,ours-compile,nvidia",
                        help="any of ours, ours-compile, nvidia (comma-separated)")
    parser.add_argument("--cfgs", default=",".join(CPU_CFGS), help="CPU configurations (comma-separated)")
    parser.add_argument("--resolutions", default="32,64", help="CPU resolutions for ours")
    parser.add_argument("--compile-resolutions", default="32", help="CPU resolutions for ours-compile")
    parser.add_argument("--nvidia-resolutions", default="32", help="CPU resolutions for NVIDIA's code")
    parser.add_argument("--reference", default=_nvidia.default_path(), help="NVIDIA's stylegan3 checkout")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per measurement before it is stopped")
    parser.add_argument("--omp-wait-policy", default="passive", choices=["passive", "active", "default"],
                        help="OMP_WAIT_POLICY of every measurement (default passive: see above)")
    parser.add_argument("--one", help=argparse.SUPPRESS)    # internal: run one case (JSON) in this process
    args = parser.parse_args()
    if args.one:
        import torch
        if args.threads:
            torch.set_num_threads(args.threads)
        case = json.loads(args.one)
        scale = 2 if case["device"] == "cuda" else 1       # GPU steps are short: a longer window
        warmup, steps = (1, 1) if args.quick else (2 * scale, PERIOD * scale)
        print(json.dumps(measure(case, warmup, steps, args.reference)))
        return

    import torch
    nvidia_found = _nvidia.found(args.reference)
    impls = [i for i in args.impls.split(",") if i in ("ours", "ours-compile") or (i == "nvidia" and nvidia_found)]
    notes = [] if nvidia_found else [f"NVIDIA's code not found at {args.reference}: no 'nvidia' measurements"]
    resolutions = {"ours": args.resolutions, "ours-compile": args.compile_resolutions,
                   "nvidia": args.nvidia_resolutions}
    cases = []
    for res in sorted({int(r) for impl in impls for r in resolutions[impl].split(",") if r}):
        for cfg in args.cfgs.split(","):
            for impl in impls:
                if str(res) in resolutions[impl].split(","):
                    cases.append(dict(cfg=cfg, resolution=res, device="cpu", impl=impl, **DEMO_SIZE))
    if torch.cuda.is_available():
        cases += [dict(c, impl=impl) for c in GPU_CASES for impl in impls if impl != "nvidia"]
    else:
        notes.append("no CUDA GPU here: the 256 px stylegan3-t GPU case was skipped")
    results = []
    for case in cases:
        results.append(_run_case(case, args))
        print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    print(json.dumps({"benchmark": "train", "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
        timespec="seconds"), "cpu": _cpu_model(), "cores": os.cpu_count(), "torch": torch.__version__,
        "quick": args.quick, "results": results, "notes": notes}, indent=1))


if __name__ == "__main__":
    main()
