"""Multi-fidelity choice of pilots (issue 19, item 4): cost to come within 0.5% of the target-scale optimum.

Simulator from real data: the package's :class:`~bayes_mixlaw.nested.NestedLaw` fitted to Data Mixing Laws' 5Mix
pilots (5 training domains; 70M, 160M, 305M, 410M; checkpoints 10k-30k after the early transient; 22 Pile
validation domains). The truth at any (mixture, size, steps) is the law at the fit's posterior means of its
parameters (mixing law, scaling terms moved by the mixture, exponents); a simulated pilot run at (mixture, size,
steps S) returns each domain's loss at its checkpoints 10k, 15k, ... up to S, with each run's level and log-step
slope drawn from the fit's run-effect scales and independent noise at the fit's noise level (log scale, per
domain). The fitted truth is cached (``--truth``, default ``/tmp/bo_fidelity_truth.json``) so seeds and reruns
reuse it. Target: the Pile-weighted total at 1B (805,736,448 non-embedding params) and 100k steps; its optimum
over the simplex by a dense Dirichlet search refined by projected gradient descent.

Pilots: sizes 70M, 160M, 305M, 410M x lengths 10k, 20k, 30k steps; cost = params x steps (in units of a
410M x 30k run: 70M x 10k costs 0.021). Every strategy starts from the same initial design per seed (one random
mixture at each size, 30k steps; ``--initial``), then adds a batch a round. Strategies (``--strategies``):

* ``info``: this package: the nested law refitted each round (NUTS until converged; ``--refit fast``: a short NUTS
  run, recorded as ``info-fast``) and ``bayes_mixlaw.fidelity.choose_pilots``
  with the ``info`` acquisition choosing mixture, size and steps by value per unit cost;
* ``kg``: the same, with the ``kg`` acquisition: each pilot valued by the expected improvement of the decision (the
  posterior-mean optimum's true-to-the-draws loss at the target) per unit cost, a knowledge gradient on the draws;
* ``single``: this package, single fidelity: the same refits, Thompson suggestions at the target scale, run at
  410M x 30k (``choose_pilots`` with ``thompson``);
* ``mfkg``: BoTorch's multi-fidelity GP with knowledge gradient: ``SingleTaskMultiFidelityGP`` on
  (mixture, log size, log steps) of the observed totals, ``qMultiFidelityKnowledgeGradient`` with an affine
  cost model (``AffineFidelityCostModel``) and ``InverseCostWeightedUtility``, the target fidelity 1B / 100k
  mapped into the fidelity columns' range as BoTorch's multi-fidelity tutorial maps it to 1 (``project`` to the
  target fidelity); the fidelities are the pilot grid (``optimize_acqf_mixed``);
* ``random``: a flat-Dirichlet mixture at each pilot size, 30k steps.

Each strategy's recommendation after each round is its own best predicted target-scale mixture (the nested law's
posterior-mean optimum at 1B / 100k; the GP's maximiser of its posterior mean at the target fidelity; for random
sampling, the run with the best observed total at 410M / 30k). Regret = true target-scale total of the
recommendation minus the optimum's; reported: cost spent until the recommendation comes (and stays, at the
round it first does) within 0.5% of the optimum, and the regret-vs-cost curves (PNG).

    python benchmarks/bo_fidelity.py [--seeds 10] [--budget 4] [--strategies info,mfkg,single,random]
"""

from __future__ import annotations

import argparse
import json
import time
import traceback
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from bayes_mixlaw import datasets
from bayes_mixlaw.laws import mixing_law, mixture_log_amplitudes, relative_scaling
from bayes_mixlaw.optimize import minimize_batch, random_feasible
from bayes_mixlaw.runs import MIX_PREFIX, RunsTable, load_runs

warnings.simplefilter("ignore")

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SIZES = [18_915_328, 85_056_000, 201_541_632, 302_311_424]  # 70M, 160M, 305M, 410M (non-embedding)
STEPS = [10_000, 20_000, 30_000]
CHECKPOINT = 5_000  # checkpoints every 5k steps from 10k to the run's length
TARGET = {"params": 805_736_448, "step": 100_000}  # 1B at 100k steps
REGRET_COSTS = (1.5, 2.0, 3.0, 5.0)  # costs (410M x 30k runs, the initial 1.37 included) at which the table reads each curve
TRUTH_NAMES = ("log_c", "log_k", "t", "log_a", "log_b", "alpha", "beta", "gamma", "reducible_t", "split_t", "noise_sigma", "run_sigma", "run_slope_sigma")


def size_label(params: float) -> str:
    return {18_915_328: "70M", 85_056_000: "160M", 201_541_632: "305M", 302_311_424: "410M", 805_736_448: "1B"}.get(int(params), f"{params / 1e6:.0f}M")


def pilot_cost(params: float, steps: float) -> float:
    """params x steps (x tokens per step, a constant), in units of the largest pilot (410M x 30k)."""
    return params * steps / (SIZES[-1] * STEPS[-1])


# ----------------------------------------------------------------------------------------------
# the truth: the nested law at its posterior means


def fit_truth(path: Path, seed: int = 0) -> dict:
    """Fit the nested law to the 5Mix pilots (steps <= 30k) and keep its posterior means (a JSON file)."""
    from bayes_mixlaw import NestedLaw
    from bayes_mixlaw.config import NestedLawConfig, SamplerConfig

    five = load_runs(SHARED / "mixinglaws" / "5Mix")
    data = five.data[five.data["step"] <= 30_000].reset_index(drop=True)
    config = NestedLawConfig(learn_discrepancy=False, sampler=SamplerConfig(chains=2, tune=1000, draws=1000))
    start = time.perf_counter()
    law = NestedLaw(targets=datasets.pile_targets(), config=config).fit(RunsTable(data, five.source), seed=seed, progress=False)
    seconds = time.perf_counter() - start
    post = law.idata["posterior"]
    truth = {k: post[k].mean(("chain", "draw")).values.tolist() for k in TRUTH_NAMES}
    truth.update(
        train=law.train_domains,
        valid=law.valid_domains,
        weights=law._target_weights("total").numpy().tolist(),
        center=law.idata["constant_data"]["mixture_center"].values.tolist(),
        reference=json.loads(law.idata.attrs["reference_scale"]),
        pilots=law.pilot_mixtures.tolist(),
        fit={"seconds": seconds, "summary": law.summary_line()},
    )
    path.write_text(json.dumps(truth))
    return truth


