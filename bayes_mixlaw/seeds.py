"""The seeds of the laws' random draws: each row's draws from its own generator (its values and the call's seed), so a
row's numbers do not depend on the other rows of the call or their order."""

from __future__ import annotations

import hashlib

import numpy as np


def row_seed_sequence(seed: int, row) -> np.random.SeedSequence:
    """The seed of one row's random draws, derived from ``seed`` and the row's own values (its
    mixture, or its scale): the row's numbers do not depend on the other rows or their order."""
    values = np.round(np.asarray(row, dtype=float).ravel(), 12) + 0.0  # + 0.0: -0.0 -> 0.0
    words = np.frombuffer(hashlib.sha256(values.tobytes()).digest(), dtype="<u4")
    return np.random.SeedSequence([int(seed) & 0xFFFFFFFF, *words.tolist()])


def row_generators(seed: int, rows: np.ndarray) -> list[np.random.Generator]:
    """One generator per row of ``rows`` (2-D: row x values), each from :func:`row_seed_sequence`."""
    return [np.random.default_rng(row_seed_sequence(seed, row)) for row in np.atleast_2d(rows)]


def shared_generator(seed: int) -> np.random.Generator:
    """The generator of what every row of one call shares (the law's error at a target scale): from
    ``seed`` alone, the same for every row."""
    return np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, 0x5EED]))
