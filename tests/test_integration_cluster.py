"""Real cluster back ends: a local Ray runtime (ray.init(num_cpus=1)) and submitit's local executor,
each running the reference torch trainer and a failing pilot; the loop on Ray."""

import pandas as pd
import pytest

from bayes_mixlaw import trainer as ref
from bayes_mixlaw.runners import CommandTrainer, Dispatcher, Pilot, make_backend, reference_trainer

MIX = {"code": 0.2, "prose": 0.5, "numbers": 0.3}


def _drain(dispatcher, timeout=240):
    events = dispatcher.wait(timeout)
    assert not dispatcher.running, "pilots still running"
    return events


@pytest.fixture(scope="module")
def ray_runtime():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_backend_runs_the_reference_trainer_and_reports_a_failure_with_its_log(ray_runtime, tmp_path):
    backend = make_backend("ray")
    dispatcher = Dispatcher(reference_trainer(checkpoints=[10, 20]), backend, tmp_path, retries=0, workers=2)
    dispatcher.submit(Pilot("r1", MIX, ref.sizes()[0], 20))
    failing = Dispatcher(CommandTrainer("echo 'no GPU on this node' >&2; exit 7"), backend, tmp_path / "f", retries=1)
    failing.submit(Pilot("r2", MIX, ref.sizes()[0], 20))
    (done,) = _drain(dispatcher)
    assert done.kind == "done" and sorted(done.rows["step"].unique()) == [10, 20] and set(done.rows["run"]) == {"r1"}
    events = _drain(failing)
    assert [e.kind for e in events] == ["retry", "started", "failed"]
    assert events[-1].error.reason == "exit" and "no GPU on this node" in events[-1].error.log


def test_submitit_local_executor_runs_the_reference_trainer_and_a_failing_command(tmp_path):
    pytest.importorskip("submitit")
    backend = make_backend("submitit", state_dir=tmp_path, cluster="local", parameters={"timeout_min": 5})
    dispatcher = Dispatcher(reference_trainer(checkpoints=[20]), backend, tmp_path / "pilots", retries=0, workers=2)
    dispatcher.submit(Pilot("s1", MIX, ref.sizes()[0], 20))
    failing = Dispatcher(CommandTrainer("echo 'out of memory' >&2; exit 1"), backend, tmp_path / "f", retries=0)
    failing.submit(Pilot("s2", MIX, ref.sizes()[0], 20))
    (done,) = _drain(dispatcher)
    assert done.kind == "done" and done.external_id is None and done.rows["step"].tolist() == [20, 20, 20]
    (failed,) = _drain(failing)
    assert failed.kind == "failed" and failed.error.reason == "exit" and "out of memory" in failed.error.log
    assert any((tmp_path / "submitit").iterdir())  # submitit's own logs and pickles


@pytest.mark.slow  # ~40 s: a fit's compile and four pilots (Ray's runner is checked above by default)
def test_loop_on_a_local_ray_runtime(ray_runtime, tmp_path):
    from bayes_mixlaw.loop import run_loop

    config = {
        "trainer": {"reference": {"threads": 1}, "timeout_s": 120},
        "backend": {"kind": "ray", "workers": 2},
        "budget": {"runs": 4},
        "pilots": {"sizes": [11712], "steps": [40]},
        "initial_design": {"runs": 3},
        "batch_size": 1,
        "acquisition": "thompson",
        "poll_s": 0.2,
    }
    result = run_loop(config, tmp_path / "state", live=False)
    assert result.counts["done"] == 4 and result.counts["failed"] == 0
    runs = pd.read_csv(result.runs_csv)
    assert runs["run"].nunique() == 4 and not runs.duplicated(["run", "step", "valid_domain"]).any()
    assert result.fit_path.exists() and set(result.best["mixture"]) == set(ref.DOMAINS)
    assert result.best["lower"] <= result.best["loss"] <= result.best["upper"]
