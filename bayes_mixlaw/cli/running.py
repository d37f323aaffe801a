"""Commands that run everything end to end: ``bayes-mixlaw demo`` (the packaged real data fitted and predicted)
and ``loop`` (pilots in a closed loop)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from bayes_mixlaw.cli.common import UserError, _flag, _run, _setup, _write_table, console, out
from bayes_mixlaw.summary import DEFAULT_CI


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
