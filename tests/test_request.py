"""What a command asks of a fit (bayes_mixlaw/request.py): the warnings beyond the pilots' scales, and every law
answering ``predict``'s request through one method (BayesianLaw.predict_request)."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import pytest
from typer.testing import CliRunner

from bayes_mixlaw.request import PredictRequest
from bayes_mixlaw.request import far_extrapolation as _far_extrapolation
from conftest import flat


def test_far_extrapolation_is_said_in_words():
    law = SimpleNamespace(pilot_scales=lambda: {"params": [7.0e7, 4.1e8], "step": [3000.0, 30000.0]})
    assert _far_extrapolation(law, {"params": 8e8, "step": 100_000}) == []  # near: the discrepancy's line says it
    notes = _far_extrapolation(law, {"params": 1e15, "step": 1})
    assert len(notes) == 2
    assert "--params 1e+15 is 2.44e+06x the largest pilot's params" in notes[0] and "far beyond" in notes[0]
    assert "--step 1 is below the smallest pilot's step (3000, 3e+03x smaller)" in notes[1] and "early training" in notes[1]


def test_a_law_without_an_answer_refuses_the_request():
    from bayes_mixlaw.model import BayesianLaw

    class Bare(BayesianLaw):
        kind = "bare_law"

    with pytest.raises(ValueError, match="fit.nc is a bare law fit: it does not predict from the command line"):
        Bare.__new__(Bare).predict_request(PredictRequest("fit.nc"))


def test_the_schedule_aware_law_answers_through_its_method():
    from bayes_mixlaw.model import BayesianLaw
    from bayes_mixlaw.scheduled import ScheduledScalingLaw

    law = ScheduledScalingLaw()
    assert ScheduledScalingLaw.predict_request is not BayesianLaw.predict_request and law.predict_request.__self__ is law
    with pytest.raises(ValueError, match="fit.nc is a schedule-aware fit of one data mixture: it takes no --mixtures"):
        law.predict_request(PredictRequest("fit.nc", mixtures="m.csv"))


def test_a_continual_fit_predicts_at_its_checkpoints(mock_law, tmp_path):
    mixtures = pd.DataFrame({"name": ["half"], **{f"mix:{d}": [0.5] for d in mock_law.train_domains}})
    table = mock_law.predict_request(PredictRequest("fit.nc", mixtures, step=[10000.0], seed=1))
    assert set(table["step"]) == {10000} and set(table["target"]) >= {"total", "pile", "Github"}
    assert len(mock_law.predict_request(PredictRequest("fit.nc", mixtures))["step"].unique()) == 2  # every checkpoint
    with pytest.raises(ValueError, match="fit.nc is a continual pre-training fit: give --mixtures M.csv"):
        mock_law.predict_request(PredictRequest("fit.nc"))
    with pytest.raises(ValueError, match="--params/--tokens do not apply"):
        mock_law.predict_request(PredictRequest("fit.nc", mixtures, params=[1e8]))
    from bayes_mixlaw.cli import app

    fit = mock_law.save(tmp_path / "fit.nc")
    mixtures.to_csv(tmp_path / "m.csv", index=False)
    result = CliRunner().invoke(app, ["predict", str(fit), "--mixtures", str(tmp_path / "m.csv"), "--step", "9000", "-o", str(tmp_path / "p.csv")])
    assert result.exit_code == 0, result.output
    assert set(pd.read_csv(tmp_path / "p.csv")["step"]) == {9000} and "fit_converged" in pd.read_csv(tmp_path / "p.csv")
    bad = CliRunner().invoke(app, ["predict", str(fit), "--mixtures", str(tmp_path / "m.csv"), "--step", "1500", "-o", str(tmp_path / "q.csv")])
    assert bad.exit_code == 2 and "step 1500 is not a checkpoint of this fit; it has steps 9000, 10000" in flat(bad)
