"""The datasets that ship inside the package, named by a word instead of a path (see NOTICE for their sources).

    demo      1,382 emoji from Noto Color Emoji, 64x64 RGB on white      scripts/build_demo_dataset.py
    openmoji  the same 1,382 code points in the same order, drawn by       scripts/build_openmoji_dataset.py
              OpenMoji (flat colours, black outlines), 64x64 RGB on white

Image i of `openmoji` is the emoji of image i of `demo`, so the pair suits transfer-learning demos: fine-tune
a network trained on one to the other's style. `ImageDataset(name)` and `stylegan dataset --source NAME`
accept these names (through is_bundled_dataset); a folder with the same name can be given as `./NAME`.
"""
from __future__ import annotations

from pathlib import Path

from stylegan.core.errors import StyleGANError

BUNDLED_DATASETS = {                    # name -> (zip under assets/, the script that rebuilds it)
    "demo":     ("demo.zip",     "scripts/build_demo_dataset.py"),
    "openmoji": ("openmoji.zip", "scripts/build_openmoji_dataset.py"),
}


def is_bundled_dataset(spec: object) -> bool:
    """True for the string name of a bundled dataset; a Path (or './demo') always means a file or folder."""
    return isinstance(spec, str) and spec in BUNDLED_DATASETS


def bundled_dataset_path(name: str) -> Path:
    """Path of the bundled zip called `name` ('demo', 'openmoji')."""
    if name not in BUNDLED_DATASETS:
        raise StyleGANError(f"no bundled dataset '{name}'; the bundled ones are {', '.join(BUNDLED_DATASETS)}")
    filename, script = BUNDLED_DATASETS[name]
    path = Path(__file__).resolve().parent / "assets" / filename
    if not path.is_file():
        raise StyleGANError(f"the bundled dataset '{name}' is missing ({path}); reinstall stylegan, "
                            f"or rebuild it with {script}")
    return path


def demo_dataset_path() -> Path:
    """Path of the bundled demo zip; `ImageDataset('demo')` and `stylegan dataset --source demo` name it."""
    return bundled_dataset_path("demo")
