"""`stylegan metrics`: evaluate a trained generator with NVIDIA's quality metrics (docs/metrics.md)."""
from __future__ import annotations

from pathlib import Path

import click

from stylegan.cli.common import as_command_line, device_option
from stylegan.core import dist
from stylegan.core.errors import UsageError
from stylegan.metrics import METRICS

_EPILOG = "\b\nMetrics (NVIDIA's names and sample counts):\n" + "\n".join(
    f"  {name:<12} {spec.description}" for name, spec in METRICS.items())


def _load_generator(path: str, device):
    from stylegan.io import load_network
    return load_network(path, what="g_ema", device=device)


def _table(rows: list[tuple[str, str, float, str]]) -> str:
    header = ("metric", "result", "value", "time")
    lines = [header] + [(m, k, f"{v:.6g}", t) for m, k, v, t in rows]
    widths = [max(len(str(line[i])) for line in lines) for i in range(4)]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(line, widths)).rstrip() for line in lines)


@click.command("metrics", epilog=_EPILOG)
@click.option("--network", "network", metavar="PATH", help="Generator file (uses G_ema).")
@click.option("--data", metavar="DATASET", help="Real images: a dataset zip or folder (FID, KID, PR need it).")
@click.option("--metrics", "metric_list", default="fid50k_full", show_default=True, metavar="NAME[,NAME...]",
              help="Comma-separated metric names (below), or none.")
@click.option("--mirror", is_flag=True,
              help="Include x-flipped reals (fid50k, fid10k, kid50k, pr50k3; the _full metrics never mirror).")
@device_option
@click.option("--gpus", type=click.IntRange(min=1), default=None, metavar="N",
              help="Processes to split the work over (relaunches under torchrun). [default: 1, or torchrun's]")
@click.option("--feature-dir", type=click.Path(file_okay=False), metavar="DIR",
              help="Folder with the feature networks' weights. [default: $STYLEGAN_CACHE/features]")
@click.option("--cache-dir", type=click.Path(file_okay=False), metavar="DIR",
              help="Folder for cached dataset statistics. [default: $STYLEGAN_CACHE/metrics]")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), metavar="DIR",
              help="Where metric-<name>.jsonl is appended. "
                   "[default: the network's folder; for a URL, the current folder]")
@click.option("--num-gen", type=click.IntRange(min=2), default=None, metavar="N",
              help="Development: generate N samples instead of the metric's own count (e.g. 50k).")
@click.option("--max-real", type=click.IntRange(min=2), default=None, metavar="N",
              help="Development: use at most N real images.")
@click.option("--batch", type=click.IntRange(min=1), default=64, show_default=True, help="Images per feature batch.")
@click.option("--workers", type=click.IntRange(min=0), default=3, show_default=True, help="Data loading processes.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for latents, labels and subsets.")
@click.option("--compile", "compile_", is_flag=True,
              help="torch.compile the generator and the feature network (eager with a warning if it fails).")
@click.option("--export-features", type=click.Path(file_okay=False), metavar="DIR",
              help="Instead: convert the feature networks found to our .safetensors files in DIR, and stop.")
def command(network, data, metric_list, mirror, device, gpus, feature_dir, cache_dir, out_dir, num_gen, max_real,
            batch, workers, seed, compile_, export_features):
    """Evaluate a generator: prints a table and appends one JSON line per metric to metric-<name>.jsonl.

    \b
    Examples:
      stylegan metrics --network run/network-snapshot-000400.safetensors --data ffhq.zip
      stylegan metrics --network G.pkl --data ffhq.zip --metrics fid50k_full,kid50k_full,pr50k3_full --mirror
      stylegan metrics --network G.pkl --metrics eqt50k_int,eqr50k --gpus 2
      torchrun --nproc_per_node 8 -m stylegan metrics --network G.pkl --data ffhq.zip
    """
    from stylegan.metrics import calc_metric, parse_metric_list, report_metric

    if export_features:
        _export(feature_dir, Path(export_features))
        return
    if not network:
        raise UsageError("--network: give the generator file to evaluate (or use --export-features DIR)")
    names = parse_metric_list(metric_list)
    if not names:
        raise UsageError(f"--metrics: nothing to compute; choose from {', '.join(METRICS)}")
    missing = [n for n in names if METRICS[n].needs_data and not data]
    if missing:
        raise UsageError(f"--data: {', '.join(missing)} compare with real images; pass --data DATASET (zip or folder)")
    from stylegan.io.fetch import is_url, local_source
    if not is_url(network) and not local_source(network).is_file():
        raise UsageError(f"--network: no such file {network}")
    if gpus and gpus > 1 and not dist.launched_by_torchrun():   # the same command in N processes
        again = as_command_line(click.get_current_context(), leave_out=("gpus",))
        raise SystemExit(dist.run_under_torchrun(gpus, again))
    dist.torchrun_world(gpus)

    dev = dist.process_device(device)
    dist.init(dev.type)
    try:
        G = _load_generator(network, dev)
        # A downloaded network's folder is the download cache: its reports go to the current folder instead.
        run_dir = Path(out_dir or ("." if is_url(network) else Path(network).resolve().parent))
        rows = []
        for name in names:
            dist.print0(f"Computing {name}...")
            result = calc_metric(name, G, data, device=dev, mirror=mirror, feature_dir=feature_dir, cache_dir=cache_dir,
                                 num_gen=num_gen, max_real=max_real, batch_size=batch, num_workers=workers, seed=seed,
                                 compile=compile_)
            report_metric(result, run_dir=run_dir, snapshot_pkl=network)
            rows += [(name, key, value, result["total_time_str"]) for key, value in result["results"].items()]
        dist.print0(_table(rows))
        dist.print0(f"Appended to {', '.join(str(run_dir / f'metric-{n}.jsonl') for n in names)}")
    finally:
        dist.shutdown()


def _export(feature_dir, dest: Path) -> None:
    from stylegan.core.errors import StyleGANError
    from stylegan.metrics import weights

    written = []
    for what, load, name in (
            ("Inception-v3", lambda: weights.load_inception(feature_dir), "inception-2015-12-05.safetensors"),
            ("VGG16", lambda: weights.load_vgg16(feature_dir, need_fc=False), "vgg16.safetensors")):
        try:
            model, _ident = load()
        except StyleGANError as exc:
            click.echo(f"skipped {what}: {exc}", err=True)
            continue
        written.append(weights.export_safetensors(model, dest / name))
    if not written:
        raise UsageError("--export-features: found no feature network weights to convert; see docs/metrics.md")
    for path in written:
        click.echo(f"wrote {path}")
