"""The learned residual of the mixing law (issue 16, item 3): its basis and function across numpy / PyTensor / torch,
the config, mocked fits (predict, save and reload, log-likelihood, BoTorch's model), and one real NUTS fit on few
5Mix pilots (70M, 30k steps) whose residual stays near zero, then predicts, reloads identically and suggests."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt
import pytest
import torch
from pydantic import ValidationError

from bayes_mixlaw import MixingLaw, MixingLawConfig, datasets
from bayes_mixlaw.mixing_residual import (
    PARAMETER_NAMES,
    RESIDUAL_PRIORS,
    MixingResidual,
    conditional_weights,
    fourier_basis,
    fourier_features,
    integrated_log_likelihood,
    lengthscale_grid,
    node_log_likelihood,
    residual,
    residual_inputs,
    spectral_basis,
)
from bayes_mixlaw.model import BayesianLaw
from bayes_mixlaw.runs import RunsTable


@pytest.fixture(scope="module")
def runs():
    return datasets.mixinglaws_5mix_70m().select(step=30000)


def _mixtures(domains, n=4, seed=0):
    r = np.random.default_rng(seed).dirichlet(np.ones(len(domains)), size=n)
    r[0] = np.eye(len(domains))[0]  # a corner: zero shares
    return pd.DataFrame(r, columns=[f"mix:{d}" for d in domains]).assign(name=[f"m{i}" for i in range(n)])


# ---------------------------------------------------------------------------------------------
# the basis and the function


def test_basis_is_fixed_by_its_seed_and_approximates_its_kernel():
    """The same seed gives the same numbers; with many features phi(x) . phi(y) is the kernel: exp(-d^2 / 2) for the
    squared exponential, (1 + sqrt5 d + 5 d^2 / 3) exp(-sqrt5 d) for the Matern 5/2 (d = |x - y| / ell)."""
    w, b = fourier_basis(3, 8, seed=4)
    assert np.array_equal(w, fourier_basis(3, 8, seed=4)[0]) and np.array_equal(b, fourier_basis(3, 8, seed=4)[1])
    assert not np.array_equal(w, fourier_basis(3, 8, seed=5)[0])
    x = np.array([[0.2, 0.3, 0.5], [0.5, 0.3, 0.2], [0.2, 0.35, 0.45]])
    ell = np.array([0.3, 0.3, 0.3])
    d = np.linalg.norm(x[0] - x[1:], axis=1) / 0.3
    kernels = {"se": np.exp(-(d**2) / 2), "matern52": (1 + np.sqrt(5) * d + 5 * d**2 / 3) * np.exp(-np.sqrt(5) * d)}
    for kernel, want in kernels.items():
        phi = fourier_features(x, *fourier_basis(3, 40000, kernel, seed=1), ell)
        assert np.allclose(phi[0] @ phi[1:].T, want, atol=0.02), kernel
        assert np.allclose((phi**2).sum(axis=1), 1.0, atol=0.02)  # unit prior variance at every mixture
    with pytest.raises(ValueError, match="unknown residual kernel 'rbf'; the kernels are se, matern52"):
        fourier_basis(3, 8, "rbf")


def test_residual_agrees_across_numpy_pytensor_and_torch():
    """A batch of two draws over 4 training and 3 validation domains: the three libraries give the same residual,
    each draw alone gives its slice, and torch's gradient in the mixture is finite at a corner of the simplex."""
    rng = np.random.default_rng(0)
    w, b = fourier_basis(4, 16, seed=2)
    params = {
        "residual_scale": rng.exponential(0.01, (2, 3)),
        "residual_lengthscale": rng.lognormal(-1.2, 0.5, (2, 4)),
        "residual_shared": rng.uniform(0, 1, 2),
        "residual_shared_weights": rng.standard_normal((2, 16)),
        "residual_domain_weights": rng.standard_normal((2, 3, 16)),
    }
    assert tuple(params) == PARAMETER_NAMES
    r = rng.dirichlet(np.ones(4), size=5)
    r[0] = [1.0, 0.0, 0.0, 0.0]
    expected = residual(r, w, b, *params.values())
    assert expected.shape == (2, 5, 3) and np.abs(expected).max() > 0
    r_torch = torch.as_tensor(r).requires_grad_(True)
    out = residual(r_torch, torch.as_tensor(w), torch.as_tensor(b), *(torch.as_tensor(v) for v in params.values()))
    out.sum().backward()
    assert np.allclose(out.detach().numpy(), expected) and torch.isfinite(r_torch.grad).all()
    symbolic = residual(pt.as_tensor(r), pt.as_tensor(w), pt.as_tensor(b), *(pt.as_tensor(v) for v in params.values()))
    assert np.allclose(symbolic.eval(), expected)
    for k in range(2):
        assert np.allclose(residual(r, w, b, *(v[k] for v in params.values())), expected[k])
    # rho = 1: every domain's residual is the shared function times its scale
    params["residual_shared"] = np.ones(2)
    shared = residual(r, w, b, *params.values()) / params["residual_scale"][:, None, :]
    assert np.allclose(shared, shared[..., :1])


