"""Validation of a runs table: :func:`validate_runs` (importable from ``bayes_mixlaw.runs`` too).

Every problem is reported as a :class:`~bayes_mixlaw.runs.RunsTableError` naming the file, row and column.
"""

from __future__ import annotations

import warnings

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
                f"run '{run}' changes its mixture: {col} is {first[col]} at row {these[_ROW].iloc[0]} but {these[col].iloc[j]} here; one run has one mixture",
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
