"""The discrepancy's scale learned from the pilots (bayes_mixlaw.discrepancy_scale): the grid posterior
of log kappa, the leave-largest-scale-out split, and a nested fit that records what it learned."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from bayes_mixlaw import Targets, discrepancy_scale
from bayes_mixlaw.config import NestedLawConfig
from bayes_mixlaw.model import BayesianLaw
from bayes_mixlaw.nested import NestedLaw
from bayes_mixlaw.runs import RunsTable, load_runs

DOMAINS = ["Pile-CC", "Github", "ArXiv"]


def simulated_slopes(kappa, n_domains, rho, s, rng, groups=1, drift=0.0):
    """Slopes (groups, domains) from the calibration's model: a shared drift, a shared error per group, each domain's
    own error, and the calibration fit's own noise ``s``."""
    xi = np.sqrt(rho) * rng.standard_normal((groups, 1)) + np.sqrt(1 - rho) * rng.standard_normal((1, n_domains))
    return drift + kappa * xi + s * rng.standard_normal((groups, n_domains)), np.full((groups, n_domains), s**2)


@pytest.mark.parametrize("kappa", [0.004, 0.02, 0.08])
def test_log_kappa_posterior_recovers_the_scale_that_made_the_slopes(kappa):
    """Slopes simulated from the calibration's own model (3 groups x 22 domains, rho 0.75, a drift, a calibration
    error of 0.002 per log-unit) under a vague prior: the truth lies within the posterior's 95% range in most
    replicates, and the posterior means follow the truth's order."""
    rng = np.random.default_rng(0)
    inside, means = 0, []
    for _ in range(40):
        u, s2 = simulated_slopes(kappa, 22, 0.75, 0.002, rng, groups=3, drift=-0.01)
        mean, sd = discrepancy_scale.GridPosterior(u, s2, 0.75, np.log(0.02), 3.0).log_kappa()
        inside += abs(np.log(kappa) - mean) < 1.96 * sd
        means.append(mean)
    assert inside >= 32  # nominal 38 of 40; the normal summary of a skewed grid posterior is approximate
    assert abs(np.median(means) - np.log(kappa)) < 0.5


def test_the_pilots_move_the_external_prior_and_it_holds_where_they_say_little():
    prior = (np.log(0.017), 0.5)

    def log_kappa(u, s2):
        return discrepancy_scale.GridPosterior(u, s2, 0.75, *prior).log_kappa()

    small = log_kappa(np.full(22, 1e-4), np.full(22, 1e-8))
    large = log_kappa(np.linspace(0.05, 0.15, 22), np.full(22, 1e-8))
    vague = log_kappa(np.zeros(22), np.full(22, 1.0))  # slopes known to +-1: no news
    assert small[0] < prior[0] - 0.3 and large[0] > prior[0] + 0.3
    assert vague == pytest.approx(prior, abs=0.02)
    # a shared drift alone is the drift's, not a fresh error's: slopes that differ only by it say the same of kappa
    assert log_kappa(np.linspace(0.05, 0.15, 22) - 0.3, np.full(22, 1e-8)) == pytest.approx(large, abs=1e-6)
    # a domain with no left-out loss is skipped, not a NaN posterior
    u = np.r_[np.linspace(0.0, 0.02, 21), np.nan]
    assert np.isfinite(log_kappa(u, np.full(22, 1e-6))).all()


