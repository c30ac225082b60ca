"""`stylegan dataset`: make a training set from a folder, zip, tar, MNIST, CIFAR-10 or the bundled demo."""
from __future__ import annotations

import contextlib
import signal
from typing import Iterator

import click

from stylegan.data.dataset_tool import (
    BACKGROUNDS, RESIZE_FILTERS, TRANSFORMS, ConvertOptions, convert_dataset, parse_resolution)


@click.command(name="dataset", context_settings={"max_content_width": 110})
@click.option("--source", required=True, metavar="PATH|demo|openmoji",
              help="Folder (searched recursively), .zip, .tar/.tar.gz, MNIST *-images-idx3-ubyte.gz (or its folder), "
                   "cifar-10-python.tar.gz, or 'demo' / 'openmoji' for the bundled emoji sets.")
@click.option("--dest", required=True, metavar="PATH", help="Output: a .zip (uncompressed) or a folder.")
@click.option("--resolution", metavar="WxH",
              help="Size of the images, e.g. 256x256 (or 256). Default: keep the source size.")
@click.option("--transform", type=click.Choice(TRANSFORMS),
              help="Crop: center-crop takes the middle square; -wide / -tall keep a WxH band and pad it square.")
@click.option("--channels", type=click.Choice(["1", "3"]),
              help="Force grayscale (1) or RGB (3). Default: RGB if any image has colour.")
@click.option("--background", type=click.Choice(list(BACKGROUNDS)), default="white", show_default=True,
              help="Colour behind transparent pixels and around -wide/-tall crops.")
@click.option("--max-images", type=int, metavar="N", help="Stop after writing N images.")
@click.option("--labels-from-subfolders", is_flag=True,
              help="Each first-level subfolder is a class (sorted by name); names go into dataset.json.")
@click.option("--resize-filter", type=click.Choice(list(RESIZE_FILTERS)), default="lanczos", show_default=True)
@click.option("--allow-upscale", is_flag=True,
              help="Enlarge images smaller than --resolution instead of skipping them.")
@click.option("--compress-level", type=click.IntRange(0, 9), default=0, show_default=True,
              help="PNG compression: 0 decodes fastest during training, 9 makes the smallest files.")
@click.option("--overwrite", is_flag=True, help="Replace --dest if it exists (only once the new one is complete).")
@click.option("--list-skipped", is_flag=True, help="List every skipped file in the summary, not just examples.")
def command(source, dest, resolution, transform, channels, background, max_images, labels_from_subfolders,
            resize_filter, allow_upscale, compress_level, overwrite, list_skipped):
    """Turn images into a training dataset, and report what was skipped and why.

    \b
    stylegan dataset --source ~/photos --dest cats.zip --transform center-crop --resolution 256x256
    stylegan dataset --source train-images-idx3-ubyte.gz --dest mnist.zip
    stylegan dataset --source demo --dest emoji32.zip --resolution 32x32
    """
    options = ConvertOptions(
        resolution=parse_resolution(resolution) if resolution else None,
        transform=transform,
        channels=int(channels) if channels else None,
        background=background,
        max_images=max_images,
        labels_from_subfolders=labels_from_subfolders,
        resize_filter=resize_filter,
        allow_upscale=allow_upscale,
        compress_level=compress_level,
        overwrite=overwrite,
    )
    with _exit_cleanly_on_sigterm():
        summary = convert_dataset(source, dest, options, progress=True)
    click.echo(summary.format(list_all=list_skipped))


@contextlib.contextmanager
def _exit_cleanly_on_sigterm() -> Iterator[None]:
    """By default SIGTERM (kill, a batch system's time limit) ends Python without unwinding, leaving the temporary
    output behind; as an exception it is removed on the way out, as on Ctrl-C."""
    def terminated(signum, _frame):
        click.echo("Terminated.", err=True)
        raise SystemExit(128 + signum)

    try:
        previous = signal.signal(signal.SIGTERM, terminated)
    except ValueError:                          # not the main thread: leave signals to whoever runs us
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
