"""Pilot runs simulated from a fitted mixing law: for benchmarks, tutorials and what-if planning.

The "true" law of each validation domain is the fit's posterior mean of (log_c, log_k, t); a
simulated pilot at mixture r returns each domain's loss plus Gaussian noise at the fit's posterior
mean noise level. The target (``total`` by default) is the fit's weighted mean over domains; its
optimum over the simplex (or under per-domain ``caps``) is found by projected gradient descent.

A fitted law is a credible "truth" only where its data were: give ``caps`` (e.g. the largest share of
each domain in the runs it was fitted on, :func:`support_caps`) so that the optimum is not an
extrapolation of the law to mixtures nobody trained on.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from bayes_mixlaw.laws import mixing_law
from bayes_mixlaw.optimize import MixtureBounds, minimize_batch, random_feasible
from bayes_mixlaw.runs import MIX_PREFIX, RunsTable


class LawSimulator:
    """Simulated pilot runs from a fitted explicit :class:`~bayes_mixlaw.mixing.MixingLaw`."""

    def __init__(self, law, target: str = "total", caps: dict[str, float] | None = None):
        post = law.idata["posterior"]
        mean = lambda name: post[name].mean(("chain", "draw")).values  # noqa: E731
        self.train, self.valid = law.train_domains, law.valid_domains
        self.log_c, self.log_k, self.t = mean("log_c"), mean("log_k"), mean("t")
        self.noise = mean("noise_sigma") * law.idata["constant_data"]["loss_scale"].values
        names, matrix = law.targets.matrix(self.valid)
        self.weights = matrix[names.index(target)]
        self.lower, self.upper = MixtureBounds(caps=dict(caps or {})).arrays(self.train)
        start = torch.as_tensor(random_feasible(32, self.lower, self.upper, np.random.default_rng(0)))[None]
        best, value = minimize_batch(self._torch_target, start, self.lower, self.upper, steps=1000)
        self.optimum, self.best_loss = best[0].numpy(), float(value[0])

    def _torch_target(self, r):
        as_t = lambda x: torch.as_tensor(x, dtype=torch.float64)  # noqa: E731
        return mixing_law(r, as_t(self.log_c), as_t(self.log_k), as_t(self.t)) @ as_t(self.weights)

    def true_target(self, r: np.ndarray) -> np.ndarray:
        """The noise-free target loss at each mixture (rows of ``r``)."""
        return mixing_law(np.atleast_2d(r), self.log_c, self.log_k, self.t) @ self.weights

    def run(self, mixtures, rng: np.random.Generator) -> pd.DataFrame:
        """Runs-table rows (one per validation domain) for each mixture: a DataFrame with ``mix:*``
        columns and ``name`` (used as the run name), or an (n, M) array."""
        if isinstance(mixtures, pd.DataFrame):
            names = mixtures["name"].tolist() if "name" in mixtures else [f"sim{i}" for i in range(len(mixtures))]
            r = mixtures[[MIX_PREFIX + d for d in self.train]].to_numpy(dtype=float)
        else:
            r = np.atleast_2d(mixtures)
            names = [f"sim{i}" for i in range(len(r))]
        losses = mixing_law(r, self.log_c, self.log_k, self.t) + rng.normal(size=(len(r), len(self.valid))) * self.noise
        rows = [
            {"run": name, "valid_domain": v, "loss": value, **{MIX_PREFIX + d: x for d, x in zip(self.train, mix)}}
            for name, mix, loss in zip(names, r, losses)
            for v, value in zip(self.valid, loss)
        ]
        return pd.DataFrame(rows)

    def observed_target(self, table: pd.DataFrame) -> pd.Series:
        """Each run's observed target loss (weighted mean of its domain losses)."""
        w = pd.Series(self.weights, index=self.valid)
        return table.pivot(index="run", columns="valid_domain", values="loss")[self.valid].mul(w).sum(axis=1)


def support_caps(runs: RunsTable) -> dict[str, float]:
    """Each training domain's largest share among the runs' mixtures: the box in which a law fitted
    to those runs was checked against data."""
    return {c[len(MIX_PREFIX) :]: float(v) for c, v in runs.mixtures().max().items()}


def feasible_dirichlet(n: int, upper: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``n`` flat-Dirichlet mixtures with every share at most ``upper`` (rejection sampling: the
    Dirichlet's own distribution restricted to the caps, unlike a projection onto them)."""
    out = []
    while sum(len(x) for x in out) < n:
        draws = rng.dirichlet(np.ones(len(upper)), size=max(4 * n, 256))
        out.append(draws[(draws <= upper).all(axis=1)])
    return np.concatenate(out)[:n]
