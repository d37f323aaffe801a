"""Summaries of posterior draws: the equal-tailed intervals of every table, figure and command, and the
tables that ``predict`` returns.

Every interval bound in bayes_mixlaw is computed here, by arviz-stats' equal-tailed interval
(:func:`eti`, numpy's ``linear`` quantiles over the sample dims ``chain`` and ``draw``, every other
labelled dim kept); :data:`DEFAULT_CI` is the one default probability of them all."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import xarray as xr

# xarray and arviz-stats are imported where used: the command line reads DEFAULT_CI at start-up, and
# arviz-stats takes a second to import (a law loads it with PyMC anyway)

DEFAULT_CI = 0.9
"""The probability of every equal-tailed interval unless one is given: predictions, parameters, the
optimum, the critical share, the hold-out coverage, the report and the command line's ``--ci``."""

SAMPLE_DIMS = ("chain", "draw")
"""The dims of a fit's posterior draws, reduced by :func:`eti`."""

# numpy's default quantiles (Hyndman and Fan's type 7): the numbers every table has carried. arviz-stats' NumPy layer
# (``dataarray_stats``, what ``DataArray.azstats.eti`` calls by default) is called directly, so that another
# ``rcParams["stats.module"]`` (numba) cannot move a bound
_QUANTILE_METHOD = "linear"


def interval_bounds(ci: float) -> tuple[float, float]:
    """Quantile levels of the equal-tailed interval of probability ``ci``; refuses a ``ci`` outside (0, 1)."""
    if not 0 < ci < 1:
        raise ValueError(f"ci must be between 0 and 1 (exclusive), got {ci}")
    return (1 - ci) / 2, 1 - (1 - ci) / 2


def eti(draws: xr.DataArray, ci: float = DEFAULT_CI, dim: Hashable | Sequence[Hashable] = SAMPLE_DIMS, *, skipna: bool = False) -> xr.DataArray:
    """Equal-tailed interval of probability ``ci`` of ``draws`` over ``dim`` (default: ``chain`` and
    ``draw``; those of them that ``draws`` has), by arviz-stats: every other labelled dim and its
    coordinates kept, and a last dim ``ci_bound`` with coordinates ``lower`` and ``upper``. The bounds are
    numpy's ``linear`` quantiles at ``(1 - ci) / 2`` and ``1 - (1 - ci) / 2`` of the pooled draws;
    ``skipna``: NaN draws left out (else a NaN among them makes the bounds NaN)."""
    from arviz_stats.base import dataarray_stats

    interval_bounds(ci)
    wanted = [dim] if isinstance(dim, str) or not isinstance(dim, Sequence) else list(dim)
    dims = [d for d in wanted if d in draws.dims]
    if not dims:
        raise ValueError(f"draws with dims {tuple(draws.dims)} have none of the sample dims {tuple(wanted)}")
    return dataarray_stats.eti(draws, prob=ci, dim=dims, method=_QUANTILE_METHOD, skipna=skipna)


def eti_values(values, ci: float = DEFAULT_CI, axis: int | None = 0) -> np.ndarray:
    """:func:`eti` of plain draws (an array; the draws along ``axis``, or all of them with ``axis=None``):
    an array whose first axis holds the lower and the upper bound, then the other axes in order (as
    ``np.quantile(values, interval_bounds(ci), axis)``), so that ``lower, upper = eti_values(...)``."""
    import xarray as xr

    values = np.asarray(values)
    values = values.ravel() if axis is None else np.moveaxis(values, axis, -1)
    labelled = xr.DataArray(values, dims=[*(f"axis_{i}" for i in range(values.ndim - 1)), "sample"])
    return np.moveaxis(eti(labelled, ci, "sample").values, -1, 0)


def summarize_draws(draws: xr.DataArray, inputs: pd.DataFrame, ci: float) -> pd.DataFrame:
    """Long table from draws with dims (chain, draw, <row dim>, target).

    ``inputs`` has one row per entry of the row dimension; its columns are repeated for each target.
    Returns the ``inputs`` columns, ``target``, ``mean``, ``median``, ``lower``, ``upper`` (:func:`eti`).
    """
    row_dim = next(d for d in draws.dims if d not in (*SAMPLE_DIMS, "target"))
    draws = draws.transpose(*SAMPLE_DIMS, row_dim, "target")
    bounds = eti(draws, ci).transpose(row_dim, "target", "ci_bound").values
    values = draws.values
    flat = values.reshape(-1, *values.shape[2:])
    mean = flat.mean(axis=0)
    n_rows, n_targets = mean.shape
    out = inputs.loc[inputs.index.repeat(n_targets)].reset_index(drop=True)
    out["target"] = np.tile(np.asarray(draws["target"].values, dtype=str), n_rows)
    out["mean"] = mean.ravel()
    out["median"] = np.quantile(flat, 0.5, axis=0).ravel()
    out["lower"] = bounds[..., 0].ravel()
    out["upper"] = bounds[..., 1].ravel()
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
