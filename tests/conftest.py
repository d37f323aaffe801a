"""Shared fixtures and helpers. A test module imports a helper (not a fixture) with ``from conftest import ...``.

- the real data in ../shared/data (``shared_data``) and mocked sampling for fast unit tests (``mocked_sampling``)
- mixing laws on 5Mix 70M at 30k steps: the runs (``runs``), a mocked fit (``fitted``), a mocked fit file
  (``mock_mixing_fit``) and four mixtures of its domains (``five_mixtures``); modules about other laws define
  their own ``fitted`` and ``runs``
- the command line: its output on one line (``flat``) and the package's log lines (``package_log``)
- runs tables: a small tidy one (``tidy``)
- the ct runs of continual pre-training (``ct``, ``_small``, ``SMALL_TARGETS``) and a mocked continual fit (``mock_law``)
- the multi-power law's curves (``curve``) and schedules (``WSD``, ``TWO_STAGE``)
- the closed loop: a small LOOP.yaml (``SMALL``) and a writer for it (``_write``)
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pymc as pm
import pytest
import yaml
from pymc.testing import mock_sample

from bayes_mixlaw import MixingLaw, MixingLawConfig, datasets
from bayes_mixlaw.continual import ContinualLaw, ContinualLawConfig
from bayes_mixlaw.runs import MIX_PREFIX, load_runs
from bayes_mixlaw.targets import Targets

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("BAYES_MIXLAW_SHARED_DATA", REPO.parent / "shared" / "data"))


# notebooks (run by nbmake: --nbmake in pyproject.toml) that the default run leaves out; run them with -m slow.
# The hook is here, not in notebooks/conftest.py: the tests import helpers with `from conftest import ...`
SLOW_NOTEBOOKS = {
    # a simulated pilot loop: eight NUTS refits of the 5Mix mixing law, ~2-4 minutes on 2 cores; the loop itself runs
    # for real (reference trainer, fits, Ctrl-C and resume) in closed_loop.ipynb and tests/test_loop.py by default
    "pilot_loop.ipynb",
    # a fast nested fit of the whole RedPajama table, 20 mixtures x 4 sizes (2-3 minutes on 2 cores); the nested law runs for
    # real through the command line in tests/test_nested_integration.py by default
    "nested_redpajama.ipynb",
}


# The default run shares its files between two workers (pytest-xdist: -n 2 --dist loadfile in pyproject.toml), each
# file on one worker. These files take the longest (1-4 minutes each on 2 busy cores); run first, they leave the many
# short ones to fill in beside them, instead of one of them running alone at the end while the other worker idles.
LONGEST_FIRST = [
    "test_nested.py",
    "test_nested_integration.py",
    "quickstart_5mix.ipynb",
    "test_integration.py",
    "test_mixing_residual.py",
    "test_loop.py",
    "test_scheduled.py",
    "closed_loop.ipynb",
]


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.name in SLOW_NOTEBOOKS:
            item.add_marker(pytest.mark.slow)
    # a stable sort: the same order in every worker, as xdist requires
    items.sort(key=lambda item: LONGEST_FIRST.index(item.path.name) if item.path.name in LONGEST_FIRST else len(LONGEST_FIRST))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.exists():  # CI always has it beside the clone; a missing folder is an error, not a skip
        raise FileNotFoundError(f"the shared real data is expected at {SHARED_DATA} (set BAYES_MIXLAW_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture
def mocked_sampling(monkeypatch):
    """Replace NUTS by pymc.testing.mock_sample (prior draws with the posterior's shape)."""

    monkeypatch.setattr("bayes_mixlaw.model.sample_posterior", _fake_sample_posterior)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _fake_sample_posterior(model, data, key, sampler, seed, progress, checked=None):
    """``inference.sample_posterior`` replaced by ``pymc.testing.mock_sample`` (prior draws with the posterior's shape);
    ``checked`` is called once on the draws, as the real sampler's checks call it, and must give (chain, draw, ...)."""
    with model:
        pm.set_data({k: v for k, v in data.items()})
        tree = mock_sample(draws=sampler.draws, chains=sampler.chains, random_seed=seed, sample_stats={"diverging": lambda size: np.zeros(size, dtype=bool)})
    if checked is not None:
        quantities = checked(tree["posterior"].to_dataset())
        assert all(v.dims[:2] == ("chain", "draw") for v in quantities.data_vars.values())
    return tree


# --------------------------------------------------------------------------------------------------------------
# mixing laws on 5Mix 70M at 30k steps

FIVE = ["academic", "prose", "dialogue", "symbolic", "internet"]  # 5Mix's training domains


@pytest.fixture
def runs():
    return datasets.mixinglaws_5mix_70m().select(step=30000)


@pytest.fixture
def fitted(runs, mocked_sampling):
    law = MixingLaw(MixingLawConfig(sampler={"draws": 20, "chains": 2}), datasets.pile_targets())
    return law.fit(runs, seed=3, progress=False)


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


def five_mixtures() -> pd.DataFrame:
    rows = {"uniform": [0.2] * 5, "academic-heavy": [0.5, 0.15, 0.1, 0.1, 0.15], "web": [0, 0, 0, 0, 1.0], "prose": [0.1, 0.6, 0.1, 0.1, 0.1]}
    return pd.DataFrame([{"name": k, **{f"mix:{d}": x for d, x in zip(FIVE, v)}} for k, v in rows.items()])


# --------------------------------------------------------------------------------------------------------------
# the command line


def flat(result) -> str:
    """The command's output on one line (rich wraps long messages)."""
    return " ".join(result.output.split())


@pytest.fixture
def package_log():
    """The package's INFO lines, collected (whatever earlier command-line tests did to its handlers)."""
    logger = logging.getLogger("bayes_mixlaw")
    lines = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    old = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield lines
    logger.removeHandler(handler)
    logger.setLevel(old)


# --------------------------------------------------------------------------------------------------------------
# runs tables


def tidy(n_runs=3, domains=("a", "b"), valid=("x", "y")):
    """A small tidy runs table: ``n_runs`` random mixtures of ``domains``, a loss per validation domain."""
    rows = []
    rng = np.random.default_rng(0)
    for i in range(n_runs):
        r = rng.dirichlet(np.ones(len(domains)))
        for v in valid:
            rows.append({"run": f"r{i}", "valid_domain": v, "loss": 3.0 + rng.random(), **{MIX_PREFIX + d: p for d, p in zip(domains, r)}})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------------------------
# the multi-power law's runs (../shared/data/multipowerlaw): loss curves and the schedules they were trained with


def curve(shared_data, size, name):
    return pd.read_csv(shared_data / "multipowerlaw" / f"csv_{size}" / f"{name}.csv")


WSD = {"kind": "wsd", "total_steps": 24000, "warmup_steps": 2160, "peak_lr": 3e-4, "final_lr": 3e-5, "decay_start": 20000, "decay_shape": "exponential"}
TWO_STAGE = {"kind": "two_stage", "total_steps": 16000, "warmup_steps": 2160, "peak_lr": 3e-4, "final_lr": 9e-5, "decay_start": 8000}


# --------------------------------------------------------------------------------------------------------------
# the closed loop: a small LOOP.yaml (the reference trainer, one local worker, four pilots)

SMALL = {
    "trainer": {"reference": {"threads": 1}, "timeout_s": 120, "retries": 1},
    "backend": {"kind": "local", "workers": 1},
    "budget": {"runs": 4},
    "pilots": {"sizes": [11712], "steps": [60]},
    "initial_design": {"runs": 3},
    "batch_size": 1,
    "acquisition": "thompson",
    "fit": {"method": "fast"},  # these loops test dispatch, state and resume: the rounds' quick fits (the final fit is NUTS)
    "poll_s": 0.2,
}


def _write(tmp_path, data, name="loop.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path
