"""The runs table: the interchange format of pilot-run losses, and :func:`load_runs`.

One row per run x step x validation domain::

    run (str) | params (int) | step (int) | tokens (float) | valid_domain (str) | loss (float > 0)
    | mix:<domain> ... (proportions of each training domain in that run)
    | lr (float > 0, optional) | warmup_steps (int >= 0, optional, one value per run)

``params``, ``step`` and ``tokens`` may be absent where every run has one scale. ``lr`` is the
learning rate at each logged step (a schedule-aware step law reads the run's schedule from it; see
``schedules.py``; before the first logged row a linear warm-up from 0 is assumed, over the run's
``warmup_steps`` where given). The table is read from a pandas DataFrame or from a file or folder in
one of the input formats of :mod:`bayes_mixlaw.formats` (one module each, found through a registry:
CSV/Parquet, the mixinglaws text format, the RegMix CSV pair, Epoch's Chinchilla points, the
multi-power law curves, a wide CSV, ...), and checked by :func:`validate_runs` (``validation.py``).
Every problem found is reported with the file, row and column it is in.

Continual pre-training: every run continues one trained checkpoint. Its losses are not a run (no
mixture, no step of the continued training) and are kept beside the table, as
``RunsTable.reference`` (a :class:`Reference`): the mixinglaws text format carries them as lines of a
base checkpoint (``.../pythia_70m_step20000``, the ``ct`` experiment), and in Python any table takes
one with ``dataclasses.replace(table, reference=Reference(...))`` or the law's ``reference=`` argument.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

MIX_PREFIX = "mix:"
SCALE_COLUMNS = ("params", "step", "tokens")
KEY_COLUMNS = ("run", "params", "step", "tokens", "valid_domain")
# Optional: the standard deviation of a loss that is itself an estimate (e.g. an upstream posterior
# summary, or a spread over seeds); the mixing law adds it to its noise (errors in variables).
LOSS_SD = "loss_sd"
# Optional: the learning rate at each logged step, and each run's linear warm-up length (steps).
LR = "lr"
WARMUP = "warmup_steps"
SCHEDULE_COLUMNS = (LR, WARMUP)
REQUIRED_COLUMNS = ("run", "valid_domain", "loss")
# The row number of the user's input (file line or DataFrame index) travels in this column.
_ROW = "__row__"

# Pythia non-embedding parameter counts (shared/data/README.md), for the mixinglaws run names.
PYTHIA_PARAMS = {
    "70M": 18_915_328,
    "160M": 85_056_000,
    "305M": 201_541_632,
    "410M": 302_311_424,
    "1B": 805_736_448,
}


class RunsTableError(ValueError):
    """Bad input in a runs table; the message names the file, row and column."""

    def __init__(self, message: str, *, source: str | None = None, row=None, column: str | None = None):
        self.source, self.row, self.column = source, row, column
        where = []
        if source:
            where.append(str(source))
        if row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"column '{column}'")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)


@dataclass(frozen=True, eq=False)
class Reference:
    """Losses of the checkpoint every run continues from (continual pre-training), the "starting loss".

    ``losses``: loss per validation domain (a Series indexed by domain name); ``checkpoint``: its name
    (e.g. ``pythia_70m_step20000``); ``original_domain``: the training domain (a ``mix:`` column) that
    checkpoint was trained on, where known (``None``: say it when asking for the critical proportion).
    """

    losses: pd.Series
    checkpoint: str = "reference"
    original_domain: str | None = None

    @classmethod
    def from_any(cls, value, *, checkpoint: str = "reference", original_domain: str | None = None) -> Reference:
        """A Reference from itself, a mapping or Series (domain -> loss), or a DataFrame with
        ``valid_domain`` and ``loss`` columns; each loss must be a finite positive number. Errors name
        ``checkpoint``."""
        source = checkpoint
        if isinstance(value, Reference):
            return value if original_domain is None else cls(value.losses, value.checkpoint, original_domain)
        if isinstance(value, pd.DataFrame):
            missing = [c for c in ("valid_domain", "loss") if c not in value]
            if missing:
                raise RunsTableError(f"a reference table needs 'valid_domain' and 'loss' columns; missing {missing}", source=source, column=missing[0])
            value = pd.Series(value["loss"].to_numpy(), index=value["valid_domain"].astype(str))
        losses = pd.Series(value, dtype=object) if not isinstance(value, pd.Series) else value.copy()
        if len(losses) == 0:
            raise RunsTableError("the reference has no losses", source=source)
        numbers = pd.to_numeric(losses, errors="coerce").astype(float)
        bad = ~np.isfinite(numbers.to_numpy()) | (numbers.to_numpy() <= 0)
        if bad.any():
            name = numbers.index[np.flatnonzero(bad)[0]]
            raise RunsTableError(f"the reference loss of '{name}' is {losses[name]!r}; losses must be finite positive numbers", source=source, column="loss")
        if numbers.index.duplicated().any():
            raise RunsTableError(f"validation domain '{numbers.index[numbers.index.duplicated()][0]}' has two reference losses", source=source)
        numbers.index = numbers.index.astype(str)
        return cls(numbers, checkpoint, original_domain)

    def check(self, valid_domains: list[str], source: str = "reference") -> Reference:
        """This reference over exactly ``valid_domains``: a domain without a reference loss is an error
        naming it; reference losses of domains absent from the runs are dropped."""
        missing = [d for d in valid_domains if d not in self.losses.index]
        if missing:
            raise RunsTableError(
                f"no reference (starting) loss for validation domain(s) {_short_list(missing, 5)}; the reference '{self.checkpoint}' has "
                f"{_short_list(list(self.losses.index), 5)}",
                source=source,
            )
        return Reference(self.losses.loc[list(valid_domains)], self.checkpoint, self.original_domain)


@dataclass(frozen=True)
class RunsTable:
    """A validated runs table.

    ``data`` holds the tidy rows (the user's row numbers are kept out of it); ``source`` names where
    it came from, for messages. ``reference``: the starting checkpoint's losses where the runs continue
    one (continual pre-training), else ``None``.
    """

    data: pd.DataFrame
    source: str = "<DataFrame>"
    notes: tuple[str, ...] = field(default=())
    reference: Reference | None = None

    @property
    def train_domains(self) -> list[str]:
        return [c[len(MIX_PREFIX) :] for c in self.data.columns if c.startswith(MIX_PREFIX)]

    @property
    def mix_columns(self) -> list[str]:
        return [c for c in self.data.columns if c.startswith(MIX_PREFIX)]

    @property
    def valid_domains(self) -> list[str]:
        return list(pd.unique(self.data["valid_domain"]))

    @property
    def runs(self) -> list[str]:
        return list(pd.unique(self.data["run"]))

    def scale_values(self, column: str) -> list:
        """Sorted distinct values of a scale column (``params``, ``step``, ``tokens``); [] if absent."""
        if column not in self.data:
            return []
        return sorted(pd.unique(self.data[column]).tolist())

    def mixtures(self) -> pd.DataFrame:
        """One row per run: its ``mix:*`` proportions."""
        return self.data.groupby("run", sort=False)[self.mix_columns].first()

    def select(self, params: int | None = None, step: int | None = None, tokens: float | None = None) -> RunsTable:
        """The rows at one scale. A value not in the table is an error that lists the ones that are."""
        data = self.data
        for column, value in (("params", params), ("step", step), ("tokens", tokens)):
            if value is None:
                continue
            available = self.scale_values(column)
            if not available:
                raise RunsTableError(f"the table has no '{column}' column to select {column}={value} from", source=self.source)
            if value not in available:
                raise RunsTableError(
                    f"{column}={value} is not in the table; it has {column} in {_short_list(available)}",
                    source=self.source,
                    column=column,
                )
            data = data[data[column] == value]
        return replace(self, data=data.reset_index(drop=True))

    def single_scale(self) -> RunsTable:
        """This table if it holds one scale; otherwise an error saying which option chooses one."""
        for column in SCALE_COLUMNS:
            values = self.scale_values(column)
            if len(values) > 1:
                flag = {"params": "--params", "step": "--step", "tokens": "--tokens"}[column]
                raise RunsTableError(
                    f"the table has {len(values)} values of '{column}' ({_short_list(values)}); "
                    f"a mixing law is fitted at one scale: choose one with {flag} (Python: .select({column}=...))",
                    source=self.source,
                    column=column,
                )
        return self

    def pivot(self) -> pd.DataFrame:
        """Losses as a (run x valid_domain) table at a single scale."""
        return self.single_scale().data.pivot(index="run", columns="valid_domain", values="loss")


def _plain(value):
    """A numpy scalar as the Python value it holds (messages show 5, not np.int64(5))."""
    return value.item() if isinstance(value, np.generic) else value


def _short_list(values, n: int = 8) -> str:
    values = list(values)
    shown = ", ".join(str(v) for v in values[:n])
    return shown + (f", ... ({len(values)} in all)" if len(values) > n else "")


def load_runs(
    source,
    format: str = "auto",
    *,
    train_domains: list[str] | None = None,
    tolerance: float = 0.01,
    renormalize: bool = False,
) -> RunsTable:
    """Read a runs table from a DataFrame, or a file or folder in one of the registered input formats
    (:mod:`bayes_mixlaw.formats`: tidy CSV/Parquet, mixinglaws text, RegMix pair, Epoch's Chinchilla
    points, multi-power law curves, wide CSV, ...).

    ``format`` is ``auto`` (the first format whose detection rule recognises the path) or a registered
    format's name (:data:`FORMATS`). ``ct`` is the mixinglaws format of a continual pre-training
    experiment: it must hold the starting checkpoint's losses, which become ``.reference`` (the
    ``mixinglaws`` format keeps them too where a file has them).
    ``train_domains`` names the proportions of the mixinglaws format (guessed from the folder
    name for the published experiments). ``tolerance`` and ``renormalize``: see :func:`validate_runs`.
    """
    from bayes_mixlaw.validation import validate_runs

    if isinstance(source, RunsTable):
        return source
    if isinstance(source, pd.DataFrame):
        return validate_runs(source, tolerance=tolerance, renormalize=renormalize)
    from bayes_mixlaw.formats import AUTO, detect_format, get_reader

    path = Path(source)
    if not path.exists():
        raise RunsTableError(f"no such file or folder: {path}")
    _check_not_empty(path)
    reader = detect_format(path) if format == AUTO else get_reader(format, source=str(path))
    result = reader.read(path, train_domains=train_domains)
    frame, reference = result if isinstance(result, tuple) else (result, None)
    table = validate_runs(frame, str(path), tolerance=tolerance, renormalize=renormalize)
    return table if reference is None else replace(table, reference=reference.check(table.valid_domains, str(path)))


# Names defined elsewhere and still importable from here: the validation (validation.py, which imports
# this module) and the readers that moved to bayes_mixlaw.formats (one module per input format).
_MOVED = {
    "validate_runs": "bayes_mixlaw.validation",
    "read_tidy": "bayes_mixlaw.formats.tidy",
    "read_mixinglaws": "bayes_mixlaw.formats.mixinglaws",
    "_read_mixinglaws": "bayes_mixlaw.formats.mixinglaws",
    "MIXINGLAWS_BATCH_TOKENS": "bayes_mixlaw.formats.mixinglaws",
    "MIXINGLAWS_TRAIN_DOMAINS": "bayes_mixlaw.formats.mixinglaws",
    "MIXINGLAWS_ORIGINAL_DOMAIN": "bayes_mixlaw.formats.mixinglaws",
    "read_regmix": "bayes_mixlaw.formats.regmix",
    "read_chinchilla": "bayes_mixlaw.formats.chinchilla",
    "read_multipowerlaw": "bayes_mixlaw.formats.multipowerlaw",
    "MULTIPOWERLAW_WARMUP": "bayes_mixlaw.formats.multipowerlaw",
}


def __getattr__(name: str):
    """``FORMATS`` (the ``--format`` choices: ``auto`` and every registered format, in auto-detection
    order), ``FORMAT_DESCRIPTIONS`` (their one-line help, same order), computed from the registry when
    asked for, and the names of ``_MOVED``."""
    import importlib

    if name == "FORMATS":
        return importlib.import_module("bayes_mixlaw.formats").format_names()
    if name == "FORMAT_DESCRIPTIONS":
        return importlib.import_module("bayes_mixlaw.formats").format_descriptions()
    if name in _MOVED:
        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_SEPARATORS = {";": "';'", "\t": "tabs", "|": "'|'"}


def _check_not_empty(path: Path) -> None:
    if path.is_file() and path.stat().st_size == 0:
        raise RunsTableError("the file is empty (0 bytes)", source=str(path))


def read_table_file(path: Path) -> pd.DataFrame:
    """A CSV (comma-separated, UTF-8) or Parquet file as read; an empty file, a file that is not text
    and one whose columns are separated by something other than commas are each named as such."""
    path = Path(path)
    _check_not_empty(path)
    try:
        if path.name.lower().endswith((".parquet", ".pq")):
            return pd.read_parquet(path)
        frame = pd.read_csv(path)
    except UnicodeDecodeError:
        raise RunsTableError("the file is not a UTF-8 text CSV (binary or another encoding)", source=str(path)) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError, OSError) as err:
        raise RunsTableError(f"could not read the table: {err}", source=str(path)) from None
    header = [str(c) for c in frame.columns]
    for sep, label in _SEPARATORS.items():
        if any(sep in c for c in header):
            raise RunsTableError(
                f"its columns are separated by {label}, not commas (header {_short_list(header, 2)[:100]!r}); "
                "save it as a comma-separated CSV (pandas: to_csv(path, index=False))",
                source=str(path),
            )
    return frame


def read_mixtures(source, train_domains: list[str] | None = None, *, tolerance: float = 0.01, renormalize: bool = False) -> pd.DataFrame:
    """A table of mixtures to predict at: ``mix:<domain>`` columns and an optional ``name``.

    Checked like a runs table (proportions in [0, 1] summing to one, row numbers in errors). With
    ``train_domains``, the columns must be exactly those domains (a missing one is an error; order
    follows ``train_domains``).
    """
    from bayes_mixlaw.validation import validate_runs

    if isinstance(source, pd.DataFrame):
        frame, name, offset = source.copy(), "<DataFrame>", 0
        if "name" not in frame and frame.index.name is not None:  # e.g. RunsTable.mixtures(): run names as the index
            frame.insert(0, "name", frame.index.astype(str))
        frame = frame.reset_index(drop=True)
    else:
        path = Path(source)
        if not path.exists():
            raise RunsTableError(f"no such file: {path}")
        frame = read_table_file(path)
        name, offset = str(path), 2
    if len(frame) == 0:
        raise RunsTableError("the mixtures table is empty", source=name)
    mix_cols = [c for c in frame.columns if str(c).startswith(MIX_PREFIX)]
    other = [c for c in frame.columns if c not in mix_cols and c != "name"]
    if other:
        raise RunsTableError(
            f"unknown column(s) {other}; a mixtures table has 'mix:<domain>' columns and an optional 'name'", source=name, column=str(other[0])
        )
    if train_domains is not None:
        expected = [MIX_PREFIX + d for d in train_domains]
        missing = [c for c in expected if c not in mix_cols]
        extra = [c for c in mix_cols if c not in expected]
        if missing or extra:
            raise RunsTableError(
                f"the fit's training domains are {expected}; "
                + (f"missing {missing}" if missing else "")
                + ("; " if missing and extra else "")
                + (f"not in the fit: {extra}" if extra else ""),
                source=name,
                column=(missing or extra)[0],
            )
        mix_cols = expected
    labels = [f"row {i + offset}" for i in range(len(frame))]
    if "name" in frame:
        given = frame["name"].notna() & (frame["name"].astype(str).str.strip() != "")
        twice = frame["name"].duplicated() & given
        if twice.any():
            i = int(np.flatnonzero(twice)[0])
            first = int(np.flatnonzero((frame["name"] == frame["name"].iloc[i]).to_numpy())[0])
            raise RunsTableError(
                f"the name {frame['name'].iloc[i]!r} is given twice (rows {first + offset} and {i + offset}); each mixture needs its own name",
                source=name,
                row=i + offset,
                column="name",
            )
        labels = [str(v) if ok else label for v, ok, label in zip(frame["name"], given, labels)]
    check = frame[mix_cols].copy()
    check.insert(0, "run", labels)
    check["valid_domain"], check["loss"] = "-", 1.0
    check[_ROW] = np.arange(len(frame)) + offset
    table = validate_runs(check, name, tolerance=tolerance, renormalize=renormalize, unit="mixture")
    out = table.data[mix_cols].copy()
    if "name" in frame:
        out.insert(0, "name", frame["name"].astype(str).to_numpy())
    return out
