"""Hostile model files: a few bytes that claim something huge (storages of 8 GB or 1 TB, a negative size, a config of
terabytes, lengths past the end of the file), nest deeper than Python's stack, stop after one byte, or multiply a
small object graph by shared references ("billion laughs"). Each one, given to every entry point that reads model
files (`info`, `convert`, `generate --network`, `train --resume`, the metrics' Inception weights), must end in one
line on stderr that names the file, exit code 2, no traceback, and a peak memory far below what the file claims.

The corpus is written here, opcode by opcode where pickle itself would refuse to write it."""
from __future__ import annotations

import collections
import io
import json
import pickle
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import nvidia_pickle_builder as nb
from stylegan.cli import main
from stylegan.core.errors import StyleGANError
from stylegan.io.limits import MAX_DEPTH, FileLimitError
from stylegan.metrics import weights
from test_train_common import write_dataset

GB = 1 << 30


# --- the corpus ------------------------------------------------------------------------------------------------------

class _Reduce:
    """Pickles as fn(*args), with an optional BUILD state: how a file spells any call."""

    def __init__(self, fn, args, state=None):
        self.fn, self.args, self.state = fn, args, state

    def __reduce__(self):
        return (self.fn, self.args) if self.state is None else (self.fn, self.args, self.state)


def dump_claiming(obj, numel: int, buf: io.BytesIO) -> None:
    """Pickle `obj` with each string 'the storage' in it written as the persistent id of a FloatStorage that claims
    `numel` elements, as torch writes storages."""

    class Pickler(pickle.Pickler):
        def persistent_id(self, value):
            return ("storage", torch.FloatStorage, "0", "cpu", numel) if value == "the storage" else None

    Pickler(buf, protocol=2).dump(obj)


def legacy_storage(numel: int, count: int | None = None, data: bytes = bytes(12)) -> bytes:
    """What torch.storage._load_from_bytes is given: torch's legacy save of one FloatStorage, whose persistent id
    claims `numel` elements and whose data block claims `count`, followed by `data`."""
    buf = io.BytesIO()
    sys_info = {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}}
    for value in (0x1950A86A20F9469CFC6C, 1001, sys_info):
        pickle.dump(value, buf, protocol=2)
    dump_claiming("the storage", numel, buf)
    pickle.dump(["0"], buf, protocol=2)
    buf.write(struct.pack("<q", numel if count is None else count) + data)
    return buf.getvalue()


def tensor(storage_bytes: bytes, size: tuple = (3,), stride: tuple = (1,)) -> _Reduce:
    storage = _Reduce(torch.storage._load_from_bytes, (storage_bytes,))
    return _Reduce(torch._utils._rebuild_tensor_v2, (storage, 0, size, stride, False, collections.OrderedDict()))


def nested_dicts(depth: int) -> bytes:
    """{'k': {'k': ... {}}} `depth` deep, as opcodes (pickle.dumps would recurse too deep to write it)."""
    return (b"}\x8c\x01k" * depth) + b"}" + b"s" * depth


def billion_laughs(levels: int = 30, fanout: int = 10) -> bytes:
    """A list of `fanout` references to a list of `fanout` references to ... : under 1 KB, 10**30 objects when
    walked."""
    obj: list = ["lol"]
    for _ in range(levels):
        obj = [obj] * fanout
    return pickle.dumps(obj, protocol=4)


def forged_snapshot(**G_forged) -> bytes:
    """A tiny NVIDIA snapshot whose generator records constructor arguments `G_forged` over its real ones."""
    G = nb.build_generator(nb.TINY_G, "stylegan2")
    snap = nb.persistent(G, "generator", {**nb.TINY_G, **G_forged})
    buf = io.BytesIO()
    with nb._nvidia_globals():
        pickle.dump({"G": snap, "G_ema": snap, "D": None}, buf, protocol=4)
    return buf.getvalue()


def forged_tf_pickle(**forged) -> bytes:
    """A TF-era (G, D, Gs) pickle whose networks record static kwargs `forged` over their real ones."""
    from test_io_pickle_tf import _static_pair
    G_torch, D_torch, G_static, D_static = _static_pair()
    tf_G = nb.tf_generator(nb.build_generator(G_torch, "stylegan2"), {**G_static, **forged}, ada=False)
    tf_D = nb.tf_discriminator(nb.build_discriminator(D_torch), D_static, ada=False)
    buf = io.BytesIO()
    with nb._nvidia_globals():
        pickle.dump((tf_G, tf_D, tf_G), buf, protocol=2)
    return buf.getvalue()


def safetensors_bytes(header: dict | bytes, data: bytes = b"") -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


def network_metadata(**G_forged) -> dict:
    config = stylegan_config()
    config.update(G_forged)
    return {"format": "stylegan-network", "format_version": "1", "modules": '["G"]', "extra": "{}",
            "config.G": json.dumps(config)}


