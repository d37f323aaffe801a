"""Posterior computation and its diagnostics, shared by every law's model.

NUTS runs through nutpie; the compiled model is cached per model structure and reused with new
data (``pm.Data`` + ``with_data``), so refits in a planning loop pay the compilation once. The fast
path is a short NUTS run on the same compiled model (``config.FAST_NUTS``); mean-field ADVI is
the other approximate option. A Laplace approximation is none here: near the pilots' mean mixture the
data fix mostly the slope f_i t_i, so the mode runs off along that ridge (pymc-extras' ``fit_laplace``
did not converge and returned absurd variances on 5Mix), and Pathfinder missed the posterior. Diagnostics (R-hat, bulk ESS,
divergences) are computed for every fit, stored in the fit and raised as warnings.

The log density is compiled by numba by default (``SamplerConfig.backend``); ``backend: jax`` compiles it
with JAX instead (nutpie's JAX backend, gradients by JAX), for a machine with a GPU and a large table
(``pip install 'bayes_mixlaw[jax]'``; benchmarks/mixing_scale.py measures both). Same sampler, same
adaptation, same draws' format: only where the log density and its gradient are computed changes.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pymc as pm
import xarray as xr

from bayes_mixlaw.config import FAST_NUTS, SamplerConfig

log = logging.getLogger("bayes_mixlaw")


def keep_generated_source_in_cache() -> None:
    """PyTensor's numba backend writes each function it generates to a file and keeps it; without
    ``generated_src_dir`` each is a new temporary file, so every fit left thousands of files in the system's temp
    folder (12,437 after one run of the test suite). Unless the user set the option, the files go to a folder beside
    PyTensor's compile cache, named by their content (a refit writes none) and pruned by PyTensor when unused."""
    import pytensor

    if not pytensor.config.generated_src_dir:
        pytensor.config.generated_src_dir = os.path.join(pytensor.config.compiledir, "generated_src")


keep_generated_source_in_cache()

RHAT_LIMIT = 1.01
ESS_PER_CHAIN_LIMIT = 100


class SamplingWarning(UserWarning):
    """The sampler reported a problem (divergences, high R-hat, low ESS)."""


_COMPILED: dict[tuple[str, str], object] = {}

JAX_INSTALL = "pip install 'bayes_mixlaw[jax]'"


class BackendUnavailable(ImportError):
    """The sampling backend asked for is not installed (its message says what to install)."""


def require_jax():
    """The ``jax`` module, or :class:`BackendUnavailable` saying how to install it."""
    try:
        import jax
    except ImportError as err:
        raise BackendUnavailable(
            f"the JAX sampling backend (backend: jax) needs jax and jaxlib, which are not installed ({err}): {JAX_INSTALL} "
            "(on a machine with an NVIDIA GPU also jax's CUDA build, pip install 'jax[cuda12]'); or sample with the default backend, numba"
        ) from None
    return jax


def _compiled(model: pm.Model, key: str, *, kernels: bool = False, backend: str = "numba"):
    """The model compiled for nutpie, once per model structure (``key``) and process.

    ``kernels=False`` (full NUTS): nutpie's own compilation, one numba C callback of the whole log
    density; the fastest sampler, but numba cannot cache it on disk (it embeds this process's
    addresses), so every new process compiles it again (20-60 s on 2 cores).

    ``kernels=True`` (``--fast``): :func:`compile_kernels`, the log density and its gradient as
    PyTensor's numba kernels called through nutpie's Python-function model. PyTensor caches those
    kernels on disk (its ``compiledir``), keyed by the graph, so a new process with the same model
    structure loads them in about a second instead of compiling; sampling is ~1.4x slower per
    draw, which a short run pays back many times (``benchmarks/fast_cache.py``).

    ``backend="jax"``: nutpie's JAX backend (log density and gradient by JAX, jit-compiled on the first
    gradient; ``kernels`` does not apply), for either method; its data stay shared so refits swap them."""
    import nutpie

    if backend == "jax":
        require_jax()
        if (key, "jax") not in _COMPILED:
            log.info("compiling the model (JAX; once per model structure and process) ...")
            _COMPILED[key, "jax"] = nutpie.compile_pymc_model(model, backend="jax", gradient_backend="jax", freeze_model=False)
        return _COMPILED[key, "jax"]
    if (key, str(kernels)) not in _COMPILED:
        if kernels:
            with Timer() as timer:
                _COMPILED[key, "True"] = compile_kernels(model)
            log.info(f"model ready in {timer.seconds:.1f} s (numba kernels; cached on disk, so a new process with this model structure reuses them)")
        else:
            log.info("compiling the model (numba; once per model structure and process, up to a few minutes) ...")
            # numba compilation dominates a first fit; later fits of the same structure reuse it.
            _COMPILED[key, "False"] = nutpie.compile_pymc_model(model, backend="numba", freeze_model=False)
    return _COMPILED[key, str(kernels)]


