"""The vectorised R-hat and bulk ESS (bayes_mixlaw.convergence) against ArviZ's, scalar by scalar."""

import arviz as az
import numpy as np
import pytest
import xarray as xr

from bayes_mixlaw.convergence import rhat_ess


def _chains(rng, chains, draws, k, persistence):
    """AR(1) chains with an offset per chain (some unconverged), shape (chain, draw, k)."""
    x = np.zeros((chains, draws, k))
    noise = rng.standard_normal((chains, draws, k))
    for t in range(1, draws):
        x[:, t] = persistence * x[:, t - 1] + noise[:, t]
    return x + rng.normal(0, 0.3, size=(chains, 1, k))


@pytest.mark.parametrize(("chains", "draws", "persistence"), [(2, 1000, 0.9), (4, 101, 0.5), (3, 8, 0.0), (2, 500, 0.999)])
def test_rhat_and_bulk_ess_are_arviz_numbers(chains, draws, persistence):
    rng = np.random.default_rng(chains * draws)
    posterior = xr.Dataset(
        {
            "vector": (("chain", "draw", "k"), _chains(rng, chains, draws, 7, persistence)),
            "matrix": (("chain", "draw", "i", "j"), _chains(rng, chains, draws, 6, persistence).reshape(chains, draws, 2, 3)),
            "scalar": (("chain", "draw"), _chains(rng, chains, draws, 1, persistence)[..., 0]),
            "rounded": (("chain", "draw", "m"), np.round(_chains(rng, chains, draws, 3, persistence))),  # ties: average ranks
        },
        coords={"k": list("abcdefg"), "i": [0, 1]},
    )
    rhat, ess = rhat_ess(posterior)
    expected_rhat, expected_ess = az.rhat(posterior), az.ess(posterior, method="bulk")
    for name in posterior.data_vars:
        assert rhat[name].dims == expected_rhat[name].dims
        np.testing.assert_allclose(rhat[name].values, expected_rhat[name].values, rtol=1e-10)
        np.testing.assert_allclose(ess[name].values, expected_ess[name].values, rtol=1e-10)


def test_constant_and_non_finite_quantities():
    draws = np.random.default_rng(0).standard_normal((2, 50, 3))
    draws[..., 1] = 2.5  # a constant: ESS is the number of draws, R-hat undefined
    draws[0, 3, 2] = np.nan  # a non-finite draw: both undefined
    rhat, ess = rhat_ess(xr.Dataset({"x": (("chain", "draw", "k"), draws)}))
    assert np.isfinite(rhat["x"].values[0]) and np.isfinite(ess["x"].values[0])
    assert ess["x"].values[1] == 100 and np.isnan(rhat["x"].values[1])
    assert np.isnan(rhat["x"].values[2]) and np.isnan(ess["x"].values[2])
    expected = az.ess(xr.Dataset({"x": (("chain", "draw", "k"), draws)}), method="bulk")["x"].values
    assert expected[1] == 100 and np.isnan(expected[2])
