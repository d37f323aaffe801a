"""One loop over a state folder, in rounds: launch the queued pilots, collect their events, fit the law on the
pilots done, suggest new pilots (or add design pilots), until the budget is spent; :func:`bayes_mixlaw.loop.run_loop`
is the way in."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from bayes_mixlaw.atomic import write_atomically
from bayes_mixlaw.loop_config import LoopConfig
from bayes_mixlaw.loop_display import LoopDisplay, _summary
from bayes_mixlaw.loop_pilots import _bounds, _budget_left, _initial_pilots, _normalised, _targets, make_trainer
from bayes_mixlaw.loop_state import LoopState
from bayes_mixlaw.runners import Dispatcher, Pilot, make_backend


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

    def fit(self, round_: int, method: str | None = None):
        """Fit the law on every pilot done (by ``method``, default the rounds' ``fit.method``); record the best predicted
        mixture. Returns the law, or None when the pilots done cannot be fitted yet (the caller then adds design pilots)."""
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
                self.law.fit(table, seed=config.fit.seed + round_, method=method or config.fit.method, progress=False)
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
        self.state.set("fit_method", method or config.fit.method)
        problems = getattr(self.law.diagnostics, "problems", None)
        self.display.event(
            f"round {round_}: fitted {n_runs} pilots{' (the final fit, ' + method + ')' if method else ''} in {seconds:.1f} s; best mixture "
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
        """The final fit on every pilot, ``runs.csv`` and ``fit.nc``. The final fit is by ``fit.final`` (NUTS until
        converged by default: the loop's answer, the best mixture and its interval, comes from a fit that counts; the
        rounds' fits, ``fit.method``, only choose pilots); the last round's fit is kept where it is that already."""
        runs_csv = self.state.export_runs()
        fit = self.state.last_fit()
        done = self.state.counts()["done"]
        final = self.config.fit.final
        if fit is None or fit["runs"] < done or self.state.get("fit_method", self.config.fit.method) != final:
            round_ = self.state.get("round", 0) + 1
            if self.fit(round_, method=final) is not None:
                self.state.set("round", round_)
            fit = self.state.last_fit()
        if fit is None:
            return runs_csv, None
        final = write_atomically(self.state.folder / "fit.nc", lambda partial: partial.write_bytes(Path(fit["path"]).read_bytes()))
        return runs_csv, final

    def close(self) -> None:
        self.dispatcher.cancel_all()
        self.backend.close()
