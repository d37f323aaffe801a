"""The command line's polish (issue 15, item 9): predict's short table and its CSV on stdout, flags and
help texts, --params as a float, report --caps."""

from __future__ import annotations

import io

import pandas as pd
from typer.testing import CliRunner

from bayes_mixlaw.cli import app
from conftest import five_mixtures

cli = CliRunner()


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
