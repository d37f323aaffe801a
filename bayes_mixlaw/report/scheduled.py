"""The report of a schedule-aware scaling-law fit (:class:`~bayes_mixlaw.scheduled.ScheduledScalingLaw`): each pilot
run's curve against steps, the target run, the learning-rate schedules, and with an unknown schedule the posterior
of its length and what the assumptions about it move."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from bayes_mixlaw.report.common import CI, _png, _size_label
from bayes_mixlaw.summary import eti


def _panels(n: int, cols: int, width: float, height: float):
    cols = max(1, min(n, cols))
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False, layout="constrained")
    for ax in axes.flat[n:]:
        ax.axis("off")
    return fig, axes


def figure_schedule_curves(law, table: pd.DataFrame) -> bytes:
    """Schedule-aware fits: one panel per pilot run, its observed losses (dots) against steps and the
    fitted median and 90% predictive band of that run (``table``: :func:`fitted_vs_observed`), one
    colour per validation domain; the y-axis leaves out the first tenth of the steps (the early losses
    would flatten the rest)."""
    runs = list(dict.fromkeys(table["run"].astype(str)))
    origins = law.schedule_origins()
    fig, axes = _panels(len(runs), 4, 3.4, 2.5)
    for ax, run in zip(axes.flat, runs):
        g = table[table["run"].astype(str) == run]
        for k, domain in enumerate(law.valid_domains):
            h = g[g["obs_valid_domain"] == domain].sort_values("step")
            ax.fill_between(h["step"], h["lower"], h["upper"], alpha=0.25, color=f"C{k}", lw=0)
            ax.plot(h["step"], h["median"], color=f"C{k}", lw=1, label=f"{domain} (law, {CI:.0%} band)")
            inside = (h["lower"] <= h["loss"]) & (h["loss"] <= h["upper"])
            ax.plot(h["step"][inside], h["loss"][inside], ".", color=f"C{k}", ms=2.5, mec="k", mew=0.2)
            ax.plot(h["step"][~inside], h["loss"][~inside], "x", color="C3", ms=3, mew=0.8)
        late = g[g["step"] >= 0.1 * g["step"].max()]
        if len(late):
            low = min(late["loss"].min(), late["lower"].min())
            high = max(late["loss"].max(), late["upper"].max())
            pad = 0.08 * (high - low + 1e-9)
            ax.set_ylim(low - pad, high + pad)
        ax.set_title(f"{run} ({origins.get(run, '?')})", fontsize=7)
        ax.tick_params(labelsize=6)
        ax.set_xlabel("step", fontsize=7)
    axes.flat[0].set_ylabel("loss", fontsize=7)
    axes.flat[0].legend(fontsize=6)
    fig.suptitle(
        f"Pilot runs: observed loss (dots; red x: outside the band) and the fitted law ({CI:.0%} predictive band of each run) against steps", fontsize=9
    )
    return _png(fig)


def target_run_table(law, target_run: dict, points: int = 60) -> pd.DataFrame:
    """Schedule-aware fits: a new run of ``target_run["params"]`` trained with ``target_run["schedule"]``
    (None: like the pilots of unknown schedule) predicted at ``points`` steps up to ``target_run["step"]``
    (:meth:`~bayes_mixlaw.scheduled.ScheduledScalingLaw.predict`: ``params``, ``step``, ``target``,
    ``mean``, ``median``, ``lower``, ``upper``, ``beyond_log_size``)."""
    first = int(law.idata["observed_data"]["step"].values.min())
    end = int(target_run["step"])
    steps = np.unique(np.round(np.linspace(min(first, end), end, points)).astype(int))
    return law.predict(target_run["params"], target_run["schedule"], steps, ci=CI)


def figure_target_run(law, prediction: pd.DataFrame, table: pd.DataFrame) -> bytes:
    """Schedule-aware fits: the target run's predictive band against steps (``prediction``:
    :func:`target_run_table`), with the observed losses of the pilots of the nearest size (``table``:
    :func:`fitted_vs_observed`) in grey and the pilots' longest step dotted."""
    params = float(prediction["params"].iloc[0])
    sizes = np.unique(table["params"].to_numpy(float))
    nearest = sizes[int(np.argmin(np.abs(np.log(sizes / params))))]
    fig, ax = plt.subplots(figsize=(6.5, 4))
    pilots = table[table["params"] == nearest]
    ax.plot(pilots["step"], pilots["loss"], ".", color="grey", ms=2, alpha=0.5, label=f"pilots of {_size_label(nearest)}")
    for k, domain in enumerate(law.valid_domains):
        h = prediction[prediction["target"] == domain].sort_values("step")
        ax.fill_between(h["step"], h["lower"], h["upper"], alpha=0.25, color=f"C{k}", lw=0)
        ax.plot(h["step"], h["median"], color=f"C{k}", lw=1.2, label=f"{domain}: target run, median and {CI:.0%} band")
    ax.axvline(float(table["step"].max()), color="k", ls=":", lw=0.8)
    late = prediction[prediction["step"] >= 0.1 * prediction["step"].max()]
    low, high = min(late["lower"].min(), pilots["loss"].min()), late["upper"].max()
    ax.set_ylim(low - 0.05 * (high - low), high + 0.05 * (high - low))
    beyond = float(prediction["beyond_log_size"].iloc[0])
    where = f"{np.exp(beyond):.2g}x the largest pilot size" if beyond > 0 else "within the pilots' sizes"
    ax.set_title(f"Target run: {_size_label(params)} ({where})", fontsize=9)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend(fontsize=7)
    return _png(fig)


