r"""The additive power-law mixing form of Shukor et al. (2025), "Scaling Laws for Optimal Data Mixtures" (arXiv 2507.09404).

.. math:: L_i(h) = E_i + \frac{1}{\sum_j C_{ij} h_j^{\gamma_{ij}}}

for validation domain i and mixture proportions h (here ``r``) over the training domains j, with
:math:`C_{ij} \ge 0`, :math:`\gamma_{ij} > 0`. Shukor et al.'s additive law is
:math:`L(N, D, h) = E + 1/\sum_j C_j h_j^{\gamma_j} + A/N^\alpha + B/D^\beta`; at the one model size N
and token count D that :class:`~bayes_mixlaw.mixing.MixingLaw` fits, its size and data terms are a constant
absorbed into E, which leaves the form above (what issue 16 states). Where the paper's equation could
not be read in full here (only its abstract was at hand), the form is the issue's statement of it; its
joint variant, whose size and data terms depend on h, needs several scales and is not this form.

Unlike the explicit law's exponential, every term rises with its share: more of any training domain
never raises a loss except by taking share from another, and a loss is finite at any mixture with
some positive term. A share of 0 contributes nothing (``0^gamma = 0``, written so that neither the
value nor any gradient is NaN there).

Sampled centred, in units of each validation domain's loss scale s_i (its median observed loss), with r̄
the pilots' mean mixture, as the explicit law is: the loss at r̄ is m_i, the share of it the mixture moves
is f_i (the same priors and pooling as the explicit law's), and the reducible part at r̄, m_i f_i, is split
among the training domains' terms by w_i (on the simplex)::

    E_i / s_i = m_i (1 - f_i),     C_ij s_i = w_ij / (m_i f_i rbar_j^gamma_ij)
    L_i(h) / s_i = m_i (1 - f_i) + m_i f_i / sum_j w_ij (h_j / rbar_j)^gamma_ij

The fit reports ``power_e`` (E_i), ``power_log_c`` (log C_ij) and ``power_gamma`` (gamma_ij) in absolute
units, and the centred slopes dL_i/dr_j at the pilots' mean for the report's interaction heatmap.
"""

from __future__ import annotations

from pymc_extras.prior import Prior

from bayes_mixlaw.mixing_forms.base import (
    MixingForm,
    ModelPieces,
    dirichlet_rows,
    register,
)
from bayes_mixlaw.mixing_forms.explicit import EXPLICIT_PRIORS, pooled_level_and_share

POWER_LAW_PRIORS: dict[str, Prior] = {
    # the loss at the pilots' mean mixture and the share of it the mixture moves: the explicit law's priors
    **{k: EXPLICIT_PRIORS[k] for k in ("loss_at_mean", "f_mu", "f_sigma")},
    # how the reducible loss at the pilots' mean is split among the training domains' terms: uniform on the simplex
    "power_weights": Prior("Dirichlet", a=1.0),
    # exponents gamma_ij. Shukor et al. read C_j h_j^gamma_j as the loss's power law in the tokens of domain j
    # (h_j D of them), so gamma is a data exponent: median 0.5, between Chinchilla's data exponent 0.28
    # (Hoffmann et al. 2022) / Epoch's refit 0.37 (Besiroglu et al. 2024) and the steeper in-domain effects
    # of Ye et al.'s 5Mix fits (their t up to ~10 per unit share); a factor 2.7 either side at one sd
    "power_gamma": Prior("LogNormal", mu=-0.7, sigma=1.0),
}


@register
class PowerLaw(MixingForm):
    """Shukor et al.'s additive power-law mixing form at one scale (see the module docstring)."""

    lookup_name = "power_law"
    description = "Shukor et al. (2025): L_i(h) = E_i + 1 / sum_j C_ij h_j^gamma_ij, the additive law at one model size and token count"
    parameter_names = ("power_e", "power_log_c", "power_gamma")
    default_priors = POWER_LAW_PRIORS
    summary_names = parameter_names
    slope_summary = True
    diagnostic_names = ("power_e",)

    def function(self, xp, r, power_e, power_log_c, power_gamma):
        # r (..., n, M); power_e (..., V); power_log_c, power_gamma (..., V, M) -> (..., n, V)
        return power_e[..., None, :] + 1.0 / power_terms(xp, r, power_log_c, power_gamma)

    def build(self, pieces: ModelPieces):
        import pytensor.tensor as pt

        e, log_c, gamma, _ = build_power_terms(pieces, base=False)
        return self.function(pt, pieces.mixtures, e, log_c, gamma)


def power_terms(xp, r, power_log_c, power_gamma):
    r""":math:`\sum_j C_{ij} h_j^{\gamma_{ij}}`: ``r`` (..., n, M), ``power_log_c`` and ``power_gamma`` (..., V, M)
    -> (..., n, V); a share of 0 contributes 0 (``0^gamma = 0``) with finite values and gradients."""
    used = r > 0
    log_r = xp.log(xp.where(used, r, 1.0))[..., :, None, :]  # (..., n, 1, M): 0 where the share is 0
    terms = xp.exp(power_log_c[..., None, :, :] + power_gamma[..., None, :, :] * log_r)  # C_ij h_j^gamma_ij
    return xp.where(used[..., :, None, :], terms, 0.0).sum(axis=-1)


def build_power_terms(pieces: ModelPieces, base: bool, gamma_prior: str = "power_gamma"):
    """Sample the power law's centred parameters inside the model (see the module docstring) and record its absolute
    ones; returns ``(E, log C, gamma, log B)`` relative to each domain's loss scale (``log B`` None without a base).
    The exponents' prior is the config's ``gamma_prior``.

    With ``base``, the reducible loss at r̄ is split by ``w_i`` among the M training domains' terms and one term that
    no share moves, B_i (a ``power_term`` coord: the training domains, then ``base``): ``B_i s_i = w_i0 / (m_i f_i)``."""
    import pymc as pm
    import pytensor.tensor as pt

    cfg, dims = pieces.config, ("valid_domain", "train_domain")
    model = pm.modelcontext(None)
    log_m, logit_f, _ = pooled_level_and_share(pieces)
    train = list(model.coords["train_domain"])
    if base:
        model.add_coord("power_term", [*train, "base"])
        w_all = dirichlet_rows(cfg, "power_weights", "power_weights", ("valid_domain", "power_term"), len(train) + 1)
        w, w_base = w_all[:, :-1], w_all[:, -1]
    else:
        w, w_base = dirichlet_rows(cfg, "power_weights", "power_weights", dims, len(train)), None
    gamma = cfg.prior(gamma_prior, dims=dims).create_variable("power_gamma")
    log_f = -pt.log1p(pt.exp(-logit_f))
    log_1mf = -pt.log1p(pt.exp(logit_f))
    e = pt.exp(log_m + log_1mf)  # in units of the loss scale
    log_c = pt.log(w) - gamma * pt.log(pieces.center)[None, :] - (log_m + log_f)[:, None]
    pm.Deterministic("power_e", e * pt.exp(pieces.log_scale), dims="valid_domain")
    pm.Deterministic("power_log_c", log_c - pieces.log_scale[:, None], dims=dims)
    log_b = None
    if base:
        log_b = pt.log(w_base) - (log_m + log_f)
        pm.Deterministic("power_log_b", log_b - pieces.log_scale, dims="valid_domain")
    return e, log_c, gamma, log_b
