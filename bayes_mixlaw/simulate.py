"""Pilot runs simulated from a fitted mixing law: for benchmarks, tutorials and what-if planning.

The "true" law of each validation domain is the fit's posterior mean of (log_c, log_k, t); a
simulated pilot at mixture r returns each domain's loss plus Gaussian noise at the fit's posterior
mean noise level. The target (``total`` by default) is the fit's weighted mean over domains; its
optimum over the simplex is found by projected gradient descent.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from bayes_mixlaw.laws import mixing_law
from bayes_mixlaw.optimize import minimize_batch, random_feasible
from bayes_mixlaw.runs import MIX_PREFIX


class LawSimulator:
    """Simulated pilot runs from a fitted explicit :class:`~bayes_mixlaw.mixing.MixingLaw`."""

    def __init__(self, law, target: str = "total"):
        post = law.idata["posterior"]
        mean = lambda name: post[name].mean(("chain", "draw")).values  # noqa: E731
        self.train, self.valid = law.train_domains, law.valid_domains
        self.log_c, self.log_k, self.t = mean("log_c"), mean("log_k"), mean("t")
        self.noise = mean("noise_sigma") * law.idata["constant_data"]["loss_scale"].values
        names, matrix = law.targets.matrix(self.valid)
        self.weights = matrix[names.index(target)]
        m = len(self.train)
        start = torch.as_tensor(random_feasible(32, np.zeros(m), np.ones(m), np.random.default_rng(0)))[None]
        best, value = minimize_batch(self._torch_target, start, np.zeros(m), np.ones(m), steps=1000)
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
        rows = [{"run": name, "valid_domain": v, "loss": value, **{MIX_PREFIX + d: x for d, x in zip(self.train, mix)}}
                for name, mix, loss in zip(names, r, losses) for v, value in zip(self.valid, loss)]
        return pd.DataFrame(rows)

    def observed_target(self, table: pd.DataFrame) -> pd.Series:
        """Each run's observed target loss (weighted mean of its domain losses)."""
        w = pd.Series(self.weights, index=self.valid)
        return table.pivot(index="run", columns="valid_domain", values="loss")[self.valid].mul(w).sum(axis=1)
