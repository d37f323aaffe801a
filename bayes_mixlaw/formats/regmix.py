"""RegMix's CSV pair (Liu et al., 2024; repo sail-sg/regmix): ``train_mixture_*.csv`` joined on ``index`` with ``train_pile_loss_*.csv``."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from bayes_mixlaw.formats.base import Reader, register
from bayes_mixlaw.runs import (
    _ROW,
    MIX_PREFIX,
    RunsTableError,
    _short_list,
    read_table_file,
)

_PREFIXES = ("train_mixture", "train_pile_loss")


def read_regmix(path: Path) -> pd.DataFrame:
    """RegMix's ``train_mixture_*.csv`` (proportions) joined on ``index`` with ``train_pile_loss_*.csv``.

    ``path`` is the folder holding both or either file. Columns ``train_the_pile_<d>`` become
    ``mix:<d>`` and ``metric/the_pile_<d>_val_loss`` become validation domain ``<d>``.
    """
    folder = path if path.is_dir() else path.parent
    tag = "" if path.is_dir() else re.sub(r"^train_(mixture|pile_loss)", "", path.name)
    mixture_files = sorted(folder.glob(f"train_mixture{tag or '*'}"))
    loss_files = sorted(folder.glob(f"train_pile_loss{tag or '*'}"))
    if len(mixture_files) != 1 or len(loss_files) != 1:
        raise RunsTableError(
            f"expected one train_mixture*.csv and one train_pile_loss*.csv, found {[p.name for p in mixture_files + loss_files]}",
            source=str(folder),
        )
    mixture = read_table_file(mixture_files[0])
    losses = read_table_file(loss_files[0])
    for file, table in ((mixture_files[0], mixture), (loss_files[0], losses)):
        if "index" not in table:
            raise RunsTableError("no 'index' column to join on", source=str(file), column="index")
        dup = table["index"].duplicated()
        if dup.any():
            raise RunsTableError(f"index {table['index'][dup].iloc[0]} appears twice", source=str(file), row=int(np.flatnonzero(dup)[0]) + 2, column="index")
    mix_names = {c: MIX_PREFIX + c.removeprefix("train_").removeprefix("the_pile_") for c in mixture.columns if c != "index"}
    mixture = mixture.rename(columns=mix_names)
    loss_cols = [c for c in losses.columns if c != "index"]
    long = losses.melt(id_vars="index", value_vars=loss_cols, var_name="valid_domain", value_name="loss")
    long["valid_domain"] = long["valid_domain"].str.replace(r"^metric/(the_pile_)?", "", regex=True).str.replace(r"_val_loss$", "", regex=True)
    long[_ROW] = long["index"].map(dict(zip(losses["index"], np.arange(len(losses)) + 2))).map(lambda r: f"{loss_files[0].name}:{r}")
    missing = set(long["index"]) - set(mixture["index"])
    if missing:
        raise RunsTableError(
            f"runs {_short_list(sorted(missing), 5)} have losses but no mixture in {mixture_files[0].name}", source=str(loss_files[0]), column="index"
        )
    frame = long.merge(mixture, on="index", how="left").rename(columns={"index": "run"})
    frame["run"] = frame["run"].astype(str)
    return frame


@register
class RegmixReader(Reader):
    name = "regmix"
    description = "RegMix train_mixture/train_pile_loss CSV pair or folder"
    priority = 10

    def detect(self, path: Path) -> bool:
        if path.is_dir():
            return any(p.name.startswith("train_mixture") for p in path.iterdir())
        return path.name.lower().startswith(_PREFIXES)

    def read(self, path: Path, **options) -> pd.DataFrame:
        return read_regmix(path)
