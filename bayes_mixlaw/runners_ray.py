"""The Ray back end: each attempt as a Ray task (``pip install 'bayes_mixlaw[cluster]'``; Ray is imported only
when this back end is made)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from bayes_mixlaw.runners_contract import Handle, Job, PilotFailed, _missing_extra, execute


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
