"""Networks that ship inside the package, named by a word wherever a --network is taken (see docs/pretrained.md).

    emoji   StyleGAN2, 32x32, trained on the bundled Noto emoji      scripts/train_emoji_model.py

A name is used only when no file of that name exists, so `./emoji` still means a file in the current folder.
"""
from __future__ import annotations

from pathlib import Path

BUNDLED_NETWORKS = {                    # name -> file under assets/
    "emoji": "emoji-stylegan2-32.safetensors",
}


def bundled_network_dir() -> Path:
    return Path(__file__).resolve().parent / "assets"


def bundled_network_path(name: str) -> Path | None:
    """The shipped file called `name`, or None when `name` is not a bundled network."""
    if not isinstance(name, str) or name not in BUNDLED_NETWORKS:
        return None
    return bundled_network_dir() / BUNDLED_NETWORKS[name]

