"""Continual pre-training: the critical proportion and the held-out 0.285 run (issue 18).

Data: Data Mixing Laws' ct experiment (Pythia-70M continued from step 20k on Pile:Python mixtures;
runs at Pile shares 0.125, 0.25, 0.375, 0.5 and the paper's predicted critical share 0.285;
checkpoints 1k..10k; 22 Pile validation domains and starcoder Python). The continual law
(``bayes_mixlaw.continual``) is fitted on the four runs without 0.285; then

- the 0.285 run's whole trajectory (10 checkpoints x 23 validation domains, and the Pile ``total``) is
  predicted: mean absolute error, mean relative error, 90% interval coverage and width;
- a point fit of the same law in the same run (scipy least squares on a Huber loss of the relative
  residuals, per validation domain, 8 random starts) predicts the same points (error only: no interval);
- the critical share of Pile for the Pile ``total`` at step 10k, its 90% interval and width, where
  the paper's 0.285 falls in it (P(p* <= 0.285)), and the point fit's critical share.
Also the critical share fitted on all five runs.

    python benchmarks/critical.py            # prints Markdown tables
"""

from __future__ import annotations

import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import brentq, least_squares

from bayes_mixlaw.continual import ContinualLaw, continual_mixing_law, ct_targets
from bayes_mixlaw.critical import critical_share, critical_share_draws
from bayes_mixlaw.runs import load_runs

warnings.simplefilter("ignore")
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "mixinglaws" / "ct"
HELD_OUT = "70M_ct_9-0.28515625-0.71484375"
PAPER_SHARE = 0.28515625


def point_fit(train, steps, seed: int = 0) -> dict:
    """The same law by least squares (Huber on relative residuals, f_scale 1e-3), per validation domain:
    (m_s, g_s) per checkpoint and one tau. Returns {domain: (m (T,), g (T,), tau, pbar, scale)}."""
    data = train.data
    pbar = float(train.mixtures()["mix:Pile"].mean())
    rng = np.random.default_rng(seed)
    out = {}
    for domain, rows in data.groupby("valid_domain", sort=False):
        x = rows["mix:Pile"].to_numpy() - pbar
        s = np.searchsorted(steps, rows["step"].to_numpy())
        y = rows["loss"].to_numpy()
        scale = float(np.median(y))
        n = len(steps)

        def residual(theta, x=x, s=s, y=y, scale=scale, n=n):
            m, g, tau = theta[:n], theta[n : 2 * n], theta[-1]
            return (continual_mixing_law(x, m[s], g[s], tau) * scale - y) / y

        best = None
        for _ in range(8):
            theta0 = np.concatenate([np.ones(n), rng.normal(0, 0.1, n), rng.normal(0, 3, 1)])
            fit = least_squares(residual, theta0, loss="huber", f_scale=1e-3)
            if best is None or fit.cost < best.cost:
                best = fit
        out[domain] = (best.x[:n], best.x[n : 2 * n], best.x[-1], pbar, scale)
    return out


def point_predict(params: dict, domain: str, share: float) -> np.ndarray:
    m, g, tau, pbar, scale = params[domain]
    return continual_mixing_law(share - pbar, m, g, tau) * scale


