"""stylegan project: a network's own image is recovered; outputs load back; the losses and the noise penalty."""
from __future__ import annotations

import imageio
import numpy as np
import PIL.Image
import pytest
import torch

import stylegan
from stylegan.generate import (
    LaplacianPyramidL1, ProjectOptions, load_ws, project, psnr, render, synthesize)
from stylegan.generate.project import laplacian_pyramid, noise_regularization
from stylegan.generate.render import noise_buffers
from test_generate_support import run_cli, tiny_generator

pytestmark = pytest.mark.usefixtures("one_thread")

W_AVG_SAMPLES = 2000        # the paper's 10000 buys nothing on a 64-d tiny network and costs seconds


def random_latent_psnr(G, target: np.ndarray, seeds=range(1000, 1016)) -> tuple[float, float]:
    """Mean and best PSNR against `target` of images from random seeds: what no projection at all achieves."""
    scores = [psnr(image, target) for image in render(G, seeds=list(seeds)).numpy()]
    return float(np.mean(scores)), float(np.max(scores))


@pytest.mark.slow
@pytest.mark.parametrize("space", ["w", "w+"])
def test_projection_recovers_an_image_of_the_network_itself_stylegan2(space):
    G = tiny_generator("stylegan2", 16)
    target = render(G, seeds=[7])[0].numpy()
    mean_random, best_random = random_latent_psnr(G, target)
    result = project(G, target, ProjectOptions(steps=100, space=space, w_avg_samples=W_AVG_SAMPLES), progress=False)
    # Measured: random latents 12.6 dB on average (best of 16: 14.4); projected 18.4 dB in W, 22.1 dB in W+.
    assert result.psnr > mean_random + 4 and result.psnr > best_random + 2, (result.psnr, mean_random, best_random)
    assert result.history[-1] < result.history[0] / 2
    assert result.noise and set(result.noise) == set(noise_buffers(G))     # StyleGAN2's noise maps were optimised
    # The result renders the same with the library as in the result, noise maps included.
    assert np.array_equal(synthesize(G, result.ws, noise=result.noise)[0].numpy(), result.image)


@pytest.mark.slow
def test_projection_recovers_an_image_of_the_network_itself_stylegan3():
    G = tiny_generator("stylegan3-t", 16)
    target = render(G, seeds=[7])[0].numpy()
    mean_random, best_random = random_latent_psnr(G, target, range(1000, 1008))
    result = project(G, target, ProjectOptions(steps=40, w_avg_samples=W_AVG_SAMPLES), progress=False)
    assert result.noise == {}                                              # StyleGAN3 has no noise maps
    assert result.psnr > mean_random + 6 and result.psnr > best_random + 3, (result.psnr, mean_random, best_random)


def test_project_command_writes_outputs_that_load_back(nets, tmp_path, capsys):
    G = stylegan.load_network(nets["sg2"])
    photo = np.asarray(PIL.Image.fromarray(render(G, seeds=[3])[0].numpy()).resize((40, 24), PIL.Image.NEAREST))
    PIL.Image.fromarray(np.pad(photo, [(0, 0), (8, 8), (0, 0)])).save(tmp_path / "photo.png")   # 56x24, not square
    out = tmp_path / "proj"
    code, stdout, _ = run_cli(["project", "--network", nets["sg2"], "--target", tmp_path / "photo.png", "--steps", "6",
                               "--outdir", out, "--save-video", "--device", "cpu"], capsys)
    assert code == 0 and "loss: Laplacian-pyramid L1 (offline default" in stdout and "PSNR" in stdout
    assert sorted(p.name for p in out.iterdir()) == ["proj.mp4", "proj.png", "projected_w.npz", "target.png"]
    target = np.asarray(PIL.Image.open(out / "target.png"))
    assert target.shape == (16, 16, 3)                                      # centre square, resized to 16
    # projected_w.npz holds NVIDIA's 'w' [1, num_ws, w_dim] plus our noise maps; `generate --ws` renders proj.png.
    with np.load(out / "projected_w.npz") as data:
        assert data["w"].shape == (1, G.num_ws, G.w_dim) and "Laplacian" in str(data["loss"])
    code, _, _ = run_cli(["generate", "--network", nets["sg2"], "--ws", out / "projected_w.npz",
                          "--outdir", tmp_path / "again"], capsys)
    assert code == 0 and (tmp_path / "again" / "w0000.png").read_bytes() == (out / "proj.png").read_bytes()
    reader = imageio.get_reader(out / "proj.mp4", format="FFMPEG")
    frames = [f for f in reader]
    reader.close()
    assert len(frames) == 6 and frames[0].shape == (16, 32, 3)              # one frame a step: target | projection


