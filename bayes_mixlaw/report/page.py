"""The report as one HTML page: :func:`write_report` gathers the parts a fit's report has (:func:`report_sections`)
and writes ``report.html`` (figures embedded, each with how to read it), the PNGs and the tables."""

from __future__ import annotations

import base64
import html
from pathlib import Path

import numpy as np
import pandas as pd

from bayes_mixlaw.feedback import step
from bayes_mixlaw.report.common import CI, _scale
from bayes_mixlaw.report.figures import figure_curves, figure_ppc
from bayes_mixlaw.report.scheduled import figure_schedule_curves, figure_schedules
from bayes_mixlaw.report.sections import (
    _add_critical_share,
    _add_optimum_tables,
    _add_schedule_table,
    _add_simplex_figures,
    _add_target_run,
    _add_unknown_schedule,
    _comparison_section,
    _diagnostics_with_loo,
    _ReportParts,
)
from bayes_mixlaw.report.tables import fitted_vs_observed, interaction_matrix, paper_table, parameter_table

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


def summary_text(law) -> str:
    """``law.summary_line()``, or where it cannot be computed (a schedule-aware fit whose posterior has no
    length of the unknown schedule that reaches twice its runs' last checkpoint) what stands in its way."""
    try:
        return law.summary_line()
    except ValueError as err:
        return f"{law.kind.replace('_', ' ')} fit; its one-line summary could not be computed: {err}"


def report_sections(law) -> frozenset[str]:
    """The optional parts of ``law``'s report: its ``report_sections`` (a class attribute, or a property
    where the parts depend on the fit; :data:`~bayes_mixlaw.mixture_law.MIXTURE_REPORT` lists them); none for a law
    without a report."""
    return frozenset(law.report_sections or ())


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
