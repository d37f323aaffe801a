"""The step laws (bayes_mixlaw/step_laws.py) agree in numpy, PyTensor and torch and broadcast over draws."""

from __future__ import annotations

import numpy as np

from bayes_mixlaw.schedules import Schedule
from bayes_mixlaw.step_laws import annealing_step, loss_drop, multi_power_step
from conftest import WSD, curve


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