def stylegan_config() -> dict:
    from stylegan.networks.presets import generator_config
    return generator_config("stylegan2", 8, z_dim=8, w_dim=8, cbase=64, cmax=8).to_dict()


def torchscript_archive(numel: int, data: bytes = bytes(8), data_pkl: bytes | None = None,
                        compression: int = zipfile.ZIP_STORED) -> bytes:
    """A TorchScript-style zip whose data.pkl views storage '0' as a tensor; the storage's persistent id claims
    `numel` float32 elements while data/0 holds `data`, written with `compression`."""
    if data_pkl is None:
        buf = io.BytesIO()
        view = _Reduce(torch._utils._rebuild_tensor_v2, ("the storage", 0, (2,), (1,), False, None))
        dump_claiming({"layers": {"conv": {"weight": view}}}, numel, buf)
        data_pkl = buf.getvalue()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("archive/data.pkl", data_pkl)
        zf.writestr("archive/data/0", data, compress_type=compression)
        zf.writestr("archive/version", "3\n")
    return out.getvalue()


PROTO4 = b"\x80\x04"

PICKLES = {
    # kind: (bytes of the file, what the one line must say)
    "storage of 8 GB": (pickle.dumps({"G_ema": tensor(legacy_storage(2 * GB))}, protocol=4), "claims"),
    "storage of 1 TB": (pickle.dumps({"G_ema": tensor(legacy_storage(256 * GB))}, protocol=4), "claims"),
    "negative storage size": (pickle.dumps({"G_ema": tensor(legacy_storage(-1))}, protocol=4), "claims -1"),
    "tensor past its storage": (pickle.dumps({"G_ema": tensor(legacy_storage(3), size=(10 ** 12,))}, protocol=4),
                                "reaches past the end of its storage"),
    "tensor of 10**12 over 3 elements": (pickle.dumps({"G_ema": tensor(legacy_storage(3), (10 ** 12,), (0,))},
                                                      protocol=4), "claims more elements than its storage"),
    "BINBYTES8 of 1 TB": (PROTO4 + b"\x8e" + struct.pack("<Q", 1 << 40) + b"abc.", "claims 1,099,511,627,776 bytes"),
    "FRAME of 1 TB": (PROTO4 + b"\x95" + struct.pack("<Q", 1 << 40) + b"N.", "claims a frame"),
    "deeply nested kwargs": (PROTO4 + b"}\x8c\x05G_ema" + nested_dicts(10_000) + b"s.", "more than"),
    "cut to its first byte": (b"\x80", "cut short"),
    "billion laughs": (billion_laughs(), "billion laughs"),
    "object array of 10**10": (pickle.dumps({"G_ema": _Reduce(
        np.zeros(1).__reduce__()[0], (np.ndarray, (0,), b"b"), (1, (10 ** 10,), np.dtype(object), False, []))},
        protocol=4), "claims more elements"),
    "config of 4 TB": (forged_snapshot(z_dim=1 << 20, w_dim=1 << 20), "more than"),
    "config beyond any network": (forged_snapshot(channel_base=1 << 40, channel_max=1 << 40), "beyond"),
    "TensorFlow config of 4 TB": (forged_tf_pickle(latent_size=1 << 20, dlatent_size=1 << 20), "more than"),
}

SAFETENSORS = {
    "header length past the end": (struct.pack("<Q", 1 << 40) + b'{"a": 1}', "cut short"),
    "deeply nested header": (safetensors_bytes(b'{"a":' + b"[" * 10_000 + b"]" * 10_000 + b"}"),
                             "header cannot be read"),
    "deeply nested config": (safetensors_bytes({"__metadata__": {**network_metadata(), "config.G": "[" * 10_000}}),
                             "nests deeper"),
    "tensor of 64 TB": (safetensors_bytes({"G.w": {"dtype": "F32", "shape": [1 << 22, 1 << 22],
                                                   "data_offsets": [0, 4]}}, bytes(4)), "header cannot be read"),
    "config of 70 TB": (safetensors_bytes({"__metadata__": network_metadata(z_dim=1 << 20, w_dim=1 << 20)}),
                        "more than"),
}

