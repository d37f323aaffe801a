"""The closed loop: fit -> suggest -> dispatch -> collect -> refit, with its state on disk.

:func:`run_loop` (``bayes-mixlaw loop LOOP.yaml --state DIR``) runs an initial design of pilots
(Dirichlet mixtures, the allowed sizes in turn, the longest allowed length), then in rounds: fits the
law to every pilot done (the nested law when the pilots span several sizes, else the mixing law at
the last step; ``fit.method`` ``fast`` by default), records the best predicted mixture at the target
scale with its interval, chooses ``batch_size`` new pilots (``bayes_mixlaw.fidelity.choose_pilots``:
mixture, size and length per unit cost), dispatches them (``bayes_mixlaw.runners``), and collects
their rows, until the budget (pilots done, and/or cost = params x steps over every attempt) is spent.
It ends by writing ``DIR/runs.csv`` (the runs table, tidy) and ``DIR/fit.nc`` (the last fit).

Every event (suggested, started, retry, done, failed, fit) is committed to ``DIR/state.sqlite``
(``bayes_mixlaw.loop_state``) before the loop goes on; a pilot's rows enter the table in the same
transaction that marks it done. ``run_loop(resume=True)`` (``loop --resume --state DIR``) after
Ctrl-C, a kill or a crash reads the config from the state, kills what the dead loop left running,
sends the pilots that were running again (their next attempt in a fresh folder: a pilot is never in
the table twice, and none is lost), and finishes the same budget.

Progress: in a terminal a live panel (pilots queued/running/done/failed, budget used, the best
predicted mixture and its interval) below the events' lines; elsewhere one log line per event.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np

from bayes_mixlaw.atomic import write_atomically
from bayes_mixlaw.loop_config import LoopConfig, LoopConfigError, load_loop_config, loop_config_from_dict
from bayes_mixlaw.loop_state import LoopState
from bayes_mixlaw.runners import CallableTrainer, CommandTrainer, Dispatcher, Pilot, make_backend

log = logging.getLogger("bayes_mixlaw.loop")


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


def make_trainer(config: LoopConfig):
    t = config.trainer
    if t.reference is not None:
        return CallableTrainer("bayes_mixlaw.trainer:train_pilot", t.rows_file, dict(t.reference))
    if t.command is not None:
        return CommandTrainer(t.command, t.rows_file)
    return CallableTrainer(t.callable, t.rows_file)


def _bounds(config: LoopConfig):
    from bayes_mixlaw.optimize import MixtureBounds

    if config.caps is None:
        return MixtureBounds()
    if isinstance(config.caps, str):
        return MixtureBounds.from_file(config.caps)
    caps = config.caps
    if set(caps) <= {"caps", "minimums"}:
        return MixtureBounds(dict(caps.get("minimums") or {}), dict(caps.get("caps") or {}))
    return MixtureBounds({}, dict(caps))


def _targets(config: LoopConfig):
    from bayes_mixlaw.targets import Targets

    if config.valid_weights is None:
        return Targets()
    return Targets.from_files(config.valid_weights)


class LoopDisplay:
    """Live panel in a terminal (``live=None``: when stderr is one), else log lines."""

    def __init__(self, live: bool | None = None, quiet: bool = False):
        self.live_mode = (sys.stderr.isatty() if live is None else live) and not quiet
        self.quiet = quiet
        self.lines: list[str] = []
        self._live = None
        self._summary = {}

    def __enter__(self):
        if self.live_mode:
            from rich.console import Console
            from rich.live import Live

            self._live = Live(self._render(), console=Console(stderr=True), refresh_per_second=4, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc):
        if self._live is not None:
            self._live.update(self._render())
            self._live.__exit__(*exc)
            self._live = None

    def event(self, text: str) -> None:
        self.lines = (self.lines + [time.strftime("%H:%M:%S ") + text])[-100:]
        if self._live is None and not self.quiet:
            log.info(text)
        elif self._live is not None:  # the line above the panel (the terminal keeps them all), the panel below
            self._live.console.print(self.lines[-1], highlight=False, soft_wrap=True, style="dim")
            self._live.update(self._render())

    def update(self, summary: dict) -> None:
        self._summary = summary
        if self._live is not None:
            self._live.update(self._render())

    def _render(self):
        from rich.console import Group
        from rich.table import Table

        s = self._summary
        table = Table.grid(padding=(0, 2))
        table.add_row("pilots", f"queued {s.get('queued', 0)}  running {s.get('running', 0)}  done {s.get('done', 0)}  failed {s.get('failed', 0)}")
        table.add_row("budget", s.get("budget", ""))
        table.add_row("best mixture", s.get("best", "(no fit yet)"))
        return Group(table)


def _summary(state: LoopState, config: LoopConfig) -> dict:
    counts = state.counts()
    parts = []
    if config.budget.runs:
        parts.append(f"{counts['done']}/{config.budget.runs} pilots done")
    spent = state.spent()
    unit = "cost units" if config.costs else "FLOPs" if config.tokens_per_step else "params x steps"
    parts.append(f"cost {spent:.3g}" + (f"/{config.budget.cost:.3g}" if config.budget.cost else "") + f" ({unit})")
    fit = state.last_fit()
    best = "(no fit yet)"
    if fit and fit["mixture"]:
        mix = ", ".join(f"{d} {v:.2f}" for d, v in fit["mixture"].items())
        best = f"{mix}: loss {fit['loss']:.4f} [{fit['lower']:.4f}, {fit['upper']:.4f}] (round {fit['round']}, {fit['runs']} pilots)"
    return {**counts, "budget": "; ".join(parts), "best": best}


def _initial_pilots(config: LoopConfig, state: LoopState, n: int) -> tuple[list[Pilot], list[float]]:
    import torch

    from bayes_mixlaw.optimize import project_capped_simplex

    lo, hi = _bounds(config).arrays(config.domains, "caps")
    rng = np.random.default_rng(config.seed)
    mixtures = rng.dirichlet(np.full(len(config.domains), config.initial_design.alpha), size=n)
    mixtures = project_capped_simplex(torch.as_tensor(mixtures), torch.as_tensor(lo), torch.as_tensor(hi)).numpy()
    steps = config.pilots.steps[-1]
    first = state.next_id()
    pilots, costs = [], []
    for k in range(n):
        size = config.pilots.sizes[k % len(config.pilots.sizes)]
        mixture = _normalised(dict(zip(config.domains, mixtures[k])))
        pilots.append(Pilot(f"p{first + k:03d}", mixture, size, steps, config.pilots.schedule, config.seed + first + k))
        costs.append(config.cost(size, steps))
    return pilots, costs


def _normalised(mixture: dict) -> dict:
    """Shares rounded to 6 decimals (no 1e-17 crumbs from the optimiser) that sum to one."""
    clean = {d: max(0.0, round(float(v), 6)) for d, v in mixture.items()}
    total = sum(clean.values())
    clean = {d: round(v / total, 6) for d, v in clean.items()}
    largest = max(clean, key=clean.get)
    clean[largest] = round(clean[largest] + 1.0 - sum(clean.values()), 6)
    return clean


def _budget_left(config: LoopConfig, state: LoopState) -> tuple[int | None, float | None]:
    """Pilots and cost the budget still allows for new suggestions."""
    counts = state.counts()
    runs = None if config.budget.runs is None else config.budget.runs - counts["done"] - counts["queued"] - counts["running"]
    cost = None if config.budget.cost is None else config.budget.cost - state.committed_cost()
    return runs, cost


class Loop:
    """One loop over a state folder; :func:`run_loop` is the way in."""

    def __init__(self, config: LoopConfig, state: LoopState, display: LoopDisplay, trainer=None):
        self.config, self.state, self.display = config, state, display
        self.trainer = trainer or make_trainer(config)
        b = config.backend
        self.backend = make_backend(
            b.kind, workers=b.workers, state_dir=state.folder, address=b.address, num_cpus=b.num_cpus, cluster=b.cluster, parameters=b.parameters
        )
        self.dispatcher = Dispatcher(
            self.trainer, self.backend, state.folder / "pilots", retries=config.trainer.retries, timeout_s=config.trainer.timeout_s, workers=b.workers
        )
        self.law = None
        self.bounds = _bounds(config)

    # events ------------------------------------------------------------------------------------------
    def _launch(self) -> None:
        queued = self.state.pilots("queued")
        for _, row in queued.head(self.dispatcher.free).iterrows():
            pilot = self.state.pilot(row)
            event = self.dispatcher.submit(pilot, int(row["attempts"]) + 1, self.state.failures(pilot.id))
            self.state.started(pilot.id, event.attempt, event.out_dir, event.external_id)
            self.display.event(
                f"{pilot.id} started (attempt {event.attempt}, {pilot.params} params, {pilot.steps} steps"
                + (f", {event.external_id}" if event.external_id else "")
                + ")"
            )

    def _collect(self) -> None:
        for event in self.dispatcher.poll():
            pid = event.pilot.id
            if event.kind == "started":
                self.state.started(pid, event.attempt, event.out_dir, event.external_id)
                self.display.event(f"{pid} started again (attempt {event.attempt})")
            elif event.kind == "done":
                self.state.done(pid, event.rows)
                self.state.export_runs()
                last = event.rows[event.rows["step"] == event.rows["step"].max()]
                self.display.event(f"{pid} done: {len(event.rows)} rows, mean loss {last['loss'].mean():.4f} at step {int(last['step'].iloc[0])}")
            elif event.kind == "retry":
                err = event.error
                self.state.retry(pid, event.attempt, err.reason, err.message, err.log)
                self.display.event(f"{pid} attempt {event.attempt} failed ({err.message}); retrying")
            elif event.kind == "failed":
                err = event.error
                self.state.failed(pid, event.attempt, err.reason, err.message, err.log)
                self.display.event(f"{pid} failed after {event.attempt} attempt(s): {err.message} (log: {event.out_dir}/log.txt)")
        self.display.update(_summary(self.state, self.config))

    def resume_running(self) -> None:
        """After an interruption: follow the attempts the back end can find again (Slurm jobs), kill what
        else the dead loop left running, and queue those pilots again (a fresh folder each)."""
        adopted = []
        for _, row in self.state.pilots("running").iterrows():
            pilot = self.state.pilot(row)
            if self.dispatcher.adopt(pilot, int(row["attempts"]), row["out_dir"], row["external_id"], self.state.failures(pilot.id)):
                adopted.append(pilot.id)
        requeued = self.state.requeue_running(keep=adopted)  # the others go back to the queue
        for out_dir in self.state.pilots()["out_dir"].dropna():
            if Path(out_dir).exists() and not any(str(out_dir) == h.job.out_dir for h in self.dispatcher.running.values()):
                self.backend.reap(Path(out_dir))
        parts = ([f"{len(requeued)} interrupted pilot(s) queued again ({', '.join(requeued)})"] if requeued else []) + (
            [f"following {len(adopted)} running job(s) ({', '.join(adopted)})"] if adopted else []
        )
        self.display.event("resumed" + (": " + "; ".join(parts) if parts else ""))

    # fitting and choosing ----------------------------------------------------------------------------
    def _scale(self) -> dict:
        t = self.config.target
        return {"params": t.params, "step": t.step} if (self.config.nested and t) else {}

    def fit(self, round_: int):
        """Fit the law on every pilot done; record the best predicted mixture. Returns the law, or None
        when the pilots done cannot be fitted yet (the caller then adds design pilots)."""
        from bayes_mixlaw.mixing import MixingLaw
        from bayes_mixlaw.nested import NestedLaw
        from bayes_mixlaw.optimize import optimal_mixture
        from bayes_mixlaw.runs import load_runs

        frame = self.state.runs_frame()
        if frame.empty:
            return None
        config = self.config
        if not config.nested:
            frame = frame[frame["step"] == frame["step"].max()].drop(columns=["params", "step"])
        table = load_runs(frame)
        if self.law is None:
            self.law = NestedLaw(targets=_targets(config)) if config.nested else MixingLaw(targets=_targets(config))
        started = time.perf_counter()
        import warnings

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the fit's warnings are in its diagnostics, said below
                self.law.fit(table, seed=config.fit.seed + round_, method=config.fit.method, progress=False)
        except ValueError as err:
            self.display.event(f"round {round_}: cannot fit yet ({err}); adding design pilots")
            return None
        scale = self._scale()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an optimum beyond the pilots: its wide interval says so
            best = optimal_mixture(self.law, bounds=self.bounds, draws=128, starts=4, steps=150, seed=config.seed + round_, **scale)
        rows = best.table()
        loss = rows[rows["quantity"] == "loss"].iloc[0]
        mixture = dict(zip(best.train_domains, map(float, best.optimum)))
        path = self.state.folder / "fits" / f"round{round_:03d}.nc"
        path.parent.mkdir(exist_ok=True)
        self.law.save(path)
        seconds = time.perf_counter() - started
        n_runs = len(table.runs)
        self.state.add_fit(
            round_,
            n_runs,
            str(path),
            mixture,
            float(loss["median"]),
            float(loss["lower"]),
            float(loss["upper"]),
            seconds,
            self.law.summary_line() if hasattr(self.law, "summary_line") else "",
        )
        problems = getattr(self.law.diagnostics, "problems", None)
        self.display.event(
            f"round {round_}: fitted {n_runs} pilots in {seconds:.1f} s; best mixture "
            + ", ".join(f"{d} {v:.2f}" for d, v in mixture.items())
            + f", predicted loss {loss['median']:.4f} [{loss['lower']:.4f}, {loss['upper']:.4f}]"
            + (f" ({'; '.join(problems)})" if problems else "")
        )
        self.display.update(_summary(self.state, config))
        return self.law

    def suggest(self, round_: int, n: int, max_cost: float | None) -> int:
        """Queue up to ``n`` new pilots chosen on the last fit; returns how many."""
        from bayes_mixlaw.fidelity import choose_pilots

        config = self.config
        sizes = config.pilots.sizes
        steps = config.pilots.steps if config.nested else config.pilots.steps[-1:]
        import warnings

        with warnings.catch_warnings():  # candidates beyond the pilots are what exploration is for: not a warning here
            warnings.simplefilter("ignore")
            picks = choose_pilots(
                self.law,
                n,
                sizes=sizes,
                steps=steps,
                cost=config.cost,
                acquisition=config.acquisition,
                target_scale=self._scale(),
                bounds=self.bounds,
                seed=config.seed + round_,
                max_cost=max_cost,
            )
        pilots, costs, left = [], [], max_cost
        first = self.state.next_id()
        for k, pick in enumerate(picks):
            if left is not None and pick["cost"] > left * (1 + 1e-9):
                continue
            left = None if left is None else left - pick["cost"]
            pilots.append(
                Pilot(
                    f"p{first + len(pilots):03d}",
                    _normalised(pick["mixture"]),
                    int(pick["params"]),
                    int(pick["steps"]),
                    config.pilots.schedule,
                    config.seed + first + k,
                )
            )
            costs.append(pick["cost"])
        if pilots:
            self.state.add_pilots(pilots, round_, costs, picks[0]["acquisition"])
            for p in pilots:
                self.display.event(
                    f"round {round_}: suggested {p.id} at {p.params} params, {p.steps} steps: " + ", ".join(f"{d} {v:.2f}" for d, v in p.mixture.items())
                )
        return len(pilots)

    def add_design(self, n: int, round_: int, meta: dict | None = None) -> int:
        runs_left, cost_left = _budget_left(self.config, self.state)
        n = min(n, runs_left) if runs_left is not None else n
        if n <= 0:
            return 0
        pilots, costs = _initial_pilots(self.config, self.state, n)
        if cost_left is not None:
            keep = np.cumsum(costs) <= cost_left * (1 + 1e-9)
            pilots, costs = [p for p, k in zip(pilots, keep) if k], [c for c, k in zip(costs, keep) if k]
        if pilots:
            self.state.add_pilots(pilots, round_, costs, "initial design", meta)
            self.display.event(f"initial design: {len(pilots)} pilots queued")
        return len(pilots)

    # the loop ----------------------------------------------------------------------------------------
    def run(self) -> str:
        config, state = self.config, self.state
        if state.get("round") is None:  # the design and the mark that it exists commit together
            if not self.add_design(config.initial_design.runs, 0, meta={"round": 0}):
                state.set("round", 0)
        stopped = ""
        while True:
            self._launch()
            self._collect()
            counts = state.counts()
            if self.dispatcher.running or counts["queued"]:
                time.sleep(config.poll_s)
                continue
            if counts["failed"] >= config.budget.max_failures:
                stopped = f"{counts['failed']} pilots failed every attempt (budget.max_failures {config.budget.max_failures})"
                break
            runs_left, cost_left = _budget_left(config, state)
            if runs_left is not None and runs_left <= 0:
                stopped = f"budget spent: {counts['done']} pilots done"
                break
            cheapest = min(config.cost(p, s) for p in config.pilots.sizes for s in config.pilots.steps)
            if cost_left is not None and cost_left < cheapest:
                stopped = f"budget spent: cost {state.spent():.3g} of {config.budget.cost:.3g}"
                break
            round_ = state.get("round") + 1
            if self.fit(round_) is None:
                if not self.add_design(config.batch_size, round_):
                    stopped = "budget spent before the pilots could be fitted"
                    break
            else:
                n = config.batch_size if runs_left is None else min(config.batch_size, runs_left)
                if not self.suggest(round_, n, cost_left):
                    stopped = "no pilot fits in what is left of the budget"
                    break
            state.set("round", round_)
        state.event("finished", None, {"why": stopped})
        return stopped

    def finish(self) -> tuple[Path, Path | None]:
        """The last fit on every pilot (if the last round's fit is stale), ``runs.csv`` and ``fit.nc``."""
        runs_csv = self.state.export_runs()
        fit = self.state.last_fit()
        done = self.state.counts()["done"]
        if fit is None or fit["runs"] < done:
            round_ = self.state.get("round", 0) + 1
            if self.fit(round_) is not None:
                self.state.set("round", round_)
            fit = self.state.last_fit()
        if fit is None:
            return runs_csv, None
        final = write_atomically(self.state.folder / "fit.nc", lambda partial: partial.write_bytes(Path(fit["path"]).read_bytes()))
        return runs_csv, final

    def close(self) -> None:
        self.dispatcher.cancel_all()
        self.backend.close()


def run_loop(
    config: LoopConfig | str | Path | dict | None, state_dir: str | Path, *, resume: bool = False, trainer=None, live: bool | None = None, quiet: bool = False
) -> LoopResult:
    """Run (or with ``resume`` continue) the loop whose state lives in ``state_dir``.

    ``config``: a :class:`LoopConfig`, a LOOP.yaml path or a mapping (``None`` with ``resume``: the
    one stored in the state). ``trainer``: a :class:`~bayes_mixlaw.runners.CallableTrainer` or
    :class:`~bayes_mixlaw.runners.CommandTrainer` (or a plain function ``f(pilot, out_dir)``) instead
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
