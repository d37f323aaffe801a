"""Fit time and memory of the mixing law on large simulated tables, numba against JAX (issue 16 item 5).

Labs sweep thousands of pilots over dozens of domains; the public tables have at most 512 runs. So the tables here are
simulated from a fitted law:

1. The explicit law is fitted on 5Mix (Pythia-70M at 30k steps, 21 mixtures x 22 Pile validation domains, default
   settings). Its posterior means give the population of validation domains: the pooled share the mixture moves
   (``f_mu``, ``f_sigma``, on the logit scale), the spread of the interactions around their pooled mean (``t_sigma``),
   the spread of the pooled interactions themselves (the standard deviation of ``t_mu``'s entries), the Student-t's
   ``nu``, and, per fitted domain, the loss at the mean mixture, the loss scale and the noise.
2. A simulated domain i draws its loss scale, its loss at the mean mixture and its noise from one of the 22 fitted
   domains (with replacement), ``logit f_i ~ Normal(f_mu, f_sigma)`` and ``t_i = t_mu + ZeroSumNormal(t_sigma)`` over
   M training domains, ``t_mu`` a zero-sum draw of the fitted spread: the model's own generative form, so the fit's
   posterior geometry is the one a real table of that shape would give if the law held. With 30 domains instead of 5
   the exponent t_i . (r - rbar) would then vary more across runs than on 5Mix (losses up to 4x the median), so t is
   scaled to give the fitted law's spread of it at the 5Mix pilots (median over domains of its sd over runs).
3. Runs: flat-Dirichlet mixtures over the M training domains; each run's loss on each domain is the law plus
   Student-t noise (the fitted nu and noise scale). Every table's runs and domains are prefixes of the largest's
   (one draw of 5,000 runs x 50 domains), so rows differ only in size.

Each row is fitted in its own process (so its peak memory is its own), with the package's defaults (the explicit law,
Student-t, pooled across all domains) and NUTS on 4 chains over the machine's cores. Columns:

- ``compile s``: nutpie's compilation of the model (numba: one C callback; JAX: tracing and XLA, on the first gradient,
  counted here), once per model structure and process; ``build s``: the PyMC model from the table.
- ``grad ms``: one log density + gradient evaluation at the initial point, median of ``--evals`` (nutpie's
  ``benchmark_logp``, one thread).
- ``steps/draw``: mean leapfrog steps of the kept draws; ``sampling s``: the measured run of ``--draws``/``--tune``;
  ``default s (est.)``: the default run, 4 x (1500 + 2000), estimated as grad ms x steps/draw x 3,500 x 4 chains / cores,
  where the measured run was shorter (say so), otherwise measured.
- ``peak RSS GB``: the process's peak resident memory (``resource.getrusage``'s ``ru_maxrss``: everything, Python,
  PyTorch and PyMC included), ``base GB`` the same before the table was simulated; ``posterior MB`` the fit's draws.
- R-hat (max), bulk ESS (min) and divergences over the law's checked quantities (``law.diagnostics``).

    python benchmarks/mixing_scale.py                      # the table of the README (about 25 minutes on 2 cores)
    python benchmarks/mixing_scale.py --sizes 250x10 --backends numba jax --draws 200 --tune 200
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np
import pandas as pd

DEFAULT_ITERATIONS, DEFAULT_CHAINS = 1500 + 2000, 4  # MixingLawConfig's sampler: 4 x (1500 warm-up + 2000 draws)
N_TRAIN, MAX_RUNS, MAX_VALID = 30, 5000, 50


def population(seed: int = 0) -> dict:
    """The population of validation domains, from the explicit law fitted on 5Mix 70M/30k (module docstring)."""
    from bayes_mixlaw import MixingLaw, datasets

    table = datasets.mixinglaws_5mix_70m().select(step=30000)
    law = MixingLaw(targets=datasets.pile_targets()).fit(table, seed=seed, progress=False)
    post = law.idata["posterior"]
    mean = lambda name: post[name].mean(("chain", "draw")).values  # noqa: E731
    return {
        "f_mu": float(mean("f_mu").ravel()[0]),
        "f_sigma": float(mean("f_sigma")),
        "t_sigma": float(mean("t_sigma")),
        "t_mu_sd": float(np.std(mean("t_mu"))),
        "nu": float(mean("nu")),
        "log_loss_at_mean": mean("log_loss_at_mean").tolist(),
        "noise_sigma": mean("noise_sigma").tolist(),
        "loss_scale": law.idata["constant_data"]["loss_scale"].values.tolist(),
        # how far the mixture moves the exponent at the pilots: sd over runs of t_i . (r - rbar), median over domains
        "exponent_spread": float(np.median(np.std((law.pilot_mixtures - law.pilot_mixtures.mean(axis=0)) @ mean("t").T, axis=0))),
        "fit": law.diagnostics.summary(),
    }


def zero_sum(x: np.ndarray) -> np.ndarray:
    """``x`` less its mean over the last axis, scaled so each entry keeps its variance (a ZeroSumNormal draw)."""
    m = x.shape[-1]
    return (x - x.mean(axis=-1, keepdims=True)) * np.sqrt(m / (m - 1))


def simulate(pop: dict, n_runs: int, n_valid: int, n_train: int = N_TRAIN, seed: int = 0) -> pd.DataFrame:
    """A runs table of ``n_runs`` x ``n_valid`` from the population: the first runs and domains of one draw of
    ``MAX_RUNS`` x ``MAX_VALID`` (so a smaller table is part of a larger one)."""
    rng = np.random.default_rng(seed)
    source = rng.integers(len(pop["loss_scale"]), size=MAX_VALID)  # the fitted domain each simulated one copies
    scale = np.asarray(pop["loss_scale"])[source]
    log_m = np.asarray(pop["log_loss_at_mean"])[source]
    noise = np.asarray(pop["noise_sigma"])[source]
    logit_f = rng.normal(pop["f_mu"], pop["f_sigma"], size=MAX_VALID)
    t_mu = zero_sum(rng.normal(0.0, pop["t_mu_sd"], size=n_train))
    t = t_mu + zero_sum(rng.normal(0.0, pop["t_sigma"], size=(MAX_VALID, n_train)))
    r = rng.dirichlet(np.ones(n_train), size=MAX_RUNS)
    t *= pop["exponent_spread"] / np.median(np.std((r - r.mean(axis=0)) @ t.T, axis=0))  # the mixture moves the loss as much as on 5Mix
    f = 1 / (1 + np.exp(-logit_f))
    law = np.exp(log_m) * ((1 - f) + f * np.exp((r - r.mean(axis=0)) @ t.T))  # (run, valid), in units of the scale
    loss = (law + noise * rng.standard_t(pop["nu"], size=law.shape)) * scale
    r, loss = r[:n_runs], loss[:n_runs, :n_valid]
    runs, valid = [f"run{i:05d}" for i in range(n_runs)], [f"valid{i:02d}" for i in range(n_valid)]
    mix = pd.DataFrame(r, columns=[f"mix:train{j:02d}" for j in range(n_train)])
    frame = pd.DataFrame({"run": np.repeat(runs, n_valid), "valid_domain": np.tile(valid, n_runs), "loss": loss.ravel()})
    return pd.concat([frame, mix.loc[np.repeat(np.arange(n_runs), n_valid)].reset_index(drop=True)], axis=1)


def peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: kilobytes


def gradient_function(compiled, backend: str, seed: int):
    """One evaluation of the log density and its gradient at the initial point, as NUTS calls it: numba's C callback
    (through ctypes) or the JAX backend's Python function with its shared data."""
    import ctypes

    if backend == "jax":
        x = np.asarray(compiled._make_initial_points(seed), dtype="float64")
        logp, data = compiled._make_logp_func(), compiled._shared_data
        return lambda: logp(x, **data)
    x = np.ascontiguousarray(compiled.initial_point_func(seed), dtype="float64")
    grad, value = np.empty_like(x), np.zeros(1)
    double = ctypes.POINTER(ctypes.c_double)
    args = (len(x), x.ctypes.data_as(double), grad.ctypes.data_as(double), value.ctypes.data_as(double), compiled.user_data.ctypes.data)
    function = compiled.compiled_logp_func.ctypes

    def call():
        if function(*args) != 0:
            raise RuntimeError("the log density failed at the initial point")
        return value[0], grad

    return call


