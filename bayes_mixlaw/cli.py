"""The ``bayes-mixlaw`` command line: ``fit``, ``predict``, ``optimize`` and ``demo``."""

from __future__ import annotations

import enum
import logging
import sys
import warnings
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from bayes_mixlaw.acquisitions import acquisitions
from bayes_mixlaw.formats import format_descriptions
from bayes_mixlaw.mixing_forms.base import packaged_form_names
from bayes_mixlaw.request import say_extrapolation
from bayes_mixlaw.summary import DEFAULT_CI

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Bayesian data mixing laws: fit pilot runs, predict losses with credible intervals.",
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)
out = Console(width=150)

# the --format choices and help come from the readers' registry
FORMAT_DESCRIPTIONS = format_descriptions()  # auto, then every registered format in auto-detection order
Format = enum.Enum("Format", {name: name for name in FORMAT_DESCRIPTIONS}, type=str)


FORMAT_HELP = "Format of RUNS (auto: the first, in this order, whose rule matches): " + "; ".join(
    f"{name} ({text})" for name, text in FORMAT_DESCRIPTIONS.items()
)

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
QUIET_HELP = "No progress output: only the results, warnings and errors"
# the mixing law's forms, from the forms' registry (module names, so --help does not load PyMC)
CONFIG_HELP = f"YAML/JSON config: law (the mixing law's form: {', '.join(packaged_form_names())}; see bayes_mixlaw.mixing_forms), likelihood, priors, sampler"


def _flag(*names: str, help: str = QUIET_HELP):
    """An on/off option, shown in --help without a value placeholder."""
    return typer.Option(*names, help=help, metavar="")


class UserError(Exception):
    """Problems in the user's input: printed as one clear line, exit code 2."""


def _run(fn):
    """Run a command body, turning input errors into a one-line message instead of a traceback."""
    from bayes_mixlaw.config import ConfigError
    from bayes_mixlaw.runs import RunsTableError
    from bayes_mixlaw.targets import TargetsError

    try:
        return fn()
    except (RunsTableError, TargetsError, ConfigError, UserError, FileExistsError, FileNotFoundError, ValueError) as err:
        console.print(f"[bold red]error:[/] {err}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


class _ConsoleHandler(logging.Handler):
    """The package's log lines (steps and their times) on stderr, beside the warnings."""

    def emit(self, record):
        console.print(self.format(record), highlight=False, soft_wrap=True, style="dim" if record.levelno < logging.WARNING else None)


def _setup(quiet: bool):
    package_log = logging.getLogger("bayes_mixlaw")
    package_log.handlers = [_ConsoleHandler()]
    package_log.setLevel(logging.WARNING if quiet else logging.INFO)
    package_log.propagate = False
    warnings.simplefilter("default")

    def show(message, category, filename, lineno, file=None, line=None):
        console.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)

    warnings.showwarning = show
    for noisy in ("pymc", "pytensor", "nutpie", "numba"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)


def _to_stdout(path: Path) -> bool:
    """``-o -``: the table goes to standard output."""
    return str(path) == "-"


def _check_output(path: Path, force: bool):
    if _to_stdout(path):
        return
    if path.is_dir():
        raise UserError(f"{path} is a folder; -o takes the file to write (e.g. {path / 'out.csv'})")
    if path.exists() and not force:
        raise UserError(f"{path} exists; pass --force to overwrite it")
    if not path.parent.exists():
        raise UserError(f"folder {path.parent} does not exist")


def _write_table(table, path: Path, what: str):
    """Write a command's CSV (to stdout for ``-o -``) after checking that every predicted number is
    finite (:func:`~bayes_mixlaw.summary.require_finite`); a file is written whole or not at all."""
    from bayes_mixlaw.summary import require_finite

    require_finite(table, what)
    if _to_stdout(path):
        table.to_csv(sys.stdout, index=False)
        sys.stdout.flush()
        return
    from bayes_mixlaw.atomic import write_atomically

    write_atomically(path, lambda partial: table.to_csv(partial, index=False))