def test_split_leaves_out_the_largest_size_and_the_last_fifth_of_the_log_length(shared_data):
    runs = load_runs(shared_data / "mixinglaws" / "RedPajama")
    kept, cuts = discrepancy_scale.split(runs, "step", 0.2)
    sizes = np.sort(runs.data["params"].unique())
    assert cuts["params"] == sizes[-2] and kept.data["params"].max() == sizes[-2]
    steps = np.sort(runs.data["step"].unique())
    assert steps[0] < cuts["step"] < steps[-1] and kept.data["step"].max() == cuts["step"]
    assert np.log(steps[-1] / cuts["step"]) <= 0.2 * np.log(steps[-1] / steps[0]) + np.log(steps[-1] / steps[-2])
    two_sizes = RunsTable(runs.data[runs.data["params"] <= sizes[1]].reset_index(drop=True), runs.source)
    assert "params" not in discrepancy_scale.split(two_sizes, "step", 0.2)[1]  # three sizes needed
    three_sizes = RunsTable(runs.data[runs.data["params"] <= sizes[2]].reset_index(drop=True), runs.source)
    assert discrepancy_scale.split(three_sizes, "step", 0.2)[1]["params"] == sizes[1]
    # the largest size only beyond the length cut (3Mix's 410M runs): no loss is beyond on size alone, so no size axis
    late_largest = runs.data[(runs.data["params"] < sizes[-1]) | (runs.data["step"] > cuts["step"])]
    assert "params" not in discrepancy_scale.split(RunsTable(late_largest.reset_index(drop=True), runs.source), "step", 0.2)[1]


def test_the_calibration_fit_is_the_full_fits_model_on_the_kept_losses(shared_data):
    """One compiled model serves both fits: the calibration's layout keeps the whole grid (its structure key is the
    full fit's, without discrepancy) and reads only the kept losses, at their own reference scale."""
    table = load_runs(shared_data / "mixinglaws" / "RedPajama")
    runs = RunsTable(table.data[table.data["valid_domain"].isin(DOMAINS)].reset_index(drop=True), table.source)
    config = NestedLawConfig()
    full = NestedLaw(config, Targets({"Pile-CC": 0.5, "Github": 0.3, "ArXiv": 0.2}))
    kept, cuts = discrepancy_scale.split(runs, "step", 0.2)
    calibration = NestedLaw(config.model_copy(update={"discrepancy": False}), full.targets)
    whole, part = full.build(runs), calibration.build(runs, observed_below=cuts)
    assert part.key == whole.key
    lay, expected = part.layout, calibration.build(kept).layout
    assert len(lay["loss"]) == len(expected["loss"]) < len(whole.layout["loss"])
    np.testing.assert_allclose(np.sort(lay["loss"]), np.sort(expected["loss"]))
    assert (lay["n0"], lay["s0"]) == pytest.approx((expected["n0"], expected["s0"]))
    curves = lay["curve_m"].reshape(lay["curve_shape"])
    assert curves[:, -1].sum() == 0 and curves[:, :-1].sum() == len(lay["loss"])  # the largest size's curves are empty
    assert len(lay["sizes"]) == len(whole.layout["sizes"]) and len(lay["length_values"]) == len(whole.layout["length_values"])


