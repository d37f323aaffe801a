"""The report of a schedule-aware scaling-law fit (``report`` on a ``fit --schedule`` file): each run's
curve against steps with its band, the learning-rate schedules, the ``schedules`` table, and for an
unknown schedule the posterior of its length and the ``schedule_assumptions`` table (what was assumed
and how much it moves a new run's prediction at the longest pilot length and at twice it). A known
schedule: a small real NUTS fit of the 25M multi-power law curves; an unknown one: mocked sampling."""

from __future__ import annotations

import html
import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from bayes_mixlaw.cli import app
from bayes_mixlaw.runs import load_runs

TWO_STAGE = {"kind": "two_stage", "total_steps": 16000, "warmup_steps": 2160, "peak_lr": 3e-4, "final_lr": 9e-5, "decay_start": 8000}
COMMON = {
    "ppc.png",
    "schedule_curves.png",
    "schedules.png",
    "report.html",
    "diagnostics.csv",
    "fitted_vs_observed.csv",
    *(f"{name}.{ext}" for name in ("parameters", "schedules") for ext in ("csv", "md", "tex")),
}

cli = CliRunner()


@pytest.fixture(scope="module")
def curves(shared_data):
    return load_runs(shared_data / "multipowerlaw" / "csv_25").data


def _fit(folder, runs: pd.DataFrame, schedule: str, config: str) -> object:
    table = folder / "runs.csv"
    runs.to_csv(table, index=False)
    (folder / "config.yaml").write_text(config)
    fit = folder / "fit.nc"
    result = cli.invoke(app, ["fit", str(table), "--schedule", schedule, "--config", str(folder / "config.yaml"), "--seed", "1", "-o", str(fit)])
    assert result.exit_code == 0, result.output
    return fit


