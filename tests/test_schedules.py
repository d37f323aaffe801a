"""Schedules (JSON contract, per-step LR, features), the step laws over numpy/PyTensor/torch, and the
runs table's lr / warmup_steps columns and multipowerlaw loader, on the real multi-power law curves."""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import pytest
from scipy.signal import lfilter

from bayes_mixlaw.runs import RunsTableError, load_runs
from bayes_mixlaw.schedules import Schedule, ScheduleError, exact_multi_power_drop
from bayes_mixlaw.step_laws import annealing_step, loss_drop, multi_power_step

WSD = {"kind": "wsd", "total_steps": 24000, "warmup_steps": 2160, "peak_lr": 3e-4, "final_lr": 3e-5, "decay_start": 20000, "decay_shape": "exponential"}
COSINE = {"kind": "cosine", "total_steps": 24000, "warmup_steps": 2160, "peak_lr": 3e-4, "final_lr": 3e-5}
TWO_STAGE = {"kind": "two_stage", "total_steps": 16000, "warmup_steps": 2160, "peak_lr": 3e-4, "final_lr": 9e-5, "decay_start": 8000}


def curve(shared_data, size, name):
    return pd.read_csv(shared_data / "multipowerlaw" / f"csv_{size}" / f"{name}.csv")


@pytest.mark.parametrize(
    "name,spec",
    [
        ("cosine_24000", COSINE),
        ("wsd_20000_24000", WSD),
        ("wsdcon_9", TWO_STAGE),
        ("constant_24000", {"kind": "constant", "total_steps": 24000, "warmup_steps": 2160, "peak_lr": 3e-4}),
    ],
)
def test_parametric_schedules_reproduce_the_logged_learning_rates(shared_data, name, spec):
    data = curve(shared_data, 400, name)
    assert np.allclose(Schedule.from_dict(spec).lr(data["step"]), data["lr"], rtol=1e-9, atol=1e-12)


def test_warmup_cosine_linear_and_table_shapes():
    s = Schedule.from_dict({"kind": "linear", "total_steps": 100, "warmup_steps": 10, "peak_lr": 1.0, "final_lr": 0.1})
    assert np.allclose(s.lr([0, 5, 10, 55, 100, 150]), [0, 0.5, 1.0, 0.55, 0.1, 0.1])
    c = Schedule.from_dict({"kind": "cosine", "total_steps": 110, "warmup_steps": 10, "peak_lr": 2.0})
    assert np.allclose(c.lr([10, 60, 110]), [2.0, 1.0, 0.0])
    t = Schedule.from_dict({"kind": "table", "steps": [10, 20], "lr": [1.0, 0.5]})
    assert np.allclose(t.lr([0, 5, 10, 15, 20]), [0, 0.5, 1.0, 0.75, 0.5])
    lin = Schedule.from_dict({"kind": "wsd", "total_steps": 100, "peak_lr": 1.0, "decay_start": 50})  # linear decay to 0 by default
    assert np.allclose(lin.lr([49, 75, 100]), [1.0, 0.5, 0.0])
    assert Schedule.from_dict(WSD) == Schedule.from_dict(json.loads(json.dumps(Schedule.from_dict(WSD).to_dict())))


def test_from_logged_prepends_the_warmup(shared_data):
    data = curve(shared_data, 100, "wsdcon_9")
    s = Schedule.from_logged(data["step"], data["lr"], warmup_steps=2160)
    assert s.kind == "table" and s.horizon == data["step"].max()
    assert np.allclose(s.lr([0, 1080, 2160, 2176]), [0, 1.5e-4, 3e-4, 3e-4])
    no_w = Schedule.from_logged(data["step"], data["lr"])  # warm-up from 0 to the first logged step
    assert np.isclose(no_w.lr(1088), 1.5e-4)
    with pytest.raises(ScheduleError, match="'lr'.*> 0"):
        Schedule.from_logged([1, 2], [1e-3, 0.0])


