"""The learning-rate schedule on the nested law's grid: each pilot run's areas at its checkpoints.

The nested law evaluates its mean on a grid (pilot mixture x model size x step x validation domain).
With schedules known (an ``lr`` column, or a schedule given to ``fit``), the step axis of each run is
read through its schedule (:meth:`bayes_mixlaw.schedules.Schedule.features`): the forward area
:math:`S_1(t)` (steps at the reference LR, warm-up included) replaces the step, and the annealing area
:math:`S_2(t)` adds the drop that decaying the LR buys (Tissue et al., 2024)::

    s1[k, j, l] = S1_run(t_l) / S0,   s2[k, j, l] = S2_run(t_l) / S0

for the run of mixture k at size j, with ``S0`` the geometric mean of the observed losses' S1 and one
reference LR for every run (the largest peak), so that areas of different runs are in the same units.
A cell with no run (a mixture not trained at that size) or beyond a run's last step is never observed;
it gets a constant LR's areas (``s1 = t / S0``, ``s2 = 0``) so the grid stays finite.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bayes_mixlaw.runs import LR, RunsTable
from bayes_mixlaw.scheduled import run_schedules
from bayes_mixlaw.schedules import Schedule


@dataclass(frozen=True)
class GridAreas:
    """The runs' schedule areas on the grid. ``s1``, ``s2``: (mixture, size, step), relative to ``s0``."""

    s1: np.ndarray
    s2: np.ndarray
    s0: float
    lr_ref: float
    schedules: dict[str, Schedule]
    origin: dict[str, str]

    def at(self, schedule: Schedule, step: float) -> tuple[float, float]:
        """``(S1 / S0, S2 / S0)`` of a new run under ``schedule`` at ``step``, in the fit's units."""
        features = schedule.features([round(step)], lr_ref=self.lr_ref)
        return float(features.s1[0]) / self.s0, float(features.s2[0]) / self.s0


def grid_areas(
    runs: RunsTable, length: str, schedule, cell: dict[str, tuple[int, int]], shape: tuple[int, int], steps: np.ndarray, observed: tuple
) -> GridAreas | None:
    """The areas of every run on the grid, or ``None`` when no run has a schedule (no ``lr`` column
    and no ``schedule``): the law then takes steps as they come.

    ``schedule``: as :func:`bayes_mixlaw.scheduled_runs.run_schedules` takes it (one for every run without an
    ``lr`` column, or a mapping run -> schedule); ``cell``: run -> (mixture index, size index);
    ``shape``: (mixtures, sizes); ``steps``: the grid's distinct steps; ``observed``: each loss's
    (mixture, size, step) indices, whose S1 set ``S0``. Every run needs a schedule
    once one has one, and two runs in one cell need the same one."""
    if length != "step":
        logged = LR in runs.data and bool(runs.data[LR].notna().any())
        if schedule is not None or logged:
            what = f"an '{LR}' column" if logged else "a learning-rate schedule"
            raise ValueError(f"{runs.source}: {what} is read in steps; this table measures training length in {length}")
        return None
    schedules, origin = run_schedules(runs, schedule, allow_unknown=True)
    known = {run: s for run, s in schedules.items() if s is not None}
    if not known:
        return None
    missing = [run for run, s in schedules.items() if s is None]
    if missing:
        raise ValueError(
            f"{runs.source}: {len(missing)} run(s) have no learning-rate schedule while {len(known)} have one (e.g. '{missing[0]}'): "
            "give every run its schedule ('lr' column, or a schedule for the others: --schedule SCHED.json), or none"
        )
    if np.any(steps != np.round(steps)):
        raise ValueError(f"{runs.source}: steps must be whole numbers to be read through a schedule, got {steps[steps != np.round(steps)][0]!r}")
    lr_ref = max(s.peak for s in known.values())
    s1 = np.broadcast_to(steps / 1.0, shape + (len(steps),)).copy()  # constant LR where no run is
    s2 = np.zeros_like(s1)
    placed: dict[tuple[int, int], str] = {}
    for run, sched in known.items():
        k, j = cell[run]
        if (k, j) in placed and known[placed[k, j]] != sched:
            raise ValueError(
                f"{runs.source}: runs '{placed[k, j]}' and '{run}' share a mixture and a size but not a schedule; the nested law has one run per cell"
            )
        placed[k, j] = run
        within = steps <= sched.horizon
        features = sched.features(steps[within].astype(np.int64), lr_ref=lr_ref)
        s1[k, j, within], s2[k, j, within] = features.s1, features.s2
        s1[k, j, ~within], s2[k, j, ~within] = features.s1[-1], features.s2[-1]
    observed_s1 = s1[observed]
    if np.any(observed_s1 <= 0):
        row = int(np.flatnonzero(observed_s1 <= 0)[0])
        raise ValueError(
            f"{runs.source}: a loss at step {steps[observed[2][row]]:g}, where its run's learning rate has not moved the model yet (S1 = 0): "
            "leave out the warm-up's first checkpoints"
        )
    s0 = float(np.exp(np.log(observed_s1).mean()))
    return GridAreas(s1 / s0, s2 / s0, s0, float(lr_ref), known, origin)
