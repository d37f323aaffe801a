"""The decisions a fit informs: ``bayes-mixlaw critical`` (the critical share of continual pre-training),
``optimize`` (the best mixture) and ``suggest`` (the next pilots, by Bayesian optimisation)."""

from __future__ import annotations

import enum
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from bayes_mixlaw.acquisitions import acquisitions
from bayes_mixlaw.cli.common import UserError, _check_output, _flag, _mixture_fit, _run, _setup, _to_stdout, _unconverged, _write_table, out
from bayes_mixlaw.summary import DEFAULT_CI

# the --acquisition choices and help come from the acquisitions' registry
ACQUISITION_DESCRIPTIONS = {a.name: a.description for a in acquisitions()}  # the default (qlognei) first
AcquisitionChoice = enum.Enum("AcquisitionChoice", {name: name for name in ACQUISITION_DESCRIPTIONS}, type=str)
DEFAULT_ACQUISITION = AcquisitionChoice("qlognei")
ACQUISITION_HELP = "The acquisition function (bayes_mixlaw.acquisitions' registry): " + "; ".join(f"{n} ({d})" for n, d in ACQUISITION_DESCRIPTIONS.items())
SUGGESTIONS_HELP = "How many pilot runs to suggest (q): at most " + ", ".join(
    f"{a.max_suggestions[0]} with {a.name}" for a in acquisitions() if a.max_suggestions
)
ACQUISITION_FLAGS = {"residual_gp_model": "--residual-gp", "exploit": "--exploit"}  # the options with a flag of their own; others by --option
OPTION_HELP = "An option of the acquisition, KEY=VALUE (repeat; the value read as YAML): " + "; ".join(
    f"{a.name}: " + ", ".join(f"{k} ({text})" for k, text in a.options.items() if k not in ACQUISITION_FLAGS)
    for a in acquisitions()
    if set(a.options) - set(ACQUISITION_FLAGS)
)


def critical(
    fit_file: Annotated[Path, typer.Argument(help="Fit file of a continual pre-training fit ('fit' on runs with a starting checkpoint, e.g. the ct format)")],
    output: Annotated[Path, typer.Option("-o", "--output", help="CSV to write: one row per --keep target")],
    keep: Annotated[
        list[str], typer.Option(help="Target whose loss must stay at or below its starting value: a validation domain, a group or 'total'; repeat for several")
    ],
    tolerance: Annotated[float, typer.Option(help="How far above its starting loss the target may end (loss units)")] = 0.0,
    step: Annotated[int | None, typer.Option(help="Checkpoint of the continued training (default: the last)")] = None,
    ci: Annotated[float, typer.Option(help="Probability of the equal-tailed credible intervals")] = DEFAULT_CI,
    share: Annotated[
        list[float] | None, typer.Option(help="Share of the original data whose probability of keeping the loss is reported (default: the pilots'); repeat")
    ] = None,
    new_target: Annotated[str | None, typer.Option(help="Validation domain of the new data (default: the one named after it)")] = None,
    force: Annotated[bool, _flag("--force", help="Overwrite the output file")] = False,
    quiet: Annotated[bool, _flag("--quiet", "-q")] = False,
):
    """The critical proportion of continual pre-training: the posterior of the smallest share of the
    original data that keeps each --keep target's loss at step S at or below its starting value plus
    --tolerance, P(a share keeps it), and the new domain's loss at that share. An 'inf' in the share's
    columns means that some draws keep it at no share (their probability: p_never). The CSV ends with
    the fit's diagnostics (fit_converged, fit_max_rhat, fit_min_ess_bulk, fit_divergences)."""
    _setup(quiet)

    def body():
        from bayes_mixlaw.critical import critical_share, load_continual

        _check_output(output, force)
        law = load_continual(fit_file)
        _unconverged(law, fit_file)  # its columns: critical_share's own fit_* columns
        table = critical_share(law, keep, tolerance=tolerance, step=step, ci=ci, shares=share, new_target=new_target)
        if _to_stdout(output):
            table.to_csv(sys.stdout, index=False)
        else:
            from bayes_mixlaw.atomic import write_atomically

            write_atomically(output, lambda partial: table.to_csv(partial, index=False))
        if not quiet and not _to_stdout(output):
            shown = Table(title=f"Critical share of {table['domain'].iloc[0]} at step {table['step'].iloc[0]} ({ci:.0%} intervals)")
            for column in ("target", "start loss", "critical share", "interval", "P(none)", f"{table['new_target'].iloc[0]} at it"):
                shown.add_column(column, justify="left" if column == "target" else "right")
            for row in table.itertuples():
                shown.add_row(
                    row.target,
                    f"{row.threshold:.4f}",
                    f"{row.median:.4f}",
                    f"[{row.lower:.4f}, {row.upper:.4f}]",
                    f"{row.p_never:.3f}",
                    f"{row.new_median:.4f} [{row.new_lower:.4f}, {row.new_upper:.4f}]",
                )
            out.print(shown)
            out.print(f"wrote {output}")

    _run(body)