def _length_interval(law) -> tuple[float, float, float]:
    """The lower end, the median and the upper end of the :data:`CI` interval of the posterior of the
    unknown schedule's total length."""
    T = law.idata["posterior"]["total_steps"]
    lower, upper = eti(T, CI).values
    return float(lower), float(np.quantile(T.values.ravel(), 0.5)), float(upper)


def figure_schedules(law) -> bytes:
    """Schedule-aware fits: the learning rate of each pilot run against steps, as fitted (its ``lr``
    column or the given schedule; a run of unknown schedule: the assumed family relative to its peak,
    at the posterior median of its length with a band over its :data:`CI` interval); dotted: the
    run's last logged loss."""
    origins = law.schedule_origins()
    known = law.schedules
    obs = law.idata["observed_data"]
    last = pd.Series(obs["step"].values).groupby(obs["run"].values.astype(str)).max()
    fig, axes = _panels(len(origins), 4, 2.6, 1.9)
    unknown = law.unknown_schedule
    for ax, run in zip(axes.flat, origins):
        end = int(last.get(run, 0))
        if run in known:
            sched = known[run]
            steps = np.linspace(0, max(sched.horizon, end), 400)
            ax.plot(steps, sched.lr(steps), color="C0", lw=1)
            ax.set_title(f"{run}\n{sched.kind} ({origins[run]})", fontsize=6.5)
            ax.set_ylabel("LR", fontsize=6)
        else:
            lo_t, mid_t, hi_t = _length_interval(law)
            u_last = int(law.idata.attrs["unknown_last"])
            steps = np.linspace(0, hi_t, 400)
            rel = [unknown.schedule(round(t), u_last).lr(steps) for t in (lo_t, mid_t, hi_t)]
            ax.fill_between(steps, rel[0], rel[2], color="C1", alpha=0.3, lw=0)
            ax.plot(steps, rel[1], color="C1", lw=1)
            ax.set_title(f"{run}\n{unknown.family} (unknown): T {mid_t:,.0f} [{lo_t:,.0f}, {hi_t:,.0f}]", fontsize=6.5)
            ax.set_ylabel("LR / peak", fontsize=6)
        ax.axvline(end, color="k", ls=":", lw=0.8)
        ax.set_ylim(bottom=0)
        ax.tick_params(labelsize=6)
    fig.suptitle("Learning-rate schedules the fit used (dotted: each run's last logged loss)", fontsize=8)
    return _png(fig)


def figure_schedule_length(law) -> bytes:
    """Fits with runs of unknown schedule: the posterior of its total length T (log axis) over its
    log-uniform prior's range, with the posterior median and 90% interval, the last checkpoint L of
    those runs and 2 L."""
    T = law.idata["posterior"]["total_steps"].values.ravel()
    last = int(law.idata.attrs["unknown_last"])
    top = law.unknown_schedule.max_factor * last
    fig, ax = plt.subplots(figsize=(5.5, 2.6), layout="constrained")
    ax.axvspan(last, top, color="grey", alpha=0.1, lw=0, label="prior range (log-uniform)")
    ax.hist(T, bins=np.geomspace(last, top, 50), color="C1", alpha=0.75)
    lower, median, upper = _length_interval(law)
    q = (median, lower, upper)
    for v, style in zip(q, ("-", ":", ":")):
        ax.axvline(v, color="k", ls=style, lw=1)
    ax.axvline(2 * last, color="C3", ls="--", lw=1, label=f"2 L = {2 * last:,}")
    ax.set_xscale("log")
    ax.set_yticks([])
    ax.set_xlabel(f"total length T of the unknown schedule (steps; L = {last:,}, the last checkpoint of its runs)", fontsize=8)
    ax.set_title(
        f"Posterior of the unknown schedule's length: median {q[0]:,.0f} [{q[1]:,.0f}, {q[2]:,.0f}] ({CI:.0%}); P(T >= 2 L) = {np.mean(T >= 2 * last):.2f}",
        fontsize=8,
    )
    ax.legend(fontsize=7)
    return _png(fig)


