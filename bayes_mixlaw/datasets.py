"""Real data shipped with the package (see ``bayes_mixlaw/data/README.md`` for provenance)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from bayes_mixlaw.runs import MIXINGLAWS_TRAIN_DOMAINS, RunsTable, load_runs
from bayes_mixlaw.targets import Targets

DATA = Path(str(files("bayes_mixlaw") / "data"))
PILE_VALID_WEIGHTS = DATA / "pile_valid_weight.json"
PILE_GROUPS = DATA / "pile_groups.json"


def mixinglaws_5mix_70m() -> RunsTable:
    """Data Mixing Laws' 5Mix experiment at 70M: 21 mixtures x 15 checkpoints x 22 Pile domains."""
    return load_runs(DATA / "mixinglaws_5Mix_70M.txt.gz", "mixinglaws", train_domains=MIXINGLAWS_TRAIN_DOMAINS["5Mix"])


def pile_targets() -> Targets:
    """The Pile validation weights (``total``) and the paper's five groups of validation domains."""
    return Targets.from_files(PILE_VALID_WEIGHTS, PILE_GROUPS)