def optimize(
    fit_file: Annotated[Path, typer.Argument(help="Fit file of a mixing-law or nested fit")],
    output: Annotated[Path, typer.Option("-o", "--output", help="CSV to write: best mixture, its loss, P(beats reference)")],
    params: Annotated[float | None, typer.Option(help="Target model size (nested fits)")] = None,
    step: Annotated[float | None, typer.Option(help="Target training steps (nested fits on steps)")] = None,
    tokens: Annotated[float | None, typer.Option(help="Target training tokens (nested fits on tokens)")] = None,
    target: Annotated[str, typer.Option(help="Which loss to minimise: 'total', a group or a validation domain")] = "total",
    caps: Annotated[Path | None, typer.Option(help='JSON/YAML {"caps": {domain: max}, "minimums": {domain: min}} (a flat mapping = caps)')] = None,
    reference: Annotated[Path | None, typer.Option(help="Mixtures CSV whose first row is the reference (e.g. the default mixture)")] = None,
    ci: Annotated[float, typer.Option(help="Probability of the credible intervals")] = DEFAULT_CI,
    draws: Annotated[int, typer.Option(help="Posterior draws to optimise (thinned at random; at most 4000, about 2.5 minutes per 1000 on 2 cores)")] = 1000,
    seed: Annotated[int, typer.Option(help="Seed of the posterior thinning and the predictive draws (same seed, same numbers)")] = 0,
    force: Annotated[bool, _flag("--force", help="Overwrite the output file")] = False,
    quiet: Annotated[bool, _flag("--quiet", "-q")] = False,
):
    """The posterior over the best mixture under caps and minimums: the Bayes-optimal mixture, each
    proportion's interval over the draws' optima, its predicted loss and P(it beats the reference)."""
    _setup(quiet)

    def body():
        from bayes_mixlaw.optimize import MixtureBounds, check_draws, optimal_mixture

        _check_output(output, force)
        check_draws(draws, "--draws")
        law, scale = _mixture_fit(fit_file, params, step, tokens, "optimise")
        bounds = MixtureBounds.from_file(caps) if caps else None
        result = optimal_mixture(
            law, target=target, bounds=bounds, reference=reference, ci=ci, draws=draws, seed=seed, caps_source=str(caps) if caps else "caps", **scale
        )
        table = result.table().assign(**_unconverged(law, fit_file))
        _write_table(table, output, f"optimum of {fit_file}")
        if not quiet and not _to_stdout(output):
            shown = Table(title=f"Best mixture for '{target}' ({ci:.0%} intervals over the posterior's optima)")
            for column in ("domain", "optimum", "interval", "reference"):
                shown.add_column(column, justify="right" if column != "domain" else "left")
            for row in table[table["quantity"] == "proportion"].itertuples():
                ref = "" if row.reference is None or row.reference != row.reference else f"{row.reference:.3f}"
                shown.add_row(row.item, f"{row.optimum:.3f}", f"[{row.lower:.3f}, {row.upper:.3f}]", ref)
            out.print(shown)
            loss = table[table["quantity"] == "loss"].iloc[0]
            out.print(f"predicted {target} loss at the optimum: {loss['mean']:.4f} [{loss['lower']:.4f}, {loss['upper']:.4f}]")
            if result.p_beats_reference is not None:
                ref_loss = table[table["quantity"] == "reference_loss"].iloc[0]
                out.print(
                    f"reference: {ref_loss['mean']:.4f} [{ref_loss['lower']:.4f}, {ref_loss['upper']:.4f}]; "
                    f"P(optimum beats reference) = {result.p_beats_reference:.3f}"
                )
            out.print(f"wrote {output}")

    _run(body)