def _unconverged(law, fit_file, where: str = "the output's fit_* columns") -> dict:
    """Warn on the terminal where the numbers of an unconverged fit are used (R-hat, ESS or divergences
    beyond their limits: :class:`~bayes_mixlaw.inference.Diagnostics`); the fit's diagnostics as the
    columns every output computed from it carries (``fit_converged``, ``fit_max_rhat``, ...)."""
    from bayes_mixlaw.inference import SamplingWarning

    diagnostics = law.diagnostics
    message = diagnostics.unconverged_message(str(fit_file), where)
    if message:
        warnings.warn(message, SamplingWarning, stacklevel=2)
    return diagnostics.columns()


@app.command()
def fit(
    runs: Annotated[
        Path, typer.Argument(help="Runs table: " + ", ".join(text for name, text in FORMAT_DESCRIPTIONS.items() if name != "auto") + " (see --format)")
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="Fit file to write (netCDF)")],
    format: Annotated[Format, typer.Option(help=FORMAT_HELP)] = Format.auto,
    params: Annotated[float | None, typer.Option(help="Use the runs of this model size (parameters, e.g. 18915328 or 1.89e7)")] = None,
    step: Annotated[int | None, typer.Option(help="Use the checkpoints at this step")] = None,
    tokens: Annotated[float | None, typer.Option(help="Use the checkpoints at this many tokens")] = None,
    valid_weights: Annotated[Path | None, typer.Option(help="JSON/YAML of validation-domain weights (defines 'total')")] = None,
    groups: Annotated[Path | None, typer.Option(help="JSON/YAML of group -> validation domains")] = None,
    config: Annotated[Path | None, typer.Option(help=CONFIG_HELP)] = None,
    train_domains: Annotated[str | None, typer.Option(help="Comma-separated training domain names (mixinglaws format)")] = None,
    schedule: Annotated[
        Path | None,
        typer.Option(
            help="JSON learning-rate schedule of the runs without an 'lr' column (one data mixture: the schedule-aware scaling law); "
            "'unknown': the schedule-aware law weighs the schedule's length (cosine decay)"
        ),
    ] = None,
    fast: Annotated[
        bool,
        _flag("--fast", help="Short NUTS run (2 chains x 300+250) for planning loops: its compiled model is cached on disk, so only the first call compiles"),
    ] = False,
    calibrate: Annotated[
        list[str] | None,
        typer.Option(
            help="Nested fits: measure the extrapolation discrepancy along 'length' and/or 'params' by refitting without the pilots' last scale "
            "(one extra fit each); repeat"
        ),
    ] = None,
    renormalize: Annotated[bool, _flag(help="Divide mixtures that do not sum to 1 by their sum (warns)")] = False,
    tolerance: Annotated[float, typer.Option(help="How far a mixture's sum may be from 1")] = 0.01,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same numbers)")] = 0,
    force: Annotated[bool, _flag("--force", help="Overwrite the output file")] = False,
    quiet: Annotated[bool, _flag("--quiet", "-q")] = False,
):
    """Fit pilot runs: the Bayesian data mixing law at one scale; the nested law (mixture x model size
    x steps) when the table has several sizes and steps; for a table of one data mixture (no or
    constant mix: columns) with an lr column or --schedule, the schedule-aware scaling law
    L(N, t) = E + A/N^alpha + step term(learning-rate schedule up to t); otherwise, for one data
    mixture, the scaling law L(N, D) = E + A/N^alpha + B/D^beta."""
    _setup(quiet)

    def body():
        from bayes_mixlaw.runs import load_runs
        from bayes_mixlaw.schedules import Schedule

        if _to_stdout(output):
            raise UserError("-o - writes a CSV to standard output; a fit is a netCDF file: give its path (e.g. -o fit.nc)")
        _check_output(output, force)
        unknown_schedule = schedule is not None and str(schedule) == "unknown"  # the length weighed by the posterior
        given = Schedule.from_file(schedule) if schedule is not None and not unknown_schedule else None  # errors name the file and field
        table = load_runs(runs, format.value, train_domains=train_domains.split(",") if train_domains else None, tolerance=tolerance, renormalize=renormalize)
        table = table.select(params=int(params) if params is not None and float(params).is_integer() else params, step=step, tokens=tokens)
        law, table, what = _law_for(table, config=config, valid_weights=valid_weights, groups=groups, schedule=schedule, given=given)
        if not quiet:
            console.print(f"fitting the {what} from {table.source} ...")
            if law.learns_discrepancy:
                console.print(
                    "first a calibration fit without the pilots' largest size and last checkpoints: how far the law misses "
                    "them sets the model discrepancy beyond the pilots (learn_discrepancy: false in --config skips it)"
                )
        unknown = [a for a in calibrate or [] if a not in ("length", "params")]
        if unknown:
            raise UserError(f"--calibrate takes 'length' or 'params', got {unknown}")
        if calibrate and not law.supports_calibration:
            raise UserError("--calibrate needs a nested fit (a table with several model sizes and lengths)")
        extra = {"schedule": given} if law.takes_schedule else {}
        law.fit(table, seed=seed, method="fast" if fast else None, progress=not quiet, **extra)
        for axis in calibrate or []:
            from bayes_mixlaw.calibrate import calibrate_extrapolation

            if not quiet:
                console.print(f"calibrating the extrapolation along {axis}: refitting without the pilots' last {axis} ...")
            calibrate_extrapolation(law, table, axis=axis, seed=seed, progress=not quiet, method="fast" if fast else None)
        law.save(output, overwrite=force)
        if not quiet:
            console.print(law.summary_line(), highlight=False, soft_wrap=True)
            console.print(f"wrote {output}")

    _run(body)


