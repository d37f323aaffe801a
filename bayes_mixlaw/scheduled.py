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
leave-one-schedule-out per size) choose ``STEP_TERM_DEFAULT`` below.
"""

from __future__ import annotations

import json
import warnings
from typing import ClassVar, Literal

import numpy as np
import pandas as pd
import pymc as pm
import xarray as xr
from pydantic import BaseModel, ConfigDict, Field
from pymc_extras.prior import Prior

from bayes_mixlaw import discrepancy
from bayes_mixlaw.config import NESTED_PRIORS, LawConfig, SamplerConfig
from bayes_mixlaw.inference import SamplingWarning
from bayes_mixlaw.model import BayesianLaw
from bayes_mixlaw.request import say_extrapolation, schedule_target
from bayes_mixlaw.run_effects import conditional_effects, curve_sums, marginal_loglik
from bayes_mixlaw.runs import LR, WARMUP, RunsTable
from bayes_mixlaw.schedules import DEFAULT_LAMBDA, Schedule, StepFeatures, as_schedule, decay_areas
from bayes_mixlaw.step_laws import annealing_step, multi_power_step
from bayes_mixlaw.summary import DEFAULT_CI, eti, eti_values, summarize_draws

# Chosen by held-out error of point fits (Huber on log loss, 12 starts; `benchmarks/schedules.py --choose`
# reruns the comparison): leave-one-schedule-out over the 4 published schedules x 3 sizes, mean relative
# error 0.095% (Tissue's annealing form) against 0.132% (multi-power law), the annealing form better in
# 9 of 12 folds; worst point 0.70% against 0.59%. The annealing form is also ~10x cheaper to sample.
STEP_TERM_DEFAULT: Literal["multi_power", "annealing"] = "annealing"

# Priors in the units above (losses relative to the median loss s, areas relative to S0, sizes to N0).
# Scales from point fits of the multi-power law curves (25M-400M): L0/s ~ 0.9, b ~ 0.1, beta 0.33-0.5,
# d ~ 0.05, C 0.02-0.07 per step at the peak LR, kappa 0.3-0.9, gamma 0.3-0.8.
SCHEDULED_PRIORS: dict[str, Prior] = {
    # irreducible part: most of the loss (exp(-0.4) = 0.67 of the median; one size: about 0.9)
    "log_e": Prior("Normal", mu=-0.4, sigma=0.5),
    # size term (several sizes only), sampled through what the pilots pin (size_term below): the level
    # e + a n^-alpha at the largest pilot size (most of the median loss), its secant slope against log n
    # from the smallest (25M -> 100M on the multi-power law curves: ~0.07), and the exponent's excess
    # over that slope, alpha - sigma, which two sizes do not pin at all (their point fits are flat in
    # alpha). Its prior is external: Chinchilla-type fits of E + A N^-alpha give alpha 0.34 (Hoffmann et
    # al., 2022) and 0.35 (Besiroglu et al., 2024); Gamma(2.5, 10) (mean 0.25, 90% 0.05-0.53) on the excess
    # puts alpha's prior mean near theirs and lets a setup differ by a factor two either way.
    "log_level": Prior("Normal", mu=-0.2, sigma=0.5),
    "log_size_slope": Prior("Normal", mu=-3.0, sigma=1.0),
    "alpha_excess": Prior("Gamma", alpha=2.5, beta=10.0),
    # power-law term of the area S1 at S0: a tenth of the loss or so; its exponent ~0.4
    "log_b": Prior("Normal", mu=-2.5, sigma=1.5),
    "beta": Prior("Gamma", alpha=3.0, beta=8.0),
    # loss-drop amplitude per unit of relative LR decrease (annealing: per unit of S2 / S0)
    "log_d": Prior("Normal", mu=-3.0, sigma=1.5),
    # annealing term: log of D / s, the loss drop per step of annealing area at the reference LR,
    # relative to the domain's median loss (the model's log_d is this + log S0). Luo et al.'s curves
    # give 3.4e-5, 4.6e-5, 5.9e-5 at 25M/100M/400M (log -10.3 to -9.7); sd 0.75 lets a setup differ by
    # a factor 4.4 at 2 sd. It was N(-3, 1.5) on log(D S0 / s): on the 3Mix curves cut at 15k (a cosine
    # that has decayed to ~0.55 of the peak) D then traded with B and beta and ran to a fifth of what
    # the whole 30k curve gives, predicting the 30k loss ~1% too high (benchmarks/README.md)
    "log_d_step": Prior("Normal", mu=-10.0, sigma=0.75),
    # multi-power law: G's rate per step at the reference LR, its exponent, the LR exponent
    "log_c": Prior("Normal", mu=-3.5, sigma=1.5),
    "kappa": Prior("Gamma", alpha=4.0, beta=7.0),
    "gamma": Prior("Gamma", alpha=3.0, beta=5.0),
    # size dependence of the step term (several sizes): log b, log d, log beta per unit of log n
    "rho_b": Prior("Normal", mu=0.0, sigma=0.3),
    "rho_d": Prior("Normal", mu=0.0, sigma=0.3),
    "rho_beta": Prior("Normal", mu=0.0, sigma=0.2),
    # run effects (run_effects=True): a run's level (log scale; curves of different seeds or forks sit
    # a few tenths of a percent apart) and the log of its annealing amplitude d (how much more or less
    # a schedule's decay removes than the law says: on the published curves the law misses a decay's
    # drop by ~10%); a new run draws fresh ones, so a new schedule's prediction carries that spread
    "run_sigma": Prior("HalfNormal", sigma=0.003),
    # With two or three pilot runs the data hardly bound the spread of the annealing amplitude (on the
    # published curves the annealing runs agree with the law within ~2%): a HalfNormal lets it run to
    # 0, where the runs' amplitudes are pinned to the law's and a funnel opens (divergences, R-hat
    # 1.02-1.03 at 100M). A boundary-avoiding Gamma (Chung et al., 2013) keeps the HalfNormal(0.1)'s
    # scale (mean 0.1, 95% in 0.027-0.22) without the funnel.
    "run_anneal_sigma": Prior("Gamma", alpha=4.0, beta=40.0),
    # model discrepancy beyond the largest pilot size (bayes_mixlaw.discrepancy): the law-form error of
    # the log loss per unit of log-size, the nested law's external prior (benchmarks/discrepancy_prior.py:
    # Chinchilla's models, median 0.017 per log-unit)
    "discrepancy_size": NESTED_PRIORS["discrepancy_size"],
    # noise on the log loss: logged training losses scatter by about 0.1%
    "noise_sigma": Prior("HalfNormal", sigma=0.01),
}


def size_term(xp, log_n, log_n_lo, log_n_hi, log_level, log_size_slope, alpha_excess):
    r"""The irreducible and size terms :math:`e + a\,n^{-\alpha}` through what pilots of a few sizes pin.

    With :math:`n_1 < n_2` the smallest and largest pilot sizes, :math:`\rho = n_2 / n_1`,
    :math:`\ell` the level at :math:`n_2` (``exp(log_level)``), :math:`\sigma` its secant slope against
    log n between them (``exp(log_size_slope)``: :math:`\ell(n_1) = \ell \rho^\sigma`) and
    :math:`\alpha = \sigma + \delta` (``alpha_excess`` = :math:`\delta > 0`):

    .. math:: e + a\,n^{-\alpha} = \ell\,\frac{(\rho^\alpha - \rho^\sigma) + (\rho^\sigma - 1)(n / n_2)^{-\alpha}}{\rho^\alpha - 1}

    Two sizes pin :math:`\ell` and :math:`\sigma` exactly and leave :math:`\delta` to its prior (their
    point fits are flat in alpha), so the sampler meets an axis instead of the curved ridge of
    (e, a, alpha) (R-hat 2.49 on 25M + 100M); more sizes inform :math:`\delta` too. Every value is a
    valid law (e > 0 exactly when alpha > sigma). ``xp``: numpy or ``pm.math``; sizes are log n relative
    to the pilots' geometric mean; arguments broadcast. Returns (e + a n^-alpha, e, a, alpha), a for n."""
    alpha = xp.exp(log_size_slope) + alpha_excess
    log_rho = log_n_hi - log_n_lo
    r_alpha, r_sigma = xp.exp(alpha * log_rho), xp.exp(xp.exp(log_size_slope) * log_rho)
    level = xp.exp(log_level) / (r_alpha - 1.0)
    e = level * (r_alpha - r_sigma)
    a = level * (r_sigma - 1.0) * xp.exp(alpha * log_n_hi)  # the amplitude of n^-alpha
    return e + a * xp.exp(-alpha * log_n), e, a, alpha


