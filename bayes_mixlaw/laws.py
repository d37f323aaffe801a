"""The laws, written once over plain array operations.

Every function here takes arrays from numpy, PyTensor or torch and returns an array of the same
library: the PyMC models build their likelihood from them, predictions evaluate them on posterior
draws with numpy, and the BoTorch models differentiate them with torch. Leading (batch) dimensions
broadcast, so a whole posterior (chain, draw, ...) is evaluated in one call.

Notation: ``r`` are mixture proportions over M training domains (the last axis, summing to one),
V is the number of validation domains, K the number of implicit (latent) domains.
"""

from __future__ import annotations

import types

import numpy as np


def array_namespace(*arrays) -> types.ModuleType:
    """The module whose ``exp``, ``log`` and ``swapaxes`` operate on ``arrays``.

    torch tensors win over PyTensor variables, which win over numpy arrays and Python scalars.
    """
    for a in arrays:
        if type(a).__module__.startswith("torch"):
            import torch

            return torch
    for a in arrays:
        if type(a).__module__.startswith("pytensor"):
            import pytensor.tensor as pt

            return pt
    return np


def mixing_law(r, log_c, log_k, t):
    r"""Explicit data mixing law (Ye et al., 2025, eq. 2), one curve per validation domain.

    .. math:: L_i(r) = e^{\log c_i} + e^{\log k_i + \sum_j t_{ij} r_j}

    Parameters
    ----------
    r : (..., n, M) mixture proportions.
    log_c : (..., V) log of the mixture-independent part of the loss.
    log_k : (..., V) log of the scale of the mixture-dependent part.
    t : (..., V, M) domain interaction coefficients. Because ``sum_j r_j = 1``, adding a constant to
        row ``t_i`` and subtracting it from ``log_k_i`` leaves the law unchanged; the models fix this
        with ``sum_j t_ij = 0``.

    Returns
    -------
    (..., n, V) predicted loss.
    """
    xp = array_namespace(r, log_c, log_k, t)
    exponent = r @ xp.swapaxes(t, -1, -2)  # (..., n, V)
    return xp.exp(log_c[..., None, :]) + xp.exp(log_k[..., None, :] + exponent)


def implicit_mixing_law(r, log_c, log_k, t, weights):
    r"""Mixing law with K implicit validation domains of learnable composition.

    .. math:: L_i(r) = \sum_{k=1}^K w_{ik} \left(e^{\log c_k} + e^{\log k_k + \sum_j t_{kj} r_j}\right)

    with ``w_i`` on the K-simplex. ``log_c``, ``log_k``: (..., K); ``t``: (..., K, M);
    ``weights``: (..., V, K). Returns (..., n, V).
    """
    latent = mixing_law(r, log_c, log_k, t)  # (..., n, K)
    xp = array_namespace(latent, weights)
    return latent @ xp.swapaxes(weights, -1, -2)


def step_law(steps, e, b, beta):
    r"""Loss against training steps: :math:`L(S) = E + B\,S^{-\beta}`."""
    return e + b * steps ** (-beta)


def size_law(params, e, a, alpha):
    r"""Loss against model size: :math:`L(N) = E + A\,N^{-\alpha}`."""
    return e + a * params ** (-alpha)


def chinchilla_law(params, tokens, e, a, b, alpha, beta):
    r"""Chinchilla's joint law: :math:`L(N, D) = E + A\,N^{-\alpha} + B\,D^{-\beta}`."""
    return e + a * params ** (-alpha) + b * tokens ** (-beta)


def relative_scaling(params_rel, steps_rel, log_a, log_b, alpha, beta, gamma=0.0, annealing=0.0):
    r"""Chinchilla-type law relative to its value at the reference scale (``params_rel = steps_rel = 1``).

    With the amplitudes written relative to the irreducible part, :math:`a = A/E` and :math:`b = B/E`
    (``log_a``, ``log_b`` their logs), and sizes and steps relative to the reference scale:

    .. math:: \frac{L(n, s)}{L(1, 1)} = \frac{1 + a\,n^{-\alpha} + b\,n^{-\gamma} s^{-\beta} e^{-c\,s_2\,s^{\beta}}}{1 + a + b}

    so :math:`1/(1+a+b)`, :math:`a/(1+a+b)` and :math:`b/(1+a+b)` are the shares of the loss at the
    reference scale that are irreducible, that more parameters remove and that more steps remove.
    ``gamma`` lets the step term depend on model size (0: Chinchilla's additive law); on checkpoints
    of one run the larger models' losses keep falling at a different pace than the small ones'.

    Under a learning-rate schedule ``s`` is the schedule's forward area :math:`S_1 / S_0` and
    ``annealing`` is :math:`c\,s_2 = c\,S_2 / S_0`, with :math:`S_2` the annealing area
    (``bayes_mixlaw.schedules``): to first order the step term is :math:`b\,n^{-\gamma}(s^{-\beta} -
    c\,s_2)`, Tissue et al.'s (2024) :math:`A S_1^{-\alpha} - C S_2` with their :math:`C` a multiple
    ``c`` of the step term's amplitude, and the exponential keeps the drop below the step term itself (a
    decay removes part of what more steps would, never more: the loss stays above the size law, where
    the linear drop would take it below zero on a long decay). 0 (the default): a constant learning
    rate, or steps taken as they come.
    """
    xp = array_namespace(params_rel, steps_rel, log_a, log_b, alpha, beta, gamma, annealing)
    a, b = xp.exp(log_a), xp.exp(log_b)
    step = b * params_rel ** (-gamma) * steps_rel ** (-beta) * xp.exp(-annealing * steps_rel**beta)
    return (1.0 + a * params_rel ** (-alpha) + step) / (1.0 + a + b)


def _softplus(xp, x):
    """log(1 + e^x) in the library of ``x``."""
    if xp is np:
        return np.logaddexp(0.0, x)
    if xp.__name__ == "torch":
        return xp.nn.functional.softplus(x)
    return xp.softplus(x)


def mixture_log_amplitudes(offset, log_a, log_b, effect_1, effect_2, share: bool = True):
    r"""``(log a(r), log b(r))`` of each mixture, the size and step terms of :func:`relative_scaling`.

    ``offset``: (..., n, M) mixtures minus the pilots' mean; ``log_a``, ``log_b``: (..., V) at the mean;
    ``effect_1``, ``effect_2``: (..., V, M), each row summing to zero. With ``share`` (the nested law's
    default) the mixture moves the reducible part and its split linearly,

    .. math:: \log(a + b)(r) = \log(a + b) + e_1 \cdot (r - \bar r), \qquad
              \mathrm{logit}\frac{a}{a + b}(r) = \log\frac{a}{b} + e_2 \cdot (r - \bar r)

    (a mixture that moves a and b together moves the poorly pinned irreducible share: in these
    coordinates that is one direction, not a ridge between two); otherwise ``log a`` and ``log b``
    move linearly (``e_1``, ``e_2``). Returns two (..., n, V) arrays.
    """
    xp = array_namespace(offset, log_a, log_b, effect_1, effect_2)
    move_1 = offset @ xp.swapaxes(effect_1, -1, -2)
    move_2 = offset @ xp.swapaxes(effect_2, -1, -2)
    if not share:
        return log_a[..., None, :] + move_1, log_b[..., None, :] + move_2
    log_ab = xp.logaddexp(log_a, log_b)[..., None, :] + move_1
    split = (log_a - log_b)[..., None, :] + move_2
    return log_ab - _softplus(xp, -split), log_ab - _softplus(xp, split)
