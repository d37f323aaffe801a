"""Schedules (bayes_mixlaw/schedules.py: the JSON contract, per-step LR, features and their closed-form
areas), on the real multi-power law curves."""

from __future__ import annotations

import json
import time

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from scipy.signal import lfilter

from bayes_mixlaw.schedules import Schedule, ScheduleError, decay_areas, exact_multi_power_drop
from bayes_mixlaw.step_laws import loss_drop
from conftest import TWO_STAGE, WSD, curve

COSINE = {"kind": "cosine", "total_steps": 24000, "warmup_steps": 2160, "peak_lr": 3e-4, "final_lr": 3e-5}


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


@pytest.mark.parametrize("family", ["cosine", "linear"])
@pytest.mark.parametrize("total", [15000, 40000, 500000])
def test_closed_form_areas_match_the_step_sums(family, total):
    schedule = Schedule(kind=family, total_steps=total, warmup_steps=300, peak_lr=1.0, final_lr=0.1)
    steps = np.array([100, 300, 1000, 5000, 14000, 15000])
    exact = schedule.features(steps)
    s1, s2 = decay_areas(steps, float(total), warmup=300, final_ratio=0.1, family=family)
    assert np.all(np.abs(s1 - exact.s1) <= 0.6)  # a half step of area: integral against sum
    assert np.allclose(s2, exact.s2, rtol=3e-3, atol=0.02)
    # past the end of the decay the LR holds its final value
    s1_after, _ = decay_areas(np.array([total + 1000.0]), float(total), warmup=300, final_ratio=0.1, family=family)
    s1_end, _ = decay_areas(np.array([float(total)]), float(total), warmup=300, final_ratio=0.1, family=family)
    assert np.isclose(s1_after[0] - s1_end[0], 100.0)


def test_closed_form_areas_are_the_same_in_pytensor_with_a_batch_of_lengths():
    steps = np.array([1000.0, 8000.0, 15000.0])
    totals = np.array([[15000.0], [30000.0], [90000.0]])
    s1, s2 = decay_areas(steps, totals, warmup=300, final_ratio=0.1)
    T = pt.tensor("T", shape=(None, 1))
    f = pytensor.function([T], decay_areas(pt.as_tensor_variable(steps), T, warmup=300, final_ratio=0.1))
    t1, t2 = f(totals)
    assert s1.shape == (3, 3) and np.allclose(t1, s1) and np.allclose(t2, s2)
    assert np.all(np.diff(s2[:, -1]) < 0)  # a longer schedule has annealed less by 15k