class NestedTruth:
    """The simulator: the nested law at the 5Mix fit's posterior means, and pilot runs drawn from it."""

    def __init__(self, truth: dict):
        self.train, self.valid = truth["train"], truth["valid"]
        a = {k: np.asarray(truth[k], dtype=float) for k in TRUTH_NAMES + ("weights", "center")}
        self.p = a
        self.weights, self.center = a["weights"], a["center"]
        self.reference = truth["reference"]
        self.noise, self.run_sigma, self.run_slope_sigma = a["noise_sigma"], a["run_sigma"], a["run_slope_sigma"]
        self.pilot_mixtures = np.asarray(truth["pilots"])
        self.fit_info = truth["fit"]
        self.optimum, self.best_loss = self._optimum()

    def domain_losses(self, r: np.ndarray, params: float, steps: float, xp=np) -> np.ndarray:
        """Noise-free loss of each validation domain, (n, V), at mixtures ``r`` (n, M)."""
        p = {k: (torch.as_tensor(v) if xp is torch else v) for k, v in self.p.items()}
        n_rel = params / self.reference["params"]
        s_rel = steps / self.reference["step"]
        log_a, log_b = mixture_log_amplitudes(r - p["center"], p["log_a"], p["log_b"], p["reducible_t"], p["split_t"], True)
        ratio = relative_scaling(n_rel, s_rel, log_a, log_b, p["alpha"], p["beta"], p["gamma"])
        return mixing_law(r, p["log_c"], p["log_k"], p["t"]) * ratio

    def total(self, r: np.ndarray, params: float = TARGET["params"], steps: float = TARGET["step"]) -> np.ndarray:
        """The Pile-weighted total (noise-free) at each mixture (rows of ``r``)."""
        return self.domain_losses(np.atleast_2d(r), params, steps) @ self.weights

    def _optimum(self, dense: int = 200_000, refine: int = 64, seed: int = 0):
        """Dense flat-Dirichlet search at the target scale, the best ``refine`` points refined by projected
        gradient descent over the simplex."""
        rng = np.random.default_rng(seed)
        cloud = np.concatenate([rng.dirichlet(np.ones(len(self.train)), size=dense), np.eye(len(self.train))])
        values = np.concatenate([self.total(chunk) for chunk in np.array_split(cloud, 20)])
        best = cloud[np.argsort(values)[:refine]]
        f = lambda r: self.domain_losses(r[0], TARGET["params"], TARGET["step"], xp=torch) @ torch.as_tensor(self.weights)  # noqa: E731
        lo, hi = np.zeros(len(self.train)), np.ones(len(self.train))
        ends, vals = [], []
        for start in best:
            end, val = minimize_batch(lambda r: f(r)[None], torch.as_tensor(start)[None, None], lo, hi, steps=400, lr=0.01)
            ends.append(end[0].numpy())
            vals.append(float(val[0]))
        k = int(np.argmin(vals))
        r = np.clip(ends[k], 0, 1)
        r = r / r.sum()
        return r, float(self.total(r)[0])

    def run(self, mixtures: np.ndarray, params: list[float], steps: list[float], names: list[str], rng: np.random.Generator) -> pd.DataFrame:
        """Runs-table rows of pilot runs: each (mixture, size, length) at its checkpoints 10k, 15k, ... up to its length,
        every validation domain, log loss = law + the run's level + its slope x log(step / 10k) + noise."""
        rows = []
        for r, n, s, name in zip(np.atleast_2d(mixtures), params, steps, names):
            checkpoints = np.arange(STEPS[0], s + 1, CHECKPOINT, dtype=float)
            level = self.run_sigma * rng.standard_normal(len(self.valid))
            slope = self.run_slope_sigma * rng.standard_normal(len(self.valid))
            for step in checkpoints:
                law = self.domain_losses(r[None], n, step)[0]
                noise = self.noise * rng.standard_normal(len(self.valid))
                loss = law * np.exp(level + slope * np.log(step / STEPS[0]) + noise)
                mix = {MIX_PREFIX + d: float(x) for d, x in zip(self.train, r)}
                rows += [{"run": name, "params": int(n), "step": int(step), "valid_domain": v, "loss": float(x), **mix} for v, x in zip(self.valid, loss)]
        return pd.DataFrame(rows)

    def observed_total(self, table: pd.DataFrame) -> pd.DataFrame:
        """Each run's last checkpoint: its mixture, size, length and observed total."""
        last = table[table["step"] == table.groupby("run")["step"].transform("max")]
        w = pd.Series(self.weights, index=self.valid)
        totals = last.pivot(index="run", columns="valid_domain", values="loss")[self.valid].mul(w).sum(axis=1)
        info = last.groupby("run")[[*(MIX_PREFIX + d for d in self.train), "params", "step"]].first()
        return info.assign(total=totals)


def load_truth(path: str | Path, seed: int = 0) -> NestedTruth:
    path = Path(path)
    truth = json.loads(path.read_text()) if path.exists() else fit_truth(path, seed)
    return NestedTruth(truth)


