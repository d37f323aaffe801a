"""Held-out accuracy, interval coverage and wall time of the mixing-law fits.

Data: Data Mixing Laws' 5Mix, Pythia-70M at 30k steps (21 mixtures x 22 Pile validation domains).
Split: 5 of the 21 mixtures held out (fixed seed), the law fitted on 16. Compared in the same run:
NUTS (first fit, compiling; second fit, compiled model reused), the fast path (a short NUTS run), ADVI, pooling within
the paper's five groups instead of across all domains, the implicit law, and the paper's point fit (Huber loss, 64 random
starts, L-BFGS). Also: the predicted interval at a mixture far outside the pilots (100% internet) against the intervals
at held-out mixtures.

Issue 16 added the law with its learned residual (``residual: rff``, bayes_mixlaw.mixing_residual) to every part, and
three parts with LightGBM (a benchmark-only dependency: ``pip install lightgbm``) in the same run:

- ``regmix``: RegMix's 512 1M-parameter runs, a seeded split (384 fitted, 128 held out): Spearman on Pile-CC and MAE on
  every validation domain; the Bayesian fits ``--laws`` names, the paper's point fit and LightGBM.
- ``near-far``: 5Mix 70M/30k, the 3 mixtures nearest to and the 3 farthest from the others' mean held out, fitted on
  the other 15: MAE, 90% coverage and width at each set.
- ``near-far-each``: the same question with each of the 21 mixtures held out alone (21 fits), the nearest and the
  farthest third read together: the MAE ratio to the point fit with a 90% interval resampled by mixture.
- ``transfer``: fit 5Mix 70M at 30k (all 21 mixtures), rank the 410M runs at 30k (Spearman of the total loss and of
  each domain's).

``--laws`` names the Bayesian fits of the last three parts: ``explicit`` and ``explicit+rff`` (the default),
``power_law`` (Shukor et al.'s form), ``power_law+rff`` and ``power_law_base`` (the power law with a term B_i in its
denominator that no share moves).

    python benchmarks/mixing_law.py                        # every part: Markdown tables
    python benchmarks/mixing_law.py --parts regmix,transfer
    python benchmarks/mixing_law.py --parts regmix --laws explicit,power_law --chains 2 --tune 1000 --draws 1500
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from bayes_mixlaw import MixingLaw, MixingLawConfig, datasets
from bayes_mixlaw.baseline import fit_point_mixing_laws
from bayes_mixlaw.config import SamplerConfig
from bayes_mixlaw.laws import mixing_law
from bayes_mixlaw.runs import MIX_PREFIX, MIXINGLAWS_TRAIN_DOMAINS, RunsTable, load_runs

warnings.simplefilter("ignore")


SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
RESIDUAL = {"residual": "rff"}


def heldout_5mix(seed: int = 0):
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
        ("NUTS, fixed 4 x (1500 + 2000) as before 2026-12-04 (compiled model reused)", "nuts", MixingLawConfig(sampler=SamplerConfig(draws=2000, tune=1500))),
        ("fast: short NUTS, 2 x (300 + 250) (compiled model reused)", "fast", MixingLawConfig()),
        ("ADVI (method='advi')", "advi", MixingLawConfig()),
        ("NUTS, pooled within the 5 groups (first fit)", "nuts", MixingLawConfig(pool_by="groups")),
        ("NUTS, implicit law K=4 (first fit)", "nuts", MixingLawConfig(law="implicit", n_implicit=4)),
        ("NUTS, explicit law + rff residual (first fit)", "nuts", MixingLawConfig(**RESIDUAL)),
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


def _problems(law) -> str:
    """The law's own sampler problems (judged on its identified quantities), then R-hat and bulk ESS over every
    posterior variable (the package's ``diagnose`` on all of them) and the leapfrog steps a draw."""
    from bayes_mixlaw.inference import diagnose

    post = law.idata["posterior"].to_dataset()
    every = diagnose(post, None, "nuts", 0.0, list(post.data_vars))
    steps = law.idata["sample_stats"]["n_steps"].mean().item()
    own = "; ".join(law.diagnostics.problems) or "none"
    return f"{own} (every variable: R-hat {every.max_rhat:.3f}, bulk ESS {every.min_ess_bulk:.0f}; {steps:.0f} steps/draw)"


SAMPLER: dict = {}  # --chains / --tune / --draws: the NUTS settings of the parts below (default: the config's)


def _fit(config, runs, seed):
    law = MixingLaw(config, datasets.pile_targets() if "Pile-CC" in runs.valid_domains else None)
    t = time.perf_counter()
    law.fit(runs, seed=seed, progress=False, **SAMPLER)
    return law, time.perf_counter() - t


def _wide(pred: pd.DataFrame, column: str, names, domains) -> pd.DataFrame:
    return pred.pivot(index="name", columns="target", values=column).loc[names, domains]


def _lightgbm(x_fit: np.ndarray, y_fit: pd.DataFrame, x_new: np.ndarray) -> pd.DataFrame:
    """One LightGBM regressor per validation domain, RegMix's settings (1000 trees, learning rate 0.01)."""
    import lightgbm as lgb

    models = {d: lgb.LGBMRegressor(objective="regression", n_estimators=1000, learning_rate=0.01, seed=42, verbose=-1, n_jobs=1) for d in y_fit.columns}
    return pd.DataFrame({d: m.fit(x_fit, y_fit[d].to_numpy()).predict(x_new) for d, m in models.items()})


# The Bayesian fits of the regmix, near-far and transfer parts, by name (--laws chooses; the baselines always run)
FITS = {
    "explicit": ("explicit law (NUTS)", MixingLawConfig()),
    "explicit+rff": ("explicit law + rff residual (NUTS)", MixingLawConfig(**RESIDUAL)),
    "power_law": ("power law, Shukor et al. (NUTS)", MixingLawConfig(law="power_law")),
    "power_law+rff": ("power law + rff residual (NUTS)", MixingLawConfig(law="power_law", **RESIDUAL)),
    "power_law_base": ("power law + a term no share moves (NUTS)", MixingLawConfig(law="power_law_base")),
}
LAWS = ["explicit", "explicit+rff"]


def regmix(seed: int = 0, n_held: int = 128):
    """(a) RegMix, 384 runs fitted, 128 held out (seed): Spearman on Pile-CC, MAE on every domain, 90% coverage."""
    from scipy.stats import spearmanr

    runs = load_runs(SHARED / "regmix")
    held = sorted(np.random.default_rng(seed).choice(runs.runs, size=n_held, replace=False))
    train = RunsTable(runs.data[~runs.data["run"].isin(held)].reset_index(drop=True), runs.source)
    observed = runs.pivot().loc[held]
    domains = list(observed.columns)
    mixtures = runs.mixtures().loc[held]
    frame = mixtures.reset_index(drop=True).assign(name=held)
    rows = []

    def score(label, seconds, mean, lower=None, upper=None, problems="-"):
        err = mean.to_numpy() - observed.to_numpy()
        row = {"method": label, "seconds": seconds, "Spearman Pile-CC": spearmanr(mean["pile_cc"], observed["pile_cc"]).statistic}
        row["MAE (13 domains)"] = np.abs(err).mean()
        row["MAE Pile-CC"] = np.abs(err[:, domains.index("pile_cc")]).mean()
        if lower is not None:
            row["90% coverage"] = ((lower.to_numpy() <= observed.to_numpy()) & (observed.to_numpy() <= upper.to_numpy())).mean()
            row["mean 90% width"] = (upper - lower).to_numpy().mean()
        row["sampler problems"] = problems
        rows.append(row)

    for name in LAWS:
        label, config = FITS[name]
        law, seconds = _fit(config, train, seed)
        pred = law.predict(frame, ci=0.9)
        score(label, seconds, _wide(pred, "mean", held, domains), _wide(pred, "lower", held, domains), _wide(pred, "upper", held, domains), _problems(law))
        if law.residual is not None:
            tau = law.idata["posterior"]["residual_scale"].mean(("chain", "draw")).values
            rows[-1]["sampler problems"] += f" (residual scale: {tau.min():.3f}-{tau.max():.3f})"
    losses = train.pivot()[domains]
    x_fit = train.mixtures().loc[losses.index].to_numpy()
    t = time.perf_counter()
    log_c, log_k, tt = fit_point_mixing_laws(x_fit, losses.to_numpy(), seed=seed)
    seconds = time.perf_counter() - t
    score("point fit (Huber, 64 starts, L-BFGS)", seconds, pd.DataFrame(mixing_law(mixtures.to_numpy(), log_c, log_k, tt), columns=domains))
    t = time.perf_counter()
    boosted = _lightgbm(x_fit, losses, mixtures.to_numpy())
    score("LightGBM (1000 trees, lr 0.01)", time.perf_counter() - t, boosted)
    print(f"RegMix: {len(train.runs)} runs fitted, {n_held} held out (seed {seed}), {len(domains)} validation domains\n")
    print(pd.DataFrame(rows).to_markdown(index=False, floatfmt=".4g"))


def near_far(seed: int = 0, n_each: int = 3):
    """(b) 5Mix 70M/30k: the ``n_each`` mixtures nearest to and farthest from the others' mean held out together."""
    runs = datasets.mixinglaws_5mix_70m().select(step=30000)
    mix = runs.mixtures()
    distance = {}
    for name in mix.index:  # total-variation distance from the mean of the other mixtures
        distance[name] = 0.5 * np.abs(mix.loc[name] - mix.drop(index=name).mean()).sum()
    order = sorted(distance, key=distance.get)
    sets = {"nearest": order[:n_each], "farthest": order[-n_each:]}
    held = [*sets["nearest"], *sets["farthest"]]
    train = RunsTable(runs.data[~runs.data["run"].isin(held)].reset_index(drop=True), runs.source)
    observed = runs.pivot().loc[held]
    domains = list(observed.columns)
    frame = mix.loc[held].reset_index(drop=True).assign(name=held)
    rows = []
    losses = train.pivot()[domains]
    t = time.perf_counter()
    log_c, log_k, tt = fit_point_mixing_laws(train.mixtures().loc[losses.index].to_numpy(), losses.to_numpy(), seed=seed)
    point_seconds = time.perf_counter() - t
    point = pd.DataFrame(mixing_law(mix.loc[held].to_numpy(), log_c, log_k, tt), index=held, columns=domains)
    point_mae = {k: (point.loc[v] - observed.loc[v]).abs().to_numpy().mean() for k, v in sets.items()}
    for name in LAWS:
        label, config = FITS[name]
        law, seconds = _fit(config, train, seed)
        pred = law.predict(frame, ci=0.9)
        row = {"method": label, "seconds": seconds}
        for which, names in sets.items():
            obs = observed.loc[names]
            mean, lo, hi = (_wide(pred, c, names, domains) for c in ("mean", "lower", "upper"))
            mae = (mean - obs).abs().to_numpy().mean()
            row[f"{which}: MAE"] = mae
            row[f"{which}: MAE vs point fit"] = mae / point_mae[which]
            row[f"{which}: 90% coverage"] = ((lo <= obs) & (obs <= hi)).to_numpy().mean()
            row[f"{which}: mean 90% width"] = (hi - lo).to_numpy().mean()
        row["sampler problems"] = _problems(law)
        rows.append(row)
    rows.append({"method": "point fit (Huber, 64 starts, L-BFGS)", "seconds": point_seconds, **{f"{k}: MAE": v for k, v in point_mae.items()}})
    print(f"5Mix 70M/30k: held out the {n_each} nearest ({', '.join(sets['nearest'])}) and the {n_each} farthest ({', '.join(sets['farthest'])})")
    print(
        f"from the mean of the others (total variation {distance[order[0]]:.2f}-{distance[order[n_each - 1]]:.2f} and "
        f"{distance[order[-n_each]]:.2f}-{distance[order[-1]]:.2f}); fitted on {len(train.runs)}\n"
    )
    print(pd.DataFrame(rows).to_markdown(index=False, floatfmt=".4g"))


def near_far_each(seed: int = 0, share: float = 1 / 3):
    """(b), each mixture in turn: 5Mix 70M/30k, every one of the 21 mixtures held out alone and predicted from the other
    20 (each fit its own, the compiled model reused), then the nearest and the farthest ``share`` of them from the
    others' mean (total variation) read together: MAE against the point fit's on the same losses with a 90% interval
    resampled by mixture (``check_spread.bootstrap_ratio``), 90% coverage and width. Three held-out mixtures a set
    (``near-far``) leave the ratio to the three drawn; seven a set, each predicted from all the others, say more."""
    from check_spread import bootstrap_ratio

    runs = datasets.mixinglaws_5mix_70m().select(step=30000)
    mix, observed = runs.mixtures(), runs.pivot()
    domains = list(observed.columns)
    distance = pd.Series({name: 0.5 * np.abs(mix.loc[name] - mix.drop(index=name).mean()).sum() for name in mix.index}).sort_values()
    n = max(1, round(share * len(distance)))
    sets = {"nearest": list(distance.index[:n]), "farthest": list(distance.index[-n:]), "all": list(distance.index)}
    point, bayes, seconds = {}, {name: {} for name in LAWS}, {"point fit (Huber, 64 starts, L-BFGS)": 0.0} | {FITS[name][0]: 0.0 for name in LAWS}
    for held in distance.index:
        train = RunsTable(runs.data[runs.data["run"] != held].reset_index(drop=True), runs.source)
        losses = train.pivot()[domains]
        t = time.perf_counter()
        log_c, log_k, tt = fit_point_mixing_laws(train.mixtures().loc[losses.index].to_numpy(), losses.to_numpy(), seed=seed)
        seconds["point fit (Huber, 64 starts, L-BFGS)"] += time.perf_counter() - t
        point[held] = mixing_law(mix.loc[[held]].to_numpy(), log_c, log_k, tt)[0]
        for name in LAWS:
            law, fit_seconds = _fit(FITS[name][1], train, seed)
            seconds[FITS[name][0]] += fit_seconds
            pred = law.predict(mix.loc[[held]].reset_index(drop=True).assign(name=held), ci=0.9)
            bayes[name][held] = tuple(_wide(pred, c, [held], domains).to_numpy()[0] for c in ("mean", "lower", "upper"))
            bayes[name][held] += (_problems(law),)
        print(f"{held} (distance {distance[held]:.2f}) done", flush=True)
    rows = []
    for name in LAWS:
        row = {"method": FITS[name][0], "seconds (21 fits)": seconds[FITS[name][0]]}
        for which, names in sets.items():
            obs = observed.loc[names, domains].to_numpy()
            mean, lo, hi = (np.array([bayes[name][k][i] for k in names]) for i in range(3))
            ratio, low, high = bootstrap_ratio(np.abs(mean - obs), np.abs(np.array([point[k] for k in names]) - obs), np.array(names), seed=seed)
            row[f"{which}: MAE"] = np.abs(mean - obs).mean()
            row[f"{which}: MAE vs point fit [90%]"] = f"{ratio:.3f} [{low:.2f}, {high:.2f}]"
            row[f"{which}: 90% coverage"] = ((lo <= obs) & (obs <= hi)).mean()
            row[f"{which}: mean 90% width"] = (hi - lo).mean()
        unconverged = [k for k in distance.index if bayes[name][k][3].split(" (every")[0] != "none"]
        row["fits with sampler problems"] = f"{len(unconverged)} of {len(distance)}" + (f" ({', '.join(unconverged)})" if unconverged else "")
        rows.append(row)
    point_row = {"method": "point fit (Huber, 64 starts, L-BFGS)", "seconds (21 fits)": seconds["point fit (Huber, 64 starts, L-BFGS)"]}
    for which, names in sets.items():
        point_row[f"{which}: MAE"] = np.abs(np.array([point[k] for k in names]) - observed.loc[names, domains].to_numpy()).mean()
    rows.append(point_row)
    print(
        f"\n5Mix 70M/30k, each of {len(distance)} mixtures held out alone, fitted on the other {len(distance) - 1}; nearest {n} "
        f"(total variation from the others' mean {distance.iloc[0]:.2f}-{distance.iloc[n - 1]:.2f}), farthest {n} "
        f"({distance.iloc[-n]:.2f}-{distance.iloc[-1]:.2f})\n"
    )
    print(pd.DataFrame(rows).to_markdown(index=False, floatfmt=".4g"))


def transfer(seed: int = 0):
    """(c) Fit 5Mix 70M at 30k on all 21 mixtures, rank the 410M runs at 30k (their mixtures are the same 21)."""
    from scipy.stats import spearmanr

    runs = datasets.mixinglaws_5mix_70m().select(step=30000)
    large = load_runs(SHARED / "mixinglaws" / "5Mix" / "410M.txt", "mixinglaws", train_domains=MIXINGLAWS_TRAIN_DOMAINS["5Mix"]).select(step=30000)
    targets = datasets.pile_targets()
    observed = large.pivot()
    domains = list(observed.columns)
    weights = targets.weight_vector(domains)
    total = observed.to_numpy() @ weights / weights.sum()
    mixtures = large.mixtures().loc[observed.index]
    frame = mixtures.reset_index(drop=True).assign(name=list(observed.index))
    rows = []

    def score(label, seconds, mean: np.ndarray, problems="-"):
        per_domain = [spearmanr(mean[:, j], observed.iloc[:, j]).statistic for j in range(len(domains))]
        rows.append(
            {
                "method": label,
                "seconds": seconds,
                "Spearman total (410M)": spearmanr(mean @ weights / weights.sum(), total).statistic,
                "Spearman per domain: mean": np.mean(per_domain),
                "min": np.min(per_domain),
                "sampler problems": problems,
            }
        )

    for name in LAWS:
        label, config = FITS[name]
        law, seconds = _fit(config, runs, seed)
        score(
            label,
            seconds,
            _wide(law.predict(frame, kind="mean"), "mean", list(observed.index), domains).to_numpy(),
            _problems(law),
        )
    small = runs.pivot()[domains]
    t = time.perf_counter()
    boosted = _lightgbm(runs.mixtures().loc[small.index].to_numpy(), small, mixtures.to_numpy())
    score("LightGBM (1000 trees, lr 0.01)", time.perf_counter() - t, boosted.to_numpy())
    print(f"Transfer: fitted on 5Mix 70M/30k ({len(runs.runs)} mixtures), ranking the {len(observed)} 410M runs at 30k\n")
    print(pd.DataFrame(rows).to_markdown(index=False, floatfmt=".4g"))


PARTS = {"5mix": heldout_5mix, "regmix": regmix, "near-far": near_far, "near-far-each": near_far_each, "transfer": transfer}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, of {', '.join(PARTS)}")
    parser.add_argument("--seed", type=int, default=0)
    for name in ("chains", "tune", "draws"):
        parser.add_argument(f"--{name}", type=int, default=None, help=f"NUTS {name} of the regmix, near-far and transfer fits (default: the config's)")
    parser.add_argument("--laws", default=",".join(LAWS), help=f"the regmix, near-far and transfer parts' Bayesian fits, comma-separated, of {', '.join(FITS)}")
    args = parser.parse_args()

    def names(text: str, known, option: str) -> list[str]:
        chosen = [name.strip() for name in text.split(",") if name.strip()]
        if unknown := [name for name in chosen if name not in known]:
            parser.error(f"unknown {option} value(s) {', '.join(unknown)}; {option} takes {', '.join(known)}")
        return chosen

    LAWS[:] = names(args.laws, FITS, "--laws")
    SAMPLER.update({k: v for k in ("chains", "tune", "draws") if (v := getattr(args, k)) is not None})
    chosen = names(args.parts, PARTS, "--parts")
    for part in chosen:
        print(f"\n## {part}\n", flush=True)
        PARTS[part](seed=args.seed)


if __name__ == "__main__":
    main()
