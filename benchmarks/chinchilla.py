"""The Chinchilla check: our posterior against Epoch AI's refit and bootstrap intervals.

Data: Epoch's 245 digitised Chinchilla points, the 5 highest losses dropped as they did. Baseline in
the same run: Epoch's point estimate (Huber loss on log loss, delta 1e-3, L-BFGS from a grid of
starts), refitted here with the same law function, for the time ratio.

    python benchmarks/chinchilla.py
"""

from __future__ import annotations

import itertools
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import logsumexp

from bayes_mixlaw import ChinchillaLaw, load_runs
from bayes_mixlaw.baseline import huber

warnings.simplefilter("ignore")
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "chinchilla" / "svg_extracted_data.csv"
EPOCH = {"E": (1.817, 1.769, 1.871), "A": (482.0, None, None), "B": (2085.0, None, None), "alpha": (0.348, 0.317, 0.373), "beta": (0.366, 0.331, 0.415)}


def epoch_point_fit(n, d, loss):
    """Epoch's fit: Huber (delta 1e-3) on log L with L = exp(e) + exp(a - alpha log N) + exp(b - beta log D)."""

    def objective(theta):
        e, a, b, alpha, beta = theta
        pred = logsumexp([np.full_like(n, e), a - alpha * np.log(n), b - beta * np.log(d)], axis=0)
        return huber(pred - np.log(loss), 1e-3).sum()

    best = None
    for e, a, b, alpha, beta in itertools.product([-1, 0.5], [0, 10, 20], [0, 10, 20], [0.2, 0.5], [0.2, 0.5]):
        r = minimize(objective, [e, a, b, alpha, beta], method="L-BFGS-B")
        if best is None or r.fun < best.fun:
            best = r
    e, a, b, alpha, beta = best.x
    return {"E": np.exp(e), "A": np.exp(a), "B": np.exp(b), "alpha": alpha, "beta": beta}


def main():
    runs = load_runs(DATA)
    t = time.perf_counter()
    law = ChinchillaLaw().fit(runs, seed=0, progress=False)
    bayes_seconds = time.perf_counter() - t
    t = time.perf_counter()
    point = epoch_point_fit(runs.data["params"].to_numpy(float), runs.data["tokens"].to_numpy(float), runs.data["loss"].to_numpy())
    point_seconds = time.perf_counter() - t
    p = law.parameters(ci=0.95).set_index("parameter")
    rows = []
    for name, (estimate, lo, hi) in EPOCH.items():
        rows.append(
            {
                "parameter": name,
                "Epoch estimate": estimate,
                "Epoch bootstrap 95%": f"({lo}, {hi})" if lo else "-",
                "Huber refit here": point[name],
                "posterior mean": p.loc[name, "mean"],
                "posterior 95%": f"({p.loc[name, 'lower']:.4g}, {p.loc[name, 'upper']:.4g})",
                "mean inside Epoch 95%": ("yes" if lo <= p.loc[name, "mean"] <= hi else "NO") if lo else "-",
                "width vs Epoch": f"{(p.loc[name, 'upper'] - p.loc[name, 'lower']) / (hi - lo):.2f}" if lo else "-",
            }
        )
    print(pd.DataFrame(rows).to_markdown(index=False, floatfmt=".4g"))
    pred = law.predict(params=[7e10, 2.8e11], tokens=[1.4e12, 3e11], ci=0.9, kind="mean")
    print(
        f"\nNUTS fit {bayes_seconds:.1f} s (first fit, compiling) vs Huber point fit {point_seconds:.1f} s: ratio {bayes_seconds / point_seconds:.2f}; "
        f"{law.diagnostics.divergences} divergences, max R-hat {law.diagnostics.max_rhat:.3f}, min ESS {law.diagnostics.min_ess_bulk:.0f}"
    )
    for (_, row), label in zip(pred.iterrows(), ("Chinchilla 70B / 1.4T tokens", "Gopher 280B / 300B tokens")):
        print(f"{label}: predicted loss {row['mean']:.3f} (90% interval {row['lower']:.3f}-{row['upper']:.3f})")


if __name__ == "__main__":
    main()
