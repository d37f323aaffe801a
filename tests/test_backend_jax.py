"""The JAX sampling backend (issue 16 item 5): ``sampler.backend: jax`` samples with nutpie's JAX backend, and gives the
default (numba) backend's posterior within Monte Carlo error on the real 5Mix fit; without jax, a clear error naming
the extra to install, from the API and from the command line."""

from __future__ import annotations

import sys

import arviz as az
import numpy as np
import pytest
from typer.testing import CliRunner

from bayes_mixlaw import MixingLaw, MixingLawConfig, datasets
from bayes_mixlaw.config import SamplerConfig
from bayes_mixlaw.inference import _COMPILED, JAX_INSTALL, BackendUnavailable, require_jax
from bayes_mixlaw.runs import RunsTable

# 4 chains x (600 + 600) on 5Mix's 21 runs and 6 of its 22 validation domains: a small real fit (JAX on CPU is slower)
SETTINGS = {"draws": 600, "tune": 600, "chains": 4}
DOMAINS = ["ArXiv", "Enron_Emails", "FreeLaw", "Github", "HackerNews", "PubMed_Central"]


@pytest.fixture(scope="module")
def table():
    return datasets.mixinglaws_5mix_70m().select(step=30000)


def test_jax_backend_samples_a_real_fit_and_keeps_its_setting(table, tmp_path):
    """The default run's check of the JAX path (the agreement with numba below runs with -m slow): a short real fit
    compiled by nutpie's JAX backend samples a sane posterior, and the fit file keeps the backend."""
    pytest.importorskip("jax")
    small = RunsTable(table.data[table.data["valid_domain"].isin(DOMAINS[:2])].reset_index(drop=True), source="5Mix 70M/30k, 2 domains")
    law = MixingLaw().fit(small, seed=3, progress=False, backend="jax", draws=150, tune=150, chains=2)
    assert any(key == "jax" for _, key in _COMPILED)
    post = law.idata["posterior"]
    assert post.sizes["chain"] == 2 and post.sizes["draw"] == 150
    assert np.all(np.isfinite(post["log_c"].values)) and law.diagnostics.max_rhat < 1.2
    assert MixingLaw.load(law.save(tmp_path / "jax.nc")).config.sampler.backend == "jax"


@pytest.mark.slow  # ~2.5 minutes on 2 cores (JAX on CPU samples this small table 3.6x slower than numba)
def test_jax_backend_agrees_with_numba_on_5mix(table, tmp_path):
    pytest.importorskip("jax")  # in the test extra; this skips only where someone installed the package without it
    small = RunsTable(table.data[table.data["valid_domain"].isin(DOMAINS)].reset_index(drop=True), source="5Mix 70M/30k, 6 domains")
    assert len(small.runs) == 21 and set(small.valid_domains) == set(DOMAINS)
    fits = {backend: MixingLaw().fit(small, seed=3, progress=False, backend=backend, **SETTINGS) for backend in ("numba", "jax")}
    assert any(key == "jax" for _, key in _COMPILED)  # compiled by nutpie's JAX backend, cached beside numba's
    for backend, law in fits.items():
        assert law.diagnostics.max_rhat < 1.05 and law.diagnostics.divergences <= 5, f"{backend}: {law.diagnostics.problems}"
    # each posterior mean within Monte Carlo error of the other's: |difference| < 4 x the two MCSEs combined
    for name in ("log_c", "log_k", "t", "noise_sigma", "nu"):
        a, b = (fits[k].idata["posterior"].to_dataset()[[name]] for k in ("numba", "jax"))
        mcse = np.hypot(az.mcse(a)[name].values, az.mcse(b)[name].values)
        gap = np.abs(a[name].mean(("chain", "draw")).values - b[name].mean(("chain", "draw")).values)
        assert np.all(gap < 4 * mcse), f"{name}: largest gap {np.max(gap / mcse):.1f} Monte Carlo standard errors"
    # the same seed on another backend is another chain: the draws themselves differ
    assert not np.allclose(fits["numba"].idata["posterior"]["log_c"].values, fits["jax"].idata["posterior"]["log_c"].values)
    # the fit file keeps the backend with the other sampler settings
    path = fits["jax"].save(tmp_path / "jax.nc")
    assert MixingLaw.load(path).config.sampler.backend == "jax"
    assert MixingLaw.load(fits["numba"].save(tmp_path / "numba.nc")).config.sampler.backend == "numba"


def test_without_jax_the_error_names_the_extra(monkeypatch, table, tmp_path):
    monkeypatch.setitem(sys.modules, "jax", None)  # `import jax` raises ImportError, as where it is not installed
    with pytest.raises(BackendUnavailable, match=r"pip install 'bayes_mixlaw\[jax\]'"):
        require_jax()
    with pytest.raises(BackendUnavailable, match="backend: jax"):
        MixingLaw().fit(table, seed=0, progress=False, backend="jax", draws=10, tune=10, chains=1)
    assert "bayes_mixlaw[jax]" in JAX_INSTALL

    from bayes_mixlaw.cli import app

    runs = tmp_path / "runs.csv"
    table.data.to_csv(runs, index=False)
    result = CliRunner().invoke(app, ["fit", str(runs), "-o", str(tmp_path / "fit.nc"), "--backend", "jax", "-q"])
    assert result.exit_code == 2 and "pip install 'bayes_mixlaw[jax]'" in " ".join(result.output.split())
    assert not (tmp_path / "fit.nc").exists()


def test_backend_settings():
    assert SamplerConfig().backend == "numba" and MixingLawConfig().sampler.backend == "numba"
    assert MixingLawConfig.from_dict({"sampler": {"backend": "jax"}}).sampler.backend == "jax"
    with pytest.raises(ValueError, match="backend"):
        SamplerConfig(backend="cuda")
    with pytest.raises(ValueError, match="method 'advi'"):
        SamplerConfig(method="advi", backend="jax")
