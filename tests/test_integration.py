"""Real NUTS (nutpie) on real data: the paper's fit, RegMix ranking, calibration, the CLI."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from bayes_mixlaw import MixingLaw, datasets, load_runs
from bayes_mixlaw.runs import MIX_PREFIX, RunsTable

# Ye et al. (2025), 5Mix 70M/30k: [log_c, log_k, t_academic, t_prose, t_dialogue, t_symbolic, t_internet]
PUBLISHED = {
    "academic": [0.975, -2.139, -10.09, 2.71, 2.71, 2.61, 1.59],
    "prose": [1.262, -2.166, 1.39, -4.68, 0.79, 1.87, 0.57],
    "internet": [1.240, -1.951, 1.19, 0.87, -0.52, 1.71, -3.09],
}


def quiet_fit(law, runs, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return law.fit(runs, progress=False, **kw)


def test_reproduces_published_5mix_fit():
    runs = datasets.mixinglaws_5mix_70m().select(step=30000)
    groups = datasets.pile_targets().aggregate(runs)  # the paper fits the group losses
    # the default sampler: 2 chains, 1000 warm-up steps, draws until the checked quantities have converged
    law = quiet_fit(MixingLaw(), groups, seed=0)
    kept = law.idata["posterior"].sizes["draw"]
    assert kept % 250 == 0 and kept < law.config.sampler.draws, kept  # stopped at a check, before the cap
    assert law.diagnostics.converged, law.diagnostics.problems
    p = law.parameters(ci=0.95)
    for group, values in PUBLISHED.items():
        mine = p[p["valid_domain"] == group]
        log_c = mine[mine["parameter"] == "log_c"].iloc[0]
        assert abs(log_c["mean"] - values[0]) < 0.02, (group, log_c["mean"], values[0])
        t_pub = np.array(values[2:]) - np.mean(values[2:])  # the sum-to-zero convention
        t = mine[mine["parameter"] == "t"].set_index("train_domain").loc[runs.train_domains]
        inside = (t["lower"].to_numpy() <= t_pub) & (t_pub <= t["upper"].to_numpy())
        assert inside.all(), (group, t_pub, t[["lower", "mean", "upper"]])
        assert np.corrcoef(t["mean"], t_pub)[0, 1] > 0.95
    assert law.diagnostics.divergences == 0


def test_regmix_heldout_ranking(shared_data):
    runs = load_runs(shared_data / "regmix")
    data = runs.data[runs.data["valid_domain"] == "pile_cc"]
    names = runs.runs
    rng = np.random.default_rng(0)
    test_runs = set(rng.choice(names, size=128, replace=False))
    train = RunsTable(data[~data["run"].isin(test_runs)].reset_index(drop=True), runs.source)
    test = data[data["run"].isin(test_runs)]
    law = quiet_fit(MixingLaw(), train, seed=0, draws=300, tune=300)
    mixtures = test[[*runs.mix_columns]].assign(name=test["run"].to_numpy())
    pred = law.predict(mixtures, kind="mean").query("target == 'pile_cc'")
    rho = spearmanr(pred["mean"], test["loss"]).statistic
    print(f"RegMix Pile-CC held-out Spearman rho = {rho:.3f} (LightGBM, published: 0.989)")
    assert rho > 0.9


def _simulated(seed: int, n_fit: int = 20, n_test: int = 20):
    """One data set drawn from the model's own prior predictive (3 training x 3 validation domains)."""
    rng = np.random.default_rng(seed)
    train_domains, valid = ["a", "b", "c"], ["x", "y", "z"]
    mixtures = rng.dirichlet(np.ones(3), size=n_fit + n_test)
    rows = [
        {"run": f"r{i}", "valid_domain": v, "loss": 1.0, **{MIX_PREFIX + d: p for d, p in zip(train_domains, m)}} for i, m in enumerate(mixtures) for v in valid
    ]
    table = load_runs(pd.DataFrame(rows))
    draw = MixingLaw().sample_prior_predictive(table, draws=1, seed=seed)  # loss scale 1: absolute losses
    frame = table.data.copy()
    frame["loss"] = draw["prior_predictive"]["loss"].values.ravel()
    fit_rows = frame["run"].isin([f"r{i}" for i in range(n_fit)])
    return RunsTable(frame[fit_rows].reset_index(drop=True)), frame[~fit_rows]


