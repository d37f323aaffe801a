"""MixingLaw (bayes_mixlaw/mixing.py): structure, predictions (a row's its own, whatever the other rows),
aggregation and persistence, with mocked sampling."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayes_mixlaw import BayesianLaw, MixingLaw, MixingLawConfig, datasets
from bayes_mixlaw.config import ConfigError
from bayes_mixlaw.model import NotFittedError
from conftest import five_mixtures


def mixtures(domains):
    return pd.DataFrame(
        [{"name": "uniform", **{f"mix:{d}": 1 / len(domains) for d in domains}}, {"name": "web", **{f"mix:{d}": float(d == "internet") for d in domains}}]
    )


def test_build_model_has_labelled_dims(runs):
    assert list(MixingLaw(targets=datasets.pile_targets()).build_model(runs).coords["group"]) == ["all"]
    model = MixingLaw(MixingLawConfig(pool_by="groups"), targets=datasets.pile_targets()).build_model(runs)
    assert list(model.coords["valid_domain"]) == runs.valid_domains
    assert list(model.coords["train_domain"]) == runs.train_domains
    assert list(model.coords["group"]) == ["academic", "prose", "dialogue", "symbolic", "internet"]
    assert model.named_vars_to_dims["t"] == ("valid_domain", "train_domain")
    assert {"run_mixture", "loss_scaled", "run_idx", "valid_idx"} <= set(model.named_vars)


def test_centred_interactions_have_the_pooled_zero_sum_density():
    """Base density + potential of the centred form = ZeroSumNormal(x - mu; sigma) + a constant,
    so the NUTS form and the generative form (t_mu + ZeroSumNormal) are one distribution."""
    import pymc as pm
    import pytensor
    import pytensor.tensor as pt

    from bayes_mixlaw.mixing import _BASE_SIGMA, _centred_zero_sum

    rows, cols = 3, 4
    mu_in, x_in, sigma_in = pt.matrix("mu"), pt.matrix("x"), pt.scalar("sigma")
    with pm.Model(coords={"r": range(rows), "c": range(cols)}) as model:
        x = _centred_zero_sum("x", mu_in, sigma_in, dims=("r", "c"))
    potential = pytensor.graph.clone_replace(model.potentials[0], {x: x_in})
    base = pm.logp(pm.ZeroSumNormal.dist(sigma=_BASE_SIGMA, shape=(rows, cols)), x_in).sum()
    pooled = pm.logp(pm.ZeroSumNormal.dist(sigma=sigma_in, shape=(rows, cols)), x_in - mu_in).sum()
    difference = pytensor.function([x_in, mu_in, sigma_in], base + potential - pooled, on_unused_input="ignore")
    rng = np.random.default_rng(0)

    def zero_sum(shape):
        z = rng.normal(size=shape)
        return z - z.mean(axis=-1, keepdims=True)

    values = [float(difference(zero_sum((rows, cols)) * 3, zero_sum((rows, cols)), s)) for s in (0.3, 1.0, 2.5, 7.0)]
    np.testing.assert_allclose(values, values[0], atol=1e-8)


def test_slope_and_noise_coordinates_give_the_same_law():
    """t sampled as g = f^p t and the Student-t's scales as sigma sqrt((nu + 3) / nu): base density,
    potential and Jacobian together are the pooled ZeroSumNormal of t and the noise prior of sigma,
    in the sampled coordinates (log |dt/dg| = -(M - 1) sum_i p log f_i, log |dsigma/dtau| = -n log k)."""
    import pymc as pm
    import pytensor
    import pytensor.tensor as pt
    from pymc_extras.prior import Prior

    from bayes_mixlaw.mixing import _BASE_SIGMA, _SLOPE_POWER, _slope_interactions, _studentt_noise

    rows, cols = 3, 4
    mu_in, g_in, lf_in, sigma_in = pt.matrix("mu"), pt.matrix("g"), pt.vector("lf"), pt.scalar("sigma")
    with pm.Model(coords={"r": range(rows), "c": range(cols)}) as model:
        _slope_interactions("x", mu_in, sigma_in, lf_in, dims=("r", "c"))
    g = model["x_slope"]
    scale = pm.math.sigmoid(lf_in)[:, None] ** _SLOPE_POWER
    potential = pytensor.graph.clone_replace(model.potentials[0], {g: g_in})
    base = pm.logp(pm.ZeroSumNormal.dist(sigma=_BASE_SIGMA * scale, shape=(rows, cols)), g_in).sum()
    x = g_in / scale
    target = pm.logp(pm.ZeroSumNormal.dist(sigma=sigma_in, shape=(rows, cols)), x - mu_in).sum() - (cols - 1) * pt.log(scale).sum()
    difference = pytensor.function([g_in, mu_in, lf_in, sigma_in], base + potential - target, on_unused_input="ignore")
    rng = np.random.default_rng(0)

    def zero_sum(shape):
        z = rng.normal(size=shape)
        return z - z.mean(axis=-1, keepdims=True)

    values = [float(difference(zero_sum((rows, cols)) * 3, zero_sum((rows, cols)), rng.normal(-3, 1.5, rows), s)) for s in (0.3, 1.0, 2.5, 7.0)]
    np.testing.assert_allclose(values, values[0], atol=1e-8)

    n = 5
    tau_in, nu_in = pt.vector("tau"), pt.scalar("nu")
    for prior in (Prior("HalfNormal", sigma=0.02), Prior("HalfCauchy", beta=0.01)):
        with pm.Model(coords={"d": range(n)}) as model:
            _studentt_noise(prior, nu_in, dims="d")
        spread = model["noise_spread"]
        potential = pytensor.graph.clone_replace(model.potentials[0], {spread: tau_in})
        k = pt.sqrt((nu_in + 3) / nu_in)
        base = pm.logp(pm.HalfNormal.dist(sigma=0.02 * k), tau_in).sum()
        target = pm.logp(getattr(pm, prior.distribution).dist(**prior.parameters), tau_in / k).sum() - n * pt.log(k)
        difference = pytensor.function([tau_in, nu_in], base + potential - target)
        values = [float(difference(rng.uniform(0.001, 0.05, n), nu)) for nu in (1.2, 3.0, 10.0, 80.0)]
        np.testing.assert_allclose(values, values[0], atol=1e-8)
    assert _studentt_noise(Prior("HalfNormal", sigma=Prior("HalfNormal", sigma=0.02)), nu_in, dims=None) is None


def test_prior_predictive_uses_the_generative_form(runs):
    prior = MixingLaw().sample_prior_predictive(runs, draws=50, seed=0)["prior"]
    assert "t_dev" in prior and np.abs(prior["t"].sum("train_domain")).max() < 1e-8


def test_implicit_model_builds(runs):
    model = MixingLaw(MixingLawConfig(law="implicit", n_implicit=3)).build_model(runs)
    assert model.named_vars_to_dims["implicit_weights"] == ("valid_domain", "latent")


def test_the_check_while_sampling_is_the_fits_diagnostic(fitted):
    """What the sampler checks between draws (the fitted losses at the pilots, the noise, the form's identified
    parameters, nu) is what the finished fit is diagnosed on, from the same draws."""
    checked = fitted._checked_in_sampling(fitted._built)(fitted.idata["posterior"].to_dataset())
    expected = fitted._diagnostic_quantities()
    assert set(checked.data_vars) == set(expected.data_vars) >= {"fitted_loss", "noise_sigma", "nu"}
    for name in expected.data_vars:
        np.testing.assert_array_equal(checked[name].values, expected[name].values)
    residual = MixingLaw(MixingLawConfig(residual="rff", residual_features=8))
    assert residual._checked_in_sampling(fitted._built) is None  # its fitted losses need weights drawn after sampling


def test_predict_columns_and_targets(fitted, runs):
    pred = fitted.predict(mixtures(runs.train_domains), ci=0.8)
    assert list(pred.columns) == ["name", *[f"mix:{d}" for d in runs.train_domains], "target", "mean", "median", "lower", "upper", "beyond_mixture"]
    assert len(pred) == 2 * (22 + 5 + 1)
    assert (pred["beyond_mixture"] >= 0).all() and pred.groupby("name")["beyond_mixture"].nunique().eq(1).all()
    assert set(pred["target"]) >= {"total", "academic", "ArXiv"}
    assert (pred["lower"] <= pred["median"]).all() and (pred["median"] <= pred["upper"]).all()


def test_reported_mean_exists_under_heavy_tailed_noise(fitted, runs):
    """nu > 1 in every draw (nu - 1 has the prior), and the reported mean is the predictive's
    expectation, the law's posterior mean, not a sample mean that one heavy-tailed draw dominates."""
    import xarray as xr

    assert (fitted.idata["posterior"]["nu"].values > 1).all()
    posterior = fitted.idata["posterior"].to_dataset()
    fitted.idata["posterior"] = xr.DataTree(posterior.assign(nu=posterior["nu"] * 0 + 1.01))  # nearly Cauchy noise
    try:
        m = mixtures(runs.train_domains)
        pred = fitted.predict(m, seed=5)
        law_mean = fitted.predict(m, kind="mean")["mean"]
        other_seed = fitted.predict(m, seed=6)
    finally:
        fitted.idata["posterior"] = xr.DataTree(posterior)
    assert np.isfinite(pred["mean"]).all()
    np.testing.assert_allclose(pred["mean"], law_mean)
    np.testing.assert_allclose(pred["mean"], other_seed["mean"])  # not at the mercy of the noise draws
    assert not np.allclose(pred["upper"], other_seed["upper"])


