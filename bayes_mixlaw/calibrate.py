"""Extrapolation discrepancy of a nested fit, calibrated by leaving the pilots' last scale out.

A law's posterior describes uncertainty *within* the law's form. Beyond the pilots' largest model or
longest run it cannot say how wrong that form is: on RedPajama, for example, late checkpoints fall
faster than any power law in steps fitted to earlier ones (the learning-rate schedule anneals), so
every method over-predicts the held-out losses and the intervals cover too little. This module
measures that error on the pilots themselves and carries it into predictions.

Calibration, along one axis (model size ``params`` or training length): refit the same law without
the pilots' last values on that axis (the last fifth of their log-length range, or the largest size),
predict the left-out losses, and read each run's log-residuals ``z = log L_obs - log L_pred``
against the extrapolation distance ``d = log(x / x_fit)`` (``x_fit``: the largest value the
calibration fit saw). Per run r and validation domain v, the drift per unit log-distance is the
least-squares slope ``u_rv = sum(z d) / sum(d^2)``; across the runs of a domain

    mu_v = mean_r u_rv,    tau_v = sd_r u_rv,    se_v = tau_v / sqrt(#runs).

A prediction at distance ``D = max(0, log(x / x_max))`` beyond the full fit's pilots is multiplied by

    exp(D (mu_v + se_v e1_v + tau_v e2_v)),    e1 ~ N(0, R) per posterior draw, e2 ~ N(0, R) per new run,

so the calibration's own uncertainty (``se``) widens every draw's law and a new run's spread
(``tau``) widens the predictive interval. ``R`` is the correlation of the drifts ``u_rv`` across
validation domains (over the runs), shrunk towards the identity, ``R = (1 - lambda) corr(u) + lambda I``
with ``lambda = SHRINKAGE``: a run whose Pile-CC loss drifts down drifts down on most other domains
too, so the errors of a weighted total do not average out across its domains. Inside the pilots'
range (``D = 0``) nothing changes.
The drift is assumed linear in log-distance: calibrated on a short extrapolation, it is a first-order
correction for a longer one, and it says so in the fit's summary. Leave out little: a calibration fit
on far fewer checkpoints than the full fit extrapolates worse than the full fit does, and its drift
over-corrects (on RedPajama, leaving out the last third of the steps over-corrected the 30k
prediction by 3x; the last fifth left it nearly unbiased; ``benchmarks/README.md``).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from bayes_mixlaw.runs import RunsTable

ATTR = "extrapolation_discrepancy"
# weight of the identity in the drifts' cross-domain correlation (tens of runs, tens of domains: the
# sample correlation alone is singular)
SHRINKAGE = 0.1


def holdout_along(runs: RunsTable, column: str, fraction: float = 0.2) -> tuple[RunsTable, RunsTable]:
    """(kept, left out): for ``params``, the largest size is left out; for a length column, the
    values in the last ``fraction`` of the pilots' log-range (at least one value, two kept)."""
    data = runs.data
    values = np.sort(data[column].unique())
    if len(values) < 3:
        raise ValueError(f"{runs.source}: calibrating along '{column}' needs at least 3 distinct values (it has {len(values)})")
    if column == "params":
        cut = values[-2]
    else:
        log_cut = np.log(values[-1]) - (np.log(values[-1]) - np.log(values[0])) * fraction
        cut = values[max(1, min(len(values) - 2, int(np.searchsorted(np.log(values), log_cut, side="right")) - 1))]
    kept = data[column] <= cut
    return RunsTable(data[kept].reset_index(drop=True), runs.source), RunsTable(data[~kept].reset_index(drop=True), runs.source)


def residual_slopes(calibration_fit, left_out: RunsTable, column: str, seed: int = 0) -> pd.DataFrame:
    """Per left-out run and validation domain: the slope ``u`` of the log-residual against the
    log-distance beyond the calibration fit's largest ``column`` value (predictive medians)."""
    data = left_out.data
    x_fit = calibration_fit.pilot_scales()[column][-1]
    length = calibration_fit.length_column
    mix_cols = list(left_out.mix_columns)
    valid = calibration_fit.valid_domains
    rows = []
    for (params, steps), g in data.groupby(["params", length]):
        runs_here = g.groupby("run")[mix_cols].first()
        draws = calibration_fit.predict_draws(runs_here.reset_index(drop=True), params=params, seed=seed, **{length: steps}).sel(target=valid)
        median = np.median(draws.values.reshape(-1, *draws.shape[2:]), axis=0)  # (run, valid)
        pred = pd.DataFrame(median, index=runs_here.index, columns=valid).stack().rename("pred")
        merged = g.join(pred, on=["run", "valid_domain"])
        distance = np.log(merged["params" if column == "params" else length].to_numpy(float) / x_fit)
        rows.append(
            pd.DataFrame(
                {
                    "run": merged["run"],
                    "valid_domain": merged["valid_domain"],
                    "d": distance,
                    "z": np.log(merged["loss"].to_numpy(float) / merged["pred"].to_numpy(float)),
                }
            )
        )
    table = pd.concat(rows, ignore_index=True)
    table = table.assign(zd=table["z"] * table["d"], dd=table["d"] ** 2)
    sums = table.groupby(["run", "valid_domain"])[["zd", "dd"]].sum()
    return (sums["zd"] / sums["dd"]).rename("u").reset_index()


