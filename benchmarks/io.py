"""Load time of a 1024 px StyleGAN3 network snapshot: our importer vs NVIDIA's own loader, side by side.

    python benchmarks/io.py                       # NVIDIA's loader too if its checkout is at $NVIDIA_STYLEGAN3
    python benchmarks/io.py --repeats 5 --nvidia-ref ~/src/stylegan3

A synthetic snapshot with the structure of NVIDIA's network-snapshot-*.pkl (G, D, G_ema, augment_pipe,
training_set_kwargs; stylegan3-t at 1024x1024, about 295 MB) is written to a temporary folder. With an NVIDIA
checkout it is made by NVIDIA's code (so NVIDIA's loader, which executes the embedded source, can read it), else by
our test builder from our own modules. Each load runs in a fresh process, the two loaders alternating, after one
untimed read that puts the file in the page cache; only the load call is timed. Prints JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# NVIDIA's dnnlib imports requests and its conv2d_gradfix imports pkg_resources; neither is needed to build or load
# networks on CPU, so the NVIDIA-side scripts give them empty stand-ins.
_NVIDIA_PRELUDE = """
import sys, types
sys.path.insert(0, {ref!r})
sys.modules.setdefault('requests', types.ModuleType('requests'))
_pr = types.ModuleType('pkg_resources')
from packaging.version import parse as _parse
_pr.parse_version = _parse
sys.modules.setdefault('pkg_resources', _pr)
"""

_MAKE_WITH_NVIDIA = _NVIDIA_PRELUDE + """
import copy, pickle, torch, dnnlib
torch.manual_seed(0)
G = dnnlib.util.construct_class_by_name(class_name='training.networks_stylegan3.Generator', z_dim=512, w_dim=512,
    c_dim=0, img_resolution=1024, img_channels=3, mapping_kwargs=dnnlib.EasyDict(num_layers=2), channel_base=32768,
    channel_max=512, magnitude_ema_beta=0.5 ** (32 / 20000), num_fp16_res=4, conv_clamp=256)
D = dnnlib.util.construct_class_by_name(class_name='training.networks_stylegan2.Discriminator', c_dim=0,
    img_resolution=1024, img_channels=3, channel_base=32768, channel_max=512, num_fp16_res=4, conv_clamp=256,
    block_kwargs=dnnlib.EasyDict(freeze_layers=0), mapping_kwargs=dnnlib.EasyDict(),
    epilogue_kwargs=dnnlib.EasyDict(mbstd_group_size=4))
pipe = dnnlib.util.construct_class_by_name(class_name='training.augment.AugmentPipe', xflip=1, rotate90=1, xint=1,
    scale=1, rotate=1, aniso=1, xfrac=1, brightness=1, contrast=1, lumaflip=1, hue=1, saturation=1)
data = dict(G=G, D=D, G_ema=copy.deepcopy(G), augment_pipe=pipe, training_set_kwargs=dict(resolution=1024))
for key, value in data.items():
    if isinstance(value, torch.nn.Module):
        data[key] = copy.deepcopy(value).eval().requires_grad_(False).cpu()
with open({path!r}, 'wb') as f:
    pickle.dump(data, f)
"""

_MAKE_WITH_OURS = """
import sys
sys.path.insert(0, {tests!r})
import nvidia_pickle_builder as nb
G_kwargs = dict(z_dim=512, w_dim=512, c_dim=0, img_resolution=1024, img_channels=3, channel_base=32768,
                channel_max=512, mapping_kwargs=dict(num_layers=2), magnitude_ema_beta=0.5 ** (32 / 20000),
                num_fp16_res=4, conv_clamp=256)
D_kwargs = dict(c_dim=0, img_resolution=1024, img_channels=3, channel_base=32768, channel_max=512, num_fp16_res=4,
                conv_clamp=256, block_kwargs=dict(freeze_layers=0), mapping_kwargs=dict(),
                epilogue_kwargs=dict(mbstd_group_size=4))
nb.write_snapshot({path!r}, G_kwargs=G_kwargs, D_kwargs=D_kwargs, family='stylegan3')
"""

_LOAD = {
    "nvidia": _NVIDIA_PRELUDE + """
import time, legacy
t = time.perf_counter()
with open({path!r}, 'rb') as f:
    G = legacy.load_network_pkl(f)['G_ema']
print(time.perf_counter() - t)
""",
    "ours_g_ema": """
import time
from stylegan.io.nvidia_pickle import load_nvidia_network
t = time.perf_counter()
G = load_nvidia_network({path!r}, 'g_ema')
print(time.perf_counter() - t)
""",
    "ours_snapshot": """
import time
from stylegan.io.nvidia_pickle import load_nvidia_snapshot
t = time.perf_counter()
snap = load_nvidia_snapshot({path!r})
print(time.perf_counter() - t)
""",
}


def _run(code: str) -> str:
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"), PYTHONWARNINGS="ignore")
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env,
                         cwd=ROOT)
    if out.returncode != 0:
        raise SystemExit(f"benchmark step failed:\n{out.stderr[-3000:]}")
    return out.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nvidia-ref", default=os.environ.get("NVIDIA_STYLEGAN3", "/work/ref/stylegan3"),
                        help="checkout of NVlabs/stylegan3; skipped if absent")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    have_nvidia = (Path(args.nvidia_ref) / "legacy.py").is_file()

    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "network-snapshot-1024.pkl")
        if have_nvidia:
            _run(_MAKE_WITH_NVIDIA.format(ref=args.nvidia_ref, path=path))
        else:
            _run(_MAKE_WITH_OURS.format(tests=str(ROOT / "tests"), path=path))
        size_mb = os.path.getsize(path) / 2**20
        Path(path).read_bytes()                                   # page cache, so no run pays for the disk
        loaders = (["nvidia"] if have_nvidia else []) + ["ours_g_ema", "ours_snapshot"]
        times: dict[str, list[float]] = {name: [] for name in loaders}
        for _ in range(args.repeats):
            for name in loaders:
                times[name].append(float(_run(_LOAD[name].format(ref=args.nvidia_ref, path=path))))

    import torch
    result = {
        "benchmark": "load a 1024x1024 StyleGAN3-T network snapshot (G, D, G_ema) on CPU",
        "file_mb": round(size_mb, 1),
        "made_by": "NVIDIA's code" if have_nvidia else "our test builder",
        "repeats": args.repeats,
        "torch": torch.__version__,
        "cpu_threads": int(os.environ.get("OMP_NUM_THREADS", "2")),
        "median_s": {name: round(statistics.median(v), 3) for name, v in times.items()},
        "all_s": {name: [round(x, 3) for x in v] for name, v in times.items()},
    }
    if have_nvidia:
        med = result["median_s"]
        result["nvidia_over_ours"] = {k: round(med["nvidia"] / med[k], 2) for k in ("ours_g_ema", "ours_snapshot")}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