# ---------------------------------------------------------------------------------------------
# the weights integrated out


def _gaussian_problem(n_runs, n_valid=3, n_features=6, n_train=4, seed=0):
    """Losses' residuals r (V, n), precisions p (V,), tau (V,), rho, the features at two lengthscales and their basis,
    and the dense covariance of the stacked residuals (domain-major) under Normal weights and noise."""
    from scipy.stats import multivariate_normal

    rng = np.random.default_rng(seed)
    h = rng.dirichlet(np.ones(n_train), size=n_runs)
    w, b = fourier_basis(n_train, n_features, seed=1)
    nodes = np.array([0.2, 0.6])
    basis = spectral_basis(h, w, b, nodes)
    r, p = rng.normal(size=(n_valid, n_runs)) * 0.1, rng.uniform(50, 100, n_valid)
    tau, rho = rng.uniform(0.2, 0.8, n_valid), np.array(0.4)
    a, bb = tau * np.sqrt(rho), tau * np.sqrt(1 - rho)
    signal = [np.kron(np.outer(a, a) + np.diag(bb**2), phi @ phi.T) for phi in (fourier_features(h, w, b, np.full(n_train, ell)) for ell in nodes)]
    noise = np.kron(np.diag(1 / p), np.eye(n_runs))
    gain = [multivariate_normal(cov=k + noise).logpdf(r.ravel()) - multivariate_normal(cov=noise).logpdf(r.ravel()) for k in signal]
    return dict(h=h, w=w, b=b, nodes=nodes, basis=basis, r=r, p=p, tau=tau, rho=rho, a=a, bb=bb, signal=signal, noise=noise, gain=np.array(gain))


@pytest.mark.parametrize("n_runs", [9, 4])  # more runs than features, and fewer
def test_integrated_likelihood_is_the_gaussian_marginal(n_runs):
    """Integrating the weights out gives the dense Gaussian's log density less the noise-only one, at each grid node,
    in numpy and in PyTensor alike; summed over the grid it is the log of the prior-weighted mean."""
    g = _gaussian_problem(n_runs)
    args = (g["r"], g["p"], g["tau"], g["rho"], g["basis"]["projection"], g["basis"]["eigenvalues"])
    assert np.allclose(node_log_likelihood(*args), g["gain"], rtol=1e-10)
    log_w = np.log([0.3, 0.7])
    want = np.log(np.exp(g["gain"]) @ np.exp(log_w))
    assert integrated_log_likelihood(*args, log_w) == pytest.approx(want, rel=1e-10)
    symbolic = integrated_log_likelihood(*(pt.as_tensor(x) for x in args[:4]), *args[4:], log_w)
    assert float(symbolic.eval()) == pytest.approx(want, rel=1e-10)


@pytest.mark.parametrize("n_runs", [9, 4])
def test_conditional_weights_are_the_gaussian_posterior(n_runs):
    """Weights drawn from their conditional give the residual at the pilots the Gaussian posterior's mean and
    covariance (Monte Carlo over 20,000 draws), and the lengthscale's node is drawn with its posterior probability."""
    g = _gaussian_problem(n_runs)
    draws = 20000
    batch = [np.broadcast_to(x, (draws, *np.shape(x))) for x in (g["r"], g["p"], g["tau"], g["rho"])]
    for k in range(2):
        only_k = np.where(np.arange(2) == k, 0.0, -np.inf)
        ell, shared, own = conditional_weights(*batch, g["basis"], g["nodes"], only_k, np.random.default_rng(k))
        assert np.all(ell == g["nodes"][k])
        phi = fourier_features(g["h"], g["w"], g["b"], np.full(g["h"].shape[1], g["nodes"][k]))
        f = g["a"][:, None] * (shared @ phi.T)[:, None, :] + g["bb"][:, None] * (own @ phi.T)  # (draws, V, n)
        cov_y = g["signal"][k] + g["noise"]
        mean = g["signal"][k] @ np.linalg.solve(cov_y, g["r"].ravel())
        cov = g["signal"][k] - g["signal"][k] @ np.linalg.solve(cov_y, g["signal"][k])
        assert np.abs(f.reshape(draws, -1).mean(0) - mean).max() < 4 * np.sqrt(np.diag(cov).max() / draws)
        assert np.abs(np.cov(f.reshape(draws, -1).T) - cov).max() < 0.05 * np.abs(cov).max()
    ell, *_ = conditional_weights(*batch, g["basis"], g["nodes"], np.log([0.5, 0.5]), np.random.default_rng(5))
    prob = np.exp(g["gain"] - g["gain"].max())
    assert np.mean(ell == g["nodes"][1]) == pytest.approx(prob[1] / prob.sum(), abs=0.015)


