r"""What one held-out check's interval coverage can say: its spread if the model were right.

The losses of one held-out check (the largest pilot size left out, or a set of far mixtures) share their error:
beyond the pilots every prediction carries the same draw of the law's discrepancy (its drift and the domains'
common part, :mod:`bayes_mixlaw.discrepancy_scale`), and the real errors are shared too (on 5Mix's size check every
total errs the same way). A check's :math:`N` losses are then far fewer than :math:`N` independent trials of their
intervals, and the share inside lands near 0 or 1 more often than near the nominal level, even for a model that is
exactly right: a binomial reading of it (:func:`bayes_mixlaw.report.coverage_verdict`, right for the pilots' own
losses) would call an honest interval too wide or too narrow.

:func:`coverage_spread` reads the observed coverage against the model's own spread of it, a posterior predictive
check of the coverage statistic: each of ``truths`` joint predictive draws :math:`\tilde y^{(s)}` (one realisation of
everything the model leaves uncertain, shared errors included) is taken in turn as the truth, and its coverage
:math:`c_s = \frac1N \sum_i 1[l_i \le \tilde y^{(s)}_i \le u_i]` against the same intervals :math:`[l_i, u_i]` gives the
distribution of a check's coverage under the model. The observed coverage is then placed in it (its mid-percentile
:math:`P(c < c_{obs}) + P(c = c_{obs})/2`: coverage takes few values), beside the chance that a check's coverage falls
within ``band`` of the nominal level at all (0.04-0.40 for the totals of the nested law's four held-out checks on
RedPajama, 5Mix and 3Mix, benchmarks/README.md).

The spread is the model's, so it is only as right as the model's joint draws: where the model shares a part of the
error across losses that the truth does not, the spread is too all-or-nothing. The nested law drew the run part of
its learned scale discrepancy once for a call's mixtures until 2026-12-05; on data simulated from its own story that
put the coverage at 60k steps near 0 or 1 where the truth's landed at 0.92-0.98 (mean mid-percentile 0.12), and with
each new run's part its own the mean mid-percentile is 0.60 (benchmarks/README.md).
"""

from __future__ import annotations

import numpy as np

from bayes_mixlaw.summary import DEFAULT_CI, eti_values


def coverage_spread(draws: np.ndarray, observed: np.ndarray, ci: float = DEFAULT_CI, band: float = 0.05, truths: int = 500) -> dict:
    r"""A held-out check's ``ci`` coverage and its distribution if the model were right (module docstring).

    ``draws``: (S, N) joint predictive draws of the check's N held-out losses (draw ``s`` of every loss from the same
    posterior draw and the same draw of the shared errors); ``observed``: (N,). The intervals are the draws'
    equal-tailed ``ci`` intervals; ``truths`` draws, evenly spaced, are taken as the truth.

    Returns {``coverage``: observed, ``expected``: its mean under the model, ``within band``: P(\|coverage - ci\| <=
    ``band``) under the model, ``percentile``: the observed coverage's mid-percentile among the model's}."""
    draws, observed = np.asarray(draws, dtype=float), np.asarray(observed, dtype=float)
    if draws.ndim != 2 or observed.shape != draws.shape[1:]:
        raise ValueError(f"draws must be (draws, losses) and observed (losses,); got {draws.shape} and {observed.shape}")
    lower, upper = eti_values(draws, ci)
    pick = np.unique(np.linspace(0, len(draws) - 1, min(truths, len(draws))).round().astype(int))
    simulated = ((lower <= draws[pick]) & (draws[pick] <= upper)).mean(axis=1)
    seen = float(((lower <= observed) & (observed <= upper)).mean())
    tie = np.isclose(simulated, seen, rtol=0, atol=1e-9)
    return {
        "coverage": seen,
        "expected": float(simulated.mean()),
        "within band": float((np.abs(simulated - ci) <= band + 1e-9).mean()),
        "percentile": float(((simulated < seen) & ~tie).mean() + 0.5 * tie.mean()),
    }
