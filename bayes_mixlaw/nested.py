"""The nested law: loss as a function of mixture, model size and training length, fitted jointly.

Ye et al. (2025) chain three point fits (step law per run, size law per mixture, mixing law at the
target). Here one hierarchical model holds all three. For validation domain i, a pilot mixture r
(``rbar`` the pilots' mean mixture), model size N and step S (or tokens), with ``n = N / N0`` and
``s = S / S0`` relative to the geometric means of the pilots' and losses in units of the domain's
median loss::

    L_i(r, n, s) = ref_i(r) (1 + a_i(r) n^-alpha_i + b_i(r) n^-gamma_i s^-beta_i) / (1 + a_i(r) + b_i(r))

    law  (the joint model, default):
        ref_i(r) = m_i [(1 - f_i) + f_i exp(t_i . (r - rbar))] exp(d_ri)    mixing law at (N0, S0)
        log(a_i + b_i)(r) = log(a_i + b_i) + u_i . (r - rbar),  log(a_i / b_i)(r) = log(a_i / b_i) + w_i . (r - rbar)
        t_i, u_i, w_i pooled across domains (rows sum to zero); d_ri ~ Normal(0, mixture_sigma_i),
        integrated out of the likelihood (it is additive in the log loss) and drawn from its exact
        conditional; its scale is per domain (on 3Mix, Github's zero-Github mixtures depart 5% from
        the law, Books3's 0.5%: one shared scale pushed Github's misfit into its run effects); with
        ``mixture_size_slope`` the departure is a level and a slope in log size, d_ri + e_ri log n,
        e_ri ~ Normal(0, mixture_size_sigma_i), integrated out and drawn the same way
    free (first stage of the stage-wise pipeline):
        log ref_i(r) = log m_i + d_ri,  log a_i(r) = log_a_i + d'_ri,  log b_i(r) = log_b_i + d''_ri

    log(a_i + b_i) ~ Normal(log_ab_mu, sigma),  logit(a_i / (a_i + b_i)) ~ Normal(ab_split_mu, sigma)
        (``scaling_parameterisation="share"``; ``"amplitude"``: log a_i ~ Normal(log_a_mu, sigma), same
        for b, and the mixture moves log a and log b)
    log alpha_i ~ Normal(log_alpha_mu, sigma_e)   (same for beta)
    log loss = log L_i + u_run + w_run log s + e,   e ~ Normal(0, noise_sigma_i)
        u_run ~ Normal(0, run_sigma_i), w_run ~ Normal(0, run_slope_sigma_i): each run's level and slope
        in log-steps, integrated out of the likelihood (``bayes_mixlaw.run_effects``); the part of e that a
        mixture's sizes have in common at one checkpoint (their data order) is measured after sampling, and a
        new run at a checkpoint its mixture's other sizes reached draws e given theirs (``bayes_mixlaw.checkpoint_noise``)
    beyond the pilots: x exp(D kappa z), the model discrepancy (``bayes_mixlaw.discrepancy``)

The pilots' range of sizes and lengths pins down the local slopes well and the irreducible share
1 / (1 + a + b) poorly: along that ridge a and b grow together and the exponents slide, so the
default samples log(a + b), the split, and the slopes alpha q_a and beta q_b of the log loss at the
reference scale (q the shares of the loss the size and step terms remove there) instead of the
exponents, and the mixing law's slopes f_i t_i instead of t_i: the whole RedPajama table converges
in ~2 minutes (``benchmarks/README.md``).

So each pilot mixture follows Chinchilla's L(N, S) = E + A N^-alpha + B S^-beta with exponents
shared across mixtures (pooled across domains), the step-law parameters (b, beta) shared by every
size of a mixture, and the mixture acting on E, A and B through mixing laws. ``d`` is the pilot
mixture's departure from the mixing law; a new mixture gets a fresh draw of it, a pilot mixture its
own, so predictions for the pilots' mixtures use their data and predictions elsewhere say how well
the mixing law fits.

:class:`NestedLaw` is what it predicts; its other parts have a module each: how it reads a runs table and what its
fit file keeps (:mod:`bayes_mixlaw.nested_layout`), its PyMC model and likelihood (:mod:`bayes_mixlaw.nested_model`),
its draws at a target (:mod:`bayes_mixlaw.nested_draws`); the stage-wise pipeline is
:mod:`bayes_mixlaw.nested_stagewise`.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import xarray as xr

from bayes_mixlaw import checkpoint_noise, discrepancy, discrepancy_scale
from bayes_mixlaw.calibrate import describe
from bayes_mixlaw.config import NestedLawConfig
from bayes_mixlaw.laws import mixture_log_amplitudes, relative_scaling
from bayes_mixlaw.mixture_law import MixtureLaw
from bayes_mixlaw.nested_draws import NestedDraws
from bayes_mixlaw.nested_layout import NestedLayout
from bayes_mixlaw.nested_model import NestedModel
from bayes_mixlaw.run_effects import integrated_effects
from bayes_mixlaw.runs import MIX_PREFIX, load_runs, read_mixtures
from bayes_mixlaw.schedules import Schedule, as_schedule
from bayes_mixlaw.summary import DEFAULT_CI, summarize_draws


class NestedLaw(NestedLayout, NestedModel, NestedDraws, MixtureLaw):
    """Hierarchical Bayesian law over mixture, model size and training length.

    >>> law = NestedLaw(targets=pile_targets()).fit(load_runs("mixinglaws/RedPajama"), seed=0)
    >>> law.predict(mixtures, params=805_736_448, step=100_000)    # 1B at 100k steps
    """

    kind = "nested_law"
    config_class = NestedLawConfig
    pilot_mixture_var = "mixture_proportions"
    has_scale_axes = True  # predicts at a target size and length (the capabilities: bayes_mixlaw.model.BayesianLaw)
    supports_calibration = True
    takes_schedule = True  # the pilots' schedules (fit) and the target's (predict), when the pilots have them
    fit_name = "nested"

    @property
    def _share(self) -> bool:
        return self.config.scaling_parameterisation in ("share", "stick")

    @property
    def mixture_effect_names(self) -> tuple[str, str]:
        """How the mixture moves the scaling terms (rows sum to zero; ``laws.mixture_log_amplitudes``):
        on log(a + b) and the split log(a / b) (``share``), or on log a and log b (``amplitude``)."""
        return ("reducible_t", "split_t") if self._share else ("size_t", "step_t")

    # ------------------------------------------------------------------------------------------
    # fit

    def fit(
        self,
        runs,
        *,
        schedule=None,
        seed: int | None = None,
        method: str | None = None,
        progress: bool = True,
        observed_below: dict | None = None,
        checked=None,
        **sampler,
    ):
        """:meth:`BayesianLaw.fit`, with the model discrepancy's scale (``discrepancy_*``) learned from the
        pilots first (:mod:`bayes_mixlaw.discrepancy_scale`: one extra fit without their largest
        scale), unless ``learn_discrepancy`` is off.

        ``schedule``: the learning-rate schedule of the runs without an ``lr`` column (one
        :class:`~bayes_mixlaw.schedules.Schedule`, its dict or JSON path, or a mapping run -> schedule);
        with schedules the step term reads each checkpoint through its run's schedule
        (:mod:`bayes_mixlaw.schedule_grid`), without them it takes steps as they come. ``observed_below``:
        {column: largest value}, a likelihood of the losses at or below them only, on the whole table's grid
        (the discrepancy's calibration fit; :meth:`_layout`). ``checked``: as :meth:`BayesianLaw.fit`'s.

        The discrepancy's scales are drawn from their learned or external prior after sampling
        (:func:`bayes_mixlaw.discrepancy.draw_scales`)."""
        runs = load_runs(runs)
        priors, record = {}, {}
        # few domains: boundary-avoiding pooled scales; two sizes: the size exponent's axis sampled as one (config.for_sizes)
        self.config = cfg = self.config.for_domains(len(runs.valid_domains)).for_sizes(runs.data["params"].nunique())
        if cfg.discrepancy and cfg.learn_discrepancy and cfg.mixture_model == "law":
            priors, record = discrepancy_scale.learn(
                type(self), cfg, self.targets, runs, seed=seed, progress=progress, sampler={"method": method, **sampler}, schedule=schedule
            )
        build_options = {"schedule": schedule, "observed_below": observed_below}
        super().fit(runs, seed=seed, method=method, progress=progress, build_options=build_options, checked=checked, **sampler)
        if cfg.discrepancy:
            discrepancy.draw_scales(self, discrepancy.PRIORS, priors, seed)
            self.idata.attrs[discrepancy_scale.ATTR] = json.dumps(record)
        return self

    def _after_sampling(self) -> None:
        """The share of a checkpoint's deviation a mixture's sizes have in common, per domain (:mod:`bayes_mixlaw.checkpoint_noise`)."""
        self.idata.attrs[checkpoint_noise.ATTR] = json.dumps(self._estimate_checkpoint_sharing().round(6).tolist())

    # ------------------------------------------------------------------------------------------
    # predict

    @property
    def length_column(self) -> str:
        """``step`` or ``tokens``: how the fit measures training length."""
        self._require_fit()
        return self.idata.attrs["length_column"]

    def pilot_scales(self) -> dict[str, list[float]]:
        self._require_fit()
        return json.loads(self.idata.attrs["pilot_scales"])

    def law_draws(
        self,
        r: np.ndarray,
        params: float,
        length: float,
        *,
        rng: np.random.Generator,
        new_runs: bool = True,
        run_effects: bool = True,
        schedule: Schedule | None = None,
        areas: tuple | None = None,
    ) -> np.ndarray:
        """Expected loss per draw, (chain, draw, mixture, valid_domain), in absolute units.

        A pilot mixture keeps its fitted departure from the mixing law (with ``mixture_size_slope``, its level and
        its slope in log size); a new one draws it afresh.
        A pilot run (pilot mixture at a pilot size) keeps its fitted run effects; another run draws
        them afresh if ``new_runs`` (a new run's loss), else leaves them at zero (the law's mean);
        ``run_effects=False`` leaves every run's effects out (the law itself, as the likelihood sees it).
        A fit with schedules reads ``length`` through the target run's ``schedule``
        (:meth:`step_areas`), or takes the areas ``(S1 / S0, S2 / S0)`` given per row (``areas``)."""
        post = self.idata["posterior"]
        n_rel, length_rel = self._relative_scale(params, length)
        s_rel, s2_rel = (np.asarray(areas[0])[:, None], np.asarray(areas[1])[:, None]) if areas is not None else self.step_areas(length, schedule)
        pilot = self._pilot_index(r)
        log_ref_pilots = post["log_ref"].values  # (chain, draw, mixture, valid)
        if self.config.mixture_model == "free":
            if np.any(pilot < 0):
                raise ValueError("a 'free' nested fit (stage one of the stage-wise pipeline) predicts only its pilot mixtures")
            log_ref = log_ref_pilots[:, :, pilot]
            log_a = post["log_a_mixture"].values[:, :, pilot]
            log_b = post["log_b_mixture"].values[:, :, pilot]
        else:
            law = np.log(self.reference_law(r))
            sigma = post["mixture_sigma"].values  # per validation domain (a fit before 2026-12-03: one for all)
            sigma = sigma[:, :, None, :] if sigma.ndim == 3 else sigma[:, :, None, None]
            fresh = sigma * rng.standard_normal(law.shape)
            fitted = self._pilot_departures()[:, :, np.maximum(pilot, 0)]
            if "departure_slope" in post:  # mixture_size_slope: the departure is d + e log n, n relative to the reference
                fresh = fresh + post["mixture_size_sigma"].values[:, :, None, :] * rng.standard_normal(law.shape) * np.log(n_rel)
                fitted = fitted + post["departure_slope"].values[:, :, np.maximum(pilot, 0)] * np.log(n_rel)
            log_ref = law + np.where((pilot >= 0)[None, None, :, None], fitted, fresh)
            offset = r - self.idata["constant_data"]["mixture_center"].values
            log_a = post["log_a"].values[:, :, None, :] + np.zeros((1, 1, len(r), 1))
            log_b = post["log_b"].values[:, :, None, :] + np.zeros((1, 1, len(r), 1))
            if self.config.mixture_scaling:
                effects = (post[k].values for k in self.mixture_effect_names)
                log_a, log_b = mixture_log_amplitudes(offset, post["log_a"].values, post["log_b"].values, *effects, self._share)
        per_domain = {k: post[k].values[:, :, None, :] for k in ("alpha", "beta", "gamma")}
        annealing = s2_rel * post["anneal"].values[:, :, None, :] if "anneal" in post else 0.0
        log_loss = log_ref + np.log(relative_scaling(n_rel, s_rel, log_a, log_b, **per_domain, annealing=annealing))
        if self.config.run_effects and run_effects:
            log_loss = log_loss + self._run_effects(pilot, params, float(np.log(length_rel)), log_loss.shape, rng, new_runs)
        return np.exp(log_loss)

    def pointwise_log_likelihood(self) -> xr.DataArray:
        """One term per curve (run x validation domain), whose run effects are integrated out:
        :meth:`curve_log_likelihood`, so PSIS-LOO leaves out whole curves."""
        return self.curve_log_likelihood()

    def curve_log_likelihood(self) -> xr.DataArray:
        """log p(curve | draw) of every observed curve (one run on one validation domain, its run
        effects integrated out: :func:`bayes_mixlaw.run_effects.integrated_effects`), dims (chain, draw, curve).

        Each draw holds its pilot mixtures' departures (drawn from their exact conditional), so the
        terms are conditionally independent given the draw and PSIS-LOO leaves out whole curves."""
        return xr.DataArray(integrated_effects(*self._curve_terms()).loglik, dims=("chain", "draw", "curve"), name="loss")

    def step_areas(self, length: float, schedule: Schedule | None = None) -> tuple[float, float]:
        """``(s, s2)`` of a new run at ``length``: its forward and annealing areas relative to the fit's
        S0 under ``schedule`` for a fit with schedules (:mod:`bayes_mixlaw.schedule_grid`); for one
        without, the length relative to the reference and 0."""
        areas = self.schedule_areas
        if areas is None:
            if schedule is not None:
                raise ValueError(
                    "this nested fit takes steps as they come (its pilots had no learning-rate schedule): a target schedule cannot be used; "
                    "refit with the pilots' schedules ('lr' column or --schedule) to predict under one"
                )
            return self._relative_scale(1.0, length)[1], 0.0
        if schedule is None:
            raise ValueError(
                "this nested fit reads steps through the runs' learning-rate schedules: give the target run's schedule "
                "(schedule=Schedule(...); CLI: --schedule SCHED.json)"
            )
        if self.length_column != "step":
            raise ValueError(f"a schedule is read in steps; this fit measures training length in {self.length_column}")
        return areas.at(as_schedule(schedule), length)

    def predict_draws(self, mixtures, *, params=None, step=None, tokens=None, schedule=None, kind: str = "predictive", seed: int = 0) -> xr.DataArray:
        """Posterior draws of every target at each mixture and the scale (params, step or tokens):
        dims (chain, draw, mixture, target). ``kind``: ``mean`` (the law) or ``predictive`` (a new run).
        ``schedule``: the target run's learning-rate schedule, for a fit with schedules (:meth:`step_areas`)."""
        self._require_fit()
        frame = read_mixtures(mixtures, self.train_domains)
        n, length = self._read_scale(params, step, tokens)
        return self._draws_at(frame, kind, seed, params=n, length=length, schedule=schedule)

    def predict(
        self, mixtures, *, params=None, step=None, tokens=None, schedule=None, ci: float = DEFAULT_CI, kind: str = "predictive", seed: int = 0
    ) -> pd.DataFrame:
        """One row per mixture and target at the given scale: ``name`` (if given), ``mix:*``,
        ``params``, ``step`` (or ``tokens``), ``target``, ``mean``, ``median``, ``lower``, ``upper``, then how far the
        row lies beyond the pilots (``beyond_mixture``, ``beyond_log_size``, ``beyond_log_length``:
        :func:`bayes_mixlaw.discrepancy.beyond_pilots`). ``schedule``: the target run's learning-rate
        schedule, for a fit with schedules (:meth:`step_areas`)."""
        self._require_fit()
        frame = read_mixtures(mixtures, self.train_domains)
        n, length = self._read_scale(params, step, tokens)
        draws = self._draws_at(frame, kind, seed, params=n, length=length, schedule=schedule)
        inputs = frame.assign(params=int(n) if n == round(n) else n, **{self.length_column: int(length) if length == round(length) else length})
        table = summarize_draws(draws, inputs, ci)
        beyond = discrepancy.beyond_pilots(
            self, frame[[MIX_PREFIX + d for d in self.train_domains]].to_numpy(dtype=float), {"params": n, self.length_column: length}
        )
        return table.assign(**{k: np.repeat(v, draws.sizes["target"]) for k, v in beyond.items()})

    def target_function(self, target: str = "total", *, params=None, step=None, tokens=None, schedule=None, draws: int | None = None, seed: int = 0):
        """The law's expected ``target`` loss at (params, step or tokens; ``schedule``: the target run's,
        for a fit with schedules) as a function of a new
        mixture, one per posterior draw: ``f(r)`` maps a torch tensor (n_draws, n, M) to
        (n_draws, n), float64 and differentiable in r; ``f.n_draws`` says how many. The departure of a new mixture from the mixing
        law has mean zero and is left out (it does not move the best mixture)."""
        self._require_fit()
        if self.config.mixture_model != "law":
            raise ValueError("only the joint nested law ('law' mixtures) predicts new mixtures")
        import torch

        n, length = self._read_scale(params, step, tokens)
        n_rel = self._relative_scale(n, length)[0]
        s_rel, s2_rel = self.step_areas(length, schedule)
        law_names = list(self.form.parameter_names)
        names = [*law_names, "log_a", "log_b", "alpha", "beta", "gamma"] + (["anneal"] if s2_rel else [])
        names += list(self.mixture_effect_names) if self.config.mixture_scaling else []
        axes = discrepancy.active_axes(self, {"params": n, self.length_column: length})
        p = self._torch_posterior(names + list(axes), draws, seed)
        center = torch.as_tensor(self.idata["constant_data"]["mixture_center"].values, dtype=torch.float64)
        weights = self._target_weights(target)
        scaling = self.config.mixture_scaling
        n_draws, n_valid = len(p["alpha"]), len(self.valid_domains)
        shape = (n_draws, 1, 1, n_valid)  # one extrapolation factor per draw and domain (ones if none is attached)
        kappas = {k: p[k].numpy()[:, None] for k in axes}
        factor = discrepancy.extrapolation_factor(
            self, {"params": n, self.length_column: length}, kappas, shape, np.random.default_rng(seed + 1), predictive=False
        )
        extrapolation = torch.as_tensor(np.broadcast_to(factor, shape).reshape(n_draws, 1, n_valid).copy())  # a broadcast view is read-only

        def f(r):
            if scaling:
                log_a, log_b = mixture_log_amplitudes(r - center, p["log_a"], p["log_b"], *(p[k] for k in self.mixture_effect_names), self._share)
            else:
                log_a, log_b = p["log_a"][:, None, :], p["log_b"][:, None, :]
            ratio = relative_scaling(
                torch.tensor(n_rel, dtype=torch.float64),
                torch.tensor(s_rel, dtype=torch.float64),
                log_a,
                log_b,
                p["alpha"][:, None, :],
                p["beta"][:, None, :],
                p["gamma"][:, None, :],
                s2_rel * p["anneal"][:, None, :] if s2_rel else 0.0,
            )
            return (self.reference_law(r, {k: p[k] for k in law_names}) * ratio * extrapolation) @ weights

        f.n_draws = n_draws
        return f

    def parameters(self, ci: float = DEFAULT_CI) -> pd.DataFrame:
        """Posterior mean and interval of the exponents and, for the joint model, of the mixing law's parameters (its form's
        ``summary_names``: log_c, log_k, t for the explicit law) and the mixture's effects on the scaling terms."""
        self._require_fit()
        names = ["alpha", "beta", "gamma", "log_a", "log_b"] + (
            [*self.form.summary_names, *self.mixture_effect_names] if self.config.mixture_model == "law" else []
        )
        return self._parameter_table(names, ci)

    def summary_line(self) -> str:
        self._require_fit()
        d = self.diagnostics
        scales = self.pilot_scales()
        sizes = ", ".join(f"{p / 1e6:.0f}M" for p in scales["params"])
        lengths = scales[self.length_column]
        n_mix = self.idata["constant_data"].sizes["mixture"]
        what = "joint nested law" if self.config.mixture_model == "law" else "nested law (free mixtures)"
        return (
            f"{what} ({self.config.likelihood}) on {n_mix} mixtures x sizes {sizes} x {len(lengths)} {self.length_column}s "
            f"({lengths[0]:g}-{lengths[-1]:g}{self._transient_note()}) x {len(self.valid_domains)} validation domains; {d.summary()}{describe(self)}"
            f"{self._assumptions()}{discrepancy_scale.describe(discrepancy_scale.read(self))}{self._checkpoint_note()}"
        )

    def _checkpoint_note(self) -> str:
        """How much of the noise a mixture's sizes share at one checkpoint (:mod:`bayes_mixlaw.checkpoint_noise`), in words."""
        rho = self.checkpoint_shared
        if rho is None or not rho.any():
            return ""
        return (
            f"; a mixture's sizes share {np.median(rho):.0%} of the noise at one checkpoint (median over domains), "
            "read by a new run where they reached its length"
        )

    def _transient_note(self) -> str:
        """What the fit left out as the early transient (``transient_fraction``), in words."""
        left_out = json.loads(self.idata.attrs.get("transient", "{}"))
        if not left_out:
            return ""
        return f"; {left_out['losses']} losses before {left_out['cut']:g} left out as the early transient"

    def _assumptions(self) -> str:
        """What the fit assumed that the data do not say: the schedule, and the discrepancy beyond the pilots."""
        if not self.config.discrepancy:
            return "; no model discrepancy: intervals beyond the pilots cover the law's form only"
        post = self.idata["posterior"]
        kappa = {axis: float(np.median(post[f"discrepancy_{axis}"].values)) for axis in discrepancy.AXES}
        areas = self.schedule_areas
        if areas is None:
            schedule = (
                "learning-rate schedule not given: checkpoints are taken as they come, and beyond the longest pilot run "
                "the model discrepancy carries the law's (and the schedule's) error"
            )
        else:
            origins = pd.Series(areas.origin).value_counts()
            anneal = np.median(post["anneal"].values)
            schedule = (
                f"learning-rate schedules of {len(areas.schedules)} runs ({', '.join(f'{n} from {o}' for o, n in origins.items())}): the step term reads "
                f"each checkpoint's areas S1 and S2 (annealing {anneal:.2g} x the step term per unit of S2 / S0), and beyond the longest pilot run the "
                "model discrepancy carries the law's error"
            )
        return (
            f"; {schedule}, {100 * kappa['length']:.1f}% per log-unit of length "
            f"({100 * kappa['size']:.1f}% per log-unit of size"
            + (
                f", {100 * float(np.median(post[discrepancy.MIXTURE].values)):.1f}% per unit of a mixture's distance from the pilots' hull"
                if discrepancy.MIXTURE in post
                else ""
            )
            + ")"
        )


def __getattr__(name):
    """The stage-wise pipeline, importable from here as before it had a module of its own
    (:mod:`bayes_mixlaw.nested_stagewise`, which imports this module)."""
    if name == "StagewiseNestedFit":
        from bayes_mixlaw.nested_stagewise import StagewiseNestedFit

        return StagewiseNestedFit
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
