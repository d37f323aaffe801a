"""The schedule-aware scaling law (bayes_mixlaw/scheduled.py): real NUTS on the multi-power law curves (100M),
predictions of a held-out schedule, save/load, and clear errors. Runs of unknown learning-rate schedule: the
schedule's length is a parameter the posterior weighs, predictions carry it, and the fit says what it assumed
and how much the assumption moves a prediction (the closed-form areas: tests/test_schedules.py)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from bayes_mixlaw import BayesianLaw
from bayes_mixlaw.runs import load_runs
from bayes_mixlaw.scheduled import (
    ScheduledLawConfig,
    ScheduledScalingLaw,
    UnknownSchedule,
)
from bayes_mixlaw.schedules import Schedule
from bayes_mixlaw.step_laws import annealing_law
from conftest import WSD

TRAIN = ("100/cosine_24000", "100/constant_24000", "100/wsdcon_9")


@pytest.fixture(scope="module")
def curves(shared_data):
    return load_runs(shared_data / "multipowerlaw" / "csv_100").data


@pytest.fixture(scope="module")
def fitted(curves):
    train = curves[curves["run"].isin(TRAIN)]
    train = train[train.groupby("run").cumcount() % 2 == 0].reset_index(drop=True)  # every other logged point: a quicker test
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ScheduledScalingLaw().fit(train, seed=3, progress=False, draws=300, tune=300, chains=2, cores=1)


def test_fit_predicts_the_held_out_wsd_curve(fitted, curves):
    held = curves[curves["run"] == "100/wsd_20000_24000"]
    pred = fitted.predict(1e8, Schedule.from_dict(WSD), held["step"].to_numpy())
    assert list(pred.columns) == ["params", "step", "target", "mean", "median", "lower", "upper", "beyond_log_size"]
    y = held["loss"].to_numpy()
    rel = np.abs(pred["median"].to_numpy() / y - 1)
    assert rel.mean() < 0.003, rel.mean()  # the target; the published multi-power law: 0.14%
    inside = (pred["lower"].to_numpy() <= y) & (y <= pred["upper"].to_numpy())
    assert 0.7 <= inside.mean() <= 1.0
    assert np.all(pred["lower"] < pred["median"]) and np.all(pred["median"] < pred["upper"])
    # the annealing of the WSD run lowers the loss below the constant run's at the same step
    constant = fitted.predict(1e8, Schedule.from_dict({"kind": "constant", "total_steps": 24000, "warmup_steps": 2160, "peak_lr": 3e-4}), [23904], kind="mean")
    assert pred["median"].iloc[-1] < constant["median"].iloc[0] - 0.03
    d = fitted.diagnostics
    assert d.divergences <= 5 and d.max_rhat < 1.1


def test_schedules_are_read_from_the_lr_column_and_reported(fitted):
    origins = fitted.schedule_origins()
    assert set(origins) == set(TRAIN) and all(o.startswith("lr column (warm-up 2160") for o in origins.values())
    line = fitted.summary_line()
    assert "annealing" in line and "100/wsdcon_9: table of" in line and "[lr column" in line
    p = fitted.parameters().set_index("parameter")
    assert 2.6 < p.loc["E", "mean"] < 3.0  # the point fit's L0 at 100M is 2.79
    assert 0.3 < p.loc["beta", "mean"] < 0.6


def test_save_load_predicts_the_same(fitted, tmp_path):
    path = fitted.save(tmp_path / "sched.nc")
    loaded = BayesianLaw.load(path)
    assert isinstance(loaded, ScheduledScalingLaw)
    schedule = Schedule.from_dict(WSD)
    pd.testing.assert_frame_equal(loaded.predict(1e8, schedule, [21000, 24000]), fitted.predict(1e8, schedule, [21000, 24000]))
    assert loaded.schedules["100/wsdcon_9"] == fitted.schedules["100/wsdcon_9"]
    assert loaded.built.key == fitted.built.key == loaded.idata.attrs["structure_key"]  # the model rebuilt from the file
    assert {v.name for v in loaded.model.free_RVs} == {v.name for v in fitted.model.free_RVs}


def test_a_given_schedule_replaces_a_missing_lr_column(curves, mocked_sampling):
    run = curves[curves["run"] == "100/wsd_20000_24000"]
    other = curves[curves["run"] == "100/cosine_24000"]
    frame = pd.concat([run, other], ignore_index=True).drop(columns=["lr", "warmup_steps"])
    with pytest.raises(ValueError, match="run '100/wsd_20000_24000' has no 'lr' column values and no schedule"):
        ScheduledScalingLaw(ScheduledLawConfig(unknown_schedule=None)).fit(frame, draws=10, chains=1)
    cosine = {"kind": "cosine", "total_steps": 24000, "warmup_steps": 2160, "peak_lr": 3e-4, "final_lr": 3e-5}
    law = ScheduledScalingLaw().fit(frame, schedule={"100/wsd_20000_24000": WSD, "100/cosine_24000": cosine}, draws=10, chains=1)
    assert law.schedule_origins() == {"100/wsd_20000_24000": "schedule", "100/cosine_24000": "schedule"}
    logged = ScheduledScalingLaw()._layout(load_runs(pd.concat([run, other], ignore_index=True)))["features"]
    given = law.built.layout["features"]
    assert np.allclose(logged.s1, given.s1, rtol=1e-3) and np.allclose(logged.s2, given.s2, rtol=0.02, atol=5.0)
    with pytest.raises(ValueError, match="beyond its schedule"):
        ScheduledScalingLaw().fit(frame, schedule={**WSD, "total_steps": 22000, "decay_start": 20000}, draws=10, chains=1)


def test_multi_power_term_builds_and_predicts_with_size_terms(curves, shared_data, mocked_sampling):
    runs = load_runs(shared_data / "multipowerlaw").data
    two_sizes = runs[runs["run"].isin(["25/cosine_24000", "100/cosine_24000", "25/wsdcon_9", "100/wsdcon_9"])]
    two_sizes = two_sizes[two_sizes.groupby("run").cumcount() % 8 == 0].reset_index(drop=True)
    law = ScheduledScalingLaw(ScheduledLawConfig(step_term="multi_power", knots=16)).fit(two_sizes, draws=20, chains=2, seed=0)
    assert {"A", "alpha", "C", "kappa", "gamma", "rho_b"} <= set(law.idata["posterior"].data_vars)
    pred = law.predict(4e8, Schedule.from_dict(WSD), [5000, 21000, 24000])
    assert len(pred) == 3 and np.all(np.isfinite(pred[["mean", "lower", "upper"]].to_numpy()))
    with pytest.raises(ValueError, match="beyond the schedule"):
        law.predict(4e8, Schedule.from_dict(WSD), [25000])
    with pytest.raises(ValueError, match="positive and finite"):
        law.predict(-1, Schedule.from_dict(WSD), [5000])


def test_config_rejects_unknown_priors_and_step_terms():
    with pytest.raises(ValueError, match="unknown prior"):
        ScheduledLawConfig(priors={"t_mu": {"dist": "Normal", "kwargs": {"mu": 0, "sigma": 1}}})
    with pytest.raises(ValueError):
        ScheduledLawConfig(step_term="cosine")


@pytest.mark.parametrize("likelihood", ["laplace", pytest.param("normal", marks=pytest.mark.slow)])  # normal: ~25 s, not the default
def test_predictive_mean_is_finite_and_near_the_median_on_heavy_tailed_noise(curves, likelihood):
    """Losses with Student-t noise (3 degrees of freedom: spikes) on the log scale: the law's Laplace (or
    Normal) on the log loss gives a predictive whose mean exists, so two seeds' means agree and sit next
    to the median (exp of a Student-t has no mean: its draws' average jumps from seed to seed)."""
    rng = np.random.default_rng(5)
    train = curves[curves["run"].isin(TRAIN)]
    train = train[train.groupby("run").cumcount() % 3 == 0].reset_index(drop=True)
    train["loss"] = train["loss"] * np.exp(0.001 * rng.standard_t(3.0, size=len(train)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        law = ScheduledScalingLaw(ScheduledLawConfig(likelihood=likelihood)).fit(train, seed=4, progress=False, draws=300, tune=400, chains=2, cores=1)
    steps = [12000, 21000, 24000]
    a = law.predict(1e8, Schedule.from_dict(WSD), steps, seed=0)
    b = law.predict(1e8, Schedule.from_dict(WSD), steps, seed=1)
    for pred in (a, b):
        assert np.all(np.isfinite(pred["mean"]))
        assert np.all(np.abs(pred["mean"] / pred["median"] - 1) < 0.003), pred
    assert np.all(np.abs(a["mean"] / b["mean"] - 1) < 0.001)
    held = curves[(curves["run"] == "100/wsd_20000_24000")].set_index("step")["loss"]
    assert abs(a["median"].iloc[-1] / held.iloc[-1] - 1) < 0.01
    if likelihood == "normal":  # its run levels are integrated out: one likelihood term per curve, so no per-loss LOO
        with pytest.raises(ValueError, match="PSIS-LOO here needs likelihood: laplace"):
            law.pointwise_log_likelihood()


def test_the_level_likelihood_is_the_marginal_of_a_random_intercept():
    """run_effects.marginal_loglik with no slope (y = 0, any tau_w) is the Normal marginal of a curve
    with a N(0, tau_u^2) level: what the scheduled law's likelihood relies on."""
    from scipy.stats import multivariate_normal

    from bayes_mixlaw.run_effects import curve_sums, marginal_loglik

    rng = np.random.default_rng(0)
    e = rng.normal(0.002, 0.003, size=7)
    sigma, tau = 0.003, 0.004
    se, _, see = curve_sums(e, np.zeros(7), np.zeros(7, dtype=int), 1)
    ours = marginal_loglik(7.0, 0.0, 0.0, se, 0.0, see, sigma, tau, 1.0)
    exact = multivariate_normal(np.zeros(7), sigma**2 * np.eye(7) + tau**2).logpdf(e)
    assert np.allclose(ours, exact)
    assert np.allclose(marginal_loglik(7.0, 0.0, 0.0, se, 0.0, see, sigma, tau, 0.3), exact)  # the slope scale cancels


def test_student_t_is_refused_and_run_effects_are_sampled_or_integrated(curves, mocked_sampling):
    with pytest.raises(ValueError, match="likelihood"):
        ScheduledLawConfig(likelihood="studentt")
    frame = curves[curves["run"].isin(TRAIN)]
    frame = frame[frame.groupby("run").cumcount() % 8 == 0].reset_index(drop=True)
    law = ScheduledScalingLaw().fit(frame, draws=10, chains=1)  # Laplace: levels and annealing amplitudes sampled
    assert law.config.likelihood == "laplace"
    assert {"run_level", "run_log_d"} <= {v.name for v in law.model.free_RVs}
    assert list(law.idata["posterior"]["annealing_run"].values) == ["100/cosine_24000", "100/wsdcon_9"]  # the constant run has no decay
    normal = ScheduledScalingLaw(ScheduledLawConfig(likelihood="normal")).fit(frame, draws=10, chains=1)
    free = {v.name for v in normal.model.free_RVs}
    assert "run_level" not in free and "run_log_d" in free and "run_level" in normal.idata["posterior"]  # integrated out, kept as conditional means
    plain = ScheduledScalingLaw(ScheduledLawConfig(run_effects=False)).fit(frame, draws=10, chains=1)
    assert {v.name for v in plain.model.free_RVs} == {"log_e", "log_b", "beta", "log_d_step", "noise_sigma"}
    for fit in (law, normal, plain):
        pred = fit.predict(1e8, Schedule.from_dict(WSD), [21000])
        assert np.all(np.isfinite(pred[["mean", "lower", "upper"]].to_numpy())) and (pred["lower"] < pred["upper"]).all()


def test_size_term_is_the_law_through_what_two_sizes_pin():
    """size_term writes e + a n^-alpha through (level at the largest size, secant slope, exponent's excess):
    the level and slope are what they say, every excess gives a valid law, numpy and PyTensor agree."""
    import pytensor.tensor as pt

    from bayes_mixlaw.scheduled import size_term

    lo, hi, log_level, log_slope = np.log(0.5), np.log(2.0), np.log(0.8), np.log(0.07)
    for excess in (0.01, 0.2, 0.9):
        at_lo, e, a, alpha = size_term(np, lo, lo, hi, log_level, log_slope, excess)
        at_hi = size_term(np, hi, lo, hi, log_level, log_slope, excess)[0]
        assert at_hi == pytest.approx(0.8) and np.log(at_lo / at_hi) / (hi - lo) == pytest.approx(0.07)
        assert e > 0 and a > 0 and alpha == pytest.approx(0.07 + excess)
        n = np.array([0.25, 1.0, 8.0])
        np.testing.assert_allclose(size_term(np, np.log(n), lo, hi, log_level, log_slope, excess)[0], e + a * n**-alpha)
        symbolic = size_term(pt, pt.as_tensor(np.log(n)), lo, hi, log_level, log_slope, excess)[0].eval()
        np.testing.assert_allclose(symbolic, e + a * n**-alpha)


def test_beyond_the_largest_pilot_size_the_discrepancy_widens_the_interval_and_the_summary_says_why(shared_data, mocked_sampling):
    runs = load_runs(shared_data / "multipowerlaw").data
    two_sizes = runs[runs["run"].isin(["25/cosine_24000", "100/cosine_24000"])]
    two_sizes = two_sizes[two_sizes.groupby("run").cumcount() % 8 == 0].reset_index(drop=True)
    law = ScheduledScalingLaw().fit(two_sizes, draws=200, chains=2, seed=0)
    assert "discrepancy_size" in law.idata["posterior"] and (law.parameters()["parameter"] == "discrepancy_size").any()
    assert "two sizes pin none of it" in law.summary_line() and "model discrepancy" in law.summary_line()
    wsd = Schedule.from_dict(WSD)
    inside, beyond = (law.predict(n, wsd, [24000], kind="mean") for n in (1e8, 4e8))
    assert inside["beyond_log_size"].item() == 0 and beyond["beyond_log_size"].item() == pytest.approx(np.log(4))
    kappa = law.idata["posterior"]["discrepancy_size"]
    law.idata["posterior"] = law.idata["posterior"].to_dataset().drop_vars("discrepancy_size")  # the same draws without it
    pd.testing.assert_frame_equal(law.predict(1e8, wsd, [24000], kind="mean"), inside)  # within the pilots' sizes nothing changes
    law_draws = law.predict_draws(4e8, wsd, [24000], kind="mean").values
    law.idata["posterior"] = law.idata["posterior"].to_dataset().assign(discrepancy_size=kappa)
    error = np.log(law.predict_draws(4e8, wsd, [24000], kind="mean").values / law_draws)
    # the same law draws times the discrepancy exp(log(4) kappa z): log-variance log(4)^2 E[kappa^2], mean 0
    assert error.var() == pytest.approx(np.log(4) ** 2 * float((kappa**2).mean()), rel=0.3)
    assert abs(error.mean()) < 3 * error.std() / np.sqrt(error.size)


def test_a_pending_lr_decrease_carries_the_annealing_form_error_and_a_pilots_own_checkpoints_do_not(fitted):
    """bayes_mixlaw.discrepancy_schedule: a new run's prediction is multiplied by exp(kappa m_t z), m_t the LR
    decrease still pending (0 at a constant LR), one z per draw along the curve; a pilot continued to its own
    checkpoints is data there; a fit file without the scale (an earlier version) predicts as before."""
    law = fitted
    post = law.idata["posterior"].to_dataset()
    assert "discrepancy_schedule" in post and (law.parameters()["parameter"] == "discrepancy_schedule").any()
    assert "pending decrease" in law.summary_line()
    wsd = Schedule.from_dict(WSD)
    steps = np.array([10000, 20100, 20500, 21000, 23000, 24000])
    with_error = law.predict_draws(1e8, wsd, steps, kind="mean").values[..., 0]
    law.idata["posterior"] = post.drop_vars("discrepancy_schedule")
    try:
        without = law.predict_draws(1e8, wsd, steps, kind="mean").values[..., 0]
        own = law.predict_draws(1e8, None, [8000, 12000], kind="mean", run="100/wsdcon_9").values
    finally:
        law.idata["posterior"] = post
    pending = law.features(wsd, steps).s2 - law.features(wsd, steps - 1).s2
    assert pending[0] == 0 and np.all(pending[1:] > 0) and pending.argmax() in (2, 3)  # the decay starts at 20000
    error = np.log(with_error / without)
    np.testing.assert_array_equal(error[..., 0], 0.0)  # nothing pending: nothing changes
    kappa = post["discrepancy_schedule"].values
    for j in range(1, len(steps)):  # log-variance m^2 E[kappa^2], mean 0
        assert error[..., j].var() == pytest.approx(pending[j] ** 2 * float((kappa**2).mean()), rel=0.3)
        assert abs(error[..., j].mean()) < 4 * error[..., j].std() / np.sqrt(error[..., j].size)
    z = error[..., 1:] / (kappa[..., None] * pending[1:])
    np.testing.assert_allclose(z, z[..., :1] * np.ones_like(z), atol=1e-9)  # one z for the whole curve
    np.testing.assert_array_equal(law.predict_draws(1e8, None, [8000, 12000], kind="mean", run="100/wsdcon_9").values, own)
    widened = law.predict(1e8, wsd, [21000])
    law.idata["posterior"] = post.drop_vars("discrepancy_schedule")
    try:
        narrow = law.predict(1e8, wsd, [21000])
    finally:
        law.idata["posterior"] = post
    assert (widened["upper"] - widened["lower"]).item() > 1.2 * (narrow["upper"] - narrow["lower"]).item()


def test_a_two_size_fit_file_of_the_earlier_layout_says_to_refit(shared_data, mocked_sampling, tmp_path):
    runs = load_runs(shared_data / "multipowerlaw").data
    two_sizes = runs[runs["run"].isin(["25/cosine_24000", "100/cosine_24000"])]
    two_sizes = two_sizes[two_sizes.groupby("run").cumcount() % 8 == 0].reset_index(drop=True)
    law = ScheduledScalingLaw().fit(two_sizes, draws=20, chains=2, seed=0)
    law.idata.attrs["scheduled_format"] = 1
    law.save(tmp_path / "old.nc")
    with pytest.raises(Exception, match="format 1.*refit"):
        ScheduledScalingLaw.load(tmp_path / "old.nc")


def test_pointwise_log_likelihood_is_the_models_and_loo_ranks_it(fitted):
    """The log-likelihood that PSIS-LOO reads is the model's own: PyMC's for the same draws (on the log
    loss), less log y; and compare.loo runs on a schedule-aware fit."""
    import pymc as pm
    import xarray as xr

    from bayes_mixlaw.compare import loo

    ours = fitted.pointwise_log_likelihood()
    post = fitted.idata["posterior"].to_dataset().isel(draw=slice(0, 5))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = pm.compute_log_likelihood(xr.DataTree.from_dict({"posterior": post}), model=fitted.model, var_names=["loss"], progressbar=False)
    log_y = np.log(fitted.idata["observed_data"]["loss"].values)
    np.testing.assert_allclose(ours.values[:, :5] + log_y, theirs["log_likelihood"]["loss"].values, rtol=1e-6, atol=1e-6)
    elpd = loo(fitted)
    assert np.isfinite(float(elpd.elpd)) and np.asarray(elpd.pareto_k).size == ours.sizes["obs"]


def _simulated(total: int = 30000, last: int = 15000, seed: int = 0) -> tuple[pd.DataFrame, Schedule]:
    """One run of a cosine to ``total``, checkpoints 3k..``last`` every 250 steps, from Tissue et al.'s law."""
    rng = np.random.default_rng(seed)
    schedule = Schedule(kind="cosine", total_steps=total, warmup_steps=300, peak_lr=1.0, final_lr=0.1)
    steps = np.arange(3000, total + 1, 250)
    f = schedule.features(steps)
    loss = annealing_law(f.s1, f.s2, 3.0, 40.0, 0.45, 4e-4) * np.exp(0.0005 * rng.laplace(size=len(steps)))
    frame = pd.DataFrame({"run": "sim", "params": 7e7, "step": steps, "valid_domain": "valid", "loss": loss})
    return frame, schedule


def test_unknown_schedule_is_sampled_reported_and_carried_to_predictions(mocked_sampling, tmp_path):
    frame, _ = _simulated()
    train = frame[frame["step"] <= 15000].reset_index(drop=True)
    law = ScheduledScalingLaw().fit(train, draws=40, chains=2, seed=0)
    assert law.unknown_runs == ["sim"] and law.schedule_origins() == {"sim": "unknown"}
    free = {v.name for v in law.model.free_RVs}
    assert {"schedule_z", "log_anneal_drop"} <= free and "log_d_step" not in free
    T = law.idata["posterior"]["total_steps"].values
    assert T.min() >= 15000 and T.max() <= 8 * 15000
    # without a schedule the target is trained like the pilot: its length from the posterior
    pred = law.predict(7e7, None, [20000, 30000], run="sim")
    assert len(pred) == 2 and np.all(pred["lower"] < pred["upper"])
    fixed = law.predict(7e7, None, [30000], total_steps=30000, kind="mean")
    constant = law.predict(7e7, None, [30000], total_steps=np.inf, kind="mean")
    assert np.all(np.isfinite(fixed[["median", "lower", "upper"]].to_numpy()))
    sens = law.schedule_assumptions(7e7, [30000])
    assert list(sens["assumption"]) == ["weighed: T from the posterior", "cosine ending at step 30000", "cosine ending at step 60000", "constant LR (no decay)"]
    assert constant["median"].iloc[0] != fixed["median"].iloc[0]
    # a given schedule still wins for the target
    given = law.predict(7e7, Schedule(kind="constant", total_steps=40000, peak_lr=1.0), [30000])
    assert np.isfinite(given["median"]).all()
    line = law.summary_line()
    assert "Unknown schedule for 1 run(s) (sim)" in line and "log-uniform in [15000, 120000]" in line
    assert "the assumption moves it by" in line and "posterior T median" in line
    with pytest.raises(ValueError, match="total_steps 20000 ends before step 30000"):
        law.predict(7e7, None, [30000], total_steps=20000)
    with pytest.raises(ValueError, match="not a pilot run"):
        law.predict(7e7, None, [30000], run="other")
    loaded = BayesianLaw.load(law.save(tmp_path / "unknown.nc"))
    pd.testing.assert_frame_equal(loaded.predict(7e7, None, [20000, 30000], run="sim"), pred)
    # when the pilots say the schedule ended before twice their last step (no draw of T reaches it), the
    # summary and the assumptions say so instead of failing the fit after sampling
    post = loaded.idata["posterior"].to_dataset()
    loaded.idata["posterior"] = xr.DataTree(post.assign(total_steps=post["total_steps"].clip(max=20000)))
    assert "no weighed prediction" in loaded.summary_line()
    assert "weighed: T from the posterior" not in set(loaded.schedule_assumptions(7e7, [30000])["assumption"])


def test_unknown_schedule_options_and_refusals(mocked_sampling):
    frame, _ = _simulated()
    train = frame[frame["step"] <= 15000].reset_index(drop=True)
    with pytest.raises(ValueError, match="no 'lr' column values and no schedule"):
        ScheduledScalingLaw(ScheduledLawConfig(unknown_schedule=None)).fit(train, draws=5, chains=1)
    with pytest.raises(ValueError, match="annealing step term only"):
        ScheduledScalingLaw(ScheduledLawConfig(step_term="multi_power")).fit(train, draws=5, chains=1)
    config = ScheduledLawConfig(unknown_schedule={"family": "linear", "max_factor": 3.0, "warmup_steps": 100})
    law = ScheduledScalingLaw(config).fit(train, draws=10, chains=1)
    assert law.idata["posterior"]["total_steps"].values.max() <= 45000
    assert "linear decay after a 100-step warm-up" in law.summary_line()
    with pytest.raises(ValueError):
        UnknownSchedule(family="wsd")
    # a fit whose schedules are all known needs the target's schedule
    known = ScheduledScalingLaw().fit(train, schedule=_simulated()[1], draws=10, chains=1)
    assert "total_steps" not in known.idata["posterior"] and "Unknown schedule" not in known.summary_line()
    with pytest.raises(ValueError, match="give the target run's schedule"):
        known.predict(7e7, None, [20000])
    assert np.isfinite(known.predict(7e7, None, [20000], run="sim")["median"]).all()  # the pilot's own schedule, continued


def test_nuts_weighs_the_length_and_covers_the_continued_run():
    """Real NUTS (2 short chains): a cosine to 30k seen to 15k; the length's posterior puts mass on
    lengths beyond 15k, and the 90% interval at 30k (lengths that reach it) covers the truth."""
    frame, _ = _simulated(seed=1)
    train = frame[frame["step"] <= 15000].reset_index(drop=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        law = ScheduledScalingLaw().fit(train, seed=2, progress=False, draws=300, tune=300, chains=2, cores=1)
    T = law.idata["posterior"]["total_steps"].values
    assert np.quantile(T, 0.95) > 25000
    truth = frame.set_index("step")["loss"]
    pred = law.predict(7e7, None, [30000], run="sim").iloc[0]
    assert pred["lower"] <= truth[30000] <= pred["upper"], (pred, truth[30000])
    assert abs(pred["median"] / truth[30000] - 1) < 0.03  # the length is uncertain: the interval (~5% wide) carries it


def test_cli_fit_with_an_unknown_schedule_and_predict_without_one(tmp_path, mocked_sampling):
    from typer.testing import CliRunner

    from bayes_mixlaw.cli import app

    frame, _ = _simulated()
    csv = tmp_path / "runs.csv"
    frame[frame["step"] <= 15000].to_csv(csv, index=False)
    fit = tmp_path / "fit.nc"
    cli = CliRunner()
    result = cli.invoke(app, ["fit", str(csv), "--schedule", "unknown", "-o", str(fit)])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "schedule-aware scaling law" in text and "Unknown schedule for 1 run(s)" in text
    out = tmp_path / "pred.csv"
    result = cli.invoke(app, ["predict", str(fit), "--params", "7e7", "--step", "20000", "--step", "30000", "-o", str(out)])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "no --schedule: the target is trained like the pilots of unknown schedule" in text and "constant LR (no decay)" in text
    pred = pd.read_csv(out)
    assert list(pred["step"]) == [20000, 30000] and (pred["lower"] < pred["upper"]).all()
