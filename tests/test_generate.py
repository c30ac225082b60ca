"""stylegan generate / mix and the pure rendering functions under them."""
from __future__ import annotations

import io
import shlex

import numpy as np
import PIL.Image
import pytest
import torch

import stylegan
from stylegan.core.errors import UsageError
from stylegan.generate import (
    RenderOptions, generate_command, image_grid, make_transform, mix_figure, render, save_ws, seeds_to_ws, seeds_to_z,
    style_mix, synthesize)
from test_generate_support import run_cli, tiny_generator

pytestmark = pytest.mark.usefixtures("one_thread")


def read_png(path) -> np.ndarray:
    return np.asarray(PIL.Image.open(path).convert("RGB"))


@pytest.fixture(scope="module")
def G2():
    return tiny_generator("stylegan2", 16)


# --- pure functions ------------------------------------------------------------------------------------------------

def test_seeds_give_nvidias_z():
    z = seeds_to_z([0, 42, 2 ** 32 - 1], 64)
    for row, seed in zip(z, [0, 42, 2 ** 32 - 1]):
        assert torch.equal(row, torch.from_numpy(np.random.RandomState(seed).randn(1, 64)[0]).float())
    with pytest.raises(UsageError, match="--seeds: seed -1 is out of range"):
        seeds_to_z([-1], 64)


def test_make_transform_is_rotation_then_shift():
    m = make_transform((0.1, -0.2), 90)
    assert np.allclose(m, [[0, 1, 0.1], [-1, 0, -0.2], [0, 0, 1]])
    assert np.array_equal(make_transform((0, 0), 360), np.eye(3))       # a full turn is exactly the identity


def test_images_do_not_depend_on_batch_size_and_random_noise_follows_the_seed(G2):
    a = render(G2, seeds=[3, 4, 5], batch=3)
    assert torch.equal(a, render(G2, seeds=[3, 4, 5], batch=1))
    r = render(G2, seeds=[3, 4], options=RenderOptions(noise_mode="random"))
    assert torch.equal(r[1], render(G2, seeds=[4], options=RenderOptions(noise_mode="random"))[0])
    assert not torch.equal(r[0], a[0])                                     # random noise is not the stored noise


def test_style_mix_takes_exactly_the_chosen_layers(G2):
    ws = seeds_to_ws(G2, [1, 2])
    other = seeds_to_ws(G2, [9])
    mixed = style_mix(ws, other, [0, 2])
    assert torch.equal(mixed[:, [0, 2]], other[:, [0, 2]].expand(2, -1, -1))
    assert torch.equal(mixed[:, [1, 3, 4, 5]], ws[:, [1, 3, 4, 5]])
    with pytest.raises(UsageError, match="--styles: layer 6 does not exist; this network has 6 layers, 0-5"):
        style_mix(ws, other, [6])


def test_image_grid_fills_rows_and_leaves_empty_cells_black():
    images = np.stack([np.full([2, 3, 3], v, dtype=np.uint8) for v in (10, 20, 30)])
    grid = image_grid(images, cols=2, rows=2)
    assert grid.shape == (4, 6, 3)
    assert (grid[:2, :3] == 10).all() and (grid[:2, 3:] == 20).all() and (grid[2:, :3] == 30).all()
    assert (grid[2:, 3:] == 0).all()


def test_rendering_leaves_the_generator_as_it_was(nets):
    G3 = stylegan.load_network(nets["sg3"])
    before = {k: v.clone() for k, v in G3.state_dict().items()}
    render(G3, seeds=[0], options=RenderOptions(translate=(0.2, 0), rotate=30))
    assert all(torch.equal(before[k], v) for k, v in G3.state_dict().items())


# --- stylegan generate ---------------------------------------------------------------------------------------------