def _law_for(table, *, config: Path | None, valid_weights: Path | None, groups: Path | None, schedule: Path | None, given):
    """The law that fits ``table`` (configured from ``config``), the table it fits and what to call the fit: for one
    data mixture with an lr column or a schedule (``given``, or ``schedule`` 'unknown'), the schedule-aware scaling
    law; for runs that continue one checkpoint, the continual pre-training law; for mixtures at several sizes and
    lengths, the nested law; for mixtures at one scale, the mixing law; else the scaling law L(N, D)."""
    from bayes_mixlaw.config import MixingLawConfig, NestedLawConfig, ScalingLawConfig
    from bayes_mixlaw.mixing import MixingLaw
    from bayes_mixlaw.nested import NestedLaw
    from bayes_mixlaw.runs import LR
    from bayes_mixlaw.scaling import ChinchillaLaw
    from bayes_mixlaw.scheduled import ScheduledLawConfig, ScheduledScalingLaw
    from bayes_mixlaw.targets import Targets

    unknown_schedule = schedule is not None and str(schedule) == "unknown"  # the length weighed by the posterior
    length = "step" if len(table.scale_values("step")) > 1 else "tokens"
    mixtures = len(table.mixtures().drop_duplicates()) if table.mix_columns else 1
    logged_lr = LR in table.data and bool(table.data[LR].notna().any())
    if (given is not None or unknown_schedule) and mixtures > 1:
        _refuse_schedule_for_mixtures(schedule, table, mixtures)
    if mixtures == 1 and (given is not None or logged_lr or unknown_schedule):
        law = ScheduledScalingLaw(ScheduledLawConfig.from_file(config) if config else ScheduledLawConfig())
        how = "lr column" + (f" and {schedule}" if given is not None else "") if logged_lr else str(schedule)
        how = "lr column where there is one, otherwise unknown: their length weighed" if unknown_schedule else how
        what = (
            f"schedule-aware scaling law on {len(table.runs)} runs ({len(table.data)} rows, "
            f"{len(table.scale_values('params')) or 1} size(s); schedules from the {how})"
        )
    elif table.mix_columns and table.reference is not None:  # continual pre-training: runs continue one checkpoint
        from bayes_mixlaw.continual import ContinualLaw, ContinualLawConfig

        law = ContinualLaw(ContinualLawConfig.from_file(config) if config else ContinualLawConfig(), Targets.from_files(valid_weights, groups))
        what = (
            f"continual pre-training law on {len(table.runs)} runs x {len(table.scale_values('step'))} checkpoints x "
            f"{len(table.valid_domains)} validation domains, from {table.reference.checkpoint}"
        )
    elif table.mix_columns and len(table.scale_values("params")) > 1 and len(table.scale_values(length)) > 1:
        law = NestedLaw(NestedLawConfig.from_file(config) if config else NestedLawConfig(), Targets.from_files(valid_weights, groups))
        what = (
            f"nested law on {len(table.runs)} runs ({len(table.mixtures().drop_duplicates())} mixtures x "
            f"{len(table.scale_values('params'))} sizes x {len(table.scale_values(length))} {length}s) x {len(table.valid_domains)} validation domains"
        )
    elif table.mix_columns:
        cfg = MixingLawConfig.from_file(config) if config else MixingLawConfig()
        law = MixingLaw(cfg, Targets.from_files(valid_weights, groups))
        table = table.single_scale()
        what = f"mixing law on {len(table.runs)} runs x {len(table.valid_domains)} validation domains"
    else:  # one data mixture: the scaling law over model size and data
        law = ChinchillaLaw(ScalingLawConfig.from_file(config) if config else ScalingLawConfig())
        what = f"scaling law L(N, D) on {len(table.data)} rows (no mix: columns, one data mixture)"
    return law, table, what


