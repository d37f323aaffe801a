"""What one held-out check can say: its coverage's spread under the model, and its error ratio's under resampling.

A check's held-out losses share errors: at a target beyond the pilots every prediction of a check carries the same
draw of the law's shared discrepancy (``bayes_mixlaw.discrepancy_scale``: the drift and the domains' common part), so
the 20-80 totals of one check are not 20-80 trials of the interval but close to one. Their coverage then lands near
0 or 1 more often than near 0.90, even for a model that is exactly right. Two figures put a check's numbers beside
what chance alone makes of them:

* :func:`coverage_under_model`: the predictive's own joint draws taken in turn as the truth (a posterior predictive
  check of the coverage statistic, ``bayes_mixlaw.coverage``, which ``report --holdout`` also reads), the domains and
  the totals apart: the chance that the check's coverage falls within 0.05 of the nominal level if the model were
  right, and where the observed coverage sits among the model's;
* :func:`bootstrap_ratio`: the ratio of two methods' mean absolute errors on the same held-out losses, resampled by
  held-out mixture (a mixture's runs and domains together, paired between the methods): how far a ratio read on one
  check is from 1 by more than the mixtures drawn.
"""

from __future__ import annotations

import numpy as np

from bayes_mixlaw.coverage import coverage_spread


def coverage_under_model(draws: np.ndarray, observed: np.ndarray, level: float = 0.90, truths: int = 500) -> dict:
    """The check's coverage if each of ``truths`` joint draws were the truth, for its domains' losses and its totals
    apart: {``"domains"``, ``"totals"``: ``bayes_mixlaw.coverage.coverage_spread``'s result}. ``draws``: (S, N, K)
    joint predictive draws of the check's N held-out runs, K quantities (the domains, then the total in the last
    column); ``observed``: (N, K)."""
    parts = {"domains": slice(0, -1), "totals": slice(-1, None)}
    return {name: coverage_spread(draws[:, :, c].reshape(len(draws), -1), observed[:, c].ravel(), level, truths=truths) for name, c in parts.items()}


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