def compile_kernels(model: pm.Model):
    """``model`` as a nutpie model of PyTensor's numba kernels (log density with gradient, and the
    expansion to the model's variables) called from Python, with its ``pm.Data`` as shared data
    (``with_data`` swaps them). PyTensor caches the kernels on disk (``pytensor.config.compiledir``;
    ``numba__cache``), so only the first process with a model structure compiles them."""
    from nutpie.compile_pymc import (
        _make_functions,
        _prepare_dims_and_coords,
        _wrap_with_lock,
    )
    from nutpie.compiled_pyfunc import from_pyfunc
    from pymc.initial_point import make_initial_point_fn

    initial_point = _wrap_with_lock(
        make_initial_point_fn(model=model, default_strategy="support_point", jitter_rvs=set(model.free_RVs), return_transformed=True)
    )
    n_dim, _, logp_pt, expand_pt, initial_point, shape_info, reparameterized = _make_functions(
        model, mode="NUMBA", compute_grad=True, join_expanded=False, pymc_initial_point_fn=initial_point, var_names=None
    )
    logp_kernel, expand_kernel = logp_pt.vm.jit_fn, expand_pt.vm.jit_fn
    logp_names = [var.name for var in logp_pt.get_shared()]
    expand_names = [var.name for var in expand_pt.get_shared()]
    shared = {}
    for var in [*logp_pt.get_shared(), *expand_pt.get_shared()]:
        shared[var.name] = np.asarray(var.get_value())
    names, _, shapes = shape_info

    def make_logp():
        def logp(x, /, **data):
            value, grad = logp_kernel(x, *[data[n] for n in logp_names])[:2]
            return float(value), np.asarray(grad, dtype="float64", order="C")

        return logp

    def make_expand(seed1, seed2, chain):
        def expand(x, /, **data):
            values = expand_kernel(x, *[data[n] for n in expand_names])
            return {n: np.asarray(v, dtype="float64", order="C").reshape(shape) for n, v, shape in zip(names, values, shapes, strict=True)}

        return expand

    make_logp()(np.zeros(n_dim), **shared)  # numba compiles (or loads from its disk cache) the kernels here, not in a sampler thread
    dims, coords = _prepare_dims_and_coords(model, shape_info, reparameterized)
    return from_pyfunc(
        ndim=n_dim,
        make_logp_fn=make_logp,
        make_expand_fn=make_expand,
        make_initial_point_fn=initial_point,
        expanded_dtypes=[np.dtype("float64")] * len(names),
        expanded_shapes=shapes,
        expanded_names=names,
        shared_data=shared,
        dims=dims,
        coords=coords,
        reparameterized_names=reparameterized,
    )


def _shared_names(compiled) -> dict[str, np.dtype]:
    """The data a compiled model's graph uses (``pm.Data`` the graph does not use are not shared), with their dtypes."""
    if hasattr(compiled, "shared_var_keys"):
        return {var.name: compiled.shared_data[key].dtype for var, key in compiled.shared_var_keys.items()}
    return {name: np.asarray(value).dtype for name, value in compiled._shared_data.items()}


def _with_coords(compiled, model: pm.Model):
    """``compiled`` labelled with ``model``'s coordinates. A cached compiled model keeps the labels of
    the model it was compiled from; a refit of the same structure (same sizes, other run or domain
    names) must label its draws with its own."""
    coords = dict(compiled.coords or {})
    coords.update({name: pd.Index(values) for name, values in model.coords.items() if values is not None})
    return dataclasses.replace(compiled, _coords=coords)


