"""The report and the critical command on a continual pre-training fit (a small real NUTS fit of the ct runs)."""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from bayes_mixlaw.cli import app
from bayes_mixlaw.continual import (
    ContinualLaw,
    ContinualLawConfig,
)
from bayes_mixlaw.runs import load_runs
from bayes_mixlaw.targets import Targets

DOMAINS = ["Pile-CC", "Github", "starcoder.python"]  # as the ct helpers' in tests/conftest.py: 'total' is the two Pile domains
TARGETS = Targets({"Pile-CC": 1.0, "Github": 1.0, "starcoder.python": 0.0}, {"pile": ["Pile-CC", "Github"]})
FIT_COLUMNS = ["fit_converged", "fit_max_rhat", "fit_min_ess_bulk", "fit_divergences"]


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


def test_figure_critical(mock_law):
    from bayes_mixlaw.report import figure_critical

    png = figure_critical(mock_law, "pile", tolerance=0.01)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
