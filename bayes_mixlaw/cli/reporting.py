"""``bayes-mixlaw report``: the options checked against the parts of the fit's report, then
:func:`~bayes_mixlaw.report.write_report`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bayes_mixlaw.cli.common import UserError, _flag, _mixture_fit, _run, _setup, _unconverged, console, out
from bayes_mixlaw.request import say_extrapolation


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
