"""stylegan translate: photos projected into A and drawn by B (or a blend) end to end; with B = A the translation
is the reconstruction; inputs are checked before any work."""
from __future__ import annotations

import numpy as np
import PIL.Image
import pytest

import stylegan
from stylegan.generate import ProjectOptions, load_ws, render, synthesize
from stylegan.generate.blend import BlendOptions, blend_networks
from stylegan.generate.translate import translate_images
from test_generate_support import run_cli, tiny_generator

pytestmark = pytest.mark.usefixtures("one_thread")

FEW = ProjectOptions(steps=2, w_avg_samples=200)       # the pipeline, not the projection's quality, is under test


def read_png(path) -> np.ndarray:
    return np.asarray(PIL.Image.open(path))


@pytest.fixture
def photos(nets, tmp_path):
    """A folder of two 'photos': images of the tiny network, one of them not square and not 16 px."""
    G = stylegan.load_network(nets["sg2"])
    folder = tmp_path / "photos"
    folder.mkdir()
    a, b = render(G, seeds=[3, 4]).numpy()
    PIL.Image.fromarray(a).save(folder / "cat.png")
    PIL.Image.fromarray(np.pad(np.asarray(PIL.Image.fromarray(b).resize((40, 40))), [(0, 0), (8, 8), (0, 0)])).save(
        folder / "dog.jpg")
    (folder / "notes.txt").write_text("not an image, and not in the listing")
    return folder


def test_translate_writes_input_reconstruction_and_translation_side_by_side(nets, photos, tmp_path, capsys):
    b_path = stylegan.save_network(tiny_generator("stylegan2", 16, seed=1), tmp_path / "b.safetensors")
    out = tmp_path / "tr"
    code, stdout, err = run_cli(["translate", "--network-a", nets["sg2"], "--network-b", b_path, "--target", photos,
                                 "--steps", "2", "--outdir", out, "--device", "cpu"], capsys)
    assert code == 0, err
    assert stdout.count("wrote ") == 2 and "dB PSNR" in stdout
    assert sorted(p.name for p in out.iterdir()) == ["cat", "cat.png", "dog", "dog.png"]
    for name in ("cat", "dog"):
        folder = out / name
        assert sorted(p.name for p in folder.iterdir()) == ["proj.png", "projected_w.npz", "target.png",
                                                            "translated.png"]
        side = read_png(out / f"{name}.png")
        assert side.shape == (16, 3 * 16, 3)                                 # input | A | B
        panels = [read_png(folder / f) for f in ("target.png", "proj.png", "translated.png")]
        assert np.array_equal(side, np.concatenate(panels, axis=1))
        assert not np.array_equal(panels[1], panels[2])                     # B draws something else than A
        # The latents and noise maps, drawn by B, give the translation again.
        B = stylegan.load_network(b_path)
        ws, noise = load_ws(folder / "projected_w.npz", B.num_ws, B.w_dim)
        assert np.array_equal(synthesize(B, ws, noise=noise)[0].numpy(), panels[2])


@pytest.mark.parametrize("cfg", ["stylegan2", "stylegan3-t"])
def test_translating_with_a_itself_gives_the_reconstruction(cfg, tmp_path):
    G = tiny_generator(cfg, 16)
    PIL.Image.fromarray(render(G, seeds=[5])[0].numpy()).save(tmp_path / "x.png")
    [(result, paths)] = translate_images(G, G, [tmp_path / "x.png"], tmp_path / "out", FEW, progress=False)
    assert paths["translation"].read_bytes() == paths["image"].read_bytes()
    assert np.array_equal(read_png(paths["translation"]), result.image)


def test_translate_with_a_blend_draws_with_the_blended_network(photos, tmp_path):
    A, B = tiny_generator("stylegan2", 16, seed=0), tiny_generator("stylegan2", 16, seed=1)
    blend = BlendOptions(swap_res=8, flag_prefix="--blend-")
    [(result, paths)] = translate_images(A, B, [photos / "cat.png"], tmp_path / "out", FEW, blend=blend,
                                         progress=False)
    expected = synthesize(blend_networks(A, B, blend), result.ws, noise=result.noise)[0].numpy()
    assert np.array_equal(read_png(paths["translation"]), expected)


def test_translate_checks_every_input_before_any_work(nets, photos, tmp_path, capsys):
    (photos / "broken.png").write_text("this is not an image")
    (tmp_path / "empty").mkdir()
    (tmp_path / "other").mkdir()
    PIL.Image.new("RGB", (8, 8)).save(tmp_path / "other" / "cat.png")
    base = ["translate", "--network-a", nets["sg2"], "--steps", "1", "--outdir", tmp_path / "o"]
    cases = [
        (["--network-b", nets["sg2"], "--target", photos], "--target", "broken.png: cannot read it as an image"),
        (["--network-b", nets["sg2"], "--target", tmp_path / "empty"], "--target", "a folder with no images"),
        (["--network-b", nets["sg2"], "--target", photos / "cat.png", "--target", tmp_path / "other"], "--target",
         "would write the same outputs (cat.png)"),
        (["--network-b", nets["sg2_32"], "--target", photos / "cat.png"], "differ in img_resolution", ""),
        (["--network-b", nets["sg2"], "--target", photos / "cat.png", "--blend-swap-res", "3"],
         "--blend-swap-res: 3 is not allowed", ""),
        (["--network-b", nets["sg2"], "--target", photos / "cat.png", "--blend-smooth", "2"],
         "--blend-smooth needs --blend-swap-res or --blend-swap-layer", ""),
    ]
    for args, what, hint in cases:
        code, _, err = run_cli(base + args, capsys)
        assert code == 2 and what in err and hint in err and err.count("\n") == 1, (args, err)
    assert not (tmp_path / "o").exists()
