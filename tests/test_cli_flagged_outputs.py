"""Issue 15 item 3: outputs of an unconverged fit carry its diagnostics and say so on the terminal, and
predictions far outside the pilots' scales are said to be so in words (the sentences themselves: test_request.py)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from bayes_mixlaw import BayesianLaw
from bayes_mixlaw.cli import app
from conftest import FIVE, flat

cli = CliRunner()
FIT_COLUMNS = ["fit_converged", "fit_max_rhat", "fit_min_ess_bulk", "fit_divergences"]


def with_diagnostics(source, path, **changes):
    """A copy of the fit at ``source`` whose stored diagnostics are changed (re-saved: a valid checksum)."""
    law = BayesianLaw.load(source)
    stored = json.loads(law.idata["diagnostics"].attrs["json"]) | changes
    law.idata["diagnostics"].attrs["json"] = json.dumps(stored)
    law.save(path)
    return path


@pytest.fixture(scope="module")
def fits(mock_mixing_fit, tmp_path_factory):
    folder = tmp_path_factory.mktemp("flagged")
    bad = with_diagnostics(
        mock_mixing_fit,
        folder / "unconverged.nc",
        max_rhat=1.14,
        divergences=7,
        problems=["7 divergent transition(s) of 50: the posterior may be biased", "max R-hat 1.140 > 1.01: chains disagree"],
    )
    good = with_diagnostics(mock_mixing_fit, folder / "converged.nc", max_rhat=1.003, min_ess_bulk=800.0, divergences=0, problems=[])
    mixtures = folder / "m.csv"
    pd.DataFrame([{"name": "uniform", **{f"mix:{d}": 0.2 for d in FIVE}}]).to_csv(mixtures, index=False)
    return SimpleNamespace(bad=bad, good=good, mixtures=mixtures, folder=folder)


def test_predict_on_an_unconverged_fit_warns_and_carries_its_diagnostics(fits):
    out = fits.folder / "pred_bad.csv"
    result = cli.invoke(app, ["predict", str(fits.bad), "--mixtures", str(fits.mixtures), "-o", str(out), "-q"])
    assert result.exit_code == 0, result.output
    assert f"{fits.bad} did not converge" in flat(result) and "R-hat 1.140" in flat(result)
    table = pd.read_csv(out)
    assert {"mean", "lower", "upper", "beyond_mixture"} <= set(table)  # the existing columns are kept
    assert (~table["fit_converged"]).all() and (table["fit_max_rhat"] == 1.14).all() and (table["fit_divergences"] == 7).all()

    good = fits.folder / "pred_good.csv"
    result = cli.invoke(app, ["predict", str(fits.good), "--mixtures", str(fits.mixtures), "-o", str(good), "-q"])
    assert result.exit_code == 0 and "did not converge" not in result.output
    assert pd.read_csv(good)["fit_converged"].all()


def test_optimize_and_suggest_on_an_unconverged_fit_warn(fits):
    out = fits.folder / "opt.csv"
    result = cli.invoke(app, ["optimize", str(fits.bad), "--draws", "40", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "did not converge" in flat(result)
    assert set(FIT_COLUMNS) <= set(pd.read_csv(out)) and not pd.read_csv(out)["fit_converged"].any()

    out = fits.folder / "next.csv"
    result = cli.invoke(app, ["suggest", str(fits.bad), "-n", "1", "--acquisition", "thompson", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "did not converge" in flat(result)
    assert set(FIT_COLUMNS) <= set(pd.read_csv(out))


def test_report_on_an_unconverged_fit_warns(fits, monkeypatch):
    monkeypatch.setattr("bayes_mixlaw.report.write_report", lambda law, folder, **kw: folder / "report.html")  # the figures take ~40 s
    result = cli.invoke(app, ["report", str(fits.bad), "-o", str(fits.folder / "rep")])
    assert result.exit_code == 0, result.output
    assert "did not converge" in flat(result) and "diagnostics table" in flat(result)
    result = cli.invoke(app, ["report", str(fits.good), "-o", str(fits.folder / "rep_good")])
    assert result.exit_code == 0 and "did not converge" not in result.output


def test_predict_far_beyond_the_pilots_says_so(mocked_sampling, tmp_path):
    from bayes_mixlaw.scaling import ChinchillaLaw

    rng = np.random.default_rng(0)
    n, d = np.repeat([1e7, 3e7, 1e8], 3), np.tile([1e9, 3e9, 1e10], 3)
    loss = 2 + 400 / n**0.34 + 400 / d**0.28 + 0.01 * rng.standard_normal(9)
    runs = pd.DataFrame({"run": [f"r{i}" for i in range(9)], "params": n.astype(int), "tokens": d, "valid_domain": "v", "loss": loss})
    ChinchillaLaw().fit(runs, seed=0, draws=10, chains=1, progress=False).save(tmp_path / "c.nc")
    result = cli.invoke(app, ["predict", str(tmp_path / "c.nc"), "--params", "1e15", "--tokens", "1e5", "-o", str(tmp_path / "p.csv"), "-q"])
    assert result.exit_code == 0, result.output
    text = flat(result)
    assert "extrapolation: --params 1e+15 is 1e+07x the largest pilot's params" in text
    assert "--tokens 1e+05 is below the smallest pilot's tokens (1e+09" in text
    result = cli.invoke(app, ["predict", str(tmp_path / "c.nc"), "--params", "5e7", "--tokens", "5e9", "-o", str(tmp_path / "q.csv"), "-q"])
    assert result.exit_code == 0 and "extrapolation" not in result.output