def test_a_nested_fit_learns_its_discrepancy_scale_and_says_so(shared_data, mocked_sampling, tmp_path, monkeypatch):
    monkeypatch.setattr(discrepancy_scale, "MAX_CALIBRATION_RHAT", np.inf)  # mocked draws are not a posterior: no R-hat to meet
    table = load_runs(shared_data / "mixinglaws" / "RedPajama")
    data = table.data[table.data["valid_domain"].isin(DOMAINS)]
    runs = RunsTable(data.reset_index(drop=True), table.source)
    law = NestedLaw(NestedLawConfig(sampler={"draws": 30, "chains": 2}), Targets({"Pile-CC": 0.5, "Github": 0.3, "ArXiv": 0.2}))
    law.fit(runs, seed=3, progress=False)
    record = discrepancy_scale.read(law)
    assert set(record) == {"size", "length"}
    assert record["size"]["left_out"].startswith("params >") and record["size"]["losses"] > 0
    for entry in record.values():
        assert np.isfinite(entry["learned"]).all() and entry["learned"][1] <= entry["external"][1] + 1e-9
        assert np.isfinite(entry["slopes_rhat"]) and entry["slopes_ess"] > 0
    post = law.idata["posterior"]
    assert post["discrepancy_size"].shape == post["noise_sigma"].shape[:2]
    np.testing.assert_allclose(
        np.log(post["discrepancy_size"].values).mean(), record["size"]["learned"][0], atol=4 * record["size"]["learned"][1] / np.sqrt(60)
    )
    assert "discrepancy learned from the pilots" in law.summary_line()
    # the saved config is the one asked for, with three domains' pooled-scale priors (config.FEW_DOMAIN_PRIORS), not the
    # learned discrepancy's (a refit learns again from the external prior), and the fit reloads
    from bayes_mixlaw.config import FEW_DOMAIN_PRIORS

    assert json.loads(law.idata.attrs["config"])["priors"] == {k: p.to_dict() for k, p in FEW_DOMAIN_PRIORS.items()}
    law.save(tmp_path / "fit.nc")
    assert discrepancy_scale.read(BayesianLaw.load(tmp_path / "fit.nc")) == record
    # where the calibration fit's chains disagree on an axis's slopes, that axis learns nothing: its external prior
    # stays, and the user is told
    monkeypatch.setattr(discrepancy_scale, "MAX_CALIBRATION_RHAT", 0.5)
    with pytest.warns(UserWarning, match="did not converge on it .* residual slopes .* keeps its external prior"):
        unconverged = NestedLaw(law.config, law.targets).fit(runs, seed=3, progress=False)
    assert discrepancy_scale.read(unconverged) == {}
    # the smaller sizes not run past the length cut: no loss is beyond on length alone, so that axis keeps its prior
    _, cuts = discrepancy_scale.split(runs, "step", 0.2)
    short = runs.data[(runs.data["params"] == runs.data["params"].max()) | (runs.data["step"] <= cuts["step"])]
    monkeypatch.setattr(discrepancy_scale, "MAX_CALIBRATION_RHAT", np.inf)
    partial = NestedLaw(law.config, law.targets).fit(RunsTable(short.reset_index(drop=True), table.source), seed=3, progress=False)
    assert set(discrepancy_scale.read(partial)) == {"size"}
    # off: the external priors, no calibration fit
    off = NestedLaw(NestedLawConfig(sampler={"draws": 30, "chains": 2}, learn_discrepancy=False), law.targets).fit(runs, seed=3, progress=False)
    assert discrepancy_scale.read(off) == {}
    assert np.median(off.idata["posterior"]["discrepancy_size"].values) == pytest.approx(0.017, rel=0.3)


