"""NestedLaw and the optimal mixture: structure, predictions, constraints and persistence (mocked sampling)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pymc as pm
import pytest
import torch

from bayes_mixlaw import Targets
from bayes_mixlaw.config import ConfigError, NestedLawConfig
from bayes_mixlaw.model import BayesianLaw
from bayes_mixlaw.nested import NestedLaw
from bayes_mixlaw.optimize import ConstraintsError, MixtureBounds, optimal_mixture, project_capped_simplex
from bayes_mixlaw.runs import RunsTable, load_runs

DOMAINS = ["Pile-CC", "Github", "ArXiv"]
WEIGHTS = {"Pile-CC": 0.5, "Github": 0.3, "ArXiv": 0.2}


@pytest.fixture(scope="module")
def redpajama(shared_data):
    table = load_runs(shared_data / "mixinglaws" / "RedPajama")
    data = table.data[table.data["valid_domain"].isin(DOMAINS) & (table.data["params"] < 302_311_424)]
    return RunsTable(data.reset_index(drop=True), table.source)


@pytest.fixture
def fitted(redpajama, mocked_sampling):
    # the discrepancy's scale learned from the pilots (one more fit) is tested in test_discrepancy_scale.py and,
    # with real NUTS, in test_nested_integration.py; here the external priors keep each test's fit to one
    law = NestedLaw(NestedLawConfig(sampler={"draws": 30, "chains": 2}, learn_discrepancy=False), Targets(WEIGHTS))
    return law.fit(redpajama, seed=2, progress=False)


def pilot_mixtures(runs, k=3):
    m = runs.mixtures().drop_duplicates().iloc[:k].reset_index(drop=True)
    return m.assign(name=[f"pilot {i}" for i in range(k)])


def assert_predicts_and_reloads(law, path, cases):
    """Each ``(mixtures, params, step)`` of ``cases`` predicts finite medians and intervals, lower below upper; the fit
    saved to ``path`` reloads and predicts the last case identically. Returns the reloaded fit."""
    for mixtures, params, step in cases:
        table = law.predict(mixtures, params=params, step=step)
        assert np.isfinite(table[["median", "lower", "upper"]]).all().all() and (table["lower"] < table["upper"]).all()
    again = NestedLaw.load(law.save(path))
    mixtures, params, step = cases[-1]
    pd.testing.assert_frame_equal(again.predict(mixtures, params=params, step=step), law.predict(mixtures, params=params, step=step))
    return again


def test_model_has_labelled_dims_and_a_grid(redpajama):
    law = NestedLaw(targets=Targets(WEIGHTS))
    model = law.build_model(redpajama)
    assert list(model.coords["valid_domain"]) == DOMAINS or set(model.coords["valid_domain"]) == set(DOMAINS)
    assert len(model.coords["mixture"]) == 20
    assert list(model.coords["size"]) == [18_915_328, 85_056_000, 201_541_632]
    assert len(model.coords["length"]) == 11
    assert model.named_vars_to_dims["t"] == ("valid_domain", "train_domain")
    assert model.named_vars_to_dims["log_ref"] == ("mixture", "valid_domain")
    # run names differing only by the size prefix give one mixture, labelled by what they share
    assert all(not label.startswith(("70M", "160M", "305M")) for label in model.coords["mixture"])


def test_share_parameterisation_is_the_same_law_as_the_amplitudes(redpajama):
    """The default samples log(a + b) and logit(a / (a + b)); log a and log b are their functions,
    and at equal a, b both parameterisations give the model the same log-likelihood."""
    share_law, amplitude_law = NestedLaw(targets=Targets(WEIGHTS)), NestedLaw(NestedLawConfig(scaling_parameterisation="amplitude"), Targets(WEIGHTS))
    share_built, amplitude_built = share_law.build(redpajama), amplitude_law.build(redpajama)
    share, amplitude = share_built.model, amplitude_built.model
    assert share_built.key != amplitude_built.key  # never one compiled model for both
    assert {"log_ab", "ab_split"} <= set(share.named_vars) and "log_ab" not in amplitude.named_vars
    assert share["log_a"] in share.deterministics and amplitude["log_a"] in amplitude.free_RVs
    point = share.initial_point()
    rng = np.random.default_rng(0)
    point["log_ab"], point["ab_split"] = rng.normal(size=3), rng.normal(size=3)
    log_a, log_b = share.compile_fn(share.replace_rvs_by_values([share["log_a"], share["log_b"]]), inputs=share.value_vars, on_unused_input="ignore")(point)
    a, b = np.exp(log_a), np.exp(log_b)
    np.testing.assert_allclose(np.log(a + b), point["log_ab"])
    np.testing.assert_allclose(np.log(a / b), point["ab_split"])
    other = amplitude.initial_point() | {k: v for k, v in point.items() if k in amplitude.named_vars} | {"log_a": log_a, "log_b": log_b}
    share_loglike = share.compile_fn(share.observedlogp, inputs=share.value_vars, on_unused_input="ignore")(point)
    amplitude_loglike = amplitude.compile_fn(amplitude.observedlogp, inputs=amplitude.value_vars, on_unused_input="ignore")(other)
    np.testing.assert_allclose(share_loglike, amplitude_loglike)


def test_stick_breaking_shares_are_the_share_model_in_other_coordinates(redpajama):
    """``stick`` samples the step share's logit v and the size share of the rest's logit w: at the matching
    log(a + b) and logit(a / (a + b)) the whole log density (priors, the potential, the likelihood) is the
    ``share`` model's, because the map (v, w) -> (log(a + b), log(a / b)) has unit Jacobian."""
    share = NestedLaw(targets=Targets(WEIGHTS)).build(redpajama)
    stick = NestedLaw(NestedLawConfig(scaling_parameterisation="stick"), Targets(WEIGHTS)).build(redpajama)
    assert share.key != stick.key
    share_model, stick_model = share.model, stick.model
    assert {"step_share_logit", "size_share_logit"} <= {v.name for v in stick_model.free_RVs}
    assert stick_model["log_ab"] in stick_model.deterministics and stick_model["log_a"] in stick_model.deterministics
    rng = np.random.default_rng(1)
    # each function compiled once (compiling them at every point made this test a minute long)
    derived_fn = stick_model.compile_fn(
        stick_model.replace_rvs_by_values([stick_model["log_ab"], stick_model["ab_split"], stick_model["log_a"], stick_model["log_b"]]),
        inputs=stick_model.value_vars,
        on_unused_input="ignore",
    )
    stick_logp_fn = stick_model.compile_fn(stick_model.logp(), inputs=stick_model.value_vars, on_unused_input="ignore")
    share_logp_fn = share_model.compile_fn(share_model.logp(), inputs=share_model.value_vars, on_unused_input="ignore")
    for _ in range(3):
        point = stick_model.initial_point() | {"step_share_logit": rng.normal(-1.0, 1.5, 3), "size_share_logit": rng.normal(0.0, 1.5, 3)}
        for name in ("log_ab_sigma_log__", "log_ab_mu", "ab_split_mu"):
            point[name] = point[name] + rng.normal(0.0, 0.3, np.shape(point[name]))
        derived = derived_fn(point)
        q_b = 1 / (1 + np.exp(-point["step_share_logit"]))
        q_a = (1 - q_b) / (1 + np.exp(-point["size_share_logit"]))
        np.testing.assert_allclose(np.exp(derived[2]), q_a / (1 - q_a - q_b))  # a = q_a / q_e
        np.testing.assert_allclose(np.exp(derived[3]), q_b / (1 - q_a - q_b))
        other = {k: v for k, v in point.items() if k in share_model.named_vars or k.endswith("__")} | {"log_ab": derived[0], "ab_split": derived[1]}
        other = {k: v for k, v in other.items() if k in {v.name for v in share_model.value_vars}}
        np.testing.assert_allclose(stick_logp_fn(point), share_logp_fn(other), rtol=1e-9)


def test_predict_columns_scale_and_errors(fitted, redpajama):
    mixtures = pilot_mixtures(redpajama)
    pred = fitted.predict(mixtures, params=302_311_424, step=30_000, ci=0.8)
    assert {"name", "params", "step", "target", "mean", "median", "lower", "upper"} <= set(pred.columns)
    assert (pred["params"] == 302_311_424).all() and (pred["step"] == 30_000).all()
    assert set(pred["target"]) == {*DOMAINS, "total"}
    assert (pred["lower"] < pred["median"]).all() and (pred["median"] < pred["upper"]).all()
    with pytest.raises(ValueError, match="give params and step"):
        fitted.predict(mixtures, params=3e8)
    with pytest.raises(ValueError, match="in step, not tokens"):
        fitted.predict(mixtures, params=3e8, tokens=3e10)


def test_more_steps_and_parameters_lower_the_predicted_loss_per_draw(fitted, redpajama):
    """Every posterior draw of the law decreases in N and S (a, b, alpha, beta > 0; gamma is small)."""
    r = pilot_mixtures(redpajama, 2)
    small = fitted.predict_draws(r, params=1e8, step=20_000, kind="mean").values
    longer = fitted.predict_draws(r, params=1e8, step=28_000, kind="mean").values  # inside the pilots: no discrepancy
    assert (longer <= small + 1e-12).mean() > 0.95


