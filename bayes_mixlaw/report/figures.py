"""The report's figures of a fit over mixtures: the posterior predictive check, the interaction matrix, the share
bands, the per-domain panels, the ternary slice, the optimal mixture, the critical share of continual
pre-training, and the pilots' curves against the scale axes (nested fits)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import BoundaryNorm
from matplotlib.tri import Triangulation

from bayes_mixlaw.report.common import CI, _at, _beyond, _law_draws, _png, _scale, _share_line, _size_label
from bayes_mixlaw.report.tables import coverage_verdict, interaction_rows
from bayes_mixlaw.summary import eti_values


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
