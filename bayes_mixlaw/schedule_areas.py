"""The areas under a learning-rate schedule that the step laws take (defined in :mod:`bayes_mixlaw.schedules`'
docstring): S1, S2 and the multi-power law's knots of a schedule's per-step LRs (:class:`StepFeatures`,
:func:`step_features`, which :meth:`Schedule.features <bayes_mixlaw.schedules.Schedule.features>` calls), the
uncompressed multi-power loss drop the tests check them against, and S1 and S2 of a parametric decay in closed form
as functions of its length (:func:`decay_areas`: an unknown schedule's length sampled)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

DEFAULT_KNOTS = 128
DEFAULT_LAMBDA = 0.999


# --------------------------------------------------------------------------------------------------
# features


@dataclass(frozen=True)
class StepFeatures:
    """The step-law features of one or more runs at their steps (one row per requested step).

    ``s1``, ``s2``: (n,); ``drop``, ``eta``, ``s_k``: (n, K). Areas are in steps at ``lr_ref``, LRs
    relative to it. A padded knot has drop 0, eta 1 and s_k 0 (it adds nothing).
    """

    steps: np.ndarray
    s1: np.ndarray
    s2: np.ndarray
    drop: np.ndarray
    eta: np.ndarray
    s_k: np.ndarray
    lr_ref: float
    lam: float = DEFAULT_LAMBDA

    def __len__(self) -> int:
        return len(self.steps)

    @property
    def knots(self) -> int:
        return self.drop.shape[1]

    def padded(self, knots: int) -> StepFeatures:
        """The same features with ``knots`` knot columns (extra ones add nothing)."""
        extra = knots - self.knots
        if extra < 0:
            raise ValueError(f"cannot pad {self.knots} knots down to {knots}")
        if extra == 0:
            return self
        pad = lambda a, v: np.concatenate([a, np.full((len(a), extra), v)], axis=1)  # noqa: E731
        return StepFeatures(self.steps, self.s1, self.s2, pad(self.drop, 0.0), pad(self.eta, 1.0), pad(self.s_k, 0.0), self.lr_ref, self.lam)

    def take(self, index) -> StepFeatures:
        index = np.asarray(index)
        return StepFeatures(self.steps[index], self.s1[index], self.s2[index], self.drop[index], self.eta[index], self.s_k[index], self.lr_ref, self.lam)

    @staticmethod
    def concat(parts: list[StepFeatures]) -> StepFeatures:
        """Rows of several runs in one set of arrays (knots padded to the widest; one lr_ref)."""
        refs = {p.lr_ref for p in parts}
        if len(refs) > 1:
            raise ValueError(f"features computed with different lr_ref {sorted(refs)}; pass one lr_ref to every run")
        k = max(p.knots for p in parts)
        parts = [p.padded(k) for p in parts]
        cat = lambda name: np.concatenate([getattr(p, name) for p in parts])  # noqa: E731
        return StepFeatures(cat("steps"), cat("s1"), cat("s2"), cat("drop"), cat("eta"), cat("s_k"), parts[0].lr_ref, parts[0].lam)

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays the step laws take: s1, s2, drop, eta, s_k."""
        return {"s1": self.s1, "s2": self.s2, "drop": self.drop, "eta": self.eta, "s_k": self.s_k}


