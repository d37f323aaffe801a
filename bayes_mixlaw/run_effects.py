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


def curve_sums(residual, y, curve, n_curves: int, curvature: bool = False):
    """``(sum e, sum e y, sum e^2)`` per curve, and ``sum e y^2`` after them with ``curvature``: ``residual``
    (..., obs), ``y`` (obs,), ``curve`` (obs,) the curve index of each observation. Returns three (four) arrays
    (..., n_curves)."""
    xp = array_namespace(residual)
    parts = (residual, residual * y, residual * residual) + ((residual * y * y,) if curvature else ())
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


def basis_information(m, sy, syy, basis, se, sey, sigma, tau_u, tau_w, means=None):
    r"""How a curve's marginal log-likelihood changes when its residuals move by ``-d x`` along a vector ``x``.

    The marginal is Gaussian in the residuals, with precision ``P = (I - Z A^{-1} Z^T) / sigma^2``, so

    .. math:: \log p(e - d\,x) = \log p(e) + d\,b - \tfrac12 d^2 a, \qquad
              a = x^T P x = (x^T x - \textstyle\sum x\,\bar u(x) - \sum x y\,\bar w(x)) / \sigma^2, \quad
              b = x^T P e = (x^T e - \textstyle\sum x\,\bar u(e) - \sum x y\,\bar w(e)) / \sigma^2

    with ``ubar(v), wbar(v)`` the conditional means of the curve's level and slope given residuals ``v``
    (:func:`conditional_effects`). ``basis``: ``(sum x, sum x y, sum x^2, sum x e)``. Returns ``(a, b, unit_u, unit_w)``:
    given ``d`` the conditional means become ``ubar(e) - d unit_u`` and ``wbar(e) - d unit_w``. An empty curve gives
    ``a = b = 0``. ``means``: ``(ubar(e), wbar(e))`` where the caller has them already."""
    sx, sxy, sxx, sxe = basis
    mean_u, mean_w = conditional_effects(m, sy, syy, se, sey, sigma, tau_u, tau_w)[:2] if means is None else means
    unit_u, unit_w, *_ = conditional_effects(m, sy, syy, sx, sxy, sigma, tau_u, tau_w)
    s2 = sigma * sigma
    a = (sxx - sx * unit_u - sxy * unit_w) / s2
    b = (sxe - sx * mean_u - sxy * mean_w) / s2
    return a, b, unit_u, unit_w


def shift_information(m, sy, syy, se, sey, sigma, tau_u, tau_w, means=None):
    """:func:`basis_information` along ``x = 1``: every residual shifted by ``-d`` (a level shared with other curves)."""
    return basis_information(m, sy, syy, (m, sy, m, se), se, sey, sigma, tau_u, tau_w, means=means)


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


def integrate_shared_line(a, b, x, scale_level, scale_slope):
    r"""A level and a slope ``d + e x_k`` shared by groups of curves ``k`` (a pilot mixture's sizes, ``x_k`` their log
    size), ``d ~ N(0, s_d^2)``, ``e ~ N(0, s_e^2)``, integrated out.

    Group ``k``'s summed :func:`shift_information` ``(a_k, b_k)`` gives ``log p(e - delta 1) = log p(e) + delta b_k -
    delta^2 a_k / 2``; with ``delta = d + e x_k`` the sum over ``k`` is a quadratic in ``theta = (d, e)``:
    ``theta^T B - theta^T A theta / 2``, ``B = (sum b_k, sum x_k b_k)``, ``A = sum a_k [1, x_k]^T [1, x_k]``. With
    ``P = A + diag(s_d^-2, s_e^-2)``

    .. math:: \log \int \ldots\,N(\theta; 0, D)\,d\theta = \log p(e) + \tfrac12 B^T P^{-1} B - \tfrac12 \log(|D|\,|P|)

    and ``theta | e ~ N(P^{-1} B, P^{-1})``. ``a, b``: (..., groups) along the last axis; ``x``: (groups,).
    Returns ``(term, (mean_d, mean_e), (l_dd, l_ed, l_ee))`` with the last the Cholesky factor of ``P^{-1}``
    (``d = mean_d + l_dd z_1``, ``e = mean_e + l_ed z_1 + l_ee z_2``). ``s_e -> 0`` is :func:`integrate_shared_level`."""
    xp = array_namespace(a, b, scale_level, scale_slope)
    p_dd = a.sum(axis=-1) + 1.0 / (scale_level * scale_level)
    p_de = (a * x).sum(axis=-1)
    p_ee = (a * x * x).sum(axis=-1) + 1.0 / (scale_slope * scale_slope)
    b_d, b_e = b.sum(axis=-1), (b * x).sum(axis=-1)
    det = p_dd * p_ee - p_de * p_de
    mean_d, mean_e = (p_ee * b_d - p_de * b_e) / det, (p_dd * b_e - p_de * b_d) / det
    term = 0.5 * (b_d * mean_d + b_e * mean_e) - 0.5 * xp.log(det * (scale_level * scale_level) * (scale_slope * scale_slope))
    l_dd = xp.sqrt(p_ee / det)  # sd of d: (P^-1)_dd = p_ee / det
    l_ed = -p_de / (det * l_dd)  # (P^-1)_de / l_dd
    return term, (mean_d, mean_e), (l_dd, l_ed, 1.0 / xp.sqrt(p_ee))  # Var(e | d) = 1 / p_ee


