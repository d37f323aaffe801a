"""Calibration of the nested law on data simulated from the model itself, extrapolations included.

A "truth" is one posterior draw of the nested law fitted to real pilots (RedPajama, a few validation
domains). From it a whole table is simulated exactly as the model generates data: each mixture's
departure from the mixing law, each run's level and slope in log-steps, the
observation noise, and beyond the pilots the model discrepancy (a law-form error drawn from its prior).
The nested law is refitted on the simulated pilots (every size but the largest) and predicts the
held-out runs at the largest size and at a longer length; 90% intervals should cover about 90%.

    python benchmarks/nested_simulated.py [--replicates 8] [--domains ArXiv,Github,Pile-CC,Books3,Wikipedia_en] [--error-inside]

With ``--error-inside`` the law-form error starts inside the pilots (at their second-largest size and at
16k steps): a drift shared by every run and domain, a part each run shares across its domains and each
domain's own; beyond them the drift goes on with a persistence phi ~ U(0, 1) and the run and domain parts
are drawn afresh, their scale from the external prior: the story the discrepancy learned from the pilots
(``bayes_mixlaw.discrepancy_scale``) assumes, so its coverage should be nominal there. A run at the held-out size is a
new run: its own part of the error covers the distance beyond the pilots only, as the model predicts a new run
(``--unseen-run-part``: from where the law starts to err, an error of each new run's that no pilot shows).
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from bayes_mixlaw import discrepancy_scale
from bayes_mixlaw.config import NestedLawConfig
from bayes_mixlaw.coverage import coverage_spread
from bayes_mixlaw.nested import NestedLaw
from bayes_mixlaw.runs import MIX_PREFIX, RunsTable, load_runs
from bayes_mixlaw.summary import DEFAULT_CI, summarize_draws
from bayes_mixlaw.targets import Targets

warnings.simplefilter("ignore")

BOTH_AXES = ",".join(discrepancy_scale.AXES)  # a replicate's "learned": the pilots set the discrepancy on every axis


def one_draw(law: NestedLaw, index: int) -> NestedLaw:
    """``law`` with its posterior cut to one draw (the simulation's truth)."""
    truth = NestedLaw(law.config, law.targets)
    post = law.idata["posterior"].to_dataset().stack(sample=("chain", "draw")).isel(sample=[index])
    post = post.drop_vars(["sample", "chain", "draw"]).rename_dims({"sample": "draw"}).expand_dims("chain")
    truth.idata = law.idata.copy()
    truth.idata["posterior"] = xr.DataTree(post.transpose("chain", "draw", ...))
    return truth


def external_kappa(rng: np.random.Generator, names) -> dict:
    """The truth's law-form error per log-unit, drawn from the external priors (``NESTED_PRIORS``)."""
    from bayes_mixlaw.config import NESTED_PRIORS

    return {name: float(np.exp(NESTED_PRIORS[name].parameters["mu"] + NESTED_PRIORS[name].parameters["sigma"] * rng.normal())) for name in names}


def kinked_error(x: float, start: float, edge: float, inside_rate: np.ndarray, beyond_rate: np.ndarray) -> np.ndarray:
    """The learned discrepancy's own story (``bayes_mixlaw.discrepancy_scale``): the law starts to err at ``start``
    (inside the pilots) by ``inside_rate`` per log-unit (:func:`error_rates`), and beyond the pilots' ``edge`` goes on
    by ``beyond_rate`` per log-unit (each (mixtures, domains), one size's runs)."""
    return max(0.0, np.log(min(x, edge) / start)) * inside_rate + max(0.0, np.log(x / edge)) * beyond_rate


def error_rates(kappa: float, rho: float, shape: tuple, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Law-form error per log-unit of each run and domain, each shape (mixtures, sizes, domains): ``inside`` the
    pilots ``m + kappa (sqrt(rho) eta_r + sqrt(1 - rho) xi_v)``, a drift ``m ~ N(0, kappa^2)`` shared by every run and
    domain, a part each run shares across its domains and each domain's own; ``inside_shared`` the same less the
    runs' own part; ``beyond`` them ``phi m`` (phi ~ U(0, 1)) plus fresh run and domain parts of the same scale."""
    m, phi = kappa * rng.normal(), rng.uniform()

    def parts():
        return kappa * np.sqrt(rho) * rng.normal(size=(*shape[:2], 1)), kappa * np.sqrt(1 - rho) * rng.normal(size=(1, 1, shape[2]))

    (run, domain), (run_beyond, domain_beyond) = parts(), parts()
    return {"inside": m + run + domain, "inside_shared": np.broadcast_to(m + domain, (run + domain).shape), "beyond": phi * m + run_beyond + domain_beyond}


def simulate(
    truth: NestedLaw,
    mixtures: np.ndarray,
    sizes,
    lengths,
    rng: np.random.Generator,
    beyond: dict,
    inside: dict | None = None,
    unseen_run_part: bool = False,
) -> pd.DataFrame:
    """A runs table from the truth: every mixture (as a new one: its departure drawn),
    size and length, each run with its own level and slope, noise, and the discrepancy beyond ``beyond``.
    ``inside`` ({name: where the law starts to err}): the error starts inside the pilots, its drift persists
    beyond them by a fraction phi ~ U(0, 1) (:func:`kinked_error`, :func:`error_rates`), kappa from the external prior.
    A run at a size beyond the pilots' (``beyond["discrepancy_size"]``) is a new run: as the model predicts it, its own
    part of the error covers the distance beyond the pilots only, the shared and domain parts all of it (the drift inside
    the pilots, which the fit absorbs, and beyond). ``unseen_run_part``: its own part covers the distance from where the
    law starts to err too, an error of each new run's that no pilot shows and the model does not assume (the story
    before 2026-12-05)."""
    post = truth.idata["posterior"]
    valid = truth.valid_domains
    seed = int(rng.integers(2**31))
    reference = truth._relative_scale(1.0, 1.0)
    s0 = 1.0 / reference[1]
    tau_u, tau_w, noise = (post[k].values[0, 0] for k in ("run_sigma", "run_slope_sigma", "noise_sigma"))
    run_u = rng.normal(size=(len(mixtures), len(sizes), len(valid))) * tau_u
    run_w = rng.normal(size=(len(mixtures), len(sizes), len(valid))) * tau_w
    z = {name: np.sqrt(0.75) * rng.normal() + np.sqrt(0.25) * rng.normal(size=len(valid)) for name in beyond}
    kappa = {name: float(post[name].values[0, 0]) for name in beyond}
    if inside:
        kappa = external_kappa(rng, beyond)
        rates = {name: error_rates(kappa[name], 0.75, (len(mixtures), len(sizes), len(valid)), rng) for name in beyond}
    rows = []
    pilots = truth._pilot_index
    truth._pilot_index = lambda r: np.full(len(r), -1)  # every mixture as a new one: its departure drawn
    try:
        for i, n in enumerate(sizes):
            # a run beyond the pilots' sizes is a new run: its own part of the inside error is not drawn (unseen_run_part)
            inside_part = "inside_shared" if n > beyond["discrepancy_size"] and not unseen_run_part else "inside"
            for s in lengths:
                # the same seed for every scale: a mixture's drawn departure and slope are its own at every scale
                law = truth.law_draws(mixtures, float(n), float(s), rng=np.random.default_rng(seed), new_runs=False, run_effects=False)[0, 0]
                log_loss = np.log(law) + run_u[:, i] + run_w[:, i] * np.log(s / s0) + noise * rng.normal(size=law.shape)
                for name, edge in beyond.items():  # the law-form error beyond the pilots
                    x = n if name == "discrepancy_size" else s
                    if inside:
                        log_loss = log_loss + kinked_error(float(x), inside[name], edge, rates[name][inside_part][:, i], rates[name]["beyond"][:, i])
                    else:
                        log_loss = log_loss + max(0.0, np.log(x / edge)) * kappa[name] * z[name]
                for m, mix in enumerate(mixtures):
                    for v, domain in enumerate(valid):
                        rows.append(
                            {
                                "run": f"{int(n)}_sim{m}",
                                "params": int(n),
                                "step": int(s),
                                "valid_domain": domain,
                                "loss": float(np.exp(log_loss[m, v])),
                                **{MIX_PREFIX + t: float(x) for t, x in zip(truth.train_domains, mix)},
                            }
                        )
    finally:
        truth._pilot_index = pilots
    return pd.DataFrame(rows)


def coverage_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Per check and level (domains, total): losses, how many the 90% intervals covered, mean width, mean bias, the
    fits' worst R-hat and ESS, the most divergences of one fit, how many replicates converged, in how many the
    pilots set both axes' discrepancy (else an axis keeps its external prior: its calibration fit did not converge), and the coverage. Within a replicate
    the losses share one truth and one law-form error: the replicates, not the losses, are the independent draws."""
    summary = rows.groupby(["check", "level"]).agg(
        losses=("n", "sum"),
        covered=("covered", "sum"),
        width=("width", "mean"),
        bias=("bias", "mean"),
        max_rhat=("R-hat", "max"),
        min_ess=("ESS", "min"),
        max_divergences=("divergences", "max"),
        replicates=("replicate", "nunique"),
    )
    summary["converged"] = rows[rows["converged"]].groupby(["check", "level"])["replicate"].nunique().reindex(summary.index, fill_value=0)
    learned = rows[rows["learned"] == BOTH_AXES]  # the calibration fit converged on both axes: the drift learned
    summary["learned"] = learned.groupby(["check", "level"])["replicate"].nunique().reindex(summary.index, fill_value=0)
    # each replicate's coverage against its spread if the fit were right: how many replicates land in 0.85-0.95, how
    # many the fits expected to (the sum of their chances), and the observed coverage's mean mid-percentile (0.5 if
    # the fits' spread is the truth's)
    per_replicate = rows.groupby(["check", "level", "replicate"]).agg(
        covered=("covered", "sum"), n=("n", "sum"), chance=("P(in 0.85-0.95) if right", "first"), percentile=("percentile if right", "first")
    )
    per_replicate["in band"] = (per_replicate["covered"] / per_replicate["n"] - 0.9).abs() <= 0.05 + 1e-9
    by = per_replicate.groupby(["check", "level"])
    summary["in 0.85-0.95"] = by["in band"].sum()
    summary["expected in it"] = by["chance"].sum()
    summary["mean percentile"] = by["percentile"].mean()
    return summary.assign(**{"90% coverage": summary["covered"] / summary["losses"]})


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--shared", default="../shared/data")
    parser.add_argument("--replicates", type=int, default=8)
    parser.add_argument("--domains", default="ArXiv,Github,Pile-CC,Books3,Wikipedia_en")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--error-inside",
        action="store_true",
        help="the law starts to err inside the pilots (second-largest pilot size, 16k steps); its drift persists beyond "
        "them by phi ~ U(0, 1), its run and domain parts drawn afresh, kappa from the external prior: the story the "
        "learned discrepancy assumes",
    )
    parser.add_argument(
        "--unseen-run-part",
        action="store_true",
        help="with --error-inside: a run at the held-out size also carries its own part of the error from where the law "
        "starts to err, which no pilot shows (not the model's story; the simulation's before 2026-12-05)",
    )
    parser.add_argument("--save", default=None, help="a folder to save each replicate's fit in (replicate_<i>.nc)")
    parser.add_argument("--no-learn", action="store_true", help="fit with the external discrepancy priors only (learn_discrepancy off)")
    args = parser.parse_args()
    runs = load_runs(f"{args.shared}/mixinglaws/RedPajama")
    data = runs.data[runs.data["valid_domain"].isin(args.domains.split(","))]
    runs = RunsTable(data.reset_index(drop=True), runs.source)
    targets = Targets()
    start = time.perf_counter()
    base = NestedLaw(targets=targets).fit(runs, seed=args.seed, progress=False)
    print(f"truth fit: {time.perf_counter() - start:.0f} s; {base.diagnostics.summary()}", flush=True)
    sizes = sorted(data["params"].unique())
    lengths = sorted(data["step"].unique())
    mixtures = base.pilot_mixtures
    rng = np.random.default_rng(args.seed)
    total = len(base.idata["posterior"]["draw"]) * len(base.idata["posterior"]["chain"])
    rows = []
    for rep in range(args.replicates):
        truth = one_draw(base, int(rng.integers(total)))
        # pilots: sizes below the largest, steps up to 20k; held out: the largest size at 30k, and 60k at a pilot size
        beyond = {"discrepancy_size": sizes[-2], "discrepancy_length": 20_000}
        inside = {"discrepancy_size": sizes[-3], "discrepancy_length": 16_000} if args.error_inside else None
        table = simulate(truth, mixtures, sizes, [*lengths, 60_000], rng, beyond, inside, args.unseen_run_part)
        pilots = table[(table["params"] < sizes[-1]) & (table["step"] <= 20_000)]
        config = NestedLawConfig(learn_discrepancy=not args.no_learn)
        law = NestedLaw(config, targets).fit(RunsTable(pilots.reset_index(drop=True), "simulated"), seed=rep, progress=False)
        d = law.diagnostics
        if args.save:
            law.save(Path(args.save) / f"replicate_{rep}.nc")
        for label, mask in (
            ("size: largest model at 30k", (table["params"] == sizes[-1]) & (table["step"] == 30_000)),
            ("length: 60k at the pilot sizes", (table["params"] < sizes[-1]) & (table["step"] == 60_000)),
        ):
            held = table[mask]
            joint = {"domains": ([], []), "total": ([], [])}  # level -> (draws per (params, step) call, observed)
            first_row = len(rows)
            for (n, s), g in held.groupby(["params", "step"]):
                wide = g.pivot(index="run", columns="valid_domain", values="loss")
                mix = g.groupby("run")[[c for c in g.columns if c.startswith(MIX_PREFIX)]].first().loc[wide.index]
                frame = mix.reset_index(drop=True).assign(name=list(wide.index))
                draws = law.predict_draws(frame, params=n, step=s, seed=rep)  # the joint draws, read whole below
                pred = summarize_draws(draws, frame, DEFAULT_CI)  # each loss's interval, as law.predict gives it
                # the weighted total of each run's observed losses, as the fit's targets weigh its domains
                names, matrix = law.targets.matrix(list(wide.columns))
                observed = g.rename(columns={"run": "name", "valid_domain": "target"})[["name", "target", "loss"]]
                totals = pd.DataFrame({"name": wide.index, "target": "total", "loss": wide.values @ matrix[names.index("total")]})
                flat = draws.values.reshape(-1, *draws.shape[2:])
                order = list(draws["target"].values)
                joint["domains"][0].append(flat[:, :, [order.index(v) for v in wide.columns]].reshape(len(flat), -1))
                joint["domains"][1].append(wide.to_numpy().ravel())
                joint["total"][0].append(flat[:, :, order.index("total")])
                joint["total"][1].append(totals["loss"].to_numpy())
                for level, truth_rows in (("domains", observed), ("total", totals)):
                    merged = pred.merge(truth_rows, on=["name", "target"])
                    inside = (merged["lower"] <= merged["loss"]) & (merged["loss"] <= merged["upper"])
                    rows.append(
                        {
                            "replicate": rep,
                            "check": label,
                            "level": level,
                            "n": len(merged),
                            "covered": int(inside.sum()),
                            "width": float((merged["upper"] - merged["lower"]).mean()),
                            "bias": float((merged["median"] - merged["loss"]).mean()),
                            "R-hat": d.max_rhat,
                            "ESS": d.min_ess_bulk,
                            "divergences": d.divergences,
                            "converged": bool(d.max_rhat <= 1.01 and d.min_ess_bulk >= 400 and d.divergences == 0),
                            "learned": ",".join(discrepancy_scale.read(law)) or "none",
                        }
                    )
            # the check's coverage against its spread if the fit were right (the calls' draws paired by the same seed)
            for level, (parts, seen) in joint.items():
                spread = coverage_spread(np.concatenate(parts, axis=1), np.concatenate(seen))
                for row in rows[first_row:]:
                    if row["level"] == level:
                        row |= {"P(in 0.85-0.95) if right": spread["within band"], "percentile if right": spread["percentile"]}
        # this replicate, per check (its losses share one truth and one law-form error: one draw each, not n)
        print(coverage_table(pd.DataFrame(rows).query("replicate == @rep")).to_markdown(floatfmt=".3f"), flush=True)
    print()
    rows = pd.DataFrame(rows)
    print(coverage_table(rows).to_markdown(floatfmt=".3f"))
    print("\nconverged replicates only (R-hat <= 1.01, bulk ESS >= 400, no divergences):")
    print(coverage_table(rows[rows["converged"]]).to_markdown(floatfmt=".3f") if rows["converged"].any() else "none")
    both = rows["converged"] & (rows["learned"] == BOTH_AXES)
    print("\nconverged, the discrepancy learned on both axes:")
    print(coverage_table(rows[both]).to_markdown(floatfmt=".3f") if both.any() else "none")


if __name__ == "__main__":
    main()
