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
        the law, Books3's 0.5%: one shared scale pushed Github's misfit into its run effects)
    free (first stage of the stage-wise pipeline):
        log ref_i(r) = log m_i + d_ri,  log a_i(r) = log_a_i + d'_ri,  log b_i(r) = log_b_i + d''_ri

    log(a_i + b_i) ~ Normal(log_ab_mu, sigma),  logit(a_i / (a_i + b_i)) ~ Normal(ab_split_mu, sigma)
        (``scaling_parameterisation="share"``; ``"amplitude"``: log a_i ~ Normal(log_a_mu, sigma), same
        for b, and the mixture moves log a and log b)
    log alpha_i ~ Normal(log_alpha_mu, sigma_e)   (same for beta)
    log loss = log L_i + u_run + w_run log s + e,   e ~ Normal(0, noise_sigma_i)
        u_run ~ Normal(0, run_sigma_i), w_run ~ Normal(0, run_slope_sigma_i): each run's level and slope
        in log-steps, integrated out of the likelihood (``bayes_mixlaw.run_effects``)
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
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from typing import ClassVar

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt
import xarray as xr

from bayes_mixlaw import discrepancy, discrepancy_scale
from bayes_mixlaw.calibrate import describe
from bayes_mixlaw.config import MixingLawConfig, NestedLawConfig
from bayes_mixlaw.laws import mixing_law, mixture_log_amplitudes, relative_scaling
from bayes_mixlaw.mixing import MixingLaw, _centred_to_law
from bayes_mixlaw.mixture_law import MixtureLaw
from bayes_mixlaw.run_effects import (
    conditional_effects,
    curve_sums,
    draw_effects,
    integrate_shared_level,
    marginal_loglik,
    shift_information,
)
from bayes_mixlaw.runs import MIX_PREFIX, RunsTable, load_runs, read_mixtures, validate_runs
from bayes_mixlaw.schedule_grid import GridAreas, grid_areas
from bayes_mixlaw.schedules import Schedule, as_schedule
from bayes_mixlaw.summary import DEFAULT_CI, summarize_draws
from bayes_mixlaw.targets import Targets

# scale of the interactions' base distribution (cancelled in the model; sets what prior draws look like)
_T_BASE = 3.0
# the interactions are sampled as g = f^p t (see _slope_interactions): p = 1 samples the slopes the
# pilots pin near their mean mixture (RedPajama: f ~ 0.3, t sampled directly left R-hat 1.05); where
# f is small and t large (5Mix: f ~ 0.02-0.07, |t| up to 13), g = f t has a funnel in f (33 divergences);
# half way, p = 0.5, both converge (RedPajama R-hat 1.006, ESS 742; 5Mix R-hat 1.009, no divergences)
_SLOPE_POWER = 0.5
# version of the nested law's fit-file layout: 2 = Normal likelihood with the run effects integrated
# out (bayes_mixlaw.run_effects) and the model discrepancy (bayes_mixlaw.discrepancy)
NESTED_FORMAT = 2
# two mixtures closer than this (max abs difference of proportions) are the same mixture
SAME_MIXTURE = 1e-6


def _mixture_labels(mixtures: pd.DataFrame, run_mixture: np.ndarray, runs: list[str]) -> list[str]:
    """A readable name per distinct mixture: the longest common end of its runs' names
    (``70M_RP_3-...`` and ``160M_RP_3-...`` give ``RP_3-...``), else ``mixture k``."""
    labels = []
    for k in range(len(mixtures)):
        names = [runs[j] for j in np.flatnonzero(run_mixture == k)]
        reversed_common = []
        for chars in zip(*[n[::-1] for n in names]):
            if len(set(chars)) > 1:
                break
            reversed_common.append(chars[0])
        label = "".join(reversed(reversed_common))
        # start at a name boundary: '70M_RP_3' and '160M_RP_3' share 'M_RP_3'; keep 'RP_3'
        while label and not all(len(n) == len(label) or n[-len(label) - 1] in "_-. " for n in names):
            label = label[1:]
        label = label.lstrip("_-. ")
        labels.append(label if label else f"mixture {k}")
    if len(set(labels)) < len(labels):
        labels = [f"mixture {k}" for k in range(len(mixtures))]
    return labels


def _slope_interactions(t_mu, t_sigma, logit_f, dims):
    r"""The interactions ``t_i ~ t_mu + ZeroSumNormal(t_sigma)``, sampled as ``g_i = f_i^p t_i``.

    Near the pilots' mean mixture ``ref_i(r) ~ m_i [1 + f_i t_i.(r - rbar) + f_i (t_i.(r - rbar))^2 / 2]``:
    pilots close together pin the slope ``f_i t_i`` and see ``f_i`` only in the curvature, so ``f_i`` and
    ``t_i`` trade along a ridge (R-hat 1.05 on the whole RedPajama table when ``t`` was sampled); pilots
    spread over the simplex with a small ``f_i`` and large ``t_i`` (5Mix) pin ``t_i`` itself, and the
    slope's scale then shrinks with ``f_i``: a funnel. ``p = _SLOPE_POWER`` (0.5) sits between the two.
    Sampling ``g`` (a ZeroSumNormal whose density is cancelled) and putting the pooled prior on
    ``t = g / f^p``, with the Jacobian ``|dt/dg| = f^-p(M-1)`` per row, is the same model in other
    coordinates.
    """
    scale = pm.math.sigmoid(logit_f)[:, None] ** _SLOPE_POWER
    # base g ~ ZeroSumNormal(_T_BASE f^p), i.e. t = g / f^p ~ ZeroSumNormal(_T_BASE): its density,
    # Jacobian included, is cancelled below, so the posterior is the pooled prior's; prior draws stay sane
    g = pm.ZeroSumNormal("mixture_slope", sigma=_T_BASE * scale, dims=dims)
    t = pm.Deterministic("t", g / scale, dims=dims)
    m = t.shape[-1]
    prior = -0.5 * ((t - t_mu) ** 2).sum() / t_sigma**2 - t.shape[0] * (m - 1) * pm.math.log(t_sigma)
    pm.Potential("t_prior", prior + 0.5 * (t**2).sum() / _T_BASE**2)
    return t


