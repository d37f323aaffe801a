r"""A batch of runs valued jointly: greedy picks, each valued given the fantasised outcomes of the picks before it.

Ranking candidates by the value of one run each and keeping the best ``n`` buys ``n`` runs that each answer the same
question (eight 305M pilots at neighbouring mixtures, all about the size slope). Here the batch is built greedily, as
BoTorch's sequential q-batch optimisation does with pending points: pick :math:`k+1` maximises

.. math:: \frac{U(B_k) - U(B_k \cup \{c\})}{\mathrm{cost}(c)}, \qquad
          U(B) = \mathbb{E}_j\big[u(w^{(j)}_B)\big], \quad w^{(j)}_{B,s} \propto \prod_{b \in B} p(y^{(j)}_b \mid s),

where fantasy :math:`j` draws every run's outcome from the same posterior draw :math:`s_j` (so the batch's outcomes are
jointly fantasised, each with its own noise), :math:`u` is the acquisition's ``remaining`` (``info``: the spread of the
best target loss; ``kg``: the decision's expected loss) and :math:`U(\emptyset) = u(\text{uniform})`. A run whose
outcome the earlier picks already foretell is worth little; the first pick is the single-run value's best. Shapes:
S draws, J fantasies, C pool mixtures, K pilot scales; the fantasies' log-likelihoods are (S, J, C) per scale.
"""

from __future__ import annotations

import zlib

import numpy as np

from bayes_mixlaw.acquisitions.info import fantasy_log_likelihood, fantasy_predictions, normalised, seeded_optima


def greedy_batch(
    acquisition,
    law,
    pool: np.ndarray,
    scales: list[dict],
    costs: np.ndarray,
    n: int,
    *,
    target: str = "total",
    draws: int = 256,
    seed: int = 0,
    fantasies: int = 64,
    bounds=None,
    target_scale: dict | None = None,
    apart: float = 0.05,
    budget: float | None = None,
) -> list[dict]:
    """Up to ``n`` runs (pool mixture, pilot scale), each the best value per cost given the picks before it.

    ``acquisition``: a class with ``basis`` and ``remaining`` (:class:`~bayes_mixlaw.acquisitions.info.Info`,
    :class:`~bayes_mixlaw.acquisitions.kg.KnowledgeGradient`); ``pool`` (C, M) mixtures; ``scales`` the K pilot scales
    and ``costs`` (K,) a run's cost at each; picks at one scale are more than ``apart`` apart (max abs. difference of
    shares); ``budget``: the picks' costs add up to at most this. Returns dicts ``index`` (into ``pool``), ``scale``
    (index into ``scales``), ``gain`` (the drop of U, loss units) and ``value`` (gain / cost), in the order picked; a
    gain below 0 (a run the earlier picks leave nothing to add to, up to the fantasies' noise) is reported as 0."""
    target_scale = target_scale or {}
    x, v, rng = seeded_optima(law, target=target, draws=draws, seed=seed, bounds=bounds, target_scale=target_scale)
    basis = acquisition.basis(law, x, v, pool, target=target, draws=draws, seed=seed, target_scale=target_scale)
    n_draws = len(v)
    fantasy_draws = rng.choice(n_draws, size=fantasies)  # one posterior draw per fantasy, shared by the batch's runs
    log_likelihood = []
    for scale in scales:  # each scale's runs their own noise, the same whatever else is asked (seeded by the scale)
        m, sd = fantasy_predictions(law, pool, target=target, draws=draws, seed=seed, candidate_scale=scale)
        noise = np.random.default_rng([seed, zlib.crc32(repr(sorted(scale.items())).encode())]).standard_normal((fantasies, len(pool)))
        log_likelihood.append(fantasy_log_likelihood(m, sd, fantasy_draws, noise))
    costs = np.asarray(costs, dtype=float)
    batch_log_w = np.zeros((n_draws, fantasies, 1))
    before = acquisition.remaining(normalised(batch_log_w), basis).mean()
    left = np.inf if budget is None else float(budget)
    chosen: list[dict] = []
    for _ in range(n):
        best = None
        for k, terms in enumerate(log_likelihood):
            if costs[k] > left * (1 + 1e-9):
                continue
            gain = before - acquisition.remaining(normalised(batch_log_w + terms), basis).mean(axis=0)  # (C,)
            value = gain / costs[k]
            for o in chosen:  # distinct at one scale
                if o["scale"] == k:
                    value[np.abs(pool - pool[o["index"]]).max(axis=1) <= apart] = -np.inf
            i = int(np.argmax(value))
            if np.isfinite(value[i]) and (best is None or value[i] > best["value"]):
                best = {"index": i, "scale": k, "gain": float(gain[i]), "value": float(value[i])}
        if best is None:
            break
        batch_log_w = batch_log_w + log_likelihood[best["scale"]][:, :, best["index"], None]
        before -= best["gain"]
        left -= costs[best["scale"]]
        chosen.append(best | {"gain": max(best["gain"], 0.0), "value": max(best["value"], 0.0)})
    return chosen
