"""The Data Mixing Laws text format (bayes_mixlaw/formats/mixinglaws.py) on the published runs, and its errors."""

from __future__ import annotations

import numpy as np
import pytest

from bayes_mixlaw.runs import RunsTableError, load_runs


def test_mixinglaws_5mix_folder(shared_data):
    runs = load_runs(shared_data / "mixinglaws" / "5Mix")
    assert runs.train_domains == ["academic", "prose", "dialogue", "symbolic", "internet"]
    assert len(runs.valid_domains) == 22
    assert runs.scale_values("params") == [18_915_328, 85_056_000, 201_541_632, 302_311_424]
    one = runs.select(params=18_915_328, step=30000)
    assert one.pivot().shape == (21, 22)
    assert np.allclose(one.mixtures().sum(axis=1), 1)
    # tokens follow from the 1,048,576-token batch
    assert set(one.data["tokens"]) == {30000 * 1_048_576}


def test_mixinglaws_duplicates_are_removed(shared_data):
    raw = (shared_data / "mixinglaws" / "5Mix" / "70M.txt").read_text().splitlines()
    runs = load_runs(shared_data / "mixinglaws" / "5Mix" / "70M.txt")
    assert len(runs.data) < len(raw) or len(set(raw)) == len(raw)
    assert not runs.data.duplicated(["run", "step", "valid_domain"]).any()


def test_mixinglaws_3mix_skips_non_numeric_steps_with_warning(shared_data):
    with pytest.warns(UserWarning, match="step is not a number.*last"):
        runs = load_runs(shared_data / "mixinglaws" / "3Mix")
    # 410M.txt names runs without the size prefix; the size comes from the file name
    assert 302_311_424 in runs.scale_values("params")
    assert {60000, 30000} <= set(runs.scale_values("step"))


def test_bad_mixinglaws_line_names_file_and_line(tmp_path):
    path = tmp_path / "70M.txt"
    path.write_text("/c/70M_x_1-0.5-0.5/1000\t/v/pythia-pile.valid.Github.bin\t1.5\n/c/70M_x_1-0.5-0.5/1000\tonly-two-fields\n")
    with pytest.raises(RunsTableError, match=r"70M.txt, row 2: expected 3 tab-separated fields"):
        load_runs(path)