def calibrate_extrapolation(
    law, runs: RunsTable | None = None, *, axis: str = "length", fraction: float = 0.2, seed: int = 0, progress: bool = False, **sampler
):
    """Measure ``law``'s extrapolation discrepancy along ``axis`` (``length`` or ``params``) by a
    leave-last-scale-out refit, and attach it to ``law`` (kept in its fit file). Returns ``law``.

    ``runs``: the pilots ``law`` was fitted on (default: rebuilt from the fit). ``fraction``: how much
    of the log-length range to leave out (length axis). ``sampler``: settings of the calibration
    refit (e.g. draws=300, tune=300)."""
    from bayes_mixlaw.compare import runs_from_fit

    law._require_fit()
    if not law.supports_calibration:
        raise ValueError("extrapolation calibration is for nested fits (several sizes and lengths)")
    column = "params" if axis == "params" else law.length_column
    runs = runs if runs is not None else runs_from_fit(law)
    kept, left_out = holdout_along(runs, column, fraction)
    calibration = type(law)(law.config, law.targets).fit(kept, seed=seed, progress=progress, **sampler)
    from bayes_mixlaw.discrepancy_scale import MAX_CALIBRATION_RHAT

    if not calibration.diagnostics.max_rhat <= MAX_CALIBRATION_RHAT:
        import warnings

        warnings.warn(
            f"the calibration fit along '{column}' did not converge (max R-hat {calibration.diagnostics.max_rhat:.3f}): "
            "its drift is attached but rests on an unconverged fit (fewer sizes or checkpoints than the law needs; "
            "the default learned discrepancy, bayes_mixlaw.discrepancy_scale, leaves such an axis at its prior)",
            UserWarning,
            stacklevel=2,
        )
    slopes = residual_slopes(calibration, left_out, column, seed=seed)
    per_domain = slopes.groupby("valid_domain")["u"].agg(["mean", "std", "count"]).reindex(law.valid_domains)
    if per_domain["count"].isna().any():
        raise ValueError(f"no left-out losses for validation domain(s) {list(per_domain.index[per_domain['count'].isna()])}")
    sd = per_domain["std"].fillna(0.0).to_numpy()
    entry = {
        "mean": per_domain["mean"].tolist(),
        "sd": sd.tolist(),
        "corr": drift_correlation(slopes, law.valid_domains).tolist(),
        "se": (sd / np.sqrt(per_domain["count"].to_numpy())).tolist(),
        "calibrated_on": f"{column} <= {kept.data[column].max():g} -> {left_out.data[column].min():g}-{left_out.data[column].max():g}",
        "calibration_rhat": calibration.diagnostics.max_rhat,
    }
    current = json.loads(law.idata.attrs.get(ATTR, "{}"))
    current[column] = entry
    law.idata.attrs[ATTR] = json.dumps(current)
    return law


def drift_correlation(slopes: pd.DataFrame, valid: list[str]) -> np.ndarray:
    """Correlation of the drifts ``u`` across validation domains (runs as samples), shrunk towards
    the identity by ``SHRINKAGE``; the identity where fewer than three runs or a constant domain."""
    wide = slopes.pivot(index="run", columns="valid_domain", values="u").reindex(columns=valid)
    if len(wide) < 3:
        return np.eye(len(valid))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.nan_to_num(wide.corr().to_numpy(), nan=0.0)
    np.fill_diagonal(corr, 1.0)
    return (1.0 - SHRINKAGE) * corr + SHRINKAGE * np.eye(len(valid))


def discrepancy(law) -> dict:
    """The attached discrepancy per axis column ({} if none)."""
    return json.loads(law.idata.attrs.get(ATTR, "{}"))


def discrepancy_factor(
    law, scale: dict, shape: tuple, rng: np.random.Generator, predictive: bool, row_rng: np.random.Generator | None = None
) -> np.ndarray | float:
    """Multiplier of the losses (chain, draw, mixture, valid_domain) at ``scale`` ({column: value})
    for the attached discrepancies; 1.0 where none applies (inside the pilots' range). The drift's
    uncertainty (``se``, shared by the mixtures) is drawn from ``rng``, a new run's own spread (``sd``,
    ``predictive``) from ``row_rng`` (default ``rng``)."""
    entries = discrepancy(law)
    if not entries:
        return 1.0
    pilots = law.pilot_scales()
    log_factor = np.zeros(shape)
    for column, e in entries.items():
        distance = max(0.0, float(np.log(scale[column] / pilots[column][-1])))
        if distance == 0.0:
            continue
        # correlated across domains (fits calibrated before the correlation was kept: independent)
        root = np.linalg.cholesky(np.asarray(e["corr"])).T if "corr" in e else np.eye(shape[3])
        drift = np.asarray(e["mean"]) + np.asarray(e["se"]) * (rng.standard_normal((shape[0], shape[1], 1, shape[3])) @ root)
        if predictive:
            drift = drift + np.asarray(e["sd"]) * ((row_rng or rng).standard_normal(shape) @ root)  # each run's own
        log_factor = log_factor + distance * drift
    return np.exp(log_factor)


def describe(law) -> str:
    """One clause for the fit's summary line ('' if no discrepancy is attached)."""
    entries = discrepancy(law)
    if not entries:
        return ""
    parts = [f"{c} drift {np.mean(e['mean']):+.3f}/log-unit ({e['calibrated_on']})" for c, e in entries.items()]
    return "; extrapolation discrepancy: " + ", ".join(parts)
