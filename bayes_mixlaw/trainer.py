"""The reference pilot trainer: a tiny decoder-only transformer trained on a mixture of text domains.

Contract (what the loop relies on, and what a lab's own trainer must do the same way):
``train_pilot(pilot, out_dir)`` trains one model of about ``pilot.params`` parameters for
``pilot.steps`` optimiser steps on batches drawn from the training domains in the proportions
``pilot.mixture``, evaluates the next-byte loss (nats) on each domain's held-out text at
``checkpoints`` steps, writes ``out_dir/rows.csv`` (the tidy runs table: ``run``, ``params``,
``step``, ``valid_domain``, ``loss`` and one ``mix:<domain>`` column per training domain, see
``bayes_mixlaw.runs``) and returns those rows. ``params`` in the rows is the model's real parameter
count (every trainable weight), which may differ from the one asked for: the width is the one whose
count is nearest (:func:`model_config`), so one requested size always gives the same model.

The text is on every machine, nothing is downloaded: ``code`` is Python source of the standard
library, ``prose`` the English of the standard library's documentation (pydoc's topics and module
docstrings), ``numbers`` CSV-like records generated from a fixed seed. They differ visibly: the model
learns ``numbers`` fast and far, ``prose`` slowly. Bytes are the tokens (vocabulary 256).

The schedule: linear warm-up over the first 10% of the steps (at most 50), then ``constant`` (the
default: a checkpoint is then also the end of a shorter run with the same schedule, which is what
the nested law assumes) or ``cosine`` decay to a tenth of the peak.

As a command (the template a lab adapts)::

    python -m bayes_mixlaw.trainer --mix '{"code": 0.5, "prose": 0.3, "numbers": 0.2}' \\
        --params 30000 --steps 200 --out out/ [--run NAME] [--seed 0] [--schedule constant]
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import sys
import sysconfig
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bayes_mixlaw.atomic import write_atomically

DOMAINS = ("code", "prose", "numbers")
CONTEXT = 64
BATCH = 16
N_LAYER = 2
VOCAB = 256
SCHEDULES = ("constant", "cosine")
# Source files of the standard library read as 'code' (those present; every CPython 3.12 has them).
_CODE_FILES = (
    "textwrap.py",
    "argparse.py",
    "json/encoder.py",
    "json/decoder.py",
    "csv.py",
    "fractions.py",
    "heapq.py",
    "bisect.py",
    "shlex.py",
    "string.py",
    "difflib.py",
    "calendar.py",
    "statistics.py",
    "dataclasses.py",
)
_CODE_MODULES = (
    "textwrap",
    "argparse",
    "json.encoder",
    "json.decoder",
    "csv",
    "fractions",
    "heapq",
    "bisect",
    "shlex",
    "string",
    "difflib",
    "calendar",
    "statistics",
    "dataclasses",
)
_DOC_MODULES = (
    "argparse",
    "collections",
    "csv",
    "datetime",
    "decimal",
    "difflib",
    "email",
    "fractions",
    "functools",
    "heapq",
    "inspect",
    "itertools",
    "json",
    "logging",
    "os",
    "pathlib",
    "pickle",
    "random",
    "re",
    "shutil",
    "statistics",
    "string",
    "subprocess",
    "tempfile",
    "textwrap",
    "threading",
    "typing",
    "unittest",
    "urllib.parse",
    "zipfile",
)
_DOMAIN_BYTES = 400_000  # per domain, before the train / validation split
_VALID_FRACTION = 0.1


def _code_text() -> str:
    import importlib
    import inspect

    stdlib = Path(sysconfig.get_paths()["stdlib"])
    parts = []
    for name, module in zip(_CODE_FILES, _CODE_MODULES):
        path = stdlib / name
        if path.exists():
            parts.append(path.read_text(encoding="utf-8"))
        else:  # an unusual layout: ask the module for its source
            try:
                parts.append(inspect.getsource(importlib.import_module(module)))
            except (OSError, TypeError):
                continue
    if not parts:
        raise RuntimeError(f"no Python source of the standard library found under {stdlib}")
    return "\n".join(parts)


def _prose_text() -> str:
    import importlib
    import inspect

    parts = []
    try:
        from pydoc_data.topics import topics

        parts += [topics[k] for k in sorted(topics)]
    except ImportError:  # some distributions split pydoc_data off: docstrings alone then
        pass
    for name in _DOC_MODULES:
        module = importlib.import_module(name)
        parts.append(inspect.getdoc(module) or "")
        for _, member in sorted(vars(module).items()):
            if (inspect.isfunction(member) or inspect.isclass(member)) and getattr(member, "__module__", None) == name:
                parts.append(inspect.getdoc(member) or "")
    text = "\n\n".join(p for p in parts if p)
    if len(text) < 50_000:
        raise RuntimeError("too little documentation text in this Python (was it run with -OO?)")
    return text


def _numbers_text() -> str:
    rng = np.random.default_rng(20250101)
    n = 12_000
    day = np.arange(1, n + 1)
    station, temperature = rng.integers(1, 40, n), rng.normal(12, 8, n)
    pressure, count = rng.normal(1013, 9, n), rng.poisson(30, n)
    code = np.array(list("ABCDEF0123456789"))[rng.integers(0, 16, (n, 4))]
    lines = ["date,station,temperature,pressure,count,code"]
    lines += [
        f"2024-{1 + d // 28 % 12:02d}-{1 + d % 28:02d},S{s:03d},{t:.2f},{p:.1f},{c},{''.join(k)}"
        for d, s, t, p, c, k in zip(day, station, temperature, pressure, count, code)
    ]
    return "\n".join(lines)


@functools.lru_cache(maxsize=1)
def corpus() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each domain's (train, validation) bytes as uint8 arrays: the text, repeated to
    ``_DOMAIN_BYTES`` if shorter, the last tenth held out. Deterministic."""
    out = {}
    for name, make in (("code", _code_text), ("prose", _prose_text), ("numbers", _numbers_text)):
        data = np.frombuffer(make().encode("utf-8"), dtype=np.uint8)
        data = np.resize(data, _DOMAIN_BYTES) if len(data) < _DOMAIN_BYTES else data[:_DOMAIN_BYTES]
        cut = int(len(data) * (1 - _VALID_FRACTION))
        out[name] = (data[:cut].copy(), data[cut:].copy())
    return out


