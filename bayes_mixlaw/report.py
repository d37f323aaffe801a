"""A fit as something to read: one self-contained HTML page, its PNG figures and its tables.

``write_report(law, folder)`` writes ``report.html`` (images embedded), every figure as a PNG, and the
parameter intervals as CSV, Markdown and LaTeX. Figures: posterior predictive check (observed against
fitted with 90% intervals); the interaction matrix t as a heatmap with its intervals; the predicted
total along each training domain's share (the others in the pilots' mean ratio) with credible bands;
one panel per validation domain along one training domain's share with the pilots' observed losses;
a ternary slice of the predicted loss and of its uncertainty; the optimal mixture's posterior; for a
nested fit, observed and fitted curves against steps and against model size. A continual
pre-training fit gets the parts that apply to it (:func:`report_sections`): the posterior predictive
check, the critical share of the original data (figure and ``critical`` table), the parameters and the
diagnostics. A schedule-aware scaling-law fit (:class:`~bayes_mixlaw.scheduled.ScheduledScalingLaw`) gets
the posterior predictive check, each pilot run's loss curve against steps with its fitted 90% band, the
learning-rate schedule each run was fitted with (``schedules`` table), and where a schedule was unknown,
the posterior of its total length and a ``schedule_assumptions`` table: what was assumed and how much it
moves a new run's predicted loss at the longest pilot length and at twice it. The diagnostics table says
in plain words what is wrong, if anything.
"""

from __future__ import annotations

import base64
import html
import io
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import BoundaryNorm
from matplotlib.tri import Triangulation

from bayes_mixlaw.feedback import step
from bayes_mixlaw.runs import MIX_PREFIX, PYTHIA_PARAMS
from bayes_mixlaw.summary import DEFAULT_CI as CI  # the report's interval level: the package's one default
from bayes_mixlaw.summary import eti, eti_values

HOW_TO_READ = {  # one line under each figure of the HTML page: what it shows and what to look for
    "ppc": f"Each pilot loss against its fitted posterior predictive median and {CI:.0%} interval. Points should hug the "
    f"diagonal, and about {CI:.0%} of them should lie inside their interval; far more means the noise is overestimated, "
    "far fewer that the law misses something.",
    "curves_steps": f"One pilot mixture's observed losses (dots) and fitted {CI:.0%} bands against training steps, one colour per "
    "model size. Dots leaving the band at the last checkpoints are where the step law bends (learning-rate schedule).",
    "curves_size": "The same mixture's losses against model size at the longest length: the size law the target run is extrapolated on.",
    "interactions": "How each training domain's share moves each validation loss (rows: validation domains; columns: "
    f"training domains; negative: more of it lowers that loss). Bold cells' {CI:.0%} intervals exclude zero.",
    "proportions": "The predicted loss as one domain's share goes from 0 to 1 (the others keep the pilots' mean ratio), "
    f"median and {CI:.0%} band of the law, on one y-axis for every domain (steeper: more sensitive). Grey: the range "
    "of shares the pilots covered; outside it the law extrapolates and the band says how far to trust it. At a "
    "scale beyond the pilots' sizes or lengths every point is an extrapolation, grey included (the title says so).",
    "domains": "One panel per validation domain along one training domain's share: the law's band, and every pilot's "
    f"observed loss with its own {CI:.0%} predictive interval (red: outside it). Pilots off the curve differ in their "
    "other shares; red ones are the law's misses.",
    "ternary": "Left: the predicted loss over three domains (the others fixed at their pilot-mean share, so a corner is "
    "that domain plus the others, as its label says; star: the lowest; circles: the pilots by their relative "
    "shares of the three). Colour levels sit at quantiles of the values, so the region near the optimum is "
    f"resolved. Right: the width of its {CI:.0%} interval: dark where the pilots pin the law down, bright where a "
    "prediction is a guess.",
    "critical": "Continual pre-training: the kept target's and the new domain's loss against the share of the original data "
    f"(bands: the law's {CI:.0%} interval; dots: the pilots; dashed: each starting loss). Beneath: the posterior of the "
    "critical share, where the kept target's band crosses its starting loss.",
    "schedule_curves": f"Each pilot run's observed losses (dots) against training steps with the law's fitted median and {CI:.0%} "
    "predictive band for that run (its own level, annealing amplitude and schedule). Dots leaving the band "
    "where the learning rate decays are what the step law misses of the schedule.",
    "target_run": "The target run (--params, its --schedule or the pilots' unknown one, to --step): the posterior predictive "
    f"median and {CI:.0%} band of a new run against steps, one colour per validation domain, with the pilots of the "
    "nearest size for comparison (grey dots). Beyond the largest pilot size the band carries the size exponent's "
    "prior and the model discrepancy (the title says how far); right of the dotted line it is beyond the pilots' steps.",
    "schedules": "The learning rate each run was fitted with, against steps (dotted: its last logged loss). A run of unknown "
    "schedule shows the assumed family relative to its peak: the line at the posterior median of the total length, "
    f"the band between its {(1 - CI) / 2:.0%} and {(1 + CI) / 2:.0%} quantiles.",
    "schedule_length": "The posterior of the unknown schedule's total length (log axis; the prior is log-uniform over the shaded "
    "range). Mass near the last checkpoint says the curves already anneal; mass spread to the right says "
    "the data cannot tell the length, and predictions beyond the pilots carry that (the assumptions table).",
    "optimum": f"Bars: the mixture with the lowest posterior expected loss. Points and lines: the median and {CI:.0%} interval "
    "of each posterior draw's own optimum (wide: the data do not pin that share down). Red ticks: the largest "
    "share any pilot had; a bar above its tick rests on extrapolation.",
}


def _scale(law) -> dict:
    """The scale predictions are made at: the largest pilot scale for a law with scale axes (nested), else none."""
    if not law.has_scale_axes:
        return {}
    scales = law.pilot_scales()
    return {"params": scales["params"][-1], law.length_column: scales[law.length_column][-1]}


def _size_label(params: float) -> str:
    """A model size as users know it: the Pythia name where the size is one (non-embedding 18,915,328
    is Pythia-70M), else millions or billions of parameters."""
    for name, n in PYTHIA_PARAMS.items():
        if np.isclose(params, n, rtol=1e-9):
            return f"Pythia-{name}"
    return f"{params / 1e9:.3g}B" if params >= 1e9 else f"{params / 1e6:.3g}M"


def _beyond(law, scale: dict) -> str:
    """'' inside the pilots' scales; else a clause saying every point of a figure at ``scale`` is an
    extrapolation in size and/or length (laws with scale axes: nested fits)."""
    if not law.has_scale_axes or not scale:
        return ""
    from bayes_mixlaw.discrepancy import distances

    far = {axis: d for axis, d in distances(law, scale).items() if d > 0}
    if not far:
        return ""
    return (
        "; every point is an extrapolation beyond the pilots ("
        + ", ".join(f"{axis} {np.exp(d):.2g}x" for axis, d in far.items())
        + "): the grey mixture range is where pilots were, not where predictions are safe"
    )


def _at(scale: dict, lead: str = "; at ") -> str:
    """The scale a figure or table is at, for its title ("; at params=805,736,448, step=100,000"); empty
    for a one-scale fit."""
    return lead + ", ".join(f"{k}={v:,.0f}" for k, v in scale.items()) if scale else ""