# version of the fit-file layout of a schedule-aware fit: 2 = the size term of several sizes sampled
# through size_term (log_level, log_size_slope, alpha_excess) instead of (log_e, log_a, alpha)
SCHEDULED_FORMAT = 2

SIZE_PRIORS = ("log_level", "log_size_slope", "alpha_excess", "rho_b", "rho_d", "rho_beta")
MULTI_POWER_PRIORS = ("log_c", "kappa", "gamma")


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


class ScheduledLawConfig(LawConfig):
    """Everything that defines a schedule-aware scaling-law fit apart from the data and schedules."""

    DEFAULT_PRIORS: ClassVar[dict[str, Prior]] = SCHEDULED_PRIORS

    # The likelihood of the log loss. laplace (default): robust to the logged losses' spikes like the
    # published fits' Huber loss, and exp of a Laplace of scale b < 1 has a mean (1 / (1 - b^2)), so the
    # predictive mean exists (exp of a Student-t has none: Student-t is not offered). normal: the run
    # levels integrate out in closed form (run_effects.py), but the spikes inflate its scale. Held-out
    # WSD curves (3 schedules -> WSD, 25M/100M/400M, 2 x 1000 draws): mean relative error of the
    # median 0.090/0.084/0.123% (laplace), 0.120/0.100/0.148% (normal), 0.081/0.080/0.123% (the first
    # version's Student-t, whose mean did not exist); 90% coverage 0.96/0.94/0.97 against 1.0/0.96/0.99.
    likelihood: Literal["laplace", "normal"] = "laplace"
    step_term: Literal["multi_power", "annealing"] = STEP_TERM_DEFAULT
    # knots of the compressed multi-power loss drop (schedules.py): 48 keep it within 1e-4 of the
    # exact sum on the published schedules
    knots: int = Field(48, ge=1, le=1024)
    # Tissue et al.'s momentum lambda of S2
    annealing_lambda: float = Field(DEFAULT_LAMBDA, gt=0, lt=1)
    # a level and an annealing-amplitude effect per run (see the priors); the predictions of a new run
    # carry their spread
    run_effects: bool = True
    # E, B and beta of a power law with an offset are strongly correlated: nutpie's low-rank mass
    # matrix gives ~10x the bulk ESS of the diagonal one at the same cost (2277 against 217 of 2000
    # draws at 400M, annealing law); target_accept 0.95: the centred annealing effects' funnel at a small spread
    # gave 17-24 divergences of 2000 at 0.8 on 25M/100M, 0-1 at 0.95 (R-hat <= 1.008, ESS >= 640)
    sampler: SamplerConfig = Field(default_factory=lambda: SamplerConfig(draws=1000, tune=1000, adaptation="low_rank", target_accept=0.95))
    # what a run without an lr column, and without a given schedule, may have been trained with
    # (None: such a run is an error; the annealing step term only)
    unknown_schedule: UnknownSchedule | None = Field(default_factory=lambda: UnknownSchedule())
    # model discrepancy beyond the largest pilot size (bayes_mixlaw.discrepancy), on by default: a size
    # the pilots did not reach rests on the size term's form and (with two sizes) on the prior of its
    # exponent; and how much of that error the validation domains share
    discrepancy: bool = True
    discrepancy_correlation: float = Field(0.75, ge=0, le=1)


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


