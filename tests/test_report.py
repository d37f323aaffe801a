"""The report (bayes_mixlaw/report.py): its tables and figures, and the report of each kind of fit: a
mixing-law fit (mocked), a continual pre-training fit (a small real NUTS fit of the ct runs, with the
critical command) and a schedule-aware scaling-law fit (``report`` on a ``fit --schedule`` file: each
run's curve against steps with its band, the learning-rate schedules, the ``schedules`` table, and for
an unknown schedule the posterior of its length and the ``schedule_assumptions`` table; a known schedule:
a small real NUTS fit of the 25M multi-power law curves, an unknown one: mocked sampling)."""

from __future__ import annotations

import html
import json
import re
import warnings
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from bayes_mixlaw import BayesianLaw, MixingLaw, MixingLawConfig, Targets, datasets
from bayes_mixlaw.cli import app
from bayes_mixlaw.continual import ContinualLaw, ContinualLawConfig
from bayes_mixlaw.runs import load_runs
from conftest import TWO_STAGE

cli = CliRunner()
DOMAINS = ["Pile-CC", "Github", "starcoder.python"]  # as the ct helpers' in tests/conftest.py: 'total' is the two Pile domains
TARGETS = Targets({"Pile-CC": 1.0, "Github": 1.0, "starcoder.python": 0.0}, {"pile": ["Pile-CC", "Github"]})
FIT_COLUMNS = ["fit_converged", "fit_max_rhat", "fit_min_ess_bulk", "fit_divergences"]
COMMON = {
    "ppc.png",
    "schedule_curves.png",
    "schedules.png",
    "report.html",
    "diagnostics.csv",
    "fitted_vs_observed.csv",
    *(f"{name}.{ext}" for name in ("parameters", "schedules") for ext in ("csv", "md", "tex")),
}


# --------------------------------------------------------------------------------------------------------------
# tables and figures


def test_coverage_verdict_names_over_and_under_coverage(mock_mixing_fit):
    from bayes_mixlaw.report import coverage_verdict, diagnostics_table

    def table(inside, n=200):
        loss = np.ones(n)
        return pd.DataFrame({"loss": loss, "lower": np.where(np.arange(n) < inside, 0.5, 1.5), "upper": np.full(n, 2.0)})

    assert coverage_verdict(table(180)) == (0.9, "ok")
    inside, said = coverage_verdict(table(197))
    assert inside == 0.985 and "noise is over-estimated" in said
    assert "intervals are too narrow" in coverage_verdict(table(150))[1]
    law = BayesianLaw.load(mock_mixing_fit)
    overall = diagnostics_table(law, table(197)).set_index("check").loc["overall", "verdict"]
    assert "noise is over-estimated" in overall and "no problems" not in overall


def test_sizes_as_users_know_them_and_extrapolation_said():
    from types import SimpleNamespace

    from bayes_mixlaw.report import _beyond, _size_label

    assert [_size_label(n) for n in (18_915_328, 805_736_448, 2.5e7, 1.3e9)] == ["Pythia-70M", "Pythia-1B", "25M", "1.3B"]
    nested = SimpleNamespace(
        kind="nested_law", has_scale_axes=True, length_column="step", pilot_scales=lambda: {"params": [18_915_328, 302_311_424], "step": [10_000, 30_000]}
    )
    assert _beyond(nested, {"params": 302_311_424, "step": 30_000}) == ""
    said = _beyond(nested, {"params": 805_736_448, "step": 100_000})
    assert "every point is an extrapolation" in said and "size 2.7x" in said and "length 3.3x" in said


def test_report_figures_draw_on_a_fit(mock_mixing_fit):
    from bayes_mixlaw.report import figure_proportion_bands, figure_ternary

    law = BayesianLaw.load(mock_mixing_fit)
    for png in (figure_ternary(law, resolution=12), figure_proportion_bands(law, points=11)):
        assert png[:4] == b"\x89PNG"


def test_figure_critical(mock_law):
    from bayes_mixlaw.report import figure_critical

    png = figure_critical(mock_law, "pile", tolerance=0.01)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------------------------------------------
# a mixing-law fit (mocked sampling)


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
    # each figure, the comparison's stacking weights and its held-out check
    assert page.count("<p class='how'>") == 8 and "about 90% of them should lie inside their interval" in page
    assert "read it against its spread if the model were right" in page and "Stacking weight" in page
    weights = pd.read_csv(folder / "model_comparison.csv")["stacking weight"]
    assert len(weights) == 2 and np.isclose(weights.sum(), 1.0)
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
    # the held-out coverage read against its own spread if the model were right (bayes_mixlaw.coverage)
    spread = comparison[["P(90% coverage within 0.05) if the model is right", "coverage percentile if the model is right"]]
    assert ((spread >= 0) & (spread <= 1)).all().all()
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


# --------------------------------------------------------------------------------------------------------------
# a continual pre-training fit


