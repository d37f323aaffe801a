"""The runs table: the interchange format of pilot-run losses, its loaders and its validation.

One row per run x step x validation domain::

    run (str) | params (int) | step (int) | tokens (float) | valid_domain (str) | loss (float > 0)
    | mix:<domain> ... (proportions of each training domain in that run)
    | lr (float > 0, optional) | warmup_steps (int >= 0, optional, one value per run)

``params``, ``step`` and ``tokens`` may be absent where every run has one scale. ``lr`` is the
learning rate at each logged step (a schedule-aware step law reads the run's schedule from it; see
``schedules.py``; before the first logged row a linear warm-up from 0 is assumed, over the run's
``warmup_steps`` where given). The table is read from CSV, Parquet, a pandas DataFrame, the mixinglaws
text format (a file or a folder of them), the RegMix CSV pair, Epoch's Chinchilla points or the
multi-power law curves (``csv_<size>/<schedule>.csv``). Every problem found is reported with the file,
row and column it is in.

Continual pre-training: every run continues one trained checkpoint. Its losses are not a run (no
mixture, no step of the continued training) and are kept beside the table, as
``RunsTable.reference`` (a :class:`Reference`): the mixinglaws text format carries them as lines of a
base checkpoint (``.../pythia_70m_step20000``, the ``ct`` experiment), and in Python any table takes
one with ``dataclasses.replace(table, reference=Reference(...))`` or the law's ``reference=`` argument.
"""

from __future__ import annotations

import gzip
import re
import warnings
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
# The multi-power law curves (Luo et al., 2025): every schedule warms up linearly over 2,160 steps.
MULTIPOWERLAW_WARMUP = 2160
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
# Tokens per optimiser step in the mixinglaws runs.
MIXINGLAWS_BATCH_TOKENS = 1_048_576
# Training domains of the mixinglaws experiments, in the order of the proportions in run names.
MIXINGLAWS_TRAIN_DOMAINS = {
    "RedPajama": ["CommonCrawl", "C4", "GitHub", "Wikipedia", "Books", "ArXiv", "StackExchange"],
    "5Mix": ["academic", "prose", "dialogue", "symbolic", "internet"],
    "3Mix": ["Github", "Books3", "Pile-CC"],
    "2Mix": ["Github", "Pile-CC"],
    "ct": ["Pile", "Python"],
}
# Continual pre-training experiments: the training domain the starting checkpoint was trained on.
MIXINGLAWS_ORIGINAL_DOMAIN = {"ct": "Pile"}
# A base checkpoint in the mixinglaws format (the model every run continues from): ``<name>_step<N>``.
_BASE_CHECKPOINT = re.compile(r"^(?P<name>.+)_step(?P<step>\d+)$")


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
    def from_any(cls, value, *, checkpoint: str = "reference", original_domain: str | None = None) -> "Reference":
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

    def check(self, valid_domains: list[str], source: str = "reference") -> "Reference":
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
        return [c[len(MIX_PREFIX):] for c in self.data.columns if c.startswith(MIX_PREFIX)]

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

    def select(self, params: int | None = None, step: int | None = None, tokens: float | None = None) -> "RunsTable":
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

    def single_scale(self) -> "RunsTable":
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


# --------------------------------------------------------------------------------------------------
# validation


