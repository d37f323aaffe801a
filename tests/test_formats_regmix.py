"""The RegMix format (bayes_mixlaw/formats/regmix.py): the published pair of CSV files."""

from __future__ import annotations

from bayes_mixlaw.runs import load_runs


def test_regmix_pair(shared_data):
    runs = load_runs(shared_data / "regmix")
    assert len(runs.runs) == 512
    assert len(runs.train_domains) == 17 and "pile_cc" in runs.train_domains
    assert len(runs.valid_domains) == 13 and "pile_cc" in runs.valid_domains
    assert "params" not in runs.data and "step" not in runs.data
