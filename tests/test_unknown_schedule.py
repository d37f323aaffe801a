"""Runs of unknown learning-rate schedule: the schedule's length is a parameter the posterior weighs
(closed-form areas checked against the step sums), predictions carry it, and the fit says what it
assumed and how much the assumption moves a prediction."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytensor
import pytensor.tensor as pt
import pytest
import xarray as xr

from bayes_mixlaw import BayesianLaw
from bayes_mixlaw.scheduled import (
    ScheduledLawConfig,
    ScheduledScalingLaw,
    UnknownSchedule,
)
from bayes_mixlaw.schedules import Schedule, decay_areas
from bayes_mixlaw.step_laws import annealing_law


@pytest.mark.parametrize("family", ["cosine", "linear"])
@pytest.mark.parametrize("total", [15000, 40000, 500000])
def test_closed_form_areas_match_the_step_sums(family, total):
    schedule = Schedule(kind=family, total_steps=total, warmup_steps=300, peak_lr=1.0, final_lr=0.1)
    steps = np.array([100, 300, 1000, 5000, 14000, 15000])
    exact = schedule.features(steps)
    s1, s2 = decay_areas(steps, float(total), warmup=300, final_ratio=0.1, family=family)
    assert np.all(np.abs(s1 - exact.s1) <= 0.6)  # a half step of area: integral against sum
    assert np.allclose(s2, exact.s2, rtol=3e-3, atol=0.02)
    # past the end of the decay the LR holds its final value
    s1_after, _ = decay_areas(np.array([total + 1000.0]), float(total), warmup=300, final_ratio=0.1, family=family)
    s1_end, _ = decay_areas(np.array([float(total)]), float(total), warmup=300, final_ratio=0.1, family=family)
    assert np.isclose(s1_after[0] - s1_end[0], 100.0)


def test_closed_form_areas_are_the_same_in_pytensor_with_a_batch_of_lengths():
    steps = np.array([1000.0, 8000.0, 15000.0])
    totals = np.array([[15000.0], [30000.0], [90000.0]])
    s1, s2 = decay_areas(steps, totals, warmup=300, final_ratio=0.1)
    T = pt.tensor("T", shape=(None, 1))
    f = pytensor.function([T], decay_areas(pt.as_tensor_variable(steps), T, warmup=300, final_ratio=0.1))
    t1, t2 = f(totals)
    assert s1.shape == (3, 3) and np.allclose(t1, s1) and np.allclose(t2, s2)
    assert np.all(np.diff(s2[:, -1]) < 0)  # a longer schedule has annealed less by 15k


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
