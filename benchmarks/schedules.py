"""Schedule-aware scaling law on the multi-power law curves (Luo et al., 2025): held-out schedules and sizes.

    python benchmarks/schedules.py            # the full run (a few minutes on 2 cores)
    python benchmarks/schedules.py --quick    # short chains, one simulation, for a smoke test
    python benchmarks/schedules.py --choose   # also: leave-one-schedule-out point fits, multi-power vs Tissue
    python benchmarks/schedules.py --rows ac  # only the rows (a) and (c)

Rows (markdown tables on stdout):
(a) per size (25M, 100M, 400M): fit cosine_24000, constant_24000, wsdcon_9; predict wsd_20000_24000 from
    its schedule (the JSON contract: wsd, exponential decay from 20,000 to 24,000);
(b) fit all four schedules at 25M and 100M; predict the four 400M curves;
(c) data simulated from the law with known schedules (the law from one posterior draw of the 100M fit per
    replicate, the run effects' spreads from their priors; ``--reps``, default 40): fit the three training
    schedules, 90% coverage of the simulated held-out WSD curve, and of one point per replicate (10k, 22k,
    24k) over the replicates, with its binomial standard error;
(d) the mixinglaws 3Mix 70M/160M dense checkpoints (3 mixtures at both sizes): fit 4k..15k, predict the
    same run's checkpoints to 30k, with the schedule given (assumed cosine to 30k) or unknown.
Each row: mean and max relative error of the posterior predictive median on the held-out curve, 90%
coverage, mean interval width, R-hat max and bulk-ESS min (4 chains; "converged": R-hat <= 1.01 and
bulk ESS >= 400), wall time; next to a point fit of the same
law on the same runs (scipy L-BFGS-B on a Huber loss of the log loss, delta 1e-3, multi-start) and the
published multi-power law errors (0.11% 25M, 0.14% 100M, 0.17% 400M).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import minimize

from bayes_mixlaw import discrepancy_schedule
from bayes_mixlaw.runs import load_runs, validate_runs
from bayes_mixlaw.scheduled import ScheduledLawConfig, ScheduledScalingLaw
from bayes_mixlaw.schedules import Schedule

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "multipowerlaw"
PUBLISHED = {25: 0.11, 100: 0.14, 400: 0.17}
TRAIN = ("cosine_24000", "constant_24000", "wsdcon_9")
SCHEDULES = {  # the published schedules in the JSON contract (shared/data/README.md)
    "cosine_24000": {"kind": "cosine", "total_steps": 24000, "warmup_steps": 2160, "peak_lr": 3e-4, "final_lr": 3e-5},
    "constant_24000": {"kind": "constant", "total_steps": 24000, "warmup_steps": 2160, "peak_lr": 3e-4},
    "wsd_20000_24000": {
        "kind": "wsd",
        "total_steps": 24000,
        "warmup_steps": 2160,
        "peak_lr": 3e-4,
        "final_lr": 3e-5,
        "decay_start": 20000,
        "decay_shape": "exponential",
    },
    "wsdcon_9": {"kind": "two_stage", "total_steps": 16000, "warmup_steps": 2160, "peak_lr": 3e-4, "final_lr": 9e-5, "decay_start": 8000},
}


def huber(r, delta=1e-3):
    a = np.abs(r)
    return np.where(a < delta, 0.5 * r**2, delta * (a - 0.5 * delta))


def _draw(prior, rng) -> float:
    """One draw of a Normal, Gamma or HalfNormal prior (the scheduled law's), as a start of the point fit."""
    kw = prior.parameters
    if prior.distribution == "Normal":
        return float(rng.normal(kw["mu"], kw["sigma"]))
    if prior.distribution == "Gamma":
        return float(rng.gamma(kw["alpha"], 1 / kw["beta"]))
    if prior.distribution == "HalfNormal":
        return float(abs(rng.normal(0, kw["sigma"])))
    if prior.distribution == "LogNormal":
        return float(rng.lognormal(kw["mu"], kw["sigma"]))
    raise ValueError(f"no start for a {prior.distribution} prior")


def point_fit(law: ScheduledScalingLaw, runs, starts: int, seed: int = 0, schedule=None):
    """Huber fit of ``law``'s mean function (no run effects) on ``runs`` (one validation domain;
    ``schedule``: for runs without an lr column); returns a predict function."""
    lay = law._layout(validate_runs(runs), schedule=schedule)
    x = law._data(lay)
    names = law._parameter_names(lay["multi_size"])
    prior = {k: law.config.prior(k) for k in names}
    rng = np.random.default_rng(seed)
    target = x["log_loss"] - x["log_loss_scale"][x["valid_idx"]]

    def objective(theta):
        p = _law_parameters(dict(zip(names, theta)), x["log_s0"])
        with np.errstate(all="ignore"):
            mean = law._law(np, x, p, lay["multi_size"])
        if not np.all(np.isfinite(mean)) or np.any(mean <= 0):
            return 1e10
        return float(huber(np.log(mean) - target).sum())

    best = None
    for _ in range(starts):
        theta0 = [_draw(prior[k], rng) for k in names]
        res = minimize(objective, theta0, method="L-BFGS-B")
        if best is None or res.fun < best.fun:
            best = res
    p = _law_parameters({k: np.asarray(v) for k, v in zip(names, best.x)}, x["log_s0"])

    def predict(params, schedule, steps):
        f = schedule.features(steps, lr_ref=lay["lr_ref"], knots=law.config.knots, lam=law.config.annealing_lambda)
        xx = {
            "log_n_rel": np.log(params / lay["n0"]),
            "log_n_lo": x["log_n_lo"],
            "log_n_hi": x["log_n_hi"],
            "s1_rel": f.s1 / lay["s0"],
            "s2_rel": f.s2 / lay["s0"],
            "drop": f.drop,
            "eta": f.eta,
            "s_k": f.s_k,
        }
        return law._law(np, xx, p, lay["multi_size"]) * lay["scale"][0]

    return predict, best


def _law_parameters(p: dict, log_s0) -> dict:
    """The law's parameters from the sampled ones (the annealing amplitude is sampled per step)."""
    p = dict(p)
    if "log_d_step" in p:
        p["log_d"] = p.pop("log_d_step") + log_s0
    return p


# the held-out WSD schedule decays from this step on: before it, it is the constant schedule (at 100M the very
# same run: its first 20k steps equal constant_24000's), so coverage over the whole curve is mostly the
# constant phase's; the decay phase is where the schedule's prediction is tested
DECAY_FROM = 20000


def score(pred: pd.DataFrame, y: np.ndarray, steps: np.ndarray | None = None) -> dict:
    rel = np.abs(pred["median"].to_numpy() / y - 1)
    inside = (pred["lower"].to_numpy() <= y) & (y <= pred["upper"].to_numpy())
    out = {
        "mean rel err %": 100 * rel.mean(),
        "max rel err %": 100 * rel.max(),
        "90% coverage": inside.mean(),
        "mean width": (pred["upper"] - pred["lower"]).mean(),
    }
    if steps is not None:
        decay = steps > DECAY_FROM
        out.update({"decay: mean rel err %": 100 * rel[decay].mean(), "decay: 90% coverage": inside[decay].mean()})
    return out


def bayes_row(name, train, tests, sampler, starts, published=None, config=None):
    """Fit on ``train``; ``tests``: list of (params, schedule, steps, losses). One table row."""
    law = ScheduledScalingLaw(config or ScheduledLawConfig())
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        law.fit(train, seed=1, progress=False, **sampler)
    wall = time.perf_counter() - start
    preds = [law.predict(n, s, steps) for n, s, steps, _ in tests]
    y = np.concatenate([t[3] for t in tests])
    steps = np.concatenate([t[2] for t in tests]) if all(s.kind == "wsd" for _, s, _, _ in tests) else None
    row = {"experiment": name, **score(pd.concat(preds, ignore_index=True), y, steps)}
    row.update(_diagnostics(law, wall))
    if starts:
        predict, _ = point_fit(law, train, starts)
        point = np.concatenate([predict(n, s, steps) for n, s, steps, _ in tests])
        rel = np.abs(point / y - 1)
        row.update({"point fit mean %": 100 * rel.mean(), "point fit max %": 100 * rel.max()})
    row["published %"] = published if published is not None else np.nan
    return row, law


# (c): the steps whose coverage is counted once per replicate (independent across replicates): the constant
# phase, the middle of the held-out decay, the last point
CALIBRATION_STEPS = (10000, 22000)


def calibration_summary(reps: pd.DataFrame) -> pd.DataFrame:
    """(c) over replicates, converged fits only: coverage of one point per replicate (independent draws, so
    a binomial standard error applies), and the mean of the per-replicate curve coverages."""
    ok = reps[reps["converged"] & (reps["divergences"] == 0)]
    rows = []
    for label, column in (
        ("at step 10k (constant phase)", "inside at 10k"),
        ("at step 22k (mid-decay)", "inside at 22k"),
        ("at the last point (24k)", "last point inside"),
    ):
        p = ok[column].mean()
        rows.append({"statistic": f"90% coverage {label}", "value": p, "binomial s.e.": np.sqrt(p * (1 - p) / max(len(ok), 1)), "fits counted": len(ok)})
    for column in ("90% coverage", "decay: 90% coverage", "mean rel err %", "point fit mean %"):
        if column in ok:
            rows.append({"statistic": f"mean over replicates of {column}", "value": ok[column].mean(), "binomial s.e.": np.nan, "fits counted": len(ok)})
    rows.append({"statistic": "fits not counted (R-hat, ESS or divergences)", "value": len(reps) - len(ok), "binomial s.e.": np.nan, "fits counted": len(reps)})
    for label, column in (("at step 22k", "inside at 22k"), ("at the last point", "last point inside")):  # is the selection biased?
        p = reps[column].mean()
        rows.append(
            {
                "statistic": f"90% coverage {label}, every fit (converged or not)",
                "value": p,
                "binomial s.e.": np.sqrt(p * (1 - p) / len(reps)),
                "fits counted": len(reps),
            }
        )
    return pd.DataFrame(rows)


def _diagnostics(law, wall: float) -> dict:
    d = law.diagnostics
    return {
        "R-hat max": d.max_rhat,
        "bulk ESS min": d.min_ess_bulk,
        "converged": bool(d.max_rhat <= 1.01 and d.min_ess_bulk >= 400),
        "divergences": d.divergences,
        "wall s": wall,
    }


def curve(runs, size, schedule):
    rows = runs.data[runs.data["run"] == f"{size}/{schedule}"]
    return rows["step"].to_numpy(), rows["loss"].to_numpy()


def simulate(law: ScheduledScalingLaw, rng, size: int, noise: float | None = None, spreads: str = "prior"):
    """Curves of the four published schedules at one size, from the law with known schedules.

    The law's parameters (E, B, beta, D and the noise scale) come from one posterior draw of ``law`` (the
    real-data fit, drawn with ``rng``): the pilots pin them, so the truth varies as the posterior says.
    The run effects' spreads (``run_sigma``, the runs' level; ``run_anneal_sigma``, their annealing
    amplitude) come from the model's **priors** (``spreads="prior"``, the default): three pilot runs hardly
    inform them, so a truth drawn from the real-data posterior sits in their prior's lower middle and a
    calibration check on it measures that choice, not the intervals (it read 0.98 for a nominal 0.90);
    drawn from the prior, the check is simulation-based calibration for the parts the data do not pin.
    ``spreads="posterior"``: the same draw's (the earlier design). Each run then draws its level and
    amplitude from those spreads, and noise on the log loss from the law's likelihood (Laplace or Normal)
    of scale ``noise`` (default: the draw's). The held-out WSD run, a schedule the fit does not see, also
    carries the model's annealing-form discrepancy (``bayes_mixlaw.discrepancy_schedule``: ``kappa m_t z``
    on the log loss, ``kappa`` from its prior, one ``z`` for the curve), as a prediction of it does."""
    post = law.idata["posterior"]
    c, dr = int(rng.integers(post.sizes["chain"])), int(rng.integers(post.sizes["draw"]))
    mean = {k: post[k].values[c, dr] for k in post.data_vars}
    noise = float(mean["noise_sigma"][0]) if noise is None else noise
    if spreads == "prior":
        for name in ("run_sigma", "run_anneal_sigma"):
            mean[name] = np.atleast_1d(_draw(law.config.prior(name), rng))
    sims = {}
    for name, spec in SCHEDULES.items():
        schedule = Schedule.from_dict(spec)
        steps = np.arange(2176, schedule.horizon + 1, 128)
        f = law.features(schedule, steps)
        s0, scale = float(law.idata.attrs["s0"]), law.idata["constant_data"]["loss_scale"].values[0]
        p = {k: np.asarray(mean[k][0]) for k in law._parameter_names(False) if k != "log_d_step"}
        p["log_d"] = np.asarray(mean["log_d"][0])
        p["log_d"] = p["log_d"] + mean["run_anneal_sigma"][0] * rng.standard_normal()
        x = {"log_n_rel": 0.0, "s1_rel": f.s1 / s0, "s2_rel": f.s2 / s0, "drop": f.drop, "eta": f.eta, "s_k": f.s_k}
        truth = law._law(np, x, p, False) * scale * np.exp(mean["run_sigma"][0] * rng.standard_normal())
        if name not in TRAIN and law.config.discrepancy:
            pending = law.pending_decrease(schedule, steps, f)
            truth = truth * np.exp(_draw(law.config.prior(discrepancy_schedule.NAME), rng) * pending * rng.standard_normal())
        unit = rng.laplace(size=len(steps)) if law.config.likelihood == "laplace" else rng.standard_normal(len(steps))
        sims[name] = (steps, truth * np.exp(noise * unit), schedule)
    return sims


MIXINGLAWS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mixinglaws" / "3Mix"
# the 3Mix mixtures with dense checkpoints at both 70M and 160M
MIX_RUNS = ("13-0.25-0.125-0.625", "14-0.25-0.25-0.5", "8-0.125-0.25-0.625")
# the assumption of the "given" rows: a cosine to 30k (the runs' last checkpoint), the GPT-NeoX / Pythia
# defaults of a 1% warm-up and a final LR of 10% of the peak (the mixinglaws authors do not document theirs)
COSINE_30K = {"kind": "cosine", "total_steps": 30000, "warmup_steps": 300, "peak_lr": 1.0, "final_lr": 0.1}
FIT_FROM, FIT_TO, TARGET = 4000, 15000, 30000


# the unknown schedule's length mixes slower (bulk ESS ~0.1 per draw): more draws for those fits
UNKNOWN_DRAWS = 3000


def mixinglaws_check(
    sampler: dict, starts: int, quick: bool = False, only: list[str] | None = None, draws: int | None = None, conditions: tuple[str, ...] = ("given", "unknown")
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(d) 3Mix 70M/160M dense checkpoints: fit each run's curves (3 validation domains) on steps
    4k..15k, predict the same run's checkpoints in (15k, 30k], with the schedule given (assumed
    cosine to 30k) or unknown (its length weighed; the prediction keeps the posterior's lengths that
    reach 30k). ``only``: these runs; ``draws``: draws a chain for every fit; ``conditions``: given
    and/or unknown (the reruns with more draws in benchmarks/README.md). Returns the per-condition rows
    and the per-run table."""
    table = load_runs(MIXINGLAWS).data
    table = table.drop(columns=[c for c in table.columns if c.startswith("mix:")])
    per_run = []
    names = [f"{size}_{mix}" for size in ("70M", "160M") for mix in MIX_RUNS]
    if quick:
        names = names[:1]
    if only:
        names = [n for n in names if n in only]
    for name in names:
        curve_ = table[table["run"] == name]
        train = curve_[(curve_["step"] >= FIT_FROM) & (curve_["step"] <= FIT_TO)].reset_index(drop=True)
        held = curve_[curve_["step"] > FIT_TO]
        steps = np.sort(held["step"].unique())
        params = float(curve_["params"].iloc[0])
        # the same law's point fit under the assumed cosine to 30k (per validation domain)
        point = {}
        for v, rows_v in train.groupby("valid_domain"):
            predict, _ = point_fit(ScheduledScalingLaw(), rows_v.reset_index(drop=True), starts, schedule=COSINE_30K)
            point[v] = dict(zip(steps, predict(params, Schedule.from_dict(COSINE_30K), steps)))
        for condition, schedule in (("given: cosine to 30k", COSINE_30K), ("unknown", None)):
            if condition.split(":")[0] not in conditions:
                continue
            law = ScheduledScalingLaw()
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                more = {} if schedule is not None or quick else {"draws": max(sampler["draws"], UNKNOWN_DRAWS)}
                if draws:
                    more = {"draws": draws}
                law.fit(train, schedule=schedule, seed=11, progress=False, **{**sampler, **more})
                pred = law.predict(params, None, steps, run=name)
            wall = time.perf_counter() - start
            m = pred.merge(held[["step", "valid_domain", "loss"]], left_on=["step", "target"], right_on=["step", "valid_domain"])
            m["point"] = [point[v][t] for v, t in zip(m["target"], m["step"])]
            d = law.diagnostics
            T = law.idata["posterior"]["total_steps"].values if "total_steps" in law.idata["posterior"] else np.array([np.nan])
            for _, r in m.iterrows():
                per_run.append(
                    {
                        "size": name.split("_")[0],
                        "run": name,
                        "condition": condition,
                        "target": r["target"],
                        "step": r["step"],
                        "loss": r["loss"],
                        "median": r["median"],
                        "lower": r["lower"],
                        "upper": r["upper"],
                        "point": r["point"],
                        "R-hat max": d.max_rhat,
                        "bulk ESS min": d.min_ess_bulk,
                        "divergences": d.divergences,
                        "wall s": wall,
                        "T median": float(np.median(T)),
                        "T 5%": float(np.quantile(T, 0.05)),
                        "T 95%": float(np.quantile(T, 0.95)),
                    }
                )
            print(
                f"done (d) {name} {condition} ({wall:.0f}s, R-hat {d.max_rhat:.3f}, ESS {d.min_ess_bulk:.0f}, div {d.divergences})", file=sys.stderr, flush=True
            )
    frame = pd.DataFrame(per_run)
    frame["rel"] = (frame["median"] / frame["loss"] - 1).abs()
    frame["point rel"] = (frame["point"] / frame["loss"] - 1).abs()
    frame["inside"] = (frame["lower"] <= frame["loss"]) & (frame["loss"] <= frame["upper"])
    frame["width"] = (frame["upper"] - frame["lower"]) / frame["median"]
    rows = []
    for (size, condition), g in frame.groupby(["size", "condition"], sort=False):
        end = g[g["step"] == TARGET]
        fits = g.drop_duplicates("run")
        rows.append(
            {
                "experiment": f"(d) 3Mix {size}, {len(fits)} runs x 3 domains: <=15k -> (15k, 30k], schedule {condition}",
                "mean rel err %": 100 * g["rel"].mean(),
                "max rel err %": 100 * g["rel"].max(),
                "rel err at 30k %": 100 * end["rel"].mean(),
                "90% coverage": g["inside"].mean(),
                "coverage at 30k": end["inside"].mean(),
                "mean rel width %": 100 * g["width"].mean(),
                "R-hat max": fits["R-hat max"].max(),
                "bulk ESS min": fits["bulk ESS min"].min(),
                "converged": bool((fits["R-hat max"] <= 1.01).all() and (fits["divergences"] == 0).all()),
                "divergences": int(fits["divergences"].sum()),
                "wall s": fits["wall s"].sum(),
                "point fit mean %": 100 * g["point rel"].mean(),
                "point fit max %": 100 * g["point rel"].max(),
                "published %": np.nan,
            }
        )
    return pd.DataFrame(rows), frame


def choose(runs, starts: int) -> pd.DataFrame:
    """Leave-one-schedule-out point fits per size: multi-power law against Tissue et al.'s form."""
    rows = []
    for size in (25, 100, 400):
        for held in SCHEDULES:
            train = runs.data[(runs.data["params"] == size * 1_000_000) & (runs.data["run"] != f"{size}/{held}") & runs.data["run"].str.startswith(f"{size}/")]
            steps, y = curve(runs, size, held)
            for term in ("multi_power", "annealing"):
                law = ScheduledScalingLaw(ScheduledLawConfig(step_term=term, knots=128))
                predict, _ = point_fit(law, train.reset_index(drop=True), starts)
                rel = np.abs(predict(size * 1e6, Schedule.from_dict(SCHEDULES[held]), steps) / y - 1)
                rows.append({"size": f"{size}M", "held out": held, "step term": term, "mean %": 100 * rel.mean(), "max %": 100 * rel.max()})
    return pd.DataFrame(rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short chains, fewer starts, one simulation")
    parser.add_argument("--choose", action="store_true", help="also run the multi-power vs Tissue choice")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--rows", default="abcd", help="which rows to run: any of a, b, c, d (c needs the 100M fit of a)")
    parser.add_argument("--cores", type=int, default=1, help="cores for the chains")
    parser.add_argument("--reps", type=int, default=40, help="(c): simulated replicates")
    parser.add_argument(
        "--spreads", choices=("prior", "posterior"), default="prior", help="(c): the truth's run-effect spreads from their prior or the real fit's posterior"
    )
    parser.add_argument("--d-runs", nargs="*", help="(d): only these 3Mix runs (e.g. 70M_13-0.25-0.125-0.625)")
    parser.add_argument("--d-draws", type=int, help="(d): draws a chain for every fit")
    parser.add_argument("--d-conditions", default="given,unknown", help="(d): given and/or unknown")
    args = parser.parse_args(argv)
    sampler = (
        {"chains": 2, "cores": 1, "draws": 300, "tune": 300} if args.quick else {"chains": 2, "cores": args.cores, "draws": 2000, "tune": 1500}
    )  # target_accept: the law's default (0.95)
    starts = 4 if args.quick else 20
    runs = load_runs(args.data)
    data = runs.data
    rows = []
    fits = {}
    for size in (25, 100, 400) if "a" in args.rows or "c" in args.rows else ():
        if "a" not in args.rows and size != 100:
            continue
        train = data[(data["params"] == size * 1_000_000) & data["run"].isin([f"{size}/{s}" for s in TRAIN])].reset_index(drop=True)
        steps, y = curve(runs, size, "wsd_20000_24000")
        row, law = bayes_row(
            f"(a) {size}M: 3 schedules -> WSD",
            train,
            [(size * 1e6, Schedule.from_dict(SCHEDULES["wsd_20000_24000"]), steps, y)],
            sampler,
            starts,
            PUBLISHED[size],
        )
        rows.append(row)
        fits[size] = law
        print(f"done {row['experiment']} ({row['wall s']:.0f}s)", file=sys.stderr, flush=True)
    if "b" in args.rows:
        train = data[data["params"].isin([25_000_000, 100_000_000])].reset_index(drop=True)
        tests = [(400e6, Schedule.from_dict(SCHEDULES[s]), *curve(runs, 400, s)) for s in SCHEDULES]
        # the default (model discrepancy beyond the largest pilot size), and without it: what the size
        # exponent's prior alone gives (two sizes pin none of it)
        for label, config, point in (("", None, starts), (", no discrepancy", ScheduledLawConfig(discrepancy=False), 0)):
            row, _ = bayes_row(f"(b) 25M+100M, 4 schedules -> 400M (4 curves){label}", train, tests, sampler, point, PUBLISHED[400], config)
            rows.append(row)
            print(f"done {row['experiment']}", file=sys.stderr, flush=True)
    rng = np.random.default_rng(7)
    calibration = []
    for rep in range((1 if args.quick else args.reps) if "c" in args.rows else 0):
        sims = simulate(fits[100], rng, 100, spreads=args.spreads)
        frame = pd.concat(
            [
                pd.DataFrame({"run": f"sim/{n}", "params": 100_000_000, "step": s, "valid_domain": "valid", "loss": loss})
                for n, (s, loss, _) in sims.items()
                if n in TRAIN
            ],
            ignore_index=True,
        )
        schedules = {f"sim/{n}": sched for n, (_, _, sched) in sims.items() if n in TRAIN}
        steps, y, sched = sims["wsd_20000_24000"]
        law = ScheduledScalingLaw()
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            law.fit(frame, schedule=schedules, seed=rep, progress=False, **sampler)
        pred = law.predict(1e8, sched, steps)
        inside = (pred["lower"].to_numpy() <= y) & (y <= pred["upper"].to_numpy())
        at = {step: bool(inside[int(np.argmin(np.abs(steps - step)))]) for step in CALIBRATION_STEPS}
        row = {
            "experiment": f"(c) simulated 100M, replicate {rep + 1} -> WSD",
            **score(pred, y, steps),
            "inside at 10k": at[10000],
            "inside at 22k": at[22000],
            "last point inside": bool(inside[-1]),
            **_diagnostics(law, time.perf_counter() - start),
        }
        if starts:
            predict, _ = point_fit(law, frame, starts, schedule=schedules)
            rel = np.abs(predict(1e8, sched, steps) / y - 1)
            row.update({"point fit mean %": 100 * rel.mean(), "point fit max %": 100 * rel.max()})
        calibration.append(row)
        print(f"done {row['experiment']}", file=sys.stderr, flush=True)
    per_run = None
    if "d" in args.rows:
        drows, per_run = mixinglaws_check(sampler, starts, args.quick, args.d_runs, args.d_draws, tuple(args.d_conditions.split(",")))
        rows.extend(drows.to_dict("records"))
    table = pd.DataFrame(rows)
    if calibration:
        reps = pd.DataFrame(calibration)
        print(f"## (c) simulated data, {len(reps)} replicates (spreads of the run effects from their {args.spreads})\n")
        print(calibration_summary(reps).to_markdown(index=False, floatfmt=".4g"))
        print("\nPer replicate:\n")
        print(reps.drop(columns=["experiment"]).to_markdown(floatfmt=".4g"))
        print()
    print(f"## Schedule-aware scaling law ({ScheduledLawConfig().step_term}) on the multi-power law curves{' (quick)' if args.quick else ''}\n")
    print(table.to_markdown(index=False, floatfmt=".4g"))
    if fits:
        print("\nPosterior means of the (a) fits:\n")
        print(
            pd.concat([fits[s].parameters().assign(size=f"{s}M") for s in fits])
            .pivot_table(index="parameter", columns="size", values="mean", sort=False)
            .to_markdown(floatfmt=".4g")
        )
    if per_run is not None:
        print("\n(d) per run, at step 30k (median [90% interval], the true loss; unknown: the posterior of the total length T):\n")
        end = per_run[per_run["step"] == TARGET].copy()
        end["prediction"] = [f"{m:.4f} [{lo:.4f}, {hi:.4f}]" for m, lo, hi in zip(end["median"], end["lower"], end["upper"])]
        end["T (unknown)"] = [f"{a:.0f} [{b:.0f}, {c:.0f}]" if np.isfinite(a) else "" for a, b, c in zip(end["T median"], end["T 5%"], end["T 95%"])]
        print(
            end[["run", "condition", "target", "loss", "prediction", "point", "R-hat max", "bulk ESS min", "divergences", "T (unknown)"]].to_markdown(
                index=False, floatfmt=".4g"
            )
        )
    if args.choose:
        choice = choose(runs, 4 if args.quick else 12)
        print("\n## Choice of the step term: leave-one-schedule-out point fits (mean / max relative error, %)\n")
        print(choice.pivot_table(index=["size", "held out"], columns="step term", values=["mean %", "max %"]).to_markdown(floatfmt=".3f"))
        print("\nAverage over the 12 folds:\n")
        print(choice.groupby("step term")[["mean %", "max %"]].mean().to_markdown(floatfmt=".3f"))


if __name__ == "__main__":
    main()
