"""Ops on CPU: our fast paths against our reference and NVIDIA's reference, side by side in one run.

    python benchmarks/ops.py                          # every StyleGAN3-T/R 64 px layer + StyleGAN2 cases; prints JSON
    python benchmarks/ops.py --cfg stylegan3-t --layers 0,4,9 --repeats 3 --impls fast,nvidia
    python benchmarks/ops.py --nvidia /path/to/stylegan3     # NVIDIA's code (default: see --help)

What is measured:
- filtered_lrelu, forward and backward, for each synthesis layer of StyleGAN3-T and -R at 64 px, batch 8,
  cbase 8192, cmax 256 (doubled for R, as NVIDIA's train.py does): the layer's real channel count, input size
  (conv padding included), filters, padding, gain, slope and clamp, read from our generator.
- upfirdn2d and bias_act in the shapes StyleGAN2 64 px uses them (G's upsampling filter after the transposed
  conv, D's downsampling filter before the strided conv, the skip resamplers, the fused bias + lrelu + clamp).
Implementations: 'fast' (ours, what impl='auto' runs), 'ref' (ours, the ground truth), 'nvidia' (NVIDIA's
pure-PyTorch `_filtered_lrelu_ref` / `_upfirdn2d_ref` / `_bias_act_ref`, which is what their code runs on a CPU).
The 'nvidia' column is skipped, with a note, when their code is not found; nothing of it is copied here.

How: every (case, implementation) runs in a fresh subprocess with torch threads = 2: a warm-up pass, then
`repeats` timed passes; the fastest is kept. The implementations of one case run back to back, so they see the
same machine load; shared machines are noisy, so compare ratios from one run (the load average is recorded).
`cpu_s` is the process CPU time of the fastest pass: with one thread it is the work done, with two it also
counts time a thread spent waiting for the other, which grows when the machine is oversubscribed.
Memory, in the same subprocess: `saved_mb` is what autograd keeps from forward to backward (distinct storages seen
by saved_tensors_hooks; in a network this adds up over layers), `peak_mb` is the resident-set peak during the
passes (getrusage maxrss) minus the resident set once the inputs exist. tracemalloc cannot see torch's
allocations; a subprocess per case keeps one case's peak from hiding another's.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
import types

import _nvidia
import torch

CFGS = ("stylegan3-t", "stylegan3-r")


# ---------------------------------------------------------------------------------------------------------------
# Cases

def filtered_lrelu_layers(cfg: str, batch: int, cbase: int, cmax: int) -> list[dict]:
    """The filtered_lrelu call of every synthesis layer, as our generator builds it."""
    from stylegan.networks.presets import build_generator
    from stylegan.networks.stylegan3 import SynthesisLayer

    g = build_generator(cfg, 64, cbase=cbase, cmax=cmax)
    layers = [m for m in g.modules() if isinstance(m, SynthesisLayer)]
    cases = []
    for i, layer in enumerate(layers):
        size = int(layer.in_size[0]) + layer.conv_kernel - 1                # the modulated conv pads by k-1
        cases.append(dict(
            op="filtered_lrelu", cfg=cfg, layer=i, shape=[batch, layer.out_channels, size, size],
            fu=None if layer.up_filter is None else layer.up_filter.tolist(),
            fd=None if layer.down_filter is None else layer.down_filter.tolist(),
            up=layer.up_factor, down=layer.down_factor, padding=layer.padding,
            gain=1.0 if layer.is_torgb else 2 ** 0.5, slope=1.0 if layer.is_torgb else 0.2, clamp=layer.conv_clamp,
            radial=bool(layer.down_radial), out_size=int(layer.out_size[0])))
    return cases


def stylegan2_cases(batch: int) -> list[dict]:
    """StyleGAN2 64 px at cbase 8192, cmax 256: 128 channels at 64 px, 256 at 32 px."""
    f = [[a * b / 64 for b in (1, 3, 3, 1)] for a in (1, 3, 3, 1)]           # setup_filter([1, 3, 3, 1])
    return [
        # G, 32 -> 64 px: the fused transposed conv's output [1, N*128, 65, 65], then the 4x4 filter (gain 4).
        dict(op="upfirdn2d", name="G up filter 64px", shape=[1, batch * 128, 65, 65], f=f, up=1, down=1,
             padding=[1, 1, 1, 1], gain=4),
        # G skip: RGB upsampled 32 -> 64.
        dict(op="upfirdn2d", name="G skip upsample 64px", shape=[batch, 3, 32, 32], f=f, up=2, down=1,
             padding=[2, 1, 2, 1], gain=4),
        # D, 64 -> 32 px: the 4x4 filter before the strided 3x3 conv.
        dict(op="upfirdn2d", name="D down filter 64px", shape=[batch, 128, 64, 64], f=f, up=1, down=1,
             padding=[2, 2, 2, 2], gain=1),
        # D resnet skip: 4x4 filter and decimation before the 1x1 conv.
        dict(op="upfirdn2d", name="D skip downsample 64px", shape=[batch, 128, 64, 64], f=f, up=1, down=2,
             padding=[1, 1, 1, 1], gain=1),
        dict(op="bias_act", name="lrelu + bias + clamp 64px", shape=[batch, 128, 64, 64]),
    ]


# ---------------------------------------------------------------------------------------------------------------
# Worker: one case, one implementation, in its own process

def _import_nvidia(path: str):
    """NVIDIA's pure-PyTorch ops, what their code runs on a CPU."""
    _nvidia.add_to_path(path)
    from torch_utils.ops import bias_act, filtered_lrelu, upfirdn2d
    return types.SimpleNamespace(filtered_lrelu=filtered_lrelu._filtered_lrelu_ref, upfirdn2d=upfirdn2d._upfirdn2d_ref,
                                 bias_act=bias_act._bias_act_ref)


