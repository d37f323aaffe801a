"""Forms of the data mixing law: one module per form, each a :class:`MixingForm` found through a registry.

A fit's config names its form (``law: explicit``); :class:`~bayes_mixlaw.mixing.MixingLaw` builds the
PyMC model with the form's builder and evaluates the posterior draws through the form's function
(numpy for ``predict`` and ``compare``, torch for ``optimize``, ``suggest`` and the report). Nothing
else in the package knows which forms there are: ``MixingLawConfig`` checks ``law`` against the
registry, and the config's ``priors`` are the forms' ``default_priors``. The packaged forms:

==================  ===================================================================================
``explicit``        Ye et al. (ICLR 2025): L_i(r) = c_i + k_i exp(sum_j t_ij r_j), one curve per domain
``implicit``        Ye et al.: each validation domain a learnt mix of K latent explicit-law domains
``power_law``       Shukor et al. (2025): L_i(h) = E_i + 1 / sum_j C_ij h_j^gamma_ij (additive, one scale)
``power_law_base``  the power law with a term B_i in its denominator that no share moves
==================  ===================================================================================

Adding a form: one new file plus its test
-----------------------------------------
A new form is one new module in this folder, named for its form, and one test; nothing else changes
(the package imports every module here on first use, so ``law:``, the config's priors, predict,
optimize, suggest, the report and compare pick it up)::

    from pymc_extras.prior import Prior
    from bayes_mixlaw.mixing_forms.base import MixingForm, register

    @register
    class Linear(MixingForm):
        lookup_name = "linear"                          # the config's law: value (and this module's name)
        description = "L_i(r) = a_i + b_i . r"          # one line: the form and its source
        parameter_names = ("a", "b")                    # posterior variables the function takes
        default_priors = {"linear_b": Prior("Normal", mu=0, sigma=0.5)}   # in units of each domain's loss scale
        relative = True                                 # the function gives L_i / s_i (False: absolute losses)
        summary_names = ("b",)                          # rows of law.parameters(); slope_summary adds dL/dr

        def function(self, xp, r, a, b):                # numpy, PyTensor or torch ops: (..., n, M) -> (..., n, V)
            return a[..., None, :] + r @ xp.swapaxes(b, -1, -2)

        def build(self, pieces):                        # inside the pm.Model: sample, return the mean (run, valid_domain)
            a = pm.Normal("a", 1.0, 0.1, dims="valid_domain")
            b = pieces.config.prior("linear_b", dims=("valid_domain", "train_domain")).create_variable("b")
            return self.function(pt, pieces.mixtures, a, b)

and ``tests/test_mixing_forms.py`` runs every registered form through the shared checks (the function
agrees across numpy, PyTensor and torch; a fit predicts, optimises and compares). In Python a form can
also be registered from outside the package with ``register(MyForm)`` and removed with ``unregister(name)``.
"""

from bayes_mixlaw.mixing_forms.base import (
    MixingForm,
    ModelPieces,
    centred_slopes,
    form_descriptions,
    form_names,
    form_priors,
    forms,
    get_form,
    packaged_form_names,
    register,
    unregister,
)

__all__ = [
    "MixingForm",
    "ModelPieces",
    "centred_slopes",
    "form_descriptions",
    "form_names",
    "form_priors",
    "forms",
    "get_form",
    "packaged_form_names",
    "register",
    "unregister",
]
