"""Choosing the next pilot runs: the fitted law's posterior as a BoTorch model.

The posterior draws of a law are an ensemble: draw s gives the function ``f_s(r)`` (expected target
loss at mixture r, at the target scale for a nested fit). :class:`LawEnsembleModel` wraps them as a
``botorch.models.ensemble.EnsembleModel`` whose output is ``-f_s(r)`` (BoTorch maximises), float64 and
differentiable in r, so BoTorch's Monte-Carlo acquisition functions run on it unchanged.

:func:`suggest` proposes q distinct mixtures in the capped simplex (sum to one, per-domain caps and
minimums) with

* ``qlognei``: q-log-noisy-expected-improvement over the pilots' mixtures (BoTorch's
  ``qLogNoisyExpectedImprovement``, optimised with the simplex as an equality constraint);
* ``thompson``: Thompson sampling, each suggestion the optimum of one random posterior draw.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from botorch.models.ensemble import EnsembleModel

from bayes_mixlaw.optimize import MixtureBounds, minimize_batch, random_feasible
from bayes_mixlaw.runs import MIX_PREFIX

ACQUISITIONS = ("qlognei", "thompson")


class LawEnsembleModel(EnsembleModel):
    """A fitted law's posterior draws as a BoTorch ensemble model of the negated target loss.

    ``target_function``: from ``law.target_function(...)``, mapping (S, n, M) to (S, n).
    ``forward(X)``: X (batch..., n, M) -> (batch..., S, n, 1).
    """

    def __init__(self, target_function, n_draws: int):
        super().__init__()
        self._f = target_function
        self._num_outputs = 1
        self.n_draws = n_draws

    @classmethod
    def from_law(cls, law, target: str = "total", *, draws: int = 256, seed: int = 0, **scale) -> "LawEnsembleModel":
        f = law.target_function(target, draws=draws, seed=seed, **scale)
        with torch.no_grad():
            n_draws = f(torch.full((1, 1, len(law.train_domains)), 1 / len(law.train_domains), dtype=torch.float64)).shape[0]
        return cls(f, n_draws)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        batch, (n, m) = X.shape[:-2], X.shape[-2:]
        flat = X.reshape(1, -1, m).expand(self.n_draws, -1, -1)
        values = -self._f(flat)  # (S, batch * n)
        values = values.reshape(self.n_draws, *batch, n)
        return values.movedim(0, -2).unsqueeze(-1)


def _simplex_constraint(m: int):
    """BoTorch's equality constraint sum_j r_j = 1, as (indices, coefficients, rhs)."""
    return [(torch.arange(m), torch.ones(m, dtype=torch.float64), 1.0)]


def suggest(law, n: int = 4, *, acquisition: str = "qlognei", bounds: MixtureBounds | None = None, target: str = "total",
            draws: int = 256, seed: int = 0, caps_source: str = "caps", **scale) -> pd.DataFrame:
    """``n`` distinct mixtures to run next, best first: the ``mix:*`` proportions, the acquisition
    value and the predicted target loss with a 90% interval (plus ``params``/``step`` for a nested fit)."""
    if acquisition not in ACQUISITIONS:
        raise ValueError(f"unknown acquisition {acquisition!r}; choose one of {', '.join(ACQUISITIONS)}")
    domains = law.train_domains
    lo, hi = (bounds or MixtureBounds()).arrays(domains, caps_source)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = LawEnsembleModel.from_law(law, target, draws=draws, seed=seed, **scale)
    if acquisition == "thompson":
        picks = rng.choice(model.n_draws, size=n, replace=model.n_draws < n)
        start = torch.as_tensor(random_feasible(8, lo, hi, rng))[None].expand(model.n_draws, -1, -1).clone()
        optima, _ = minimize_batch(model._f, start, lo, hi, steps=200)
        candidates = optima[torch.as_tensor(picks)]
        with torch.no_grad():
            value = -model._f(candidates[None].expand(model.n_draws, -1, -1))  # (S, n)
            acq_values = value[torch.as_tensor(picks), torch.arange(n)]
    else:
        from botorch.acquisition.logei import qLogNoisyExpectedImprovement
        from botorch.optim import optimize_acqf

        pilots = law.idata["constant_data"]
        baseline = pilots["mixture_proportions"].values if "mixture_proportions" in pilots else pilots["run_mixture"].values
        acqf = qLogNoisyExpectedImprovement(model, X_baseline=torch.as_tensor(baseline, dtype=torch.float64), prune_baseline=True)
        box = torch.as_tensor(np.stack([lo, hi]), dtype=torch.float64)
        candidates, _ = optimize_acqf(acqf, bounds=box, q=n, num_restarts=4, raw_samples=64,
                                      equality_constraints=_simplex_constraint(len(domains)), sequential=True, options={"maxiter": 100})
        with torch.no_grad():
            acq_values = torch.stack([acqf(c[None, None]) for c in candidates])
    frame = pd.DataFrame(candidates.detach().numpy().clip(0, 1), columns=[MIX_PREFIX + d for d in domains])
    frame = frame.div(frame.sum(axis=1), axis=0)
    frame.insert(0, "name", [f"suggestion {i + 1}" for i in range(n)])
    prediction = law.predict(frame, ci=0.9, seed=seed, **scale)
    prediction = prediction[prediction["target"] == target].reset_index(drop=True)
    prediction.insert(len(prediction.columns) - 5, "acquisition", acquisition)
    prediction.insert(len(prediction.columns) - 5, "acquisition_value", acq_values.detach().numpy().ravel())
    return prediction.sort_values("acquisition_value", ascending=False, ignore_index=True)


def pilot_loop(law, runs, evaluate, *, rounds: int, q: int = 1, acquisition: str = "thompson", method: str = "fast",
               bounds: MixtureBounds | None = None, target: str = "total", seed: int = 0, progress: bool = False, **scale):
    """Fit -> suggest -> run the suggestions -> refit, ``rounds`` times; the compiled model is reused.

    ``evaluate(mixtures)`` receives the suggested mixtures (a DataFrame with ``name`` and ``mix:*``)
    and returns their runs-table rows (e.g. from training the pilots, or from a simulator). Returns
    the final law and the runs table with every round's runs added.
    """
    from bayes_mixlaw.runs import load_runs, validate_runs

    table = load_runs(runs)
    for round_ in range(rounds):
        law.fit(table, seed=seed + round_, method=method, progress=progress)
        picks = suggest(law, q, acquisition=acquisition, bounds=bounds, target=target, seed=seed + round_, **scale)
        mixtures = picks[["name", *[c for c in picks.columns if c.startswith(MIX_PREFIX)]]].copy()
        mixtures["name"] = [f"round{round_ + 1}_{i}" for i in range(len(mixtures))]
        new = evaluate(mixtures)
        table = validate_runs(pd.concat([table.data, new], ignore_index=True), table.source)
    law.fit(table, seed=seed + rounds, method=method, progress=progress)
    return law, table
