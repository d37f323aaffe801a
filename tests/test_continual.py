"""The continual pre-training law (bayes_mixlaw/continual.py): a starting loss it needs, its law as the
explicit mixing law, a real fit of the ct runs that predicts the held-out run, and (issue 15 item 7) a
mixture's predictive draws its own (seeded by the seed, its proportions and the checkpoint), whatever
other rows or checkpoints are asked for."""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from bayes_mixlaw.continual import (
    ContinualLaw,
    ContinualLawConfig,
    continual_mixing_law,
)
from bayes_mixlaw.critical import critical_share
from bayes_mixlaw.laws import mixing_law
from bayes_mixlaw.runs import load_runs
from conftest import DOMAINS, HELD_OUT, SMALL_TARGETS, _small


@pytest.fixture(scope="module")
def law(shared_data):
    import warnings

    from conftest import _fake_sample_posterior

    ct = load_runs(shared_data / "mixinglaws" / "ct")
    with pytest.MonkeyPatch.context() as patch, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        patch.setattr("bayes_mixlaw.model.sample_posterior", _fake_sample_posterior)
        return ContinualLaw(ContinualLawConfig(sampler={"draws": 30, "chains": 2}), SMALL_TARGETS).fit(_small(ct, steps=[9000, 10000]), seed=0, progress=False)


def test_a_mixtures_draws_do_not_depend_on_the_other_rows_or_checkpoints(law):
    domains = law.train_domains
    shares = [0.2, 0.5, 0.9]
    frame = pd.DataFrame([{"name": f"p{x}", f"mix:{domains[0]}": x, f"mix:{domains[1]}": 1 - x} for x in shares])
    together = law.predict_draws(frame, seed=3)
    swapped = law.predict_draws(frame.iloc[::-1], seed=3)
    for name in frame["name"]:
        alone = law.predict_draws(frame[frame["name"] == name], seed=3)
        np.testing.assert_array_equal(alone.sel(mixture=name).values, together.sel(mixture=name).values)
        np.testing.assert_array_equal(swapped.sel(mixture=name).values, together.sel(mixture=name).values)
        one_step = law.predict_draws(frame[frame["name"] == name], step=10000, seed=3)
        np.testing.assert_array_equal(one_step.sel(mixture=name, step=10000).values, together.sel(mixture=name, step=10000).values)
    # the noise is drawn (predictive differs from mean), differs between rows and checkpoints, and follows the seed
    noise = (together - law.predict_draws(frame, seed=3, kind="mean")).values
    assert np.all(np.std(noise, axis=(0, 1)) > 0)
    assert not np.allclose(noise[:, :, 0, 0], noise[:, :, 0, 1]) and not np.allclose(noise[:, :, 0], noise[:, :, 1])
    assert not np.array_equal(together.values, law.predict_draws(frame, seed=4).values)


def test_continual_law_needs_a_starting_loss(ct):
    without = replace(_small(ct), reference=None)
    with pytest.raises(ValueError, match="no starting loss"):
        ContinualLaw().build_model(without)
    with pytest.raises(ValueError, match="original domain 'Code' is not a training domain"):
        ContinualLaw().build_model(_small(ct), original_domain="Code")


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


def test_a_loaded_fit_rebuilds_its_model_from_the_file(mock_law, tmp_path):
    loaded = ContinualLaw.load(mock_law.save(tmp_path / "fit.nc"))
    assert loaded.built.key == mock_law.built.key == loaded.idata.attrs["structure_key"]
    assert {v.name for v in loaded.model.free_RVs} == {v.name for v in mock_law.model.free_RVs}