def _law_draws(law, r: np.ndarray, target: str, scale: dict | None = None) -> np.ndarray:
    """The law's expected ``target`` loss at each mixture, per draw: (sample, n). For a nested fit, at
    ``scale`` (default: the largest pilot scale) and without a new mixture's random departure (smooth in r)."""
    scale = _scale(law) if scale is None else scale
    f = law.target_function(target, **scale)
    import torch

    with torch.no_grad():
        return f(torch.as_tensor(r, dtype=torch.float64)[None].expand(f.n_draws, -1, -1)).numpy()


def _share_line(center: np.ndarray, j: int, share: np.ndarray) -> np.ndarray:
    """Mixtures with domain j at each ``share`` and the others in ``center``'s ratio: (len(share), M)."""
    others = np.delete(center, j)
    others = others / others.sum() if others.sum() > 0 else np.full(len(others), 1 / len(others))
    return np.array([np.insert(others * (1 - x), j, x) for x in share])


def _frame(law, r: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(r, columns=[MIX_PREFIX + d for d in law.train_domains])


def fitted_vs_observed(law, ci: float = CI) -> pd.DataFrame:
    """Every observed loss with the posterior predictive median and interval at its run and scale (a law
    with its own ``pilot_predictions``, the schedule-aware one: each loss at its own run's schedule)."""
    own = getattr(law, "pilot_predictions", None)
    if own is not None:
        return own(ci)
    obs = law.idata["observed_data"].to_dataset().to_dataframe().reset_index(drop=True)
    labels = law.pilot_labels
    if law.has_scale_axes:  # each loss at its own scale
        pilots = law.pilot_mixtures
        column = law.length_column
        out = []
        for (n, s), g in obs.groupby(["params", column]):
            draws = law.predict_draws(_frame(law, pilots), params=n, **{column: s})  # (chain, draw, mixture, target)
            median, bounds = _median(draws), eti(draws, ci).values
            mi = g[law.pilot_label_var].astype(str).map({m: i for i, m in enumerate(labels)}).to_numpy()
            vi = g["obs_valid_domain"].map({v: i for i, v in enumerate(law.valid_domains)}).to_numpy()
            out.append(g.assign(median=median[mi, vi], lower=bounds[mi, vi, 0], upper=bounds[mi, vi, 1]))
        return pd.concat(out).sort_index()
    draws = law.predict_draws(_frame(law, law.pilot_mixtures))  # (chain, draw, mixture[, step], target)
    median, bounds = _median(draws), eti(draws, ci).values
    index = [obs[law.pilot_label_var].astype(str).map({r: i for i, r in enumerate(labels)}).to_numpy()]
    if "step" in draws.dims:  # a law fitted per checkpoint (continual pre-training): each loss at its own step
        index.append(obs["obs_step"].map({s: i for i, s in enumerate(draws["step"].values)}).to_numpy())
    index.append(obs["obs_valid_domain"].map({v: i for i, v in enumerate(law.valid_domains)}).to_numpy())
    at = tuple(index)
    return obs.assign(median=median[at], lower=bounds[(*at, 0)], upper=bounds[(*at, 1)])


def _median(draws) -> np.ndarray:
    """The median over ``chain`` and ``draw`` (first) of labelled draws, as an array of the other dims."""
    values = draws.values
    return np.quantile(values.reshape(-1, *values.shape[2:]), 0.5, axis=0)


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def figure_ppc(table: pd.DataFrame) -> bytes:
    inside, said = coverage_verdict(table)
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.errorbar(
        table["median"], table["loss"], xerr=[table["median"] - table["lower"], table["upper"] - table["median"]], fmt=".", ms=2, alpha=0.35, elinewidth=0.5
    )
    lims = [table[["loss", "lower"]].min().min(), table[["loss", "upper"]].max().max()]
    ax.plot(lims, lims, "k--", lw=0.8)
    ax.set_xlabel(f"fitted (posterior predictive median, {CI:.0%} interval)")
    ax.set_ylabel("observed loss")
    ax.set_title(
        f"Posterior predictive check: {inside:.1%} of {len(table)} losses inside their {CI:.0%} interval"
        + ("" if said == "ok" else f"\n{said.split(':')[0]}: {said.split(': ', 1)[1].split(',')[0]}"),
        fontsize=9,
    )
    return _png(fig)


def interaction_rows(law, table: pd.DataFrame | None = None) -> tuple[str | None, pd.DataFrame | None]:
    """The interaction matrix's rows of ``law.parameters(CI)`` (or of ``table``, if already computed):
    ("t", rows) for the explicit law and the nested law, ("slope", rows) for the implicit law's centred
    slopes, (None, None) for a fit without one."""
    table = law.parameters(ci=CI) if table is None else table
    name = next((n for n in ("t", "slope") if (table["parameter"] == n).any()), None)
    return name, (table[table["parameter"] == name] if name else None)


def figure_interactions(law, table: pd.DataFrame | None = None) -> bytes | None:
    """Heatmap of the interaction matrix: t (rows sum to zero) or, for the implicit law, the centred
    slopes dL_i/dr_j at the pilots' mean; each cell 'mean [90% interval]', bold where it excludes 0.
    ``table``: ``law.parameters(CI)`` if already computed."""
    name, rows = interaction_rows(law, table)
    if name is None:
        return None
    grid = {
        k: rows.pivot(index="valid_domain", columns="train_domain", values=k).loc[law.valid_domains, law.train_domains].to_numpy()
        for k in ("mean", "lower", "upper")
    }
    mean = grid["mean"]
    fig, ax = plt.subplots(figsize=(1.1 * len(law.train_domains) + 3, 0.32 * len(law.valid_domains) + 1.5))
    bound = np.abs(mean).max()
    im = ax.imshow(mean, cmap="RdBu_r", vmin=-bound, vmax=bound, aspect="auto")
    digits = 1 if bound >= 1 else 2
    for i in range(mean.shape[0]):
        for j in range(mean.shape[1]):
            lower, upper = grid["lower"][i, j], grid["upper"][i, j]
            ax.text(
                j,
                i,
                f"{mean[i, j]:.{digits}f}\n[{lower:.{digits}f}, {upper:.{digits}f}]",
                ha="center",
                va="center",
                fontsize=5.5,
                fontweight="bold" if lower > 0 or upper < 0 else "normal",
            )
    ax.set_xticks(range(len(law.train_domains)), law.train_domains, rotation=30, ha="right")
    ax.set_yticks(range(len(law.valid_domains)), law.valid_domains, fontsize=7)
    what = {"t": "t (rows sum to zero)", "slope": "dL/dr at the pilots' mean, centred"}[name]
    fig.colorbar(im, ax=ax, label=f"{what}; bold: interval excludes 0")
    title = "Domain interactions t" if name == "t" else f"{law.config.law.replace('_', ' ')} law: loss change per unit share (centred slopes)"
    ax.set_title(f"{title}: posterior mean [{CI:.0%} interval]")
    return _png(fig)


def figure_proportion_bands(law, target: str = "total", points: int = 41, scale: dict | None = None) -> bytes:
    """Predicted target along each domain's share, the others in the pilots' mean ratio, with the
    pilots' range shaded. Nested fits: at ``scale`` (default: the largest pilot scale)."""
    scale = _scale(law) if scale is None else scale
    domains = law.train_domains
    center = law.pilot_mixtures.mean(axis=0)
    cols = min(len(domains), 4)
    rows = int(np.ceil(len(domains) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.0 * rows), squeeze=False, layout="constrained", sharey=True)
    pilots = law.pilot_mixtures
    share = np.linspace(0, 1, points)
    near = []  # the bands near the pilots' range set the shared y-axis (far out a band may run off it)
    for j, domain in enumerate(domains):
        r = _share_line(center, j, share)
        flat = _law_draws(law, r, target, scale)
        covered = (share >= pilots[:, j].min() - 0.15) & (share <= pilots[:, j].max() + 0.15)
        inside = (share >= pilots[:, j].min()) & (share <= pilots[:, j].max())
        lower, upper = eti_values(flat, CI)
        near.append(np.concatenate([np.median(flat[:, covered], 0), lower[inside], upper[inside]]))
        ax = axes.flat[j]
        ax.fill_between(share, lower, upper, alpha=0.3, label=f"{CI:.0%} interval")
        ax.plot(share, np.median(flat, 0), lw=1.2, label="median")
        ax.axvline(center[j], color="grey", ls=":", lw=0.8)
        ax.axvspan(pilots[:, j].min(), pilots[:, j].max(), color="grey", alpha=0.08, lw=0)
        ax.set_xlabel(f"share of {domain} (grey: the pilots' range)", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes.flat[len(domains) :]:
        ax.axis("off")
    span = np.concatenate(near)
    bottom, top = span.min(), np.quantile(span, 0.95)  # a few extreme band ends would flatten every curve
    pad = 0.1 * (top - bottom + 1e-9)
    axes.flat[0].set_ylim(bottom - pad, top + pad)  # one y-axis: the domains' sensitivities compare
    axes.flat[0].set_ylabel(f"predicted {target} loss")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(
        f"Expected {target} loss along each domain's share (others in the pilots' mean ratio; one y-axis){_at(scale)}{_beyond(law, scale)}", fontsize=9
    )
    return _png(fig)


def _widest_domain(law) -> str:
    """The training domain whose share varies most across the pilots (the best-supported slice)."""
    return law.train_domains[int(np.argmax(law.pilot_mixtures.std(axis=0)))]


def figure_domain_bands(law, table: pd.DataFrame, along: str | None = None, points: int = 41) -> bytes:
    """One panel per validation domain: the law's expected loss along one training domain's share
    (the others in the pilots' mean ratio) with its 90% band, and every pilot's observed loss at its
    own share of that domain (dots; bars: its posterior predictive interval at its own mixture, which
    is off the line wherever the pilot's other shares are not in the mean ratio). Nested fits: at the
    largest pilot scale, where the pilots' losses are observed."""
    along = along or _widest_domain(law)
    if along not in law.train_domains:
        raise ValueError(f"unknown training domain {along!r}; the fit's are {law.train_domains}")
    j = law.train_domains.index(along)
    pilots = law.pilot_mixtures
    center = pilots.mean(axis=0)
    share = np.linspace(0, 1, points)
    r = _share_line(center, j, share)
    observed = table
    for column, value in _scale(law).items():  # with scale axes: the pilots at the largest scale
        observed = observed[np.isclose(observed[column], value)]
    pilot_share = observed[law.pilot_label_var].map(dict(zip(law.pilot_labels, pilots[:, j])))
    domains = law.valid_domains
    cols = min(len(domains), 5)
    rows = int(np.ceil(len(domains) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.9 * cols, 2.3 * rows), squeeze=False, layout="constrained")
    for ax, domain in zip(axes.flat, domains):
        flat = _law_draws(law, r, domain)
        bounds = eti_values(flat, CI)
        ax.fill_between(share, bounds[0], bounds[1], alpha=0.3, color="C0")
        ax.plot(share, np.median(flat, 0), lw=1, color="C0")
        mine = observed["obs_valid_domain"] == domain
        g, x = observed[mine], pilot_share[mine]
        ax.errorbar(
            x,
            g["loss"],
            yerr=[(g["loss"] - g["lower"]).clip(lower=0), (g["upper"] - g["loss"]).clip(lower=0)],
            fmt="none",
            ecolor="grey",
            elinewidth=0.6,
            alpha=0.6,
        )
        inside = (g["lower"] <= g["loss"]) & (g["loss"] <= g["upper"])
        ax.plot(x[inside], g["loss"][inside], "o", ms=2.5, color="k")
        ax.plot(x[~inside], g["loss"][~inside], "o", ms=3, color="C3")
        ax.axvspan(pilots[:, j].min(), pilots[:, j].max(), color="grey", alpha=0.08, lw=0)
        span = np.concatenate([g["loss"].to_numpy(), bounds[:, (share >= pilots[:, j].min()) & (share <= pilots[:, j].max())].ravel()])
        if len(span):
            pad = 0.1 * (span.max() - span.min() + 1e-9)
            ax.set_ylim(span.min() - pad, span.max() + pad)
        ax.set_title(domain, fontsize=8)
        ax.tick_params(labelsize=6)
    for ax in axes.flat[len(domains) :]:
        ax.axis("off")
    fig.supxlabel(f"share of {along} (others in the pilots' mean ratio; grey: the pilots' range)", fontsize=8)
    fig.suptitle(
        f"Loss per validation domain along the share of {along}{_at(_scale(law), ' at ')}: law median and {CI:.0%} band; "
        f"pilots' observed losses (red: outside their own {CI:.0%} predictive interval, bars)",
        fontsize=8,
    )
    return _png(fig)


def figure_ternary(law, domains3: list[str] | None = None, target: str = "total", resolution: int = 30, scale: dict | None = None) -> bytes:
    """Ternary slice over three domains (the rest fixed at their pilot-mean share): median and interval
    width. Nested fits: at ``scale`` (default: the largest pilot scale)."""
    scale = _scale(law) if scale is None else scale
    domains = law.train_domains
    center = law.pilot_mixtures.mean(axis=0)
    pick = domains3 or [domains[i] for i in np.argsort(-center)[:3]]
    idx = [domains.index(d) for d in pick]
    rest = 1 - center[idx].sum() if len(domains) > 3 else 0.0
    grid = [(a, b, resolution - a - b) for a in range(resolution + 1) for b in range(resolution + 1 - a)]
    bary = np.array(grid, dtype=float) / resolution
    r = np.tile(center, (len(bary), 1))
    r[:, idx] = bary * (1 - rest)
    flat = _law_draws(law, r, target, scale)
    lower, upper = eti_values(flat, CI)
    median, width = np.median(flat, 0), upper - lower
    x = bary[:, 1] + bary[:, 2] / 2
    y = bary[:, 2] * np.sqrt(3) / 2
    # the pilots, placed by their relative shares of the three domains (their other shares may differ)
    own = law.pilot_mixtures[:, idx]
    own = own[own.sum(axis=1) > 0] / own[own.sum(axis=1) > 0].sum(axis=1, keepdims=True)
    px, py = own[:, 1] + own[:, 2] / 2, own[:, 2] * np.sqrt(3) / 2
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 4.6))
    mesh = Triangulation(x, y)  # explicit: tricontourf(x, y, z) first tries z as triangle indices
    corner = lambda k: f"{pick[k]} {1 - rest:.2g}" + (f"\n(+ others {rest:.2g})" if rest > 0 else "")  # noqa: E731
    for ax, values, label in ((axes[0], median, f"median {target} loss"), (axes[1], width, f"{CI:.0%} interval width")):
        # levels at quantiles of the values: as many colours near the optimum as at the extreme corners
        levels = np.unique(np.quantile(values, np.linspace(0, 1, 15)))
        norm = BoundaryNorm(levels, plt.get_cmap("viridis").N) if len(levels) > 2 else None
        filled = ax.tricontourf(mesh, values, levels=levels if norm else 14, cmap="viridis", norm=norm)
        fig.colorbar(filled, ax=ax, label=f"{label} (levels at its quantiles)", format="%.3g")
        ax.plot([0, 1, 0.5, 0], [0, 0, np.sqrt(3) / 2, 0], "k-", lw=0.8)
        ax.text(-0.02, -0.1, corner(0), ha="left", va="top", fontsize=7)
        ax.text(1.02, -0.1, corner(1), ha="right", va="top", fontsize=7)
        ax.text(0.5, np.sqrt(3) / 2 + 0.03, corner(2), ha="center", fontsize=7)
        ax.plot(px, py, "o", ms=3.5, mfc="white", mec="k", mew=0.6, label="pilots (relative shares)")
        ax.set_aspect("equal")
        ax.axis("off")
    best = np.argmin(median)
    axes[0].plot(x[best], y[best], "r*", ms=10, label="lowest median")
    axes[0].legend(fontsize=6, loc="upper left")
    fixed = f"; other domains fixed at their pilot-mean share ({rest:.2f} in all)" if rest > 0 else ""
    fig.suptitle(f"Simplex slice over {', '.join(pick)}{fixed}{_at(scale)}{_beyond(law, scale)}", fontsize=9, wrap=True)
    return _png(fig)


