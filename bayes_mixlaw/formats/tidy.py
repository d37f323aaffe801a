"""The tidy runs table as a CSV or Parquet file: the interchange format itself (see ``runs.py``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bayes_mixlaw.formats.base import Reader, register
from bayes_mixlaw.runs import _ROW, read_table_file

TABLE_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq")


def read_tidy(path: Path) -> pd.DataFrame:
    """A tidy CSV or Parquet file; ``__row__`` holds the line number (CSV) or row number (Parquet)."""
    frame = read_table_file(path)
    frame[_ROW] = np.arange(len(frame)) + (0 if path.name.lower().endswith((".parquet", ".pq")) else 2)  # line 1 is the header
    return frame


@register
class TidyReader(Reader):
    name = "tidy"
    description = "CSV/Parquet runs table"
    priority = 90  # the fallback: any CSV or Parquet file no other format claims

    def detect(self, path: Path) -> bool:
        return path.is_file() and path.name.lower().endswith(TABLE_SUFFIXES)

    def read(self, path: Path, **options) -> pd.DataFrame:
        return read_tidy(path)
