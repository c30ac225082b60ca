"""The visualizer under load: render latency per request, and 20 concurrent requests with and without stale dropping.

    python benchmarks/viz.py                                  # stylegan2 + stylegan3-t, 64 and 256 px, CPU (+ CUDA)
    python benchmarks/viz.py --cfg stylegan2 --resolutions 64 --cbase 32768 --cmax 512 --requests 5

A real server (uvicorn on a free 127.0.0.1 port) serves randomly initialised networks; an HTTP client measures
    latency      sequential requests, distinct seeds: the round trip and the server's own X-Render-Ms (median)
    clients      20 requests at once from 20 different clients (nothing to drop): all must be rendered
    one client   20 requests at once from one client with increasing seq (a dragged slider): all but the newest may
                 be answered 409 'superseded' instead of rendered
A failure is a 5xx answer or a connection error; 409 'superseded' is the defined answer to a stale request, not a
failure. The script exits 1 if any request failed. Prints JSON.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import platform
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
import torch

import stylegan
from stylegan.viz.server import ServeConfig, background_server


def build_networks(folder: Path, cfgs: list[str], resolutions: list[int], cbase: int, cmax: int) -> list[dict]:
    nets = []
    for cfg in cfgs:
        for res in resolutions:
            torch.manual_seed(0)
            G = stylegan.build_generator(cfg, resolution=res, cbase=cbase, cmax=cmax)
            name = f"{cfg}-{res}.safetensors"
            stylegan.save_network(G, folder / name)
            nets.append({"cfg": cfg, "resolution": res, "network": name,
                         "parameters": sum(p.numel() for p in G.parameters())})
    return nets


def post_render(http: httpx.Client, body: dict) -> dict:
    start = time.perf_counter()
    try:
        r = http.post("/api/render", json=body)
    except httpx.HTTPError as exc:
        return {"status": "connection error", "error": str(exc), "ms": (time.perf_counter() - start) * 1000}
    return {"status": r.status_code, "ms": (time.perf_counter() - start) * 1000,
            "render_ms": float(r.headers.get("x-render-ms", "nan")) if r.status_code == 200 else None}


def jobs_run(http: httpx.Client) -> int:
    return http.get("/api/health").json()["jobs"]["run"]


def burst(base: str, bodies: list[dict]) -> dict:
    """Send every body at the same moment, each from its own thread and connection; wait for all answers. The wall
    time runs from the moment all threads are released to the last answer."""
    start_line = threading.Barrier(len(bodies))

    def one(body):
        with httpx.Client(base_url=base, timeout=1800) as http:
            start_line.wait()
            released = time.perf_counter()
            answer = post_render(http, body)
            return answer, released, time.perf_counter()

    with httpx.Client(base_url=base, timeout=60) as http:
        before = jobs_run(http)
        with concurrent.futures.ThreadPoolExecutor(len(bodies)) as pool:
            results = list(pool.map(one, bodies))
        rendered = jobs_run(http) - before
    answers = [a for a, _, _ in results]
    wall = max(end for _, _, end in results) - min(released for _, released, _ in results)
    statuses = [a["status"] for a in answers]
    failed = [s for s in statuses if not (isinstance(s, int) and s < 500)]
    return {"requests": len(bodies), "ok": statuses.count(200), "superseded": statuses.count(409),
            "failed": len(failed), "other": len(statuses) - statuses.count(200) - statuses.count(409) - len(failed),
            "rendered": rendered, "wall_s": round(wall, 2), "answers_per_s": round(len(bodies) / wall, 2),
            "renders_per_s": round(rendered / wall, 2),
            "slowest_answer_ms": round(max(a["ms"] for a in answers), 1)}


def measure(base: str, net: dict, requests: int, concurrency: int) -> dict:
    out = dict(net)
    with httpx.Client(base_url=base, timeout=1800) as http:
        info = http.post("/api/network", json={"network": net["network"]})
        info.raise_for_status()
        out["load_and_layer_list_ms"] = round(info.json()["load_ms"], 1)
        post_render(http, {"network": net["network"], "seed": 0})                      # warm-up
        runs = [post_render(http, {"network": net["network"], "seed": 1 + i}) for i in range(requests)]
        fft = [post_render(http, {"network": net["network"], "seed": 100 + i, "view": "fft"}) for i in range(2)]
    if any(r["status"] != 200 for r in runs + fft):
        raise SystemExit(f"sequential requests failed: {runs + fft}")
    out["latency_ms"] = {"round_trip_median": round(statistics.median(r["ms"] for r in runs), 1),
                         "render_median": round(statistics.median(r["render_ms"] for r in runs), 1),
                         "round_trip_min": round(min(r["ms"] for r in runs), 1),
                         "fft_view_round_trip_median": round(statistics.median(r["ms"] for r in fft), 1),
                         "requests": requests}
    # Fresh client ids: the server remembers each client's newest seq, and would drop a reused id's seq 1.
    tag = uuid.uuid4().hex[:12]
    distinct = [{"network": net["network"], "seed": 1000 + i, "client": f"{tag}-{i}", "seq": 1}
                for i in range(concurrency)]
    out[f"{concurrency}_clients_at_once"] = burst(base, distinct)
    dragged = [{"network": net["network"], "seed": 2000 + i, "client": f"{tag}-slider", "seq": i + 1}
               for i in range(concurrency)]
    out[f"one_client_{concurrency}_at_once"] = burst(base, dragged)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cfg", default="stylegan2,stylegan3-t", help="presets, comma-separated")
    parser.add_argument("--resolutions", default="64,256")
    parser.add_argument("--cbase", type=int, default=8192, help="--cbase of the networks (train.py default 32768)")
    parser.add_argument("--cmax", type=int, default=128, help="--cmax of the networks (train.py default 512)")
    parser.add_argument("--requests", type=int, default=5, help="sequential requests for the latency")
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--devices", default=None, help="cpu,cuda (default: cpu, plus cuda when present)")
    args = parser.parse_args()
    devices = args.devices.split(",") if args.devices else ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    report = {"torch": torch.__version__, "threads": torch.get_num_threads(), "cpu": platform.processor() or
              platform.machine(), "cpu_count": os.cpu_count(), "load_average": os.getloadavg()[0],
              "cbase": args.cbase, "cmax": args.cmax, "results": []}
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        nets = build_networks(Path(tmp), args.cfg.split(","), [int(r) for r in args.resolutions.split(",")],
                              args.cbase, args.cmax)
        for device in devices:
            if device == "cuda":
                report["gpu"] = torch.cuda.get_device_name(0)
            with background_server(ServeConfig(models_dir=tmp, device=device)) as base:
                for net in nets:
                    result = {"device": device, **measure(base, net, args.requests, args.concurrency)}
                    failures += sum(result[k]["failed"] for k in result if k.endswith("_at_once"))
                    report["results"].append(result)
                    print(json.dumps(result), flush=True)
    report["load_average_after"] = os.getloadavg()[0]
    report["failed_requests"] = failures
    print(json.dumps(report, indent=2))
    if failures:
        raise SystemExit(f"{failures} requests failed (5xx or connection error)")


if __name__ == "__main__":
    main()
