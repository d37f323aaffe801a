"""Schedule-aware step terms, written once over plain array operations (numpy, PyTensor, torch).

They take the features of :meth:`bayes_mixlaw.schedules.Schedule.features` (LRs relative to a
reference LR, areas in steps at that LR) and return the part of the loss that training has removed
or not yet removed, to be added to the irreducible and size terms of a scaling law. Shapes: the
features are ``s1``, ``s2`` (n,) and ``drop``, ``eta``, ``s_k`` (n, K); every parameter broadcasts
against (..., n) (give ``(..., 1)`` for one value per draw, or ``(n,)`` for one per row), so a whole
posterior of shape (chain, draw, 1) evaluates in one call and returns (chain, draw, n).
"""

from __future__ import annotations

import numpy as np

from bayes_mixlaw.laws import array_namespace


def _trailing_axis(xp, value):
    """``value[..., None]`` for an array or tensor of ``xp``'s kind, or a Python number."""
    if xp is np or isinstance(value, (int, float)):
        value = np.asarray(value) if xp is np else (xp.as_tensor_variable(value) if hasattr(xp, "as_tensor_variable") else xp.as_tensor(value))
    return value[..., None]


def loss_drop(drop, eta, s_k, c, beta, gamma):
    r"""Luo et al.'s (2025) loss drop per unit amplitude, on the compressed knots:

    .. math:: \mathrm{LD}(t)/B = \sum_k (\eta_{k-1} - \eta_k)\, G(\eta_k^{-\gamma} S_k(t)),
              \qquad G(x) = 1 - (C x + 1)^{-\beta}

    ``drop`` (n, K): the LR decrease of each knot made before step t; ``eta`` (n, K): the LR at the
    knot; ``s_k`` (n, K): the area from the knot to t. ``c``, ``beta``, ``gamma``: (..., n) or
    broadcastable. Returns (..., n).
    """
    xp = array_namespace(drop, eta, s_k, c, beta, gamma)
    c, beta, gamma = (_trailing_axis(xp, v) for v in (c, beta, gamma))
    g = 1.0 - (c * eta ** (-gamma) * s_k + 1.0) ** (-beta)
    return xp.sum(drop * g, -1)


def multi_power_step(s1, drop, eta, s_k, a, alpha, b, c, beta, gamma):
    r"""The multi-power law's step term (Luo et al., 2025), without its constant :math:`L_0`:

    .. math:: A\,S_1(t)^{-\alpha} - B \sum_k (\eta_{k-1} - \eta_k)\,\big(1 - (C \eta_k^{-\gamma} S_k(t) + 1)^{-\beta}\big)

    where :math:`S_1` includes the warm-up's area (their :math:`S_1 + S_W`). ``s1``: (n,); ``drop``,
    ``eta``, ``s_k``: (n, K); parameters broadcastable to (..., n). Returns (..., n).
    """
    return a * s1 ** (-alpha) - b * loss_drop(drop, eta, s_k, c, beta, gamma)


def annealing_step(s1, s2, a, alpha, c):
    r"""Tissue et al.'s (2024) step term with LR annealing, without its constant :math:`L_0`:

    .. math:: A\,S_1(t)^{-\alpha} - C\,S_2(t)

    ``s1``, ``s2``: (n,) (forward and annealing areas, ``Schedule.features``); parameters
    broadcastable to (..., n). Returns (..., n).
    """
    return a * s1 ** (-alpha) - c * s2


def multi_power_law(s1, drop, eta, s_k, l0, a, alpha, b, c, beta, gamma):
    r"""The published multi-power law :math:`L(t) = L_0 + A\,S_1(t)^{-\alpha} - \mathrm{LD}(t)` (one model size)."""
    return l0 + multi_power_step(s1, drop, eta, s_k, a, alpha, b, c, beta, gamma)


def annealing_law(s1, s2, l0, a, alpha, c):
    r"""Tissue et al.'s law :math:`L(t) = L_0 + A\,S_1(t)^{-\alpha} - C\,S_2(t)` (one model size)."""
    return l0 + annealing_step(s1, s2, a, alpha, c)


STEP_TERMS = {"multi_power": multi_power_step, "annealing": annealing_step}