@pytest.mark.parametrize(
    "spec,field",
    [
        ({"kind": "exponential", "total_steps": 10, "peak_lr": 1.0}, "kind"),
        ({**COSINE, "momentum": 0.9}, "momentum"),
        ({**COSINE, "decay_start": 100}, "decay_start"),  # not a key of a cosine schedule
        ({**COSINE, "final_lr": 1e-3}, "final_lr"),  # above the peak
        ({**WSD, "decay_start": 1000}, "decay_start"),  # before the warm-up ends
        ({**WSD, "decay_start": 30000}, "decay_start"),  # after the end
        ({**COSINE, "total_steps": -5}, "total_steps"),
        ({"kind": "table", "steps": [0, 100, 100], "lr": [0, 1, 1]}, "steps"),
        ({"kind": "table", "steps": [-1, 100], "lr": [0, 1]}, "steps"),
        ({"kind": "table", "steps": [0, 100], "lr": [1.0]}, "lr"),
        ({"kind": "wsd", "total_steps": 10, "peak_lr": 1.0}, "decay_start"),  # missing
    ],
)
def test_bad_schedule_files_name_the_file_and_field(tmp_path, spec, field):
    path = tmp_path / "sched.json"
    path.write_text(json.dumps(spec))
    with pytest.raises(ValueError, match=rf"sched\.json: .*field '{field}'"):
        Schedule.from_file(path)


def test_unreadable_schedule_file(tmp_path):
    path = tmp_path / "s.json"
    path.write_text("{not json")
    with pytest.raises(ScheduleError, match="s.json: not valid JSON"):
        Schedule.from_file(path)


def test_features_areas_against_direct_sums(shared_data):
    data = curve(shared_data, 400, "cosine_24000")
    s = Schedule.from_logged(data["step"], data["lr"], 2160)
    eta = s.per_step() / s.peak
    steps = data["step"].to_numpy()
    f = s.features(steps)
    assert np.allclose(f.s1, [eta[1 : t + 1].sum() for t in steps])
    # Tissue's S2 by its recursion m_i = lam m_{i-1} + (eta_{i-1} - eta_i) after the peak
    d = np.r_[0.0, eta[:-1] - eta[1:]]
    d[: int(np.argmax(eta)) + 1] = 0
    m, acc = np.zeros_like(d), 0.0
    for i in range(len(d)):
        acc = 0.999 * acc + d[i]
        m[i] = acc
    assert np.allclose(f.s2, np.cumsum(m)[steps])
    assert np.allclose(lfilter([1.0], [1.0, -0.999], d), m)


@pytest.mark.parametrize("name", ["cosine_24000", "wsd_20000_24000", "wsdcon_9"])
def test_compressed_multi_power_drop_matches_the_exact_sum(shared_data, name):
    data = curve(shared_data, 400, name)
    s = Schedule.from_logged(data["step"], data["lr"], 2160)
    eta = s.per_step() / s.peak
    steps = data["step"].to_numpy()
    f = s.features(steps, knots=48)
    assert f.knots <= 48
    for c, beta, gamma in [(0.03, 0.5, 0.5), (0.1, 0.6, 0.8), (1.0, 0.3, 0.6)]:
        exact = exact_multi_power_drop(eta, steps, c, beta, gamma)
        approx = loss_drop(f.drop, f.eta, f.s_k, np.asarray(c), np.asarray(beta), np.asarray(gamma))
        # LD's amplitude B is ~0.2 in loss units: 2e-3 of it is below 0.02% of a loss near 2.7
        assert np.max(np.abs(approx - exact)) < 2e-3, (c, np.max(np.abs(approx - exact)))
    # the drop each step sees is exactly the LR decrease made before it
    assert np.allclose(f.drop.sum(axis=1), 1 - s.lr(steps) / s.peak)


def test_features_of_a_100k_step_schedule_are_fast():
    s = Schedule.from_dict({"kind": "cosine", "total_steps": 100_000, "warmup_steps": 1000, "peak_lr": 1e-3, "final_lr": 1e-5})
    start = time.perf_counter()
    f = s.features(np.arange(1000, 100_001, 50))
    assert time.perf_counter() - start < 1.0
    assert f.drop.shape == (1981, 128) and np.isclose(f.drop[-1].sum(), 0.99)


def test_features_refuse_steps_beyond_the_schedule():
    with pytest.raises(ScheduleError, match="step 30000 is beyond the schedule"):
        Schedule.from_dict(WSD).features([100, 30000])


