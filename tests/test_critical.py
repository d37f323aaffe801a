"""Continual pre-training: the ct loader's starting loss, the continual law and the critical share."""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from bayes_mixlaw.continual import (
    ContinualLaw,
    ContinualLawConfig,
    continual_mixing_law,
)
from bayes_mixlaw.critical import critical_share, critical_share_draws
from bayes_mixlaw.laws import mixing_law
from bayes_mixlaw.runs import Reference, RunsTableError, load_runs
from bayes_mixlaw.targets import Targets

HELD_OUT = "70M_ct_9-0.28515625-0.71484375"
DOMAINS = ["Pile-CC", "Github", "starcoder.python"]


@pytest.fixture(scope="module")
def ct(shared_data):
    return load_runs(shared_data / "mixinglaws" / "ct")


def _small(ct, steps=None, held_out=True):
    data = ct.data[ct.data["valid_domain"].isin(DOMAINS)]
    if held_out:
        data = data[data["run"] != HELD_OUT]
    if steps is not None:
        data = data[data["step"].isin(steps)]
    return replace(ct, data=data.reset_index(drop=True))


SMALL_TARGETS = Targets({"Pile-CC": 1.0, "Github": 1.0, "starcoder.python": 0.0}, {"pile": ["Pile-CC", "Github"]})


# ------------------------------------------------------------------------------------------------
# loader


def test_ct_folder_keeps_the_starting_checkpoint_as_reference(ct, shared_data):
    assert ct.reference is not None and ct.reference.checkpoint == "pythia_70m_step20000"
    assert ct.reference.original_domain == "Pile"
    assert list(ct.reference.losses.index) == ct.valid_domains and len(ct.valid_domains) == 23
    assert "starcoder.python" in ct.valid_domains  # '<name>.valid.bin' names '<name>'
    assert ct.reference.losses["Pile-CC"] == pytest.approx(3.602944563882064)
    assert set(ct.train_domains) == {"Pile", "Python"} and len(ct.runs) == 5 and ct.scale_values("step")[-1] == 10000
    assert ct.select(step=10000).reference is ct.reference  # kept through selections
    assert load_runs(shared_data / "mixinglaws" / "ct", "ct").reference.checkpoint == "pythia_70m_step20000"


def test_ct_format_needs_a_starting_checkpoint(shared_data):
    with pytest.raises(RunsTableError, match="no starting checkpoint"):
        load_runs(shared_data / "mixinglaws" / "5Mix" / "70M.txt", "ct")


def test_reference_errors_name_the_domain():
    with pytest.raises(RunsTableError, match=r"validation domain\(s\) b; the reference 'reference' has a"):
        Reference.from_any({"a": 1.0}).check(["a", "b"])
    with pytest.raises(RunsTableError, match="reference loss of 'a' is -1"):
        Reference.from_any({"a": -1.0})
    with pytest.raises(RunsTableError, match="'valid_domain' and 'loss'"):
        Reference.from_any(pd.DataFrame({"domain": ["a"], "loss": [1.0]}))


def test_continual_law_needs_a_starting_loss(ct):
    without = replace(_small(ct), reference=None)
    with pytest.raises(ValueError, match="no starting loss"):
        ContinualLaw().build_model(without)
    with pytest.raises(ValueError, match="original domain 'Code' is not a training domain"):
        ContinualLaw().build_model(_small(ct), original_domain="Code")


# ------------------------------------------------------------------------------------------------
# the law's math


def test_continual_mixing_law_is_the_explicit_mixing_law():
    """m + g (e^{tau x} - 1) / tau = c + k e^{t.r} with tau = t1 - t2, c = m - g/tau, k e^{t.r} = (g/tau) e^{tau x}."""
    m, g, tau, pbar = 2.9, -0.2, -3.5, 0.31
    p = np.linspace(0, 1, 7)
    t = np.array([[tau / 2, -tau / 2]])
    r = np.stack([p, 1 - p], axis=1)
    log_k = np.log(g / tau) - tau * pbar - t[0, 1]
    explicit = mixing_law(r, np.array([np.log(m - g / tau)]), np.array([log_k]), t)[:, 0]
    np.testing.assert_allclose(continual_mixing_law(p - pbar, m, g, tau), explicit, rtol=1e-12)
    # tau -> 0: the straight line
    np.testing.assert_allclose(continual_mixing_law(p - pbar, m, g, 0.0), m + g * (p - pbar), atol=1e-7)