class ProgressLines:
    """nutpie's progress as log lines every ``every`` seconds, where no terminal shows its bar (a log
    file, CI, a pipe): draws done of all chains, divergences, time so far. Called on nutpie's thread."""

    def __init__(self, every: float = 15.0, clock=time.monotonic):
        self.every, self.clock = every, clock
        self.started = self.last = clock()
        self.finished = False

    def __call__(self, chains) -> None:
        now = self.clock()
        done, total = sum(c.finished_draws for c in chains), sum(c.total_draws for c in chains)
        if self.finished or (now - self.last < self.every and done < total):
            return
        self.last, self.finished = now, done >= total
        tuning = sum(bool(c.tuning) for c in chains)
        log.info(
            f"sampling: {done:,}/{total:,} draws of {len(chains)} chain(s) ({100 * done / max(total, 1):.0f}%)"
            f"{f', {tuning} still tuning' if tuning else ''}, {sum(c.divergences for c in chains)} divergence(s), "
            f"{now - self.started:.0f} s"
        )


class Progress:
    """Progress of a step that may take more than a few seconds (``optimize``'s and ``suggest``'s
    optimisation): rich's bar (or a spinner where ``total`` is None) on a terminal; elsewhere (a log
    file, CI, a pipe) a log line every ``every`` seconds from a background thread, so a step with no
    loop to count (BoTorch's acquisition optimisation) still says it is running. Silent where the
    package's log level is above INFO (``-q``; Python without logging switched on).

    Use as ``with Progress("what", total) as advance: ... advance()`` (``advance(k)`` counts k)."""

    def __init__(self, what: str, total: int | None = None, *, every: float = 15.0, terminal: bool | None = None, clock=time.monotonic):
        self.what, self.total, self.every, self.clock = what, total, every, clock
        self.terminal = sys.stderr.isatty() if terminal is None else terminal
        self.done, self._bar, self._thread = 0, None, None

    def line(self) -> str:
        """The log line for the time so far."""
        counted = f"{self.done:,}/{self.total:,} ({100 * self.done / max(self.total, 1):.0f}%), " if self.total else ""
        return f"{self.what}: {counted}{self.clock() - self.started:.0f} s so far"

    def __enter__(self):
        import threading

        self.started = self.clock()
        if not log.isEnabledFor(logging.INFO):
            return self.advance
        if self.terminal:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
            )
            from rich.progress import Progress as Bar

            columns = [
                SpinnerColumn(),
                TextColumn("{task.description}"),
                *([BarColumn(), TextColumn("{task.completed}/{task.total}")] if self.total else []),
                TimeElapsedColumn(),
            ]
            self._bar = Bar(*columns, console=Console(stderr=True), transient=True)
            self._bar.start()
            self._task = self._bar.add_task(self.what, total=self.total)
        else:
            self._stop = threading.Event()

            def beat():
                while not self._stop.wait(self.every):
                    log.info(self.line())

            self._thread = threading.Thread(target=beat, daemon=True, name="bayes_mixlaw-progress")
            self._thread.start()
        return self.advance

    def advance(self, k: int = 1) -> None:
        self.done += k
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done)

    def __exit__(self, *exc):
        if self._bar is not None:
            self._bar.stop()
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
        if log.isEnabledFor(logging.INFO) and exc[0] is None and self.clock() - self.started >= 1.0:
            log.info(f"{self.what}: {self.clock() - self.started:.1f} s")


def _progress_options(progress: bool) -> dict:
    """nutpie's bar on a terminal; log lines (:class:`ProgressLines`) elsewhere; nothing if not ``progress``."""
    if progress and not sys.stderr.isatty():
        return {"progress_bar": False, "progress_callback": ProgressLines(), "progress_rate": 1000}
    return {"progress_bar": progress}


