"""The tidy format (bayes_mixlaw/formats/tidy.py): one row per run and validation domain, as CSV or Parquet."""

from __future__ import annotations

import pandas as pd

from bayes_mixlaw.runs import load_runs
from conftest import tidy


def test_tidy_csv_and_parquet_roundtrip(tmp_path):
    frame = tidy()
    frame.to_csv(tmp_path / "runs.csv", index=False)
    frame.to_parquet(tmp_path / "runs.parquet")
    a = load_runs(tmp_path / "runs.csv").data
    b = load_runs(tmp_path / "runs.parquet").data
    pd.testing.assert_frame_equal(a, b)
    assert len(a) == len(frame)