def test_discrepancy_widens_only_beyond_the_pilots_and_is_shared_by_mixtures(fitted, redpajama):
    """Inside the pilots' range the discrepancy changes nothing; beyond it every draw moves by
    exp(D kappa z), the same factor for every mixture (the law's error at that scale)."""
    r = pilot_mixtures(redpajama, 3)
    off = NestedLaw(fitted.config.model_copy(update={"discrepancy": False}), fitted.targets)
    off.idata, off.runs = fitted.idata, fitted.runs
    inside = {"params": 1e8, "step": 25_000, "kind": "mean", "seed": 4}
    np.testing.assert_array_equal(fitted.predict_draws(r, **inside).values, off.predict_draws(r, **inside).values)
    beyond = {"params": 8e8, "step": 100_000, "kind": "mean", "seed": 4}
    ratio = fitted.predict_draws(r, **beyond).values / off.predict_draws(r, **beyond).values
    assert not np.allclose(ratio, 1.0)
    np.testing.assert_allclose(ratio[:, :, 0, :3], ratio[:, :, 2, :3], rtol=1e-10)  # shared by the mixtures (domain targets)
    from bayes_mixlaw import discrepancy

    axes = discrepancy.distances(fitted, {"params": 8e8, "step": 100_000})
    assert axes["size"] == pytest.approx(np.log(8e8 / 201_541_632)) and axes["length"] == pytest.approx(np.log(100_000 / 30_000))
    assert "beyond the pilots" in discrepancy.describe(fitted, {"params": 8e8, "step": 100_000})
    table = fitted.predict(r, params=8e8, step=100_000)
    assert table["beyond_log_size"].iloc[0] == pytest.approx(axes["size"], abs=1e-6) and (table["beyond_mixture"] == 0).all()


def test_a_mixture_beyond_the_pilots_hull_carries_its_own_discrepancy(fitted, redpajama):
    """Inside the hull nothing changes; outside, each mixture gets its own error, growing with its distance."""
    from bayes_mixlaw import discrepancy

    assert discrepancy.MIXTURE in fitted.idata["posterior"]
    pilots = fitted.pilot_mixtures
    kappa = fitted.idata["posterior"][discrepancy.MIXTURE].values
    assert discrepancy.mixture_factor(fitted, pilots[:3], kappa, 4, np.random.default_rng(0)) == 1.0
    corner = np.eye(pilots.shape[1])[:2]  # pure domains, far outside
    d = discrepancy.mixture_distance(corner, pilots)
    log_factor = np.log(discrepancy.mixture_factor(fitted, corner, kappa, 4, np.random.default_rng(0)))
    assert log_factor.shape[-2:] == (2, 4) and (d > 0.3).all()
    np.testing.assert_allclose(log_factor.std(axis=(0, 1, 3)) / d, np.sqrt(np.mean(kappa**2)), rtol=0.15)
    assert not np.allclose(log_factor[..., 0, :], log_factor[..., 1, :])  # each mixture its own


def test_mixture_distance_is_total_variation_from_the_pilots_hull():
    from bayes_mixlaw.discrepancy import mixture_distance

    pilots = np.array([[0.5, 0.5, 0.0], [0.3, 0.3, 0.4], [0.6, 0.2, 0.2]])
    inside = 0.2 * pilots[0] + 0.5 * pilots[1] + 0.3 * pilots[2]
    np.testing.assert_allclose(
        mixture_distance(np.vstack([inside, pilots, [1, 0, 0], [0, 0, 1]]), pilots), [0, 0, 0, 0, 0.4, 0.6], atol=1e-9
    )  # a pure domain: the share no pilot blend reaches


def test_pilot_mixtures_keep_their_departure_new_ones_draw_it(fitted, redpajama):
    pilots = pilot_mixtures(redpajama, 2)
    a = fitted.predict_draws(pilots, params=1e8, step=2e4, kind="mean", seed=0).values
    b = fitted.predict_draws(pilots, params=1e8, step=2e4, kind="mean", seed=1).values
    np.testing.assert_allclose(a, b)  # the fitted departures: no randomness in the law's mean
    new = pilots.copy()
    new.loc[:, [c for c in new.columns if c.startswith("mix:")]] = 1 / 7
    c = fitted.predict_draws(new, params=1e8, step=2e4, kind="mean", seed=0).values
    d = fitted.predict_draws(new, params=1e8, step=2e4, kind="mean", seed=1).values
    assert not np.allclose(c, d)  # a new mixture draws its departure afresh


def test_torch_target_function_matches_numpy_law(fitted, redpajama):
    """The optimiser's torch function and the numpy predictions are the same law (written once)."""
    assert_torch_matches_numpy(fitted, redpajama)


def assert_torch_matches_numpy(fitted, redpajama):
    """The fit's torch target function at the uniform mixture equals its numpy predictive means there."""
    r = pilot_mixtures(redpajama, 3)
    new = r.copy()
    new.loc[:, [c for c in new.columns if c.startswith("mix:")]] = np.full(7, 1 / 7)
    f = fitted.target_function("total", params=1e8, step=2.5e4)  # inside the pilots: no discrepancy draws
    x = torch.as_tensor(np.full((1, 1, 7), 1 / 7))
    draws = fitted.idata["posterior"].sizes["draw"] * fitted.idata["posterior"].sizes["chain"]
    via_torch = f(x.expand(draws, 1, 7)).detach().numpy()[:, 0]
    # numpy law without the departure of a new mixture and without the discrepancy beyond the pilots'
    # hull (the uniform mixture lies outside it): both have mean zero and the torch target leaves them out
    import xarray as xr

    from bayes_mixlaw import discrepancy

    posterior = fitted.idata["posterior"].to_dataset()
    assert discrepancy.mixture_distance(new.filter(like="mix:").to_numpy()[:1], fitted.pilot_mixtures)[0] > 0
    fitted.idata["posterior"] = xr.DataTree(
        posterior.assign(mixture_sigma=posterior["mixture_sigma"] * 0.0, **{discrepancy.MIXTURE: posterior[discrepancy.MIXTURE] * 0.0})
    )
    try:
        via_numpy = fitted.predict_draws(new.iloc[:1], params=1e8, step=2.5e4, kind="mean").sel(target="total").values.reshape(-1)
    finally:
        fitted.idata["posterior"] = xr.DataTree(posterior)
    np.testing.assert_allclose(via_torch, via_numpy, rtol=1e-10)


@pytest.mark.parametrize("form", ["power_law", "power_law_base"])
def test_the_mixing_law_at_the_reference_scale_is_a_registered_form(redpajama, mocked_sampling, tmp_path, form):
    """Issue 16: ``law:`` names the nested law's mixing law at its reference scale, so a form's accuracy at new mixtures
    reaches the target scale; the form's function is the law there, in numpy and torch alike."""
    assert "law" not in NestedLawConfig().structure_settings()  # explicit fits keep their structure key
    law = NestedLaw(NestedLawConfig(law=form, sampler={"draws": 30, "chains": 2}, learn_discrepancy=False), Targets(WEIGHTS))
    law.fit(redpajama, seed=2, progress=False)
    post = law.idata["posterior"]
    assert set(law.form.parameter_names) <= set(post.data_vars) and "t" not in post.data_vars and "log_c" not in post.data_vars
    # the reference law (the form's numpy function) plus each pilot mixture's departure is the model's log_ref (PyTensor)
    np.testing.assert_allclose(np.log(law.reference_law(law.pilot_mixtures)) + post["departure"].values, post["log_ref"].values, rtol=1e-10)
    np.testing.assert_allclose(law._pilot_departures(), post["departure"].values, rtol=1e-8, atol=1e-12)
    assert {*law.form.summary_names, "alpha"} <= set(law.parameters()["parameter"])
    uniform = pd.DataFrame([{f"mix:{d}": 1 / 7 for d in redpajama.train_domains}])
    assert_predicts_and_reloads(law, tmp_path / "power.nc", [(uniform, 1e8, 2.5e4), (pilot_mixtures(redpajama), 3e8, 3e4)])
    f = law.target_function("total", params=1e8, step=2.5e4)  # one mixture a draw: (draws, 1, M)
    x = torch.full((f.n_draws, 1, 7), 1 / 7, dtype=torch.float64, requires_grad=True)
    value = f(x)
    value.sum().backward()
    assert torch.isfinite(value).all() and torch.isfinite(x.grad).all()
    assert_torch_matches_numpy(law, redpajama)
    if form == "power_law_base":  # the report takes the form's parameter table (no interaction matrix t)
        from bayes_mixlaw.report import write_report

        page = write_report(law, tmp_path / "report").read_text()
        assert "power_log_b" in page and (tmp_path / "report" / "optimum.png").stat().st_size > 0
    with pytest.raises(ValueError, match="n_implicit.*law: explicit, power_law or power_law_base"):
        NestedLawConfig(law="implicit")
    with pytest.raises(ValueError, match="unknown law form 'powr'; the registered forms are explicit, implicit, power_law"):
        NestedLawConfig(law="powr")


def test_save_load_predicts_identically(fitted, redpajama, tmp_path):
    path = fitted.save(tmp_path / "nested.nc")
    loaded = BayesianLaw.load(path)
    assert isinstance(loaded, NestedLaw)
    m = pilot_mixtures(redpajama)
    pd.testing.assert_frame_equal(fitted.predict(m, params=3e8, step=3e4), loaded.predict(m, params=3e8, step=3e4))


def test_a_loaded_fit_rebuilds_its_model_from_the_file(fitted, tmp_path):
    loaded = BayesianLaw.load(fitted.save(tmp_path / "nested.nc"))
    assert loaded._built is None
    assert loaded.built.key == fitted.built.key == loaded.idata.attrs["structure_key"]
    assert {v.name for v in loaded.model.free_RVs} == {v.name for v in fitted.model.free_RVs}
    for dim in ("mixture", "size", "length", "valid_domain"):
        assert list(loaded.model.coords[dim]) == list(fitted.model.coords[dim])


def test_a_fit_in_the_earlier_nested_format_is_refused_with_both_versions_named(fitted, tmp_path):
    fitted.idata.attrs["nested_format"] = 1  # as written before the run effects were integrated out
    fitted.idata.attrs["bayes_mixlaw_version"] = "0.0.9"
    path = fitted.save(tmp_path / "old.nc")
    with pytest.raises(ValueError, match=r"bayes_mixlaw 0\.0\.9 in nested-law format 1; .* reads format 2 .* refit"):
        BayesianLaw.load(path)