def test_aggregates_are_taken_per_draw(fitted, runs):
    draws = fitted.predict_draws(mixtures(runs.train_domains), kind="mean")
    _, matrix = fitted.targets.matrix(fitted.valid_domains)
    domain_draws = draws.sel(target=fitted.valid_domains).values
    np.testing.assert_allclose(draws.sel(target="total").values, domain_draws @ matrix[-1])


def test_seed_reproduces_predictions(fitted, runs):
    m = mixtures(runs.train_domains)
    pd.testing.assert_frame_equal(fitted.predict(m, seed=1), fitted.predict(m, seed=1))


def test_save_load_predicts_identically_and_never_overwrites(fitted, runs, tmp_path):
    path = fitted.save(tmp_path / "fit.nc")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        fitted.save(path)
    loaded = MixingLaw.load(path)
    m = mixtures(runs.train_domains)
    pd.testing.assert_frame_equal(loaded.predict(m), fitted.predict(m))
    assert loaded.config.sampler.draws == 20
    assert loaded.targets.groups == fitted.targets.groups
    assert loaded.idata.attrs["bayes_mixlaw_version"]
    assert loaded.summary_line() == fitted.summary_line()


def test_not_fitted_and_wrong_mixture_columns(fitted):
    with pytest.raises(NotFittedError):
        MixingLaw().predict(pd.DataFrame({"mix:a": [1.0]}))
    with pytest.raises(ValueError, match=r"missing \['mix:academic'"):
        fitted.predict(pd.DataFrame({"mix:a": [1.0]}))