def _ops(impl: str, nvidia_path: str):
    if impl == "nvidia":
        return _import_nvidia(nvidia_path)
    from functools import partial

    from stylegan.ops.bias_act import bias_act
    from stylegan.ops.filtered_lrelu import filtered_lrelu
    from stylegan.ops.upfirdn2d import upfirdn2d
    return types.SimpleNamespace(filtered_lrelu=partial(filtered_lrelu, impl=impl),
                                 upfirdn2d=partial(upfirdn2d, impl=impl), bias_act=bias_act)


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def _saved_mb(fn) -> float:
    storages = {}

    def pack(t):
        s = t.untyped_storage()
        storages[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(storages.values()) / 2 ** 20


def run_worker(spec: dict) -> dict:
    torch.set_num_threads(spec["threads"])
    ops = _ops(spec["impl"], spec["nvidia"])
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(spec["shape"], generator=gen).requires_grad_(True)
    if spec["op"] == "filtered_lrelu":
        fu = None if spec["fu"] is None else torch.tensor(spec["fu"])
        fd = None if spec["fd"] is None else torch.tensor(spec["fd"])
        b = (torch.randn(spec["shape"][1], generator=gen) * 0.1).requires_grad_(True)
        forward = lambda: ops.filtered_lrelu(x, fu, fd, b, up=spec["up"], down=spec["down"],       # noqa: E731
                                             padding=spec["padding"], gain=spec["gain"], slope=spec["slope"],
                                             clamp=spec["clamp"])
    elif spec["op"] == "upfirdn2d":
        f = torch.tensor(spec["f"])
        forward = lambda: ops.upfirdn2d(x, f, up=spec["up"], down=spec["down"], padding=spec["padding"],  # noqa
                                        gain=spec["gain"])
    else:
        b = torch.randn(spec["shape"][1], generator=gen).requires_grad_(True)
        forward = lambda: ops.bias_act(x, b, act="lrelu", clamp=256)                               # noqa: E731
    dy = torch.randn(forward().shape, generator=gen)
    base = _rss_mb()
    saved = _saved_mb(forward)
    times = []
    for _ in range(1 + spec["repeats"]):                                  # the first pass is a warm-up
        c0, t0 = time.process_time(), time.perf_counter()
        y = forward()
        t1 = time.perf_counter()
        y.backward(dy)
        t2 = time.perf_counter()
        times.append((t1 - t0, t2 - t0, time.process_time() - c0))
        del y
        x.grad = None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - base
    best = min(times[1:], key=lambda t: t[1])
    return dict(fwd_s=round(min(t[0] for t in times[1:]), 4), fwd_bwd_s=round(best[1], 4), cpu_s=round(best[2], 4),
                saved_mb=round(saved, 1), peak_mb=round(peak, 1))


# ---------------------------------------------------------------------------------------------------------------
# Driver

def measure(case: dict, impl: str, args) -> dict:
    spec = dict(case, impl=impl, threads=args.threads, repeats=args.repeats, nvidia=args.nvidia)
    proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)], capture_output=True, text=True)
    if proc.returncode != 0:
        return dict(error=proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _ratios(row: dict, impls: list[str]) -> dict:
    out = {}
    fast = row.get("fast", {})
    for other in (i for i in impls if i != "fast"):
        o = row.get(other, {})
        if "fwd_s" in fast and "fwd_s" in o:
            out[f"{other}/fast fwd"] = round(o["fwd_s"] / fast["fwd_s"], 2)
            out[f"{other}/fast fwd+bwd"] = round(o["fwd_bwd_s"] / fast["fwd_bwd_s"], 2)
            if fast["saved_mb"] > 0:
                out[f"{other}/fast saved"] = round(o["saved_mb"] / fast["saved_mb"], 1)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cfg", default="all", help="stylegan3-t, stylegan3-r, stylegan2 or all")
    p.add_argument("--layers", default="all", help="synthesis layer indices, e.g. 0,4,9 (default: all 15)")
    p.add_argument("--impls", default="fast,ref,nvidia", help="comma-separated: fast, ref, nvidia")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--cbase", type=int, default=8192)
    p.add_argument("--cmax", type=int, default=256)
    p.add_argument("--repeats", type=int, default=2, help="timed passes after one warm-up; the fastest is kept")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--nvidia", default=_nvidia.default_path(),
                   help="NVIDIA's stylegan3 checkout, for the 'nvidia' column")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(run_worker(json.loads(args.worker))))
        return

    impls = [i.strip() for i in args.impls.split(",") if i.strip()]
    notes = []
    if "nvidia" in impls and not _nvidia.found(args.nvidia):
        impls.remove("nvidia")
        notes.append(f"NVIDIA's code not found at {args.nvidia}: the 'nvidia' column is skipped")
    cfgs = CFGS + ("stylegan2",) if args.cfg == "all" else (args.cfg,)
    wanted = None if args.layers == "all" else {int(i) for i in args.layers.split(",")}

    result = dict(benchmark="ops", command=" ".join(sys.argv), torch=torch.__version__, machine=platform.machine(),
                  cpus=os.cpu_count(), threads=args.threads, batch=args.batch, cbase=args.cbase, cmax=args.cmax,
                  repeats=args.repeats, impls=impls, notes=notes, load_avg_start=os.getloadavg()[0],
                  filtered_lrelu={}, stylegan2=[])
    for cfg in cfgs:
        if cfg == "stylegan2":
            for case in stylegan2_cases(args.batch):
                row = dict(name=case["name"], shape=case["shape"])
                row.update({impl: measure(case, impl, args) for impl in impls})
                row["ratios"] = _ratios(row, impls)
                result["stylegan2"].append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
            continue
        rows = []
        for case in filtered_lrelu_layers(cfg, args.batch, args.cbase, args.cmax):
            if wanted is not None and case["layer"] not in wanted:
                continue
            row = dict(layer=case["layer"], shape=case["shape"], up=case["up"], down=case["down"],
                       taps=[len(case["fu"] or [0]), len(case["fd"] or [0])], radial=case["radial"])
            row.update({impl: measure(case, impl, args) for impl in impls})
            row["ratios"] = _ratios(row, impls)
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
        total = {impl: {k: round(sum(r[impl].get(k, 0) for r in rows), 3)
                        for k in ("fwd_s", "fwd_bwd_s", "cpu_s", "saved_mb")} for impl in impls}
        for impl in impls:
            total[impl]["peak_mb_max"] = max((r[impl].get("peak_mb", 0) for r in rows), default=0)
        total["ratios"] = _ratios(total, impls)
        result["filtered_lrelu"][cfg] = dict(layers=rows, total=total)
    result["load_avg_end"] = os.getloadavg()[0]
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