def _acquisition_options(pairs: list[str] | None) -> dict:
    """``--option KEY=VALUE`` pairs as {key: value}, each value read as YAML (``beta=0.5`` gives a number)."""
    import yaml

    options = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--option takes KEY=VALUE (e.g. --option beta=0.5), got {pair!r}")
        options[key.strip()] = yaml.safe_load(value)
    return options


def suggest(
    fit_file: Annotated[Path, typer.Argument(help="Fit file of a mixing-law or nested fit")],
    output: Annotated[Path, typer.Option("-o", "--output", help="CSV of the suggested pilot mixtures")],
    n: Annotated[int, typer.Option("-n", help=SUGGESTIONS_HELP)] = 4,
    acquisition: Annotated[AcquisitionChoice, typer.Option(help=ACQUISITION_HELP)] = DEFAULT_ACQUISITION,
    params: Annotated[float | None, typer.Option(help="Target model size (nested fits)")] = None,
    step: Annotated[float | None, typer.Option(help="Target training steps (nested fits on steps)")] = None,
    tokens: Annotated[float | None, typer.Option(help="Target training tokens (nested fits on tokens)")] = None,
    target: Annotated[str, typer.Option(help="Which loss to improve: 'total', a group or a validation domain")] = "total",
    caps: Annotated[Path | None, typer.Option(help='JSON/YAML {"caps": {...}, "minimums": {...}}')] = None,
    grid: Annotated[float | None, typer.Option(help="Only mixtures whose proportions are multiples of this step (e.g. 0.125)")] = None,
    residual_gp: Annotated[
        bool, _flag("--residual-gp", help="qlognei on the law plus the residual fitted with it (a mixing-law fit with 'residual: rff' in its config)")
    ] = False,
    exploit: Annotated[bool, _flag("--exploit", help="thompson: make the first suggestion the posterior-mean optimum (the current best guess)")] = False,
    option: Annotated[list[str] | None, typer.Option("--option", help=OPTION_HELP, metavar="KEY=VALUE")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the acquisition's draws and restarts (same seed, same suggestions)")] = 0,
    force: Annotated[bool, _flag("--force", help="Overwrite the output file")] = False,
    quiet: Annotated[bool, _flag("--quiet", "-q")] = False,
):
    """Suggest the next pilot mixtures by Bayesian optimisation on the fit's posterior (BoTorch)."""
    _setup(quiet)

    def body():
        from bayes_mixlaw.acquisitions import get_acquisition
        from bayes_mixlaw.bo import suggest as suggest_runs
        from bayes_mixlaw.optimize import MixtureBounds

        _check_output(output, force)
        chosen = get_acquisition(acquisition.value)  # before the fit is read: the limit and its reason, the options it takes
        chosen.check_n(n, "-n")
        given = chosen.check_options({"residual_gp_model": residual_gp, "exploit": exploit, **_acquisition_options(option)}, ACQUISITION_FLAGS)
        law, scale = _mixture_fit(fit_file, params, step, tokens, "choose")
        table = suggest_runs(
            law,
            n,
            acquisition=acquisition.value,
            bounds=MixtureBounds.from_file(caps) if caps else None,
            target=target,
            seed=seed,
            caps_source=str(caps) if caps else "caps",
            grid=grid,
            **given,
            **scale,
        )
        table = table.assign(**_unconverged(law, fit_file))
        _write_table(table, output, f"suggestions from {fit_file}")
        if not quiet and not _to_stdout(output):
            out.print(table.drop(columns=[c for c in table if c.startswith("fit_")]).round(4).to_string(index=False))
            out.print(f"wrote {output}")

    _run(body)
