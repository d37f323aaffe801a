"""The reader interface and the registry of input formats (see the package docstring)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bayes_mixlaw.registry import PackageRegistry
from bayes_mixlaw.runs import Reference, RunsTableError

AUTO = "auto"
AUTO_DESCRIPTION = "guessed from the path"


class Reader:
    """One input format: its ``--format`` name, a one-line description, its auto-detection rule and its reader.

    Subclass it, set the class attributes, write :meth:`detect` and :meth:`read`, and decorate the class
    with :func:`register`. ``priority``: the order auto-detection tries the formats in (lower first; a
    format whose rule is a fallback, like ``tidy``'s "any CSV or Parquet file", comes last). A reader
    that is only chosen by name (``--format``) keeps the default :meth:`detect`, which says no.
    """

    name: str = ""
    description: str = ""
    priority: int = 100

    def detect(self, path: Path) -> bool:
        """Whether ``path`` (an existing file or folder) is in this format: cheap (its name, its header
        line, the folder's layout), and never an error; :meth:`read` reports what is wrong inside."""
        return False

    def read(self, path: Path, **options) -> pd.DataFrame | tuple[pd.DataFrame, Reference | None]:
        """The tidy runs table at ``path`` (unvalidated: :func:`~bayes_mixlaw.runs.load_runs` checks it),
        with the user's row labels (file line, ``file:line``) in the ``__row__`` column; or the pair
        (table, :class:`~bayes_mixlaw.runs.Reference` or None) where the format carries the starting
        checkpoint's losses. ``options`` are :func:`~bayes_mixlaw.runs.load_runs`'s keyword options a
        format may use (``train_domains``); a reader ignores those it does not use."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} format '{self.name}'>"


_REGISTRY = PackageRegistry(__package__)  # name -> Reader


def register(reader):
    """Class decorator (or call with an instance): add a reader to the registry under its ``name``.

    A name registered twice is an error (unregister the old one first). Returns its argument, so a
    decorated class stays a class.
    """
    instance = reader() if isinstance(reader, type) else reader
    if not isinstance(instance, Reader):
        raise TypeError(f"register() takes a Reader subclass or instance, not {type(instance).__name__}")
    name = instance.name
    if not name or not isinstance(name, str) or name != name.strip() or name == AUTO:
        raise ValueError(f"{type(instance).__name__}: a reader needs a name (not empty, not '{AUTO}'), got {name!r}")
    if not instance.description:
        raise ValueError(f"reader '{name}' needs a one-line description (it is shown in --help)")
    if name in _REGISTRY and type(_REGISTRY[name]) is not type(instance):
        raise ValueError(f"a reader named '{name}' is registered already ({type(_REGISTRY[name]).__name__}); unregister it first")
    _REGISTRY[name] = instance
    return reader


def unregister(name: str) -> Reader:
    """Remove a reader from the registry (tests, or replacing a packaged reader); returns it."""
    return _REGISTRY.remove(name, "reader", reader_names)


def readers() -> list[Reader]:
    """The registered readers in auto-detection order (``priority``, then name)."""
    return sorted(_REGISTRY.discover().values(), key=lambda r: (r.priority, r.name))


def reader_names() -> list[str]:
    """The registered formats' names, in auto-detection order (without ``auto``)."""
    return [r.name for r in readers()]


def format_names() -> tuple[str, ...]:
    """The ``--format`` choices: ``auto`` and every registered format."""
    return (AUTO, *reader_names())


def format_descriptions() -> dict[str, str]:
    """Each ``--format`` choice's one-line description, ``auto`` first."""
    return {AUTO: AUTO_DESCRIPTION, **{r.name: r.description for r in readers()}}


def get_reader(name: str, source: str | None = None) -> Reader:
    """The reader registered as ``name``; an unknown name is an error listing the formats there are."""
    if name not in _REGISTRY.discover():
        raise RunsTableError(f"unknown format '{name}'; choose one of {', '.join(format_names())}", source=source)
    return _REGISTRY[name]


def detect_format(path: Path) -> Reader:
    """The first reader (in ``priority`` order) whose rule recognises ``path``; none is an error that
    lists the formats to pass as ``--format``."""
    path = Path(path)
    for reader in readers():
        if reader.detect(path):
            return reader
    what = "folder" if path.is_dir() else "file from its name and header"
    raise RunsTableError(f"cannot tell the format of this {what}; pass --format, one of {', '.join(reader_names())}", source=str(path))


def csv_header(path: Path) -> list[str] | None:
    """The column names of a CSV (``.csv``, ``.csv.gz``) or Parquet file, read cheaply; None if it has no
    readable header (detection rules use it and say no; the reader then names the problem)."""
    name = path.name.lower()
    try:
        if name.endswith((".parquet", ".pq")):
            import pyarrow.parquet as pq

            return list(pq.read_schema(path).names)
        if name.endswith((".csv", ".csv.gz")):
            return [str(c) for c in pd.read_csv(path, nrows=0).columns]
    except Exception:
        return None
    return None
