"""The loop's state (bayes_mixlaw/loop_state.py): a pilot's rows are added once and whole, in one
transaction."""

import pandas as pd
import pytest

from bayes_mixlaw.loop_state import LoopState
from bayes_mixlaw.runners import Pilot


def test_state_adds_a_pilots_rows_once_and_whole(tmp_path):
    state = LoopState(tmp_path)
    pilot = Pilot("p001", {"a": 0.5, "b": 0.5}, 10, 5)
    state.add_pilots([pilot], 0, [50.0], "design")
    state.started("p001", 1, str(tmp_path / "x"), None)
    rows = pd.DataFrame({"run": "p001", "params": 10, "step": [5], "valid_domain": "a", "loss": [1.5], "mix:a": 0.5, "mix:b": 0.5})
    state.done("p001", rows)
    with pytest.raises(RuntimeError, match="already done"):
        state.done("p001", rows)
    assert len(state.runs_frame()) == 1 and state.counts()["done"] == 1 and state.spent() == 50.0
    # a transaction that fails half way leaves nothing behind
    state.add_pilots([Pilot("p002", {"a": 1.0, "b": 0.0}, 10, 5)], 1, [50.0], "x")
    state.started("p002", 1, "y", None)
    with pytest.raises(AttributeError):
        state.done("p002", None)  # fails inside the transaction, after the status check
    assert state.counts() == {"queued": 0, "running": 1, "done": 1, "failed": 0} and len(state.runs_frame()) == 1
    assert pd.read_csv(state.export_runs())["run"].tolist() == ["p001"]
    assert state.requeue_running() == ["p002"] and state.counts()["queued"] == 1
