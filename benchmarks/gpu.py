"""The one prepared GPU check: op parity and speed, whole networks at 256 px, NVIDIA's code side by side, targets.

On the device machine (an H100 or H200; no network needed), from the repository root, in one call of about
8 minutes (--budget-s 450 plus start-up; the tool's timeout_s should be 600):

    python3 benchmarks/gpu.py --out $OUT
    python3 benchmarks/gpu.py --nvidia .nvidia/stylegan3 --out $OUT     # NVIDIA's checkout, side by side

NVIDIA's checkout is not part of this repository: copy it into a folder git ignores (for example `.nvidia/`, listed
in .git/info/exclude) and name that folder in the device tool's `carry`. Nothing of it is copied into our code; it
is put on sys.path at run time (benchmarks/_nvidia.py). The machine's own python3 (with torch and triton) runs
this: our package is imported from src/, no install needed. Here, on a CPU:

    .venv/bin/python benchmarks/gpu.py --smoke --out /tmp/gpu-smoke     # tiny sizes, 1 timed step: a smoke run
    TRITON_INTERPRET=1 .venv/bin/python benchmarks/gpu.py --smoke ...   # also the Triton kernels' parity, slower
    .venv/bin/python benchmarks/gpu.py --table /tmp/gpu-smoke/gpu.json  # the Markdown tables of a finished run

What fits in the budget (estimates for an H200, not measurements: NVIDIA's A100 figures scaled, plus the start-up
of a process and the Triton compiles of the first case): environment ~5 s; ops at most 25% of the budget (~110 s;
Triton's first compiles dominate); each network case ~35 s eager, ~150 s with compile, so the cases run in order
of interest -- --modes fp16,compile,bf16,fp32, T, R, then stylegan2, NVIDIA's right after ours -- until the budget
is spent, and the rest are recorded as skipped. Narrow it with --cfgs, --modes or --sections for a second call.

Output: progress on stderr, with the elapsed time; then the JSON on stdout and the Markdown tables after it. Both
are written to --out (default $OUT, else ./gpu-results) as gpu.json and gpu.md, gpu.json after every section.

Sections (one failing section records its error and the next one runs; once --budget-s is spent, what is left is
skipped with a note, except the targets, which only read what was measured):
1. environment: torch, triton, CUDA and cuDNN versions, the GPU, its memory, the driver, nvcc.
2. ops: upfirdn2d, bias_act and filtered_lrelu at StyleGAN layer geometries (StyleGAN3-T and -R filtered_lrelu
   layers at 256 px: up 2 and 4, 12 and 24 taps, radial down filters for R; StyleGAN2 resampling with the 4x4
   [1,3,3,1] filter; bias + lrelu + clamp 256). For the 'fast' and 'triton' paths (`impl=`) against `impl='ref'`
   on the same inputs: max abs error of the values and input gradients in fp32; in fp16 and bf16 the max abs error
   relative to the largest fp32 reference value (the reference run in that dtype is listed too, as the error the
   dtype alone brings). A path that raises TypeError (no `impl=`), warns that it falls back, or launches no Triton
   kernel is recorded as unsupported. Then forward + backward time (CUDA events, median) and peak memory per path.
3. networks: stylegan2, stylegan3-t and stylegan3-r at 256 px, batch 32, with the sizes of NVIDIA's docs/configs.md
   256 px one-GPU rows (--cbase 32768 --cmax 512, gamma 2; --batch-gpu 16 for T and 8 for R as there; stylegan2
   has no 256 px row: train.py's defaults, --batch-gpu 32). Modes: fp32, fp16 (NVIDIA's mixed precision: 4 fp16
   resolutions, clamp 256), bf16 (autocast) and compile (`config.run.compile`, in fp16; a checkout without that
   field records the case as unsupported). Per case, in its own process: generator
   inference (G_ema, batch 32, constant noise) in images/s and its peak memory, then real training steps of the
   project's Trainer (as benchmarks/train.py) in s/kimg and their peak memory (torch.cuda.max_memory_allocated,
   reset before each part).
4. nvidia (--nvidia PATH): NVIDIA's CUDA plugins are built first (in the background, timed on their own), then the
   same networks and steps run by their code (benchmarks/train.py's driver: their networks, StyleGAN2Loss, Adam,
   phase schedule) in fp16 (their default, what configs.md measured) and fp32 (--fp32), each right after ours, with
   ratios ours / NVIDIA.
5. targets: training s/kimg <= 0.75x NVIDIA's, inference img/s >= 1.5x, peak training memory <= 1x, met or not,
   with NVIDIA's configs.md A100 figures (49.81 s/kimg for stylegan3-t, 56.73 for -r) beside ours.

How a training step is timed. The lazy regularisers make steps unequal (R1 every 16th step, path length every 4th
for stylegan2), and 16 steps of a 256 px network take longer than the budget allows per case. So the steps are
grouped by which phases run in them (over one 16-step period: plain, Greg, Dreg and Greg+Dreg), the trainer's
`batch_idx` is set so that each group runs, every group is warmed up once (this compiles, autotunes and fills the
caches), each is then timed `--reps` times (CUDA synchronised), and s/kimg = sum over groups of (share of the
period x median step time) / batch x 1000. Data loading (workers=0, PNGs from a zip) is inside the step for both
codes. cudnn.benchmark is on and TF32 is off, as in both codes' training loops.
"""
from __future__ import annotations

import argparse
import atexit
import collections
import datetime
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
sys.path[:0] = [p for p in (str(HERE), str(SRC)) if p not in sys.path]   # device machines have no install of ours

import _nvidia  # noqa: E402

SECTIONS = ("environment", "ops", "networks", "nvidia", "targets")
CFGS = ("stylegan3-t", "stylegan3-r", "stylegan2")
MODES = ("fp16", "compile", "bf16", "fp32")             # the order cases run in: the most telling first
NVIDIA_MODES = ("fp16", "fp32")                         # their code has mixed precision or --fp32, nothing else
FULL = dict(resolution=256, batch=32, cbase=32768, cmax=512)
SMOKE = dict(resolution=16, batch=4, cbase=256, cmax=8, map_depth=2)
BATCH_GPU = {"stylegan3-t": 16, "stylegan3-r": 8, "stylegan2": 32}       # configs.md's 1-GPU 256 px rows
GAMMA = 2.0                                             # configs.md at 256 px (R1's weight does not change the cost)
PERIOD = 16                                             # steps: lcm of the R1 (16) and path length (4) intervals
# NVIDIA's docs/configs.md, 256x256, 1 GPU, batch 32, one A100 (V100 beside it): s/kimg and GPU memory in GB.
NVIDIA_DOCS = {"stylegan3-t": dict(s_per_kimg_a100=49.81, s_per_kimg_v100=89.15, gpu_mem_gb=9.5, batch_gpu=16),
               "stylegan3-r": dict(s_per_kimg_a100=56.73, s_per_kimg_v100=87.37, gpu_mem_gb=6.7, batch_gpu=8)}
