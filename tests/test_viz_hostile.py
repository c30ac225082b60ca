"""The visualizer against hostile requests and hostile files in --models-dir: every one gets a 4xx (or a 503 for a
load that runs too long) with a one-line message that holds no path of the server, and the server stays usable."""
from __future__ import annotations

import os
import pickle
import socket
import struct
import threading
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient

import stylegan
import stylegan.io
from stylegan.generate import directions as directions_module
from stylegan.viz import ServeConfig, create_app
from stylegan.viz.isolated import LoadFailed, LoadTimedOut, load_isolated
from stylegan.viz.server import background_server
from test_viz_support import make_tree
import nvidia_pickle_builder as nb

BASE = "http://127.0.0.1:7860"


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    tree = make_tree(tmp_path_factory.mktemp("viz-hostile"))
    hostile = tree["models"] / "hostile"
    hostile.mkdir()

    class RunsCode:
        def __reduce__(self):
            return (print, ("this must never run",))

    files = {
        "garbage.pkl": bytes(range(256)) * 4,
        "empty.pkl": b"",
        "code.pkl": pickle.dumps({"G_ema": RunsCode()}),
        "truncated.pkl": pickle.dumps({"G_ema": list(range(1000))})[:-50],
        "truncated.safetensors": (tree["models"] / "sg2.safetensors").read_bytes()[:3000],
        "huge-header.safetensors": struct.pack("<Q", 2 ** 62) + b"{}",
        "not-json.safetensors": struct.pack("<Q", 8) + b"\xff" * 8,
        "object.npz": b"",
    }
    for name, data in files.items():
        (hostile / name).write_bytes(data)
    np.savez(hostile / "object.npz", vectors=np.array([{"a": 1}], dtype=object))
    return tree


@pytest.fixture(scope="module")
def client(tree):
    config = ServeConfig(models_dir=str(tree["models"]), device="cpu")
    with TestClient(create_app(config), base_url=BASE) as c:
        yield c


def assert_clean(response, status: int, tree) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    text = response.text
    assert "\n" not in body["error"] and len(body["error"]) <= 600
    for secret in (str(tree["root"]), str(tree["models"]), "/tmp", "pytest-"):
        assert secret not in text, text
    return body


def test_a_body_of_30000_nested_arrays_is_400(client, tree):
    raw = b"[" * 30_000 + b"]" * 30_000
    response = client.post("/api/render", content=raw, headers={"content-type": "application/json"})
    assert "nested too deeply" in assert_clean(response, 400, tree)["error"]


def test_a_nested_field_value_is_422_not_500(client, tree):
    raw = b'{"network": "sg2.safetensors", "seed": ' + b"[" * 900 + b"]" * 900 + b"}"
    response = client.post("/api/render", content=raw, headers={"content-type": "application/json"})
    assert assert_clean(response, 422, tree)["field"] == "seed"


@pytest.mark.parametrize("field", ["network", "directions"])
def test_a_1000_character_name_is_404_without_the_models_path(client, tree, field):
    long_name = "a" * 996 + (".npz" if field == "directions" else ".pkl")
    body = {"network": "sg2.safetensors", field: long_name}
    response = client.post("/api/render", json=body)
    assert assert_clean(response, 404, tree)["field"] == field


@pytest.mark.parametrize("name", ["garbage.pkl", "empty.pkl", "code.pkl", "truncated.safetensors",
                                  "huge-header.safetensors", "not-json.safetensors"])
def test_hostile_network_files_are_422_with_a_clean_message(client, tree, capfd, name):
    # The pickles are read by a child process (a few seconds each to start), the rest on a thread.
    for endpoint in ("/api/network", "/api/render") if name.endswith(".safetensors") else ("/api/network",):
        body = assert_clean(client.post(endpoint, json={"network": f"hostile/{name}"}), 422, tree)
        assert body["field"] == "network" and f"hostile/{name}" in body["error"]
    assert "this must never run" not in capfd.readouterr().out


