"""The loop's progress: a live panel in a terminal (pilots queued/running/done/failed, budget used, the best
predicted mixture and its interval) below the events' lines; elsewhere one log line per event (logger
``bayes_mixlaw.loop``)."""

from __future__ import annotations

import logging
import sys
import time

from bayes_mixlaw.loop_config import LoopConfig
from bayes_mixlaw.loop_state import LoopState

log = logging.getLogger("bayes_mixlaw.loop")


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
