"""The closed loop (bayes_mixlaw/loop.py): a real loop (reference torch trainer, local worker processes, fast
NUTS fits) interrupted by SIGINT and SIGKILL and resumed to the same budget, its live panel and budget, and a
resume that follows the back end's jobs. LOOP.yaml's errors: tests/test_loop_config.py; the state's
transactions: tests/test_loop_state.py."""

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from bayes_mixlaw.loop_state import LoopState
from bayes_mixlaw.runners import Pilot
from conftest import SMALL, _write

CLI = str(Path(sys.executable).with_name("bayes-mixlaw"))


def _status(state_dir):
    try:
        db = sqlite3.connect(f"file:{state_dir}/state.sqlite?mode=ro", uri=True, timeout=5)
        counts = dict(db.execute("SELECT status, COUNT(*) FROM pilots GROUP BY status").fetchall())
        db.close()
        return counts
    except sqlite3.Error:
        return {}


def _start_and_stop(args, state_dir, until, sig, log):
    # Ctrl-C as at a terminal: a test run started in the background (nohup, &) ignores SIGINT, and a child inherits that
    interactive = lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)  # noqa: E731
    proc = subprocess.Popen([CLI, "loop", *args, "--state", str(state_dir)], stdout=log, stderr=subprocess.STDOUT, preexec_fn=interactive)
    start = time.time()
    while not until(_status(state_dir)):
        assert proc.poll() is None, Path(log.name).read_text()
        assert time.time() - start < 240, "the loop made no progress"
        time.sleep(0.1)
    proc.send_signal(sig)
    return proc.wait(timeout=60)


