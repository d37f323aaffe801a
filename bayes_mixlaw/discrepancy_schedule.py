r"""Model discrepancy of a schedule's annealing: how wrong the step law's response to a falling learning rate may be.

Tissue et al.'s annealing term reads a schedule through :math:`S_2(t) = \sum_{i \le t} m_i`, with the momentum
:math:`m_i = \lambda m_{i-1} + (\eta_{i-1} - \eta_i)` the learning-rate decrease not yet absorbed (LRs relative to the
fit's reference LR). On a schedule the pilots did not run, the law's form errs most while such a decrease is pending:
left out of a fit, a sharp drop (a two-stage step, the start of a WSD decay) is predicted 0.3-0.5% off for the first
thousand steps, a gradual cosine 0.06-0.08% (``benchmarks/discrepancy_prior.py``, leave-one-schedule-out on Luo et
al.'s curves). So a prediction carries

.. math:: \log L^*_v(t) = \log L_v(t) + \kappa_s\, m_t\, \big(\sqrt{\rho}\, z + \sqrt{1-\rho}\, z_v\big)

with ``kappa_s`` (``discrepancy_schedule``) the log-error per unit of pending decrease, ``z`` standard normal per
posterior draw, shared along the curve and mixed across validation domains by ``rho`` as the other discrepancies
(:mod:`bayes_mixlaw.discrepancy`). Where nothing is pending (a constant LR, or long after a decay) it is 0. A pilot run
continued to its own checkpoints carries none (its curve is data); beyond its last checkpoint it does.

The pilots cannot inform ``kappa_s`` (their curves are fitted, not predicted), so its prior is external and
overridable: the median of the leave-one-schedule-out errors above, with the spread of the other discrepancies.
"""

from __future__ import annotations

import numpy as np

from bayes_mixlaw.discrepancy import log_factor as shared_log_factor

NAME = "discrepancy_schedule"


def pending_decrease(s2_now, s2_before):
    r"""The learning-rate decrease still pending at each step, :math:`m_t = S_2(t) - S_2(t-1)` (relative to the
    reference LR): ``s2_now`` and ``s2_before`` the annealing areas at ``t`` and ``t - 1``, any matching shapes."""
    return np.maximum(np.asarray(s2_now, dtype=float) - np.asarray(s2_before, dtype=float), 0.0)


def log_factor(kappa, pending, n_valid: int, rho: float, rng: np.random.Generator):
    """The discrepancy's log-multiplier of the losses, shape (chain, draw, point, n_valid): ``kappa`` (chain, draw)
    its scale's draws, ``pending`` (point,) or (chain, draw, point) the pending decrease :func:`pending_decrease`.
    One error per draw and domain, shared by the points of the curve."""
    return shared_log_factor({NAME: kappa}, {NAME: pending}, n_valid, rho, rng)
