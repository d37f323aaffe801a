"""Running pilots: the runner contract, its back ends (local processes, Ray, Slurm via submitit), retries.

The contract. A pilot is ``(mixture, params, steps, schedule)`` plus a name and a seed
(:class:`Pilot`); running it yields rows of the runs table (``bayes_mixlaw.runs``): ``run`` (the
pilot's name), ``params``, ``step``, ``valid_domain``, ``loss`` and the ``mix:<domain>`` columns. A
lab plugs its trainer in as

* a command template (:class:`CommandTrainer`), run by a shell in the attempt's folder, e.g.
  ``sbatch --wait train.sh --mix {mixture_json} --params {params} --steps {steps} --out {out_dir}``
  (fields: ``{run}``, ``{mixture_json}`` (shell-quoted JSON), ``{mixture_file}`` (a JSON file),
  ``{params}``, ``{steps}``, ``{schedule}``, ``{seed}``, ``{out_dir}``, ``{python}`` (this Python));
  the command writes its rows to ``{out_dir}/rows.csv`` (or ``rows_file``: CSV or Parquet); or
* a Python callable (:class:`CallableTrainer`) ``f(pilot, out_dir)`` returning the rows as a DataFrame
  (or ``None`` after writing ``out_dir/rows.csv``), given as ``"module:function"`` or the function.

:func:`execute` runs one attempt wherever it is sent (a thread, a worker process, a Ray task, a
Slurm job) and returns the checked rows or raises :class:`PilotFailed`: a non-zero exit, a timeout,
an exception, missing or malformed rows (not a valid runs table, another run's name, another mixture,
steps beyond the pilot's, losses that are not finite and positive). The failure carries the reason
and the tail of the attempt's log (``{out_dir}/log.txt``). Nothing is appended anywhere here: the
caller (the loop) adds a pilot's rows to its table in one transaction once they have been checked,
so a failed or half-written pilot never reaches the table.

Back ends (:func:`make_backend`): ``local`` (default: each attempt in its own process group, no
service needed; callables that cannot be imported by name run in a thread), ``ray`` (a Ray task per
attempt on ``ray.init(address=...)``; rows come back as the task's value, no shared folder needed)
and ``submitit`` (a Slurm job per attempt through submitit; ``cluster: local`` runs submitit's
local executor, ``slurm`` needs a folder shared with the compute nodes). Ray and submitit are
imported only when asked for (``pip install 'bayes_mixlaw[cluster]'``).

:class:`Dispatcher` sends pilots to a back end, enforces the timeout, retries a failed attempt up
to ``retries`` times in a fresh folder and reports each event (``started``, ``done``, ``failed``,
``retry``) to the caller.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import shlex
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from bayes_mixlaw.atomic import write_atomically
from bayes_mixlaw.runs import MIX_PREFIX, RunsTableError, validate_runs

LOG_TAIL = 4000  # characters of a failed attempt's log kept with the failure
ROWS_FILE = "rows.csv"


@dataclasses.dataclass(frozen=True)
class Pilot:
    """One pilot run: its name (``id``, the ``run`` of its rows), mixture (training domain -> share),
    model size, optimiser steps, learning-rate schedule and seed."""

    id: str
    mixture: dict
    params: int
    steps: int
    schedule: str = "constant"
    seed: int = 0

    @property
    def cost(self) -> float:
        """params x steps (proportional to the FLOPs at a fixed batch)."""
        return float(self.params) * float(self.steps)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Pilot:
        return cls(
            id=str(d["id"]),
            mixture={k: float(v) for k, v in d["mixture"].items()},
            params=int(d["params"]),
            steps=int(d["steps"]),
            schedule=str(d.get("schedule") or "constant"),
            seed=int(d.get("seed") or 0),
        )


class PilotFailed(Exception):
    """An attempt failed: ``reason`` (``exit``, ``timeout``, ``error``, ``missing``, ``malformed``,
    ``lost``, ``cancelled``), a message, and the tail of its log."""

    def __init__(self, reason: str, message: str, log: str = ""):
        super().__init__(f"{reason}: {message}")
        self.reason, self.message, self.log = reason, message, log[-LOG_TAIL:]

    def __reduce__(self):  # survives pickling (Ray, submitit)
        return (PilotFailed, (self.reason, self.message, self.log))


@dataclasses.dataclass(frozen=True)
class CommandTrainer:
    """A shell command template (see the module docstring for its fields) and where it leaves its rows."""

    template: str
    rows_file: str = ROWS_FILE

    def command(self, pilot: Pilot, out_dir: Path) -> str:
        mixture_file = out_dir / "mixture.json"
        mixture_file.write_text(json.dumps(pilot.mixture))
        fields = {
            "run": pilot.id,
            "mixture_json": shlex.quote(json.dumps(pilot.mixture)),
            "mixture_file": str(mixture_file),
            "params": pilot.params,
            "steps": pilot.steps,
            "schedule": pilot.schedule,
            "seed": pilot.seed,
            "out_dir": shlex.quote(str(out_dir)),
            "python": shlex.quote(sys.executable),
        }
        try:
            return self.template.format(**fields)
        except (KeyError, IndexError) as err:
            raise PilotFailed("error", f"the command template has an unknown field {err}; known: {', '.join('{' + f + '}' for f in fields)}") from err


@dataclasses.dataclass(frozen=True)
class CallableTrainer:
    """A Python trainer ``f(pilot, out_dir) -> DataFrame | None``, as ``"module:function"`` or the function."""

    function: object
    rows_file: str = ROWS_FILE
    kwargs: dict = dataclasses.field(default_factory=dict)

    @property
    def importable(self) -> bool:
        """Whether another process can find the function by name (then the local back end runs it there)."""
        return isinstance(self.function, str)

    def resolve(self) -> Callable:
        if not isinstance(self.function, str):
            return self.function
        module, _, name = self.function.partition(":")
        if not name:
            raise PilotFailed("error", f"a trainer callable is given as 'module:function', got {self.function!r}")
        try:
            return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as err:
            raise PilotFailed("error", f"cannot import the trainer {self.function!r}: {err}") from err


def reference_trainer(**kwargs) -> CallableTrainer:
    """The package's reference trainer (``bayes_mixlaw.trainer.train_pilot``); ``kwargs`` go to it."""
    return CallableTrainer("bayes_mixlaw.trainer:train_pilot", kwargs=kwargs)