def pile_groups(sim: NestedTruth) -> dict[str, tuple[list[str], float]]:
    """The paper's five groups of Pile validation domains: {group: (its domains, their summed weight)}."""
    groups = datasets.pile_targets().groups
    weight = dict(zip(sim.valid, sim.weights))
    return {g: (members, float(sum(weight[d] for d in members))) for g, members in groups.items()}


def affordable_scales(budget_left: float) -> list[tuple[int, int]]:
    """The pilot grid's (size, steps) pairs whose cost fits in ``budget_left``."""
    return [(p, s) for p in SIZES for s in STEPS if pilot_cost(p, s) <= budget_left * (1 + 1e-9)]


def nearest(grid: list[int], value: float) -> int:
    """The grid value closest to ``value`` on the log scale."""
    return min(grid, key=lambda x: abs(np.log(x / value)))


def random_mixtures(n: int, m: int, rng: np.random.Generator) -> np.ndarray:
    return rng.dirichlet(np.ones(m), size=n)


# ----------------------------------------------------------------------------------------------
# strategies: each returns (mixtures (n, M), sizes, steps) for the next batch and its recommendation


def initial_design(sim: NestedTruth, seed: int, n: int) -> tuple[np.ndarray, list[int], list[int]]:
    """The same start for every strategy: ``n`` flat-Dirichlet mixtures at 30k steps, alternating the two
    smallest sizes (the nested law needs two sizes and two lengths; 30k runs have checkpoints 10k-30k)."""
    rng = np.random.default_rng(10_000 + seed)
    return random_mixtures(n, len(sim.train), rng), [SIZES[i % 2] for i in range(n)], [STEPS[-1]] * n


class PackageStrategy:
    """This package: the nested law refitted each round (``method``: NUTS until converged, or ``fast``), then ``choose_pilots``."""

    def __init__(
        self,
        sim: NestedTruth,
        acquisition: str,
        q: int,
        single: bool = False,
        draws: int = 128,
        candidates: int = 200,
        groups: bool = True,
        method: str = "nuts",
        batch: str = "joint",
    ):
        from bayes_mixlaw import NestedLaw, Targets
        from bayes_mixlaw.config import NestedLawConfig

        self.sim, self.acquisition, self.q, self.single, self.draws, self.candidates = sim, acquisition, q, single, draws, candidates
        self.method, self.batch = method, batch
        self.groups = pile_groups(sim) if groups else None
        targets = Targets(weights={g: w for g, (_, w) in self.groups.items()}) if groups else datasets.pile_targets()
        self.law = NestedLaw(targets=targets, config=NestedLawConfig(learn_discrepancy=False))
        self.fit_seconds, self.choose_seconds = [], []
        self.diagnostics = []  # each refit's sampler diagnostics (``Diagnostics.columns()`` and its draws a chain)

    def _table(self, table: pd.DataFrame) -> RunsTable:
        """The runs as the law sees them: every validation domain, or (``groups``) the Pile's five groups, each the
        Pile-weighted mean of its domains (the total is the groups' weighted sum, as it is the domains')."""
        if self.groups is None:
            return RunsTable(table, "simulated pilots")
        parts = []
        for group, (members, weight) in self.groups.items():
            rows = table[table["valid_domain"].isin(members)]
            w = rows["valid_domain"].map(dict(zip(self.sim.valid, self.sim.weights))) / weight
            keys = ["run", "params", "step", *(MIX_PREFIX + d for d in self.sim.train)]
            parts.append(rows.assign(loss=rows["loss"] * w).groupby(keys, as_index=False)["loss"].sum().assign(valid_domain=group))
        return RunsTable(pd.concat(parts, ignore_index=True), "simulated pilots (Pile groups)")

    def update(self, table: pd.DataFrame, seed: int) -> np.ndarray:
        """Refit on every run so far; return the recommendation (the posterior-mean optimum at the target)."""
        from bayes_mixlaw.optimize import minimize_posterior_mean

        start = time.perf_counter()
        self.law.fit(self._table(table), seed=seed, method=self.method, progress=False)
        self.fit_seconds.append(time.perf_counter() - start)
        diagnostics = self.law.diagnostics
        self.diagnostics.append(diagnostics.columns() | {"draws": diagnostics.draws, "restarted": diagnostics.restarted})
        f = self.law.target_function("total", draws=256, seed=seed, **TARGET)
        m = len(self.sim.train)
        starts = torch.as_tensor(np.vstack([self.law.pilot_mixtures.mean(axis=0), random_feasible(7, np.zeros(m), np.ones(m), np.random.default_rng(seed))]))
        best, _ = minimize_posterior_mean(f, f.n_draws, starts, np.zeros(m), np.ones(m), steps=300)
        return best.numpy()

    def next_batch(self, seed: int, budget_left: float):
        from bayes_mixlaw.fidelity import choose_pilots

        start = time.perf_counter()
        sizes, steps = ([SIZES[-1]], [STEPS[-1]]) if self.single else (SIZES, STEPS)
        picks = choose_pilots(
            self.law,
            self.q,
            sizes=sizes,
            steps=steps,
            cost=pilot_cost,
            acquisition=self.acquisition,
            target_scale=TARGET,
            seed=seed,
            draws=self.draws,
            candidates=self.candidates,
            max_cost=budget_left,
            batch=self.batch,
        )
        self.choose_seconds.append(time.perf_counter() - start)
        mixtures = np.array([[p["mixture"][d] for d in self.sim.train] for p in picks])
        return mixtures, [p["params"] for p in picks], [p["steps"] for p in picks]


