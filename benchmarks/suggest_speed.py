"""Wall time of ``suggest`` with q = 4 on a 7-domain fit, against the time of the fit it starts from.

Fit: the mixing law on RedPajama's 20 mixtures of 7 training domains (70M, 30k steps, 22 Pile
domains), fast NUTS. Each acquisition proposes 4 distinct mixtures.

    python benchmarks/suggest_speed.py
"""

from __future__ import annotations

import sys
import time
import warnings

import pandas as pd

from bayes_mixlaw import MixingLaw, datasets, load_runs
from bayes_mixlaw.bo import suggest

warnings.simplefilter("ignore")


def main(shared: str = "../shared/data"):
    runs = load_runs(f"{shared}/mixinglaws/RedPajama").select(params=18_915_328, step=30_000)
    law = MixingLaw(targets=datasets.pile_targets())
    start = time.perf_counter()
    law.fit(runs, seed=0, method="fast", progress=False)
    law.fit(runs, seed=1, method="fast", progress=False)  # compiled model reused, as in a planning loop
    fit_seconds = (time.perf_counter() - start) / 2
    rows = []
    for acquisition in ("thompson", "qlognei", "info"):
        start = time.perf_counter()
        table = suggest(law, 4, acquisition=acquisition, seed=0)
        seconds = time.perf_counter() - start
        rows.append(
            {
                "acquisition": acquisition,
                "q": len(table),
                "seconds": seconds,
                "vs one fast fit": seconds / fit_seconds,
                "best suggestion's predicted total": f"{table['mean'].iloc[0]:.4f} [{table['lower'].iloc[0]:.4f}, {table['upper'].iloc[0]:.4f}]",
            }
        )
    print(f"fast fit (mean of 2, compiled once): {fit_seconds:.1f} s")
    print(pd.DataFrame(rows).to_markdown(index=False, floatfmt=".2f"))


if __name__ == "__main__":
    main(*sys.argv[1:])
