"""Held-out accuracy, interval coverage and wall time of the mixing-law fits.

Data: Data Mixing Laws' 5Mix, Pythia-70M at 30k steps (21 mixtures x 22 Pile validation domains).
Split: 5 of the 21 mixtures held out (fixed seed), the law fitted on 16. Compared in the same run:
NUTS (first fit, compiling; second fit, compiled model reused), the fast path (a short NUTS run), ADVI, pooling within
the paper's five groups instead of across all domains, the implicit law, and the paper's point fit (Huber loss, 64 random
starts, L-BFGS). Also: the predicted interval at a mixture far outside the pilots (100% internet) against the intervals
at held-out mixtures.

    python benchmarks/mixing_law.py            # prints a Markdown table
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd

from bayes_mixlaw import MixingLaw, MixingLawConfig, datasets
from bayes_mixlaw.baseline import fit_point_mixing_laws
from bayes_mixlaw.laws import mixing_law
from bayes_mixlaw.runs import MIX_PREFIX, RunsTable

warnings.simplefilter("ignore")


def main(seed: int = 0):
    runs = datasets.mixinglaws_5mix_70m().select(step=30000)
    targets = datasets.pile_targets()
    names = runs.runs
    held = list(np.random.default_rng(seed).choice(names, size=5, replace=False))
    train = RunsTable(runs.data[~runs.data["run"].isin(held)].reset_index(drop=True), runs.source)
    observed = runs.pivot().loc[held]
    domains = list(observed.columns)
    mixtures = runs.mixtures().loc[held]
    mix_frame = mixtures.reset_index(drop=True).assign(name=held)
    corner = pd.DataFrame([{MIX_PREFIX + d: float(d == "internet") for d in runs.train_domains}])

    rows = []

    def score(label, seconds, pred):
        p = pred[pred["target"].isin(domains)].pivot(index="name", columns="target", values="mean").loc[held, domains]
        lo = pred[pred["target"].isin(domains)].pivot(index="name", columns="target", values="lower").loc[held, domains]
        hi = pred[pred["target"].isin(domains)].pivot(index="name", columns="target", values="upper").loc[held, domains]
        err = (p - observed).abs().to_numpy()
        cover = ((lo <= observed) & (observed <= hi)).to_numpy().mean() if lo.notna().all().all() else np.nan
        width = (hi - lo).to_numpy().mean() if lo.notna().all().all() else np.nan
        rows.append(
            {
                "method": label,
                "seconds": seconds,
                "MAE": err.mean(),
                "MAPE %": 100 * (err / observed.to_numpy()).mean(),
                "90% coverage": cover,
                "mean 90% width": width,
            }
        )

    variants = (
        ("NUTS (first fit, compiles)", "nuts", MixingLawConfig()),
        ("NUTS (compiled model reused)", "nuts", MixingLawConfig()),
        ("fast: short NUTS, 2 x (300 + 250) (compiled model reused)", "fast", MixingLawConfig()),
        ("ADVI (method='advi')", "advi", MixingLawConfig()),
        ("NUTS, pooled within the 5 groups (first fit)", "nuts", MixingLawConfig(pool_by="groups")),
        ("NUTS, implicit law K=4 (first fit)", "nuts", MixingLawConfig(law="implicit", n_implicit=4)),
    )
    for label, method, config in variants:
        law = MixingLaw(config, targets)
        t = time.perf_counter()
        law.fit(train, seed=seed, method=method, progress=False)
        seconds = time.perf_counter() - t
        pred = law.predict(mix_frame, ci=0.9)
        score(label, seconds, pred)
        c = law.predict(corner, ci=0.9, kind="mean").query("target == 'total'").iloc[0]
        rows[-1]["100% internet total: 90% interval"] = f"[{c['lower']:.3f}, {c['upper']:.3f}]"
        rows[-1]["sampler problems"] = "; ".join(law.diagnostics.problems) or "none"

    t = time.perf_counter()
    losses = train.pivot()[domains]
    log_c, log_k, tt = fit_point_mixing_laws(train.mixtures().loc[losses.index].to_numpy(), losses.to_numpy(), seed=seed)
    seconds = time.perf_counter() - t
    point = mixing_law(mixtures.to_numpy(), log_c, log_k, tt)
    pred = pd.DataFrame(
        [{"name": n, "target": d, "mean": point[i, j], "lower": np.nan, "upper": np.nan} for i, n in enumerate(held) for j, d in enumerate(domains)]
    )
    score("point fit (Huber, 64 starts, L-BFGS)", seconds, pred)
    cpt = mixing_law(corner.to_numpy(), log_c, log_k, tt)[0]
    w = targets.weight_vector(domains)
    rows[-1]["100% internet total: 90% interval"] = f"point {float(cpt @ w / w.sum()):.3f}"
    rows[-1]["sampler problems"] = "-"

    table = pd.DataFrame(rows)
    base = table.iloc[-1]
    table["MAE vs point fit"] = table["MAE"] / base["MAE"]
    table["time vs point fit"] = table["seconds"] / base["seconds"]
    print(f"5Mix 70M/30k, held-out mixtures: {', '.join(held)} ({len(held) * len(domains)} losses)\n")
    print(table.to_markdown(index=False, floatfmt=".4g"))


if __name__ == "__main__":
    main()
