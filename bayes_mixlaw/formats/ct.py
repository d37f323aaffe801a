"""The mixinglaws text format of a continual pre-training experiment (the paper's ``ct``): it must hold
the starting checkpoint's losses, which become ``RunsTable.reference``.

Never auto-detected: the same files read as ``mixinglaws`` keep their starting checkpoint too, where
they have one; ``--format ct`` insists on it.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bayes_mixlaw.formats.base import Reader, register
from bayes_mixlaw.formats.mixinglaws import _read_mixinglaws
from bayes_mixlaw.runs import Reference, RunsTableError


@register
class ContinualReader(Reader):
    name = "ct"
    description = "mixinglaws files of a continual pre-training run with its starting checkpoint"
    priority = 41  # listed beside mixinglaws; chosen by name only

    def read(self, path: Path, *, train_domains: list[str] | None = None, **options) -> tuple[pd.DataFrame, Reference]:
        frame, reference = _read_mixinglaws(path, train_domains)
        if reference is None:
            raise RunsTableError(
                "no starting checkpoint in these files: the ct format needs lines of the checkpoint every run continues from "
                "(checkpoint path ending in '<name>_step<N>', e.g. pythia_70m_step20000)",
                source=str(path),
            )
        return frame, reference
