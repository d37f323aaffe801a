"""The nested law on RedPajama: held-out error and coverage against the paper's point pipeline.

Data: Data Mixing Laws' RedPajama pilots (20 mixtures x 70M/160M/305M/410M x 11 checkpoints 10k-30k
steps x 22 Pile validation domains). Two checks, as in issue 3:

* size: fit 70M-305M (all steps), predict every mixture's 410M loss at 30k steps;
* steps: fit steps <= 20k (all sizes), predict every run's loss at 30k steps.

Compared in the same run on the same held-out losses (22 domains and the Pile-weighted total):
* the joint Bayesian nested law (NUTS; posterior predictive median and 90% interval);
* the stage-wise Bayesian pipeline: the nested law with free per-mixture levels, then at the target
  scale the mixing law on its posterior means with their standard deviations as measurement errors;
* the paper's point pipeline: step law E + B S^-beta per run and domain (Huber on log loss,
  multi-start L-BFGS) extrapolated to 30k; for the size check then the size law E + A N^-alpha per
  mixture and domain over the three sizes, extrapolated to 410M ("per mixture"); then the mixing law
  fitted across the 20 mixtures on those predictions, as the paper chains it ("-> mixing law").
Also: wall time of the whole RedPajama fit (all 19,360 losses) and of ``optimize`` on it.

    python benchmarks/nested.py [--draws 300] [--chains 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
from check_spread import bootstrap_ratio, coverage_under_model

from bayes_mixlaw import datasets, discrepancy_scale
from bayes_mixlaw.baseline import fit_point_mixing_laws, point_power_law_predict
from bayes_mixlaw.calibrate import calibrate_extrapolation
from bayes_mixlaw.config import NestedLawConfig
from bayes_mixlaw.laws import mixing_law
from bayes_mixlaw.nested import NestedLaw, StagewiseNestedFit
from bayes_mixlaw.optimize import optimal_mixture
from bayes_mixlaw.runs import RunsTable, load_runs
from bayes_mixlaw.targets import Targets

warnings.simplefilter("ignore")
SIZE_410M, STEP_30K = 302_311_424, 30_000
# the 3Mix runs' schedule is not published: a stated assumption (Pythia-style cosine to the last checkpoint, 1% warm-up, to 0.1x)
COSINE_30K = {"kind": "cosine", "total_steps": 30_000, "warmup_steps": 300, "peak_lr": 1e-3, "final_lr": 1e-4}


def redpajama(shared: str) -> RunsTable:
    return load_runs(f"{shared}/mixinglaws/RedPajama")


def point_pipeline(
    train: pd.DataFrame, test_params: list[int], size_check: bool, valid: list[str], target_step: int = STEP_30K, target_size: int = SIZE_410M
) -> dict:
    """The paper's chain of point fits. Returns {(params, mixture key, domain): prediction} for the
    per-mixture stage and after the mixing-law stage."""
    mix_cols = [c for c in train.columns if c.startswith("mix:")]
    train = train.assign(mixture=train[mix_cols].round(9).astype(str).agg("|".join, axis=1))
    at_target = {}
    for (_run, params, mixture, domain), g in train.groupby(["run", "params", "mixture", "valid_domain"]):
        at_target[(params, mixture, domain)] = point_power_law_predict(g["step"].to_numpy(float), g["loss"].to_numpy(float), target_step)
    if size_check:
        per_size = pd.Series(at_target).rename_axis(["params", "mixture", "domain"]).rename("loss").reset_index()
        at_target = {}
        for (mixture, domain), g in per_size.groupby(["mixture", "domain"]):
            if g["params"].nunique() >= 2:
                at_target[(target_size, mixture, domain)] = point_power_law_predict(g["params"].to_numpy(float), g["loss"].to_numpy(float), target_size)
    frame = pd.Series(at_target).rename_axis(["params", "mixture", "domain"]).rename("loss").reset_index()
    chained = {}
    for params in test_params:
        wide = frame[frame["params"] == params].pivot(index="mixture", columns="domain", values="loss")[valid]
        r = np.array([[float(x) for x in key.split("|")] for key in wide.index])
        log_c, log_k, t = fit_point_mixing_laws(r, wide.to_numpy(), starts=16)
        fitted = mixing_law(r, log_c, log_k, t)
        for i, key in enumerate(wide.index):
            for j, domain in enumerate(valid):
                chained[(params, key, domain)] = fitted[i, j]
    return {"per mixture": at_target, "-> mixing law": chained}


def leapfrog_steps(law: NestedLaw) -> float:
    """Mean leapfrog steps a draw (what the fit's time is made of: steps x the cost of a gradient)."""
    stats = law.idata["sample_stats"]
    return float(stats["n_steps"].values.mean()) if "n_steps" in stats else float("nan")


def evaluate(
    name: str,
    runs: RunsTable,
    train_mask,
    test_mask,
    draws: int | None,
    chains: int | None,
    seed: int,
    methods: set,
    point_baseline: bool = True,
    target_step: int = STEP_30K,
    schedule: dict | None = None,
    config: NestedLawConfig | None = None,
    laws: tuple[str, ...] = (),
) -> list[dict]:
    """``schedule``: the pilots' learning-rate schedule and the target's (the nested law's schedule-aware
    step term, :mod:`bayes_mixlaw.schedule_grid`); ``None``: steps as they come. ``laws``: registered mixing forms
    (``power_law_base``, ...), each one more joint fit with that form as the mixing law at the reference scale."""
    data = runs.data
    train = RunsTable(data[train_mask].reset_index(drop=True), runs.source)
    test = data[test_mask]
    targets = Targets(datasets.pile_targets().weights)  # the weighted total (absent domains renormalised)
    # the law's default sampler unless --draws / --chains say otherwise
    sampler = {k: v for k, v in dict(draws=draws, tune=draws, chains=chains).items() if v is not None} | {"progress": False}
    fits = {}
    if methods & {"joint", "calibrated"}:
        law = NestedLaw(config or NestedLawConfig(), targets=targets)
        start = time.perf_counter()
        law.fit(train, seed=seed, schedule=schedule, **sampler)
        seconds = time.perf_counter() - start
        if "joint" in methods:
            fits["Bayesian joint nested law"] = (law, seconds)
        if "calibrated" in methods:  # the same fit plus the discrepancy measured by leaving its last scale out
            with tempfile.TemporaryDirectory() as folder:
                calibrated = NestedLaw.load(law.save(Path(folder) / "joint.nc"))
            start = time.perf_counter()
            calibrate_extrapolation(calibrated, train, axis="params" if "size" in name.split(":")[0] else "length", seed=seed, **sampler)
            fits["Bayesian joint nested law + calibrated extrapolation"] = (calibrated, seconds + time.perf_counter() - start)
    for form in laws:  # the same law with another registered form as its mixing law at the reference scale (issue 16)
        law = NestedLaw((config or NestedLawConfig()).model_copy(update={"law": form}), targets=targets)
        start = time.perf_counter()
        law.fit(train, seed=seed, schedule=schedule, **sampler)
        fits[f"Bayesian joint nested law, law: {form}"] = (law, time.perf_counter() - start)
    if "joint-amplitude" in methods:  # the same law sampled in log a, log b (the earlier parameterisation)
        law = NestedLaw(NestedLawConfig(scaling_parameterisation="amplitude"), targets)
        start = time.perf_counter()
        law.fit(train, seed=seed, **sampler)
        fits["Bayesian joint nested law (amplitude parameterisation)"] = (law, time.perf_counter() - start)
    if "stagewise" in methods:
        stage_one = NestedLaw(NestedLawConfig(mixture_model="free"), targets)
        start = time.perf_counter()
        stage_one.fit(train, seed=seed, **sampler)
        stagewise = {}
        for params in sorted(test["params"].unique()):
            stagewise[params] = StagewiseNestedFit(targets).fit(train, params=params, step=STEP_30K, seed=seed, stage_one_fit=stage_one, **sampler)
        fits["Bayesian stage-wise (free levels -> mixing law, errors in variables)"] = (stagewise, time.perf_counter() - start)
    law = next(iter(fits.values()))[0]
    law = law if isinstance(law, NestedLaw) else next(iter(law.values())).stage_one
    valid = law.valid_domains
    names, matrix = law.targets.matrix(valid)
    weights = matrix[names.index("total")]
    mix_cols = runs.mix_columns
    keyed = test.assign(mixture=test[mix_cols].round(9).astype(str).agg("|".join, axis=1))

    bayes, observed = {label: [] for label in fits}, []
    for params, g in keyed.groupby("params"):
        wide = g.pivot_table(index="mixture", columns="valid_domain", values="loss")[valid]
        mixtures = g.groupby("mixture")[mix_cols].first().loc[wide.index].reset_index(drop=True)
        for label, (fit, _) in fits.items():
            if isinstance(fit, NestedLaw):
                draws_ = fit.predict_draws(mixtures, params=params, step=target_step, schedule=schedule)
            else:
                draws_ = fit[params].predict_draws(mixtures)
            order = list(draws_["target"].values)
            flat = draws_.values.reshape(-1, *draws_.shape[2:])[..., [order.index(v) for v in valid] + [order.index("total")]]
            bayes[label].append((np.median(flat, 0), np.quantile(flat, 0.05, 0), np.quantile(flat, 0.95, 0), flat))
        observed.append((params, list(wide.index), np.column_stack([wide.to_numpy(), wide.to_numpy() @ weights])))
    rows = []

    def add(method, pred, lower=None, upper=None, note="", joint=None):
        err = np.abs(pred - obs_all)
        row = {
            "check": name,
            "method": method,
            "MAE (22 domains)": err[:, :-1].mean(),
            "MAE (total)": err[:, -1].mean(),
            "max abs error (total)": err[:, -1].max(),
            "bias (total)": (pred - obs_all)[:, -1].mean(),
        }
        if lower is not None:
            inside = (lower <= obs_all) & (obs_all <= upper)
            row.update(
                {
                    "90% coverage (domains)": inside[:, :-1].mean(),
                    "90% coverage (total)": inside[:, -1].mean(),
                    "90% width (total)": (upper - lower)[:, -1].mean(),
                }
            )
        if joint is not None:  # the predictive's joint draws (draws, held-out runs, domains + total): chance alone
            spread = coverage_under_model(joint, obs_all)
            row["P(cov. 0.85-0.95) if the model is right (domains / total)"] = f"{spread['domains']['within band']:.2f} / {spread['totals']['within band']:.2f}"
            row["observed cov.'s mid-percentile under the model (domains / total)"] = (
                f"{spread['domains']['percentile']:.2f} / {spread['totals']['percentile']:.2f}"
            )
        elif bayes_pred is not None:  # a baseline: the first Bayesian method's error over this one's, resampled by mixture
            ratios = [bootstrap_ratio(np.abs(bayes_pred - obs_all)[:, part], err[:, part], mixture_of_row) for part in (slice(0, -1), slice(-1, None))]
            row["Bayes MAE / this MAE [90% over mixtures] (domains; total)"] = "; ".join(f"{r:.2f} [{lo:.2f}, {hi:.2f}]" for r, lo, hi in ratios)
        row["fit seconds"] = note
        rows.append(row)

    obs_all = np.vstack([o for _, _, o in observed])
    mixture_of_row = np.concatenate([keys for _, keys, _ in observed])  # a mixture's runs at every size resampled together
    bayes_pred = None
    for label, (fit, seconds) in fits.items():
        first = fit if isinstance(fit, NestedLaw) else next(iter(fit.values())).stage_one
        d = first.diagnostics
        b = bayes[label]
        add(
            label,
            np.vstack([x[0] for x in b]),
            np.vstack([x[1] for x in b]),
            np.vstack([x[2] for x in b]),
            joint=np.concatenate([x[3] for x in b], axis=1),  # draw s of every size's call: one realisation (same seed)
            note=f"{seconds:.0f} ({d.chains}x{d.draws}; {leapfrog_steps(first):.0f} steps/draw; "
            f"R-hat {d.max_rhat:.3f}, ESS {d.min_ess_bulk:.0f}, {d.divergences} div.; "
            f"discrepancy learned on: {', '.join(discrepancy_scale.read(first)) or 'no axis'})",
        )
        if bayes_pred is None:
            bayes_pred = np.vstack([x[0] for x in b])
    if not point_baseline:
        return rows
    start = time.perf_counter()
    point = point_pipeline(train.data, sorted({p for p, _, _ in observed}), "size" in name.split(":")[0], valid, target_step, max(p for p, _, _ in observed))
    point_seconds = time.perf_counter() - start
    for method, table in point.items():
        pred = []
        for params, keys, _ in observed:
            domains = np.array([[table.get((params, k, v), np.nan) for v in valid] for k in keys])
            pred.append(np.column_stack([domains, domains @ weights]))
        add(f"point pipeline ({method})", np.vstack(pred), note=f"{point_seconds:.0f}")
    return rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--shared", default="../shared/data")
    parser.add_argument("--draws", type=int, default=None, help="draws and tuning steps a chain (default: the law's sampler settings)")
    parser.add_argument("--chains", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-full", action="store_true")
    parser.add_argument("--domains", default=None, help="comma-separated validation domains (a quick subset; default all 22)")
    parser.add_argument("--methods", default="joint", help="Bayesian methods to run: joint, joint-amplitude, stagewise, calibrated")
    parser.add_argument("--full", default="share", help="parameterisations of the whole-RedPajama fit to time: share, amplitude")
    parser.add_argument("--checks", default="size,steps", help="which checks to run: size, steps, 5mix, 3mix, 3mix-schedule")
    parser.add_argument("--no-point", action="store_true", help="skip the point pipeline (its numbers are in benchmarks/README.md)")
    parser.add_argument(
        "--assume-schedule",
        action="store_true",
        help="read the size, steps and 5mix checks' pilots through the stated cosine to 30k (their schedule is not published)",
    )
    parser.add_argument("--config", default=None, help="a NestedLawConfig file (YAML or JSON) for the joint fits (default: the defaults)")
    parser.add_argument("--laws", default="", help="more joint fits, each with this form as the mixing law at the reference scale (power_law_base, ...)")
    args = parser.parse_args()
    laws = tuple(name for name in args.laws.split(",") if name)
    check = partial(evaluate, config=NestedLawConfig.from_file(args.config) if args.config else None, laws=laws)
    if args.assume_schedule:  # the checks that end at 30k: the point pipeline takes steps as they come either way
        check = partial(check, schedule=COSINE_30K)
    runs = redpajama(args.shared)
    if args.domains:
        keep = runs.data["valid_domain"].isin(args.domains.split(","))
        runs = RunsTable(runs.data[keep].reset_index(drop=True), runs.source)
    data = runs.data
    methods = set(args.methods.split(","))
    rows, checks, point = [], set(args.checks.split(",")), not args.no_point
    if "size" in checks:
        rows += check(
            "size: fit 70M-305M, predict 410M@30k",
            runs,
            data["params"] < SIZE_410M,
            (data["params"] == SIZE_410M) & (data["step"] == STEP_30K),
            args.draws,
            args.chains,
            args.seed,
            methods,
            point,
        )
        print(pd.DataFrame(rows).to_markdown(index=False, floatfmt=".4f"), flush=True)
    if "steps" in checks:
        rows += check(
            "steps: fit <=20k, predict 30k", runs, data["step"] <= 20_000, data["step"] == STEP_30K, args.draws, args.chains, args.seed, methods, point
        )
        print(pd.DataFrame(rows).to_markdown(index=False, floatfmt=".4f"), flush=True)
    if "5mix" in checks:  # the same size check on the 5Mix pilots
        five = load_runs(f"{args.shared}/mixinglaws/5Mix")
        fd = five.data[five.data["step"] <= STEP_30K]
        five = RunsTable(fd.reset_index(drop=True), five.source)
        rows += check(
            "5mix size: fit 70M-305M, predict 410M@30k",
            five,
            fd["params"] < SIZE_410M,
            (fd["params"] == SIZE_410M) & (fd["step"] == STEP_30K),
            args.draws,
            args.chains,
            args.seed,
            methods,
            point,
        )
        print(pd.DataFrame(rows).to_markdown(index=False, floatfmt=".4f"), flush=True)
    if "3mix" in checks:  # longer training: every size up to 30k steps, predict the 410M runs at 60k
        # (no point pipeline: its step law needs several checkpoints of each 410M run, and 3Mix's 410M runs
        # have one at 30k (4 runs) or none before 60k (12 runs))
        three = load_runs(f"{args.shared}/mixinglaws/3Mix")
        td = three.data
        rows += check(
            "3mix steps: fit <=30k, predict 410M@60k",
            three,
            td["step"] <= STEP_30K,
            (td["params"] == SIZE_410M) & (td["step"] == 60_000),
            args.draws,
            args.chains,
            args.seed,
            methods,
            False,
            target_step=60_000,
        )
    if "3mix-schedule" in checks:  # issue 14: the pilots read through a stated schedule, against steps as they come
        three = load_runs(f"{args.shared}/mixinglaws/3Mix")
        td = three.data[three.data["params"] < SIZE_410M].reset_index(drop=True)
        three = RunsTable(td, three.source)
        for label, schedule in (("steps as they come", None), ("assumed cosine to 30k", COSINE_30K)):
            rows += check(
                f"3mix 70M+160M steps: fit <=15k, predict 30k; {label}",
                three,
                td["step"] <= 15_000,
                td["step"] == STEP_30K,
                args.draws,
                args.chains,
                args.seed,
                methods,
                point and schedule is None,
                schedule=schedule,
            )
            print(pd.DataFrame(rows).to_markdown(index=False, floatfmt=".4f"), flush=True)
    table = pd.DataFrame(rows)
    print(table.to_markdown(index=False, floatfmt=".4f"))
    if not args.skip_full:
        for parameterisation in args.full.split(","):
            law = NestedLaw(NestedLawConfig(scaling_parameterisation=parameterisation), datasets.pile_targets())
            start = time.perf_counter()
            law.fit(
                runs, seed=args.seed, progress=False, **{k: v for k, v in dict(draws=args.draws, tune=args.draws, chains=args.chains).items() if v is not None}
            )
            fit_seconds = time.perf_counter() - start
            d = law.diagnostics
            print(
                f"\nwhole RedPajama nested fit ({len(data)} losses, {parameterisation} parameterisation), NUTS {d.chains}x{d.draws}: "
                f"{fit_seconds:.0f} s (model build and compilation included), {leapfrog_steps(law):.0f} leapfrog steps a draw; "
                f"max R-hat {d.max_rhat:.4f}, min bulk ESS {d.min_ess_bulk:.0f}, {d.divergences} divergences; {d.summary()}",
                flush=True,
            )
        start = time.perf_counter()
        default = runs.mixtures().drop_duplicates().iloc[[0]]
        best = optimal_mixture(law, params=805_736_448, step=100_000, reference=default, seed=args.seed)
        opt_seconds = time.perf_counter() - start
        print(f"optimize at 1B / 100k steps ({len(best.per_draw)} draws): {opt_seconds:.1f} s; P(optimum beats pilot mixture 0) = {best.p_beats_reference:.3f}")
        print(best.table().round(4).to_markdown(index=False))


if __name__ == "__main__":
    main()
