"""The default nested fit of the whole RedPajama table: wall time and convergence, against other samplers in the same run.

Issue 13's target: the default fit of the whole shared RedPajama table (20 mixtures x 4 sizes x 11 steps x 22
domains) converges (max R-hat <= 1.01, min bulk ESS >= 400 over every posterior variable, no divergences) in at most
3 minutes on 2 cores. Each row is a new process (so each compiles the model, as a user's first fit does), the fit as
``bayes-mixlaw fit`` runs it: the calibration fit that learns the discrepancy's scale, the full fit, the draws of the
discrepancy. Rows (``--rows``, each with every seed of ``--seeds``: where the draws stop depends on the seed):

* default: the package's sampler (500 warm-up steps, then draws until converged, checked every 250 draws a chain, at
  most 6000; the calibration fit until its residual slopes have converged);
* warm-up 1000: the same with 1000 warm-up steps (the default until 2026-12-05);
* baseline: the sampler as it was before the draws were checked, 2 x (1500 warm-up + 3500 draws) for the full fit
  (the calibration fit: a fixed 1000 draws).

Also the 90% interval of a pilot mixture's total at 1B / 100k steps (its half-width, % of the median, mean over
the 20 pilot mixtures): the rows should agree.

    python benchmarks/whole_fit.py [--shared ../shared/data] [--seeds 0,1,2] [--rows default,warm-up 1000,baseline]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap

import pandas as pd

FIT = textwrap.dedent("""
    import json, sys, time, warnings
    warnings.simplefilter("ignore")
    from bayes_mixlaw import datasets
    from bayes_mixlaw.config import NestedLawConfig
    from bayes_mixlaw.nested import NestedLaw
    from bayes_mixlaw.runs import load_runs
    from bayes_mixlaw.targets import Targets
    shared, sampler, seed = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
    runs = load_runs(f"{shared}/mixinglaws/RedPajama")
    config = NestedLawConfig()
    config = config.model_copy(update={"sampler": config.sampler.model_copy(update=sampler)})
    law = NestedLaw(config, targets=Targets(datasets.pile_targets().weights))
    started = time.perf_counter()
    law.fit(runs, seed=seed, progress=False)
    seconds = time.perf_counter() - started
    mix = [c for c in runs.data.columns if c.startswith("mix:")]
    mixtures = runs.data.groupby("run")[mix].first().drop_duplicates().reset_index(drop=True)
    total = law.predict(mixtures, params=805736448, step=100000)
    total = total[total["target"] == "total"]
    d = law.diagnostics
    from bayes_mixlaw import discrepancy_scale
    calibration = next(iter(discrepancy_scale.read(law).values()), {})
    print(json.dumps({"seconds": seconds, "calibration_rhat": calibration.get("calibration_rhat"),
                      "calibration_ess": calibration.get("calibration_ess"), "draws": d.draws, "chains": d.chains,
                      "max_rhat": d.max_rhat, "min_ess_bulk": d.min_ess_bulk,
                      "divergences": d.divergences, "half_width_pct": float(((total.upper - total.lower) / 2 / total["median"]).mean() * 100),
                      "median_total": float(total["median"].median())}))
""")

ROWS = {
    "default": {},
    "warm-up 1000": {"tune": 1000},
    "baseline": {"draws": 3500, "tune": 1500, "check_every": None},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", default="../shared/data")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds, each row fitted with each")
    parser.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated rows of {list(ROWS)}")
    args = parser.parse_args()
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        for name in args.rows.split(","):
            command = [sys.executable, "-c", FIT, args.shared, json.dumps(ROWS[name]), str(seed)]
            result = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1])
            rows.append({"fit": name, "seed": seed, **result})
            print(f"{name}, seed {seed}: {result}", flush=True)
    table = pd.DataFrame(rows)
    first = table.groupby("seed")["seconds"].transform("first")
    table[f"time vs {table['fit'].iloc[0]} (same seed)"] = table["seconds"] / first
    table["converged (R-hat <= 1.01, ESS >= 400, 0 div.)"] = (table["max_rhat"] <= 1.01) & (table["min_ess_bulk"] >= 400) & (table["divergences"] == 0)
    print(table.round(4).to_markdown(index=False))
    if table["seed"].nunique() > 1:
        print(table.groupby("fit", sort=False)[["seconds", "draws"]].agg(["mean", "min", "max"]).round(1).to_markdown())


if __name__ == "__main__":
    main()