def test_generate_writes_identical_bytes_for_identical_inputs(nets, tmp_path, capsys):
    for run in ("a", "b"):
        code, out, _ = run_cli(["generate", "--network", nets["sg2"], "--seeds", "0-2,42", "--trunc", "0.7",
                                "--outdir", tmp_path / run, "--device", "cpu"], capsys)
        assert code == 0 and "wrote 4 images" in out
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == ["seed0000.png", "seed0001.png", "seed0002.png", "seed0042.png"]
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert (tmp_path / "a" / "seed0000.png").read_bytes() != (tmp_path / "a" / "seed0001.png").read_bytes()
    # The bytes are those of the library's render: the CLI adds nothing but the file.
    G = stylegan.load_network(nets["sg2"])
    expected = render(G, seeds=[42], options=RenderOptions(psi=0.7))[0].numpy()
    assert np.array_equal(read_png(tmp_path / "a" / "seed0042.png"), expected)


def test_trunc_zero_gives_the_same_image_for_every_seed(nets, tmp_path, capsys):
    for psi in ("0", "1"):
        code, _, _ = run_cli(["generate", "--network", nets["sg2"], "--seeds", "0-3", "--trunc", psi,
                              "--outdir", tmp_path / psi], capsys)
        assert code == 0
    same = {(tmp_path / "0" / f"seed{s:04d}.png").read_bytes() for s in range(4)}
    differ = {(tmp_path / "1" / f"seed{s:04d}.png").read_bytes() for s in range(4)}
    assert len(same) == 1 and len(differ) == 4


def test_translate_moves_stylegan3_content(nets, tmp_path, capsys):
    for name, shift in (("still", "0,0"), ("moved", "0.25,0"), ("down", "0,0.25")):
        code, _, _ = run_cli(["generate", "--network", nets["sg3"], "--seeds", "5", "--translate", shift,
                              "--outdir", tmp_path / name], capsys)
        assert code == 0
    still, moved, down = (read_png(tmp_path / n / "seed0005.png").astype(int) for n in ("still", "moved", "down"))
    assert np.abs(still - moved).mean() > 2                                # the picture changed ...
    # ... by moving a quarter of the 16 px width to the right (positive y: down), texture and all.
    assert np.abs(np.roll(still, 4, axis=1)[:, 4:] - moved[:, 4:]).max() <= 1
    assert np.abs(np.roll(still, 4, axis=0)[4:] - down[4:]).max() <= 1


def test_translate_and_rotate_are_refused_for_stylegan2(nets, tmp_path, capsys):
    for flag, value in (("--translate", "0.1,0"), ("--rotate", "15")):
        code, _, err = run_cli(["generate", "--network", nets["sg2"], "--seeds", "0", flag, value,
                                "--outdir", tmp_path], capsys)
        assert code == 2 and "StyleGAN2 network, which has none" in err and err.count("\n") == 1
    assert not list(tmp_path.iterdir())


def test_grid_writes_one_image_of_the_separate_ones(nets, tmp_path, capsys):
    run_cli(["generate", "--network", nets["sg2"], "--seeds", "3-5", "--outdir", tmp_path / "one"], capsys)
    code, out, _ = run_cli(["generate", "--network", nets["sg2"], "--seeds", "3-5", "--grid", "2x2",
                            "--outdir", tmp_path / "grid"], capsys)
    assert code == 0 and sorted(p.name for p in (tmp_path / "grid").iterdir()) == ["grid.png"]
    grid = read_png(tmp_path / "grid" / "grid.png")
    tiles = [read_png(tmp_path / "one" / f"seed{s:04d}.png") for s in (3, 4, 5)]
    assert grid.shape == (32, 32, 3)
    assert np.array_equal(grid[:16, :16], tiles[0]) and np.array_equal(grid[:16, 16:], tiles[1])
    assert np.array_equal(grid[16:, :16], tiles[2]) and not grid[16:, 16:].any()
    code, _, err = run_cli(["generate", "--network", nets["sg2"], "--seeds", "0-4", "--grid", "2x2",
                            "--outdir", tmp_path / "x"], capsys)
    assert code == 2 and "--grid 2x2 has 4 cells but there are 5 images" in err