TARGETS = dict(train=0.75, infer=1.5, memory=1.0)       # ours / NVIDIA's: s/kimg at most, img/s at least, GB at most
# Parity tolerances: fp32 max abs error <= TOL_FP32 * max(1, max |ref|); fp16/bf16 max abs error / max |ref|.
TOL = dict(fp32=1e-4, fp16=1e-2, bf16=4e-2)
EST_CASE_S = dict(eager=35, compile=150, first_extra=40)     # a case's seconds on an H200 (estimates; see notes)
MARK = "@@gpu.py "                                      # prefix of a worker's result lines on stdout
SAY = "  . "                                            # prefix of a worker's progress lines on stderr


# ---------------------------------------------------------------------------------------------------------------
# Small helpers

def _log(t0: float, text: str) -> None:
    print(f"[{time.monotonic() - t0:6.1f} s] {text}", file=sys.stderr, flush=True)


def _emit(result: dict) -> None:
    """A worker's result: one line on stdout."""
    print(MARK + json.dumps(result), flush=True)


def _say(text: str) -> None:
    """A worker's progress line (the parent echoes it)."""
    print(SAY + text, file=sys.stderr, flush=True)


def _child_env(extra: dict | None = None) -> dict:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    # On a CPU shared with other work, spinning OpenMP threads hold up the ones computing (benchmarks/train.py).
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), str(HERE)] + [p for p in [env.get("PYTHONPATH")] if p])
    env.update(extra or {})
    return env


def _spawn(worker: str, spec: dict, timeout_s: float, env: dict | None = None) -> tuple[list[dict], str | None]:
    """Run `gpu.py --worker NAME SPEC` in its own process group: (its result lines, an error or None).

    Result lines printed before a crash or the timeout are kept. Its progress lines are echoed as they come."""
    proc = subprocess.Popen([sys.executable, __file__, "--worker", worker, json.dumps(spec)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env or _child_env(), start_new_session=True)
    _RUNNING.add(proc)
    results, tail = [], collections.deque(maxlen=30)

    def read_stdout():
        for line in proc.stdout:
            if line.startswith(MARK):
                results.append(json.loads(line[len(MARK):]))

    def read_stderr():
        for line in proc.stderr:
            line = line.rstrip()
            tail.append(line)
            if line.startswith(SAY):
                print("   " + line, file=sys.stderr, flush=True)

    readers = [threading.Thread(target=f, daemon=True) for f in (read_stdout, read_stderr)]
    for r in readers:
        r.start()
    error = None
    try:
        proc.wait(timeout=max(timeout_s, 1))
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)        # the worker and what it started (nvcc, compile workers)
        proc.wait()
        error = f"stopped after {timeout_s:.0f} s (its share of --budget-s)"
    for r in readers:
        r.join(timeout=5)
    _RUNNING.discard(proc)
    if error is None and proc.returncode != 0:
        lines = [t for t in tail if t.strip() and not t.startswith(SAY)]
        why = lines[-1] if lines else ""
        error = (f"signal {-proc.returncode}" if proc.returncode < 0 else f"exit {proc.returncode}") + \
            (f": {why[:400]}" if why else "")
    return results, error


_RUNNING: set[subprocess.Popen] = set()        # workers in flight: stopped with their children when this process ends


def _stop_workers() -> None:
    for proc in list(_RUNNING):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _cuda_available() -> bool:
    import torch
    return torch.cuda.is_available()


# ---------------------------------------------------------------------------------------------------------------
# 1. Environment

