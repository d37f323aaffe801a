"""What one held-out check can say: its coverage's spread under the model, and its error ratio's under resampling.

A check's held-out losses share errors: at a target beyond the pilots every prediction of a check carries the same
draw of the law's shared discrepancy (``bayes_mixlaw.discrepancy_scale``: the drift and the domains' common part), so
the 20-80 totals of one check are not 20-80 trials of the interval but close to one. Their coverage then lands near
0 or 1 more often than near 0.90, even for a model that is exactly right. Two figures put a check's numbers beside
what chance alone makes of them:

* :func:`coverage_under_model`: the predictive's own joint draws taken in turn as the truth (a posterior predictive
  check of the coverage statistic): the distribution of the check's coverage if the model were right, so the chance
  that it falls within a target range, and where the observed coverage sits in it;
* :func:`bootstrap_ratio`: the ratio of two methods' mean absolute errors on the same held-out losses, resampled by
  held-out mixture (a mixture's runs and domains together, paired between the methods): how far a ratio read on one
  check is from 1 by more than the mixtures drawn.
"""

from __future__ import annotations

import numpy as np


def coverage_under_model(draws: np.ndarray, observed: np.ndarray, level: float = 0.90, target: tuple[float, float] = (0.85, 0.95), truths: int = 500) -> dict:
    r"""The check's coverage if each of ``truths`` joint draws were the truth.

    ``draws``: (S, N, K) joint predictive draws of the check's N held-out runs and K quantities (one draw ``s``
    is one realisation of everything the model leaves uncertain, shared errors included); ``observed``: (N, K).
    The central ``level`` interval of each loss is the draws' quantiles; draw ``s``'s coverage is the share of
    its N losses inside them, per quantity column group (all but the last column: domains; the last: totals).

    Returns {``"domains"``, ``"totals"``: {``observed``: the check's coverage, ``mean``: its expectation under the
    model, ``p_in_target``: P(coverage in ``target``), ``percentile``: where the observed coverage sits among the
    model's, P(coverage < observed) + P(coverage = observed) / 2 (the mid-percentile: coverage takes few values, and
    a check's 1.00 is often the model's most likely one)}}."""
    lower, upper = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2], axis=0)
    pick = np.unique(np.linspace(0, len(draws) - 1, min(truths, len(draws))).round().astype(int))
    inside = (lower <= draws[pick]) & (draws[pick] <= upper)  # (truths, N, K)
    seen = (lower <= observed) & (observed <= upper)
    out = {}
    for name, columns in (("domains", slice(0, -1)), ("totals", slice(-1, None))):
        simulated, value = inside[:, :, columns].mean(axis=(1, 2)), float(seen[:, columns].mean())
        out[name] = {
            "observed": value,
            "mean": float(simulated.mean()),
            "p_in_target": float(((simulated >= target[0]) & (simulated <= target[1])).mean()),
            "percentile": float((simulated < value - 1e-12).mean() + 0.5 * (np.abs(simulated - value) <= 1e-12).mean()),
        }
    return out


def bootstrap_ratio(
    error_a: np.ndarray, error_b: np.ndarray, groups: np.ndarray, resamples: int = 2000, seed: int = 0, level: float = 0.90
) -> tuple[float, float, float]:
    r"""(ratio, lower, upper): :math:`\mathrm{MAE}_a / \mathrm{MAE}_b` of the absolute errors ``error_a``,
    ``error_b`` (N, ...: the same held-out losses), and its central ``level`` interval over ``resamples`` resamples
    of the held-out ``groups`` (length N: a row's mixture), drawn with replacement, each group's rows together and
    the two methods paired."""
    labels, index = np.unique(groups, return_inverse=True)
    rows = [np.flatnonzero(index == g) for g in range(len(labels))]
    a, b = (np.array([error[r].sum() for r in rows]) for error in (error_a, error_b))  # same rows: a ratio of sums is one of means
    rng = np.random.default_rng(seed)
    chosen = rng.integers(0, len(rows), size=(resamples, len(rows)))
    counts = np.apply_along_axis(np.bincount, 1, chosen, minlength=len(rows))  # (resamples, groups)
    ratios = (counts @ a) / (counts @ b)
    low, high = np.quantile(ratios, [(1 - level) / 2, (1 + level) / 2])
    return float(error_a.mean() / error_b.mean()), float(low), float(high)