@dataclasses.dataclass(frozen=True)
class Job:
    """One attempt of one pilot: where it writes (``out_dir``, its own folder per attempt) and its limit."""

    pilot: Pilot
    trainer: CommandTrainer | CallableTrainer
    out_dir: str
    attempt: int = 1
    timeout_s: float | None = None


def _tail(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - LOG_TAIL))
            return f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def _proc_start_time(pid: int) -> str | None:
    """The kernel's start time of a process (to tell it from a later one with the same pid)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _write_pid(path: Path, pid: int) -> None:
    path.write_text(json.dumps({"pid": pid, "start": _proc_start_time(pid)}))


def kill_recorded(path: Path) -> bool:
    """Kill the process group recorded in a pid file (by an attempt that was abandoned: the loop was
    killed while it ran), if that process still exists and is the same one. Returns whether it killed."""
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return False
    pid = int(record["pid"])
    if record.get("start") is None or _proc_start_time(pid) != record["start"]:
        return False
    try:
        os.killpg(pid, signal.SIGKILL)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def check_rows(frame: pd.DataFrame, pilot: Pilot, source: str) -> pd.DataFrame:
    """The rows a pilot wrote, checked against the pilot: a valid runs table (``validate_runs``) with
    ``params`` and ``step``, every row of this pilot (a single other run name is renamed to the pilot's),
    its mixture (``mix:*`` columns missing are filled from the pilot), no step beyond ``pilot.steps``."""
    if not isinstance(frame, pd.DataFrame) or frame.empty:
        raise PilotFailed("malformed", f"{source}: no rows")
    frame = frame.copy()
    for column in ("params", "step"):
        if column not in frame:
            raise PilotFailed("malformed", f"{source}: no '{column}' column (a pilot's rows need run, params, step, valid_domain, loss)")
    if "run" not in frame:
        frame["run"] = pilot.id
    names = pd.unique(frame["run"].astype(str))
    if len(names) > 1:
        raise PilotFailed("malformed", f"{source}: rows of {len(names)} runs ({', '.join(names[:4])}); a pilot writes its own only")
    frame["run"] = pilot.id
    for domain, share in pilot.mixture.items():
        column = MIX_PREFIX + domain
        if column not in frame:
            frame[column] = share
        elif not np.allclose(pd.to_numeric(frame[column], errors="coerce"), share, atol=1e-6):
            raise PilotFailed("malformed", f"{source}: column '{column}' is not the pilot's share {share:g}")
    extra = [
        c
        for c in frame.columns
        if c.startswith(MIX_PREFIX) and c[len(MIX_PREFIX) :] not in pilot.mixture and not np.allclose(pd.to_numeric(frame[c], errors="coerce"), 0.0)
    ]  # a domain the mixture leaves out is 0
    if extra:
        raise PilotFailed("malformed", f"{source}: training domain(s) {extra} have shares but are not in the pilot's mixture {sorted(pilot.mixture)}")
    try:
        table = validate_runs(frame, source)
    except RunsTableError as err:
        raise PilotFailed("malformed", str(err)) from None
    data = table.data
    if (data["step"] > pilot.steps).any():
        raise PilotFailed("malformed", f"{source}: step {int(data['step'].max())} is beyond the pilot's {pilot.steps} steps")
    return data


def read_rows(path: Path, pilot: Pilot) -> pd.DataFrame:
    """Read and check the rows file an attempt wrote (CSV or Parquet)."""
    if not path.exists():
        raise PilotFailed("missing", f"the trainer wrote no rows file {path}")
    try:
        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except Exception as err:
        raise PilotFailed("malformed", f"{path}: unreadable ({type(err).__name__}: {err})") from None
    return check_rows(frame, pilot, str(path))


def execute(job: Job) -> pd.DataFrame:
    """Run one attempt here (the caller chose the place) and return its checked rows, or raise :class:`PilotFailed`."""
    out = Path(job.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / "log.txt"
    trainer = job.trainer
    if isinstance(trainer, CommandTrainer):
        command = trainer.command(job.pilot, out)
        with open(log_path, "ab") as log:
            log.write(f"$ {command}\n".encode())
            log.flush()
            proc = subprocess.Popen(command, shell=True, cwd=out, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
            _write_pid(out / "command.pid", proc.pid)
            try:
                code = proc.wait(timeout=job.timeout_s)
            except subprocess.TimeoutExpired:
                _killpg(proc.pid)
                proc.wait()
                raise PilotFailed("timeout", f"{job.pilot.id} ran past {job.timeout_s:g} s and was stopped", _tail(log_path)) from None
            except BaseException:  # interrupted: leave no orphan behind
                _killpg(proc.pid)
                raise
        if code != 0:
            raise PilotFailed("exit", f"{job.pilot.id}: the command exited with code {code}", _tail(log_path))
        try:
            return read_rows(out / trainer.rows_file, job.pilot)
        except PilotFailed as err:
            raise PilotFailed(err.reason, err.message, _tail(log_path)) from None
    try:
        rows = trainer.resolve()(job.pilot, out, **trainer.kwargs)
    except PilotFailed:
        raise
    except Exception as err:
        text = traceback.format_exc()
        with open(log_path, "a") as log:
            log.write(text)
        raise PilotFailed("error", f"{job.pilot.id}: {type(err).__name__}: {err}", _tail(log_path)) from None
    if rows is None:
        return read_rows(out / trainer.rows_file, job.pilot)
    return check_rows(rows, job.pilot, f"{job.pilot.id} (rows returned by {trainer.function})")


def execute_outcome(job: Job):
    """:func:`execute` with the failure as a value (``("failed", reason, message, log)``, else
    ``("done", rows)``): what a Slurm job returns, so no exception has to cross the pickle."""
    try:
        return ("done", execute(job))
    except PilotFailed as err:
        return ("failed", err.reason, err.message, err.log)


def _from_outcome(outcome):
    return outcome[1] if outcome[0] == "done" else PilotFailed(*outcome[1:])


def _killpg(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _die_with_parent():  # pragma: no cover - runs in the child between fork and exec
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    os.setsid()


# --------------------------------------------------------------------------------------------------
# back ends


@dataclasses.dataclass
class Handle:
    """A submitted attempt: the job, when it started, the back end's id for it (pid, Ray task, Slurm job)."""

    job: Job
    started: float
    external_id: str | None = None
    inner: object = None


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


def _missing_extra(module: str, err: Exception):
    return ImportError(f"the {module} back end needs {module}: pip install 'bayes_mixlaw[cluster]' ({err})")


class RayBackend:
    """Each attempt as a Ray task (``num_cpus`` each) on the cluster at ``address`` (``None``: a local
    runtime started here with room for ``workers`` tasks, unless ``ray.init`` was called already;
    ``"auto"``: the cluster this machine belongs to). The rows come back as the task's
    value; ``out_dir`` is on the worker's machine (its log is also returned with a failure)."""

    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: float = 1, init_kwargs: dict | None = None, workers: int = 1):
        try:
            import ray
        except ImportError as err:
            raise _missing_extra("ray", err) from None
        self._ray = ray
        if not ray.is_initialized():
            local = {"num_cpus": max(1, int(np.ceil(workers * num_cpus))), "include_dashboard": False} if address is None else {}
            ray.init(address=address, **local, **(init_kwargs or {}))  # a local runtime: room for `workers` pilots at once
        self._remote = ray.remote(execute).options(num_cpus=num_cpus, max_retries=0)

    def submit(self, job: Job) -> Handle:
        ref = self._remote.remote(job)
        return Handle(job, time.time(), ref.hex(), ref)

    def poll(self, handle: Handle):
        ready, _ = self._ray.wait([handle.inner], timeout=0)
        if not ready:
            return None
        try:
            return self._ray.get(handle.inner)
        except PilotFailed as err:  # Ray re-raises the task's exception as a subclass of it
            return PilotFailed(err.reason, err.message, err.log)
        except Exception as err:
            return PilotFailed("lost", f"{handle.job.pilot.id}: the Ray task failed: {type(err).__name__}: {str(err)[:500]}")

    def cancel(self, handle: Handle) -> None:
        try:
            self._ray.cancel(handle.inner, force=True)
        except Exception:
            pass

    def reattach(self, job: Job, external_id: str | None) -> None:  # tasks of a dead driver die with it
        return None

    def reap(self, out_dir: Path) -> None:
        pass

    def close(self) -> None:
        pass


