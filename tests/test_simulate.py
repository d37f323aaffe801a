"""The simulator of pilot runs from a fitted law (bayes_mixlaw/simulate.py): caps on its optimum and its random
pilots."""

from __future__ import annotations

import numpy as np

from bayes_mixlaw import MixingLaw, datasets


def test_simulator_optimum_and_random_pilots_respect_caps(shared_data, mocked_sampling):
    """A simulator with caps takes its optimum within them; its random pilots are Dirichlet draws
    restricted to them; support_caps reads each domain's largest share off the real runs."""
    from bayes_mixlaw.simulate import LawSimulator, feasible_dirichlet, support_caps

    table = datasets.mixinglaws_5mix_70m().select(step=30000)
    caps = support_caps(table)
    assert set(caps) == set(table.train_domains) and all(0 < v <= 1 for v in caps.values())
    law = MixingLaw(targets=datasets.pile_targets()).fit(table, seed=0, progress=False, draws=20, chains=1)
    free = LawSimulator(law)
    largest = int(np.argmax(free.optimum))
    capped = LawSimulator(law, caps={free.train[largest]: 0.1})
    assert free.optimum[largest] > 0.1 and capped.optimum[largest] <= 0.1 + 1e-9 and abs(capped.optimum.sum() - 1) < 1e-9
    assert capped.best_loss >= free.best_loss - 1e-9
    draws = feasible_dirichlet(500, capped.upper, np.random.default_rng(0))
    assert draws.shape == (500, len(free.train)) and (draws <= capped.upper).all() and np.allclose(draws.sum(axis=1), 1)
