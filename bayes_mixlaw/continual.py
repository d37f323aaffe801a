"""Continual pre-training: the data mixing law at every checkpoint of runs that continue one model.

Every run starts from one trained checkpoint (its losses: the table's ``reference``, the "starting
loss") and trains on a mixture of the original data (share p) and new data (share 1 - p). For
validation domain i and a run at its checkpoint s (one of the pilots' steps), in units of the domain's
loss scale sigma_i (its median observed loss) and with x = p - pbar (pbar the pilots' mean share)::

    L_i(p, s) / sigma_i = m_is + g_is (exp(tau_i x) - 1) / tau_i                  (continual_mixing_law)

m_is is the loss at the pilots' mean share, g_is its slope there and tau_i the relative curvature,
shared by every checkpoint of the domain. This is Ye et al.'s explicit mixing law
(``laws.mixing_law``) on the two-domain simplex, ``c + k exp(t . r)`` with

    tau = t_original - t_new,   k exp(tau pbar + t_new) = g / tau,   c = m - g / tau,

written in the coordinates the pilots pin down (level, slope, curvature) and without the law's signs
c > 0, k > 0 imposed: with four pilot shares the curvature is barely seen, and in the law's own
coordinates (or the mixing law's m, f, t) the sampler followed the ridge towards the straight line
(f -> 1, R-hat 1.23 and ESS 7 on the ct table); here tau -> 0 is the straight line, inside the space.
For every tau the curve is monotone in p (its slope is g exp(tau x)), so a crossing is unique.

    log m_is ~ Normal(0, 0.2)                               free per checkpoint
    g_is ~ Normal(g_mu_i, g_sigma),  g_mu_i ~ Normal(0, 0.5),  g_sigma ~ HalfNormal(0.2)   pooled over steps
    tau_i ~ Normal(tau_mu, tau_sigma),  tau_mu ~ Normal(0, 3),  tau_sigma ~ HalfNormal(3)   pooled over domains
    loss / sigma_i ~ StudentT(1 + nu', L_i(p, s) / sigma_i, noise_sigma_i)   (or Normal)

The noise is independent across validation domains. On the ct runs it is not
quite: one checkpoint of the held-out run sits 0.4% above its neighbours on every Pile domain at
once. A shared shock per checkpoint was tried three ways (latent, integrated out in closed form,
restricted to what a checkpoint's level and slope cannot take) and did not converge: with four runs a
checkpoint, shocks trade with the law's per-checkpoint levels and slopes (R-hat 1.2-2). Their spread
is therefore read off the fit's residuals by the method of moments (``_checkpoint_shock_sd``) and
drawn once per run and checkpoint in a new run's predictive draws, on every domain at once: on the
held-out ct run 90% intervals then cover 0.94 of the losses and 9 of 10 Pile totals (0.82 and 5 of 10
without; ``benchmarks/README.md``).

The step enters through the per-checkpoint level and slope, not through a step law
``E + B S^-beta`` (``laws.step_law``): the original data's losses first rise as the new data displace
them (forgetting) and fall again as the learning rate decays, which a power law in steps cannot follow
(on the ct runs a point fit of ``mixing law + (b0 + b1 p) S^-beta`` predicted the held-out run with
twice the median error of the per-checkpoint mixing law, 0.13% against 0.064%). The law therefore
speaks about the pilots' checkpoints, at any share; it does not extrapolate in steps.

Targets (``total``, groups) are weighted means of the domain losses per draw (``targets.py``); the
reference's targets are the same weighted means of the starting checkpoint's losses. The critical
share of the original data (:mod:`bayes_mixlaw.critical`) is read off these draws.

The law's config and priors are in :mod:`bayes_mixlaw.continual_config`, how it reads a runs table and what its
fit file keeps in :mod:`bayes_mixlaw.continual_layout`; every name is still importable from here.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd
import pymc as pm
import xarray as xr

from bayes_mixlaw.continual_config import CONTINUAL_PRIORS, ContinualLawConfig
from bayes_mixlaw.continual_layout import ContinualLayout
from bayes_mixlaw.laws import array_namespace
from bayes_mixlaw.mixture_law import MixtureLaw
from bayes_mixlaw.runs import MIX_PREFIX, read_mixtures
from bayes_mixlaw.seeds import row_generators
from bayes_mixlaw.summary import DEFAULT_CI, summarize_draws
from bayes_mixlaw.targets import Targets

__all__ = [  # the law, and its parts importable from here as before they had modules of their own
    "CONTINUAL_PRIORS",
    "ContinualLaw",
    "ContinualLawConfig",
    "continual_mixing_law",
    "ct_targets",
]


def continual_mixing_law(x, m, g, tau):
    r"""The two-domain mixing law in centred coordinates, one curve per validation domain:

    .. math:: L(x) = m + g\,\frac{e^{\tau x} - 1}{\tau}, \qquad x = p - \bar p

    (level m and slope g at the pilots' mean share, relative curvature tau; tau -> 0 is the straight
    line ``m + g x``). Equal to Ye et al.'s ``c + k exp(t . r)`` with ``tau = t_1 - t_2``,
    ``c = m - g / tau`` and ``k exp(t . r) = (g / tau) exp(tau x)``. Arrays of numpy or PyTensor broadcast.
    """
    xp = array_namespace(x, m, g, tau)
    tau = xp.where(abs(tau) < 1e-8, 1e-8, tau)
    return m + g * xp.expm1(tau * x) / tau


class ContinualLaw(ContinualLayout, MixtureLaw):
    """The mixing law at every checkpoint of continual pre-training runs, with their starting loss.

    >>> runs = load_runs("mixinglaws/ct")                    # .reference: the starting checkpoint
    >>> law = ContinualLaw(targets=ct_targets()).fit(runs, seed=0)
    >>> law.predict(mixtures, step=10_000)                     # any mixture, at a pilot checkpoint
    >>> critical_share(law, "total")                           # bayes_mixlaw.critical
    """

    kind = "continual_law"
    config_class = ContinualLawConfig
    pilot_mixture_var = "run_mixture"
    fit_name = "continual pre-training"
    # the report's parts (bayes_mixlaw.report.report_sections): the critical share, not the simplex's
    # figures, optimum or variant comparison (two domains, one share; no pointwise LOO for this law)
    report_sections: ClassVar[frozenset[str]] = frozenset({"critical"})
    supports_critical_share = True
    supports_holdout = False  # compare.runs_from_fit rebuilds pilots at one scale or on scale axes, not per checkpoint

    # ------------------------------------------------------------------------------------------
    # model

    def _model(self, lay: dict, reference=None, original_domain: str | None = None) -> pm.Model:
        """The PyMC model (module docstring); every data array enters through ``pm.Data``. ``reference``
        and ``original_domain`` (of :meth:`build`) as in :meth:`fit` (default: those given to the running
        ``fit``, else the table's); they enter through the layout."""
        cfg = self.config
        coords = {
            "valid_domain": lay["valid"],
            "train_domain": lay["train"],
            "step": np.asarray(lay["steps"], dtype=np.int64),
            "run": lay["runs"],
            "obs": np.arange(len(lay["loss"])),
        }
        sv = ("step", "valid_domain")
        with pm.Model(coords=coords) as model:
            data = {k: pm.Data(k, v, dims=self._DATA_DIMS[k]) for k, v in self._data(lay).items()}
            log_m = cfg.prior("loss_at_mean", dims=sv).create_variable("log_loss_at_mean")
            slope_mu = cfg.prior("slope_mu", dims="valid_domain").create_variable("slope_mu")
            slope = pm.Normal("slope", slope_mu[None, :], cfg.prior("slope_sigma").create_variable("slope_sigma"), dims=sv)
            curvature_mu = cfg.prior("curvature_mu").create_variable("curvature_mu")
            curvature = pm.Normal("curvature", curvature_mu, cfg.prior("curvature_sigma").create_variable("curvature_sigma"), dims="valid_domain")
            offset = data["run_share"] - data["share_center"]  # (run,)
            mean = continual_mixing_law(offset[None, :, None], pm.math.exp(log_m)[:, None, :], slope[:, None, :], curvature)  # (step, run, valid)
            noise = cfg.prior("noise_sigma", dims="valid_domain").create_variable("noise_sigma")
            i = data["valid_idx"]
            self._likelihood(mean[data["step_idx"], data["run_idx"], i], noise[i], data["loss_scaled"])
        return model

    def fit(
        self, runs, *, reference=None, original_domain: str | None = None, seed: int | None = None, method: str | None = None, progress: bool = True, **sampler
    ):
        """Fit to continual pre-training runs. ``reference``: the starting checkpoint's losses (a
        :class:`~bayes_mixlaw.runs.Reference`, a mapping domain -> loss, or a table with ``valid_domain``
        and ``loss``; default the table's own, e.g. from the ct format); ``original_domain``: the training
        domain the starting checkpoint was trained on (default the reference's). Other arguments as
        :meth:`BayesianLaw.fit <bayes_mixlaw.model.BayesianLaw.fit>`."""
        self._given = (reference, original_domain)
        try:
            super().fit(runs, seed=seed, method=method, progress=progress, **sampler)
        finally:
            self._given = (None, None)
        self.idata.attrs["checkpoint_shock_sd"] = self._checkpoint_shock_sd()
        return self

    def _checkpoint_shock_sd(self) -> float:
        r"""The spread of a run's shared shock at a checkpoint, relative to the loss, by the method of moments.

        A checkpoint of one run can sit above or below the law on every validation domain at once
        (on the ct runs +0.4% on all Pile domains at one step). Modelled inside the law such shocks trade
        with the per-checkpoint levels and slopes (four ways tried, none converged), so their variance is
        read off the fit's residuals instead: with :math:`e_{rsv}` the relative residual of run r at
        checkpoint s on domain v (observed minus the law's posterior mean, over the loss scale),
        :math:`\bar e_{rs}` its mean over the V domains and :math:`\sigma_v` the noise,

        .. math:: \hat\sigma^2_{shock} = \frac{R}{R - 2}\,\mathrm{Var}_{rs}(\bar e_{rs})
                  - \frac{1}{V^2} \sum_v \sigma_v^2

        (each checkpoint's level and slope over the R runs take two of their degrees of freedom), 0 if
        negative. Predictive draws of a new run multiply every domain at a checkpoint by one
        :math:`\exp(\sigma_{shock} z)`, so aggregates (``total``) carry it too."""
        post, constant, observed = self.idata["posterior"], self.idata["constant_data"], self.idata["observed_data"]
        runs = [str(x) for x in constant["run"].values]
        steps = [int(x) for x in constant["step"].values]
        valid = self.valid_domains
        mean = self.law_draws(constant["run_mixture"].values).mean(axis=(0, 1))  # (step, run, valid)
        run_idx = pd.Index(runs).get_indexer(observed["obs_run"].values.astype(str))
        step_idx = pd.Index(steps).get_indexer(observed["obs_step"].values)
        valid_idx = pd.Index(valid).get_indexer(observed["obs_valid_domain"].values.astype(str))
        relative = (observed["loss"].values - mean[step_idx, run_idx, valid_idx]) / constant["loss_scale"].values[valid_idx]
        per_checkpoint = pd.Series(relative).groupby([run_idx, step_idx]).mean()
        n_runs = len(runs)
        if n_runs <= 2 or len(per_checkpoint) < 3:
            return 0.0
        noise = np.mean(post["noise_sigma"].values ** 2, axis=(0, 1))
        shock = n_runs / (n_runs - 2) * float(per_checkpoint.var()) - float(noise.sum()) / len(valid) ** 2
        return float(np.sqrt(max(shock, 0.0)))

    def _diagnostic_quantities(self) -> xr.Dataset:
        posterior = self.idata["posterior"].to_dataset()
        return posterior[
            [
                "log_loss_at_mean",
                "slope",
                "curvature",
                "noise_sigma",
                "slope_mu",
                "slope_sigma",
                "curvature_mu",
                "curvature_sigma",
            ]
        ]

    # ------------------------------------------------------------------------------------------
    # what the fit knows

    @property
    def steps(self) -> list[int]:
        """The pilots' checkpoints (steps of the continued training) the law speaks about."""
        self._require_fit()
        return [int(s) for s in self.idata["constant_data"]["step"].values]

    @property
    def original_domain(self) -> str:
        """The training domain the starting checkpoint was trained on (the share the law is written in)."""
        self._require_fit()
        return str(self.idata.attrs["original_domain"])

    @property
    def new_domain(self) -> str:
        """The other training domain: the new data of the continued training."""
        return next(d for d in self.train_domains if d != self.original_domain)

    @property
    def reference_checkpoint(self) -> str:
        self._require_fit()
        return str(self.idata.attrs.get("reference_checkpoint", "reference"))

    def reference_losses(self) -> pd.Series:
        """The starting checkpoint's loss of every target (validation domains, groups, ``total``)."""
        self._require_fit()
        names, matrix = self.targets.matrix(self.valid_domains)
        return pd.Series(matrix @ self.idata["constant_data"]["reference_loss"].values, index=names, name="reference_loss")

    def step_index(self, step) -> int:
        """Position of ``step`` among the fit's checkpoints (None: the last); another step is an
        error listing them: the law is fitted per checkpoint and does not extrapolate in steps."""
        steps = self.steps
        if step is None:
            return len(steps) - 1
        if not (isinstance(step, (int, float, np.integer, np.floating)) and float(step) in [float(s) for s in steps]):
            raise ValueError(
                f"step {step!r} is not a checkpoint of this fit; it has steps {', '.join(str(s) for s in steps)} "
                "(the continual pre-training law is fitted per checkpoint and does not extrapolate in steps)"
            )
        return [float(s) for s in steps].index(float(step))

    # ------------------------------------------------------------------------------------------
    # predict

    def law_draws(self, r: np.ndarray, step_idx: int | None = None) -> np.ndarray:
        """The law's expected loss per draw, in absolute units, at mixtures ``r`` (n, 2): (chain, draw,
        mixture, valid_domain) at one checkpoint, or (chain, draw, step, mixture, valid_domain) at every
        checkpoint (``None``)."""
        post, constant = self.idata["posterior"], self.idata["constant_data"]
        x = np.asarray(r, dtype=float)[:, self.train_domains.index(self.original_domain)] - float(constant["share_center"].values)
        m, g = np.exp(post["log_loss_at_mean"].values), post["slope"].values  # (chain, draw, step, valid)
        if step_idx is not None:
            m, g = m[:, :, step_idx], g[:, :, step_idx]
        tau = post["curvature"].values[(slice(None), slice(None)) + (None,) * (m.ndim - 2)]  # (chain, draw, [1,] 1, valid)
        rel = continual_mixing_law(x[:, None], m[..., None, :], g[..., None, :], tau)
        return rel * constant["loss_scale"].values

    def share_draws(self, share: np.ndarray, step_idx: int) -> np.ndarray:
        """The law's expected loss per draw at shares of the original data that may differ by draw:
        ``share`` broadcastable to (chain, draw, n) -> (chain, draw, n, valid_domain), absolute units."""
        post, constant = self.idata["posterior"], self.idata["constant_data"]
        x = np.asarray(share, dtype=float)[..., None] - float(constant["share_center"].values)
        per = {k: post[k].values[:, :, step_idx, None, :] for k in ("log_loss_at_mean", "slope")}
        rel = continual_mixing_law(x, np.exp(per["log_loss_at_mean"]), per["slope"], post["curvature"].values[:, :, None, :])
        return rel * constant["loss_scale"].values

    def _domain_draws(self, r: np.ndarray, kind: str, rng: np.random.Generator, *, step_idx: int, **_) -> np.ndarray:
        """(chain, draw, mixture, valid_domain) at one checkpoint: the law's loss (``mean``), or a new
        run's (``predictive``: plus the noise, drawn independently per domain)."""
        losses = self.law_draws(r, step_idx)
        if kind == "predictive":
            sigma = (self.idata["posterior"]["noise_sigma"].values * self.idata["constant_data"]["loss_scale"].values)[:, :, None, :]
            losses = losses + sigma * self._standard_noise(losses.shape, rng)
            shock = float(self.idata.attrs.get("checkpoint_shock_sd", 0.0))  # one per run and checkpoint, every domain
            losses = losses * np.exp(shock * rng.standard_normal((*losses.shape[:-1], 1)))
        return losses

    def predict_draws(self, mixtures, *, step=None, kind: str = "predictive", seed: int = 0) -> xr.DataArray:
        """Draws of every target at each mixture and checkpoint: dims (chain, draw, mixture, step, target).

        ``step``: one checkpoint, a list of them, or None (every checkpoint of the fit). ``kind``:
        ``mean`` (the law's expected loss) or ``predictive`` (a new run's loss: the law plus its noise)."""
        self._require_fit()
        self._check_kind(kind)
        frame = read_mixtures(mixtures, self.train_domains)
        r = frame[[MIX_PREFIX + d for d in self.train_domains]].to_numpy(dtype=float)
        wanted = self.steps if step is None else np.atleast_1d(step).tolist()  # Python numbers: an error shows them as given
        index = [self.step_index(s) for s in wanted]
        names, matrix = self.targets.matrix(self.valid_domains)

        def at(i):  # one checkpoint; each mixture's noise from its own generator (the seed, its proportions and the step):
            # a row's numbers do not depend on the other rows, their order, or the other checkpoints asked for
            generators = row_generators(seed, np.c_[r, np.full(len(r), float(self.steps[i]))])
            return np.concatenate([self._domain_draws(r[j : j + 1], kind, g, step_idx=i) for j, g in enumerate(generators)], axis=2) @ matrix.T

        draws = np.stack([at(i) for i in index], axis=3)
        labels = frame["name"].tolist() if "name" in frame else [f"mixture {i}" for i in range(len(frame))]
        return xr.DataArray(
            draws,
            dims=("chain", "draw", "mixture", "step", "target"),
            coords={"mixture": labels, "step": [self.steps[i] for i in index], "target": names},
            name="loss",
        )

    def predict(self, mixtures, *, step=None, ci: float = DEFAULT_CI, kind: str = "predictive", seed: int = 0) -> pd.DataFrame:
        """One row per mixture, checkpoint and target: ``name`` (if given), ``mix:*``, ``step``,
        ``target``, ``mean``, ``median``, ``lower``, ``upper`` (equal-tailed interval of probability
        ``ci``). ``mean`` is the law's posterior mean (the noise has mean zero), as for the mixing law."""
        self._require_fit()
        frame = read_mixtures(mixtures, self.train_domains)
        draws = self.predict_draws(frame, step=step, kind=kind, seed=seed)
        stacked = draws.stack(case=("mixture", "step")).transpose("chain", "draw", "case", "target")
        inputs = frame.loc[np.repeat(np.arange(len(frame)), draws.sizes["step"])].reset_index(drop=True)
        inputs["step"] = np.tile(draws["step"].values, len(frame))
        stacked = xr.DataArray(stacked.values, dims=("chain", "draw", "case", "target"), coords={"target": draws["target"].values})
        table = summarize_draws(stacked, inputs, ci)
        if kind == "predictive":
            mean = self.predict_draws(frame, step=step, kind="mean", seed=seed).mean(("chain", "draw"))
            table["mean"] = mean.transpose("mixture", "step", "target").values.ravel()
        return table

    def predict_request(self, request) -> pd.DataFrame:
        """:meth:`~bayes_mixlaw.model.BayesianLaw.predict_request`: at ``--mixtures`` and the checkpoints of ``--step``
        (default: every checkpoint of the fit)."""
        if request.mixtures is None:
            raise ValueError(f"{request.source} is a {self.fit_name} fit: give --mixtures M.csv")
        if request.params or request.tokens:
            raise ValueError(f"{request.source} is a {self.fit_name} fit, at its own checkpoints: --params/--tokens do not apply (give --step)")
        steps = [int(s) if float(s).is_integer() else float(s) for s in request.step or []] or None  # the command line's floats
        return self.predict(request.mixtures, step=steps, ci=request.ci, kind=request.kind, seed=request.seed)

    def parameters(self, ci: float = DEFAULT_CI) -> pd.DataFrame:
        """Posterior mean and equal-tailed interval of the law's parameters (relative to each domain's
        loss scale): the curvature tau per validation domain, the slope and the log loss at the pilots'
        mean share per checkpoint, and the noise."""
        self._require_fit()
        return self._parameter_table(["curvature", "slope", "log_loss_at_mean", "noise_sigma"], ci)

    def summary_line(self) -> str:
        self._require_fit()
        steps = self.steps
        return (
            f"continual pre-training law ({self.config.likelihood}) on {len(self.idata['constant_data']['run'])} runs x "
            f"{len(steps)} checkpoints ({steps[0]}-{steps[-1]}) x {len(self.valid_domains)} validation domains, starting from "
            f"{self.reference_checkpoint}" + (f" (trained on {self.original_domain})" if self.original_domain else "") + f"; {self.diagnostics.summary()}"
        )


def ct_targets() -> Targets:
    """Targets for the ct experiment: ``total`` is the Pile validation loss (the 22 Pile subsets at their
    weights, the new domain's Python validation at weight 0: ``data/ct_valid_weight.json``) and the
    paper's five Pile groups."""
    from bayes_mixlaw.datasets import DATA, PILE_GROUPS

    return Targets.from_files(DATA / "ct_valid_weight.json", PILE_GROUPS)