TORCHSCRIPT = {
    "storage of 1 TB in the archive": (pickle.dumps({"archive": torchscript_archive(256 * GB)}, protocol=4), "claims"),
    # TorchScript never compresses; this storage inflates from 16 KB to 16 MB.
    "zip entry that inflates": (pickle.dumps({"archive": torchscript_archive(
        4 << 20, bytes(16 << 20), compression=zipfile.ZIP_DEFLATED)}, protocol=4), "claims"),
    "billion laughs in data.pkl": (pickle.dumps({"archive": torchscript_archive(2, data_pkl=billion_laughs())},
                                                protocol=4), "billion laughs"),
    "BINBYTES8 in data.pkl": (pickle.dumps({"archive": torchscript_archive(
        2, data_pkl=PROTO4 + b"\x8e" + struct.pack("<Q", 1 << 40) + b"abc.")}, protocol=4), "claims"),
    # The detector's reader builds no numpy arrays (placeholders stand in), so that claim is never acted on.
    **{f"outer: {kind}": (blob, "not NVIDIA's Inception detector" if kind.startswith("object array") else reason)
       for kind, (blob, reason) in PICKLES.items() if "config" not in kind},
}


def write(tmp_path: Path, kind: str, blob: bytes, suffix: str) -> Path:
    path = tmp_path / (kind.replace(" ", "-").replace("*", "").replace(":", "") + suffix)
    path.write_bytes(blob)
    return path


# --- the entry points ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("hostile-data") / "data.zip", count=4, resolution=8)


def entry_points(path: Path, out: Path, dataset: Path) -> dict[str, list[str]]:
    return {
        "info": ["info", str(path)],
        "convert": ["convert", str(path), str(out / "converted.safetensors")],
        "generate": ["generate", "--network", str(path), "--seeds", "0", "--outdir", str(out / "images"),
                     "--device", "cpu"],
        "train --resume": ["train", "--outdir", str(out / "runs"), "--cfg", "stylegan2", "--data", str(dataset),
                           "--batch", "4", "--gamma", "1", "--resume", str(path), "--dry-run", "--device", "cpu"],
    }


def one_line_exit_2(args: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("note: this machine is busy")]
    assert len(lines) == 1, err
    assert exit_info.value.code == 2, err
    return lines[0]


@pytest.mark.parametrize("kind", list(PICKLES) + list(SAFETENSORS))
def test_every_entry_point_refuses_in_one_line(tmp_path, kind, dataset, capsys):
    blob, reason = PICKLES[kind] if kind in PICKLES else SAFETENSORS[kind]
    path = write(tmp_path, kind, blob, ".pkl" if kind in PICKLES else ".safetensors")
    for entry, args in entry_points(path, tmp_path, dataset).items():
        line = one_line_exit_2(args, capsys)
        assert path.name in line and reason in line, f"{entry}: {line}"
    assert not (tmp_path / "converted.safetensors").exists() and not (tmp_path / "images").exists()


@pytest.mark.parametrize("kind", list(TORCHSCRIPT))
def test_metrics_weights_refuse_in_one_line(tmp_path, kind):
    blob, reason = TORCHSCRIPT[kind]
    (tmp_path / "inception-2015-12-05.pkl").write_bytes(blob)
    with pytest.raises(StyleGANError) as info:
        weights.load_inception(tmp_path, download=False)
    message = str(info.value)
    assert "\n" not in message and "inception-2015-12-05.pkl" in message and reason in message, message


def test_limits_refuse_what_real_files_never_have():
    # Controls: the same shapes within the limits load, so the refusals above come from the claims.
    from stylegan.io.unpickler import NUMPY_GLOBALS, TORCH_GLOBALS, restricted_load
    ok = pickle.dumps({"t": tensor(legacy_storage(3)), "deep": json.loads("[" * 50 + "]" * 50)}, protocol=4)
    value = restricted_load(io.BytesIO(ok), {**TORCH_GLOBALS, **NUMPY_GLOBALS})
    assert torch.equal(value["t"], torch.zeros(3))
    deep = PROTO4 + nested_dicts(MAX_DEPTH - 1) + b"."
    assert restricted_load(io.BytesIO(deep), {}) is not None
    with pytest.raises(FileLimitError, match="deep"):
        restricted_load(io.BytesIO(PROTO4 + nested_dicts(MAX_DEPTH + 1) + b"."), {})
    with pytest.raises(FileLimitError, match="billion laughs"):
        restricted_load(io.BytesIO(billion_laughs(levels=8)), {})
    assert len(restricted_load(io.BytesIO(billion_laughs(levels=5)), {})) == 10


@pytest.mark.parametrize("cfg,kind,kwargs", [("stylegan3-r", "G", dict(cbase=65536, cmax=1024)),
                                             ("stylegan2", "D", {})])