class MultiFidelityKG:
    """BoTorch's multi-fidelity GP with knowledge gradient (the MF tutorial's recipe) on the observed totals.

    Inputs: the mixture (5 columns, on the simplex), then size and steps as fidelities in [0, 1]: log(x / smallest pilot)
    / log(target / smallest pilot), so the target 1B / 100k is 1 in both, as the tutorial's target fidelity. Every
    checkpoint of a run is a training point (its steps its fidelity). The GP: ``SingleTaskMultiFidelityGP`` with size as a
    data fidelity and steps as the iteration fidelity (``LinearTruncatedFidelityKernel``), outcome standardised; the
    acquisition: ``qMultiFidelityKnowledgeGradient`` with ``InverseCostWeightedUtility`` of the true cost (params x steps
    + a fixed cost of ``fixed_cost``) and ``project_to_target_fidelity``, optimised over the mixtures with the pilot grid's
    12 fidelities as fixed features (``optimize_acqf_mixed``), q at a time."""

    def __init__(self, sim: NestedTruth, q: int, fantasies: int = 32, fixed_cost: float = 0.0):
        self.sim, self.q, self.fantasies, self.fixed_cost = sim, q, fantasies, fixed_cost
        self.m = len(sim.train)
        self.fit_seconds, self.choose_seconds = [], []

    @staticmethod
    def fidelity(value, smallest, target):
        return np.log(np.asarray(value, dtype=float) / smallest) / np.log(target / smallest)

    @staticmethod
    def unfidelity(f, smallest, target):
        return smallest * np.exp(np.asarray(f) * np.log(target / smallest))

    def _columns(self, params, steps):
        return self.fidelity(params, SIZES[0], TARGET["params"]), self.fidelity(steps, STEPS[0], TARGET["step"])

    def update(self, table: pd.DataFrame, seed: int) -> np.ndarray:
        from botorch.acquisition import PosteriorMean
        from botorch.acquisition.fixed_feature import FixedFeatureAcquisitionFunction
        from botorch.fit import fit_gpytorch_mll
        from botorch.models import SingleTaskMultiFidelityGP
        from botorch.models.transforms.outcome import Standardize
        from gpytorch.mlls import ExactMarginalLogLikelihood

        torch.manual_seed(seed)
        start = time.perf_counter()
        w = pd.Series(self.sim.weights, index=self.sim.valid)
        wide = table.pivot_table(index=["run", "step"], columns="valid_domain", values="loss")[self.sim.valid]
        totals = wide.mul(w).sum(axis=1).rename("total").reset_index()
        info = table.groupby("run")[[*(MIX_PREFIX + d for d in self.sim.train), "params"]].first()
        rows = totals.join(info, on="run")
        size_f, step_f = self._columns(rows["params"].to_numpy(), rows["step"].to_numpy())
        X = torch.as_tensor(np.column_stack([rows[[MIX_PREFIX + d for d in self.sim.train]].to_numpy(), size_f, step_f]))
        Y = torch.as_tensor(-rows["total"].to_numpy())[:, None]
        self.model = SingleTaskMultiFidelityGP(X, Y, outcome_transform=Standardize(m=1), data_fidelities=[self.m], iteration_fidelity=self.m + 1)
        fit_gpytorch_mll(ExactMarginalLogLikelihood(self.model.likelihood, self.model))
        self.fit_seconds.append(time.perf_counter() - start)
        target = FixedFeatureAcquisitionFunction(PosteriorMean(self.model), d=self.m + 2, columns=[self.m, self.m + 1], values=[1.0, 1.0])
        best, self.current_value = self._optimize(target, q=1, restarts=8, raw=256)
        return best[0].numpy()

    def _optimize(self, acqf, q: int, restarts: int, raw: int, fixed: list | None = None):
        from botorch.optim import optimize_acqf, optimize_acqf_mixed

        m = self.m
        simplex = [(torch.arange(m), torch.ones(m, dtype=torch.float64), 1.0)]
        if fixed is None:
            bounds = torch.stack([torch.zeros(m, dtype=torch.float64), torch.ones(m, dtype=torch.float64)])
            cand, value = optimize_acqf(
                acqf, bounds=bounds, q=q, num_restarts=restarts, raw_samples=raw, equality_constraints=simplex, options={"maxiter": 200}
            )
        else:
            bounds = torch.stack([torch.zeros(m + 2, dtype=torch.float64), torch.ones(m + 2, dtype=torch.float64)])
            cand, value = optimize_acqf_mixed(
                acqf,
                bounds=bounds,
                q=q,
                num_restarts=restarts,
                raw_samples=raw,
                fixed_features_list=fixed,
                equality_constraints=simplex,
                options={"maxiter": 25},
            )
        r = cand.detach()[..., :m].clamp(0, 1)
        r = r / r.sum(dim=-1, keepdim=True)
        return (r, value.detach()) if fixed is None else (torch.cat([r, cand.detach()[..., m:]], dim=-1), value.detach())

    def next_batch(self, seed: int, budget_left: float):
        from botorch.acquisition import qMultiFidelityKnowledgeGradient
        from botorch.acquisition.cost_aware import InverseCostWeightedUtility
        from botorch.acquisition.utils import project_to_target_fidelity
        from botorch.models.deterministic import GenericDeterministicModel

        torch.manual_seed(seed)
        start = time.perf_counter()
        m = self.m

        def cost(X):
            params = torch.as_tensor(self.unfidelity(X[..., m].detach().numpy(), SIZES[0], TARGET["params"]))
            steps = torch.as_tensor(self.unfidelity(X[..., m + 1].detach().numpy(), STEPS[0], TARGET["step"]))
            return (self.fixed_cost + params * steps / (SIZES[-1] * STEPS[-1]))[..., None]

        utility = InverseCostWeightedUtility(cost_model=GenericDeterministicModel(cost, num_outputs=1))
        acqf = qMultiFidelityKnowledgeGradient(
            model=self.model,
            num_fantasies=self.fantasies,
            current_value=self.current_value,
            cost_aware_utility=utility,
            project=lambda X: project_to_target_fidelity(X=X, target_fidelities={m: 1.0, m + 1: 1.0}, d=m + 2),
        )
        options = affordable_scales(budget_left)
        fixed = [dict(zip((m, m + 1), map(float, self._columns(p, s)))) for p, s in options]
        cand, _ = self._optimize(acqf, q=self.q, restarts=1, raw=16, fixed=fixed)
        self.choose_seconds.append(time.perf_counter() - start)
        cand = cand.numpy()
        params = [nearest(SIZES, float(self.unfidelity(f, SIZES[0], TARGET["params"]))) for f in cand[:, m]]  # back onto the grid (rounding)
        steps = [nearest(STEPS, float(self.unfidelity(f, STEPS[0], TARGET["step"]))) for f in cand[:, m + 1]]
        return cand[:, :m], params, steps


