"""A Bayesian one-mixture scaling law whose step term knows the learning-rate schedule.

A checkpoint in the middle of a cosine run is not the final loss of a shorter run: the loss at step t
depends on the schedule up to t. Per validation domain, with n = N / N0 (sizes relative to the geometric
mean of the pilots'), S1 the area under the schedule (steps at the reference LR, ``schedules.py``) and
S0 the geometric mean of the pilots' S1, in units of the domain's median loss s::

    L(N, t) / s = e + a n^-alpha + step(n, t)

    multi_power (Luo et al., 2025):
        step = b(n) (S1 / S0)^-beta(n) - d(n) sum_k (eta_{k-1} - eta_k) (1 - (C eta_k^-gamma S_k(t) + 1)^-kappa)
    annealing (Tissue et al., 2024):
        step = b(n) (S1 / S0)^-beta(n) - d(n) S2(t) / S0

    b(n) = b n^rho_b,  d(n) = d n^rho_d,  beta(n) = beta n^rho_beta

The size term a n^-alpha and the size dependence of the step term (rho_*) enter only when the pilots
have several sizes, e + a n^-alpha sampled through what they pin (:func:`size_term`: the level e + a at
n = 1, its slope against log n, and the exponent's excess over that slope, whose prior is external); at
one size, e is the loss the schedule cannot remove (Luo et al.'s L0) and the law is the published one.
The losses are fitted on the log scale with a Laplace likelihood (robust, as the published fits' Huber
loss on the log loss, and exp of a Laplace has a finite mean; a Student-t would leave the predictive
loss without one) or a Normal one (``likelihood: normal``). Each run has its own
level u (``log L = log L_law + u``: sampled centred, or with the Normal likelihood integrated out in
closed form, :mod:`bayes_mixlaw.run_effects`), and each run whose LR decays its own annealing amplitude
``d_r = d exp(w_r)``, sampled centred (each curve pins its own); a new run draws fresh ones, so a new
schedule's prediction carries their spread.
Reported in absolute units: ``E`` (= s e), ``A``
(= s a N0^alpha), ``B`` (= s b S0^beta, the amplitude of S1^-beta at N0), ``D`` (the loss-drop amplitude
at N0: Luo et al.'s B, or Tissue et al.'s C per step at the reference LR), ``C``, ``kappa``
(Luo et al.'s beta), ``gamma``.

Each run's schedule comes from its ``lr`` column (:meth:`Schedule.from_logged`, with the run's
``warmup_steps``) or from the ``schedule`` given to :meth:`ScheduledScalingLaw.fit`; ``predict``
takes the target run's schedule.

Which step term: held-out point fits on the multi-power law curves (``benchmarks/schedules.py``,
leave-one-schedule-out per size) choose ``STEP_TERM_DEFAULT`` (:mod:`bayes_mixlaw.scheduled_config`).

:class:`ScheduledScalingLaw` is what it predicts; its other parts have a module each: the config and priors
(:mod:`bayes_mixlaw.scheduled_config`), the runs' schedules (:mod:`bayes_mixlaw.scheduled_runs`), how it reads a runs
table and what its fit file keeps (:mod:`bayes_mixlaw.scheduled_layout`), its PyMC model
(:mod:`bayes_mixlaw.scheduled_model`) and what a prediction is drawn from (:mod:`bayes_mixlaw.scheduled_draws`).
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import xarray as xr

from bayes_mixlaw import discrepancy, discrepancy_schedule
from bayes_mixlaw.inference import SamplingWarning
from bayes_mixlaw.model import BayesianLaw
from bayes_mixlaw.request import say_extrapolation, schedule_target
from bayes_mixlaw.scheduled_config import SCHEDULED_PRIORS, STEP_TERM_DEFAULT, ScheduledLawConfig
from bayes_mixlaw.scheduled_draws import ScheduledDraws
from bayes_mixlaw.scheduled_layout import SCHEDULED_FORMAT, ScheduledLayout
from bayes_mixlaw.scheduled_model import MULTI_POWER_PRIORS, SIZE_PRIORS, ScheduledModel, size_term
from bayes_mixlaw.scheduled_runs import UnknownSchedule, run_schedules
from bayes_mixlaw.schedules import Schedule
from bayes_mixlaw.summary import DEFAULT_CI, eti, eti_values, summarize_draws

__all__ = [  # the law, and its parts importable from here as before they had modules of their own
    "MULTI_POWER_PRIORS",
    "SCHEDULED_FORMAT",
    "SCHEDULED_PRIORS",
    "SIZE_PRIORS",
    "STEP_TERM_DEFAULT",
    "ScheduledLawConfig",
    "ScheduledScalingLaw",
    "UnknownSchedule",
    "run_schedules",
    "size_term",
]


class ScheduledScalingLaw(ScheduledDraws, ScheduledLayout, ScheduledModel, BayesianLaw):
    """Bayesian ``L(N, t) = E + A N^-alpha + step term(schedule up to t)`` per validation domain.

    >>> law = ScheduledScalingLaw().fit(runs, seed=0)      # runs with step (and lr) columns
    >>> law.parameters()                                   # E, A, B, D, ... with intervals
    >>> law.predict(params=4e8, schedule=Schedule.from_file("wsd.json"), steps=[20000, 24000])
    """

    kind = "scheduled_scaling_law"
    config_class = ScheduledLawConfig
    takes_schedule = True  # fit and predict take a learning-rate schedule (the capabilities: bayes_mixlaw.model.BayesianLaw)

    def fit(self, runs, *, schedule=None, **kwargs):
        """Fit to a runs table with a ``step`` column; ``schedule`` describes the runs without an
        ``lr`` column (one schedule, or a mapping run -> schedule; see :func:`run_schedules`).
        Other keywords: :meth:`BayesianLaw.fit`."""
        super().fit(runs, build_options={"schedule": schedule}, **kwargs)
        if self.config.discrepancy:
            discrepancy.draw_scales(self, ["discrepancy_size", discrepancy_schedule.NAME], {}, kwargs.get("seed"))
        return self

    # results ---------------------------------------------------------------------------------

    @property
    def valid_domains(self) -> list[str]:
        self._require_fit()
        return [str(v) for v in self.idata["posterior"]["valid_domain"].values]

    @property
    def schedules(self) -> dict[str, Schedule]:
        """The schedule each pilot run was fitted with (the runs of unknown schedule are left out:
        :attr:`unknown_runs`, their sampled length ``total_steps``)."""
        self._require_fit()
        return {run: Schedule.from_dict(v["schedule"]) for run, v in json.loads(self.idata.attrs["schedules"]).items() if v["schedule"] is not None}

    def schedule_origins(self) -> dict[str, str]:
        """Where each pilot run's schedule came from: its ``lr`` column, the given schedule, or ``unknown``."""
        self._require_fit()
        return {run: v["origin"] for run, v in json.loads(self.idata.attrs["schedules"]).items()}

    @property
    def unknown_runs(self) -> list[str]:
        """The pilot runs whose schedule was unknown (their total length sampled: ``total_steps``)."""
        return [run for run, origin in self.schedule_origins().items() if origin == "unknown"]

    @property
    def unknown_schedule(self) -> UnknownSchedule | None:
        """What the fit assumed for the runs of unknown schedule (None: every schedule was known)."""
        return self.config.unknown_schedule if self.unknown_runs else None

    @property
    def report_sections(self) -> frozenset[str]:
        """The parts of this fit's report (:func:`bayes_mixlaw.report.report_sections`): the pilots' curves
        against steps with the law's bands, the learning-rate schedules, and with runs of unknown
        schedule the posterior of its length and what the assumption moves (``unknown_schedule``);
        none of the mixture simplex's."""
        unknown = self.idata is not None and bool(self.unknown_runs)
        return frozenset({"schedule_curves", "schedules"} | ({"unknown_schedule"} if unknown else set()))

    def pilot_predictions(self, ci: float = DEFAULT_CI, seed: int = 0) -> pd.DataFrame:
        """Every observed loss (``loss``, ``params``, ``step``, ``run``, ``obs_valid_domain``) with the
        posterior predictive ``median``, ``lower`` and ``upper`` of its own run continued (its level,
        annealing amplitude and schedule; a run of unknown schedule: each draw's sampled length)."""
        self._require_fit()
        obs, draws = self._own_run_draws(noise=True, seed=seed)
        flat = draws.reshape(-1, draws.shape[-1])
        lower, upper = eti_values(flat, ci)
        return obs.assign(median=np.quantile(flat, 0.5, axis=0), lower=lower, upper=upper)

    def pointwise_log_likelihood(self) -> xr.DataArray:
        r"""log p(loss | draw) of every observed loss, dims (chain, draw, obs), for PSIS-LOO
        (:func:`bayes_mixlaw.compare.loo`): the fitted likelihood of the log loss around its own run's
        curve (its level, annealing amplitude and schedule; a run of unknown schedule: each draw's length),
        less :math:`\log y` (the Jacobian), so that the density is of the loss itself. The Normal likelihood
        with run effects integrates each run's level out, so its terms are curves, not losses: refused."""
        self._require_fit()
        post = self.idata["posterior"]
        if self.config.likelihood != "laplace" and "run_sigma" in post:
            raise ValueError(
                "a schedule-aware fit with the Normal likelihood integrates each run's level out: its likelihood has one term "
                "per curve, not per loss; PSIS-LOO here needs likelihood: laplace (the default)"
            )
        obs, curves = self._own_run_draws(noise=False)
        log_mu = np.log(curves)
        domains = {v: i for i, v in enumerate(self.valid_domains)}
        log_y = np.log(obs["loss"].to_numpy(float))
        sigma = post["noise_sigma"].values[:, :, obs["obs_valid_domain"].map(domains).to_numpy()]
        residual = log_y - log_mu
        if self.config.likelihood == "laplace":
            loglik = -np.log(2 * sigma) - np.abs(residual) / sigma
        else:
            loglik = -0.5 * np.log(2 * np.pi * sigma**2) - 0.5 * (residual / sigma) ** 2
        return xr.DataArray(loglik - log_y, dims=("chain", "draw", "obs"), name="loss")

    def parameters(self, ci: float = DEFAULT_CI) -> pd.DataFrame:
        """Posterior mean and equal-tailed interval of the law's parameters in absolute units, per domain
        (and ``total_steps``, the sampled length of an unknown schedule)."""
        self._require_fit()
        post = self.idata["posterior"]
        names = [
            n
            for n in (
                "E",
                "A",
                "alpha",
                "B",
                "beta",
                "D",
                "C",
                "kappa",
                "gamma",
                "rho_b",
                "rho_d",
                "rho_beta",
                "noise_sigma",
                "run_sigma",
                "run_anneal_sigma",
                "total_steps",
                "discrepancy_size",
                discrepancy_schedule.NAME,
            )
            if n in post
        ]
        return self._parameter_table(names, ci)

    def predict_draws(
        self,
        params,
        schedule=None,
        steps=None,
        *,
        kind: str = "predictive",
        seed: int = 0,
        run: str | None = None,
        total_steps: float | None = None,
        chunk: int = 64,
        noise: bool = True,
    ) -> xr.DataArray:
        """Draws of the loss of a run of ``params`` parameters trained with ``schedule``, at ``steps``:
        dims (chain, draw, point, target). ``predictive``: a run's losses (run effects and noise);
        ``mean``: the law's.

        ``run``: the target continues that pilot run (its own level and annealing amplitude, and its
        schedule unless ``schedule`` is given); otherwise a new run draws fresh ones. Without
        ``schedule`` (and a pilot ``run`` of unknown schedule, or none), the target is trained like the
        runs of unknown schedule: each draw's total length T from the posterior, among the draws whose T
        reaches the last step, so the interval carries the schedule's uncertainty; ``total_steps``
        fixes T instead (``float('inf')``: a constant LR), to see what an assumption would give.
        ``noise=False``: a ``predictive`` run's curve without the likelihood's noise (its run effects only).
        Either kind carries the model discrepancies: beyond the largest pilot size (:mod:`bayes_mixlaw.discrepancy`)
        and while a learning-rate decrease is pending, except at a continued pilot's own checkpoints
        (:mod:`bayes_mixlaw.discrepancy_schedule`)."""
        self._require_fit()
        self._check_kind(kind)
        params = float(np.asarray(params, dtype=float).ravel()[0]) if np.ndim(params) else float(params)
        if not (np.isfinite(params) and params > 0):
            raise ValueError(f"params must be positive and finite, got {params}")
        if steps is None:
            raise ValueError("give the steps to predict at")
        steps = np.atleast_1d(np.asarray(steps))
        origins = self.schedule_origins()
        if run is not None and run not in origins:
            raise ValueError(f"run '{run}' is not a pilot run of this fit (its runs: {list(origins)})")
        if schedule is None and run is not None and origins[run] != "unknown":
            schedule = self.schedules[run]
        if schedule is None and not self.unknown_runs:
            raise ValueError("give the target run's schedule (every pilot schedule was known: there is nothing to carry over)")
        attrs = self.idata.attrs
        multi = bool(attrs["multi_size"])
        post = self.idata["posterior"]
        scale = self.idata["constant_data"]["loss_scale"].values
        names = ["log_d" if k == "log_d_step" else k for k in self._parameter_names(multi)]
        rng = np.random.default_rng(seed)
        C, D = post.sizes["chain"], post.sizes["draw"]
        s0 = float(attrs["s0"])
        if schedule is not None:
            feats = self.features(schedule, steps)
            if np.any(feats.s1 <= 0):
                raise ValueError(f"step {int(steps[np.flatnonzero(feats.s1 <= 0)[0]])} is before the learning rate has moved the model (S1 = 0)")
            xs = {"s1_rel": feats.s1 / s0, "s2_rel": feats.s2 / s0, "drop": feats.drop, "eta": feats.eta, "s_k": feats.s_k}
            pending = self.pending_decrease(schedule, steps, feats) if discrepancy_schedule.NAME in post else None
        else:  # the unknown schedule: areas per draw of its length (annealing term only)
            if np.any(np.asarray(steps) < 0) or np.any(np.asarray(steps) != np.round(steps)):
                raise ValueError("steps must be whole numbers >= 0")
            totals = self._unknown_totals(steps, total_steps, rng)[:, :, None]
            s1, s2 = self.config.unknown_schedule.areas(np.asarray(steps, dtype=float), totals, int(attrs["unknown_last"]))
            if np.any(s1 <= 0):
                raise ValueError("a step is before the learning rate has moved the model (S1 = 0)")
            xs = {"s1_rel": s1 / s0, "s2_rel": s2 / s0}
            pending = None
            if discrepancy_schedule.NAME in post:  # (chain, draw, step)
                before = self.config.unknown_schedule.areas(np.maximum(np.asarray(steps, dtype=float) - 1, 0), totals, int(attrs["unknown_last"]))[1]
                pending = discrepancy_schedule.pending_decrease(s2, before)
        out = np.empty((C, D, len(steps), len(self.valid_domains)))
        log_n = np.log(params / float(attrs["n0"]))
        span = self._size_span() if multi else {}
        effects = kind == "predictive" and "run_sigma" in post  # a fit of one run has no run effects
        shape = (C, D, 1)
        annealing = [str(r) for r in post["annealing_run"].values] if "annealing_run" in post.coords else []
        for v in range(len(self.valid_domains)):
            p = {k: post[k].values[:, :, v, None] for k in names}  # (chain, draw, 1)
            u = np.zeros(shape)
            if effects and run is not None:  # the pilot run continued: its own level and annealing amplitude
                u = post["run_level"].sel(run=run).values[:, :, v, None]
                if run in annealing:
                    p["log_d"] = post["run_log_d"].sel(annealing_run=run).values[:, :, v, None]
                else:  # its curve never showed a decay: a fresh amplitude
                    p["log_d"] = p["log_d"] + post["run_anneal_sigma"].values[:, :, v, None] * rng.standard_normal(shape)
            elif effects:  # a new run: a fresh level and annealing amplitude
                u = post["run_sigma"].values[:, :, v, None] * rng.standard_normal(shape)
                p["log_d"] = p["log_d"] + post["run_anneal_sigma"].values[:, :, v, None] * rng.standard_normal(shape)
            for start in range(0, len(steps), chunk):
                rows = slice(start, min(start + chunk, len(steps)))
                # areas: rows on the last axis ((n,) or (chain, draw, n)); knots: (n, K)
                x = {"log_n_rel": log_n, **span, **{k: val[..., rows] if k in ("s1_rel", "s2_rel") else val[rows] for k, val in xs.items()}}
                out[:, :, rows, v] = self._law(np, x, p, multi) * scale[v] * np.exp(u)
        beyond = self.beyond_log_size(params)
        if beyond > 0 and "discrepancy_size" in post:  # the law's form beyond the largest pilot size
            kappa = {"discrepancy_size": post["discrepancy_size"].values}
            out = out * np.exp(discrepancy.log_factor(kappa, {"discrepancy_size": beyond}, out.shape[-1], self.config.discrepancy_correlation, rng))
        if pending is not None:  # the annealing term's form while a decrease is pending
            if run is not None:  # a pilot continued: its own checkpoints are data
                pending = np.where(steps > self._last_step(run), pending, 0.0)
            if np.any(pending > 0):
                kappa = post[discrepancy_schedule.NAME].values
                out = out * np.exp(discrepancy_schedule.log_factor(kappa, pending, out.shape[-1], self.config.discrepancy_correlation, rng))
        if kind == "predictive" and noise:
            sigma = post["noise_sigma"].values[:, :, None, :]
            out = out * np.exp(sigma * self._standard_noise(out.shape, rng))
        return xr.DataArray(out, dims=("chain", "draw", "point", "target"), coords={"target": self.valid_domains}, name="loss")

    def schedule_assumptions(self, params, steps, *, run: str | None = None, ci: float = DEFAULT_CI, seed: int = 0) -> pd.DataFrame:
        """How much the unknown schedule moves a prediction: the target (``params`` at ``steps``, a new
        run or pilot ``run`` continued) with the schedule's length weighed by the posterior, and under
        the extreme assumptions with the law's other draws: the decay ends at the last requested step
        (the shortest schedule that reaches it), it ends at twice that step, and a constant LR (no decay).
        Where no posterior draw of the length reaches the last step, the weighed row is left out (the
        pilots say the schedule ended before it). Columns ``assumption``, then the :meth:`predict` columns."""
        if not self.unknown_runs:
            raise ValueError("every pilot schedule was known: there are no schedule assumptions to compare")
        steps = np.atleast_1d(np.asarray(steps))
        end = int(steps.max())
        fam = self.config.unknown_schedule.family
        cases = [
            ("weighed: T from the posterior", None),
            (f"{fam} ending at step {end}", end),
            (f"{fam} ending at step {2 * end}", 2 * end),
            ("constant LR (no decay)", np.inf),
        ]
        reached = np.mean(self.idata["posterior"]["total_steps"].values >= end) > 0
        if not reached:  # no draw of the length reaches the step: the weighed prediction does not exist there
            cases = cases[1:]
        frames = [self.predict(params, None, steps, ci=ci, seed=seed, run=run, total_steps=T).assign(assumption=name) for name, T in cases]
        out = pd.concat(frames, ignore_index=True)
        return out[["assumption", *[c for c in out.columns if c != "assumption"]]]

    def predict_request(self, request) -> pd.DataFrame:
        """:meth:`~bayes_mixlaw.model.BayesianLaw.predict_request`: one row per --params, --step and target, for a
        target run with --schedule or, without one, trained like the pilots of unknown schedule (then said on the
        terminal: what that was taken to be, and how much the assumption moves the last step)."""
        if request.mixtures is not None:
            raise ValueError(f"{request.source} is a schedule-aware fit of one data mixture: it takes no --mixtures")
        target, steps = schedule_target(self, request.source, request.schedule, request.params, request.step, request.tokens)
        say_extrapolation(self, {"params": request.params, "step": steps})
        if target is None:
            sens = self.schedule_assumptions(request.params[-1], [max(steps)], ci=request.ci, seed=request.seed)
            first = sens[sens["target"] == sens["target"].iloc[0]]
            request.say(
                f"no --schedule: the target is trained like the pilots of unknown schedule ({self.config.unknown_schedule.family}, its length "
                f"weighed by the posterior); at step {max(steps)}, {first['target'].iloc[0]}: "
                + "; ".join(f"{a} {m:.4f}" for a, m in zip(first["assumption"], first["median"]))
            )
        return pd.concat([self.predict(n, target, steps, ci=request.ci, kind=request.kind, seed=request.seed) for n in request.params], ignore_index=True)

    def predict(
        self,
        params,
        schedule=None,
        steps=None,
        *,
        ci: float = DEFAULT_CI,
        kind: str = "predictive",
        seed: int = 0,
        run: str | None = None,
        total_steps: float | None = None,
    ) -> pd.DataFrame:
        """One row per step and validation domain: ``params``, ``step``, ``target``, ``mean``,
        ``median``, ``lower``, ``upper`` (posterior predictive of a new run, or of pilot ``run``
        continued, or ``kind='mean'``: the law). ``schedule=None``: see :meth:`predict_draws`."""
        draws = self.predict_draws(params, schedule, steps, kind=kind, seed=seed, run=run, total_steps=total_steps)
        steps = np.atleast_1d(np.asarray(steps)).astype(np.int64)
        p = float(np.asarray(params, dtype=float).ravel()[0])
        p = int(p) if p == round(p) else p
        out = summarize_draws(draws, pd.DataFrame({"params": p, "step": steps}), ci)
        return out.assign(beyond_log_size=round(self.beyond_log_size(p), 6))  # > 0: the model discrepancy applies

    def summary_line(self) -> str:
        self._require_fit()
        d = self.diagnostics
        p = self.parameters().set_index(["parameter", "valid_domain"])["mean"]
        v = self.valid_domains[0]
        shown = " ".join(f"{k}={p[(k, v)]:.4g}" for k in ("E", "A", "alpha", "B", "beta", "D", "C", "kappa", "gamma") if (k, v) in p)
        origins = self.schedule_origins()
        schedules = self.schedules
        runs = "; ".join(f"{run}: {schedules[run].describe()} [{origins[run]}]" for run in schedules) or "none known"
        line = (
            f"Schedule-aware scaling law ({self.config.step_term}) on {self.idata['observed_data'].sizes['obs']} points x "
            f"{len(self.valid_domains)} validation domain(s): {shown} ({v}); {d.summary()}. Schedules: {runs}"
        )
        return line + self._size_note() + self._schedule_note() + (self.unknown_schedule_note() if self.unknown_runs else "")

    def unknown_schedule_note(self) -> str:
        """What was assumed for the runs of unknown schedule, what the posterior says of its length,
        and how much the assumption moves a prediction: a new run of the pilots' largest size at twice
        their last checkpoint, median (first validation domain) with the length weighed, and under the
        extremes (the decay ends there; a constant LR)."""
        self._require_fit()
        unknown = self.unknown_runs
        if not unknown:
            return ""
        last = int(self.idata.attrs["unknown_last"])
        T = self.idata["posterior"]["total_steps"].values.ravel()
        lower, upper = eti(self.idata["posterior"]["total_steps"], DEFAULT_CI).values
        q = (lower, np.quantile(T, 0.5), upper)
        step = 2 * last
        size = float(np.max(self.idata["observed_data"]["params"].values))
        v = self.valid_domains[0]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SamplingWarning)
            sens = self.schedule_assumptions(size, [step]).query("target == @v").set_index("assumption")
        weighed = sens[sens.index.str.startswith("weighed")]
        med = sens["median"][~sens.index.str.startswith("weighed")]
        spread = 100 * (med.max() / med.min() - 1)
        at = (
            f"median {weighed['median'].iloc[0]:.4g} [{weighed['lower'].iloc[0]:.4g}, {weighed['upper'].iloc[0]:.4g}] weighed; "
            if len(weighed)
            else "no posterior draw of T reaches it (the pilots say the schedule ended before), so no weighed prediction; "
        )
        return (
            f". Unknown schedule for {len(unknown)} run(s) ({', '.join(unknown[:3])}{', ...' if len(unknown) > 3 else ''}): not assumed but "
            f"weighed, {self.config.unknown_schedule.describe(last)}; posterior T median {q[1]:.0f} [{DEFAULT_CI:.0%}: {q[0]:.0f}, {q[2]:.0f}], "
            f"P(T >= {step}) = {np.mean(T >= step):.2f}. At step {step}, a new {size:.3g}-parameter run ({v}): {at}"
            + ", ".join(f"{m:.4g} ({name})" for name, m in med.items())
            + f": the assumption moves it by {spread:.2f}%"
        )
