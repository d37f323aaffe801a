"""The extrapolation discrepancy calibrated from the pilots (bayes_mixlaw/calibrate.py)."""

from __future__ import annotations

import numpy as np


def test_calibrated_drift_shares_its_uncertainty_but_not_a_runs_spread():
    """Item 7 with a calibrated extrapolation: the drift's uncertainty is one draw for every mixture of
    a call (from the shared generator), each run's own spread its own (the row's generator)."""
    import json
    from types import SimpleNamespace

    from bayes_mixlaw.calibrate import ATTR, discrepancy_factor
    from bayes_mixlaw.model import row_generators, shared_generator

    entry = {"mean": [0.01] * 3, "sd": [0.1] * 3, "se": [0.02] * 3}
    law = SimpleNamespace(idata=SimpleNamespace(attrs={ATTR: json.dumps({"step": entry})}), pilot_scales=lambda: {"step": [1.0, 10.0]})
    rows = row_generators(0, np.eye(2))
    a, b = (discrepancy_factor(law, {"step": 100.0}, (1, 50, 1, 3), shared_generator(0), predictive=True, row_rng=g) for g in rows)
    assert not np.allclose(a, b)  # each run's own spread
    mean_a, mean_b = (discrepancy_factor(law, {"step": 100.0}, (1, 50, 1, 3), shared_generator(0), predictive=False, row_rng=g) for g in rows)
    np.testing.assert_array_equal(mean_a, mean_b)  # the shared uncertainty of the drift
