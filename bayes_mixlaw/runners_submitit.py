"""The submitit back end: each attempt as a Slurm job (or submitit's local executor) through submitit
(``pip install 'bayes_mixlaw[cluster]'``; submitit is imported only when this back end is made)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from bayes_mixlaw.runners_contract import Handle, Job, PilotFailed, _missing_extra, _tail, execute


def execute_outcome(job: Job):
    """:func:`execute` with the failure as a value (``("failed", reason, message, log)``, else
    ``("done", rows)``): what a Slurm job returns, so no exception has to cross the pickle."""
    try:
        return ("done", execute(job))
    except PilotFailed as err:
        return ("failed", err.reason, err.message, err.log)


def _from_outcome(outcome):
    return outcome[1] if outcome[0] == "done" else PilotFailed(*outcome[1:])


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