class SubmititBackend:
    """Each attempt as a submitit job: ``cluster="slurm"`` submits to Slurm (``parameters`` go to
    ``executor.update_parameters``, e.g. ``slurm_partition``, ``cpus_per_task``, ``gpus_per_node``,
    ``timeout_min``), ``cluster="local"`` runs submitit's local executor, ``None`` picks Slurm where
    there is one. ``folder`` (submitit's logs and pickles) must be shared with the compute nodes."""

    name = "submitit"

    def __init__(self, folder: str | Path, cluster: str | None = None, parameters: dict | None = None):
        try:
            import submitit
        except ImportError as err:
            raise _missing_extra("submitit", err) from None
        self._submitit = submitit
        self.folder = Path(folder)
        self.executor = submitit.AutoExecutor(folder=self.folder, cluster=cluster)
        if parameters:
            self.executor.update_parameters(**parameters)

    def submit(self, job: Job) -> Handle:
        if job.timeout_s and "timeout_min" not in (self.executor._executor.parameters or {}):
            self.executor.update_parameters(timeout_min=max(1, int(np.ceil(job.timeout_s / 60)) + 1))
        sjob = self.executor.submit(execute_outcome, job)
        return Handle(job, time.time(), str(sjob.job_id), sjob)

    def poll(self, handle: Handle):
        sjob = handle.inner
        if not sjob.done():
            return None
        try:
            return _from_outcome(sjob.result())
        except Exception as err:
            log = _tail(Path(handle.job.out_dir) / "log.txt")
            try:
                log += sjob.stderr() or ""
            except Exception:
                pass
            return PilotFailed("lost", f"{handle.job.pilot.id}: submitit job {sjob.job_id} failed: {str(err)[-800:]}", log)

    def reattach(self, job: Job, external_id: str | None) -> Handle | None:
        """A Slurm job of an interrupted loop, found again by its id (it kept running while the loop was
        down; its result is read from the shared folder); ``None`` where that is not possible."""
        if not external_id or self.executor.cluster != "slurm":
            return None
        try:
            return Handle(job, time.time(), external_id, self._submitit.SlurmJob(folder=self.folder, job_id=external_id))
        except Exception:
            return None

    def cancel(self, handle: Handle) -> None:
        try:
            handle.inner.cancel(check=False)
        except Exception:
            pass

    def reap(self, out_dir: Path) -> None:
        pass

    def close(self) -> None:
        pass


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


if __name__ == "__main__":
    sys.exit(_worker_main(sys.argv[1]))
