"""stylegan directions / edit: PCA directions of W (GANSpace) and edit strips along them."""
from __future__ import annotations

import numpy as np
import PIL.Image
import pytest
import torch

import stylegan
from stylegan.core.errors import UsageError
from stylegan.generate import (
    RenderOptions, apply_direction, compute_directions, edit_strips, load_directions, parse_direction,
    parse_strengths, render, save_ws, seeds_to_ws)
from test_generate_support import run_cli, tiny_generator

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def G2():
    return tiny_generator("stylegan2", 16)


def test_directions_are_orthonormal_sorted_and_explain_what_they_claim(G2):
    d = compute_directions(G2, num_samples=2000, components=10, seed=1)
    v = d.vectors.double()
    assert v.shape == (10, G2.w_dim)
    assert torch.allclose(v @ v.T, torch.eye(10, dtype=torch.float64), atol=1e-5)
    assert (d.stdev[:-1] >= d.stdev[1:]).all() and d.stdev[-1] > 0
    assert (d.explained[:-1] >= d.explained[1:]).all() and 0 < float(d.explained.sum()) <= 1
    # Fresh samples vary along each direction by about its recorded stdev, and most along the first.
    z = torch.from_numpy(np.random.RandomState(99).randn(2000, G2.z_dim)).float()
    w = G2.mapping(z, None)[:, 0]
    spread = ((w - d.mean) @ d.vectors.T).std(dim=0)
    assert torch.allclose(spread, d.stdev, rtol=0.15)
    assert spread[0] > spread[-1] * 1.2
    assert d.layers == [(0, G2.num_ws - 1)] * 10
    # The same seed gives the same file contents.
    again = compute_directions(G2, num_samples=2000, components=10, seed=1)
    assert torch.equal(again.vectors, d.vectors) and torch.equal(again.stdev, d.stdev)


def test_apply_direction_moves_only_the_chosen_layers_and_strength_zero_is_the_identity(G2):
    ws = seeds_to_ws(G2, [1, 2])
    direction = torch.randn(G2.w_dim)
    assert torch.equal(apply_direction(ws, direction, 0.0, [0, 1]), ws)
    moved = apply_direction(ws, direction, 2.0, [1, 3])
    assert torch.allclose(moved[:, [1, 3]] - ws[:, [1, 3]], 2 * direction.expand(2, 2, -1), atol=1e-6)
    assert torch.equal(moved[:, [0, 2, 4, 5]], ws[:, [0, 2, 4, 5]])
    with pytest.raises(UsageError, match="--layers: layer 6 does not exist"):
        apply_direction(ws, direction, 1.0, [6])


def test_edit_with_strength_zero_renders_the_unedited_image(G2):
    d = compute_directions(G2, num_samples=500, components=3)
    ws = seeds_to_ws(G2, [4, 5], psi=0.7)
    strips = edit_strips(G2, ws, d, 1, [-2.0, 0.0, 2.0], layers=[0, 1, 2])
    assert strips.shape == (2, 3, 16, 16, 3)
    plain = render(G2, seeds=[4, 5], options=RenderOptions(psi=0.7))
    assert torch.equal(strips[:, 1], plain)
    assert not torch.equal(strips[:, 0], plain) and not torch.equal(strips[:, 2], plain)