@contextmanager
def interrupts_raised():
    """Ctrl-C (SIGINT, and SIGTERM where a Python handler takes it) during sampling stops the fit.

    nutpie answers a ``KeyboardInterrupt`` by returning the draws it has so far: a partial fit that
    would be summarised, saved and ranked as if complete (and a loop told to stop would go on). The
    signal is recorded here, passed to the handler that was in place (which raises as before, so
    nutpie stops its chains), and raised again as ``KeyboardInterrupt`` once nutpie has returned."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    seen: list[int] = []
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    previous = {sig: handler for sig, handler in previous.items() if callable(handler)}

    def record(signum, frame):
        seen.append(signum)
        previous[signum](signum, frame)

    for sig in previous:
        signal.signal(sig, record)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if seen:
        raise KeyboardInterrupt


def sample_posterior(
    model: pm.Model,
    data: dict[str, np.ndarray],
    key: str,
    sampler: SamplerConfig,
    seed: int | None,
    progress: bool,
    checked: Callable[[xr.Dataset], xr.Dataset] | None = None,
) -> xr.DataTree:
    """Posterior draws of ``model`` (a DataTree with posterior and sample_stats). ``checked``: the quantities a
    law's convergence is judged on, from a posterior; with ``sampler.check_every`` NUTS then stops once they have
    converged (:func:`sample_until_converged`)."""
    if sampler.method in ("nuts", "fast"):
        import nutpie

        if sampler.method == "fast":
            sampler = sampler.model_copy(update=FAST_NUTS)
        compiled = _compiled(model, key, kernels=sampler.method == "fast", backend=sampler.backend)
        known = _shared_names(compiled)
        # JAX's data as its arrays: on a GPU they are copied to it once, not at every gradient
        as_array = require_jax().numpy.asarray if sampler.backend == "jax" else np.asarray
        compiled = compiled.with_data(**{k: as_array(np.asarray(v, dtype=known[k])) for k, v in data.items() if k in known})
        compiled = _with_coords(compiled, model)
        cores = sampler.cores or min(sampler.chains, os.cpu_count() or 1)
        options = {
            "draws": sampler.draws,
            "tune": sampler.tune,
            "chains": sampler.chains,
            "cores": cores,
            "seed": seed,
            "target_accept": sampler.target_accept,
            "adaptation": sampler.adaptation,
            "save_warmup": False,
            **_progress_options(progress),
        }
        with interrupts_raised():
            if sampler.checks_while_sampling and checked is not None:
                try:
                    return sample_until_converged(compiled, options, sampler, checked)
                except Diverged as diverged:
                    retry = sampler.model_copy(update={"target_accept": sampler.retry_target_accept, "retry_target_accept": None})
                    log.info(f"{diverged}: sampling again at target_accept {retry.target_accept}")
                    tree = sample_until_converged(compiled, options | {"target_accept": retry.target_accept}, retry, checked)
                    tree.attrs["target_accept"] = retry.target_accept
                    tree.attrs["retried_after"] = str(diverged)
                    return tree
            return nutpie.sample(compiled, **options)
    if sampler.method == "advi":
        with model:
            pm.set_data(data)
            approx = pm.fit(
                n=sampler.advi_iterations,
                method="advi",
                random_seed=seed,
                progressbar=progress,
                obj_optimizer=pm.adam(learning_rate=0.01),
            )
            tree = approx.sample(sampler.draws * sampler.chains, random_seed=seed)
        return xr.DataTree.from_dict({"posterior": tree["posterior"].to_dataset()})
    raise ValueError(f"unknown sampler method {sampler.method!r}")


# The shortest wait between two looks at the running chains (a look reads every draw so far: ~0.1 s on the mixing law's)
MIN_WAIT = 0.25


class Diverged(Exception):
    """A check while sampling found divergent transitions in the draws so far (``SamplerConfig.retry_target_accept``)."""

    def __init__(self, draws: int, divergences: int, target_accept: float):
        super().__init__(f"{divergences} divergent transition(s) in the first {draws} draws a chain at target_accept {target_accept}")
        self.draws, self.divergences = draws, divergences


def sample_until_converged(compiled, options: dict, sampler: SamplerConfig, checked: Callable[[xr.Dataset], xr.Dataset]) -> xr.DataTree:
    """NUTS in the background, checked after every ``sampler.check_every`` draws a chain: the first ``k x
    check_every`` draws of every chain, ``checked`` from them, stop at the first check where max R-hat <=
    ``sampler.stop_rhat`` and min bulk ESS >= ``sampler.min_ess`` and keep exactly those draws; else all
    ``sampler.draws``. Each check reads a fixed prefix of each chain, whose draws the seed fixes, so the result does
    not depend on when the checks ran (a check that finds the chains short waits; one after sampling ended reads the
    finished chains). The checks run beside the chains (NumPy releases the GIL). Raises :class:`Diverged` at a check
    whose draws diverged, where ``sampler.retry_target_accept`` is above its ``target_accept`` (the caller starts again)."""
    import nutpie

    from bayes_mixlaw.convergence import worst

    running = nutpie.sample(compiled, blocking=False, **options)
    started, finished = time.monotonic(), None
    try:
        for n in range(sampler.check_every, sampler.draws, sampler.check_every):
            while finished is None:
                if _finished(running):
                    finished = running.wait()
                    break
                with warnings.catch_warnings():  # a look during warm-up holds fewer draws than chains: arviz's naming check
                    warnings.filterwarnings("ignore", message="Found chain dimension to be longer than draw", category=UserWarning)
                    trace = running.inspect()
                done = int(np.isfinite(trace["sample_stats"]["step_size"].values).sum(axis=1).min()) if trace["sample_stats"].sizes.get("draw") else 0
                if done >= n:
                    break
                # wait about as long as the missing draws take at the pace so far (tuning included), 0.25-10 s: a
                # short fit (the mixing law's, a few seconds) is not held up by the wait, a long one not by the look
                pace = (time.monotonic() - started) / (sampler.tune + done)
                time.sleep(min(10.0, max(MIN_WAIT, pace * (n - done))))
            seen = finished if finished is not None else trace
            prefix = seen["posterior"].to_dataset().isel(draw=slice(0, n))
            if sampler.retry_target_accept is not None and sampler.retry_target_accept > sampler.target_accept:
                divergences = int(seen["sample_stats"]["diverging"].isel(draw=slice(0, n)).sum())
                if divergences:
                    raise Diverged(n, divergences, sampler.target_accept)
            max_rhat, min_ess = worst(checked(prefix))
            log.info(f"draws {n} a chain: max R-hat {max_rhat:.3f}, min bulk ESS {min_ess:.0f}")
            if max_rhat <= sampler.stop_rhat and min_ess >= sampler.min_ess:
                kept = finished if finished is not None else running.abort()
                return kept.isel(draw=slice(0, n))
        return finished if finished is not None else running.wait()
    except BaseException:
        running.cancel()
        raise


def _finished(running) -> bool:
    """Whether nutpie's background sampler has finished (its check raises TimeoutError while the chains run)."""
    try:
        return bool(running.is_finished)
    except TimeoutError:
        return False


