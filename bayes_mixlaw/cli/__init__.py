"""The ``bayes-mixlaw`` command line: one module per group of commands, assembled here into the Typer ``app`` (the
console script ``bayes-mixlaw = bayes_mixlaw.cli:app``): :mod:`~bayes_mixlaw.cli.fitting` (``fit``),
:mod:`~bayes_mixlaw.cli.predicting` (``predict``), :mod:`~bayes_mixlaw.cli.decisions` (``critical``, ``optimize``,
``suggest``), :mod:`~bayes_mixlaw.cli.reporting` (``report``) and :mod:`~bayes_mixlaw.cli.running` (``demo``,
``loop``); what they share is in :mod:`~bayes_mixlaw.cli.common`. A command names no law: each law says what it can
do (:class:`~bayes_mixlaw.model.BayesianLaw`'s capabilities)."""

from __future__ import annotations

import typer

from bayes_mixlaw.cli.common import UserError, console, out
from bayes_mixlaw.cli.decisions import ACQUISITION_HELP, DEFAULT_ACQUISITION, AcquisitionChoice, critical, optimize, suggest
from bayes_mixlaw.cli.fitting import FORMAT_HELP, Format, fit
from bayes_mixlaw.cli.predicting import predict
from bayes_mixlaw.cli.reporting import report
from bayes_mixlaw.cli.running import demo, loop

__all__ = [
    "ACQUISITION_HELP",
    "DEFAULT_ACQUISITION",
    "FORMAT_HELP",
    "AcquisitionChoice",
    "Format",
    "UserError",
    "app",
    "console",
    "critical",
    "demo",
    "fit",
    "loop",
    "main",
    "optimize",
    "out",
    "predict",
    "report",
    "suggest",
]

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Bayesian data mixing laws: fit pilot runs, predict losses with credible intervals.",
    pretty_exceptions_enable=False,
)
for command in (fit, predict, critical, optimize, suggest, report, demo, loop):  # in this order in --help
    app.command()(command)


def main():  # pragma: no cover - console entry point
    app()