def test_a_fit_checked_on_what_its_caller_reads_hands_it_a_fit_of_the_draws_so_far(shared_data, mocked_sampling):
    """``fit(checked=...)`` gives the function a copy of the law holding the draws so far, finished as a fit is (the
    checkpoints' shared share estimated), so it predicts; the calibration's residual slopes are one such function."""
    table = load_runs(shared_data / "mixinglaws" / "RedPajama")
    runs = RunsTable(table.data[table.data["valid_domain"].isin(DOMAINS)].reset_index(drop=True), table.source)
    seen = []

    def checked(provisional):
        seen.append(provisional)
        draws = provisional.predict_draws(pd.DataFrame({"mix:" + d: [1 / 7] for d in provisional.train_domains}), params=4e8, step=30_000, seed=0)
        return draws.to_dataset(name="loss")

    config = NestedLawConfig(sampler={"draws": 20, "chains": 2}, learn_discrepancy=False)
    law = NestedLaw(config, Targets({"Pile-CC": 0.5, "Github": 0.3, "ArXiv": 0.2})).fit(runs, seed=1, progress=False, checked=checked)
    (provisional,) = seen
    assert provisional is not law and provisional.checkpoint_shared is not None
    assert provisional.idata["posterior"].sizes == law.idata["posterior"].sizes
    # the calibration's slopes, on a calibration fit of the same table
    _, cuts = discrepancy_scale.split(runs, "step", 0.2)
    data = runs.data
    beyond = data[(data["params"] > cuts["params"]) & (data["step"] <= cuts["step"])]
    left_out = {"size": ("params", beyond, "run")}
    cells = (beyond["run"].nunique(), len(DOMAINS))  # the slopes per left-out run and domain
    slopes = discrepancy_scale._SlopesOfDraws(left_out, cuts, 0, runs, None)
    calibration = NestedLaw(config.model_copy(update={"discrepancy": False}), law.targets).fit(
        runs, seed=1, progress=False, observed_below=cuts, checked=slopes
    )
    assert slopes(calibration)["size"].shape == (2, 20, np.prod(cells))
    assert slopes.of(calibration) is slopes.of(calibration)  # the final draws' slopes are the last check's, not computed again
    # a check reads a prefix of the draws, a later one more of the same: the slopes are computed once per draw
    fresh = discrepancy_scale._SlopesOfDraws(left_out, cuts, 0, runs, None)
    prefix = calibration._with_draws(draw=slice(0, 12))
    first = fresh.of(prefix)["size"]
    whole = fresh.of(calibration)["size"]
    assert whole.shape == (2, 20, *cells)
    np.testing.assert_array_equal(whole[:, :12], first)
    assert np.isfinite(whole).all() and np.corrcoef(whole[:, 12:].ravel(), slopes.of(calibration)["size"][:, 12:].ravel())[0, 1] > 0.5
    # other draws (a restart): computed again
    other = NestedLaw(config.model_copy(update={"discrepancy": False}), law.targets).fit(runs, seed=2, progress=False, observed_below=cuts)
    assert not np.allclose(fresh.of(other)["size"], whole)


def test_the_calibration_fit_draws_until_its_residual_slopes_converge_where_the_full_fit_checks(shared_data):
    """Where the full fit draws until converged, the calibration fit does too, on what is read from it (its residual
    slopes), stopping at CALIBRATION_STOP (means and spreads need less than the project's rule for a fit) and at most
    CALIBRATION_MAX_DRAWS a chain; a fit with fixed draws gives it a fixed CALIBRATION_DRAWS."""
    table = load_runs(shared_data / "mixinglaws" / "RedPajama")
    runs = RunsTable(table.data[table.data["valid_domain"].isin(DOMAINS)].reset_index(drop=True), table.source)
    asked = []

    class Recorded:
        def __init__(self, config, targets):
            self.config = config

        def fit(self, runs, **settings):
            asked.append(settings)
            raise StopIteration

    config = NestedLawConfig()
    for sampler in ({}, {"draws": 500}, {"check_every": None}):
        with pytest.raises(StopIteration):
            discrepancy_scale.learn(Recorded, config.model_copy(update={"sampler": config.sampler.model_copy(update=sampler)}), None, runs, seed=0, sampler={})
    assert asked[0]["draws"] == discrepancy_scale.CALIBRATION_MAX_DRAWS
    assert (asked[0]["stop_rhat"], asked[0]["min_ess"]) == (1.02, 100)
    assert isinstance(asked[0]["checked"], discrepancy_scale._SlopesOfDraws)
    assert set(asked[0]["checked"].left_out) == {"size", "length"}
    assert asked[1]["draws"] == 500  # never more than the full fit's
    assert asked[2]["draws"] == discrepancy_scale.CALIBRATION_DRAWS and "stop_rhat" not in asked[2]