class ScheduledScalingLaw(BayesianLaw):
    """Bayesian ``L(N, t) = E + A N^-alpha + step term(schedule up to t)`` per validation domain.

    >>> law = ScheduledScalingLaw().fit(runs, seed=0)      # runs with step (and lr) columns
    >>> law.parameters()                                   # E, A, B, D, ... with intervals
    >>> law.predict(params=4e8, schedule=Schedule.from_file("wsd.json"), steps=[20000, 24000])
    """

    kind = "scheduled_scaling_law"
    config_class = ScheduledLawConfig
    takes_schedule = True  # fit and predict take a learning-rate schedule (the capabilities: bayes_mixlaw.model.BayesianLaw)

    def __init__(self, config: ScheduledLawConfig | None = None):
        super().__init__(config)
        self._schedule_arg = None

    def fit(self, runs, *, schedule=None, **kwargs):
        """Fit to a runs table with a ``step`` column; ``schedule`` describes the runs without an
        ``lr`` column (one schedule, or a mapping run -> schedule; see :func:`run_schedules`).
        Other keywords: :meth:`BayesianLaw.fit`."""
        self._schedule_arg = schedule
        try:
            super().fit(runs, **kwargs)
        finally:
            self._schedule_arg = None
        if self.config.discrepancy:
            discrepancy.draw_scales(self, ["discrepancy_size"], {}, kwargs.get("seed"))
        return self

    # layout and model ---------------------------------------------------------------------------

    def _layout(self, runs: RunsTable, schedule=None) -> dict:
        """``schedule``: as in :meth:`fit` (default: the one given to the running ``fit``)."""
        data = runs.data
        if "step" not in data:
            raise ValueError(f"{runs.source}: a schedule-aware law needs a 'step' column")
        if runs.mix_columns and len(runs.mixtures().drop_duplicates()) > 1:
            raise ValueError(
                f"{runs.source}: the runs have {len(runs.mixtures().drop_duplicates())} different mixtures; "
                "ScheduledScalingLaw fits one data mixture (select one, or use the nested model)"
            )
        cfg = self.config
        schedule = schedule if schedule is not None else self._schedule_arg
        schedules, origin = run_schedules(runs, schedule, allow_unknown=cfg.unknown_schedule is not None)
        known = [s for s in schedules.values() if s is not None]
        lr_ref = max(s.peak for s in known) if known else 1.0
        unknown = [r for r, s in schedules.items() if s is None]
        last = int(data.loc[data["run"].isin(unknown), "step"].max()) if unknown else 0
        if unknown and cfg.step_term != "annealing":
            raise ValueError(
                f"{runs.source}: runs {unknown[:3]} have no schedule (no 'lr' column, none given); an unknown schedule is "
                "weighed with the annealing step term only (step_term: annealing), or give the schedule"
            )
        # the runs of unknown schedule get features of a reference length (2 L, the prior median), replaced in the model
        reference = cfg.unknown_schedule.schedule(2 * last, last) if unknown else None
        parts, order = [], []
        for run, rows in data.groupby("run", sort=False):
            sched = schedules[run] if schedules[run] is not None else reference
            parts.append(
                sched.features(rows["step"].to_numpy(), lr_ref=lr_ref if schedules[run] is not None else 1.0, knots=cfg.knots, lam=cfg.annealing_lambda)
            )
            order.append(rows.index.to_numpy())
        feats = StepFeatures.concat([f if f.lr_ref == lr_ref else StepFeatures(f.steps, f.s1, f.s2, f.drop, f.eta, f.s_k, lr_ref, f.lam) for f in parts])
        feats = feats.take(np.argsort(np.concatenate(order), kind="stable"))
        if np.any(feats.s1 <= 0):
            bad = data.iloc[int(np.flatnonzero(feats.s1 <= 0)[0])]
            raise ValueError(
                f"{runs.source}: run '{bad['run']}' has a loss at step {bad['step']}, where its learning rate has not moved the model yet (S1 = 0)"
            )
        decays = feats.s2 > 0 if cfg.step_term == "annealing" else feats.drop.sum(-1) > 0
        annealing_runs = [r for r in runs.runs if decays[(data["run"] == r).to_numpy()].any()]
        n = data["params"].to_numpy(dtype=float) if "params" in data else np.ones(len(data))
        valid = runs.valid_domains
        run_names = runs.runs
        return {
            "runs": run_names,
            "run_idx": data["run"].map({r: i for i, r in enumerate(run_names)}).to_numpy(),
            "annealing_runs": annealing_runs,
            "anneal_row": data["run"].map({r: i + 1 for i, r in enumerate(annealing_runs)}).fillna(0).to_numpy(dtype=int),
            "table": runs,
            "valid": valid,
            "schedules": schedules,
            "origin": origin,
            "lr_ref": float(lr_ref),
            "features": feats,
            "unknown_runs": unknown,
            "unknown_row": data["run"].isin(unknown).to_numpy(),
            "unknown_last": last,
            "n": n,
            "n0": float(np.exp(np.log(n).mean())),
            "s0": float(np.exp(np.log(feats.s1).mean())),
            "multi_size": bool(len(np.unique(n)) > 1),
            "valid_idx": data["valid_domain"].map({v: i for i, v in enumerate(valid)}).to_numpy(),
            "loss": data["loss"].to_numpy(dtype=float),
            "scale": data.groupby("valid_domain")["loss"].median().loc[valid].to_numpy(),
        }

    def _parameter_names(self, multi_size: bool) -> list[str]:
        names = ["log_b", "beta", "log_d_step" if self.config.step_term == "annealing" else "log_d"]
        names = names if multi_size else ["log_e", *names]  # several sizes: the level of size_term
        if self.config.step_term == "multi_power":
            names += list(MULTI_POWER_PRIORS)
        if multi_size:
            names += list(SIZE_PRIORS)
        return names

    def _model(self, lay: dict, schedule=None) -> pm.Model:
        """The PyMC model; sizes, schedule features and losses enter through ``pm.Data``."""
        cfg = self.config
        f = lay["features"]
        uncertain = bool(lay["unknown_runs"])
        coords = {
            "valid_domain": lay["valid"],
            "obs": np.arange(len(lay["loss"])),
            "knot": np.arange(f.knots),
            "run": lay["runs"],
            "annealing_run": lay["annealing_runs"],
            "curve": np.arange(len(lay["runs"]) * len(lay["valid"])),
        }
        with pm.Model(coords=coords) as model:
            dims = {
                "log_loss_scale": "valid_domain",
                "log_n0": None,
                "log_s0": None,
                "log_n_lo": None,
                "log_n_hi": None,
                "drop": ("obs", "knot"),
                "eta": ("obs", "knot"),
                "s_k": ("obs", "knot"),
                "curve_m": "curve",
            }
            data = {k: pm.Data(k, v, dims=dims.get(k, "obs")) for k, v in self._data(lay).items()}
            names = self._parameter_names(lay["multi_size"])
            total = None
            if uncertain:
                data, total = self._unknown_length(data, lay)
                names = [n for n in names if n != "log_d_step"]
            p = {name: cfg.prior(name, dims="valid_domain").create_variable(name) for name in names}
            if uncertain:
                p["log_d"] = self._annealing_at_last(data, lay, total)
            elif "log_d_step" in p:  # the annealing amplitude per unit of S2 / S0 (the law's units)
                p["log_d"] = pm.Deterministic("log_d", p.pop("log_d_step") + data["log_s0"], dims="valid_domain")
            i = data["valid_idx"]
            log_scale = data["log_loss_scale"]
            per_obs = {k: v[i] for k, v in p.items()}
            # one run: its level and annealing amplitude are the law's E and D (effects would only add a ridge)
            effects = cfg.run_effects and len(lay["runs"]) > 1
            if effects:
                per_obs["log_d"] = self._annealing_effects(p["log_d"], data, i, len(lay["annealing_runs"]))
            mean = self._law(pm.math, data, per_obs, lay["multi_size"])
            self._absolute(p, log_scale, data, lay["multi_size"])
            mu = pm.math.log(mean) + log_scale[i]
            noise = cfg.prior("noise_sigma", dims="valid_domain").create_variable("noise_sigma")
            if cfg.likelihood == "laplace":  # robust (the published fits' Huber loss), a finite predictive mean
                if effects:  # centred: each curve pins its own level (R-hat <= 1.004, ESS >= 620 of 2 x 1000)
                    tau_u = cfg.prior("run_sigma", dims="valid_domain").create_variable("run_sigma")
                    level = pm.Normal("run_level", 0.0, tau_u[None, :], dims=("run", "valid_domain"))
                    mu = mu + level[data["run_idx"], i]
                pm.Laplace("loss", mu=mu, b=noise[i], observed=data["log_loss"], dims="obs")
            elif effects:
                self._level_likelihood(data, mu, noise, len(lay["runs"]), len(lay["valid"]))
            else:
                self._likelihood(mu, noise[i], data["log_loss"])
        return model

    def _key_parts(self, lay: dict, **options) -> tuple:
        effects = self.config.run_effects and len(lay["runs"]) > 1
        uncertain = bool(lay["unknown_runs"])
        return (
            lay["valid"],
            lay["multi_size"],
            lay["features"].knots,
            len(lay["runs"]),
            len(lay["annealing_runs"]),
            effects,
            lay["unknown_last"] if uncertain else None,
        )

    def _stored_runs(self) -> tuple[RunsTable, dict]:
        """The fitted runs and their schedules (those of unknown schedule left out: sampled), from the file."""
        attrs = self.idata.attrs
        data = self._observed_rows({"params": "params", "step": "step"}, run="run")
        schedules = {run: Schedule.from_dict(s["schedule"]) for run, s in json.loads(attrs["schedules"]).items() if s["schedule"] is not None}
        return RunsTable(data, source=str(attrs.get("source", "<fit>"))), {"schedule": schedules}

    def _unknown_length(self, data: dict, lay: dict) -> dict:
        """The features of the runs of unknown schedule as functions of its sampled total length.

        ``total_steps = L max_factor^z``, ``z = schedule_z ~ Uniform(0, 1)`` (:class:`UnknownSchedule`); their rows
        of S1 / S0 and S2 / S0 are :func:`bayes_mixlaw.schedules.decay_areas` of the sampled T, the other
        rows keep their known schedules' areas. The length is continuous, so NUTS moves the law's
        parameters and T together (K fixed candidate lengths summed out gave one separate mode of the
        law's parameters per candidate: chains stuck in different ones; an unbounded T, L / T ~ Beta(1, 1),
        left a flat tail towards a constant LR: R-hat 1.07, bulk ESS 27 of 1000 on a 3Mix run)."""
        import pytensor.tensor as pt

        unk = self.config.unknown_schedule
        last = lay["unknown_last"]
        z = pm.Uniform("schedule_z", 0.0, 1.0)
        total = pm.Deterministic("total_steps", last * pt.exp(z * np.log(unk.max_factor)))
        s1, s2 = unk.areas(data["step"], total, last)
        s0 = pt.exp(data["log_s0"])  # data, not a constant: a cached compiled model serves the next fit's S0
        mask = data["unknown_row"]
        out = dict(data)
        out["s1_rel"] = pt.where(mask, s1 / s0, data["s1_rel"])
        out["s2_rel"] = pt.where(mask, s2 / s0, data["s2_rel"])
        return out, total

    def _annealing_at_last(self, data: dict, lay: dict, total):
        """``log_d`` when the schedule's length is sampled, through what the data pin: the annealing
        drop at the unknown runs' last checkpoint L, ``log_anneal_drop = log d + log(S2(L; T) / S0)``
        (a carrier Normal whose density is taken back out), with the prior of ``log_d_step`` (= log d - log S0) added as a potential. The map
        (log_anneal_drop, z) -> (log d, z) has unit Jacobian, so the model is the same as sampling
        ``log_d_step``; but d alone trades with T (a shorter schedule anneals more by L), and that
        ridge held the length's bulk ESS to 54 of 2000 on a 3Mix run."""
        import pytensor.tensor as pt

        cfg = self.config
        unk = cfg.unknown_schedule
        last = lay["unknown_last"]
        s0 = lay["s0"]
        prior = cfg.prior("log_d_step")
        mu, sigma = float(prior.parameters["mu"]), float(prior.parameters["sigma"])
        if prior.distribution != "Normal":
            raise ValueError("with an unknown schedule, the prior 'log_d_step' must be a Normal")
        ref = float(unk.areas(np.array([float(last)]), last * np.sqrt(unk.max_factor), last)[1][0]) / s0
        start = np.full(len(lay["valid"]), mu + np.log(s0) + np.log(ref))
        # a wide Normal whose density the potential takes back out (a Flat would do, but cannot be drawn
        # from the prior); what remains is the prior of log_d_step
        carrier = pm.Normal.dist(start, 5.0)
        drop = pm.Normal("log_anneal_drop", mu=start, sigma=5.0, dims="valid_domain")
        s2_last = unk.areas(pt.as_tensor_variable(np.array([float(last)])), total, last)[1][0] / pt.exp(data["log_s0"])
        log_d = pm.Deterministic("log_d", drop - pt.log(s2_last), dims="valid_domain")
        pm.Potential("log_d_step_prior", pm.logp(pm.Normal.dist(mu, sigma), log_d - data["log_s0"]).sum() - pm.logp(carrier, drop).sum())
        return log_d

    def _annealing_effects(self, log_d, data: dict, i, n_annealing: int):
        """Each annealing run's own log annealing amplitude, per observation.

        Centred: ``log d_r ~ N(log d, run_anneal_sigma^2)`` for the runs whose LR decays before their
        last loss (the others' amplitude touches no data: they keep the law's). Each annealing curve
        pins its own amplitude, so the non-centred form couples it to the law's (divergences, R-hat
        1.03 at 100M); the centred form's funnel at a small spread is what the Gamma prior of
        ``run_anneal_sigma`` keeps away."""
        import pytensor.tensor as pt

        sigma = self.config.prior("run_anneal_sigma", dims="valid_domain").create_variable("run_anneal_sigma")
        if not n_annealing:
            return log_d[i]
        run_log_d = pm.Normal("run_log_d", mu=log_d[None, :], sigma=sigma[None, :], dims=("annealing_run", "valid_domain"))
        pm.Deterministic("run_anneal", run_log_d - log_d[None, :], dims=("annealing_run", "valid_domain"))
        table = pt.concatenate([log_d[None, :], run_log_d], axis=0)  # row 0: the law's (runs without a decay)
        return table[data["anneal_row"], i]

    def _level_likelihood(self, data: dict, mu, noise, n_runs: int, n_valid: int) -> None:
        """The observed log-losses with each run's level integrated out in closed form: per curve
        (run x validation domain) ``log L = mu + u + noise``, ``u ~ N(0, run_sigma^2)``
        (:func:`bayes_mixlaw.run_effects.marginal_loglik` with no slope: its slope terms cancel).
        With three pilot runs a sampled level and its scale make a funnel with the law's E (bulk ESS
        57 of 2000 draws at 100M); integrated out, ESS > 600."""
        tau_u = self.config.prior("run_sigma", dims="valid_domain").create_variable("run_sigma")
        curve = data["obs_curve"]
        n_curves = n_runs * n_valid
        cv = np.arange(n_curves) % n_valid  # curve c = run * n_valid + valid domain
        zero = pm.math.zeros_like(mu)
        se, _, see = curve_sums(data["log_loss"] - mu, zero, curve, n_curves)
        block = (data["curve_m"], 0.0, 0.0)
        scales = (noise[cv], tau_u[cv], 1.0)
        pm.Potential("loss", marginal_loglik(*block, se, 0.0, see, *scales).sum())
        mean_u, *_ = conditional_effects(*block, se, 0.0, *scales)
        pm.Deterministic("run_level", mean_u.reshape((n_runs, n_valid)), dims=("run", "valid_domain"))

    def _law(self, xp, x: dict, p: dict, multi_size: bool):
        """The law in relative units (L / s) from features ``x`` and parameters ``p`` (broadcastable)."""
        exp = xp.exp
        log_n = x["log_n_rel"]
        if multi_size:
            level = size_term(xp, log_n, x["log_n_lo"], x["log_n_hi"], p["log_level"], p["log_size_slope"], p["alpha_excess"])[0]
            b = exp(p["log_b"] + p["rho_b"] * log_n)
            d = exp(p["log_d"] + p["rho_d"] * log_n)
            beta = p["beta"] * exp(p["rho_beta"] * log_n)
        else:
            level, b, d, beta = exp(p["log_e"]), exp(p["log_b"]), exp(p["log_d"]), p["beta"]
        if self.config.step_term == "annealing":
            return level + annealing_step(x["s1_rel"], x["s2_rel"], b, beta, d)
        return level + multi_power_step(x["s1_rel"], x["drop"], x["eta"], x["s_k"], b, beta, d, exp(p["log_c"]), p["kappa"], p["gamma"])

    def _absolute(self, p, log_scale, data, multi_size):
        dims = "valid_domain"
        log_n0, log_s0 = data["log_n0"], data["log_s0"]
        if multi_size:
            _, e, a, alpha = size_term(pm.math, 0.0, data["log_n_lo"], data["log_n_hi"], p["log_level"], p["log_size_slope"], p["alpha_excess"])
            pm.Deterministic("E", e * pm.math.exp(log_scale), dims=dims)
            alpha = pm.Deterministic("alpha", alpha, dims=dims)
            pm.Deterministic("A", a * pm.math.exp(log_scale + alpha * log_n0), dims=dims)
        else:
            pm.Deterministic("E", pm.math.exp(p["log_e"] + log_scale), dims=dims)
        pm.Deterministic("B", pm.math.exp(p["log_b"] + log_scale + p["beta"] * log_s0), dims=dims)
        if self.config.step_term == "annealing":
            pm.Deterministic("D", pm.math.exp(p["log_d"] + log_scale - log_s0), dims=dims)
        else:
            pm.Deterministic("D", pm.math.exp(p["log_d"] + log_scale), dims=dims)
            pm.Deterministic("C", pm.math.exp(p["log_c"]), dims=dims)

    # hooks of BayesianLaw.fit ---------------------------------------------------------------

    def _data(self, lay: dict) -> dict:
        f = lay["features"]
        curve = lay["run_idx"] * len(lay["valid"]) + lay["valid_idx"]
        out = {
            "log_n_rel": np.log(lay["n"] / lay["n0"]),
            "s1_rel": f.s1 / lay["s0"],
            "valid_idx": lay["valid_idx"],
            "run_idx": lay["run_idx"],
            "anneal_row": lay["anneal_row"],
            "obs_curve": curve,
            "curve_m": np.bincount(curve, minlength=len(lay["runs"]) * len(lay["valid"])).astype(float),
            "log_loss": np.log(lay["loss"]),
            "log_loss_scale": np.log(lay["scale"]),
            "log_n0": np.log(lay["n0"]),
            "log_s0": np.log(lay["s0"]),
            # the smallest and largest pilot sizes (size_term), relative to n0
            "log_n_lo": np.log(lay["n"].min() / lay["n0"]),
            "log_n_hi": np.log(lay["n"].max() / lay["n0"]),
        }
        if lay["unknown_runs"]:
            out["step"] = lay["table"].data["step"].to_numpy(dtype=float)
            out["unknown_row"] = lay["unknown_row"]
        if self.config.step_term == "annealing":
            out["s2_rel"] = f.s2 / lay["s0"]
        else:
            out.update(drop=f.drop, eta=f.eta, s_k=f.s_k)
        return out

    def _data_groups(self, lay: dict) -> dict[str, xr.Dataset]:
        table = lay["table"].data
        observed = xr.Dataset(
            {
                "loss": ("obs", lay["loss"]),
                "params": ("obs", lay["n"]),
                "step": ("obs", table["step"].to_numpy()),
                "run": ("obs", table["run"].to_numpy(dtype=str)),
                "obs_valid_domain": ("obs", np.asarray(lay["valid"], dtype=object)[lay["valid_idx"]].astype(str)),
            }
        )
        constant = xr.Dataset({"loss_scale": ("valid_domain", lay["scale"])}, coords={"valid_domain": lay["valid"]})
        return {"observed_data": observed, "constant_data": constant}

    def _attrs(self, lay: dict) -> dict:
        return {
            "lr_ref": lay["lr_ref"],
            "n0": lay["n0"],
            "s0": lay["s0"],
            "multi_size": int(lay["multi_size"]),
            "schedules": json.dumps(
                {run: {"origin": lay["origin"][run], "schedule": None if s is None else s.to_dict()} for run, s in lay["schedules"].items()}
            ),
            "unknown_last": int(lay["unknown_last"]),
            "scheduled_format": SCHEDULED_FORMAT,
            "pilot_params": json.dumps(sorted(float(v) for v in np.unique(lay["n"]))),
        }

    def _restore(self, tree: xr.DataTree) -> None:
        super()._restore(tree)
        from bayes_mixlaw import __version__

        written = int(tree.attrs.get("scheduled_format", 1))
        if written != SCHEDULED_FORMAT and int(tree.attrs.get("multi_size", 0)):
            raise ValueError(
                f"this schedule-aware fit of several sizes was written by bayes_mixlaw {tree.attrs.get('bayes_mixlaw_version', '?')} in format "
                f"{written}; bayes_mixlaw {__version__} reads format {SCHEDULED_FORMAT} (the size term sampled through what the pilots pin, "
                "size_term): refit the runs table with this version"
            )

    def beyond_log_size(self, params: float) -> float:
        """log(params / the largest pilot size), or 0 within the pilots' sizes (:mod:`bayes_mixlaw.discrepancy`)."""
        sizes = json.loads(self.idata.attrs["pilot_params"]) if "pilot_params" in self.idata.attrs else [float(self.idata.attrs["n0"])]
        return max(0.0, float(np.log(float(params) / max(sizes))))

    def _size_span(self) -> dict[str, float]:
        """log n of the smallest and largest pilot sizes relative to n0 (:func:`size_term`)."""
        attrs = self.idata.attrs
        sizes = np.asarray(json.loads(attrs["pilot_params"]), dtype=float)
        return {"log_n_lo": float(np.log(sizes.min() / float(attrs["n0"]))), "log_n_hi": float(np.log(sizes.max() / float(attrs["n0"])))}

    def _diagnostic_quantities(self) -> xr.Dataset:
        post = self.idata["posterior"].to_dataset()
        names = [
            n
            for n in (
                "E",
                "A",
                "B",
                "D",
                "C",
                "beta",
                "kappa",
                "gamma",
                "alpha",
                "rho_b",
                "rho_d",
                "rho_beta",
                "noise_sigma",
                "run_sigma",
                "run_anneal_sigma",
                "schedule_z",
            )
            if n in post
        ]
        return post[names]

    def _standard_noise(self, shape: tuple, rng: np.random.Generator) -> np.ndarray:
        if self.config.likelihood == "laplace":
            return rng.laplace(size=shape)
        return super()._standard_noise(shape, rng)

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
            )
            if n in post
        ]
        return self._parameter_table(names, ci)

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
        ``noise=False``: a ``predictive`` run's curve without the likelihood's noise (its run effects only)."""
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
        else:  # the unknown schedule: areas per draw of its length (annealing term only)
            if np.any(np.asarray(steps) < 0) or np.any(np.asarray(steps) != np.round(steps)):
                raise ValueError("steps must be whole numbers >= 0")
            totals = self._unknown_totals(steps, total_steps, rng)[:, :, None]
            s1, s2 = self.config.unknown_schedule.areas(np.asarray(steps, dtype=float), totals, int(attrs["unknown_last"]))
            if np.any(s1 <= 0):
                raise ValueError("a step is before the learning rate has moved the model (S1 = 0)")
            xs = {"s1_rel": s1 / s0, "s2_rel": s2 / s0}
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
        return line + self._size_note() + (self.unknown_schedule_note() if self.unknown_runs else "")

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
