"""`stylegan info` and `stylegan demo` (training, and --untrained)."""
import json
import re
from pathlib import Path

import pytest
import torch

import stylegan
from stylegan.cli import main
from stylegan.io import save_networks


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory):
    torch.manual_seed(0)
    G = stylegan.build_generator("stylegan3-t", 32, 2, cbase=512, cmax=16, z_dim=32, w_dim=32)
    D = stylegan.build_discriminator("stylegan3-t", 32, 2, cbase=512, cmax=16)
    path = tmp_path_factory.mktemp("info") / "snap.safetensors"
    save_networks({"G": G, "D": D, "G_ema": G}, path, extra_metadata={"kimg": 4})
    return path, G, D


def test_info_prints_architecture_resolution_channels_parameters_and_config(snapshot, capsys):
    path, G, D = snapshot
    main(["info", str(path)])
    out = capsys.readouterr().out
    assert "[G] StyleGAN3-T generator, 14 layers, conv 3x3" in out and "[D] StyleGAN3-T discriminator, resnet" in out
    assert "resolution:   32x32, 3 image channels" in out
    assert "L0_36_16" in out and "32:16 16:16 8:16 4:16" in out
    assert "z_dim=32, c_dim=2, w_dim=32, num_ws=16" in out
    g_total = sum(p.numel() for p in G.parameters())
    synthesis = sum(p.numel() for p in G.synthesis.parameters())
    assert re.search(rf"synthesis +{synthesis:,}\n", out)
    assert f"{g_total:,}" in out and f"{sum(p.numel() for p in D.parameters()):,}" in out
    assert "synthesis.magnitude_ema_beta = " in out and 'cfg = "stylegan3-t"' in out
    assert "kimg=4" in out


def test_info_json(snapshot, capsys):
    path, G, D = snapshot
    main(["info", str(path), "--json"])
    info = json.loads(capsys.readouterr().out)
    assert list(info["modules"]) == ["G", "D", "G_ema"] and info["extra"] == {"kimg": 4}
    g = info["modules"]["G"]
    assert g["total_parameters"] == sum(p.numel() for p in G.parameters())
    assert g["parameters"] == {"synthesis": sum(p.numel() for p in G.synthesis.parameters()),
                               "mapping": sum(p.numel() for p in G.mapping.parameters())}
    assert g["config"] == G.config.to_dict() and info["modules"]["D"]["config"] == D.config.to_dict()
    assert g["resolution"] == 32 and g["channels"]["L14_32_3"] == 3


def test_info_errors_are_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["info", str(tmp_path / "nothing.safetensors")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.strip().count("\n") == 0 and "no such file" in err and "Traceback" not in err


@pytest.mark.slow
def test_demo_writes_networks_grids_and_info(tmp_path, capsys):
    main(["demo", "--untrained", "--outdir", str(tmp_path), "--device", "cpu", "--resolution", "32", "--cbase", "256",
          "--cmax", "16"])
    out = capsys.readouterr().out
    assert "UNTRAINED" in out and str(tmp_path) in out
    for cfg in ("stylegan2", "stylegan3-t", "stylegan3-r"):
        for suffix in (".safetensors", "-grid.png", "-info.txt"):
            assert (tmp_path / f"{cfg}{suffix}").is_file()
        G = stylegan.load_network(tmp_path / f"{cfg}.safetensors")
        assert G.config.cfg == cfg and G.img_resolution == 32
    from PIL import Image
    assert Image.open(tmp_path / "stylegan2-grid.png").size == (32 * 6, 32)
    assert "StyleGAN3-R generator" in (tmp_path / "stylegan3-r-info.txt").read_text()


@pytest.mark.slow
def test_demo_from_scratch_trains_and_says_where_the_results_are(tmp_path, capsys):
    main(["demo", "--from-scratch", "--outdir", str(tmp_path), "--device", "cpu", "--kimg", "0.016"])
    out = capsys.readouterr().out
    assert " train --cfg stylegan3-t" in out                                 # the equivalent command comes first
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert "stylegan3-t-demo-32x32" in run_dir.name
    lines = {k.strip(): v.strip() for k, v in (line.split(": ", 1) for line in out.splitlines() if ": " in line)}
    from PIL import Image
    assert Image.open(lines["fakes"]).size[0] % 32 == 0 and Path(lines["fakes"]).parent == run_dir
    G = stylegan.load_network(lines["network"])
    assert G.config.cfg == "stylegan3-t" and G.img_resolution == 32
    assert f"--network {lines['network']}" in out and "--resume latest" in out


@pytest.mark.parametrize("args, message", [
    (["--untrained", "--kimg", "1"], "--kimg: only with --from-scratch"),
    (["--kimg", "1"], "--kimg: only with --from-scratch"),
    (["--from-scratch", "--finetune-kimg", "1"], "--finetune-kimg: only with the default demo"),
    (["--from-scratch", "--untrained"], "choose one"),
])
def test_demo_refuses_options_of_another_mode(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", *args, "--outdir", str(tmp_path)])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_demo_refuses_untrained_options_when_training(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--resolution", "64", "--outdir", str(tmp_path)])
    assert exit_info.value.code == 2 and "--resolution: only with --untrained" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())