COSINE = {"kind": "cosine", "total_steps": 30_000, "warmup_steps": 300, "peak_lr": 3e-4, "final_lr": 3e-5}
WSD = {"kind": "wsd", "total_steps": 100_000, "warmup_steps": 1_000, "peak_lr": 3e-4, "final_lr": 3e-5, "decay_start": 80_000, "decay_shape": "linear"}


@pytest.fixture
def scheduled_fit(redpajama, mocked_sampling):
    """The RedPajama pilots read through an assumed cosine to 30k (mocked sampling: prior draws)."""
    law = NestedLaw(NestedLawConfig(sampler={"draws": 30, "chains": 2}, learn_discrepancy=False), Targets(WEIGHTS))
    return law.fit(redpajama, schedule=COSINE, seed=2, progress=False)


def test_an_lr_column_makes_the_step_term_read_the_schedule(redpajama):
    """Issue 14: the nested law's step term reads each checkpoint through its run's schedule (S1 for the
    step, S2 annealing); without schedules it takes steps as they come (no annealing variable)."""
    from bayes_mixlaw.schedules import Schedule

    cosine = Schedule.from_dict(COSINE)
    with_lr = RunsTable(redpajama.data.assign(lr=cosine.lr(redpajama.data["step"].to_numpy(int))), redpajama.source)
    built = NestedLaw(targets=Targets(WEIGHTS)).build(with_lr)
    assert "log_anneal" in {v.name for v in built.model.free_RVs}
    areas = built.layout["areas"]
    assert set(areas.origin.values()) == {"lr column"} and areas.s1.shape == (*built.layout["curve_shape"][:2], len(built.layout["length_values"]))
    plain = NestedLaw(targets=Targets(WEIGHTS)).build(redpajama)
    assert plain.layout["areas"] is None and "log_anneal" not in {v.name for v in plain.model.free_RVs}
    assert plain.key != built.key  # another model structure


def test_a_schedule_aware_fit_predicts_under_the_target_schedule(scheduled_fit, fitted, redpajama, tmp_path):
    m = pilot_mixtures(redpajama, 2)
    with pytest.raises(ValueError, match="give the target run's schedule .*--schedule SCHED.json"):
        scheduled_fit.predict(m, params=3e8, step=1e5)
    with pytest.raises(ValueError, match="takes steps as they come .* a target schedule cannot be used"):
        fitted.predict(m, params=3e8, step=1e5, schedule=WSD)
    constant = {"kind": "constant", "total_steps": 100_000, "warmup_steps": 1_000, "peak_lr": 3e-4}
    r = m.filter(like="mix:").to_numpy()

    def law(step, schedule):  # (chain, draw, mixture, valid_domain), without run effects or discrepancy
        return scheduled_fit.law_draws(r, 3e8, step, rng=np.random.default_rng(0), new_runs=False, run_effects=False, schedule=schedule)

    # the decay to 0.1x loses forward area (S1) and buys annealing (S2), as the law says per draw with the
    # target schedule's areas in the fit's units (the reference LR and S0 of the pilots' cosine)
    from bayes_mixlaw.laws import relative_scaling
    from bayes_mixlaw.schedules import Schedule

    areas, post = scheduled_fit.schedule_areas, scheduled_fit.idata["posterior"]
    n_rel = 3e8 / json.loads(scheduled_fit.idata.attrs["reference_scale"])["params"]
    pilot = scheduled_fit._pilot_index(r)  # pilot mixtures: their own log a, log b
    log_a, log_b = (post[k].values[:, :, pilot] for k in ("log_a_mixture", "log_b_mixture"))
    per_domain = {k: post[k].values[:, :, None, :] for k in ("alpha", "beta", "gamma")}

    def ratio(schedule):
        f = Schedule.from_dict(schedule).features([100_000], lr_ref=areas.lr_ref)
        return relative_scaling(n_rel, f.s1[0] / areas.s0, log_a, log_b, **per_domain, annealing=post["anneal"].values[:, :, None, :] * f.s2[0] / areas.s0)

    np.testing.assert_allclose(law(100_000, WSD) / law(100_000, constant), ratio(WSD) / ratio(constant), rtol=1e-10)
    assert (law(100_000, WSD) < law(100_000, constant)).mean() > 0.5
    np.testing.assert_allclose(law(80_000, WSD), law(80_000, constant))  # before the decay: the same run
    assert "learning-rate schedules of" in scheduled_fit.summary_line() and "from schedule" in scheduled_fit.summary_line()
    loaded = BayesianLaw.load(scheduled_fit.save(tmp_path / "scheduled.nc"))
    pd.testing.assert_frame_equal(loaded.predict(m, params=3e8, step=1e5, schedule=WSD), scheduled_fit.predict(m, params=3e8, step=1e5, schedule=WSD))
    assert loaded.built.key == scheduled_fit.built.key  # rebuilt from the file, areas included
    np.testing.assert_array_equal(loaded.built.layout["areas"].s1, scheduled_fit.built.layout["areas"].s1)


def test_torch_target_function_matches_numpy_under_a_schedule(scheduled_fit):
    import xarray as xr

    from bayes_mixlaw import discrepancy

    f = scheduled_fit.target_function("total", params=1e8, step=25_000, schedule=COSINE)
    x = torch.as_tensor(np.full((1, 1, 7), 1 / 7))
    via_torch = f(x.expand(f.n_draws, 1, 7)).detach().numpy()[:, 0]
    posterior = scheduled_fit.idata["posterior"].to_dataset()
    scheduled_fit.idata["posterior"] = xr.DataTree(
        posterior.assign(mixture_sigma=posterior["mixture_sigma"] * 0.0, **{discrepancy.MIXTURE: posterior[discrepancy.MIXTURE] * 0.0})
    )
    try:
        uniform = pd.DataFrame(np.full((1, 7), 1 / 7), columns=[f"mix:{d}" for d in scheduled_fit.train_domains])
        via_numpy = scheduled_fit.predict_draws(uniform, params=1e8, step=25_000, schedule=COSINE, kind="mean").sel(target="total").values.reshape(-1)
    finally:
        scheduled_fit.idata["posterior"] = xr.DataTree(posterior)
    np.testing.assert_allclose(via_torch, via_numpy, rtol=1e-10)


def test_nested_needs_sizes_and_lengths(redpajama):
    one_size = RunsTable(redpajama.data[redpajama.data["params"] == 18_915_328].reset_index(drop=True), "x.csv")
    with pytest.raises(ValueError, match="x.csv: 'params' takes one value"):
        NestedLaw().build_model(one_size)