def main(seed: int = 1):
    runs = load_runs(DATA)
    targets = ct_targets()
    data = runs.data
    train = replace(runs, data=data[data["run"] != HELD_OUT].reset_index(drop=True))
    held = data[data["run"] == HELD_OUT]
    steps = np.array(runs.scale_values("step"))
    names, matrix = targets.check(runs.valid_domains).matrix(runs.valid_domains)
    w_total = matrix[names.index("total")]

    start = time.perf_counter()
    law = ContinualLaw(targets=targets).fit(train, seed=seed, progress=False)
    seconds = time.perf_counter() - start
    diag = law.diagnostics
    mixture = pd.DataFrame({"name": ["0.285 run"], "mix:Pile": [PAPER_SHARE], "mix:Python": [1 - PAPER_SHARE]})
    pred = law.predict(mixture, ci=0.9, seed=seed)
    domains = pred.merge(held, left_on=["step", "target"], right_on=["step", "valid_domain"])
    wide = held.pivot(index="step", columns="valid_domain", values="loss")[runs.valid_domains]
    observed_total = pd.Series(wide.to_numpy() @ w_total, index=wide.index)
    total = pred[pred["target"] == "total"].set_index("step").assign(loss=observed_total)

    start = time.perf_counter()
    params = point_fit(train, steps)
    point_seconds = time.perf_counter() - start
    point = np.array([point_predict(params, d, PAPER_SHARE)[np.searchsorted(steps, s)] for d, s in zip(domains["target"], domains["step"])])
    point_domains = pd.DataFrame({d: point_predict(params, d, PAPER_SHARE) for d in runs.valid_domains}, index=steps)[runs.valid_domains]
    point_total = pd.Series(point_domains.to_numpy() @ w_total, index=steps)

    def score(label, estimate, observed, lower=None, upper=None, secs=np.nan, rhat=np.nan, ess=np.nan, div=np.nan):
        err = np.abs(np.asarray(estimate) - np.asarray(observed))
        row = {
            "prediction of the held-out 0.285 run": label,
            "points": len(err),
            "MAE": err.mean(),
            "mean rel err %": 100 * (err / np.asarray(observed)).mean(),
            "max rel err %": 100 * (err / np.asarray(observed)).max(),
        }
        if lower is not None:
            row["90% coverage"] = float(((lower <= observed) & (observed <= upper)).mean())
            row["mean 90% width"] = float((upper - lower).mean())
        row.update({"wall s": secs, "R-hat max": rhat, "bulk ESS min": ess, "divergences": div})
        return row

    rows = [
        score(
            "Bayesian, every domain x checkpoint",
            domains["mean"],
            domains["loss"],
            domains["lower"],
            domains["upper"],
            seconds,
            diag.max_rhat,
            diag.min_ess_bulk,
            diag.divergences,
        ),
        score("point fit (Huber LSQ), every domain x checkpoint", point, domains["loss"].to_numpy(), secs=point_seconds),
        score("Bayesian, Pile total x checkpoint", total["mean"], total["loss"], total["lower"], total["upper"]),
        score("point fit, Pile total x checkpoint", point_total.loc[total.index], total["loss"]),
    ]
    print(pd.DataFrame(rows).to_markdown(index=False, floatfmt=".4g"))

    # the critical share of Pile for the Pile total at 10k
    reference = law.reference_losses()
    crit = critical_share(law, ["total", "Pile-CC", "academic", "internet"], shares=[0.25, PAPER_SHARE, 0.3])
    draws = critical_share_draws(law, "total")
    point_crit = brentq(lambda p: float(point_predict_all(params, runs.valid_domains, p)[-1] @ w_total) - reference["total"], 0.0, 1.0)
    held_total_10k = float(observed_total.loc[steps[-1]])
    print()
    print(
        f"starting Pile total loss {reference['total']:.4f}; the held-out 0.285 run's total at step {steps[-1]}: {held_total_10k:.4f} "
        f"({'kept' if held_total_10k <= reference['total'] else 'not kept'})"
    )
    table = crit[
        [
            "target",
            "mean",
            "median",
            "lower",
            "upper",
            "width",
            "p_never",
            "start_loss",
            "p_keep@0.25",
            f"p_keep@{PAPER_SHARE:g}",
            "p_keep@0.3",
            "new_median",
            "new_lower",
            "new_upper",
        ]
    ]
    print(table.to_markdown(index=False, floatfmt=".4g"))
    print(f"\npaper's 0.285 at posterior quantile P(p* <= 0.285) = {np.mean(draws <= PAPER_SHARE):.3f}; point fit of the same law: p* = {point_crit:.4f}")

    # all five runs
    full = ContinualLaw(targets=targets).fit(runs, seed=seed, progress=False)
    crit_all = critical_share(full, "total", shares=[PAPER_SHARE])
    r = crit_all.iloc[0]
    print(
        f"all five runs: critical share of Pile for the total {r['median']:.4f} [{r['lower']:.4f}, {r['upper']:.4f}] (width {r['width']:.4f}), "
        f"P(p* <= 0.285) = {r[f'p_keep@{PAPER_SHARE:g}']:.3f}; {full.diagnostics.summary()} (max R-hat {full.diagnostics.max_rhat:.3f})"
    )


def point_predict_all(params: dict, domains: list[str], share: float) -> np.ndarray:
    """(checkpoints, domains) of the point fit at one share."""
    return np.stack([point_predict(params, d, share) for d in domains], axis=1)


if __name__ == "__main__":
    main()
