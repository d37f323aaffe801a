r"""The explicit data mixing law (Ye et al., ICLR 2025, eq. 2): one exponential curve per validation domain.

.. math:: L_i(r) = e^{\log c_i} + e^{\log k_i + \sum_j t_{ij} r_j}

sampled centred, in units of each validation domain's loss scale s_i (its median observed loss), with
r̄ the pilots' mean mixture and g the domain's pooling group (all domains, or the user's groups)::

    L_i(r) / s_i = m_i [(1 - f_i) + f_i exp(t_i . (r - rbar))],   sum_j t_ij = 0
    log m_i ~ loss_at_mean,  logit f_i ~ Normal(f_mu[g], f_sigma),  t_i ~ t_mu[g] + ZeroSumNormal(t_sigma)

m_i is the loss at r̄ and f_i the share of it that the mixture moves. This form has far better
posterior geometry than (log c, log k), which it maps to one to one (reported as deterministics):
``log c_i = log m_i + log(1 - f_i) + log s_i``, ``log k_i = log m_i + log f_i - t_i . rbar + log s_i``.
"""

from __future__ import annotations

import pymc as pm
import pytensor.tensor as pt
from pymc_extras.prior import Prior

from bayes_mixlaw.laws import array_namespace, mixing_law
from bayes_mixlaw.mixing_forms.base import MixingForm, ModelPieces, register

# Priors in units of each validation domain's loss scale, so the same defaults suit any tokenizer or data set.
EXPLICIT_PRIORS: dict[str, Prior] = {
    # log of the loss at the pilots' mean mixture, relative to the median loss: near 0
    "loss_at_mean": Prior("Normal", mu=0.0, sigma=0.2),
    # logit of the share of the loss that the mixture moves: about 20% (logit 0.2 = -1.4)
    "f_mu": Prior("Normal", mu=-1.4, sigma=1.0),
    "f_sigma": Prior("HalfNormal", sigma=0.5),
    # interactions t_ij (sum over j is zero); |t| of a few units, as the published fits have
    "t_mu": Prior("ZeroSumNormal", sigma=3.0),  # must stay a ZeroSumNormal: it fixes the shift of t
    "t_sigma": Prior("HalfNormal", sigma=2.0),
}


def _centred_to_law(log_m, logit_f, t, center):
    """(log c, log k) of the law from the loss at the mean mixture and the share the mixture moves.

    ``m [(1 - f) + f exp(t.(r - rbar))] = exp(log c) + exp(log k + t.r)`` with
    ``log c = log m + log(1 - f)`` and ``log k = log m + log f - t.rbar``.
    """
    xp = array_namespace(log_m, logit_f, t)
    log_f = -xp.log1p(xp.exp(-logit_f))
    log_1mf = -xp.log1p(xp.exp(logit_f))
    return log_m + log_1mf, log_m + log_f - (t * center).sum(axis=-1)


_BASE_SIGMA = 10.0


def _centred_zero_sum(name: str, mu, sigma, dims, scale=None):
    """``x_i ~ mu_i + ZeroSumNormal(sigma)`` (last axis sums to zero), sampled as ``scale_i x_i``.

    Written as ``mu + ZeroSumNormal(sigma)``, every deviation is tied to ``mu`` when the data pin
    down x (posterior correlation -0.99 on 5Mix, ~390 leapfrog steps a draw). Here ``g = scale x`` is
    a ZeroSumNormal with a wide base ``_BASE_SIGMA scale`` whose density is cancelled, and the pooled
    prior is added as a potential: ``-|x - mu|^2 / (2 sigma^2) - (M - 1) log sigma`` per row, M the last
    axis' length. The base's normaliser ``-(M - 1) log scale_i`` per row is the Jacobian
    ``|dx/dg|``, so in any ``scale`` this is the same distribution of x. ``scale=None``: x itself.
    """
    if scale is None:
        x = pm.ZeroSumNormal(name, sigma=_BASE_SIGMA, dims=dims)
    else:
        g = pm.ZeroSumNormal(f"{name}_slope", sigma=_BASE_SIGMA * scale, dims=dims)
        x = pm.Deterministic(name, g / scale, dims=dims)
    dev = x - mu
    rows, m = x.shape[0], x.shape[-1]
    prior = -0.5 * (dev**2).sum() / sigma**2 - rows * (m - 1) * pm.math.log(sigma)
    pm.Potential(f"{name}_prior", prior + 0.5 * (x**2).sum() / _BASE_SIGMA**2)
    return x


