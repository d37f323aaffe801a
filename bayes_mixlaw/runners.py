"""Running pilots: the runner contract, its back ends (local processes, Ray, Slurm via submitit), retries.

The contract (a pilot, its trainer, one attempt, its checked rows, :class:`PilotFailed`) is in
:mod:`bayes_mixlaw.runners_contract`: a pilot's rows are checked before anything is appended, and the caller (the
loop) adds them to its table in one transaction, so a failed or half-written pilot never reaches the table.

Back ends (:func:`make_backend`): ``local`` (default: each attempt in its own process group, no
service needed; callables that cannot be imported by name run in a thread), ``ray`` (a Ray task per
attempt on ``ray.init(address=...)``; rows come back as the task's value, no shared folder needed)
and ``submitit`` (a Slurm job per attempt through submitit; ``cluster: local`` runs submitit's
local executor, ``slurm`` needs a folder shared with the compute nodes). Ray and submitit are
imported only when asked for (``pip install 'bayes_mixlaw[cluster]'``).

:class:`Dispatcher` sends pilots to a back end, enforces the timeout, retries a failed attempt up
to ``retries`` times in a fresh folder and reports each event (``started``, ``done``, ``failed``,
``retry``) to the caller.

Each back end has a module (:mod:`bayes_mixlaw.runners_local`, :mod:`bayes_mixlaw.runners_ray`,
:mod:`bayes_mixlaw.runners_submitit`); every name is still importable from here.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import pandas as pd

from bayes_mixlaw.runners_contract import (
    LOG_TAIL,
    ROWS_FILE,
    CallableTrainer,
    CommandTrainer,
    Handle,
    Job,
    Pilot,
    PilotFailed,
    _tail,
    check_rows,
    execute,
    kill_recorded,
    read_rows,
    reference_trainer,
)
from bayes_mixlaw.runners_local import LocalBackend, _worker_main
from bayes_mixlaw.runners_ray import RayBackend
from bayes_mixlaw.runners_submitit import SubmititBackend, execute_outcome

__all__ = [  # the dispatcher, and the contract and back ends importable from here as before they had modules of their own
    "LOG_TAIL",
    "ROWS_FILE",
    "CallableTrainer",
    "CommandTrainer",
    "Dispatcher",
    "Event",
    "Handle",
    "Job",
    "LocalBackend",
    "Pilot",
    "PilotFailed",
    "RayBackend",
    "SubmititBackend",
    "check_rows",
    "execute",
    "execute_outcome",
    "kill_recorded",
    "make_backend",
    "read_rows",
    "reference_trainer",
]


def make_backend(
    kind: str = "local",
    *,
    workers: int = 1,
    state_dir: str | Path = ".",
    address: str | None = None,
    num_cpus: float = 1,
    cluster: str | None = None,
    parameters: dict | None = None,
):
    """A back end by name: ``local``, ``ray`` or ``submitit``."""
    if kind == "local":
        return LocalBackend(workers)
    if kind == "ray":
        return RayBackend(address, num_cpus, workers=workers)
    if kind == "submitit":
        return SubmititBackend(Path(state_dir) / "submitit", cluster, parameters)
    raise ValueError(f"unknown back end {kind!r}; choose local, ray or submitit")


# --------------------------------------------------------------------------------------------------
# dispatching with retries


@dataclasses.dataclass
class Event:
    """What happened to a pilot: ``started`` (attempt submitted), ``done`` (with its rows), ``retry``
    (an attempt failed, another follows), ``failed`` (the last attempt failed)."""

    kind: str
    pilot: Pilot
    attempt: int
    out_dir: str
    rows: pd.DataFrame | None = None
    error: PilotFailed | None = None
    external_id: str | None = None


class Dispatcher:
    """Sends pilots to ``backend``, each attempt in ``root/<pilot>/attempt<k>``, stops attempts that run
    past ``timeout_s``, retries failures up to ``retries`` times, and returns events from :meth:`poll`."""

    def __init__(self, trainer, backend, root: str | Path, *, retries: int = 2, timeout_s: float | None = None, workers: int = 1):
        self.trainer, self.backend, self.root = trainer, backend, Path(root)
        self.retries, self.timeout_s, self.workers = retries, timeout_s, workers
        self.running: dict[str, Handle] = {}
        self._failures: dict[str, int] = {}

    @property
    def free(self) -> int:
        return max(0, self.workers - len(self.running))

    def submit(self, pilot: Pilot, attempt: int = 1, failures: int | None = None) -> Event:
        """Start an attempt; ``failures``: how many earlier attempts failed (an interrupted one does not
        count; default ``attempt - 1``)."""
        self._failures[pilot.id] = attempt - 1 if failures is None else failures
        out = self.root / pilot.id / f"attempt{attempt}"
        if out.exists():  # an abandoned attempt of an earlier session: kill what is left, start afresh
            self.backend.reap(out)
            out = self.root / pilot.id / f"attempt{attempt}-{int(time.time() * 1000)}"
        job = Job(pilot, self.trainer, str(out), attempt, self.timeout_s)
        handle = self.backend.submit(job)
        self.running[pilot.id] = handle
        return Event("started", pilot, attempt, str(out), external_id=handle.external_id)

    def adopt(self, pilot: Pilot, attempt: int, out_dir: str, external_id: str | None, failures: int = 0) -> bool:
        """Follow an attempt an interrupted loop started, if the back end can find it again (Slurm)."""
        handle = self.backend.reattach(Job(pilot, self.trainer, out_dir, attempt, self.timeout_s), external_id)
        if handle is None:
            return False
        self.running[pilot.id] = handle
        self._failures[pilot.id] = failures
        return True

    def poll(self) -> list[Event]:
        events = []
        for pid, handle in list(self.running.items()):
            result = self.backend.poll(handle)
            if result is None and self.timeout_s and time.time() - handle.started > self.timeout_s + 10:
                self.backend.cancel(handle)
                result = PilotFailed("timeout", f"{pid} ran past {self.timeout_s:g} s and was stopped", _tail(Path(handle.job.out_dir) / "log.txt"))
            if result is None:
                continue
            del self.running[pid]
            job = handle.job
            if isinstance(result, pd.DataFrame):
                events.append(Event("done", job.pilot, job.attempt, job.out_dir, rows=result))
            elif self._failures.get(pid, 0) < self.retries:
                events.append(Event("retry", job.pilot, job.attempt, job.out_dir, error=result))
                events.append(self.submit(job.pilot, job.attempt + 1, self._failures.get(pid, 0) + 1))
            else:
                events.append(Event("failed", job.pilot, job.attempt, job.out_dir, error=result))
        return events

    def wait(self, timeout: float | None = None, every: float = 0.1) -> list[Event]:
        """:meth:`poll` every ``every`` seconds until no attempt is running (retries included) or
        ``timeout`` seconds have passed; every event on the way, in order. For a script that sends a
        batch of pilots and needs them all; the loop polls instead, between its own steps."""
        events, start = [], time.time()
        while self.running and (timeout is None or time.time() - start < timeout):
            events += self.poll()
            if self.running:
                time.sleep(every)
        return events

    def cancel_all(self) -> None:
        for handle in self.running.values():
            self.backend.cancel(handle)
        self.running.clear()


if __name__ == "__main__":
    sys.exit(_worker_main(sys.argv[1]))
