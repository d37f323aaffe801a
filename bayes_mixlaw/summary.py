"""Summaries of posterior draws of predictions: the tables that ``predict`` returns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr


def interval_bounds(ci: float) -> tuple[float, float]:
    """Quantile levels of the equal-tailed interval of probability ``ci``."""
    if not 0 < ci < 1:
        raise ValueError(f"ci must be between 0 and 1 (exclusive), got {ci}")
    return (1 - ci) / 2, 1 - (1 - ci) / 2


def summarize_draws(draws: xr.DataArray, inputs: pd.DataFrame, ci: float) -> pd.DataFrame:
    """Long table from draws with dims (chain, draw, <row dim>, target).

    ``inputs`` has one row per entry of the row dimension; its columns are repeated for each target.
    Returns the ``inputs`` columns, ``target``, ``mean``, ``median``, ``lower``, ``upper``.
    """
    lo, hi = interval_bounds(ci)
    row_dim = [d for d in draws.dims if d not in ("chain", "draw", "target")][0]
    values = draws.transpose("chain", "draw", row_dim, "target").values
    flat = values.reshape(-1, *values.shape[2:])
    q = np.quantile(flat, [0.5, lo, hi], axis=0)
    mean = flat.mean(axis=0)
    n_rows, n_targets = mean.shape
    out = inputs.loc[inputs.index.repeat(n_targets)].reset_index(drop=True)
    out["target"] = np.tile(np.asarray(draws["target"].values, dtype=str), n_rows)
    out["mean"] = mean.ravel()
    out["median"] = q[0].ravel()
    out["lower"] = q[1].ravel()
    out["upper"] = q[2].ravel()
    return out