def test_calibration_on_data_simulated_from_the_model():
    covered, total = 0, 0
    for seed in range(4):
        train, test = _simulated(seed)
        law = quiet_fit(MixingLaw(), train, seed=seed, draws=300, tune=400)
        mixtures = test.groupby("run", sort=False)[[c for c in test if c.startswith(MIX_PREFIX)]].first()
        pred = law.predict(mixtures.reset_index(drop=True).assign(name=list(mixtures.index)), ci=0.9, seed=seed)
        merged = test.merge(pred, left_on=["run", "valid_domain"], right_on=["name", "target"])
        covered += int(((merged["lower"] <= merged["loss"]) & (merged["loss"] <= merged["upper"])).sum())
        total += len(merged)
    coverage = covered / total
    print(f"90% predictive intervals cover {coverage:.3f} of {total} held-out simulated losses")
    assert 0.8 <= coverage <= 0.97


def test_cli_fit_predict_roundtrip_and_clear_errors(tmp_path, shared_data):
    from typer.testing import CliRunner

    from bayes_mixlaw.cli import app

    cli = CliRunner()
    runs = load_runs(shared_data / "mixinglaws" / "2Mix").select(params=18_915_328, step=30000)
    csv = tmp_path / "runs.csv"
    runs.data.to_csv(csv, index=False)
    config = tmp_path / "config.yaml"
    config.write_text("sampler: {draws: 200, tune: 300, chains: 2}\n")
    fit = tmp_path / "fit.nc"
    result = cli.invoke(app, ["fit", str(csv), "--config", str(config), "--seed", "1", "-o", str(fit), "-q"])
    assert result.exit_code == 0, result.output
    mixtures = tmp_path / "m.csv"
    pd.DataFrame({"name": ["even", "code-heavy"], "mix:Github": [0.5, 0.8], "mix:Pile-CC": [0.5, 0.2]}).to_csv(mixtures, index=False)
    pred = tmp_path / "pred.csv"
    result = cli.invoke(app, ["predict", str(fit), "--mixtures", str(mixtures), "--ci", "0.8", "-o", str(pred)])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(pred)
    assert list(table.columns) == [
        "name",
        "mix:Github",
        "mix:Pile-CC",
        "target",
        "mean",
        "median",
        "lower",
        "upper",
        "beyond_mixture",
        "fit_converged",
        "fit_max_rhat",
        "fit_min_ess_bulk",
        "fit_divergences",
    ]
    assert (table.set_index("name")["beyond_mixture"].groupby(level=0).first() >= 0).all()
    assert set(table["target"]) == {"Github", "Pile-CC", "total"}
    # never overwrite without --force
    result = cli.invoke(app, ["predict", str(fit), "--mixtures", str(mixtures), "-o", str(pred)])
    assert result.exit_code == 2 and "exists; pass --force" in result.output
    # bad input: one line naming file, row and column, no traceback
    broken = runs.data.copy()
    broken.loc[3, "loss"] = -1.0
    broken.to_csv(csv, index=False)
    result = cli.invoke(app, ["fit", str(csv), "-o", str(tmp_path / "x.nc"), "-q"])
    assert result.exit_code == 2
    assert f"{csv}, row 5, column 'loss'" in result.output.replace("\n", "") and "Traceback" not in result.output


def test_runtime_dependencies_cover_what_the_report_imports():
    """A plain `pip install .` must give the report: every optional package pandas loads for it is a
    runtime dependency, not only a test extra (tabulate was once test-only and the report failed)."""
    import tomllib
    from pathlib import Path

    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]
    runtime = {d.split(">")[0].split("=")[0].split("<")[0].strip().lower() for d in project["dependencies"]}
    for module in ("tabulate", "jinja2", "matplotlib"):
        assert module in runtime, f"{module} is needed at run time (report) but is not a runtime dependency"
