"""Bayesian optimisation over mixtures (bayes_mixlaw/bo.py): the suggest command's batch under caps and with
the posterior-mean optimum, and qlognei on the law plus a GP on its residuals. The acquisitions: tests/test_acquisitions*.py."""

from __future__ import annotations

import numpy as np
import pandas as pd


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


def test_residual_gp_has_the_law_as_mean_and_follows_the_pilots(fitted):
    import torch

    from bayes_mixlaw.bo import observed_target, residual_gp, suggest

    gp = residual_gp(fitted, draws=16)
    mixtures, losses = observed_target(fitted)
    at_pilots = gp.posterior(torch.as_tensor(mixtures)).mean.detach().numpy().ravel()
    f = fitted.target_function("total", draws=16)
    law_at_pilots = f(torch.as_tensor(mixtures)[None].expand(16, -1, -1)).mean(0).detach().numpy()
    # the GP moves the law's mean toward the observed losses at the pilots
    assert np.abs(-at_pilots - losses).mean() < np.abs(law_at_pilots - losses).mean()
    table = suggest(fitted, 2, acquisition="qlognei", residual_gp_model=True, draws=16)
    assert len(table) == 2 and table["acquisition"].str.contains("residual GP").all()
