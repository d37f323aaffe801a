"""Multi-fidelity choice: value per unit cost across pilot sizes and lengths (the value of a run is the acquisition's
``value``, replaced here by a known function of the scale), and the values themselves on a known posterior."""

from types import SimpleNamespace

import numpy as np
import pytest

from bayes_mixlaw.acquisitions import get_acquisition
from bayes_mixlaw.fidelity import choose_pilots
from bayes_mixlaw.optimize import MixtureBounds

LAW = SimpleNamespace(kind="nested_law", has_scale_axes=True, train_domains=["a", "b", "c"], length_column="step")


@pytest.mark.parametrize("big_gain, expected_size", [(2.0, 10), (4.0, 30)])
def test_value_per_cost_picks_the_size(monkeypatch, big_gain, expected_size):
    seen = []

    def gain(law, pool, *, candidate_scale, target_scale, **kw):
        seen.append((candidate_scale, target_scale))
        base = {10: 1.0, 30: big_gain}[candidate_scale["params"]] * (1 if candidate_scale["step"] == 100 else 1.2)
        return base * (1 + 0.01 * pool[:, 0])  # more of 'a' is a little more informative

    monkeypatch.setattr(get_acquisition("info"), "value", gain)
    picks = choose_pilots(
        LAW,
        3,
        sizes=[10, 30],
        steps=[100, 200],
        cost=lambda p, s: p * s,
        target_scale={"params": 1e6, "step": 1e4},
        bounds=MixtureBounds(caps={"a": 0.6}),
        seed=0,
        candidates=50,
        batch="independent",
    )
    assert len(seen) == 4 and all(t == {"params": 1e6, "step": 1e4} for _, t in seen)
    assert [p["params"] for p in picks] == [expected_size] * 3 and all(p["steps"] == 100 for p in picks)  # 1.2x the gain for 2x the cost: no
    assert all(p["mixture"]["a"] <= 0.6 + 1e-9 and abs(sum(p["mixture"].values()) - 1) < 1e-9 for p in picks)
    values = [p["value"] for p in picks]
    assert values == sorted(values, reverse=True) and picks[0]["cost"] == expected_size * 100
    mixtures = np.array([list(p["mixture"].values()) for p in picks])
    assert min(np.abs(mixtures[i] - mixtures[j]).max() for i in range(3) for j in range(i)) > 0.05  # distinct at one scale


def test_options_beyond_the_budget_left_are_dropped(monkeypatch):
    monkeypatch.setattr(get_acquisition("info"), "value", lambda law, pool, **kw: np.full(len(pool), 5.0 if kw["candidate_scale"]["params"] == 30 else 1.0))
    picks = choose_pilots(LAW, 2, sizes=[10, 30], steps=[100], cost=lambda p, s: p * s, max_cost=2000, candidates=20, batch="independent")
    assert {p["params"] for p in picks} == {10}
    assert choose_pilots(LAW, 2, sizes=[10, 30], steps=[100], cost=lambda p, s: p * s, max_cost=10) == []
    with pytest.raises(ValueError, match="batch: 'greedy' .* choose 'joint' or 'independent'"):
        choose_pilots(LAW, 2, sizes=[10], steps=[100], cost=lambda p, s: p * s, batch="greedy")


class _FakeNestedLaw:
    """Draws of a quadratic target loss whose level depends on the scale; counts the target-scale functions built."""

    train_domains = ("a", "b", "c")

    def __init__(self):
        self.idata = object()
        self.target_calls = []
        rng = np.random.default_rng(0)
        self.centres = rng.dirichlet(np.ones(3), size=64)
        self.offsets = np.zeros(64)  # each draw's best loss above the level

    def target_function(self, target, *, draws, seed, **scale):
        import torch

        self.target_calls.append(dict(scale))
        centres, offsets = torch.as_tensor(self.centres), torch.as_tensor(self.offsets)
        level = 1.0 + 1.0 / scale["params"]

        def f(r):
            return level + offsets[:, None] + ((r - centres[:, None, :]) ** 2).sum(-1)

        f.n_draws = len(self.centres)
        return f

    def predict_draws(self, frame, *, kind, seed, **scale):
        import xarray as xr

        values = np.zeros((1, 4, len(frame), 1)) + (np.arange(4)[None, :, None, None] * 0.01 if kind == "predictive" else 0.0)
        return xr.DataArray(values, dims=("chain", "draw", "mixture", "target"), coords={"target": ["total"]})