def test_an_axis_is_judged_by_whether_the_chains_agree_on_its_residual_slopes():
    """The gate reads the per-draw slopes an axis learns from: chains that predict the left-out losses alike pass
    whatever else they disagree on; chains that predict them differently do not."""
    import xarray as xr

    valid = ["Pile-CC", "Github"]
    left_out = pd.DataFrame(
        [{"run": f"r{i}", "params": 2e8, "step": 30_000, "valid_domain": v, "loss": 3.0, "mix:a": 0.5, "mix:b": 0.5} for i in range(3) for v in valid]
    )

    class Calibration:
        length_column, valid_domains = "step", valid

        def __init__(self, shift):
            self.shift = shift

        def predict_draws(self, frame, seed, params, step):
            rng = np.random.default_rng(seed)
            draws = 3.0 * np.exp(0.01 * rng.normal(size=(2, 400, len(frame), len(valid))))
            draws[1] *= np.exp(self.shift)  # the second chain predicts the left-out losses higher by this
            return xr.DataArray(draws, dims=("chain", "draw", "mixture", "target"), coords={"target": valid})

    def residual_slopes(calibration):
        return discrepancy_scale.summarise_slopes(discrepancy_scale._per_draw_slopes(calibration, left_out, "params", 1e8, seed=0))

    u, s2, n_domains, (rhat, ess) = residual_slopes(Calibration(0.0))
    assert n_domains == 2 and u.shape == s2.shape == (1, 2) and rhat < 1.01 and ess > 400  # one group: no group column
    *_, (rhat, _) = residual_slopes(Calibration(0.03))
    assert rhat > discrepancy_scale.MAX_CALIBRATION_RHAT
    # per left-out run (what learn reads): at equal distances the pooled slope is the runs' mean
    pooled = discrepancy_scale._per_draw_slopes(Calibration(0.0), left_out, "params", 1e8, seed=0)
    per_run = discrepancy_scale._per_draw_slopes(Calibration(0.0), left_out, "params", 1e8, seed=0, group="run")
    assert pooled.shape == (2, 400, 1, 2) and per_run.shape == (2, 400, 3, 2)
    np.testing.assert_allclose(per_run.mean(axis=2), pooled[:, :, 0])


def test_the_drift_is_the_slopes_shared_part_and_as_uncertain_as_their_groups_and_noise_say():
    prior = (np.log(0.017), 0.5)

    def drift(u, s2):
        return discrepancy_scale.GridPosterior(u, s2, 0.75, *prior).drift()

    rng = np.random.default_rng(4)
    domains = rng.normal(0, 0.003, 22)
    sharp = drift(np.stack([-0.01 + domains] * 3), np.full((3, 22), 1e-10))  # three groups that agree, known slopes
    # (three groups that agree bound the shared error's change from group to group only loosely: sd ~0.004)
    assert sharp[0] == pytest.approx(-0.01 + domains.mean(), abs=1e-4) and sharp[1] < 0.006
    noisy = drift(np.stack([-0.01 + domains] * 3), np.full((3, 22), 0.02**2))
    assert noisy[1] > sharp[1] and noisy[0] < 0
    # groups whose shared part differs: the drift is their mean, known to about their spread over sqrt(groups)
    spread = drift(np.stack([g + domains for g in (-0.02, -0.01, 0.0)]), np.full((3, 22), 1e-10))
    assert spread[0] == pytest.approx(-0.01 + domains.mean(), abs=1e-3) and sharp[1] < spread[1] < 0.02
    # a cell without left-out losses is skipped
    u = np.stack([-0.01 + domains] * 3)
    u[1, 5] = np.nan
    assert np.isfinite(drift(u, np.full((3, 22), 1e-8))).all()


