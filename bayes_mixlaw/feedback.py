"""Feedback on the steps that take a while: one line per step with its time.

Messages go to the ``bayes_mixlaw`` logger at level INFO. The command line shows them (and hides
them with ``--quiet``); from Python they are silent unless logging is switched on, e.g.
``logging.basicConfig(level="INFO")``. Sampling has its own progress bar (nutpie's).
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager

log = logging.getLogger("bayes_mixlaw")


@contextmanager
def step(what: str, *, announce: bool = False):
    """Time the body and log ``what: N.N s`` when it ends; ``announce`` also logs ``what ...`` when it
    starts (for steps of more than a few seconds, so the wait has a name)."""
    if announce:
        log.info("%s ...", what)
    start = time.perf_counter()
    yield
    log.info("%s: %.1f s", what, time.perf_counter() - start)