def figure_optimum(result, pilots: np.ndarray | None = None, where: str = "") -> bytes:
    """The Bayes-optimal mixture (bars) and the posterior of each draw's optimum (median, interval);
    with ``pilots`` (their mixtures), each domain's largest pilot share as a tick: a bar above it is
    an extrapolation of the mixing law beyond the data."""
    table = result.table()
    props = table[table["quantity"] == "proportion"]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    pos = np.arange(len(props))
    ax.bar(pos, props["optimum"], color="C0", alpha=0.7, label="Bayes-optimal mixture")
    med = props["median"].to_numpy(float)
    ax.errorbar(
        pos,
        med,
        yerr=[np.clip(med - props["lower"], 0, None), np.clip(props["upper"] - med, 0, None)],
        fmt="o",
        color="k",
        ms=3,
        label=f"draws' optima: median, {CI:.0%} interval",
    )
    if pilots is not None:
        ax.plot(pos, pilots.max(axis=0), "_", color="C3", ms=18, mew=1.5, label="largest share in any pilot")
    ax.set_xticks(pos, props["item"], rotation=30, ha="right")
    ax.set_ylabel("proportion")
    loss = table[table["quantity"] == "loss"].iloc[0]
    ax.set_title(
        f"Optimal mixture for '{result.target}'{where}: a new run's loss {loss['mean']:.3f} "
        f"[{loss['lower']:.3f}, {loss['upper']:.3f}] ({CI:.0%} predictive interval)",
        fontsize=9,
    )
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _png(fig)


