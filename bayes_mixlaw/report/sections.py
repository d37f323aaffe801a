"""The parts of a report beyond the posterior predictive check and the parameters, each added to the page as it is
drawn (:class:`_ReportParts`): the schedule-aware fit's target run and schedules, the critical share, the simplex's
figures, the optimal mixture's tables, the diagnostics with PSIS-LOO and the comparison of variants."""

from __future__ import annotations

import html
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from bayes_mixlaw.feedback import step
from bayes_mixlaw.report.common import CI, _at, _size_label
from bayes_mixlaw.report.figures import (
    _widest_domain,
    figure_critical,
    figure_domain_bands,
    figure_interactions,
    figure_optimum,
    figure_proportion_bands,
    figure_ternary,
)
from bayes_mixlaw.report.scheduled import (
    _assumptions_shown,
    figure_schedule_length,
    figure_target_run,
    schedule_assumption_table,
    schedule_table,
    target_run_table,
)
from bayes_mixlaw.report.tables import _by_target, _critical_shown, diagnostics_table, paper_table, prediction_table, write_tables


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
    how = (
        "<p class='how'>The held-out losses share their error beyond the pilots (the law's discrepancy), so their coverage "
        "is close to one trial, not a count of independent ones: read it against its spread if the model were right (the "
        "last two columns: the chance that a check's coverage lands within 0.05 of the nominal level, and where this one "
        "sits among the model's), not against the nominal level alone.</p>"
        if holdout
        else ""
    )
    stacking = (
        "<p class='how'>Stacking weight: the weights, summing to 1, with which the variants' leave-one-out predictive "
        "densities combine best (Yao et al. 2018); a weight split between variants says none of them predicts every pilot "
        "best.</p>"
    )
    return f"<h2>{title}</h2>{ranked.round(4).to_html(index=False)}{stacking}{how}"
