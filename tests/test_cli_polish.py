"""A row's predictions are its own (issue 15, item 7) and the command line's polish (item 9)."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from bayes_mixlaw import BayesianLaw, Targets
from bayes_mixlaw.cli import app
from bayes_mixlaw.config import NestedLawConfig
from bayes_mixlaw.nested import NestedLaw
from bayes_mixlaw.runs import RunsTable, load_runs
from bayes_mixlaw.scaling import ChinchillaLaw

cli = CliRunner()
FIVE = ["academic", "prose", "dialogue", "symbolic", "internet"]


def flat(result) -> str:
    return " ".join(result.output.split())


def five_mixtures() -> pd.DataFrame:
    rows = {"uniform": [0.2] * 5, "academic-heavy": [0.5, 0.15, 0.1, 0.1, 0.15], "web": [0, 0, 0, 0, 1.0], "prose": [0.1, 0.6, 0.1, 0.1, 0.1]}
    return pd.DataFrame([{"name": k, **{f"mix:{d}": x for d, x in zip(FIVE, v)}} for k, v in rows.items()])


# item 7: a row's numbers do not depend on the other rows ------------------------------------------------


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


def test_scaling_law_points_are_their_own(mocked_sampling):
    rng = np.random.default_rng(0)
    n, d = np.repeat([1e7, 3e7, 1e8], 3), np.tile([1e9, 3e9, 1e10], 3)
    loss = 2 + 400 / n**0.34 + 400 / d**0.28 + 0.01 * rng.standard_normal(9)
    runs = pd.DataFrame({"run": [f"r{i}" for i in range(9)], "params": n.astype(int), "tokens": d, "valid_domain": "v", "loss": loss})
    law = ChinchillaLaw().fit(runs, seed=0, draws=10, chains=1, progress=False)
    both = law.predict([1e9, 2e9], [2e10, 4e10], seed=1)
    one = law.predict([2e9], [4e10], seed=1)
    pd.testing.assert_frame_equal(one, both.iloc[[1]].reset_index(drop=True))


# item 9: the command line's polish ---------------------------------------------------------------------


def test_predict_shows_a_short_table_and_writes_the_csv(mock_mixing_fit, tmp_path):
    five_mixtures().to_csv(tmp_path / "m.csv", index=False)
    result = cli.invoke(app, ["predict", str(mock_mixing_fit), "--mixtures", str(tmp_path / "m.csv"), "-o", str(tmp_path / "p.csv")])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if "academic-heavy" in line]
    assert any("total" in line and "[" in line for line in lines)  # name, target, mean, interval
    assert not any("Github" in line for line in lines)  # the table shows the aggregates; the CSV has every domain
    assert len(pd.read_csv(tmp_path / "p.csv")) == 4 * 28


def test_output_dash_writes_csv_to_stdout(mock_mixing_fit, tmp_path, monkeypatch):
    five_mixtures().to_csv(tmp_path / "m.csv", index=False)
    monkeypatch.chdir(tmp_path)
    result = cli.invoke(app, ["predict", str(mock_mixing_fit), "--mixtures", "m.csv", "-o", "-"])
    assert result.exit_code == 0
    table = pd.read_csv(io.StringIO(result.stdout))
    assert list(table.columns[:2]) == ["name", "mix:academic"] and len(table) == 4 * 28
    assert not (tmp_path / "-").exists()


def commands():
    import typer.main

    group = typer.main.get_command(app)
    return {name: group.commands[name] for name in group.commands}


def test_flags_have_no_value_placeholder_and_every_option_has_help():
    for name, command in commands().items():
        for param in command.params:
            if getattr(param, "is_flag", False) or getattr(param, "is_bool_flag", False):
                assert param.metavar == "", f"{name} {param.opts}"
            if param.param_type_name == "option":
                assert param.help, f"{name} {param.opts} has no help text"
        result = cli.invoke(app, [name, "--help"], terminal_width=250)
        assert result.output.count("<bool>") <= 1, f"{name}: {result.output}"  # only --help's own


def test_quiet_and_seed_are_explained_and_params_is_one_type():
    for name, command in commands().items():
        options = {p.name: p for p in command.params}
        for option in ("quiet", "seed"):
            if option in options:
                assert options[option].help, f"{name} --{option}"
        if "params" in options:
            assert options["params"].bare_type() in ("float", "list[float]"), f"{name} --params is {options['params'].bare_type()}"


def test_format_help_lists_every_format():
    from bayes_mixlaw.runs import FORMAT_DESCRIPTIONS, FORMATS

    assert list(FORMAT_DESCRIPTIONS) == list(FORMATS)
    fmt = {p.name: p for p in commands()["fit"].params}["format"]
    assert all(f"{name} (" in fmt.help for name in FORMATS)


def test_fit_params_as_float_selects_the_size(tmp_path, mocked_sampling):
    from bayes_mixlaw import datasets

    table = datasets.mixinglaws_5mix_70m().select(step=30000).data
    table.to_csv(tmp_path / "runs.csv", index=False)
    config = tmp_path / "c.yaml"
    config.write_text("sampler: {draws: 5, chains: 1}\n")
    result = cli.invoke(app, ["fit", str(tmp_path / "runs.csv"), "-o", str(tmp_path / "f.nc"), "--params", "1.8915328e7", "--config", str(config), "-q"])
    assert result.exit_code == 0, result.output


def test_progress_lines_where_no_terminal_shows_a_bar(caplog):
    """Issue 15 item 5: a fit run from a log file or CI says how far it is, every few seconds."""
    import logging
    from types import SimpleNamespace

    from bayes_mixlaw.inference import ProgressLines, _progress_options

    now = [0.0]
    lines = ProgressLines(every=10, clock=lambda: now[0])
    chain = lambda done, tuning: SimpleNamespace(finished_draws=done, total_draws=100, tuning=tuning, divergences=1)  # noqa: E731
    with caplog.at_level(logging.INFO, logger="bayes_mixlaw"):
        for t, done in ((1, 10), (5, 20), (12, 40), (15, 50), (30, 100), (31, 100)):
            now[0] = t
            lines([chain(done, done < 50), chain(done, False)])
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "sampling: 80/200 draws of 2 chain(s) (40%), 1 still tuning, 2 divergence(s), 12 s",
        "sampling: 200/200 draws of 2 chain(s) (100%), 2 divergence(s), 30 s",
    ]
    assert "progress_callback" in _progress_options(True)  # under pytest stderr is not a terminal
    assert _progress_options(False) == {"progress_bar": False}


def test_report_takes_caps_and_minimums(mock_mixing_fit, tmp_path, monkeypatch):
    """Issue 15 item 5: report --caps gives the report's optimum the user's caps (the whole report
    takes ~40 s, so write_report is replaced here; tests/test_cli_bad_input.py checks the caps' errors)."""
    import json

    seen = {}
    monkeypatch.setattr("bayes_mixlaw.report.write_report", lambda law, folder, **kw: seen.update(kw) or folder / "report.html")
    caps = tmp_path / "caps.json"
    caps.write_text(json.dumps({"caps": {"internet": 0.3}, "minimums": {"prose": 0.2}}))
    result = cli.invoke(app, ["report", str(mock_mixing_fit), "-o", str(tmp_path / "rep"), "--caps", str(caps)])
    assert result.exit_code == 0, result.output
    assert seen["bounds"].caps == {"internet": 0.3} and seen["bounds"].minimums == {"prose": 0.2} and seen["caps_source"] == str(caps)


# item 10: the report's figures and tables say what they show ------------------------------------------------


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
    nested = SimpleNamespace(kind="nested_law", length_column="step", pilot_scales=lambda: {"params": [18_915_328, 302_311_424], "step": [10_000, 30_000]})
    assert _beyond(nested, {"params": 302_311_424, "step": 30_000}) == ""
    said = _beyond(nested, {"params": 805_736_448, "step": 100_000})
    assert "every point is an extrapolation" in said and "size 2.7x" in said and "length 3.3x" in said


def test_report_figures_draw_on_a_fit(mock_mixing_fit):
    from bayes_mixlaw.report import figure_proportion_bands, figure_ternary

    law = BayesianLaw.load(mock_mixing_fit)
    for png in (figure_ternary(law, resolution=12), figure_proportion_bands(law, points=11)):
        assert png[:4] == b"\x89PNG"


def test_calibrated_drift_shares_its_uncertainty_but_not_a_runs_spread():
    """Item 7 with a calibrated extrapolation: the drift's uncertainty is one draw for every mixture of
    a call (from the shared generator), each run's own spread its own (the row's generator)."""
    import json
    from types import SimpleNamespace

    from bayes_mixlaw.calibrate import ATTR, discrepancy_factor
    from bayes_mixlaw.model import row_generators, shared_generator

    entry = {"mean": [0.01] * 3, "sd": [0.1] * 3, "se": [0.02] * 3}
    law = SimpleNamespace(idata=SimpleNamespace(attrs={ATTR: json.dumps({"step": entry})}), pilot_scales=lambda: {"step": [1.0, 10.0]})
    rows = row_generators(0, np.eye(2))
    a, b = (discrepancy_factor(law, {"step": 100.0}, (1, 50, 1, 3), shared_generator(0), predictive=True, row_rng=g) for g in rows)
    assert not np.allclose(a, b)  # each run's own spread
    mean_a, mean_b = (discrepancy_factor(law, {"step": 100.0}, (1, 50, 1, 3), shared_generator(0), predictive=False, row_rng=g) for g in rows)
    np.testing.assert_array_equal(mean_a, mean_b)  # the shared uncertainty of the drift
