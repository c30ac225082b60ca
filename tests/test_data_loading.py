"""ImageDataset (ours and NVIDIA-layout zips), its checks at open, determinism, workers; the resumable sampler."""
from __future__ import annotations

import io
import itertools
import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

from stylegan.core.errors import StyleGANError
from stylegan.data import (
    ConvertOptions, ImageDataset, InfiniteSampler, convert_dataset, demo_dataset_path, iterate_batches)


def png(array: np.ndarray, **save) -> bytes:
    buf = io.BytesIO()
    PIL.Image.fromarray(array).save(buf, format="png", **save)
    return buf.getvalue()


def images(count: int, shape=(8, 8, 3)) -> list[np.ndarray]:
    rng = np.random.default_rng(count)
    return [rng.integers(0, 256, size=shape, dtype=np.uint8) for _ in range(count)]


def nvidia_layout_zip(path: Path, arrays: list[np.ndarray], labels: list | None) -> Path:
    """A zip laid out as NVIDIA's dataset_tool writes it, built by hand: stored entries, uncompressed PNGs,
    1000 per folder, dataset.json last."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        names = []
        for i, arr in enumerate(arrays):
            name = f"{i // 1000:05d}/img{i:08d}.png"
            zf.writestr(name, png(arr, compress_level=0))
            names.append(name)
        meta = {"labels": None if labels is None else [[n, lab] for n, lab in zip(names, labels)]}
        zf.writestr("dataset.json", json.dumps(meta))
    return path


def test_nvidia_layout_zip_loads_with_labels(tmp_path):
    arrays = images(5)
    ds = ImageDataset(nvidia_layout_zip(tmp_path / "ffhq-tiny.zip", arrays, [2, 0, 1, 2, 0]), use_labels=True)
    assert (len(ds), ds.resolution, ds.num_channels, ds.image_shape, ds.name) == (5, 8, 3, [3, 8, 8], "ffhq-tiny")
    assert (ds.label_dim, ds.has_labels) == (3, True)
    image, label = ds[3]
    assert image.dtype == np.uint8 and np.array_equal(image, arrays[3].transpose(2, 0, 1))
    assert label.dtype == np.float32 and label.tolist() == [0, 0, 1]
    assert ImageDataset(tmp_path / "ffhq-tiny.zip").label_dim == 0          # use_labels=False


def test_folder_dataset_matches_the_zip(tmp_path):
    arrays = images(3, (4, 4))
    zip_path = nvidia_layout_zip(tmp_path / "d.zip", arrays, None)
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(tmp_path / "d")
    a, b = ImageDataset(zip_path), ImageDataset(tmp_path / "d", use_labels=True)
    assert b.image_shape == [1, 4, 4] and not b.has_labels and b.name == "d"
    assert all(np.array_equal(a[i][0], b[i][0]) for i in range(3))


def test_our_converted_dataset_loads_with_class_names_and_vectors(tmp_path):
    src = tmp_path / "src"
    for cls in ["b", "a"]:
        (src / cls).mkdir(parents=True)
        for i, arr in enumerate(images(2)):
            (src / cls / f"{i}.png").write_bytes(png(arr))
    convert_dataset(src, tmp_path / "c.zip", ConvertOptions(labels_from_subfolders=True))
    ds = ImageDataset(tmp_path / "c.zip", use_labels=True)
    assert ds.class_names == ["a", "b"] and [ds.get_label(i).argmax() for i in range(4)] == [0, 0, 1, 1]
    vec = nvidia_layout_zip(tmp_path / "v.zip", images(2), [[0.5, 2.0, 1.0], [1.0, 0.0, -1.0]])
    ds = ImageDataset(vec, use_labels=True)
    assert ds.label_dim == 3 and ds.get_label(1).tolist() == [1.0, 0.0, -1.0]


@pytest.mark.parametrize("arrays, resolution, match", [
    ([np.zeros((8, 16, 3), np.uint8)], None, "8 not square|16x8, not square"),
    ([np.zeros((12, 12, 3), np.uint8)], None, "power-of-two"),
    ([np.zeros((8, 8, 3), np.uint8), np.zeros((16, 16, 3), np.uint8)], None, "differ in size or channels"),
    ([np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), np.uint8)], None, "differ in size or channels"),
    ([np.zeros((8, 8, 4), np.uint8)], None, "4 channels"),
    ([np.zeros((8, 8, 2), np.uint8)], None, "2 channels"),
    ([np.zeros((8, 8, 3), np.uint8)], 16, "not the 16x16"),
])
def test_open_refuses_what_stylegan_cannot_train_on(tmp_path, arrays, resolution, match):
    path = nvidia_layout_zip(tmp_path / "bad.zip", arrays, None)
    with pytest.raises(StyleGANError, match=match):
        ImageDataset(path, resolution=resolution)


def test_open_errors_for_missing_paths_bad_files_and_labels(tmp_path):
    with pytest.raises(StyleGANError, match="no such file"):
        ImageDataset(tmp_path / "nope.zip")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(StyleGANError, match="not a zip or a folder"):
        ImageDataset(tmp_path / "x.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(StyleGANError, match="holds no images"):
        ImageDataset(tmp_path / "empty")
    path = nvidia_layout_zip(tmp_path / "l.zip", images(2), [1, 0])
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("00000/img00000002.png", png(images(1)[0]))
    ImageDataset(path)                                                      # labels unused: fine
    with pytest.raises(StyleGANError, match="no label for 1 of 3 images"):
        ImageDataset(path, use_labels=True)


def test_palette_images_load_as_rgb(tmp_path):
    image = PIL.Image.fromarray(images(1)[0]).convert("P")
    (tmp_path / "p").mkdir()
    image.save(tmp_path / "p" / "a.png")
    ds = ImageDataset(tmp_path / "p")
    assert ds.image_shape == [3, 8, 8] and np.array_equal(ds[0][0], np.asarray(image.convert("RGB")).transpose(2, 0, 1))


def test_subset_is_fixed_by_the_seed_and_xflip_mirrors(tmp_path):
    path = nvidia_layout_zip(tmp_path / "s.zip", images(20), None)
    picks = [[ImageDataset(path, max_size=6, seed=s).raw_name(i) for i in range(6)] for s in (1, 1, 2)]
    assert picks[0] == picks[1] and picks[0] != picks[2] and picks[0] == sorted(set(picks[0]))
    flipped = ImageDataset(path, max_size=6, seed=1, xflip=True)
    assert len(flipped) == 12
    for i in range(6):
        assert flipped.raw_name(i) == flipped.raw_name(i + 6) == picks[0][i]
        assert np.array_equal(flipped[i + 6][0], flipped[i][0][:, :, ::-1])


def test_demo_resolves_by_name():
    ds = ImageDataset("demo")
    assert ds.path == demo_dataset_path() and ds.name == "demo"
    assert (ds.resolution, ds.num_channels, ds.label_dim) == (64, 3, 0) and 1300 <= len(ds) <= 1500
    image, _ = ds[0]
    assert image.shape == (3, 64, 64) and image.min() < 128 and image.max() == 255      # a glyph on white


def test_dataloader_workers_see_the_same_images_as_the_main_process(tmp_path):
    path = nvidia_layout_zip(tmp_path / "w.zip", images(12), list(range(12)))
    ds = ImageDataset(path, use_labels=True)
    ds[0]                                               # the parent opens its zip handle before forking
    batches = {}
    for workers in (0, 2):
        loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=workers)
        batches[workers] = [(x.clone(), c.clone()) for x, c in loader]
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(batches[0], batches[2]))
    copy = pickle.loads(pickle.dumps(ds))               # the handle is not pickled; the copy opens its own
    assert np.array_equal(copy[5][0], ds[5][0])


def test_iterate_batches_is_ordered_and_splits_across_ranks(tmp_path):
    ds = ImageDataset(nvidia_layout_zip(tmp_path / "i.zip", images(7), None))
    whole = torch.cat([x for x, _ in iterate_batches(ds, 3)])
    assert whole.shape == (7, 3, 8, 8) and torch.equal(whole[4], torch.from_numpy(ds[4][0]))
    parts = [torch.cat([x for x, _ in iterate_batches(ds, 2, max_items=6, rank=r, world_size=2)]) for r in range(2)]
    assert torch.equal(parts[0], whole[0:6:2]) and torch.equal(parts[1], whole[1:6:2])


# ---------------------------------------------------------------------------------------------------------------
# InfiniteSampler

def take(sampler: InfiniteSampler, count: int) -> list[int]:
    return list(itertools.islice(iter(sampler), count))


def global_stream(size: int, count: int, seed: int = 0) -> list[int]:
    return take(InfiniteSampler(size, seed=seed), count)


def test_each_epoch_is_a_permutation_and_epochs_differ():
    stream = global_stream(10, 30)
    epochs = [stream[i:i + 10] for i in (0, 10, 20)]
    assert all(sorted(e) == list(range(10)) for e in epochs) and len({tuple(e) for e in epochs}) == 3
    assert global_stream(10, 30, seed=1) != stream
    assert take(InfiniteSampler(4, shuffle=False), 6) == [0, 1, 2, 3, 0, 1]


@pytest.mark.parametrize("world_size", [1, 2, 3])
def test_ranks_split_the_global_stream_disjointly(world_size):
    batch_gpu, steps = 4, 5
    per_rank = [take(InfiniteSampler(7, rank=r, world_size=world_size), batch_gpu * steps) for r in range(world_size)]
    stream = global_stream(7, batch_gpu * world_size * steps)
    positions = list(range(len(stream)))
    for r in range(world_size):
        assert per_rank[r] == [stream[p] for p in positions[r::world_size]]
    # Within one step the ranks take disjoint positions that together are the step's slice of the stream.
    for step in range(steps):
        window = slice(step * batch_gpu, (step + 1) * batch_gpu)
        taken = sorted(p for r in range(world_size) for p in positions[r::world_size][window])
        assert taken == list(range(step * batch_gpu * world_size, (step + 1) * batch_gpu * world_size))


@pytest.mark.parametrize("consumed, before, after", [(24, 2, 2), (24, 4, 3), (13, 1, 1), (50, 3, 1), (7, 1, 4)])
def test_resume_from_an_image_count_continues_the_identical_stream(consumed, before, after):
    stream = global_stream(9, consumed + 60)
    # What the ranks drew before stopping is exactly the first `consumed` positions.
    drawn = [take(InfiniteSampler(9, rank=r, world_size=before), len(range(r, consumed, before)))
             for r in range(before)]
    assert sorted(itertools.chain(*drawn)) == sorted(stream[:consumed])
    # Restarted from the image count, possibly with another number of ranks, they continue the same stream.
    continued = {}
    for r in range(after):
        own = [p for p in range(consumed, consumed + 60) if p % after == r]
        continued.update(zip(own, take(InfiniteSampler(9, rank=r, world_size=after, start_index=consumed), len(own))))
    assert [continued[p] for p in range(consumed, consumed + 60)] == stream[consumed:]
    assert InfiniteSampler(9).index_at(consumed) == stream[consumed]


def test_sampler_rejects_bad_arguments():
    for kwargs in ({"dataset_size": 0}, {"dataset_size": 3, "rank": 2, "world_size": 2},
                   {"dataset_size": 3, "start_index": -1}):
        with pytest.raises(ValueError):
            InfiniteSampler(**kwargs)


def test_sampler_drives_a_dataloader(tmp_path):
    ds = ImageDataset(nvidia_layout_zip(tmp_path / "s.zip", images(6), list(range(6))), use_labels=True)
    loader = iter(torch.utils.data.DataLoader(ds, batch_size=4, sampler=InfiniteSampler(len(ds), seed=3)))
    labels = torch.cat([next(loader)[1].argmax(dim=1) for _ in range(3)]).tolist()
    assert labels == global_stream(6, 12, seed=3)
