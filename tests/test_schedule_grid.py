"""The learning-rate schedule on the nested law's grid (bayes_mixlaw/schedule_grid.py): each run's areas at
its checkpoints in one set of units, constant-LR cells where no run is, and the errors that keep a table's
schedules consistent."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayes_mixlaw.runs import RunsTable
from bayes_mixlaw.schedule_grid import grid_areas
from bayes_mixlaw.schedules import Schedule

STEPS = np.array([2_000.0, 4_000.0, 8_000.0, 10_000.0])
COSINE = Schedule.from_dict({"kind": "cosine", "total_steps": 10_000, "warmup_steps": 100, "peak_lr": 1e-3, "final_lr": 1e-4})
HALF_LR = Schedule.from_dict({"kind": "constant", "total_steps": 10_000, "warmup_steps": 100, "peak_lr": 5e-4})


def _table(runs: dict[str, int], with_lr: dict[str, Schedule] | None = None, steps: np.ndarray = STEPS) -> RunsTable:
    """Runs named in ``runs`` (run -> mixture index), each at every step in STEPS; an ``lr`` column for ``with_lr``."""
    rows = []
    for run, k in runs.items():
        for step in steps:
            row = {"run": run, "valid_domain": "x", "loss": 3.0, "step": int(step), "params": 1e8, "mix:a": 0.25 * (k + 1), "mix:b": 1 - 0.25 * (k + 1)}
            if with_lr is not None:
                row["lr"] = float(with_lr[run].lr(np.array([int(step)]))[0]) if run in with_lr else np.nan
                row["warmup_steps"] = 100
            rows.append(row)
    return RunsTable(pd.DataFrame(rows), "grid.csv")


def _observed(n_mix: int) -> tuple:
    mix = np.repeat(np.arange(n_mix), len(STEPS))
    return mix, np.zeros_like(mix), np.tile(np.arange(len(STEPS)), n_mix)


def test_each_run_reads_its_own_schedule_in_one_set_of_units():
    runs = _table({"r0": 0, "r1": 1})
    areas = grid_areas(runs, "step", {"r0": COSINE, "r1": HALF_LR}, {"r0": (0, 0), "r1": (1, 0)}, (3, 1), STEPS, _observed(2))
    assert areas.lr_ref == 1e-3 and areas.origin == {"r0": "schedule", "r1": "schedule"}
    cosine, half = (s.features(STEPS.astype(int), lr_ref=1e-3) for s in (COSINE, HALF_LR))
    np.testing.assert_allclose(areas.s1[0, 0] * areas.s0, cosine.s1)
    np.testing.assert_allclose(areas.s2[0, 0] * areas.s0, cosine.s2)
    np.testing.assert_allclose(areas.s1[1, 0] * areas.s0, half.s1)  # half the peak LR: half the area of a step
    assert (areas.s2[1, 0] == 0).all()  # a constant LR does not anneal
    np.testing.assert_allclose(areas.s0, np.exp(np.log(np.concatenate([cosine.s1, half.s1])).mean()))
    np.testing.assert_allclose(areas.s1[2, 0] * areas.s0, STEPS)  # no run in that cell: a constant LR's areas, finite
    assert areas.at(COSINE, 10_000) == pytest.approx((cosine.s1[-1] / areas.s0, cosine.s2[-1] / areas.s0))


def test_an_lr_column_gives_the_same_areas_as_the_schedule_it_logs():
    steps = np.arange(500.0, 10_001.0, 500.0)  # the LR logged every 500 steps, linear between
    observed = (np.zeros(len(steps), int), np.zeros(len(steps), int), np.arange(len(steps)))
    logged = grid_areas(_table({"r0": 0}, with_lr={"r0": COSINE}, steps=steps), "step", None, {"r0": (0, 0)}, (1, 1), steps, observed)
    given = grid_areas(_table({"r0": 0}, steps=steps), "step", COSINE, {"r0": (0, 0)}, (1, 1), steps, observed)
    assert logged.origin == {"r0": "lr column (warm-up 100 steps)"}
    np.testing.assert_allclose(logged.s1 * logged.s0, given.s1 * given.s0, rtol=0.01)
    np.testing.assert_allclose(logged.s2 * logged.s0, given.s2 * given.s0, rtol=0.02, atol=2.0)  # S2 of the first 1k steps: a few steps


def test_no_schedule_anywhere_is_steps_as_they_come():
    assert grid_areas(_table({"r0": 0}), "step", None, {"r0": (0, 0)}, (1, 1), STEPS, _observed(1)) is None


def test_schedules_for_some_runs_only_tokens_and_shared_cells_are_refused():
    runs = _table({"r0": 0, "r1": 1}, with_lr={"r0": COSINE})
    with pytest.raises(ValueError, match=r"grid.csv: 1 run\(s\) have no learning-rate schedule while 1 have one \(e.g. 'r1'\).*--schedule"):
        grid_areas(runs, "step", None, {"r0": (0, 0), "r1": (1, 0)}, (2, 1), STEPS, _observed(2))
    with pytest.raises(ValueError, match="read in steps; this table measures training length in tokens"):
        grid_areas(_table({"r0": 0}), "tokens", COSINE, {"r0": (0, 0)}, (1, 1), STEPS, _observed(1))
    with pytest.raises(ValueError, match="grid.csv: an 'lr' column is read in steps; this table measures training length in tokens"):
        grid_areas(_table({"r0": 0}, with_lr={"r0": COSINE}), "tokens", None, {"r0": (0, 0)}, (1, 1), STEPS, _observed(1))
    with pytest.raises(ValueError, match="runs 'r0' and 'r1' share a mixture and a size but not a schedule"):
        grid_areas(_table({"r0": 0, "r1": 0}), "step", {"r0": COSINE, "r1": HALF_LR}, {"r0": (0, 0), "r1": (0, 0)}, (1, 1), STEPS, _observed(1))
