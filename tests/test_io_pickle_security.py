"""Malicious pickles are refused before anything they name is called: the marker file they would create never
appears, and the error names what the stream asked for. The whole corpus goes through every entry point that reads
a pickle or a TorchScript archive: network files (info, convert, generate, train --resume) and the metrics'
Inception and VGG16 weights."""
from __future__ import annotations

import builtins
import io
import os
import pickle
import subprocess

import pytest
import torch

import nvidia_pickle_builder as nb
from stylegan.core.errors import StyleGANError
from stylegan.io.nvidia_pickle import NVIDIA_GLOBALS, load_nvidia_network, read_nvidia_pickle
from stylegan.io.unpickler import TORCH_GLOBALS, RestrictedUnpickler, UnsafePickleError, restricted_load
from stylegan.metrics import weights
from test_io_hostile import dataset, entry_points, one_line_exit_2, torchscript_archive  # noqa: F401 (fixture)


class Call:
    """Pickles as fn(*args): what an attacker's __reduce__ returns."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def payloads(marker):
    m = str(marker)
    code = f"open({m!r}, 'w').write('pwned')"
    return {
        "os.system": (Call(os.system, f"touch {m}"), os.system.__module__ + ".system"),
        "builtins.eval": (Call(builtins.eval, code), "builtins.eval"),
        "builtins.exec": (Call(builtins.exec, code), "builtins.exec"),
        "subprocess.Popen": (Call(subprocess.Popen, ["touch", m]), "subprocess.Popen"),
        "subprocess.call": (Call(subprocess.call, ["touch", m]), "subprocess.call"),
        "subprocess.run": (Call(subprocess.run, ["touch", m]), "subprocess.run"),
        "subprocess.check_output": (Call(subprocess.check_output, ["touch", m]), "subprocess.check_output"),
        "getattr-import": (Call(getattr, Call(builtins.__import__, "os"), "system"), "builtins.getattr"),
    }


NAMES = list(payloads("x"))


def _refused(path, marker, names):
    with pytest.raises(UnsafePickleError) as info:
        read_nvidia_pickle(path)
    assert any(n in str(info.value) for n in names), str(info.value)
    assert not marker.exists()
    # The same file through every entry point.
    with pytest.raises(StyleGANError):
        load_nvidia_network(path)
    assert not marker.exists()


@pytest.mark.parametrize("name", NAMES)
def test_top_level_payload_is_refused(tmp_path, name):
    marker = tmp_path / "pwned"
    obj, refused = payloads(marker)[name]
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(obj, protocol=4))
    _refused(path, marker, [refused, "builtins.__import__"])


@pytest.mark.parametrize("name", NAMES)
def test_payload_hidden_inside_a_valid_snapshot(tmp_path, name):
    # A real-looking snapshot whose generator state carries the payload deep inside.
    marker = tmp_path / "pwned"
    obj, refused = payloads(marker)[name]
    path = _snapshot_hiding(obj, tmp_path / "evil.pkl")
    _refused(path, marker, [refused, "builtins.__import__"])


def _snapshot_hiding(obj, path):
    """A real-looking tiny snapshot whose generator state carries `obj` deep inside."""
    G = nb.build_generator(nb.TINY_G, "stylegan2")
    snap = nb.persistent(G, "generator", nb.TINY_G)
    snap.meta["state"]["_modules"]["synthesis"].meta["state"]["innocent_attribute"] = obj
    return nb.dump({"G": snap, "G_ema": snap, "D": None}, path)


@pytest.mark.parametrize("name", NAMES)
def test_every_entry_point_refuses_every_payload(tmp_path, name, dataset, capsys):  # noqa: F811 (fixture)
    marker = tmp_path / "pwned"
    obj, refused = payloads(marker)[name]
    top = tmp_path / "evil.pkl"
    top.write_bytes(pickle.dumps(obj, protocol=4))
    for path in (top, _snapshot_hiding(obj, tmp_path / "evil-snapshot.pkl")):
        for entry, args in entry_points(path, tmp_path, dataset).items():
            line = one_line_exit_2(args, capsys)
            assert path.name in line and "not on the allowlist" in line, f"{entry}: {line}"
            assert not marker.exists(), entry
    # The metrics' weights: NVIDIA's detector pickle (outside and inside its TorchScript archive) and a .pth.
    inception, vgg = tmp_path / "inception", tmp_path / "vgg"
    inception.mkdir(), vgg.mkdir()
    archive = torchscript_archive(2, data_pkl=pickle.dumps(obj, protocol=2))
    (inception / "inception-2015-12-05.pkl").write_bytes(pickle.dumps([obj, {"archive": archive}], protocol=4))
    (vgg / "vgg16-397923af.pth").write_bytes(archive)
    with pytest.raises(StyleGANError, match="not NVIDIA's Inception detector"):
        weights.load_inception(inception, download=False)
    with pytest.raises(StyleGANError, match="vgg16-397923af.pth"):
        weights.load_vgg16(vgg, download=False)
    assert not marker.exists()


@pytest.mark.parametrize("stream", [
    b"cos\nsystem\n(S'touch {m}'\ntR.",                     # protocol 0: GLOBAL + REDUCE
    b"(S'touch {m}'\nios\nsystem\n.",                       # protocol 0: INST
    b"(cos\nsystem\nS'touch {m}'\no.",                      # protocol 1: OBJ
    b"\x80\x02cposix\nsystem\nq\x00X\x08\x00\x00\x00touch {m}\x85R.",
    b"ccopyreg\n_reconstructor\n(cos\nsystem\nc__builtin__\nobject\nNtR.",
])
def test_handwritten_streams_are_refused(tmp_path, stream):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    data = stream.replace(b"{m}", str(marker).encode())
    if data.startswith(b"\x80\x02") and b"X\x08" in data:         # fix the length of the protocol-2 string
        cmd = f"touch {marker}".encode()
        data = b"\x80\x02cposix\nsystem\nq\x00X" + len(cmd).to_bytes(4, "little") + cmd + b"\x85R."
    path.write_bytes(data)
    with pytest.raises(UnsafePickleError, match="not on the allowlist"):
        read_nvidia_pickle(path)
    assert not marker.exists()


def test_storage_bytes_go_through_the_restricted_reader_too(tmp_path):
    # The bytes handed to torch.storage._load_from_bytes are themselves a pickle; a payload there is refused too.
    marker = tmp_path / "pwned"
    inner = pickle.dumps(Call(os.system, f"touch {marker}"), protocol=2)

    class Storage:
        def __reduce__(self):
            return torch.storage._load_from_bytes, (inner,)

    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"G": Storage()}, protocol=4))
    with pytest.raises(UnsafePickleError, match="posix.system|nt.system"):
        read_nvidia_pickle(path)
    assert not marker.exists()


def test_persistent_ids_are_refused(tmp_path):
    class P(pickle.Pickler):
        def persistent_id(self, obj):
            return "storage" if isinstance(obj, str) and obj == "x" else None

    buf = io.BytesIO()
    P(buf, protocol=4).dump(["x"])
    buf.seek(0)
    with pytest.raises(UnsafePickleError, match="persistent ids"):
        restricted_load(buf, NVIDIA_GLOBALS)


class Thing:
    """A harmless class of ours that a reader may choose to allow."""


def test_allowlist_is_extensible_and_names_refusals():
    # The mechanism other readers reuse: an explicit "module.name" -> object mapping.
    data = pickle.dumps({"t": torch.arange(3.0), "n": 1}, protocol=4)
    assert torch.equal(restricted_load(io.BytesIO(data), TORCH_GLOBALS)["t"], torch.arange(3.0))
    data = pickle.dumps(Call(Thing), protocol=4)
    with pytest.raises(UnsafePickleError, match=r"test_io_pickle_security\.Thing"):
        RestrictedUnpickler(io.BytesIO(data), TORCH_GLOBALS).load()
    allow = {**TORCH_GLOBALS, f"{__name__}.Thing": Thing}
    assert isinstance(RestrictedUnpickler(io.BytesIO(data), allow).load(), Thing)


def test_tensor_rebuild_rejects_non_storages(tmp_path):
    # _rebuild_tensor_v2 with something other than a storage gets a clear refusal, not a crash or a call.
    class Fake:
        def __reduce__(self):
            return torch._utils._rebuild_tensor_v2, ("not a storage", 0, (1,), (1,), False, None)

    with pytest.raises(UnsafePickleError, match="storage"):
        restricted_load(io.BytesIO(pickle.dumps(Fake(), protocol=4)), NVIDIA_GLOBALS)


@pytest.mark.parametrize("name", ["os.system", "builtins.exec", "subprocess.call"])
def test_payloads_are_real(tmp_path, name):
    # Control: Python's own pickle does run these payloads, so the refusals above are what keeps the marker away.
    marker = tmp_path / "pwned"
    obj, _ = payloads(marker)[name]
    pickle.loads(pickle.dumps(obj, protocol=4))
    assert marker.exists()