def count_params(d_model: int, n_layer: int = N_LAYER) -> int:
    """Trainable parameters of the model (:class:`TinyGPT`) of this width and depth."""
    per_layer = 12 * d_model**2 + 13 * d_model  # attention (4 d^2 + 4 d), MLP (8 d^2 + 5 d), two LayerNorms (4 d)
    return VOCAB * d_model + CONTEXT * d_model + n_layer * per_layer + 2 * d_model  # tied head, final LayerNorm


def model_config(params: float, n_layer: int = N_LAYER) -> dict:
    """The width (a multiple of 8, heads of width 8 or 16) whose parameter count is nearest ``params``."""
    widths = np.arange(8, 1025, 8)
    counts = np.array([count_params(int(d), n_layer) for d in widths])
    d = int(widths[np.argmin(np.abs(np.log(counts) - math.log(max(params, 1))))])
    return {"d_model": d, "n_layer": n_layer, "n_head": max(1, d // 16)}


def sizes(widths=(16, 24, 32, 48, 64)) -> list[int]:
    """Parameter counts of some widths, to put in LOOP.yaml's ``pilots.sizes``."""
    return [count_params(d) for d in widths]


def _model(config: dict):
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self, d, heads):
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
            self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
            self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

        def forward(self, x, mask):
            h = self.ln1(x)
            x = x + self.attn(h, h, h, attn_mask=mask, need_weights=False)[0]
            return x + self.mlp(self.ln2(x))

    class TinyGPT(nn.Module):
        def __init__(self, d_model, n_layer, n_head):
            super().__init__()
            self.tok = nn.Embedding(VOCAB, d_model)
            self.pos = nn.Parameter(torch.zeros(CONTEXT, d_model))
            self.blocks = nn.ModuleList(Block(d_model, n_head) for _ in range(n_layer))
            self.ln = nn.LayerNorm(d_model)
            self.register_buffer("mask", torch.triu(torch.full((CONTEXT, CONTEXT), float("-inf")), 1), persistent=False)
            nn.init.normal_(self.pos, std=0.02)

        def forward(self, idx):
            x = self.tok(idx) + self.pos[: idx.shape[1]]
            mask = self.mask[: idx.shape[1], : idx.shape[1]]
            for block in self.blocks:
                x = block(x, mask)
            return self.ln(x) @ self.tok.weight.T

    return TinyGPT(**config)


def _batch(data: np.ndarray, rows: int, rng: np.random.Generator) -> np.ndarray:
    start = rng.integers(0, len(data) - CONTEXT - 1, size=rows)
    return np.stack([data[s : s + CONTEXT + 1] for s in start])


def _lr(step: int, steps: int, peak: float, schedule: str) -> float:
    warmup = min(50, max(1, steps // 10))
    if step < warmup:
        return peak * (step + 1) / warmup
    if schedule == "constant":
        return peak
    progress = (step - warmup) / max(1, steps - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def default_checkpoints(steps: int, n: int = 4) -> list[int]:
    """``n`` checkpoints spread geometrically from a quarter of the run to its end."""
    points = sorted({max(1, round(steps * f)) for f in np.geomspace(0.25, 1.0, n)})
    return points


def train_pilot(pilot, out_dir, *, checkpoints: list[int] | None = None, threads: int = 1, eval_batches: int = 8, peak_lr: float = 3e-3) -> pd.DataFrame:
    """Train the pilot (a :class:`bayes_mixlaw.runners_contract.Pilot` or a mapping with ``run``/``id``, ``mixture``,
    ``params``, ``steps`` and optionally ``schedule`` and ``seed``), write ``out_dir/rows.csv`` and return the rows."""
    import torch

    spec = pilot if isinstance(pilot, dict) else pilot.as_dict()
    run, mixture = str(spec.get("id") or spec.get("run")), {k: float(v) for k, v in spec["mixture"].items()}
    steps, schedule, seed = int(spec["steps"]), spec.get("schedule") or "constant", int(spec.get("seed") or 0)
    unknown = sorted(set(mixture) - set(DOMAINS))
    if unknown:
        raise ValueError(f"the reference trainer has domains {list(DOMAINS)}; the mixture names {unknown}")
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule {schedule!r}: the reference trainer knows {list(SCHEDULES)}")
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    data = corpus()
    config = model_config(float(spec["params"]))
    model = _model(config)
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert n_params == count_params(config["d_model"], config["n_layer"]), (n_params, config)
    optimiser = torch.optim.AdamW(model.parameters(), lr=peak_lr, weight_decay=0.01)
    names = list(DOMAINS)
    weights = np.array([mixture.get(d, 0.0) for d in names])
    weights = weights / weights.sum()
    valid_rng = np.random.default_rng(12345)  # the same validation batches for every pilot
    valid = {d: torch.as_tensor(_batch(data[d][1], BATCH * eval_batches, valid_rng), dtype=torch.long) for d in names}
    checkpoints = sorted(set(checkpoints or default_checkpoints(steps)))
    rows, started = [], time.perf_counter()
    for step in range(1, steps + 1):
        counts = rng.multinomial(BATCH, weights)
        batch = np.concatenate([_batch(data[d][0], c, rng) for d, c in zip(names, counts) if c])
        tokens = torch.as_tensor(batch, dtype=torch.long)
        for group in optimiser.param_groups:
            group["lr"] = _lr(step - 1, steps, peak_lr, schedule)
        logits = model(tokens[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB), tokens[:, 1:].reshape(-1))
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        if step in checkpoints:
            model.eval()
            with torch.no_grad():
                for d in names:
                    x = valid[d]
                    value = torch.nn.functional.cross_entropy(model(x[:, :-1]).reshape(-1, VOCAB), x[:, 1:].reshape(-1)).item()
                    rows.append({"run": run, "params": n_params, "step": step, "valid_domain": d, "loss": value})
            model.train()
            print(f"{run}: step {step}/{steps}, train loss {loss.item():.3f}, {time.perf_counter() - started:.1f} s", flush=True)
    frame = pd.DataFrame(rows)
    for d in names:
        frame["mix:" + d] = mixture.get(d, 0.0)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        write_atomically(out / "rows.csv", lambda partial: frame.to_csv(partial, index=False))  # whole or not at all
    return frame


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bayes_mixlaw.trainer", description=__doc__.split("\n\n")[0])
    parser.add_argument("--mix", required=True, help='the mixture as JSON, e.g. \'{"code": 0.5, "prose": 0.5}\'')
    parser.add_argument("--params", type=float, required=True, help="model size (parameters; the nearest width is used)")
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--out", required=True, help="folder to write rows.csv in")
    parser.add_argument("--run", default=None, help="the run's name in the table (default: the folder's name)")
    parser.add_argument("--schedule", default="constant", choices=SCHEDULES)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    mixture = json.loads(args.mix)
    spec = {
        "run": args.run or Path(args.out).resolve().name,
        "mixture": mixture,
        "params": args.params,
        "steps": args.steps,
        "schedule": args.schedule,
        "seed": args.seed,
    }
    train_pilot(spec, args.out, threads=args.threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