def test_lengthscale_grid_is_the_prior_discretised():
    nodes, log_w = lengthscale_grid(RESIDUAL_PRIORS["residual_lengthscale"], 8)
    assert np.allclose(np.exp(log_w).sum(), 1.0) and np.all(np.diff(nodes) > 0)
    assert np.median(nodes) == pytest.approx(1.0, rel=0.01)  # LogNormal(0, 0.75): median 1, symmetric in log
    assert np.allclose(np.log(nodes), -np.log(nodes)[::-1])


def test_integrated_residual_refuses_what_it_cannot_take(runs):
    """A Student-t or per-domain lengthscales with integrated weights, a table with a missing loss or a loss_sd:
    errors that name the option taking them (residual_weights: sampled); a fit file from before the option sampled."""
    assert MixingLawConfig(residual="rff").likelihood == "normal" and MixingLawConfig().likelihood == "studentt"
    for bad in ({"likelihood": "studentt"}, {"residual_lengthscales": "per_domain"}):
        with pytest.raises(ValidationError, match="residual_weights: sampled"):
            MixingLawConfig(residual="rff", **bad)
        assert MixingLawConfig(residual="rff", residual_weights="sampled", **bad).residual_weights == "sampled"
    old = {k: v for k, v in MixingLawConfig(residual="rff", residual_weights="sampled").to_dict().items() if k != "residual_weights"}
    assert MixingLawConfig.from_fit(old).residual_weights == "sampled" and MixingLawConfig.from_fit(old).residual_inputs == "sqrt_shares"
    older = {k: v for k, v in old.items() if k != "residual_inputs"}
    assert MixingLawConfig.from_fit(older).residual_inputs == "shares" and MixingLawConfig(residual="rff").residual_inputs == "sqrt_shares"
    law = MixingLaw(MixingLawConfig(residual="rff"))
    gap = RunsTable(runs.data.drop(index=5).reset_index(drop=True), runs.source)
    missing = runs.data.loc[5]
    with pytest.raises(ValueError, match=rf"has no loss for '{missing['valid_domain']}'; set residual_weights: sampled"):
        law.build_model(gap)
    with pytest.raises(ValueError, match="takes no loss_sd column"):
        law.build_model(RunsTable(runs.data.assign(loss_sd=0.001), runs.source))
    assert MixingResidual.distance_scale(np.eye(3)) == pytest.approx(np.sqrt(2))


# ---------------------------------------------------------------------------------------------
# the config


def test_config_options_and_structure_key(runs):
    cfg = MixingLawConfig(residual="rff", residual_features=8, residual_kernel="matern52", residual_lengthscales="shared", residual_seed=3)
    assert MixingLawConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValidationError, match="residual"):
        MixingLawConfig(residual="gp")
    with pytest.raises(ValidationError, match="residual_features"):
        MixingLawConfig(residual="rff", residual_features=0)
    for name, prior in RESIDUAL_PRIORS.items():
        assert MixingLawConfig().prior(name).to_dict() == prior.to_dict()
    assert MixingLawConfig(priors={"residual_scale": {"dist": "Exponential", "kwargs": {"lam": 50.0}}}).prior("residual_scale").parameters == {"lam": 50.0}
    # without a residual its options do not enter the structure key (fits made before it keep theirs); with one they do
    key = MixingLaw().structure_key(runs)
    assert MixingLaw(MixingLawConfig(residual_features=8, residual_seed=5)).structure_key(runs) == key
    with_residual = MixingLaw(MixingLawConfig(residual="rff")).structure_key(runs)
    assert with_residual != key and MixingLaw(MixingLawConfig(residual="rff", residual_seed=1)).structure_key(runs) != with_residual
    assert "residual" not in MixingLawConfig().structure_settings()


