"""Input formats: one module per format, each a :class:`Reader` with its auto-detection rule, found through a registry.

:func:`~bayes_mixlaw.runs.load_runs` reads a path with ``get_reader(format)`` or, for ``format="auto"``,
``detect_format(path)`` (the first reader, in ``priority`` order, whose rule recognises it), then
validates what the reader returns. The CLI's ``--format`` choices and help, the auto-detection and the
"unknown format" / "cannot tell the format" errors all come from the registry. The packaged formats,
in auto-detection order (``bayes-mixlaw fit --help`` lists the registered ones in the same order):

=================  ========  =================================================================
format             priority  auto-detected when
=================  ========  =================================================================
``regmix``         10        a ``train_mixture*`` / ``train_pile_loss*`` file, or a folder with one
``chinchilla``     20        a CSV whose header has ``Model Size`` and ``Training FLOP``
``multipowerlaw``  30        ``csv_<size>/<schedule>.csv`` files with the header ``step,lr,loss``
``mixinglaws``     40        a ``.txt``/``.txt.gz`` file, or a folder of them (or of sub-folders)
``ct``             41        never: ``--format ct`` (mixinglaws files that must hold the start checkpoint)
``wide``           50        a CSV/Parquet file with ``loss:<domain>`` columns
``tidy``           90        any other CSV/Parquet file (the fallback)
=================  ========  =================================================================

Adding a format: one new file plus its test
-------------------------------------------
A new format is one new module in this folder and one test; nothing else changes (the package imports
every module here on first use, so the ``--format`` choice, its help line, auto-detection and the error
messages pick it up). ``wide.py`` is the example to copy::

    from bayes_mixlaw.formats.base import Reader, register

    @register
    class MyReader(Reader):
        name = "mine"                        # the --format value
        description = "My lab's loss logs"   # one line, for --help
        priority = 45                        # where auto-detection tries it (lower first)

        def detect(self, path):              # cheap: the name, the header, the folder's layout; never raises
            return path.name.endswith(".mine.csv")

        def read(self, path, **options):     # the tidy table (validated by load_runs), __row__ = the user's row
            ...

and ``tests/test_formats_<name>.py`` (see ``tests/test_formats_wide.py``): a small file built from the real
data in ``shared/data``, read with ``load_runs``, compared with the same runs in the tidy form. Give the
rule a ``priority`` that keeps it from claiming another format's files (``tests/test_formats.py`` checks
that every packaged dataset is still detected as its own format). In Python a reader can also be
registered from outside the package with ``register(MyReader)`` and removed with ``unregister("mine")``.
"""

from bayes_mixlaw.formats.base import (
    AUTO,
    Reader,
    csv_header,
    detect_format,
    format_descriptions,
    format_names,
    get_reader,
    reader_names,
    readers,
    register,
    unregister,
)

__all__ = [
    "AUTO",
    "Reader",
    "csv_header",
    "detect_format",
    "format_descriptions",
    "format_names",
    "get_reader",
    "reader_names",
    "readers",
    "register",
    "unregister",
]
