"""What the commands share: the consoles, an input error as one line (:class:`UserError`), the package's log
and warnings on the terminal, writing a command's table, a fit's diagnostics on its outputs, and the mixture fit
a command is about with the target scale it gives."""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path

import typer
from rich.console import Console

console = Console(stderr=True)
out = Console(width=150)
QUIET_HELP = "No progress output: only the results, warnings and errors"


def _flag(*names: str, help: str = QUIET_HELP):
    """An on/off option, shown in --help without a value placeholder."""
    return typer.Option(*names, help=help, metavar="")


class UserError(Exception):
    """Problems in the user's input: printed as one clear line, exit code 2."""


def _run(fn):
    """Run a command body, turning input errors into a one-line message instead of a traceback."""
    from rich.markup import escape

    from bayes_mixlaw.config import ConfigError
    from bayes_mixlaw.runs import RunsTableError
    from bayes_mixlaw.targets import TargetsError

    try:
        return fn()
    except (RunsTableError, TargetsError, ConfigError, UserError, FileExistsError, FileNotFoundError, ValueError) as err:
        console.print(f"[bold red]error:[/] {escape(str(err))}", highlight=False, soft_wrap=True)  # escaped: "pip install 'pkg[extra]'" is no markup
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


def _mixture_fit(fit_file, params, step, tokens, purpose: str, law=None):
    """A mixing-law or nested fit and the target scale the command gives it (``{}`` for one scale);
    ``law``: the fit already loaded from ``fit_file``."""
    from bayes_mixlaw.model import BayesianLaw

    law = BayesianLaw.load(fit_file) if law is None else law
    if not law.over_mixtures:
        raise UserError(f"{fit_file} is a scaling-law fit of one data mixture: there is no mixture to {purpose}")
    return law, law.target_scale(str(fit_file), [params] if params else None, [step] if step else None, [tokens] if tokens else None)