def figure_critical(law, keep: str = "total", *, tolerance: float = 0.0, step=None, new_target: str | None = None, points: int = 101) -> bytes:
    """Continual pre-training fits: the ``keep`` target's and the new domain's expected loss against the
    share of the original data at checkpoint ``step`` (median and 90% band of the law; dots: the pilots'
    observed losses there), each starting loss as a horizontal line, and beneath, the posterior of the
    critical share (:mod:`bayes_mixlaw.critical`) with its median and 90% interval."""
    from bayes_mixlaw.critical import _target_row, critical_share_draws, new_domain_target

    step_idx = law.step_index(step)
    step_value = law.steps[step_idx]
    new = new_domain_target(law, new_target)
    share = np.linspace(0, 1, points)
    post = law.idata["posterior"]
    grid = np.broadcast_to(share, (post.sizes["chain"], post.sizes["draw"], points))
    domains = law.share_draws(grid, step_idx)  # (chain, draw, share, valid_domain)
    reference = law.reference_losses()
    obs = law.idata["observed_data"].to_dataset().to_dataframe()
    obs = obs[obs["obs_step"] == step_value].pivot_table(index="obs_run", columns="obs_valid_domain", values="loss")
    runs_share = pd.Series(law.pilot_mixtures[:, law.train_domains.index(law.original_domain)], index=law.idata["constant_data"]["run"].values)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6.4, 5.4), height_ratios=[2.2, 1], layout="constrained")
    right = top.twinx()
    for ax, target, color in ((top, keep, "C0"), (right, new, "C1")):
        weights = _target_row(law, target)
        flat = (domains @ weights).reshape(-1, points)
        lower, upper = eti_values(flat, CI)
        ax.fill_between(share, lower, upper, color=color, alpha=0.25, lw=0)
        ax.plot(share, np.median(flat, 0), color=color, lw=1.3, label=f"{target} (law, {CI:.0%} band)")
        ax.axhline(reference[target], color=color, ls="--", lw=1, label=f"{target} at the start")
        seen = obs.reindex(columns=law.valid_domains).dropna()
        if len(seen):
            ax.plot(runs_share.loc[seen.index], seen.to_numpy() @ weights, "o", color=color, ms=4, mec="k", mew=0.4)
        ax.tick_params(labelsize=7)
        ax.set_ylabel(f"{target} loss", color=color, fontsize=8)
    if tolerance:
        top.axhline(reference[keep] + tolerance, color="C0", ls=":", lw=1, label=f"start + tolerance {tolerance:g}")
    handles = top.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
    top.legend(handles=handles, fontsize=7, loc="upper center")
    draws = critical_share_draws(law, keep, tolerance=tolerance, step=step_value).ravel()
    found = draws[np.isfinite(draws)]
    if len(found):
        bottom.hist(found, bins=60, color="C0", alpha=0.7)
        q = [np.quantile(found, 0.5), *eti_values(found, CI)]
        for v, style in zip(q, ("-", ":", ":")):
            bottom.axvline(v, color="k", ls=style, lw=1)
        bottom.set_title(
            f"posterior of the critical share of {law.original_domain} for '{keep}': {q[0]:.3f} [{q[1]:.3f}, {q[2]:.3f}] ({CI:.0%})"
            + (f"; P(no share keeps it) = {1 - len(found) / len(draws):.2f}" if len(found) < len(draws) else ""),
            fontsize=8,
        )
        top.axvspan(q[1], q[2], color="grey", alpha=0.3, lw=0)
        pad = max(q[2] - q[1], 0.005) * 2
        bottom.set_xlim(max(found.min(), q[1] - pad), min(found.max(), q[2] + pad))
    bottom.set_yticks([])
    bottom.tick_params(labelsize=7)
    bottom.set_xlabel(f"share of {law.original_domain} (zoomed; the grey span above)", fontsize=8)
    top.set_xlabel(f"share of {law.original_domain} (the original data); dots: the pilots at this step", fontsize=8)
    top.set_title(f"Continual pre-training from {law.reference_checkpoint}, at step {step_value:,}", fontsize=9)
    return _png(fig)


