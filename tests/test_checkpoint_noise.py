"""A checkpoint's deviation shared by a pilot mixture's sizes (bayes_mixlaw.checkpoint_noise): the estimate of the shared
share on simulated and real losses, the new run's conditional noise against the dense Gaussian, and the nested fit's use."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from bayes_mixlaw import Targets, checkpoint_noise
from bayes_mixlaw.config import NestedLawConfig
from bayes_mixlaw.nested import NestedLaw
from bayes_mixlaw.runs import RunsTable, load_runs


@pytest.mark.parametrize("rho", [0.0, 0.3, 0.7])
def test_the_shared_share_is_recovered_from_simulated_deviations(rho):
    rng = np.random.default_rng(1)
    groups, sizes, domains = 3000, 3, 2
    sigma = np.array([0.004, 0.01])
    valid = np.repeat(np.arange(groups) % domains, sizes)
    shared = np.repeat(rng.normal(size=groups), sizes) * np.sqrt(rho) * sigma[valid]
    deviation = shared + rng.normal(size=groups * sizes) * np.sqrt(1 - rho) * sigma[valid]
    estimate = checkpoint_noise.shared_fraction(deviation, np.repeat(np.arange(groups), sizes), valid, domains)
    np.testing.assert_allclose(estimate, rho, atol=0.04)
    # groups of one size say nothing; a domain with none is 0, not NaN
    alone = checkpoint_noise.shared_fraction(deviation[:6], np.arange(6), np.zeros(6, dtype=int), 2)
    np.testing.assert_array_equal(alone, [0.0, 0.0])


def test_a_new_runs_noise_given_the_other_sizes_is_the_gaussian_conditional():
    rho, sigma, deviations = 0.6, 0.005, np.array([0.004, 0.007, -0.001])
    k = len(deviations)
    # the other sizes and the new run share eta: covariance sigma^2 ((1 - rho) I + rho 1 1^T) over k + 1 losses
    cov = sigma**2 * ((1 - rho) * np.eye(k + 1) + rho * np.ones((k + 1, k + 1)))
    gain = cov[k, :k] @ np.linalg.inv(cov[:k, :k])
    shift, sd = checkpoint_noise.conditional_noise(deviations.sum(), k, rho, sigma)
    assert shift == pytest.approx(gain @ deviations, rel=1e-10)
    assert sd**2 == pytest.approx(cov[k, k] - gain @ cov[:k, k], rel=1e-10)
    assert checkpoint_noise.conditional_noise(0.3, 0, rho, sigma) == pytest.approx((0.0, sigma))
    assert checkpoint_noise.conditional_noise(0.3, 2, 0.0, sigma) == pytest.approx((0.0, sigma))


def test_real_pilots_share_their_checkpoints_deviations_across_sizes(shared_data):
    """RedPajama's runs of one mixture at 70M, 160M and 305M: each run's own smooth curve (a quadratic in log-steps,
    least squares) taken out, the deviations at one checkpoint are shared across sizes (what the module's docstring
    measures after the nested fit: 0.53); the same deviations with each run's checkpoints shuffled share nothing."""
    table = load_runs(shared_data / "mixinglaws" / "RedPajama").data
    table = table[table["params"] < 302_311_424].copy()
    table["curve"] = table.groupby(["run", "valid_domain"]).ngroup()
    y = np.log(table["step"].to_numpy(float))
    design = np.column_stack([np.ones_like(y), y, y * y])
    deviation = np.empty(len(table))
    for rows in table.groupby("curve").indices.values():
        log_loss = np.log(table["loss"].to_numpy()[rows])
        coef, *_ = np.linalg.lstsq(design[rows], log_loss, rcond=None)
        deviation[rows] = log_loss - design[rows] @ coef
    mixture = table.groupby(list(RunsTable(table, "x").mix_columns)).ngroup().to_numpy()
    valid = pd.factorize(table["valid_domain"])[0]
    step = pd.factorize(table["step"])[0]
    group = (mixture * (step.max() + 1) + step) * (valid.max() + 1) + valid
    rho = checkpoint_noise.shared_fraction(deviation, group, valid, valid.max() + 1)
    assert np.median(rho) > 0.3, rho
    shuffled = deviation.copy()
    rng = np.random.default_rng(0)
    for rows in table.groupby("curve").indices.values():
        shuffled[rows] = rng.permutation(shuffled[rows])
    assert np.median(checkpoint_noise.shared_fraction(shuffled, group, valid, valid.max() + 1)) < 0.1