def validate_runs(
    frame: pd.DataFrame,
    source: str = "<DataFrame>",
    *,
    tolerance: float = 0.01,
    renormalize: bool = False,
    unit: str = "run",
) -> RunsTable:
    """Check a tidy runs table and return it as a :class:`RunsTable`.

    Raises :class:`RunsTableError` naming the row and column of: an empty table; missing, unknown
    or empty-named columns; missing run or domain names; NaN, infinite or non-positive losses;
    non-positive or non-integer sizes and steps; proportions that are missing, outside [0, 1] or
    do not sum to one within ``tolerance``; a run whose mixture changes between rows; and the same
    (run, params, step, tokens, valid_domain) twice with different losses. With ``renormalize`` a
    mixture whose sum is off is divided by its sum instead, with a warning that names the runs.
    ``unit`` is what messages call a row's ``run`` (``mixture`` for :func:`read_mixtures`).
    """
    if not isinstance(frame, pd.DataFrame):
        raise RunsTableError(f"expected a pandas DataFrame, got {type(frame).__name__}", source=source)
    if not (isinstance(tolerance, (int, float)) and 0 <= tolerance < 1):
        raise RunsTableError(f"the tolerance (--tolerance) is {tolerance:g}; it is how far a mixture's sum may be from 1, "
                             "a number >= 0 and below 1 (default 0.01)", source=source)
    frame = frame.copy()
    if _ROW not in frame:
        frame[_ROW] = frame.index
    if len(frame) == 0:
        raise RunsTableError("the runs table is empty", source=source)

    columns = [c for c in frame.columns if c != _ROW]
    for c in columns:
        if not isinstance(c, str) or not c.strip():
            raise RunsTableError("a column has an empty or non-text name", source=source, column=str(c))
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise RunsTableError(
            f"required column(s) {missing} missing; a runs table needs {list(REQUIRED_COLUMNS)}, "
            f"optional {list(SCALE_COLUMNS)} and one 'mix:<domain>' column per training domain",
            source=source,
            column=missing[0],
        )
    known = set(REQUIRED_COLUMNS) | set(SCALE_COLUMNS) | {LOSS_SD} | set(SCHEDULE_COLUMNS)
    unknown = [c for c in columns if c not in known and not c.startswith(MIX_PREFIX)]
    if unknown:
        raise RunsTableError(
            f"unknown column(s) {unknown}; allowed are {sorted(known)} and 'mix:<domain>' "
            "(proportions of a training domain need the 'mix:' prefix)",
            source=source,
            column=unknown[0],
        )
    mix_cols = [c for c in columns if c.startswith(MIX_PREFIX)]
    for c in mix_cols:
        if not c[len(MIX_PREFIX):].strip():
            raise RunsTableError("a mixture column has no domain name after 'mix:'", source=source, column=c)

    rows = frame[_ROW].to_numpy()

    def fail(mask, column, message):
        i = int(np.flatnonzero(np.asarray(mask))[0])
        extra = int(np.sum(mask)) - 1
        more = f" ({extra} more row(s) like it)" if extra else ""
        row = pd.Series({k: _plain(v) for k, v in frame.iloc[i].items()}, dtype=object)  # 1.5, not np.float64(1.5)
        raise RunsTableError(message(row) + more, source=source, row=rows[i], column=column)

    for c in ("run", "valid_domain"):
        bad = frame[c].isna() | (frame[c].astype(str).str.strip() == "")
        if bad.any():
            fail(bad, c, lambda row: "missing name")
        frame[c] = frame[c].astype(str)

    loss = pd.to_numeric(frame["loss"], errors="coerce")
    bad = loss.isna() & frame["loss"].notna()
    if bad.any():
        fail(bad, "loss", lambda row: f"loss {row['loss']!r} is not a number")
    values = loss.to_numpy(dtype=float)
    bad = ~np.isfinite(values)
    if bad.any():
        fail(bad, "loss", lambda row: f"loss is {row['loss']}; losses must be finite")
    bad = values <= 0
    if bad.any():
        fail(bad, "loss", lambda row: f"loss is {row['loss']}; losses must be positive")
    frame["loss"] = values

    if LOSS_SD in frame:
        sd = pd.to_numeric(frame[LOSS_SD], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(sd) | (sd < 0)
        if bad.any():
            fail(bad, LOSS_SD, lambda row: f"loss_sd is {row[LOSS_SD]!r}; it must be a finite number >= 0")
        frame[LOSS_SD] = sd

    for c in SCALE_COLUMNS:
        if c not in frame:
            continue
        numbers = pd.to_numeric(frame[c], errors="coerce")
        bad = (numbers.isna() | ~np.isfinite(numbers.to_numpy(dtype=float))).to_numpy()
        if bad.any():
            fail(bad, c, lambda row: f"{c} is {row[c]!r}; it must be a finite number")
        bad = (numbers <= 0).to_numpy()
        if bad.any():
            fail(bad, c, lambda row: f"{c} is {row[c]!r}; it must be positive")
        if c in ("params", "step"):
            bad = (numbers != np.round(numbers)).to_numpy()
            if bad.any():
                fail(bad, c, lambda row: f"{c} is {row[c]!r}; it must be a whole number")
            frame[c] = numbers.astype(np.int64)
        else:
            frame[c] = numbers.astype(float)

    def optional_numbers(column: str) -> tuple[np.ndarray, np.ndarray]:
        """The column as floats (NaN where left empty) and where it is given; a non-number fails."""
        numbers = pd.to_numeric(frame[column], errors="coerce")
        bad = (numbers.isna() & frame[column].notna()).to_numpy()
        if bad.any():
            fail(bad, column, lambda row: f"{column} {row[column]!r} is not a number")
        values = numbers.to_numpy(dtype=float)
        return values, ~np.isnan(values)

    if LR in frame:
        values, given = optional_numbers(LR)
        bad = given & ~np.isfinite(values)
        if bad.any():
            fail(bad, LR, lambda row: f"lr is {row[LR]}; a learning rate must be finite")
        bad = given & (values <= 0)
        if bad.any():
            fail(bad, LR, lambda row: f"lr is {row[LR]}; a learning rate must be positive (leave it empty where unknown)")
        if "step" not in frame:
            raise RunsTableError("an 'lr' column needs a 'step' column (the learning rate at each logged step)", source=source, column=LR)
        frame[LR] = values
        keyed = frame[given]
        spread = keyed.groupby(["run", "step"], sort=False)[LR].nunique() > 1
        if spread.any():
            run, step = spread.index[spread.to_numpy()][0]
            these = keyed[(keyed["run"] == run) & (keyed["step"] == step)]
            raise RunsTableError(
                f"run '{run}' has different learning rates at step {step}: {_short_list(these[LR].unique().tolist(), 4)} "
                f"(rows {_short_list(these[_ROW].tolist(), 4)}); one run has one learning rate per step",
                source=source,
                row=these[_ROW].iloc[1],
                column=LR,
            )

    if WARMUP in frame:
        values, given = optional_numbers(WARMUP)
        bad = given & (~np.isfinite(values) | (values < 0) | (values != np.round(values)))
        if bad.any():
            fail(bad, WARMUP, lambda row: f"warmup_steps is {row[WARMUP]!r}; it must be a whole number of steps >= 0")
        frame[WARMUP] = pd.array(np.where(given, values, np.nan), dtype="Float64").round().astype("Int64")
        changing = frame.groupby("run", sort=False)[WARMUP].nunique(dropna=False) > 1
        if changing.any():
            run = changing.index[changing.to_numpy()][0]
            these = frame[frame["run"] == run]
            j = int(np.flatnonzero((these[WARMUP] != these[WARMUP].iloc[0]).fillna(True).to_numpy())[0])
            raise RunsTableError(
                f"run '{run}' changes its warmup_steps: {these[WARMUP].iloc[0]} at row {these[_ROW].iloc[0]} "
                f"but {these[WARMUP].iloc[j]} here; a run has one warm-up",
                source=source,
                row=these[_ROW].iloc[j],
                column=WARMUP,
            )

    if mix_cols:
        props = frame[mix_cols].apply(pd.to_numeric, errors="coerce")
        for c in mix_cols:
            col = props[c].to_numpy(dtype=float)
            bad = ~np.isfinite(col)
            if bad.any():
                fail(bad, c, lambda row: f"proportion {row[c]!r} is missing or not a number")
            bad = (col < 0) | (col > 1)
            if bad.any():
                fail(bad, c, lambda row: f"proportion {row[c]} is outside [0, 1]")
        totals = props.sum(axis=1).to_numpy()
        off = np.abs(totals - 1) > tolerance
        if off.any() and not renormalize:
            i = int(np.flatnonzero(off)[0])
            runs_off = pd.unique(frame["run"][off])
            raise RunsTableError(
                f"the proportions of {unit} '{frame['run'].iloc[i]}' sum to {totals[i]:.6g}, not 1 "
                f"(tolerance {tolerance:g}; {len(runs_off)} {unit}(s) like it: {_short_list(runs_off, 5)}). "
                "Fix the table, raise the tolerance, or renormalise (--renormalize; Python: renormalize=True)",
                source=source,
                row=rows[i],
                column=", ".join(mix_cols),
            )
        if off.any():
            runs_off = pd.unique(frame["run"][off])
            warnings.warn(
                f"{source}: renormalised the mixtures of {len(runs_off)} {unit}(s) whose proportions did not sum "
                f"to 1 within {tolerance:g}: {_short_list(runs_off, 5)} (sums {_short_list(np.unique(totals[off].round(6)), 5)})",
                UserWarning,
                stacklevel=2,
            )
            props.loc[off] = props.loc[off].div(totals[off], axis=0)
        frame[mix_cols] = props.astype(float)

        changing = frame.groupby("run", sort=False)[mix_cols].nunique(dropna=False).max(axis=1) > 1
        if changing.any():
            run = changing.index[changing.to_numpy()][0]
            these = frame[frame["run"] == run]
            first = these[mix_cols].iloc[0]
            differs = these[mix_cols].ne(first).any(axis=1).to_numpy()
            j = int(np.flatnonzero(differs)[0])
            col = [c for c in mix_cols if these[c].iloc[j] != first[c]][0]
            raise RunsTableError(
                f"run '{run}' changes its mixture: {col} is {first[col]} at row {these[_ROW].iloc[0]} "
                f"but {these[col].iloc[j]} here; one run has one mixture",
                source=source,
                row=these[_ROW].iloc[j],
                column=col,
            )

    keys = [c for c in KEY_COLUMNS if c in frame]
    duplicated = frame.duplicated(keys, keep=False)
    if duplicated.any():
        groups = frame[duplicated].groupby(keys, sort=False)["loss"]
        conflicting = groups.nunique() > 1
        if conflicting.any():
            key = conflicting.index[conflicting.to_numpy()][0]
            key = key if isinstance(key, tuple) else (key,)
            mask = np.ones(len(frame), dtype=bool)
            for k, v in zip(keys, key):
                mask &= (frame[k] == v).to_numpy()
            clash = frame[mask]
            raise RunsTableError(
                f"{ {k: _plain(v) for k, v in zip(keys, key)} } appears {len(clash)} times with different losses "
                f"{_short_list(clash['loss'].tolist(), 4)} (rows {_short_list(clash[_ROW].tolist(), 4)})",
                source=source,
                row=clash[_ROW].iloc[1],
                column="loss",
            )
        frame = frame.drop_duplicates(keys, keep="first")

    ordered = [c for c in ("run", *SCALE_COLUMNS, "valid_domain", "loss", LOSS_SD, *SCHEDULE_COLUMNS) if c in frame] + mix_cols
    return RunsTable(frame[ordered].reset_index(drop=True), source)


# --------------------------------------------------------------------------------------------------
# loaders


def load_runs(
    source,
    format: str = "auto",
    *,
    train_domains: list[str] | None = None,
    tolerance: float = 0.01,
    renormalize: bool = False,
) -> RunsTable:
    """Read a runs table from a DataFrame, CSV, Parquet, mixinglaws text file/folder, RegMix pair,
    Epoch's Chinchilla points or the multi-power law curves.

    ``format`` is ``auto`` (guessed from the path), ``tidy``, ``mixinglaws``, ``ct``, ``regmix``,
    ``chinchilla`` or ``multipowerlaw``. ``ct`` is the mixinglaws format of a continual pre-training
    experiment: it must hold the starting checkpoint's losses, which become ``.reference`` (the
    ``mixinglaws`` format keeps them too where a file has them).
    ``train_domains`` names the proportions of the mixinglaws format (guessed from the folder
    name for the published experiments). ``tolerance`` and ``renormalize``: see :func:`validate_runs`.
    """
    if isinstance(source, RunsTable):
        return source
    if isinstance(source, pd.DataFrame):
        return validate_runs(source, tolerance=tolerance, renormalize=renormalize)
    path = Path(source)
    if not path.exists():
        raise RunsTableError(f"no such file or folder: {path}")
    _check_not_empty(path)
    if format == "auto":
        format = _guess_format(path)
    reference = None
    if format == "tidy":
        frame = read_tidy(path)
    elif format in ("mixinglaws", "ct"):
        frame, reference = _read_mixinglaws(path, train_domains)
        if format == "ct" and reference is None:
            raise RunsTableError(
                "no starting checkpoint in these files: the ct format needs lines of the checkpoint every run continues from "
                "(checkpoint path ending in '<name>_step<N>', e.g. pythia_70m_step20000)",
                source=str(path),
            )
    elif format == "regmix":
        frame = read_regmix(path)
    elif format == "chinchilla":
        frame = read_chinchilla(path)
    elif format == "multipowerlaw":
        frame = read_multipowerlaw(path)
    else:
        raise RunsTableError(f"unknown format '{format}'; choose one of {', '.join(FORMATS)}", source=str(path))
    table = validate_runs(frame, str(path), tolerance=tolerance, renormalize=renormalize)
    return table if reference is None else replace(table, reference=reference.check(table.valid_domains, str(path)))


FORMATS = ("auto", "tidy", "mixinglaws", "ct", "regmix", "chinchilla", "multipowerlaw")
# What each format reads, for --help (every format of FORMATS has one).
FORMAT_DESCRIPTIONS = {
    "auto": "guessed from the path",
    "tidy": "CSV/Parquet runs table",
    "mixinglaws": "Data Mixing Laws .txt file or folder",
    "ct": "mixinglaws files of a continual pre-training run with its starting checkpoint",
    "regmix": "RegMix train_mixture/train_pile_loss CSV pair or folder",
    "chinchilla": "Epoch AI's digitised Chinchilla points CSV",
    "multipowerlaw": "multi-power law loss curves, csv_<size>/<schedule>.csv",
}


def _guess_format(path: Path) -> str:
    if path.is_dir():
        names = {p.name for p in path.iterdir()}
        if {"train_mixture_1m.csv", "train_pile_loss_1m.csv"} <= names or any(n.startswith("train_mixture") for n in names):
            return "regmix"
        if _multipowerlaw_files(path):
            return "multipowerlaw"
        if any(n.endswith((".txt", ".txt.gz")) for n in names) or any((path / n).is_dir() for n in names):
            return "mixinglaws"
        raise RunsTableError("cannot tell the format of this folder; pass --format", source=str(path))
    name = path.name.lower()
    if name.endswith((".txt", ".txt.gz")):
        return "mixinglaws"
    if name.startswith(("train_mixture", "train_pile_loss")):
        return "regmix"
    if name.endswith((".csv", ".csv.gz")) and {"Model Size", "Training FLOP"} <= set(pd.read_csv(path, nrows=0).columns):
        return "chinchilla"
    if name.endswith(".csv") and _multipowerlaw_files(path):
        return "multipowerlaw"
    if name.endswith((".csv", ".csv.gz", ".parquet", ".pq")):
        return "tidy"
    raise RunsTableError("cannot tell the format from the file name; pass --format", source=str(path))


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


def read_tidy(path: Path) -> pd.DataFrame:
    """A tidy CSV or Parquet file; ``__row__`` holds the line number (CSV) or row number (Parquet)."""
    frame = read_table_file(path)
    frame[_ROW] = np.arange(len(frame)) + (0 if path.name.lower().endswith((".parquet", ".pq")) else 2)  # line 1 is the header
    return frame


def _read_text(path: Path) -> str:
    raw = path.read_bytes()
    return gzip.decompress(raw).decode() if path.name.endswith(".gz") else raw.decode()


_SIZE = re.compile(r"^(\d+(?:\.\d+)?)([MB])$")


def _size_to_params(size: str) -> int:
    if size in PYTHIA_PARAMS:
        return PYTHIA_PARAMS[size]
    m = _SIZE.match(size)
    if not m:
        raise ValueError(size)
    return int(float(m.group(1)) * (1e6 if m.group(2) == "M" else 1e9))


def read_mixinglaws(path: Path, train_domains: list[str] | None = None) -> pd.DataFrame:
    """The mixinglaws text format: ``<checkpoint path> TAB <validation file> TAB <loss>`` lines.

    The run is the last-but-one component of the checkpoint path, ``<size>_<tag>_<id>-<p1>-<p2>...``
    (or ``<id>-<p1>-...`` with the size taken from the file name, ``410M.txt``); the step is the last
    component. Lines whose step is not a number (the ``last`` alias) are left out with a warning; a
    base checkpoint's lines (last component ``<name>_step<N>``: the model a continual pre-training
    run starts from) are left out here and read by :func:`load_runs` as the table's ``reference``.
    ``path`` is one file or a folder of them (searched recursively). ``params`` are the Pythia
    non-embedding sizes and ``tokens = step x 1,048,576``. Validation files ``<x>.valid.<Domain>.bin``
    give ``<Domain>``; ``<name>.valid.bin`` (the ct experiment's ``starcoder.python.valid.bin``) gives ``<name>``.
    """
    return _read_mixinglaws(path, train_domains)[0]


def _validation_name(valid_file: str) -> str:
    valid = re.sub(r"\.bin$", "", Path(valid_file).name)
    valid = re.sub(r"^.*\.valid\.", "", valid)
    return re.sub(r"\.valid$", "", valid)


def _read_mixinglaws(path: Path, train_domains: list[str] | None = None) -> tuple[pd.DataFrame, Reference | None]:
    """:func:`read_mixinglaws` and the base checkpoint's losses (a :class:`Reference`, or None)."""
    files = sorted(p for p in path.rglob("*") if p.name.endswith((".txt", ".txt.gz"))) if path.is_dir() else [path]
    if not files:
        raise RunsTableError("no mixinglaws .txt files in this folder", source=str(path))
    if train_domains is None:
        for part in [path.name, *[p.name for p in path.parents]]:
            if part in MIXINGLAWS_TRAIN_DOMAINS:
                train_domains = MIXINGLAWS_TRAIN_DOMAINS[part]
                break
    frames, skipped, base = [], {}, {}
    original = next((MIXINGLAWS_ORIGINAL_DOMAIN[part] for part in [path.name, *[p.name for p in path.parents]] if part in MIXINGLAWS_ORIGINAL_DOMAIN), None)
    for file in files:
        size_from_name = file.name.split(".")[0]
        records = []
        for lineno, line in enumerate(_read_text(file).splitlines(), start=1):
            if not line.strip():
                continue
            fields = line.split("\t")
            if len(fields) != 3:
                raise RunsTableError(f"expected 3 tab-separated fields, found {len(fields)}", source=str(file), row=lineno)
            checkpoint, valid_file, loss_text = fields
            parts = [p for p in checkpoint.split("/") if p]
            if len(parts) < 2:
                raise RunsTableError(f"checkpoint path {checkpoint!r} has no run/step components", source=str(file), row=lineno, column="checkpoint")
            run, step = parts[-2], parts[-1]
            if not step.isdigit():
                if _BASE_CHECKPOINT.match(step):
                    try:
                        base.setdefault(step, []).append((_validation_name(valid_file), float(loss_text), f"{file.name}:{lineno}"))
                    except ValueError:
                        raise RunsTableError(f"loss {loss_text!r} is not a number", source=str(file), row=lineno, column="loss") from None
                    continue
                skipped[step] = skipped.get(step, 0) + 1
                continue
            size, _, rest = run.partition("_")
            if not _SIZE.match(size):
                size, rest = size_from_name, run
            try:
                params = _size_to_params(size)
            except ValueError:
                raise RunsTableError(f"cannot read a model size from run {run!r} or file name", source=str(file), row=lineno, column="checkpoint") from None
            try:
                proportions = [float(p) for p in rest.rsplit("_", 1)[-1].split("-")[1:]]
            except ValueError:
                raise RunsTableError(f"cannot read mixture proportions from run name {run!r}", source=str(file), row=lineno, column="checkpoint") from None
            if not proportions:
                raise RunsTableError(f"run name {run!r} has no '-<proportion>' parts", source=str(file), row=lineno, column="checkpoint")
            valid = _validation_name(valid_file)
            try:
                loss = float(loss_text)
            except ValueError:
                raise RunsTableError(f"loss {loss_text!r} is not a number", source=str(file), row=lineno, column="loss") from None
            run_id = run if run.startswith(size + "_") else f"{size}_{run}"
            records.append((run_id, params, int(step), valid, loss, proportions, f"{file.name}:{lineno}"))
        if not records:
            continue
        widths = {len(r[5]) for r in records}
        if len(widths) > 1:
            raise RunsTableError(f"run names carry different numbers of proportions: {sorted(widths)}", source=str(file))
        frames.append((file, records))
    if not frames:
        raise RunsTableError("no usable lines", source=str(path))
    width = len(frames[0][1][0][5])
    if train_domains is None:
        raise RunsTableError(
            f"cannot tell which training domains the run names' {width} proportions are: '{path.name}' is not a published "
            f"mixinglaws experiment ({', '.join(MIXINGLAWS_TRAIN_DOMAINS)}); name them in order with --train-domains "
            f"{','.join(f'd{j + 1}' for j in range(width))} (Python: train_domains=[...])",
            source=str(path),
        )
    if len(train_domains) != width:
        raise RunsTableError(f"run names carry {width} proportions but {len(train_domains)} training domains were named: {train_domains}", source=str(path))
    rows = []
    for file, records in frames:
        if len(records[0][5]) != width:
            raise RunsTableError(f"run names carry {len(records[0][5])} proportions, other files {width}", source=str(file))
        rows.extend(records)
    frame = pd.DataFrame(
        {
            "run": [r[0] for r in rows],
            "params": [r[1] for r in rows],
            "step": [r[2] for r in rows],
            "tokens": [float(r[2] * MIXINGLAWS_BATCH_TOKENS) for r in rows],
            "valid_domain": [r[3] for r in rows],
            "loss": [r[4] for r in rows],
            _ROW: [r[6] for r in rows],
        }
    )
    mix = np.array([r[5] for r in rows])
    for j, name in enumerate(train_domains):
        frame[MIX_PREFIX + name] = mix[:, j]
    if skipped:
        warnings.warn(
            f"{path}: left out {sum(skipped.values())} line(s) whose step is not a number ({_short_list(sorted(skipped), 4)})",
            UserWarning,
            stacklevel=3,
        )
    return frame, _base_reference(base, path, original)


def _base_reference(base: dict, path: Path, original: str | None) -> Reference | None:
    """The one base checkpoint's losses (duplicated lines with equal losses are one; different losses
    for one domain, or two base checkpoints, are errors naming them)."""
    if not base:
        return None
    if len(base) > 1:
        raise RunsTableError(f"the files hold {len(base)} base checkpoints ({_short_list(sorted(base), 4)}); runs continue one", source=str(path))
    (name, lines), = base.items()
    losses: dict[str, float] = {}
    for domain, loss, where in lines:
        if domain in losses and losses[domain] != loss:
            raise RunsTableError(f"base checkpoint '{name}' has two losses for '{domain}' ({losses[domain]} and {loss}, the second at {where})", source=str(path))
        losses[domain] = loss
    return Reference.from_any(pd.Series(losses), checkpoint=name, original_domain=original)


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
        raise RunsTableError(f"runs {_short_list(sorted(missing), 5)} have losses but no mixture in {mixture_files[0].name}", source=str(loss_files[0]), column="index")
    frame = long.merge(mixture, on="index", how="left").rename(columns={"index": "run"})
    frame["run"] = frame["run"].astype(str)
    return frame


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
            raise RunsTableError(f"{column} is {_plain(frame[column].iloc[i])!r}; it must be a positive number", source=str(path),
                                 row=int(frame[_ROW].iloc[i]), column=column)
        frame[column] = numbers
    if drop_highest:
        dropped = frame["loss"].nlargest(drop_highest)
        warnings.warn(
            f"{path}: left out the {len(dropped)} highest losses ({_short_list(dropped.round(3).tolist(), 5)}; rows "
            f"{_short_list(frame.loc[dropped.index, _ROW].tolist(), 5)}), as Epoch's refit does (Besiroglu et al., 2024); "
            "Python: read_chinchilla(path, drop_highest=0) keeps them",
            UserWarning,
            stacklevel=3,
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
        frames.append(pd.DataFrame({
            "run": f"{size}/{file.stem}",
            "params": int(round(float(size) * 1e6)),
            "step": table["step"],
            "valid_domain": "valid",
            "loss": table["loss"],
            LR: table["lr"],
            WARMUP: MULTIPOWERLAW_WARMUP,
            _ROW: [f"{label}:{i + 2}" for i in range(len(table))],
        }))
    return pd.concat(frames, ignore_index=True)


def read_mixtures(source, train_domains: list[str] | None = None, *, tolerance: float = 0.01, renormalize: bool = False) -> pd.DataFrame:
    """A table of mixtures to predict at: ``mix:<domain>`` columns and an optional ``name``.

    Checked like a runs table (proportions in [0, 1] summing to one, row numbers in errors). With
    ``train_domains``, the columns must be exactly those domains (a missing one is an error; order
    follows ``train_domains``).
    """
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
        raise RunsTableError(f"unknown column(s) {other}; a mixtures table has 'mix:<domain>' columns and an optional 'name'", source=name, column=str(other[0]))
    if train_domains is not None:
        expected = [MIX_PREFIX + d for d in train_domains]
        missing = [c for c in expected if c not in mix_cols]
        extra = [c for c in mix_cols if c not in expected]
        if missing or extra:
            raise RunsTableError(
                f"the fit's training domains are {expected}; " + (f"missing {missing}" if missing else "") + ("; " if missing and extra else "") + (f"not in the fit: {extra}" if extra else ""),
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
            raise RunsTableError(f"the name {frame['name'].iloc[i]!r} is given twice (rows {first + offset} and {i + offset}); "
                                 "each mixture needs its own name", source=name, row=i + offset, column="name")
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
