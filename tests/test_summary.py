"""Summaries of draws (bayes_mixlaw/summary.py): a table with a NaN or infinite number is refused, naming
where."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayes_mixlaw.summary import NonFiniteError, require_finite


def test_require_finite_names_row_target_and_column():
    table = pd.DataFrame({"name": ["a", "b"], "target": ["total", "total"], "mean": [1.0, np.inf], "lower": [0.5, 0.6], "upper": [1.5, 1.6]})
    with pytest.raises(NonFiniteError, match=r"mean of row 3 \(name 'b', target=total\) is inf"):
        require_finite(table, "x")
    probability = pd.DataFrame({"quantity": ["loss", "p_beats_reference"], "item": ["total"] * 2, "optimum": [1.0, 0.7], "mean": [1.0, np.nan]})
    assert require_finite(probability, "x") is probability
