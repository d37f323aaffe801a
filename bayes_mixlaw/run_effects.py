r"""Run effects integrated out: each run's own level and slope in log-steps, in closed form.

A pilot run's curve departs from the law as a whole: a seed shifts all its checkpoints, and its
curve falls a little faster or slower than the law's. For the curve of run ``r`` on validation
domain ``v`` (its ``m`` checkpoints ``j``, with ``y_j = log(S_j / S0)`` the log-step relative to the
reference length) the log-losses are

.. math:: \log L_{j} = \mu_j + u + w\,y_j + \varepsilon_j, \qquad
          u \sim N(0, \tau_u^2),\ w \sim N(0, \tau_w^2),\ \varepsilon_j \sim N(0, \sigma^2)

with ``mu`` the law. Both effects enter linearly, so they integrate out exactly: with the design
``Z = [1, y]`` and the residuals ``e = log L - mu``, the curve's marginal log-likelihood depends on
the data only through the sums ``m, sum y, sum y^2, sum e, sum e y, sum e^2``. With
``A = sigma^2 D^{-1} + Z^T Z`` (``D = diag(tau_u^2, tau_w^2)``)

.. math:: \log p(e) = -\tfrac12\Big[m \log 2\pi + (m-2)\log\sigma^2 + \log\tau_u^2 + \log\tau_w^2
          + \log|A| + \big(e^T e - (Z^T e)^T A^{-1} Z^T e\big)/\sigma^2\Big]

and the effects' conditional posterior is ``N(A^{-1} Z^T e, sigma^2 A^{-1})``. So a fit samples
none of the thousands of run effects (the sampler sees a few hundred parameters, not ~4,000) and
a prediction draws them exactly: a pilot run's future checkpoints follow its own curve, a new run
gets ``u + w y`` from the prior, whose spread grows with ``|y|``: a new run's curve is uncertain
the more, the farther its length from the pilots' reference.

Every function takes numpy or PyTensor arrays (``laws.array_namespace``) and broadcasts.
"""

from __future__ import annotations

import numpy as np

from bayes_mixlaw.laws import array_namespace

LOG_2PI = float(np.log(2 * np.pi))


def curve_sums(residual, y, curve, n_curves: int):
    """``(sum e, sum e y, sum e^2)`` per curve: ``residual`` (..., obs), ``y`` (obs,), ``curve``
    (obs,) the curve index of each observation. Returns three arrays (..., n_curves)."""
    xp = array_namespace(residual)
    parts = (residual, residual * y, residual * residual)
    if xp is np:
        flat = [np.asarray(p).reshape(-1, np.shape(p)[-1]) for p in parts]
        out = [np.stack([np.bincount(curve, weights=row, minlength=n_curves) for row in f]) for f in flat]
        return tuple(o.reshape(np.shape(residual)[:-1] + (n_curves,)) for o in out)
    import pytensor.tensor as pt

    return tuple(pt.zeros((n_curves,))[curve].inc(p) for p in parts)


def _precision(m, sy, syy, sigma, tau_u, tau_w):
    """Entries of ``A = sigma^2 D^{-1} + Z^T Z`` and its determinant."""
    s2 = sigma * sigma
    a11 = s2 / (tau_u * tau_u) + m
    a22 = s2 / (tau_w * tau_w) + syy
    det = a11 * a22 - sy * sy
    return a11, a22, det


def marginal_loglik(m, sy, syy, se, sey, see, sigma, tau_u, tau_w):
    """Log-likelihood of each curve with its level and slope integrated out (module docstring).

    ``m, sy, syy``: the curve's number of checkpoints and sums of ``y`` and ``y^2``; ``se, sey, see``:
    from :func:`curve_sums`; ``sigma, tau_u, tau_w``: noise, level and slope scales. A curve with
    no checkpoints (``m = 0``) contributes 0."""
    xp = array_namespace(se, sigma, tau_u, tau_w)
    a11, a22, det = _precision(m, sy, syy, sigma, tau_u, tau_w)
    quad = see - (a22 * se * se - 2.0 * sy * se * sey + a11 * sey * sey) / det
    s2 = sigma * sigma
    log_det = (m - 2.0) * xp.log(s2) + xp.log(tau_u * tau_u) + xp.log(tau_w * tau_w) + xp.log(det)
    return -0.5 * (m * LOG_2PI + log_det + quad / s2)


def conditional_effects(m, sy, syy, se, sey, sigma, tau_u, tau_w):
    """Posterior mean and covariance of (level, slope) of each curve given its residuals:
    ``(mean_u, mean_w, var_u, cov_uw, var_w)``; for an empty curve, the prior (0, 0, tau^2)."""
    a11, a22, det = _precision(m, sy, syy, sigma, tau_u, tau_w)
    s2 = sigma * sigma
    mean_u = (a22 * se - sy * sey) / det
    mean_w = (a11 * sey - sy * se) / det
    return mean_u, mean_w, s2 * a22 / det, -s2 * sy / det, s2 * a11 / det


def draw_effects(mean_u, mean_w, var_u, cov_uw, var_w, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One draw of (level, slope) per entry from the bivariate normals (numpy; broadcasts)."""
    z1, z2 = rng.standard_normal(np.shape(mean_u)), rng.standard_normal(np.shape(mean_u))
    l11 = np.sqrt(var_u)
    l21 = cov_uw / l11
    l22 = np.sqrt(np.maximum(var_w - l21 * l21, 0.0))
    return mean_u + l11 * z1, mean_w + l21 * z1 + l22 * z2