def schedule_table(law) -> pd.DataFrame:
    """Schedule-aware fits: one row per pilot run, its size, its last logged step, where its schedule came
    from (``lr column``, the given ``schedule``, or ``unknown``) and the schedule (for a run of unknown
    schedule: what was assumed and the posterior of its length)."""
    obs = law.idata["observed_data"]
    frame = pd.DataFrame({"run": obs["run"].values.astype(str), "params": obs["params"].values, "step": obs["step"].values})
    per_run = frame.groupby("run", sort=False).agg(params=("params", "max"), last_step=("step", "max"))
    known = law.schedules
    rows = []
    for run, origin in law.schedule_origins().items():
        if run in known:
            said = known[run].describe()
        else:
            lo_t, mid_t, hi_t = _length_interval(law)
            said = (
                f"assumed: {law.unknown_schedule.describe(int(law.idata.attrs['unknown_last']))}; posterior T median {mid_t:,.0f} "
                f"[{lo_t:,.0f}, {hi_t:,.0f}] ({CI:.0%})"
            )
        rows.append({"run": run, "params": per_run.loc[run, "params"], "last_step": int(per_run.loc[run, "last_step"]), "origin": origin, "schedule": said})
    return pd.DataFrame(rows)


def schedule_assumption_table(law, ci: float = CI) -> pd.DataFrame:
    """Fits with runs of unknown schedule: :meth:`~bayes_mixlaw.scheduled.ScheduledScalingLaw.schedule_assumptions`
    for a new run of the pilots' largest size at the longest pilot length L and at 2 L, each row with the
    schedule it assumes (``schedule``) and how much it moves the median from the weighed prediction
    (``moves_median_pct``, the same target and step)."""
    obs = law.idata["observed_data"]
    size = float(np.max(obs["params"].values))
    longest = int(np.max(obs["step"].values))
    unknown = law.unknown_schedule
    last = int(law.idata.attrs["unknown_last"])
    frames = []
    for at in (longest, 2 * longest):
        sens = law.schedule_assumptions(size, [at], ci=ci)
        if not (sens["assumption"] == "weighed: T from the posterior").any():  # no draw of the length reaches the step
            weighed = pd.DataFrame(
                {
                    "assumption": "weighed: T from the posterior",
                    "params": size,
                    "step": at,
                    "target": law.valid_domains,
                    "note": f"no posterior draw of the unknown schedule's length reaches step {at}: the pilots say it ended before",
                }
            )
            sens = pd.concat([weighed, sens.assign(note="")], ignore_index=True)
        said = {"weighed: T from the posterior": unknown.describe(last), "constant LR (no decay)": "constant LR at the peak after the warm-up"}
        for total in (at, 2 * at):
            said[f"{unknown.family} ending at step {total}"] = unknown.schedule(total, last).describe() + " (LRs relative to the peak)"
        sens.insert(1, "schedule", sens["assumption"].map(said))
        weighed = sens[sens["assumption"] == "weighed: T from the posterior"].set_index("target")["median"]
        sens["moves_median_pct"] = 100 * (sens["median"] / sens["target"].map(weighed) - 1)
        frames.append(sens)
    return pd.concat(frames, ignore_index=True)


def _assumptions_shown(table: pd.DataFrame, digits: int = 4) -> pd.DataFrame:
    """The assumptions table as a paper prints it: the assumption, the schedule, the step and target, the
    median 'median [lower, upper]' and how much the assumption moves it."""
    return pd.DataFrame(
        {
            "assumption": table["assumption"],
            "schedule": table["schedule"],
            "step": table["step"].map(lambda s: f"{s:,}"),
            "target": table["target"],
            f"median [{CI:.0%} interval]": [
                f"{m:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]" if m == m else "" for m, lo, hi in zip(table["median"], table["lower"], table["upper"])
            ],
            "vs weighed": table["moves_median_pct"].map(lambda v: f"{v:+.2f}%" if v == v else ""),
            **({"note": table["note"].fillna("")} if "note" in table else {}),
        }
    )
