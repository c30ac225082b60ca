"""benchmarks/gpu.py, the prepared GPU check, in its --smoke mode on the CPU: every section is there, each with
results or the reason it was skipped, and the Markdown is written."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("environment", "ops", "networks", "nvidia", "targets")


@pytest.mark.slow
def test_gpu_check_smoke_writes_every_section(tmp_path):
    # TRITON_INTERPRET=0: the kernels' parity in Triton's interpreter is their own tests' job, and slow; here the
    # triton path must be recorded as not running on the CPU, with the reason.
    env = dict(os.environ, TRITON_INTERPRET="0", CUDA_VISIBLE_DEVICES="")
    env.pop("OUT", None)
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--smoke", "--out", str(tmp_path)],
                          capture_output=True, text=True, env=env, timeout=560)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "gpu.json").read_text())
    assert result["smoke"] is True
    for name in SECTIONS:
        section = result["sections"][name]
        assert section["status"] in ("ok", "partial", "skipped"), (name, section)
        assert section.get("results") or section.get("reason"), (name, section)

    env_row = result["sections"]["environment"]["results"][0]
    assert env_row["torch"] and "gpu" in env_row

    ops = result["sections"]["ops"]["results"]
    assert {r["op"] for r in ops} == {"filtered_lrelu", "upfirdn2d", "bias_act"}
    parity = [r for r in ops if r["kind"] == "parity"]
    fast_fp32 = [r for r in parity if r["impl"] == "fast" and r["dtype"] == "fp32"]
    assert fast_fp32 and all(r["status"] == "ok" and r["pass"] for r in fast_fp32), fast_fp32
    triton = [r for r in parity if r["impl"] == "triton"]
    assert triton and all(r["status"] == "unsupported" and r["reason"] for r in triton), triton
    assert any(r["kind"] == "timing" and r["status"] == "ok" and r["fwd_bwd_ms"] > 0 for r in ops)

    nets = result["sections"]["networks"]["results"]
    ran = [r for r in nets if r["status"] == "ok"]
    assert {r["cfg"] for r in ran} == {"stylegan2", "stylegan3-t", "stylegan3-r"}
    for r in ran:
        assert r["s_per_kimg"] > 0 and r["infer_img_per_s"] > 0 and r["train_peak_gb"] > 0
        assert abs(sum(g["share"] for g in r["step_groups"]) - 1) < 1e-9
    sg2 = next(r for r in ran if r["cfg"] == "stylegan2")
    assert len(sg2["step_groups"]) == 3                  # plain, +Greg (every 4th), +Greg+Dreg (every 16th)
    assert all(r["reason"] for r in nets if r["status"] == "skipped")

    assert "no --nvidia" in result["sections"]["nvidia"]["reason"]
    targets = result["sections"]["targets"]
    assert targets["status"] == "skipped" and targets["results"]

    md = (tmp_path / "gpu.md").read_text()
    for name in SECTIONS:
        assert f"## {name}" in md
    assert "| stylegan3-t | fp32 | ours | ok |" in md
