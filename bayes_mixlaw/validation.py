"""Validation of a runs table: :func:`validate_runs` (importable from ``bayes_mixlaw.runs`` too).

Every problem is reported as a :class:`~bayes_mixlaw.runs.RunsTableError` naming the file, row and column.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import NoReturn

import numpy as np
import pandas as pd

from bayes_mixlaw.runs import (
    _ROW,
    KEY_COLUMNS,
    LOSS_SD,
    LR,
    MIX_PREFIX,
    REQUIRED_COLUMNS,
    SCALE_COLUMNS,
    SCHEDULE_COLUMNS,
    WARMUP,
    RunsTable,
    RunsTableError,
    _plain,
    _short_list,
)


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
    frame = _numbered_copy(frame, source, tolerance)
    mix_cols = _check_columns(frame, source)
    # each check converts its columns in place (on the copy), so later messages show the numbers read
    _check_names(frame, source)
    _check_losses(frame, source)
    for c in SCALE_COLUMNS:
        if c in frame:
            _check_scale(frame, source, c)
    if LR in frame:
        _check_lr(frame, source)
    if WARMUP in frame:
        _check_warmup(frame, source)
    if mix_cols:
        _check_proportions(frame, source, mix_cols, tolerance=tolerance, renormalize=renormalize, unit=unit)
        _check_one_mixture_per_run(frame, source, mix_cols)
    frame = _drop_duplicates(frame, source)

    ordered = [c for c in ("run", *SCALE_COLUMNS, "valid_domain", "loss", LOSS_SD, *SCHEDULE_COLUMNS) if c in frame] + mix_cols
    return RunsTable(frame[ordered].reset_index(drop=True), source)


def _numbered_copy(frame: pd.DataFrame, source: str, tolerance: float) -> pd.DataFrame:
    """A copy of ``frame`` whose rows carry their number in the file (``_ROW``), after refusing what is
    not a table, a tolerance out of range and an empty table."""
    if not isinstance(frame, pd.DataFrame):
        raise RunsTableError(f"expected a pandas DataFrame, got {type(frame).__name__}", source=source)
    if not (isinstance(tolerance, (int, float)) and 0 <= tolerance < 1):
        raise RunsTableError(
            f"the tolerance (--tolerance) is {tolerance:g}; it is how far a mixture's sum may be from 1, a number >= 0 and below 1 (default 0.01)",
            source=source,
        )
    frame = frame.copy()
    if _ROW not in frame:
        frame[_ROW] = frame.index
    if len(frame) == 0:
        raise RunsTableError("the runs table is empty", source=source)
    return frame


def _check_columns(frame: pd.DataFrame, source: str) -> list[str]:
    """Refuse empty-named, missing and unknown columns; return the mixture (``mix:<domain>``) columns."""
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
            f"unknown column(s) {unknown}; allowed are {sorted(known)} and 'mix:<domain>' (proportions of a training domain need the 'mix:' prefix)",
            source=source,
            column=unknown[0],
        )
    mix_cols = [c for c in columns if c.startswith(MIX_PREFIX)]
    for c in mix_cols:
        if not c[len(MIX_PREFIX) :].strip():
            raise RunsTableError("a mixture column has no domain name after 'mix:'", source=source, column=c)
    return mix_cols


def _fail(frame: pd.DataFrame, source: str, mask, column: str, message: Callable[[pd.Series], str]) -> NoReturn:
    """Raise the error of the first row in ``mask``: ``message(row)`` (the row's values as plain Python
    numbers) and how many more rows are like it, naming the row's number in the file and ``column``."""
    i = int(np.flatnonzero(np.asarray(mask))[0])
    extra = int(np.sum(mask)) - 1
    more = f" ({extra} more row(s) like it)" if extra else ""
    row = pd.Series({k: _plain(v) for k, v in frame.iloc[i].items()}, dtype=object)  # 1.5, not np.float64(1.5)
    raise RunsTableError(message(row) + more, source=source, row=frame[_ROW].to_numpy()[i], column=column)


def _check_names(frame: pd.DataFrame, source: str) -> None:
    """Every row names its run and validation domain (as text)."""
    for c in ("run", "valid_domain"):
        bad = frame[c].isna() | (frame[c].astype(str).str.strip() == "")
        if bad.any():
            _fail(frame, source, bad, c, lambda row: "missing name")
        frame[c] = frame[c].astype(str)