class NestedLaw(MixtureLaw):
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
        return self.config.scaling_parameterisation == "share"

    @property
    def mixture_effect_names(self) -> tuple[str, str]:
        """How the mixture moves the scaling terms (rows sum to zero; ``laws.mixture_log_amplitudes``):
        on log(a + b) and the split log(a / b) (``share``), or on log a and log b (``amplitude``)."""
        return ("reducible_t", "split_t") if self._share else ("size_t", "step_t")

    # ------------------------------------------------------------------------------------------
    # fit

    def fit(self, runs, *, schedule=None, seed: int | None = None, method: str | None = None, progress: bool = True, **sampler):
        """:meth:`BayesianLaw.fit`, with the model discrepancy's scale (``discrepancy_*``) learned from the
        pilots first (:mod:`bayes_mixlaw.discrepancy_scale`: one extra fit without their largest
        scale), unless ``learn_discrepancy`` is off.

        ``schedule``: the learning-rate schedule of the runs without an ``lr`` column (one
        :class:`~bayes_mixlaw.schedules.Schedule`, its dict or JSON path, or a mapping run -> schedule);
        with schedules the step term reads each checkpoint through its run's schedule
        (:mod:`bayes_mixlaw.schedule_grid`), without them it takes steps as they come.

        The discrepancy's scales are drawn from their learned or external prior after sampling
        (:func:`bayes_mixlaw.discrepancy.draw_scales`)."""
        runs = load_runs(runs)
        priors, record = {}, {}
        self.config = cfg = self.config.for_domains(len(runs.valid_domains))  # few domains: boundary-avoiding pooled scales
        if cfg.discrepancy and cfg.learn_discrepancy and cfg.mixture_model == "law":
            priors, record = discrepancy_scale.learn(
                type(self), cfg, self.targets, runs, seed=seed, progress=progress, sampler={"method": method, **sampler}, schedule=schedule
            )
        self._schedule_arg = schedule
        try:
            super().fit(runs, seed=seed, method=method, progress=progress, **sampler)
        finally:
            self._schedule_arg = None
        if cfg.discrepancy:
            discrepancy.draw_scales(self, discrepancy.PRIORS, priors, seed)
            self.idata.attrs[discrepancy_scale.ATTR] = json.dumps(record)
        return self

    # ------------------------------------------------------------------------------------------
    # model

    def _layout(self, runs: RunsTable, schedule=None, areas: GridAreas | None = None) -> dict:
        """``schedule``: as in :meth:`fit` (default: the one given to the running ``fit``); ``areas``:
        the schedule areas a fit file keeps (a reloaded fit's runs are named by mixture)."""
        data = runs.data
        if not runs.mix_columns:
            raise ValueError(f"{runs.source}: the table has no 'mix:<domain>' columns; fit one mixture with ChinchillaLaw")
        if "params" not in data:
            raise ValueError(f"{runs.source}: the nested law needs a 'params' column (model size)")
        length = "step" if "step" in data else "tokens" if "tokens" in data else None
        if length is None:
            raise ValueError(f"{runs.source}: the nested law needs a 'step' or 'tokens' column (training length)")
        data, early = self._drop_transient(data, length, runs.source)
        runs = dataclasses.replace(runs, data=data) if early else runs
        for column in ("params", length):
            if data[column].nunique() < 2:
                raise ValueError(f"{runs.source}: '{column}' takes one value; fit a MixingLaw at one scale instead (or add pilots)")
        valid = runs.valid_domains
        targets = self.targets.check(valid, "targets")
        run_names = runs.runs
        per_run = runs.mixtures().loc[run_names]
        distinct = per_run.round(9).drop_duplicates()
        distinct_values = distinct.to_numpy(dtype=float)
        run_mixture = np.array([int(np.argmin(np.abs(distinct_values - row).max(axis=1))) for row in per_run.to_numpy(dtype=float)])
        labels = _mixture_labels(distinct, run_mixture, run_names)
        run_pos = {r: i for i, r in enumerate(run_names)}
        valid_pos = {v: i for i, v in enumerate(valid)}
        n = data["params"].to_numpy(dtype=float)
        s = data[length].to_numpy(dtype=float)
        n0, s0 = float(np.exp(np.log(n).mean())), float(np.exp(np.log(s).mean()))
        loss = data["loss"].to_numpy(dtype=float)
        valid_idx = data["valid_domain"].map(valid_pos).to_numpy()
        mix_idx = run_mixture[data["run"].map(run_pos).to_numpy()]
        sizes, size_idx = np.unique(n, return_inverse=True)
        length_values, length_idx = np.unique(s, return_inverse=True)
        grid_shape = (len(distinct_values), len(sizes), len(length_values), len(valid))
        curve_shape = (len(distinct_values), len(sizes), len(valid))  # one curve per run and domain
        curve = np.ravel_multi_index((mix_idx, size_idx, valid_idx), curve_shape)
        log_length = np.log(s / s0)
        n_curves = int(np.prod(curve_shape))
        if areas is None:
            run_rows = data.drop_duplicates("run")
            cell = dict(zip(run_rows["run"], zip(mix_idx[run_rows.index], size_idx[run_rows.index])))
            schedule = schedule if schedule is not None else getattr(self, "_schedule_arg", None)
            areas = grid_areas(runs, length, schedule, cell, curve_shape[:2], length_values, (mix_idx, size_idx, length_idx))
        return {
            "areas": areas,
            "table": runs,
            "targets": targets,
            "valid": valid,
            "train": runs.train_domains,
            "length": length,
            "mixture_labels": labels,
            "mixtures": distinct_values,
            "mix_idx": mix_idx,
            "sizes": sizes,
            "length_values": length_values,
            "obs_cell": np.ravel_multi_index((mix_idx, size_idx, length_idx, valid_idx), grid_shape),
            "curve": curve,
            "log_length": log_length,
            "curve_shape": curve_shape,
            "curve_m": np.bincount(curve, minlength=n_curves).astype(float),
            "curve_sy": np.bincount(curve, weights=log_length, minlength=n_curves),
            "curve_syy": np.bincount(curve, weights=log_length**2, minlength=n_curves),
            "curve_valid": np.unravel_index(np.arange(n_curves), curve_shape)[2],
            "transient": early,
            "valid_idx": valid_idx,
            "params": n,
            "lengths": s,
            "n0": n0,
            "s0": s0,
            "loss": loss,
            "scale": data.groupby("valid_domain")["loss"].median().loc[valid].to_numpy(),
        }

    def _drop_transient(self, data: pd.DataFrame, length: str, source: str) -> tuple[pd.DataFrame, dict]:
        """Leave out the checkpoints before ``transient_fraction`` of the longest pilot run, saying so.

        Returns the kept rows and what was left out (``{}`` when nothing was): the cut, how many losses
        and checkpoints."""
        cut = self.config.transient_fraction * float(data[length].max())
        early = data[length] < cut
        if not early.any():
            return data, {}
        left_out = {"cut": cut, "losses": int(early.sum()), "checkpoints": sorted(float(x) for x in data.loc[early, length].unique())}
        warnings.warn(
            f"{source}: left out {left_out['losses']} losses at {length}s below {cut:g} ({len(left_out['checkpoints'])} checkpoints, "
            f"{length} {left_out['checkpoints'][0]:g}-{left_out['checkpoints'][-1]:g}): a power law in {length}s describes training after "
            f"its early transient; NestedLawConfig(transient_fraction=0) keeps them",
            UserWarning,
            stacklevel=4,
        )
        return data[~early].reset_index(drop=True), left_out

    def _model(self, lay: dict, **options) -> pm.Model:
        """The PyMC model; every data array enters through ``pm.Data`` so refits reuse it."""
        cfg = self.config
        coords = {
            "valid_domain": lay["valid"],
            "train_domain": lay["train"],
            "mixture": lay["mixture_labels"],
            "obs": np.arange(len(lay["loss"])),
            "size": lay["sizes"],
            "length": lay["length_values"],
            "curve": np.arange(len(lay["curve_m"])),
        }
        vt = ("valid_domain", "train_domain")
        mv = ("mixture", "valid_domain")
        with pm.Model(coords=coords) as model:
            data = {k: pm.Data(k, v, dims=self._DATA_DIMS[k]) for k, v in self._data(lay).items()}
            mixtures, center = data["mixture_proportions"], data["mixture_center"]
            log_m = cfg.prior("loss_at_mean", dims="valid_domain").create_variable("log_loss_at_mean")
            ab_sigma = cfg.prior("log_ab_sigma").create_variable("log_ab_sigma")
            if cfg.scaling_parameterisation == "share":
                # log(a + b) and the split a : b: a and b move together along the ridge of the
                # irreducible share 1 / (1 + a + b), which the pilots' range pins down poorly
                log_ab = pm.Normal("log_ab", cfg.prior("log_ab_mu").create_variable("log_ab_mu"), ab_sigma, dims="valid_domain")
                split = pm.Normal("ab_split", cfg.prior("ab_split_mu").create_variable("ab_split_mu"), ab_sigma, dims="valid_domain")
                log_a_dom = pm.Deterministic("log_a", log_ab - pm.math.log1pexp(-split), dims="valid_domain")
                log_b_dom = pm.Deterministic("log_b", log_ab - pm.math.log1pexp(split), dims="valid_domain")
            else:
                log_a_dom = pm.Normal("log_a", cfg.prior("log_a_mu").create_variable("log_a_mu"), ab_sigma, dims="valid_domain")
                log_b_dom = pm.Normal("log_b", cfg.prior("log_b_mu").create_variable("log_b_mu"), ab_sigma, dims="valid_domain")
            mixture_sigma = cfg.prior("mixture_sigma", dims="valid_domain").create_variable("mixture_sigma")
            if cfg.mixture_model == "law":
                f_mu = cfg.prior("f_mu").create_variable("f_mu")
                f_sigma = cfg.prior("f_sigma").create_variable("f_sigma")
                t_mu = cfg.prior("t_mu", dims="train_domain").create_variable("t_mu")
                t_sigma = cfg.prior("t_sigma").create_variable("t_sigma")
                logit_f = pm.Normal("logit_f", f_mu, f_sigma, dims="valid_domain")
                t = _slope_interactions(t_mu[None, :], t_sigma, logit_f, dims=vt)
                law_c, law_k = _centred_to_law(log_m, logit_f, t, center)
                pm.Deterministic("log_c", law_c + data["log_loss_scale"], dims="valid_domain")
                pm.Deterministic("log_k", law_k + data["log_loss_scale"], dims="valid_domain")
                # each pilot mixture's departure d from the mixing law is additive in the log loss:
                # the likelihood integrates it out (_integrate_departures), so the sampler sees no
                # funnel in mixture_sigma however well the pilots fix d
                law_ref = pm.math.log(mixing_law(mixtures, law_c, law_k, t))
                if cfg.mixture_scaling:
                    scale_sigma = cfg.prior("scale_t_sigma").create_variable("scale_t_sigma")
                    u_mu = cfg.prior("size_t_mu", dims="train_domain").create_variable("size_t_mu")
                    w_mu = cfg.prior("step_t_mu", dims="train_domain").create_variable("step_t_mu")
                    first, second = self.mixture_effect_names
                    # the domains' deviations sum to zero over domains too (n_zerosum_axes=2), so the pooled
                    # mean is the domains' mean: with deviations free in their domain-mean, that mean and
                    # u_mu, w_mu traded along a ridge (5Mix: step_t_mu ESS 180; zero-summed: 1,000+)
                    u = pm.Deterministic(first, u_mu + scale_sigma * pm.ZeroSumNormal(f"{first}_z", sigma=1.0, dims=vt, n_zerosum_axes=2), dims=vt)
                    w = pm.Deterministic(second, w_mu + scale_sigma * pm.ZeroSumNormal(f"{second}_z", sigma=1.0, dims=vt, n_zerosum_axes=2), dims=vt)
                    log_a, log_b = mixture_log_amplitudes(mixtures - center, log_a_dom, log_b_dom, u, w, self._share)  # (mixture, valid_domain)
                else:
                    log_a = pm.math.zeros_like(law_ref) + log_a_dom
                    log_b = pm.math.zeros_like(law_ref) + log_b_dom
            else:
                law_ref = log_m + pm.Normal("departure", 0.0, mixture_sigma, dims=mv)
                log_a = pm.Normal("log_a_free", log_a_dom[None, :], ab_sigma, dims=mv)
                log_b = pm.Normal("log_b_free", log_b_dom[None, :], ab_sigma, dims=mv)
            pm.Deterministic("log_a_mixture", log_a, dims=mv)
            pm.Deterministic("log_b_mixture", log_b, dims=mv)
            e_sigma = cfg.prior("log_exponent_sigma").create_variable("log_exponent_sigma")
            alpha_mu, beta_mu = (cfg.prior(k).create_variable(k) for k in ("log_alpha_mu", "log_beta_mu"))
            if cfg.scaling_parameterisation == "share":
                # sample what the pilots pin, the slopes alpha q_a and beta q_b of the log loss at the
                # reference scale (q: the shares of the loss the size and step terms remove there);
                # the exponents follow as slope / share, and their priors apply to them unchanged
                # (log alpha = log slope - log q_a has a unit Jacobian): along the poorly pinned
                # irreducible share the slopes stay put and only the derived exponents move
                # (the slope's prior is the exponent's, shifted by log q: the same density, and
                # prior draws of it give the exponents their prior)
                log_total = pm.math.log1pexp(log_ab)
                log_share_a, log_share_b = log_a_dom - log_total, log_b_dom - log_total
                log_alpha = pm.Normal("log_size_slope", alpha_mu + log_share_a, e_sigma, dims="valid_domain") - log_share_a
                log_beta = pm.Normal("log_step_slope", beta_mu + log_share_b, e_sigma, dims="valid_domain") - log_share_b
            else:
                log_alpha = pm.Normal("log_alpha", alpha_mu, e_sigma, dims="valid_domain")
                log_beta = pm.Normal("log_beta", beta_mu, e_sigma, dims="valid_domain")
            alpha = pm.Deterministic("alpha", pm.math.exp(log_alpha), dims="valid_domain")
            beta = pm.Deterministic("beta", pm.math.exp(log_beta), dims="valid_domain")
            gamma = pm.Normal(
                "gamma", cfg.prior("gamma_mu").create_variable("gamma_mu"), cfg.prior("gamma_sigma").create_variable("gamma_sigma"), dims="valid_domain"
            )
            # on the grid mixture x size x length x domain (powers on the small size x domain and
            # length x domain arrays), then the observed cells; under known schedules the step is
            # read as its run's areas (schedule_grid): S1 in place of the step, S2 annealing
            if lay["areas"] is None:
                steps_rel, annealing = data["lengths_rel"][None, None, :, None], 0.0
            else:
                log_anneal = cfg.prior("log_anneal", dims="valid_domain").create_variable("log_anneal")
                anneal = pm.Deterministic("anneal", pm.math.exp(log_anneal), dims="valid_domain")
                steps_rel, annealing = data["schedule_s1"][:, :, :, None], data["schedule_s2"][:, :, :, None] * anneal
            ratio = relative_scaling(
                data["sizes_rel"][None, :, None, None],
                steps_rel,
                log_a[:, None, None, :],
                log_b[:, None, None, :],
                alpha,
                beta,
                gamma,
                annealing,
            )
            grid = law_ref[:, None, None, :] + data["log_loss_scale"] + pm.math.log(ratio)
            mu = grid.flatten()[data["obs_cell"]]
            noise = cfg.prior("noise_sigma", dims="valid_domain").create_variable("noise_sigma")
            departure = self._likelihood_terms(data, mu, noise, mixture_sigma if cfg.mixture_model == "law" else None, lay["curve_shape"])
            log_ref = law_ref if departure is None else law_ref + departure
            pm.Deterministic("log_ref", log_ref + data["log_loss_scale"], dims=mv)
        return model

    def _key_parts(self, lay: dict, **options) -> tuple:
        parts = (lay["valid"], lay["train"], len(lay["mixture_labels"]), len(lay["sizes"]), len(lay["length_values"]))
        return parts if lay["areas"] is None else (*parts, "schedule-aware step term")  # fits without schedules keep their keys

    def _stored_runs(self) -> tuple[RunsTable, dict]:
        """The fitted runs (after the transient was left out), from the file's observed data: a run per
        pilot mixture, named by its label."""
        attrs = self.idata.attrs
        data = self._observed_rows(
            {"params": "params", str(attrs["length_column"]): str(attrs["length_column"])}, run="obs_mixture", mixtures="mixture_proportions"
        )
        return RunsTable(data, source=str(attrs.get("source", "<fit>"))), {} if self.schedule_areas is None else {"areas": self.schedule_areas}

    @property
    def schedule_areas(self) -> GridAreas | None:
        """The pilots' schedule areas on the grid (:mod:`bayes_mixlaw.schedule_grid`), ``None`` for a
        fit that takes steps as they come; read once per posterior."""
        self._require_fit()
        cached = self.__dict__.get("_areas")
        if cached is not None and cached[0] is self.idata:
            return cached[1]
        areas = None
        if "schedules" in self.idata.attrs:
            record, constant = json.loads(self.idata.attrs["schedules"]), self.idata["constant_data"]
            schedules = {run: Schedule.from_dict(r["schedule"]) for run, r in record["runs"].items()}
            origin = {run: r["origin"] for run, r in record["runs"].items()}
            areas = GridAreas(constant["schedule_s1"].values, constant["schedule_s2"].values, record["s0"], record["lr_ref"], schedules, origin)
        self._areas = (self.idata, areas)
        return areas

    def _likelihood_terms(self, data: dict, mu, noise, mixture_sigma, shape: tuple):
        r"""The observed log-losses, given the law ``mu`` (per observation, without the pilot mixtures'
        departures), as potentials; returns the departures (``None`` if sampled elsewhere).

        Each curve (one run on one validation domain) has its level and slope in log-steps integrated
        out (:func:`bayes_mixlaw.run_effects.marginal_loglik`; ``run_effects=False``: independent
        Normal losses). With ``mixture_sigma`` given, the departure ``d ~ N(0, mixture_sigma)`` shared
        by every curve of a pilot mixture on a domain is integrated out too
        (:func:`bayes_mixlaw.run_effects.integrate_shared_level`); a draw of it from its exact
        conditional, ``d = mean + sd z`` with ``z ~ N(0, 1)`` sampled alongside (a free standard
        normal: no geometry for the sampler), is kept as ``departure``, and the run effects' conditional
        means given it as ``run_level`` and ``run_slope``. ``shape``: the curves' (mixture, size, valid_domain)."""
        cfg = self.config
        n_curves = int(np.prod(shape))
        cv = data["curve_valid"]
        residual = data["log_loss"] - mu
        if cfg.run_effects:
            tau_u = cfg.prior("run_sigma", dims="valid_domain").create_variable("run_sigma")
            tau_w = cfg.prior("run_slope_sigma", dims="valid_domain").create_variable("run_slope_sigma")
            sums = curve_sums(residual, data["log_length"], data["obs_curve"], n_curves)
            block = (data["curve_m"], data["curve_sy"], data["curve_syy"])
            scales = (noise[cv], tau_u[cv], tau_w[cv])
            loglik = marginal_loglik(*block, *sums, *scales).sum()
            mean_u, mean_w, *_ = conditional_effects(*block, *sums[:2], *scales)
            if mixture_sigma is not None:
                a, b, unit_u, unit_w = shift_information(*block, *sums[:2], *scales, means=(mean_u, mean_w))
        else:
            sigma = noise[data["valid_idx"]]
            loglik = pm.logp(pm.Normal.dist(mu, sigma), data["log_loss"]).sum()
            if mixture_sigma is not None:
                precision = 1.0 / sigma**2
                a = pt.zeros((n_curves,))[data["obs_curve"]].inc(precision)
                b = pt.zeros((n_curves,))[data["obs_curve"]].inc(residual * precision)
        mv = ("mixture", "valid_domain")
        departure = None
        if mixture_sigma is not None:
            term, mean, sd = integrate_shared_level(a.reshape(shape).sum(axis=1), b.reshape(shape).sum(axis=1), mixture_sigma)
            loglik = loglik + term.sum()
            z = pm.Normal("departure_z", 0.0, 1.0, dims=mv)
            departure = pm.Deterministic("departure", mean + sd * z, dims=mv)
        pm.Potential("loss", loglik)
        if cfg.run_effects:
            if departure is not None:
                shift = (pt.zeros(shape) + departure[:, None, :]).flatten()
                mean_u, mean_w = mean_u - shift * unit_u, mean_w - shift * unit_w
            pm.Deterministic("run_level", mean_u.reshape(shape), dims=("mixture", "size", "valid_domain"))
            pm.Deterministic("run_slope", mean_w.reshape(shape), dims=("mixture", "size", "valid_domain"))
        return departure

    _DATA_DIMS: ClassVar[dict[str, str | tuple[str, ...]]] = {
        "mixture_proportions": ("mixture", "train_domain"),
        "mixture_center": "train_domain",
        "valid_idx": "obs",
        "obs_cell": "obs",
        "sizes_rel": "size",
        "lengths_rel": "length",
        "log_loss": "obs",
        "log_loss_scale": "valid_domain",
        "obs_curve": "obs",
        "log_length": "obs",
        "curve_m": "curve",
        "curve_sy": "curve",
        "curve_syy": "curve",
        "curve_valid": "curve",
        "schedule_s1": ("mixture", "size", "length"),
        "schedule_s2": ("mixture", "size", "length"),
    }

    # ------------------------------------------------------------------------------------------
    # hooks of BayesianLaw.fit

    def _data(self, lay: dict) -> dict:
        return {
            "mixture_proportions": lay["mixtures"],
            "mixture_center": lay["mixtures"].mean(axis=0),
            "valid_idx": lay["valid_idx"],
            "obs_cell": lay["obs_cell"],
            "sizes_rel": lay["sizes"] / lay["n0"],
            "lengths_rel": lay["length_values"] / lay["s0"],
            "log_loss": np.log(lay["loss"]),
            "log_loss_scale": np.log(lay["scale"]),
            "obs_curve": lay["curve"],
            **{k: lay[k] for k in ("log_length", "curve_m", "curve_sy", "curve_syy", "curve_valid")},
            **({} if lay["areas"] is None else {"schedule_s1": lay["areas"].s1, "schedule_s2": lay["areas"].s2}),
        }

    def _data_groups(self, lay: dict) -> dict[str, xr.Dataset]:
        self.targets = lay["targets"]
        observed = xr.Dataset(
            {
                "loss": ("obs", lay["loss"]),
                "params": ("obs", lay["params"]),
                lay["length"]: ("obs", lay["lengths"]),
                "obs_mixture": ("obs", np.asarray(lay["mixture_labels"], dtype=object)[lay["mix_idx"]].astype(str)),
                "obs_valid_domain": ("obs", np.asarray(lay["valid"], dtype=object)[lay["valid_idx"]].astype(str)),
                "obs_curve": ("obs", lay["curve"]),  # index into the (mixture, size, valid_domain) curves
                "obs_log_length": ("obs", lay["log_length"]),
            }
        )
        constant = xr.Dataset(
            {
                "mixture_proportions": (("mixture", "train_domain"), lay["mixtures"]),
                "mixture_center": ("train_domain", lay["mixtures"].mean(axis=0)),
                "loss_scale": ("valid_domain", lay["scale"]),
                **{k: (("mixture", "size", "valid_domain"), lay[k].reshape(lay["curve_shape"])) for k in ("curve_m", "curve_sy", "curve_syy")},
                **({} if lay["areas"] is None else {f"schedule_{k}": (("mixture", "size", "length"), getattr(lay["areas"], k)) for k in ("s1", "s2")}),
            },
            coords={"mixture": lay["mixture_labels"], "train_domain": lay["train"], "valid_domain": lay["valid"], "size": lay["sizes"]}
            | ({} if lay["areas"] is None else {"length": lay["length_values"]}),
        )
        return {"observed_data": observed, "constant_data": constant}

    def _attrs(self, lay: dict) -> dict:
        return {
            "targets": self.targets.to_json(),
            "nested_format": NESTED_FORMAT,
            "length_column": lay["length"],
            "reference_scale": json.dumps({"params": lay["n0"], lay["length"]: lay["s0"]}),
            "pilot_scales": json.dumps({"params": sorted(set(lay["params"].tolist())), lay["length"]: sorted(set(lay["lengths"].tolist()))}),
            "transient": json.dumps(lay["transient"]),
            **({} if lay["areas"] is None else {"schedules": json.dumps(self._schedule_record(lay["areas"]))}),
        }

    @staticmethod
    def _schedule_record(areas: GridAreas) -> dict:
        """What the file keeps of the schedules besides the grid of areas: each run's schedule and
        where it came from, the reference LR and S0."""
        runs = {run: {"schedule": sched.to_dict(), "origin": areas.origin[run]} for run, sched in areas.schedules.items()}
        return {"lr_ref": areas.lr_ref, "s0": areas.s0, "runs": runs}

    def _restore(self, tree: xr.DataTree) -> None:
        super()._restore(tree)
        from bayes_mixlaw import __version__

        written = int(tree.attrs.get("nested_format", 1))
        if written != NESTED_FORMAT:
            raise ValueError(
                f"this nested fit was written by bayes_mixlaw {tree.attrs.get('bayes_mixlaw_version', '?')} in nested-law format {written}; "
                f"bayes_mixlaw {__version__} reads format {NESTED_FORMAT} (Normal likelihood with the run effects integrated out, "
                "model discrepancy): refit the runs table with this version"
            )

    def _diagnostic_quantities(self) -> xr.Dataset:
        return self.idata["posterior"].to_dataset()  # every variable: a fit converges as a whole or not at all

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

    def _pilot_index(self, r: np.ndarray) -> np.ndarray:
        """Index of the pilot mixture each row of ``r`` is (-1: a new mixture)."""
        pilots = self.pilot_mixtures
        distance = np.abs(r[:, None, :] - pilots[None, :, :]).max(axis=-1)
        nearest = distance.argmin(axis=1)
        return np.where(distance[np.arange(len(r)), nearest] < SAME_MIXTURE, nearest, -1)

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

        A pilot mixture keeps its fitted departure from the mixing law; a new one draws it afresh.
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
            law = np.log(mixing_law(r, post["log_c"].values, post["log_k"].values, post["t"].values))
            sigma = post["mixture_sigma"].values  # per validation domain (a fit before 2026-12-03: one for all)
            sigma = sigma[:, :, None, :] if sigma.ndim == 3 else sigma[:, :, None, None]
            fresh = sigma * rng.standard_normal(law.shape)
            fitted = self._pilot_departures()[:, :, np.maximum(pilot, 0)]
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

    def _pilot_departures(self) -> np.ndarray:
        """Each pilot mixture's fitted departure from the mixing law, log scale, (chain, draw, mixture,
        valid_domain); computed once per posterior (every predicted row needs it)."""
        cached = self.__dict__.get("_departures")
        if cached is None or cached[0] is not self.idata:
            post = self.idata["posterior"]
            law = np.log(mixing_law(self.pilot_mixtures, post["log_c"].values, post["log_k"].values, post["t"].values))
            cached = self._departures = (self.idata, post["log_ref"].values - law)
        return cached[1]

    def pointwise_log_likelihood(self) -> xr.DataArray:
        """One term per curve (run x validation domain), whose run effects are integrated out:
        :meth:`curve_log_likelihood`, so PSIS-LOO leaves out whole curves."""
        return self.curve_log_likelihood()

    def curve_log_likelihood(self) -> xr.DataArray:
        """log p(curve | draw) of every observed curve (one run on one validation domain, its run
        effects integrated out: :func:`bayes_mixlaw.run_effects.marginal_loglik`), dims (chain, draw, curve).

        Each draw holds its pilot mixtures' departures (drawn from their exact conditional), so the
        terms are conditionally independent given the draw and PSIS-LOO leaves out whole curves."""
        block, sums, scales = self._curve_terms()
        return xr.DataArray(marginal_loglik(*block, *sums, *scales), dims=("chain", "draw", "curve"), name="loss")

    def _curve_terms(self) -> tuple[list, tuple, list]:
        """The observed curves' ``(m, sum y, sum y^2)``, their residual sums given each posterior draw
        (``curve_sums`` of log loss minus the law with the draw's departures), and the draw's
        ``(noise, run_sigma, run_slope_sigma)`` per curve: the arguments of ``marginal_loglik``."""
        self._require_fit()
        if not self.config.run_effects:
            raise ValueError("a nested fit without run effects has one likelihood term per loss, not per curve")
        obs, constant, post = self.idata["observed_data"], self.idata["constant_data"], self.idata["posterior"]
        column = self.length_column
        shape = constant["curve_m"].shape
        curve = obs["obs_curve"].values
        mi, _, vi = np.unravel_index(curve, shape)
        log_mu = np.empty(post["noise_sigma"].shape[:2] + (len(curve),))
        frame = pd.DataFrame({"params": obs["params"].values, column: obs[column].values})
        grid = self.schedule_areas
        for (n, s), rows in frame.groupby(["params", column]).groups.items():
            rows = np.asarray(rows)
            areas = None
            if grid is not None:  # each pilot run's own schedule: its cell of the grid
                size, step = int(np.argmin(np.abs(constant["size"].values - n))), int(np.argmin(np.abs(constant["length"].values - s)))
                areas = (grid.s1[:, size, step], grid.s2[:, size, step])
            draws = self.law_draws(self.pilot_mixtures, float(n), float(s), rng=np.random.default_rng(0), new_runs=False, run_effects=False, areas=areas)
            log_mu[:, :, rows] = np.log(draws[:, :, mi[rows], vi[rows]])
        sums = curve_sums(np.log(obs["loss"].values) - log_mu, obs["obs_log_length"].values, curve, int(np.prod(shape)))
        observed = np.flatnonzero(constant["curve_m"].values.ravel() > 0)
        block = [constant[k].values.ravel()[observed] for k in ("curve_m", "curve_sy", "curve_syy")]
        curve_valid = np.unravel_index(observed, shape)[2]
        scales = [post[k].values[:, :, curve_valid] for k in ("noise_sigma", "run_sigma", "run_slope_sigma")]
        return block, tuple(x[..., observed] for x in sums), scales

    def _run_effects(self, pilot: np.ndarray, params: float, log_length: float, shape: tuple, rng: np.random.Generator, new_runs: bool):
        """``u + w y`` per draw, (chain, draw, mixture, valid_domain), at ``y = log_length``: a
        pilot run's level and slope drawn from their posterior given its curve, a new run's from
        their prior if ``new_runs``, else zero (:mod:`bayes_mixlaw.run_effects`)."""
        post = self.idata["posterior"]
        tau_u, tau_w = (post[k].values[:, :, None, :] for k in ("run_sigma", "run_slope_sigma"))
        if new_runs:
            effect = tau_u * rng.standard_normal(shape) + tau_w * log_length * rng.standard_normal(shape)
        else:
            effect = np.zeros(shape)
        sizes = np.asarray(post["run_level"]["size"].values, dtype=float)
        match = np.flatnonzero(np.isclose(sizes, params, rtol=1e-9))
        known = (pilot >= 0) & (len(match) > 0)
        if known.any():
            rows, size = np.flatnonzero(known), match[0]
            constant = self.idata["constant_data"]
            block = [constant[k].values[pilot[rows], size, :][None, None] for k in ("curve_m", "curve_sy", "curve_syy")]
            sigma = post["noise_sigma"].values[:, :, None, :]
            _, _, var_u, cov_uw, var_w = conditional_effects(*block, 0.0, 0.0, sigma, tau_u, tau_w)
            mean_u, mean_w = (post[k].values[:, :, pilot[rows], size, :] for k in ("run_level", "run_slope"))
            u, w = draw_effects(mean_u, mean_w, var_u, cov_uw, var_w, rng)
            effect[:, :, rows] = u + w * log_length
        return effect

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

    def _relative_scale(self, params: float, length: float) -> tuple[float, float]:
        """(n, s): the size and length relative to the fit's reference scale."""
        reference = json.loads(self.idata.attrs["reference_scale"])
        return params / reference["params"], length / reference[self.length_column]

    def _read_scale(self, params, step, tokens) -> tuple[float, float]:
        length_column = self.length_column
        given = {"step": step, "tokens": tokens}
        if params is None or given[length_column] is None:
            other = "tokens" if length_column == "step" else "step"
            hint = f" (this fit measures training length in {length_column}, not {other})" if given[other] is not None else ""
            raise ValueError(f"a nested fit predicts at a model size and a training length: give params and {length_column}{hint}")
        values = (float(params), float(given[length_column]))
        if not all(np.isfinite(v) and v > 0 for v in values):
            raise ValueError(f"params and {length_column} must be positive and finite, got {values}")
        return values

    def predict_draws(self, mixtures, *, params=None, step=None, tokens=None, schedule=None, kind: str = "predictive", seed: int = 0) -> xr.DataArray:
        """Posterior draws of every target at each mixture and the scale (params, step or tokens):
        dims (chain, draw, mixture, target). ``kind``: ``mean`` (the law) or ``predictive`` (a new run).
        ``schedule``: the target run's learning-rate schedule, for a fit with schedules (:meth:`step_areas`)."""
        self._require_fit()
        frame = read_mixtures(mixtures, self.train_domains)
        n, length = self._read_scale(params, step, tokens)
        return self._draws_at(frame, kind, seed, params=n, length=length, schedule=schedule)

    def _domain_draws(
        self,
        r: np.ndarray,
        kind: str,
        rng: np.random.Generator,
        *,
        params: float,
        length: float,
        schedule=None,
        shared_rng: np.random.Generator | None = None,
    ) -> np.ndarray:
        losses = self.law_draws(r, params, length, rng=rng, new_runs=kind == "predictive", schedule=schedule)
        scale = {"params": params, self.length_column: length}
        post = self.idata["posterior"]
        kappas = {k: post[k].values for k in discrepancy.active_axes(self, scale)}
        losses = losses * discrepancy.extrapolation_factor(self, scale, kappas, losses.shape, shared_rng or rng, predictive=kind == "predictive", row_rng=rng)
        if self.config.discrepancy and discrepancy.MIXTURE in post:  # beyond the pilots' hull, each mixture its own error
            losses = losses * discrepancy.mixture_factor(self, r, post[discrepancy.MIXTURE].values, losses.shape[-1], rng)
        if kind == "predictive":
            noise = post["noise_sigma"].values[:, :, None, :]
            losses = losses * np.exp(noise * self._standard_noise(losses.shape, rng))
        return losses

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
        names = ["log_c", "log_k", "t", "log_a", "log_b", "alpha", "beta", "gamma"] + (["anneal"] if s2_rel else [])
        names += list(self.mixture_effect_names) if self.config.mixture_scaling else []
        axes = discrepancy.active_axes(self, {"params": n, self.length_column: length})
        p = self._torch_posterior(names + list(axes), draws, seed)
        center = torch.as_tensor(self.idata["constant_data"]["mixture_center"].values, dtype=torch.float64)
        weights = self._target_weights(target)
        scaling = self.config.mixture_scaling
        n_draws, n_valid = len(p["t"]), len(self.valid_domains)
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
            return (mixing_law(r, p["log_c"], p["log_k"], p["t"]) * ratio * extrapolation) @ weights

        f.n_draws = n_draws
        return f

    def parameters(self, ci: float = DEFAULT_CI) -> pd.DataFrame:
        """Posterior mean and interval of the exponents and, for the joint model, of log_c, log_k, t."""
        self._require_fit()
        names = ["alpha", "beta", "gamma", "log_a", "log_b"] + (
            ["log_c", "log_k", "t", *self.mixture_effect_names] if self.config.mixture_model == "law" else []
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
            f"{self._assumptions()}{discrepancy_scale.describe(discrepancy_scale.read(self))}"
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


class StagewiseNestedFit:
    """The stage-wise pipeline, with the upstream posterior carried on (errors in variables).

    Stage one: the nested law with free per-mixture levels (``mixture_model="free"``) predicts each
    pilot mixture's loss per validation domain at the target scale (posterior mean of the law, run
    effects at zero). Stage two: the mixing law fitted across the pilot mixtures on those predictions,
    each with its posterior standard deviation as a known measurement error (``loss_sd``), so the
    mixing law sees how uncertain every extrapolated loss is, not just its point value.
    Unlike the joint :class:`NestedLaw`, the result holds for one target scale.
    """

    def __init__(self, targets: Targets | None = None, stage_one: NestedLawConfig | None = None, stage_two: MixingLawConfig | None = None):
        self.targets = targets or Targets()
        self.stage_one = NestedLaw((stage_one or NestedLawConfig()).model_copy(update={"mixture_model": "free"}), self.targets)
        self.stage_two_config = stage_two or MixingLawConfig()
        self.stage_two = None
        self.scale: dict | None = None

    def fit(self, runs, *, params, step=None, tokens=None, seed: int | None = None, stage_one_fit=None, **sampler):
        """Fit both stages for the target scale; ``stage_one_fit`` reuses a fitted stage one."""
        if stage_one_fit is not None:
            self.stage_one = stage_one_fit
        else:
            self.stage_one.fit(runs, seed=seed, **sampler)
        n, length = self.stage_one._read_scale(params, step, tokens)
        self.scale = {"params": n, self.stage_one.length_column: length}
        pilots = self.stage_one.pilot_mixtures
        labels = [str(m) for m in self.stage_one.idata["constant_data"]["mixture"].values]
        draws = self.stage_one.law_draws(pilots, n, length, rng=np.random.default_rng(0), new_runs=False)
        flat = draws.reshape(-1, *draws.shape[2:])  # (sample, mixture, valid)
        rows = []
        for k, label in enumerate(labels):
            for v, domain in enumerate(self.stage_one.valid_domains):
                rows.append(
                    {
                        "run": label,
                        "valid_domain": domain,
                        "loss": float(flat[:, k, v].mean()),
                        "loss_sd": float(flat[:, k, v].std()),
                        **{MIX_PREFIX + d: float(x) for d, x in zip(self.stage_one.train_domains, pilots[k])},
                    }
                )
        table = validate_runs(pd.DataFrame(rows), f"stage one at params={n:g}, {self.stage_one.length_column}={length:g}")
        self.stage_two = MixingLaw(self.stage_two_config, self.targets).fit(table, seed=seed, **sampler)
        return self

    def predict_draws(self, mixtures, *, kind: str = "predictive", seed: int = 0) -> xr.DataArray:
        return self.stage_two.predict_draws(mixtures, kind=kind, seed=seed)

    def predict(self, mixtures, *, ci: float = DEFAULT_CI, kind: str = "predictive", seed: int = 0) -> pd.DataFrame:
        table = self.stage_two.predict(mixtures, ci=ci, kind=kind, seed=seed)
        for k, v in self.scale.items():
            table.insert(len(table.columns) - 5, k, v)
        return table