# ---------------------------------------------------------------------------------------------------
# the run effects as one object: level and slope, or with a curvature in log-steps beside them


class LevelSlopeEffects:
    """Each curve's level and slope in log-steps integrated out (module docstring), with :class:`CurvedEffects`' interface:
    ``moments`` ``(m, sum y, sum y^2)``, ``sums`` ``(sum e, sum e y, sum e^2)``, ``scales`` ``(sigma, tau_u, tau_w)``;
    ``loglik`` per curve and ``means`` ``(u, w)``."""

    def __init__(self, moments, sums, scales):
        self._args = (moments, sums[:2], scales)
        self.loglik = marginal_loglik(*moments, *sums, *scales)
        self.means = conditional_effects(*moments, *sums[:2], *scales)[:2]

    def shift_information(self):
        """:func:`shift_information`: ``(a, b, (unit_u, unit_w))``."""
        moments, sums, scales = self._args
        a, b, unit_u, unit_w = shift_information(*moments, *sums, *scales, means=self.means)
        return a, b, (unit_u, unit_w)


def integrated_effects(moments, sums, scales):
    """The curves' run effects integrated out: :class:`CurvedEffects` given a curvature scale (four ``scales``), else
    :class:`LevelSlopeEffects`."""
    return (CurvedEffects if len(scales) == 4 else LevelSlopeEffects)(moments, sums, scales)


class CurvedEffects:
    r"""Each curve's level, slope and curvature in log-steps, ``u + w y + c y^2`` with ``c ~ N(0, tau_c^2)``, integrated out.

    The curvature is one more direction ``z = y^2`` of the curve's residuals: a rank-one term on top of the level and
    slope's marginal (:func:`marginal_loglik`), integrated as a shared level is (:func:`basis_information` along ``z``,
    then :func:`integrate_shared_level`), so the sums it needs are ``sum y^3``, ``sum y^4`` and ``sum e y^2`` besides the
    level and slope's. With ``P_2`` the precision of the level and slope's marginal, ``a_c = z^T P_2 z``,
    ``b_c = z^T P_2 e`` and ``p_c = a_c + tau_c^{-2}``: ``c | e ~ N(b_c / p_c, 1 / p_c)``, and given ``c`` the level
    and slope are those of the residuals ``e - c z``.

    ``moments``: ``(m, sum y, sum y^2, sum y^3, sum y^4)``; ``sums``: ``(sum e, sum e y, sum e^2, sum e y^2)``
    (:func:`curve_sums` with ``curvature``); ``scales``: ``(sigma, tau_u, tau_w, tau_c)``. Arrays broadcast (numpy or
    PyTensor).

    Attributes: ``loglik`` per curve; ``means``: the conditional means ``(u, w, c)``; ``curvature_sd``: ``p_c^{-1/2}``;
    ``along_curvature``: ``(A^{-1} Z^T z)``, how the level and slope's means move per unit of ``c``."""

    def __init__(self, moments, sums, scales):
        m, sy, syy, sy3, sy4 = moments
        se, sey, see, sez = sums
        sigma, tau_u, tau_w, tau_c = scales
        self._block, self._two, self._se = (m, sy, syy), (sigma, tau_u, tau_w), se
        mean_u, mean_w, *_ = conditional_effects(m, sy, syy, se, sey, *self._two)
        a_c, b_c, z_u, z_w = basis_information(m, sy, syy, (syy, sy3, sy4, sez), se, sey, *self._two, means=(mean_u, mean_w))
        term, mean_c, self.curvature_sd = integrate_shared_level(a_c, b_c, tau_c)
        self.loglik = marginal_loglik(m, sy, syy, se, sey, see, *self._two) + term
        self._two_means, self._b_c, self._precision_c = (mean_u, mean_w), b_c, 1.0 / self.curvature_sd**2
        self.along_curvature = (z_u, z_w)
        self.means = (mean_u - mean_c * z_u, mean_w - mean_c * z_w, mean_c)

    def shift_information(self):
        r"""As :func:`shift_information`, with the curvature integrated out too: ``(a, b, (unit_u, unit_w, unit_c))``.

        With ``x = 1``: ``a = a_1 - q^2 / p_c``, ``b = b_1 - q b_c / p_c`` (``q = 1^T P_2 z``; ``a_1, b_1`` the level and
        slope's), and given ``d`` the curvature's mean moves by ``-d q / p_c``, the level and slope's by ``-d`` times
        their unit shift less that times ``A^{-1} Z^T z``."""
        m, sy, syy = self._block
        a1, b1, unit_u, unit_w = shift_information(m, sy, syy, self._se, None, *self._two, means=self._two_means)
        z_u, z_w = self.along_curvature
        q = (syy - m * z_u - sy * z_w) / self._two[0] ** 2
        unit_c = q / self._precision_c
        return a1 - q * unit_c, b1 - unit_c * self._b_c, (unit_u - unit_c * z_u, unit_w - unit_c * z_w, unit_c)
