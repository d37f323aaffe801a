"""What the loop's config says about its pilots: the trainer, the mixtures' bounds, the validation targets, the
initial design, the shares a pilot gets and the budget left for new ones."""

from __future__ import annotations

import numpy as np

from bayes_mixlaw.loop_config import LoopConfig
from bayes_mixlaw.loop_state import LoopState
from bayes_mixlaw.runners import CallableTrainer, CommandTrainer, Pilot


def make_trainer(config: LoopConfig):
    t = config.trainer
    if t.reference is not None:
        return CallableTrainer("bayes_mixlaw.trainer:train_pilot", t.rows_file, dict(t.reference))
    if t.command is not None:
        return CommandTrainer(t.command, t.rows_file)
    return CallableTrainer(t.callable, t.rows_file)


def _bounds(config: LoopConfig):
    from bayes_mixlaw.optimize import MixtureBounds

    if config.caps is None:
        return MixtureBounds()
    if isinstance(config.caps, str):
        return MixtureBounds.from_file(config.caps)
    caps = config.caps
    if set(caps) <= {"caps", "minimums"}:
        return MixtureBounds(dict(caps.get("minimums") or {}), dict(caps.get("caps") or {}))
    return MixtureBounds({}, dict(caps))


def _targets(config: LoopConfig):
    from bayes_mixlaw.targets import Targets

    if config.valid_weights is None:
        return Targets()
    return Targets.from_files(config.valid_weights)


def _initial_pilots(config: LoopConfig, state: LoopState, n: int) -> tuple[list[Pilot], list[float]]:
    import torch

    from bayes_mixlaw.optimize import project_capped_simplex

    lo, hi = _bounds(config).arrays(config.domains, "caps")
    rng = np.random.default_rng(config.seed)
    mixtures = rng.dirichlet(np.full(len(config.domains), config.initial_design.alpha), size=n)
    mixtures = project_capped_simplex(torch.as_tensor(mixtures), torch.as_tensor(lo), torch.as_tensor(hi)).numpy()
    steps = config.pilots.steps[-1]
    first = state.next_id()
    pilots, costs = [], []
    for k in range(n):
        size = config.pilots.sizes[k % len(config.pilots.sizes)]
        mixture = _normalised(dict(zip(config.domains, mixtures[k])))
        pilots.append(Pilot(f"p{first + k:03d}", mixture, size, steps, config.pilots.schedule, config.seed + first + k))
        costs.append(config.cost(size, steps))
    return pilots, costs


def _normalised(mixture: dict) -> dict:
    """Shares rounded to 6 decimals (no 1e-17 crumbs from the optimiser) that sum to one."""
    clean = {d: max(0.0, round(float(v), 6)) for d, v in mixture.items()}
    total = sum(clean.values())
    clean = {d: round(v / total, 6) for d, v in clean.items()}
    largest = max(clean, key=clean.get)
    clean[largest] = round(clean[largest] + 1.0 - sum(clean.values()), 6)
    return clean


def _budget_left(config: LoopConfig, state: LoopState) -> tuple[int | None, float | None]:
    """Pilots and cost the budget still allows for new suggestions."""
    counts = state.counts()
    runs = None if config.budget.runs is None else config.budget.runs - counts["done"] - counts["queued"] - counts["running"]
    cost = None if config.budget.cost is None else config.budget.cost - state.committed_cost()
    return runs, cost
