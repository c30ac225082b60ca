"""Quality metrics with NVIDIA's names and definitions: FID, KID, precision/recall, IS, PPL, equivariance;
and Progressive GAN's sliced Wasserstein distance (swd16k, stylegan.metrics.swd), which needs no feature network.

Library entry points (the CLI and the trainer use these):
    calc_metric(name, G, data, device=..., feature_dir=..., cache_dir=..., num_gen=None, ...) -> result dict
    report_metric(result, run_dir=None, snapshot_pkl=None) -> the JSON line appended to metric-<name>.jsonl
    read_reports(run_dir, name) -> the jsonl entries with "kimg", for curves against training progress
    METRICS: name -> MetricSpec; list_metrics(); parse_metric_list('fid50k_full,kid50k_full')
See docs/metrics.md.
"""
from stylegan.metrics.registry import (
    METRICS, MetricSpec, calc_metric, list_metrics, parse_metric_list, read_reports, report_metric)

__all__ = ["METRICS", "MetricSpec", "calc_metric", "list_metrics", "parse_metric_list", "read_reports", "report_metric"]