def _check_losses(frame: pd.DataFrame, source: str) -> None:
    """Losses are finite positive numbers; a ``loss_sd`` column, finite numbers >= 0."""
    loss = pd.to_numeric(frame["loss"], errors="coerce")
    bad = loss.isna() & frame["loss"].notna()
    if bad.any():
        _fail(frame, source, bad, "loss", lambda row: f"loss {row['loss']!r} is not a number")
    values = loss.to_numpy(dtype=float)
    bad = ~np.isfinite(values)
    if bad.any():
        _fail(frame, source, bad, "loss", lambda row: f"loss is {row['loss']}; losses must be finite")
    bad = values <= 0
    if bad.any():
        _fail(frame, source, bad, "loss", lambda row: f"loss is {row['loss']}; losses must be positive")
    frame["loss"] = values

    if LOSS_SD in frame:
        sd = pd.to_numeric(frame[LOSS_SD], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(sd) | (sd < 0)
        if bad.any():
            _fail(frame, source, bad, LOSS_SD, lambda row: f"loss_sd is {row[LOSS_SD]!r}; it must be a finite number >= 0")
        frame[LOSS_SD] = sd


def _check_scale(frame: pd.DataFrame, source: str, c: str) -> None:
    """A scale column (``params``, ``step``, ``tokens``) holds finite positive numbers, whole ones for
    sizes and steps (then stored as integers)."""
    numbers = pd.to_numeric(frame[c], errors="coerce")
    bad = (numbers.isna() | ~np.isfinite(numbers.to_numpy(dtype=float))).to_numpy()
    if bad.any():
        _fail(frame, source, bad, c, lambda row: f"{c} is {row[c]!r}; it must be a finite number")
    bad = (numbers <= 0).to_numpy()
    if bad.any():
        _fail(frame, source, bad, c, lambda row: f"{c} is {row[c]!r}; it must be positive")
    if c in ("params", "step"):
        bad = (numbers != np.round(numbers)).to_numpy()
        if bad.any():
            _fail(frame, source, bad, c, lambda row: f"{c} is {row[c]!r}; it must be a whole number")
        frame[c] = numbers.astype(np.int64)
    else:
        frame[c] = numbers.astype(float)


def _optional_numbers(frame: pd.DataFrame, source: str, column: str) -> tuple[np.ndarray, np.ndarray]:
    """The column as floats (NaN where left empty) and where it is given; a non-number fails."""
    numbers = pd.to_numeric(frame[column], errors="coerce")
    bad = (numbers.isna() & frame[column].notna()).to_numpy()
    if bad.any():
        _fail(frame, source, bad, column, lambda row: f"{column} {row[column]!r} is not a number")
    values = numbers.to_numpy(dtype=float)
    return values, ~np.isnan(values)


def _check_lr(frame: pd.DataFrame, source: str) -> None:
    """Learning rates, where given, are finite and positive, logged against steps, one per run and step."""
    values, given = _optional_numbers(frame, source, LR)
    bad = given & ~np.isfinite(values)
    if bad.any():
        _fail(frame, source, bad, LR, lambda row: f"lr is {row[LR]}; a learning rate must be finite")
    bad = given & (values <= 0)
    if bad.any():
        _fail(frame, source, bad, LR, lambda row: f"lr is {row[LR]}; a learning rate must be positive (leave it empty where unknown)")
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


def _check_warmup(frame: pd.DataFrame, source: str) -> None:
    """Warm-up lengths, where given, are whole numbers of steps >= 0 (stored as nullable integers), one per run."""
    values, given = _optional_numbers(frame, source, WARMUP)
    bad = given & (~np.isfinite(values) | (values < 0) | (values != np.round(values)))
    if bad.any():
        _fail(frame, source, bad, WARMUP, lambda row: f"warmup_steps is {row[WARMUP]!r}; it must be a whole number of steps >= 0")
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


def _check_proportions(frame: pd.DataFrame, source: str, mix_cols: list[str], *, tolerance: float, renormalize: bool, unit: str) -> None:
    """Proportions are numbers in [0, 1] that sum to one within ``tolerance`` (or, with ``renormalize``, are
    divided by their sum, with a warning naming the runs); stored as floats."""
    props = frame[mix_cols].apply(pd.to_numeric, errors="coerce")
    for c in mix_cols:
        _check_proportion_column(frame, source, c, props[c].to_numpy(dtype=float))
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
            row=frame[_ROW].to_numpy()[i],
            column=", ".join(mix_cols),
        )
    if off.any():
        runs_off = pd.unique(frame["run"][off])
        warnings.warn(
            f"{source}: renormalised the mixtures of {len(runs_off)} {unit}(s) whose proportions did not sum "
            f"to 1 within {tolerance:g}: {_short_list(runs_off, 5)} (sums {_short_list(np.unique(totals[off].round(6)), 5)})",
            UserWarning,
            stacklevel=3,  # the caller of validate_runs
        )
        props.loc[off] = props.loc[off].div(totals[off], axis=0)
    frame[mix_cols] = props.astype(float)


def _check_proportion_column(frame: pd.DataFrame, source: str, c: str, col: np.ndarray) -> None:
    """One training domain's proportions (``col``, read as numbers) are given and in [0, 1]."""
    bad = ~np.isfinite(col)
    if bad.any():
        _fail(frame, source, bad, c, lambda row: f"proportion {row[c]!r} is missing or not a number")
    bad = (col < 0) | (col > 1)
    if bad.any():
        _fail(frame, source, bad, c, lambda row: f"proportion {row[c]} is outside [0, 1]")


def _check_one_mixture_per_run(frame: pd.DataFrame, source: str, mix_cols: list[str]) -> None:
    """Every row of a run has the same mixture."""
    changing = frame.groupby("run", sort=False)[mix_cols].nunique(dropna=False).max(axis=1) > 1
    if changing.any():
        run = changing.index[changing.to_numpy()][0]
        these = frame[frame["run"] == run]
        first = these[mix_cols].iloc[0]
        differs = these[mix_cols].ne(first).any(axis=1).to_numpy()
        j = int(np.flatnonzero(differs)[0])
        col = next(c for c in mix_cols if these[c].iloc[j] != first[c])
        raise RunsTableError(
            f"run '{run}' changes its mixture: {col} is {first[col]} at row {these[_ROW].iloc[0]} but {these[col].iloc[j]} here; one run has one mixture",
            source=source,
            row=these[_ROW].iloc[j],
            column=col,
        )


def _drop_duplicates(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """``frame`` less exact repeats of a (run, scale, valid_domain) key; the same key with different losses fails."""
    keys = [c for c in KEY_COLUMNS if c in frame]
    duplicated = frame.duplicated(keys, keep=False)
    if not duplicated.any():
        return frame
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
    return frame.drop_duplicates(keys, keep="first")
