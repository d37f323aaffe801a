"""The paper's point-estimate fit, as a baseline: Huber loss, many random starts, L-BFGS.

Ye et al. (2025) fit each validation domain's law ``exp(log_c) + exp(log_k + t.r)`` by minimising
a Huber loss of the residuals with L-BFGS from many initialisations and keep the best point. No
uncertainty comes out of it; it is here to compare against.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize

from bayes_mixlaw.laws import mixing_law


def huber(residual: np.ndarray, delta: float) -> np.ndarray:
    a = np.abs(residual)
    return np.where(a <= delta, 0.5 * residual**2, delta * (a - 0.5 * delta))


def fit_point_mixing_law(mixtures: np.ndarray, losses: np.ndarray, *, starts: int = 64, delta: float = 1e-3, seed: int = 0) -> np.ndarray:
    """Best ``[log_c, log_k, t_1..t_M]`` for one validation domain (``losses``: one per mixture)."""
    rng = np.random.default_rng(seed)
    _, m = mixtures.shape

    def objective(theta):
        pred = mixing_law(mixtures, theta[:1], theta[1:2], theta[None, 2:])[:, 0]
        res = pred - losses
        grad_pred = huber_grad(res, delta)
        # gradient through the law: d/dlog_c = e^log_c ; d/dlog_k = e^(log_k + t.r) ; d/dt = e^(...) r
        expo = np.exp(theta[1] + mixtures @ theta[2:])
        g = np.empty_like(theta)
        g[0] = np.sum(grad_pred) * np.exp(theta[0])
        g[1] = np.sum(grad_pred * expo)
        g[2:] = (grad_pred * expo) @ mixtures
        return float(np.sum(huber(res, delta))), g

    best, best_value = None, np.inf
    low = float(np.log(max(losses.min(), 1e-6)))
    for _ in range(starts):
        theta0 = np.concatenate([[low + rng.uniform(-1.0, 0.0)], [rng.uniform(-4.0, 0.0)], rng.uniform(-3.0, 3.0, size=m)])
        with np.errstate(over="ignore", invalid="ignore"):
            result = minimize(objective, theta0, jac=True, method="L-BFGS-B")
        if np.isfinite(result.fun) and result.fun < best_value:
            best, best_value = result.x, result.fun
    return best


def huber_grad(residual: np.ndarray, delta: float) -> np.ndarray:
    return np.clip(residual, -delta, delta)


def fit_point_mixing_laws(mixtures: np.ndarray, losses: np.ndarray, **kw) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Point fits for every validation domain: ``losses`` is (n mixtures x V); returns log_c, log_k, t."""
    thetas = np.array([fit_point_mixing_law(mixtures, losses[:, v], **kw) for v in range(losses.shape[1])])
    return thetas[:, 0], thetas[:, 1], thetas[:, 2:]


def fit_point_power_law(x: np.ndarray, y: np.ndarray, *, starts: int = 16, delta: float = 1e-3, seed: int = 0) -> tuple[float, float, float]:
    """The paper's step or size law ``y = E + A x^-alpha`` by Huber loss on log y, multi-start L-BFGS.

    ``x`` is scaled by its geometric mean inside; returns (E, A, alpha) in the original units."""
    rng = np.random.default_rng(seed)
    x0 = float(np.exp(np.log(x).mean()))
    u, log_y = x / x0, np.log(y)

    def objective(theta):
        e, a, alpha = np.exp(theta)
        with np.errstate(over="ignore", invalid="ignore"):
            return float(np.sum(huber(np.log(e + a * u ** (-alpha)) - log_y, delta)))

    best, best_value = None, np.inf
    for _ in range(starts):
        share = rng.uniform(0.05, 0.95)
        theta0 = np.log([y.min() * share, y.min() * (1 - share), rng.uniform(0.05, 1.5)])
        result = minimize(objective, theta0, method="L-BFGS-B")
        if np.isfinite(result.fun) and result.fun < best_value:
            best, best_value = result.x, result.fun
    e, a, alpha = np.exp(best)
    return e, a * x0**alpha, alpha


def point_power_law_predict(x: np.ndarray, y: np.ndarray, x_new: float, **kw) -> float:
    """Fit :func:`fit_point_power_law` and evaluate it at ``x_new``."""
    e, a, alpha = fit_point_power_law(x, y, **kw)
    return float(e + a * x_new ** (-alpha))
