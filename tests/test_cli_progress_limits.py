"""Issue 15 item 5 on the command line: optimize and suggest say how far they are, and their size options have
limits (the Python API's too). The progress lines themselves: tests/test_inference.py."""

from __future__ import annotations

import functools
import time

import pytest
from typer.testing import CliRunner

from bayes_mixlaw.cli import app
from bayes_mixlaw.inference import Progress
from conftest import flat

cli = CliRunner()


def test_suggest_and_optimize_print_progress_on_the_command_line(mock_mixing_fit, tmp_path, monkeypatch):
    """Where no terminal shows a bar, the command's log lines carry the optimisation's steps."""
    monkeypatch.setattr("bayes_mixlaw.inference.Progress", functools.partial(Progress, every=0.01, terminal=False))
    result = cli.invoke(app, ["optimize", str(mock_mixing_fit), "--draws", "40", "-o", str(tmp_path / "opt.csv")])
    assert result.exit_code == 0, result.output
    assert "each of 40 posterior draws' best mixture" in flat(result) and "the Bayes-optimal mixture" in flat(result)
    result = cli.invoke(app, ["suggest", str(mock_mixing_fit), "-n", "1", "--acquisition", "thompson", "-o", str(tmp_path / "next.csv")])
    assert result.exit_code == 0, result.output
    assert "thompson: each of" in flat(result)


@pytest.mark.parametrize(
    "args, message",
    [
        (["suggest", "-n", "10000"], "-n 10000 is above the limit of 16 suggestions for the qlognei acquisition: each suggestion re-optimises"),
        (["suggest", "-n", "300", "--acquisition", "thompson"], "-n 300 is above the limit of 256 suggestions for the thompson acquisition"),
        (["suggest", "-n", "33", "--acquisition", "info"], "-n 33 is above the limit of 32 suggestions for the info acquisition"),
        (["optimize", "--draws", "100000"], "--draws 100000 is above the limit of 4,000: every draw's best mixture is optimised"),
        (["optimize", "--draws", "0"], "--draws must be at least 1, got 0"),
    ],
)
def test_size_options_have_limits(args, message, mock_mixing_fit, tmp_path):
    started = time.perf_counter()
    result = cli.invoke(app, [args[0], str(mock_mixing_fit), *args[1:], "-o", str(tmp_path / "out.csv")])
    assert result.exit_code == 2 and message in flat(result), result.output
    assert not (tmp_path / "out.csv").exists() and time.perf_counter() - started < 10  # refused before any work


def test_python_api_has_the_same_limits(mock_mixing_fit):
    from bayes_mixlaw import BayesianLaw
    from bayes_mixlaw.bo import suggest
    from bayes_mixlaw.optimize import optimal_mixture

    law = BayesianLaw.load(mock_mixing_fit)
    with pytest.raises(ValueError, match="n 17 is above the limit of 16"):
        suggest(law, 17)
    with pytest.raises(ValueError, match="draws 5000 is above the limit"):
        optimal_mixture(law, draws=5000)