class DiscreteMultiFidelityKG(MultiFidelityKG):
    """The same multi-fidelity GP, with the knowledge gradient computed on a discrete set (the default ``mfkg``).

    BoTorch's one-shot ``qMultiFidelityKnowledgeGradient`` optimises q candidates and one inner maximiser per fantasy
    jointly over the simplex at each of the 12 pilot fidelities; on 2 cores it did not finish a seed at any setting
    tried (``mfkg-oneshot`` keeps it). This is the discretised knowledge gradient of Frazier, Powell & Dayanik (2009)
    (as in Wu & Frazier's discretised multi-fidelity KG): candidates are ``pool`` flat-Dirichlet mixtures and the
    mixtures run so far, each at every affordable pilot fidelity; the inner maximisation is over ``inner`` mixtures
    (plus the candidates' and the current recommendation) at the target fidelity (1, 1). From the GP's joint posterior
    (mean mu, covariance Sigma with observation noise on the diagonal) over A (the inner set) and the candidates C,
    observing candidate c moves the posterior mean at A to mu_A + Sigma[A, c] / sqrt(Sigma[c, c]) Z, Z ~ N(0, 1), so

        KG(c) = E_Z[max_a (mu_a + s_ac Z)] - max_a mu_a,   s_ac = Sigma[a, c] / sqrt(Sigma[c, c]),

    with Z at ``fantasies`` midpoint normal quantiles (common to every candidate). The batch is chosen greedily by
    KG(c) / cost(c) (cost = params x steps, 410M x 30k = 1, plus ``fixed_cost``), each pick conditioned into Sigma as
    an observation at its posterior mean (the kriging believer: mu unchanged, Sigma <- Sigma - Sigma[:, c] Sigma[c, :]
    / Sigma[c, c]), within the budget left."""

    def __init__(self, sim: NestedTruth, q: int, fantasies: int = 64, pool: int = 128, inner: int = 512, fixed_cost: float = 0.0):
        super().__init__(sim, q, fantasies=fantasies, fixed_cost=fixed_cost)
        self.pool, self.inner = pool, inner
        self.recommendation = None

    def update(self, table: pd.DataFrame, seed: int) -> np.ndarray:
        self.observed = table.groupby("run")[[MIX_PREFIX + d for d in self.sim.train]].first().to_numpy(dtype=float)
        self.recommendation = super().update(table, seed)
        return self.recommendation

    def next_batch(self, seed: int, budget_left: float):
        from scipy.stats import norm

        start = time.perf_counter()
        rng = np.random.default_rng(seed)
        m = self.m
        pool = np.vstack([random_mixtures(self.pool, m, rng), self.observed])
        inner = np.vstack([random_mixtures(self.inner, m, rng), pool, self.recommendation[None]])
        options = affordable_scales(budget_left)
        if not options:
            return np.zeros((0, m)), [], []
        fid = np.array([self._columns(p, s) for p, s in options])  # (F, 2)
        cand = np.column_stack([np.repeat(pool, len(options), axis=0), np.tile(fid, (len(pool), 1))])  # (C, m + 2)
        cand_cost = np.tile([self.fixed_cost + pilot_cost(p, s) for p, s in options], len(pool))
        A = np.column_stack([inner, np.ones((len(inner), 2))])
        with torch.no_grad():
            post = self.model.posterior(torch.as_tensor(np.vstack([A, cand])), observation_noise=True)
            mean, cov = post.mean[:, 0].detach().double(), post.mvn.covariance_matrix.detach().double()
        M = len(A)
        mu = mean[:M]
        best_now = mu.max()
        z = torch.as_tensor(norm.ppf((np.arange(self.fantasies) + 0.5) / self.fantasies))
        picks, left = [], budget_left
        for _ in range(self.q):
            var = cov.diagonal()[M:].clamp_min(1e-12)
            s = cov[:M, M:] / var.sqrt()  # (M, C)
            kg = (
                torch.cat([(mu[None, :, None] + s[None, :, k : k + 256] * z[:, None, None]).amax(dim=1).mean(dim=0) for k in range(0, s.shape[1], 256)])
                - best_now
            )
            value = kg.numpy() / cand_cost
            value[cand_cost > left * (1 + 1e-9)] = -np.inf
            value[picks] = -np.inf
            j = int(np.argmax(value))
            if not np.isfinite(value[j]):
                break
            picks.append(j)
            left -= cand_cost[j]
            col = cov[:, M + j].clone()
            cov = cov - torch.outer(col, col) / col[M + j]
        self.choose_seconds.append(time.perf_counter() - start)
        scales = [options[j % len(options)] for j in picks]  # candidates run pool-major: candidate j is at scale j mod F
        return cand[picks, :m], [p for p, _ in scales], [s for _, s in scales]


