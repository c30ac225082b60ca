"""`stylegan metrics`: the table, the jsonl next to the network, and one-line errors."""
import json
import sys

import pytest

from stylegan.cli import main
from stylegan.cli import metrics as cli_metrics

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from test_metrics_api import ReplayG, TinyDetector, _folder, _images  # noqa: E402
from test_metrics_equivariance import FourierG  # noqa: E402


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("STYLEGAN_OFFLINE", "1")


def _network_file(tmp_path, G, monkeypatch):
    path = tmp_path / "run" / "network-snapshot-000010.safetensors"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"stand-in")  # the loader is replaced below; the command only checks that the file exists
    monkeypatch.setattr(cli_metrics, "_load_generator", lambda p, device: G)
    return path


def test_equivariance_from_the_command_line(tmp_path, monkeypatch, capsys):
    net = _network_file(tmp_path, FourierG(), monkeypatch)
    main(["metrics", "--network", str(net), "--metrics", "eqt50k_int,eqr50k", "--num-gen", "4", "--device", "cpu"])
    out = capsys.readouterr().out
    assert "eqt50k_int" in out and "eqr50k" in out and "metric" in out.splitlines()[-4]
    for name in ("eqt50k_int", "eqr50k"):
        entry = json.loads((net.parent / f"metric-{name}.jsonl").read_text().splitlines()[-1])
        assert entry["metric"] == name and entry["snapshot_pkl"] == net.name
        assert entry["settings"] == {"num_gen": 4}


def test_network_url_reports_go_to_the_current_folder(tmp_path, monkeypatch, capsys):
    net = _network_file(tmp_path, FourierG(), monkeypatch)
    monkeypatch.chdir(tmp_path)
    main(["metrics", "--network", net.as_uri(), "--metrics", "eqt50k_int", "--num-gen", "4", "--device", "cpu"])
    entry = json.loads((tmp_path / "metric-eqt50k_int.jsonl").read_text().splitlines()[-1])
    assert entry["metric"] == "eqt50k_int" and not (net.parent / "metric-eqt50k_int.jsonl").exists()


def test_fid_with_data_and_out_folder(tmp_path, monkeypatch, capsys):
    from stylegan.metrics import registry
    monkeypatch.setattr(registry, "load_inception", lambda *a, **k: (TinyDetector(), "tiny:0"))
    data = _folder(tmp_path / "data", _images(12))
    net = _network_file(tmp_path, ReplayG(_images(12, seed=4)), monkeypatch)
    out = tmp_path / "results"
    main(["metrics", "--network", str(net), "--data", str(data), "--num-gen", "12", "--device", "cpu",
          "--workers", "0", "--out", str(out), "--cache-dir", str(tmp_path / "stats")])
    entry = json.loads((out / "metric-fid50k_full.jsonl").read_text())
    assert entry["results"]["fid50k_full"] > 0
    assert "fid50k_full" in capsys.readouterr().out


@pytest.mark.parametrize("args,message", [
    (["--metrics", "fid1k"], "unknown metric fid1k"),
    (["--metrics", "fid50k_full"], "--data"),
    (["--metrics", "eqt50k_int", "--network", "missing.safetensors"], "no such file"),
])
def test_user_errors_are_one_line(tmp_path, monkeypatch, capsys, args, message):
    net = _network_file(tmp_path, FourierG(), monkeypatch)
    argv = ["metrics", "--network", str(net), "--device", "cpu", *args]
    with pytest.raises(SystemExit) as info:
        main(argv)
    err = capsys.readouterr().err
    assert info.value.code == 2 and message in err and err.count("\n") == 1


def test_offline_run_without_weights_names_the_missing_file(tmp_path, monkeypatch, capsys):
    data = _folder(tmp_path / "data", _images(4))
    net = _network_file(tmp_path, ReplayG(_images(4)), monkeypatch)
    with pytest.raises(SystemExit):
        main(["metrics", "--network", str(net), "--data", str(data), "--device", "cpu", "--num-gen", "4",
              "--feature-dir", str(tmp_path / "features")])
    err = capsys.readouterr().err
    assert "pt_inception-2015-12-05-6726825d.pth" in err and str(tmp_path / "features") in err
    assert err.count("\n") == 1
    assert not (net.parent / "metric-fid50k_full.jsonl").exists()


@pytest.mark.slow
def test_export_features_converts_what_it_finds(tmp_path, capsys):
    import torch
    from stylegan.metrics import weights
    from stylegan.metrics.inception import InceptionV3
    feat = tmp_path / "features"
    feat.mkdir()
    state = {k: torch.rand(v.shape) + 0.5 for k, v in weights.empty_model(InceptionV3).state_dict().items()}
    torch.save(state, feat / "pt_inception-2015-12-05-6726825d.pth")
    main(["metrics", "--feature-dir", str(feat), "--export-features", str(tmp_path / "ours")])
    captured = capsys.readouterr()
    assert (tmp_path / "ours" / "inception-2015-12-05.safetensors").is_file()
    assert "skipped VGG16" in captured.err


def test_the_shipped_network_is_measured_by_name(tmp_path, monkeypatch, capsys):
    import numpy as np
    images = np.random.default_rng(0).integers(0, 256, [16, 3, 32, 32], dtype=np.uint8)
    data = _folder(tmp_path / "reals", images)
    monkeypatch.chdir(tmp_path)
    main(["metrics", "--network", "emoji", "--data", str(data), "--metrics", "swd16k", "--num-gen", "16",
          "--device", "cpu"])
    entry = json.loads((tmp_path / "metric-swd16k.jsonl").read_text().splitlines()[-1])
    assert entry["results"]["swd16k"] > 0


def test_gpus_relaunches_the_command_it_was_given_not_sys_argv(tmp_path, monkeypatch):
    # Called from Python, sys.argv is pytest's; the relaunch must rebuild the metrics command from its own values.
    net = _network_file(tmp_path, FourierG(), monkeypatch)
    launched = []
    monkeypatch.setattr(cli_metrics.dist, "launched_by_torchrun", lambda: False)
    monkeypatch.setattr(cli_metrics.dist, "run_under_torchrun", lambda n, args: launched.append((n, args)) or 0)
    with pytest.raises(SystemExit) as exit_info:
        main(["metrics", "--network", str(net), "--metrics", "eqt50k_int", "--num-gen", "4", "--device", "cpu",
              "--gpus", "2", "--mirror"])
    assert exit_info.value.code == 0
    (n, args), = launched
    assert n == 2 and args[0] == "metrics" and "--gpus" not in args and "--mirror" in args
    assert args[args.index("--network") + 1] == str(net) and args[args.index("--num-gen") + 1] == "4"
    assert args[args.index("--metrics") + 1] == "eqt50k_int" and "--compile" not in args
