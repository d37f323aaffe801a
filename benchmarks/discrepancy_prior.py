"""Where the nested law's default discrepancy prior comes from: how wrong the law's form is beyond the data.

The nested law's discrepancy (``bayes_mixlaw.discrepancy``) multiplies a prediction beyond the pilots
by ``exp(D kappa z)``: ``D`` the log-distance beyond the largest pilot size or longest pilot run, ``z``
standard normal. Its default scale ``kappa`` (per unit of log-distance) is measured here on data
outside any user's table (``../shared/data``), by fitting the law's form (the paper's point fit: Huber
on log loss, multi-start L-BFGS) on the small end of each series and reading the log-error of its
predictions against the log-distance beyond the fitted range:

* length: Luo et al. 2025's loss curves (three sizes; cosine, constant, WSD and two-stage schedules,
  which a step law that does not know the schedule must take as they come, as the mixinglaws pilots'
  undocumented schedule is): fit ``E + B S^-beta`` on steps up to a third of the run, predict the rest;
* size: Chinchilla's points (Epoch's digitisation): fit ``E + A N^-alpha + B D^-beta`` on the models
  up to a cut, predict the larger ones (cuts at several sizes);
* schedule (the schedule-aware law's ``discrepancy_schedule``): Luo et al.'s curves again, the schedule-aware law
  fitted on two training schedules and read on the third where it anneals, against the pending LR decrease
  (``bayes_mixlaw.discrepancy_schedule``) instead of a log-distance.

For each series: ``kappa = sqrt(mean((z / D)^2))`` over the predicted points (the RMS log-error per
log-unit of extrapolation). The printed table gives every series and the median, which are the
defaults of ``config.NESTED_PRIORS["discrepancy_length"]`` / ``["discrepancy_size"]`` and of
``scheduled_config.SCHEDULED_PRIORS["discrepancy_schedule"]``.

    python benchmarks/discrepancy_prior.py [--shared ../shared/data] [--axes length,size,mixture,schedule]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import minimize

from bayes_mixlaw.baseline import fit_point_power_law, huber


def length_series(shared: Path) -> list[dict]:
    rows = []
    for folder in sorted((shared / "multipowerlaw").glob("csv_*")):
        for path in sorted(folder.glob("*.csv")):
            curve = pd.read_csv(path)
            s, loss = curve["step"].to_numpy(float), curve["loss"].to_numpy(float)
            cut = s[0] + (s[-1] - s[0]) / 3
            fit, held = s <= cut, s > cut
            e, b, beta = fit_point_power_law(s[fit], loss[fit])
            pred = e + b * s[held] ** (-beta)
            z, d = np.log(loss[held] / pred), np.log(s[held] / s[fit].max())
            rows.append(
                {
                    "axis": "length",
                    "series": f"{folder.name[4:]}M {path.stem}",
                    "fit range": f"{s[0]:.0f}-{s[fit].max():.0f} steps",
                    "max distance": d.max(),
                    "bias at max": z[-1],
                    "kappa": float(np.sqrt(np.mean((z / d) ** 2))),
                }
            )
    return rows


def fit_chinchilla(n, d, loss, starts: int = 32, seed: int = 0):
    """Point fit of log L = log(E + A N^-alpha + B D^-beta) (Huber, delta 1e-3), as Epoch fits it."""
    rng = np.random.default_rng(seed)
    log_n, log_d, log_l = np.log(n), np.log(d), np.log(loss)

    def objective(theta):
        log_e, log_a, log_b, alpha, beta = theta
        pred = np.logaddexp(np.logaddexp(log_e, log_a - alpha * log_n), log_b - beta * log_d)
        return float(np.sum(huber(pred - log_l, 1e-3)))

    best = None
    for _ in range(starts):
        theta0 = [rng.uniform(-1, 1), rng.uniform(0, 25), rng.uniform(0, 25), rng.uniform(0, 2), rng.uniform(0, 2)]
        result = minimize(objective, theta0, method="L-BFGS-B")
        if best is None or result.fun < best.fun:
            best = result
    return best.x


def size_series(shared: Path) -> list[dict]:
    data = pd.read_csv(shared / "chinchilla" / "svg_extracted_data.csv")
    data = data.sort_values("loss").iloc[:-5]  # Epoch drops the 5 highest-loss points
    n, c, loss = data["Model Size"].to_numpy(float), data["Training FLOP"].to_numpy(float), data["loss"].to_numpy(float)
    d = c / (6 * n)
    rows = []
    for cut in (2e8, 5e8, 1e9):
        fit, held = n <= cut, n > cut * 1.5
        log_e, log_a, log_b, alpha, beta = fit_chinchilla(n[fit], d[fit], loss[fit])
        pred = np.exp(log_e) + np.exp(log_a) * n[held] ** (-alpha) + np.exp(log_b) * d[held] ** (-beta)
        z, dist = np.log(loss[held] / pred), np.log(n[held] / n[fit].max())
        rows.append(
            {
                "axis": "size",
                "series": f"Chinchilla, models <= {cut:.0e}",
                "fit range": f"{n[fit].min():.1e}-{n[fit].max():.1e} params",
                "max distance": dist.max(),
                "bias at max": float(np.median(z[dist > np.quantile(dist, 0.8)])),
                "kappa": float(np.sqrt(np.mean((z / dist) ** 2))),
            }
        )
    return rows


def _wide(runs, step=None, params=None):
    """(mixtures, losses) of a runs table at one scale: one row per run, losses (runs x validation domains)."""
    data = runs.data
    if step is not None:
        data = data[data["step"] == step]
    if params is not None:
        data = data[data["params"] == params]
    losses = data.pivot_table(index="run", columns="valid_domain", values="loss").dropna(axis=1)
    mixtures = data.groupby("run")[runs.mix_columns].first().loc[losses.index]
    return mixtures.to_numpy(float), losses.to_numpy(float)


def mixture_series(shared: Path) -> list[dict]:
    """Mixing-law form error beyond the pilots' hull: fit the explicit law (Ye et al.; the paper's point
    fit) on the runs whose share of one training domain is below a quantile, predict the others, and
    read the log-error against their total-variation distance from the fitted runs' hull
    (``bayes_mixlaw.discrepancy.mixture_distance``), less the fitted runs' own residual variance:
    ``kappa^2 = mean(z^2 - s_v^2) / mean(D^2)`` (the law's form error per unit of distance)."""
    from bayes_mixlaw.baseline import fit_point_mixing_laws
    from bayes_mixlaw.discrepancy import mixture_distance
    from bayes_mixlaw.laws import mixing_law
    from bayes_mixlaw.runs import load_runs

    # RegMix: the one public table with enough mixtures to hold some out beyond the others' hull (the
    # mixinglaws tables have 3-21 mixtures at a scale; 5Mix is the package's own held-out-mixture check)
    r, losses = _wide(load_runs(shared / "regmix"))
    sets = {"RegMix 1M (512 runs, 17 domains; 5 validation domains)": (r, losses[:, :5])}  # 17-domain fits are slow: 5 of 13
    rows = []
    for name, (r, losses) in sets.items():
        for j in np.argsort(-r.mean(axis=0))[:4]:  # the most used training domains
            cut = np.quantile(r[:, j], 0.7)
            fit, held = r[:, j] <= cut, r[:, j] > cut
            log_c, log_k, t = fit_point_mixing_laws(r[fit], losses[fit], starts=4)
            z_fit = np.log(losses[fit] / mixing_law(r[fit], log_c, log_k, t))
            z = np.log(losses[held] / mixing_law(r[held], log_c, log_k, t))
            d = mixture_distance(r[held], r[fit])
            outside = d > 1e-6
            excess = np.mean(z[outside] ** 2 - (z_fit**2).mean(axis=0))
            kappa = float(np.sqrt(max(excess, 0.0) / np.mean(d[outside] ** 2))) if outside.any() else np.nan
            rows.append(
                {
                    "axis": "mixture",
                    "series": f"{name}, share of domain {j} > {cut:.2f} held out",
                    "fit range": f"{int(fit.sum())} runs",
                    "max distance": float(d.max()),
                    "bias at max": float(np.median(z[d >= np.quantile(d, 0.8)])),
                    "kappa": kappa,
                }
            )
            print(rows[-1], flush=True)
    return rows


def schedule_series(shared: Path) -> list[dict]:
    """The schedule-aware law's annealing-response error (``bayes_mixlaw.discrepancy_schedule``): on Luo et al.'s
    curves, per size, fit the law (the benchmark's point fit: Huber on log loss, multi-start L-BFGS) on two of the
    three training schedules of ``benchmarks/schedules.py`` and predict the third where it anneals (cosine_24000 and
    wsdcon_9 held out in turn; the WSD curve, that benchmark's held-out test, is used nowhere here). The log-error,
    less the held-out run's own level (its mean error before its decay, where it has one), is read against the
    pending LR decrease m_t (Tissue's momentum): ``kappa = sqrt(mean(z^2) / mean(m^2))`` over the annealing points."""
    from schedules import SCHEDULES, TRAIN, point_fit

    from bayes_mixlaw.discrepancy_schedule import pending_decrease
    from bayes_mixlaw.runs import load_runs
    from bayes_mixlaw.scheduled import ScheduledScalingLaw
    from bayes_mixlaw.schedules import Schedule

    runs = load_runs(shared / "multipowerlaw")
    data = runs.data
    rows = []
    for size in sorted(data["params"].unique()):
        prefix = f"{size / 1e6:.0f}"  # the runs are named 25/cosine_24000, ...
        name = f"{prefix}M"
        for held in ("cosine_24000", "wsdcon_9"):
            train = data[(data["params"] == size) & data["run"].isin([f"{prefix}/{s}" for s in TRAIN if s != held])].reset_index(drop=True)
            predict, _ = point_fit(ScheduledScalingLaw(), train, 8)
            curve = data[data["run"] == f"{prefix}/{held}"]
            steps, loss = curve["step"].to_numpy(), curve["loss"].to_numpy()
            schedule = Schedule.from_dict(SCHEDULES[held])
            z = np.log(loss / predict(size, schedule, steps))
            peak = schedule.lr(steps).max()
            m = pending_decrease(schedule.features(steps, lr_ref=peak).s2, schedule.features(steps - 1, lr_ref=peak).s2)
            before = schedule.lr(steps) >= 0.99 * peak
            z = z - (z[before].mean() if before.sum() > 5 else 0.0)
            annealing = ~before
            rows.append(
                {
                    "axis": "schedule",
                    "series": f"{name} {held} (fitted on the other two)",
                    "fit range": f"{len(train)} points",
                    "max distance": float(m.max()),
                    "bias at max": float(z[np.argmax(m)]),
                    "kappa": float(np.sqrt(np.mean(z[annealing] ** 2) / np.mean(m[annealing] ** 2))),
                }
            )
            print(rows[-1], flush=True)
    return rows


SERIES = {"length": length_series, "size": size_series, "mixture": mixture_series, "schedule": schedule_series}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--shared", default="../shared/data")
    parser.add_argument("--axes", default=",".join(SERIES), help=f"which axes to measure, of {', '.join(SERIES)}")
    args = parser.parse_args()
    shared = Path(args.shared)
    table = pd.DataFrame([row for axis in args.axes.split(",") for row in SERIES[axis](shared)])
    print(table.to_markdown(index=False, floatfmt=".4f"))
    print()
    print(table.groupby("axis")["kappa"].describe()[["count", "min", "50%", "max"]].to_markdown(floatfmt=".4f"))


if __name__ == "__main__":
    main()