def test_a_hostile_directions_file_is_422(client, tree, monkeypatch):
    response = client.post("/api/render", json={"network": "sg2.safetensors", "directions": "hostile/object.npz"})
    assert assert_clean(response, 422, tree)["field"] == "directions"
    # numpy would allocate what an .npz member claims, so the unpacked size is checked before reading.
    monkeypatch.setattr(directions_module, "MAX_DIRECTIONS_BYTES", 1000)
    response = client.post("/api/render", json={"network": "sg2.safetensors", "directions": "dirs.npz"})
    assert "(unpacked)" in assert_clean(response, 422, tree)["error"]


def test_a_body_shorter_than_its_content_length_is_answered_400(tree):
    config = ServeConfig(networks=[str(tree["cli_sg2"])], device="cpu", body_timeout=0.5)
    with background_server(config) as url:
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
            sock.sendall(b"POST /api/render HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 1000\r\n\r\n{\"network\": 1}")
            started = time.monotonic()
            answer = b""
            while b"}" not in answer and (chunk := sock.recv(65536)):     # the JSON body may come after the headers
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 400"), answer
        assert b"Content-Length says 1000 bytes" in answer and time.monotonic() - started < 10


def test_a_network_that_loads_too_long_is_503_and_the_server_stays_usable(tree, monkeypatch):
    real_load = stylegan.io.load_network
    release = threading.Event()
    started = []

    def slow_load(location, *args, **kwargs):
        if "sub/sg3" in str(location):
            started.append(location)
            release.wait(60)                            # as a pickle that expands until memory runs out
        return real_load(location, *args, **kwargs)

    monkeypatch.setattr(stylegan.io, "load_network", slow_load)
    config = ServeConfig(models_dir=str(tree["models"]), device="cpu", load_timeout=0.5)
    with TestClient(create_app(config), base_url=BASE) as c:
        body = assert_clean(c.post("/api/render", json={"network": "sub/sg3.safetensors"}), 503, tree)
        assert body["field"] == "network" and "did not load within 0.5 s" in body["error"]
        # The worker is free: other networks render, and the health check answers at once.
        assert c.post("/api/render", json={"network": "sg2.safetensors"}).status_code == 200
        assert c.get("/api/health").json()["status"] == "ok"
        # Asking again waits for the same load; it does not start another one.
        assert c.post("/api/network", json={"network": "sub/sg3.safetensors"}).status_code == 503
        assert len(started) == 1
        release.set()                                   # when it does finish, its network is used
        response = c.post("/api/render", json={"network": "sub/sg3.safetensors"})
        assert response.status_code == 200 and len(started) == 1


def test_an_nvidia_pickle_is_read_in_a_child_process_and_renders(tree, monkeypatch):
    nb.tiny_snapshot(tree["models"] / "hostile" / "nvidia.pkl")
    in_process = []
    real_load = stylegan.io.load_network

    def load(location, *args, **kwargs):
        in_process.append(str(location))
        return real_load(location, *args, **kwargs)

    monkeypatch.setattr(stylegan.io, "load_network", load)
    config = ServeConfig(models_dir=str(tree["models"]), device="cpu")
    with TestClient(create_app(config), base_url=BASE) as c:
        response = c.post("/api/render", json={"network": "hostile/nvidia.pkl", "seed": 3})
        assert response.status_code == 200, response.text
    # This process read only the child's safetensors, never the pickle itself.
    assert len(in_process) == 1 and in_process[0].endswith("network.safetensors")


def test_the_child_process_is_bounded_in_memory_and_time(tree, tmp_path):
    pkl = nb.tiny_snapshot(tmp_path / "tiny.pkl") and tmp_path / "tiny.pkl"
    with pytest.raises(LoadFailed, match="needs more memory"):
        load_isolated(str(pkl), tmp_path, timeout=120, budget_bytes=1)
    fifo = tmp_path / "never.pkl"
    os.mkfifo(fifo)                                     # opening it for reading waits forever
    started = time.monotonic()
    with pytest.raises(LoadTimedOut):
        load_isolated(str(fifo), tmp_path, timeout=1)
    assert time.monotonic() - started < 10
