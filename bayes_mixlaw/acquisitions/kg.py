r"""``kg``: the knowledge gradient on the posterior's draws, per unit cost: what one run is worth to the decision.

A lab acts on the posterior-mean optimum at the target scale: the mixture :math:`a` with the least
:math:`\bar f(a) = \frac1S \sum_s f_s(a)`. A run at mixture :math:`c` (at a pilot's scale) changes that decision
only through what its outcome :math:`y` says about the draws. With the draws reweighted by each fantasised outcome
(importance weights :math:`w_s(y) \propto p(y \mid s)`, :func:`~bayes_mixlaw.acquisitions.info.optima_and_fantasies`), the
value of the run is the expected drop of the best posterior-mean loss (Frazier, Powell & Dayanik 2009; here over the
posterior draws instead of a GP's fantasies):

.. math:: \mathrm{KG}(c) = \min_a \bar f(a) - \mathbb{E}_{y}\Big[\min_a \sum_s w_s(y)\, f_s(a)\Big] \;\ge 0,

divided by the run's cost. The alternatives :math:`a` are the draws' own optima at the target scale (where the
decision can go) and the candidate mixtures. ``info`` (:mod:`~bayes_mixlaw.acquisitions.info`) values a run by how
much it narrows the best achievable loss; ``kg`` by how much it improves the mixture a lab would pick, so a run that
only sharpens what is already decided is worth nothing. Shapes: S draws, J fantasies, C candidates, A alternatives;
the reweighted means are one (J C, S) x (S, A) product. The pilot's size and length are chosen as ``info``'s are
(:func:`~bayes_mixlaw.fidelity.choose_pilots`, :meth:`Info.optimize <bayes_mixlaw.acquisitions.info.Info.optimize>`).
"""

from __future__ import annotations

import numpy as np

from bayes_mixlaw.acquisitions.base import register_acquisition
from bayes_mixlaw.acquisitions.info import Info, optima_and_fantasies


def knowledge_gradient(
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
    """Expected drop of the best posterior-mean ``target`` loss at ``target_scale`` (in loss units) from one run at each
    candidate mixture (C, M), run at ``candidate_scale`` (the target scale by default). Returns (C,), each >= 0 up to
    the fantasies' noise."""
    x, v, weights = optima_and_fantasies(law, candidates, target, draws, seed, fantasies, bounds, candidate_scale, target_scale)
    losses = KnowledgeGradient.basis(law, x, v, candidates, target=target, draws=draws, seed=seed, target_scale=target_scale or {})  # (S, A)
    return losses.mean(axis=0).min() - KnowledgeGradient.remaining(weights, losses).mean(axis=0)


@register_acquisition(
    "kg",
    "the expected improvement of the target-scale decision from one run per unit cost (a knowledge gradient); for nested fits it also picks the pilot size",
    options={
        "costs": "{pilot size: cost of one step} (nested fits; default params x steps)",
        "pool": "how many random feasible mixtures to rank (default 400; a grid or candidates replace them)",
    },
    max_suggestions=(32, "suggestions are picked, at least 0.05 apart, from 400 random candidate mixtures per pilot size"),
    order=35,
)
class KnowledgeGradient(Info):
    """``info``'s candidates, scales and picks, valued by :func:`knowledge_gradient`."""

    value = staticmethod(knowledge_gradient)

    @staticmethod
    def basis(law, x: np.ndarray, v: np.ndarray, candidates: np.ndarray, *, target: str, draws: int, seed: int, target_scale: dict) -> np.ndarray:
        """What :meth:`remaining` reads from the draws: each draw's target loss at the alternatives (the draws' own optima
        ``x`` and the candidates), (S, A)."""
        import torch

        alternatives = np.vstack([x, candidates])  # (A, M)
        f_target = law.target_function(target, draws=draws, seed=seed, **target_scale)
        with torch.no_grad():
            return f_target(torch.as_tensor(alternatives)[None].expand(f_target.n_draws, -1, -1)).numpy()

    @staticmethod
    def remaining(weights: np.ndarray, losses: np.ndarray) -> np.ndarray:
        """The decision's expected loss after a run, per fantasy and candidate: min_a sum_s w_s f_s(a), from weights
        (S, J, C) and losses (S, A) to (J, C) (one (J C, S) x (S, A) product)."""
        n_draws, n_fantasies, n_candidates = weights.shape
        return (weights.reshape(n_draws, -1).T @ losses).reshape(n_fantasies, n_candidates, -1).min(axis=-1)
