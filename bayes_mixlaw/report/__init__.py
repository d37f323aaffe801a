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

The package's modules, by idea: :mod:`~bayes_mixlaw.report.page` (``write_report`` and the HTML page),
:mod:`~bayes_mixlaw.report.sections` (the parts a report adds as it goes), :mod:`~bayes_mixlaw.report.figures` (a fit
over mixtures), :mod:`~bayes_mixlaw.report.scheduled` (a schedule-aware fit), :mod:`~bayes_mixlaw.report.tables` and
:mod:`~bayes_mixlaw.report.common`; every figure and table function is importable from here.
"""

from __future__ import annotations

from bayes_mixlaw.report.common import CI
from bayes_mixlaw.report.common import _beyond as _beyond  # read by the tests here, as before the split
from bayes_mixlaw.report.common import _size_label as _size_label
from bayes_mixlaw.report.figures import _widest_domain as _widest_domain
from bayes_mixlaw.report.figures import (
    figure_critical,
    figure_curves,
    figure_domain_bands,
    figure_interactions,
    figure_optimum,
    figure_ppc,
    figure_proportion_bands,
    figure_ternary,
)
from bayes_mixlaw.report.page import HOW_TO_READ, report_sections, summary_text, write_report
from bayes_mixlaw.report.scheduled import (
    figure_schedule_curves,
    figure_schedule_length,
    figure_schedules,
    figure_target_run,
    schedule_assumption_table,
    schedule_table,
    target_run_table,
)
from bayes_mixlaw.report.tables import (
    coverage_verdict,
    diagnostics_table,
    fitted_vs_observed,
    interaction_matrix,
    interaction_rows,
    paper_table,
    parameter_table,
    prediction_table,
    write_tables,
)

__all__ = [
    "CI",
    "HOW_TO_READ",
    "coverage_verdict",
    "diagnostics_table",
    "figure_critical",
    "figure_curves",
    "figure_domain_bands",
    "figure_interactions",
    "figure_optimum",
    "figure_ppc",
    "figure_proportion_bands",
    "figure_schedule_curves",
    "figure_schedule_length",
    "figure_schedules",
    "figure_target_run",
    "figure_ternary",
    "fitted_vs_observed",
    "interaction_matrix",
    "interaction_rows",
    "paper_table",
    "parameter_table",
    "prediction_table",
    "report_sections",
    "schedule_assumption_table",
    "schedule_table",
    "summary_text",
    "target_run_table",
    "write_report",
    "write_tables",
]
