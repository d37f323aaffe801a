"""The ct format (bayes_mixlaw/formats/ct.py): the Data Mixing Laws continual pre-training runs, whose starting checkpoint is the table's reference."""

from __future__ import annotations

import pytest

from bayes_mixlaw.runs import RunsTableError, load_runs


def test_ct_folder_keeps_the_starting_checkpoint_as_reference(ct, shared_data):
    assert ct.reference is not None and ct.reference.checkpoint == "pythia_70m_step20000"
    assert ct.reference.original_domain == "Pile"
    assert list(ct.reference.losses.index) == ct.valid_domains and len(ct.valid_domains) == 23
    assert "starcoder.python" in ct.valid_domains  # '<name>.valid.bin' names '<name>'
    assert ct.reference.losses["Pile-CC"] == pytest.approx(3.602944563882064)
    assert set(ct.train_domains) == {"Pile", "Python"} and len(ct.runs) == 5 and ct.scale_values("step")[-1] == 10000
    assert ct.select(step=10000).reference is ct.reference  # kept through selections
    assert load_runs(shared_data / "mixinglaws" / "ct", "ct").reference.checkpoint == "pythia_70m_step20000"


def test_ct_format_needs_a_starting_checkpoint(shared_data):
    with pytest.raises(RunsTableError, match="no starting checkpoint"):
        load_runs(shared_data / "mixinglaws" / "5Mix" / "70M.txt", "ct")


def test_ct_insists_on_the_starting_checkpoint(tmp_path):
    path = tmp_path / "70M.txt"
    path.write_text("/c/70M_x_1-0.5-0.5/1000\t/v/pythia-pile.valid.Github.bin\t1.5\n")
    with pytest.raises(RunsTableError, match="no starting checkpoint in these files"):
        load_runs(path, "ct", train_domains=["a", "b"])
    assert load_runs(path, train_domains=["a", "b"]).reference is None