# ------------------------------------------------------------------------------------------------
# mocked posterior: the critical share's bookkeeping


@pytest.fixture
def mock_law(ct, mocked_sampling):
    cfg = ContinualLawConfig(sampler={"draws": 40, "chains": 2})
    return ContinualLaw(cfg, SMALL_TARGETS).fit(_small(ct, steps=[9000, 10000]), seed=0, progress=False)


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


# ------------------------------------------------------------------------------------------------
# real sampling on the ct runs (three validation domains): the held-out 0.285 run and the critical share


def test_real_fit_predicts_the_held_out_run_and_its_critical_share(ct, tmp_path):
    train = _small(ct)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        law = ContinualLaw(ContinualLawConfig(sampler={"draws": 300, "tune": 300, "chains": 2}), SMALL_TARGETS).fit(train, seed=1, progress=False)
    assert law.diagnostics.max_rhat < 1.1
    held = ct.data[(ct.data["run"] == HELD_OUT) & ct.data["valid_domain"].isin(DOMAINS)]
    mixture = pd.DataFrame({"name": ["p285"], "mix:Pile": [0.28515625], "mix:Python": [0.71484375]})
    pred = law.predict(mixture, ci=0.9).merge(held, left_on=["step", "target"], right_on=["step", "valid_domain"])
    assert len(pred) == 30
    covered = ((pred["lower"] <= pred["loss"]) & (pred["loss"] <= pred["upper"])).mean()
    assert covered >= 0.6
    assert (pred["median"] - pred["loss"]).abs().div(pred["loss"]).mean() < 0.005
    table = critical_share(law, ["Pile-CC", "pile"])
    row = table.set_index("target").loc["Pile-CC"]
    assert 0.25 < row["lower"] < row["median"] < row["upper"] < 0.36  # all runs: ~0.30
    assert row["new_upper"] < row["new_start_loss"]  # Python's loss falls far below its start
    # the saved fit gives the same numbers
    again = critical_share(law.save(tmp_path / "fit.nc"), ["Pile-CC", "pile"])
    pd.testing.assert_frame_equal(table, again)
    # a run's shock shared by every domain at a checkpoint: estimated from the residuals, kept on save,
    # and in a new run's draws of every domain at once (the domains' predictive errors correlate)
    shock = law.idata.attrs["checkpoint_shock_sd"]
    assert 0 < shock < 0.05 and ContinualLaw.load(tmp_path / "fit.nc").idata.attrs["checkpoint_shock_sd"] == pytest.approx(shock)
    draws = law.predict_draws(mixture, step=law.steps[-1]).values[:, :, 0, 0, : len(DOMAINS)].reshape(-1, len(DOMAINS))
    mean = law.predict_draws(mixture, step=law.steps[-1], kind="mean").values[:, :, 0, 0, : len(DOMAINS)].reshape(-1, len(DOMAINS))
    error = np.log(draws / mean)
    assert np.corrcoef(error[:, 0], error[:, 1])[0, 1] > 0.1


def test_figure_critical(mock_law):
    from bayes_mixlaw.report import figure_critical

    png = figure_critical(mock_law, "pile", tolerance=0.01)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_never_keeping_draws_are_infinite():
    from bayes_mixlaw.critical import _summary

    out = _summary(np.array([0.2, 0.3, 0.4, np.inf]), 0.5)
    assert out["median"] == pytest.approx(0.35) and out["upper"] == np.inf and out["mean"] == np.inf
    assert _summary(np.array([3.6, 3.7]), 0.9, "new_")["new_upper"] == pytest.approx(3.695)  # losses are not shares