def test_step_laws_agree_in_numpy_pytensor_and_torch_and_broadcast_draws(shared_data):
    import pytensor.tensor as pt
    import torch

    data = curve(shared_data, 100, "wsd_20000_24000")
    f = Schedule.from_dict(WSD).features(data["step"].to_numpy()[::10], knots=32)
    rng = np.random.default_rng(0)
    draws = {
        k: rng.uniform(lo, hi, size=(3, 1))
        for k, (lo, hi) in {"a": (0.1, 0.3), "alpha": (0.3, 0.5), "b": (0.1, 0.2), "c": (0.01, 0.1), "beta": (0.4, 0.7), "gamma": (0.4, 0.7)}.items()
    }
    ref = multi_power_step(f.s1, f.drop, f.eta, f.s_k, **draws)
    assert ref.shape == (3, len(f))
    one = multi_power_step(f.s1, f.drop, f.eta, f.s_k, **{k: v[1] for k, v in draws.items()})
    assert np.allclose(ref[1], one)
    tt = {k: torch.as_tensor(v) for k, v in draws.items()}
    out = multi_power_step(*(torch.as_tensor(a) for a in (f.s1, f.drop, f.eta, f.s_k)), **tt)
    assert np.allclose(out.numpy(), ref)
    pv = {k: pt.as_tensor_variable(v) for k, v in draws.items()}
    out = multi_power_step(pt.as_tensor_variable(f.s1), f.drop, f.eta, f.s_k, **pv).eval()
    assert np.allclose(out, ref)
    tis = annealing_step(f.s1, f.s2, draws["a"], draws["alpha"], draws["c"])
    assert np.allclose(annealing_step(torch.as_tensor(f.s1), torch.as_tensor(f.s2), *(torch.as_tensor(draws[k]) for k in ("a", "alpha", "c"))).numpy(), tis)
    # the drop term lowers the loss once the LR decays and not before
    before = f.steps < 20000
    assert np.allclose(loss_drop(f.drop, f.eta, f.s_k, 0.1, 0.5, 0.5)[before], 0)


# ---- the runs table ------------------------------------------------------------------------------


def test_multipowerlaw_folder_loads_with_lr_and_warmup(shared_data):
    runs = load_runs(shared_data / "multipowerlaw")
    assert set(runs.runs) == {f"{s}/{n}" for s in (25, 100, 400) for n in ("cosine_24000", "constant_24000", "wsd_20000_24000", "wsdcon_9")}
    assert runs.scale_values("params") == [25_000_000, 100_000_000, 400_000_000]
    assert runs.valid_domains == ["valid"] and set(runs.data["warmup_steps"]) == {2160}
    raw = curve(shared_data, 25, "cosine_24000")
    one = runs.data[runs.data["run"] == "25/cosine_24000"]
    assert np.allclose(one["lr"], raw["lr"]) and np.allclose(one["loss"], raw["loss"])
    # one size folder and one file are recognised as well
    assert len(load_runs(shared_data / "multipowerlaw" / "csv_400").runs) == 4
    assert load_runs(shared_data / "multipowerlaw" / "csv_25" / "wsdcon_9.csv").runs == ["25/wsdcon_9"]


def _table(**extra):
    frame = pd.DataFrame({"run": ["a", "a", "b"], "step": [10, 20, 10], "valid_domain": "v", "loss": [3.0, 2.9, 3.1]})
    for k, v in extra.items():
        frame[k] = v
    return frame


@pytest.mark.parametrize(
    "column,values,message",
    [
        ("lr", [1e-3, -1e-3, 1e-3], r"row 1, column 'lr': lr is -0.001; a learning rate must be positive"),
        ("lr", [1e-3, np.inf, 1e-3], r"row 1, column 'lr': .*must be finite"),
        ("lr", [1e-3, "fast", 1e-3], r"row 1, column 'lr': lr 'fast' is not a number"),
        ("warmup_steps", [100, 100, -5], r"row 2, column 'warmup_steps': .*whole number of steps >= 0"),
        ("warmup_steps", [100, 10.5, 100], r"row 1, column 'warmup_steps': .*whole number"),
        ("warmup_steps", [100, 200, 100], r"row 1, column 'warmup_steps': run 'a' changes its warmup_steps"),
    ],
)
def test_bad_lr_and_warmup_columns_name_row_and_column(column, values, message):
    with pytest.raises(RunsTableError, match=message):
        load_runs(_table(**{column: values}))


def test_lr_column_rules():
    ok = load_runs(_table(lr=[1e-3, np.nan, 2e-3], warmup_steps=[5, 5, np.nan]))  # empty where unknown
    assert np.isnan(ok.data["lr"].iloc[1]) and ok.data["warmup_steps"].isna().iloc[2]
    frame = pd.concat([_table(lr=[1e-3, 1e-3, 1e-3]).assign(valid_domain="v"), _table(lr=[1e-3, 5e-4, 1e-3]).assign(valid_domain="w")], ignore_index=True)
    with pytest.raises(RunsTableError, match="column 'lr': run 'a' has different learning rates at step 20"):
        load_runs(frame)
    with pytest.raises(RunsTableError, match="column 'lr'.*needs a 'step' column"):
        load_runs(_table(lr=[1e-3, 1e-3, 1e-3]).drop(columns="step").assign(run=["a", "b", "c"]))
