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
    row_dim = next(d for d in draws.dims if d not in ("chain", "draw", "target"))
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


class NonFiniteError(ValueError):
    """A prediction that is NaN or infinite: never written as if it were a number."""


def require_finite(table: pd.DataFrame, what: str, columns=("optimum", "mean", "median", "lower", "upper")) -> pd.DataFrame:
    """``table`` if every value of ``columns`` (those present) is finite; else an error naming the first
    bad row (its ``name``, ``item``, scale and ``target`` where the table has them), column and CSV line.
    Rows of quantity ``p_beats_reference`` (a probability with no interval) are checked on ``optimum`` only."""
    present = [c for c in columns if c in table]
    if not present:
        return table
    values = table[present].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(values)
    if "quantity" in table:  # optimize's table: a probability row has no interval
        probability = (table["quantity"] == "p_beats_reference").to_numpy()
        bad[probability] &= np.array([c == "optimum" for c in present])[None, :].repeat(probability.sum(), axis=0)
    if not bad.any():
        return table
    i, j = (int(x[0]) for x in np.nonzero(bad))
    row = table.iloc[i]
    label = [
        f"{k} {row[k]!r}" if k in ("name", "mixture", "item", "quantity") else f"{k}={row[k]}"
        for k in ("name", "mixture", "quantity", "item", "params", "step", "tokens", "target")
        if k in table
    ]
    raise NonFiniteError(
        f"{what}: the {present[j]} of row {i + 2} ({', '.join(label) or f'row {i}'}) is {values[i, j]}, "
        f"and {int(bad.any(axis=1).sum())} row(s) in all are not finite; nothing was written. A non-finite "
        "prediction means a damaged fit or a point far outside what the law can represent"
    )
