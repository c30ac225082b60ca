"""Whole networks on CPU, ours against NVIDIA's code side by side: inference speed, training-step speed, peak memory.

    python benchmarks/networks.py                                  # the full matrix; prints JSON (takes hours)
    python benchmarks/networks.py --presets stylegan3-t --sizes 64 --repeats 2 --out /tmp/networks.json
    python benchmarks/networks.py --impls ours                     # without NVIDIA's code
    python benchmarks/networks.py --reference /path/to/stylegan3   # NVIDIA's checkout (default: see --help)
    python benchmarks/networks.py --table /tmp/networks.json       # the Markdown table of a finished run

For each preset and size (train.py's networks at --cbase 8192 --cmax 256, fp32 on CPU as both codes run there):
- `infer`: generator inference, batch 8, no grad, eval mode, constant noise: images/s;
- `step`: one training-style step, batch 8: G forward (train mode, random noise), D forward, softplus loss
  (G's non-saturating loss, softplus(-D(G(z))).mean()), backward through both: seconds per kimg (1000 images).
Every measurement runs in its own subprocess with `--threads` torch threads (default 2): one warm-up pass, then
`--repeats` timed passes; the median is reported. `peak_gb` is that process's peak resident set
(getrusage ru_maxrss: imports, both networks and the passes), so one measurement's peak cannot hide another's.
`cpu_s` is the median pass's process CPU time: on a machine shared with other work, wall time also counts the time
the threads waited for a core, which CPU time does not (with 2 threads it does count time spent spinning).
Ours and NVIDIA's run back to back for each measurement, so they see the same machine load; compare the ratios.

OMP_WAIT_POLICY is PASSIVE by default, for both codes: on a machine shared with other work (more runnable threads
than cores), OpenMP threads that spin while they wait at the end of each parallel region take the core from the
thread that still has work, and every op is held up. On the 2-core development machine at a load of 5-7, that made
our StyleGAN3-R 64 px inference 4x slower in wall time and burn 5x the CPU time (`--omp-wait-policy default`).

NVIDIA's code on a CPU runs its pure-PyTorch reference ops, which are slow and memory hungry (its training step at
StyleGAN3-R 64 px was measured at 22.3 GB). A measurement whose expected peak is above `--max-gb` is skipped and
recorded as such; a running one is killed when its resident set passes `--max-gb` or it runs past `--timeout`, and
a MemoryError or a process the kernel killed is recorded too. Nothing of NVIDIA's code is copied here.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

import _nvidia

PRESETS = ("stylegan2", "stylegan3-t", "stylegan3-r")
SIZES = (64, 128)
WHATS = ("infer", "step")
# NVIDIA's expected peak resident set in GB, for deciding what not to start: measured figures from this class of
# machine (2 threads, batch 8, cbase 8192, cmax 256; a step's is scaled by batch / 8, its activations dominate).
# StyleGAN3-R at 128 px was not run; its values are estimates, not measurements: its step would need several times
# the 22.3 GB of 64 px, and its reference ops at 128 px are large even without a graph.
NVIDIA_EXPECTED_GB = {("stylegan2", 64, "step"): 1.4, ("stylegan3-t", 64, "step"): 13.3,
                      ("stylegan3-t", 128, "step"): 19.3, ("stylegan3-r", 64, "step"): 22.3,
                      ("stylegan3-r", 128, "step"): 60.0, ("stylegan3-r", 128, "infer"): 25.0}


# ---------------------------------------------------------------------------------------------------------------
# Networks, as NVIDIA's train.py builds them for --cfg

def _build_ours(spec: dict):
    from stylegan.networks.presets import build_discriminator, build_generator
    kw = dict(cbase=spec["cbase"], cmax=spec["cmax"])
    G = build_generator(spec["cfg"], spec["resolution"], batch=spec["batch"], **kw)
    D = build_discriminator(spec["cfg"], spec["resolution"], **kw) if spec["what"] == "step" else None
    return G, D


def _build_nvidia(spec: dict):
    """NVIDIA's classes with the arguments their train.py passes for --cfg, --cbase, --cmax, --batch."""
    _nvidia.add_to_path(spec["reference"])
    from training import networks_stylegan2, networks_stylegan3
    cfg, res, cbase, cmax = spec["cfg"], spec["resolution"], spec["cbase"], spec["cmax"]
    common = dict(c_dim=0, img_resolution=res, img_channels=3, num_fp16_res=4, conv_clamp=256)
    if cfg == "stylegan2":
        G = networks_stylegan2.Generator(z_dim=512, w_dim=512, mapping_kwargs=dict(num_layers=8), channel_base=cbase,
                                         channel_max=cmax, fused_modconv_default="inference_only", **common)
    else:
        mult = 2 if cfg == "stylegan3-r" else 1
        extra = dict(conv_kernel=1, use_radial_filters=True) if cfg == "stylegan3-r" else {}
        G = networks_stylegan3.Generator(z_dim=512, w_dim=512, mapping_kwargs=dict(num_layers=2),
                                         channel_base=cbase * mult, channel_max=cmax * mult,
                                         magnitude_ema_beta=0.5 ** (spec["batch"] / 20e3), **extra, **common)
    D = None
    if spec["what"] == "step":
        D = networks_stylegan2.Discriminator(channel_base=cbase, channel_max=cmax, block_kwargs=dict(freeze_layers=0),
                                             mapping_kwargs={}, epilogue_kwargs=dict(mbstd_group_size=4), **common)
    return G, D


