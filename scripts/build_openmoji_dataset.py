"""Rebuild src/stylegan/data/assets/openmoji.zip: the demo's emoji drawn by OpenMoji, for style-transfer demos.

    python scripts/build_openmoji_dataset.py                                   # npm pack + apt-get download
    python scripts/build_openmoji_dataset.py --tgz openmoji-17.0.0.tgz --deb fonts-noto-color-emoji_*.deb

The set is paired with the Noto demo set (demo.zip): the same code points in the same order, so image i of
one is image i of the other (a grinning face is a grinning face in both) and only the art style differs:
OpenMoji's flat colours with black outlines against Noto's shaded glyphs.

What it does, so the provenance can be checked:
  1. `npm pack openmoji@17.0.0` from the npm registry (or --tgz), unpacked into a temporary folder. Its
     color/svg/ folder holds one SVG per emoji, named by code points (1F600.svg, 2764-FE0F-200D-1F525.svg).
  2. Takes the code points of the demo set from the Noto font exactly as scripts/build_demo_dataset.py does
     (its own functions, from the same Debian package fonts-noto-color-emoji, `apt-get download` or --deb).
     Each must have a single-code-point OpenMoji file (U+FE0F dropped from the name): no flags, skin tones,
     ZWJ sequences, and none of OpenMoji's private-use or non-emoji extras (extras-openmoji, extras-unicode),
     which the Noto set does not have. A code point OpenMoji lacks is left out and reported.
  3. Rasterises each SVG (its whole 72x72 grid, as drawn) to a transparent 256x256 PNG with rsvg-convert.
  4. Converts that folder with our own `convert_dataset`: composited on white, resized to 64x64 with Lanczos,
     PNGs at zlib level 9. The zip has fixed timestamps: the same package versions and the same librsvg give
     the same bytes, whose SHA-256 the script prints.

Requirements (a maintainer tool; none of this is a dependency of the package): npm (unless --tgz), Debian's
apt-get and dpkg (as for build_demo_dataset.py), and rsvg-convert from Debian's librsvg2-bin
(`apt-get install librsvg2-bin`; the committed zip was made with 2.54.7 on bookworm). Pillow and our package.

The images are CC BY-SA 4.0 (see NOTICE): the zip carries OpenMoji's licence, not the project's.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import PIL.ImageFont

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "src" / "stylegan" / "data" / "assets" / "openmoji.zip"
PACKAGE = "openmoji"
VERSION = "17.0.0"
SVG_DIR = "package/color/svg"
RENDER_SIZE = 256                       # 4x the output side; Lanczos brings it down to RESOLUTION
RESOLUTION = 64
VARIATION_SELECTOR_16 = "FE0F"          # "emoji presentation": OpenMoji names some files with it, Noto maps without


def load_demo_builder():
    """scripts/build_demo_dataset.py as a module, so the Noto set is chosen by one piece of code."""
    spec = importlib.util.spec_from_file_location("build_demo_dataset", REPO / "scripts" / "build_demo_dataset.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def demo_codepoints(demo, workdir: Path, deb: Path | None, font_path: Path | None) -> tuple[list[int], str]:
    """The code points of demo.zip in its order (sorted), and the Noto package version they came from."""
    font_path, version = (font_path, "unknown") if font_path else demo.fetch_font(workdir, deb)
    font = PIL.ImageFont.truetype(str(font_path), demo.STRIKE_PPEM, layout_engine=PIL.ImageFont.Layout.BASIC)
    candidates = sorted(cp for cp in demo.cmap_codepoints(font_path.read_bytes()) if demo.keep(cp))
    return [cp for cp in candidates if demo.render(font, cp) is not None], version


def fetch_openmoji(workdir: Path, tgz: Path | None) -> tuple[Path, str]:
    """Unpack the npm tarball; returns (color/svg folder, package version)."""
    if tgz is None:
        out = subprocess.run(["npm", "pack", f"{PACKAGE}@{VERSION}"], cwd=workdir, check=True, capture_output=True,
                             text=True).stdout.split()
        tgz = workdir / out[-1]
    with tarfile.open(tgz) as tar:
        tar.extractall(workdir / "openmoji", filter="data")
    version = json.loads((workdir / "openmoji" / "package" / "package.json").read_text())["version"]
    return workdir / "openmoji" / SVG_DIR, version


def single_codepoint_svgs(svg_dir: Path) -> dict[int, Path]:
    """OpenMoji's one-code-point files by code point; sequences (flags, skin tones, ZWJ, keycaps) are left out."""
    found = {}
    for path in svg_dir.glob("*.svg"):
        parts = [p for p in path.stem.upper().split("-") if p != VARIATION_SELECTOR_16]
        if len(parts) == 1:
            found[int(parts[0], 16)] = path
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tgz", type=Path, help=f"a downloaded {PACKAGE}-{VERSION}.tgz (default: npm pack)")
    parser.add_argument("--deb", type=Path, help="a downloaded fonts-noto-color-emoji .deb (default: apt-get download)")
    parser.add_argument("--font", type=Path, help="use this NotoColorEmoji.ttf directly for the code points")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()

    sys.path.insert(0, str(REPO / "src"))
    from stylegan.data import ConvertOptions, convert_dataset

    demo = load_demo_builder()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        codepoints, noto_version = demo_codepoints(demo, work, args.deb, args.font)
        svg_dir, version = fetch_openmoji(work, args.tgz)
        svgs = single_codepoint_svgs(svg_dir)
        missing = [cp for cp in codepoints if cp not in svgs]
        rendered = work / "rendered"
        rendered.mkdir()
        for cp in codepoints:
            if cp in missing:
                continue
            # Same names as build_demo_dataset.py, so both folders sort, and so number, their images alike.
            subprocess.run(["rsvg-convert", "--width", str(RENDER_SIZE), "--height", str(RENDER_SIZE),
                            "--output", str(rendered / f"u{cp:05X}.png"), str(svgs[cp])], check=True)
        print(f"{PACKAGE} {version}: {len(svgs)} single-code-point SVGs; "
              f"the Noto set (fonts-noto-color-emoji {noto_version}) has {len(codepoints)} code points, "
              f"{len(codepoints) - len(missing)} rendered, {len(missing)} missing from OpenMoji"
              + (f": {' '.join(f'U+{cp:04X}' for cp in missing)}" if missing else ""))
        summary = convert_dataset(rendered, args.out, ConvertOptions(
            resolution=(RESOLUTION, RESOLUTION), background="white", compress_level=9, overwrite=True))
    print(summary.format())
    print(f"sha256 {hashlib.sha256(args.out.read_bytes()).hexdigest()}  {args.out}")


if __name__ == "__main__":
    main()