def test_information_gain_optimises_the_target_once_per_fit():
    """choose_pilots values every pilot scale against one target: the draws' best target loss is optimised once per
    fit (and again after a refit), and the values are the same as without the cache."""
    from bayes_mixlaw.acquisitions import info

    law = _FakeNestedLaw()
    pool = np.random.default_rng(1).dirichlet(np.ones(3), size=20)
    target = {"params": 1000.0, "step": 10.0}
    info._OPTIMA.clear()
    first = [info.information_gain(law, pool, draws=64, seed=3, candidate_scale={"params": p, "step": 1.0}, target_scale=target) for p in (1.0, 2.0, 4.0)]
    assert law.target_calls.count(target) == 1 and len(law.target_calls) == 4
    info._OPTIMA.clear()
    again = info.information_gain(law, pool, draws=64, seed=3, candidate_scale={"params": 2.0, "step": 1.0}, target_scale=target)
    np.testing.assert_allclose(again, first[1])
    law.idata = object()  # a refit: optimised afresh
    info.information_gain(law, pool, draws=64, seed=3, candidate_scale={"params": 2.0, "step": 1.0}, target_scale=target)
    assert law.target_calls.count(target) == 3


def test_knowledge_gradient_is_the_expected_drop_of_the_decisions_loss():
    """Two camps of draws, their optima at opposite corners: a run whose outcome tells the camps apart is worth the
    drop of the decision's loss, one whose outcome is the same under every draw is worth nothing, and the value is
    the stated sum (min over alternatives of the reweighted mean, averaged over fantasies) done draw by draw."""
    from bayes_mixlaw.acquisitions import info
    from bayes_mixlaw.acquisitions.kg import knowledge_gradient

    law = _FakeNestedLaw()
    law.centres = np.array([[0.8, 0.1, 0.1]] * 32 + [[0.1, 0.1, 0.8]] * 32)
    pool = np.array([[1.0, 0.0, 0.0], [0.45, 0.1, 0.45], [0.2, 0.6, 0.2]])
    kw = {"draws": 64, "seed": 3, "candidate_scale": {"params": 2.0, "step": 1.0}, "target_scale": {"params": 1000.0, "step": 10.0}}
    info._OPTIMA.clear()
    kg = knowledge_gradient(law, pool, **kw)
    # the corner tells the camps apart: the decision moves from between the camps (mean loss 2 x 0.35^2 above the
    # level) to the right camp's optimum (0 above it), whatever the outcome
    assert abs(kg[0] - 2 * 0.35**2) < 1e-6
    assert abs(kg[1]) < 1e-12 and abs(kg[2]) < 1e-12  # equidistant from both camps: the same outcome under every draw

    # the same value written out draw by draw, from the same draws, fantasies and weights
    rng = np.random.default_rng(3)
    lo, hi = np.zeros(3), np.ones(3)
    x, _ = info.draw_optima(law, target="total", draws=64, seed=3, lo=lo, hi=hi, rng=rng, target_scale=kw["target_scale"])
    w = info.fantasy_weights(law, pool, target="total", draws=64, seed=3, fantasies=64, rng=rng, candidate_scale=kw["candidate_scale"])
    alternatives = np.vstack([x, pool])
    f = law.target_function("total", draws=64, seed=3, **kw["target_scale"])
    import torch

    losses = f(torch.as_tensor(alternatives)[None].expand(64, -1, -1)).numpy()
    expected = [
        losses.mean(0).min() - np.mean([min(sum(w[s, j, c] * losses[s, a] for s in range(64)) for a in range(len(alternatives))) for j in range(64)])
        for c in range(len(pool))
    ]
    np.testing.assert_allclose(kg, expected, atol=1e-12)

    same = _FakeNestedLaw()
    same.centres = np.tile([[0.3, 0.3, 0.4]], (64, 1))  # every draw agrees: no run changes the decision
    np.testing.assert_allclose(knowledge_gradient(same, pool, **kw), 0.0, atol=1e-12)


