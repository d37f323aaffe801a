"""Issue 15 item 5: optimize and suggest say how far they are, and their size options have limits."""

from __future__ import annotations

import functools
import logging
import time

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from bayes_mixlaw.cli import app
from bayes_mixlaw.inference import Progress

cli = CliRunner()


def flat(result) -> str:
    return " ".join(result.output.split())


@pytest.fixture
def package_log():
    """The package's INFO lines, collected (whatever earlier command-line tests did to its handlers)."""
    logger = logging.getLogger("bayes_mixlaw")
    lines = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    old = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield lines
    logger.removeHandler(handler)
    logger.setLevel(old)


def test_progress_lines_every_few_seconds_where_no_terminal(package_log):
    with Progress("counting", 10, every=0.05, terminal=False) as advance:
        for _ in range(10):
            time.sleep(0.03)
            advance()
    beats = [line for line in package_log if "so far" in line]
    assert len(beats) >= 3 and beats[0].startswith("counting: ") and "/10 (" in beats[0]


def test_progress_without_a_count_still_beats(package_log):
    with Progress("a step with no loop", every=0.05, terminal=False):
        time.sleep(0.2)
    assert any(line.startswith("a step with no loop: ") and "so far" in line for line in package_log)


def test_progress_is_silent_under_quiet():
    logger = logging.getLogger("bayes_mixlaw")
    old = logger.level
    logger.setLevel(logging.WARNING)
    lines = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    logger.addHandler(handler)
    try:
        with Progress("quiet", 3, every=0.01, terminal=False) as advance:
            time.sleep(0.05)
            advance(3)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)
    assert lines == []


def test_optimize_steps_report_their_progress(package_log, monkeypatch):
    from bayes_mixlaw.optimize import minimize_batch

    monkeypatch.setattr("bayes_mixlaw.inference.Progress", functools.partial(Progress, every=0.02, terminal=False))

    def slow(r):
        time.sleep(0.005)
        return ((r - 0.3) ** 2).sum(dim=-1)

    best, _ = minimize_batch(slow, torch.full((2, 1, 3), 1 / 3, dtype=torch.float64), np.zeros(3), np.ones(3), steps=40, progress="test draws")
    assert torch.allclose(best.sum(dim=-1), torch.ones(2, dtype=torch.float64))
    assert any(line.startswith("test draws (gradient steps): ") and "/40 (" in line for line in package_log)


def test_suggest_and_optimize_print_progress_on_the_command_line(mock_mixing_fit, tmp_path, monkeypatch):
    """Where no terminal shows a bar, the command's log lines carry the optimisation's steps."""
    monkeypatch.setattr("bayes_mixlaw.inference.Progress", functools.partial(Progress, every=0.01, terminal=False))
    result = cli.invoke(app, ["optimize", str(mock_mixing_fit), "--draws", "40", "-o", str(tmp_path / "opt.csv")])
    assert result.exit_code == 0, result.output
    assert "each of 40 posterior draws' best mixture" in flat(result) and "the Bayes-optimal mixture" in flat(result)
    result = cli.invoke(app, ["suggest", str(mock_mixing_fit), "-n", "1", "--acquisition", "thompson", "-o", str(tmp_path / "next.csv")])
    assert result.exit_code == 0, result.output
    assert "thompson: each of" in flat(result)


@pytest.mark.parametrize(
    "args, message",
    [
        (["suggest", "-n", "10000"], "-n 10000 is above the limit of 16 suggestions for the qlognei acquisition: each suggestion re-optimises"),
        (["suggest", "-n", "300", "--acquisition", "thompson"], "-n 300 is above the limit of 256 suggestions for the thompson acquisition"),
        (["suggest", "-n", "33", "--acquisition", "info"], "-n 33 is above the limit of 32 suggestions for the info acquisition"),
        (["optimize", "--draws", "100000"], "--draws 100000 is above the limit of 4,000: every draw's best mixture is optimised"),
        (["optimize", "--draws", "0"], "--draws must be at least 1, got 0"),
    ],
)
def test_size_options_have_limits(args, message, mock_mixing_fit, tmp_path):
    started = time.perf_counter()
    result = cli.invoke(app, [args[0], str(mock_mixing_fit), *args[1:], "-o", str(tmp_path / "out.csv")])
    assert result.exit_code == 2 and message in flat(result), result.output
    assert not (tmp_path / "out.csv").exists() and time.perf_counter() - started < 10  # refused before any work


def test_python_api_has_the_same_limits(mock_mixing_fit):
    from bayes_mixlaw import BayesianLaw
    from bayes_mixlaw.bo import suggest
    from bayes_mixlaw.optimize import optimal_mixture

    law = BayesianLaw.load(mock_mixing_fit)
    with pytest.raises(ValueError, match="n 17 is above the limit of 16"):
        suggest(law, 17)
    with pytest.raises(ValueError, match="draws 5000 is above the limit"):
        optimal_mixture(law, draws=5000)


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
