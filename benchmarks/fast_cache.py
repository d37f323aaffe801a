"""``fit --fast`` from the command line: the first call (nothing compiled) against a second call in a
new process (issue 15 item 6).

Each call is a new ``bayes-mixlaw fit --fast`` process on Data Mixing Laws' 5Mix pilots (Pythia-70M
at 30k steps, 21 mixtures x 22 Pile domains, pile weights and groups). The first call gets an empty
PyTensor compile folder (``PYTENSOR_FLAGS=base_compiledir=...``), so it compiles everything; the
second and third calls use the folder the first one filled, as a user's second call does. Printed:
each call's wall time, its model set-up time (the fit's "model ready in" line) and the ratio to the
first call. For comparison, the previous fast path (nutpie's own C callback, which numba cannot cache
on disk) is timed the same way, twice, with the same compile folder.

    python benchmarks/fast_cache.py [--shared ../shared/data]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


# the previous fast path: the C callback for every method (the kernels flag ignored)
PREVIOUS = (
    "import bayes_mixlaw.inference as inference; compiled = inference._compiled; "
    "inference._compiled = lambda model, key, kernels=False: compiled(model, key); from bayes_mixlaw.cli import app; app()"
)


def one_call(folder: Path, compiledir: Path, name: str, shared: Path, previous: bool = False) -> dict:
    program = [sys.executable, "-c", PREVIOUS] if previous else [str(Path(sys.executable).parent / "bayes-mixlaw")]
    command = [
        *program,
        "fit",
        str(shared / "mixinglaws" / "5Mix"),
        "--params",
        "18915328",
        "--step",
        "30000",
        "--valid-weights",
        str(REPO / "bayes_mixlaw/data/pile_valid_weight.json"),
        "--groups",
        str(REPO / "bayes_mixlaw/data/pile_groups.json"),
        "--fast",
        "--seed",
        "1",
        "-o",
        str(folder / f"{name}.nc"),
    ]
    env = os.environ | {"PYTENSOR_FLAGS": f"base_compiledir={compiledir}", "COLUMNS": "200"}
    started = time.perf_counter()
    result = subprocess.run(command, check=False, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{name} failed:\n{result.stderr[-3000:]}")
    ready = re.search(r"model ready in ([\d.]+) s", result.stderr)  # (the C callback says no such line)
    return {"call": name, "wall_s": seconds, "model_ready_s": float(ready.group(1)) if ready else float("nan")}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder, compiledir = Path(tmp), Path(tmp) / "pytensor"
        rows = [one_call(folder, compiledir, name, args.shared) for name in ("first (cold)", "second (new process)", "third (new process)")]
        rows += [one_call(folder, compiledir, name, args.shared, previous=True) for name in ("C callback, new process", "C callback, again")]
    first = rows[0]["wall_s"]
    print(f"{'call':<22} {'wall s':>8} {'model ready s':>14} {'ratio to first':>15}")
    for row in rows:
        print(f"{row['call']:<22} {row['wall_s']:>8.1f} {row['model_ready_s']:>14.1f} {row['wall_s'] / first:>15.2f}")
    print(f"speed-up of a second call: {first / rows[1]['wall_s']:.1f}x (os.cpu_count() = {os.cpu_count()}, load {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
