"""The command line with learning-rate schedules: ``fit RUNS --schedule`` and ``predict FIT --schedule
--params --step`` for the schedule-aware scaling law (a real NUTS fit of the 100M multi-power law
curves), and each error case."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from bayes_mixlaw.cli import app
from bayes_mixlaw.runs import FORMATS, load_runs
from conftest import TWO_STAGE, WSD, flat

TRAIN = ("100/cosine_24000", "100/constant_24000", "100/wsdcon_9")

cli = CliRunner()


def write_json(path, data):
    path.write_text(json.dumps(data))
    return path


@pytest.fixture(scope="module")
def curves(shared_data):
    return load_runs(shared_data / "multipowerlaw" / "csv_100").data


@pytest.fixture(scope="module")
def fitted(curves, tmp_path_factory):
    """A real fit from the CLI: the cosine and constant runs with their logged lr column, the two-stage
    run without one (its schedule from --schedule); every other logged point."""
    folder = tmp_path_factory.mktemp("cli_schedule")
    train = curves[curves["run"].isin(TRAIN)].copy()
    train = train[train.groupby("run").cumcount() % 2 == 0]
    train.loc[train["run"] == "100/wsdcon_9", ["lr", "warmup_steps"]] = np.nan
    runs = folder / "runs.csv"
    train.to_csv(runs, index=False)
    config = folder / "config.yaml"
    config.write_text("sampler: {draws: 300, tune: 400, chains: 2, cores: 1}\n")
    fit = folder / "fit.nc"
    result = cli.invoke(
        app, ["fit", str(runs), "--schedule", str(write_json(folder / "two_stage.json", TWO_STAGE)), "--config", str(config), "--seed", "2", "-o", str(fit)]
    )
    assert result.exit_code == 0, result.output
    return fit, folder, flat(result)


def test_fit_with_a_schedule_fits_the_schedule_aware_law(fitted):
    from bayes_mixlaw import BayesianLaw
    from bayes_mixlaw.scheduled import ScheduledScalingLaw

    fit, _, output = fitted
    assert "schedule-aware scaling law on 3 runs" in output and "lr column and" in output
    law = BayesianLaw.load(fit)
    assert isinstance(law, ScheduledScalingLaw)
    origins = law.schedule_origins()
    assert origins["100/wsdcon_9"] == "schedule" and origins["100/cosine_24000"].startswith("lr column")
    assert law.schedules["100/wsdcon_9"].kind == "two_stage"


def test_predict_gives_one_row_per_step_with_intervals(fitted, curves):
    fit, folder, _ = fitted
    held = curves[curves["run"] == "100/wsd_20000_24000"].set_index("step")["loss"]
    steps = [int(held.index[len(held) // 2]), int(held.index[-10]), int(held.index[-1])]  # before, in and at the end of the decay
    out = folder / "pred.csv"
    args = ["predict", str(fit), "--schedule", str(write_json(folder / "wsd.json", WSD)), "--params", "1e8", "-o", str(out)]
    for s in steps:
        args += ["--step", str(s)]
    result = cli.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "Predicted loss, 90% credible intervals" in result.output and "wrote 3 rows" in flat(result)
    table = pd.read_csv(out)
    assert list(table.columns)[:7] == ["params", "step", "target", "mean", "median", "lower", "upper"]  # then fit_* columns if unconverged
    assert table["step"].tolist() == steps and (table["params"] == 100_000_000).all()
    assert np.all(np.isfinite(table[["mean", "median", "lower", "upper"]].to_numpy()))
    assert np.all(table["lower"] < table["median"]) and np.all(table["median"] < table["upper"])
    assert np.all(np.abs(table["mean"] / table["median"] - 1) < 0.002)  # a log-normal predictive: mean near the median
    truth = held.loc[steps].to_numpy()
    assert np.all(np.abs(table["median"].to_numpy() / truth - 1) < 0.01), (table, truth)  # held-out WSD run within 1%
    # --kind mean narrows the interval (no new run's effects, no noise)
    out_mean = folder / "pred_mean.csv"
    result = cli.invoke(app, [*args[: -2 * len(steps) - 2], "-o", str(out_mean), "--step", str(steps[-1]), "--kind", "mean", "-q"])
    assert result.exit_code == 0, result.output
    narrow = pd.read_csv(out_mean).iloc[0]
    wide = table.iloc[-1]
    assert narrow["upper"] - narrow["lower"] < wide["upper"] - wide["lower"]


def test_predict_errors_name_what_is_missing_or_wrong(fitted):
    fit, folder, _ = fitted
    wsd = write_json(folder / "wsd_err.json", WSD)
    out = str(folder / "err.csv")
    result = cli.invoke(app, ["predict", str(fit), "--params", "1e8", "--step", "21000", "-o", out])
    assert result.exit_code == 2 and "give the target run's schedule and scale with --schedule SCHED.json" in flat(result)
    result = cli.invoke(app, ["predict", str(fit), "--schedule", str(wsd), "--step", "21000", "-o", out])
    assert result.exit_code == 2 and "--params N --step S" in flat(result)
    result = cli.invoke(app, ["predict", str(fit), "--schedule", str(wsd), "--params", "1e8", "--step", "21000", "--step", "25000", "-o", out])
    assert result.exit_code == 2
    assert f"--step 25000 is beyond the schedule in {wsd}, which ends at step 24000" in flat(result)
    result = cli.invoke(app, ["predict", str(fit), "--schedule", str(wsd), "--params", "1e8", "--step", "2000.5", "-o", out])
    assert result.exit_code == 2 and "whole numbers" in flat(result)
    bad = write_json(folder / "bad.json", {**WSD, "decay_shape": "cosine"})
    result = cli.invoke(app, ["predict", str(fit), "--schedule", str(bad), "--params", "1e8", "--step", "21000", "-o", out])
    assert result.exit_code == 2 and str(bad) in flat(result) and "decay_shape" in flat(result)
    mixtures = folder / "m.csv"
    pd.DataFrame({"mix:a": [1.0]}).to_csv(mixtures, index=False)
    result = cli.invoke(app, ["predict", str(fit), "--schedule", str(wsd), "--params", "1e8", "--step", "21000", "--mixtures", str(mixtures), "-o", out])
    assert result.exit_code == 2 and "takes no --mixtures" in flat(result)
    result = cli.invoke(app, ["predict", str(fit), "--schedule", str(wsd), "--params", "1e8", "--tokens", "1e9", "-o", out])
    assert result.exit_code == 2 and "give --step, not --tokens" in flat(result)
    result = cli.invoke(app, ["optimize", str(fit), "-o", out])
    assert result.exit_code == 2 and "there is no mixture to optimise" in flat(result)
    assert "Traceback" not in result.output


def test_fit_schedule_errors_name_the_file_and_field(curves, tmp_path):
    runs = tmp_path / "runs.csv"
    curves[curves["run"] == "100/wsdcon_9"].drop(columns=["lr", "warmup_steps"]).to_csv(runs, index=False)
    out = str(tmp_path / "fit.nc")
    missing = write_json(tmp_path / "missing.json", {"kind": "wsd", "total_steps": 24000, "peak_lr": 3e-4})
    result = cli.invoke(app, ["fit", str(runs), "--schedule", str(missing), "-o", out])
    assert result.exit_code == 2 and f"{missing}: field 'decay_start'" in flat(result)
    broken = tmp_path / "broken.json"
    broken.write_text("{kind: cosine")
    result = cli.invoke(app, ["fit", str(runs), "--schedule", str(broken), "-o", out])
    assert result.exit_code == 2 and f"{broken}: not valid JSON" in flat(result)
    result = cli.invoke(app, ["fit", str(runs), "--schedule", str(tmp_path / "nowhere.json"), "-o", out])
    assert result.exit_code == 2 and "nowhere.json: cannot read the schedule" in flat(result)
    # the run's last logged loss (step 15936) is beyond a schedule that ends at 12000
    short = write_json(tmp_path / "short.json", {**TWO_STAGE, "total_steps": 12000})
    result = cli.invoke(app, ["fit", str(runs), "--schedule", str(short), "-o", out])
    assert result.exit_code == 2 and "run '100/wsdcon_9' has a loss at step 15936, beyond its schedule" in flat(result)
    assert "Traceback" not in result.output


def test_fit_takes_a_schedule_for_mixtures_in_the_nested_law_only(tmp_path):
    rows = [
        {"run": f"r{m}", "params": 1e8, "step": s, "valid_domain": "v", "loss": 3.0 - 0.1 * np.log(s), "mix:a": p, "mix:b": 1 - p}
        for m, p in enumerate((0.2, 0.7))
        for s in (1000, 2000, 4000)
    ]
    runs = tmp_path / "mix.csv"
    pd.DataFrame(rows).to_csv(runs, index=False)
    schedule = write_json(tmp_path / "cos.json", {"kind": "cosine", "total_steps": 4000, "peak_lr": 1e-3})
    result = cli.invoke(app, ["fit", str(runs), "--schedule", str(schedule), "-o", str(tmp_path / "fit.nc")])
    assert result.exit_code == 2
    assert "has 2 data mixtures but not several model sizes and steps; the mixing law it then fits has no steps" in flat(result)
    result = cli.invoke(app, ["fit", str(runs), "--schedule", "unknown", "-o", str(tmp_path / "fit.nc")])
    assert result.exit_code == 2 and "the nested law does not weigh an unknown schedule" in flat(result)


def test_a_nested_fit_reads_the_pilots_schedule_and_predicts_under_the_targets(tmp_path, shared_data, mocked_sampling):
    """Issue 14: `fit --schedule` on mixtures at several sizes and steps fits the nested law with its schedule-aware step
    term; `predict` takes the target's schedule (and says which it needs)."""
    table = load_runs(shared_data / "mixinglaws" / "RedPajama")
    data = table.data[table.data["valid_domain"].isin(["Pile-CC", "Github"]) & (table.data["params"] < 302_311_424)]
    csv = tmp_path / "runs.csv"
    data.to_csv(csv, index=False)
    config = tmp_path / "nested.yaml"
    config.write_text("learn_discrepancy: false\nsampler: {draws: 20, chains: 2}\n")
    cosine = write_json(tmp_path / "cosine.json", {"kind": "cosine", "total_steps": 30_000, "warmup_steps": 300, "peak_lr": 3e-4, "final_lr": 3e-5})
    fit = tmp_path / "nested.nc"
    result = cli.invoke(app, ["fit", str(csv), "--schedule", str(cosine), "--config", str(config), "-o", str(fit)])
    assert result.exit_code == 0, result.output
    said = flat(result)  # a long temporary path may be wrapped
    assert "steps read through the learning-rate schedules from the" in said and "learning-rate schedules of 60 runs (60 from schedule)" in said
    mixtures = tmp_path / "m.csv"
    data.filter(like="mix:").drop_duplicates().head(2).to_csv(mixtures, index=False)
    wsd = write_json(tmp_path / "wsd.json", WSD)
    result = cli.invoke(app, ["predict", str(fit), "--mixtures", str(mixtures), "--params", "3e8", "--step", "20000", "-o", "-", "-q"])
    assert result.exit_code == 2 and "give the target run's schedule" in flat(result) and "Traceback" not in result.output
    result = cli.invoke(app, ["predict", str(fit), "--mixtures", str(mixtures), "--params", "3e8", "--step", "20000", "--schedule", str(wsd), "-o", "-", "-q"])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(io.StringIO(result.stdout))
    assert len(table) == 2 * 3 and (table["lower"] < table["upper"]).all()


