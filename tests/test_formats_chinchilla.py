"""The Chinchilla format (bayes_mixlaw/formats/chinchilla.py): Epoch AI's replication data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayes_mixlaw import load_runs
from bayes_mixlaw.runs import RunsTableError


def test_loader_drops_the_five_highest_losses_like_epoch(shared_data):
    raw = pd.read_csv(shared_data / "chinchilla" / "svg_extracted_data.csv")
    runs = load_runs(shared_data / "chinchilla" / "svg_extracted_data.csv")
    assert len(runs.data) == len(raw) - 5
    assert runs.data["loss"].max() < raw["loss"].nlargest(5).min()
    row = runs.data.iloc[0]
    source = raw.iloc[int(row["run"].split("_")[1]) - 2]
    assert np.isclose(row["tokens"], source["Training FLOP"] / (6 * source["Model Size"]))


def test_chinchilla_format_errors(tmp_path):
    path = tmp_path / "c.csv"
    pd.DataFrame({"Model Size": [1e9], "Training FLOP": [1e20]}).to_csv(path, index=False)
    with pytest.raises(RunsTableError, match="missing column"):
        load_runs(path, "chinchilla")
