"""The nested law with real NUTS on RedPajama pilots, through the command line: fit 70M-305M,
predict the held-out 410M runs at 30k steps, optimise the mixture for a 1B target under caps."""

from __future__ import annotations

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from bayes_mixlaw.baseline import point_power_law_predict
from bayes_mixlaw.cli import app
from bayes_mixlaw.runs import load_runs

DOMAINS = ["Pile-CC", "Github", "ArXiv"]
SIZE_410M = 302_311_424


def test_nested_fit_predicts_held_out_410m_and_optimizes(tmp_path, shared_data):
    table = load_runs(shared_data / "mixinglaws" / "RedPajama").data
    table = table[table["valid_domain"].isin(DOMAINS)].drop(columns="__row__", errors="ignore")
    train, held = table[table["params"] < SIZE_410M], table[(table["params"] == SIZE_410M) & (table["step"] == 30_000)]
    csv = tmp_path / "pilots.csv"
    train.to_csv(csv, index=False)
    weights = tmp_path / "w.json"
    weights.write_text('{"Pile-CC": 0.5, "Github": 0.3, "ArXiv": 0.2}')
    cli = CliRunner()
    fit = tmp_path / "fit.nc"
    result = cli.invoke(app, ["fit", str(csv), "--valid-weights", str(weights), "--fast", "--seed", "0", "-o", str(fit), "-q"])
    assert result.exit_code == 0, result.output
    # the discrepancy's scale learned from the pilots: both axes, from a calibration fit without the largest size
    # and the last checkpoints, unless that fit did not converge (said)
    from bayes_mixlaw import discrepancy_scale
    from bayes_mixlaw.model import BayesianLaw

    learned = discrepancy_scale.read(BayesianLaw.load(fit))
    assert set(learned) == {"size", "length"} or (not learned and "did not converge" in " ".join(result.output.split())), result.output

    mix_cols = [c for c in table.columns if c.startswith("mix:")]
    mixtures = held.groupby("run")[mix_cols].first().reset_index().rename(columns={"run": "name"})
    mixtures_csv = tmp_path / "m.csv"
    mixtures.to_csv(mixtures_csv, index=False)
    pred_csv = tmp_path / "pred.csv"
    result = cli.invoke(app, ["predict", str(fit), "--mixtures", str(mixtures_csv), "--params", str(SIZE_410M), "--step", "30000", "-o", str(pred_csv)])
    assert result.exit_code == 0, result.output
    pred = pd.read_csv(pred_csv)
    assert list(pred.columns)[: len(mix_cols) + 8] == ["name", *mix_cols, "params", "step", "target", "mean", "median", "lower", "upper"]
    assert {"beyond_mixture", "beyond_log_size", "beyond_log_length", "fit_converged"} <= set(pred.columns)
    assert (pred["beyond_mixture"] == 0).all() and (pred["beyond_log_size"] > 0).all() and (pred["beyond_log_length"] == 0).all()
    merged = pred.merge(held.rename(columns={"run": "name", "valid_domain": "target"})[["name", "target", "loss"]], on=["name", "target"])
    assert len(merged) == 60
    error = (merged["median"] - merged["loss"]).abs()
    coverage = ((merged["lower"] <= merged["loss"]) & (merged["loss"] <= merged["upper"])).mean()
    # the paper's per-run step law then per-mixture size law, point estimates, on the same losses
    point = []
    for (name, domain), g in merged.groupby(["name", "target"]):
        mix = name.split("_", 1)[1]
        per_size = train[(train["run"].str.endswith(mix)) & (train["valid_domain"] == domain)]
        at_30k = per_size.groupby("params").apply(lambda r: point_power_law_predict(r["step"].to_numpy(float), r["loss"].to_numpy(float), 30_000))
        point.append(abs(point_power_law_predict(at_30k.index.to_numpy(float), at_30k.to_numpy(), SIZE_410M) - g["loss"].iloc[0]))
    # the pilots' sizes read the same data in the same order: their deviations at 30k are shared (rho ~0.5 on real
    # data, bayes_mixlaw.checkpoint_noise), and the held-out 410M runs at 30k draw their noise given them
    from bayes_mixlaw.nested import NestedLaw

    law = NestedLaw.load(fit)
    assert np.median(law.checkpoint_shared) > 0.2, law.checkpoint_shared
    blind = NestedLaw.load(fit)
    blind.config = blind.config.model_copy(update={"shared_checkpoints": False})
    named = mixtures.set_index("name").loc[merged["name"].unique()].reset_index()
    unshared = blind.predict(named, params=SIZE_410M, step=30_000).merge(
        held.rename(columns={"run": "name", "valid_domain": "target"})[["name", "target", "loss"]], on=["name", "target"]
    )
    blind_error = (unshared["median"] - unshared["loss"]).abs().mean()
    print(f"410M@30k held out: MAE {error.mean():.4f} (without the shared checkpoints {blind_error:.4f}; point pipeline {np.mean(point):.4f})")
    print(f"90% coverage {coverage:.2f}")
    assert error.mean() < blind_error
    assert error.mean() < 0.03
    assert error.mean() < 1.5 * np.mean(point)
    assert coverage >= 0.5
    # the centre reported exists: a log-normal predictive's mean, finite and beside its median
    assert np.isfinite(pred["mean"]).all() and ((pred["mean"] - pred["median"]).abs() < 0.05 * pred["median"]).all()

    # a mixture written down to a rounded 1.02: refused with a pointer to --renormalize, accepted with it
    llama = tmp_path / "llama.csv"
    pd.DataFrame([dict(name="rounded", **dict(zip(mix_cols, [0.67, 0.15, 0.045, 0.045, 0.045, 0.025, 0.04])))]).to_csv(llama, index=False)
    args = ["predict", str(fit), "--mixtures", str(llama), "--params", "805736448", "--step", "100000"]
    result = cli.invoke(app, [*args, "-o", str(tmp_path / "llama_pred.csv")])
    assert result.exit_code != 0 and "--renormalize" in result.output
    result = cli.invoke(app, [*args, "--renormalize", "-o", str(tmp_path / "llama_pred.csv")])
    assert result.exit_code == 0, result.output
    assert "size 4x beyond the pilots" in result.output and "length 3.3x beyond the pilots" in result.output
    assert np.isfinite(pd.read_csv(tmp_path / "llama_pred.csv")[["mean", "lower", "upper"]].to_numpy()).all()

    caps = tmp_path / "caps.json"
    caps.write_text('{"caps": {"GitHub": 0.1}, "minimums": {"Books": 0.05}}')
    reference = tmp_path / "ref.csv"
    mixtures.iloc[:1].to_csv(reference, index=False)
    opt_csv = tmp_path / "opt.csv"
    result = cli.invoke(
        app,
        [
            "optimize",
            str(fit),
            "--params",
            "805736448",
            "--step",
            "100000",
            "--caps",
            str(caps),
            "--reference",
            str(reference),
            "--draws",
            "200",
            "-o",
            str(opt_csv),
        ],
    )
    assert result.exit_code == 0, result.output
    opt = pd.read_csv(opt_csv)
    proportions = opt[opt["quantity"] == "proportion"].set_index("item")["optimum"]
    assert proportions.sum() == np.float64(1.0) or abs(proportions.sum() - 1) < 1e-6
    assert proportions["GitHub"] <= 0.1 + 1e-9 and proportions["Books"] >= 0.05 - 1e-9
    loss = opt[opt["quantity"] == "loss"].iloc[0]
    assert loss["lower"] < loss["mean"] < loss["upper"]
    # a scale outside what was fitted on the wrong axis is a clear error
    result = cli.invoke(app, ["optimize", str(fit), "--params", "805736448", "--tokens", "1e11", "-o", str(tmp_path / "x.csv")])
    assert result.exit_code == 2 and "fitted on steps" in result.output