def test_predict_schedule_on_a_fit_without_one_is_refused(tmp_path, shared_data, mocked_sampling):
    runs = load_runs(shared_data / "mixinglaws" / "2Mix").select(params=18_915_328, step=30000)
    csv = tmp_path / "runs.csv"
    runs.data.to_csv(csv, index=False)
    fit = tmp_path / "mix.nc"
    result = cli.invoke(app, ["fit", str(csv), "-o", str(fit), "-q"])
    assert result.exit_code == 0, result.output
    schedule = write_json(tmp_path / "wsd.json", WSD)
    result = cli.invoke(app, ["predict", str(fit), "--schedule", str(schedule), "--step", "21000", "-o", str(tmp_path / "p.csv")])
    assert result.exit_code == 2 and "is not a schedule-aware fit (it is a mixing law): it takes no --schedule" in flat(result)


def test_format_choices_come_from_the_loaders(shared_data, tmp_path, mocked_sampling):
    wide = {"COLUMNS": "300", "TERMINAL_WIDTH": "300"}  # no wrapping inside rich's boxes
    assert "multipowerlaw" in FORMATS
    result = cli.invoke(app, ["fit", "--help"], env=wide)
    assert "<" + "|".join(FORMATS) + ">" in result.output
    result = cli.invoke(app, ["fit", str(shared_data / "multipowerlaw"), "--format", "bogus", "-o", str(tmp_path / "x.nc")], env=wide)
    assert result.exit_code == 2 and "'bogus' is not one of " + ", ".join(f"'{f}'" for f in FORMATS) in result.output
    # the multi-power law folder has lr columns: the schedule-aware law, over three sizes
    result = cli.invoke(
        app,
        [
            "fit",
            str(shared_data / "multipowerlaw"),
            "--format",
            "multipowerlaw",
            "--config",
            str(write_json(tmp_path / "c.json", {"sampler": {"draws": 20, "chains": 1}})),
            "-o",
            str(tmp_path / "mpl.nc"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "schedule-aware scaling law on 12 runs" in flat(result) and "3 size(s); schedules from the lr column" in flat(result)
