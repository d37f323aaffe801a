"""MixingLaw structure, predictions, aggregation and persistence, with mocked sampling."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from bayes_mixlaw import MixingLaw, MixingLawConfig, datasets
from bayes_mixlaw.config import ConfigError
from bayes_mixlaw.model import NotFittedError


@pytest.fixture
def runs():
    return datasets.mixinglaws_5mix_70m().select(step=30000)


@pytest.fixture
def fitted(runs, mocked_sampling):
    law = MixingLaw(MixingLawConfig(sampler={"draws": 20, "chains": 2}), datasets.pile_targets())
    return law.fit(runs, seed=3, progress=False)


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


def test_report_writes_html_figures_and_tables(fitted, tmp_path):
    from typer.testing import CliRunner

    from bayes_mixlaw.cli import app

    path = fitted.save(tmp_path / "fit.nc")
    other = MixingLaw(MixingLawConfig(likelihood="normal", sampler={"draws": 20, "chains": 2}), datasets.pile_targets())
    other_path = other.fit(fitted.runs, seed=5, progress=False).save(tmp_path / "normal.nc")
    result = CliRunner().invoke(
        app, ["report", str(path), "--compare", str(other_path), "--holdout", "--along", "academic", "-o", str(tmp_path / "report"), "-q"]
    )
    assert result.exit_code == 0, result.output
    folder = tmp_path / "report"
    for name in (
        "report.html",
        "ppc.png",
        "interactions.png",
        "proportions.png",
        "domains_along_academic.png",
        "ternary.png",
        "optimum.png",
        "parameters.csv",
        "parameters.md",
        "parameters.tex",
        "optimum.csv",
        "diagnostics.csv",
        "model_comparison.csv",
    ):
        assert (folder / name).stat().st_size > 0, name
    page = (folder / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 6 and "Diagnostics" in page and "PSIS-LOO" in page
    assert page.count("<p class='how'>") == 6 and "about 90% of them should lie inside their interval" in page  # how to read each figure
    tex = (folder / "parameters.tex").read_text()
    assert "\\begin{longtable}" in tex and "log\\_c" in tex and "90\\% credible" in tex and "nan" not in tex.lower()
    markdown = (folder / "parameters.md").read_text()
    assert "mean [90% interval]" in markdown and "nan" not in markdown.lower()
    interactions = pd.read_csv(folder / "interactions.csv")  # t as validation x training domains, 'mean [lower, upper]'
    assert list(interactions.columns) == ["valid_domain", *fitted.train_domains] and len(interactions) == len(fitted.valid_domains)
    assert "\\begin{tabular}" in (folder / "interactions.tex").read_text() and "reference" not in (folder / "optimum.md").read_text()
    predictions = pd.read_csv(folder / "predictions.csv")  # every target at the optimum and at the pilots' mean mixture
    assert set(predictions["mixture"]) == {"optimum", "pilots' mean mixture"} and len(predictions) == 2 * len(fitted.targets.matrix(fitted.valid_domains)[0])
    assert (predictions["lower"] <= predictions["mean"]).all() and (predictions["mean"] <= predictions["upper"]).all()
    assert "| total " in (folder / "predictions.md").read_text() and "Predicted loss of every target" in page
    comparison = pd.read_csv(folder / "model_comparison.csv")  # PSIS-LOO ranks and the held-out check, one row per variant
    assert set(comparison["variant"]) == {"this fit", "normal.nc"} and list(comparison["rank"]) == [0, 1]
    assert comparison[["elpd_loo", "se", "MAE", "90% coverage", "log predictive density"]].notna().all().all()
    result = CliRunner().invoke(app, ["report", str(path), "-o", str(folder), "-q"])
    assert result.exit_code == 2 and "pass --force" in result.output
    result = CliRunner().invoke(app, ["report", str(path), "-o", str(tmp_path / "other"), "--along", "wiki", "-q"])
    assert result.exit_code == 2 and "'wiki' is not a training domain" in result.output
    result = CliRunner().invoke(app, ["report", str(path), "-o", str(tmp_path / "other"), "--mixture", "run_1", "-q"])
    assert result.exit_code == 2 and "--mixture picks the curves of a nested fit" in result.output
    result = CliRunner().invoke(app, ["report", str(path), "-o", str(tmp_path / "other"), "--params", "1e9", "--step", "1000", "-q"])
    assert result.exit_code == 2 and "need a nested fit" in result.output


def test_report_says_each_step_and_its_time_unless_quiet(fitted, tmp_path):
    from typer.testing import CliRunner

    from bayes_mixlaw.cli import app

    path = fitted.save(tmp_path / "fit.nc")
    loud = CliRunner().invoke(app, ["report", str(path), "-o", str(tmp_path / "loud")])
    assert loud.exit_code == 0, loud.output
    assert re.search(r"optimal mixture for 'total': \d+\.\d s", loud.output) and re.search(r"PSIS-LOO: \d+\.\d s", loud.output)
    quiet = CliRunner().invoke(app, ["report", str(path), "-o", str(tmp_path / "quiet"), "-q"])
    assert quiet.exit_code == 0 and " s\n" not in quiet.output and "wrote" not in quiet.output


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


def test_suggest_command_writes_the_batch_with_caps_and_exploit(fitted, tmp_path):
    import json

    from typer.testing import CliRunner

    from bayes_mixlaw.cli import app

    path = fitted.save(tmp_path / "fit.nc")
    caps = tmp_path / "caps.json"
    caps.write_text(json.dumps({"caps": {"internet": 0.3}, "minimums": {"academic": 0.1}}))
    out = tmp_path / "next.csv"
    args = ["suggest", str(path), "-n", "3", "--acquisition", "thompson", "--exploit", "--caps", str(caps), "--seed", "1", "-o", str(out), "-q"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out)
    mix = table[[c for c in table.columns if c.startswith("mix:")]]
    assert len(table) == 3 and np.allclose(mix.sum(axis=1), 1.0)
    assert (mix["mix:internet"] <= 0.3 + 1e-6).all() and (mix["mix:academic"] >= 0.1 - 1e-6).all()
    assert sorted(table["acquisition"]) == ["posterior-mean optimum", "thompson", "thompson"]
    assert {"acquisition_value", "mean", "lower", "upper"} <= set(table.columns) and (table["lower"] <= table["upper"]).all()
    again = CliRunner().invoke(app, args)  # the output exists: not overwritten without --force
    assert again.exit_code == 2 and "pass --force" in again.output
    wrong = CliRunner().invoke(app, ["suggest", str(path), "--acquisition", "qlognei", "--exploit", "-o", str(tmp_path / "x.csv"), "-q"])
    assert wrong.exit_code == 2 and "exploit" in wrong.output and "Traceback" not in wrong.output


def test_pointwise_log_likelihood_matches_pymc_and_loo_compares_variants(fitted, runs, mocked_sampling):
    import pymc as pm

    from bayes_mixlaw.compare import loo_compare, pointwise_log_likelihood

    ours = pointwise_log_likelihood(fitted).values
    with fitted.model:
        pm.set_data(fitted._data(fitted._layout_cache))
        reference = pm.compute_log_likelihood(xr_tree(fitted), extend_inferencedata=False, progressbar=False)
    np.testing.assert_allclose(ours, reference["loss"].values, rtol=1e-8)
    normal = MixingLaw(MixingLawConfig(likelihood="normal", sampler={"draws": 20, "chains": 2}), datasets.pile_targets()).fit(runs, seed=4, progress=False)
    table = loo_compare({"studentt": fitted, "normal": normal})
    assert set(table.index) == {"studentt", "normal"} and "elpd_diff" in table


def xr_tree(law):
    import xarray as xr

    return xr.DataTree.from_dict({"posterior": law.idata["posterior"].to_dataset()})


def test_residual_gp_has_the_law_as_mean_and_follows_the_pilots(fitted):
    import torch

    from bayes_mixlaw.bo import observed_target, residual_gp, suggest

    gp = residual_gp(fitted, draws=16)
    mixtures, losses = observed_target(fitted)
    at_pilots = gp.posterior(torch.as_tensor(mixtures)).mean.detach().numpy().ravel()
    f = fitted.target_function("total", draws=16)
    law_at_pilots = f(torch.as_tensor(mixtures)[None].expand(16, -1, -1)).mean(0).detach().numpy()
    # the GP moves the law's mean toward the observed losses at the pilots
    assert np.abs(-at_pilots - losses).mean() < np.abs(law_at_pilots - losses).mean()
    table = suggest(fitted, 2, acquisition="qlognei", residual_gp_model=True, draws=16)
    assert len(table) == 2 and table["acquisition"].str.contains("residual GP").all()


def test_simulator_optimum_and_random_pilots_respect_caps(shared_data, mocked_sampling):
    """A simulator with caps takes its optimum within them; its random pilots are Dirichlet draws
    restricted to them; support_caps reads each domain's largest share off the real runs."""
    from bayes_mixlaw.simulate import LawSimulator, feasible_dirichlet, support_caps

    table = datasets.mixinglaws_5mix_70m().select(step=30000)
    caps = support_caps(table)
    assert set(caps) == set(table.train_domains) and all(0 < v <= 1 for v in caps.values())
    law = MixingLaw(targets=datasets.pile_targets()).fit(table, seed=0, progress=False, draws=20, chains=1)
    free = LawSimulator(law)
    largest = int(np.argmax(free.optimum))
    capped = LawSimulator(law, caps={free.train[largest]: 0.1})
    assert free.optimum[largest] > 0.1 and capped.optimum[largest] <= 0.1 + 1e-9 and abs(capped.optimum.sum() - 1) < 1e-9
    assert capped.best_loss >= free.best_loss - 1e-9
    draws = feasible_dirichlet(500, capped.upper, np.random.default_rng(0))
    assert draws.shape == (500, len(free.train)) and (draws <= capped.upper).all() and np.allclose(draws.sum(axis=1), 1)


def test_held_out_log_density_is_finite_far_from_the_draws():
    """The held-out check's log predictive density: a kernel density of the draws, in logs, so one
    loss far outside the draws lowers the mean instead of making it -inf (as it did on 5Mix)."""
    from scipy import stats

    from bayes_mixlaw.compare import log_kernel_density

    sample = np.random.default_rng(0).normal(3.0, 0.01, size=(2000, 2))
    near, far = log_kernel_density(np.array([3.0, 3.5]), sample)
    assert np.isclose(near, stats.norm.logpdf(3.0, 3.0, 0.01), atol=0.1)  # the draws' own density at their centre
    assert np.isfinite(far) and far < -1000  # 50 standard deviations out: very unlikely, not impossible