def test_loop_interrupted_by_sigint_and_killed_resumes_without_losing_or_repeating_a_pilot(tmp_path):
    # three pilots, one fit at the end (the rounds of suggestions: notebooks/closed_loop.ipynb and the Ray loop test)
    small = {**SMALL, "budget": {"runs": 3}, "pilots": {"sizes": [11712], "steps": [40]}}
    config, state_dir = _write(tmp_path, small), tmp_path / "state"
    with open(tmp_path / "loop.log", "w") as log:
        # Ctrl-C while the first pilot runs: the worker is stopped, the state says where it was
        code = _start_and_stop([str(config)], state_dir, lambda s: s.get("running", 0) >= 1, signal.SIGINT, log)
        assert code == 130
        # SIGKILL (no chance to clean up) once a pilot is done and the next runs
        code = _start_and_stop(["--resume"], state_dir, lambda s: s.get("done", 0) >= 1 and s.get("running", 0) >= 1, signal.SIGKILL, log)
        assert code == -signal.SIGKILL
    assert (tmp_path / "loop.log").read_text().count("--resume") >= 1  # Ctrl-C said how to continue
    done = subprocess.run([CLI, "loop", "--resume", "--state", str(state_dir)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "best mixture:" in done.stdout and "3 pilots done, 0 failed" in done.stdout
    runs = pd.read_csv(state_dir / "runs.csv")
    assert sorted(runs["run"].unique()) == ["p001", "p002", "p003"]  # none lost
    assert (runs.groupby("run").size() == 12).all()  # 4 checkpoints x 3 domains each: none twice
    assert not runs.duplicated(["run", "step", "valid_domain"]).any()
    state = LoopState(state_dir)
    events = state.events()
    assert (events["kind"] == "interrupted").sum() >= 3  # two pilots requeued + the Ctrl-C mark
    pilots = state.pilots().set_index("id")
    assert (pilots["status"] == "done").all() and pilots["attempts"].max() >= 2
    assert (state_dir / "fit.nc").exists() and state.last_fit()["runs"] == 3
    # the answer (fit.nc, the best mixture) is from the final fit, NUTS until converged (fit.final), not a fast one
    assert state.get("fit_method") == "nuts" and "(the final fit, nuts)" in done.stderr
    from bayes_mixlaw.mixing import MixingLaw

    assert MixingLaw.load(state_dir / "fit.nc").train_domains == ["code", "prose", "numbers"]
    # no worker of the killed loop is left running
    for pid_file in state_dir.glob("pilots/*/*/worker.pid"):
        pid = json.loads(pid_file.read_text())["pid"]
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
    # a second start on the same state is refused, a resume of nothing too
    again = subprocess.run([CLI, "loop", str(config), "--state", str(state_dir)], capture_output=True, text=True)
    assert again.returncode == 2 and "already holds a loop" in again.stderr
    nothing = subprocess.run([CLI, "loop", "--resume", "--state", str(tmp_path / "none")], capture_output=True, text=True)
    assert nothing.returncode == 2 and "no loop state to resume" in nothing.stderr


def test_live_panel_and_budget_accounting(tmp_path):
    import io

    from bayes_mixlaw.loop import LoopDisplay, _budget_left, _summary
    from bayes_mixlaw.loop_config import loop_config_from_dict

    config = loop_config_from_dict({**SMALL, "budget": {"runs": 3, "cost": 2000}})
    state = LoopState(tmp_path)
    state.add_pilots([Pilot("p001", {"code": 1.0}, 10, 50), Pilot("p002", {"code": 1.0}, 10, 50)], 0, [500.0, 500.0], "design")
    state.started("p001", 1, "x", None)
    assert _budget_left(config, state) == (1, 1000.0)  # one more pilot; the queued one's cost is committed
    summary = _summary(state, config)
    assert summary["running"] == 1 and summary["queued"] == 1 and "0/3 pilots done" in summary["budget"]
    display = LoopDisplay(live=True)
    with display:
        display._live.console.file = buffer = io.StringIO()
        display.update(summary)
        display.event("p001 started")
    assert "queued 1  running 1" in buffer.getvalue() and "p001 started" in buffer.getvalue()
    assert isinstance(display._render(), object) and LoopDisplay(live=None).live_mode is False  # not a terminal: log lines


def test_resume_follows_jobs_the_back_end_finds_again_and_requeues_the_rest(tmp_path):
    """Slurm jobs outlive the loop: on resume submitit finds them by id (faked here); local workers do not."""
    from bayes_mixlaw.loop import Loop, LoopDisplay
    from bayes_mixlaw.loop_config import loop_config_from_dict
    from bayes_mixlaw.runners import Handle

    class Found:
        def reattach(self, job, external_id):
            return Handle(job, time.time(), external_id, "job") if external_id == "4242" else None

        def reap(self, out_dir):
            pass

    state = LoopState(tmp_path)
    state.add_pilots([Pilot("p001", {"code": 1.0}, 10, 50), Pilot("p002", {"code": 1.0}, 10, 50)], 0, [500.0, 500.0], "design")
    state.started("p001", 1, str(tmp_path / "a"), "4242")
    state.started("p002", 1, str(tmp_path / "b"), "pid 1")
    loop = Loop(loop_config_from_dict(SMALL), state, LoopDisplay(live=False))
    loop.backend = loop.dispatcher.backend = Found()
    loop.resume_running()
    assert list(loop.dispatcher.running) == ["p001"]
    assert state.pilots().set_index("id")["status"].to_dict() == {"p001": "running", "p002": "queued"}


@pytest.mark.slow  # ~5-9 minutes on 2 cores: every round's nested fit compiles afresh
def test_nested_loop_of_the_example_chooses_sizes_per_cost(tmp_path):
    """examples/loop_local.yaml as shipped (budget cut to 6): the nested law and 'kg' per unit cost."""
    from bayes_mixlaw.loop import run_loop

    config = yaml.safe_load((Path(__file__).parents[1] / "examples" / "loop_local.yaml").read_text())
    config["budget"]["runs"] = 6
    result = run_loop(config, tmp_path / "state", live=False)
    assert result.counts["done"] == 6 and result.fit_path.exists()
    pilots = LoopState(tmp_path / "state").pilots()
    assert set(pilots["params"]) <= {11712, 35712} and (pilots["acquisition"] == "kg per cost").sum() == 2
    from bayes_mixlaw.nested import NestedLaw

    law = NestedLaw.load(result.fit_path)
    assert law.pilot_scales()["params"] == [11712, 35712]
