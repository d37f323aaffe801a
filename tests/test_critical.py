"""The critical share of continual pre-training (bayes_mixlaw/critical.py), on a mocked continual fit
of the ct runs (tests/conftest.py): its table, its draws, its errors and the command."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from bayes_mixlaw.critical import critical_share, critical_share_draws


def test_critical_share_table(mock_law):
    table = critical_share(mock_law, ["pile", "Pile-CC"], shares=[0.2, 0.5, 0.9])
    assert list(table.columns[:7]) == ["target", "step", "domain", "mean", "median", "lower", "upper"]
    assert table["step"].tolist() == [10000, 10000] and set(table["domain"]) == {"Pile"}
    assert table["new_target"].iloc[0] == "starcoder.python"
    for i in range(len(table)):
        keep = [table.loc[i, f"p_keep@{s}"] for s in (0.2, 0.5, 0.9)]
        assert keep == sorted(keep)  # a larger share keeps it at least as often


def test_critical_share_draws_sit_on_the_threshold(mock_law):
    draws = critical_share_draws(mock_law, "Pile-CC", tolerance=0.01)
    threshold = mock_law.reference_losses()["Pile-CC"] + 0.01
    inside = np.isfinite(draws) & (draws > 0)
    assert inside.any()
    column = mock_law.valid_domains.index("Pile-CC")
    loss = mock_law.share_draws(np.where(inside, draws, 0.5)[..., None], mock_law.step_index(None))[..., 0, column]
    np.testing.assert_allclose(loss[inside], threshold, atol=1e-5)


def test_critical_share_errors(mock_law):
    with pytest.raises(ValueError, match="unknown target 'totl'.*Pile-CC.*total"):
        critical_share(mock_law, "totl")
    with pytest.raises(ValueError, match="step 1500 is not a checkpoint.*9000, 10000"):
        critical_share(mock_law, "total", step=1500)
    with pytest.raises(ValueError, match="--share 1.5"):
        critical_share(mock_law, "total", shares=[1.5])
    with pytest.raises(ValueError, match="unknown new-domain target"):
        critical_share(mock_law, "total", new_target="Python")


def test_cli_critical(mock_law, tmp_path):
    from bayes_mixlaw.cli import app

    fit = mock_law.save(tmp_path / "fit.nc")
    out = tmp_path / "crit.csv"
    result = CliRunner().invoke(app, ["critical", str(fit), "--keep", "pile", "--keep", "Github", "--share", "0.3", "-o", str(out), "-q"])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out)
    assert table["target"].tolist() == ["pile", "Github"] and "p_keep@0.3" in table
    bad = CliRunner().invoke(app, ["critical", str(fit), "--keep", "nope", "-o", str(tmp_path / "x.csv")])
    assert bad.exit_code == 2 and "unknown target 'nope'" in bad.output and not (tmp_path / "x.csv").exists()


def test_never_keeping_draws_are_infinite():
    from bayes_mixlaw.critical import _summary

    out = _summary(np.array([0.2, 0.3, 0.4, np.inf]), 0.5)
    assert out["median"] == pytest.approx(0.35) and out["upper"] == np.inf and out["mean"] == np.inf
    assert _summary(np.array([3.6, 3.7]), 0.9, "new_")["new_upper"] == pytest.approx(3.695)  # losses are not shares
