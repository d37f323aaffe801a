"""The nested law's PyMC model (:class:`~bayes_mixlaw.nested.NestedLaw`; its mathematics in :mod:`bayes_mixlaw.nested`):
the mixing law at the reference scale, the scaling terms the mixture moves, the likelihood with each curve's run
effects and each pilot mixture's departures integrated out, and the curves' terms of that likelihood."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt
import xarray as xr
from pymc_extras.prior import Prior

from bayes_mixlaw.laws import mixing_law, mixture_log_amplitudes, relative_scaling
from bayes_mixlaw.mixing import _centred_to_law
from bayes_mixlaw.mixing_forms.base import ModelPieces
from bayes_mixlaw.run_effects import curve_sums, integrate_shared_level, integrate_shared_line, integrated_effects

# scale of the interactions' base distribution (cancelled in the model; sets what prior draws look like)
_T_BASE = 3.0
# the interactions are sampled as g = f^p t (see _slope_interactions): p = 1 samples the slopes the
# pilots pin near their mean mixture (RedPajama: f ~ 0.3, t sampled directly left R-hat 1.05); where
# f is small and t large (5Mix: f ~ 0.02-0.07, |t| up to 13), g = f t has a funnel in f (33 divergences);
# half way, p = 0.5, both converge (RedPajama R-hat 1.006, ESS 742; 5Mix R-hat 1.009, no divergences)
_SLOPE_POWER = 0.5


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


# scale of the stick-breaking logits' base distribution (cancelled in the model; sets what prior draws look like)
_SHARE_BASE = 2.0


def _pooled(name: str, mean, sigma, non_centred: bool):
    r"""Per validation domain :math:`x_v \sim N(\mu_v, \sigma)`, sampled as itself (centred: where the data pin each
    domain's) or ``non_centred`` as :math:`\mu_v + \sigma z_v`, :math:`z_v \sim N(0, 1)` (``{name}_offset``: where they
    pin them barely, the centred form's funnel at small :math:`\sigma` diverges). The same prior either way
    (pymc-extras' ``Prior(..., centered=False)``)."""
    return Prior("Normal", mu=mean, sigma=sigma, dims="valid_domain", centered=not non_centred).create_variable(name)


def _stick_shares(cfg, ab_sigma):
    r"""The shares of the loss at the reference scale, sampled by stick-breaking (``scaling_parameterisation="stick"``).

    The step term removes :math:`q_b = \sigma(v_i)` of the loss there, the size term :math:`q_a = (1 - q_b)\,\sigma(w_i)`
    and :math:`q_e = (1 - q_b)(1 - \sigma(w_i))` stays (``step_share_logit`` v, ``size_share_logit`` w), so
    :math:`a = q_a / q_e`, :math:`b = q_b / q_e`. The pilots' checkpoints pin :math:`q_b` (the step slope and its
    curvature) and their sizes the size slope :math:`\alpha q_a`, not :math:`q_a` itself: with two pilot sizes
    :math:`q_a` trades with :math:`\alpha` along a curve in ``share``'s (log(a + b), split) coordinates (3Mix
    70M + 160M: ``log_a``, ``log_ab``, ``alpha`` mixed slowest, R-hat 1.014-1.036), and along the axis w here.

    The prior is ``share``'s, unchanged: log(a + b) ~ Normal(log_ab_mu, sigma), logit(a / (a + b)) ~
    Normal(ab_split_mu, sigma). The map (v, w) -> (log(a + b), log(a / b)) has unit Jacobian
    (:math:`|\partial(q_a, q_b)/\partial(v, w)| = q_a q_b q_e` and :math:`|\partial(\log(a+b), \log(a/b))/\partial(q_a, q_b)|
    = 1 / (q_a q_b q_e)`), so their densities, written at the derived values as a potential, are the posterior's in
    (v, w); the base Normal(0, 2) the logits are drawn from is cancelled (it shapes prior draws only).

    Returns ``(log(a + b), log a, log b)``, each (valid_domain,).
    """
    base = pm.Normal.dist(0.0, _SHARE_BASE)
    v = pm.Normal("step_share_logit", 0.0, _SHARE_BASE, dims="valid_domain")
    w = pm.Normal("size_share_logit", 0.0, _SHARE_BASE, dims="valid_domain")
    log_rest = -pm.math.log1pexp(v)  # log(1 - q_b)
    log_qb, log_qa, log_qe = -pm.math.log1pexp(-v), log_rest - pm.math.log1pexp(-w), log_rest - pm.math.log1pexp(w)
    log_a = pm.Deterministic("log_a", log_qa - log_qe, dims="valid_domain")
    log_b = pm.Deterministic("log_b", log_qb - log_qe, dims="valid_domain")
    log_ab = pm.Deterministic("log_ab", pm.math.logaddexp(log_a, log_b), dims="valid_domain")
    split = pm.Deterministic("ab_split", log_a - log_b, dims="valid_domain")
    ab_mu, split_mu = (cfg.prior(k).create_variable(k) for k in ("log_ab_mu", "ab_split_mu"))
    prior = pm.logp(pm.Normal.dist(ab_mu, ab_sigma), log_ab).sum() + pm.logp(pm.Normal.dist(split_mu, ab_sigma), split).sum()
    pm.Potential("share_prior", prior - pm.logp(base, v).sum() - pm.logp(base, w).sum())
    return log_ab, log_a, log_b


class NestedModel:
    """The nested law's model (a base of :class:`~bayes_mixlaw.nested.NestedLaw`)."""

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
        form = None if cfg.mixture_model != "law" or cfg.law == "explicit" else self.form
        if form is not None:  # the form's own coords, and one pooling group (the mixing law's default: all domains)
            coords |= {"group": ["all"], **form.coords(cfg)}
        with pm.Model(coords=coords) as model:
            data = {k: pm.Data(k, v, dims=self._DATA_DIMS[k]) for k, v in self._data(lay).items()}
            mixtures, center = data["mixture_proportions"], data["mixture_center"]
            if form is None:  # (another form samples its own level)
                log_m = cfg.prior("loss_at_mean", dims="valid_domain").create_variable("log_loss_at_mean")
            ab_sigma = cfg.prior("log_ab_sigma").create_variable("log_ab_sigma")
            if cfg.scaling_parameterisation == "stick":
                log_ab, log_a_dom, log_b_dom = _stick_shares(cfg, ab_sigma)
            elif cfg.scaling_parameterisation == "share":
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
                if form is None:
                    f_mu = cfg.prior("f_mu").create_variable("f_mu")
                    f_sigma = cfg.prior("f_sigma").create_variable("f_sigma")
                    t_mu = cfg.prior("t_mu", dims="train_domain").create_variable("t_mu")
                    t_sigma = cfg.prior("t_sigma").create_variable("t_sigma")
                    logit_f = pm.Normal("logit_f", f_mu, f_sigma, dims="valid_domain")
                    t = _slope_interactions(t_mu[None, :], t_sigma, logit_f, dims=vt)
                    law_c, law_k = _centred_to_law(log_m, logit_f, t, center)
                    pm.Deterministic("log_c", law_c + data["log_loss_scale"], dims="valid_domain")
                    pm.Deterministic("log_k", law_k + data["log_loss_scale"], dims="valid_domain")
                    law_ref = pm.math.log(mixing_law(mixtures, law_c, law_k, t))
                else:  # a registered form (config.law): its parameters and its mean loss at the pilot mixtures
                    pieces = ModelPieces(cfg, mixtures, center, data["log_loss_scale"], np.zeros(len(lay["valid"]), dtype=int))
                    law_ref = pm.math.log(form.build(pieces))  # in units of each domain's loss scale, as above
                # each pilot mixture's departure d from the mixing law is additive in the log loss:
                # the likelihood integrates it out (_integrate_departures), so the sampler sees no
                # funnel in mixture_sigma however well the pilots fix d
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
            non_centred = cfg.exponent_parameterisation == "non_centred"
            alpha_mu, beta_mu = (cfg.prior(k).create_variable(k) for k in ("log_alpha_mu", "log_beta_mu"))
            if self._share:  # share or stick: slopes sampled through the shares
                # sample what the pilots pin, the slopes alpha q_a and beta q_b of the log loss at the
                # reference scale (q: the shares of the loss the size and step terms remove there);
                # the exponents follow as slope / share, and their priors apply to them unchanged
                # (log alpha = log slope - log q_a has a unit Jacobian): along the poorly pinned
                # irreducible share the slopes stay put and only the derived exponents move
                # (the slope's prior is the exponent's, shifted by log q: the same density, and
                # prior draws of it give the exponents their prior)
                log_total = pm.math.log1pexp(log_ab)
                log_share_a, log_share_b = log_a_dom - log_total, log_b_dom - log_total
                log_alpha = _pooled("log_size_slope", alpha_mu + log_share_a, e_sigma, non_centred) - log_share_a
                log_beta = _pooled("log_step_slope", beta_mu + log_share_b, e_sigma, non_centred) - log_share_b
            else:
                log_alpha = _pooled("log_alpha", alpha_mu, e_sigma, non_centred)
                log_beta = _pooled("log_beta", beta_mu, e_sigma, non_centred)
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

    def _likelihood_terms(self, data: dict, mu, noise, mixture_sigma, shape: tuple):
        r"""The observed log-losses, given the law ``mu`` (per observation, without the pilot mixtures'
        departures), as potentials; returns the departures (``None`` if sampled elsewhere).

        Each curve (one run on one validation domain) has its level and slope in log-steps (and with
        ``run_curvature`` its curvature) integrated out (:func:`bayes_mixlaw.run_effects.integrated_effects`;
        ``run_effects=False``: independent Normal losses). With ``mixture_sigma`` given, the departure ``d ~ N(0, mixture_sigma)`` shared
        by every curve of a pilot mixture on a domain is integrated out too
        (:func:`bayes_mixlaw.run_effects.integrate_shared_level`); a draw of it from its exact
        conditional, ``d = mean + sd z`` with ``z ~ N(0, 1)`` sampled alongside (a free standard
        normal: no geometry for the sampler), is kept as ``departure``, and the run effects' conditional
        means given it as ``run_level``, ``run_slope`` (and ``run_curvature``). With ``mixture_size_slope`` the
        departure is ``d + e log n`` over the mixture's sizes, ``e ~ N(0, mixture_size_sigma)``, the pair integrated
        out (:func:`bayes_mixlaw.run_effects.integrate_shared_line`) and drawn from its exact conditional
        (``departure``, ``departure_slope``). ``shape``: the curves' (mixture, size, valid_domain)."""
        cfg = self.config
        n_curves = int(np.prod(shape))
        cv = data["curve_valid"]
        residual = data["log_loss"] - mu
        if cfg.run_effects:
            taus = [cfg.prior(k, dims="valid_domain").create_variable(k) for k in self.run_scale_names]
            scales = (noise[cv], *(tau[cv] for tau in taus))
            moments = tuple(data[k] for k in self._curve_moment_names())
            sums = curve_sums(residual, data["log_length"], data["obs_curve"], n_curves, curvature=cfg.run_curvature)
            effects = integrated_effects(moments, sums, scales)
            loglik = effects.loglik.sum()
            means = effects.means
            if mixture_sigma is not None:
                a, b, units = effects.shift_information()
        else:
            sigma = noise[data["valid_idx"]]
            loglik = pm.logp(pm.Normal.dist(mu, sigma), data["log_loss"]).sum()
            if mixture_sigma is not None:
                precision = 1.0 / sigma**2
                a = pt.zeros((n_curves,))[data["obs_curve"]].inc(precision)
                b = pt.zeros((n_curves,))[data["obs_curve"]].inc(residual * precision)
        mv = ("mixture", "valid_domain")
        departure = shift = None
        if mixture_sigma is not None and cfg.mixture_size_slope:
            # (mixture, size, valid) -> (mixture, valid, size): the sizes of a mixture share its level and slope
            a_sizes, b_sizes = (v.reshape(shape).dimshuffle(0, 2, 1) for v in (a, b))
            size_sigma = cfg.prior("mixture_size_sigma", dims="valid_domain").create_variable("mixture_size_sigma")
            log_size = pt.log(data["sizes_rel"])
            term, (mean_d, mean_e), (l_dd, l_ed, l_ee) = integrate_shared_line(a_sizes, b_sizes, log_size, mixture_sigma, size_sigma)
            loglik = loglik + term.sum()
            z = pm.Normal("departure_z", 0.0, 1.0, dims=mv)
            z_slope = pm.Normal("departure_slope_z", 0.0, 1.0, dims=mv)
            departure = pm.Deterministic("departure", mean_d + l_dd * z, dims=mv)
            slope = pm.Deterministic("departure_slope", mean_e + l_ed * z + l_ee * z_slope, dims=mv)
            shift = departure[:, None, :] + slope[:, None, :] * log_size[None, :, None]
        elif mixture_sigma is not None:
            term, mean, sd = integrate_shared_level(a.reshape(shape).sum(axis=1), b.reshape(shape).sum(axis=1), mixture_sigma)
            loglik = loglik + term.sum()
            z = pm.Normal("departure_z", 0.0, 1.0, dims=mv)
            departure = pm.Deterministic("departure", mean + sd * z, dims=mv)
            shift = departure[:, None, :]
        pm.Potential("loss", loglik)
        if cfg.run_effects:
            if shift is not None:
                shift = (pt.zeros(shape) + shift).flatten()
                means = [mean - shift * unit for mean, unit in zip(means, units)]
            for name, mean in zip(self.run_effect_names, means):
                pm.Deterministic(name, mean.reshape(shape), dims=("mixture", "size", "valid_domain"))
        return departure

    @property
    def run_effect_names(self) -> tuple[str, ...]:
        """The run effects' conditional means the posterior keeps: level and slope, and curvature with ``run_curvature``."""
        return ("run_level", "run_slope") + (("run_curvature",) if self.config.run_curvature else ())

    @property
    def run_scale_names(self) -> tuple[str, ...]:
        """The run effects' prior scales, per validation domain, in the order of :attr:`run_effect_names`."""
        return ("run_sigma", "run_slope_sigma") + (("run_curvature_sigma",) if self.config.run_curvature else ())

    def _curve_moment_names(self) -> tuple[str, ...]:
        """The curves' sums of powers of their log-lengths the run effects read: ``m``, ``sum y``, ``sum y^2`` (and
        ``sum y^3``, ``sum y^4`` with ``run_curvature``)."""
        return ("curve_m", "curve_sy", "curve_syy") + (("curve_sy3", "curve_sy4") if self.config.run_curvature else ())

    def _curve_terms(self) -> tuple[tuple, tuple, tuple]:
        """The observed curves' moments (``m``, ``sum y``, ``sum y^2``, ...: :meth:`_curve_moment_names`), their residual
        sums given each posterior draw (``curve_sums`` of log loss minus the law with the draw's departures), and the
        draw's scales per curve (noise, then the run effects'): the arguments of
        :func:`bayes_mixlaw.run_effects.integrated_effects`."""
        self._require_fit()
        if not self.config.run_effects:
            raise ValueError("a nested fit without run effects has one likelihood term per loss, not per curve")
        obs, constant, post = self.idata["observed_data"], self.idata["constant_data"], self.idata["posterior"]
        shape = constant["curve_m"].shape
        curve = obs["obs_curve"].values
        log_mu = np.empty(post["noise_sigma"].shape[:2] + (len(curve),))
        for rows, law in self._law_at_observations():
            log_mu[:, :, rows] = law
        residual = np.log(obs["loss"].values) - log_mu
        sums = curve_sums(residual, obs["obs_log_length"].values, curve, int(np.prod(shape)), curvature=self.config.run_curvature)
        observed = np.flatnonzero(constant["curve_m"].values.ravel() > 0)
        moments = tuple(constant[k].values.ravel()[observed] for k in self._curve_moment_names())
        curve_valid = np.unravel_index(observed, shape)[2]
        scales = tuple(post[k].values[:, :, curve_valid] for k in ("noise_sigma", *self.run_scale_names))
        return moments, tuple(x[..., observed] for x in sums), scales

    def _law_at_observations(self, rows: np.ndarray | None = None):
        """The law's log loss at the observed losses (all, or those at ``rows``) per posterior draw, with each pilot
        mixture's departures and without the run effects: yields ``(rows, (chain, draw, len(rows)))`` per pilot scale."""
        obs, constant = self.idata["observed_data"], self.idata["constant_data"]
        column = self.length_column
        mi, _, vi = np.unravel_index(obs["obs_curve"].values, constant["curve_m"].shape)
        frame = pd.DataFrame({"params": obs["params"].values, column: obs[column].values})
        frame = frame if rows is None else frame.iloc[np.asarray(rows)]
        grid = self.schedule_areas
        for (n, s), at in frame.groupby(["params", column]).groups.items():
            at = np.asarray(at)
            areas = None
            if grid is not None:  # each pilot run's own schedule: its cell of the grid
                size, step = int(np.argmin(np.abs(constant["size"].values - n))), int(np.argmin(np.abs(constant["length"].values - s)))
                areas = (grid.s1[:, size, step], grid.s2[:, size, step])
            draws = self.law_draws(self.pilot_mixtures, float(n), float(s), rng=np.random.default_rng(0), new_runs=False, run_effects=False, areas=areas)
            yield at, np.log(draws[:, :, mi[at], vi[at]])

    def _observation_deviations(self, rows: np.ndarray) -> np.ndarray:
        """Each observed loss at ``rows``: its deviation from its run's curve (the law with the pilot mixture's departure
        and the run's effects, their conditional means given each draw), log scale, (chain, draw, len(rows))."""
        obs, constant, post = self.idata["observed_data"], self.idata["constant_data"], self.idata["posterior"]
        rows = np.asarray(rows)
        deviation = np.empty(post["noise_sigma"].shape[:2] + (len(rows),))
        position = {row: k for k, row in enumerate(rows)}
        for at, law in self._law_at_observations(rows):
            deviation[:, :, [position[a] for a in at]] = np.log(obs["loss"].values[at]) - law
        if self.config.run_effects:
            mi, si, vi = np.unravel_index(obs["obs_curve"].values[rows], constant["curve_m"].shape)
            y = obs["obs_log_length"].values[rows]
            for power, name in enumerate(self.run_effect_names):
                deviation -= post[name].values[:, :, mi, si, vi] * y**power
        return deviation

    def _diagnostic_quantities(self) -> xr.Dataset:
        return self.idata["posterior"].to_dataset()  # every variable: a fit converges as a whole or not at all

    def _checked_in_sampling(self, built):
        from bayes_mixlaw.model import without_transformed

        return without_transformed  # every variable, as _diagnostic_quantities