def test_config_file_priors_and_errors(tmp_path):
    good = tmp_path / "c.yaml"
    good.write_text("law: implicit\nn_implicit: 2\npriors:\n  t_sigma: {dist: HalfNormal, kwargs: {sigma: 1.0}}\nsampler: {draws: 50}\n")
    cfg = MixingLawConfig.from_file(good)
    assert cfg.law == "implicit" and cfg.prior("t_sigma").parameters == {"sigma": 1.0}
    assert MixingLawConfig.from_dict(cfg.to_dict()).to_json() == cfg.to_json()
    bad = tmp_path / "bad.yaml"
    bad.write_text("priors:\n  not_a_prior: {dist: Normal, kwargs: {mu: 0, sigma: 1}}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: priors: .*unknown prior 'not_a_prior'"):
        MixingLawConfig.from_file(bad)
    bad.write_text("sampler: {draws: -3}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: sampler.draws"):
        MixingLawConfig.from_file(bad)
    bad.write_text("priors:\n  t_mu: {dist: Normal, kwargs: {sigma: 1}}\n")
    with pytest.raises(ConfigError, match="ZeroSumNormal"):
        MixingLawConfig.from_file(bad)


def test_default_priors_are_sensible_by_prior_predictive(runs):
    """Prior predictive losses (in units of each domain's median loss) are wide but plausible."""
    prior = MixingLaw().sample_prior_predictive(runs, draws=300, seed=1)
    scaled = prior["prior_predictive"]["loss"].values.ravel()
    lo, hi = np.quantile(scaled, [0.05, 0.95])
    assert 0.5 < lo < 1.0 < hi < 4.0, (lo, hi)  # weakly informative: wide, yet no loss of 40


