"""Shared fixtures and helpers: the real data in ../shared/data, mocked sampling for fast unit tests, a
mocked mixing-law fit file, and the ct runs (continual pre-training) with a mocked continual fit of them."""

from __future__ import annotations

import os
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pymc as pm
import pytest
from pymc.testing import mock_sample

from bayes_mixlaw.continual import ContinualLaw, ContinualLawConfig
from bayes_mixlaw.runs import load_runs
from bayes_mixlaw.targets import Targets

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("BAYES_MIXLAW_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.exists():  # CI always has it beside the clone; a missing folder is an error, not a skip
        raise FileNotFoundError(f"the shared real data is expected at {SHARED_DATA} (set BAYES_MIXLAW_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture
def mocked_sampling(monkeypatch):
    """Replace NUTS by pymc.testing.mock_sample (prior draws with the posterior's shape)."""

    def fake(model, data, key, sampler, seed, progress):
        with model:
            pm.set_data({k: v for k, v in data.items()})
            tree = mock_sample(
                draws=sampler.draws,
                chains=sampler.chains,
                random_seed=seed,
                sample_stats={"diverging": lambda size: np.zeros(size, dtype=bool)},
            )
        return tree

    monkeypatch.setattr("bayes_mixlaw.model.sample_posterior", fake)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _fake_sample_posterior(model, data, key, sampler, seed, progress):
    with model:
        pm.set_data({k: v for k, v in data.items()})
        return mock_sample(draws=sampler.draws, chains=sampler.chains, random_seed=seed, sample_stats={"diverging": lambda size: np.zeros(size, dtype=bool)})


@pytest.fixture(scope="session")
def mock_mixing_fit(tmp_path_factory) -> Path:
    """A saved mixing-law fit of 5Mix 70M at 30k steps with mocked sampling (prior draws), for the
    command line's tests: a read-only file (copy it to change it)."""
    from bayes_mixlaw import MixingLaw, MixingLawConfig, datasets

    with pytest.MonkeyPatch.context() as patch, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        patch.setattr("bayes_mixlaw.model.sample_posterior", _fake_sample_posterior)
        law = MixingLaw(MixingLawConfig(sampler={"draws": 25, "chains": 2}), datasets.pile_targets())
        law.fit(datasets.mixinglaws_5mix_70m().select(step=30000), seed=3, progress=False)
    path = tmp_path_factory.mktemp("mock_fit") / "fit.nc"
    law.save(path)
    return path


# ------------------------------------------------------------------------------------------------
# the ct runs (continual pre-training, 70M): three validation domains, the 0.285 run held out

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


@pytest.fixture
def mock_law(ct, mocked_sampling):
    cfg = ContinualLawConfig(sampler={"draws": 40, "chains": 2})
    return ContinualLaw(cfg, SMALL_TARGETS).fit(_small(ct, steps=[9000, 10000]), seed=0, progress=False)
