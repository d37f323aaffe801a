"""Summaries of draws (bayes_mixlaw/summary.py): a table with a NaN or infinite number is refused, naming
where; the equal-tailed intervals (arviz-stats' eti) are numpy's quantiles over chain and draw with every
other labelled dim kept; one default interval level, DEFAULT_CI, everywhere."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from bayes_mixlaw.summary import DEFAULT_CI, NonFiniteError, eti, eti_values, interval_bounds, require_finite, summarize_draws


def test_require_finite_names_row_target_and_column():
    table = pd.DataFrame({"name": ["a", "b"], "target": ["total", "total"], "mean": [1.0, np.inf], "lower": [0.5, 0.6], "upper": [1.5, 1.6]})
    with pytest.raises(NonFiniteError, match=r"mean of row 3 \(name 'b', target=total\) is inf"):
        require_finite(table, "x")
    probability = pd.DataFrame({"quantity": ["loss", "p_beats_reference"], "item": ["total"] * 2, "optimum": [1.0, 0.7], "mean": [1.0, np.nan]})
    assert require_finite(probability, "x") is probability


# --------------------------------------------------------------------------------------------------------------
# equal-tailed intervals (arviz-stats) and the one default level


def _labelled_draws(seed=0):
    rng = np.random.default_rng(seed)
    values = rng.gamma(2.0, size=(3, 101, 4, 2))  # skewed: a wrong level or interpolation shows
    return xr.DataArray(values, dims=("chain", "draw", "mixture", "target"), coords={"mixture": list("abcd"), "target": ["total", "Github"]}, name="loss")


@pytest.mark.parametrize("ci", [0.5, DEFAULT_CI, 0.95])
def test_eti_is_numpys_linear_quantiles_over_chain_and_draw_with_labelled_dims_kept(ci):
    draws = _labelled_draws()
    bounds = eti(draws, ci)
    assert bounds.dims == ("mixture", "target", "ci_bound")
    assert list(bounds["ci_bound"].values) == ["lower", "upper"]
    assert list(bounds["mixture"].values) == list("abcd") and list(bounds["target"].values) == ["total", "Github"]
    pooled = draws.values.reshape(-1, 4, 2)
    expected = np.quantile(pooled, list(interval_bounds(ci)), axis=0)  # numpy's default method, 'linear'
    np.testing.assert_array_equal(bounds.sel(ci_bound="lower").values, expected[0])  # the same numbers, to the last bit
    np.testing.assert_array_equal(bounds.sel(ci_bound="upper").values, expected[1])
    # order of the sample dims and of the other dims does not matter; a single sample dim works too
    np.testing.assert_array_equal(eti(draws.transpose("target", "draw", "mixture", "chain"), ci).transpose(*bounds.dims).values, bounds.values)
    one = draws.stack(sample=("chain", "draw")).drop_vars(["sample", "chain", "draw"])
    np.testing.assert_array_equal(eti(one, ci, "sample").transpose(*bounds.dims).values, bounds.values)
    # plain arrays: bounds first, as np.quantile(values, [lo, hi], axis)
    np.testing.assert_array_equal(eti_values(pooled, ci), expected)
    np.testing.assert_array_equal(eti_values(np.moveaxis(pooled, 0, -1), ci, axis=-1), expected)
    np.testing.assert_array_equal(eti_values(pooled[:, 0, 0], ci), expected[:, 0, 0])
    np.testing.assert_array_equal(eti_values(pooled[:, :1, :1], ci, axis=None), expected[:, 0, 0])


def test_eti_refuses_a_level_outside_0_1_and_draws_without_sample_dims():
    draws = _labelled_draws()
    for ci in (0.0, 1.0, 1.5, -0.1):
        with pytest.raises(ValueError, match="ci must be between 0 and 1"):
            eti(draws, ci)
    with pytest.raises(ValueError, match="none of the sample dims"):
        eti(draws.isel(chain=0, draw=0))


def test_eti_skipna_leaves_nan_draws_out():
    values = np.arange(20.0).reshape(2, 10)
    holes = values.copy()
    holes[0, 0] = np.nan
    draws = xr.DataArray(holes, dims=("chain", "draw"))
    assert np.isnan(eti(draws).values).all()
    np.testing.assert_array_equal(eti(draws, skipna=True).values, np.nanquantile(holes, list(interval_bounds(DEFAULT_CI))))


def test_summarize_draws_takes_its_interval_from_eti():
    draws = _labelled_draws(1)
    inputs = pd.DataFrame({"name": list("abcd")})
    table = summarize_draws(draws, inputs, 0.8)
    assert list(table.columns) == ["name", "target", "mean", "median", "lower", "upper"]
    bounds = eti(draws, 0.8).transpose("mixture", "target", "ci_bound").values
    np.testing.assert_array_equal(table["lower"].to_numpy(), bounds[..., 0].ravel())
    np.testing.assert_array_equal(table["upper"].to_numpy(), bounds[..., 1].ravel())
    np.testing.assert_array_equal(table["median"].to_numpy(), np.quantile(draws.values.reshape(-1, 4, 2), 0.5, axis=0).ravel())


def test_one_default_interval_level_everywhere():
    """Every function, command-line option and report figure that takes an interval probability defaults to
    DEFAULT_CI (an explicit ci still wins)."""
    import inspect

    import typer

    from bayes_mixlaw import cli, compare, continual, critical, mixing, nested, optimize, report, scaling, scheduled

    assert DEFAULT_CI == 0.9
    functions = [
        mixing.MixingLaw.predict,
        mixing.MixingLaw.parameters,
        continual.ContinualLaw.predict,
        continual.ContinualLaw.parameters,
        scaling.ChinchillaLaw.predict,
        scaling.ChinchillaLaw.parameters,
        nested.NestedLaw.predict,
        nested.NestedLaw.parameters,
        nested.StagewiseNestedFit.predict,
        scheduled.ScheduledScalingLaw.predict,
        scheduled.ScheduledScalingLaw.parameters,
        scheduled.ScheduledScalingLaw.pilot_predictions,
        scheduled.ScheduledScalingLaw.schedule_assumptions,
        critical.critical_share,
        optimize.optimal_mixture,
        compare.holdout_score,
        report.fitted_vs_observed,
        report.parameter_table,
        report.paper_table,
        report.prediction_table,
        report.coverage_verdict,
        report.schedule_assumption_table,
    ]
    for function in functions:
        assert inspect.signature(function).parameters["ci"].default is DEFAULT_CI, function.__qualname__
    assert report.CI is DEFAULT_CI
    for command in (cli.predict, cli.critical, cli.optimize):
        default = inspect.signature(command).parameters["ci"].default
        assert default is DEFAULT_CI or (isinstance(default, typer.models.OptionInfo) and default.default is DEFAULT_CI), command.__name__
