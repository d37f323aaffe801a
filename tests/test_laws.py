"""Each law is written once; numpy, PyTensor and torch must agree on it."""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
import pytest
import torch

from bayes_mixlaw.laws import chinchilla_law, implicit_mixing_law, mixing_law, size_law, step_law
from bayes_mixlaw.mixing import _centred_to_law

rng = np.random.default_rng(0)
R = rng.dirichlet(np.ones(4), size=6)  # (n, M)
LOG_C, LOG_K, T = rng.normal(size=3), rng.normal(size=3), rng.normal(size=(3, 4))
W = rng.dirichlet(np.ones(3), size=5)  # (V=5, K=3)


def test_mixing_law_matches_formula():
    out = mixing_law(R, LOG_C, LOG_K, T)
    expected = np.exp(LOG_C)[None] + np.exp(LOG_K[None] + R @ T.T)
    np.testing.assert_allclose(out, expected)
    assert out.shape == (6, 3)


def test_mixing_law_backends_agree_and_batch():
    np_out = mixing_law(R, LOG_C, LOG_K, T)
    pt_out = mixing_law(pt.as_tensor(R), pt.as_tensor(LOG_C), pt.as_tensor(LOG_K), pt.as_tensor(T)).eval()
    torch_out = mixing_law(torch.tensor(R), torch.tensor(LOG_C), torch.tensor(LOG_K), torch.tensor(T)).numpy()
    np.testing.assert_allclose(pt_out, np_out, rtol=1e-12)
    np.testing.assert_allclose(torch_out, np_out, rtol=1e-12)
    # posterior draws as leading dims: (chain, draw, ...)
    batched = mixing_law(R, np.broadcast_to(LOG_C, (2, 7, 3)), np.broadcast_to(LOG_K, (2, 7, 3)), np.broadcast_to(T, (2, 7, 3, 4)))
    assert batched.shape == (2, 7, 6, 3)
    np.testing.assert_allclose(batched[1, 3], np_out)


def test_mixing_law_is_invariant_to_the_sum_to_zero_shift():
    shift = np.array([0.7, -1.2, 3.0])
    np.testing.assert_allclose(mixing_law(R, LOG_C, LOG_K - shift, T + shift[:, None]), mixing_law(R, LOG_C, LOG_K, T))


def test_implicit_law_backends_agree():
    args = (R, LOG_C, LOG_K, T, W)
    np_out = implicit_mixing_law(*args)
    torch_out = implicit_mixing_law(*(torch.tensor(a) for a in args)).numpy()
    pt_out = implicit_mixing_law(*(pt.as_tensor(a) for a in args)).eval()
    assert np_out.shape == (6, 5)
    np.testing.assert_allclose(torch_out, np_out, rtol=1e-12)
    np.testing.assert_allclose(pt_out, np_out, rtol=1e-12)
    # each validation domain is a convex combination of the latent domains' losses
    latent = mixing_law(R, LOG_C, LOG_K, T)
    assert np.all(np_out <= latent.max(axis=1, keepdims=True) + 1e-12)


def test_centred_parameterisation_maps_to_the_law():
    center = R.mean(axis=0)
    log_m, logit_f = rng.normal(size=3) * 0.1, rng.normal(size=3)
    a, b = _centred_to_law(log_m, logit_f, T, center)
    f = 1 / (1 + np.exp(-logit_f))
    direct = np.exp(log_m)[None] * ((1 - f)[None] + f[None] * np.exp((R - center) @ T.T))
    np.testing.assert_allclose(mixing_law(R, a, b, T), direct)


def test_scaling_laws_backends_agree():
    n, d = np.array([1e7, 1e8, 1e9]), np.array([1e9, 1e10, 1e11])
    np.testing.assert_allclose(step_law(np.array([1e3, 1e4]), 2.0, 5.0, 0.5), 2 + 5 * np.array([1e3, 1e4]) ** -0.5)
    np.testing.assert_allclose(size_law(n, 1.8, 400.0, 0.34), 1.8 + 400 * n**-0.34)
    ch = chinchilla_law(n, d, 1.817, 482.0, 2085.0, 0.348, 0.366)
    ch_t = chinchilla_law(torch.tensor(n), torch.tensor(d), 1.817, 482.0, 2085.0, 0.348, 0.366).numpy()
    np.testing.assert_allclose(ch_t, ch)


def test_relative_scaling_is_chinchilla_relative_to_the_reference_and_backends_agree():

    from bayes_mixlaw.laws import relative_scaling

    n, s = np.array([0.3, 1.0, 4.0]), np.array([0.5, 1.0, 2.0])
    log_a, log_b, alpha, beta, gamma = np.log(0.4), np.log(0.2), 0.3, 0.5, 0.1
    e, a, b = 1.5, 1.5 * 0.4, 1.5 * 0.2
    expected = (e + a * n**-alpha + b * n**-gamma * s**-beta) / (e + a + b)
    np.testing.assert_allclose(relative_scaling(n, s, log_a, log_b, alpha, beta, gamma), expected)
    assert relative_scaling(1.0, 1.0, log_a, log_b, alpha, beta, gamma) == pytest.approx(1.0)
    as_torch = relative_scaling(torch.tensor(n), torch.tensor(s), torch.tensor(log_a), torch.tensor(log_b), alpha, beta, gamma)
    np.testing.assert_allclose(as_torch.numpy(), expected)
    as_pt = relative_scaling(pt.as_tensor(n), pt.as_tensor(s), pt.as_tensor(log_a), pt.as_tensor(log_b), alpha, beta, gamma).eval()
    np.testing.assert_allclose(as_pt, expected)


def test_annealing_is_tissues_drop_to_first_order_bounded_by_the_step_term_and_backends_agree():
    """Issue 14: under a schedule the step term is b n^-gamma (s^-beta - c s2) to first order (Tissue et
    al.'s A S1^-alpha - C S2), and never removes more than the step term (the loss stays above the size law)."""
    from bayes_mixlaw.laws import relative_scaling

    n, s, log_a, log_b, alpha, beta, gamma, c = 0.5, 1.7, np.log(0.4), np.log(0.2), 0.3, 0.5, 0.1, 3.0
    size_law = (1 + 0.4 * n**-alpha) / 1.6
    for s2 in (1e-6, 1e-4):  # small annealing: the linear drop
        linear = (1 + 0.4 * n**-alpha + 0.2 * n**-gamma * (s**-beta - c * s2)) / 1.6
        assert relative_scaling(n, s, log_a, log_b, alpha, beta, gamma, c * s2) == pytest.approx(linear, rel=1e-6)
    long_decay = relative_scaling(n, s, log_a, log_b, alpha, beta, gamma, c * np.array([0.5, 5.0, 500.0]))
    assert (np.diff(long_decay) < 0).all() and (long_decay > size_law).all()  # the linear form: below zero
    args = (np.array([0.3, 4.0]), np.array([0.5, 2.0]), log_a, log_b, alpha, beta, gamma, np.array([0.1, 0.02]))
    expected = relative_scaling(*args)
    np.testing.assert_allclose(relative_scaling(*(torch.as_tensor(a) for a in args)).numpy(), expected)
    np.testing.assert_allclose(relative_scaling(*(pt.as_tensor(a) for a in args)).eval(), expected)