class RandomStrategy:
    """Flat-Dirichlet mixtures, one at each pilot size (30k steps) a round; recommends the run with the best
    observed total among the largest runs (410M / 30k if there is one, else the largest size run)."""

    def __init__(self, sim: NestedTruth, q: int):
        self.sim, self.q = sim, q
        self.fit_seconds, self.choose_seconds = [], []

    def update(self, table: pd.DataFrame, seed: int) -> np.ndarray:
        runs = self.sim.observed_total(table)
        largest = runs[(runs["params"] == runs["params"].max()) & (runs["step"] == runs["step"].max())]
        return largest.loc[largest["total"].idxmin(), [MIX_PREFIX + d for d in self.sim.train]].to_numpy(dtype=float)

    def next_batch(self, seed: int, budget_left: float):
        rng = np.random.default_rng(seed)
        options = [p for p in SIZES if pilot_cost(p, STEPS[-1]) <= budget_left * (1 + 1e-9)]
        sizes = (options * self.q)[: max(self.q, len(options))] if options else []
        return random_mixtures(len(sizes), len(self.sim.train), rng), sizes, [STEPS[-1]] * len(sizes)


def run_seed(sim: NestedTruth, strategy, seed: int, budget: float, n_initial: int, max_rounds: int) -> list[dict]:
    """One seed: the initial design, then rounds of (update, recommend, next batch) until the budget (cost units
    beyond the initial design) or the rounds are spent; one row per round (cost so far, the recommendation's regret)."""
    rng = np.random.default_rng(seed)
    mixtures, params, steps = initial_design(sim, seed, n_initial)
    table = sim.run(mixtures, params, steps, [f"init{i}" for i in range(len(params))], rng)
    spent = sum(pilot_cost(p, s) for p, s in zip(params, steps))
    initial_cost = spent
    history = []
    for round_ in range(max_rounds + 1):
        recommendation = strategy.update(table, seed * 1000 + round_)
        regret = float(sim.total(recommendation)[0] - sim.best_loss)
        history.append({"round": round_, "cost": spent, "regret": regret, "runs": table["run"].nunique(), "recommendation": recommendation.round(3).tolist()})
        left = initial_cost + budget - spent
        if round_ == max_rounds or left <= pilot_cost(SIZES[0], STEPS[0]) * (1 - 1e-9):
            break
        mixtures, params, steps = strategy.next_batch(seed * 1000 + round_, left)
        if len(params) == 0:
            break
        names = [f"r{round_}_{k}" for k in range(len(params))]
        table = pd.concat([table, sim.run(mixtures, params, steps, names, rng)], ignore_index=True)
        spent += sum(pilot_cost(p, s) for p, s in zip(params, steps))
        history[-1]["picks"] = [f"{size_label(p)}x{s // 1000}k" for p, s in zip(params, steps)]
    return history


def cost_to_reach(history: list[dict], threshold: float) -> float:
    """Cost spent when the recommendation first came within ``threshold`` of the optimum (inf: never)."""
    return next((row["cost"] for row in history if row["regret"] <= threshold), np.inf)


def cost_to_stay(history: list[dict], threshold: float) -> float:
    """Cost spent from which every later recommendation stayed within ``threshold`` (inf: the last one is not within).
    A strategy that recommends after many cheap rounds can touch the threshold by chance; this one cannot."""
    outside = [k for k, row in enumerate(history) if row["regret"] > threshold]
    if not outside:
        return history[0]["cost"]
    return history[outside[-1] + 1]["cost"] if outside[-1] + 1 < len(history) else np.inf


def regret_at(history: list[dict], cost: float) -> float:
    """The regret of the last recommendation made with at most ``cost`` spent (the regret-vs-cost step curve at
    ``cost``; a strategy that stopped earlier stands by its last one; nan before its first)."""
    rows = [row for row in history if row["cost"] <= cost * (1 + 1e-9)]
    return rows[-1]["regret"] if rows else np.nan


def make_strategy(name: str, sim: NestedTruth, args):
    if name in ("info", "kg"):
        return PackageStrategy(
            sim, name, args.q_info, draws=args.draws, candidates=args.candidates, groups=not args.all_domains, method=args.refit, batch=args.batch
        )
    if name == "single":
        return PackageStrategy(sim, "thompson", args.q_single, single=True, draws=args.draws, groups=not args.all_domains, method=args.refit)
    if name == "mfkg":
        return DiscreteMultiFidelityKG(sim, args.q_mfkg, pool=args.kg_pool, inner=args.kg_inner)
    if name == "mfkg-oneshot":
        return MultiFidelityKG(sim, args.q_mfkg, fantasies=args.fantasies)
    if name == "random":
        return RandomStrategy(sim, len(SIZES))
    raise SystemExit(f"unknown strategy {name!r}: info, kg, single, mfkg, mfkg-oneshot, random")


LABELS = {
    "info": "this package: nested law + info per unit cost (size, steps, mixture)",
    "kg": "this package: nested law + knowledge gradient on the draws per unit cost (size, steps, mixture)",
    "mfkg": "BoTorch SingleTaskMultiFidelityGP + discrete multi-fidelity KG per unit cost",
    "mfkg-oneshot": "BoTorch SingleTaskMultiFidelityGP + qMultiFidelityKnowledgeGradient (one-shot)",
    "single": "this package: single fidelity (Thompson at 410M x 30k)",
    "random": "random Dirichlet at each size (30k steps)",
}


# results keys' suffixes: how a strategy's refits or batches differed from the package's default at the time of the run
KEY_SUFFIXES = {
    # batches chosen greedily, each pick valued given the fantasised outcomes of the picks before it (choose_pilots'
    # batch="joint", the default since session 28); keys without it are the top-q single-run values (independent)
    "-joint": ", batches chosen jointly (greedy, fantasised outcomes)",
    "-fast": ", fast refits (2 x (300 + 250) draws)",
    # the records of sessions 25-26, kept: refits on the 5 groups adapted a diagonal mass matrix (before the few-domain
    # low-rank default, NestedLawConfig.FEW_DOMAIN_ADAPTATION); 15 of the 20 recorded stopped short of the rule
    "-diag": ", refits with a diagonal mass matrix (before the low-rank default; most short of the rule)",
}


