"""qucb (bayes_mixlaw/acquisitions/qucb.py): the worked example of a new acquisition as one file plus its test."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from bayes_mixlaw.acquisitions import acquisition_names, get_acquisition
from bayes_mixlaw.bo import LawEnsembleModel, suggest
from bayes_mixlaw.cli import ACQUISITION_HELP, app
from bayes_mixlaw.model import BayesianLaw


@pytest.fixture(scope="module")
def law(mock_mixing_fit):
    return BayesianLaw.load(mock_mixing_fit)


def test_registered_with_its_option_and_limit():
    qucb = get_acquisition("qucb")
    assert "qucb" in acquisition_names() and "qucb (q-upper-confidence-bound" in ACQUISITION_HELP
    assert set(qucb.options) == {"beta"} and qucb.max_suggestions[0] == 16


def test_beta_zero_scores_the_posterior_mean_and_suggest_runs_it(law):
    table = suggest(law, 2, acquisition="qucb", beta=0.0, draws=16, seed=0)
    assert (table["acquisition"] == "qucb").all() and table["acquisition_value"].is_monotonic_decreasing
    mix = table.filter(like="mix:")
    assert np.allclose(mix.sum(axis=1), 1.0) and len(np.unique(mix.round(9), axis=0)) == 2
    # beta = 0: a suggestion's value is the mean of (resampled) draws of the negated loss there, so within their range
    model = LawEnsembleModel.from_law(law, draws=16, seed=0)
    with torch.no_grad():
        draws = -model._f(torch.as_tensor(mix.to_numpy())[None].expand(16, -1, -1)).numpy()  # (S, 2)
    assert ((draws.min(axis=0) <= table["acquisition_value"] + 1e-9) & (table["acquisition_value"] <= draws.max(axis=0) + 1e-9)).all()
    with pytest.raises(ValueError, match="beta must be at least 0, got -1.0"):
        suggest(law, 1, acquisition="qucb", beta=-1.0, draws=16)


def test_the_command_line_passes_beta(mock_mixing_fit, tmp_path):
    out = tmp_path / "next.csv"
    args = ["suggest", str(mock_mixing_fit), "--acquisition", "qucb", "--option", "beta=0.5", "-n", "2", "--grid", "0.25", "-o", str(out), "-q"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out)
    mix = table.filter(like="mix:").to_numpy()
    assert len(table) == 2 and (table["acquisition"] == "qucb").all() and np.allclose(mix * 4, np.round(mix * 4))
