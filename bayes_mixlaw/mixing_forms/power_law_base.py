r"""Shukor et al.'s additive power law with a term that no share moves: a finite loss without any one domain.

.. math:: L_i(h) = E_i + \frac{1}{B_i + \sum_j C_{ij} h_j^{\gamma_{ij}}}

with :math:`B_i \ge 0`. In :mod:`~bayes_mixlaw.mixing_forms.power_law` every contribution to the denominator
belongs to one training domain and vanishes with its share (``0^gamma = 0``). Where the pilots' shares of a domain
never reach 0 and a validation loss barely moves with that share, the form explains the flat part by that domain's
term with a small exponent, which is flat over the pilots' shares and falls to 0 only at a share of 0: a cliff the
data never showed. On 5Mix 70M/30k, with the one mixture without internet text (``70M_2``) held out, the power law
predicted HackerNews at 5.31 (observed 3.82) and the 22 domains' losses with MAE 0.26, against the explicit law's
0.055 (benchmarks/README.md). B_i gives the flat part a home that no share takes away; whether the pilots' flat
dependence belongs to B_i or to a small-exponent term is left to the posterior, so at a share the pilots never had
both readings weigh in the interval.

Sampled centred as the power law is: the reducible loss at the pilots' mean r̄, m_i f_i, is split by ``w_i`` (on
the simplex over the ``power_term`` coord: the training domains, then ``base``) among the training domains' terms
and B_i::

    L_i(h) / s_i = m_i (1 - f_i) + m_i f_i / (w_i0 + sum_j w_ij (h_j / rbar_j)^gamma_ij),   B_i s_i = w_i0 / (m_i f_i)

The fit reports ``power_log_b`` (log B_i, absolute units) beside the power law's parameters.
"""

from __future__ import annotations

from pymc_extras.prior import Prior

from bayes_mixlaw.mixing_forms.base import ModelPieces, register
from bayes_mixlaw.mixing_forms.power_law import POWER_LAW_PRIORS, PowerLaw, build_power_terms, power_terms

POWER_LAW_BASE_PRIORS: dict[str, Prior] = {
    **{k: v for k, v in POWER_LAW_PRIORS.items() if k != "power_gamma"},
    # exponents gamma_ij: the power law's median 0.5, with half its spread on the log scale (90% in 0.22-1.14), so
    # that a flat dependence on a share is read as B_i or a small C_ij, not as an exponent near 0 (a cliff at share 0)
    "power_base_gamma": Prior("LogNormal", mu=-0.7, sigma=0.5),
}


@register
class PowerLawBase(PowerLaw):
    """Shukor et al.'s additive power law plus a share-free term B_i in the denominator (see the module docstring)."""

    lookup_name = "power_law_base"
    description = "L_i(h) = E_i + 1 / (B_i + sum_j C_ij h_j^gamma_ij): Shukor et al.'s power law with a term no share moves"
    parameter_names = ("power_e", "power_log_c", "power_gamma", "power_log_b")
    default_priors = POWER_LAW_BASE_PRIORS
    summary_names = parameter_names

    def function(self, xp, r, power_e, power_log_c, power_gamma, power_log_b):
        # r (..., n, M); power_e, power_log_b (..., V); power_log_c, power_gamma (..., V, M) -> (..., n, V)
        return power_e[..., None, :] + 1.0 / (xp.exp(power_log_b)[..., None, :] + power_terms(xp, r, power_log_c, power_gamma))

    def build(self, pieces: ModelPieces):
        import pytensor.tensor as pt

        e, log_c, gamma, log_b = build_power_terms(pieces, base=True, gamma_prior="power_base_gamma")
        return self.function(pt, pieces.mixtures, e, log_c, gamma, log_b)