def _refuse_schedule_for_mixtures(schedule: Path, table, mixtures: int):
    """--schedule with several data mixtures: the mixing and nested laws do not take a schedule yet.

    The one place to replace when the nested law learns schedules."""
    raise UserError(
        f"--schedule {schedule}: {table.source} has {mixtures} data mixtures, and the nested law (and the mixing law "
        "at one scale) does not take a schedule yet; a schedule is used by the schedule-aware scaling law, which fits "
        "runs of one data mixture (select one mixture's runs, or leave out --schedule)"
    )


@app.command()
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


def _mixture_fit(fit_file, params, step, tokens, purpose: str, law=None):
    """A mixing-law or nested fit and the target scale the command gives it (``{}`` for one scale);
    ``law``: the fit already loaded from ``fit_file``."""
    from bayes_mixlaw.model import BayesianLaw

    law = BayesianLaw.load(fit_file) if law is None else law
    if not law.over_mixtures:
        raise UserError(f"{fit_file} is a scaling-law fit of one data mixture: there is no mixture to {purpose}")
    return law, law.target_scale(str(fit_file), [params] if params else None, [step] if step else None, [tokens] if tokens else None)


@app.command()
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


@app.command()
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


@app.command()
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
    residual_gp: Annotated[bool, _flag("--residual-gp", help="qlognei on the law plus a GP on its residuals (one-scale fits; for a misspecified law)")] = False,
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