def test_config_rejects_non_zero_sum_scale_interactions(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text("priors:\n  size_t_mu: {dist: Normal, kwargs: {sigma: 1.0}}\n")
    with pytest.raises(ConfigError, match="size_t_mu.*ZeroSumNormal"):
        NestedLawConfig.from_file(path)


# ---------------------------------------------------------------------------------------------
# the optimal mixture


def test_projection_onto_the_capped_simplex():
    lo = torch.tensor([0.0, 0.1, 0.0, 0.0], dtype=torch.float64)
    hi = torch.tensor([0.3, 1.0, 1.0, 0.2], dtype=torch.float64)
    y = torch.randn(50, 4, dtype=torch.float64) * 2
    r = project_capped_simplex(y, lo, hi)
    assert torch.allclose(r.sum(-1), torch.ones(50, dtype=torch.float64), atol=1e-9)
    assert (r >= lo - 1e-12).all() and (r <= hi + 1e-12).all()
    inside = torch.tensor([[0.2, 0.5, 0.2, 0.1]], dtype=torch.float64)
    assert torch.allclose(project_capped_simplex(inside, lo, hi), inside)
    # the projection is the closest feasible point: no random feasible point is closer
    cand = project_capped_simplex(torch.rand(2000, 4, dtype=torch.float64), lo, hi)
    assert ((cand - y[0]).norm(dim=-1) >= (r[0] - y[0]).norm() - 1e-9).all()


def test_bounds_errors_name_the_domain_and_file(tmp_path):
    domains = ["a", "b", "c"]
    with pytest.raises(ConstraintsError, match="caps.json: cap for 'z'"):
        MixtureBounds(caps={"z": 0.2}).arrays(domains, "caps.json")
    with pytest.raises(ConstraintsError, match="minimum of 'a' is 1.5"):
        MixtureBounds(minimums={"a": 1.5}).arrays(domains)
    with pytest.raises(ConstraintsError, match="caps sum to 0.600"):
        MixtureBounds(caps={"a": 0.2, "b": 0.2, "c": 0.2}).arrays(domains)
    with pytest.raises(ConstraintsError, match="minimum of 'b' .* exceeds its cap"):
        MixtureBounds(caps={"b": 0.1}, minimums={"b": 0.3}).arrays(domains)
    path = tmp_path / "flat.json"
    path.write_text('{"a": 0.4}')
    assert MixtureBounds.from_file(path).caps == {"a": 0.4}


def test_optimal_mixture_respects_caps_and_minimums_and_beats_the_reference(fitted, redpajama):
    bounds = MixtureBounds(caps={"GitHub": 0.1}, minimums={"Books": 0.05})
    reference = pilot_mixtures(redpajama, 1)
    result = optimal_mixture(fitted, params=1e9, step=1e5, bounds=bounds, reference=reference, draws=40, steps=150)
    domains = fitted.train_domains
    assert result.optimum.sum() == pytest.approx(1.0)
    assert result.optimum[domains.index("GitHub")] <= 0.1 + 1e-9
    assert result.optimum[domains.index("Books")] >= 0.05 - 1e-9
    assert np.allclose(result.per_draw.sum(axis=1), 1.0)
    # the Bayes optimum is at least as good in expectation as the reference and as every pilot
    f = fitted.target_function("total", params=1e9, step=1e5, draws=40)
    with torch.no_grad():
        at_opt = f(torch.as_tensor(result.optimum).expand(40, 1, 7)).mean()
        pilots = torch.as_tensor(redpajama.mixtures().drop_duplicates().to_numpy())
        feasible = (pilots[:, domains.index("GitHub")] <= 0.1) & (pilots[:, domains.index("Books")] >= 0.05)
        at_pilots = f(pilots[feasible][None].expand(40, -1, -1)).mean(0)
    assert (at_opt <= at_pilots + 1e-9).all()
    table = result.table()
    assert set(table["quantity"]) == {"proportion", "loss", "reference_loss", "p_beats_reference"}
    assert 0 <= result.p_beats_reference <= 1


# ---------------------------------------------------------------------------------------------
# Bayesian optimisation on the posterior


def test_ensemble_model_shapes_and_gradients(fitted):
    from bayes_mixlaw.bo import LawEnsembleModel

    model = LawEnsembleModel.from_law(fitted, params=1e9, step=1e5, draws=16)
    X = torch.full((5, 2, 7), 1 / 7, dtype=torch.float64, requires_grad=True)
    out = model(X)
    assert out.shape == (5, 16, 2, 1) and out.dtype == torch.float64
    posterior = model.posterior(X)
    assert posterior.mean.shape == (5, 2, 1)
    out.sum().backward()
    assert X.grad is not None and torch.isfinite(X.grad).all()
    # values are the negated loss of the numpy predictions' law (BoTorch maximises)
    f = fitted.target_function("total", params=1e9, step=1e5, draws=16)
    torch.testing.assert_close(out[0, :, 0, 0], -f(X[:1, :1].detach().expand(16, 1, 7))[:, 0])


@pytest.mark.parametrize("acquisition", ["thompson", "qlognei"])
def test_suggest_respects_the_constraints(fitted, acquisition):
    from bayes_mixlaw.bo import suggest

    bounds = MixtureBounds(caps={"GitHub": 0.1}, minimums={"Books": 0.05})
    table = suggest(fitted, 3, acquisition=acquisition, bounds=bounds, draws=16, params=1e9, step=1e5)
    mix = table[[c for c in table.columns if c.startswith("mix:")]]
    assert len(table) == 3 and np.allclose(mix.sum(axis=1), 1.0)
    assert (mix["mix:GitHub"] <= 0.1 + 1e-6).all() and (mix["mix:Books"] >= 0.05 - 1e-6).all()
    assert {"acquisition_value", "mean", "lower", "upper", "params", "step"} <= set(table.columns)
    assert len(mix.round(6).drop_duplicates()) == 3


def test_exploit_puts_the_posterior_mean_optimum_first(fitted):
    """With exploit, one suggestion is the mixture of lowest posterior mean loss (continuous search:
    no worse than the Thompson picks and the Bayes decision of optimal_mixture; among candidates:
    their argmin), labelled as such; the others stay Thompson draws within the bounds."""
    from bayes_mixlaw.bo import suggest
    from bayes_mixlaw.optimize import optimal_mixture

    scale = dict(params=1e9, step=1e5)
    bounds = MixtureBounds(caps={"GitHub": 0.1})
    f = fitted.target_function("total", draws=16, seed=0, **scale)
    mean_loss = lambda mix: f(torch.as_tensor(mix)[None].expand(16, -1, -1)).mean(0).numpy()  # noqa: E731
    table = suggest(fitted, 3, acquisition="thompson", exploit=True, bounds=bounds, draws=16, seed=0, **scale)
    mix = table[[c for c in table.columns if c.startswith("mix:")]].to_numpy()
    assert (table["acquisition"] == "posterior-mean optimum").sum() == 1 and (table["acquisition"] == "thompson").sum() == 2
    assert np.allclose(mix.sum(axis=1), 1.0) and (table["mix:GitHub"] <= 0.1 + 1e-6).all()
    first = int(np.flatnonzero(table["acquisition"] == "posterior-mean optimum")[0])
    values = mean_loss(mix)
    assert values[first] <= values.min() + 1e-9
    bayes = optimal_mixture(fitted, draws=16, seed=0, bounds=bounds, **scale).optimum
    assert values[first] <= mean_loss(bayes[None])[0] + 5e-4  # two local searches from different starts
    candidates = np.random.default_rng(1).dirichlet(np.ones(len(fitted.train_domains)), size=40)
    table = suggest(fitted, 2, acquisition="thompson", exploit=True, candidates=candidates, draws=16, seed=0, **scale)
    row = table.loc[table["acquisition"] == "posterior-mean optimum", [c for c in table.columns if c.startswith("mix:")]].to_numpy()[0]
    np.testing.assert_allclose(row, candidates[np.argmin(mean_loss(candidates))], atol=1e-9)
    only = suggest(fitted, 1, acquisition="thompson", exploit=True, draws=16, seed=0, **scale)
    assert list(only["acquisition"]) == ["posterior-mean optimum"]
    with pytest.raises(ValueError, match="exploit .* thompson"):
        suggest(fitted, 2, acquisition="qlognei", exploit=True, draws=16, **scale)


@pytest.mark.parametrize("which", ["fitted", "scheduled_fit"])
def test_nested_pointwise_log_likelihood_matches_pymc(which, request):
    """One term per curve (run x domain, run effects integrated out), given the draw's departures.
    Shifting each curve's residuals back by its mixture's departure at its size, d + e log n, and integrating the
    departure out in numpy (run_effects.shift_information, integrate_shared_line) gives the model's likelihood
    term, draw by draw. Under schedules each pilot's checkpoints are read through its own cell of the
    schedule grid in numpy as in the model."""
    from bayes_mixlaw.compare import pointwise_log_likelihood
    from bayes_mixlaw.run_effects import integrate_shared_level, integrate_shared_line, marginal_loglik, shift_information

    fitted = request.getfixturevalue(which)
    ours = pointwise_log_likelihood(fitted)
    assert ours.dims == ("chain", "draw", "curve") and ours.sizes["curve"] == 20 * 3 * 3
    import pytensor

    model = fitted.model
    with model:
        pm.set_data(fitted._data(fitted.built.layout))
    term = pytensor.function(model.free_RVs, model["loss"], on_unused_input="ignore")
    post = fitted.idata["posterior"]
    (m, sy, syy), (se, sey, see), scales = fitted._curve_terms()
    shape = fitted.idata["constant_data"]["curve_m"].shape
    observed = np.flatnonzero(fitted.idata["constant_data"]["curve_m"].values.ravel() > 0)
    mixture, size, valid = np.unravel_index(observed, shape)
    log_size = np.log(fitted._data(fitted.built.layout)["sizes_rel"])
    np.testing.assert_allclose(ours.values, marginal_loglik(m, sy, syy, se, sey, see, *scales))
    for chain, draw in [(0, 0), (1, 7)]:
        at = (chain, draw)
        sloped = "departure_slope" in post  # mixture_size_slope (off here with three domains: config.for_domains)
        d = post["departure"].values[at][mixture, valid] + (post["departure_slope"].values[at][mixture, valid] * log_size[size] if sloped else 0.0)
        base = (se[at] + m * d, sey[at] + sy * d, see[at] + 2 * d * se[at] + d * d * m)  # residuals without the departure
        noise, tau_u, tau_w = (x[at] for x in scales)
        a, b, _, _ = shift_information(m, sy, syy, *base[:2], noise, tau_u, tau_w)
        a_cells, b_cells = np.zeros(shape), np.zeros(shape)
        a_cells[mixture, size, valid], b_cells[mixture, size, valid] = a, b
        if sloped:
            sigmas = (post["mixture_sigma"].values[at], post["mixture_size_sigma"].values[at])  # per validation domain
            extra, *_ = integrate_shared_line(a_cells.transpose(0, 2, 1), b_cells.transpose(0, 2, 1), log_size, *sigmas)
        else:
            extra, *_ = integrate_shared_level(a_cells.sum(axis=1), b_cells.sum(axis=1), post["mixture_sigma"].values[at])
        expected = marginal_loglik(m, sy, syy, *base, noise, tau_u, tau_w).sum() + extra.sum()
        values = [post[rv.name].values[chain, draw] for rv in model.free_RVs]
        np.testing.assert_allclose(expected, term(*values), rtol=1e-8)
        np.testing.assert_allclose(
            ours.values[chain, draw].sum(), (marginal_loglik(m, sy, syy, *base, noise, tau_u, tau_w) + d * b - 0.5 * d * d * a).sum(), rtol=1e-8
        )


def test_run_effects_integrate_out_exactly():
    """The closed form equals the Gaussian with level and slope covariance, and the conditional
    mean is the Gaussian regression of the residuals on [1, y]."""
    from scipy import stats

    from bayes_mixlaw.run_effects import conditional_effects, curve_sums, marginal_loglik

    rng = np.random.default_rng(3)
    y = np.log(np.linspace(10, 30, 11) / 17.0)
    e = rng.normal(size=11) * 0.01 + 0.02 + 0.01 * y
    sigma, tau_u, tau_w = 0.004, 0.02, 0.05
    cov = sigma**2 * np.eye(11) + tau_u**2 + tau_w**2 * np.outer(y, y)
    se, sey, see = curve_sums(e[None], y, np.zeros(11, dtype=int), 1)
    ours = marginal_loglik(11.0, y.sum(), (y**2).sum(), se[0, 0], sey[0, 0], see[0, 0], sigma, tau_u, tau_w)
    np.testing.assert_allclose(ours, stats.multivariate_normal(np.zeros(11), cov).logpdf(e), rtol=1e-10)
    z = np.column_stack([np.ones(11), y])
    prior = np.diag([tau_u**2, tau_w**2])
    gain = prior @ z.T @ np.linalg.inv(cov)
    mean_u, mean_w, var_u, cov_uw, var_w = conditional_effects(11.0, y.sum(), (y**2).sum(), se[0, 0], sey[0, 0], sigma, tau_u, tau_w)
    np.testing.assert_allclose([mean_u, mean_w], gain @ e, rtol=1e-8)
    np.testing.assert_allclose([[var_u, cov_uw], [cov_uw, var_w]], prior - gain @ z @ prior, rtol=1e-8, atol=1e-14)
    assert marginal_loglik(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, sigma, tau_u, tau_w) == pytest.approx(0.0, abs=1e-12)


def test_a_level_shared_by_curves_integrates_out_exactly():
    """A departure d ~ N(0, s^2) shared by three curves (a pilot mixture's runs at three sizes, each
    with its own level and slope integrated out): the curves' marginals plus
    integrate_shared_level's term equal the joint Gaussian's log density, its mean and sd are d's
    exact conditional, and the run effects' means given d shift by unit_u, unit_w."""
    from scipy import stats

    from bayes_mixlaw.run_effects import conditional_effects, curve_sums, integrate_shared_level, marginal_loglik, shift_information

    rng = np.random.default_rng(5)
    sigma, tau_u, tau_w, s = 0.004, 0.02, 0.05, 0.03
    ys = [np.log(np.linspace(10, 30, 11) / 17.0), np.log(np.linspace(10, 30, 6) / 17.0), np.log(np.array([30.0]) / 17.0)]
    y = np.concatenate(ys)
    curve = np.concatenate([np.full(len(v), k) for k, v in enumerate(ys)])
    e = rng.normal(size=len(y)) * 0.01 + 0.03
    cov = s**2 * np.ones((len(y), len(y)))
    for k in range(3):
        block = np.ix_(curve == k, curve == k)
        cov[block] += sigma**2 * np.eye((curve == k).sum()) + tau_u**2 + tau_w**2 * np.outer(ys[k], ys[k])
    exact = stats.multivariate_normal(np.zeros(len(y)), cov).logpdf(e)
    se, sey, see = (x[0] for x in curve_sums(e[None], y, curve, 3))
    m = np.bincount(curve).astype(float)
    sy, syy = np.bincount(curve, weights=y), np.bincount(curve, weights=y**2)
    a, b, unit_u, unit_w = shift_information(m, sy, syy, se, sey, sigma, tau_u, tau_w)
    term, mean, sd = integrate_shared_level(a.sum(), b.sum(), s)
    ours = marginal_loglik(m, sy, syy, se, sey, see, sigma, tau_u, tau_w).sum() + term
    np.testing.assert_allclose(ours, exact, rtol=1e-10)
    gain = s**2 * np.ones(len(y)) @ np.linalg.inv(cov)  # d | e, Gaussian regression
    np.testing.assert_allclose(mean, gain @ e, rtol=1e-8)
    np.testing.assert_allclose(sd**2, s**2 - gain @ np.ones(len(y)) * s**2, rtol=1e-8)
    d = 0.017
    shifted = curve_sums((e - d)[None], y, curve, 3)
    mean_u, mean_w, *_ = conditional_effects(m, sy, syy, shifted[0][0], shifted[1][0], sigma, tau_u, tau_w)
    base_u, base_w, *_ = conditional_effects(m, sy, syy, se, sey, sigma, tau_u, tau_w)
    np.testing.assert_allclose(mean_u, base_u - d * unit_u, rtol=1e-10)
    np.testing.assert_allclose(mean_w, base_w - d * unit_w, rtol=1e-10)
    assert shift_information(0.0, 0.0, 0.0, 0.0, 0.0, sigma, tau_u, tau_w)[:2] == (0.0, 0.0)  # an empty curve


def test_departures_are_integrated_out_not_sampled(redpajama):
    """The law's model samples a free standard normal per pilot mixture and domain, not the departures:
    the likelihood integrates them out, so mixture_sigma has no funnel."""
    model = NestedLaw(targets=Targets(WEIGHTS)).build_model(redpajama)
    free = {v.name for v in model.free_RVs}
    assert "departure_z" in free and "departure" not in free and "departure" in model.named_vars
    assert model.named_vars_to_dims["departure"] == ("mixture", "valid_domain")


def test_information_suggestions_pick_a_pilot_scale_and_a_positive_value(fitted):
    from bayes_mixlaw.bo import suggest

    table = suggest(fitted, 2, acquisition="info", draws=16, params=1e9, step=1e5)
    assert len(table) == 2 and set(table["params"]) <= {18_915_328, 85_056_000, 201_541_632}
    assert (table["step"] == 30_000).all() and (table["acquisition_value"] >= -1e-12).all()
    assert np.allclose(table[[c for c in table.columns if c.startswith("mix:")]].sum(axis=1), 1.0)


@pytest.mark.parametrize("acquisition", ["thompson", "qlognei", "info"])
def test_suggest_on_an_allowed_grid(fitted, acquisition):
    from bayes_mixlaw.bo import suggest

    bounds = MixtureBounds(caps={"GitHub": 0.25})
    table = suggest(fitted, 3, acquisition=acquisition, bounds=bounds, grid=0.25, draws=16, params=1e9, step=1e5)
    mix = table[[c for c in table.columns if c.startswith("mix:")]].to_numpy()
    assert np.allclose(mix * 4, np.round(mix * 4)) and np.allclose(mix.sum(axis=1), 1.0)
    assert len(np.unique(mix.round(6), axis=0)) == 3 and (table["mix:GitHub"] <= 0.25).all()


@pytest.mark.parametrize("acquisition", ["thompson", "qlognei"])
def test_suggest_among_given_candidates(fitted, acquisition):
    from bayes_mixlaw.bo import suggest

    candidates = np.random.default_rng(0).dirichlet(np.ones(len(fitted.train_domains)), size=50)
    bounds = MixtureBounds(caps={"GitHub": 0.2})
    table = suggest(fitted, 3, acquisition=acquisition, bounds=bounds, candidates=candidates, draws=16, params=1e9, step=1e5)
    mix = table[[c for c in table.columns if c.startswith("mix:")]].to_numpy()
    allowed = candidates[candidates[:, fitted.train_domains.index("GitHub")] <= 0.2]
    assert all(np.abs(allowed - row).max(axis=1).min() < 1e-9 for row in mix) and len(np.unique(mix.round(9), axis=0)) == 3
    with pytest.raises(ValueError, match="summing to 1"):
        suggest(fitted, 2, acquisition=acquisition, candidates=candidates[:, :3], draws=16, params=1e9, step=1e5)
    short = candidates.copy()
    short[2] *= 0.9
    with pytest.raises(ValueError, match=r"row 2, .* sum to 0.9, not 1"):
        suggest(fitted, 2, acquisition=acquisition, candidates=short, draws=16, params=1e9, step=1e5)


def test_simplex_grid_counts_and_errors():
    from bayes_mixlaw.optimize import simplex_grid

    assert len(simplex_grid(3, 0.5)) == 6 and len(simplex_grid(7, 0.125)) == 3003
    with pytest.raises(ConstraintsError, match="must divide 1"):
        simplex_grid(3, 0.3)
    with pytest.raises(ConstraintsError, match="coarser step"):
        simplex_grid(17, 0.01)


def test_stagewise_pipeline_carries_stage_one_uncertainty(redpajama, mocked_sampling):
    from bayes_mixlaw.nested import StagewiseNestedFit

    fit = StagewiseNestedFit(Targets(WEIGHTS), NestedLawConfig(sampler={"draws": 20, "chains": 2}))
    fit.fit(redpajama, params=3e8, step=3e4, seed=1, progress=False)
    assert fit.stage_one.config.mixture_model == "free"
    observed = fit.stage_two.idata["observed_data"]
    assert (observed["loss_sd"].values > 0).all()  # the stage-one posterior spread enters stage two
    pred = fit.predict(pilot_mixtures(redpajama))
    assert {"params", "step", "mean", "lower", "upper"} <= set(pred.columns)


def test_loss_sd_column_is_validated(redpajama):
    from bayes_mixlaw.runs import RunsTableError, validate_runs

    frame = redpajama.data.head(10).assign(loss_sd=0.01)
    assert "loss_sd" in validate_runs(frame).data
    frame.loc[3, "loss_sd"] = -1
    with pytest.raises(RunsTableError, match="row 3, column 'loss_sd'"):
        validate_runs(frame)


def test_runs_rebuilt_from_a_fit_match_the_table_it_was_fitted_on(fitted, redpajama):
    from bayes_mixlaw.compare import runs_from_fit

    rebuilt = runs_from_fit(fitted).data
    assert len(rebuilt) == len(redpajama.data)
    assert np.isclose(rebuilt["loss"].sum(), redpajama.data["loss"].sum())
    assert rebuilt.groupby("run").ngroups == redpajama.data.groupby("run").ngroups


def test_nested_report_has_curves_and_per_domain_share_panels(fitted, tmp_path):
    from bayes_mixlaw.report import _widest_domain, fitted_vs_observed, write_report

    table = fitted_vs_observed(fitted)
    assert len(table) == len(fitted.idata["observed_data"]["loss"]) and (table["lower"] <= table["upper"]).all()
    path = write_report(fitted, tmp_path)
    along = _widest_domain(fitted)
    for name in ("curves_steps", "curves_size", "proportions", f"domains_along_{along}", "ternary", "optimum"):
        assert (tmp_path / f"{name}.png").stat().st_size > 0, name
    page = path.read_text()
    assert f"along the share of {along}" in page and page.count("data:image/png;base64,") == 8
    largest = f"at params={fitted.pilot_scales()['params'][-1]:,.0f}, step=30,000"
    assert f"Optimal mixture; {largest}" in page
    target = write_report(fitted, tmp_path / "at_1b", scale={"params": 805_736_448, "step": 100_000}).read_text()
    assert "Optimal mixture; at params=805,736,448, step=100,000" in target and largest not in target


def test_report_command_takes_a_target_scale_for_nested_fits(fitted, tmp_path):
    from typer.testing import CliRunner

    from bayes_mixlaw.cli import app

    path = fitted.save(tmp_path / "fit.nc")
    result = CliRunner().invoke(app, ["report", str(path), "--params", "805736448", "--step", "100000", "-o", str(tmp_path / "r"), "-q"])
    assert result.exit_code == 0, result.output
    assert "Optimal mixture; at params=805,736,448, step=100,000" in (tmp_path / "r" / "report.html").read_text()
    result = CliRunner().invoke(app, ["report", str(path), "--params", "805736448", "-o", str(tmp_path / "r2"), "-q"])
    assert result.exit_code == 2 and "--step" in result.output
    mixture = str(fitted.idata["constant_data"]["mixture"].values[3])
    result = CliRunner().invoke(app, ["report", str(path), "--mixture", mixture, "-o", str(tmp_path / "r3"), "-q"])
    assert result.exit_code == 0 and f"Against training steps: mixture {mixture}" in (tmp_path / "r3" / "report.html").read_text()
    result = CliRunner().invoke(app, ["report", str(path), "--mixture", "RP_nope", "-o", str(tmp_path / "r4"), "-q"])
    assert result.exit_code == 2 and "unknown pilot mixture 'RP_nope'" in result.output


def test_extrapolation_discrepancy_widens_only_beyond_the_pilots(fitted, redpajama, tmp_path):
    from bayes_mixlaw.calibrate import calibrate_extrapolation, discrepancy, holdout_along

    fitted.config = fitted.config.model_copy(update={"discrepancy": False})  # the calibration alone

    kept, left_out = holdout_along(redpajama, "step", fraction=1 / 3)
    assert kept.data["step"].max() == 20_000 and left_out.data["step"].min() == 22_000  # the last third of log(10k..30k)
    kept, left_out = holdout_along(redpajama, "step")
    assert kept.data["step"].max() == 24_000 and left_out.data["step"].min() == 27_000  # the last fifth
    kept, left_out = holdout_along(redpajama, "params")
    assert left_out.data["params"].nunique() == 1 and left_out.data["params"].min() == redpajama.data["params"].max()
    mixtures = pilot_mixtures(redpajama)
    inside = fitted.predict(mixtures, params=201_541_632, step=30_000, seed=3)
    beyond = fitted.predict(mixtures, params=201_541_632, step=120_000, seed=3)
    calibrate_extrapolation(fitted, redpajama, axis="step", seed=1)
    entry = discrepancy(fitted)["step"]
    assert len(entry["mean"]) == len(DOMAINS) and all(sd >= 0 for sd in entry["sd"]) and "step <= 24000" in entry["calibrated_on"]
    corr = np.asarray(entry["corr"])
    assert corr.shape == (len(DOMAINS), len(DOMAINS)) and np.allclose(corr, corr.T) and np.allclose(np.diag(corr), 1.0)
    assert np.linalg.eigvalsh(corr).min() > 0
    assert "extrapolation discrepancy" in fitted.summary_line()
    pd.testing.assert_frame_equal(fitted.predict(mixtures, params=201_541_632, step=30_000, seed=3), inside)  # inside the pilots: unchanged
    after = fitted.predict(mixtures, params=201_541_632, step=120_000, seed=3)
    assert not after[["lower", "upper"]].equals(beyond[["lower", "upper"]])
    from bayes_mixlaw.calibrate import discrepancy_factor

    shape = (2, 30, 3, len(DOMAINS))
    beyond_factor = np.log(discrepancy_factor(fitted, {"params": 201_541_632, "step": 120_000}, shape, np.random.default_rng(0), predictive=True))
    assert beyond_factor.std() > 0 and np.all(
        discrepancy_factor(fitted, {"params": 201_541_632, "step": 30_000}, shape, np.random.default_rng(0), predictive=True) == 1.0
    )
    loaded = NestedLaw.load(fitted.save(tmp_path / "calibrated.nc"))
    pd.testing.assert_frame_equal(loaded.predict(mixtures, params=201_541_632, step=120_000, seed=3), after)
    f = fitted.target_function("total", params=201_541_632, step=120_000, draws=16)
    with torch.no_grad():
        assert torch.isfinite(f(torch.as_tensor(mixtures.filter(like="mix:").to_numpy())[None].expand(16, -1, -1))).all()


def test_fit_calibrate_option_errors(redpajama, tmp_path):
    from typer.testing import CliRunner

    from bayes_mixlaw.cli import app

    csv = tmp_path / "pilots.csv"
    redpajama.data.drop(columns="__row__", errors="ignore").to_csv(csv, index=False)
    result = CliRunner().invoke(app, ["fit", str(csv), "--calibrate", "tokens", "-o", str(tmp_path / "f.nc"), "-q"])
    assert result.exit_code == 2 and "--calibrate takes 'length' or 'params'" in result.output
    one_scale = tmp_path / "one.csv"
    redpajama.data[(redpajama.data["params"] == redpajama.data["params"].min()) & (redpajama.data["step"] == 30_000)].drop(
        columns="__row__", errors="ignore"
    ).to_csv(one_scale, index=False)
    result = CliRunner().invoke(app, ["fit", str(one_scale), "--calibrate", "length", "-o", str(tmp_path / "g.nc"), "-q"])
    assert result.exit_code == 2 and "needs a nested fit" in result.output
    assert not (tmp_path / "f.nc").exists() and not (tmp_path / "g.nc").exists()


def test_correlated_drifts_widen_the_total_not_the_domains():
    """Drifts shared across domains (one run drifts on all of them) leave each domain's spread as it
    is and widen a weighted total's: the errors of its domains do not average out."""
    from types import SimpleNamespace

    from bayes_mixlaw.calibrate import ATTR, discrepancy_factor, drift_correlation

    rng = np.random.default_rng(0)
    runs, valid = [f"run{k}" for k in range(30)], ["a", "b", "c", "d"]
    shared = rng.normal(size=30)
    slopes = pd.DataFrame([(r, v, shared[k] + 0.1 * rng.normal()) for k, r in enumerate(runs) for v in valid], columns=["run", "valid_domain", "u"])
    corr = drift_correlation(slopes, valid)
    assert corr[0, 1] > 0.8 and np.allclose(np.diag(corr), 1.0)
    assert np.allclose(drift_correlation(slopes[slopes["run"].isin(runs[:2])], valid), np.eye(4))  # too few runs: independent

    def spreads(entry):
        law = SimpleNamespace(idata=SimpleNamespace(attrs={ATTR: json.dumps({"step": entry})}), pilot_scales=lambda: {"step": [1.0, 10.0]})
        log_factor = np.log(discrepancy_factor(law, {"step": 100.0}, (2, 4000, 1, 4), np.random.default_rng(1), predictive=True))
        return log_factor.std(axis=(0, 1, 2)), log_factor.mean(axis=-1).std()

    entry = {"mean": [0.0] * 4, "sd": [0.1] * 4, "se": [0.02] * 4}
    domains_independent, total_independent = spreads(entry)
    domains_correlated, total_correlated = spreads({**entry, "corr": corr.tolist()})
    np.testing.assert_allclose(domains_correlated, domains_independent, rtol=0.05)
    assert total_correlated > 1.7 * total_independent


def test_nested_predictions_of_a_row_do_not_depend_on_the_other_rows(shared_data, mocked_sampling):
    """Beyond the pilots (the shared discrepancy applies) and with the fresh departure of new mixtures."""
    domains = ["Pile-CC", "Github"]
    table = load_runs(shared_data / "mixinglaws" / "RedPajama")
    data = table.data[table.data["valid_domain"].isin(domains) & (table.data["params"] < 201_541_632)]
    law = NestedLaw(NestedLawConfig(sampler={"draws": 10, "chains": 1}), Targets({"Pile-CC": 0.6, "Github": 0.4}))
    law.fit(RunsTable(data.reset_index(drop=True), table.source), seed=1, progress=False)
    pilots = law.pilot_mixtures
    frame = pd.DataFrame(np.vstack([pilots[:2], np.full((1, pilots.shape[1]), 1 / pilots.shape[1])]), columns=[f"mix:{d}" for d in law.train_domains]).assign(
        name=["p0", "p1", "new"]
    )
    scale = {"params": 8e8, "step": 100_000}
    together = law.predict_draws(frame, seed=2, **scale)
    swapped = law.predict_draws(frame.iloc[::-1], seed=2, **scale)
    for name in frame["name"]:
        alone = law.predict_draws(frame[frame["name"] == name], seed=2, **scale)
        np.testing.assert_array_equal(alone.sel(mixture=name).values, together.sel(mixture=name).values)
        np.testing.assert_array_equal(swapped.sel(mixture=name).values, together.sel(mixture=name).values)


def test_few_validation_domains_get_boundary_avoiding_pooled_scales_and_smaller_steps(redpajama, mocked_sampling):
    """Issue 13: with fewer than 8 validation domains the scales pooled across them take config.FEW_DOMAIN_PRIORS (what
    the user overrode stays) and NUTS target_accept 0.95 (unless set); the fit file keeps the config it used."""
    from pymc_extras.prior import Prior

    from bayes_mixlaw.config import FEW_DOMAIN_PRIORS

    mine = Prior("HalfNormal", sigma=0.01)
    law = NestedLaw(NestedLawConfig(sampler={"draws": 10, "chains": 2}, learn_discrepancy=False, priors={"run_sigma": mine}), Targets(WEIGHTS))
    law.fit(redpajama, seed=0, progress=False)
    assert law.config.sampler.target_accept == 0.95 and law.config.priors["run_sigma"] == mine
    others = set(FEW_DOMAIN_PRIORS) - {"run_sigma"}
    assert {"f_sigma", "log_ab_sigma", "mixture_sigma", "gamma_sigma"} <= others
    assert {k: law.config.priors[k] for k in others} == {k: FEW_DOMAIN_PRIORS[k] for k in others}
    assert json.loads(law.idata.attrs["config"])["sampler"]["target_accept"] == 0.95
    many = NestedLawConfig(sampler={"target_accept": 0.85})
    assert many.for_domains(22) is many and many.for_domains(3).sampler.target_accept == 0.85
    # and a longer warm-up (3Mix's geometry: 500 steps left a divergent draw), unless the user gave a sampler config
    assert NestedLawConfig().for_domains(3).sampler.tune == 1000 and NestedLawConfig().for_domains(22).sampler.tune == 500
    assert many.for_domains(3).sampler.tune == many.sampler.tune
    # and draws that diverge start again at 0.99 (the loop's 8-pilot tables diverged at 0.95), unless the user gave a sampler config
    assert NestedLawConfig().for_domains(5).sampler.retry_target_accept == 0.99 and NestedLawConfig().for_domains(22).sampler.retry_target_accept == 0.95
    assert many.for_domains(3).sampler.retry_target_accept == many.sampler.retry_target_accept
    # and a low-rank mass matrix (the loop's 16-pilot refits: the interactions' ridge held a diagonal one at the draw cap)
    assert NestedLawConfig().for_domains(5).sampler.adaptation == "low_rank" and NestedLawConfig().for_domains(22).sampler.adaptation == "diag"
    assert many.for_domains(3).sampler.adaptation == many.sampler.adaptation
    assert NestedLawConfig(few_domains=0).for_domains(3).priors == {}
    assert set(NestedLawConfig().for_domains(5).priors) == set(FEW_DOMAIN_PRIORS)  # five domains still held a funnel


def test_exponents_sampled_non_centred_on_request_with_the_same_names_and_keys_unchanged_by_default(redpajama, mocked_sampling):
    """``exponent_parameterisation: non_centred`` samples the domains' log exponents as mu + sigma z (the example loop's
    final fit: 30 divergences centred, 2-3 not); the fit keeps their names; the default leaves the structure key as it was
    before the option existed (saved fits reload), the option changes it."""
    config = NestedLawConfig(sampler={"draws": 10, "chains": 2}, learn_discrepancy=False)
    law = NestedLaw(config.model_copy(update={"exponent_parameterisation": "non_centred"}), Targets(WEIGHTS))
    law.fit(redpajama, seed=0, progress=False)
    free = {rv.name for rv in law.model.free_RVs}
    assert {"log_size_slope_offset", "log_step_slope_offset"} <= free and not {"log_size_slope", "log_step_slope"} & free
    assert {"log_size_slope", "log_step_slope", "alpha", "beta"} <= set(law.idata["posterior"].data_vars)
    assert np.isfinite(law.predict(pilot_mixtures(redpajama).head(1), params=4e8, step=40_000)["median"]).all()
    centred = NestedLaw(config, Targets(WEIGHTS))
    assert {"log_size_slope", "log_step_slope"} <= {rv.name for rv in centred.build(redpajama).model.free_RVs}
    assert "exponent_parameterisation" not in config.structure_settings()
    assert centred.structure_key(redpajama) != NestedLaw(law.config, Targets(WEIGHTS)).structure_key(redpajama)
    amplitude = NestedLaw(config.model_copy(update={"exponent_parameterisation": "non_centred", "scaling_parameterisation": "amplitude"}), Targets(WEIGHTS))
    assert {"log_alpha_offset", "log_beta_offset"} <= {rv.name for rv in amplitude.build(redpajama).model.free_RVs}


def test_two_pilot_sizes_sample_the_shares_by_stick_breaking_unless_the_user_chose(redpajama, mocked_sampling):
    """Two pilot sizes leave the size exponent to its prior along the irreducible share: config.for_sizes samples that
    axis (``stick``) unless the user set a parameterisation; more sizes keep ``share``; the fit file keeps the one used."""
    two = RunsTable(redpajama.data[redpajama.data["params"] < 201_541_632].reset_index(drop=True), redpajama.source)
    law = NestedLaw(NestedLawConfig(sampler={"draws": 10, "chains": 2}, learn_discrepancy=False), Targets(WEIGHTS)).fit(two, seed=0, progress=False)
    assert law.config.scaling_parameterisation == "stick" and "size_share_logit" in law.idata["posterior"]
    assert json.loads(law.idata.attrs["config"])["scaling_parameterisation"] == "stick"
    assert law.predict(pilot_mixtures(two), params=201_541_632, step=30_000)["median"].notna().all()
    default = NestedLawConfig()
    assert default.for_sizes(2).scaling_parameterisation == "stick" and default.for_sizes(3) is default
    assert NestedLawConfig(scaling_parameterisation="share").for_sizes(2).scaling_parameterisation == "share"
    assert NestedLawConfig(scaling_parameterisation="amplitude").for_sizes(2).scaling_parameterisation == "amplitude"


def test_a_run_curvature_integrates_out_exactly():
    """CurvedEffects: level, slope and curvature c y^2 per curve, c ~ N(0, tau_c^2), integrated out by a rank-one term
    on the level and slope's marginal, equals the Gaussian with the three effects' covariance; its conditional means are
    the Gaussian regression on [1, y, y^2], and a departure shared by three curves integrates out as before
    (shift_information: the joint density and the effects' means given d)."""
    from scipy import stats

    from bayes_mixlaw.run_effects import CurvedEffects, curve_sums, integrate_shared_level, integrated_effects

    rng = np.random.default_rng(7)
    sigma, tau_u, tau_w, tau_c, s = 0.004, 0.02, 0.05, 0.04, 0.03
    ys = [np.log(np.linspace(10, 30, 11) / 17.0), np.log(np.linspace(10, 30, 6) / 17.0), np.log(np.array([30.0]) / 17.0)]
    y = np.concatenate(ys)
    curve = np.concatenate([np.full(len(v), k) for k, v in enumerate(ys)])
    e = rng.normal(size=len(y)) * 0.01 + 0.03 + 0.02 * y**2
    moments = tuple(np.bincount(curve, weights=y**p) for p in range(5))
    sums = tuple(x[0] for x in curve_sums(e[None], y, curve, 3, curvature=True))
    effects = integrated_effects(moments, sums, (sigma, tau_u, tau_w, tau_c))
    assert isinstance(effects, CurvedEffects)
    design = [np.column_stack([np.ones_like(v), v, v**2]) for v in ys]
    prior = np.diag([tau_u**2, tau_w**2, tau_c**2])
    for k, z in enumerate(design):  # each curve alone
        cov = sigma**2 * np.eye(len(z)) + z @ prior @ z.T
        np.testing.assert_allclose(effects.loglik[k], stats.multivariate_normal(np.zeros(len(z)), cov).logpdf(e[curve == k]), rtol=1e-10)
        gain = prior @ z.T @ np.linalg.inv(cov)
        np.testing.assert_allclose([m[k] for m in effects.means], gain @ e[curve == k], rtol=1e-8, atol=1e-12)
        np.testing.assert_allclose(effects.curvature_sd[k] ** 2, (prior - gain @ z @ prior)[2, 2], rtol=1e-8)
    # a departure d ~ N(0, s^2) shared by the three curves
    cov = s**2 * np.ones((len(y), len(y)))
    for k, z in enumerate(design):
        cov[np.ix_(curve == k, curve == k)] += sigma**2 * np.eye(len(z)) + z @ prior @ z.T
    a, b, units = effects.shift_information()
    term, mean, _ = integrate_shared_level(a.sum(), b.sum(), s)
    np.testing.assert_allclose(effects.loglik.sum() + term, stats.multivariate_normal(np.zeros(len(y)), cov).logpdf(e), rtol=1e-10)
    np.testing.assert_allclose(mean, s**2 * np.ones(len(y)) @ np.linalg.inv(cov) @ e, rtol=1e-8)
    d = 0.017
    shifted = integrated_effects(moments, tuple(x[0] for x in curve_sums((e - d)[None], y, curve, 3, curvature=True)), (sigma, tau_u, tau_w, tau_c))
    for given_d, base, unit in zip(shifted.means, effects.means, units):
        np.testing.assert_allclose(given_d, base - d * unit, rtol=1e-9, atol=1e-13)
    empty = CurvedEffects((0.0,) * 5, (0.0,) * 4, (sigma, tau_u, tau_w, tau_c))
    assert empty.loglik == pytest.approx(0.0, abs=1e-12) and empty.shift_information()[:2] == (0.0, 0.0)


def test_run_curvature_on_request_fits_predicts_reloads_and_keeps_default_keys(redpajama, mocked_sampling, tmp_path):
    """``run_curvature``: each run's curvature in log-steps integrated out beside its level and slope. The fit keeps
    its scale and the curves' conditional curvatures, the per-curve log-likelihood equals the model's likelihood term
    at a draw, a pilot run and a new run predict, the file reloads and predicts identically; the default leaves the
    structure key as it was before the option existed."""
    import pytensor

    from bayes_mixlaw.run_effects import integrate_shared_level, integrated_effects

    # the departure a level alone (mixture_size_slope off: the slope's own test is below), integrated with the curvature
    config = NestedLawConfig(sampler={"draws": 10, "chains": 2}, learn_discrepancy=False, mixture_size_slope=False)
    law = NestedLaw(config.model_copy(update={"run_curvature": True}), Targets(WEIGHTS)).fit(redpajama, seed=0, progress=False)
    post = law.idata["posterior"]
    assert post["run_curvature_sigma"].dims[-1] == "valid_domain"
    assert post["run_curvature"].dims[-3:] == ("mixture", "size", "valid_domain")
    assert {"curve_sy3", "curve_sy4"} <= set(law.idata["constant_data"].data_vars)
    model = law.model
    with model:
        pm.set_data(law._data(law.built.layout))
    term = pytensor.function(model.free_RVs, model["loss"], on_unused_input="ignore")
    moments, (se, sey, see, sez), scales = law._curve_terms()
    shape = law.idata["constant_data"]["curve_m"].shape
    mixture, _, valid = np.unravel_index(np.flatnonzero(law.idata["constant_data"]["curve_m"].values.ravel() > 0), shape)
    chain, draw = 1, 3
    d = post["departure"].values[chain, draw][mixture, valid]
    at = (chain, draw)
    m, sy, syy = moments[:3]
    # the residuals without the draw's departure; the model integrates it out per (mixture, domain)
    base = (se[at] + m * d, sey[at] + sy * d, see[at] + 2 * d * se[at] + d * d * m, sez[at] + syy * d)
    effects = integrated_effects(moments, base, tuple(x[at] for x in scales))
    a, b, _ = effects.shift_information()
    cells = mixture * len(law.valid_domains) + valid
    a_cell, b_cell = (np.bincount(cells, weights=x, minlength=20 * 3) for x in (a, b))
    extra, *_ = integrate_shared_level(a_cell, b_cell, np.tile(post["mixture_sigma"].values[at], 20))
    np.testing.assert_allclose(effects.loglik.sum() + extra.sum(), term(*[post[rv.name].values[at] for rv in model.free_RVs]), rtol=1e-8)
    np.testing.assert_allclose(law.curve_log_likelihood().values[at].sum(), (effects.loglik + d * b - 0.5 * d * d * a).sum(), rtol=1e-8)
    pilots = pilot_mixtures(redpajama, 2)
    # a pilot run continued; a new run
    again = assert_predicts_and_reloads(law, tmp_path / "curved.nc", [(pilots, 85_056_000, 40_000), (pilots, 4e8, 60_000)])
    assert again.config.run_curvature
    assert "run_curvature" not in config.structure_settings()
    assert NestedLaw(config, Targets(WEIGHTS)).structure_key(redpajama) != law.structure_key(redpajama)
    assert "curve_sy3" not in NestedLaw(config, Targets(WEIGHTS)).build(redpajama).model.named_vars
    with pytest.raises(ValueError, match="run_curvature: true needs run_effects: true"):
        NestedLawConfig(run_curvature=True, run_effects=False)


def test_a_mixtures_level_and_size_slope_integrate_out_exactly():
    """integrate_shared_line: a level and a slope d + e x_k shared by groups of curves (a pilot mixture's sizes),
    integrated out, equals the Gaussian with their covariance added; its conditional mean and Cholesky factor are the
    Gaussian's; with the slope's scale near zero it is integrate_shared_level."""
    from scipy import stats

    from bayes_mixlaw.run_effects import curve_sums, integrate_shared_level, integrate_shared_line, integrated_effects

    rng = np.random.default_rng(3)
    sigma, tau_u, tau_w, s_d, s_e = 0.004, 0.02, 0.05, 0.03, 0.02
    ys = [np.log(np.linspace(10, 30, 11) / 17.0), np.log(np.linspace(10, 30, 6) / 17.0), np.log(np.array([20.0, 30.0]) / 17.0)]
    x = np.log(np.array([70.0, 160.0, 305.0]) / 150.0)  # each curve its own size
    y = np.concatenate(ys)
    curve = np.concatenate([np.full(len(v), k) for k, v in enumerate(ys)])
    e = rng.normal(size=len(y)) * 0.01 + 0.03 + 0.02 * x[curve]
    moments = tuple(np.bincount(curve, weights=y**p) for p in range(3))
    sums = tuple(v[0] for v in curve_sums(e[None], y, curve, 3))
    effects = integrated_effects(moments, sums, (sigma, tau_u, tau_w))
    a, b, _ = effects.shift_information()
    term, (mean_d, mean_e), (l_dd, l_ed, l_ee) = integrate_shared_line(a, b, x, s_d, s_e)
    design = np.column_stack([np.ones_like(y), x[curve]])  # the shared pair's design
    cov = design @ np.diag([s_d**2, s_e**2]) @ design.T
    for k, v in enumerate(ys):
        z = np.column_stack([np.ones_like(v), v])
        cov[np.ix_(curve == k, curve == k)] += sigma**2 * np.eye(len(v)) + z @ np.diag([tau_u**2, tau_w**2]) @ z.T
    np.testing.assert_allclose(effects.loglik.sum() + term, stats.multivariate_normal(np.zeros(len(y)), cov).logpdf(e), rtol=1e-10)
    gain = np.diag([s_d**2, s_e**2]) @ design.T @ np.linalg.inv(cov)
    np.testing.assert_allclose([mean_d, mean_e], gain @ e, rtol=1e-8)
    posterior = np.diag([s_d**2, s_e**2]) - gain @ design @ np.diag([s_d**2, s_e**2])
    np.testing.assert_allclose(np.array([[l_dd, 0.0], [l_ed, l_ee]]), np.linalg.cholesky(posterior), rtol=1e-8, atol=1e-14)
    level, level_mean, level_sd = integrate_shared_level(a.sum(), b.sum(), s_d)
    flat = integrate_shared_line(a, b, x, s_d, 1e-9)
    np.testing.assert_allclose([flat[0], flat[1][0], flat[2][0]], [level, level_mean, level_sd], rtol=1e-6)


def test_a_mixtures_size_slope_fits_predicts_reloads_and_off_keeps_the_earlier_keys(redpajama, mocked_sampling, tmp_path):
    """``mixture_size_slope`` (default): each pilot mixture's departure is d + e log n, the pair integrated out. The
    model's likelihood term at a draw is the curves' marginal plus the pair's; the per-curve log-likelihood reads the
    draw's d + e log n at each size; a pilot mixture extrapolates its own slope and a new one draws it; the file reloads
    and predicts identically; off, the structure key is as it was before the option existed, and a fit file written
    then (no such setting) reads as off."""
    import pytensor

    from bayes_mixlaw.run_effects import integrate_shared_line, integrated_effects

    config = NestedLawConfig(sampler={"draws": 10, "chains": 2}, learn_discrepancy=False, mixture_size_slope=True)  # set: kept on 3 domains
    law = NestedLaw(config, Targets(WEIGHTS)).fit(redpajama, seed=0, progress=False)
    post = law.idata["posterior"]
    assert post["departure_slope"].dims[-2:] == ("mixture", "valid_domain") and post["mixture_size_sigma"].dims[-1] == "valid_domain"
    model = law.model
    with model:
        pm.set_data(law._data(law.built.layout))
    term = pytensor.function(model.free_RVs, model["loss"], on_unused_input="ignore")
    moments, (se, sey, see), scales = law._curve_terms()
    constant = law.idata["constant_data"]
    shape = constant["curve_m"].shape
    mixture, size, valid = np.unravel_index(np.flatnonzero(constant["curve_m"].values.ravel() > 0), shape)
    x = np.log(law._data(law.built.layout)["sizes_rel"])
    at = (1, 3)
    shift = post["departure"].values[at][mixture, valid] + post["departure_slope"].values[at][mixture, valid] * x[size]
    m, sy = moments[:2]
    base = (se[at] + m * shift, sey[at] + sy * shift, see[at] + 2 * shift * se[at] + shift * shift * m)  # without the draw's shift
    effects = integrated_effects(moments, base, tuple(v[at] for v in scales))
    a, b, _ = effects.shift_information()
    a_cells, b_cells = np.zeros(shape), np.zeros(shape)
    a_cells[mixture, size, valid], b_cells[mixture, size, valid] = a, b
    sigma_d, sigma_e = post["mixture_sigma"].values[at], post["mixture_size_sigma"].values[at]
    extra, *_ = integrate_shared_line(a_cells.transpose(0, 2, 1), b_cells.transpose(0, 2, 1), x, sigma_d, sigma_e)
    np.testing.assert_allclose(effects.loglik.sum() + extra.sum(), term(*[post[rv.name].values[at] for rv in model.free_RVs]), rtol=1e-8)
    np.testing.assert_allclose(law.curve_log_likelihood().values[at].sum(), (effects.loglik + shift * b - 0.5 * shift * shift * a).sum(), rtol=1e-8)
    pilots = pilot_mixtures(redpajama, 2)
    new = pilots.assign(**{c: pilots[c] * 0.9 + 0.1 / 7 for c in pilots.columns if c.startswith("mix:")})
    again = assert_predicts_and_reloads(law, tmp_path / "sloped.nc", [(pilots, 8e8, 40_000), (new, 8e8, 40_000)])
    assert again.config.mixture_size_slope
    level = config.model_copy(update={"mixture_size_slope": False})
    assert "mixture_size_slope" not in level.structure_settings() and config.structure_settings()["mixture_size_slope"]
    assert NestedLaw(level, Targets(WEIGHTS)).structure_key(redpajama) != NestedLaw(config, Targets(WEIGHTS)).structure_key(redpajama)
    assert "departure_slope" not in NestedLaw(level, Targets(WEIGHTS)).build(redpajama).model.named_vars
    written = {k: v for k, v in json.loads(law.idata.attrs["config"]).items() if k != "mixture_size_slope"}
    assert not NestedLawConfig.from_fit(written).mixture_size_slope
    # the default with many domains; a level alone with few unless the user set it (3Mix's divergences)
    assert NestedLawConfig().mixture_size_slope and NestedLawConfig().for_domains(22).mixture_size_slope
    assert not NestedLawConfig().for_domains(3).mixture_size_slope and config.for_domains(3).mixture_size_slope
    with pytest.raises(ValueError, match="mixture_size_slope: true needs mixture_model: law"):
        NestedLawConfig(mixture_size_slope=True, mixture_model="free")