def label(key: str) -> str:
    """A results key's label: the strategy's, and how its refits or batches differed (``info-fast``, ``kg-joint``)."""
    for suffix, how in KEY_SUFFIXES.items():
        if key.endswith(suffix):
            return label(key.removesuffix(suffix)) + how
    return LABELS.get(key, key)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--truth", default="/tmp/bo_fidelity_truth.json", help="the fitted truth (JSON): read if it exists, else fitted and written")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--strategies", default="info,mfkg,single,random")
    parser.add_argument("--budget", type=float, default=6.0, help="cost beyond the initial design, in 410M x 30k runs")
    parser.add_argument("--rounds", type=int, default=4, help="most rounds (nested refits) a seed of info and kg")
    parser.add_argument("--initial", type=int, default=8)
    parser.add_argument("--q-info", type=int, default=8, help="pilots a round chosen by info (cheap runs come in larger batches)")
    parser.add_argument("--q-single", type=int, default=2)
    parser.add_argument("--q-mfkg", type=int, default=2)
    parser.add_argument("--draws", type=int, default=128, help="posterior draws the package's acquisitions use")
    parser.add_argument("--candidates", type=int, default=200, help="random mixtures info ranks at each pilot scale")
    parser.add_argument("--fantasies", type=int, default=8, help="fantasies of the one-shot knowledge gradient (mfkg-oneshot)")
    parser.add_argument(
        "--kg-pool", type=int, default=128, help="random candidate mixtures of the discrete knowledge gradient (mfkg), each at every pilot scale"
    )
    parser.add_argument("--kg-inner", type=int, default=512, help="random mixtures the discrete knowledge gradient maximises over at the target")
    parser.add_argument("--rounds-single", type=int, default=3, help="most rounds of single (3 rounds of 2 x 410M x 30k spend the default budget)")
    parser.add_argument("--rounds-cheap", type=int, default=30, help="most rounds of the strategies whose refit is a GP or nothing (mfkg, random)")
    parser.add_argument(
        "--refit",
        default="nuts",
        choices=["fast", "nuts"],
        help="how info, kg and single refit the nested law each round: NUTS until converged, or a short NUTS run (results as 'info-fast', ...)",
    )
    parser.add_argument(
        "--batch",
        choices=("joint", "independent"),
        default="joint",
        help="info and kg: a round's picks chosen jointly (greedy, each given the fantasised outcomes of those before it) or by single-run value",
    )
    parser.add_argument("--all-domains", action="store_true", help="fit the nested law on the 22 domains (default: the Pile's 5 groups, 4x faster)")
    parser.add_argument("--results", default="/tmp/bo_fidelity_results.jsonl", help="one line per (strategy, seed): appended, and reused by --report")
    parser.add_argument("--report", action="store_true", help="only print the table and plot from --results")
    parser.add_argument(
        "--report-seeds", default=None, help="comma-separated seeds the table and plot read (default: every seed of each strategy in --results)"
    )
    parser.add_argument(
        "--report-strategies",
        default=None,
        help="comma-separated keys of --results (e.g. kg-joint,mfkg,single,random) the table and plot read, in this order (default: every key)",
    )
    parser.add_argument("--plot", default="benchmarks/bo_fidelity_regret.png")
    parser.add_argument("--max-minutes", type=float, default=np.inf, help="start no new seed after this many minutes (CPU-bound machines)")
    args = parser.parse_args()
    sim = load_truth(args.truth)
    threshold = 0.005 * sim.best_loss
    print(
        f"5Mix nested simulator (truth fitted in {sim.fit_info['seconds']:.0f} s: {sim.fit_info['summary'][:160]}...): target 1B x 100k optimum total "
        f"{sim.best_loss:.4f} at { {d: round(float(x), 3) for d, x in zip(sim.train, sim.optimum)} }; 0.5% = {threshold:.4f}",
        flush=True,
    )
    if not args.report:
        rounds = {"single": args.rounds_single, "mfkg": args.rounds_cheap, "mfkg-oneshot": args.rounds_cheap, "random": args.rounds_cheap}
        started = time.perf_counter()
        for seed in range(args.first_seed, args.first_seed + args.seeds):  # seeds outer: a run cut short still compares every strategy
            if (time.perf_counter() - started) / 60 > args.max_minutes:
                print(f"stopped before seed {seed}: --max-minutes {args.max_minutes} spent", flush=True)
                break
            for name in args.strategies.split(","):
                strategy = make_strategy(name, sim, args)
                start = time.perf_counter()
                try:
                    history = run_seed(sim, strategy, seed, args.budget, args.initial, rounds.get(name, args.rounds))
                except Exception as error:  # a failed seed is reported, not hidden, and the others still run
                    print(f"{name} seed {seed}: FAILED: {type(error).__name__}: {error}", flush=True)
                    traceback.print_exc()
                    continue
                seconds = time.perf_counter() - start
                fast = getattr(strategy, "method", None) == "fast"  # the package's strategies refitted by short runs are another strategy
                joint = getattr(strategy, "batch", None) == "joint" and not getattr(strategy, "single", False)
                key = name + ("-fast" if fast else "") + ("-joint" if joint else "")
                record = {"strategy": key, "seed": seed, "seconds": seconds, "fit_seconds": strategy.fit_seconds, "choose_seconds": strategy.choose_seconds}
                record["diagnostics"] = getattr(strategy, "diagnostics", [])  # the package's refits; a GP's fit has none
                record.update(history=history, args={k: v for k, v in vars(args).items() if k not in ("report", "results", "plot")})
                with open(args.results, "a") as out:
                    out.write(json.dumps(record) + "\n")
                reach = cost_to_reach(history, threshold)
                print(
                    f"{name} seed {seed}: {seconds:.0f} s (fits {[round(x) for x in strategy.fit_seconds]} s, choices "
                    f"{[round(x) for x in strategy.choose_seconds]} s; divergences {[d['fit_divergences'] for d in record['diagnostics']]}); "
                    f"regret by round {[round(r['regret'], 4) for r in history]} at cost "
                    f"{[round(r['cost'], 2) for r in history]}; picks {[r.get('picks') for r in history]}; cost to 0.5%: {reach:.2f}",
                    flush=True,
                )
    report(
        args.results,
        threshold,
        args.plot,
        only_seeds=None if args.report_seeds is None else [int(x) for x in args.report_seeds.split(",")],
        only_keys=None if args.report_strategies is None else args.report_strategies.split(","),
    )


