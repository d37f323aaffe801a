"""Validation of a runs table (bayes_mixlaw/validation.py): a clear error for every kind of bad input,
naming the file, row and column; the lr and warmup_steps columns' rules."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayes_mixlaw.runs import RunsTableError, load_runs
from conftest import tidy


def test_empty_table(tmp_path):
    with pytest.raises(RunsTableError, match="empty"):
        load_runs(tidy().iloc[:0])


def test_missing_required_column():
    with pytest.raises(RunsTableError, match=r"column 'loss'.*required column"):
        load_runs(tidy().drop(columns="loss"))


def test_unknown_column_suggests_mix_prefix():
    with pytest.raises(RunsTableError, match=r"column 'github'.*'mix:' prefix"):
        load_runs(tidy().assign(github=0.1))


def _csv(tmp_path, frame):
    path = tmp_path / "runs.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    "value,match", [(np.nan, "missing"), (np.inf, "must be finite"), (0.0, "must be positive"), (-1.0, "must be positive"), ("abc", "not a number")]
)
def test_bad_loss_names_file_row_and_column(tmp_path, value, match):
    frame = tidy().astype({"loss": object})
    frame.loc[3, "loss"] = value
    path = _csv(tmp_path, frame)
    with pytest.raises(RunsTableError) as err:
        load_runs(path)
    message = str(err.value)
    assert str(path) in message and "row 5" in message and "column 'loss'" in message  # CSV line 5 = index 3
    if value is not np.nan:
        assert match in message


def test_nan_loss_is_an_error_not_silent():
    frame = tidy()
    frame.loc[0, "loss"] = np.nan
    with pytest.raises(RunsTableError, match="row 0, column 'loss'"):
        load_runs(frame)


def test_proportion_outside_unit_interval():
    frame = tidy()
    frame.loc[frame.run == "r1", "mix:a"] = 1.5
    with pytest.raises(RunsTableError, match=r"row 2, column 'mix:a': proportion 1.5 is outside \[0, 1\]"):
        load_runs(frame)


def test_mixture_not_summing_to_one_is_shown_and_can_be_renormalised():
    frame = tidy()
    # a default mixture that sums to 1.02, as the mixinglaws default does
    frame.loc[frame.run == "r0", "mix:a"] += 0.02
    with pytest.raises(RunsTableError, match=r"run 'r0' sum to 1.02, not 1.*renormalise"):
        load_runs(frame)
    with pytest.warns(UserWarning, match=r"renormalised the mixtures of 1 run.*r0.*1.02"):
        runs = load_runs(frame, renormalize=True)
    assert np.allclose(runs.mixtures().sum(axis=1), 1)
    # a looser tolerance accepts it as given
    assert np.isclose(load_runs(frame, tolerance=0.05).mixtures().loc["r0"].sum(), 1.02)


def test_run_whose_mixture_changes():
    frame = tidy()
    frame.loc[1, "mix:a"] -= 0.1
    frame.loc[1, "mix:b"] += 0.1
    with pytest.raises(RunsTableError, match=r"row 1, column 'mix:a': run 'r0' changes its mixture"):
        load_runs(frame)


def test_duplicated_keys_with_different_losses():
    frame = pd.concat([tidy(), tidy().iloc[[2]].assign(loss=9.0)], ignore_index=True)
    with pytest.raises(RunsTableError, match=r"appears 2 times with different losses.*rows 2, 6"):
        load_runs(frame)


def test_exact_duplicates_are_dropped():
    frame = pd.concat([tidy(), tidy().iloc[[2]]], ignore_index=True)
    assert len(load_runs(frame).data) == len(tidy())


def test_bad_scale_values():
    frame = tidy().assign(params=70_000_000, step=1000.0)
    frame.loc[2, "step"] = 1000.5
    with pytest.raises(RunsTableError, match="row 2, column 'step'.*whole number"):
        load_runs(frame)
    frame.loc[2, "step"] = -5
    with pytest.raises(RunsTableError, match="row 2, column 'step'.*positive"):
        load_runs(frame)


def test_missing_run_name():
    frame = tidy()
    frame.loc[4, "run"] = None
    with pytest.raises(RunsTableError, match="row 4, column 'run': missing name"):
        load_runs(frame)


def _table(**extra):
    frame = pd.DataFrame({"run": ["a", "a", "b"], "step": [10, 20, 10], "valid_domain": "v", "loss": [3.0, 2.9, 3.1]})
    for k, v in extra.items():
        frame[k] = v
    return frame


@pytest.mark.parametrize(
    "column,values,message",
    [
        ("lr", [1e-3, -1e-3, 1e-3], r"row 1, column 'lr': lr is -0.001; a learning rate must be positive"),
        ("lr", [1e-3, np.inf, 1e-3], r"row 1, column 'lr': .*must be finite"),
        ("lr", [1e-3, "fast", 1e-3], r"row 1, column 'lr': lr 'fast' is not a number"),
        ("warmup_steps", [100, 100, -5], r"row 2, column 'warmup_steps': .*whole number of steps >= 0"),
        ("warmup_steps", [100, 10.5, 100], r"row 1, column 'warmup_steps': .*whole number"),
        ("warmup_steps", [100, 200, 100], r"row 1, column 'warmup_steps': run 'a' changes its warmup_steps"),
    ],
)
def test_bad_lr_and_warmup_columns_name_row_and_column(column, values, message):
    with pytest.raises(RunsTableError, match=message):
        load_runs(_table(**{column: values}))


def test_lr_column_rules():
    ok = load_runs(_table(lr=[1e-3, np.nan, 2e-3], warmup_steps=[5, 5, np.nan]))  # empty where unknown
    assert np.isnan(ok.data["lr"].iloc[1]) and ok.data["warmup_steps"].isna().iloc[2]
    frame = pd.concat([_table(lr=[1e-3, 1e-3, 1e-3]).assign(valid_domain="v"), _table(lr=[1e-3, 5e-4, 1e-3]).assign(valid_domain="w")], ignore_index=True)
    with pytest.raises(RunsTableError, match="column 'lr': run 'a' has different learning rates at step 20"):
        load_runs(frame)
    with pytest.raises(RunsTableError, match="column 'lr'.*needs a 'step' column"):
        load_runs(_table(lr=[1e-3, 1e-3, 1e-3]).drop(columns="step").assign(run=["a", "b", "c"]))
