"""The flag table of `stylegan train` (training/config.py OPTIONS) drives the CLI, the config's defaults,
config_as_flags and the --resume rules: each row is checked against each of them."""
from __future__ import annotations

import re

import click
import pytest

from stylegan.cli import main
from stylegan.cli.train import command
from stylegan.core.errors import UsageError
from stylegan.training.config import (
    CHANGE, KEEP, OPTIONS, PLACE, SPLIT, TrainingConfig, TrainingFlags, config_as_flags, new_run_config,
    resumed_run_config)

FIELD_ROWS = [o for o in OPTIONS if o.field]
# A run that differs from the defaults in every flag (the few whose values depend on each other are set here;
# the rest are made from each row's type, so a new row is covered without touching this test).
SET_TOGETHER = dict(outdir="/runs", data="/data/faces.zip", cfg="stylegan2", batch=16, gpus=2, batch_gpu=4,
                    mbstd_group=2, aug="ada", augpipe="bg", device="cpu", fp32=None)


def other_value(row):
    """A valid value of the row's flag that is not its default."""
    if row.name in SET_TOGETHER:
        return SET_TOGETHER[row.name]
    if row.choices:
        return next(c for c in row.choices if c not in (row.default, "auto"))
    if row.type is bool:
        return not row.default
    if row.type is int:
        return (row.default or 1) + 1
    if row.type is float:
        return (row.default or 0.3) / 2       # stays inside [0, 1] for p and target
    return "other"


def options_by_name():
    return {p.name: p for p in command.params}


def test_every_row_is_a_click_option_with_its_default_help_and_type():
    params = options_by_name()
    parsed = command.make_context("train", []).params      # what the command receives when no flag is given
    assert set(params) == {o.name for o in OPTIONS} | {"dry_run"}
    assert [p.name for p in command.params if p.name in {o.name for o in OPTIONS}] == [o.name for o in OPTIONS]
    for row in OPTIONS:
        param = params[row.name]
        assert param.opts == [row.flag], row.name
        if row.name == "device":            # the option every command shares; click fills in its default
            assert parsed[row.name] == row.default and param.show_default and param.help == row.help
            continue
        assert parsed[row.name] is None, row.name   # None = not given, so --resume can tell what was given
        assert param.help == row.help + row.help_note, row.name
        if row.default is not None and row.note is None:
            assert param.help.endswith(f"[default: {row.default}]"), row.name
        if row.choices:
            assert isinstance(param.type, click.Choice) and tuple(param.type.choices) == row.choices
        elif row.type is bool:
            assert param.type is click.BOOL and not param.is_flag and param.flag_value is True
        elif row.min is not None or row.max is not None:
            assert (param.type.min, param.type.max) == (row.min, row.max), row.name
        if row.metavar and row.type is not bool:
            assert param.metavar == row.metavar, row.name


def test_help_lists_every_flag_with_its_note(capsys):
    try:
        main(["train", "--help"])
    except SystemExit:
        pass
    text = " ".join(capsys.readouterr().out.split())      # click wraps lines
    for row in OPTIONS:
        assert row.flag in text
        assert " ".join((row.help + row.help_note).split()) in text, row.name


def test_dataclass_defaults_are_the_table_defaults():
    config = TrainingConfig()
    for row in FIELD_ROWS:
        if row.default is not None:
            section, name = row.field.split(".")
            assert getattr(getattr(config, section), name) == row.to_field(row.default), row.name


def test_config_as_flags_round_trips_every_row():
    given = {row.name: other_value(row) for row in OPTIONS}
    config = new_run_config(TrainingFlags(**given))
    flags = config_as_flags(config)
    assert set(flags) == {row.name for row in FIELD_ROWS}
    for row in FIELD_ROWS:
        section, name = row.field.split(".")
        assert flags[row.name] == getattr(getattr(config, section), name)
        if row.name not in ("outdir", "data"):   # resolved to absolute paths
            assert flags[row.name] == row.to_field(given[row.name]), row.name
    assert new_run_config(TrainingFlags(**flags)) == config
    assert TrainingConfig.from_json(config.to_json()) == config


@pytest.mark.parametrize("row", FIELD_ROWS, ids=lambda row: row.name)
def test_resume_rule_of_every_row(row):
    saved = new_run_config(TrainingFlags(outdir="/runs", cfg="stylegan3-t", data="/data/d.zip", batch=32,
                                         batch_gpu=8, gamma=10))
    value = other_value(row)
    if row.to_field(value) == config_as_flags(saved)[row.name]:    # the same as the saved run: take another
        value = (next(c for c in row.choices if c != value) if row.choices else not value if row.type is bool
                 else f"{value}-other" if row.type is str else value + 1)
    if row.resume == KEEP:
        with pytest.raises(UsageError, match=f"^{re.escape(row.flag)} .*was trained with {re.escape(row.flag)} "):
            resumed_run_config(saved, TrainingFlags(**{row.name: value}), "state")
        # The saved value itself may be given again.
        same = resumed_run_config(saved, TrainingFlags(**{row.name: config_as_flags(saved)[row.name]}), "state")
        assert same == saved
    else:
        resumed = resumed_run_config(saved, TrainingFlags(**{row.name: value}), "state")
        section, name = row.field.split(".")
        if row.resume in (CHANGE, SPLIT):
            assert getattr(getattr(resumed, section), name) == row.to_field(value)
        else:
            assert row.resume == PLACE and resumed == saved


def test_flags_are_typed_and_relaunch_as_arguments():
    with pytest.raises(TypeError):
        TrainingFlags(bacth=32)     # a misspelt flag is an error, not silently ignored
    flags = TrainingFlags(outdir="runs", batch_gpu=4, mirror=True, gpus=2)
    assert flags.given() == dict(outdir="runs", batch_gpu=4, mirror=True, gpus=2)
    assert flags.as_args(leave_out=("gpus",)) == ["--outdir=runs", "--batch-gpu=4", "--mirror=True"]
