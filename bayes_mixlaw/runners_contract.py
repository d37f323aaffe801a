"""The runner contract: a pilot, its trainer, one attempt, its checked rows, and how it fails.

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

The back ends that run :func:`execute` have a module each (:mod:`bayes_mixlaw.runners_local`,
:mod:`bayes_mixlaw.runners_ray`, :mod:`bayes_mixlaw.runners_submitit`); :mod:`bayes_mixlaw.runners` picks one and
dispatches the pilots with retries.
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
import traceback
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

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


def _killpg(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


@dataclasses.dataclass
class Handle:
    """A submitted attempt: the job, when it started, the back end's id for it (pid, Ray task, Slurm job)."""

    job: Job
    started: float
    external_id: str | None = None
    inner: object = None


def _missing_extra(module: str, err: Exception):
    return ImportError(f"the {module} back end needs {module}: pip install 'bayes_mixlaw[cluster]' ({err})")