def test_prior_predictive_has_the_residual_at_its_prior_scale(runs):
    """The model's residual is the function's on its own draws, and its spread follows tau's prior."""
    law = MixingLaw(MixingLawConfig(residual="rff", residual_features=32))
    model = law.build_model(runs, generative=True)
    assert "residual_scale" in model.named_vars and model.coords["residual_feature"] == tuple(range(32))
    draws = pm.sample_prior_predictive(draws=200, model=model, random_seed=1)["prior"]
    assert float(draws["residual_scale"].mean()) == pytest.approx(1 / 300, rel=0.2)


# ---------------------------------------------------------------------------------------------
# mocked fits


@pytest.fixture(params=["integrated", "sampled"])
def mocked_residual_fit(runs, mocked_sampling, request):
    cfg = MixingLawConfig(residual="rff", residual_features=16, residual_weights=request.param, sampler={"draws": 20, "chains": 2})
    return MixingLaw(cfg, datasets.pile_targets()).fit(runs, seed=3, progress=False)


def test_mocked_fit_adds_the_residual_everywhere(mocked_residual_fit, runs, tmp_path):
    """predict, predict_draws, the pointwise log-likelihood and the torch function all add the residual (the form
    alone differs by exactly it), the fit file keeps the basis and a reloaded fit predicts identically."""
    from bayes_mixlaw.compare import loo_compare, pointwise_log_likelihood

    law = mocked_residual_fit
    post = law.idata["posterior"]
    frame = _mixtures(runs.train_domains)
    r = frame.filter(like="mix:").to_numpy()
    scale = law.idata["constant_data"]["loss_scale"].values
    form_only = law.form.evaluate(r, {k: post[k].values for k in law.form.parameter_names}, scale)
    w, b = law.idata["constant_data"]["residual_frequencies"].values, law.idata["constant_data"]["residual_phases"].values
    assert np.array_equal(w, fourier_basis(5, 16, seed=0)[0]) and np.array_equal(b, fourier_basis(5, 16, seed=0)[1])
    extra = residual(residual_inputs(r, law.config.residual_inputs), w, b, *(post[k].values for k in PARAMETER_NAMES)) * scale
    assert np.abs(extra).max() > 1e-4
    draws = law.predict_draws(frame, kind="mean")
    _, matrix = law.targets.matrix(law.valid_domains)
    assert np.allclose(draws.values, (form_only + extra) @ matrix.T)
    f = law.target_function("total")
    with torch.no_grad():
        by_torch = f(torch.as_tensor(r)[None].expand(f.n_draws, -1, -1)).numpy()
    assert np.allclose(by_torch, draws.sel(target="total").values.reshape(f.n_draws, -1))
    assert set(law.parameters()["parameter"]) >= {"residual_scale", "residual_lengthscale", "residual_shared"}
    assert "rff residual" in law.summary_line()

    loglik = pointwise_log_likelihood(law)
    assert loglik.shape == (2, 20, len(runs.data)) and np.isfinite(loglik.values).all()
    plain = MixingLaw(MixingLawConfig(sampler={"draws": 20, "chains": 2}), datasets.pile_targets()).fit(runs, seed=3, progress=False)
    assert list(loo_compare({"law": plain, "law + residual": law}).index) in (["law", "law + residual"], ["law + residual", "law"])

    law.save(tmp_path / "fit.nc")
    loaded = BayesianLaw.load(tmp_path / "fit.nc")
    assert loaded.config.residual == "rff" and loaded.structure_key(runs) == law.structure_key(runs)
    pd.testing.assert_frame_equal(loaded.predict(frame, seed=2), law.predict(frame, seed=2))


def test_a_fit_file_keeps_the_basis_it_was_fitted_with(mocked_residual_fit, runs, tmp_path):
    """Predictions read the basis from the fit file, not from the seed: a file whose frequencies differ predicts with its own."""
    law = mocked_residual_fit
    frame = _mixtures(runs.train_domains)
    before = law.predict(frame, kind="mean")
    law.idata["constant_data"]["residual_frequencies"] = law.idata["constant_data"]["residual_frequencies"] * 2.0
    assert not np.allclose(law.predict(frame, kind="mean")["mean"], before["mean"])


