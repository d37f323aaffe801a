"""The wide format (bayes_mixlaw/formats/wide.py): the worked example of "a new format is one file plus its test"."""

from __future__ import annotations

import pandas as pd
import pytest

from bayes_mixlaw.formats import detect_format
from bayes_mixlaw.runs import RunsTableError, load_runs

KEYS = ["run", "params", "step", "valid_domain"]


@pytest.fixture(scope="module")
def tidy(shared_data) -> pd.DataFrame:
    """Three real 5Mix runs at 70M, two checkpoints each, all 22 Pile validation domains (tidy rows)."""
    table = load_runs(shared_data / "mixinglaws" / "5Mix" / "70M.txt").data
    return table[table["run"].isin(table["run"].unique()[:3]) & table["step"].isin([20000, 30000])].reset_index(drop=True)


def to_wide(tidy: pd.DataFrame) -> pd.DataFrame:
    ids = [c for c in tidy.columns if c not in ("valid_domain", "loss")]
    wide = tidy.pivot(index=ids, columns="valid_domain", values="loss")
    return wide.rename(columns=lambda d: f"loss:{d}").reset_index().rename_axis(columns=None)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_wide_table_loads_to_the_same_runs_table_as_the_tidy_one(tidy, tmp_path, suffix):
    wide, long = tmp_path / f"wide{suffix}", tmp_path / f"tidy{suffix}"
    write = "to_csv" if suffix == ".csv" else "to_parquet"
    getattr(to_wide(tidy), write)(wide, index=False)
    getattr(tidy, write)(long, index=False)
    assert detect_format(wide).name == "wide" and detect_format(long).name == "tidy"
    a, b = load_runs(wide), load_runs(long)
    assert len(a.data) == len(tidy) == 3 * 2 * 22
    assert sorted(a.data.columns) == sorted(b.data.columns)
    pd.testing.assert_frame_equal(a.data.sort_values(KEYS).reset_index(drop=True), b.data[a.data.columns].sort_values(KEYS).reset_index(drop=True))
    assert a.train_domains == b.train_domains and sorted(a.valid_domains) == sorted(b.valid_domains)
    assert load_runs(wide, "wide").data.equals(a.data)


def test_wide_errors_name_line_and_loss_column(tidy, tmp_path):
    wide = to_wide(tidy)
    wide.loc[2, "loss:Github"] = -1.0
    path = tmp_path / "wide.csv"
    wide.to_csv(path, index=False)
    with pytest.raises(RunsTableError, match=r"wide\.csv, row 4, column 'loss:Github': loss -1\.0 is not a finite positive number"):
        load_runs(path)
    wide = to_wide(tidy)
    wide.loc[1, "mix:prose"] = 0.9  # the run's mixture no longer sums to one: the tidy table's validation, same line
    wide.to_csv(path, index=False)
    with pytest.raises(RunsTableError, match=r"wide\.csv, row 3, column 'mix:.*sum to"):
        load_runs(path)
    to_wide(tidy).assign(loss=1.0).to_csv(path, index=False)
    with pytest.raises(RunsTableError, match=r"column 'loss': a wide table .* --format tidy"):
        load_runs(path)
