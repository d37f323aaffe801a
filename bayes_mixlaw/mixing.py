"""The hierarchical Bayesian data mixing law at one scale (model size and training length).

The law's form is a registered :class:`~bayes_mixlaw.mixing_forms.MixingForm`, named by the config's
``law`` (``explicit``: Ye et al.'s law, one curve per validation domain; ``implicit``: K latent domains;
``power_law``: Shukor et al.'s additive form; ``power_law_base``: the same with a term no share moves; see
:mod:`bayes_mixlaw.mixing_forms`). The form builds the mean loss of each run and validation domain i in units of the domain's loss scale s_i (its median
observed loss), and the observed losses follow it with noise::

    loss / s_i ~ StudentT(nu, L_i(r) / s_i, noise_sigma_i)   (or Normal)

With ``residual: rff`` a learned residual over the mixture simplex is added to the form's mean and fitted jointly with
it (:mod:`bayes_mixlaw.mixing_residual`). Predictions, the optimum, suggestions, the report and the comparison of
variants evaluate the form's function (plus the residual) on the posterior draws of its parameters, so they work
unchanged for every form. Aggregate
targets (``total``, groups) are weighted means of the domain losses, taken per draw.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pymc as pm
import xarray as xr

from bayes_mixlaw import discrepancy
from bayes_mixlaw.config import MixingLawConfig
from bayes_mixlaw.inference import diagnostic_rows
from bayes_mixlaw.mixing_forms import ModelPieces
from bayes_mixlaw.mixing_forms.explicit import (  # noqa: F401  (their home before the forms)
    _BASE_SIGMA,
    _SLOPE_POWER,
    _centred_to_law,
    _centred_zero_sum,
    _slope_interactions,
)
from bayes_mixlaw.mixing_residual import CONSTANT_NAMES, MixingResidual, get_residual
from bayes_mixlaw.mixture_law import MixtureLaw
from bayes_mixlaw.model import without_transformed
from bayes_mixlaw.runs import MIX_PREFIX, RunsTable, load_runs, read_mixtures
from bayes_mixlaw.summary import DEFAULT_CI, summarize_draws
from bayes_mixlaw.targets import Targets

# The Student-t's noise scale is sampled as tau_i = sigma_i sqrt((nu + 3) / nu): for a Student-t of
# scale sigma the Fisher information about the scale is 2 nu / ((nu + 3) sigma^2), a Normal's of scale
# tau, so tau is the spread the losses pin whatever nu. Sampling sigma, the one nu and the 22 noise
# scales moved together (corr(log nu, sum log sigma_i) = 0.85 on 5Mix; nu's bulk ESS ~200 in 4000 draws);
# in tau it is 0.36 (nu's ESS ~800). The prior stays on sigma.
_NOISE_A = 3.0
_NOISE_BASE = 0.02


def _studentt_noise(prior, nu, dims):
    """``noise_sigma`` under ``prior``, sampled as ``noise_spread = noise_sigma sqrt((nu + 3) / nu)``.

    ``noise_spread ~ HalfNormal(_NOISE_BASE k)`` with ``k = sqrt((nu + 3) / nu)`` makes
    ``noise_sigma = noise_spread / k ~ HalfNormal(_NOISE_BASE)`` (the base's normaliser is the
    Jacobian); the potential swaps that for ``prior``'s density (zero for the default prior).
    ``None`` where the prior's parameters are not plain numbers (a hierarchical noise prior).
    """
    if not all(isinstance(v, (int, float, np.number, np.ndarray)) for v in prior.parameters.values()):
        return None
    k = pm.math.sqrt((nu + _NOISE_A) / nu)
    spread = pm.HalfNormal("noise_spread", sigma=_NOISE_BASE * k, dims=dims)
    sigma = pm.Deterministic("noise_sigma", spread / k, dims=dims)
    wanted = pm.logp(getattr(pm, prior.distribution).dist(**prior.parameters), sigma)
    pm.Potential("noise_sigma_prior", (wanted - pm.logp(pm.HalfNormal.dist(sigma=_NOISE_BASE), sigma)).sum())
    return sigma


@dataclass(frozen=True, eq=False)
class MixingLayout:
    """A runs table at one scale as the mixing law's model reads it: the labels of its validation and
    training domains, runs and pooling groups, each run's mixture, each observation's run and domain
    (indices), the losses (and their given standard deviations) and each domain's loss scale (median)."""

    table: RunsTable
    targets: Targets
    valid: list[str]
    train: list[str]
    runs: list[str]
    groups: list[str]
    group_idx: np.ndarray  # (valid_domain,) -> group
    mixtures: np.ndarray  # (run, train_domain)
    run_idx: np.ndarray  # (obs,) -> run
    valid_idx: np.ndarray  # (obs,) -> valid_domain
    loss: np.ndarray
    loss_sd: np.ndarray
    scale: np.ndarray  # (valid_domain,)


