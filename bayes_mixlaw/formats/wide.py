"""A wide CSV or Parquet runs table: one row per run x scale, one ``loss:<validation domain>`` column per domain.

The columns are those of the tidy table (``run``, ``params``, ``step``, ``tokens``, ``mix:<domain>``,
``lr``, ``warmup_steps``), with the losses spread over ``loss:<domain>`` columns instead of the pair
``valid_domain``, ``loss``::

    run,params,step,mix:Github,mix:Pile-CC,loss:Github,loss:Pile-CC
    70M_a,18915328,10000,0.25,0.75,1.21,3.62

Each row becomes one tidy row per ``loss:`` column (errors name the file's line and that column).
Auto-detected: a ``.csv``/``.csv.gz``/``.parquet``/``.pq`` file whose header has a ``loss:`` column.
This module is the worked example of "a new format is one file plus its test" (``tests/test_formats_wide.py``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bayes_mixlaw.formats.base import Reader, csv_header, register
from bayes_mixlaw.formats.tidy import TABLE_SUFFIXES
from bayes_mixlaw.runs import _ROW, RunsTableError, _plain, read_table_file

LOSS_PREFIX = "loss:"


def read_wide(path: Path) -> pd.DataFrame:
    """The wide table at ``path`` as tidy rows, ``__row__`` the file's line (CSV) or row (Parquet)."""
    frame = read_table_file(path)
    header = [str(c) for c in frame.columns]
    loss_columns = [c for c in header if c.startswith(LOSS_PREFIX)]
    if not loss_columns:
        raise RunsTableError(f"no '{LOSS_PREFIX}<domain>' columns: a wide table has one per validation domain", source=str(path))
    for column in ("valid_domain", "loss"):
        if column in header:
            raise RunsTableError(
                f"a wide table spreads its losses over '{LOSS_PREFIX}<domain>' columns and has no '{column}' column "
                "(a table with 'valid_domain' and 'loss' is the tidy format: --format tidy)",
                source=str(path),
                column=column,
            )
    for column in loss_columns:
        if not column[len(LOSS_PREFIX) :].strip():
            raise RunsTableError(f"a loss column has no validation domain after '{LOSS_PREFIX}'", source=str(path), column=column)
    first = 0 if path.name.lower().endswith((".parquet", ".pq")) else 2  # line 1 of a CSV is the header
    frame[_ROW] = np.arange(len(frame)) + first
    for column in loss_columns:  # name the user's column, not the tidy 'loss' it becomes
        values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(values) | (values <= 0)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise RunsTableError(
                f"loss {_plain(frame[column].iloc[i])!r} is not a finite positive number", source=str(path), row=int(frame[_ROW].iloc[i]), column=column
            )
    ids = [c for c in frame.columns if c not in loss_columns]
    long = frame.melt(id_vars=ids, value_vars=loss_columns, var_name="valid_domain", value_name="loss", ignore_index=False)
    long["valid_domain"] = long["valid_domain"].str[len(LOSS_PREFIX) :]
    long = long.sort_index(kind="stable").reset_index(drop=True)  # each run's row, then its domains in column order
    return long[[c for c in ids if c != _ROW] + ["valid_domain", "loss", _ROW]]


@register
class WideReader(Reader):
    name = "wide"
    description = "wide CSV/Parquet: one row per run x scale, loss:<domain> columns"
    priority = 50  # before tidy, which takes any CSV/Parquet file

    def detect(self, path: Path) -> bool:
        if not (path.is_file() and path.name.lower().endswith(TABLE_SUFFIXES)):
            return False
        return any(c.startswith(LOSS_PREFIX) for c in csv_header(path) or [])

    def read(self, path: Path, **options) -> pd.DataFrame:
        return read_wide(path)
