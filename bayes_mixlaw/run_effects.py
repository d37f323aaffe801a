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


# ---------------------------------------------------------------------------------------------------
# a level shared by several curves (a pilot mixture's departure from the mixing law), integrated out


def shift_information(m, sy, syy, se, sey, sigma, tau_u, tau_w, means=None):
    r"""How a curve's marginal log-likelihood changes when every residual shifts by ``-d``.

    The marginal is Gaussian in the residuals, with precision ``P = (I - Z A^{-1} Z^T) / sigma^2``, so

    .. math:: \log p(e - d\,1) = \log p(e) + d\,b - \tfrac12 d^2 a, \qquad
              a = 1^T P 1 = (m - m\,\bar u(1) - \textstyle\sum y\,\bar w(1)) / \sigma^2, \quad
              b = 1^T P e = (\textstyle\sum e - m\,\bar u(e) - \sum y\,\bar w(e)) / \sigma^2

    with ``ubar(x), wbar(x)`` the conditional means of the curve's level and slope given residuals
    ``x`` (:func:`conditional_effects`; ``1``: a unit shift). Returns ``(a, b, unit_u, unit_w)``: given
    ``d`` the conditional means become ``ubar(e) - d unit_u`` and ``wbar(e) - d unit_w``. An empty
    curve gives ``a = b = 0``. ``means``: ``(ubar(e), wbar(e))`` where the caller has them already."""
    mean_u, mean_w = conditional_effects(m, sy, syy, se, sey, sigma, tau_u, tau_w)[:2] if means is None else means
    unit_u, unit_w, *_ = conditional_effects(m, sy, syy, m, sy, sigma, tau_u, tau_w)
    s2 = sigma * sigma
    a = (m - m * unit_u - sy * unit_w) / s2
    b = (se - m * mean_u - sy * mean_w) / s2
    return a, b, unit_u, unit_w


def integrate_shared_level(a, b, scale):
    r"""A level ``d ~ N(0, scale^2)`` shared by curves whose summed :func:`shift_information` is
    ``(a, b)``, integrated out:

    .. math:: \log \int p(e - d\,1)\,N(d; 0, s^2)\,dd = \log p(e) + \frac{b^2}{2(a + s^{-2})}
              - \tfrac12 \log(1 + s^2 a)

    Returns ``(log_marginal_term, mean, sd)``: the term added to the curves' log-likelihood and the
    conditional posterior ``d | e ~ N(mean, sd^2)``, ``mean = b / (a + s^-2)``, ``sd = (a + s^-2)^-1/2``.
    Sampling ``d`` instead puts a funnel in ``scale`` wherever the data fix ``d`` well (the 3Mix pilots:
    one chain stuck at ``scale`` ~ 0.001, 3,830 divergences); integrated, ``scale`` has no funnel."""
    xp = array_namespace(a, b, scale)
    s2 = scale * scale
    precision = a + 1.0 / s2
    term = 0.5 * b * b / precision - 0.5 * xp.log1p(s2 * a)
    return term, b / precision, 1.0 / xp.sqrt(precision)