@app.command()
def report(
    fit_file: Annotated[Path, typer.Argument(help="Fit file of a mixing-law, nested, continual pre-training or schedule-aware scaling-law fit")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder for report.html, its PNGs and tables")],
    target: Annotated[
        str, typer.Option(help="The loss the figures and the optimum are about (continual fits: the target whose critical share is shown)")
    ] = "total",
    compare: Annotated[list[Path] | None, typer.Option(help="Other fits of the same data (variants) to rank by PSIS-LOO; repeat")] = None,
    holdout: Annotated[
        bool, _flag("--holdout", help="Also refit each variant without the largest size (or farthest mixtures) and score it on them (slow)")
    ] = False,
    along: Annotated[
        str | None, typer.Option(help="Training domain whose share the per-validation-domain panels vary (default: the one the pilots vary most)")
    ] = None,
    mixture: Annotated[
        str | None,
        typer.Option(help="Nested fits: the pilot mixture whose curves against steps and size are shown (default: the one nearest the pilots' mean)"),
    ] = None,
    params: Annotated[
        float | None,
        typer.Option(
            help="Nested fits: target model size for the share bands, simplex slice and optimum (default: the largest pilot scale); "
            "schedule-aware fits: the target run's size"
        ),
    ] = None,
    step: Annotated[
        float | None, typer.Option(help="Nested fits on steps: target training steps (with --params); schedule-aware fits: the target run's last step")
    ] = None,
    schedule: Annotated[
        Path | None,
        typer.Option(
            help="Schedule-aware fits: JSON learning-rate schedule of the target run, shown against steps with --params and --step "
            "(without it, a fit with pilots of unknown schedule trains the target like them)"
        ),
    ] = None,
    tokens: Annotated[float | None, typer.Option(help="Nested fits on tokens: target training tokens (with --params)")] = None,
    caps: Annotated[
        Path | None,
        typer.Option(
            help="Caps and minimums of the optimal mixture, as optimize takes them: "
            'JSON/YAML {"caps": {domain: max}, "minimums": {domain: min}} (a flat mapping = caps)'
        ),
    ] = None,
    new_target: Annotated[str | None, typer.Option(help="Continual fits: validation domain of the new data (default: the one named after it)")] = None,
    force: Annotated[bool, _flag("--force", help="Write into a folder that already has a report")] = False,
    quiet: Annotated[bool, _flag("--quiet", "-q")] = False,
):
    """Write an HTML report (figures embedded) with its PNGs and CSV/Markdown/LaTeX tables. A continual
    pre-training fit's report shows the critical share of --target (at the last checkpoint, tolerance 0)
    instead of the simplex's figures and the optimal mixture; a schedule-aware fit's (fit --schedule), each
    run's curve against steps, the learning-rate schedules and, for an unknown schedule, what was assumed
    and how much it moves the prediction."""
    _setup(quiet)

    def body():
        import time

        from bayes_mixlaw.model import BayesianLaw
        from bayes_mixlaw.report import report_sections, summary_text, write_report
        from bayes_mixlaw.request import schedule_target

        if output.exists() and not output.is_dir():
            raise UserError(f"{output} is a file, not a folder: -o takes the folder to write report.html, its figures and tables in")
        if (output / "report.html").exists() and not force:
            raise UserError(f"{output / 'report.html'} exists; pass --force to overwrite the report in {output}")
        started = time.perf_counter()
        target_run, scale = None, None
        law = BayesianLaw.load(fit_file)
        if params is None and step is None and tokens is None:
            if schedule is not None:
                raise UserError(f"--schedule is the target run's schedule: give --params and --step with it (a schedule-aware fit of {fit_file})")
            if law.report_sections is None:
                raise UserError(
                    f"{fit_file} is a {law.fit_name} fit of one data mixture; the report covers mixing-law, nested, continual and schedule-aware fits"
                )
        elif "schedule_curves" in report_sections(law):  # a schedule-aware fit: the target run against steps
            run_schedule, steps = schedule_target(law, fit_file, schedule, [params] if params else None, [step] if step is not None else None, tokens)
            target_run = {"params": params, "schedule": run_schedule, "step": steps[0]}
            say_extrapolation(law, {"params": [params], "step": steps})
        else:
            if schedule is not None:
                raise UserError(f"--schedule is the target run's schedule of a schedule-aware fit; {fit_file} is a {law.kind.replace('_', ' ')} fit")
            law, scale = _mixture_fit(fit_file, params, step, tokens, "report on", law=law)
        if along is not None and "domains" in report_sections(law) and along not in law.train_domains:
            raise UserError(f"--along {along!r} is not a training domain of {fit_file}; it has {law.train_domains}")
        _unconverged(law, fit_file, where=f"the report's diagnostics table and {output / 'diagnostics.csv'}")
        names = [p.name for p in compare or []]
        names = names if len(set(names)) == len(names) else [str(p) for p in compare]  # file names, or paths where two share one
        others = {name: BayesianLaw.load(p) for name, p in zip(names, compare or [])}
        if mixture is not None and "curves" not in report_sections(law):
            raise UserError(f"--mixture picks the curves of a nested fit; {fit_file} is a mixing law at one scale")
        bounds = None
        if caps is not None:
            from bayes_mixlaw.optimize import MixtureBounds

            bounds = MixtureBounds.from_file(caps)
            if "optimum" in report_sections(law):  # else write_report says the caps do not apply
                bounds.arrays(law.train_domains, str(caps))  # checked before the figures take their time
        path = write_report(
            law,
            output,
            target=target,
            compare_with=others or None,
            holdout=holdout,
            along=along,
            scale=scale,
            mixture=mixture,
            bounds=bounds,
            caps_source=str(caps) if caps else "caps",
            new_target=new_target,
            target_run=target_run,
        )
        if not quiet:
            console.print(summary_text(law), highlight=False, soft_wrap=True)
            out.print(f"wrote {path} and its figures and tables in {output} ({time.perf_counter() - started:.0f} s)")

    _run(body)


def _earlier_demo(fit_path: Path, pred_path: Path, source: str) -> bool:
    """Whether the demo's folder holds an earlier demo's output, which it then replaces (saying so);
    anything else there under the demo's file names is refused, naming it."""
    from bayes_mixlaw.model import BayesianLaw

    if not fit_path.exists():
        if pred_path.exists():
            raise UserError(f"{pred_path} exists and {fit_path} does not, so it is not the demo's earlier output; remove it or pass another -o folder")
        return False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ours = BayesianLaw.load(fit_path).idata.attrs.get("source") == source
    except (OSError, ValueError):  # unreadable or damaged (FitFileError is a ValueError): not the demo's output
        ours = False
    if not ours:
        raise UserError(f"{fit_path} exists and is not an earlier demo's fit; remove it or pass another -o folder")
    console.print(f"replacing the earlier demo's {fit_path} and {pred_path}", highlight=False, soft_wrap=True)
    return True


@app.command()
def demo(
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder for the fit and predictions")] = Path("bayes-mixlaw-demo"),
    fast: Annotated[bool, _flag("--fast", help="Short NUTS run instead of the full one")] = False,
    seed: Annotated[int, typer.Option(help="Random seed of the fit and the predictions (same seed, same numbers)")] = 0,
    quiet: Annotated[bool, _flag("--quiet", "-q")] = False,
):
    """Fit the packaged real data (Data Mixing Laws' 5Mix, Pythia-70M at 30k steps) and predict."""
    _setup(quiet)

    def body():
        import numpy as np
        import pandas as pd

        from bayes_mixlaw import datasets
        from bayes_mixlaw.mixing import MixingLaw
        from bayes_mixlaw.runs import MIX_PREFIX

        fit_path, pred_path = output / "fit.nc", output / "predictions.csv"
        if output.exists() and not output.is_dir():
            raise UserError(f"{output} is a file, not a folder: -o takes the folder for the demo's fit and predictions")
        runs = datasets.mixinglaws_5mix_70m().select(step=30000)
        again = _earlier_demo(fit_path, pred_path, runs.source)  # run twice, the demo replaces its own output
        output.mkdir(parents=True, exist_ok=True)
        if not quiet:
            console.print(
                f"[bold]bayes-mixlaw demo[/]: Data Mixing Laws' 5Mix pilots (Ye et al., 2025), Pythia-70M at 30k steps: "
                f"{len(runs.runs)} mixtures of {', '.join(runs.train_domains)} x {len(runs.valid_domains)} Pile validation domains"
            )
            console.print("compiling and sampling (NUTS via nutpie; the first fit compiles the model) ..." if not fast else "short NUTS run (--fast) ...")
        law = MixingLaw(targets=datasets.pile_targets())
        law.fit(runs, seed=seed, method="fast" if fast else None, progress=not quiet)
        if not quiet:
            console.print(law.summary_line(), highlight=False, soft_wrap=True)
        law.save(fit_path, overwrite=again)
        domains = runs.train_domains
        observed = runs.mixtures()
        best_run = runs.pivot().loc[:, list(law.targets.weights)].mul(pd.Series(law.targets.weights)).sum(axis=1).idxmin()
        rows = {
            "uniform": np.full(len(domains), 1 / len(domains)),
            "pilot mean": observed.to_numpy().mean(axis=0),
            f"best pilot (run {best_run.split('_')[1].split('-')[0]})": observed.loc[best_run].to_numpy(),
            "academic-heavy": np.array([0.5, 0.15, 0.1, 0.1, 0.15]),
            "internet only (extrapolation)": np.array([0.0, 0.0, 0.0, 0.0, 1.0]),
        }
        mixtures = pd.DataFrame([{"name": name, **{MIX_PREFIX + d: v for d, v in zip(domains, r)}} for name, r in rows.items()])
        predictions = law.predict(mixtures)
        _write_table(predictions, pred_path, "demo predictions")
        table = Table(title=f"Predicted 70M/30k loss, {DEFAULT_CI:.0%} credible intervals (posterior predictive)")
        table.add_column("mixture")
        table.add_column("academic/prose/dialogue/symbolic/internet")
        for target in ("total", "academic", "internet"):
            table.add_column(target, justify="right")
        for name, r in rows.items():
            sel = predictions[predictions["name"] == name].set_index("target")
            cells = [f"{sel.loc[t, 'mean']:.3f} [{sel.loc[t, 'lower']:.3f}, {sel.loc[t, 'upper']:.3f}]" for t in ("total", "academic", "internet")]
            table.add_row(name, "/".join(f"{x:.2f}" for x in r), *cells)
        out.print(table)
        out.print(f"fit: {fit_path}   predictions (all 22 domains, 5 groups, total): {pred_path}")
        if not quiet:
            console.print(
                f"next: [bold]bayes-mixlaw report {fit_path} -o {output / 'report'}[/] (figures, diagnostics, tables for a paper), "
                f"[bold]bayes-mixlaw optimize {fit_path} -o {output / 'optimum.csv'}[/], "
                f"[bold]bayes-mixlaw suggest {fit_path} -n 4 -o {output / 'next.csv'}[/]",
                highlight=False,
                soft_wrap=True,
            )

    _run(body)


@app.command()
def loop(
    config: Annotated[
        Path | None,
        typer.Argument(
            help="LOOP.yaml: trainer, backend, budget, pilot sizes and steps, target, caps, acquisition (bayes_mixlaw.loop_config); not needed with --resume"
        ),
    ] = None,
    state: Annotated[
        Path,
        typer.Option(
            "--state", help="Folder of the loop's state: state.sqlite, pilots/ (each attempt's folder and log), fits/, and at the end runs.csv and fit.nc"
        ),
    ] = Path("loop-state"),
    resume: Annotated[bool, _flag("--resume", help="Continue the interrupted loop in --state (its config is read from there)")] = False,
    quiet: Annotated[bool, _flag("--quiet", "-q")] = False,
):
    """Run pilots in a closed loop: fit -> suggest -> dispatch (local, Ray, Slurm) -> collect -> refit; resumable."""
    _setup(quiet)

    def body():
        from bayes_mixlaw.loop import run_loop

        if config is None and not resume:
            raise UserError("give the loop's config (LOOP.yaml), or --resume --state DIR to continue a loop")
        try:
            result = run_loop(config, state, resume=resume, quiet=quiet)
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
        best = result.best
        if best and best["mixture"]:
            mixture = ", ".join(f"{d} {v:.3f}" for d, v in best["mixture"].items())
            out.print(f"best mixture: {mixture}; predicted loss {best['loss']:.4f} [{best['lower']:.4f}, {best['upper']:.4f}]")
        out.print(
            f"{result.stopped}; {result.counts['done']} pilots done, {result.counts['failed']} failed; wrote {result.runs_csv}"
            + (f" and {result.fit_path}" if result.fit_path else "")
        )

    _run(body)


def main():  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