def test_choose_pilots_values_runs_by_the_acquisitions_value(monkeypatch):
    """kg picks pilots as info does (value per unit cost at each scale), through its own value."""
    calls = []

    def value(law, pool, *, candidate_scale, **kw):
        calls.append(candidate_scale["params"])
        return np.full(len(pool), 3.0 if candidate_scale["params"] == 10 else 1.0)

    monkeypatch.setattr(get_acquisition("kg"), "value", value)
    picks = choose_pilots(LAW, 2, sizes=[10, 30], steps=[100], cost=lambda p, s: p * s, acquisition="kg", candidates=20, batch="independent")
    assert sorted(calls) == [10, 30] and [p["params"] for p in picks] == [10, 10]
    assert all(p["acquisition"] == "kg per cost" for p in picks)


def _two_camps() -> _FakeNestedLaw:
    """Half the draws put the optimum near corner a, half near corner c, 0.2 higher; a run at either corner tells them
    apart."""
    law = _FakeNestedLaw()
    law.centres = np.array([[0.8, 0.1, 0.1]] * 32 + [[0.1, 0.1, 0.8]] * 32)
    law.offsets = np.repeat([0.0, 0.2], 32)
    law.has_scale_axes, law.length_column = True, "step"
    return law


@pytest.mark.parametrize("acquisition", ["kg", "info"])
def test_a_joint_batch_does_not_buy_the_same_answer_twice(acquisition):
    """Each run tells the two camps apart, so each alone is worth much; once one is picked, its fantasised outcome has
    told the camps apart and no other run is worth anything more: the joint batch's second pick adds no value, where
    the n best single runs seem worth as much as the first. A budget for one run stops the batch at one."""
    from bayes_mixlaw.acquisitions import info
    from bayes_mixlaw.acquisitions.batch import greedy_batch

    law = _two_camps()
    pool = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.45, 0.1, 0.45], [0.3, 0.4, 0.3]])
    kw = {"draws": 64, "seed": 3, "target_scale": {"params": 1000.0, "step": 10.0}}
    acq = get_acquisition(acquisition)
    info._OPTIMA.clear()
    alone = acq.value(law, pool, candidate_scale={"params": 2.0, "step": 1.0}, **kw)
    assert alone[0] > 0.05 and alone[1] > 0.05  # either corner, alone (info: the best loss's sd 0.1 -> 0; kg: 0.24)
    picks = greedy_batch(acq, law, pool, [{"params": 2.0, "step": 1.0}], [1.0], 2, **kw)
    assert picks[0]["index"] in (0, 1) and picks[0]["gain"] == pytest.approx(alone[picks[0]["index"]], rel=0.05)
    assert abs(picks[1]["gain"]) < 1e-6  # nothing left to learn
    assert len(greedy_batch(acq, law, pool, [{"params": 2.0, "step": 1.0}], [1.0], 2, budget=1.5, **kw)) == 1

    independent = choose_pilots(law, 2, sizes=[2], steps=[1], cost=lambda p, s: 1.0, acquisition=acquisition, candidates=4, batch="independent", **kw)
    joint = choose_pilots(law, 2, sizes=[2], steps=[1], cost=lambda p, s: 1.0, acquisition=acquisition, candidates=4, **kw)
    assert len(independent) == len(joint) == 2 and independent[1]["value"] > 0.05  # valued alone, the second run seems as good
    assert joint[1]["value"] < 1e-6 < joint[0]["value"]


def test_a_joint_batch_prefers_the_cheaper_scale_for_the_same_answer():
    """Two pilot scales that tell the camps apart alike (the fake law's scale moves only the level), the second three
    times dearer: the first pick is at the cheap scale, and its value per cost is the gain over the cheap cost."""
    from bayes_mixlaw.acquisitions.batch import greedy_batch
    from bayes_mixlaw.acquisitions.kg import KnowledgeGradient

    law = _two_camps()
    pool = np.array([[1.0, 0.0, 0.0], [0.45, 0.1, 0.45]])
    scales = [{"params": 2.0, "step": 1.0}, {"params": 6.0, "step": 1.0}]
    picks = greedy_batch(KnowledgeGradient, law, pool, scales, np.array([3.0, 1.0]), 1, draws=64, seed=3, target_scale={"params": 1000.0, "step": 10.0})
    assert picks[0]["scale"] == 1 and picks[0]["index"] == 0 and picks[0]["value"] == pytest.approx(picks[0]["gain"])
