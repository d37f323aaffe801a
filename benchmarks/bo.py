"""Choosing pilot runs by Bayesian optimisation: simple regret against the number of pilot runs.

Simulators built from real data (``--simulator``):
* ``5mix``: the Bayesian mixing law fitted to Data Mixing Laws' 5Mix pilots (Pythia-70M, 30k steps;
  21 mixtures x 22 Pile domains, 5 training domains); objective: the Pile-weighted total loss.
* ``regmix``: the Bayesian mixing law fitted to RegMix's 512 runs (1M-parameter models, 17 Pile
  training domains x 13 validation domains); objective: the mean of the 13 validation losses.
The "true" law is the fit's posterior mean of log_c, log_k, t per validation domain, and a pilot run
at mixture r returns each domain's loss of the true law plus Gaussian noise at the fit's posterior
mean noise level. The optimum over the simplex is found by projected gradient descent.

Strategies, each from the same random initial pilots per seed (flat Dirichlet; ``--initial``, default 4),
one run a round (this package's, ``gp-qei`` and ``point-law``: ``--q`` a round):
* bayes-thompson / bayes-qlognei / bayes-info: this package (MixingLaw, fast NUTS refit each round;
  Thompson sampling, BoTorch's qLogNEI on the law's ensemble, or the information-based choice);
  thompson-exploit: each batch's first run at the posterior-mean optimum (``suggest(exploit=True)``);
* random: flat Dirichlet mixtures (RegMix's strategy);
* gp-ei: a plain GP on the total loss (BoTorch SingleTaskGP, log expected improvement, simplex constraint);
  gp-qei: the same GP choosing a batch of q a round (qLogNEI), for budgets where one a round is too slow;
* point-law: the paper's point fit of the mixing law on the total (Huber, L-BFGS, 16 starts), next run at
  the best unevaluated candidate, or the q best (a 0.05 simplex grid for 5 domains; 20,000 flat-Dirichlet
  points for 17, where a grid is out of reach).
Regret after n runs: true total loss of the best run so far (by true loss) minus the optimum.
Reported: mean regret curves (PNG), and the runs needed to come within 0.5% of the optimum.

    python benchmarks/bo.py [--simulator 5mix|regmix] [--seeds 10] [--budget 20] [--strategies ...]

Multi-fidelity choice of pilots (mixture, model size and length per unit cost, on the 5Mix nested simulator, against
BoTorch's multi-fidelity GP with knowledge gradient, single fidelity and random; issue 19) is ``bo_fidelity.py``;
``python benchmarks/bo.py fidelity [its options]`` runs it.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from bayes_mixlaw import MixingLaw, Targets, datasets
from bayes_mixlaw.baseline import fit_point_mixing_law
from bayes_mixlaw.bo import suggest
from bayes_mixlaw.laws import mixing_law
from bayes_mixlaw.optimize import MixtureBounds, simplex_grid
from bayes_mixlaw.runs import MIX_PREFIX, load_runs, validate_runs
from bayes_mixlaw.simulate import LawSimulator, feasible_dirichlet, support_caps

warnings.simplefilter("ignore")
N_INITIAL = 4


SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def simulator_law(name: str) -> MixingLaw:
    """The law a simulator is built from, with the targets its objective uses (not fitted)."""
    return MixingLaw(targets=datasets.pile_targets() if name == "5mix" else Targets())


def make_simulator(name: str = "5mix", seed: int = 0, fit_file: str | None = None, support: bool = False) -> LawSimulator:
    """The simulator's law fitted to the real data (or loaded from ``fit_file`` if it exists).
    ``support``: every strategy searches, and the optimum is taken, within the largest share of each
    training domain among the real runs (the box where the fitted law met data)."""
    data = datasets.mixinglaws_5mix_70m().select(step=30000) if name == "5mix" else load_runs(SHARED / "regmix")
    caps = support_caps(data) if support else None
    if fit_file and Path(fit_file).exists():
        return LawSimulator(MixingLaw.load(fit_file), caps=caps)
    if name == "5mix":
        law = simulator_law(name).fit(data, seed=seed, progress=False)
    else:
        law = simulator_law(name).fit(data, seed=seed, progress=False, draws=300, tune=300)
    if fit_file:
        law.save(fit_file)
    return LawSimulator(law, caps=caps)


def capped(sim) -> bool:
    return bool((sim.upper < 1).any())


def dirichlet(sim, n: int, rng) -> np.ndarray:
    """Flat-Dirichlet mixtures (RegMix's strategy), restricted to the simulator's caps if it has them."""
    return feasible_dirichlet(n, sim.upper, rng) if capped(sim) else rng.dirichlet(np.ones(len(sim.train)), size=n)


def bounds_of(sim) -> MixtureBounds | None:
    return MixtureBounds(caps=dict(zip(sim.train, sim.upper.tolist()))) if capped(sim) else None


def next_random(sim, table, rng, seed):
    return dirichlet(sim, 1, rng)[0]


def _fitted_gp(sim, table):
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import SingleTaskGP
    from gpytorch.mlls import ExactMarginalLogLikelihood

    totals = sim.observed_target(table)
    mix = table.groupby("run")[[MIX_PREFIX + d for d in sim.train]].first().loc[totals.index].to_numpy()
    X = torch.as_tensor(mix)
    Y = torch.as_tensor(-totals.to_numpy())[:, None]
    gp = SingleTaskGP(X, Y)
    fit_gpytorch_mll(ExactMarginalLogLikelihood(gp.likelihood, gp))
    return gp, X, Y


def _optimize_on_simplex(sim, acq, q: int) -> np.ndarray:
    from botorch.optim import optimize_acqf

    m = len(sim.train)
    bounds = torch.stack([torch.zeros(m, dtype=torch.float64), torch.as_tensor(sim.upper)])
    cand, _ = optimize_acqf(
        acq,
        bounds=bounds,
        q=q,
        num_restarts=4,
        raw_samples=64,
        sequential=q > 1,
        equality_constraints=[(torch.arange(m), torch.ones(m, dtype=torch.float64), 1.0)],
    )
    r = cand.detach().numpy().clip(0, 1)
    return r / r.sum(axis=1, keepdims=True)


def next_gp_ei(sim, table, rng, seed):
    """The plain GP, one run a round: analytic log expected improvement."""
    from botorch.acquisition.analytic import LogExpectedImprovement

    gp, _, Y = _fitted_gp(sim, table)
    return _optimize_on_simplex(sim, LogExpectedImprovement(gp, best_f=Y.max()), 1)[0]


def make_gp_batch(q: int):
    """The plain GP with a batch of q runs a round (as this package's strategies with ``--q``): BoTorch's
    q-log-noisy-expected-improvement, optimised greedily (sequential=True)."""

    def next_gp(sim, table, rng, seed):
        from botorch.acquisition.logei import qLogNoisyExpectedImprovement

        torch.manual_seed(seed)
        gp, X, _ = _fitted_gp(sim, table)
        return _optimize_on_simplex(sim, qLogNoisyExpectedImprovement(gp, X_baseline=X, prune_baseline=True), q)

    return next_gp


_GRID = {}


def candidate_grid(sim) -> np.ndarray:
    """The point law's candidates: a 0.05 simplex grid where one is small enough, else 20,000
    Dirichlet points (within the simulator's caps if it has them)."""
    m = len(sim.train)
    key = (m, tuple(sim.upper))
    if key not in _GRID:
        _GRID[key] = simplex_grid(m, 0.05, hi=sim.upper) if m <= 6 else dirichlet(sim, 20_000, np.random.default_rng(12345))
    return _GRID[key]


def make_point_law(q: int = 1):
    """The paper's strategy: fit the point law to the observed totals and run its predicted optimum among
    the candidates not yet run (with q > 1, the q best of them: one fit a batch, as this package refits)."""

    def next_point_law(sim, table, rng, seed):
        totals = sim.observed_target(table)
        mix = table.groupby("run")[[MIX_PREFIX + d for d in sim.train]].first().loc[totals.index].to_numpy()
        theta = fit_point_mixing_law(mix, totals.to_numpy(), starts=16, seed=seed)
        grid = candidate_grid(sim)
        pred = mixing_law(grid, theta[:1], theta[1:2], theta[None, 2:])[:, 0]
        seen = (np.abs(grid[:, None, :] - mix[None]).max(axis=-1) < 1e-9).any(axis=1)
        pred[seen] = np.inf
        return grid[np.argsort(pred)[:q]]

    return next_point_law


def make_bayes(law, acquisition: str = "thompson", q: int = 1, candidates: bool = False, exploit: bool = False):
    """This package's strategy: refit (fast NUTS) on every run so far, then suggest a batch of q
    (``candidates``: among the point law's candidate mixtures only; ``exploit``: the batch's first run at
    the posterior-mean optimum, the rest Thompson draws)."""

    def next_bayes(sim, table, rng, seed):
        law.fit(validate_runs(table, "simulated"), seed=seed, method="fast", progress=False)
        pick = suggest(
            law,
            q,
            acquisition=acquisition,
            draws=128,
            seed=seed,
            bounds=bounds_of(sim),
            candidates=candidate_grid(sim) if candidates else None,
            exploit=exploit,
        )
        return pick[[MIX_PREFIX + d for d in sim.train]].to_numpy()

    return next_bayes


def make_bayes_on_target(acquisition: str = "thompson", q: int = 1):
    """This package's law fitted to the objective alone (one 'validation domain', 'objective': the observed total
    of each run) instead of every domain: far fewer parameters when there are many domains."""
    law = MixingLaw()

    def next_bayes(sim, table, rng, seed):
        totals = sim.observed_target(table)
        mix = table.groupby("run")[[MIX_PREFIX + d for d in sim.train]].first().loc[totals.index]
        one = mix.assign(run=totals.index, valid_domain="objective", loss=totals.to_numpy()).reset_index(drop=True)
        law.fit(validate_runs(one, "simulated totals"), seed=seed, method="fast", progress=False)
        pick = suggest(law, q, acquisition=acquisition, draws=128, seed=seed, bounds=bounds_of(sim))
        return pick[[MIX_PREFIX + d for d in sim.train]].to_numpy()

    return next_bayes


def random_runs_needed(sim, threshold: float, draws: int = 4_000_000, seed: int = 0) -> dict:
    """Runs random Dirichlet sampling needs to come within ``threshold`` of the optimum, from the
    probability p that one draw does (Monte Carlo over ``draws`` mixtures, with a 95% interval):
    runs are independent, so the runs needed are geometric, median ceil(log 0.5 / log(1 - p)), mean 1 / p.
    Where random sampling reaches the target too rarely to simulate (RegMix), this is its number."""
    from scipy.stats import beta as beta_dist

    rng = np.random.default_rng(seed)
    hits, chunk = 0, 200_000
    for start in range(0, draws, chunk):
        r = dirichlet(sim, min(chunk, draws - start), rng)
        hits += int((sim.true_target(r) - sim.best_loss <= threshold).sum())
    p = hits / draws
    lo = beta_dist.ppf(0.025, hits, draws - hits + 1) if hits else 0.0
    hi = beta_dist.ppf(0.975, hits + 1, draws - hits)
    median = lambda q: np.inf if q <= 0 else float(np.ceil(np.log(0.5) / np.log1p(-q)))  # noqa: E731
    return {
        "hits": hits,
        "draws": draws,
        "p": p,
        "p_low": lo,
        "p_high": hi,
        "median runs": median(p),
        "median runs (95% interval)": (median(hi), median(lo)),
        "mean runs": np.inf if p == 0 else 1 / p,
    }


def run_strategy(sim, strategy, seed: int, budget: int, n_initial: int = N_INITIAL) -> np.ndarray:
    rng = np.random.default_rng(seed)
    initial = dirichlet(sim, n_initial, rng)
    table = sim.run(pd.DataFrame(initial, columns=[MIX_PREFIX + d for d in sim.train]).assign(name=[f"init{i}" for i in range(n_initial)]), rng)
    true = list(sim.true_target(initial))
    i = 0
    while len(true) < budget:
        r = np.atleast_2d(strategy(sim, table, rng, seed * 1000 + i))[: budget - len(true)]  # a batch of runs (rows)
        names = [f"run{i}_{k}" for k in range(len(r))]
        table = pd.concat([table, sim.run(pd.DataFrame(r, columns=[MIX_PREFIX + d for d in sim.train]).assign(name=names), rng)], ignore_index=True)
        true.extend(float(v) for v in sim.true_target(r))
        i += 1
    return np.minimum.accumulate(np.array(true)) - sim.best_loss


def runs_to_reach(regret: np.ndarray, threshold: float) -> float:
    hit = np.flatnonzero(regret <= threshold)
    return float(hit[0] + 1) if len(hit) else np.inf


def main():
    if sys.argv[1:2] == ["fidelity"]:  # the multi-fidelity benchmark, with its own options
        sys.argv = [str(Path(__file__).with_name("bo_fidelity.py")), *sys.argv[2:]]
        sys.path.insert(0, str(Path(__file__).parent))
        import bo_fidelity

        return bo_fidelity.main()
    parser = argparse.ArgumentParser(epilog="python benchmarks/bo.py fidelity --help: the multi-fidelity benchmark (bo_fidelity.py)")
    parser.add_argument("--simulator", choices=["5mix", "regmix"], default="5mix")
    parser.add_argument("--support", action="store_true", help="search (and take the optimum) within each training domain's largest share in the real runs")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=0, help="seeds run are first-seed .. first-seed + seeds - 1 (to add seeds to an earlier run)")
    parser.add_argument("--budget", type=int, default=20)
    parser.add_argument("--random-budget", type=int, default=200)
    parser.add_argument("--random-draws", type=int, default=4_000_000, help="mixtures drawn to estimate how many runs random sampling needs")
    parser.add_argument(
        "--strategies",
        default="thompson,gp-ei,point-law,random",
        help="comma-separated: thompson, thompson-exploit, thompson-candidates, qlognei, info (this package), "
        "thompson-total, qlognei-total (the law on the objective alone), gp-ei, gp-qei, point-law, random",
    )
    parser.add_argument("--initial", type=int, default=N_INITIAL, help="random (flat Dirichlet) pilots every strategy starts from")
    parser.add_argument("--q", type=int, default=1, help="runs per round for this package's strategies (one refit per batch)")
    parser.add_argument("--plot", default=None, help="default: benchmarks/bo_regret_<simulator>.png")
    parser.add_argument("--simulator-fit", default=None, help="fit file of the simulator's law: loaded if it exists, else written")
    parser.add_argument("--curves", default=None, help="save the regret curves (.npz) for --plot-from")
    parser.add_argument("--plot-from", default=None, help="comma-separated .npz files of earlier runs (split across processes): plot them together")
    args = parser.parse_args()
    plot = args.plot or f"benchmarks/bo_regret_{args.simulator}{'_support' if args.support else ''}.png"
    if args.plot_from:
        curves, meta, seeds_of = {}, {}, {}
        for path in args.plot_from.split(","):
            with np.load(path, allow_pickle=True) as saved:
                meta = saved["meta"].item()
                meta.setdefault("initial", N_INITIAL)  # files saved before --initial existed started from 4
                # files saved before --first-seed hold seeds 0 .. seeds - 1
                seeds = set(meta["seeds"] if isinstance(meta["seeds"], list) else range(meta["seeds"]))
                for k in saved.files:
                    if k != "meta":  # the same strategy and start in several files: more seeds of one curve
                        label = f"{k}, {meta['initial']} initial runs"
                        seen = seeds_of.setdefault(label, set())
                        if seeds & seen:
                            raise SystemExit(f"{path}: seeds {sorted(seeds & seen)} of '{label}' are in an earlier file too")
                        seen |= seeds
                        curves.setdefault(label, []).append(saved[k])
        plot_curves({label: np.concatenate(parts) for label, parts in curves.items()}, meta, plot)
        return
    start = time.perf_counter()
    sim = make_simulator(args.simulator, fit_file=args.simulator_fit, support=args.support)
    threshold = 0.005 * sim.best_loss
    print(
        f"{args.simulator} simulator ({len(sim.train)} training x {len(sim.valid)} validation domains, fitted in "
        f"{time.perf_counter() - start:.0f} s): optimum total loss {sim.best_loss:.4f} at "
        f"{ {d: round(float(x), 3) for d, x in zip(sim.train, sim.optimum) if x > 0.005} }; "
        f"0.5% = {threshold:.4f}; noise {sim.noise.mean():.4f} (mean over domains)",
        flush=True,
    )
    for fraction in (0.005, 0.01, 0.02):
        need = random_runs_needed(sim, fraction * sim.best_loss, draws=args.random_draws)
        low, high = need["median runs (95% interval)"]
        print(
            f"random Dirichlet, within {fraction:.1%}: {need['hits']} of {need['draws']:,} draws (p = {need['p']:.3g}); "
            f"runs needed: median {need['median runs']:.0f} [{low:.0f}, {high:.0f}], mean {need['mean runs']:.0f}",
            flush=True,
        )
    law = simulator_law(args.simulator)
    batch = f", q={args.q}" if args.q > 1 else ""
    available = {a: (f"bayes-{a} (this package{batch})", make_bayes(law, a, args.q)) for a in ("thompson", "qlognei", "info")}
    available["thompson-exploit"] = (f"bayes-thompson + posterior-mean optimum (this package{batch})", make_bayes(law, "thompson", args.q, exploit=True))
    available["thompson-candidates"] = (f"bayes-thompson among the candidates (this package{batch})", make_bayes(law, "thompson", args.q, candidates=True))
    available.update({f"{a}-total": (f"bayes-{a} on the total alone (this package{batch})", make_bayes_on_target(a, args.q)) for a in ("thompson", "qlognei")})
    available.update(
        {
            "gp-ei": ("gp-ei (SingleTaskGP)", next_gp_ei),
            "gp-qei": (f"gp-qlognei (SingleTaskGP{batch})", make_gp_batch(args.q)),
            "point-law": (f"point-law optimum (paper{batch})", make_point_law(args.q)),
            "random": ("random Dirichlet (RegMix)", next_random),
        }
    )
    strategies = dict(available[k.strip()] for k in args.strategies.split(","))
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    meta = {
        "simulator": args.simulator + (" within the data's support" if args.support else ""),
        "domains": len(sim.train),
        "seeds": list(seeds),
        "budget": args.budget,
        "threshold": threshold,
        "initial": args.initial,
    }
    curves, rows = {}, []
    for name, strategy in strategies.items():
        budget = args.random_budget if name.startswith("random") else args.budget
        start = time.perf_counter()
        regrets = np.array([run_strategy(sim, strategy, seed, budget, args.initial) for seed in seeds])
        seconds = (time.perf_counter() - start) / args.seeds
        curves[name] = regrets
        reach = np.array([runs_to_reach(r, threshold) for r in regrets])
        rows.append(
            {
                "strategy": name,
                "runs to within 0.5% (median)": np.median(reach),
                "reached (seeds)": f"{np.isfinite(reach).sum()}/{args.seeds}",
                f"regret after {args.budget} runs (mean)": regrets[:, args.budget - 1].mean(),
                "seconds per seed": seconds,
            }
        )
        print(pd.DataFrame(rows[-1:]).to_markdown(index=False, floatfmt=".4f"), flush=True)
        if args.curves:
            np.savez(args.curves, meta=np.array(meta, dtype=object), **curves)
    print(pd.DataFrame(rows).to_markdown(index=False, floatfmt=".4f"))
    plot_curves(curves, meta, plot)


def plot_curves(curves: dict, meta: dict, plot: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    # random sampling's long curve is cut at the other strategies' budget
    horizon = max([60, meta["budget"]] + [r.shape[1] for k, r in curves.items() if not k.startswith("random")])
    for name, regrets in curves.items():
        n = np.arange(1, regrets.shape[1] + 1)[:horizon]
        mean = regrets.mean(axis=0)[: len(n)]
        ax.plot(n, mean, label=f"{name}, {len(regrets)} seeds")
        lo, hi = np.quantile(regrets, [0.25, 0.75], axis=0)
        ax.fill_between(n, lo[: len(n)], hi[: len(n)], alpha=0.15)
    ax.axhline(meta["threshold"], color="k", ls=":", label="0.5% of the optimum")
    ax.axhline(2 * meta["threshold"], color="grey", ls=":", label="1% of the optimum")
    ax.set_yscale("log")
    ax.set_xlabel("pilot runs (including the random initial runs)")
    ax.set_ylabel("simple regret of the total loss")
    ax.set_title(f"{meta['simulator']} simulator ({meta['domains']} training domains): mean, 25-75% band")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(plot, dpi=120)
    print(f"plot: {plot}")


if __name__ == "__main__":
    main()