def one(pop: dict, n_runs: int, n_valid: int, backend: str, draws: int, tune: int, evals: int, seed: int, chains: int = DEFAULT_CHAINS) -> dict:
    """Simulate, build, compile, time the gradient and fit one table (in this process)."""
    from bayes_mixlaw import MixingLaw
    from bayes_mixlaw.inference import _compiled
    from bayes_mixlaw.runs import RunsTable

    base = peak_gb()
    table = RunsTable(simulate(pop, n_runs, n_valid, seed=seed), source=f"simulated {n_runs}x{n_valid}")
    law = MixingLaw()
    start = time.perf_counter()
    built = law.build(table)
    build_s = time.perf_counter() - start
    start = time.perf_counter()
    compiled = _compiled(built.model, built.key, backend=backend)
    gradient = gradient_function(compiled, backend, seed)
    gradient()  # JAX jit-compiles on its first gradient: part of its compilation
    compile_s = time.perf_counter() - start
    times = []
    for _ in range(evals):
        begin = time.perf_counter()
        gradient()
        times.append(time.perf_counter() - begin)
    grad_ms = 1e3 * float(np.median(times))
    start = time.perf_counter()
    law.fit(table, seed=seed, progress=False, draws=draws, tune=tune, chains=chains, backend=backend)
    fit_s = time.perf_counter() - start
    d = law.diagnostics
    stats = law.idata["sample_stats"]
    steps = float(stats["n_steps"].mean()) if "n_steps" in stats else float("nan")
    cores = min(DEFAULT_CHAINS, os.cpu_count() or 1)
    rounds = -(-DEFAULT_CHAINS // cores)  # chains run `cores` at a time
    measured_default = draws == 2000 and tune == 1500 and chains == DEFAULT_CHAINS
    default_s = d.seconds if measured_default else grad_ms / 1e3 * steps * DEFAULT_ITERATIONS * rounds
    return {
        "runs": n_runs,
        "train domains": N_TRAIN,
        "valid domains": n_valid,
        "observations": n_runs * n_valid,
        "parameters": int(compiled.n_dim),
        "backend": backend,
        "build s": round(build_s, 1),
        "compile s": round(compile_s, 1),
        "grad ms": round(grad_ms, 3),
        "draws": f"{chains}x({tune}+{draws})",
        "sampling s": round(d.seconds, 1),
        "fit s": round(fit_s, 1),
        "steps/draw": round(steps, 1),
        "default s (est.)": round(default_s, 0) if not measured_default else round(default_s, 1),
        "default measured": measured_default,
        "base GB": round(base, 2),
        "peak RSS GB": round(peak_gb(), 2),
        "posterior MB": round(law.idata["posterior"].to_dataset().nbytes / 2**20, 1),
        "max R-hat": round(d.max_rhat, 3),
        "min ESS": round(d.min_ess_bulk, 0),
        "divergences": d.divergences,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["250x10", "250x50", "1000x10", "1000x50", "5000x10", "5000x50"], help="runs x valid domains")
    parser.add_argument("--backends", nargs="+", default=["numba", "jax"], choices=["numba", "jax"])
    parser.add_argument("--jax-sizes", nargs="+", default=None, help="the sizes the JAX backend fits (default: all)")
    parser.add_argument("--draws", type=int, default=2000)
    parser.add_argument("--tune", type=int, default=1500)
    parser.add_argument("--large-draws", type=int, default=None, help="draws (and tuning) of tables of >= --large observations")
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--large-chains", type=int, default=DEFAULT_CHAINS, help="chains of tables of >= --large observations")
    parser.add_argument("--evals", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--population", default=None, help="a population JSON written by an earlier run (skips the 5Mix fit)")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: one row, in a child process
    args = parser.parse_args()
    warnings.simplefilter("ignore")

    if args.one:
        pop = json.loads(open(args.population).read())
        size, backend, draws, tune, chains = args.one.split(",")
        n_runs, n_valid = (int(x) for x in size.split("x"))
        print(json.dumps(one(pop, n_runs, n_valid, backend, int(draws), int(tune), args.evals, args.seed, int(chains))))
        return

    path = args.population
    if path is None:
        start = time.perf_counter()
        pop = population(args.seed)
        path = os.path.join(tempfile.mkdtemp(), "population.json")
        with open(path, "w") as out:
            json.dump(pop, out)
        print(
            f"population from the 5Mix fit ({pop['fit']}; {time.perf_counter() - start:.0f} s): "
            + json.dumps({k: v for k, v in pop.items() if not isinstance(v, list)})
        )
    rows = []
    for size in args.sizes:
        n_runs, n_valid = (int(x) for x in size.split("x"))
        large = n_runs * n_valid >= args.large and args.large_draws is not None
        draws, tune = (args.large_draws, args.large_draws) if large else (args.draws, args.tune)
        chains = args.large_chains if large else DEFAULT_CHAINS
        for backend in args.backends:
            if backend == "jax" and args.jax_sizes is not None and size not in args.jax_sizes:
                continue
            command = [
                sys.executable,
                __file__,
                "--one",
                f"{size},{backend},{draws},{tune},{chains}",
                "--population",
                path,
                "--evals",
                str(args.evals),
                "--seed",
                str(args.seed),
            ]
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                print(f"{size} {backend}: failed\n{done.stderr[-3000:]}", file=sys.stderr)
                continue
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    table = pd.DataFrame(rows)
    if {"numba", "jax"} <= set(table["backend"]):  # JAX's time over numba's on the same table
        numba = table[table["backend"] == "numba"].set_index(["runs", "valid domains"])
        same = table.set_index(["runs", "valid domains"]).index
        for column in ("grad ms", "sampling s"):
            table[f"{column} / numba"] = (table[column].to_numpy() / numba[column].reindex(same).to_numpy()).round(2)
    print(table.to_markdown(index=False))


if __name__ == "__main__":
    main()
