"""Rebuild src/stylegan/data/assets/demo.zip from Debian's fonts-noto-color-emoji package.

    python scripts/build_demo_dataset.py                    # apt-get download, needs Debian/Ubuntu
    python scripts/build_demo_dataset.py --deb FILE.deb     # or a .deb fetched by hand
    python scripts/build_demo_dataset.py --font NotoColorEmoji.ttf

What it does, so the provenance can be checked:
  1. `apt-get download fonts-noto-color-emoji`, then `dpkg -x` into a temporary folder.
  2. Reads the font's character map and keeps the single code points that are emoji: no ASCII (the digits, '#'
     and '*' are keycap bases), no regional indicators (flag halves), no skin-tone modifiers, no tag or
     private-use characters, and no code point whose glyph is blank (ZWJ, variation selectors). Sequences
     (flags, skin tones, ZWJ families) are never reached, because they exist only through the font's
     ligature table, which this script does not apply.
  3. Renders each with Pillow from the embedded colour bitmaps (the font's only strike: 109 ppem, 136x128),
     pads it to 136x136 with transparency, and saves it as u1F600.png and so on.
  4. Converts that folder with our own `convert_dataset`: composited on white, resized to 64x64 with Lanczos,
     PNGs at zlib level 9 so the zip stays small. The zip has fixed timestamps: the same package version
     gives the same bytes, whose SHA-256 the script prints.

The images are Apache-2.0 (see NOTICE). Only Pillow and our package are needed.
"""
from __future__ import annotations

import argparse
import glob
import hashlib
import os
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import PIL.Image
import PIL.ImageDraw
import PIL.ImageFont

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "src" / "stylegan" / "data" / "assets" / "demo.zip"
PACKAGE = "fonts-noto-color-emoji"
FONT_IN_PACKAGE = "usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"
STRIKE_PPEM = 109                       # the size of the font's one bitmap strike; any other size is rescaled
GLYPH_BOX = (136, 128)                  # width, height of the embedded bitmaps at that strike
RESOLUTION = 64

EXCLUDED_RANGES = [
    (0x0000, 0x007F),                   # ASCII: space, digits, '#', '*' render as plain text glyphs
    (0x1F1E6, 0x1F1FF),                 # regional indicators: the halves of flag sequences
    (0x1F3FB, 0x1F3FF),                 # skin-tone modifiers: colour swatches on their own
    (0xE000, 0xF8FF),                   # private use (BMP)
    (0xE0000, 0xE007F),                 # tag characters (subdivision flags)
    (0xF0000, 0x10FFFF),                # private use (planes 15 and 16)
]


def cmap_codepoints(font_bytes: bytes) -> set[int]:
    """Code points in the font's Unicode character map (cmap subtable format 12, or format 4 as a fallback)."""
    num_tables = struct.unpack(">H", font_bytes[4:6])[0]
    tables = {}
    for i in range(num_tables):
        tag, _checksum, offset, _length = struct.unpack(">4sIII", font_bytes[12 + 16 * i:28 + 16 * i])
        tables[tag] = offset
    cmap = tables[b"cmap"]
    count = struct.unpack(">H", font_bytes[cmap + 2:cmap + 4])[0]
    codepoints: set[int] = set()
    for i in range(count):
        _platform, _encoding, sub = struct.unpack(">HHI", font_bytes[cmap + 4 + 8 * i:cmap + 12 + 8 * i])
        at = cmap + sub
        fmt = struct.unpack(">H", font_bytes[at:at + 2])[0]
        if fmt == 12:                   # groups of (first, last, glyph) in 32-bit code points
            groups = struct.unpack(">I", font_bytes[at + 12:at + 16])[0]
            for g in range(groups):
                first, last, _glyph = struct.unpack(">III", font_bytes[at + 16 + 12 * g:at + 28 + 12 * g])
                codepoints.update(range(first, last + 1))
        elif fmt == 4:                  # segments of 16-bit code points; the last one (0xFFFF) is padding
            segs = struct.unpack(">H", font_bytes[at + 6:at + 8])[0] // 2
            ends = struct.unpack(f">{segs}H", font_bytes[at + 14:at + 14 + 2 * segs])
            starts = struct.unpack(f">{segs}H", font_bytes[at + 16 + 2 * segs:at + 16 + 4 * segs])
            for first, last in zip(starts, ends):
                if first != 0xFFFF:
                    codepoints.update(range(first, last + 1))
    return codepoints


def keep(codepoint: int) -> bool:
    return not any(lo <= codepoint <= hi for lo, hi in EXCLUDED_RANGES)


def render(font: PIL.ImageFont.FreeTypeFont, codepoint: int) -> PIL.Image.Image | None:
    """The glyph on a transparent 136x136 square, or None when it is blank."""
    glyph = PIL.Image.new("RGBA", GLYPH_BOX, (0, 0, 0, 0))
    PIL.ImageDraw.Draw(glyph).text((0, 0), chr(codepoint), font=font, embedded_color=True)
    if glyph.getchannel("A").getextrema()[1] == 0:
        return None
    side = max(GLYPH_BOX)
    square = PIL.Image.new("RGBA", (side, side), (0, 0, 0, 0))
    square.paste(glyph, ((side - GLYPH_BOX[0]) // 2, (side - GLYPH_BOX[1]) // 2))
    return square


def fetch_font(workdir: Path, deb: Path | None) -> tuple[Path, str]:
    """Extract the font from the package; returns (font path, package version)."""
    if deb is None:
        os.chmod(workdir, 0o777)        # apt downloads as its own user, who must be able to write here
        subprocess.run(["apt-get", "download", PACKAGE], cwd=workdir, check=True)
        deb = Path(glob.glob(str(workdir / f"{PACKAGE}_*.deb"))[0])
    version = subprocess.run(["dpkg-deb", "--field", str(deb), "Version"], check=True, capture_output=True,
                             text=True).stdout.strip()
    subprocess.run(["dpkg", "-x", str(deb), str(workdir / "root")], check=True)
    return workdir / "root" / FONT_IN_PACKAGE, version


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--deb", type=Path, help=f"a downloaded {PACKAGE} .deb (default: apt-get download)")
    parser.add_argument("--font", type=Path, help="use this NotoColorEmoji.ttf directly (version is then unknown)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()

    sys.path.insert(0, str(REPO / "src"))
    from stylegan.data import ConvertOptions, convert_dataset

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        font_path, version = (args.font, "unknown") if args.font else fetch_font(work, args.deb)
        font = PIL.ImageFont.truetype(str(font_path), STRIKE_PPEM, layout_engine=PIL.ImageFont.Layout.BASIC)
        glyphs = work / "glyphs"
        glyphs.mkdir()
        candidates = sorted(cp for cp in cmap_codepoints(font_path.read_bytes()) if keep(cp))
        blank = 0
        for cp in candidates:
            image = render(font, cp)
            if image is None:
                blank += 1
                continue
            image.save(glyphs / f"u{cp:05X}.png")
        print(f"{PACKAGE} {version}: {len(candidates)} single code points, {blank} blank, "
              f"{len(candidates) - blank} rendered")
        summary = convert_dataset(glyphs, args.out, ConvertOptions(
            resolution=(RESOLUTION, RESOLUTION), background="white", compress_level=9, overwrite=True))
    print(summary.format())
    print(f"sha256 {hashlib.sha256(args.out.read_bytes()).hexdigest()}  {args.out}")


if __name__ == "__main__":
    main()
