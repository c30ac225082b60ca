"""stylegan video: interpolation paths, frame count, size and codec of the MP4, loops that close."""
from __future__ import annotations

import imageio
import numpy as np
import pytest

import stylegan
from stylegan.core.errors import UsageError
from stylegan.generate import RenderOptions, VideoOptions, interpolate, parse_translate_path, render, video_frames
from test_generate_support import run_cli

pytestmark = pytest.mark.usefixtures("one_thread")


def read_video(path) -> tuple[dict, list[np.ndarray]]:
    reader = imageio.get_reader(path, format="FFMPEG")
    try:
        return reader.get_meta_data(), [frame for frame in reader]
    finally:
        reader.close()


@pytest.mark.parametrize("kind", ["cubic", "linear"])
def test_paths_pass_through_their_keyframes(kind):
    keys = np.random.RandomState(0).randn(4, 3, 5)
    open_path = interpolate(keys, w_frames=6, kind=kind)
    assert open_path.shape == (3 * 6 + 1, 3, 5)
    assert np.allclose(open_path[::6], keys)
    loop = interpolate(keys, w_frames=6, kind=kind, loop=True)
    assert loop.shape == (4 * 6 + 1, 3, 5)
    assert np.allclose(loop[::6], np.concatenate([keys, keys[:1]]))
    assert np.array_equal(loop[0], loop[-1])                           # closed exactly, not nearly
    # Between keyframes the path moves smoothly: no step is much larger than the average step.
    steps = np.linalg.norm(np.diff(loop.reshape(len(loop), -1), axis=0), axis=1)
    assert steps.max() < 3 * steps.mean()


def test_a_periodic_cubic_has_no_kink_where_the_loop_closes():
    keys = np.random.RandomState(1).randn(3, 2)
    loop = interpolate(keys, w_frames=20, loop=True)
    # A kink shows as a second difference of order h; a smooth seam's is of order h^2, like everywhere else.
    interior = np.abs(loop[2:-1] - 2 * loop[1:-2] + loop[:-3]).max()
    seam = np.abs(loop[1] - 2 * loop[0] + loop[-2]).max()
    assert seam <= 1.5 * interior
    kinked = interpolate(keys, w_frames=20, kind="linear", loop=True)
    assert np.abs(kinked[1] - 2 * kinked[0] + kinked[-2]).max() > 5 * interior


def test_video_has_the_right_frames_size_and_codec_and_its_loop_closes(nets, tmp_path, capsys):
    out = tmp_path / "loop.mp4"
    code, stdout, stderr = run_cli(["video", "--network", nets["sg2"], "--seeds", "0-5", "--grid", "2x1",
                                    "--w-frames", "4", "--loop", "--trunc", "0.8", "--output", out], capsys)
    assert code == 0 and "13 frames" in stdout                          # 3 keyframes per cell, looped: 3 * 4 + 1
    assert "video:" in stderr and "/13 " in stderr                      # the progress bar
    meta, frames = read_video(out)
    assert meta["codec"] == "h264" and meta["size"] == (32, 16) and meta["fps"] == 60
    assert len(frames) == 13 and frames[0].shape == (16, 32, 3)
    # Before encoding the last frame is the first one, bit for bit; after lossy H.264 they are as close as the
    # codec leaves any frame to its source, and far closer than two different frames are.
    G = stylegan.load_network(nets["sg2"])
    n, rendered = video_frames(G, list(range(6)), VideoOptions(grid=(2, 1), w_frames=4, loop=True, psi=0.8))
    rendered = list(rendered)
    assert n == 13 and np.array_equal(rendered[0], rendered[-1]) and not np.array_equal(rendered[0], rendered[6])
    diff = lambda a, b: np.abs(a.astype(int) - b.astype(int)).mean()   # noqa: E731
    codec_error = max(diff(f, r) for f, r in zip(frames, rendered))
    assert diff(frames[0], frames[-1]) <= codec_error
    assert diff(frames[0], frames[-1]) < diff(frames[0], frames[6]) / 2
    # The cells are independent: the left cell starts at seed 0, the right cell at seed 3.
    starts = render(G, seeds=[0, 3], options=RenderOptions(psi=0.8)).numpy()
    assert np.array_equal(rendered[0][:, :16], starts[0]) and np.array_equal(rendered[0][:, 16:], starts[1])


def test_an_open_path_ends_on_its_last_keyframe(nets, tmp_path, capsys):
    out = tmp_path / "open.mp4"
    code, stdout, _ = run_cli(["video", "--network", nets["sg2"], "--seeds", "0,1,2", "--w-frames", "3",
                               "--kind", "linear", "--output", out], capsys)
    assert code == 0 and "7 frames" in stdout                           # (3 - 1) * 3 + 1
    assert len(read_video(out)[1]) == 7


def test_stylegan3_paths_animate_the_input_transform(nets):
    G = stylegan.load_network(nets["sg3"])
    options = VideoOptions(w_frames=2, loop=True, translate_path=parse_translate_path("0,0:0.25,0"),
                           rotate_path=(0.0, 360.0))
    n, frames = video_frames(G, [4, 4], options)                      # the same seed twice: only the transform moves
    frames = list(frames)
    assert n == 5 and np.array_equal(frames[0], frames[-1])
    assert not np.array_equal(frames[0], frames[2])


def test_video_refuses_what_it_cannot_do(nets, tmp_path, capsys):
    base = ["video", "--network", nets["sg2"], "--output", tmp_path / "v.mp4"]
    cases = [
        (["--seeds", "0-4", "--grid", "2x1"], "5 seeds cannot be dealt to 2 grid cells"),
        (["--seeds", "0"], "at least 2 per cell"),
        (["--seeds", "0-1", "--rotate-path", "0,90"], "StyleGAN2 network, which has none"),
        (["--seeds", "0-1", "--translate-path", "0,0:1"], "--translate-path: cannot read"),
        (["--seeds", "0-1", "--w-frames", "0"], "--w-frames: 0 is not allowed"),
    ]
    for args, message in cases:
        code, _, err = run_cli(base + args, capsys)
        assert code == 2 and message in err and err.count("\n") == 1, (args, err)
    args = ["video", "--network", nets["sg2"], "--seeds", "0-1", "--output", tmp_path / "v.gif"]
    code, _, err = run_cli(args, capsys)
    assert code == 2 and "name it with .mp4" in err
    assert not (tmp_path / "v.mp4").exists()
    with pytest.raises(UsageError, match="--kind"):
        VideoOptions(kind="quadratic")