# ---------------------------------------------------------------------------------------------------------------
# Worker: one measurement in its own process

def run_worker(spec: dict) -> dict:
    import torch
    torch.set_num_threads(spec["threads"])
    torch.manual_seed(0)
    G, D = (_build_nvidia if spec["impl"] == "nvidia" else _build_ours)(spec)
    n = spec["batch"]
    c = torch.zeros([n, 0])
    gen = torch.Generator().manual_seed(1)

    if spec["what"] == "infer":
        G.eval().requires_grad_(False)

        def run():
            with torch.no_grad():
                G(torch.randn([n, 512], generator=gen), c, noise_mode="const")
    else:
        G.train().requires_grad_(True)
        D.train().requires_grad_(True)
        params = list(G.parameters()) + list(D.parameters())

        def run():
            for p in params:
                p.grad = None
            img = G(torch.randn([n, 512], generator=gen), c, noise_mode="random")
            loss = torch.nn.functional.softplus(-D(img, c)).mean()    # G's non-saturating loss
            loss.backward()

    times, cpu = [], []
    for _ in range(1 + spec["repeats"]):                                    # the first pass is a warm-up
        c0, t0 = time.process_time(), time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    median = statistics.median(times[1:])
    out = dict(times_s=[round(t, 3) for t in times[1:]], warmup_s=round(times[0], 3), median_s=round(median, 3),
               cpu_s=round(statistics.median(cpu[1:]), 3),
               peak_gb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20, 3))
    if spec["what"] == "infer":
        out["img_per_s"] = round(n / median, 4)
    else:
        out["s_per_kimg"] = round(median / n * 1000, 1)
    return out


def _worker_main(spec: dict) -> None:
    try:
        result = run_worker(spec)
    except MemoryError as e:
        result = dict(status="out of memory", error=f"MemoryError: {e}")
    except RuntimeError as e:                                               # torch's allocator failing
        if "alloc" not in str(e).lower() and "memory" not in str(e).lower():
            raise
        result = dict(status="out of memory", error=str(e).splitlines()[0][:300])
    print(json.dumps(result), flush=True)


# ---------------------------------------------------------------------------------------------------------------
# Driver

def _rss_gb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 30
    except (OSError, IndexError, ValueError):
        return 0.0


def worker_env(wait_policy: str) -> dict:
    """The environment of a measurement: OMP_WAIT_POLICY as chosen ('default' leaves it as it is)."""
    env = dict(os.environ)
    if wait_policy != "default":
        env["OMP_WAIT_POLICY"] = wait_policy.upper()
    return env


