"""Bayesian scaling laws over model size and training data, for one data mixture.

Chinchilla's joint law (Hoffmann et al., 2022), one curve per validation domain::

    L(N, D) = E + A N^-alpha + B D^-beta

fitted on the log loss with a Student-t (robust) likelihood, as Epoch AI's replication fits it with a
Huber loss on the log loss. The model works in scale-free units: N and D relative to the geometric
means of the pilots' sizes and token counts (N0, D0), losses relative to each domain's median loss s::

    L / s = e + a (N / N0)^-alpha + b (D / D0)^-beta,    E = s e,  A = s a N0^alpha,  B = s b D0^beta

so the default priors (``config.SCALING_PRIORS``) suit any scale. ``E``, ``A``, ``B``, ``alpha`` and
``beta`` are reported in the usual absolute units.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pymc as pm
import xarray as xr

from bayes_mixlaw.config import ScalingLawConfig
from bayes_mixlaw.laws import chinchilla_law
from bayes_mixlaw.model import BayesianLaw
from bayes_mixlaw.runs import RunsTable
from bayes_mixlaw.seeds import row_generators
from bayes_mixlaw.summary import DEFAULT_CI, eti, summarize_draws

PARAMETERS = ("E", "A", "B", "alpha", "beta")


def _points(params, tokens) -> tuple[np.ndarray, np.ndarray]:
    """Model sizes and data amounts as matching float arrays (either may be a single value)."""
    n, d = np.broadcast_arrays(np.atleast_1d(np.asarray(params, dtype=float)), np.atleast_1d(np.asarray(tokens, dtype=float)))
    if np.any(~np.isfinite(n) | (n <= 0)) or np.any(~np.isfinite(d) | (d <= 0)):
        raise ValueError("params and tokens must be positive and finite")
    return n, d


class ChinchillaLaw(BayesianLaw):
    """Bayesian ``L(N, D) = E + A/N^alpha + B/D^beta`` per validation domain.

    >>> law = ChinchillaLaw().fit(runs, seed=0)          # runs with params and tokens columns
    >>> law.parameters()                                 # E, A, B, alpha, beta with intervals
    >>> law.predict(params=[7e10], tokens=[1.4e12])      # loss with a credible interval
    """

    kind = "chinchilla_law"
    config_class = ScalingLawConfig
    fit_name = "scaling-law"

    def _layout(self, runs: RunsTable) -> dict:
        data = runs.data
        if "params" not in data:
            raise ValueError(f"{runs.source}: a scaling law needs a 'params' column (model size)")
        d_column = "tokens" if "tokens" in data else "step" if "step" in data else None
        if d_column is None:
            raise ValueError(f"{runs.source}: a scaling law needs a 'tokens' (or 'step') column")
        if runs.mix_columns and len(runs.mixtures().drop_duplicates()) > 1:
            raise ValueError(
                f"{runs.source}: the runs have {len(runs.mixtures().drop_duplicates())} different mixtures; "
                "ChinchillaLaw fits one data mixture (select one, or use the nested model)"
            )
        for column in ("params", d_column):
            if data[column].nunique() < 2:
                raise ValueError(f"{runs.source}: '{column}' takes one value; a scaling law needs several")
        valid = runs.valid_domains
        valid_idx = data["valid_domain"].map({v: i for i, v in enumerate(valid)}).to_numpy()
        n = data["params"].to_numpy(dtype=float)
        d = data[d_column].to_numpy(dtype=float)
        loss = data["loss"].to_numpy(dtype=float)
        return {
            "table": runs,
            "valid": valid,
            "d_column": d_column,
            "n": n,
            "d": d,
            "n0": float(np.exp(np.log(n).mean())),
            "d0": float(np.exp(np.log(d).mean())),
            "valid_idx": valid_idx,
            "loss": loss,
            "scale": data.groupby("valid_domain")["loss"].median().loc[valid].to_numpy(),
        }

    def _model(self, lay: dict) -> pm.Model:
        """The PyMC model; sizes, token counts and losses enter through ``pm.Data``."""
        cfg = self.config
        with pm.Model(coords={"valid_domain": lay["valid"], "obs": np.arange(len(lay["loss"]))}) as model:
            n_rel = pm.Data("params_rel", lay["n"] / lay["n0"], dims="obs")
            d_rel = pm.Data("tokens_rel", lay["d"] / lay["d0"], dims="obs")
            valid_idx = pm.Data("valid_idx", lay["valid_idx"], dims="obs")
            log_loss = pm.Data("log_loss", np.log(lay["loss"]), dims="obs")
            log_scale = pm.Data("log_loss_scale", np.log(lay["scale"]), dims="valid_domain")
            log_n0 = pm.Data("log_n0", np.log(lay["n0"]))
            log_d0 = pm.Data("log_d0", np.log(lay["d0"]))
            log_e = cfg.prior("log_e", dims="valid_domain").create_variable("log_e")
            log_a = cfg.prior("log_a", dims="valid_domain").create_variable("log_a")
            log_b = cfg.prior("log_b", dims="valid_domain").create_variable("log_b")
            alpha = cfg.prior("alpha", dims="valid_domain").create_variable("alpha")
            beta = cfg.prior("beta", dims="valid_domain").create_variable("beta")
            pm.Deterministic("E", pm.math.exp(log_e + log_scale), dims="valid_domain")
            pm.Deterministic("A", pm.math.exp(log_a + log_scale + alpha * log_n0), dims="valid_domain")
            pm.Deterministic("B", pm.math.exp(log_b + log_scale + beta * log_d0), dims="valid_domain")
            i = valid_idx
            mean = chinchilla_law(n_rel, d_rel, pm.math.exp(log_e[i]), pm.math.exp(log_a[i]), pm.math.exp(log_b[i]), alpha[i], beta[i])
            mu = pm.math.log(mean) + log_scale[i]
            noise = cfg.prior("noise_sigma", dims="valid_domain").create_variable("noise_sigma")
            self._likelihood(mu, noise[i], log_loss)
        return model

    def _key_parts(self, lay: dict) -> tuple:
        return (lay["valid"],)

    def _stored_runs(self) -> tuple[RunsTable, dict]:
        """The fitted points, from the file's observed data."""
        column = str(self.idata.attrs["data_column"])
        data = self._observed_rows({"params": "params", column: column}, run=None)
        return RunsTable(data, source=str(self.idata.attrs.get("source", "<fit>"))), {}

    # hooks of BayesianLaw.fit ---------------------------------------------------------------

    def _data(self, lay: dict) -> dict:
        return {
            "params_rel": lay["n"] / lay["n0"],
            "tokens_rel": lay["d"] / lay["d0"],
            "valid_idx": lay["valid_idx"],
            "log_loss": np.log(lay["loss"]),
            "log_loss_scale": np.log(lay["scale"]),
            "log_n0": np.log(lay["n0"]),
            "log_d0": np.log(lay["d0"]),
        }

    def _data_groups(self, lay: dict) -> dict[str, xr.Dataset]:
        observed = xr.Dataset(
            {
                "loss": ("obs", lay["loss"]),
                "params": ("obs", lay["n"]),
                lay["d_column"]: ("obs", lay["d"]),
                "obs_valid_domain": ("obs", np.asarray(lay["valid"], dtype=object)[lay["valid_idx"]].astype(str)),
            }
        )
        return {"observed_data": observed}

    def _attrs(self, lay: dict) -> dict:
        return {"data_column": lay["d_column"]}

    def _diagnostic_quantities(self) -> xr.Dataset:
        return self.idata["posterior"].to_dataset()[[*PARAMETERS, "noise_sigma"]]

    # results ---------------------------------------------------------------------------------

    @property
    def valid_domains(self) -> list[str]:
        self._require_fit()
        return [str(v) for v in self.idata["posterior"]["valid_domain"].values]

    def parameters(self, ci: float = DEFAULT_CI) -> pd.DataFrame:
        """Posterior mean, median and equal-tailed interval of E, A, B, alpha, beta per domain."""
        self._require_fit()
        post = self.idata["posterior"]
        rows = []
        for name in PARAMETERS:
            values = post[name].stack(sample=("chain", "draw")).transpose("valid_domain", "sample").values
            bounds = eti(post[name], ci).transpose("valid_domain", "ci_bound").values
            for v, draws, (lower, upper) in zip(self.valid_domains, values, bounds):
                rows.append(
                    {
                        "parameter": name,
                        "valid_domain": v,
                        "mean": draws.mean(),
                        "median": np.median(draws),
                        "lower": lower,
                        "upper": upper,
                    }
                )
        return pd.DataFrame(rows)

    def predict_draws(self, params, tokens, *, kind: str = "predictive", seed: int = 0) -> xr.DataArray:
        """Draws of the loss at each (params, tokens) pair: dims (chain, draw, point, target)."""
        self._require_fit()
        return self._draws_at(*_points(params, tokens), kind, seed)

    def _draws_at(self, n: np.ndarray, d: np.ndarray, kind: str, seed: int) -> xr.DataArray:
        self._check_kind(kind)
        post = self.idata["posterior"]
        get = lambda name: post[name].values[:, :, None, :]  # noqa: E731  (chain, draw, 1, valid)
        mean = chinchilla_law(n[:, None], d[:, None], get("E"), get("A"), get("B"), get("alpha"), get("beta"))
        if kind == "predictive":
            mean = mean * np.exp(get("noise_sigma") * self._row_noise(mean.shape, row_generators(seed, np.c_[n, d])))  # a point's noise is its own
        return xr.DataArray(mean, dims=("chain", "draw", "point", "target"), coords={"target": self.valid_domains}, name="loss")

    def predict(self, params, tokens, *, ci: float = DEFAULT_CI, kind: str = "predictive", seed: int = 0) -> pd.DataFrame:
        """One row per (params, tokens) pair and validation domain: ``params``, ``tokens``, ``target``,
        ``mean``, ``median``, ``lower``, ``upper``."""
        self._require_fit()
        n, d = _points(params, tokens)
        draws = self._draws_at(n, d, kind, seed)
        n = n.astype(np.int64) if np.all(n == np.round(n)) else n
        return summarize_draws(draws, pd.DataFrame({"params": n, self.idata.attrs["data_column"]: d}), ci)

    def predict_request(self, request) -> pd.DataFrame:
        """:meth:`~bayes_mixlaw.model.BayesianLaw.predict_request`: at pairs of ``--params`` and ``--tokens`` (or ``--step``, what the fit
        was fitted on); one value of either goes with every value of the other."""
        from bayes_mixlaw.request import say_extrapolation

        if request.mixtures is not None:
            raise ValueError(f"{request.source} is a scaling-law fit of one data mixture: it takes no --mixtures")
        column = self.idata.attrs["data_column"]
        params, amounts = request.params, request.tokens if column == "tokens" else request.step
        if not params or not amounts:
            raise ValueError(f"{request.source} was fitted on params and {column}: give --params N and --{column} D (repeat for several)")
        if len(params) != len(amounts) and 1 not in (len(params), len(amounts)):
            raise ValueError(f"give as many --params as --{column} values (or one of either); got {len(params)} and {len(amounts)}")
        say_extrapolation(self, {"params": params, column: amounts})
        return self.predict(params, amounts, ci=request.ci, kind=request.kind, seed=request.seed)

    def summary_line(self) -> str:
        self._require_fit()
        d = self.diagnostics
        p = self.parameters().set_index(["parameter", "valid_domain"])["mean"]
        v = self.valid_domains[0]
        return (
            f"Chinchilla law on {self.idata['observed_data'].sizes['obs']} points x {len(self.valid_domains)} validation domain(s): "
            f"E={p[('E', v)]:.3f} A={p[('A', v)]:.4g} B={p[('B', v)]:.4g} alpha={p[('alpha', v)]:.3f} beta={p[('beta', v)]:.3f} ({v}); "
            f"{d.summary()}"
        )
