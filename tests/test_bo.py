"""Bayesian optimisation over mixtures (bayes_mixlaw/bo.py): the suggest command's batch under caps and with
the posterior-mean optimum, and qlognei on the law plus the residual fitted with it (--residual-gp). The acquisitions: tests/test_acquisitions*.py."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


def test_suggest_command_writes_the_batch_with_caps_and_exploit(fitted, tmp_path):
    import json

    from typer.testing import CliRunner

    from bayes_mixlaw.cli import app

    path = fitted.save(tmp_path / "fit.nc")
    caps = tmp_path / "caps.json"
    caps.write_text(json.dumps({"caps": {"internet": 0.3}, "minimums": {"academic": 0.1}}))
    out = tmp_path / "next.csv"
    args = ["suggest", str(path), "-n", "3", "--acquisition", "thompson", "--exploit", "--caps", str(caps), "--seed", "1", "-o", str(out), "-q"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out)
    mix = table[[c for c in table.columns if c.startswith("mix:")]]
    assert len(table) == 3 and np.allclose(mix.sum(axis=1), 1.0)
    assert (mix["mix:internet"] <= 0.3 + 1e-6).all() and (mix["mix:academic"] >= 0.1 - 1e-6).all()
    assert sorted(table["acquisition"]) == ["posterior-mean optimum", "thompson", "thompson"]
    assert {"acquisition_value", "mean", "lower", "upper"} <= set(table.columns) and (table["lower"] <= table["upper"]).all()
    again = CliRunner().invoke(app, args)  # the output exists: not overwritten without --force
    assert again.exit_code == 2 and "pass --force" in again.output
    wrong = CliRunner().invoke(app, ["suggest", str(path), "--acquisition", "qlognei", "--exploit", "-o", str(tmp_path / "x.csv"), "-q"])
    assert wrong.exit_code == 2 and "exploit" in wrong.output and "Traceback" not in wrong.output


def test_residual_gp_flag_uses_the_joint_residual_and_names_it_on_a_fit_without(fitted, runs, tmp_path, mocked_sampling):
    """--residual-gp: the residual fitted with the law (residual: rff) is the BoTorch model's; the separate GP it
    replaced is gone, so on a fit without the residual the command says which option to refit with."""
    from typer.testing import CliRunner

    from bayes_mixlaw import MixingLaw, MixingLawConfig, datasets
    from bayes_mixlaw.bo import suggest
    from bayes_mixlaw.cli import app

    with pytest.raises(ValueError, match="refit with 'residual: rff' in the config"):
        suggest(fitted, 2, acquisition="qlognei", residual_gp_model=True, draws=16)
    path = fitted.save(tmp_path / "fit.nc")
    result = CliRunner().invoke(app, ["suggest", str(path), "-n", "2", "--residual-gp", "-o", str(tmp_path / "s.csv"), "-q"])
    assert result.exit_code != 0 and "residual: rff" in " ".join(result.output.split()) and "Traceback" not in result.output
    config = MixingLawConfig(residual="rff", residual_features=8, sampler={"draws": 20, "chains": 2})
    with_residual = MixingLaw(config, datasets.pile_targets()).fit(runs, seed=1, progress=False)
    table = suggest(with_residual, 2, acquisition="qlognei", residual_gp_model=True, draws=16)
    assert len(table) == 2 and table["acquisition"].str.contains("joint residual").all()