def figure_curves(law, table: pd.DataFrame, against: str, mixture: str | None = None, domains: list[str] | None = None) -> bytes:
    """Nested fits: observed (dots) and fitted (median, 90% band) losses of one pilot mixture against
    steps (one line per size) or model size (at the longest length), one panel per validation domain."""
    column = law.length_column if against == "length" else "params"
    other = "params" if against == "length" else law.length_column
    mixture = mixture or str(table[law.pilot_label_var].iloc[0])
    domains = domains or law.valid_domains
    cols = min(len(domains), 4)
    rows = int(np.ceil(len(domains) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols, 2.4 * rows), squeeze=False, layout="constrained")
    for ax, domain in zip(axes.flat, domains):
        g = table[(table[law.pilot_label_var] == mixture) & (table["obs_valid_domain"] == domain)]
        levels = sorted(pd.unique(g[other]))
        shown = levels if against == "length" else levels[-1:]
        for k, level in enumerate(shown):
            h = g[g[other] == level].sort_values(column)
            label = _size_label(level) if other == "params" else f"{other} {level:g}"
            ax.fill_between(h[column], h["lower"], h["upper"], alpha=0.2, color=f"C{k}")
            ax.plot(h[column], h["median"], color=f"C{k}", lw=1, label=label)
            ax.plot(h[column], h["loss"], ".", color=f"C{k}", ms=3)
        ax.set_xscale("log")
        ax.minorticks_off()
        ticks = sorted(pd.unique(g[column]))
        ticks = ticks if len(ticks) <= 5 else ticks[:: int(np.ceil(len(ticks) / 4))]
        ax.set_xticks(ticks, [_size_label(t) if column == "params" else f"{t / 1e3:g}k" for t in ticks], fontsize=7)
        ax.tick_params(axis="y", labelsize=7)
        ax.set_title(domain, fontsize=8)
    for ax in axes.flat[len(domains) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=6)
    fig.suptitle(f"Mixture {mixture}: observed (dots) and fitted ({CI:.0%} band) loss against {column}, per validation domain", fontsize=9)
    return _png(fig)


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


def parameter_table(law, ci: float = CI, table: pd.DataFrame | None = None) -> pd.DataFrame:
    """``law.parameters(ci)`` (or ``table``, if already computed) with the labels first and no column
    that no parameter has."""
    table = (law.parameters(ci=ci) if table is None else table).dropna(axis=1, how="all")
    labels = [c for c in table.columns if c not in ("mean", "median", "lower", "upper")]
    return table[labels + [c for c in ("mean", "median", "lower", "upper") if c in table.columns]]


def _estimate(table: pd.DataFrame, digits: int) -> pd.Series:
    """'mean [lower, upper]' per row, the way a paper prints an estimate with its interval (blank
    where a row has none)."""
    return pd.Series(
        [f"{m:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]" if m == m else "" for m, lo, hi in zip(table["mean"], table["lower"], table["upper"])],
        index=table.index,
    )


def paper_table(table: pd.DataFrame, ci: float = CI, digits: int = 3) -> pd.DataFrame:
    """A table of estimates for a paper: the other columns (numbers to ``digits``; blank where a row
    has no value), then one column 'mean [lower, upper]' headed by the interval's probability."""
    table = table.dropna(axis=1, how="all")
    out = pd.DataFrame(index=table.index)
    for column in table.columns.drop(["mean", "median", "lower", "upper"], errors="ignore"):
        out[column] = table[column].map(lambda v: _cell(v, digits))
    out[f"mean [{ci:.0%} interval]"] = _estimate(table, digits)
    return out


def _cell(value, digits: int) -> str:
    """A table cell as text: blank for a missing value, floats to ``digits``."""
    if value is None or value != value:
        return ""
    return f"{value:.{digits}f}" if isinstance(value, (float, np.floating)) else str(value)


def interaction_matrix(law, digits: int = 2, table: pd.DataFrame | None = None) -> pd.DataFrame | None:
    """The interaction matrix (t, or the implicit law's centred slopes; named in ``.attrs["parameter"]``):
    a ``valid_domain`` column, then one column per training domain, each cell 'mean [lower, upper]' of
    the 90% interval; None for a fit without one. ``table``: ``law.parameters(CI)`` if already computed."""
    name, rows = interaction_rows(law, table)
    if name is None:
        return None
    cells = rows.assign(cell=_estimate(rows, digits)).pivot(index="valid_domain", columns="train_domain", values="cell")
    matrix = cells.loc[law.valid_domains, law.train_domains].rename_axis(columns=None).reset_index()
    matrix.attrs["parameter"] = name
    return matrix


def prediction_table(law, optimum, ci: float = CI, scale: dict | None = None) -> pd.DataFrame:
    """The law's expected loss of every target (each validation domain, each group, ``total``) at the
    Bayes-optimal mixture, the pilots' mean mixture and the optimum's reference (if it has one), with
    ``ci`` intervals: one row per mixture and target (``mixture``, ``target``, ``mean``, ``lower``,
    ``upper``). Nested fits: at ``scale`` (default: the largest pilot scale)."""
    scale = _scale(law) if scale is None else scale
    rows = {"optimum": optimum.optimum, "pilots' mean mixture": law.pilot_mixtures.mean(axis=0)}
    if optimum.reference is not None:
        rows["reference"] = optimum.reference
    frame = _frame(law, np.array(list(rows.values()))).assign(name=list(rows))
    predicted = law.predict(frame, ci=ci, kind="mean", **scale)
    return predicted.rename(columns={"name": "mixture"})[["mixture", "target", "mean", "lower", "upper"]]


