"""``bayes-mixlaw fit``: which law fits a runs table, fitted and saved."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated

import typer

from bayes_mixlaw.cli.common import UserError, _check_output, _flag, _run, _setup, _to_stdout, console
from bayes_mixlaw.formats import format_descriptions
from bayes_mixlaw.mixing_forms.base import packaged_form_names

# the --format choices and help come from the readers' registry
FORMAT_DESCRIPTIONS = format_descriptions()  # auto, then every registered format in auto-detection order
Format = enum.Enum("Format", {name: name for name in FORMAT_DESCRIPTIONS}, type=str)


FORMAT_HELP = "Format of RUNS (auto: the first, in this order, whose rule matches): " + "; ".join(
    f"{name} ({text})" for name, text in FORMAT_DESCRIPTIONS.items()
)
Backend = enum.Enum("Backend", {name: name for name in ("numba", "jax")}, type=str)  # SamplerConfig.backend
# the mixing law's forms, from the forms' registry (module names, so --help does not load PyMC)
CONFIG_HELP = f"YAML/JSON config: law (the mixing law's form: {', '.join(packaged_form_names())}; see bayes_mixlaw.mixing_forms), likelihood, priors, sampler"


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
    backend: Annotated[
        Backend | None,
        typer.Option(
            help="Where NUTS computes the log density and its gradient: numba (the default, fastest on small tables) or jax (nutpie's JAX backend, "
            "for a GPU and large tables; pip install 'bayes_mixlaw[jax]'); overrides the config's sampler.backend"
        ),
    ] = None,
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
        if backend is not None:  # the fit file keeps the backend with the other sampler settings
            law.config = law.config.model_copy(update={"sampler": law.config.sampler.model_copy(update={"backend": backend.value})})
        if law.config.sampler.backend == "jax":
            from bayes_mixlaw.inference import BackendUnavailable, require_jax

            try:
                require_jax()
            except BackendUnavailable as err:
                raise UserError(str(err)) from None
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
    nested = bool(table.mix_columns) and len(table.scale_values("params")) > 1 and len(table.scale_values(length)) > 1
    if (given is not None or unknown_schedule) and mixtures > 1 and (unknown_schedule or not nested):
        _refuse_schedule_for_mixtures(schedule, table, mixtures, unknown_schedule)
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
    elif nested:
        law = NestedLaw(NestedLawConfig.from_file(config) if config else NestedLawConfig(), Targets.from_files(valid_weights, groups))
        read = f"; steps read through the learning-rate schedules from the {'lr column' if logged_lr else schedule}" if logged_lr or given is not None else ""
        what = (
            f"nested law on {len(table.runs)} runs ({len(table.mixtures().drop_duplicates())} mixtures x "
            f"{len(table.scale_values('params'))} sizes x {len(table.scale_values(length))} {length}s) x {len(table.valid_domains)} validation domains{read}"
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


def _refuse_schedule_for_mixtures(schedule: Path, table, mixtures: int, unknown: bool):
    """--schedule with several data mixtures where no law takes it: 'unknown' (the nested law does not weigh an unknown
    schedule: without one it takes steps as they come and its discrepancy carries the schedule's error), or mixtures not
    at several sizes and steps (the mixing law has no steps to read)."""
    if unknown:
        raise UserError(
            f"--schedule unknown: {table.source} has {mixtures} data mixtures; the nested law does not weigh an unknown schedule "
            "(the schedule-aware scaling law does, for runs of one data mixture): leave out --schedule, and the nested law takes "
            "steps as they come, its model discrepancy carrying the schedule's error beyond the longest pilot run"
        )
    raise UserError(
        f"--schedule {schedule}: {table.source} has {mixtures} data mixtures but not several model sizes and steps; the mixing law "
        "it then fits has no steps to read through a schedule (the nested law reads the pilots' schedules when they are at several "
        "sizes and steps): leave out --schedule"
    )
