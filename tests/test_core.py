import os
import subprocess
import sys

import pytest
import torch

from stylegan.core import UsageError, assert_shape, atomic_write, derive_seed, parse_range, resolve_device


def test_parse_range_lists_and_ranges():
    assert parse_range("0-3,7") == [0, 1, 2, 3, 7]
    assert parse_range("5") == [5]
    with pytest.raises(UsageError, match="--seeds"):
        parse_range("1-x")
    with pytest.raises(UsageError, match="backwards"):
        parse_range("5-2")
    with pytest.raises(UsageError):
        parse_range("")


def test_assert_shape():
    assert_shape(torch.zeros(2, 3), [2, None])
    with pytest.raises(AssertionError):
        assert_shape(torch.zeros(2, 3), [2, 4])
    with pytest.raises(AssertionError):
        assert_shape(torch.zeros(2, 3), [2])


def test_derive_seed_differs_by_rank_and_nimg():
    seeds = {derive_seed(0, r, n) for r in range(4) for n in (0, 32)}
    assert len(seeds) == 8
    assert derive_seed(1, 2, 3) == derive_seed(1, 2, 3)


def test_resolve_device():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(UsageError, match="--device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="no CUDA"):
            resolve_device("cuda")


def test_atomic_write_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "out.bin"
    atomic_write_ok = tmp_path / "ok.bin"
    with atomic_write(atomic_write_ok) as f:
        f.write(b"abc")
    assert atomic_write_ok.read_bytes() == b"abc"
    with pytest.raises(RuntimeError):
        with atomic_write(target) as f:
            f.write(b"half")
            raise RuntimeError("boom")
    assert not target.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.bin"]


def test_cli_help_lists_commands_and_runs_as_module():
    out = subprocess.run([sys.executable, "-m", "stylegan", "--help"], capture_output=True, text=True, check=True)
    assert "Usage:" in out.stdout


def test_atomic_files_get_ordinary_permissions(tmp_path):
    from stylegan.core.files import atomic_path
    old = os.umask(0o022)
    try:
        with atomic_write(tmp_path / "a.bin") as f:
            f.write(b"x")
        with atomic_path(tmp_path / "b.png") as tmp:
            tmp.write_bytes(b"y")
    finally:
        os.umask(old)
    assert (tmp_path / "a.bin").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "b.png").stat().st_mode & 0o777 == 0o644


def test_busy_machine_gets_the_passive_openmp_policy_and_a_note(monkeypatch):
    import stylegan.cli as cli
    assert cli.busy_machine_note(1.5, 2, {}) is None                                  # idle: OpenMP's default
    assert cli.busy_machine_note(7.9, 2, {"OMP_WAIT_POLICY": "ACTIVE"}) is None       # the user's own choice wins
    note = cli.busy_machine_note(7.9, 2, {})
    assert "load 7.9 on 2 cores" in note and "OMP_WAIT_POLICY=PASSIVE" in note
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.setattr(cli.os, "getloadavg", lambda: (9.0, 5.0, 3.0))
    monkeypatch.setattr(cli.os, "cpu_count", lambda: 2)
    assert cli._adapt_to_busy_machine() is not None and cli.os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
