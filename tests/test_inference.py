"""Sampling and its reporting (bayes_mixlaw/inference.py). Issue 15 item 6: ``fit --fast`` does not recompile in
every new process: its model is PyTensor's numba kernels, which PyTensor caches on disk
(``inference.compile_kernels``). Progress lines where no terminal shows a bar, silent under --quiet; a fit's
diagnostics as columns and a message."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np
import pymc as pm
import pytest

from bayes_mixlaw.config import SamplerConfig
from bayes_mixlaw.convergence import worst
from bayes_mixlaw.inference import _COMPILED, Diagnostics, Progress, sample_posterior

TINY = textwrap.dedent("""
    import time, warnings
    warnings.simplefilter("ignore")
    import numpy as np, pymc as pm
    from bayes_mixlaw.inference import compile_kernels
    with pm.Model() as model:
        x = pm.Data("x", np.linspace(0, 1, 20))
        slope = pm.Normal("slope_issue15", 0, 3)
        noise = pm.HalfNormal("noise", 1)
        pm.Normal("y", slope * x, noise, observed=np.linspace(0, 2, 20))
    started = time.perf_counter()
    compile_kernels(model)
    print(f"seconds {time.perf_counter() - started:.3f}")
""")


def test_fast_fit_samples_the_kernel_model_and_swaps_data():
    rng = np.random.default_rng(0)
    x = np.linspace(0, 1, 40)
    with pm.Model() as model:
        data_x = pm.Data("x", x)
        data_y = pm.Data("y_obs", 2.0 * x + 0.05 * rng.standard_normal(40))
        slope = pm.Normal("slope", 0, 5)
        pm.Normal("y", slope * data_x, 0.05, observed=data_y)
    key = "test-fast-cache-swap"
    try:
        fast = SamplerConfig(method="fast")
        first = sample_posterior(model, {"x": x, "y_obs": 2.0 * x}, key, fast, seed=1, progress=False)
        assert type(_COMPILED[key, "True"]).__name__ == "PyFuncModel"
        second = sample_posterior(model, {"x": x, "y_obs": -1.0 * x}, key, fast, seed=1, progress=False)  # same compiled model, new data
        assert abs(float(first["posterior"]["slope"].mean()) - 2.0) < 0.05
        assert abs(float(second["posterior"]["slope"].mean()) + 1.0) < 0.05
        assert first["posterior"].sizes["chain"] == 2 and first["posterior"].sizes["draw"] == 250
    finally:
        _COMPILED.pop((key, "True"), None)


def test_a_second_process_loads_the_kernels_from_disk(tmp_path):
    env = os.environ | {"PYTENSOR_FLAGS": f"base_compiledir={tmp_path / 'pytensor'}"}
    times = []
    for _ in range(2):
        result = subprocess.run([sys.executable, "-c", TINY], check=False, env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        times.append(float(result.stdout.split("seconds")[-1]))
    assert any((tmp_path / "pytensor" / "numba").iterdir())  # the kernels are on disk
    assert times[1] < 0.5 * times[0], f"first process {times[0]:.1f} s, second {times[1]:.1f} s: the second did not reuse the kernels"


def test_a_refit_of_the_same_structure_is_labelled_with_its_own_coordinates():
    """The cached compiled model was built with the first model's labels; a second model of the same
    structure (same sizes, other run names) must get its own labels on its draws, not the first's
    (a scheduled fit of the 25M runs after one of the 100M runs once came back labelled '100/...')."""
    key = "test-fast-cache-coords"

    def model_of(runs):
        with pm.Model(coords={"run": runs}) as model:
            pm.Normal("level", 0, 1, dims="run")
        return model

    try:
        fast = SamplerConfig(method="fast", draws=20, tune=20)
        first = sample_posterior(model_of(["100/a", "100/b"]), {}, key, fast, seed=1, progress=False)
        second = sample_posterior(model_of(["25/a", "25/b"]), {}, key, fast, seed=1, progress=False)
        assert list(first["posterior"]["level"].coords["run"].values) == ["100/a", "100/b"]
        assert list(second["posterior"]["level"].coords["run"].values) == ["25/a", "25/b"]
    finally:
        _COMPILED.pop((key, "True"), None)


def test_progress_lines_where_no_terminal_shows_a_bar(caplog):
    """Issue 15 item 5: a fit run from a log file or CI says how far it is, every few seconds."""
    import logging
    from types import SimpleNamespace

    from bayes_mixlaw.inference import ProgressLines, _progress_options

    now = [0.0]
    lines = ProgressLines(every=10, clock=lambda: now[0])
    chain = lambda done, tuning: SimpleNamespace(finished_draws=done, total_draws=100, tuning=tuning, divergences=1)  # noqa: E731
    with caplog.at_level(logging.INFO, logger="bayes_mixlaw"):
        for t, done in ((1, 10), (5, 20), (12, 40), (15, 50), (30, 100), (31, 100)):
            now[0] = t
            lines([chain(done, done < 50), chain(done, False)])
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "sampling: 80/200 draws of 2 chain(s) (40%), 1 still tuning, 2 divergence(s), 12 s",
        "sampling: 200/200 draws of 2 chain(s) (100%), 2 divergence(s), 30 s",
    ]
    assert "progress_callback" in _progress_options(True)  # under pytest stderr is not a terminal
    assert _progress_options(False) == {"progress_bar": False}


def test_progress_lines_every_few_seconds_where_no_terminal(package_log):
    with Progress("counting", 10, every=0.05, terminal=False) as advance:
        for _ in range(10):
            time.sleep(0.03)
            advance()
    beats = [line for line in package_log if "so far" in line]
    assert len(beats) >= 3 and beats[0].startswith("counting: ") and "/10 (" in beats[0]


def test_progress_without_a_count_still_beats(package_log):
    with Progress("a step with no loop", every=0.05, terminal=False):
        time.sleep(0.2)
    assert any(line.startswith("a step with no loop: ") and "so far" in line for line in package_log)


def test_progress_is_silent_under_quiet():
    logger = logging.getLogger("bayes_mixlaw")
    old = logger.level
    logger.setLevel(logging.WARNING)
    lines = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    logger.addHandler(handler)
    try:
        with Progress("quiet", 3, every=0.01, terminal=False) as advance:
            time.sleep(0.05)
            advance(3)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)
    assert lines == []


def test_diagnostics_columns_and_message():
    d = Diagnostics("fast", 3, 1.14, 55.0, 250, 2, 1.0, ["max R-hat 1.140 > 1.01: chains disagree"])
    assert not d.converged
    assert d.columns() == {"fit_converged": False, "fit_max_rhat": 1.14, "fit_min_ess_bulk": 55.0, "fit_divergences": 3}
    message = d.unconverged_message("fit.nc")
    assert "fit.nc did not converge" in message and "R-hat 1.140" in message and "without --fast" in message
    assert Diagnostics("nuts", 0, 1.002, 900.0, 1000, 2, 1.0, []).unconverged_message("fit.nc") is None


def test_ctrl_c_while_sampling_stops_the_fit_instead_of_returning_partial_draws():
    """nutpie answers Ctrl-C by returning the draws so far; sample_posterior raises KeyboardInterrupt
    instead (a partial fit is never summarised, saved or ranked; the loop stops when told)."""
    import signal
    import threading

    import pytest

    with pm.Model() as model:
        pm.Normal("theta", 0.0, 1.0, shape=50)
    key, sampler = "test-interrupt", SamplerConfig(method="nuts", chains=2, draws=2_000_000, tune=100)
    outer = signal.signal(signal.SIGINT, signal.default_int_handler)  # as at a terminal (a background test run ignores SIGINT)
    try:
        sample_posterior(model, {}, key, sampler.model_copy(update={"draws": 10}), seed=1, progress=False)  # compiled before the clock starts
        timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT))
        started = time.perf_counter()
        timer.start()
        with pytest.raises(KeyboardInterrupt):
            sample_posterior(model, {}, key, sampler, seed=1, progress=False)
        assert time.perf_counter() - started < 60  # stopped, not run to the end (2 x 2,000,000 draws)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler put back
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, outer)
        _COMPILED.pop((key, "False"), None)


def _regression(n_coef: int, rng) -> tuple[pm.Model, dict]:
    x = rng.normal(size=(400, n_coef))
    y = x @ rng.normal(size=n_coef) + rng.normal(size=400)
    with pm.Model() as model:
        data_x = pm.Data("x", x)
        coef = pm.Normal("coef", 0, 1, shape=n_coef)
        noise = pm.HalfNormal("noise", 1)
        pm.Normal("y", data_x @ coef, noise, observed=y)
    return model, {"x": x}


def test_sampling_stops_at_the_first_check_that_converged_and_a_seed_fixes_the_draws():
    model, data = _regression(20, np.random.default_rng(3))
    key = "test-check-every"
    every = SamplerConfig(draws=20_000, tune=300, chains=2, check_every=250, min_ess=400)
    checked = lambda posterior: posterior  # noqa: E731
    try:
        first = sample_posterior(model, data, key, every, seed=5, progress=False, checked=checked)
        with warnings.catch_warnings(record=True) as seen:  # looks during warm-up (fewer draws than chains) say nothing
            warnings.simplefilter("always")
            again = sample_posterior(model, data, key, every, seed=5, progress=False, checked=checked)
        assert not [w for w in seen if "longer than draw" in str(w.message)]
        kept = first["posterior"].sizes["draw"]
        assert kept % 250 == 0 and 250 <= kept < 20_000  # stopped at a check, long before the cap
        assert first["sample_stats"].sizes["draw"] == kept
        max_rhat, min_ess = worst(first["posterior"].to_dataset())
        assert max_rhat <= 1.01 and min_ess >= 400
        if kept > 250:  # the check before did not pass
            max_rhat, min_ess = worst(first["posterior"].to_dataset().isel(draw=slice(0, kept - 250)))
            assert max_rhat > 1.01 or min_ess < 400
        np.testing.assert_array_equal(first["posterior"]["coef"].values, again["posterior"]["coef"].values)
        # the same seed without checks: the kept draws are its first ones
        full = sample_posterior(model, data, key, every.model_copy(update={"check_every": None, "draws": kept + 100}), seed=5, progress=False)
        np.testing.assert_array_equal(full["posterior"]["coef"].values[:, :kept], first["posterior"]["coef"].values)
        # a coarser rule (the discrepancy's calibration fit: means and spreads) stops at the same check or sooner,
        # with the same first draws
        loose = sample_posterior(model, data, key, every.model_copy(update={"stop_rhat": 1.2, "min_ess": 50}), seed=5, progress=False, checked=checked)
        sooner = loose["posterior"].sizes["draw"]
        assert sooner <= kept
        np.testing.assert_array_equal(loose["posterior"]["coef"].values, first["posterior"]["coef"].values[:, :sooner])
        # a target no chain reaches: all the draws
        capped = sample_posterior(model, data, key, every.model_copy(update={"draws": 600, "min_ess": 10**6}), seed=5, progress=False, checked=checked)
        assert capped["posterior"].sizes["draw"] == 600
    finally:
        _COMPILED.pop((key, "False"), None)


def test_generated_source_is_kept_beside_the_compile_cache_not_in_the_temp_folder(tmp_path, monkeypatch):
    """PyTensor's numba backend left one temporary file per generated function in the temp folder (12,437 after one
    test run); the package points it at a content-addressed folder beside the compile cache, unless the user set one."""
    import tempfile

    import pytensor
    import pytensor.tensor as pt

    from bayes_mixlaw.inference import keep_generated_source_in_cache

    assert pytensor.config.generated_src_dir.startswith(str(pytensor.config.compiledir))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where NamedTemporaryFile would write
    x = pt.vector("x")
    fn = pytensor.function([x], pt.exp(x).sum() * 3.0 + 1.5, mode="NUMBA")
    assert fn(np.ones(3)) == pytest.approx(3 * 3 * np.e + 1.5)
    assert list(tmp_path.iterdir()) == []
    # a folder the user chose stays theirs
    monkeypatch.setattr(pytensor.config, "generated_src_dir", str(tmp_path / "mine"))
    keep_generated_source_in_cache()
    assert pytensor.config.generated_src_dir == str(tmp_path / "mine")


def test_draws_that_diverge_at_a_check_start_again_once_at_the_higher_target_accept():
    """SamplerConfig.retry_target_accept: a check that finds divergent transitions in the draws so far starts NUTS again
    (same seed) at that target_accept, once; the tree says so, and a seed still gives the same draws."""
    with pm.Model() as funnel:  # Neal's funnel: a few divergences at target_accept 0.8
        v = pm.Normal("v", 0.0, 5.0)
        pm.Normal("x", 0.0, pm.math.exp(v / 2), shape=20)
    key = "test-retry"
    sampler = SamplerConfig(draws=500, tune=300, chains=2, check_every=250, target_accept=0.8, retry_target_accept=0.95)
    checked = lambda posterior: posterior  # noqa: E731
    try:
        for seed in range(6):  # a seed whose first 250 draws diverge without the retry
            plain = sample_posterior(funnel, {}, key, sampler.model_copy(update={"retry_target_accept": None}), seed=seed, progress=False, checked=checked)
            if int(plain["sample_stats"]["diverging"].isel(draw=slice(0, 250)).sum()):
                break
        else:
            raise AssertionError("no seed diverged in its first 250 draws")
        assert "retried_after" not in plain.attrs
        first = sample_posterior(funnel, {}, key, sampler, seed=seed, progress=False, checked=checked)
        assert first.attrs["target_accept"] == 0.95
        assert "divergent transition(s) in the first 250 draws a chain at target_accept 0.8" in first.attrs["retried_after"]
        again = sample_posterior(funnel, {}, key, sampler, seed=seed, progress=False, checked=checked)
        np.testing.assert_array_equal(first["posterior"]["v"].values, again["posterior"]["v"].values)
        # the same seed at 0.95 from the start gives the restart's draws
        direct = sample_posterior(funnel, {}, key, sampler.model_copy(update={"target_accept": 0.95}), seed=seed, progress=False, checked=checked)
        assert "retried_after" not in direct.attrs
        np.testing.assert_array_equal(direct["posterior"]["v"].values, first["posterior"]["v"].values)
        assert "sampled again at target_accept 0.95" in Diagnostics("nuts", 0, 1.0, 500.0, 500, 2, 1.0, [], "sampled again at target_accept 0.95").summary()
    finally:
        _COMPILED.pop((key, "False"), None)


def test_the_advice_on_divergences_is_one_that_can_still_be_taken():
    """Divergences at the default target_accept: raise it; at 0.95 already (few domains, or after the restart): look at
    the model instead."""
    import xarray as xr

    from bayes_mixlaw.inference import diagnose

    rng = np.random.default_rng(0)
    posterior = xr.Dataset({"theta": (("chain", "draw"), rng.normal(size=(2, 500)))})
    stats = xr.Dataset({"diverging": (("chain", "draw"), np.arange(1000).reshape(2, 500) < 3)})
    low = diagnose(posterior, stats, "nuts", 1.0, ["theta"], target_accept=0.8)
    assert low.divergences == 3 and "3 divergent transition(s) of 1000" in low.problems[0] and "raise target_accept" in low.problems[0]
    high = diagnose(posterior, stats, "nuts", 1.0, ["theta"], target_accept=0.95)
    assert "raise target_accept" not in high.problems[0] and "target_accept is already 0.95: check the priors or the parameterisation" in high.problems[0]