# The interactions are sampled as g_i = f_i^p t_i (as the nested law does, nested_model._SLOPE_POWER).
# The 5Mix pilots fix mostly the slope f_i t_i for domains whose mixture effect is small
# (StackExchange: |t| ~ 2, logit f_i with a long tail to -4.8, corr(logit f, |t|) = -0.83), and
# t_i itself where f_i is small and |t_i| large (PubMed_Central, DM_Mathematics). Sampling t (p = 0)
# took ~210 leapfrog steps a draw and left the demo fit at R-hat 1.03, bulk ESS 148; the slopes
# (p = 1) ~245 steps, R-hat 1.016; p = 0.5 ~85 steps (benchmarks/README.md, "The demo fit's convergence").
_SLOPE_POWER = 0.5


def _slope_interactions(name: str, mu, sigma, logit_f, dims):
    """The pooled interactions ``t_i ~ mu_i + ZeroSumNormal(sigma)``, sampled as ``f_i^p t_i``."""
    return _centred_zero_sum(name, mu, sigma, dims, scale=pm.math.sigmoid(logit_f)[:, None] ** _SLOPE_POWER)


def pooled_level_and_share(pieces: ModelPieces, between=None):
    """``log m_i`` (the loss at the pilots' mean mixture, relative to s_i) and ``logit f_i`` (the share of
    it the mixture moves, pooled within the domain's group): the centred level of the explicit law,
    shared by the forms that move a share of the loss at the mean mixture. ``between()`` creates the
    form's other hyperpriors after the share's (the explicit law's order of variables, kept so that a
    seed gives the same draws as before the forms)."""
    cfg, g = pieces.config, pieces.group_idx
    f_mu = cfg.prior("f_mu", dims="group").create_variable("f_mu")
    f_sigma = cfg.prior("f_sigma").create_variable("f_sigma")
    extra = between() if between else None
    log_m = cfg.prior("loss_at_mean", dims="valid_domain").create_variable("log_loss_at_mean")
    return log_m, pm.Normal("logit_f", f_mu[g], f_sigma, dims="valid_domain"), extra


@register
class ExplicitLaw(MixingForm):
    """Ye et al.'s explicit law, each validation domain its own curve (see the module docstring)."""

    lookup_name = "explicit"
    description = "Ye et al. (ICLR 2025): L_i(r) = c_i + k_i exp(sum_j t_ij r_j), one curve per validation domain"
    parameter_names = ("log_c", "log_k", "t")
    default_priors = EXPLICIT_PRIORS
    summary_names = ("log_c", "log_k", "t")
    diagnostic_names = ("log_c", "log_k", "t")

    def function(self, xp, r, log_c, log_k, t):
        return mixing_law(r, log_c, log_k, t)  # bayes_mixlaw.laws: written once for numpy, PyTensor and torch

    def build(self, pieces: ModelPieces):
        cfg, g = pieces.config, pieces.group_idx
        dims = ("valid_domain", "train_domain")
        # Centred in logit_f and t (see _centred_zero_sum), t sampled as f^0.5 t: near the mean mixture
        # the data fix mostly the slope f_i t_i, so logit f_i and |t_i| trade off (-0.96 on 5Mix);
        # f^0.5 t sits between that ridge and the funnel of the slopes f t where f is small (_SLOPE_POWER).
        log_m, logit_f, (t_mu, t_sigma) = pooled_level_and_share(
            pieces, lambda: (cfg.prior("t_mu", dims=("group", "train_domain")).create_variable("t_mu"), cfg.prior("t_sigma").create_variable("t_sigma"))
        )
        if pieces.generative:  # forward-samplable form of the same distribution
            t = pm.Deterministic("t", t_mu[g] + pm.ZeroSumNormal("t_dev", sigma=t_sigma, dims=dims), dims=dims)
        else:
            t = _slope_interactions("t", t_mu[g], t_sigma, logit_f, dims=dims)
        a, b = _centred_to_law(log_m, logit_f, t, pieces.center)
        pm.Deterministic("log_c", a + pieces.log_scale, dims="valid_domain")
        pm.Deterministic("log_k", b + pieces.log_scale, dims="valid_domain")
        return self.function(pt, pieces.mixtures, a, b, t)
