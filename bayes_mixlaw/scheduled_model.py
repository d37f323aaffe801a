"""The schedule-aware scaling law's PyMC model (:class:`~bayes_mixlaw.scheduled.ScheduledScalingLaw`; its mathematics in
:mod:`bayes_mixlaw.scheduled`): the size term through what the pilots pin (:func:`size_term`), the step term read
through each run's schedule, an unknown schedule's length, the runs' effects and the likelihood."""

from __future__ import annotations

import numpy as np
import pymc as pm
import xarray as xr

from bayes_mixlaw.run_effects import conditional_effects, curve_sums, marginal_loglik
from bayes_mixlaw.step_laws import annealing_step, multi_power_step


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


SIZE_PRIORS = ("log_level", "log_size_slope", "alpha_excess", "rho_b", "rho_d", "rho_beta")
MULTI_POWER_PRIORS = ("log_c", "kappa", "gamma")


class ScheduledModel:
    """The schedule-aware law's model (a base of :class:`~bayes_mixlaw.scheduled.ScheduledScalingLaw`)."""

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

    def _unknown_length(self, data: dict, lay: dict) -> dict:
        """The features of the runs of unknown schedule as functions of its sampled total length.

        ``total_steps = L max_factor^z``, ``z = schedule_z ~ Uniform(0, 1)`` (:class:`UnknownSchedule`); their rows
        of S1 / S0 and S2 / S0 are :func:`bayes_mixlaw.schedule_areas.decay_areas` of the sampled T, the other
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