def test_ws_file_renders_like_the_seeds_it_came_from(nets, tmp_path, capsys):
    G = stylegan.load_network(nets["sg2"])
    save_ws(tmp_path / "w.npz", seeds_to_ws(G, [7, 8], psi=0.5))
    run_cli(["generate", "--network", nets["sg2"], "--seeds", "7,8", "--trunc", "0.5", "--outdir", tmp_path / "s"],
            capsys)
    code, _, _ = run_cli(["generate", "--network", nets["sg2"], "--ws", tmp_path / "w.npz", "--outdir", tmp_path / "w"],
                         capsys)
    assert code == 0
    assert (tmp_path / "w" / "w0000.png").read_bytes() == (tmp_path / "s" / "seed0007.png").read_bytes()
    assert (tmp_path / "w" / "w0001.png").read_bytes() == (tmp_path / "s" / "seed0008.png").read_bytes()
    # Latents for another network are refused, with the shapes in the message.
    np.savez(tmp_path / "bad.npz", w=np.zeros([1, 3, 64], dtype=np.float32))
    code, _, err = run_cli(["generate", "--network", nets["sg2"], "--ws", tmp_path / "bad.npz"], capsys)
    assert code == 2 and "[1, 3, 64] do not fit this network, which takes [N, 6, 64]" in err


def test_ws_with_trunc_truncates_like_seeds_with_trunc(nets, tmp_path, capsys):
    # --trunc on untruncated latents from a file applies the mapping network's own rule, cutoff included.
    G = stylegan.load_network(nets["sg2"])
    save_ws(tmp_path / "w.npz", seeds_to_ws(G, [3, 4]))
    for extra in ([], ["--trunc-cutoff", "2"]):
        seeds, files = tmp_path / f"s{len(extra)}", tmp_path / f"w{len(extra)}"
        run_cli(["generate", "--network", nets["sg2"], "--seeds", "3,4", "--trunc", "0.3", *extra,
                 "--outdir", seeds], capsys)
        code, _, _ = run_cli(["generate", "--network", nets["sg2"], "--ws", tmp_path / "w.npz", "--trunc", "0.3",
                              *extra, "--outdir", files], capsys)
        assert code == 0
        assert (files / "w0000.png").read_bytes() == (seeds / "seed0003.png").read_bytes()
        assert (files / "w0001.png").read_bytes() == (seeds / "seed0004.png").read_bytes()
    assert (tmp_path / "s0" / "seed0003.png").read_bytes() != (tmp_path / "s2" / "seed0003.png").read_bytes()


def test_conditional_network_needs_a_valid_class(nets, tmp_path, capsys):
    base = ["generate", "--network", nets["cond"], "--seeds", "1", "--outdir"]
    code, _, err = run_cli(base + [tmp_path / "none"], capsys)
    assert code == 2 and "conditional (4 classes); pass --class N with N in 0..3" in err
    code, _, err = run_cli(base + [tmp_path / "big", "--class", "4"], capsys)
    assert code == 2 and "--class 4: this network has 4 classes; use 0..3" in err
    for c in ("0", "3"):
        assert run_cli(base + [tmp_path / c, "--class", c], capsys)[0] == 0
    assert (tmp_path / "0" / "seed0001.png").read_bytes() != (tmp_path / "3" / "seed0001.png").read_bytes()
    # Latents of a conditional network already hold their class: --ws needs no --class, and refuses one.
    G = stylegan.load_network(nets["cond"])
    save_ws(tmp_path / "w.npz", seeds_to_ws(G, [1], class_idx=3))
    ws_args = ["generate", "--network", nets["cond"], "--ws", tmp_path / "w.npz", "--outdir", tmp_path / "ws"]
    assert run_cli(ws_args, capsys)[0] == 0
    assert (tmp_path / "ws" / "w0000.png").read_bytes() == (tmp_path / "3" / "seed0001.png").read_bytes()
    code, _, err = run_cli(ws_args + ["--class", "3"], capsys)
    assert code == 2 and "--class has no effect with --ws" in err


