"""The bundled demo dataset: about 1,400 emoji from Noto Color Emoji, 64x64 RGB on white (see NOTICE).

scripts/build_demo_dataset.py rebuilds assets/demo.zip from Debian's fonts-noto-color-emoji package.
"""
from __future__ import annotations

from pathlib import Path

from stylegan.core.errors import StyleGANError

DEMO_NAME = "demo"


def demo_dataset_path() -> Path:
    """Path of the bundled demo zip; `ImageDataset('demo')` and `stylegan dataset --source demo` name it."""
    path = Path(__file__).resolve().parent / "assets" / "demo.zip"
    if not path.is_file():
        raise StyleGANError(f"the bundled demo dataset is missing ({path}); reinstall stylegan, "
                            "or rebuild it with scripts/build_demo_dataset.py")
    return path
