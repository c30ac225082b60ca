"""Datasets for training (zip or folder, NVIDIA's layout), the sampler, the dataset tool and the bundled datasets.

    ImageDataset(path, resolution=None, use_labels=False, xflip=False, max_size=None, seed=0)
    InfiniteSampler(dataset_size, rank=0, world_size=1, seed=0, shuffle=True, start_index=0)
    iterate_batches(dataset, batch_size, max_items=None, rank=0, world_size=1, num_workers=0)
    convert_dataset(source, dest, ConvertOptions(...), progress=False) -> ConversionSummary
    bundled_dataset_path(name) -> Path          name in BUNDLED_DATASETS: 'demo', 'openmoji'
    demo_dataset_path() -> Path
"""
from stylegan.data.bundled import BUNDLED_DATASETS, bundled_dataset_path, demo_dataset_path, is_bundled_dataset
from stylegan.data.dataset import ImageDataset, iterate_batches
from stylegan.data.dataset_tool import ConversionSummary, ConvertOptions, convert_dataset, parse_resolution
from stylegan.data.sampler import InfiniteSampler

__all__ = [
    "ImageDataset", "iterate_batches", "InfiniteSampler", "ConversionSummary", "ConvertOptions",
    "convert_dataset", "parse_resolution", "BUNDLED_DATASETS", "bundled_dataset_path", "demo_dataset_path",
    "is_bundled_dataset",
]