@pytest.fixture(scope="module")
def continual_fit(shared_data, tmp_path_factory):
    """A continual law fitted by NUTS (2 x (300 + 200) draws) on the five ct runs' three validation
    domains at every checkpoint, and its fit file."""
    ct = load_runs(shared_data / "mixinglaws" / "ct")
    data = ct.data[ct.data["valid_domain"].isin(DOMAINS)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        law = ContinualLaw(ContinualLawConfig(sampler={"draws": 200, "tune": 300, "chains": 2}), TARGETS)
        law.fit(replace(ct, data=data.reset_index(drop=True)), seed=2, progress=False)
    assert law.diagnostics.max_rhat < 1.15  # short chains: near, not at, convergence (the report says so)
    path = law.save(tmp_path_factory.mktemp("continual") / "ct.nc")
    return law, path


def test_report_of_a_continual_fit(continual_fit, tmp_path):
    law, path = continual_fit
    folder = tmp_path / "report"
    result = CliRunner().invoke(app, ["report", str(path), "-o", str(folder), "-q"])
    assert result.exit_code == 0, result.output
    for name in (
        "report.html",
        "ppc.png",
        "critical.png",
        "diagnostics.csv",
        "fitted_vs_observed.csv",
        *(f"{table}.{ext}" for table in ("critical", "parameters") for ext in ("csv", "md", "tex")),
    ):
        assert (folder / name).stat().st_size > 0, name
    for name in ("optimum.png", "ternary.png", "interactions.png", "proportions.png", "optimum.csv", "predictions.csv", "interactions.csv"):
        assert not (folder / name).exists(), f"{name}: a mixture-simplex part in a continual fit's report"
    assert not list(folder.glob("domains_along_*.png"))
    page = (folder / "report.html").read_text()
    assert "Critical share of Pile for &#x27;total&#x27;" in page and "continual pre-training law" in page and "<h2>Diagnostics</h2>" in page
    critical = pd.read_csv(folder / "critical.csv")
    row = critical.set_index("target").loc["total"]
    assert row["step"] == law.steps[-1] and row["domain"] == "Pile" and row["new_target"] == "starcoder.python"
    assert np.isfinite([row["lower"], row["median"], row["upper"]]).all()
    assert 0 < row["lower"] <= row["median"] <= row["upper"] < 1
    assert list(critical.columns[-4:]) == FIT_COLUMNS
    assert "critical share, mean [90% interval]" in (folder / "critical.md").read_text()
    assert "\\begin{table}" in (folder / "critical.tex").read_text()
    # fitted against observed: every pilot loss at its own checkpoint, and most inside their interval
    fitted = pd.read_csv(folder / "fitted_vs_observed.csv")
    assert len(fitted) == law.idata["observed_data"].sizes["obs"] and set(fitted["obs_step"]) == set(law.steps)
    assert ((fitted["lower"] <= fitted["loss"]) & (fitted["loss"] <= fitted["upper"])).mean() > 0.7
    diagnostics = pd.read_csv(folder / "diagnostics.csv")
    assert {"max R-hat", "posterior predictive coverage (90% intervals)", "overall"} <= set(diagnostics["check"])


def test_report_refuses_mixture_options_on_a_continual_fit(continual_fit, tmp_path):
    _, path = continual_fit
    result = CliRunner().invoke(app, ["report", str(path), "-o", str(tmp_path / "r"), "--along", "Pile", "-q"])
    assert result.exit_code == 2 and "--along" in result.output and "does not apply" in result.output
    assert not (tmp_path / "r" / "report.html").exists()
    result = CliRunner().invoke(app, ["report", str(path), "-o", str(tmp_path / "r"), "--new-target", "nope", "-q"])
    assert result.exit_code == 2 and "unknown new-domain target 'nope'" in result.output


def test_critical_csv_carries_the_fits_diagnostics(continual_fit, tmp_path):
    law, path = continual_fit
    out = tmp_path / "crit.csv"
    result = CliRunner().invoke(app, ["critical", str(path), "--keep", "total", "--keep", "Pile-CC", "-o", str(out), "-q"])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out)
    assert table["target"].tolist() == ["total", "Pile-CC"] and list(table.columns[-4:]) == FIT_COLUMNS
    expected = law.diagnostics.columns()
    for column in FIT_COLUMNS:
        assert (table[column] == expected[column]).all(), column


def test_report_loads_a_continual_fit_in_a_fresh_process(continual_fit, tmp_path):
    """The command line in its own interpreter (nothing has imported the continual law yet) reads the fit."""
    import subprocess
    import sys

    _, path = continual_fit
    folder = tmp_path / "fresh"
    done = subprocess.run(
        [sys.executable, "-c", "from bayes_mixlaw.cli import main; main()", "report", str(path), "-o", str(folder), "-q"],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (folder / "critical.csv").exists() and not (folder / "optimum.csv").exists()


# --------------------------------------------------------------------------------------------------------------
# a schedule-aware scaling-law fit


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