def test_ensemble_model_for_botorch_takes_the_residual(mocked_residual_fit, runs):
    from bayes_mixlaw.bo import LawEnsembleModel, suggest

    law = mocked_residual_fit
    model = LawEnsembleModel.from_law(law, draws=16, seed=0)
    r = torch.as_tensor(_mixtures(runs.train_domains).filter(like="mix:").to_numpy())
    f = law.target_function("total", draws=16, seed=0)
    with torch.no_grad():
        assert torch.allclose(model(r[None]).squeeze(-1)[0], -f(r[None].expand(16, -1, -1)))
    assert len(suggest(law, 2, draws=16, seed=0)) == 2


# ---------------------------------------------------------------------------------------------
# a real NUTS fit


@pytest.fixture(scope="module")
def few_pilot_fit(runs):
    """Real NUTS on 8 of the 21 5Mix pilots (70M, 30k steps) with the residual: 2 chains x (400 + 300)."""
    few = runs.runs[:: len(runs.runs) // 8][:8]
    table = RunsTable(runs.data[runs.data["run"].isin(few)].reset_index(drop=True), runs.source)
    cfg = MixingLawConfig(residual="rff", residual_features=32, sampler={"draws": 300, "tune": 400, "chains": 2})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # few pilots for 5 training domains; a short run
        return MixingLaw(cfg, datasets.pile_targets()).fit(table, seed=0, progress=False)


def test_with_few_pilots_the_residual_shrinks_to_the_law(few_pilot_fit):
    """8 pilots: the likelihood cannot tell a residual from the noise, so tau's posterior stays where its prior is
    (mean 0.0033, 95% below 0.01) and below the noise it would otherwise have to explain."""
    post = few_pilot_fit.idata["posterior"]
    tau = post["residual_scale"]
    assert float(tau.mean()) < 0.006
    assert float(tau.quantile(0.9, dim=("chain", "draw")).max()) < 0.02
    assert float((tau / post["noise_sigma"]).median()) < 1.0


@pytest.mark.slow  # two real fits (~40-100 s on 2 cores); the default test run was at 17 minutes with it
def test_the_compiled_model_serves_tables_of_other_run_counts(runs):
    """The integrated residual's model is compiled once and reused with other data (the cache's key holds the domains,
    not the number of runs): 6 pilots, then 9, real NUTS (few draws); each fit's residual matches its own table."""
    cfg = MixingLawConfig(residual="rff", residual_features=8, sampler={"draws": 20, "tune": 30, "chains": 1})
    for n in (6, 9):
        table = RunsTable(runs.data[runs.data["run"].isin(runs.runs[:n])].reset_index(drop=True), runs.source)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # 20 draws
            law = MixingLaw(cfg, datasets.pile_targets()).fit(table, seed=0, progress=False)
        assert law.idata["posterior"]["residual_domain_weights"].shape == (1, 20, 22, 8)
        assert np.isfinite(law.predict(_mixtures(runs.train_domains))["mean"]).all()


@pytest.mark.slow  # ~1-2 minutes on 2 cores after the fit; the residual's mechanics run mocked by default and the real fit's shrinkage just above
def test_real_fit_predicts_reloads_identically_and_suggests(few_pilot_fit, runs, tmp_path):
    from bayes_mixlaw.bo import suggest
    from bayes_mixlaw.optimize import optimal_mixture
    from bayes_mixlaw.report import write_report

    # its sampler problems (8 pilots: divergences, R-hat 1.14) are the law's own on so few pilots (the law alone: 59
    # divergences, R-hat 1.13, benchmarks/README.md), not checked here
    law = few_pilot_fit
    frame = _mixtures(runs.train_domains)
    table = law.predict(frame, ci=0.9)
    assert (table["lower"] < table["mean"]).all() and (table["mean"] < table["upper"]).all()
    law.save(tmp_path / "fit.nc")
    loaded = MixingLaw.load(tmp_path / "fit.nc")
    pd.testing.assert_frame_equal(loaded.predict(frame, ci=0.9), table)
    picks = suggest(loaded, 2, draws=32, seed=0)
    assert len(picks) == 2 and np.allclose(picks.filter(like="mix:").sum(axis=1), 1.0)
    best = optimal_mixture(loaded, draws=64, starts=2, steps=60)
    assert best.optimum.sum() == pytest.approx(1.0) and np.isfinite(best.loss_draws).all()
    write_report(loaded, tmp_path / "report")
    assert {"residual_scale", "residual_lengthscale", "noise_sigma"} <= set(pd.read_csv(tmp_path / "report" / "parameters.csv")["parameter"])
