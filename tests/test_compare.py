"""Comparing variants (bayes_mixlaw/compare.py): a mixing law's pointwise log-likelihood is PyMC's, PSIS-LOO
ranks variants, and the held-out check's log density stays finite."""

from __future__ import annotations

import numpy as np

from bayes_mixlaw import MixingLaw, MixingLawConfig, datasets


def test_pointwise_log_likelihood_matches_pymc_and_loo_compares_variants(fitted, runs, mocked_sampling):
    import pymc as pm

    from bayes_mixlaw.compare import compare_variants, loo_compare, pointwise_log_likelihood

    ours = pointwise_log_likelihood(fitted).values
    with fitted.model:
        pm.set_data(fitted._data(fitted.built.layout))
        reference = pm.compute_log_likelihood(xr_tree(fitted), extend_inferencedata=False, progressbar=False)
    np.testing.assert_allclose(ours, reference["loss"].values, rtol=1e-8)
    normal = MixingLaw(MixingLawConfig(likelihood="normal", sampler={"draws": 20, "chains": 2}), datasets.pile_targets()).fit(runs, seed=4, progress=False)
    table = loo_compare({"studentt": fitted, "normal": normal})
    assert set(table.index) == {"studentt", "normal"} and "elpd_diff" in table
    ranked = compare_variants({"studentt": fitted, "normal": normal})
    assert list(ranked["variant"]) == list(table.index)  # best first, as ArviZ ranks them
    weights = ranked["stacking weight"].to_numpy()
    assert np.all(weights >= 0) and np.isclose(weights.sum(), 1.0)  # stacking weights over the variants


def xr_tree(law):
    import xarray as xr

    return xr.DataTree.from_dict({"posterior": law.idata["posterior"].to_dataset()})


def test_held_out_log_density_is_finite_far_from_the_draws():
    """The held-out check's log predictive density: a kernel density of the draws, in logs, so one
    loss far outside the draws lowers the mean instead of making it -inf (as it did on 5Mix)."""
    from scipy import stats

    from bayes_mixlaw.compare import log_kernel_density

    sample = np.random.default_rng(0).normal(3.0, 0.01, size=(2000, 2))
    near, far = log_kernel_density(np.array([3.0, 3.5]), sample)
    assert np.isclose(near, stats.norm.logpdf(3.0, 3.0, 0.01), atol=0.1)  # the draws' own density at their centre
    assert np.isfinite(far) and far < -1000  # 50 standard deviations out: very unlikely, not impossible