def test_bad_input_gets_one_clear_line(nets, tmp_path, capsys):
    (tmp_path / "file").write_text("not a folder")
    out = ["--outdir", tmp_path / "out"]
    cases = [
        (["--network", tmp_path / "missing.safetensors", "--seeds", "0", *out], "--network: ",
         "missing.safetensors: no such file"),
        (["--network", nets["sg2"], "--seeds", "0-x", *out], "--seeds: cannot read '0-x'", "such as 0-7,42"),
        (["--network", nets["sg2"], "--seeds", "1", "--class", "3", *out], "--class 3: ", "unconditional (c_dim=0)"),
        (["--network", nets["sg2"], *out], "give either --seeds or --ws", ""),
        (["--network", nets["sg2"], "--seeds", "0", "--translate", "1", *out], "--translate: cannot read '1'", "X,Y"),
        (["--network", nets["sg2"], "--seeds", "0", "--outdir", tmp_path / "file" / "sub"], "--outdir",
         "cannot write there"),
    ]
    for args, what, hint in cases:
        code, _, err = run_cli(["generate", *args], capsys)
        assert code == 2 and what in err and hint in err, (args, err)
        assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists()                                 # nothing was half made


def test_generate_command_reproduces_the_render(nets, tmp_path, capsys):
    G = stylegan.load_network(nets["sg3"])
    options = RenderOptions(psi=0.6, translate=(0.1, -0.05), rotate=10)
    line = generate_command(str(nets["sg3"]), [2], options, outdir=str(tmp_path))
    assert line.startswith("stylegan generate --network ")
    code, _, _ = run_cli(shlex.split(line)[1:], capsys)
    assert code == 0
    assert np.array_equal(read_png(tmp_path / "seed0002.png"), render(G, seeds=[2], options=options)[0].numpy())


# --- stylegan mix --------------------------------------------------------------------------------------------------

def test_mix_grid_has_sources_on_its_edges_and_mixes_inside(nets, tmp_path, capsys):
    rows, cols, styles = [1, 2, 3], [10, 11], [0, 1, 2]
    code, out, _ = run_cli(["mix", "--network", nets["sg2"], "--rows", "1-3", "--cols", "10,11", "--styles", "0-2",
                            "--output", tmp_path / "mix.png"], capsys)
    assert code == 0 and "3 rows x 2 columns" in out
    fig = read_png(tmp_path / "mix.png")
    assert fig.shape == (16 * 4, 16 * 3, 3)
    G = stylegan.load_network(nets["sg2"])
    cell = lambda r, c: fig[16 * r:16 * (r + 1), 16 * c:16 * (c + 1)]      # noqa: E731
    row_img, col_img = render(G, seeds=rows).numpy(), render(G, seeds=cols).numpy()
    assert not cell(0, 0).any()                                            # the corner is black
    for j in range(2):
        assert np.array_equal(cell(0, j + 1), col_img[j])                  # column sources along the top
    for i in range(3):
        assert np.array_equal(cell(i + 1, 0), row_img[i])                  # row sources down the left
        for j in range(2):
            mixed = style_mix(seeds_to_ws(G, [rows[i]]), seeds_to_ws(G, [cols[j]]), styles)
            assert np.array_equal(cell(i + 1, j + 1), synthesize(G, mixed)[0].numpy())
            assert not np.array_equal(cell(i + 1, j + 1), row_img[i])


def test_mixing_every_layer_gives_the_column_image(G2):
    fig = mix_figure(G2, [1], [2], styles=range(G2.num_ws))
    assert np.array_equal(fig[16:, 16:], fig[:16, 16:])
    with pytest.raises(UsageError, match="--styles: layer 9 does not exist"):
        mix_figure(G2, [1], [2], styles=[9])


def test_png_bytes_carry_no_varying_metadata(G2, tmp_path):
    from stylegan.generate import png_bytes
    image = render(G2, seeds=[0])[0].numpy()
    data = png_bytes(image)
    assert data == png_bytes(image.copy())
    assert np.array_equal(np.asarray(PIL.Image.open(io.BytesIO(data))), image)
    assert b"tIME" not in data and b"tEXt" not in data