def test_the_budget_admits_the_largest_published_networks(cfg, kind, kwargs):
    # At 1024x1024 building allocates about 1.15x the module's own tensors (temporaries included); the budget is
    # twice the tensors a file holds, plus 64 MiB.
    from stylegan.io.limits import build_network_within, network_budget
    from stylegan.io.nvidia_pickle import _SkipRandomInit
    from stylegan.networks.presets import build_from_config, discriminator_config, generator_config
    config = (generator_config if kind == "G" else discriminator_config)(cfg, 1024, **kwargs)
    with _SkipRandomInit():
        held = sum(t.numel() * t.element_size() for t in build_from_config(config).state_dict().values())
        assert held > 100 << 20
        build_network_within(config, network_budget(held), "control")
        with pytest.raises(FileLimitError):
            build_network_within(config, held // 2, "control")


def test_a_real_network_within_the_limits_still_loads(tmp_path, capsys):
    nb.tiny_snapshot(tmp_path / "snap.pkl")
    main(["info", str(tmp_path / "snap.pkl")])
    assert "StyleGAN2 generator" in capsys.readouterr().out


# --- memory ----------------------------------------------------------------------------------------------------------
# One child process reads every file of the corpus in turn (`stylegan info` for network files, the Inception loader
# for TorchScript archives) and reports its peak resident memory after each. The peak only grows, so a final peak
# under 1 GB bounds every kind; starting torch once keeps this to seconds instead of minutes. The peak is the
# process's own high-water mark (VmHWM, which starts afresh at exec); getrusage's ru_maxrss survives exec on Linux
# and would report the size of the pytest process the child was forked from.

READ_ALL = """
import contextlib, io, json, resource, sys

def peak_bytes():
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

from stylegan.cli import main
from stylegan.core.errors import StyleGANError
from stylegan.metrics import weights
report = {}
for kind, path in json.loads(sys.argv[1]).items():
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            if path.endswith(".pkl") and "inception" in path:
                weights.load_inception(path.rsplit("/", 1)[0], download=False)
            else:
                main(["info", path])
            code = 0
        except StyleGANError as exc:
            print(f"error: {exc}", file=sys.stderr)
            code = 2
        except SystemExit as exc:
            code = exc.code
    report[kind] = [code, err.getvalue(), peak_bytes()]
print(json.dumps(report))
"""


def test_peak_memory_stays_far_below_the_claims(tmp_path):
    files, reasons = {}, {}
    for n, (kind, (blob, reason)) in enumerate([*PICKLES.items(), *SAFETENSORS.items(), *(
            (k, v) for k, v in TORCHSCRIPT.items() if not k.startswith("outer"))]):
        folder = tmp_path / f"case{n}"
        folder.mkdir()
        if kind in TORCHSCRIPT:
            path = folder / "inception-2015-12-05.pkl"
            path.write_bytes(blob)
        else:
            path = write(folder, kind, blob, ".pkl" if kind in PICKLES else ".safetensors")
        files[kind], reasons[kind] = str(path), reason
    child = subprocess.run([sys.executable, "-c", READ_ALL, json.dumps(files)], capture_output=True, text=True,
                           timeout=600)
    assert child.returncode == 0 and "Traceback" not in child.stderr, child.stderr[-2000:]
    report = json.loads(child.stdout.strip().splitlines()[-1])
    for kind, (code, err, _peak) in report.items():
        assert code == 2 and "Traceback" not in err and reasons[kind] in err, (kind, err)
    peaks = {kind: f"{peak / 2**20:.0f} MiB" for kind, (_, _, peak) in report.items()}
    assert max(peak for _, _, peak in report.values()) < GB, peaks


def test_a_training_state_whose_config_claims_terabytes_is_refused(tmp_path, dataset, capsys):
    # The trainer builds the networks a state's config describes before it compares a tensor; a forged one stops
    # at loading, in one line, with no network built.
    from stylegan.training.config import TrainingFlags
    from stylegan.training.prepare import prepare_config
    from stylegan.training.state import load_training_state, save_training_state
    flags = TrainingFlags(outdir=str(tmp_path / "runs"), cfg="stylegan2", data=str(dataset), batch=4, gamma=1,
                          device="cpu")
    config = prepare_config(flags, quiet=True).to_dict()
    config["network"].update(cbase=1 << 20, cmax=1 << 20)
    path = save_training_state(tmp_path / "training-state-000000.safetensors",
                               {"G.x": torch.zeros(1), "D.x": torch.zeros(1)}, config=config, counters={"nimg": 0},
                               optimizers={})
    with pytest.raises(FileLimitError, match="more than the file holds"):
        load_training_state(path)
    line = one_line_exit_2(["train", "--outdir", str(tmp_path / "runs"), "--resume", str(path), "--device", "cpu"],
                           capsys)
    assert path.name in line and "more than the file holds" in line


def test_an_allocation_nothing_foresaw_is_still_one_line(tmp_path, monkeypatch, capsys):
    # The last line of defence in the CLI: a MemoryError that no reader's check caught is one line, exit 2.
    import stylegan.io

    def runs_out(path):
        raise MemoryError()

    monkeypatch.setattr(stylegan.io, "describe_network_file", runs_out)
    assert "out of memory" in one_line_exit_2(["info", str(tmp_path / "any.pkl")], capsys)