def report(results: str, threshold: float, plot: str, only_seeds: list[int] | None = None, only_keys: list[str] | None = None) -> None:
    """The table and the regret plot of the records in ``results`` (of ``only_seeds`` and ``only_keys``, where given:
    strategies compared on the same seeds; the keys in the order given)."""
    records = [json.loads(line) for line in Path(results).read_text().splitlines() if line.strip()]
    keys = sorted({r["strategy"] for r in records})
    if only_keys is not None and set(only_keys) - set(keys):
        raise SystemExit(f"--report-strategies: {sorted(set(only_keys) - set(keys))} not in {results} (its keys: {keys})")
    by = {}
    for r in records:
        if only_seeds is not None and r["seed"] not in only_seeds:
            continue
        by.setdefault(r["strategy"], {})[r["seed"]] = r  # a later line for a (strategy, seed) replaces an earlier one
    if only_keys is not None:  # those keys, in that order (a key without records of only_seeds has no row)
        by = {key: by[key] for key in only_keys if key in by}
    rows = []
    for name, seeds in by.items():
        # beyond the initial design, which every strategy shares (1.37 of the default 8 runs): the part a strategy chose
        reach = np.array([cost_to_reach(r["history"], threshold) - r["history"][0]["cost"] for r in seeds.values()])
        stay = np.array([cost_to_stay(r["history"], threshold) - r["history"][0]["cost"] for r in seeds.values()])
        final = np.array([r["history"][-1]["regret"] for r in seeds.values()])
        spent = np.array([r["history"][-1]["cost"] for r in seeds.values()])
        rows.append(
            {
                "strategy": label(name),
                "seeds": len(seeds),
                "cost to reach 0.5% (median)": float(np.median(reach)),
                "reached": f"{np.isfinite(reach).sum()}/{len(reach)}",
                "cost to stay within 0.5% (median)": float(np.median(stay)),
                "stayed": f"{np.isfinite(stay).sum()}/{len(stay)}",
                **{f"regret at cost {c:g} (median)": float(np.nanmedian([regret_at(r["history"], c) for r in seeds.values()])) for c in REGRET_COSTS},
                "final regret (mean)": final.mean(),
                "cost spent (mean)": spent.mean(),
                "seconds a seed": np.mean([r["seconds"] for r in seeds.values()]),
                "_key": name,
            }
        )
    table = pd.DataFrame(rows)
    for metric, short in (("cost to reach 0.5% (median)", "reach"), ("cost to stay within 0.5% (median)", "stay")):
        medians = {row["_key"]: row[metric] for row in rows}
        for base in ("mfkg", "single"):
            if base in medians:
                table[f"{short} cost / {base}'s"] = [m / medians[base] if np.isfinite(medians[base]) else np.nan for m in table[metric]]
    print(
        "\nCost in 410M x 30k runs. Reach / stay: the cost beyond the shared initial design until the recommendation first comes "
        "within 0.5% / from which it stays within ('inf': not by the end of the budget); regret at cost c: c includes the "
        "initial design.\n"
    )
    print(table.drop(columns=["_key"]).to_markdown(index=False, floatfmt=".3g"))
    plot_curves(by, threshold, plot)


REGRET_FLOOR = 1e-5  # the log-scale plot draws a regret of 0 (the optimum itself) here


def plot_curves(by: dict, threshold: float, plot: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, ax = plt.subplots(figsize=(8, 5))
    start = min(r["history"][0]["cost"] for seeds in by.values() for r in seeds.values())
    end = max(r["history"][-1]["cost"] for seeds in by.values() for r in seeds.values())
    grid = np.geomspace(start, end, 400)
    for k, (name, seeds) in enumerate(by.items()):
        color = f"C{k}"
        for r in seeds.values():  # each seed thin
            cost = [h["cost"] for h in r["history"]]
            regret = [max(h["regret"], REGRET_FLOOR) for h in r["history"]]
            ax.step(cost, regret, where="post", color=color, alpha=0.25, lw=0.8)
            ax.plot(cost, regret, "o", color=color, ms=2.5, alpha=0.4)
        # the median over seeds of the regret-vs-cost step curves (a seed that stopped stands by its last recommendation)
        median = [np.nanmedian([regret_at(r["history"], c) for r in seeds.values()]) for c in grid]
        ax.step(grid, np.maximum(median, REGRET_FLOOR), where="post", color=color, lw=2.2, label=f"{label(name)}: median of {len(seeds)} seeds")
    ax.axhline(threshold, color="k", ls=":", label="0.5% of the optimum")
    ax.set_yscale("log")
    ax.set_xscale("log")
    for set_formatter in (ax.xaxis.set_major_formatter, ax.xaxis.set_minor_formatter):  # 2, 3, 4 rather than 2 x 10^0
        set_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.set_xlabel("cost spent (params x steps, in 410M x 30k runs; initial design included)")
    ax.set_ylabel("regret of the recommended mixture at 1B x 100k")
    ax.set_title("5Mix nested simulator: the recommendation's regret against cost (thin: each seed)", fontsize=10)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), frameon=False)
    fig.savefig(plot, dpi=120, bbox_inches="tight")
    print(f"plot: {plot}")


if __name__ == "__main__":
    main()
