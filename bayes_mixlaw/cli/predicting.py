"""``bayes-mixlaw predict``: every law answers the command's request (:class:`~bayes_mixlaw.request.PredictRequest`)
through its own ``predict_request``; the predictions shown on the terminal."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from bayes_mixlaw.cli.common import UserError, _check_output, _flag, _run, _setup, _to_stdout, _unconverged, _write_table, console, out
from bayes_mixlaw.summary import DEFAULT_CI


def predict(
    fit_file: Annotated[Path, typer.Argument(help="Fit file written by 'bayes-mixlaw fit'")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Predictions CSV to write")],
    mixtures: Annotated[Path | None, typer.Option(help="CSV with mix:<domain> columns and an optional 'name' (mixing-law and nested fits)")] = None,
    params: Annotated[
        list[float] | None, typer.Option(help="Model size to predict at (nested and scaling-law fits; repeat for several with a scaling-law fit)")
    ] = None,
    tokens: Annotated[list[float] | None, typer.Option(help="Training tokens to predict at (fits on tokens)")] = None,
    step: Annotated[list[float] | None, typer.Option(help="Training steps to predict at (fits on steps; repeat for several)")] = None,
    schedule: Annotated[Path | None, typer.Option(help="JSON learning-rate schedule of the target run (schedule-aware fits)")] = None,
    ci: Annotated[float, typer.Option(help="Probability of the equal-tailed credible interval")] = DEFAULT_CI,
    kind: Annotated[str, typer.Option(help="'predictive' (a new run's loss, with noise) or 'mean' (the law's expected loss)")] = "predictive",
    seed: Annotated[int, typer.Option(help="Seed of the predictive noise draws")] = 0,
    renormalize: Annotated[bool, _flag(help="Divide --mixtures rows that do not sum to 1 by their sum (warns)")] = False,
    force: Annotated[bool, _flag("--force", help="Overwrite the output file")] = False,
    quiet: Annotated[bool, _flag("--quiet", "-q")] = False,
):
    """Predict the loss of each target with credible intervals: at new mixtures (mixing-law fits), at
    model sizes and data amounts (scaling-law fits), or at steps of a target run with its learning-rate
    schedule (schedule-aware fits: --schedule, --params, --step; one row per step and target)."""
    _setup(quiet)

    def body():
        from bayes_mixlaw.model import BayesianLaw
        from bayes_mixlaw.request import PredictRequest
        from bayes_mixlaw.runs import read_mixtures

        nonlocal mixtures
        _check_output(output, force)
        law = BayesianLaw.load(fit_file)
        if schedule is not None and not law.takes_schedule:
            raise UserError(f"{fit_file} is not a schedule-aware fit (it is a {law.kind.replace('_', ' ')}): it takes no --schedule")
        if mixtures is not None and renormalize:
            mixtures = read_mixtures(mixtures, getattr(law, "train_domains", None), renormalize=True)
        say = lambda text: console.print(text, markup=False, highlight=False, soft_wrap=True)  # noqa: E731
        request = PredictRequest(str(fit_file), mixtures, params, step, tokens, schedule, ci=ci, kind=kind, seed=seed, quiet=quiet, say=say)
        table = law.predict_request(request)  # each law takes the options that apply to it
        table = table.assign(**_unconverged(law, fit_file))
        _write_table(table, output, f"predictions of {fit_file}")
        if not quiet and not _to_stdout(output):
            domains = set(law.valid_domains if law.over_mixtures else [])
            aggregates = [t for t in table["target"].unique() if t not in domains]  # total and groups, where the fit has them
            _show_predictions(table, ci, aggregates or None)
            console.print(f"wrote {len(table)} rows ({table['target'].nunique()} targets) to {output}")

    _run(body)


def _show_predictions(table, ci: float, targets: list[str] | None = None, limit: int = 30):
    """A short table of predictions on the terminal: the first ``limit`` rows of ``targets`` (all if
    None), with the mixture's name and the scale where the table has them."""
    rows = table if targets is None else table[table["target"].isin(targets)]
    keys = [c for c in ("name", "params", "step", "tokens") if c in rows]
    what = "" if targets is None or len(targets) == table["target"].nunique() else " (the CSV has every target)"
    shown = Table(title=f"Predicted loss, {ci:.0%} credible intervals{what}")
    for column in (*keys, "target", "mean", "median", "interval"):
        shown.add_column(column, justify="left" if column in ("name", "target") else "right")
    cell = {"name": str, "params": lambda v: f"{v:.3g}", "step": lambda v: f"{v:g}", "tokens": lambda v: f"{v:.3g}"}
    for row in rows.head(limit).to_dict("records"):
        shown.add_row(
            *(cell[k](row[k]) for k in keys), str(row["target"]), f"{row['mean']:.4f}", f"{row['median']:.4f}", f"[{row['lower']:.4f}, {row['upper']:.4f}]"
        )
    out.print(shown)
    if len(rows) > limit or len(rows) < len(table):
        out.print(f"({len(table) - min(limit, len(rows))} more rows in the CSV)")
