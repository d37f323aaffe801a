"""What defines a schedule-aware scaling-law fit apart from its data (:class:`ScheduledLawConfig`): the step term, the
likelihood, the priors in the law's units (:data:`SCHEDULED_PRIORS`) and what a run of unknown schedule may have been
trained with."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field
from pymc_extras.prior import Prior

from bayes_mixlaw.config import NESTED_PRIORS, LawConfig, SamplerConfig
from bayes_mixlaw.scheduled_runs import UnknownSchedule
from bayes_mixlaw.schedules import DEFAULT_LAMBDA

# Chosen by held-out error of point fits (Huber on log loss, 12 starts; `benchmarks/schedules.py --choose`
# reruns the comparison): leave-one-schedule-out over the 4 published schedules x 3 sizes, mean relative
# error 0.095% (Tissue's annealing form) against 0.132% (multi-power law), the annealing form better in
# 9 of 12 folds; worst point 0.70% against 0.59%. The annealing form is also ~10x cheaper to sample.
STEP_TERM_DEFAULT: Literal["multi_power", "annealing"] = "annealing"

# Priors in the units of the law (bayes_mixlaw.scheduled: losses relative to the median loss s, areas relative to S0, sizes to N0).
# Scales from point fits of the multi-power law curves (25M-400M): L0/s ~ 0.9, b ~ 0.1, beta 0.33-0.5,
# d ~ 0.05, C 0.02-0.07 per step at the peak LR, kappa 0.3-0.9, gamma 0.3-0.8.
SCHEDULED_PRIORS: dict[str, Prior] = {
    # irreducible part: most of the loss (exp(-0.4) = 0.67 of the median; one size: about 0.9)
    "log_e": Prior("Normal", mu=-0.4, sigma=0.5),
    # size term (several sizes only), sampled through what the pilots pin (scheduled_model.size_term): the level
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
    # model discrepancy of a schedule's annealing (bayes_mixlaw.discrepancy_schedule): the law-form error of the
    # log loss per unit of pending LR decrease (Tissue's momentum m_t, relative to the reference LR), on every
    # prediction where a decrease is pending. External (benchmarks/discrepancy_prior.py --axes schedule:
    # leave-one-schedule-out on Luo et al.'s training schedules, 0.012-0.021, median 0.016); spread 1.65x at one sd
    "discrepancy_schedule": Prior("LogNormal", mu=-4.14, sigma=0.5),
    # noise on the log loss: logged training losses scatter by about 0.1%
    "noise_sigma": Prior("HalfNormal", sigma=0.01),
}


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
    # model discrepancy, on by default: beyond the largest pilot size (bayes_mixlaw.discrepancy: a size the
    # pilots did not reach rests on the size term's form and, with two sizes, on the prior of its exponent),
    # and while a learning-rate decrease is pending (bayes_mixlaw.discrepancy_schedule: the annealing term's
    # response errs most right after a drop); and how much of that error the validation domains share
    discrepancy: bool = True
    discrepancy_correlation: float = Field(0.75, ge=0, le=1)