def _by_target(table: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """A prediction table as the paper prints it: one row per target, one column per mixture, each cell
    'mean [lower, upper]'."""
    cells = table.assign(cell=_estimate(table, digits)).pivot(index="target", columns="mixture", values="cell")
    order = list(dict.fromkeys(table["target"]))
    return cells.loc[order, list(dict.fromkeys(table["mixture"]))].rename_axis(columns=None).reset_index()


def write_tables(
    table: pd.DataFrame, folder: Path, name: str, caption: str, ci: float = CI, digits: int = 3, index: bool = False, shown: pd.DataFrame | None = None
):
    """``name``.csv (every number), and ``name``.md / ``name``.tex (estimates with intervals, LaTeX
    escaped, booktabs) ready to paste into a paper. The latter two show ``shown`` if given, else
    ``table`` formatted by :func:`paper_table` if it has ``mean``/``lower``/``upper`` columns, else
    ``table`` as it is."""
    table.to_csv(folder / f"{name}.csv", index=index)
    if shown is None:
        shown = paper_table(table, ci, digits) if {"mean", "lower", "upper"} <= set(table.columns) else table
    (folder / f"{name}.md").write_text(shown.to_markdown(index=index, disable_numparse=True) + "\n")
    (folder / f"{name}.tex").write_text(
        shown.to_latex(index=index, escape=True, caption=_latex_escape(caption), label=f"tab:{name}", longtable=len(shown) > 40)
    )


def _latex_escape(text: str) -> str:
    """Text as LaTeX prints it literally (pandas escapes cells, not captions)."""
    special = {
        "\\": r"\textbackslash{}",
        "&": r"\&",
        "%": r"\%",
        "$": r"\$",
        "#": r"\#",
        "_": r"\_",
        "{": r"\{",
        "}": r"\}",
        "~": r"\textasciitilde{}",
        "^": r"\textasciicircum{}",
    }
    return "".join(special.get(c, c) for c in text)


def coverage_verdict(table: pd.DataFrame, ci: float = CI) -> tuple[float, str]:
    """The share of pilot losses inside their ``ci`` posterior predictive interval and what it says:
    'ok' within sampling error (2.5 binomial SE, at least 3 points) of ``ci``; above it the noise is
    over-estimated (intervals too wide), below it under-estimated or the law misses the pilots."""
    inside = float(((table["lower"] <= table["loss"]) & (table["loss"] <= table["upper"])).mean())
    slack = max(0.03, 2.5 * np.sqrt(ci * (1 - ci) / max(len(table), 1)))
    if inside > ci + slack:
        return inside, (f"over-covers ({inside:.1%} at a nominal {ci:.0%}): the noise is over-estimated, so predictive intervals are too wide")
    if inside < ci - slack:
        return inside, (
            f"under-covers ({inside:.1%} at a nominal {ci:.0%}): intervals are too narrow; the noise is "
            "under-estimated or the law misses some pilots (see the red points)"
        )
    return inside, "ok"


def diagnostics_table(law, ppc: pd.DataFrame | None = None) -> pd.DataFrame:
    """Convergence checks and, with ``ppc`` (:func:`fitted_vs_observed`), the predictive coverage of
    the pilots; 'no problems' only where every check is ok."""
    d = law.diagnostics
    problems = list(d.problems)
    rows = []
    if ppc is not None:
        inside, said = coverage_verdict(ppc)
        rows.append({"check": f"posterior predictive coverage ({CI:.0%} intervals)", "value": f"{inside:.1%}", "verdict": said})
        if said != "ok":
            problems.append(said)
    verdict = "no problems: the chains agree, the draws are enough and the intervals cover as they should" if not problems else "; ".join(problems)
    return pd.DataFrame(
        [
            {"check": "method", "value": f"{d.method} ({d.chains} chains x {d.draws} draws)", "verdict": ""},
            {"check": "divergent transitions", "value": d.divergences, "verdict": "ok" if d.divergences == 0 else "biased posterior possible"},
            {"check": "max R-hat", "value": f"{d.max_rhat:.3f}", "verdict": "ok" if not d.max_rhat > 1.01 else "chains disagree: run longer"},
            {
                "check": "min bulk ESS",
                "value": f"{d.min_ess_bulk:.0f}",
                "verdict": "ok" if d.min_ess_bulk >= 100 * d.chains else "few effective draws: intervals are noisy",
            },
            {"check": "sampling time", "value": f"{d.seconds:.1f} s", "verdict": ""},
            *rows,
            {"check": "overall", "value": "", "verdict": verdict},
        ]
    )


def summary_text(law) -> str:
    """``law.summary_line()``, or where it cannot be computed (a schedule-aware fit whose posterior has no
    length of the unknown schedule that reaches twice its runs' last checkpoint) what stands in its way."""
    try:
        return law.summary_line()
    except ValueError as err:
        return f"{law.kind.replace('_', ' ')} fit; its one-line summary could not be computed: {err}"


def report_sections(law) -> frozenset[str]:
    """The optional parts of ``law``'s report: its ``report_sections`` (a class attribute, or a property
    where the parts depend on the fit; :data:`~bayes_mixlaw.model.MIXTURE_REPORT` lists them); none for a law
    without a report."""
    return frozenset(law.report_sections or ())


def _critical_shown(table: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """The critical-share table as a paper prints it: the target and where it is kept, the critical share
    'mean [lower, upper]', P(no share keeps it), and the new domain's loss there 'mean [lower, upper]'."""
    new = table[["new_mean", "new_lower", "new_upper"]].set_axis(["mean", "lower", "upper"], axis=1)
    return pd.DataFrame(
        {
            "target": table["target"],
            "step": table["step"].map(lambda s: f"{s:,}"),
            "original data": table["domain"],
            "start loss": table["start_loss"].map(lambda v: f"{v:.{digits + 1}f}"),
            f"critical share, mean [{CI:.0%} interval]": _estimate(table, digits),
            "P(no share keeps it)": table["p_never"].map(lambda v: f"{v:.{digits}f}"),
            "new-data target": table["new_target"],
            f"its loss there, mean [{CI:.0%} interval]": _estimate(new, digits + 1),
        }
    )


def write_report(
    law,
    folder,
    *,
    target: str = "total",
    optimum=None,
    compare_with: dict | None = None,
    holdout: bool = False,
    along: str | None = None,
    scale: dict | None = None,
    mixture: str | None = None,
    bounds=None,
    caps_source: str = "caps",
    new_target: str | None = None,
    target_run: dict | None = None,
) -> Path:
    """Write report.html, the PNGs and the tables of a mixing-law, nested, continual pre-training or
    schedule-aware scaling-law fit into ``folder``. Which parts a fit gets: :func:`report_sections` (a
    continual fit: the posterior predictive check, the critical share of ``target`` at the last checkpoint
    with tolerance 0, its table ``critical``, the parameters and the diagnostics; no simplex, optimum or
    comparison. A schedule-aware fit: the posterior predictive check, each run's curve against steps, the
    schedules (figure and ``schedules`` table), with an unknown schedule its length's posterior and the
    ``schedule_assumptions`` table, the parameters and the diagnostics).
    ``scale``: for a nested fit, the target run's ``params`` and ``step``/``tokens``, where the share
    bands, the simplex slice and the optimal mixture are shown (default: the largest pilot scale;
    the fitted-against-observed figures are always at the pilots' own scales)
    ``compare_with``: other fitted variants of the same data ({name: law}) to rank by PSIS-LOO.
    ``holdout``: also refit each variant without the largest size (nested fits) or the mixtures
    farthest from the pilots' mean, and score its predictions of them (extrapolation; slow).
    ``along``: the training domain whose share the per-validation-domain panels vary (default: the
    one whose share varies most across the pilots). ``mixture``: the pilot mixture whose curves a
    nested fit's report shows against steps and size (default: the one nearest the pilots' mean).
    ``bounds``: caps and minimums of the optimal mixture (:class:`~bayes_mixlaw.optimize.MixtureBounds`,
    read from ``caps_source``), as ``optimize --caps`` takes them. ``new_target``: for the critical
    share, the validation domain of the new data (default: found by name,
    :func:`~bayes_mixlaw.critical.new_domain_target`). ``target_run``: for a schedule-aware fit, the target
    run to predict against steps, ``{"params": N, "schedule": Schedule or None, "step": S}`` (None: trained
    like the pilots of unknown schedule; figure and ``target_run`` table)."""
    if law.report_sections is None:
        raise ValueError(f"a {law.fit_name} fit has no report; the report covers mixing-law, nested, continual and schedule-aware fits")
    sections = report_sections(law)
    _refuse_options_without_their_part(
        law,
        sections,
        (
            (compare_with or holdout, "comparison", "comparing variants (--compare, --holdout)"),
            (bounds is not None, "optimum", "caps and minimums of the optimal mixture (--caps)"),
            (optimum is not None, "optimum", "an optimal mixture"),
            (along is not None, "domains", "--along (the per-domain panels along a share)"),
            (new_target is not None, "critical", "--new-target (the new data of continual pre-training)"),
            (target_run is not None, "schedule_curves", "a target run against steps (--schedule with --params/--step)"),
        ),
    )
    if "critical" in sections:
        from bayes_mixlaw.critical import new_domain_target

        new_target = new_domain_target(law, new_target)  # checked first, as the nested fit's mixture below
    if "curves" in sections:  # checked first: the figures take a while
        mixture = _pilot_mixture(law, mixture)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    scale = _scale(law) if scale is None else scale
    parts = _ReportParts(folder)

    with step("fitted against observed, every pilot loss"):
        table = fitted_vs_observed(law)
    parts.figure("ppc", "Posterior predictive check", lambda: figure_ppc(table))
    if "curves" in sections:
        parts.figure("curves_steps", f"Against training steps: mixture {mixture}", lambda: figure_curves(law, table, "length", mixture))
        parts.figure("curves_size", f"Against model size: mixture {mixture}", lambda: figure_curves(law, table, "size", mixture))
    if "schedule_curves" in sections:
        parts.figure("schedule_curves", "Pilot runs against training steps", lambda: figure_schedule_curves(law, table))
    if target_run is not None:
        _add_target_run(parts, law, target_run, table)
    if "schedules" in sections:
        parts.figure("schedules", "Learning-rate schedules", lambda: figure_schedules(law))
    if "unknown_schedule" in sections:
        _add_unknown_schedule(parts, law)
    if "schedules" in sections:
        _add_schedule_table(parts, law)
    estimates = law.parameters(ci=CI)
    if "critical" in sections:
        _add_critical_share(parts, law, target, new_target)
    optimum = _add_simplex_figures(
        parts, law, sections, table, estimates, target=target, scale=scale, along=along, optimum=optimum, bounds=bounds, caps_source=caps_source
    )
    parts.write_figures()

    params = parameter_table(law, table=estimates)
    parts.table(params, "parameters", f"Posterior means and {CI:.0%} credible intervals of the law's parameters.")
    if "optimum" in sections:
        _add_optimum_tables(parts, law, optimum, target=target, scale=scale, bounds=bounds, caps_source=caps_source)
    matrix = interaction_matrix(law, table=estimates) if "interactions" in sections else None
    if matrix is not None:
        parts.table(
            matrix,
            "interactions",
            f"Domain interactions ({matrix.attrs['parameter']}) of each validation domain "
            f"(row) with each training domain (column): posterior mean [{CI:.0%} credible interval].",
        )
    parts.blocks.append(f"<h2>Parameters ({CI:.0%} intervals)</h2>{paper_table(params).to_html(index=False, max_rows=300)}")
    diagnostics, elpd = _diagnostics_with_loo(law, table)
    diagnostics.to_csv(folder / "diagnostics.csv", index=False)
    table.to_csv(folder / "fitted_vs_observed.csv", index=False)
    comparison = _comparison_section(law, folder, compare_with, holdout, elpd) if compare_with or holdout else ""
    path = folder / "report.html"
    path.write_text(_page(law, diagnostics, parts, comparison))
    return path


def _refuse_options_without_their_part(law, sections: frozenset[str], options) -> None:
    """Refuse an option about a part of the report that ``law``'s report does not have (``options``: whether
    it was given, the part it needs and what to call it); checked first, as the figures take a while."""
    what = f"a {law.kind.replace('_', ' ')} fit's report"
    for given, needs, option in options:
        if given and needs not in sections:
            raise ValueError(f"{option} does not apply to {what}: it has no {needs} part")


def _pilot_mixture(law, mixture: str | None) -> str:
    """The nested fit's pilot mixture whose curves the report shows: ``mixture`` (checked), else the one
    nearest the pilots' mean."""
    labels = law.pilot_labels
    typical = labels[int(np.argmin(np.linalg.norm(law.pilot_mixtures - law.pilot_mixtures.mean(axis=0), axis=1)))]
    mixture = mixture or typical
    if mixture not in labels:
        raise ValueError(f"unknown pilot mixture {mixture!r}; the fit's are {labels}")
    return mixture


class _ReportParts:
    """What a report gathers as it goes: its figures (name, title, PNG) in page order, the names of the
    tables written to its folder, and the HTML blocks shown after the figures."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.figures: list[tuple[str, str, bytes]] = []
        self.tables: list[str] = []
        self.blocks: list[str] = []

    def figure(self, name: str, title: str, draw) -> None:
        """Draw a figure (timed); one that does not apply to the fit (``draw`` returns None) is left out."""
        with step(f"figure: {title}"):
            png = draw()
        if png is not None:
            self.figures.append((name, title, png))

    def table(self, table: pd.DataFrame, name: str, caption: str, shown: pd.DataFrame | None = None) -> None:
        """Write a table as CSV, Markdown and LaTeX (:func:`write_tables`) and list it on the page."""
        write_tables(table, self.folder, name, caption, shown=shown)
        self.tables.append(name)

    def write_figures(self) -> None:
        for name, _, png in self.figures:
            (self.folder / f"{name}.png").write_bytes(png)


def _add_target_run(parts: _ReportParts, law, target_run: dict, table: pd.DataFrame) -> None:
    """A schedule-aware fit's target run against steps: figure, ``target_run`` table and its last step on the page."""
    with step("the target run against steps"):
        prediction = target_run_table(law, target_run)
    parts.figure("target_run", "The target run against steps", lambda: figure_target_run(law, prediction, table))
    origin = target_run["schedule"].describe() if target_run["schedule"] is not None else "trained like the pilots of unknown schedule"
    caption = (
        f"A new {_size_label(float(target_run['params']))} run ({origin}) against steps: posterior predictive mean, median "
        f"and {CI:.0%} interval per validation domain; beyond_log_size > 0: log-distance beyond the largest pilot size."
    )
    parts.table(prediction, "target_run", caption)
    last = prediction[prediction["step"] == prediction["step"].max()]
    parts.blocks.append(
        f"<h2>The target run at step {int(last['step'].iloc[0]):,} ({CI:.0%} predictive intervals; every step in target_run.csv)</h2>"
        f"<p class='how'>{html.escape(caption)}</p>{last.round(4).to_html(index=False)}"
    )


def _add_unknown_schedule(parts: _ReportParts, law) -> None:
    """The posterior of an unknown schedule's length (figure) and what its assumptions move (``schedule_assumptions``)."""
    parts.figure("schedule_length", "The unknown schedule's total length", lambda: figure_schedule_length(law))
    with step("what the unknown schedule's assumptions move"):
        assumed = schedule_assumption_table(law)
    shown = _assumptions_shown(assumed)
    size = _size_label(float(assumed["params"].iloc[0]))
    caption = (
        f"What was assumed for the runs of unknown schedule ({law.unknown_schedule.describe(int(law.idata.attrs['unknown_last']))}) "
        f"and how much it moves a new {size} run's predicted loss at the longest pilot length and at twice it: the length "
        f"weighed by the posterior (the interval carries it) against the extremes (the decay ends at that step, at twice it, "
        f"a constant LR); median [{CI:.0%} predictive interval] and its change from the weighed median."
    )
    parts.table(assumed, "schedule_assumptions", caption, shown=shown)
    parts.blocks.append(f"<h2>What the unknown schedule's assumptions move (table)</h2><p class='how'>{html.escape(caption)}</p>{shown.to_html(index=False)}")


def _add_schedule_table(parts: _ReportParts, law) -> None:
    """The schedule each pilot run was fitted with (``schedules`` table)."""
    runs_table = schedule_table(law)
    runs_shown = runs_table.assign(params=runs_table["params"].map(_size_label), last_step=runs_table["last_step"].map(lambda s: f"{s:,}"))
    parts.table(
        runs_table,
        "schedules",
        "The learning-rate schedule each pilot run was fitted with and where it came "
        "from (its lr column, the given schedule, or unknown: what was assumed and the posterior of its length).",
        shown=runs_shown,
    )
    parts.blocks.append(f"<h2>Schedules of the pilot runs (table)</h2>{runs_shown.to_html(index=False)}")


def _add_critical_share(parts: _ReportParts, law, target: str, new_target: str) -> None:
    """A continual fit's critical share of the original data for ``target`` at the last checkpoint: figure and ``critical`` table."""
    from bayes_mixlaw.critical import critical_share

    parts.figure(
        "critical",
        f"Critical share of {law.original_domain} for '{target}' at step {law.steps[-1]:,}",
        lambda: figure_critical(law, target, new_target=new_target),
    )
    with step(f"critical share for '{target}'"):
        critical = critical_share(law, target, ci=CI, new_target=new_target)
    shown = _critical_shown(critical)
    parts.table(
        critical,
        "critical",
        f"Critical share of the original data ({law.original_domain}) that keeps '{target}' at or "
        f"below its starting loss at step {law.steps[-1]:,} (tolerance 0): posterior mean [{CI:.0%} credible interval], the "
        f"probability that no share keeps it, and the new data's loss ({new_target}) at the critical share.",
        shown=shown,
    )
    parts.blocks.append(
        f"<h2>Critical share of {html.escape(law.original_domain)} ({CI:.0%} intervals; every column in critical.csv)</h2>{shown.to_html(index=False)}"
    )


def _add_simplex_figures(
    parts: _ReportParts, law, sections: frozenset[str], table: pd.DataFrame, estimates: pd.DataFrame, *, target, scale, along, optimum, bounds, caps_source
):
    """The figures of a law over the mixture simplex that ``sections`` has: interactions, share bands, the
    per-domain panels along ``along``'s share, the ternary slice and the optimal mixture. Returns the
    optimum (found here unless given), or the given one where the report has none."""
    at = _at(scale)
    if "interactions" in sections:
        parts.figure("interactions", "Domain interactions", lambda: figure_interactions(law, estimates))
    if "proportions" in sections:
        parts.figure("proportions", f"Along each domain's share{at}", lambda: figure_proportion_bands(law, target, scale=scale))
    if "domains" in sections:
        along = along or _widest_domain(law)
        parts.figure(f"domains_along_{along}", f"Per validation domain, along the share of {along}", lambda: figure_domain_bands(law, table, along))
    if "ternary" in sections and len(law.train_domains) >= 3:
        parts.figure("ternary", f"Simplex slice{at}", lambda: figure_ternary(law, target=target, scale=scale))
    if "optimum" in sections:
        if optimum is None:
            from bayes_mixlaw.optimize import optimal_mixture

            with step(f"optimal mixture for '{target}'"):
                optimum = optimal_mixture(law, target=target, draws=400, bounds=bounds, caps_source=caps_source, **scale)
        parts.figure("optimum", f"Optimal mixture{at}", lambda: figure_optimum(optimum, law.pilot_mixtures, _at(scale, " at ")))
    return optimum


def _add_optimum_tables(parts: _ReportParts, law, optimum, *, target: str, scale: dict, bounds, caps_source: str) -> None:
    """The optimal mixture (``optimum`` table) and every target's predicted loss there, at the pilots' mean
    and at the reference (``predictions``), as tables and on the page."""
    at = _at(scale)
    optimum_table = optimum.table().dropna(axis=1, how="all")
    optimum_table["quantity"] = optimum_table["quantity"].replace(  # say which interval each loss row is
        {"loss": "loss (a new run: predictive interval)", "reference_loss": "reference loss (a new run: predictive interval)"}
    )
    capped = f" under the caps and minimums of {caps_source}" if bounds is not None else ""
    parts.table(
        optimum_table,
        "optimum",
        f"Optimal mixture for '{target}'{at}{capped}: the Bayes-optimal proportions, the posterior "
        f"mean and {CI:.0%} interval of each draw's optimum, and the predicted loss there.",
    )
    with step("predictions at the optimum and the pilots' mean"):
        predictions = prediction_table(law, optimum, scale=scale)
    from bayes_mixlaw.summary import require_finite

    require_finite(optimum.table(), f"the report's optimum for '{target}'")  # never a NaN written as a number
    require_finite(predictions, "the report's predictions")
    parts.table(
        predictions,
        "predictions",
        f"Predicted loss{at} (the law's expected loss, posterior mean "
        f"[{CI:.0%} credible interval]) of each target at the Bayes-optimal mixture for '{target}', at the "
        f"pilots' mean mixture{' and at the reference' if optimum.reference is not None else ''}.",
        shown=_by_target(predictions),
    )
    parts.blocks.append(
        f"<h2>Optimal mixture{html.escape(at)}: proportions and a new run's loss (table)</h2>{paper_table(optimum_table, digits=4).to_html(index=False)}"
    )
    parts.blocks.append(
        f"<h2>Predicted loss of every target{html.escape(at)} ({CI:.0%} intervals of the law's expected loss, the mean over runs: "
        f"narrower than a new run's)</h2>{_by_target(predictions, 4).to_html(index=False)}"
    )


def _diagnostics_with_loo(law, table: pd.DataFrame):
    """The diagnostics table with a PSIS-LOO row (its elpd and whether it is reliable, or why it was not
    computed), and the LOO result (None where it failed: LOO never blocks the report)."""
    diagnostics = diagnostics_table(law, table)
    elpd = None
    try:
        from bayes_mixlaw.compare import loo

        with step("PSIS-LOO"), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Estimated shape parameter of Pareto")  # said in plain words below
            elpd = loo(law)
        bad = int((np.asarray(elpd.pareto_k) > 0.7).sum())
        if bad:
            warnings.warn(
                f"PSIS-LOO: {bad} of {np.asarray(elpd.pareto_k).size} observations have Pareto k > 0.7, so LOO is unreliable "
                "there (influential pilots); the report's diagnostics table says so; compare variants by --holdout too",
                stacklevel=3,  # the caller of write_report
            )
        loo_row = {
            "check": "PSIS-LOO elpd",
            "value": f"{float(elpd.elpd):.1f} (SE {float(elpd.se):.1f}, p_loo {float(elpd.p):.1f})",
            "verdict": "reliable" if bad == 0 else f"{bad} observation(s) with Pareto k > 0.7: LOO is unreliable there; compare by held-out scale",
        }
        diagnostics = pd.concat([diagnostics.iloc[:-1], pd.DataFrame([loo_row]), diagnostics.iloc[-1:]], ignore_index=True)
    except Exception as err:  # LOO is a convenience here; never block the report
        diagnostics = pd.concat([diagnostics, pd.DataFrame([{"check": "PSIS-LOO", "value": "", "verdict": f"not computed: {err}"}])], ignore_index=True)
    return diagnostics, elpd


def _comparison_section(law, folder: Path, compare_with: dict | None, holdout: bool, elpd) -> str:
    """Rank this fit and ``compare_with``'s variants (``model_comparison.csv``); the page's section on it."""
    from bayes_mixlaw.compare import compare_variants

    ranked = compare_variants({"this fit": law, **(compare_with or {})}, holdout=holdout, elpds={"this fit": elpd})
    ranked.to_csv(folder / "model_comparison.csv", index=False)
    title = "Model comparison: PSIS-LOO (best first)" + (" and held-out pilots (each variant refitted without them)" if holdout else "")
    return f"<h2>{title}</h2>{ranked.round(4).to_html(index=False)}"


def _page(law, diagnostics: pd.DataFrame, parts: _ReportParts, comparison: str) -> str:
    """report.html: the summary, the diagnostics, the figures (embedded) each with how to read it, the
    comparison, the tables' blocks and the list of table files."""
    shown_figures = [
        f"<h2>{html.escape(title)}</h2><p class='how'>{html.escape(HOW_TO_READ[name.split('_along_')[0]])}</p>"
        f"<img src='data:image/png;base64,{base64.b64encode(png).decode()}' style='max-width:100%'>"
        for name, title, png in parts.figures
    ]
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>bayes_mixlaw report</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em}} table{{border-collapse:collapse;font-size:12px}}
td,th{{border:1px solid #ccc;padding:2px 6px}} .how{{color:#444;font-size:14px}}</style></head><body>
<h1>bayes_mixlaw report</h1><p>{html.escape(summary_text(law))}</p>
<h2>Diagnostics</h2>{diagnostics.to_html(index=False)}
{"".join(shown_figures)}
{comparison}
{chr(10).join(parts.blocks)}
<p>Tables (CSV with every number; Markdown and LaTeX with estimates and intervals): {", ".join(f"{n}.csv/.md/.tex" for n in parts.tables)}.
Also diagnostics.csv and fitted_vs_observed.csv (every observed loss with its fitted median and {CI:.0%} interval).</p>
</body></html>"""
