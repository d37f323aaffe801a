"""Issue 15 item 7 for the continual pre-training law: a mixture's predictive draws are its own (seeded
by the seed, its proportions and the checkpoint), whatever other rows or checkpoints are asked for."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayes_mixlaw.continual import ContinualLaw, ContinualLawConfig
from bayes_mixlaw.runs import load_runs
from test_critical import SMALL_TARGETS, _small


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