def test_project_refuses_bad_targets_and_folders(nets, tmp_path, capsys):
    (tmp_path / "notes.png").write_text("this is not an image")
    (tmp_path / "file").write_text("x")
    PIL.Image.new("RGB", (8, 8)).save(tmp_path / "ok.png")
    base = ["project", "--network", nets["sg2"], "--steps", "1"]
    cases = [
        (["--target", tmp_path / "notes.png", "--outdir", tmp_path / "o"], "--target", "cannot read it as an image"),
        (["--target", tmp_path / "gone.jpg", "--outdir", tmp_path / "o"], "--target", "no such file"),
        (["--target", tmp_path / "ok.png", "--outdir", tmp_path / "file" / "o"], "--outdir", "cannot write there"),
        (["--target", tmp_path / "ok.png", "--outdir", tmp_path / "o", "--vgg", tmp_path / "vgg.pth"], "--vgg",
         "no such file"),
        (["--target", tmp_path / "ok.png", "--outdir", tmp_path / "o", "--steps", "0"], "--steps: 0", ""),
    ]
    for args, flag, message in cases:
        code, _, err = run_cli(base + args, capsys)
        assert code == 2 and flag in err and message in err and err.count("\n") == 1, (args, err)
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_vgg_file_switches_to_lpips_style_features(nets, tmp_path, capsys):
    from stylegan.metrics.vgg import VGG16
    torch.manual_seed(0)
    features = {k: v for k, v in VGG16().state_dict().items() if k.startswith("features.")}
    for k, v in features.items():       # random but well scaled convolutions (He init), in torchvision's names
        if k.endswith("weight"):
            v.copy_(torch.randn_like(v) * (2 / v[0].numel()) ** 0.5)
    torch.save(features, tmp_path / "vgg16-features.pth")
    G = stylegan.load_network(nets["sg2"])
    PIL.Image.fromarray(render(G, seeds=[2])[0].numpy()).save(tmp_path / "t.png")
    code, stdout, _ = run_cli(["project", "--network", nets["sg2"], "--target", tmp_path / "t.png", "--steps", "30",
                               "--vgg", tmp_path / "vgg16-features.pth", "--outdir", tmp_path / "o"], capsys)
    assert code == 0 and "loss: LPIPS-style VGG16 features with equal channel weights" in stdout
    with np.load(tmp_path / "o" / "projected_w.npz") as data:
        assert "VGG16" in str(data["loss"]) and float(data["psnr"]) > random_latent_psnr(G, np.asarray(
            PIL.Image.open(tmp_path / "t.png")))[0]


def test_laplacian_pyramid_splits_an_image_into_bands_that_add_back_up():
    x = torch.randn(2, 3, 32, 32)
    levels = laplacian_pyramid(x)
    assert [tuple(t.shape[2:]) for t in levels] == [(32, 32), (16, 16), (8, 8)]
    rebuilt = levels[-1]
    for band in reversed(levels[:-1]):
        rebuilt = band + torch.nn.functional.interpolate(rebuilt, size=band.shape[2:], mode="bilinear",
                                                         align_corners=False)
    assert torch.allclose(rebuilt, x, atol=1e-5)
    loss = LaplacianPyramidL1(x[:1])
    assert float(loss(x[:1])) == 0 and float(loss(x[1:])) > 0
    # A flat colour shift lives only in the low-pass residual and costs exactly its size.
    assert float(loss(x[:1] + 0.1)) == pytest.approx(0.1, rel=1e-4)


def test_noise_penalty_tells_white_noise_from_maps_that_carry_structure():
    g = torch.Generator().manual_seed(0)
    white = [torch.randn(32, 32, generator=g), torch.randn(16, 16, generator=g)]
    ramp = torch.linspace(-1.7, 1.7, 32)
    smooth = [ramp[None, :].expand(32, 32), ramp[::2, None].expand(16, 16)]
    assert float(noise_regularization(white)) < 0.01 < float(noise_regularization(smooth))


def test_load_ws_accepts_w_and_w_plus_layouts(tmp_path):
    np.save(tmp_path / "one_w.npy", np.ones(8, dtype=np.float32))
    np.savez(tmp_path / "wplus.npz", w=np.arange(3 * 8, dtype=np.float32).reshape(3, 8))
    ws, noise = load_ws(tmp_path / "one_w.npy", num_ws=3, w_dim=8)
    assert ws.shape == (1, 3, 8) and noise == {}
    ws, _ = load_ws(tmp_path / "wplus.npz", num_ws=3, w_dim=8)
    assert ws.shape == (1, 3, 8) and float(ws[0, 2, 0]) == 16