def test_implicit_law_reports_label_free_slopes_and_optimises(runs, mocked_sampling, tmp_path):
    """The implicit law's latent domains swap labels between draws; what it reports must not: the
    centred slopes dL_i/dr_j at the pilots' mean (checked against autograd through target_function),
    and target_function itself (checked against predict_draws), which optimize, suggest and the
    report's figures use."""
    import torch

    from bayes_mixlaw.report import write_report

    law = MixingLaw(MixingLawConfig(law="implicit", n_implicit=3, sampler={"draws": 20, "chains": 2}), datasets.pile_targets())
    law.fit(runs, seed=4, progress=False)
    table = law.parameters()
    assert set(table["parameter"]) == {"slope", "noise_sigma"}
    slope = table[table["parameter"] == "slope"]
    assert np.allclose(slope.groupby("valid_domain")["mean"].sum(), 0, atol=1e-9)  # centred: moves within the simplex
    f = law.target_function("Github")
    center = torch.tensor(law.pilot_mixtures.mean(axis=0), requires_grad=True)
    f(center[None, None].expand(f.n_draws, 1, -1)).mean().backward()
    gradient = center.grad.numpy() - center.grad.numpy().mean()
    assert np.allclose(slope[slope["valid_domain"] == "Github"].set_index("train_domain")["mean"][law.train_domains], gradient)
    total = law.target_function("total")
    r = torch.tensor(mixtures(law.train_domains).filter(like="mix:").to_numpy())
    with torch.no_grad():
        by_function = total(r[None].expand(total.n_draws, -1, -1)).numpy()
    by_draws = law.predict_draws(mixtures(law.train_domains), kind="mean").sel(target="total").values.reshape(total.n_draws, -1)
    assert np.allclose(by_function, by_draws)
    write_report(law, tmp_path)
    assert (tmp_path / "interactions.png").stat().st_size > 0 and (tmp_path / "optimum.png").stat().st_size > 0
    assert "slope" in (tmp_path / "parameters.csv").read_text()


def test_mixing_predictions_of_a_row_do_not_depend_on_the_other_rows(mock_mixing_fit):
    law = BayesianLaw.load(mock_mixing_fit)
    frame = five_mixtures()
    together = law.predict(frame, seed=4).set_index(["name", "target"])
    swapped = law.predict(frame.iloc[::-1], seed=4).set_index(["name", "target"])
    for i in range(len(frame)):
        alone = law.predict(frame.iloc[[i]], seed=4).set_index(["name", "target"])
        pd.testing.assert_frame_equal(alone, together.loc[alone.index])
    pd.testing.assert_frame_equal(swapped.loc[together.index], together)
    assert not together.equals(law.predict(frame, seed=5).set_index(["name", "target"]))  # the seed still matters


def test_few_validation_domains_give_the_mixing_law_a_boundary_avoiding_f_sigma(runs, mocked_sampling):
    """With fewer than 8 validation domains the spread of the domains' logit f takes config.FEW_DOMAIN_PRIORS' f_sigma (the
    closed loop's 5 pilots x 3 domains: 75-104 divergences in f_sigma's funnel without it, 0 with it); the mixing law
    takes only the priors of its own parameters and keeps its sampler; what the user set stays; the fit file keeps it."""
    import json

    from pymc_extras.prior import Prior

    from bayes_mixlaw.config import FEW_DOMAIN_PRIORS

    three = runs.data[runs.data["valid_domain"].isin(["Pile-CC", "Github", "ArXiv"])]
    config = MixingLawConfig(sampler={"draws": 10, "chains": 2})
    law = MixingLaw(config).fit(three, seed=0, progress=False)
    assert law.config.priors == {"f_sigma": FEW_DOMAIN_PRIORS["f_sigma"]} and law.config.sampler == config.sampler
    assert json.loads(law.idata.attrs["config"])["priors"] == {"f_sigma": FEW_DOMAIN_PRIORS["f_sigma"].to_dict()}
    mine = Prior("HalfNormal", sigma=0.3)
    assert MixingLawConfig(priors={"f_sigma": mine}).for_domains(3).priors == {"f_sigma": mine}
    many = MixingLaw(MixingLawConfig(sampler={"draws": 10, "chains": 2})).fit(runs, seed=0, progress=False)  # 22 domains
    assert many.config.priors == {}
