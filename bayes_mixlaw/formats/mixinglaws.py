"""The Data Mixing Laws text format (Ye et al., 2025; repo yegcjs/mixinglaws): one file or a folder of them.

Lines ``<checkpoint path> TAB <validation file> TAB <loss>``; the run's mixture is in its name. The
``ct`` format (``ct.py``) is this format for a continual pre-training experiment.
"""

from __future__ import annotations

import gzip
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from bayes_mixlaw.formats.base import Reader, register
from bayes_mixlaw.runs import (
    _ROW,
    MIX_PREFIX,
    PYTHIA_PARAMS,
    Reference,
    RunsTableError,
    _short_list,
)

# Tokens per optimiser step in the mixinglaws runs.
MIXINGLAWS_BATCH_TOKENS = 1_048_576
# Training domains of the mixinglaws experiments, in the order of the proportions in run names.
MIXINGLAWS_TRAIN_DOMAINS = {
    "RedPajama": ["CommonCrawl", "C4", "GitHub", "Wikipedia", "Books", "ArXiv", "StackExchange"],
    "5Mix": ["academic", "prose", "dialogue", "symbolic", "internet"],
    "3Mix": ["Github", "Books3", "Pile-CC"],
    "2Mix": ["Github", "Pile-CC"],
    "ct": ["Pile", "Python"],
}
# Continual pre-training experiments: the training domain the starting checkpoint was trained on.
MIXINGLAWS_ORIGINAL_DOMAIN = {"ct": "Pile"}
# A base checkpoint in the mixinglaws format (the model every run continues from): ``<name>_step<N>``.
_BASE_CHECKPOINT = re.compile(r"^(?P<name>.+)_step(?P<step>\d+)$")


def _read_text(path: Path) -> str:
    raw = path.read_bytes()
    return gzip.decompress(raw).decode() if path.name.endswith(".gz") else raw.decode()


_SIZE = re.compile(r"^(\d+(?:\.\d+)?)([MB])$")


def _size_to_params(size: str) -> int:
    if size in PYTHIA_PARAMS:
        return PYTHIA_PARAMS[size]
    m = _SIZE.match(size)
    if not m:
        raise ValueError(size)
    return int(float(m.group(1)) * (1e6 if m.group(2) == "M" else 1e9))


def read_mixinglaws(path: Path, train_domains: list[str] | None = None) -> pd.DataFrame:
    """The mixinglaws text format: ``<checkpoint path> TAB <validation file> TAB <loss>`` lines.

    The run is the last-but-one component of the checkpoint path, ``<size>_<tag>_<id>-<p1>-<p2>...``
    (or ``<id>-<p1>-...`` with the size taken from the file name, ``410M.txt``); the step is the last
    component. Lines whose step is not a number (the ``last`` alias) are left out with a warning; a
    base checkpoint's lines (last component ``<name>_step<N>``: the model a continual pre-training
    run starts from) are left out here and read by :func:`~bayes_mixlaw.runs.load_runs` as the table's ``reference``.
    ``path`` is one file or a folder of them (searched recursively). ``params`` are the Pythia
    non-embedding sizes and ``tokens = step x 1,048,576``. Validation files ``<x>.valid.<Domain>.bin``
    give ``<Domain>``; ``<name>.valid.bin`` (the ct experiment's ``starcoder.python.valid.bin``) gives ``<name>``.
    """
    return _read_mixinglaws(path, train_domains)[0]


def _validation_name(valid_file: str) -> str:
    valid = re.sub(r"\.bin$", "", Path(valid_file).name)
    valid = re.sub(r"^.*\.valid\.", "", valid)
    return re.sub(r"\.valid$", "", valid)


def _read_mixinglaws(path: Path, train_domains: list[str] | None = None) -> tuple[pd.DataFrame, Reference | None]:
    """:func:`read_mixinglaws` and the base checkpoint's losses (a :class:`Reference`, or None)."""
    files = sorted(p for p in path.rglob("*") if p.name.endswith((".txt", ".txt.gz"))) if path.is_dir() else [path]
    if not files:
        raise RunsTableError("no mixinglaws .txt files in this folder", source=str(path))
    if train_domains is None:
        train_domains = _published(path, MIXINGLAWS_TRAIN_DOMAINS)
    original = _published(path, MIXINGLAWS_ORIGINAL_DOMAIN)
    frames, skipped, base = [], {}, {}
    for file in files:
        records = _read_file(file, base, skipped)
        if not records:
            continue
        widths = {len(r[5]) for r in records}
        if len(widths) > 1:
            raise RunsTableError(f"run names carry different numbers of proportions: {sorted(widths)}", source=str(file))
        frames.append((file, records))
    if not frames:
        raise RunsTableError("no usable lines", source=str(path))
    width = len(frames[0][1][0][5])
    _check_train_domains(path, train_domains, width)
    rows = []
    for file, records in frames:
        if len(records[0][5]) != width:
            raise RunsTableError(f"run names carry {len(records[0][5])} proportions, other files {width}", source=str(file))
        rows.extend(records)
    frame = pd.DataFrame(
        {
            "run": [r[0] for r in rows],
            "params": [r[1] for r in rows],
            "step": [r[2] for r in rows],
            "tokens": [float(r[2] * MIXINGLAWS_BATCH_TOKENS) for r in rows],
            "valid_domain": [r[3] for r in rows],
            "loss": [r[4] for r in rows],
            _ROW: [r[6] for r in rows],
        }
    )
    mix = np.array([r[5] for r in rows])
    for j, name in enumerate(train_domains):
        frame[MIX_PREFIX + name] = mix[:, j]
    if skipped:
        warnings.warn(
            f"{path}: left out {sum(skipped.values())} line(s) whose step is not a number ({_short_list(sorted(skipped), 4)})",
            UserWarning,
            stacklevel=4,  # the caller of load_runs
        )
    return frame, _base_reference(base, path, original)


