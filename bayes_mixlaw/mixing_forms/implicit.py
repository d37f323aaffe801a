r"""The implicit data mixing law (Ye et al., ICLR 2025, eq. 8): K latent validation domains of learnable composition.

.. math:: L_i(r) = s_i \sum_{k=1}^K w_{ik} \left(e^{\log c_k} + e^{\log k_k + \sum_j t_{kj} r_j}\right),
          \qquad w_i \sim \mathrm{Dirichlet}

For validation sets of unknown composition: each validation domain i is a mixture (w_i on the
K-simplex) of K latent domains, each an explicit law (sampled centred as the explicit law is, in units
of each validation domain's loss scale s_i). K is the config's ``n_implicit``. The latent domains are
identified only up to relabelling: the fit reports the label-free centred slopes dL_i/dr_j at the pilots'
mean instead of their parameters, and judges convergence on the fitted losses.
"""

from __future__ import annotations

from pymc_extras.prior import Prior

from bayes_mixlaw.laws import implicit_mixing_law
from bayes_mixlaw.mixing_forms.base import (
    MixingForm,
    ModelPieces,
    dirichlet_rows,
    register,
)
from bayes_mixlaw.mixing_forms.explicit import EXPLICIT_PRIORS, _centred_to_law

IMPLICIT_PRIORS: dict[str, Prior] = {
    **{k: EXPLICIT_PRIORS[k] for k in ("loss_at_mean", "f_mu", "t_mu")},  # each latent domain's level, share and interactions
    # composition of each validation domain over the K latent domains: uniform on the simplex
    "implicit_weights": Prior("Dirichlet", a=1.0),
}


@register
class ImplicitLaw(MixingForm):
    """Ye et al.'s implicit law (see the module docstring)."""

    lookup_name = "implicit"
    description = "Ye et al. (ICLR 2025): each validation domain a learnt mix of K latent explicit-law domains (n_implicit: K)"
    parameter_names = ("latent_log_c", "latent_log_k", "latent_t", "implicit_weights")
    default_priors = IMPLICIT_PRIORS
    relative = True
    slope_summary = True

    def coords(self, config) -> dict:
        return {"latent": [f"latent{k}" for k in range(config.n_implicit)]}

    def function(self, xp, r, latent_log_c, latent_log_k, latent_t, implicit_weights):
        return implicit_mixing_law(r, latent_log_c, latent_log_k, latent_t, implicit_weights)  # bayes_mixlaw.laws

    def build(self, pieces: ModelPieces):
        import pymc as pm
        import pytensor.tensor as pt

        cfg = pieces.config
        log_m = cfg.prior("loss_at_mean", dims="latent").create_variable("latent_log_loss_at_mean")
        logit_f = cfg.prior("f_mu", dims="latent").create_variable("latent_logit_f")
        t = cfg.prior("t_mu", dims=("latent", "train_domain")).create_variable("latent_t")
        w = dirichlet_rows(cfg, "implicit_weights", "implicit_weights", ("valid_domain", "latent"), cfg.n_implicit)
        a, b = _centred_to_law(log_m, logit_f, t, pieces.center)
        pm.Deterministic("latent_log_c", a, dims="latent")  # in units of each domain's loss scale
        pm.Deterministic("latent_log_k", b, dims="latent")
        return self.function(pt, pieces.mixtures, a, b, t, w)
