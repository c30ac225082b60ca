"""`stylegan directions`: unsupervised edit directions by PCA of W, as GANSpace finds them (see docs/generate.md)."""
from __future__ import annotations

import click

from stylegan.cli.common import device_option
from stylegan.core.misc import parse_int_list
from stylegan.generate import compute_directions, load_generator, save_directions


@click.command(name="directions", context_settings={"max_content_width": 110})
@click.option("--network", required=True, metavar="PATH|URL", help="Network: .safetensors, NVIDIA .pkl, or a URL.")
@click.option("--num-samples", type=int, default=10000, show_default=True, help="Seeds mapped to W for the PCA.")
@click.option("--components", type=int, default=20, show_default=True, help="Principal components to keep.")
@click.option("--seed", type=int, default=0, show_default=True, help="First of the sample seeds' random stream.")
@click.option("--class", "class_idx", type=int, metavar="N",
              help="Conditional networks: sample this class (default: random classes).")
@click.option("--layers", metavar="RANGE", help="Layers the directions are meant for, recorded in the file "
              "(e.g. 0-5)  [default: all]")
@click.option("--out", required=True, metavar="FILE.npz", help="Where the directions go.")
@device_option
def command(network, num_samples, components, seed, class_idx, layers, out, device):
    """Find edit directions: principal components of W, sorted by variance.

    \b
    stylegan directions --network ffhq.pkl --num-samples 10000 --components 20 --out dirs.npz
    stylegan edit --network ffhq.pkl --seeds 1,2 --direction dirs.npz:3 --strength -3,3 --steps 7 --layers 0-5
    """
    layer_list = parse_int_list(layers, "--layers") if layers else None
    G = load_generator(network, device)
    directions = compute_directions(G, num_samples, components, seed, class_idx, layer_list)
    path = save_directions(out, directions)
    shares = ", ".join(f"{100 * float(v):.1f}%" for v in directions.explained[:5])
    click.echo(f"wrote {path}: {len(directions)} directions, layers {directions.layers[0][0]}-"
               f"{directions.layers[0][1]}; variance explained by the first: {shares}")
