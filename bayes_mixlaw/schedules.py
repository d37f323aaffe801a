"""Learning-rate schedules, and the areas under them that a schedule-aware step law needs.

A checkpoint in the middle of a cosine run is not the final loss of a shorter run: the loss at step t
depends on the whole learning-rate (LR) schedule up to t. A :class:`Schedule` is the JSON contract of
``fit --schedule`` and ``predict --schedule``::

    {"kind": "cosine" | "constant" | "linear" | "wsd" | "two_stage",
     "total_steps": 24000, "warmup_steps": 2160, "peak_lr": 3e-4, "final_lr": 3e-5,
     "decay_start": 20000, "decay_shape": "exponential" | "linear"}
    {"kind": "table", "steps": [...], "lr": [...]}

or a run's logged ``lr`` column (:meth:`Schedule.from_logged`). With eta_tau the LR of update tau
(tau = 1, 2, ...), divided by a reference LR (the peak, so areas are in "steps at the peak LR"),
:meth:`Schedule.features` computes, at requested steps t:

- S1(t) = sum_{tau=1}^t eta_tau, the area under the schedule (warm-up included: Luo et al.'s
  S1 + S_W, Tissue et al.'s S1);
- S2(t) = sum_{i=1}^t m_i with m_i = lambda m_{i-1} + (eta_{i-1} - eta_i), Tissue et al.'s (2024)
  annealing area (lambda = 0.999 by default; LR changes up to the peak, the warm-up, are left out);
- for the multi-power law of Luo et al. (2025), whose loss drop is
  LD(t) = B sum_k (eta_{k-1} - eta_k) G(eta_k^-gamma S_k(t)),  S_k(t) = sum_{tau=k}^t eta_tau,
  the sum over the (up to 10^5) decay steps compressed to at most ``knots`` knots: the decay steps
  are cut into bins of equal LR decrease, and bin j becomes one knot with its total decrease, the LR
  at its (decrease-weighted) centre and S_k(t) from that centre. A bin that step t cuts counts only
  its part up to t, so every requested t sees exactly the decrease made before it. Arrays ``drop``,
  ``eta`` and ``s_k`` of shape (n_steps, knots) then give LD as elementwise operations
  (:func:`bayes_mixlaw.step_laws.multi_power_step`), inside PyMC as in numpy or torch.

The areas are computed in :mod:`bayes_mixlaw.schedule_areas` (the features, and a parametric decay's areas in closed
form); every name is still importable from here.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bayes_mixlaw.schedule_areas import DEFAULT_KNOTS, DEFAULT_LAMBDA, StepFeatures, decay_areas, exact_multi_power_drop, step_features

__all__ = [  # the schedule, and the areas importable from here as before they had a module of their own
    "DEFAULT_KNOTS",
    "DEFAULT_LAMBDA",
    "KINDS",
    "Schedule",
    "ScheduleError",
    "StepFeatures",
    "as_schedule",
    "decay_areas",
    "exact_multi_power_drop",
    "step_features",
]

_KEYS = ("kind", "total_steps", "warmup_steps", "peak_lr", "final_lr", "decay_start", "decay_shape", "steps", "lr")
KINDS = ("cosine", "constant", "linear", "wsd", "two_stage", "table")
# Which keys each kind takes (besides "kind"); the rest of the contract is refused for it.
_REQUIRED = {
    "cosine": {"total_steps", "peak_lr"},
    "constant": {"total_steps", "peak_lr"},
    "linear": {"total_steps", "peak_lr"},
    "wsd": {"total_steps", "peak_lr", "decay_start"},
    "two_stage": {"total_steps", "peak_lr", "final_lr", "decay_start"},
    "table": {"steps", "lr"},
}
_OPTIONAL = {
    "cosine": {"warmup_steps", "final_lr"},
    "constant": {"warmup_steps"},
    "linear": {"warmup_steps", "final_lr"},
    "wsd": {"warmup_steps", "final_lr", "decay_shape"},
    "two_stage": {"warmup_steps"},
    "table": set(),
}


class ScheduleError(ValueError):
    """A schedule that cannot be used; the message names the file (or '<dict>') and the field."""


class Schedule(BaseModel):
    """A learning-rate schedule: one of the parametric kinds, or a table of (step, lr) points.

    ``lr(steps)`` is the LR of each update: a linear warm-up from 0 over ``warmup_steps`` (default 0)
    to ``peak_lr``, then

    - ``constant``: ``peak_lr``;
    - ``cosine``: ``final + (peak - final) (1 + cos(pi (t - W) / (T - W))) / 2`` over [W, T];
    - ``linear``: a straight line from peak to final over [W, T];
    - ``wsd``: ``peak_lr`` until ``decay_start`` D, then to ``final_lr`` over [D, T], ``linear``
      (default) or ``exponential`` (geometric: ``peak (final / peak)^((t - D) / (T - D))``);
    - ``two_stage``: ``peak_lr`` before D, ``final_lr`` from D on;
    - ``table``: linear interpolation between the points (from LR 0 at step 0 if the table starts later).

    ``final_lr`` defaults to 0 (cosine, linear, linear wsd); an exponential decay needs it > 0.
    After ``total_steps`` (a table: its last step) the LR holds its last value, but features are only
    computed up to it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["cosine", "constant", "linear", "wsd", "two_stage", "table"]
    total_steps: int | None = None
    warmup_steps: int | None = None
    peak_lr: float | None = None
    final_lr: float | None = None
    decay_start: int | None = None
    decay_shape: Literal["exponential", "linear"] | None = None
    steps: tuple[float, ...] | None = None
    # the table's LRs: key "lr" in the JSON form (the attribute name leaves ``lr()`` to the method)
    table_lr: tuple[float, ...] | None = Field(None, alias="lr")

    @model_validator(mode="before")
    @classmethod
    def _keys(cls, data):
        if isinstance(data, dict) and data.get("kind") in _REQUIRED:
            kind = data["kind"]
            given = {k for k, v in data.items() if k != "kind" and v is not None}
            missing = sorted(_REQUIRED[kind] - given)
            if missing:
                raise ValueError(f"field '{missing[0]}': a '{kind}' schedule needs {sorted(_REQUIRED[kind])}")
            known = set(_KEYS)
            extra = sorted(given & known - _REQUIRED[kind] - _OPTIONAL[kind])
            if extra:
                raise ValueError(f"field '{extra[0]}': does not apply to a '{kind}' schedule (it takes {sorted(_REQUIRED[kind] | _OPTIONAL[kind])})")
        return data

    @model_validator(mode="after")
    def _check(self):
        def bad(field, message):
            raise ValueError(f"field '{field}': {message}")

        if self.kind == "table":
            steps, lr = np.asarray(self.steps, dtype=float), np.asarray(self.table_lr, dtype=float)
            if len(steps) == 0:
                bad("steps", "the table is empty")
            if len(steps) != len(lr):
                bad("lr", f"{len(lr)} values for {len(steps)} steps")
            if not np.all(np.isfinite(steps)) or np.any(steps < 0):
                bad("steps", "steps must be finite and >= 0")
            if np.any(steps != np.round(steps)):
                bad("steps", "steps must be whole numbers")
            i = np.flatnonzero(np.diff(steps) <= 0)
            if len(i):
                bad("steps", f"steps must increase: {steps[i[0]]:g} is followed by {steps[i[0] + 1]:g} (position {i[0] + 1})")
            if not np.all(np.isfinite(lr)) or np.any(lr < 0):
                bad("lr", "learning rates must be finite and >= 0")
            if not np.any(lr > 0):
                bad("lr", "every learning rate is 0")
            return self
        for field in ("total_steps", "warmup_steps", "decay_start"):
            value = getattr(self, field)
            if value is not None and value < 0:
                bad(field, f"is {value}; steps must be >= 0")
        if self.total_steps <= 0:
            bad("total_steps", f"is {self.total_steps}; it must be positive")
        if not (math.isfinite(self.peak_lr) and self.peak_lr > 0):
            bad("peak_lr", f"is {self.peak_lr}; it must be a positive number")
        if self.final_lr is not None:
            if not (math.isfinite(self.final_lr) and self.final_lr >= 0):
                bad("final_lr", f"is {self.final_lr}; it must be a number >= 0")
            if self.final_lr > self.peak_lr:
                bad("final_lr", f"{self.final_lr:g} is above peak_lr {self.peak_lr:g}")
        warmup = self.warmup_steps or 0
        if warmup > self.total_steps:
            bad("warmup_steps", f"{warmup} is beyond total_steps {self.total_steps}")
        if warmup == self.total_steps and self.kind in ("cosine", "linear"):
            bad("warmup_steps", f"{warmup} leaves no steps to decay over (total_steps {self.total_steps})")
        if self.decay_start is not None and not warmup <= self.decay_start <= self.total_steps:
            bad("decay_start", f"{self.decay_start} is outside [warmup_steps, total_steps] = [{warmup}, {self.total_steps}]")
        if self.kind == "wsd" and self.decay_shape == "exponential" and not (self.final_lr or 0) > 0:
            bad("final_lr", "an exponential decay needs final_lr > 0")
        return self

    # construction ---------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: dict, source: str = "<dict>") -> Schedule:
        """A schedule from its JSON form; a problem is a :class:`ScheduleError` naming ``source`` and the field."""
        if not isinstance(data, dict):
            raise ScheduleError(f"{source}: a schedule is a JSON object, got {type(data).__name__}")
        try:
            return cls.model_validate(data)
        except ValidationError as err:
            problems = []
            for e in err.errors():
                message = str(e["msg"]).removeprefix("Value error, ")
                loc = ".".join(str(x) for x in e["loc"])
                if e["type"] == "extra_forbidden":
                    message = f"field '{loc}': unknown key; a schedule has {list(_KEYS)}"
                elif loc:
                    message = f"field '{loc}': {message}"
                problems.append(message)
            raise ScheduleError(f"{source}: " + "; ".join(problems)) from None

    @classmethod
    def from_file(cls, path) -> Schedule:
        """Read a schedule JSON file (``fit/predict --schedule``)."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except OSError as err:
            raise ScheduleError(f"{path}: cannot read the schedule: {err}") from None
        except json.JSONDecodeError as err:
            raise ScheduleError(f"{path}: not valid JSON: {err}") from None
        return cls.from_dict(data, str(path))

    @classmethod
    def from_logged(cls, steps, lr, warmup_steps: int | None = None) -> Schedule:
        """The ``table`` schedule of a run's logged ``lr`` column.

        Before the first logged step a linear warm-up from 0 is assumed: from step 0 to the first
        logged step, or, with ``warmup_steps`` W below the first logged step, from step 0 to W and then
        the first logged LR held to the first logged step.
        """
        steps = np.asarray(steps, dtype=float)
        lr = np.asarray(lr, dtype=float)
        order = np.argsort(steps, kind="stable")
        steps, lr = steps[order], lr[order]
        if len(steps) and np.any(lr <= 0):
            raise ScheduleError(f"<logged lr>: field 'lr': learning rates must be > 0, found {lr[lr <= 0][0]!r}")
        points_s, points_lr = list(steps), list(lr)
        if len(steps) and steps[0] > 0:
            if warmup_steps is not None and 0 < warmup_steps < steps[0]:
                points_s, points_lr = [0.0, float(warmup_steps), *points_s], [0.0, float(lr[0]), *points_lr]
            else:
                points_s, points_lr = [0.0, *points_s], [0.0, *points_lr]
        return cls.from_dict({"kind": "table", "steps": points_s, "lr": points_lr}, "<logged lr>")

    def to_dict(self) -> dict:
        return self.model_dump(mode="json", exclude_none=True, by_alias=True)

    def describe(self) -> str:
        """A short human description, for fit summaries."""
        if self.kind == "table":
            return f"table of {len(self.steps)} points to step {int(self.steps[-1])} (peak LR {max(self.table_lr):.3g})"
        parts = [self.kind]
        if self.kind == "wsd":
            parts.append(f"{self.decay_shape or 'linear'} decay from {self.decay_start}")
        if self.kind == "two_stage":
            parts.append(f"switch at {self.decay_start}")
        parts.append(f"to step {self.total_steps}")
        if self.warmup_steps:
            parts.append(f"warm-up {self.warmup_steps}")
        parts.append(f"peak LR {self.peak_lr:.3g}")
        if self.final_lr is not None and self.kind != "constant":
            parts.append(f"final {self.final_lr:.3g}")
        return ", ".join(parts)

    # the schedule ---------------------------------------------------------------------------

    @property
    def horizon(self) -> int:
        """The last step the schedule describes."""
        return int(self.steps[-1]) if self.kind == "table" else int(self.total_steps)

    @property
    def peak(self) -> float:
        return float(max(self.table_lr)) if self.kind == "table" else float(self.peak_lr)

    def lr(self, steps) -> np.ndarray:
        """The LR of each update ``steps`` (array-like, any shape)."""
        t = np.asarray(steps, dtype=float)
        if self.kind == "table":
            s, v = np.asarray(self.steps), np.asarray(self.table_lr)
            if s[0] > 0:
                s, v = np.concatenate([[0.0], s]), np.concatenate([[0.0], v])
            return np.interp(t, s, v)
        peak, T = self.peak_lr, float(self.total_steps)
        final = self.final_lr or 0.0
        W = float(self.warmup_steps or 0)
        tc = np.minimum(t, T)
        if self.kind == "constant":
            out = np.full_like(tc, peak)
        elif self.kind == "cosine":
            out = final + (peak - final) * (1 + np.cos(np.pi * np.clip((tc - W) / (T - W), 0, 1))) / 2
        elif self.kind == "linear":
            out = peak + (final - peak) * np.clip((tc - W) / (T - W), 0, 1)
        elif self.kind == "wsd":
            D = float(self.decay_start)
            u = np.clip((tc - D) / (T - D), 0, 1) if T > D else (tc >= D).astype(float)
            if (self.decay_shape or "linear") == "exponential":
                out = peak * (final / peak) ** u
            else:
                out = peak + (final - peak) * u
        else:  # two_stage
            out = np.where(tc < self.decay_start, peak, final)
        if W > 0:
            out = np.where(t < W, peak * np.clip(t, 0, None) / W, out)
        return out

    def per_step(self, last: int | None = None) -> np.ndarray:
        """``lr(0), lr(1), ..., lr(last)`` (``last`` defaults to the horizon)."""
        return self.lr(np.arange((self.horizon if last is None else last) + 1))

    def features(self, steps, *, lr_ref: float | None = None, knots: int = DEFAULT_KNOTS, lam: float = DEFAULT_LAMBDA) -> StepFeatures:
        """The step-law features at ``steps`` (whole numbers in [0, horizon]); see the module docstring.

        ``lr_ref`` divides every LR (default: this schedule's peak); runs fitted together must share
        one, so that their areas are in the same units.
        """
        t = np.asarray(steps, dtype=float).ravel()
        if len(t) and (np.any(~np.isfinite(t)) or np.any(t != np.round(t)) or np.any(t < 0)):
            raise ScheduleError(f"steps must be whole numbers >= 0, got {t[~np.isfinite(t) | (t != np.round(t)) | (t < 0)][0]!r}")
        if len(t) and t.max() > self.horizon:
            raise ScheduleError(f"step {int(t.max())} is beyond the schedule, which ends at step {self.horizon} ({self.describe()})")
        last = int(t.max()) if len(t) else 0
        ref = self.peak if lr_ref is None else float(lr_ref)
        if not ref > 0:
            raise ScheduleError(f"lr_ref must be positive, got {lr_ref!r}")
        return step_features(self.per_step(max(last, 1)) / ref, t.astype(np.int64), knots=knots, lam=lam, lr_ref=ref)


def as_schedule(value, what: str = "schedule") -> Schedule:
    """A :class:`Schedule` from itself, its dict (``what`` names it in errors) or a JSON file's path."""
    if isinstance(value, Schedule):
        return value
    if isinstance(value, dict):
        return Schedule.from_dict(value, what)
    return Schedule.from_file(value)
