"""Epoch AI's digitised Chinchilla points (Besiroglu et al., 2024; repo epoch-research/analyzing-chinchilla)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from bayes_mixlaw.formats.base import Reader, csv_header, register
from bayes_mixlaw.runs import _ROW, RunsTableError, _plain, _short_list, read_table_file


def read_chinchilla(path: Path, drop_highest: int = 5) -> pd.DataFrame:
    """Epoch AI's digitised Chinchilla points (``Model Size``, ``Training FLOP``, ``loss``).

    Tokens are ``D = C / (6 N)``. As in Epoch's refit (Besiroglu et al., 2024), the
    ``drop_highest`` highest losses are left out; the validation domain is ``MassiveText``.
    """
    frame = read_table_file(path)
    missing = [c for c in ("Model Size", "Training FLOP", "loss") if c not in frame]
    if missing:
        raise RunsTableError(f"not Epoch's Chinchilla format: missing column(s) {missing}", source=str(path), column=missing[0])
    frame[_ROW] = np.arange(len(frame)) + 2
    for column in ("Model Size", "Training FLOP", "loss"):
        numbers = pd.to_numeric(frame[column], errors="coerce")
        bad = ~np.isfinite(numbers.to_numpy(dtype=float)) | (numbers.to_numpy(dtype=float) <= 0)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise RunsTableError(
                f"{column} is {_plain(frame[column].iloc[i])!r}; it must be a positive number", source=str(path), row=int(frame[_ROW].iloc[i]), column=column
            )
        frame[column] = numbers
    if drop_highest:
        dropped = frame["loss"].nlargest(drop_highest)
        warnings.warn(
            f"{path}: left out the {len(dropped)} highest losses ({_short_list(dropped.round(3).tolist(), 5)}; rows "
            f"{_short_list(frame.loc[dropped.index, _ROW].tolist(), 5)}), as Epoch's refit does (Besiroglu et al., 2024); "
            "Python: read_chinchilla(path, drop_highest=0) keeps them",
            UserWarning,
            stacklevel=4,  # the caller of load_runs
        )
        frame = frame.drop(dropped.index)
    n = frame["Model Size"]
    c = frame["Training FLOP"]
    return pd.DataFrame(
        {
            "run": [f"chinchilla_{r}" for r in frame[_ROW]],
            "params": n.round().astype("Int64"),
            "tokens": c / (6 * n),
            "valid_domain": "MassiveText",
            "loss": frame["loss"],
            _ROW: frame[_ROW],
        }
    )


@register
class ChinchillaReader(Reader):
    name = "chinchilla"
    description = "Epoch AI's digitised Chinchilla points CSV"
    priority = 20

    def detect(self, path: Path) -> bool:
        header = csv_header(path) if path.is_file() and path.name.lower().endswith((".csv", ".csv.gz")) else None
        return header is not None and {"Model Size", "Training FLOP"} <= set(header)

    def read(self, path: Path, **options) -> pd.DataFrame:
        return read_chinchilla(path)
