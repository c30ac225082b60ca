"""stylegan info PATH: what a network file holds (architecture, resolution, channels, parameters, config)."""
from __future__ import annotations

import json

import click


@click.command(name="info")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON instead of text.")
def command(path: str, as_json: bool) -> None:
    """Describe the networks in PATH: per network its architecture, resolution, channels, parameter counts
    (per top-level submodule and in total) and its full config.

    \b
    Example:
      stylegan info out/demo/stylegan3-t.safetensors
      stylegan info network-snapshot-000200.safetensors --json
    """
    from stylegan.io import describe_network_file, format_description

    info = describe_network_file(path)
    click.echo(json.dumps(info, indent=2) if as_json else format_description(info))
