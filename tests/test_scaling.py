"""The Bayesian Chinchilla law (bayes_mixlaw/scaling.py) on Epoch AI's replication data, with real NUTS; a
point's predictions are its own (mocked sampling)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from bayes_mixlaw import BayesianLaw, ChinchillaLaw, load_runs
from bayes_mixlaw.laws import chinchilla_law

# Besiroglu et al. (2024): bootstrap 95% intervals of their refit
EPOCH_95 = {"E": (1.769, 1.871), "alpha": (0.317, 0.373), "beta": (0.331, 0.415)}


@pytest.fixture(scope="module")
def chinchilla(shared_data):
    runs = load_runs(shared_data / "chinchilla" / "svg_extracted_data.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ChinchillaLaw().fit(runs, seed=0, progress=False, draws=500, tune=700)


def test_posterior_means_fall_in_epochs_bootstrap_intervals(chinchilla):
    p = chinchilla.parameters(ci=0.95).set_index("parameter")
    for name, (lo, hi) in EPOCH_95.items():
        assert lo <= p.loc[name, "mean"] <= hi, (name, p.loc[name, "mean"], (lo, hi))
    # our credible intervals overlap theirs and are not wider than them
    for name, (lo, hi) in EPOCH_95.items():
        assert p.loc[name, "lower"] < hi and p.loc[name, "upper"] > lo
        assert p.loc[name, "upper"] - p.loc[name, "lower"] <= hi - lo
    assert chinchilla.diagnostics.divergences == 0


def test_predictions_follow_the_law_and_roundtrip(chinchilla, tmp_path):
    pred = chinchilla.predict(params=[7e10, 2.8e11], tokens=[1.4e12, 3e11], kind="mean")
    assert list(pred.columns) == ["params", "tokens", "target", "mean", "median", "lower", "upper"]
    post = chinchilla.idata["posterior"]
    direct = chinchilla_law(7e10, 1.4e12, *(post[k].values[..., 0] for k in ("E", "A", "B", "alpha", "beta"))).mean()
    assert np.isclose(pred["mean"].iloc[0], direct)
    # Chinchilla (70B, 1.4T tokens) beats Gopher (280B, 300B tokens) at equal compute
    assert pred["mean"].iloc[0] < pred["mean"].iloc[1]
    path = chinchilla.save(tmp_path / "chinchilla.nc")
    loaded = BayesianLaw.load(path)
    assert isinstance(loaded, ChinchillaLaw)
    pd.testing.assert_frame_equal(loaded.predict(params=[7e10], tokens=[1.4e12]), chinchilla.predict(params=[7e10], tokens=[1.4e12]))
    assert loaded.built.key == chinchilla.built.key == loaded.idata.attrs["structure_key"]  # the model rebuilt from the file


def test_clear_errors(chinchilla):
    one_size = pd.DataFrame({"run": ["a", "b"], "params": [1000, 1000], "tokens": [1e6, 2e6], "valid_domain": "x", "loss": [3.0, 2.9]})
    with pytest.raises(ValueError, match="'params' takes one value"):
        ChinchillaLaw().fit(one_size)
    with pytest.raises(ValueError, match="needs a 'params' column"):
        ChinchillaLaw().fit(one_size.drop(columns="params"))
    with pytest.raises(ValueError, match="positive and finite"):
        chinchilla.predict(params=[-1.0], tokens=[1e12])
    with pytest.raises(ValueError, match="positive and finite"):
        chinchilla.predict(params=[7e10], tokens=[np.nan])


def test_cli_fits_a_table_without_mixtures_as_a_scaling_law(shared_data, tmp_path):
    from typer.testing import CliRunner

    from bayes_mixlaw.cli import app

    cli = CliRunner()
    config = tmp_path / "c.yaml"
    config.write_text("sampler: {draws: 200, tune: 300, chains: 2}\n")
    fit = tmp_path / "fit.nc"
    result = cli.invoke(app, ["fit", str(shared_data / "chinchilla" / "svg_extracted_data.csv"), "--config", str(config), "-o", str(fit), "-q"])
    assert result.exit_code == 0, result.output
    out = tmp_path / "pred.csv"
    result = cli.invoke(app, ["predict", str(fit), "--params", "7e10", "--tokens", "1.4e12", "-o", str(out), "-q"])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out)
    assert table[["params", "tokens", "target"]].iloc[0].tolist() == [70_000_000_000, 1.4e12, "MassiveText"]
    assert table["lower"].iloc[0] < table["median"].iloc[0] < table["upper"].iloc[0]
    result = cli.invoke(app, ["predict", str(fit), "--params", "7e10", "-o", str(tmp_path / "p2.csv")])
    assert result.exit_code == 2 and "give --params N and --tokens D" in result.output


def test_scaling_law_points_are_their_own(mocked_sampling):
    rng = np.random.default_rng(0)
    n, d = np.repeat([1e7, 3e7, 1e8], 3), np.tile([1e9, 3e9, 1e10], 3)
    loss = 2 + 400 / n**0.34 + 400 / d**0.28 + 0.01 * rng.standard_normal(9)
    runs = pd.DataFrame({"run": [f"r{i}" for i in range(9)], "params": n.astype(int), "tokens": d, "valid_domain": "v", "loss": loss})
    law = ChinchillaLaw().fit(runs, seed=0, draws=10, chains=1, progress=False)
    both = law.predict([1e9, 2e9], [2e10, 4e10], seed=1)
    one = law.predict([2e9], [4e10], seed=1)
    pd.testing.assert_frame_equal(one, both.iloc[[1]].reset_index(drop=True))