class MixingLaw(MixtureLaw):
    """Hierarchical Bayesian data mixing law, pymc-marketing style: ``build_model``, ``fit``,
    ``predict``, ``save`` and ``load``.

    >>> law = MixingLaw(targets=Targets.from_files("valid_weight.json"))
    >>> law.fit(load_runs("5Mix/70M.txt").select(step=30000), seed=1)
    >>> law.predict(mixtures, ci=0.9)          # one row per mixture x target
    """

    kind = "mixing_law"
    config_class = MixingLawConfig
    pilot_mixture_var = "run_mixture"
    fit_name = "mixing-law"
    supports_residual_gp = True  # a residual over the simplex fitted with the law (config.residual)

    def fit(self, runs, **kwargs):
        """:meth:`MixtureLaw.fit` under the config for the table's number of validation domains: with few, the scales
        pooled across them take boundary-avoiding priors (:meth:`~bayes_mixlaw.config.PooledLawConfig.for_domains`);
        the fit file keeps the config it used."""
        runs = load_runs(runs)
        self.config = self.config.for_domains(len(runs.valid_domains))
        return super().fit(runs, **kwargs)

    # ------------------------------------------------------------------------------------------
    # model

    def _layout(self, runs: RunsTable, generative: bool = False) -> MixingLayout:
        table = runs.single_scale()
        if not table.mix_columns:
            raise ValueError(f"{table.source}: the table has no 'mix:<domain>' columns, so there is no mixture to fit a mixing law on")
        valid = table.valid_domains
        targets = self.targets.check(valid, "targets")
        run_names = table.runs
        mixtures = table.mixtures().loc[run_names].to_numpy(dtype=float)
        run_pos = {r: i for i, r in enumerate(run_names)}
        valid_pos = {v: i for i, v in enumerate(valid)}
        data = table.data
        loss = data["loss"].to_numpy(dtype=float)
        group_of = targets.group_of(valid) if self.config.pool_by == "groups" else ["all"] * len(valid)
        groups = [g for g in [*targets.groups, "all"] if g in group_of]
        return MixingLayout(
            table=table,
            targets=targets,
            valid=valid,
            train=table.train_domains,
            runs=run_names,
            groups=groups,
            group_idx=np.array([groups.index(g) for g in group_of]),
            mixtures=mixtures,
            run_idx=data["run"].map(run_pos).to_numpy(),
            valid_idx=data["valid_domain"].map(valid_pos).to_numpy(),
            loss=loss,
            loss_sd=data["loss_sd"].to_numpy(dtype=float) if "loss_sd" in data else np.zeros(len(loss)),
            scale=data.groupby("valid_domain")["loss"].median().loc[valid].to_numpy(),
        )

    def _model(self, lay: MixingLayout, generative: bool = False) -> pm.Model:
        """The PyMC model for ``runs`` (one scale); data enter through ``pm.Data`` for reuse.

        The form (``config.law``) samples its parameters and gives the mean loss. The explicit law's pooled
        interactions are sampled centred, with their prior as a potential, which forward sampling ignores;
        ``generative=True`` asks the form for a forward-samplable version of the same distribution (the
        explicit law: ``t_mu + ZeroSumNormal(t_sigma)``) for prior predictive simulation (:meth:`sample_prior_predictive`).
        """
        cfg = self.config
        coords = {
            "valid_domain": lay.valid,
            "train_domain": lay.train,
            "group": lay.groups,
            "run": lay.runs,
            "obs": np.arange(len(lay.loss)),
        }
        coords.update(self.form.coords(cfg))
        residual = self.residual
        if residual is not None:
            coords.update(residual.coords())
        with pm.Model(coords=coords) as model:
            run_mixture = pm.Data("run_mixture", lay.mixtures, dims=("run", "train_domain"))
            run_idx = pm.Data("run_idx", lay.run_idx, dims="obs")
            valid_idx = pm.Data("valid_idx", lay.valid_idx, dims="obs")
            log_scale = pm.Data("log_loss_scale", np.log(lay.scale), dims="valid_domain")
            loss_scaled = pm.Data("loss_scaled", lay.loss / lay.scale[lay.valid_idx], dims="obs")
            # errors in variables: a loss given with a standard deviation (column loss_sd) adds it to the noise
            sd_scaled = pm.Data("loss_sd_scaled", lay.loss_sd / lay.scale[lay.valid_idx], dims="obs")
            center = pm.Data("mixture_center", lay.mixtures.mean(axis=0), dims="train_domain")
            pieces = ModelPieces(config=cfg, mixtures=run_mixture, center=center, log_scale=log_scale, group_idx=lay.group_idx, generative=generative)
            mean_scaled = self.form.build(pieces)  # (run, valid_domain), in units of each domain's loss scale
            if residual is not None and residual.integrated and not generative:  # its weights integrated out
                residual.check_table(lay.table.source, lay.runs, lay.valid, lay.run_idx, lay.valid_idx, lay.loss_sd)
                self._noise_and_likelihood(mean_scaled[run_idx, valid_idx], valid_idx, sd_scaled, loss_scaled, generative)
                residual.integrate(cfg, lay.mixtures, mean_scaled, loss_scaled, run_idx, valid_idx, model["noise_sigma"])
                return model
            if residual is not None:  # what the law misses, in the same units (bayes_mixlaw.mixing_residual)
                scale = pm.Data("residual_distance_scale", residual.data(lay.mixtures)["residual_distance_scale"])
                mean_scaled = mean_scaled + residual.build(cfg, run_mixture, *residual.basis(len(lay.train)), scale)
            self._noise_and_likelihood(mean_scaled[run_idx, valid_idx], valid_idx, sd_scaled, loss_scaled, generative)
        return model

    def _key_parts(self, lay: MixingLayout, generative: bool = False) -> tuple:
        return (generative, lay.valid, lay.train, lay.groups, lay.group_idx.tolist())

    def _stored_runs(self) -> tuple[RunsTable, dict]:
        """The fitted runs table, from the file's observed losses and the runs' mixtures."""
        data = self._observed_rows({}, mixtures="run_mixture")
        loss_sd = self.idata["observed_data"]["loss_sd"].values
        if np.any(loss_sd != 0):
            data.insert(3, "loss_sd", loss_sd)
        return RunsTable(data, source=str(self.idata.attrs.get("source", "<fit>"))), {}

    def _noise_and_likelihood(self, mu, valid_idx, sd_scaled, observed, generative: bool):
        """The noise scales and the observed losses: a Student-t's scales sampled against its nu
        (:func:`_studentt_noise`); a Normal's, the generative form's and a hierarchical noise prior's
        as the prior says. The variables (``noise_sigma``, ``nu``, ``loss``) are the same either way."""
        cfg = self.config
        if cfg.likelihood == "studentt" and not generative:
            nu = pm.Deterministic("nu", 1.0 + cfg.prior("nu").create_variable("nu_minus_one"))
            noise = _studentt_noise(cfg.prior("noise_sigma"), nu, dims="valid_domain")
            if noise is not None:
                sigma = pm.math.sqrt(noise[valid_idx] ** 2 + sd_scaled**2)
                return pm.StudentT("loss", nu=nu, mu=mu, sigma=sigma, observed=observed, dims="obs")
            noise = cfg.prior("noise_sigma", dims="valid_domain").create_variable("noise_sigma")
            return pm.StudentT("loss", nu=nu, mu=mu, sigma=pm.math.sqrt(noise[valid_idx] ** 2 + sd_scaled**2), observed=observed, dims="obs")
        noise = cfg.prior("noise_sigma", dims="valid_domain").create_variable("noise_sigma")
        return self._likelihood(mu, pm.math.sqrt(noise[valid_idx] ** 2 + sd_scaled**2), observed)

    def sample_prior_predictive(self, runs, draws: int = 500, seed: int | None = None) -> xr.DataTree:
        """Prior and prior predictive draws for ``runs`` (observed losses in units of each domain's
        median loss, ``loss_scaled``): how the default or configured priors are checked."""
        with self.build_model(load_runs(runs), generative=True):
            return pm.sample_prior_predictive(draws=draws, random_seed=seed)

    # ------------------------------------------------------------------------------------------
    # hooks of BayesianLaw.fit

    def _data(self, lay: MixingLayout) -> dict:
        return {
            "run_mixture": lay.mixtures,
            "run_idx": lay.run_idx,
            "valid_idx": lay.valid_idx,
            "log_loss_scale": np.log(lay.scale),
            "loss_scaled": lay.loss / lay.scale[lay.valid_idx],
            "loss_sd_scaled": lay.loss_sd / lay.scale[lay.valid_idx],
            "mixture_center": lay.mixtures.mean(axis=0),
            **(self.residual.data(lay.mixtures) if self.residual is not None else {}),
        }

    def _assemble(self, posterior, tree, built, settings, seed) -> xr.DataTree:
        """As :meth:`BayesianLaw._assemble`; an integrated residual's lengthscale and weights are drawn here, from
        their conditional posterior given each draw (:meth:`MixingResidual.draw_weights`)."""
        residual, lay = self.residual, built.layout
        if residual is not None and residual.integrated:
            names = self.form.parameter_names

            def mean_scaled(chunk):
                return self.form.evaluate(lay.mixtures, {name: chunk[name] for name in names}, lay.scale) / lay.scale

            observed = lay.loss / lay.scale[lay.valid_idx]
            posterior = residual.draw_weights(posterior, lay.mixtures, mean_scaled, observed, lay.run_idx, lay.valid_idx, seed)
        return super()._assemble(posterior, tree, built, settings, seed)

    def _data_groups(self, lay: MixingLayout) -> dict[str, xr.Dataset]:
        self.targets = lay.targets
        observed = xr.Dataset(
            {
                "loss": ("obs", lay.loss),
                "loss_sd": ("obs", lay.loss_sd),
                "obs_run": ("obs", np.asarray(lay.runs, dtype=object)[lay.run_idx].astype(str)),
                "obs_valid_domain": ("obs", np.asarray(lay.valid, dtype=object)[lay.valid_idx].astype(str)),
            }
        )
        constant = xr.Dataset(
            {
                "run_mixture": (("run", "train_domain"), lay.mixtures),
                "loss_scale": ("valid_domain", lay.scale),
                "group": ("valid_domain", np.asarray(lay.groups, dtype=object)[lay.group_idx].astype(str)),
            },
            coords={"run": lay.runs, "train_domain": lay.train, "valid_domain": lay.valid},
        )
        residual = self.residual
        if residual is not None:  # its fixed basis, so a loaded fit predicts with the numbers it was fitted with
            frequencies, phases = residual.basis(len(lay.train))
            constant["residual_frequencies"] = (("train_domain", "residual_feature"), frequencies)
            constant["residual_phases"] = ("residual_feature", phases)
        return {"observed_data": observed, "constant_data": constant}

    def _attrs(self, lay: MixingLayout) -> dict:
        table = lay.table
        scale = {c: table.scale_values(c) for c in ("params", "step", "tokens") if table.scale_values(c)}
        return {"targets": self.targets.to_json(), "scale": json.dumps({k: v[0] for k, v in scale.items()})}

    def _diagnostic_quantities(self) -> xr.Dataset:
        constant = self.idata["constant_data"]
        return self._checked_quantities(self.idata["posterior"].to_dataset(), constant["run_mixture"].values, constant["loss_scale"].values)

    def _checked_in_sampling(self, built):
        """The fitted losses and identified parameters of :meth:`_diagnostic_quantities`, from the draws so far; None
        with a learned residual (its fitted losses need the weights drawn after sampling, :meth:`_assemble`)."""
        if self.residual is not None:
            return None
        lay = built.layout
        return lambda posterior: self._checked_quantities(without_transformed(posterior), lay.mixtures, lay.scale)

    def _checked_quantities(self, posterior: xr.Dataset, mixtures: np.ndarray, scale: np.ndarray) -> xr.Dataset:
        """What the fit's convergence is judged on: the expected loss at (a subset of) the pilots' mixtures, (chain,
        draw, run, valid_domain), identified under any form's relabelling, the noise, the form's identified parameters
        and the residual's, and the Student-t's ``nu`` (its tail sets every predictive interval)."""
        mixtures = mixtures[diagnostic_rows(len(mixtures), posterior.sizes["chain"] * posterior.sizes["draw"] * len(scale))]  # 1000s: some
        fitted = self._law_draws(mixtures, posterior, scale)
        check = xr.Dataset({"fitted_loss": (("chain", "draw", "run", "valid_domain"), fitted), "noise_sigma": posterior["noise_sigma"]})
        check = check.assign({name: posterior[name] for name in self.form.diagnostic_names})
        if self.residual is not None:
            check = check.assign({name: posterior[name] for name in self.residual.diagnostic_names})
        if "nu" in posterior:
            check = check.assign(nu=posterior["nu"])
        return check

    def pointwise_log_likelihood(self) -> xr.DataArray:
        """log p(y_obs | draw) for every observed loss, dims (chain, draw, obs), relative to each
        domain's loss scale (the scale the model was fitted on)."""
        from bayes_mixlaw.compare import _logpdf

        self._require_fit()
        obs = self.idata["observed_data"]
        valid = {v: i for i, v in enumerate(self.valid_domains)}
        vi = np.array([valid[v] for v in obs["obs_valid_domain"].values])
        post = self.idata["posterior"]
        scale = self.idata["constant_data"]["loss_scale"].values
        runs = {r: i for i, r in enumerate(self.idata["constant_data"]["run"].values)}
        ri = np.array([runs[r] for r in obs["obs_run"].values])
        fitted = self._law_draws(self.pilot_mixtures)[:, :, ri, vi] / scale[vi]
        residual = obs["loss"].values / scale[vi] - fitted
        sd = obs["loss_sd"].values / scale[vi] if "loss_sd" in obs else 0.0
        sigma = np.sqrt(post["noise_sigma"].values[:, :, vi] ** 2 + sd**2)
        return xr.DataArray(_logpdf(self, residual, sigma), dims=("chain", "draw", "obs"), name="loss")

    # ------------------------------------------------------------------------------------------
    # predict

    @property
    def residual(self) -> MixingResidual | None:
        """The learned residual added to the form's mean (``config.residual``; :mod:`bayes_mixlaw.mixing_residual`), or None."""
        return get_residual(self.config)

    @property
    def mean_parameter_names(self) -> list[str]:
        """The posterior variables the expected loss takes: the form's, and the residual's where there is one."""
        return [*self.form.parameter_names, *(self.residual.parameter_names if self.residual is not None else ())]

    def _expected_loss(self, r, params: dict, scale, constants: dict):
        """The expected loss in absolute units at mixtures ``r`` (..., n, M) for posterior draws ``params`` (by name,
        leading dims the draws'): the form's plus the residual's (in loss-scale units, times ``scale``). numpy or torch
        throughout; ``constants``: the fit's residual basis in the same library."""
        loss = self.form.evaluate(r, params, scale)
        if self.residual is not None:
            loss = loss + self.residual.evaluate(r, params, constants) * scale
        return loss

    def _residual_constants(self, to=np.asarray) -> dict:
        """The residual's fixed basis from the fit file (frequencies and phases), converted by ``to``; empty without one."""
        if self.residual is None:
            return {}
        constant = self.idata["constant_data"]
        return {name: to(constant[name].values) for name in CONSTANT_NAMES}

    # Mixtures evaluated at once by _law_draws: a form's function may hold (draws, n, V, M) numbers (the power law).
    _CHUNK = 64

    def _law_draws(self, mixtures: np.ndarray, posterior: xr.Dataset | None = None, scale: np.ndarray | None = None) -> np.ndarray:
        """Expected loss per draw: (chain, draw, mixture, valid_domain), in absolute units; of the fit's posterior and
        loss scale unless given."""
        post = self.idata["posterior"] if posterior is None else posterior
        scale = self.idata["constant_data"]["loss_scale"].values if scale is None else scale
        params = {name: post[name].values for name in self.mean_parameter_names}
        constants = self._residual_constants()
        mixtures = np.asarray(mixtures, dtype=float)
        chunks = range(0, max(len(mixtures), 1), self._CHUNK)
        return np.concatenate([self._expected_loss(mixtures[i : i + self._CHUNK], params, scale, constants) for i in chunks], axis=-2)

    def _noise_draws(self, shape: tuple, rng: np.random.Generator) -> np.ndarray:
        """Observation noise per draw in absolute units, shape (chain, draw, n, valid_domain)."""
        post = self.idata["posterior"]
        sigma = (post["noise_sigma"].values * self.idata["constant_data"]["loss_scale"].values)[:, :, None, :]
        return sigma * self._standard_noise(shape, rng)

    def predict_draws(self, mixtures, *, kind: str = "predictive", seed: int = 0) -> xr.DataArray:
        """Posterior draws of every target at each mixture: dims (chain, draw, mixture, target).

        ``kind="mean"`` is the law's expected loss (uncertainty about the law only);
        ``"predictive"`` adds observation noise: what a new run at that mixture would show.
        """
        self._require_fit()
        return self._draws_at(read_mixtures(mixtures, self.train_domains), kind, seed)

    def _domain_draws(self, r: np.ndarray, kind: str, rng: np.random.Generator, *, shared_rng=None) -> np.ndarray:
        losses = self._law_draws(r)
        return losses + self._noise_draws(losses.shape, rng) if kind == "predictive" else losses

    def predict(self, mixtures, *, ci: float = DEFAULT_CI, kind: str = "predictive", seed: int = 0) -> pd.DataFrame:
        """One row per mixture and target: ``name`` (if given), ``mix:*``, ``target``, ``mean``,
        ``median``, ``lower``, ``upper`` (equal-tailed interval of probability ``ci``), ``beyond_mixture``
        (how far the mixture lies outside the pilots' hull, :func:`bayes_mixlaw.discrepancy.mixture_distance`).

        ``mean`` is the predictive's expectation, the posterior mean of the law: the noise is additive
        with mean zero (a Student-t's nu > 1), so the two agree exactly, where the sample mean of
        heavy-tailed noise draws would be dominated by a few of them."""
        self._require_fit()
        frame = read_mixtures(mixtures, self.train_domains)
        table = summarize_draws(self._draws_at(frame, kind, seed), frame, ci)
        if kind == "predictive":
            table["mean"] = summarize_draws(self._draws_at(frame, "mean", seed), frame, ci)["mean"].to_numpy()
        beyond = discrepancy.beyond_pilots(self, frame[[MIX_PREFIX + d for d in self.train_domains]].to_numpy(dtype=float))
        return table.assign(**{k: np.repeat(v, len(table) // len(frame)) for k, v in beyond.items()})

    def parameters(self, ci: float = DEFAULT_CI) -> pd.DataFrame:
        r"""Posterior mean and equal-tailed interval of the law's parameters, one row per element: the
        form's ``summary_names`` and, where the form says so, ``slope[i, j]``, the change of validation
        loss i per unit of share moved to training domain j at the pilots' mean mixture r̄,

        .. math:: \partial L_i / \partial r_j - \frac{1}{M} \sum_{j'} \partial L_i / \partial r_{j'}

        (centred, as only moves within the simplex are defined; :func:`~bayes_mixlaw.mixing_forms.centred_slopes`).
        Explicit law: ``log_c``, ``log_k`` and ``t`` (rows of t sum to zero). Implicit law: its latent domains
        are identified only up to relabelling, so it reports only the slopes, which relabelling leaves alone.
        Power law: ``power_e``, ``power_log_c``, ``power_gamma`` and the slopes (``power_law_base`` also ``power_log_b``). Every form reports
        ``noise_sigma``, the observation noise per validation domain (relative to its scale). With a residual
        (``residual: rff``) also its scale per validation domain ``residual_scale`` (the residual's standard deviation
        relative to the domain's loss scale), ``residual_lengthscale`` per training domain and ``residual_shared``.
        """
        self._require_fit()
        table = self.form.parameter_table(self, ci)
        if self.residual is None:
            return table
        return pd.concat([table, self._parameter_table(["residual_scale", "residual_lengthscale", "residual_shared"], ci)], ignore_index=True)

    def target_function(self, target: str = "total", *, draws: int | None = None, seed: int = 0):
        """The law's expected ``target`` loss as a function of the mixture, one per posterior draw.

        Returns ``f`` with ``f(r)``: r a torch tensor (n_draws, n, M) -> (n_draws, n), float64 and
        differentiable in r (for optimisation and BoTorch), and ``f.n_draws``; ``draws`` thins the
        posterior to that many. The form's function (plus the residual), evaluated in torch.
        """
        import torch

        self._require_fit()
        weights = self._target_weights(target)
        param = self._torch_posterior(self.mean_parameter_names, draws, seed)
        scale = torch.as_tensor(self.idata["constant_data"]["loss_scale"].values, dtype=torch.float64)
        constants = self._residual_constants(lambda values: torch.as_tensor(values, dtype=torch.float64))

        def f(r):
            return self._expected_loss(r, param, scale, constants) @ weights

        f.n_draws = len(next(iter(param.values())))
        return f

    def summary_line(self) -> str:
        """One line saying what was fitted."""
        self._require_fit()
        d = self.diagnostics
        scale = json.loads(self.idata.attrs["scale"])
        where = ", ".join(f"{k}={v:,}" if isinstance(v, int) else f"{k}={v:g}" for k, v in scale.items()) or "one scale"
        law = self.config.law + (f" + {self.config.residual} residual" if self.residual is not None else "")
        return (
            f"{law} mixing law ({self.config.likelihood}) on {len(self.idata['constant_data']['run'])} runs x "
            f"{len(self.valid_domains)} validation domains x {len(self.train_domains)} training domains at {where}; {d.summary()}"
        )
