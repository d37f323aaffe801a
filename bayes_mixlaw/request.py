"""What a command asks of a fit: :class:`PredictRequest`, the points and options ``bayes-mixlaw predict`` gives,
answered by every law's :meth:`~bayes_mixlaw.model.BayesianLaw.predict_request` (one signature, so the command line
dispatches on no law); the warnings where a target scale lies far outside the pilots' (:func:`far_extrapolation`);
and the schedule-aware law's target run as the command line gives it (:func:`schedule_target`, read by
:meth:`~bayes_mixlaw.scheduled.ScheduledScalingLaw.predict_request`)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bayes_mixlaw.summary import DEFAULT_CI

FAR_BEYOND = 10.0  # a target scale this many times the largest pilot's is said to be far beyond the pilots


@dataclass(frozen=True)
class PredictRequest:
    """What ``bayes-mixlaw predict`` asks of a fit, as the command line gives it. The options a law does not take
    are refused by its :meth:`~bayes_mixlaw.model.BayesianLaw.predict_request`, naming ``source``."""

    source: str  # the fit, as messages name it (its file)
    mixtures: Any = None  # a mixtures CSV (mix:<domain> columns and an optional name) or such a table
    params: list[float] | None = None  # model sizes
    step: list[float] | None = None  # training steps
    tokens: list[float] | None = None  # training tokens
    schedule: Path | None = None  # the target run's learning-rate schedule (JSON)
    ci: float = DEFAULT_CI
    kind: str = "predictive"  # 'predictive' (a new run) or 'mean' (the law's expected loss)
    seed: int = 0
    quiet: bool = False  # only what must be said (warnings and what the numbers rest on)
    say: Callable[[str], None] = print  # a line on the terminal


def _pilot_range(law) -> dict[str, tuple[float, float]]:
    """The smallest and largest pilot value of each scale column (params, step or tokens) of a fit."""
    if hasattr(law, "pilot_scales"):
        return {column: (min(values), max(values)) for column, values in law.pilot_scales().items()}
    if "observed_data" not in law.idata.children:
        return {}
    observed = law.idata["observed_data"]
    return {c: (float(observed[c].min()), float(observed[c].max())) for c in ("params", "step", "tokens") if c in observed}


def far_extrapolation(law, scale: dict) -> list[str]:
    """Sentences for the terminal where a target scale ({column: value or values}) lies below the
    smallest pilot's or more than :data:`FAR_BEYOND` times beyond the largest: there the prediction is
    the law's form carried where no pilot checks it."""
    notes = []
    for column, (lo, hi) in _pilot_range(law).items():
        for value in sorted({float(v) for v in np.atleast_1d(scale.get(column, []))}):
            if value < lo:
                factor = "" if value <= 0 else f", {lo / value:.3g}x smaller"
                notes.append(
                    f"--{column} {value:.4g} is below the smallest pilot's {column} ({lo:.4g}{factor}): the law was fitted on "
                    f"{'larger models' if column == 'params' else 'later checkpoints'} and is not checked there "
                    f"({'small models' if column == 'params' else 'early training'} need not follow it); read this prediction as a guess"
                )
            elif value > FAR_BEYOND * hi:
                notes.append(
                    f"--{column} {value:.4g} is {value / hi:.3g}x the largest pilot's {column} ({hi:.4g}): far beyond what the pilots "
                    "cover; the prediction is the law's form carried that far, and its interval a guess at that form's error, not a measurement"
                )
    return notes


def say_extrapolation(law, scale: dict) -> None:
    """Warn (on the terminal, also with -q) where a prediction's scale is far outside the pilots'."""
    for note in far_extrapolation(law, scale):
        warnings.warn(f"extrapolation: {note}", UserWarning, stacklevel=2)


def schedule_target(law, source, schedule, params, step, tokens):
    """(the target's Schedule or None: trained like the pilots of unknown schedule, its steps) of a schedule-aware
    fit from the command line's --schedule, --params and --step values (lists; ``source``: the fit, as errors name it),
    checked."""
    from bayes_mixlaw.schedules import Schedule

    if tokens:
        raise ValueError(f"{source} is a schedule-aware fit on steps: give --step, not --tokens")
    unknown = bool(law.unknown_runs)  # without --schedule, the target is trained like the pilots of unknown schedule
    if (schedule is None and not unknown) or not params or not step:
        fitted = ", ".join(f"{run}: {s.describe()}" for run, s in law.schedules.items())
        raise ValueError(
            f"{source} is a schedule-aware fit: give the target run's schedule and scale with --schedule SCHED.json "
            f"--params N --step S (repeat --step for several; the pilots' schedules: {fitted})"
        )
    target = Schedule.from_file(schedule) if schedule is not None else None
    for s in step:
        if not (s == s and s >= 0 and float(s).is_integer()):
            raise ValueError(f"--step {s:g}: steps are whole numbers >= 0")
        if target is not None and s > target.horizon:
            raise ValueError(f"--step {s:g} is beyond the schedule in {schedule}, which ends at step {target.horizon} ({target.describe()})")
    return target, [int(s) for s in step]
