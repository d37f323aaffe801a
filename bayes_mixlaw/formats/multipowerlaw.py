"""The multi-power law loss curves (Luo et al., 2025; repo thu-yao-01-luo/MultiPowerLaw): ``csv_<size>/<schedule>.csv``."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from bayes_mixlaw.formats.base import Reader, register
from bayes_mixlaw.runs import _ROW, LR, WARMUP, RunsTableError

# Every schedule of these curves warms up linearly over 2,160 steps, before the first logged row.
MULTIPOWERLAW_WARMUP = 2160

_MPL_FOLDER = re.compile(r"^csv_(\d+(?:\.\d+)?)$")
_MPL_COLUMNS = ["step", "lr", "loss"]


def _multipowerlaw_files(path: Path) -> list[Path]:
    """The ``csv_<size>/<schedule>.csv`` files (header ``step,lr,loss``) at ``path``: the folder of
    size folders, one size folder, or one such file; [] if ``path`` is not in that layout."""
    if path.is_dir():
        folders = [path] if _MPL_FOLDER.match(path.name) else sorted(p for p in path.iterdir() if p.is_dir() and _MPL_FOLDER.match(p.name))
        files = [f for folder in folders for f in sorted(folder.glob("*.csv"))]
    else:
        files = [path] if _MPL_FOLDER.match(path.parent.name) else []
    try:
        return [f for f in files if list(pd.read_csv(f, nrows=0).columns) == _MPL_COLUMNS]
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError):
        return []


def read_multipowerlaw(path: Path) -> pd.DataFrame:
    """The multi-power law curves (Luo et al., 2025): ``csv_<size>/<schedule>.csv`` with ``step,lr,loss``.

    ``path`` is the folder of ``csv_<size>`` folders, one of them, or one file. Run ``<size>/<schedule>``
    (e.g. ``400/cosine_24000``), ``params`` the nominal size (``csv_25`` -> 25e6), validation domain
    ``valid``, and ``warmup_steps`` 2,160: every schedule warms up linearly to its peak over the first
    2,160 steps, before the first logged row.
    """
    files = _multipowerlaw_files(path)
    if not files:
        raise RunsTableError("no csv_<size>/<schedule>.csv files with the header step,lr,loss here", source=str(path))
    frames = []
    for file in files:
        size = _MPL_FOLDER.match(file.parent.name).group(1)
        try:
            table = pd.read_csv(file)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError, OSError) as err:
            raise RunsTableError(f"could not read the table: {err}", source=str(file)) from None
        label = f"{file.parent.name}/{file.name}"
        frames.append(
            pd.DataFrame(
                {
                    "run": f"{size}/{file.stem}",
                    "params": round(float(size) * 1e6),
                    "step": table["step"],
                    "valid_domain": "valid",
                    "loss": table["loss"],
                    LR: table["lr"],
                    WARMUP: MULTIPOWERLAW_WARMUP,
                    _ROW: [f"{label}:{i + 2}" for i in range(len(table))],
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


@register
class MultipowerlawReader(Reader):
    name = "multipowerlaw"
    description = "multi-power law loss curves, csv_<size>/<schedule>.csv"
    priority = 30  # before mixinglaws, whose folder rule (any sub-folder) its folder of csv_<size> folders passes

    def detect(self, path: Path) -> bool:
        if path.is_file() and not path.name.lower().endswith(".csv"):
            return False
        return bool(_multipowerlaw_files(path))

    def read(self, path: Path, **options) -> pd.DataFrame:
        return read_multipowerlaw(path)
