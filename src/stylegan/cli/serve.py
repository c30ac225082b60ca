"""`stylegan serve`: the web visualizer (see docs/viz.md)."""
from __future__ import annotations

import click

from stylegan.cli.common import device_option


@click.command(name="serve", context_settings={"max_content_width": 110})
@click.option("--network", "networks", multiple=True, metavar="PATH|URL",
              help="A network the page may show (repeat for more): .safetensors, NVIDIA .pkl, or a URL.")
@click.option("--models-dir", metavar="DIR", help="Also offer every .safetensors/.pkl inside this folder.")
@click.option("--directions", "directions", multiple=True, metavar="FILE",
              help="Latent directions from `stylegan directions` (repeat for more; .npz/.npy inside --models-dir "
                   "are found too).")
@click.option("--export-dir", metavar="DIR",
              help="Let the page's Export button write PNG + latents here. Without it the server writes nothing.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Anything but loopback exposes an unauthenticated server: prefer an SSH "
                   "tunnel.")
@click.option("--port", type=click.IntRange(0, 65535), default=7860, show_default=True,
              help="Port (0 = any free port).")
@click.option("--max-size", type=click.IntRange(16, 8192), default=2048, show_default=True, metavar="PX",
              help="Largest image edge a request may ask for.")
@click.option("--load-timeout", type=click.FloatRange(1, 3600), default=60, show_default=True, metavar="SECONDS",
              help="Answer 503 when a network takes longer to load (a damaged or hostile file); the page stays usable.")
@device_option
def command(networks, models_dir, directions, export_dir, host, port, max_size, load_timeout, device):
    """Serve the visualizer: a web page to explore networks (seeds, truncation, StyleGAN3 translate/rotate, style
    mixing, latent directions, layer activations, FFT) that works over an SSH tunnel.

    \b
    stylegan serve --network ffhq.pkl                       # then open http://127.0.0.1:7860/
    stylegan serve --models-dir runs/ --export-dir exports/ --device cuda
    ssh -L 7860:127.0.0.1:7860 gpu-box                      # on your laptop, for a server on gpu-box
    """
    from stylegan.core.device import resolve_device
    from stylegan.viz import ServeConfig, create_app, serve
    from stylegan.viz.server import bind, is_loopback

    config = ServeConfig(networks=list(networks), models_dir=models_dir, directions=list(directions),
                         export_dir=export_dir, host=host, port=port, device=str(resolve_device(device)),
                         max_size=max_size, load_timeout=load_timeout)
    app = create_app(config)                # checks every path and flag before the port is bound
    sock = bind(host, port)
    port = sock.getsockname()[1]
    if not is_loopback(host):
        click.echo(f"warning: --host {host} lets other machines reach this server, which has no authentication "
                   "and loads the networks you named. Prefer the default 127.0.0.1 with an SSH tunnel "
                   "(see docs/viz.md).", err=True)
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"stylegan serve: http://{shown}:{port}/  ({config.device}; Ctrl+C stops)")
    if is_loopback(host):
        click.echo(f"  from another machine: ssh -N -L {port}:127.0.0.1:{port} USER@THIS-HOST, then open "
                   f"http://127.0.0.1:{port}/ there")
    serve(config, app=app, sock=sock)
