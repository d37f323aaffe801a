"""The local back end: each attempt in a worker process of its own session (``python -m bayes_mixlaw.runners JOB``),
or in a thread for a callable another process cannot import by name."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bayes_mixlaw.atomic import write_atomically
from bayes_mixlaw.runners_contract import (
    CallableTrainer,
    CommandTrainer,
    Handle,
    Job,
    Pilot,
    PilotFailed,
    _killpg,
    _tail,
    _write_pid,
    execute,
    kill_recorded,
    read_rows,
)


def _die_with_parent():  # pragma: no cover - runs in the child between fork and exec
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    os.setsid()


class LocalBackend:
    """Each attempt in a worker process of its own session (``python -m bayes_mixlaw.runners JOB``), killed
    with the loop (Linux: the parent-death signal) and reaped on resume; a callable that another
    process cannot import by name runs in a thread of this process instead."""

    name = "local"

    def __init__(self, workers: int = 1):
        self.workers = workers
        self._threads = ThreadPoolExecutor(max_workers=workers)

    def submit(self, job: Job) -> Handle:
        out = Path(job.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        if isinstance(job.trainer, CallableTrainer) and not job.trainer.importable:
            return Handle(job, time.time(), None, self._threads.submit(execute, job))
        spec = out / "job.json"
        spec.write_text(json.dumps(_job_to_dict(job)))
        log = open(out / "worker.log", "ab")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        proc = subprocess.Popen(
            [sys.executable, "-m", "bayes_mixlaw.runners", str(spec)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
            env=env,
        )
        log.close()
        _write_pid(out / "worker.pid", proc.pid)
        return Handle(job, time.time(), f"pid {proc.pid}", proc)

    def poll(self, handle: Handle):
        """``None`` while running; then the rows, or the :class:`PilotFailed`."""
        inner = handle.inner
        if not isinstance(inner, subprocess.Popen):
            if not inner.done():
                return None
            err = inner.exception()
            return inner.result() if err is None else err if isinstance(err, PilotFailed) else PilotFailed("error", repr(err))
        code = inner.poll()
        if code is None:
            return None
        out = Path(handle.job.out_dir)
        outcome = out / "outcome.json"
        if not outcome.exists():
            return PilotFailed(
                "exit", f"{handle.job.pilot.id}: the worker process ended with code {code} before reporting", _tail(out / "worker.log") + _tail(out / "log.txt")
            )
        result = json.loads(outcome.read_text())
        if result["status"] != "done":
            return PilotFailed(result["reason"], result["message"], result.get("log", ""))
        try:
            return read_rows(out / "checked_rows.csv", handle.job.pilot)
        except PilotFailed as err:
            return err

    def cancel(self, handle: Handle) -> None:
        if isinstance(handle.inner, subprocess.Popen):
            _killpg(handle.inner.pid)
            kill_recorded(Path(handle.job.out_dir) / "command.pid")
            handle.inner.wait()
        else:
            handle.inner.cancel()  # a running thread cannot be stopped; its result is ignored

    def reattach(self, job: Job, external_id: str | None) -> None:  # a dead loop's worker processes are gone
        return None

    def reap(self, out_dir: Path) -> None:
        """Kill what an abandoned attempt (in ``out_dir``) left running."""
        for name in ("worker.pid", "command.pid"):
            kill_recorded(out_dir / name)

    def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)


def _job_to_dict(job: Job) -> dict:
    trainer = job.trainer
    kind = "command" if isinstance(trainer, CommandTrainer) else "callable"
    spec = {"template": trainer.template} if kind == "command" else {"function": trainer.function, "kwargs": trainer.kwargs}
    return {
        "pilot": job.pilot.as_dict(),
        "trainer": {"kind": kind, "rows_file": trainer.rows_file, **spec},
        "out_dir": job.out_dir,
        "attempt": job.attempt,
        "timeout_s": job.timeout_s,
    }


def _job_from_dict(d: dict) -> Job:
    t = d["trainer"]
    trainer = CommandTrainer(t["template"], t["rows_file"]) if t["kind"] == "command" else CallableTrainer(t["function"], t["rows_file"], t.get("kwargs") or {})
    return Job(Pilot.from_dict(d["pilot"]), trainer, d["out_dir"], d["attempt"], d["timeout_s"])


def _worker_main(spec_path: str) -> int:
    """The local back end's worker: run the job in ``spec_path``, leave ``outcome.json`` (and ``checked_rows.csv``)."""
    spec = Path(spec_path)
    job = _job_from_dict(json.loads(spec.read_text()))
    out = Path(job.out_dir)
    try:
        rows = execute(job)
        write_atomically(out / "checked_rows.csv", lambda partial: rows.to_csv(partial, index=False))
        outcome = {"status": "done"}
    except PilotFailed as err:
        outcome = {"status": "failed", "reason": err.reason, "message": err.message, "log": err.log}
    write_atomically(out / "outcome.json", lambda partial: partial.write_text(json.dumps(outcome)))
    return 0