def measure(spec: dict, timeout_s: float, max_gb: float, env: dict | None = None) -> dict:
    """Run one measurement in a subprocess, watching its resident set and its time."""
    proc = subprocess.Popen([sys.executable, __file__, "--worker", json.dumps(spec)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    start, seen_gb, why = time.monotonic(), 0.0, None
    while proc.poll() is None:
        seen_gb = max(seen_gb, _rss_gb(proc.pid))
        if seen_gb > max_gb:
            why = dict(status="killed", error=f"resident set passed the {max_gb:g} GB limit (--max-gb)")
        elif time.monotonic() - start > timeout_s:
            why = dict(status="timeout", error=f"still running after {timeout_s:g} s (--timeout)")
        if why:
            proc.kill()
            proc.communicate()
            return dict(why, wall_s=round(time.monotonic() - start, 1), peak_gb_seen=round(seen_gb, 2))
        time.sleep(0.2)
    stdout, stderr = proc.communicate()
    wall = round(time.monotonic() - start, 1)
    if proc.returncode < 0:
        return dict(status="killed", error=f"signal {-proc.returncode} (SIGKILL usually means the kernel's OOM "
                    "killer)", wall_s=wall, peak_gb_seen=round(seen_gb, 2))
    if proc.returncode != 0:
        tail = stderr.strip().splitlines()[-1:] or [f"exit {proc.returncode}"]
        return dict(status="error", error=tail[0][:300], wall_s=wall)
    result = json.loads(stdout.strip().splitlines()[-1])
    result.setdefault("status", "ok")
    result["wall_s"] = wall
    return result


def ratios(row: dict) -> dict:
    """How many times faster ours is (images/s, s/kimg, CPU time per pass) and how many times less memory it needs."""
    ours, nv = row.get("ours", {}), row.get("nvidia", {})
    if ours.get("status") != "ok" or nv.get("status") != "ok":
        return {}
    out = {"speedup": round((ours["img_per_s"] / nv["img_per_s"]) if row["what"] == "infer"
                            else nv["s_per_kimg"] / ours["s_per_kimg"], 2)}
    if "cpu_s" in ours and "cpu_s" in nv:
        out["cpu_time_nvidia_over_ours"] = round(nv["cpu_s"] / ours["cpu_s"], 2)
    out["memory_nvidia_over_ours"] = round(nv["peak_gb"] / ours["peak_gb"], 2)
    return out


def markdown_table(result: dict) -> str:
    """The results as a Markdown table: ours, NVIDIA's and the ratio for each figure."""
    def fig(m: dict, key: str, fmt: str) -> str:
        if not m:
            return "–"
        if m.get("status") != "ok":
            return m.get("status", "error")
        return format(m[key], fmt)

    lines = ["| preset | px | inference img/s: ours / NVIDIA (×) | step s/kimg: ours / NVIDIA (×) "
             "| step CPU s: ours / NVIDIA (×) | step peak GB: ours / NVIDIA (ours ÷ NVIDIA) |",
             "| --- | --- | --- | --- | --- | --- |"]
    rows = {}
    for r in result["results"]:
        rows.setdefault((r["cfg"], r["resolution"]), {})[r["what"]] = r
    for (cfg, res), by_what in rows.items():
        infer, step = by_what.get("infer", {}), by_what.get("step", {})
        cells = [cfg, str(res)]
        for row, key, fmt, ratio in ((infer, "img_per_s", ".3g", "speedup"), (step, "s_per_kimg", ".0f", "speedup"),
                                     (step, "cpu_s", ".1f", "cpu_time_nvidia_over_ours")):
            ours, nv = row.get("ours", {}), row.get("nvidia", {})
            r_ = row.get("ratios", {}).get(ratio)
            if ratio == "cpu_time_nvidia_over_ours" and r_ is None and "cpu_s" in ours and "cpu_s" in nv:
                r_ = round(nv["cpu_s"] / ours["cpu_s"], 2)
            if key == "cpu_s" and (ours.get("status") == "ok" and "cpu_s" not in ours):
                cells.append("not recorded")
                continue
            cells.append(f"{fig(ours, key, fmt)} / {fig(nv, key, fmt)}" + (f" ({r_:.2f}×)" if r_ else ""))
        ours, nv = step.get("ours", {}), step.get("nvidia", {})
        frac = (f" ({ours['peak_gb'] / nv['peak_gb']:.2f})" if ours.get("status") == nv.get("status") == "ok" else "")
        cells.append(f"{fig(ours, 'peak_gb', '.2f')} / {fig(nv, 'peak_gb', '.2f')}{frac}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--presets", default=",".join(PRESETS), help="comma-separated: " + ", ".join(PRESETS))
    p.add_argument("--sizes", default=",".join(map(str, SIZES)), help="comma-separated resolutions")
    p.add_argument("--what", default=",".join(WHATS), help="comma-separated: infer (images/s), step (s/kimg)")
    p.add_argument("--impls", default="ours,nvidia", help="comma-separated: ours, nvidia")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--cbase", type=int, default=8192)
    p.add_argument("--cmax", type=int, default=256)
    p.add_argument("--repeats", type=int, default=3, help="timed passes after one warm-up; the median is reported")
    p.add_argument("--threads", type=int, default=2, help="torch threads in each measurement")
    p.add_argument("--timeout", type=float, default=3600, help="seconds one measurement may run before it is killed")
    p.add_argument("--max-gb", type=float, default=20, help="skip or kill a measurement above this resident set")
    p.add_argument("--reference", default=_nvidia.default_path(),
                   help="NVIDIA's stylegan3 checkout (default: $STYLEGAN_NVIDIA_REF, else ../ref/stylegan3 "
                   "or /work/ref/stylegan3)")
    p.add_argument("--omp-wait-policy", default="passive", choices=["passive", "active", "default"],
                   help="OMP_WAIT_POLICY of every measurement, ours and NVIDIA's alike (default passive: see above)")
    p.add_argument("--out", help="also write the JSON here, updated after every measurement")
    p.add_argument("--table", metavar="JSON", help="print the Markdown table of a file written by --out, and stop")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        _worker_main(json.loads(args.worker))
        return
    if args.table:
        with open(args.table) as f:
            print(markdown_table(json.load(f)))
        return

    import torch
    impls = [i for i in args.impls.split(",") if i]
    notes = []
    if "nvidia" in impls and not _nvidia.found(args.reference):
        impls.remove("nvidia")
        notes.append(f"NVIDIA's code not found at {args.reference}: its column is skipped")
    result = dict(benchmark="networks", command="python " + " ".join(sys.argv),
                  date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                  cpu=_cpu_model(), cpus=os.cpu_count(), torch=torch.__version__, threads=args.threads,
                  batch=args.batch, cbase=args.cbase, cmax=args.cmax, repeats=args.repeats, max_gb=args.max_gb,
                  omp_wait_policy=worker_env(args.omp_wait_policy).get("OMP_WAIT_POLICY", "unset"),
                  notes=notes, load_avg_start=os.getloadavg()[0], results=[])

    def emit():
        result["load_avg_end"] = os.getloadavg()[0]
        if args.out:
            with open(args.out + ".tmp", "w") as f:
                json.dump(result, f, indent=1)
            os.replace(args.out + ".tmp", args.out)

    for res in (int(s) for s in args.sizes.split(",")):
        for cfg in args.presets.split(","):
            for what in args.what.split(","):
                row = dict(cfg=cfg, resolution=res, what=what)
                for impl in impls:
                    expected = NVIDIA_EXPECTED_GB.get((cfg, res, what), 0) * (args.batch / 8 if what == "step" else 1)
                    expected = expected if impl == "nvidia" else 0
                    if expected > args.max_gb:
                        row[impl] = dict(status="skipped", error=f"expected peak about {expected:g} GB is above "
                                         f"--max-gb {args.max_gb:g} on this {_mem_total_gb():.0f} GB machine")
                        continue
                    spec = dict(impl=impl, cfg=cfg, resolution=res, what=what, batch=args.batch, cbase=args.cbase,
                                cmax=args.cmax, repeats=args.repeats, threads=args.threads, reference=args.reference)
                    row[impl] = measure(spec, args.timeout, args.max_gb, worker_env(args.omp_wait_policy))
                row["ratios"] = ratios(row)
                result["results"].append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
                emit()
    emit()
    print(json.dumps(result, indent=1))


def _mem_total_gb() -> float:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30


if __name__ == "__main__":
    main()
