"""The optimal mixture's optimiser (bayes_mixlaw/optimize.py): its progress and the exact projection onto the
capped simplex."""

from __future__ import annotations

import functools
import time

import numpy as np
import pytest
import torch

from bayes_mixlaw.inference import Progress


def test_optimize_steps_report_their_progress(package_log, monkeypatch):
    from bayes_mixlaw.optimize import minimize_batch

    monkeypatch.setattr("bayes_mixlaw.inference.Progress", functools.partial(Progress, every=0.02, terminal=False))

    def slow(r):
        time.sleep(0.005)
        return ((r - 0.3) ** 2).sum(dim=-1)

    best, _ = minimize_batch(slow, torch.full((2, 1, 3), 1 / 3, dtype=torch.float64), np.zeros(3), np.ones(3), steps=40, progress="test draws")
    assert torch.allclose(best.sum(dim=-1), torch.ones(2, dtype=torch.float64))
    assert any(line.startswith("test draws (gradient steps): ") and "/40 (" in line for line in package_log)


def _bisection(y, lo, hi, iterations=200):
    low, high = (y - hi).min(dim=-1, keepdim=True).values, (y - lo).max(dim=-1, keepdim=True).values
    for _ in range(iterations):
        tau = (low + high) / 2
        too_big = (y - tau).clamp(min=lo, max=hi).sum(dim=-1, keepdim=True) > 1
        low, high = torch.where(too_big, tau, low), torch.where(too_big, high, tau)
    return (y - (low + high) / 2).clamp(min=lo, max=hi)


@pytest.mark.parametrize("m", [2, 5, 17])
def test_exact_projection_matches_bisection(m):
    """optimize's projection (breakpoints, exact) is the bisection's answer, batched, with tight and loose bounds."""
    from bayes_mixlaw.optimize import project_capped_simplex, random_feasible

    rng = np.random.default_rng(m)
    for _ in range(20):
        lo = rng.uniform(0, 0.5 / m, m) * rng.integers(0, 2, m)
        hi = np.maximum(lo, rng.uniform(0.5 / m, 1.0, m))
        if hi.sum() < 1:  # feasible: caps summing to at least 1
            hi = hi / hi.sum()
        lo_t, hi_t = torch.as_tensor(lo), torch.as_tensor(hi)
        y = torch.as_tensor(rng.normal(0, 2, (30, 4, m)))
        r = project_capped_simplex(y, lo_t, hi_t)
        assert torch.allclose(r, _bisection(y, lo_t, hi_t), atol=1e-10)
        assert torch.allclose(r.sum(-1), torch.ones(30, 4, dtype=torch.float64), atol=1e-10)
    assert random_feasible(3, np.zeros(m), np.ones(m), rng).shape == (3, m)