def environment() -> dict:
    import torch
    out = dict(python=platform.python_version(), torch=torch.__version__, cuda=torch.version.cuda,
               cpu_count=os.cpu_count(), machine=platform.machine())
    try:
        import triton
        out["triton"] = triton.__version__
    except Exception as e:  # noqa: BLE001 - recorded, not fatal
        out["triton"] = f"does not import ({type(e).__name__}: {e})"
    out["TRITON_INTERPRET"] = os.environ.get("TRITON_INTERPRET", "")
    try:
        out["stylegan_commit"] = subprocess.run(["git", "rev-parse", "HEAD"], cwd=HERE, capture_output=True,
                                                text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.TimeoutExpired):
        out["stylegan_commit"] = None
    out["nvcc"] = _first_line(["nvcc", "--version"], last=True)
    if not torch.cuda.is_available():
        out["gpu"] = None
        out["note"] = "no CUDA device: the CUDA-only parts of the other sections are skipped"
        return out
    props = torch.cuda.get_device_properties(0)
    out.update(gpu=props.name, gpu_memory_gb=round(props.total_memory / 2**30, 1),
               multiprocessors=props.multi_processor_count, capability=f"{props.major}.{props.minor}",
               cudnn=torch.backends.cudnn.version(), bf16_supported=torch.cuda.is_bf16_supported(),
               driver=_first_line(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"]))
    return out


def _first_line(cmd: list[str], last: bool = False) -> str | None:
    try:
        lines = subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout.strip().splitlines()
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (lines[-1] if last else lines[0]).strip() if lines else None


# ---------------------------------------------------------------------------------------------------------------
# 2. Ops: the cases

def op_cases(smoke: bool) -> list[dict]:
    """The op calls of StyleGAN layers, read from our generators (filtered_lrelu) or written from StyleGAN2's
    resampling (upfirdn2d, bias_act) at the benchmark resolution."""
    from stylegan.networks.presets import build_generator
    from stylegan.networks.stylegan3 import SynthesisLayer
    from stylegan.ops.upfirdn2d import setup_filter

    res = 32 if smoke else FULL["resolution"]
    size = dict(cbase=256, cmax=8) if smoke else dict(cbase=FULL["cbase"], cmax=FULL["cmax"])
    cases = []
    for cfg, tag in (("stylegan3-t", "T"), ("stylegan3-r", "R")):
        batch = 1 if smoke else BATCH_GPU[cfg]
        layers = [m for m in build_generator(cfg, res, **size).modules() if isinstance(m, SynthesisLayer)][:-1]
        by_size = lambda up: max((m for m in layers if m.up_factor == up and m is not layers[-1]),  # noqa: E731
                                 key=lambda m: (int(m.in_size[0]), bool(m.down_radial)), default=None)
        if smoke:                                       # one layer each: up 4, 24 taps (radial down filter for R)
            picks = [by_size(4)]
        else:                                           # the first, the largest up-4 and up-2 ones, the last
            picks = [layers[0], by_size(4), by_size(2), layers[-1]] if tag == "T" else \
                [by_size(4), by_size(2), layers[-1]]
        for m in dict.fromkeys(p for p in picks if p is not None):
            i = layers.index(m)
            hw = int(m.in_size[0]) + m.conv_kernel - 1                   # the modulated conv pads by k-1
            fu, fd = m.up_filter, m.down_filter
            cases.append(dict(
                op="filtered_lrelu", name=f"{tag} L{i} up{m.up_factor} {len(fu)}/{fd.shape[0]} taps"
                f"{' radial' if m.down_radial else ''} {hw}px", shape=[batch, 2 if smoke else m.out_channels, hw, hw],
                fu=fu.tolist(), fd=fd.tolist(), up=m.up_factor, down=m.down_factor, padding=list(m.padding),
                gain=2 ** 0.5, slope=0.2, clamp=256))
    n, ch = (1, 2) if smoke else (BATCH_GPU["stylegan2"], FULL["cbase"] // res)     # smoke: Triton's interpreter
    f = setup_filter([1, 3, 3, 1]).tolist()
    cases += [
        # G: after the transposed conv of the 2x upsampling conv, [1, N*C, 2r+1] (grouped), the 4x4 filter.
        dict(op="upfirdn2d", name=f"G up filter {res}px", shape=[1, n * ch, res + 1, res + 1], f=f, up=1, down=1,
             padding=[1, 1, 1, 1], gain=4),
        dict(op="upfirdn2d", name=f"G skip upsample {res}px", shape=[n, 3, res // 2, res // 2], f=f, up=2, down=1,
             padding=[2, 1, 2, 1], gain=4),
        dict(op="upfirdn2d", name=f"D down filter {res}px", shape=[n, ch, res, res], f=f, up=1, down=1,
             padding=[2, 2, 2, 2], gain=1),
        dict(op="upfirdn2d", name=f"D skip downsample {res}px", shape=[n, ch, res, res], f=f, up=1, down=2,
             padding=[1, 1, 1, 1], gain=1),
        dict(op="bias_act", name=f"bias + lrelu + clamp {res}px", shape=[n, ch, res, res]),
    ]
    if smoke:                                           # one of each op
        cases = [c for c in cases if c["op"] != "upfirdn2d" or c["name"].startswith("D skip downsample")]
    return cases


class _TritonLaunches:
    """Counts Triton kernel launches (`kernel[grid](...)`), to tell a Triton path from a silent fallback."""

    def __init__(self):
        self.count = 0
        try:
            from triton.runtime.jit import KernelInterface
        except Exception:  # noqa: BLE001 - no triton: nothing launches
            return
        original = KernelInterface.__getitem__

        def counting(kernel, grid):
            self.count += 1
            return original(kernel, grid)
        KernelInterface.__getitem__ = counting


def _op_function(case: dict, device):
    """fn(impl, x, b) -> y for one case. impl='ref' on an op without `impl=` calls it without (its one path)."""
    import torch
    from stylegan.ops.bias_act import bias_act
    from stylegan.ops.filtered_lrelu import filtered_lrelu
    from stylegan.ops.upfirdn2d import upfirdn2d

    if case["op"] == "filtered_lrelu":
        fu, fd = torch.tensor(case["fu"], device=device), torch.tensor(case["fd"], device=device)
        raw = lambda x, b, **kw: filtered_lrelu(x, fu, fd, b, up=case["up"], down=case["down"],  # noqa: E731
                                                padding=case["padding"], gain=case["gain"], slope=case["slope"],
                                                clamp=case["clamp"], **kw)
    elif case["op"] == "upfirdn2d":
        f = torch.tensor(case["f"], device=device)
        raw = lambda x, b, **kw: upfirdn2d(x, f, up=case["up"], down=case["down"],  # noqa: E731
                                           padding=case["padding"], gain=case["gain"], **kw)
    else:
        raw = lambda x, b, **kw: bias_act(x, b, act="lrelu", clamp=256, **kw)  # noqa: E731

    def fn(impl, x, b):
        try:
            return raw(x, b, impl=impl)
        except TypeError as e:
            if impl != "ref" or "impl" not in str(e):
                raise
            return raw(x, b)
    return fn


def _tensor_dtype(name: str):
    import torch
    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[name]


def _inputs(case: dict, device, seed: int):
    """x, b (None for upfirdn2d) and dy for one case, in fp32."""
    import torch
    gen = torch.Generator(device=device).manual_seed(seed)
    x = torch.randn(case["shape"], device=device, generator=gen)
    b = None if case["op"] == "upfirdn2d" else torch.randn([case["shape"][1]], device=device, generator=gen) * 0.1
    with torch.no_grad():
        shape = _op_function(case, device)("ref", x, b).shape
    return x, b, torch.randn(shape, device=device, generator=gen)


def _run_path(fn, impl, x, b, dy, launches: _TritonLaunches):
    """(values, input gradients, None) or (None, None, why the path did not run as asked)."""
    import warnings

    import torch
    from stylegan.ops import _dispatch
    x = x.detach().requires_grad_(True)
    b = None if b is None else b.detach().requires_grad_(True)
    getattr(_dispatch, "_warned", set()).clear()             # the dispatch warns once per reason: see each one
    before = launches.count
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            y = fn(impl, x, b)
        except TypeError as e:                              # no impl= on this op
            return None, None, f"TypeError: {e}"
        grads = torch.autograd.grad(y, [t for t in (x, b) if t is not None], dy.to(y.dtype))
    fallbacks = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    if impl in ("fast", "triton") and fallbacks:
        return None, None, "falls back: " + "; ".join(fallbacks)
    if impl == "triton" and launches.count == before:
        return None, None, "no Triton kernel was launched (the op has no Triton path here)"
    return y, grads, None


def _errors(y, grads, y_ref, g_ref) -> dict:
    """name -> (max abs error, max |ref|) for the values and each input gradient."""
    out = {}
    for name, a, r in zip(("y", "grad_x", "grad_b"), (y, *grads), (y_ref, *g_ref)):
        a, r = a.detach().float(), r.detach().float()
        out[name] = (float((a - r).abs().max()), float(r.abs().max()))
    return out


def op_parity(case: dict, device, dtypes, launches: _TritonLaunches) -> list[dict]:
    """Each path and dtype against impl='ref' in fp32 on the same inputs, values and input gradients."""
    fn = _op_function(case, device)
    x, b, dy = _inputs(case, device, seed=0)
    y_ref, g_ref, _ = _run_path(fn, "ref", x, b, dy, launches)
    rows = []
    for dtype in dtypes:
        half = dtype != "fp32"
        for impl in (("ref",) if half else ()) + ("fast", "triton"):
            row = dict(case=case["name"], op=case["op"], dtype=dtype, impl=impl)
            t = _tensor_dtype(dtype)
            try:
                y, grads, why = _run_path(fn, impl, x.to(t), None if b is None else b.to(t), dy, launches)
            except Exception as e:  # noqa: BLE001 - a path that crashes is a result
                rows.append(dict(row, status="error", error=f"{type(e).__name__}: {str(e)[:300]}"))
                continue
            if why is not None:
                rows.append(dict(row, status="unsupported", reason=why))
                continue
            errs = _errors(y, grads, y_ref, g_ref)
            row["max_abs_ref"] = {k: m for k, (e, m) in errs.items()}
            if half:
                row["rel_err"] = {k: e / max(m, 1e-30) for k, (e, m) in errs.items()}
                ok = all(v <= TOL[dtype] for v in row["rel_err"].values())
            else:
                row["abs_err"] = {k: e for k, (e, m) in errs.items()}
                ok = all(e <= TOL["fp32"] * max(1.0, m) for e, m in errs.values())
            # The reference run in fp16/bf16 is a yardstick, not a test: the error the dtype alone brings.
            rows.append(dict(row, status="ok", tol=TOL[dtype], **({} if impl == "ref" else {"pass": ok})))
    return rows


def _time_ms(step, cuda: bool, smoke: bool) -> float:
    """Median milliseconds of step() after one warm-up: CUDA events on a GPU, enough repeats for about 0.2 s."""
    import torch
    step()
    if cuda:
        torch.cuda.synchronize()
    times, spent = [], 0.0
    while len(times) < (1 if smoke else 3) or (spent < 0.2 and len(times) < 25):
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            step()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            step()
            times.append((time.perf_counter() - t0) * 1000)
        spent += times[-1] / 1000
        if smoke:
            break
    return statistics.median(times)


def op_timing(case: dict, device, dtypes, launches: _TritonLaunches, smoke: bool) -> list[dict]:
    """Forward + backward per path and dtype: median ms and the peak memory above the inputs (CUDA)."""
    import torch
    fn = _op_function(case, device)
    cuda = device.type == "cuda"
    rows = []
    for dtype in dtypes:
        t = _tensor_dtype(dtype)
        x0, b0, dy = _inputs(case, device, seed=1)
        x = x0.to(t).requires_grad_(True)
        b = None if b0 is None else b0.to(t).requires_grad_(True)
        dy = dy.to(t)
        del x0, b0
        for impl in ("ref", "fast", "triton"):
            row = dict(case=case["name"], op=case["op"], dtype=dtype, impl=impl)
            if impl == "triton" and not cuda and os.environ.get("TRITON_INTERPRET") == "1":
                rows.append(dict(row, status="skipped", reason="Triton's CPU interpreter: parity only, no timing"))
                continue
            try:
                _, _, why = _run_path(fn, impl, x, b, dy, launches)
                if why is not None:
                    rows.append(dict(row, status="unsupported", reason=why))
                    continue

                def step():
                    x.grad = None
                    if b is not None:
                        b.grad = None
                    fn(impl, x, b).backward(dy)
                if cuda:
                    torch.cuda.synchronize()
                    torch.cuda.reset_peak_memory_stats()
                    base = torch.cuda.memory_allocated()
                ms = _time_ms(step, cuda, smoke)
                peak = round((torch.cuda.max_memory_allocated() - base) / 2**20, 1) if cuda else None
                rows.append(dict(row, status="ok", fwd_bwd_ms=round(ms, 4), peak_mb=peak))
            except Exception as e:  # noqa: BLE001
                rows.append(dict(row, status="error", error=f"{type(e).__name__}: {str(e)[:300]}"))
            if cuda:
                torch.cuda.empty_cache()
    return rows


def ops_worker(spec: dict) -> None:
    """Every op case, parity then timing, one result line each (so a crash or a timeout keeps what was done)."""
    import torch
    device = torch.device(spec["device"])
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = False   # the fp32 reference must be fp32, not TF32
        torch.backends.cudnn.allow_tf32 = False
    launches = _TritonLaunches()
    cases = op_cases(spec["smoke"])
    for kind, run, dtypes in (("parity", op_parity, spec["dtypes"]), ("timing", op_timing, spec["timing_dtypes"])):
        for i, case in enumerate(cases):
            _say(f"{kind} {i + 1}/{len(cases)}: {case['name']} {case['shape']}")
            try:
                rows = run(case, device, dtypes, launches) if kind == "parity" else \
                    run(case, device, dtypes, launches, spec["smoke"])
            except Exception as e:  # noqa: BLE001 - the reference itself failed (out of memory, say): next case
                rows = [dict(case=case["name"], op=case["op"], impl="ref", dtype="fp32", status="error",
                             error=f"{type(e).__name__}: {str(e)[:300]}")]
            for row in rows:
                _emit(dict(row, kind=kind, shape=case["shape"]))
            if device.type == "cuda":
                torch.cuda.empty_cache()


# ---------------------------------------------------------------------------------------------------------------
# 3 and 4. Networks: one case (cfg, mode, ours or NVIDIA's) in one process

def _phase_intervals(trainer) -> list[tuple[str, int]]:
    """(name, interval) of each phase: our Trainer's Phase objects, or the NVIDIA driver's tuples."""
    return [(p.name, p.interval) if hasattr(p, "interval") else (p[0], p[3]) for p in trainer.phases]


def step_groups(trainer) -> list[dict]:
    """The steps of one 16-step period grouped by the phases that run in them: a batch_idx for each, its share."""
    groups = {}
    for b in range(PERIOD):
        names = tuple(n for n, interval in _phase_intervals(trainer) if b % max(interval, 1) == 0)
        groups.setdefault(names, []).append(b)
    return [dict(phases=list(k), batch_idx=v[0] + PERIOD, share=len(v) / PERIOD) for k, v in groups.items()]


def _build_trainer(spec: dict, data: Path, tmp: str):
    """Our Trainer (as benchmarks/train.py builds it) or NVIDIA's step driver, and the dataset it reads."""
    import torch
    from stylegan.data import ImageDataset

    import train as train_bench
    device = torch.device(spec["device"])
    dataset = ImageDataset(str(data))
    if spec["impl"] == "nvidia":
        case = dict(spec, precision="fp16" if spec["mode"] == "fp16" else "fp32")
        return train_bench._NvidiaSteps(case, dataset, spec["nvidia"], GAMMA), dataset
    from stylegan.training.config import TrainingFlags
    from stylegan.training.prepare import prepare_config
    from stylegan.training.phases import Trainer
    precision = {"compile": "fp16" if device.type == "cuda" else "fp32"}.get(spec["mode"], spec["mode"])
    flags = dict(outdir=tmp, data=str(data), cfg=spec["cfg"], batch=spec["batch"], batch_gpu=spec["batch_gpu"],
                 gamma=GAMMA, cbase=spec["cbase"], cmax=spec["cmax"], device=spec["device"], workers=0,
                 metrics="none", aug="noaug", precision=precision, map_depth=spec.get("map_depth"))
    if spec["mode"] == "compile":
        flags["compile"] = True
    config = prepare_config(TrainingFlags(**flags), quiet=True)
    if spec["mode"] == "compile":
        if not hasattr(config.run, "compile"):
            raise NotImplementedError("unsupported: this checkout's training config has no run.compile")
        config.run.compile = True
    return Trainer(config, dataset, device), dataset


def _inference(trainer, spec: dict, sync) -> dict:
    """G_ema images/s at the training batch, constant noise, no grad; its peak memory."""
    import contextlib

    import torch
    device = torch.device(spec["device"])
    G = trainer.G_ema
    ours = spec["impl"] == "ours"
    compiling = contextlib.nullcontext()
    if ours and spec["mode"] == "compile":              # as `stylegan generate --compile` runs G
        from stylegan.core.compile import compiled_forward
        compiling = compiled_forward(G.mapping, G.synthesis, cuda_graphs=True)
    autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if ours and spec["mode"] == "bf16"
                else contextlib.nullcontext())
    n = spec["batch"]
    c = torch.zeros([n, 0], device=device)
    gen = torch.Generator(device=device).manual_seed(1)

    def run():
        with torch.no_grad(), autocast:
            G(torch.randn([n, trainer.G.z_dim], device=device, generator=gen), c, noise_mode="const")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with compiling:
        t0 = time.perf_counter()
        for _ in range(spec["infer_warmup"]):
            run()
        sync()
        warm = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(spec["infer_batches"]):
            run()
        sync()
        elapsed = time.perf_counter() - t0
    return dict(infer_img_per_s=round(spec["infer_batches"] * n / elapsed, 2), infer_warmup_s=round(warm, 2),
                infer_peak_gb=_peak_gb(device), **_compile_failure(spec))


def _compile_failure(spec: dict) -> dict:
    """For a compile case: why compiling fell back to eager in this process, if it did (then the figure is eager's)."""
    if spec["impl"] != "ours" or spec["mode"] != "compile":
        return {}
    from stylegan.core.compile import compile_failure
    return dict(compile_failure=compile_failure())


def _peak_gb(device) -> float:
    from stylegan.training.stats import peak_memory_gb
    return round(peak_memory_gb(device), 3)


def _training(trainer, spec: dict, sync) -> dict:
    """s/kimg from the step groups (see the module docstring) and the peak memory of the steps."""
    import torch
    device = torch.device(spec["device"])
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    groups = step_groups(trainer)
    t0 = time.perf_counter()
    plain = max(groups, key=lambda g: g["share"])
    for g in (groups + [plain]) if spec["warmup"] else []:  # every group once (compiles, autotunes), + a plain
        trainer.batch_idx = g["batch_idx"]
        trainer.step()
    sync()
    warm = time.perf_counter() - t0
    for _ in range(spec["reps"]):
        for g in groups:
            trainer.batch_idx = g["batch_idx"]
            t0 = time.perf_counter()
            trainer.step()
            sync()
            g.setdefault("times_s", []).append(round(time.perf_counter() - t0, 4))
    s_per_step = sum(g["share"] * statistics.median(g["times_s"]) for g in groups)
    return dict(s_per_kimg=round(s_per_step / spec["batch"] * 1000, 3), s_per_step=round(s_per_step, 4),
                train_warmup_s=round(warm, 2), train_peak_gb=_peak_gb(device), step_groups=groups,
                **_compile_failure(spec))


def network_worker(spec: dict) -> None:
    import tempfile

    import torch

    import train as train_bench
    device = torch.device(spec["device"])
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True                 # as both training loops
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        data = train_bench._synthetic_dataset(Path(tmp) / "noise.zip", spec["resolution"], count=spec["batch"] * 2)
        t0 = time.perf_counter()
        trainer, dataset = _build_trainer(spec, data, tmp)
        result = dict(build_s=round(time.perf_counter() - t0, 2),
                      G_params=sum(p.numel() for p in trainer.G.parameters()),
                      D_params=sum(p.numel() for p in trainer.D.parameters()))
        if hasattr(trainer, "config"):
            result["precision"] = trainer.config.network.precision
            result["compile"] = getattr(trainer.config.run, "compile", None)
        _say(f"{spec['impl']} {spec['cfg']} {spec['mode']}: inference")
        result.update(_inference(trainer, spec, sync))
        _emit(result)                                   # kept if the training steps crash or run out of time
        _say(f"{spec['impl']} {spec['cfg']} {spec['mode']}: training steps")
        _emit(_training(trainer, spec, sync))
        dataset.close()


def nvidia_build_worker(spec: dict) -> None:
    """Build (or load from torch's extension cache) one of NVIDIA's CUDA plugins, timed."""
    import importlib
    _nvidia.add_to_path(spec["nvidia"])
    from torch_utils import custom_ops
    custom_ops.verbosity = "none"
    module = importlib.import_module(f"torch_utils.ops.{spec['plugin']}")
    t0 = time.perf_counter()
    module._init()
    _emit(dict(plugin=spec["plugin"], status="ok", build_s=round(time.perf_counter() - t0, 1)))


NVIDIA_PLUGINS = ("bias_act", "upfirdn2d", "filtered_lrelu")


class _NvidiaBuild:
    """NVIDIA's three plugins built in parallel, in the background, while the op section runs."""

    def __init__(self, path: str, timeout_s: float):
        self.t0, self.results, self.done, self.threads = time.monotonic(), {}, {}, []
        for plugin in NVIDIA_PLUGINS:
            def run(plugin=plugin):
                rows, error = _spawn("nvidia-build", dict(nvidia=path, plugin=plugin), timeout_s)
                self.results[plugin] = rows[0] if rows and error is None else dict(plugin=plugin, status="error",
                                                                                   error=error)
                self.done[plugin] = time.monotonic()
            self.threads.append(threading.Thread(target=run, daemon=True))
            self.threads[-1].start()

    def wait(self) -> dict:
        t0 = time.monotonic()
        for t in self.threads:
            t.join()
        return dict(plugins=[self.results[p] for p in NVIDIA_PLUGINS], waited_s=round(time.monotonic() - t0, 1),
                    wall_s=round(max(self.done.values()) - self.t0, 1),
                    ok=all(self.results[p].get("status") == "ok" for p in NVIDIA_PLUGINS))


# ---------------------------------------------------------------------------------------------------------------
# The driver: sections in order, a time budget, results written after every section

def _skipped(reason: str, **extra) -> dict:
    return dict(extra, status="skipped", reason=reason)


class Check:
    def __init__(self, args):
        self.args, self.t0 = args, time.monotonic()
        self.cuda = _cuda_available()
        self.nvidia_build: _NvidiaBuild | None = None
        self.out = Path(args.out)
        self.result = dict(benchmark="gpu", command="python " + " ".join(sys.argv), smoke=args.smoke,
                           budget_s=args.budget_s, date=datetime.datetime.now(datetime.timezone.utc).isoformat(
                               timespec="seconds"), sections={})

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def left(self) -> float:
        return self.args.budget_s - self.elapsed()

    def log(self, text: str) -> None:
        _log(self.t0, text)

    def section(self, name: str, fn, costs_time: bool = True) -> None:
        if costs_time and self.left() <= 0:
            out = _skipped(f"time budget spent ({self.elapsed():.0f} s of --budget-s {self.args.budget_s:g})")
        else:
            self.log(f"section {name}: start ({max(self.left(), 0):.0f} s of the budget left)")
            t0 = time.monotonic()
            try:
                out = fn()
            except Exception as e:  # noqa: BLE001 - one failing section must not stop the others
                out = dict(status="error", error=f"{type(e).__name__}: {e}",
                           traceback=traceback.format_exc().splitlines()[-8:])
            out["elapsed_s"] = round(time.monotonic() - t0, 1)
        self.result["sections"][name] = out
        self.log(f"section {name}: {out['status']}" + (f" ({out.get('reason') or out.get('error')})"
                                                        if out["status"] in ("skipped", "error") else ""))
        self.write()

    def write(self) -> None:
        self.result["elapsed_s"] = round(self.elapsed(), 1)
        self.out.mkdir(parents=True, exist_ok=True)
        for name, text in (("gpu.json", json.dumps(self.result, indent=1)), ("gpu.md", markdown(self.result))):
            tmp = self.out / (name + ".tmp")
            tmp.write_text(text + "\n")
            os.replace(tmp, self.out / name)

    # ---- sections ----------------------------------------------------------------------------------------

    def environment(self) -> dict:
        return dict(status="ok", results=[environment()])

    def start_nvidia_build(self) -> None:
        a = self.args
        if a.nvidia and self.cuda and _nvidia.found(a.nvidia):
            self.log("NVIDIA's CUDA plugins: building in the background (timed on their own)")
            self.nvidia_build = _NvidiaBuild(a.nvidia, timeout_s=max(a.budget_s * 0.6, 60))

    def ops(self) -> dict:
        tiny = self.args.smoke or not self.cuda
        if not self.cuda and not self.args.smoke and os.environ.get("TRITON_INTERPRET") != "1":
            return _skipped("no CUDA (with TRITON_INTERPRET=1 or --smoke, tiny cases run on the CPU)")
        # On a CPU, fp16 has no fast path and its reference is slow: bf16 stands for the reduced precisions.
        spec = dict(device="cuda" if self.cuda else "cpu", smoke=tiny,
                    dtypes=["fp32", "fp16", "bf16"] if self.cuda else ["fp32", "bf16"],
                    timing_dtypes=["fp32", "fp16"] if self.cuda else ["fp32"])
        share = self.left() if self.args.smoke else min(self.args.budget_s * 0.25, self.left())
        self.log(f"ops: {'tiny cases on the CPU' if tiny else '256 px cases on CUDA'}, at most {share:.0f} s")
        rows, error = _spawn("ops", spec, share)
        notes = [f"parity tolerances: fp32 max abs error <= {TOL['fp32']:g} x max(1, max|ref|); fp16 and bf16 "
                 f"max abs error / max|ref| <= {TOL['fp16']:g} and {TOL['bf16']:g}, against the fp32 reference"]
        if self.nvidia_build is not None:
            notes.append("NVIDIA's plugins were compiling on the CPU meanwhile: launch-bound timings may suffer")
        if tiny:
            notes.append("tiny cases (32 px geometry, 1 image, 2 channels; on a CPU fp32 and bf16, no Triton "
                         "timing in its interpreter): a smoke run of the code, not a measurement")
        failed = [r for r in rows if r.get("pass") is False or r.get("status") == "error"]
        status = "error" if error and not rows else "partial" if error else "ok"
        return dict(status=status, results=rows, notes=notes, failed=len(failed),
                    **({"error": error} if error else {}))

    def network_specs(self) -> list[dict]:
        a = self.args
        size = SMOKE if a.smoke else FULL
        # --smoke: no warm-up, each step group timed once (its first step), one inference batch.
        runs = dict(reps=1, warmup=False, infer_warmup=0, infer_batches=1) if a.smoke else \
            dict(reps=a.reps, warmup=True, infer_warmup=2, infer_batches=5)
        specs = []
        for mode in a.modes.split(","):
            for cfg in a.cfgs.split(","):
                base = dict(cfg=cfg, mode=mode, device="cuda" if self.cuda else "cpu", **size, **runs,
                            batch_gpu=size["batch"] if a.smoke else BATCH_GPU[cfg])
                specs.append(dict(base, impl="ours"))
                if a.nvidia and mode in NVIDIA_MODES:
                    specs.append(dict(base, impl="nvidia", nvidia=a.nvidia))
        return specs

    def networks(self) -> dict:
        """Ours, and NVIDIA's right after ours for each case (their rows go to the 'nvidia' section)."""
        a = self.args
        if not self.cuda and not a.smoke:
            return _skipped("no CUDA (the 256 px networks need a GPU; --smoke runs tiny ones on the CPU)")
        nv = self.result["sections"].setdefault("nvidia", dict(status="pending", results=[]))
        if a.nvidia and not _nvidia.found(a.nvidia):
            nv.update(_skipped(f"--nvidia {a.nvidia}: not a stylegan3 checkout (no torch_utils/ops, training)"))
        specs = self.network_specs()
        if a.nvidia and nv["status"] == "skipped":
            specs = [s for s in specs if s["impl"] == "ours"]
        if self.cuda:
            est = sum(EST_CASE_S["compile" if s["mode"] == "compile" else "eager"] for s in specs) + \
                EST_CASE_S["first_extra"]
            self.log(f"networks: {len(specs)} cases, about {est} s on an H200 by estimate (eager "
                     f"~{EST_CASE_S['eager']} s, compile ~{EST_CASE_S['compile']} s, +{EST_CASE_S['first_extra']} s "
                     f"for the first's kernel compiles); {self.left():.0f} s left: each case gets at most "
                     f"min(--case-cap-s {a.case_cap_s:g}, x1.5 for compile, what is left), in this order")
        ours, notes = [], []
        for i, spec in enumerate(specs):
            row = {k: spec[k] for k in ("cfg", "mode", "impl", "resolution", "batch", "batch_gpu", "cbase", "cmax",
                                        "device")}
            sink = nv["results"] if spec["impl"] == "nvidia" else ours
            skip = self._why_skip(spec)
            if skip:
                sink.append(dict(row, status="skipped", reason=skip))
                continue
            cap = a.case_cap_s * (1.5 if spec["mode"] == "compile" else 1)
            timeout = self.left() if a.smoke else min(cap, self.left())
            self.log(f"case {i + 1}/{len(specs)}: {spec['impl']} {spec['cfg']} {spec['mode']} "
                     f"(at most {timeout:.0f} s)")
            t0 = time.monotonic()
            results, error = _spawn("network", spec, timeout)
            out = dict(row)
            for part in results:                        # the inference, then the training steps
                out.update(part)
            out["wall_s"] = round(time.monotonic() - t0, 1)
            if error:
                status = "unsupported" if "unsupported:" in error else "partial" if results else "error"
                out.update(status=status, error=error)     # partial: the inference ran, the steps did not
            elif out.get("compile_failure"):             # an eager figure must not be read as a compiled one
                out.update(status="compile fell back", error=f"ran eagerly: {out['compile_failure']}")
            else:
                out["status"] = "ok"
            sink.append(out)
            self.log(f"  -> {out['status']}: " + (f"{out.get('s_per_kimg')} s/kimg, {out.get('infer_img_per_s')} "
                                                  f"img/s, peak {out.get('train_peak_gb')} GB"
                                                  if out["status"] == "ok" else out.get("error", "")))
            self.write()
        if a.smoke:
            notes.append("smoke: tiny networks, 1 timed step per group: a run of the code, not a measurement")
        notes.append(f"sizes: {json.dumps(SMOKE if a.smoke else FULL)}, batch_gpu per cfg "
                     f"{json.dumps(BATCH_GPU) if not a.smoke else 'batch'}; modes: compile = torch.compile with "
                     "fp16 (config.run.compile); inference: G_ema at the training batch, constant noise")
        ran = [r for r in ours if r["status"] == "ok"]
        tried = [r for r in ours if r["status"] != "skipped"]
        return dict(status="ok" if ran and len(ran) == len(tried) else "partial" if ran else "error",
                    results=ours, notes=notes, **({} if ran else {"error": "no case ran"}))

    def _why_skip(self, spec: dict) -> str | None:
        a = self.args
        if self.left() < (1 if a.smoke else 20):
            return f"time budget spent ({self.elapsed():.0f} s of --budget-s {a.budget_s:g})"
        if spec["device"] == "cpu" and spec["mode"] != "fp32":
            return f"{spec['mode']} is measured on CUDA only; the CPU smoke run does fp32"
        if spec["impl"] != "nvidia" or spec["device"] != "cuda":
            return None
        if self.nvidia_build is None:
            return "NVIDIA's plugins were not built"
        if self.result.get("nvidia_build") is None:
            self.result["nvidia_build"] = self.nvidia_build.wait()
            b = self.result["nvidia_build"]
            self.log(f"NVIDIA's plugins: {'built' if b['ok'] else 'FAILED'} in {b['wall_s']} s "
                     f"(waited {b['waited_s']} s for them here)")
        build = self.result["nvidia_build"]
        return None if build["ok"] else "NVIDIA's CUDA plugins did not build: " + "; ".join(
            f"{p['plugin']}: {p.get('error')}" for p in build["plugins"] if p.get("status") != "ok")

    def nvidia(self) -> dict:
        a = self.args
        nv = self.result["sections"].get("nvidia", {})
        if not a.nvidia:
            return _skipped("no --nvidia PATH (a checkout of NVlabs/stylegan3) given")
        if nv.get("status") == "skipped":
            return nv
        if not self.cuda and not a.smoke:
            return _skipped("no CUDA")
        if self.nvidia_build is not None and self.result.get("nvidia_build") is None:
            self.result["nvidia_build"] = self.nvidia_build.wait()
        rows = nv.get("results", [])
        if not rows:
            return _skipped("the networks section ran no case of NVIDIA's code")
        side = side_by_side(self.result["sections"].get("networks", {}).get("results", []), rows)
        ran = [r for r in rows if r.get("status") == "ok"]
        return dict(status="ok" if ran else "error", results=rows, side_by_side=side,
                    build=self.result.get("nvidia_build") or dict(
                        status="skipped", reason="on the CPU NVIDIA's code runs its reference ops; no plugins"),
                    notes=["NVIDIA's code: their networks, StyleGAN2Loss, Adam and phase schedule, driven by "
                           "benchmarks/train.py's _NvidiaSteps; fp16 = their default mixed precision, fp32 = --fp32"],
                    **({} if ran else {"error": "no NVIDIA case ran"}))

    def targets(self) -> dict:
        nets = self.result["sections"].get("networks", {}).get("results", [])
        nv = self.result["sections"].get("nvidia", {}).get("results", [])
        rows = targets(nets, nv, with_docs=not self.args.smoke)
        if not rows:
            return _skipped("no network measurement to compare")
        if not any(r["nvidia"] for r in rows):
            return dict(status="skipped", reason="no NVIDIA measurement on this machine (run with --nvidia PATH): "
                        "ours is listed beside NVIDIA's configs.md figures only", results=rows)
        return dict(status="ok", results=rows)


def _ok(rows: list[dict], **match) -> list[dict]:
    return [r for r in rows if r.get("status") == "ok" and all(r.get(k) == v for k, v in match.items())]


def side_by_side(ours: list[dict], nvidia: list[dict]) -> list[dict]:
    """Ratios ours / NVIDIA for each cfg and mode both ran."""
    out = []
    for n in _ok(nvidia):
        o = _ok(ours, cfg=n["cfg"], mode=n["mode"])
        if o:
            o = o[0]
            out.append(dict(cfg=n["cfg"], mode=n["mode"], **{
                k: dict(ours=o[k], nvidia=n[k], ratio=round(o[k] / n[k], 3) if n[k] else None)
                for k in ("s_per_kimg", "infer_img_per_s", "train_peak_gb", "infer_peak_gb")}))
    return out


METRICS = (("s_per_kimg", "training s/kimg", min, "train"), ("infer_img_per_s", "inference img/s", max, "infer"),
           ("train_peak_gb", "training peak GB", min, "memory"))


def targets(ours: list[dict], nvidia: list[dict], with_docs: bool = True) -> list[dict]:
    """Per cfg and metric: our best mode, and ours in NVIDIA's mode (like for like), against NVIDIA's code in fp16
    (their default, what configs.md measured), or in fp32 where that is all there is."""
    rows = []
    for cfg in CFGS:
        mine = _ok(ours, cfg=cfg)
        if not mine:
            continue
        theirs = (_ok(nvidia, cfg=cfg, mode="fp16") or _ok(nvidia, cfg=cfg, mode="fp32") or [None])[0]
        like = theirs and (_ok(mine, mode=theirs["mode"]) or [None])[0]
        docs = NVIDIA_DOCS.get(cfg) if with_docs else None
        for key, label, best_of, target in METRICS:
            best = best_of(mine, key=lambda r: r[key])
            row = dict(cfg=cfg, metric=label, target=("<= " if target != "infer" else ">= ") + f"{TARGETS[target]}x",
                       best=dict(mode=best["mode"], value=best[key]), same_mode=like and like[key],
                       nvidia=theirs and dict(mode=theirs["mode"], value=theirs[key]))
            for name, value in (("best", best[key]), ("same_mode", like and like[key])):
                ratio = round(value / theirs[key], 3) if theirs and value and theirs[key] else None
                row[f"ratio_{name}"] = ratio
                row[f"met_{name}"] = None if ratio is None else (
                    ratio >= TARGETS[target] if target == "infer" else ratio <= TARGETS[target])
            row["nvidia_docs"] = docs and {
                "s_per_kimg": dict(a100=docs["s_per_kimg_a100"], v100=docs["s_per_kimg_v100"]),
                "train_peak_gb": dict(gpu_mem_gb=docs["gpu_mem_gb"])}.get(key)
            rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------------------------------
# Markdown

def _f(v, fmt: str = ".3g") -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "NO"
    return format(v, fmt) if isinstance(v, (int, float)) else str(v)


def _table(header: list[str], rows: list[list]) -> list[str]:
    if not rows:
        return []
    return ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)] + \
        ["| " + " | ".join(_f(c) for c in r) + " |" for r in rows]


def markdown(result: dict) -> str:
    """The tables of a result (the JSON this script writes)."""
    sec = result.get("sections", {})
    lines = [f"# GPU check ({result.get('date')}, {result.get('elapsed_s')} s)", "", f"`{result.get('command')}`"]
    for name in SECTIONS:
        s = sec.get(name)
        lines += ["", f"## {name}", ""]
        if s is None:
            lines.append("not reached")
            continue
        if s.get("status") != "ok":
            lines.append(f"**{s.get('status')}**: {s.get('reason') or s.get('error') or ''}")
            lines.append("")
        lines += [f"- {n}" for n in s.get("notes", [])]
        rows = s.get("results") or []
        if name == "environment" and rows:
            lines += [f"- {k}: {v}" for k, v in rows[0].items()]
        elif name == "ops":
            parity = [r for r in rows if r.get("kind") == "parity"]
            lines += [""] + _table(
                ["case", "dtype", "path", "status", "err y", "err grad x", "err grad b", "tol", "pass"],
                [[r["case"], r["dtype"], r["impl"], r["status"] if r["status"] == "ok" else
                  f"{r['status']}: {r.get('reason') or r.get('error')}"[:120],
                  *[(r.get("abs_err") or r.get("rel_err") or {}).get(k) for k in ("y", "grad_x", "grad_b")],
                  r.get("tol"), r.get("pass")] for r in parity])
            timing = {}
            for r in (r for r in rows if r.get("kind") == "timing"):
                timing.setdefault((r["case"], r["dtype"]), {})[r["impl"]] = r
            lines += [""] + _table(
                ["case", "dtype", "ref ms", "fast ms", "triton ms", "ref / fast", "fast / triton", "peak MB ref / "
                 "fast / triton"],
                [[c, d, *[t.get(i, {}).get("fwd_bwd_ms") for i in ("ref", "fast", "triton")],
                  _ratio(t, "ref", "fast"), _ratio(t, "fast", "triton"),
                  " / ".join(_f(t.get(i, {}).get("peak_mb"), ".0f") for i in ("ref", "fast", "triton"))]
                 for (c, d), t in timing.items()])
        elif name in ("networks", "nvidia"):
            if name == "nvidia" and s.get("build"):
                b = s["build"]
                if b.get("status") == "skipped":
                    lines.append(f"- plugin build: skipped ({b['reason']})")
                else:
                    lines.append(f"- plugin build: {'ok' if b.get('ok') else 'FAILED'}, {b.get('wall_s')} s wall "
                                 f"(in the background; {b.get('waited_s')} s waited for), per plugin: " + ", ".join(
                                     f"{p['plugin']} {p.get('build_s', p.get('error'))}" for p in b["plugins"]))
            lines += [""] + _table(
                ["cfg", "mode", "code", "status", "infer img/s", "infer peak GB", "train s/kimg", "train peak GB",
                 "warm-up s", "case wall s"],
                [[r["cfg"], r["mode"], r["impl"], r["status"] if r["status"] == "ok" else
                  f"{r['status']}: {r.get('reason') or r.get('error')}"[:120], r.get("infer_img_per_s"),
                  r.get("infer_peak_gb"), r.get("s_per_kimg"), r.get("train_peak_gb"), r.get("train_warmup_s"),
                  r.get("wall_s")] for r in rows])
            if s.get("side_by_side"):
                lines += ["", "ours / NVIDIA (ratio):", ""] + _table(
                    ["cfg", "mode", "train s/kimg", "infer img/s", "train peak GB", "infer peak GB"],
                    [[r["cfg"], r["mode"], *[f"{_f(r[k]['ours'])} / {_f(r[k]['nvidia'])} ({_f(r[k]['ratio'])}x)"
                                             for k in ("s_per_kimg", "infer_img_per_s", "train_peak_gb",
                                                       "infer_peak_gb")]] for r in s["side_by_side"]])
        elif name == "targets" and rows:
            nv = lambda r: r["nvidia"] and f"{_f(r['nvidia']['value'])} ({r['nvidia']['mode']})"  # noqa: E731
            lines += [""] + _table(
                ["cfg", "metric", "ours best (mode)", "ours in NVIDIA's mode", "NVIDIA (mode), same GPU",
                 "best / NVIDIA", "same mode / NVIDIA", "target", "met (best)", "met (same mode)",
                 "NVIDIA configs.md (A100)"],
                [[r["cfg"], r["metric"], f"{_f(r['best']['value'])} ({r['best']['mode']})", r["same_mode"], nv(r),
                  r["ratio_best"], r["ratio_same_mode"], r["target"], r["met_best"], r["met_same_mode"],
                  _docs(r["nvidia_docs"])] for r in rows])
    return "\n".join(lines)


def _ratio(t: dict, a: str, b: str):
    x, y = t.get(a, {}).get("fwd_bwd_ms"), t.get(b, {}).get("fwd_bwd_ms")
    return round(x / y, 2) if x and y else None


def _docs(d: dict | None) -> str:
    if not d:
        return "–"
    if "a100" in d:
        return f"{d['a100']} s/kimg A100, {d['v100']} V100"
    return f"{d['gpu_mem_gb']} GB (max observed)"


# ---------------------------------------------------------------------------------------------------------------

WORKERS = {"ops": ops_worker, "network": network_worker, "nvidia-build": nvidia_build_worker}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=os.environ.get("OUT") or "gpu-results", help="folder for gpu.json and gpu.md")
    p.add_argument("--nvidia", help="NVIDIA's stylegan3 checkout, for their code side by side")
    p.add_argument("--budget-s", type=float, default=450, help="seconds for everything; what is left is skipped")
    p.add_argument("--smoke", action="store_true", help="tiny sizes on whatever device there is: a smoke run")
    p.add_argument("--cfgs", default=",".join(CFGS), help="comma-separated: " + ", ".join(CFGS))
    p.add_argument("--modes", default=",".join(MODES), help="comma-separated, in the order they run: "
                   + ", ".join(MODES))
    p.add_argument("--sections", default=",".join(SECTIONS), help="comma-separated subset of " + ", ".join(SECTIONS))
    p.add_argument("--reps", type=int, default=2, help="timed steps of each step group (the median is used)")
    p.add_argument("--case-cap-s", type=float, default=150, help="seconds one network case may take (compile: 1.5x)")
    p.add_argument("--table", metavar="JSON", help="print the Markdown of a gpu.json, and stop")
    p.add_argument("--worker", nargs=2, metavar=("NAME", "SPEC"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        WORKERS[args.worker[0]](json.loads(args.worker[1]))
        return
    if args.table:
        print(markdown(json.loads(Path(args.table).read_text())))
        return
    check = Check(args)
    atexit.register(_stop_workers)                      # a worker in its own session would outlive us otherwise
    wanted = set(args.sections.split(","))
    check.log(f"GPU check: budget {args.budget_s:g} s, results to {check.out}/gpu.json and gpu.md"
              + (" (smoke)" if args.smoke else ""))
    for name, fn, costs_time in (("environment", check.environment, False), ("ops", check.ops, True),
                                 ("networks", check.networks, True), ("nvidia", check.nvidia, False),
                                 ("targets", check.targets, False)):
        if name == "ops":
            check.start_nvidia_build()
        if name in wanted:
            check.section(name, fn, costs_time)
        else:
            check.result["sections"][name] = _skipped("not in --sections")
    check.write()
    print(json.dumps(check.result, indent=1))
    print(markdown(check.result))
    check.log(f"done; written to {check.out}")


if __name__ == "__main__":
    main()
