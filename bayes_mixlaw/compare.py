"""Model comparison: PSIS-LOO between law variants, and held-out error where extrapolation matters.

* :func:`loo_compare` ranks fitted variants (explicit against implicit with K, Student-t against
  Normal, ...) by PSIS-LOO expected log predictive density (ArviZ), on the same observations. The
  pointwise log-likelihood is recomputed from each fit's posterior with its own likelihood, so fits
  saved without it can be compared.
* :func:`compare_variants` puts both in one table: each fitted variant's PSIS-LOO (rank, elpd, its
  standard error, the number of observations whose Pareto k says LOO is unreliable) and, on
  request, its held-out score.
* :func:`holdout_score` fits a variant without some pilots and scores its predictions of them:
  for a nested fit, the largest model size (what matters for extrapolating to the target); for a
  one-scale mixing law, the mixtures farthest from the pilots' mean. LOO says how well a variant
  interpolates; this says how it extrapolates, which is what the decision rests on.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr
from scipy import special, stats

from bayes_mixlaw.coverage import coverage_spread
from bayes_mixlaw.runs import MIX_PREFIX, RunsTable, load_runs, validate_runs
from bayes_mixlaw.summary import DEFAULT_CI, interval_bounds


def _logpdf(law, residual: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    post = law.idata["posterior"]
    if law.config.likelihood == "studentt":
        nu = post["nu"].values[:, :, None]
        return stats.t.logpdf(residual / sigma, df=nu) - np.log(sigma)
    return stats.norm.logpdf(residual / sigma) - np.log(sigma)


def pointwise_log_likelihood(law) -> xr.DataArray:
    """log p(y_obs | draw) for every observation, dims (chain, draw, obs), on the scale the model
    was fitted on (loss relative to each domain's scale for the mixing law). For the nested law the
    observations are its curves (dims (chain, draw, curve): one run's log losses on one validation
    domain, whose run effects the likelihood integrates out), so LOO leaves out whole curves."""
    law._require_fit()
    return law.pointwise_log_likelihood()  # each law says its own (BayesianLaw.pointwise_log_likelihood)


def loo(law):
    """PSIS-LOO of one fit (ArviZ's ELPDData, pointwise; its ``pareto_k`` flags influential observations)."""
    import arviz as az

    tree = xr.DataTree.from_dict(
        {
            "posterior": law.idata["posterior"].to_dataset(),
            "log_likelihood": xr.Dataset({"loss": pointwise_log_likelihood(law)}),
        }
    )
    return az.loo(tree, var_name="loss", pointwise=True)


def loo_compare(laws: dict, elpds: dict | None = None) -> pd.DataFrame:
    """Rank fitted variants of the same data by PSIS-LOO (ArviZ ``compare``; best first).
    ``elpds``: their :func:`loo` results if already computed."""
    import arviz as az

    sizes = {name: law.idata["observed_data"].sizes["obs"] for name, law in laws.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"LOO compares fits of the same observations; these have {sizes}")
    return az.compare(elpds or {name: loo(law) for name, law in laws.items()}, round_to="none")


def runs_from_fit(law) -> RunsTable:
    """The runs table a fit was made on, rebuilt from the data groups its file keeps (a law that
    ``supports_holdout``: pilots at one scale, or on scale axes)."""
    if not law.supports_holdout:
        raise ValueError(f"cannot rebuild the runs of a {law.kind} fit")
    obs = law.idata["observed_data"].to_dataset().to_dataframe().reset_index(drop=True)
    mixtures = pd.DataFrame(law.pilot_mixtures, index=law.pilot_labels, columns=[MIX_PREFIX + d for d in law.train_domains])
    pilot = obs[law.pilot_label_var].astype(str)
    if law.has_scale_axes:  # a run per pilot mixture and size
        column = law.length_column
        frame = pd.DataFrame(
            {
                "run": pilot + "@" + obs["params"].astype("int64").astype(str),
                "params": obs["params"].astype("int64"),
                column: obs[column],
                "valid_domain": obs["obs_valid_domain"],
                "loss": obs["loss"],
            }
        )
        frame = pd.concat([frame, mixtures.loc[pilot].reset_index(drop=True)], axis=1)
    else:
        frame = pd.DataFrame({"run": obs[law.pilot_label_var], "valid_domain": obs["obs_valid_domain"], "loss": obs["loss"]})
        frame = frame.join(mixtures, on="run")
    return validate_runs(frame, law.idata.attrs.get("source", "<fit>"))


def holdout_split(runs: RunsTable, fraction: float = 0.25) -> tuple[RunsTable, RunsTable, str]:
    """(train, held out, what): the largest model size if there are several sizes, else the
    ``fraction`` of mixtures farthest from the pilots' mean mixture."""
    data = runs.data
    if "params" in data and data["params"].nunique() > 1:
        largest = data["params"].max()
        mask = data["params"] == largest
        what = f"largest size held out (params={largest:,})"
    else:
        mix = runs.mixtures()
        distance = np.linalg.norm(mix.to_numpy() - mix.to_numpy().mean(axis=0), axis=1)
        far = mix.index[np.argsort(-distance)[: max(1, round(fraction * len(mix)))]]
        mask = data["run"].isin(far)
        what = f"{len(far)} mixtures farthest from the pilots' mean held out"
    train = RunsTable(data[~mask].reset_index(drop=True), runs.source)
    held = RunsTable(data[mask].reset_index(drop=True), runs.source)
    return train, held, what


def log_kernel_density(y: np.ndarray, sample: np.ndarray) -> np.ndarray:
    """log of the Gaussian kernel density estimate (Silverman's bandwidth) of the draws ``sample``
    (draws x n) at each ``y`` (n), computed in logs so that a value far outside the draws gets a
    finite, very low density rather than log(0)."""
    bandwidth = 1.06 * sample.std(0) * len(sample) ** -0.2 + 1e-12
    kernels = stats.norm.logpdf((y[None] - sample) / bandwidth)
    return special.logsumexp(kernels, axis=0) - np.log(len(sample)) - np.log(bandwidth)


def holdout_score(law, runs, *, ci: float = DEFAULT_CI, seed: int = 0, **fit_kw) -> dict:
    """Fit ``law`` (an unfitted variant) without the held-out pilots (:func:`holdout_split`) and score
    its predictions of them: MAE, interval coverage and held-out log predictive density per loss, and how the
    coverage reads against its own spread if the model were right (:func:`bayes_mixlaw.coverage.coverage_spread`:
    the held-out losses share their error beyond the pilots, so one check's coverage is far from a binomial count)."""
    interval_bounds(ci)  # refuses a bad ci before the fit
    runs = load_runs(runs)
    train, held, what = holdout_split(runs)
    law.fit(train, seed=seed, **fit_kw)
    mix_cols = runs.mix_columns
    data = held.data
    keys = [c for c in ("params", "step", "tokens") if c in data and law.has_scale_axes]
    errors, log_density, joint, seen = [], [], [], []
    for scale, g in data.groupby(keys) if keys else [((), data)]:
        scale = dict(zip(keys, np.atleast_1d(scale)))
        mixtures = g.groupby("run")[mix_cols].first()
        draws = law.predict_draws(mixtures.reset_index(drop=True), seed=seed, **scale)
        values = draws.values.reshape(-1, *draws.shape[2:])  # (sample, mixture, target)
        targets = list(draws["target"].values)
        observed = g.pivot_table(index="run", columns="valid_domain", values="loss").loc[mixtures.index]
        for domain in observed.columns:
            y = observed[domain].to_numpy()
            sample = values[:, :, targets.index(domain)]
            errors.append(np.abs(np.median(sample, 0) - y))
            log_density.append(log_kernel_density(y, sample))
            # draw s of every scale's call: one posterior draw, and one draw of the shared errors where the calls'
            # shapes agree (the same seed draws the same numbers)
            joint.append(sample)
            seen.append(y)
    spread = coverage_spread(np.concatenate(joint, axis=1), np.concatenate(seen), ci)
    return {
        "held_out": what,
        "MAE": float(np.concatenate(errors).mean()),
        f"{ci:.0%} coverage": spread["coverage"],  # each loss inside its equal-tailed interval
        "log predictive density": float(np.concatenate(log_density).mean()),
        "n": int(np.concatenate(errors).size),
        f"P({ci:.0%} coverage within 0.05) if the model is right": spread["within band"],
        "coverage percentile if the model is right": spread["percentile"],
    }


def compare_variants(laws: dict, *, holdout: bool = False, runs=None, seed: int = 0, elpds: dict | None = None, **fit_kw) -> pd.DataFrame:
    """One row per fitted variant of the same data ({name: law}), best PSIS-LOO first: ``rank``,
    ``elpd_loo``, ``se``, ``elpd_diff`` and ``dse`` (to the best), ``p_loo``, ``pareto_k > 0.7``
    (observations where LOO is unreliable), ``stacking weight`` (Yao et al. 2018, ArviZ's default: the weights w,
    summing to 1, that maximise sum_i log sum_k w_k p_k(y_i | y_-i) over the pilots' LOO densities; where it is split
    between variants, none of them predicts every pilot best) and, with ``holdout``, each variant refitted without the
    held-out pilots (:func:`holdout_split`; ``runs`` defaults to the first fit's own runs) with its
    held-out ``MAE``, interval ``coverage`` and ``log predictive density``. ``elpds``: :func:`loo`
    results already computed for some of the variants (by name)."""
    import warnings

    from bayes_mixlaw.feedback import step

    with step(f"PSIS-LOO of {len(laws)} variant(s)"), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Estimated shape parameter of Pareto")  # counted in the table instead
        known = elpds or {}
        elpds = {name: known[name] if known.get(name) is not None else loo(law) for name, law in laws.items()}
        ranked = loo_compare(laws, elpds)
    unreliable = {name: int((np.asarray(elpd.pareto_k) > 0.7).sum()) for name, elpd in elpds.items()}
    table = pd.DataFrame(
        {
            "variant": ranked.index,
            "rank": ranked["rank"].to_numpy(),
            "elpd_loo": ranked["elpd"].to_numpy(),
            "se": ranked["se"].to_numpy(),
            "elpd_diff": ranked["elpd_diff"].to_numpy(),
            "dse": ranked["dse"].to_numpy(),
            "p_loo": ranked["p"].to_numpy(),
            "pareto_k > 0.7": [unreliable[name] for name in ranked.index],
            "stacking weight": ranked["weight"].to_numpy(),
        }
    )
    if holdout:
        runs = runs_from_fit(next(iter(laws.values()))) if runs is None else runs
        scores = {}
        for name, law in laws.items():
            fresh = type(law)(law.config, law.targets)
            with step(f"held-out check of {name}: refitting without the held-out pilots", announce=True):
                scores[name] = holdout_score(fresh, runs, seed=seed, **{"progress": False, **fit_kw})
        table = table.join(pd.DataFrame.from_dict(scores, orient="index"), on="variant")
    return table.reset_index(drop=True)
