"""Options shared by several commands, so every command spells them the same way."""
from __future__ import annotations

import click

from stylegan.core.device import DEVICE_CHOICES

device_option = click.option(
    "--device", default="auto", show_default=True, metavar="|".join(DEVICE_CHOICES),
    help="Where to run: auto picks CUDA, then MPS, then CPU.")