def test_directions_and_edit_commands(nets, tmp_path, capsys):
    dirs = tmp_path / "dirs.npz"
    code, out, _ = run_cli(["directions", "--network", nets["sg2"], "--num-samples", "600", "--components", "5",
                            "--layers", "0-3", "--out", dirs], capsys)
    assert code == 0 and "5 directions, layers 0-3" in out
    d = load_directions(dirs)
    assert len(d) == 5 and d.layers == [(0, 3)] * 5 and d.num_ws == 6 and d.num_samples == 600

    code, out, _ = run_cli(["edit", "--network", nets["sg2"], "--seeds", "1,2", "--direction", f"{dirs}:2",
                            "--strength", "-3,3", "--steps", "7", "--outdir", tmp_path / "edits"], capsys)
    assert code == 0 and "2 strips of 7 images" in out
    strip = np.asarray(PIL.Image.open(tmp_path / "edits" / "edit-seed0001.png"))
    assert strip.shape == (16, 7 * 16, 3)
    run_cli(["generate", "--network", nets["sg2"], "--seeds", "1", "--outdir", tmp_path / "plain"], capsys)
    plain = np.asarray(PIL.Image.open(tmp_path / "plain" / "seed0001.png"))
    assert np.array_equal(strip[:, 3 * 16:4 * 16], plain)                  # the middle (strength 0) is unedited
    assert not np.array_equal(strip[:, :16], plain)

    # Latents from a file edit the same way as the seeds they came from.
    G = stylegan.load_network(nets["sg2"])
    save_ws(tmp_path / "w.npz", seeds_to_ws(G, [1]))
    code, _, _ = run_cli(["edit", "--network", nets["sg2"], "--ws", tmp_path / "w.npz", "--direction", f"{dirs}:2",
                          "--strength=-3,3", "--steps", "7", "--outdir", tmp_path / "wedits"], capsys)
    assert code == 0
    assert (tmp_path / "wedits" / "edit-w0000.png").read_bytes() == \
        (tmp_path / "edits" / "edit-seed0001.png").read_bytes()


def test_a_plain_vector_file_is_a_direction(G2, tmp_path):
    vector = np.random.RandomState(0).randn(1, G2.w_dim).astype(np.float32)
    np.save(tmp_path / "smile.npy", vector)
    d = load_directions(tmp_path / "smile.npy", num_ws=G2.num_ws)
    assert len(d) == 1 and float(d.stdev[0]) == 1 and d.layers == [(0, G2.num_ws - 1)]
    ws = seeds_to_ws(G2, [3])
    strips = edit_strips(G2, ws, d, 0, [1.0])
    expected = render(G2, ws=apply_direction(ws, torch.from_numpy(vector[0]), 1.0))
    assert torch.equal(strips[:, 0], expected)


def test_edit_and_direction_flags_are_checked(nets, tmp_path, capsys):
    assert parse_direction("dirs.npz:3") == ("dirs.npz", 3) and parse_direction("dirs.npz") == ("dirs.npz", 0)
    assert parse_strengths("-3,3", 7) == [-3, -2, -1, 0, 1, 2, 3] and parse_strengths("1.5", 7) == [1.5]
    dirs = tmp_path / "d.npz"
    assert run_cli(["directions", "--network", nets["sg2"], "--num-samples", "100", "--components", "2",
                    "--out", dirs], capsys)[0] == 0
    base = ["edit", "--network", nets["sg2"], "--seeds", "1", "--outdir", tmp_path / "o"]
    cases = [
        (["--direction", f"{dirs}:5"], "index 5 does not exist; the file has 2 directions"),
        (["--direction", tmp_path / "none.npz"], "none.npz: no such file"),
        (["--direction", dirs, "--layers", "0-9"], "--layers: layer 6 does not exist"),
        (["--direction", dirs, "--strength", "a,b"], "--strength: cannot read 'a,b'"),
    ]
    for args, message in cases:
        code, _, err = run_cli(base + args, capsys)
        assert code == 2 and message in err and err.count("\n") == 1, (args, err)
    code, _, err = run_cli(["directions", "--network", nets["sg2"], "--components", "65", "--num-samples", "100",
                            "--out", dirs], capsys)
    assert code == 2 and "--components: 65 is not allowed; use 1 to 64" in err
    code, _, err = run_cli(["edit", "--network", nets["sg2_32"], "--seeds", "1", "--direction", dirs], capsys)
    assert code == 2 and "made for a network with 6 layers, this one has 8" in err


def test_a_directions_file_that_unpacks_past_the_limit_is_one_line(nets, tmp_path, capsys):
    # An .npz that unpacks to 65 MiB (of zeros, so the file itself is tiny): numpy would allocate what a member
    # claims, so the file is refused by its unpacked size before numpy reads it.
    import zipfile
    with zipfile.ZipFile(tmp_path / "bomb.npz", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("directions.npy", bytes(65 * 2 ** 20))
    code, _, err = run_cli(["edit", "--network", nets["sg2"], "--seeds", "1", "--direction", tmp_path / "bomb.npz",
                            "--outdir", tmp_path / "out"], capsys)
    assert code == 2 and "bytes (unpacked)" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
