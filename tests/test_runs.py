"""The runs table (bayes_mixlaw/runs.py): selecting a scale, load_runs' errors for a missing file or an unknown
format, reading mixtures tables, and the reference (starting) losses. Each format's reader: tests/test_formats_*.py;
the table's validation: tests/test_validation.py."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayes_mixlaw.runs import Reference, RunsTableError, load_runs, read_mixtures


def test_select_unknown_scale_lists_available(shared_data):
    runs = load_runs(shared_data / "mixinglaws" / "2Mix")
    with pytest.raises(RunsTableError, match=r"step=12345 is not in the table; it has step in 10000, 12000"):
        runs.select(step=12345)
    with pytest.raises(RunsTableError, match="choose one with --params"):
        runs.single_scale()


def test_unknown_format_and_missing_file(tmp_path):
    with pytest.raises(RunsTableError, match="no such file"):
        load_runs(tmp_path / "nope.csv")
    (tmp_path / "runs.xlsx").write_text("x")
    with pytest.raises(RunsTableError, match="pass --format"):
        load_runs(tmp_path / "runs.xlsx")


def test_read_mixtures_checks_domains_and_sums(tmp_path):
    good = pd.DataFrame({"name": ["m1"], "mix:a": [0.3], "mix:b": [0.7]})
    out = read_mixtures(good, ["a", "b"])
    assert list(out.columns) == ["name", "mix:a", "mix:b"]
    with pytest.raises(RunsTableError, match=r"missing \['mix:c'\]"):
        read_mixtures(good, ["a", "b", "c"])
    path = tmp_path / "m.csv"
    good.assign(**{"mix:a": 0.5}).to_csv(path, index=False)
    with pytest.raises(RunsTableError, match=r"m.csv, row 2.*sum to 1.2"):
        read_mixtures(path, ["a", "b"])


def test_read_mixtures_takes_a_runs_tables_mixtures_with_their_names(shared_data):
    """``RunsTable.mixtures()`` (run names as the index, a 'run'-named index) is a valid mixtures table."""
    runs = load_runs(shared_data / "mixinglaws" / "RedPajama")
    mixtures = runs.mixtures().iloc[:3]
    out = read_mixtures(mixtures, runs.train_domains)
    assert list(out["name"]) == list(mixtures.index)
    np.testing.assert_allclose(out[runs.mix_columns].to_numpy(), mixtures.to_numpy())


def test_reference_errors_name_the_domain():
    with pytest.raises(RunsTableError, match=r"validation domain\(s\) b; the reference 'reference' has a"):
        Reference.from_any({"a": 1.0}).check(["a", "b"])
    with pytest.raises(RunsTableError, match="reference loss of 'a' is -1"):
        Reference.from_any({"a": -1.0})
    with pytest.raises(RunsTableError, match="'valid_domain' and 'loss'"):
        Reference.from_any(pd.DataFrame({"domain": ["a"], "loss": [1.0]}))