def _published(path: Path, table: dict):
    """``table``'s entry for the published experiment ``path`` belongs to (its own name or a folder's), or None."""
    return next((table[part] for part in [path.name, *[p.name for p in path.parents]] if part in table), None)


def _check_train_domains(path: Path, train_domains: list[str] | None, width: int) -> None:
    """The training domains are known (named, or those of a published experiment) and as many as the runs' proportions."""
    if train_domains is None:
        raise RunsTableError(
            f"cannot tell which training domains the run names' {width} proportions are: '{path.name}' is not a published "
            f"mixinglaws experiment ({', '.join(MIXINGLAWS_TRAIN_DOMAINS)}); name them in order with --train-domains "
            f"{','.join(f'd{j + 1}' for j in range(width))} (Python: train_domains=[...])",
            source=str(path),
        )
    if len(train_domains) != width:
        raise RunsTableError(f"run names carry {width} proportions but {len(train_domains)} training domains were named: {train_domains}", source=str(path))


def _read_file(file: Path, base: dict, skipped: dict) -> list[tuple]:
    """One file's records ``(run, params, step, valid_domain, loss, proportions, "file:line")``. A base
    checkpoint's lines go to ``base`` (``{checkpoint: [(valid_domain, loss, "file:line")]}``) and lines
    whose step is not a number are counted in ``skipped`` (``{step: lines}``)."""
    size_from_name = file.name.split(".")[0]
    records = []
    for lineno, line in enumerate(_read_text(file).splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 3:
            raise RunsTableError(f"expected 3 tab-separated fields, found {len(fields)}", source=str(file), row=lineno)
        checkpoint, valid_file, loss_text = fields
        parts = [p for p in checkpoint.split("/") if p]
        if len(parts) < 2:
            raise RunsTableError(f"checkpoint path {checkpoint!r} has no run/step components", source=str(file), row=lineno, column="checkpoint")
        run, step = parts[-2], parts[-1]
        if step.isdigit():
            records.append(_run_record(file, lineno, run, int(step), valid_file, loss_text, size_from_name))
        elif _BASE_CHECKPOINT.match(step):
            base.setdefault(step, []).append((_validation_name(valid_file), _loss(loss_text, file, lineno), f"{file.name}:{lineno}"))
        else:
            skipped[step] = skipped.get(step, 0) + 1
    return records


def _run_record(file: Path, lineno: int, run: str, step: int, valid_file: str, loss_text: str, size_from_name: str) -> tuple:
    """A run's line as a record: its size and proportions read from the run name (``<size>_<tag>_<id>-<p1>-<p2>...``,
    or ``<id>-<p1>-...`` with the size from the file name)."""
    size, _, rest = run.partition("_")
    if not _SIZE.match(size):
        size, rest = size_from_name, run
    try:
        params = _size_to_params(size)
    except ValueError:
        raise RunsTableError(f"cannot read a model size from run {run!r} or file name", source=str(file), row=lineno, column="checkpoint") from None
    try:
        proportions = [float(p) for p in rest.rsplit("_", 1)[-1].split("-")[1:]]
    except ValueError:
        raise RunsTableError(f"cannot read mixture proportions from run name {run!r}", source=str(file), row=lineno, column="checkpoint") from None
    if not proportions:
        raise RunsTableError(f"run name {run!r} has no '-<proportion>' parts", source=str(file), row=lineno, column="checkpoint")
    valid = _validation_name(valid_file)
    loss = _loss(loss_text, file, lineno)
    run_id = run if run.startswith(size + "_") else f"{size}_{run}"
    return (run_id, params, step, valid, loss, proportions, f"{file.name}:{lineno}")


def _loss(text: str, file: Path, lineno: int) -> float:
    try:
        return float(text)
    except ValueError:
        raise RunsTableError(f"loss {text!r} is not a number", source=str(file), row=lineno, column="loss") from None


def _base_reference(base: dict, path: Path, original: str | None) -> Reference | None:
    """The one base checkpoint's losses (duplicated lines with equal losses are one; different losses
    for one domain, or two base checkpoints, are errors naming them)."""
    if not base:
        return None
    if len(base) > 1:
        raise RunsTableError(f"the files hold {len(base)} base checkpoints ({_short_list(sorted(base), 4)}); runs continue one", source=str(path))
    ((name, lines),) = base.items()
    losses: dict[str, float] = {}
    for domain, loss, where in lines:
        if domain in losses and losses[domain] != loss:
            raise RunsTableError(
                f"base checkpoint '{name}' has two losses for '{domain}' ({losses[domain]} and {loss}, the second at {where})", source=str(path)
            )
        losses[domain] = loss
    return Reference.from_any(pd.Series(losses), checkpoint=name, original_domain=original)


@register
class MixinglawsReader(Reader):
    name = "mixinglaws"
    description = "Data Mixing Laws .txt file or folder"
    priority = 40  # after multipowerlaw: its folder of csv_<size> sub-folders would pass the folder rule below

    def detect(self, path: Path) -> bool:
        if path.is_dir():
            return any(p.name.endswith((".txt", ".txt.gz")) or p.is_dir() for p in path.iterdir())
        return path.name.lower().endswith((".txt", ".txt.gz"))

    def read(self, path: Path, *, train_domains: list[str] | None = None, **options) -> tuple[pd.DataFrame, Reference | None]:
        return _read_mixinglaws(path, train_domains)
