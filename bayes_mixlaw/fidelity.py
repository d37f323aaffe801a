"""Multi-fidelity choice of pilots: which mixture, at which size and length, per unit cost.

:func:`choose_pilots` ranks candidate pilots ``(mixture, params, steps)`` by what one run there is
expected to teach about the target-scale decision, divided by its cost:

* ``info`` on a nested fit: for every allowed pilot size and length (``LOOP.yaml``'s
  ``pilots.sizes`` x ``pilots.steps``), the expected reduction of the posterior standard deviation of
  the best achievable target loss ``min_r f(r; N*, S*)`` from one run at each of a pool of feasible
  mixtures (``bayes_mixlaw.bo.information_gain``: the same posterior draws at the pilot's scale and at
  the target's, fantasised outcomes with the noise of a new run, importance-reweighted draws), divided
  by the cost ``params x steps`` (or the user's cost per step of each size). A small, short run that
  says as much about the target as a large one wins; a size never run yet is predicted by the law.
  Distinct picks: no two within 0.05 (max abs. difference of shares) at one scale.
* ``kg`` on a nested fit: the same, each run valued by how much it is expected to improve the decision (the
  posterior-mean optimum's loss at the target: ``bayes_mixlaw.acquisitions.kg``) rather than the optimum's spread.
  Any acquisition with a ``value`` of one run at a pool of mixtures and a pilot scale is used this way.
* A batch of ``n`` is chosen jointly (``batch="joint"``, the default for ``info`` and ``kg``): greedily, each pick
  valued given the fantasised outcomes of the picks before it (:func:`~bayes_mixlaw.acquisitions.batch.greedy_batch`),
  so that a round does not buy eight runs that answer one question; ``batch="independent"`` keeps the ``n`` best
  single-run values.
* ``thompson`` / ``qlognei`` (or ``info`` / ``kg`` on a one-size mixing-law fit): ``bayes_mixlaw.bo.suggest``'s
  mixtures at the target scale, run at the largest allowed size and longest length (single fidelity).
"""

from __future__ import annotations

import numpy as np

from bayes_mixlaw.optimize import MixtureBounds, random_feasible


def choose_pilots(
    law,
    n: int,
    *,
    sizes: list[int],
    steps: list[int],
    cost,
    acquisition: str = "info",
    target: str = "total",
    target_scale: dict | None = None,
    bounds: MixtureBounds | None = None,
    seed: int = 0,
    draws: int = 128,
    candidates: int = 200,
    max_cost: float | None = None,
    batch: str = "joint",
) -> list[dict]:
    """Up to ``n`` pilots, in the order chosen: dicts with ``mixture`` ({domain: share}), ``params``, ``steps``,
    ``cost``, ``value`` (acquisition per unit cost, or the acquisition value) and ``acquisition``.
    ``cost(params, steps)`` gives a pilot's cost; ``max_cost`` is what is left to spend (options dearer are dropped;
    a joint batch's picks add up to at most it). ``batch``: ``"joint"`` (each pick valued given the fantasised
    outcomes of the picks before it, :func:`~bayes_mixlaw.acquisitions.batch.greedy_batch`, for acquisitions that
    give the uncertainty a run leaves: ``info``, ``kg``) or ``"independent"`` (each run valued alone, the best ``n``)."""
    from bayes_mixlaw.acquisitions import get_acquisition
    from bayes_mixlaw.acquisitions.batch import greedy_batch
    from bayes_mixlaw.bo import suggest

    if batch not in ("joint", "independent"):
        raise ValueError(f"batch: {batch!r} is not a way to value a batch; choose 'joint' or 'independent'")
    domains = law.train_domains
    bounds = bounds or MixtureBounds()
    target_scale = target_scale or {}
    options = [(p, s) for p in sizes for s in steps if max_cost is None or cost(p, s) <= max_cost * (1 + 1e-9)]
    if not options:
        return []
    acq = get_acquisition(acquisition)
    value = getattr(acq, "value", None)  # one run's value at a pool of mixtures and a pilot scale
    if value is not None and law.has_scale_axes:
        lo, hi = bounds.arrays(domains)
        rng = np.random.default_rng(seed)
        pool = random_feasible(candidates, lo, hi, rng)
        scales = [{"params": p, law.length_column: s} for p, s in options]
        costs = np.array([cost(p, s) for p, s in options], dtype=float)
        if batch == "joint" and hasattr(acq, "remaining"):
            chosen = greedy_batch(
                acq, law, pool, scales, costs, n, target=target, draws=draws, seed=seed, bounds=bounds, target_scale=target_scale, budget=max_cost
            )
        else:  # each run valued alone, the best n kept
            chosen = _best_independent(law, value, pool, scales, costs, n, target=target, draws=draws, seed=seed, bounds=bounds, target_scale=target_scale)
        return [
            {
                "mixture": dict(zip(domains, map(float, pool[r["index"]]))),
                "params": options[r["scale"]][0],
                "steps": options[r["scale"]][1],
                "cost": float(costs[r["scale"]]),
                "value": r["value"],
                "acquisition": f"{acquisition} per cost",
            }
            for r in chosen
        ]
    how = "thompson" if value is not None else acquisition
    picks = suggest(law, n, acquisition=how, bounds=bounds, target=target, draws=draws, seed=seed, **(target_scale if law.has_scale_axes else {}))
    p, s = max(options, key=lambda o: (o[0], o[1]))
    mix_cols = [c for c in picks.columns if c.startswith("mix:")]
    return [
        {
            "mixture": {c[4:]: float(row[c]) for c in mix_cols},
            "params": p,
            "steps": s,
            "cost": cost(p, s),
            "value": float(row["acquisition_value"]),
            "acquisition": how,
        }
        for _, row in picks.iterrows()
    ]


def _best_independent(law, value, pool, scales, costs, n, **kw) -> list[dict]:
    """The ``n`` best (pool mixture, scale) pairs by one run's value per cost, no two within 0.05 at one scale."""
    rows = []
    for k, (scale, c) in enumerate(zip(scales, costs)):
        gain = value(law, pool, candidate_scale=scale, **kw)
        rows += [{"index": i, "scale": k, "gain": float(g), "value": float(g) / c} for i, g in enumerate(gain)]
    rows.sort(key=lambda r: -r["value"])
    chosen = []
    for row in rows:
        if all(np.abs(pool[row["index"]] - pool[o["index"]]).max() > 0.05 or o["scale"] != row["scale"] for o in chosen):
            chosen.append(row)
        if len(chosen) == n:
            break
    return chosen