def step_features(eta: np.ndarray, steps: np.ndarray, *, knots: int = DEFAULT_KNOTS, lam: float = DEFAULT_LAMBDA, lr_ref: float = 1.0) -> StepFeatures:
    """Features at ``steps`` of the per-step relative LRs ``eta[0..T]`` (``eta[tau]``: update tau).

    The decay is every change of LR after the first step at the peak (the warm-up's increases are
    part of S1 only). ``knots``: at most this many knots (fewer when the decay has fewer steps).
    """
    eta = np.asarray(eta, dtype=float)
    T = len(eta) - 1
    steps = np.asarray(steps, dtype=np.int64)
    cum = np.concatenate([[0.0], np.cumsum(eta[1:])])  # cum[t] = sum_{tau=1}^t eta_tau
    s1 = cum[steps]
    peak_at = int(np.argmax(eta))
    d = np.zeros(T + 1)
    d[1:] = eta[:-1] - eta[1:]
    d[: peak_at + 1] = 0.0  # the warm-up (and anything before the peak) is not a decay
    # Tissue's momentum form: m_i = lam m_{i-1} + d_i, S2(t) = sum_{i<=t} m_i
    from scipy.signal import lfilter

    m = lfilter([1.0], [1.0, -lam], d)
    s2 = np.cumsum(m)[steps]

    # bins of equal |decrease| over the decay steps
    w = np.abs(d)
    total = w.sum()
    n = len(steps)
    if total == 0 or knots < 1:
        return StepFeatures(steps, s1, s2, np.zeros((n, 1)), np.ones((n, 1)), np.zeros((n, 1)), lr_ref, lam)
    wc = np.concatenate([[0.0], np.cumsum(w)])  # wc[i] = sum_{j<i} w_j
    nonzero = np.flatnonzero(w)
    first, stop = int(nonzero[0]), int(nonzero[-1]) + 1
    if stop - first <= knots:
        edges = np.arange(first, stop + 1)
    else:
        targets = np.linspace(0, total, knots + 1)[1:-1]
        inner = np.searchsorted(wc, targets, side="right")  # first index whose prefix passes the target
        edges = np.unique(np.concatenate([[first], np.clip(inner, first + 1, stop - 1), [stop]]))
    a, b = edges[:-1], edges[1:]  # bin j covers update indices [a_j, b_j)
    dc = np.concatenate([[0.0], np.cumsum(d)])
    mc = np.concatenate([[0.0], np.cumsum(w * np.arange(T + 1))])
    hi = np.clip(steps[:, None] + 1, a[None, :], b[None, :])  # (n, K): the part of each bin up to t
    drop = dc[hi] - dc[a][None, :]
    wsum = wc[hi] - wc[a][None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        centre = np.where(wsum > 0, (mc[hi] - mc[a][None, :]) / wsum, a[None, :].astype(float))
    idx = np.arange(T + 1, dtype=float)
    eta_k = np.interp(centre, idx, eta)
    # S_k(t) = cum[t] - cum[k - 1], with cum interpolated between whole steps
    s_k = np.where(wsum > 0, s1[:, None] - np.interp(centre - 1, idx, cum), 0.0)
    s_k = np.maximum(s_k, 0.0)
    eta_k = np.where(wsum > 0, np.maximum(eta_k, 1e-12), 1.0)
    return StepFeatures(steps, s1, s2, drop, eta_k, s_k, lr_ref, lam)


def exact_multi_power_drop(eta: np.ndarray, steps, c: float, beta: float, gamma: float) -> np.ndarray:
    """LD(t) / B summed over every decay step without compression (reference for tests; O(T n))."""
    eta = np.asarray(eta, dtype=float)
    cum = np.concatenate([[0.0], np.cumsum(eta[1:])])
    peak_at = int(np.argmax(eta))
    out = []
    for t in np.asarray(steps, dtype=np.int64):
        k = np.arange(peak_at + 1, t + 1)
        dk = eta[k - 1] - eta[k]
        s = cum[t] - cum[k - 1]
        out.append(np.sum(dk * (1 - (c * eta[k] ** (-gamma) * s + 1) ** (-beta))))
    return np.asarray(out)


# --------------------------------------------------------------------------------------------------
# areas of a parametric decay as functions of its total length (an unknown schedule's length sampled)


def decay_areas(t, total, *, warmup: float, final_ratio: float, lam: float = DEFAULT_LAMBDA, family: str = "cosine"):
    r"""S1(t) and S2(t) of a warm-up + decay schedule in closed form, as array operations of ``total``.

    The relative LR (peak 1): a linear warm-up ``s / W`` over [0, W], then over [W, T] (D = T - W,
    x = s - W, r = ``final_ratio``)

    - cosine: :math:`\eta = r + (1 - r)(1 + \cos(\pi x / D)) / 2`;
    - linear: :math:`\eta = 1 - (1 - r) x / D`;

    and r after T. With the sums of :meth:`Schedule.features` taken as integrals (u = min(max(t, W), T) - W,
    c = -log lambda):

    .. math::

        S_1(t) = \min(t, W)^2 / (2W) + \int_0^u \eta + r \max(t - T, 0)

        S_2(t) = \int_0^u g(x)\,\frac{1 - \lambda^{t - W + 1 - x}}{1 - \lambda}\,dx,
        \quad g = -\eta' \text{ (the LR's decrease rate)}

    cosine: :math:`\int_0^u \eta = r u + (1 - r)(u + \sin(a u)/a)/2`, a = pi / D, and
    :math:`S_2 = \frac{1 - r}{2(1 - \lambda)}\big[1 - \cos(a u)
    - a\,\frac{e^{-c(t - W + 1 - u)}(c \sin(a u) - a \cos(a u)) + a e^{-c(t - W + 1)}}{a^2 + c^2}\big]`;
    linear: :math:`\int_0^u \eta = u - (1 - r) u^2 / (2D)`,
    :math:`S_2 = \frac{1 - r}{D(1 - \lambda)}\big[u - (e^{-c(t - W + 1 - u)} - e^{-c(t - W + 1)}) / c\big]`.

    They match the step sums of :meth:`Schedule.features` to a step or so of area (tests). ``t``: (n,)
    steps; ``total``: a scalar or (..., 1) (numpy or PyTensor; any T > W); returns (s1, s2) of shape (..., n).
    """
    from bayes_mixlaw.laws import array_namespace

    xp = array_namespace(t, total)
    W = float(warmup)
    r = float(final_ratio)
    c = -math.log(lam)
    t = np.asarray(t, dtype=float) if xp is np else t
    D = total - W
    u = xp.minimum(xp.maximum(t, W), total) - W
    warm = xp.minimum(t, W) ** 2 / (2 * W) if W > 0 else 0.0 * t
    tail = r * xp.maximum(t - total, 0.0)
    after = xp.exp(-c * (t - W + 1 - u))  # lambda^(t - W + 1 - u)
    start = xp.exp(-c * (t - W + 1))
    if family == "cosine":
        a = math.pi / D
        s1 = warm + r * u + (1 - r) * (u + xp.sin(a * u) / a) / 2 + tail
        s2 = (1 - r) / (2 * (1 - lam)) * (1 - xp.cos(a * u) - a * (after * (c * xp.sin(a * u) - a * xp.cos(a * u)) + a * start) / (a**2 + c**2))
    elif family == "linear":
        s1 = warm + u - (1 - r) * u**2 / (2 * D) + tail
        s2 = (1 - r) / (D * (1 - lam)) * (u - (after - start) / c)
    else:
        raise ValueError(f"decay family must be cosine or linear, got {family!r}")
    return s1, s2
