"""The closed loop: fit -> suggest -> dispatch -> collect -> refit, with its state on disk.

:func:`run_loop` (``bayes-mixlaw loop LOOP.yaml --state DIR``) runs an initial design of pilots
(Dirichlet mixtures, the allowed sizes in turn, the longest allowed length), then in rounds: fits the
law to every pilot done (the nested law when the pilots span several sizes, else the mixing law at
the last step; ``fit.method`` ``fast`` by default), records the best predicted mixture at the target
scale with its interval, chooses ``batch_size`` new pilots (``bayes_mixlaw.fidelity.choose_pilots``:
mixture, size and length per unit cost), dispatches them (``bayes_mixlaw.runners``), and collects
their rows, until the budget (pilots done, and/or cost = params x steps over every attempt) is spent.
It ends with a final fit on every pilot by ``fit.final`` (NUTS until converged by default: the loop's answer comes
from a fit that counts) and writes ``DIR/runs.csv`` (the runs table, tidy) and ``DIR/fit.nc`` (the final fit).

Every event (suggested, started, retry, done, failed, fit) is committed to ``DIR/state.sqlite``
(``bayes_mixlaw.loop_state``) before the loop goes on; a pilot's rows enter the table in the same
transaction that marks it done. ``run_loop(resume=True)`` (``loop --resume --state DIR``) after
Ctrl-C, a kill or a crash reads the config from the state, kills what the dead loop left running,
sends the pilots that were running again (their next attempt in a fresh folder: a pilot is never in
the table twice, and none is lost), and finishes the same budget.

Progress: in a terminal a live panel (pilots queued/running/done/failed, budget used, the best
predicted mixture and its interval) below the events' lines; elsewhere one log line per event.

The loop's parts have a module each: the progress display (:mod:`bayes_mixlaw.loop_display`), what the config says
about the pilots (:mod:`bayes_mixlaw.loop_pilots`: the trainer, the initial design, the budget left) and one loop's
rounds (:mod:`bayes_mixlaw.loop_rounds`); every name is still importable from here.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
from pathlib import Path

from bayes_mixlaw.loop_config import LoopConfig, LoopConfigError, load_loop_config, loop_config_from_dict
from bayes_mixlaw.loop_display import LoopDisplay, _summary, log
from bayes_mixlaw.loop_pilots import _budget_left as _budget_left  # importable from here as before
from bayes_mixlaw.loop_pilots import make_trainer
from bayes_mixlaw.loop_rounds import Loop
from bayes_mixlaw.loop_state import LoopState
from bayes_mixlaw.runners import CallableTrainer, CommandTrainer

__all__ = ["Loop", "LoopDisplay", "LoopResult", "make_trainer", "run_loop"]  # the loop's parts importable from here as before they had modules of their own


@dataclasses.dataclass
class LoopResult:
    """What a finished loop left: the state folder, the runs table and fit files, the best mixture."""

    state_dir: Path
    runs_csv: Path
    fit_path: Path | None
    best: dict | None
    counts: dict
    cost_spent: float
    stopped: str


def run_loop(
    config: LoopConfig | str | Path | dict | None, state_dir: str | Path, *, resume: bool = False, trainer=None, live: bool | None = None, quiet: bool = False
) -> LoopResult:
    """Run (or with ``resume`` continue) the loop whose state lives in ``state_dir``.

    ``config``: a :class:`LoopConfig`, a LOOP.yaml path or a mapping (``None`` with ``resume``: the
    one stored in the state). ``trainer``: a :class:`~bayes_mixlaw.runners_contract.CallableTrainer` or
    :class:`~bayes_mixlaw.runners_contract.CommandTrainer` (or a plain function ``f(pilot, out_dir)``) instead
    of the config's (e.g. a function defined in a notebook). Returns a :class:`LoopResult`.
    Ctrl-C (or SIGTERM) stops the running pilots and leaves the state to resume from.
    """
    state_dir = Path(state_dir)
    if isinstance(config, (str, Path)):
        config = load_loop_config(config)
    elif isinstance(config, dict):
        config = loop_config_from_dict(config)
    if resume:
        if not (state_dir / "state.sqlite").exists():
            raise LoopConfigError(f"{state_dir}: no loop state to resume (no state.sqlite); start one with: bayes-mixlaw loop LOOP.yaml --state {state_dir}")
        state = LoopState(state_dir)
        stored = loop_config_from_dict(state.get("config"), f"{state_dir}/state.sqlite")
        if config is not None and config.model_dump() != stored.model_dump():
            log.warning("%s: resuming with the config stored in the state; the config given differs and is not used", state_dir)
        config = stored
    else:
        if config is None:
            raise LoopConfigError("a loop needs a config (LOOP.yaml)")
        if (state_dir / "state.sqlite").exists():
            raise LoopConfigError(f"{state_dir} already holds a loop; continue it with --resume, or choose another --state folder")
        state = LoopState(state_dir)
        state.set("config", json.loads(config.model_dump_json()))
    if trainer is not None and not isinstance(trainer, (CallableTrainer, CommandTrainer)):
        trainer = CallableTrainer(trainer)
    previous = signal.getsignal(signal.SIGTERM)
    if _main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    display = LoopDisplay(live, quiet)
    loop = None
    try:
        with display:
            loop = Loop(config, state, display, trainer)
            if resume:
                loop.resume_running()
            display.update(_summary(state, config))
            stopped = loop.run()
            display.event(f"stopped: {stopped}")
            runs_csv, fit_path = loop.finish()
            display.update(_summary(state, config))
    except KeyboardInterrupt:
        if loop is not None:
            loop.close()
        state.event("interrupted", None, {"pid": os.getpid()})
        log.warning("interrupted: the running pilots were stopped; continue with: bayes-mixlaw loop --resume --state %s", state_dir)
        raise
    finally:
        if loop is not None:
            loop.close()
        if _main_thread():
            signal.signal(signal.SIGTERM, previous)
    fit = state.last_fit()
    result = LoopResult(state_dir, runs_csv, fit_path, fit, state.counts(), state.spent(), stopped)
    state.close()
    return result


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _terminate(signum, frame):
    raise KeyboardInterrupt
