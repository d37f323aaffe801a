"""Choosing the next pilot runs: the fitted law's posterior as a BoTorch model.

The posterior draws of a law are an ensemble: draw s gives the function ``f_s(r)`` (expected target
loss at mixture r, at the target scale for a nested fit). :class:`LawEnsembleModel` wraps them as a
``botorch.models.ensemble.EnsembleModel`` whose output is ``-f_s(r)`` (BoTorch maximises), float64 and
differentiable in r, so BoTorch's Monte-Carlo acquisition functions run on it unchanged. A mixing-law fit with a learned
residual (``residual: rff``, :mod:`bayes_mixlaw.mixing_residual`) includes it in ``f_s``: the residual fitted jointly
with the law is the BoTorch model's (it replaced a separate GP on the law's residuals at the pilots).

:func:`suggest` proposes q distinct mixtures in the capped simplex (sum to one, per-domain caps and
minimums), or among allowed mixtures (a grid, or candidates), with a registered acquisition
(:mod:`bayes_mixlaw.acquisitions`: one module each, found by name): look it up, refuse the options it does
not take, build the ensemble model, build the acquisition over it, optimise it (``optimize_acqf`` with the
simplex as an equality constraint, or ``optimize_acqf_discrete``), predict the suggestions. Packaged:
``qlognei`` (the default), ``thompson`` (option ``exploit``), ``info`` (per unit cost; for a nested fit it
picks the pilot's size too) and ``qucb``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from botorch.models.ensemble import EnsembleModel

from bayes_mixlaw.acquisitions import SuggestContext, check_suggestions, get_acquisition
from bayes_mixlaw.acquisitions.info import information_gain, suggest_informative
from bayes_mixlaw.optimize import MixtureBounds, simplex_grid, within_bounds
from bayes_mixlaw.runs import MIX_PREFIX, load_runs, read_mixtures, validate_runs
from bayes_mixlaw.summary import DEFAULT_CI

__all__ = ["LawEnsembleModel", "check_suggestions", "information_gain", "pilot_loop", "suggest", "suggest_informative"]

#: the keyword arguments of :func:`suggest` that give a nested fit's target scale (the others are the acquisition's options)
SCALE_KEYS = ("params", "step", "tokens")


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
    def from_law(cls, law, target: str = "total", *, draws: int = 256, seed: int = 0, **scale) -> LawEnsembleModel:
        f = law.target_function(target, draws=draws, seed=seed, **scale)
        return cls(f, f.n_draws)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        batch, (n, m) = X.shape[:-2], X.shape[-2:]
        flat = X.reshape(1, -1, m).expand(self.n_draws, -1, -1)
        values = -self._f(flat)  # (S, batch * n)
        values = values.reshape(self.n_draws, *batch, n)
        return values.movedim(0, -2).unsqueeze(-1)


def suggest(
    law,
    n: int = 4,
    *,
    acquisition: str = "qlognei",
    bounds: MixtureBounds | None = None,
    target: str = "total",
    draws: int = 256,
    seed: int = 0,
    caps_source: str = "caps",
    grid: float | None = None,
    candidates: np.ndarray | None = None,
    **options,
) -> pd.DataFrame:
    """``n`` distinct mixtures to run next, best first: the ``mix:*`` proportions, the acquisition
    value and the predicted target loss with a 90% interval (plus ``params``/``step`` for a nested fit).

    ``acquisition``: a registered name (:func:`bayes_mixlaw.acquisitions.acquisition_names`).
    ``grid``: only mixtures whose proportions are multiples of this step (pilots trained on a grid).
    ``candidates``: only these mixtures (rows over the training domains), e.g. a RegMix-style sample
    of plausible mixtures; those outside the bounds are dropped.
    ``options``: a nested fit's target scale (``params``, ``step`` or ``tokens``) and the acquisition's own
    options (None or False: not given); one it does not take is refused, e.g. ``residual_gp_model=True``
    (``qlognei`` on the law plus the residual fitted with it: a fit with ``residual: rff``) or ``exploit=True``
    (``thompson``: the first suggestion is the posterior-mean optimum, the others Thompson draws)."""
    acq = get_acquisition(acquisition)
    acq.check_n(n)
    scale = {k: options.pop(k) for k in SCALE_KEYS if k in options}
    given = acq.check_options(options)
    domains = law.train_domains
    lo, hi = (bounds or MixtureBounds()).arrays(domains, caps_source)
    torch.manual_seed(seed)
    context = SuggestContext(
        law,
        n,
        target,
        draws,
        seed,
        domains,
        lo,
        hi,
        bounds=bounds,
        caps_source=caps_source,
        grid=grid,
        options=given,
        scale=scale,
        rng=np.random.default_rng(seed),
    )
    context.choices = _allowed(domains, lo, hi, grid, candidates)
    model = LawEnsembleModel.from_law(law, target, draws=draws, seed=seed, **scale)
    acqf = acq.build(law, model, context=context)
    proposal = acq.optimize(acqf, context)
    return _suggestion_table(law, context, proposal)


def _allowed(domains: list[str], lo: np.ndarray, hi: np.ndarray, grid: float | None, candidates) -> torch.Tensor | None:
    """The allowed mixtures within the bounds (a grid's points, or the given candidates), or None for all."""
    if grid and candidates is not None:
        raise ValueError("give a grid or candidates, not both")
    if grid:
        return torch.as_tensor(simplex_grid(len(domains), grid, lo, hi))
    if candidates is None:
        return None
    candidates = np.asarray(candidates, dtype=float)
    if candidates.ndim != 2 or candidates.shape[1] != len(domains):
        raise ValueError(f"candidates must be rows of {len(domains)} non-negative proportions summing to 1 (training domains {domains})")
    checked = read_mixtures(pd.DataFrame(candidates, columns=[MIX_PREFIX + d for d in domains]), domains, tolerance=1e-6)
    return torch.as_tensor(within_bounds(checked.to_numpy(dtype=float), lo, hi))


def _suggestion_table(law, context: SuggestContext, proposal) -> pd.DataFrame:
    """The proposal's mixtures with their labels, acquisition values and predicted target loss (at each one's own scale
    where the acquisition picked it, else at the target scale), sorted by acquisition value."""
    n, columns = len(proposal.candidates), [MIX_PREFIX + d for d in context.domains]
    as_array = lambda x: x.detach().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)  # noqa: E731
    labels = [proposal.labels] * n if isinstance(proposal.labels, str) else list(proposal.labels)
    if proposal.scales is None:
        frame = pd.DataFrame(as_array(proposal.candidates).clip(0, 1), columns=columns)
        frame = frame.div(frame.sum(axis=1), axis=0)
        frame.insert(0, "name", [f"suggestion {i + 1}" for i in range(n)])
        prediction = law.predict(frame, ci=DEFAULT_CI, seed=context.seed, **context.scale)
        prediction = prediction[prediction["target"] == context.target].reset_index(drop=True)
    else:  # each row at the scale the acquisition chose for it
        rows = []
        for k, (mixture, scale) in enumerate(zip(as_array(proposal.candidates), proposal.scales)):
            frame = pd.DataFrame([mixture], columns=columns)
            frame.insert(0, "name", f"suggestion {k + 1}")
            predicted = law.predict(frame, ci=DEFAULT_CI, seed=context.seed, **scale)
            rows.append(predicted[predicted["target"] == context.target])
        prediction = pd.concat(rows, ignore_index=True)
    prediction.insert(len(prediction.columns) - 5, "acquisition", labels)
    prediction.insert(len(prediction.columns) - 5, "acquisition_value", as_array(proposal.values).ravel())
    return prediction.sort_values("acquisition_value", ascending=False, ignore_index=True, kind="stable")


def pilot_loop(
    law,
    runs,
    evaluate,
    *,
    rounds: int,
    q: int = 1,
    acquisition: str = "thompson",
    method: str = "fast",
    bounds: MixtureBounds | None = None,
    target: str = "total",
    seed: int = 0,
    progress: bool = False,
    **scale,
):
    """Fit -> suggest -> run the suggestions -> refit, ``rounds`` times; the compiled model is reused.

    ``evaluate(mixtures)`` receives the suggested mixtures (a DataFrame with ``name`` and ``mix:*``)
    and returns their runs-table rows (e.g. from training the pilots, or from a simulator). Returns
    the final law and the runs table with every round's runs added.
    """
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
