"""``info``: the expected reduction of the uncertainty about the target-scale optimum, per unit cost.

The value of a run at mixture r is the expected reduction of the posterior standard deviation of the target-scale
optimum ``v_s = min_r f_s(r)``, by reweighting the draws with fantasised outcomes of the candidate run (importance
weights ``p(y | draw s)``), per unit cost (:func:`information_gain`). For a nested fit the candidates are pool mixtures
at each pilot size and the longest pilot length, and the cost is parameters x steps (or option ``costs``, per size):
a cheap small run that says as much about the target as a large one wins, and each suggestion is predicted at its
pilot's scale. No ``AcquisitionFunction``: :meth:`Info.optimize` picks from a pool (option ``pool`` random feasible
mixtures, or the grid or candidates) a joint batch (:func:`~bayes_mixlaw.acquisitions.batch.greedy_batch`: each pick
valued given the fantasised outcomes of those before it), distinct (no two within 0.05 at one scale).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bayes_mixlaw.acquisitions.base import Acquisition, Proposal, register_acquisition
from bayes_mixlaw.runs import MIX_PREFIX


def _observation_noise(law, frame: pd.DataFrame, target: str, seed: int, scale: dict) -> np.ndarray:
    """Standard deviation of a new run's observed ``target`` around the law, per candidate: the spread
    of posterior predictive minus posterior mean draws (observation noise, and a new run's run effects)."""
    predictive = law.predict_draws(frame, kind="predictive", seed=seed, **scale).sel(target=target).values
    mean = law.predict_draws(frame, kind="mean", seed=seed, **scale).sel(target=target).values
    return (predictive - mean).reshape(-1, len(frame)).std(axis=0)


# the last fit's draws of the best target loss, (law id) -> (its posterior, the call's key, (x, v)): a multi-fidelity
# choice values every pilot scale against the same target, so its per-draw optimisation is done once per fit, not once
# per scale
_OPTIMA: dict[int, tuple] = {}


def draw_optima(law, *, target: str, draws: int, seed: int, lo: np.ndarray, hi: np.ndarray, rng: np.random.Generator, target_scale: dict):
    """Each posterior draw's best mixture at the target scale and its loss there: ``x`` (S, M), ``v`` (S,) (cached per fit
    and call; ``rng`` is advanced alike either way, so what is drawn from it next does not depend on the cache)."""
    import torch

    from bayes_mixlaw.optimize import minimize_batch, random_feasible

    key = (target, draws, seed, lo.tobytes(), hi.tobytes(), tuple(sorted(target_scale.items())))
    cached = _OPTIMA.get(id(law))
    starts = random_feasible(6, lo, hi, rng)
    if cached is not None and cached[0] is law.idata and cached[1] == key:  # the same fit and target: one optimisation per draw
        return cached[2]
    f_target = law.target_function(target, draws=draws, seed=seed, **target_scale)
    n_draws = f_target.n_draws
    start = torch.as_tensor(starts)[None].expand(n_draws, -1, -1).clone()
    x, value = minimize_batch(f_target, start, lo, hi, steps=150, progress=f"each of {n_draws:,} draws' best {target} loss")
    _OPTIMA.clear()
    _OPTIMA[id(law)] = (law.idata, key, (x.numpy(), value.numpy()))
    return _OPTIMA[id(law)][2]


def fantasy_predictions(law, candidates: np.ndarray, *, target: str, draws: int, seed: int, candidate_scale: dict) -> tuple[np.ndarray, np.ndarray]:
    """What a fantasised run at each candidate mixture, run at ``candidate_scale``, is drawn from: each posterior draw's
    expected ``target`` there, m (S, C), and a new run's noise around it, sd (C,) (:func:`_observation_noise`)."""
    import torch

    f_run = law.target_function(target, draws=draws, seed=seed, **candidate_scale)  # the same draws (same seed)
    n_draws = f_run.n_draws
    with torch.no_grad():
        m = f_run(torch.as_tensor(candidates)[None].expand(n_draws, -1, -1)).numpy()  # (S, C)
    frame = pd.DataFrame(candidates, columns=[MIX_PREFIX + d for d in law.train_domains])
    return m, _observation_noise(law, frame, target, seed, candidate_scale)


def fantasy_log_likelihood(m: np.ndarray, sd: np.ndarray, fantasy_draws: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """log p(y_jc | draw s) up to a constant, (S, J, C): fantasy j of candidate c is draw ``fantasy_draws[j]``'s
    expectation plus ``sd`` times ``noise`` (J, C), y_jc = m[s_j, c] + sd_c z_jc."""
    y = m[fantasy_draws] + sd * noise  # (J, C)
    return -0.5 * ((y[None] - m[:, None]) / sd) ** 2


def normalised(log_w: np.ndarray) -> np.ndarray:
    """Importance weights from log weights (S, ...): exponentiated stably and summing to 1 over the draws (axis 0)."""
    w = np.exp(log_w - log_w.max(axis=0, keepdims=True))
    return w / w.sum(axis=0, keepdims=True)


def fantasy_weights(
    law, candidates: np.ndarray, *, target: str, draws: int, seed: int, fantasies: int, rng: np.random.Generator, candidate_scale: dict
) -> np.ndarray:
    """Importance weights of the posterior draws after one fantasised run at each candidate mixture, run at
    ``candidate_scale``: (S, J, C), summing to 1 over the S draws. Fantasy j of candidate c is draw s_j's expected
    ``target`` there plus a new run's noise (:func:`fantasy_predictions`); draw s's weight is its likelihood of it."""
    m, sd = fantasy_predictions(law, candidates, target=target, draws=draws, seed=seed, candidate_scale=candidate_scale)
    j = rng.choice(len(m), size=fantasies)
    return normalised(fantasy_log_likelihood(m, sd, j, rng.standard_normal((fantasies, len(sd)))))


def seeded_optima(law, *, target: str, draws: int, seed: int, bounds, target_scale: dict) -> tuple[np.ndarray, np.ndarray, np.random.Generator]:
    """:func:`draw_optima` within ``bounds`` (all of the simplex when None) from a generator seeded with ``seed``: x (S, M),
    v (S,), and the generator, for the fantasies drawn next (``info``, ``kg`` and their joint batches start alike)."""
    from bayes_mixlaw.optimize import MixtureBounds

    lo, hi = (bounds or MixtureBounds()).arrays(law.train_domains)
    rng = np.random.default_rng(seed)
    x, v = draw_optima(law, target=target, draws=draws, seed=seed, lo=lo, hi=hi, rng=rng, target_scale=target_scale)
    return x, v, rng


def optima_and_fantasies(law, candidates: np.ndarray, target: str, draws: int, seed: int, fantasies: int, bounds, candidate_scale, target_scale):
    """What a run's value is computed from (``info`` and ``kg``): each draw's best mixture and loss at ``target_scale``
    (:func:`draw_optima`: x (S, M), v (S,)) and the draws' weights after a fantasised run at each candidate, run at
    ``candidate_scale`` (the target scale when None; :func:`fantasy_weights`: (S, J, C)), from one generator seeded with
    ``seed``."""
    target_scale = target_scale or {}
    candidate_scale = candidate_scale if candidate_scale is not None else target_scale
    x, v, rng = seeded_optima(law, target=target, draws=draws, seed=seed, bounds=bounds, target_scale=target_scale)
    w = fantasy_weights(law, candidates, target=target, draws=draws, seed=seed, fantasies=fantasies, rng=rng, candidate_scale=candidate_scale)
    return x, v, w


def information_gain(
    law,
    candidates: np.ndarray,
    *,
    target: str = "total",
    draws: int = 256,
    seed: int = 0,
    fantasies: int = 64,
    bounds=None,
    candidate_scale: dict | None = None,
    target_scale: dict | None = None,
) -> np.ndarray:
    """Expected reduction of the posterior standard deviation of ``min_r f_s(r)`` (the best achievable
    target loss, in loss units) from one run at each candidate mixture, run at ``candidate_scale`` (the
    target scale by default). Returns one value per candidate."""
    _, v, w = optima_and_fantasies(law, candidates, target, draws, seed, fantasies, bounds, candidate_scale, target_scale)
    return v.std() - Info.remaining(w, v).mean(axis=0)


@register_acquisition(
    "info",
    "expected reduction of the uncertainty about the target's optimum per unit cost (for nested fits it also picks the pilot's size)",
    options={
        "costs": "{pilot size: cost of one step} (nested fits; default params x steps)",
        "pool": "how many random feasible mixtures to rank (default 400; a grid or candidates replace them)",
    },
    max_suggestions=(32, "suggestions are picked, at least 0.05 apart, from 400 random candidate mixtures per pilot size"),
    order=30,
)
class Info(Acquisition):
    #: the value of one run at each candidate mixture and pilot scale (``fidelity.choose_pilots`` uses it too)
    value = staticmethod(information_gain)

    @staticmethod
    def basis(law, x: np.ndarray, v: np.ndarray, candidates: np.ndarray, *, target: str, draws: int, seed: int, target_scale: dict) -> np.ndarray:
        """What :meth:`remaining` reads from the draws: each draw's best target loss v (S,)."""
        return v

    @staticmethod
    def remaining(weights: np.ndarray, v: np.ndarray) -> np.ndarray:
        """The uncertainty a run leaves, per fantasy and candidate: the weighted standard deviation of the best target
        loss, sqrt(sum_s w_s v_s^2 - (sum_s w_s v_s)^2), from weights (S, J, C) to (J, C)."""
        mean = np.einsum("sjc,s->jc", weights, v)
        return np.sqrt(np.clip(np.einsum("sjc,s->jc", weights, v**2) - mean**2, 0, None))

    def build(self, law, model, *, context):
        """What :meth:`optimize` picks from: (pool (C, M), the pilot scales, a run's cost at each relative to the
        cheapest)."""
        from bayes_mixlaw.optimize import random_feasible

        pool = context.choices.numpy() if context.choices is not None else random_feasible(context.option("pool", 400), context.lo, context.hi, context.rng)
        if law.has_scale_axes:
            pilots = law.pilot_scales()
            length = law.length_column
            scales = [{"params": p, length: pilots[length][-1]} for p in pilots["params"]]
            costs = context.option("costs")
            cost = np.array([costs[o["params"]] if costs else o["params"] * o[length] for o in scales], dtype=float)
            cost = cost / cost.min()  # relative to the cheapest pilot
        else:
            scales, cost = [{}], np.ones(1)  # a one-scale fit: its runs are at the target's scale
        return pool, scales, cost

    def optimize(self, acqf, context) -> Proposal:
        """A joint batch (:func:`~bayes_mixlaw.acquisitions.batch.greedy_batch`): each pick the best value per cost
        given the fantasised outcomes of those before it; no two mixtures within 0.05 of each other at one scale."""
        from bayes_mixlaw.acquisitions.batch import greedy_batch

        pool, scales, cost = acqf
        chosen = greedy_batch(
            type(self),
            context.law,
            pool,
            scales,
            cost,
            context.n,
            target=context.target,
            draws=context.draws,
            seed=context.seed,
            bounds=context.bounds,
            target_scale=context.scale,
            apart=1e-9 if context.choices is not None else 0.05,
        )
        values = np.array([r["value"] for r in chosen])
        return Proposal(np.array([pool[r["index"]] for r in chosen]), values, self.name, [scales[r["scale"]] for r in chosen])


def suggest_informative(
    law,
    n: int = 4,
    *,
    bounds=None,
    target: str = "total",
    draws: int = 256,
    seed: int = 0,
    candidates: int = 400,
    costs: dict | None = None,
    caps_source: str = "caps",
    grid: float | None = None,
    **scale,
) -> pd.DataFrame:
    """``n`` runs that most reduce the uncertainty about the target-scale optimum per unit cost: ``suggest(acquisition="info")``
    with a pool of ``candidates`` random feasible mixtures."""
    from bayes_mixlaw.bo import suggest

    return suggest(
        law,
        n,
        acquisition="info",
        bounds=bounds,
        target=target,
        draws=draws,
        seed=seed,
        caps_source=caps_source,
        grid=grid,
        pool=candidates,
        costs=costs,
        **scale,
    )
