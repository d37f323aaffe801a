"""What the schedule-aware law (:class:`~bayes_mixlaw.scheduled.ScheduledScalingLaw`) draws a prediction from: how far
a size is beyond the pilots' (and what sizes beyond them rest on), the pilots' own runs continued, a schedule's step
features in the fit's units, and the length of the unknown schedule per draw."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd

from bayes_mixlaw import discrepancy_schedule
from bayes_mixlaw.inference import SamplingWarning
from bayes_mixlaw.schedules import Schedule, StepFeatures, as_schedule


class ScheduledDraws:
    """The schedule-aware law's prediction helpers (a base of :class:`~bayes_mixlaw.scheduled.ScheduledScalingLaw`)."""

    def beyond_log_size(self, params: float) -> float:
        """log(params / the largest pilot size), or 0 within the pilots' sizes (:mod:`bayes_mixlaw.discrepancy`)."""
        sizes = json.loads(self.idata.attrs["pilot_params"]) if "pilot_params" in self.idata.attrs else [float(self.idata.attrs["n0"])]
        return max(0.0, float(np.log(float(params) / max(sizes))))

    def _size_span(self) -> dict[str, float]:
        """log n of the smallest and largest pilot sizes relative to n0 (:func:`size_term`)."""
        attrs = self.idata.attrs
        sizes = np.asarray(json.loads(attrs["pilot_params"]), dtype=float)
        return {"log_n_lo": float(np.log(sizes.min() / float(attrs["n0"]))), "log_n_hi": float(np.log(sizes.max() / float(attrs["n0"])))}

    def _own_run_draws(self, *, noise: bool, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
        """The observed losses (``loss``, ``params``, ``step``, ``run``, ``obs_valid_domain``; one row per
        observation) and, per posterior draw, each one's own run continued to its step (its level, annealing
        amplitude and schedule; a run of unknown schedule: each draw's sampled length), with the likelihood's
        noise or without it (``noise``): shape (chain, draw, obs)."""
        obs = self.idata["observed_data"].to_dataset().to_dataframe().reset_index(drop=True)
        domains = {v: i for i, v in enumerate(self.valid_domains)}
        post = self.idata["posterior"]
        out = np.empty((post.sizes["chain"], post.sizes["draw"], len(obs)))
        for (run, params), g in obs.groupby(["run", "params"], sort=False):
            steps = np.unique(g["step"].to_numpy())
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", SamplingWarning)
                draws = self.predict_draws(params, None, steps, run=str(run), seed=seed, noise=noise).values  # (chain, draw, step, target)
            out[:, :, g.index.to_numpy()] = draws[:, :, np.searchsorted(steps, g["step"].to_numpy()), g["obs_valid_domain"].map(domains).to_numpy()]
        return obs, out

    def _last_step(self, run: str) -> int:
        """The last checkpoint of pilot ``run`` (its curve is data up to there)."""
        obs = self.idata["observed_data"]
        return int(np.max(obs["step"].values[obs["run"].values == run]))

    def pending_decrease(self, schedule: Schedule, steps, features: StepFeatures | None = None) -> np.ndarray:
        """The LR decrease still pending at ``steps`` under ``schedule`` (:func:`bayes_mixlaw.discrepancy_schedule.pending_decrease`),
        in the fit's units; ``features``: the schedule's features at ``steps`` where already computed."""
        now = self.features(schedule, steps) if features is None else features
        return discrepancy_schedule.pending_decrease(now.s2, self.features(schedule, np.maximum(np.asarray(steps) - 1, 0)).s2)

    def features(self, schedule: Schedule, steps) -> StepFeatures:
        """The step-law features of ``schedule`` at ``steps``, in the fit's units (its reference LR)."""
        self._require_fit()
        return as_schedule(schedule, "schedule").features(
            steps, lr_ref=float(self.idata.attrs["lr_ref"]), knots=self.config.knots, lam=self.config.annealing_lambda
        )

    def _unknown_totals(self, steps, total_steps, rng) -> np.ndarray:
        """Per draw (chain, draw), the total length of a target trained like the runs of unknown
        schedule: ``total_steps`` if given (``inf``: a constant LR), else the posterior's draws of T
        that reach the last requested step (a run with a checkpoint there was planned at least that
        long), resampled to the posterior's shape."""
        post = self.idata["posterior"]
        C, D = post.sizes["chain"], post.sizes["draw"]
        if total_steps is not None:
            total = float(total_steps)
            if total < int(np.max(steps)):
                raise ValueError(f"total_steps {total:g} ends before step {int(np.max(steps))}")
            return np.full((C, D), min(total, 1e6 * float(self.idata.attrs["unknown_last"])))  # inf: constant to 1e-6
        T = post["total_steps"].values
        keep = np.flatnonzero(T.ravel() >= np.max(steps))
        share = len(keep) / T.size
        if share == 0:
            raise ValueError(f"no posterior draw of the unknown schedule's length reaches step {int(np.max(steps))}: give the target's schedule")
        if share < 0.05:
            warnings.warn(
                f"only {share:.1%} of the posterior's draws of the unknown schedule's length reach step {int(np.max(steps))}: "
                "the pilots' curves point to a schedule that ends before it; the prediction rests on few draws",
                SamplingWarning,
                stacklevel=3,
            )
        if share == 1:
            return T
        return T.ravel()[rng.choice(keep, size=T.size)].reshape(C, D)

    def _size_note(self) -> str:
        """What sizes beyond the pilots' rest on: the size exponent's prior (two sizes pin none of it) and
        the model discrepancy."""
        if not int(self.idata.attrs["multi_size"]):
            return ""
        post = self.idata["posterior"]
        sizes = json.loads(self.idata.attrs["pilot_params"])
        note = f". Sizes beyond {max(sizes):.3g} parameters rest on the size term's form: its exponent alpha is " + (
            "set by its prior's excess over the pilots' slope (two sizes pin none of it)" if len(sizes) == 2 else f"fitted to {len(sizes)} sizes"
        )
        if "discrepancy_size" in post:
            note += (
                f", with the model discrepancy of {100 * float(np.median(post['discrepancy_size'].values)):.1f}% per log-unit of size beyond "
                "them (external prior; discrepancy: false leaves it out)"
            )
        return note

    def _schedule_note(self) -> str:
        """What a schedule's annealing rests on: the annealing term's form error while an LR decrease is pending
        (:mod:`bayes_mixlaw.discrepancy_schedule`)."""
        post = self.idata["posterior"]
        if discrepancy_schedule.NAME not in post:
            return ""
        kappa = float(np.median(post[discrepancy_schedule.NAME].values))
        return (
            f". While a learning-rate decrease is pending (a decay the pilots did not run, or a pilot's beyond its last checkpoint), "
            f"a prediction carries the annealing term's form error, {100 * kappa:.1f}% of the loss per unit of pending decrease "
            "(relative to the pilots' peak LR; external prior, discrepancy: false leaves it out)"
        )
