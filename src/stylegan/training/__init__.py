"""Training: config presets, the phases and their optimizers (phases.py), losses, EMA, training state, the loop,
and the demo.

    from stylegan.training import TrainingFlags, prepare_config, train
    config = prepare_config(TrainingFlags(outdir='runs', cfg='stylegan3-t', data='data.zip', batch=32, gamma=8.2))
    run_dir = train(config)

`stylegan train` is a thin wrapper around these two calls (see docs/training.md).
"""
from stylegan.training.config import PRESETS, TrainingConfig, TrainingFlags, new_run_config
from stylegan.training.loop import TrainingDiverged, describe_config, train
from stylegan.training.prepare import prepare_config

__all__ = ["PRESETS", "TrainingConfig", "TrainingFlags", "new_run_config", "prepare_config", "train",
           "describe_config", "TrainingDiverged"]