def _report(fit, folder):
    out = folder / "report"
    result = cli.invoke(app, ["report", str(fit), "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out, " ".join(result.output.split())


def test_report_of_a_known_schedule_fit(curves, tmp_path):
    """Cosine and constant runs with their lr column, the two-stage run's schedule from --schedule."""
    train = curves[curves["run"].isin(["25/cosine_24000", "25/constant_24000", "25/wsdcon_9"])].copy()
    train = train[train.groupby("run").cumcount() % 3 == 0]
    train.loc[train["run"] == "25/wsdcon_9", ["lr", "warmup_steps"]] = np.nan
    (tmp_path / "two_stage.json").write_text(json.dumps(TWO_STAGE))
    fit = _fit(tmp_path, train, str(tmp_path / "two_stage.json"), "sampler: {draws: 150, tune: 200, chains: 2, cores: 1}\n")
    out, output = _report(fit, tmp_path)
    written = {p.name for p in out.iterdir()}
    assert COMMON <= written
    # no simplex, optimum or unknown-schedule parts: they do not apply (report_sections)
    assert not written & {"interactions.png", "optimum.png", "ternary.png", "schedule_length.png", "schedule_assumptions.csv"}
    schedules = pd.read_csv(out / "schedules.csv").set_index("run")
    assert schedules.loc["25/wsdcon_9", "origin"] == "schedule"
    assert schedules.loc["25/wsdcon_9", "schedule"].startswith("two_stage, switch at 8000, to step 16000")
    assert schedules.loc["25/cosine_24000", "origin"].startswith("lr column")
    assert "two_stage" in (out / "schedules.md").read_text() and "two\\_stage" in (out / "schedules.tex").read_text()
    fitted = pd.read_csv(out / "fitted_vs_observed.csv")
    assert len(fitted) == len(train) and (fitted["lower"] <= fitted["upper"]).all()
    inside = ((fitted["lower"] <= fitted["loss"]) & (fitted["loss"] <= fitted["upper"])).mean()
    assert inside > 0.75  # each run's band at its own schedule hugs its curve
    page = (out / "report.html").read_text()
    assert "Learning-rate schedules" in page and "Pilot runs against training steps" in page and "Schedules of the pilot runs" in page
    checks = pd.read_csv(out / "diagnostics.csv")["check"].str.cat()
    assert "posterior predictive coverage" in checks and "PSIS-LOO elpd" in checks  # the schedule-aware law says its pointwise likelihood
    assert "Schedule-aware scaling law" in output
    # the target run: a new 25M run trained with a WSD schedule, against steps to its end
    wsd = {"kind": "wsd", "total_steps": 24000, "warmup_steps": 2160, "peak_lr": 3e-4, "final_lr": 3e-5, "decay_start": 20000, "decay_shape": "exponential"}
    (tmp_path / "wsd.json").write_text(json.dumps(wsd))
    target = tmp_path / "target"
    result = cli.invoke(app, ["report", str(fit), "-o", str(target), "--params", "25e6", "--step", "24000", "--schedule", str(tmp_path / "wsd.json")])
    assert result.exit_code == 0, result.output
    assert {"target_run.png", "target_run.csv", "target_run.md", "target_run.tex"} <= {p.name for p in target.iterdir()}
    run = pd.read_csv(target / "target_run.csv")
    assert run["step"].max() == 24000 and len(run) > 30 and (run["beyond_log_size"] == 0).all()
    assert ((run["lower"] <= run["median"]) & (run["median"] <= run["upper"])).all()
    held = curves[curves["run"] == "25/wsd_20000_24000"].set_index("step")["loss"]  # the held-out WSD run, never fitted
    last = run[run["step"] == 24000].iloc[0]
    assert last["lower"] <= held.iloc[-1] <= last["upper"]
    assert "The target run" in (target / "report.html").read_text()
    result = cli.invoke(app, ["report", str(fit), "-o", str(tmp_path / "nope"), "--schedule", str(tmp_path / "wsd.json")])
    assert result.exit_code != 0 and "give --params and --step" in " ".join(result.output.split())
    result = cli.invoke(
        app, ["report", str(fit), "-o", str(tmp_path / "nope"), "--params", "25e6", "--step", "30000", "--schedule", str(tmp_path / "wsd.json")]
    )
    assert result.exit_code != 0 and "beyond the schedule" in " ".join(result.output.split())


def test_report_of_an_unknown_schedule_fit_says_what_was_assumed_and_what_it_moves(curves, tmp_path, mocked_sampling):
    """The cosine run without its lr column, seen to 12k steps (--schedule unknown)."""
    train = curves[(curves["run"] == "25/cosine_24000") & (curves["step"] <= 12000)].drop(columns=["lr", "warmup_steps"])
    fit = _fit(tmp_path, train, "unknown", "sampler: {draws: 50, chains: 2}\n")
    out, output = _report(fit, tmp_path)
    written = {p.name for p in out.iterdir()}
    assert COMMON | {"schedule_length.png", *(f"schedule_assumptions.{ext}" for ext in ("csv", "md", "tex"))} <= written
    last = int(train["step"].max())
    table = pd.read_csv(out / "schedule_assumptions.csv")
    assert sorted(table["step"].unique()) == [last, 2 * last]
    assert set(table["assumption"]) == {
        "weighed: T from the posterior",
        f"cosine ending at step {last}",
        f"cosine ending at step {2 * last}",
        f"cosine ending at step {4 * last}",
        "constant LR (no decay)",
    }
    weighed = table[table["assumption"] == "weighed: T from the posterior"]
    assert (
        weighed["schedule"]
        .str.contains(f"cosine decay after a .*-step warm-up to 0.1 x the peak LR at an unknown total length T, log-uniform in \\[{last}, {8 * last}\\]")
        .all()
    )
    assert np.allclose(weighed["moves_median_pct"], 0.0)
    assert table["moves_median_pct"].abs().max() > 0  # the assumption moves the prediction, and the table says how much
    constant = table[(table["assumption"] == "constant LR (no decay)") & (table["step"] == 2 * last)]["median"].iloc[0]
    ends = table[(table["assumption"] == f"cosine ending at step {2 * last}")]["median"].iloc[0]
    assert constant > ends  # a decay that ends at the target step anneals the loss below a constant LR's
    shown = (out / "schedule_assumptions.md").read_text()
    assert "log-uniform in [" in shown and "vs weighed" in shown and "constant LR (no decay)" in shown
    schedules = pd.read_csv(out / "schedules.csv")
    assert schedules["origin"].tolist() == ["unknown"] and schedules["schedule"].str.contains("assumed: cosine decay .* posterior T median").all()
    page = html.unescape((out / "report.html").read_text())
    assert "What the unknown schedule's assumptions move" in page and "The unknown schedule's total length" in page
    assert "Unknown schedule for 1 run(s)" in page  # the fit's summary says it too
    assert "the assumption moves it by" in output