def test_a_learned_axis_moves_the_prediction_by_the_persistent_part_of_the_shared_drift_and_widens_by_its_innovation():
    rng = np.random.default_rng(0)
    kappa = np.full((2, 4000), 0.01)
    record = {"size": {"drift": [-0.04, 0.0]}}
    learned = discrepancy_scale.scale_error(record, "size", kappa, 2, 0.75, rng)
    plain = discrepancy_scale.scale_error({}, "size", kappa, 2, 0.75, rng)
    assert learned.shape == plain.shape == (2, 4000, 1, 2)
    np.testing.assert_allclose(learned.mean(axis=(0, 1, 2)), [-0.02, -0.02], atol=1e-3)  # E[phi] = 1/2 of the drift
    assert abs(plain.mean()) < 1e-3 and plain.std() == pytest.approx(0.01, rel=0.05)
    # from none to all of the drift, the shared error's innovation at its scale (E[m^2]: a stationary first-order
    # process), and the fresh run and domain parts at kappa
    assert learned[..., 0].std() == pytest.approx(np.sqrt(0.04**2 * (1 / 12 + 2 / 3) + 0.01**2), rel=0.05)
    innovation = discrepancy_scale.scale_error({"size": {"drift": [-0.04, 0.0]}}, "size", np.full((2, 4000), 1e-8), 2, 0.75, rng)
    assert np.corrcoef(innovation[..., 0].ravel(), innovation[..., 1].ravel())[0, 1] > 0.999  # shared by the domains
    # a fit of the version before (a drift per domain) predicts as that version did
    before = {"size": {"drift_mean": [-0.02, -0.04], "drift_chol": (1e-4 * np.eye(2)).tolist()}}
    old = discrepancy_scale.scale_error(before, "size", kappa, 2, 0.75, rng)
    np.testing.assert_allclose(old.mean(axis=(0, 1, 2)), [-0.01, -0.02], atol=1e-3)
    assert old[..., 1].max() < 0.03 and old[..., 1].min() > -0.08


def test_each_new_run_takes_its_own_run_part_and_shares_the_drift_and_the_domains_parts():
    """Two rows of one call (the same shared generator, each its own): what they share cancels in their difference,
    which is then each run's own part, the same on every domain, of sd kappa sqrt(rho) sqrt(2)."""
    kappa = np.full((2, 4000), 0.01)
    record = {"size": {"drift": [-0.04, 0.002], "rho_grid": [0.5], "rho_weights": [1.0]}}
    one, other = (discrepancy_scale.scale_error(record, "size", kappa, 3, 0.75, np.random.default_rng(0), np.random.default_rng(row)) for row in (1, 2))
    difference = one - other
    np.testing.assert_allclose(difference, np.broadcast_to(difference[..., :1], difference.shape), atol=1e-12)
    assert difference.std() == pytest.approx(0.01 * np.sqrt(0.5) * np.sqrt(2), rel=0.05)
    # without a row's generator every row of a call draws the same run part (optimize's target: the law's error)
    same = discrepancy_scale.scale_error(record, "size", kappa, 3, 0.75, np.random.default_rng(0))
    assert same.shape == one.shape and np.isfinite(same).all()
    # an axis the pilots did not calibrate has no run part: the rows share all of it
    plain = [discrepancy_scale.scale_error({}, "size", kappa, 3, 0.75, np.random.default_rng(0), np.random.default_rng(row)) for row in (1, 2)]
    np.testing.assert_array_equal(plain[0], plain[1])


def test_the_grid_posterior_in_closed_form_is_the_dense_gaussian_one():
    """Woodbury and the determinant lemma on the whole grid: the same weights and drift as slogdet and solve per point,
    with the drift integrated out (flat prior) and a missing cell."""
    rng = np.random.default_rng(1)
    u, s2 = simulated_slopes(0.01, 7, 0.6, 0.003, rng, groups=3, drift=-0.01)
    u[2, 4] = np.nan
    group, domain = np.nonzero(np.isfinite(u))
    values, noise = u[group, domain], s2[group, domain]
    one = np.ones(len(values))
    for rho in (0.0, 0.6, 0.98):
        weight, _, (drift_mean, drift_var) = discrepancy_scale._grid_posterior(u, s2, rho, np.log(0.017), 0.5)
        dense, dense_mean, dense_var = (np.empty(len(discrepancy_scale.GRID)) for _ in range(3))
        for j, log_kappa in enumerate(discrepancy_scale.GRID):
            same_group, same_domain = group[:, None] == group, domain[:, None] == domain
            cov = np.exp(2 * log_kappa) * (rho * same_group + (1 - rho) * same_domain) + np.diag(noise)
            precision = np.linalg.inv(cov)
            q = one @ precision @ one
            dense_mean[j], dense_var[j] = one @ precision @ values / q, 1 / q
            r = values - dense_mean[j]
            dense[j] = -0.5 * (np.linalg.slogdet(cov)[1] + r @ precision @ r + np.log(q)) - 0.5 * ((log_kappa - np.log(0.017)) / 0.5) ** 2
        dense = np.exp(dense - dense.max())
        np.testing.assert_allclose(weight[:, 0], dense / dense.sum(), atol=1e-10)
        np.testing.assert_allclose(drift_mean[:, 0], dense_mean, atol=1e-10)
        np.testing.assert_allclose(drift_var[:, 0], dense_var, rtol=1e-8)


