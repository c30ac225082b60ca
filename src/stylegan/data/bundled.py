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


# Images of the bundled sets that the shipped emoji network never saw in training (smileys, a cat, a pretzel), so the
# demo can translate real Noto emoji that are not in its training data. Indices into both sets (they are paired).
HELD_OUT = (835, 844, 849, 850, 891, 900, 1123, 1133)


def bundled_training_set(name: str, dest: str | Path, resolution: int, held_out: tuple[int, ...] = HELD_OUT) -> Path:
    """The bundled set `name` at resolution x resolution, without the `held_out` images, as a zip at `dest`.

    Written once: an existing `dest` is reused. The zip keeps NVIDIA's layout and the images' original names."""
    import tempfile
    import zipfile

    from stylegan.data.dataset_tool import ConvertOptions, convert_dataset

    dest = Path(dest)
    if dest.is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        full = Path(tmp) / "full.zip"
        convert_dataset(name, full, ConvertOptions(resolution=(resolution, resolution)))
        dropped = {f"img{i:08d}.png" for i in held_out}
        part = Path(tmp) / "part.zip"
        with zipfile.ZipFile(full) as src, zipfile.ZipFile(part, "w") as out:
            for info in src.infolist():
                if info.filename.rsplit("/", 1)[-1] not in dropped:
                    out.writestr(info, src.read(info))
        part.replace(dest)
    return dest


def held_out_images(name: str, held_out: tuple[int, ...] = HELD_OUT) -> list[tuple[str, bytes]]:
    """(file name, PNG bytes) of the held-out images of the bundled set `name`, at its full resolution."""
    import zipfile

    wanted = {f"img{i:08d}.png" for i in held_out}
    with zipfile.ZipFile(bundled_dataset_path(name)) as z:
        return [(n.rsplit("/", 1)[-1], z.read(n)) for n in sorted(z.namelist()) if n.rsplit("/", 1)[-1] in wanted]
