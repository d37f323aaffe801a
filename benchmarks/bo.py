"""Choosing pilot runs by Bayesian optimisation: simple regret against the number of pilot runs.

Simulator built from real data: the Bayesian mixing law fitted to Data Mixing Laws' 5Mix pilots
(Pythia-70M, 30k steps; 21 mixtures x 22 Pile domains) gives the "true" law (posterior means of
log_c, log_k, t per domain) and the observation noise (posterior mean of each domain's noise).
A pilot run at mixture r returns the 22 domain losses of the true law plus that noise; the objective
is the Pile-weighted total loss. Its optimum over the simplex is found by projected gradient descent.

Strategies, each from the same 4 random initial pilots (flat Dirichlet) per seed, one run a round:
* bayes-thompson: this package (MixingLaw, fast NUTS refit each round; Thompson sampling on the posterior);
* random: flat Dirichlet mixtures (RegMix's strategy);
* gp-ei: a plain GP on the total loss (BoTorch SingleTaskGP, log expected improvement, simplex constraint);
* point-law grid: the paper's point fit of the mixing law on the total (Huber, L-BFGS, 16 starts), next run at
  the best unevaluated point of a 0.05 simplex grid.
Regret after n runs: true total loss of the best run so far (by true loss) minus the optimum.
Reported: mean regret curves (PNG), and the runs needed to come within 0.5% of the optimum.

    python benchmarks/bo.py [--seeds 10] [--budget 20]
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from bayes_mixlaw import MixingLaw, datasets
from bayes_mixlaw.baseline import fit_point_mixing_law
from bayes_mixlaw.bo import suggest
from bayes_mixlaw.laws import mixing_law
from bayes_mixlaw.optimize import simplex_grid
from bayes_mixlaw.runs import MIX_PREFIX, validate_runs
from bayes_mixlaw.simulate import LawSimulator

warnings.simplefilter("ignore")
N_INITIAL = 4


def make_simulator(seed: int = 0) -> LawSimulator:
    runs = datasets.mixinglaws_5mix_70m().select(step=30000)
    return LawSimulator(MixingLaw(targets=datasets.pile_targets()).fit(runs, seed=seed, progress=False))


def next_random(sim, table, rng, seed):
    return rng.dirichlet(np.ones(len(sim.train)))


def next_gp_ei(sim, table, rng, seed):
    from botorch.acquisition.analytic import LogExpectedImprovement
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import SingleTaskGP
    from botorch.optim import optimize_acqf
    from gpytorch.mlls import ExactMarginalLogLikelihood

    totals = sim.observed_target(table)
    mix = table.groupby("run")[[MIX_PREFIX + d for d in sim.train]].first().loc[totals.index].to_numpy()
    X = torch.as_tensor(mix)
    Y = torch.as_tensor(-totals.to_numpy())[:, None]
    gp = SingleTaskGP(X, Y)
    fit_gpytorch_mll(ExactMarginalLogLikelihood(gp.likelihood, gp))
    acq = LogExpectedImprovement(gp, best_f=Y.max())
    m = len(sim.train)
    bounds = torch.stack([torch.zeros(m), torch.ones(m)]).double()
    cand, _ = optimize_acqf(acq, bounds=bounds, q=1, num_restarts=4, raw_samples=64,
                            equality_constraints=[(torch.arange(m), torch.ones(m, dtype=torch.float64), 1.0)])
    r = cand[0].detach().numpy().clip(0, 1)
    return r / r.sum()


_GRID = {}


def next_point_law(sim, table, rng, seed):
    totals = sim.observed_target(table)
    mix = table.groupby("run")[[MIX_PREFIX + d for d in sim.train]].first().loc[totals.index].to_numpy()
    theta = fit_point_mixing_law(mix, totals.to_numpy(), starts=16, seed=seed)
    grid = _GRID.setdefault(len(sim.train), simplex_grid(len(sim.train), 0.05))
    pred = mixing_law(grid, theta[:1], theta[1:2], theta[None, 2:])[:, 0]
    seen = (np.abs(grid[:, None, :] - mix[None]).max(axis=-1) < 1e-9).any(axis=1)
    pred[seen] = np.inf
    return grid[np.argmin(pred)]


def make_bayes(law):
    def next_bayes(sim, table, rng, seed):
        law.fit(validate_runs(table, "simulated"), seed=seed, method="fast", progress=False)
        pick = suggest(law, 1, acquisition="thompson", draws=128, seed=seed)
        return pick[[MIX_PREFIX + d for d in sim.train]].to_numpy()[0]
    return next_bayes


def run_strategy(sim, strategy, seed: int, budget: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    initial = rng.dirichlet(np.ones(len(sim.train)), size=N_INITIAL)
    table = sim.run(pd.DataFrame(initial, columns=[MIX_PREFIX + d for d in sim.train]).assign(name=[f"init{i}" for i in range(N_INITIAL)]), rng)
    true = list(sim.true_target(initial))
    for i in range(budget - N_INITIAL):
        r = strategy(sim, table, rng, seed * 1000 + i)
        table = pd.concat([table, sim.run(pd.DataFrame(r[None], columns=[MIX_PREFIX + d for d in sim.train]).assign(name=f"run{i}"), rng)], ignore_index=True)
        true.append(float(sim.true_target(r[None])[0]))
    return np.minimum.accumulate(np.array(true)) - sim.best_loss


def runs_to_reach(regret: np.ndarray, threshold: float) -> float:
    hit = np.flatnonzero(regret <= threshold)
    return float(hit[0] + 1) if len(hit) else np.inf


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--budget", type=int, default=20)
    parser.add_argument("--random-budget", type=int, default=200)
    parser.add_argument("--plot", default="benchmarks/bo_regret_5mix.png")
    args = parser.parse_args()
    sim = make_simulator()
    threshold = 0.005 * sim.best_loss
    print(f"5Mix simulator: optimum total loss {sim.best_loss:.4f} at {dict(zip(sim.train, sim.optimum.round(3)))}; "
          f"0.5% = {threshold:.4f}; noise {sim.noise.mean():.4f} (mean over domains)")
    law = MixingLaw(targets=datasets.pile_targets())
    strategies = {"bayes-thompson (this package)": make_bayes(law), "gp-ei (SingleTaskGP)": next_gp_ei,
                  "point-law grid (paper)": next_point_law, "random Dirichlet (RegMix)": next_random}
    curves, rows = {}, []
    for name, strategy in strategies.items():
        budget = args.random_budget if name.startswith("random") else args.budget
        start = time.perf_counter()
        regrets = np.array([run_strategy(sim, strategy, seed, budget) for seed in range(args.seeds)])
        seconds = (time.perf_counter() - start) / args.seeds
        curves[name] = regrets
        reach = np.array([runs_to_reach(r, threshold) for r in regrets])
        rows.append({"strategy": name, "runs to within 0.5% (median)": np.median(reach), "reached (seeds)": f"{np.isfinite(reach).sum()}/{args.seeds}",
                     f"regret after {args.budget} runs (mean)": regrets[:, args.budget - 1].mean(), "seconds per seed": seconds})
    print(pd.DataFrame(rows).to_markdown(index=False, floatfmt=".4f"))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, regrets in curves.items():
        n = np.arange(1, regrets.shape[1] + 1)[: max(args.budget, 60)]
        mean = regrets.mean(axis=0)[: len(n)]
        ax.plot(n, mean, label=name)
        lo, hi = np.quantile(regrets, [0.25, 0.75], axis=0)
        ax.fill_between(n, lo[: len(n)], hi[: len(n)], alpha=0.15)
    ax.axhline(threshold, color="k", ls=":", label="0.5% of the optimum")
    ax.set_yscale("log")
    ax.set_xlabel("pilot runs (4 random initial runs)")
    ax.set_ylabel("simple regret of the total loss")
    ax.set_title(f"5Mix simulator, {args.seeds} seeds (mean, 25-75% band)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.plot, dpi=120)
    print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