DOMAINS = ["Pile-CC", "Github", "ArXiv"]


def test_a_nested_fit_records_the_shared_share_and_a_new_size_at_a_pilot_checkpoint_reads_it(shared_data, mocked_sampling, tmp_path):
    """The fit keeps rho per domain; a new size of a pilot mixture at a checkpoint its pilots reached draws its noise
    shifted by their deviations there (the Gaussian conditional per draw), a new length or a new mixture does not;
    ``shared_checkpoints: false`` turns it off without changing the model's structure; the file reloads it."""
    table = load_runs(shared_data / "mixinglaws" / "RedPajama")
    data = table.data[table.data["valid_domain"].isin(DOMAINS) & (table.data["params"] < 302_311_424)]
    runs = RunsTable(data.reset_index(drop=True), table.source)
    config = NestedLawConfig(sampler={"draws": 20, "chains": 2}, learn_discrepancy=False, discrepancy=False)
    law = NestedLaw(config, Targets({"Pile-CC": 0.5, "Github": 0.3, "ArXiv": 0.2})).fit(runs, seed=0, progress=False)
    rho = np.asarray(json.loads(law.idata.attrs[checkpoint_noise.ATTR]))
    assert rho.shape == (3,) and ((rho >= 0) & (rho <= checkpoint_noise.MAX_FRACTION)).all()
    np.testing.assert_array_equal(law.checkpoint_shared, rho)
    rho = np.array([0.5, 0.6, 0.4])  # mocked draws are not a posterior: their deviations need not share anything
    law.idata.attrs[checkpoint_noise.ATTR] = json.dumps(rho.tolist())
    pilots = runs.mixtures().drop_duplicates().iloc[:2].reset_index(drop=True)
    pilot = law._pilot_index(pilots.to_numpy(float))
    sigma = law.idata["posterior"]["noise_sigma"].values[:, :, None, :]
    shift, sd = law._checkpoint_noise(pilot, 302_311_424, 30_000, sigma)
    # the deviations of the three pilot sizes at 30k, per draw, summed; the Gaussian conditional
    total, count = law._pilot_checkpoint_deviations(302_311_424, 30_000)
    np.testing.assert_array_equal(count[pilot], 3.0)
    expected = checkpoint_noise.conditional_noise(total[:, :, pilot], 3.0, rho, sigma)
    np.testing.assert_allclose(shift, expected[0])
    np.testing.assert_allclose(sd, np.broadcast_to(expected[1], sd.shape))
    assert np.abs(shift).max() > 0 and (sd < sigma).all()
    later = law._checkpoint_noise(pilot, 302_311_424, 45_000, sigma)  # no pilot reached 45k
    assert not np.any(later[0]) and np.allclose(later[1], sigma)
    assert law._checkpoint_noise(np.array([-1, -1]), 302_311_424, 30_000, sigma) == (0.0, sigma)  # new mixtures
    on = law.predict(pilots, params=302_311_424, step=30_000, seed=1)
    assert "a mixture's sizes share 50% of the noise at one checkpoint" in law.summary_line()
    path = law.save(tmp_path / "fit.nc")
    np.testing.assert_array_equal(NestedLaw.load(path).predict(pilots, params=302_311_424, step=30_000, seed=1)["median"], on["median"])
    off = NestedLaw(law.config.model_copy(update={"shared_checkpoints": False}), law.targets)
    assert off.structure_key(runs) == NestedLaw(law.config, law.targets).structure_key(runs)
    off.idata, off._built, off.runs = law.idata, law._built, law.runs
    assert off.checkpoint_shared is None
    assert not np.allclose(off.predict(pilots, params=302_311_424, step=30_000, seed=1)["median"], on["median"])
