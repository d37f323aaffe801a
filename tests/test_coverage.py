"""A held-out check's coverage against its own spread if the model were right (bayes_mixlaw.coverage)."""

import numpy as np
import pytest

from bayes_mixlaw.coverage import coverage_spread


def _draws(rng, n_draws, n_losses, shared_sd, own_sd):
    """Joint draws of n_losses held-out losses: one error shared by all of them in each draw, plus each loss's own."""
    return shared_sd * rng.standard_normal((n_draws, 1)) + own_sd * rng.standard_normal((n_draws, n_losses))


def test_independent_errors_give_a_binomial_spread_around_the_nominal_level():
    rng = np.random.default_rng(0)
    draws = _draws(rng, 4000, 400, 0.0, 1.0)
    spread = coverage_spread(draws, _draws(rng, 1, 400, 0.0, 1.0)[0], ci=0.9)
    assert spread["expected"] == pytest.approx(0.9, abs=0.01)
    # binomial sd of 400 trials at 0.9 is 0.015: within 0.05 nearly always
    assert spread["within band"] > 0.99 and 0.005 < spread["percentile"] < 0.995


def test_a_shared_error_makes_the_nominal_coverage_rare_and_a_full_coverage_ordinary():
    rng = np.random.default_rng(1)
    draws = _draws(rng, 4000, 80, 1.0, 0.1)  # 80 losses that move together
    at_centre = coverage_spread(draws, np.zeros(80), ci=0.9)  # the shared error came out small: all inside
    assert at_centre["coverage"] == 1.0 and at_centre["expected"] == pytest.approx(0.9, abs=0.04)  # 500 truths of nearly all-or-nothing coverage
    assert at_centre["within band"] < 0.3  # a check lands near 0.90 only by chance
    assert 0.5 < at_centre["percentile"] < 1.0  # 1.00 is one of the model's most common outcomes, not a tail
    far = coverage_spread(draws, np.full(80, 3.0), ci=0.9)  # the shared error came out far beyond the interval
    assert far["coverage"] == 0.0 and far["percentile"] < 0.06


def test_the_observed_coverage_is_uniform_among_the_models_when_the_truth_is_drawn_from_it():
    rng = np.random.default_rng(2)
    draws = _draws(rng, 2000, 50, 0.5, 0.5)
    percentiles = [coverage_spread(draws, _draws(rng, 1, 50, 0.5, 0.5)[0], truths=300)["percentile"] for _ in range(200)]
    assert np.mean(percentiles) == pytest.approx(0.5, abs=0.06)
    assert 0.05 < np.mean(np.array(percentiles) < 0.2) < 0.35


def test_shapes_that_do_not_match_are_refused_with_both_shapes():
    with pytest.raises(ValueError, match=r"\(100, 5\) and \(4,\)"):
        coverage_spread(np.zeros((100, 5)), np.zeros(4))
