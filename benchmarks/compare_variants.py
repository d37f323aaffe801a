"""Model comparison on real pilots: law variants ranked by PSIS-LOO and by held-out extrapolation.

Data: Data Mixing Laws' 5Mix, Pythia-70M at 30k steps (21 mixtures x 22 Pile validation domains).
Variants (full NUTS): the explicit law with a Student-t likelihood (the default) and with a Normal
one, the explicit law pooled within the paper's five groups, and the implicit law with K = 2 and
K = 4 latent domains. Each is ranked by PSIS-LOO on all 21 pilots, then refitted without the 5
mixtures farthest from the pilots' mean and scored on them (``compare.holdout_split``): LOO says how
well a variant interpolates, the held-out check how it extrapolates. Baseline in the same run: the
paper's point fit (Huber loss, 64 starts, L-BFGS) on the same split, and the time of the comparison
against one fit.

    python benchmarks/compare_variants.py            # prints a Markdown table
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd

from bayes_mixlaw import MixingLaw, MixingLawConfig, datasets
from bayes_mixlaw.baseline import fit_point_mixing_laws
from bayes_mixlaw.compare import compare_variants, holdout_split
from bayes_mixlaw.config import SamplerConfig
from bayes_mixlaw.laws import mixing_law

warnings.simplefilter("ignore")

VARIANTS = {
    "explicit, Student-t (default)": MixingLawConfig(),
    "explicit, Normal": MixingLawConfig(likelihood="normal"),
    "explicit, pooled within 5 groups": MixingLawConfig(pool_by="groups"),
    "implicit K=2": MixingLawConfig(law="implicit", n_implicit=2),
    "implicit K=4": MixingLawConfig(law="implicit", n_implicit=4),
    # Shukor et al.'s additive power law (bayes_mixlaw.mixing_forms.power_law); ~830 leapfrog steps a draw,
    # so 4 x (1000 + 1000) draws (R-hat 1.006, ESS 436 in its first run) rather than the default's 4 x (1500 + 2000)
    "power law": MixingLawConfig(law="power_law", sampler=SamplerConfig(draws=1000, tune=1000)),
}


def main(seed: int = 0, variants: list[str] | None = None):
    runs = datasets.mixinglaws_5mix_70m().select(step=30000)
    targets = datasets.pile_targets()
    laws, fit_seconds = {}, {}
    for name, config in VARIANTS.items():
        if variants and name not in variants:
            continue
        start = time.perf_counter()
        laws[name] = MixingLaw(config, targets).fit(runs, seed=seed, progress=False)
        fit_seconds[name] = time.perf_counter() - start
    start = time.perf_counter()
    table = compare_variants(laws, holdout=True, runs=runs, seed=seed)
    compare_seconds = time.perf_counter() - start
    table["fit s"] = table["variant"].map(fit_seconds)
    table["R-hat"] = table["variant"].map({n: law.diagnostics.max_rhat for n, law in laws.items()})
    table["problems"] = table["variant"].map({n: "; ".join(law.diagnostics.problems) or "none" for n, law in laws.items()})

    train, held, what = holdout_split(runs)
    losses = train.pivot()[runs.valid_domains]
    start = time.perf_counter()
    log_c, log_k, t = fit_point_mixing_laws(train.mixtures().loc[losses.index].to_numpy(), losses.to_numpy(), seed=seed)
    point_seconds = time.perf_counter() - start
    observed = held.pivot()[runs.valid_domains]
    point = mixing_law(held.mixtures().loc[observed.index].to_numpy(), log_c, log_k, t)
    point_mae = float(np.abs(point - observed.to_numpy()).mean())
    baseline = pd.DataFrame([{"variant": "paper's point fit (Huber, 64 starts)", "MAE": point_mae, "fit s": point_seconds}])
    table["MAE vs point fit"] = table["MAE"] / point_mae
    print(f"5Mix 70M/30k: {len(runs.runs)} pilots x {len(runs.valid_domains)} domains; held out: {what} ({table['n'].iloc[0]} losses)\n")
    shown = pd.concat([table, baseline], ignore_index=True).drop(columns=["held_out"])
    print(shown.to_markdown(index=False, floatfmt=".4g"))
    by_loo = list(table.sort_values("rank")["variant"])
    by_holdout = list(table.sort_values("MAE")["variant"])
    print(
        f"\nbest by PSIS-LOO: {by_loo[0]}; best by held-out MAE: {by_holdout[0]}; "
        f"comparison (LOO of {len(laws)} fits + {len(laws)} refits): {compare_seconds:.0f} s, "
        f"{compare_seconds / np.mean(list(fit_seconds.values())):.1f}x one fit"
    )


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="*", choices=list(VARIANTS), help="only these variants (default: all)")
    main(variants=parser.parse_args().variants)