# How many numbers of a per-run quantity (chains x draws x runs x ...) the diagnostics check at most. The mixing law
# checks its fitted loss at the pilots (identified under any form's relabelling); at 5,000 runs x 50 validation
# domains and 4 x 2,000 draws that is 2e9 numbers (16 GB), so a table of thousands of runs is checked at a subset
# of them spread evenly through it (every run of the public tables: 5Mix's 21 runs x 22 domains are 3.7e6 numbers).
DIAGNOSTIC_NUMBERS = 20_000_000


def diagnostic_rows(n_rows: int, numbers_per_row: int) -> np.ndarray:
    """Indices of at most ``DIAGNOSTIC_NUMBERS // numbers_per_row`` of ``n_rows`` rows (at least one), evenly spread."""
    keep = max(1, min(n_rows, DIAGNOSTIC_NUMBERS // max(numbers_per_row, 1)))
    return np.unique(np.linspace(0, n_rows - 1, keep).round().astype(int))


@dataclass
class Diagnostics:
    """Convergence summary of a posterior."""

    method: str
    divergences: int
    max_rhat: float
    min_ess_bulk: float
    draws: int
    chains: int
    seconds: float
    problems: list[str]
    # where NUTS started again at a higher target_accept (SamplerConfig.retry_target_accept): why, else ""
    restarted: str = ""

    def summary(self) -> str:
        """How it was sampled and whether there were problems, for one-line fit summaries."""
        problems = "no sampler problems" if not self.problems else f"{len(self.problems)} sampler problem(s)"
        return f"{self.method} {self.chains}x{self.draws} draws in {self.seconds:.1f}s{'; ' + self.restarted if self.restarted else ''}; {problems}"

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([{k: v for k, v in self.__dict__.items() if k != "problems"} | {"problems": "; ".join(self.problems) or "none"}])

    @property
    def converged(self) -> bool:
        """No sampler problem (R-hat, ESS, divergences within their limits)."""
        return not self.problems

    def columns(self) -> dict:
        """The fit's diagnostics as columns of every table computed from it (``predict``, ``optimize``,
        ``suggest``): ``fit_converged``, ``fit_max_rhat``, ``fit_min_ess_bulk``, ``fit_divergences``."""
        return {
            "fit_converged": self.converged,
            "fit_max_rhat": round(self.max_rhat, 4),
            "fit_min_ess_bulk": round(self.min_ess_bulk, 1),
            "fit_divergences": self.divergences,
        }

    def unconverged_message(self, source: str, where: str = "the output's fit_* columns") -> str | None:
        """A sentence for the terminal where the numbers of an unconverged fit are used (``where``: where
        the output keeps the diagnostics); None if converged."""
        if self.converged:
            return None
        return (
            f"{source} did not converge ({'; '.join(self.problems)}): the numbers computed from it are for a first look, "
            "not for a decision or a paper; refit with the full sampler "
            f"({'without --fast' if self.method == 'fast' else 'more draws and tuning in --config'}) "
            f"(its diagnostics: {where})"
        )


# a target_accept from which smaller steps rarely remove divergences: the advice turns to the model
HIGH_TARGET_ACCEPT = 0.95


def diagnose(
    posterior: xr.Dataset, sample_stats: xr.Dataset | None, method: str, seconds: float, var_names: list[str], target_accept: float | None = None
) -> Diagnostics:
    """R-hat (rank-normalised, split), bulk ESS and divergences over ``var_names``
    (:func:`bayes_mixlaw.convergence.rhat_ess`: ArviZ's estimators, vectorised); problems described in plain words.
    ``target_accept``: what NUTS sampled at, so that the advice on divergences is one that can still be taken."""
    from bayes_mixlaw.convergence import worst

    chains, draws = posterior.sizes["chain"], posterior.sizes["draw"]
    problems: list[str] = []
    divergences = 0
    if method in ("nuts", "fast"):
        if sample_stats is not None and "diverging" in sample_stats:
            divergences = int(sample_stats["diverging"].sum())
        max_rhat, min_ess = worst(posterior[var_names])
        if divergences:
            advice = (
                "raise target_accept or check the priors"
                if target_accept is None or target_accept < HIGH_TARGET_ACCEPT
                else f"target_accept is already {target_accept:g}: check the priors or the parameterisation"
            )
            problems.append(f"{divergences} divergent transition(s) of {chains * draws}: the posterior may be biased; {advice}")
        if chains > 1 and max_rhat > RHAT_LIMIT:
            problems.append(f"max R-hat {max_rhat:.3f} > {RHAT_LIMIT}: chains disagree; run longer or check the model")
        if min_ess < ESS_PER_CHAIN_LIMIT * chains:
            problems.append(f"min bulk ESS {min_ess:.0f} < {ESS_PER_CHAIN_LIMIT * chains}: intervals are noisy; draw more")
    else:
        max_rhat, min_ess = float("nan"), float(chains * draws)
        log.info("ADVI is approximate: its intervals are too narrow; use NUTS for final numbers")
    return Diagnostics(method, divergences, max_rhat, min_ess, int(draws), int(chains), round(seconds, 3), problems)


def warn_problems(diagnostics: Diagnostics, what: str) -> None:
    for problem in diagnostics.problems:
        warnings.warn(f"{what}: {problem}", SamplingWarning, stacklevel=3)


class Timer:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
