"""The default nested fit of the whole RedPajama table: wall time and convergence, against fixed draws in the same run.

Issue 13's target: the default fit of the whole shared RedPajama table (20 mixtures x 4 sizes x 11 steps x 22
domains) converges (max R-hat <= 1.01, min bulk ESS >= 400 over every posterior variable, no divergences) in at most
3 minutes on 2 cores. Each row is a new process (so each compiles the model, as a user's first fit does), the fit as
``bayes-mixlaw fit`` runs it: the calibration fit that learns the discrepancy's scale, the full fit, the draws of the
discrepancy. Rows:

* default: 1000 warm-up steps, then draws until converged (checked every 250 draws a chain, at most 6000);
* baseline: the sampler as it was before the draws were checked, 2 x (1500 warm-up + 3500 draws) for the full fit
  (the calibration fit: a fixed 1000 draws; by default it draws until its own coarser rule, R-hat <= 1.02 and bulk
  ESS >= 100, at most 3000 a chain).

Also the 90% interval of a pilot mixture's total at 1B / 100k steps (its half-width, % of the median, mean over
the 20 pilot mixtures): the two rows should agree.

    python benchmarks/whole_fit.py [--shared ../shared/data]
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
    shared, sampler = sys.argv[1], json.loads(sys.argv[2])
    runs = load_runs(f"{shared}/mixinglaws/RedPajama")
    config = NestedLawConfig(**({"sampler": sampler} if sampler else {}))
    law = NestedLaw(config, targets=Targets(datasets.pile_targets().weights))
    started = time.perf_counter()
    law.fit(runs, seed=0, progress=False)
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
    "default: draws until converged (1000 warm-up, checked every 250)": None,
    "baseline: 2 x (1500 warm-up + 3500 draws)": {"draws": 3500, "tune": 1500, "chains": 2},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", default="../shared/data")
    args = parser.parse_args()
    rows = []
    for name, sampler in ROWS.items():
        out = subprocess.run([sys.executable, "-c", FIT, args.shared, json.dumps(sampler)], capture_output=True, text=True, check=True)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append({"fit": name, **result})
        print(f"{name}: {result}", flush=True)
    table = pd.DataFrame(rows)
    table["time vs baseline"] = table["seconds"] / table["seconds"].iloc[-1]
    table["converged (R-hat <= 1.01, ESS >= 400, 0 div.)"] = (table["max_rhat"] <= 1.01) & (table["min_ess_bulk"] >= 400) & (table["divergences"] == 0)
    print(table.round(4).to_markdown(index=False))


if __name__ == "__main__":
    main()
