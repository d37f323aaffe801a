"""The runner contract: local back end with real pilots (the reference torch trainer), failures, retries."""

import json
import sys
import time

import pandas as pd
import pytest

from bayes_mixlaw import trainer as ref
from bayes_mixlaw.runners import CallableTrainer, CommandTrainer, Dispatcher, LocalBackend, Pilot, PilotFailed, check_rows, reference_trainer

MIX = {"code": 0.5, "prose": 0.3, "numbers": 0.2}


def _drain(dispatcher, timeout=120):
    return dispatcher.wait(timeout, every=0.05)


def test_reference_trainer_rows_and_real_param_counts(tmp_path):
    rows = ref.train_pilot({"run": "p1", "mixture": MIX, "params": ref.sizes()[0], "steps": 40}, tmp_path, checkpoints=[20, 40])
    assert set(rows.columns) == {"run", "params", "step", "valid_domain", "loss", "mix:code", "mix:prose", "mix:numbers"}
    assert sorted(rows["step"].unique()) == [20, 40] and sorted(rows["valid_domain"].unique()) == sorted(ref.DOMAINS)
    assert rows["params"].iloc[0] == ref.count_params(16) == ref.sizes()[0]
    assert (rows["loss"] > 0).all() and rows.groupby("step")["loss"].mean().is_monotonic_decreasing
    assert pd.read_csv(tmp_path / "rows.csv").shape == rows.shape
    # the domains differ visibly: a mixture of numbers only learns numbers far better than prose
    only = ref.train_pilot({"run": "p2", "mixture": {"numbers": 1.0}, "params": ref.sizes()[0], "steps": 60}, None, checkpoints=[60])
    loss = only.set_index("valid_domain")["loss"]
    assert loss["numbers"] < loss["prose"] - 0.3


def test_check_rows_refuses_malformed_output():
    pilot = Pilot("a", {"x": 0.5, "y": 0.5}, 100, 10)
    good = pd.DataFrame({"run": "a", "params": 100, "step": [5, 10], "valid_domain": "x", "loss": [2.0, 1.5]})
    assert check_rows(good, pilot, "t")["mix:x"].tolist() == [0.5, 0.5]
    for bad, words in [
        (good.assign(loss=[2.0, -1.0]), "positive"),
        (good.assign(step=[5, 11]), "beyond"),
        (good.drop(columns="step"), "'step'"),
        (good.assign(run=["a", "b"]), "2 runs"),
        (good.assign(**{"mix:x": 0.3, "mix:y": 0.7}), "share"),
        (good.iloc[:0], "no rows"),
    ]:
        with pytest.raises(PilotFailed, match=words) as err:
            check_rows(bad, pilot, "t")
        assert err.value.reason == "malformed"


def test_local_backend_runs_a_command_and_a_callable_and_retries_failures(tmp_path):
    size = ref.sizes()[0]
    command = CommandTrainer("{python} -m bayes_mixlaw.trainer --mix {mixture_json} --params {params} --steps {steps} --out {out_dir} --run {run}")
    dispatcher = Dispatcher(command, LocalBackend(2), tmp_path / "cmd", retries=0, workers=2)
    dispatcher.submit(Pilot("c1", MIX, size, 20))
    dispatcher.submit(Pilot("c2", {"code": 1.0}, size, 20))
    done = [e for e in _drain(dispatcher) if e.kind == "done"]
    assert sorted(e.pilot.id for e in done) == ["c1", "c2"]
    assert all(set(e.rows["run"]) == {e.pilot.id} and e.rows["params"].iloc[0] == size for e in done)
    assert "mix:numbers" in done[0].rows  # a mixture naming fewer domains gets its zeros from the trainer

    # a failing command: recorded with its log, retried once in a fresh folder, then failed
    failing = CommandTrainer("echo starting; echo boom >&2; exit 3")
    dispatcher = Dispatcher(failing, LocalBackend(1), tmp_path / "fail", retries=1)
    dispatcher.submit(Pilot("f", MIX, size, 10))
    events = _drain(dispatcher)
    kinds = [e.kind for e in events]
    assert kinds == ["retry", "started", "failed"]
    assert events[-1].error.reason == "exit" and "boom" in events[-1].error.log and events[-1].attempt == 2
    assert (tmp_path / "fail" / "f" / "attempt1" / "log.txt").exists() and (tmp_path / "fail" / "f" / "attempt2" / "log.txt").exists()

    # missing and malformed output, a timeout
    for template, reason, timeout in [("true", "missing", None), ("echo 'run,step' > rows.csv", "malformed", None), ("sleep 30", "timeout", 1.0)]:
        dispatcher = Dispatcher(CommandTrainer(template), LocalBackend(1), tmp_path / reason, retries=0, timeout_s=timeout)
        dispatcher.submit(Pilot("m", MIX, size, 10))
        start = time.time()
        (event,) = _drain(dispatcher)
        assert event.kind == "failed" and event.error.reason == reason, event.error
        assert time.time() - start < 20


def test_local_backend_runs_an_unimportable_callable_in_a_thread(tmp_path):
    calls = []

    def fake(pilot, out_dir):
        calls.append(pilot.id)
        if len(calls) == 1:
            raise RuntimeError("flaky node")
        return pd.DataFrame({"params": pilot.params, "step": pilot.steps, "valid_domain": "v", "loss": [1.0]})

    dispatcher = Dispatcher(CallableTrainer(fake), LocalBackend(1), tmp_path, retries=2)
    dispatcher.submit(Pilot("t", {"a": 1.0}, 10, 5))
    events = _drain(dispatcher)
    assert [e.kind for e in events] == ["retry", "started", "done"]
    assert "flaky node" in events[0].error.message and "Traceback" in events[0].error.log
    assert events[-1].rows["run"].tolist() == ["t"] and events[-1].rows["mix:a"].tolist() == [1.0]


def test_reference_trainer_through_the_worker_process(tmp_path):
    dispatcher = Dispatcher(reference_trainer(checkpoints=[10, 20]), LocalBackend(1), tmp_path)
    dispatcher.submit(Pilot("w", MIX, ref.sizes()[0], 20))
    (event,) = _drain(dispatcher)
    assert event.kind == "done" and sorted(event.rows["step"].unique()) == [10, 20]
    assert json.loads((tmp_path / "w" / "attempt1" / "outcome.json").read_text())["status"] == "done"


def test_importing_the_package_imports_no_cluster_library():
    import subprocess

    code = "import sys, bayes_mixlaw, bayes_mixlaw.runners, bayes_mixlaw.loop; print(sorted(m for m in ('ray', 'submitit') if m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"


@pytest.mark.parametrize("kind, module", [("ray", "ray"), ("submitit", "submitit")])
def test_a_missing_cluster_library_names_the_extra(monkeypatch, tmp_path, kind, module):
    from bayes_mixlaw.runners import make_backend

    monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    with pytest.raises(ImportError, match=r"pip install 'bayes_mixlaw\[cluster\]'"):
        make_backend(kind, state_dir=tmp_path)