@pytest.mark.parametrize(("truth", "side"), [(0.95, "high"), (0.05, "low")])
def test_the_slopes_say_how_much_the_domains_share_their_error(truth, side):
    """Slopes of four groups whose shared error changes from group to group much (rho 0.95) or little (0.05) against
    the domains' own, against the default prior (mean 0.75): the learned correlation moves towards the truth, a fixed
    one stays fixed, and with one group (the drift is all the shared part there is) a shift of every slope says nothing of it."""
    rng = np.random.default_rng(2)
    prior = discrepancy_scale.correlation_prior(0.75)
    learned = []
    for _ in range(20):
        u, s2 = simulated_slopes(0.01, 22, truth, 0.001, rng, groups=4, drift=-0.01)
        grid, weights = discrepancy_scale.GridPosterior(u, s2, prior, np.log(0.017), 0.5).rho()
        learned.append(weights @ grid)
    learned = np.array(learned)
    if side == "high":
        assert np.median(learned) > 0.8
    else:
        assert np.median(learned) < 0.5 and (learned < 0.75).mean() >= 0.9
    grid, weights = discrepancy_scale.GridPosterior(u, s2, discrepancy_scale.correlation_prior(0.75, fixed=True), np.log(0.017), 0.5).rho()
    assert grid.tolist() == [0.75] and weights == pytest.approx([1.0])
    one_group = discrepancy_scale.GridPosterior(u[:1], s2[:1], prior, np.log(0.017), 0.5).rho()[1]
    np.testing.assert_allclose(discrepancy_scale.GridPosterior(u[:1] + 0.05, s2[:1], prior, np.log(0.017), 0.5).rho()[1], one_group, atol=1e-9)


def test_a_learned_correlation_is_what_the_predictions_draw():
    rng = np.random.default_rng(3)
    kappa = np.full((2, 20000), 0.01)
    for rho in (0.1, 0.9):
        record = {"size": {"rho_grid": [rho, 0.5], "rho_weights": [1.0, 0.0]}}
        xi = discrepancy_scale.scale_error(record, "size", kappa, 2, 0.75, rng).reshape(-1, 2)
        assert np.corrcoef(xi.T)[0, 1] == pytest.approx(rho, abs=0.03)


def test_an_axis_is_not_learned_from_a_calibration_fit_that_diverged_or_whose_chains_disagree():
    """The gate of ``learn``: the slopes' R-hat and the calibration fit's divergent transitions, each named in the reason."""
    assert discrepancy_scale.unreliable(1.01, 0, 4000) == ""
    assert discrepancy_scale.unreliable(1.01, 20, 4000) == ""  # rare divergences, at most 0.5% of the draws
    assert "55 divergent transitions in 4000 draws" in discrepancy_scale.unreliable(1.01, 55, 4000)
    assert "residual slopes 1.200" in discrepancy_scale.unreliable(1.2, 0, 4000)
    both = discrepancy_scale.unreliable(float("nan"), 55, 4000)
    assert "residual slopes nan" in both and "divergent" in both
