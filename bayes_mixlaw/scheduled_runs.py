"""The runs' learning-rate schedules for the schedule-aware scaling law (:class:`~bayes_mixlaw.scheduled.ScheduledScalingLaw`):
each run's schedule and where it came from (:func:`run_schedules`), and what a run of unknown schedule may have been
trained with (:class:`UnknownSchedule`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from bayes_mixlaw.runs import LR, WARMUP, RunsTable
from bayes_mixlaw.schedules import Schedule, as_schedule, decay_areas


class UnknownSchedule(BaseModel):
    """What a run may have been trained with when its schedule is unknown (no ``lr`` column, none given).

    The runs of unknown schedule share one schedule (runs of one study share theirs): a linear warm-up
    over ``warmup_steps`` W, then a ``family`` decay (cosine or linear) to ``final_lr_ratio`` of the
    peak LR at an unknown total length T, then the final LR (the GPT-NeoX / Pythia defaults: cosine to
    10% of the peak). T is a parameter with a log-uniform prior between L, the last checkpoint of those
    runs (the decay ends there), and ``max_factor`` L (8 L: at L a cosine has decayed by 4%, nearly a
    constant LR): ``log T = log L + z log(max_factor)``, z ~ Uniform(0, 1). The posterior weighs the
    length from the curvature of the curves. W defaults to 2% of L (1% of a typical T = 2 L). The law
    sees only LRs relative to the peak, so the peak LR needs no assumption.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    family: Literal["cosine", "linear"] = "cosine"
    warmup_steps: int | None = Field(None, ge=0)
    final_lr_ratio: float = Field(0.1, ge=0.0, lt=1.0)
    max_factor: float = Field(8.0, gt=1.0, le=1000.0)

    def warmup(self, last: int) -> int:
        return int(self.warmup_steps) if self.warmup_steps is not None else round(0.02 * last)

    def areas(self, steps, total, last: int):
        """(S1, S2) at ``steps`` for total length(s) ``total`` (:func:`decay_areas`; numpy or PyTensor)."""
        return decay_areas(steps, total, warmup=self.warmup(last), final_ratio=self.final_lr_ratio, family=self.family)

    def schedule(self, total: int, last: int) -> Schedule:
        """The schedule of length ``total`` (for describing and checking)."""
        return Schedule(kind=self.family, total_steps=int(total), warmup_steps=self.warmup(last), peak_lr=1.0, final_lr=self.final_lr_ratio)

    def describe(self, last: int) -> str:
        return (
            f"{self.family} decay after a {self.warmup(last)}-step warm-up to {self.final_lr_ratio:g} x the peak LR at an unknown "
            f"total length T, log-uniform in [{last}, {round(self.max_factor * last)}]"
        )


def run_schedules(runs: RunsTable, schedule=None, allow_unknown: bool = False) -> tuple[dict[str, Schedule | None], dict[str, str]]:
    """Each run's schedule and where it came from (``lr column``, ``schedule`` or ``unknown``).

    A run's logged ``lr`` column wins; otherwise ``schedule``: one :class:`Schedule` (or its dict, or
    a JSON path) for every such run, or a mapping run -> schedule. A run with neither is an error,
    or with ``allow_unknown`` a run of unknown schedule (``None``).
    """
    data = runs.data
    out, origin = {}, {}
    mapping = schedule if isinstance(schedule, dict) and "kind" not in schedule else None
    for run, rows in data.groupby("run", sort=False):
        if LR in rows and rows[LR].notna().any():
            logged = rows[rows[LR].notna()].drop_duplicates("step").sort_values("step")
            warmup = rows[WARMUP].dropna().iloc[0] if WARMUP in rows and rows[WARMUP].notna().any() else None
            out[run] = Schedule.from_logged(logged["step"].to_numpy(), logged[LR].to_numpy(), None if warmup is None else int(warmup))
            origin[run] = "lr column" + (f" (warm-up {int(warmup)} steps)" if warmup is not None else "")
        elif mapping is not None and run in mapping:
            out[run] = as_schedule(mapping[run], f"schedule of run '{run}'")
            origin[run] = "schedule"
        elif schedule is not None and mapping is None:
            out[run] = as_schedule(schedule, "schedule")
            origin[run] = "schedule"
        elif allow_unknown:
            out[run], origin[run] = None, "unknown"
            continue
        else:
            raise ValueError(
                f"{runs.source}: run '{run}' has no 'lr' column values and no schedule was given "
                "(pass schedule=Schedule(...) or a mapping run -> schedule; CLI: --schedule SCHED.json)"
            )
        last = int(rows["step"].max())
        if last > out[run].horizon:
            raise ValueError(f"{runs.source}: run '{run}' has a loss at step {last}, beyond its schedule ({out[run].describe()})")
    return out, origin
