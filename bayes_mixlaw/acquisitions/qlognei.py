"""``qlognei``: q-log-noisy-expected-improvement over the pilots' mixtures (BoTorch's ``qLogNoisyExpectedImprovement``).

The default acquisition. The improvement is over the best of the pilots' mixtures under each posterior draw (noisy
EI's baseline, pruned), on the log scale so its gradient does not vanish far from the pilots; optimised jointly for
the batch, one suggestion after another, with the simplex as an equality constraint. Option ``residual_gp_model``
(``--residual-gp``): run it on the law plus the residual fitted jointly with it (a mixing-law fit with ``residual: rff``,
:mod:`bayes_mixlaw.mixing_residual`), whose posterior draws the ensemble model already carries; it replaced the separate
GP on the law's residuals, so a fit without the residual is refused with what to do (:data:`RESIDUAL_GP_REPLACED`).
"""

from __future__ import annotations

from bayes_mixlaw.acquisitions.base import (
    SEQUENTIAL_BATCH_LIMIT,
    Acquisition,
    register_acquisition,
)

#: what ``--residual-gp`` says on a fit without the joint residual (the separate residual GP it once fitted is gone)
RESIDUAL_GP_REPLACED = (
    "--residual-gp (residual_gp_model): the separate GP on the law's residuals was replaced by the residual fitted jointly "
    "with the law; refit with 'residual: rff' in the config (bayes-mixlaw fit --config C.yaml, or MixingLawConfig(residual='rff')): "
    "suggest then models what the law misses from that fit's posterior, with or without --residual-gp"
)


@register_acquisition(
    "qlognei",
    "q-log-noisy-expected-improvement over the pilots' mixtures (BoTorch's qLogNoisyExpectedImprovement)",
    options={"residual_gp_model": "run it on the law plus the residual fitted with it (a fit with 'residual: rff' in its config)"},
    max_suggestions=SEQUENTIAL_BATCH_LIMIT,
    title="qLogNEI",
    order=10,
)
class QLogNEI(Acquisition):
    def build(self, law, model, *, context):
        import torch
        from botorch.acquisition.logei import qLogNoisyExpectedImprovement

        if context.option("residual_gp_model") and getattr(law, "residual", None) is None:
            raise ValueError(RESIDUAL_GP_REPLACED)
        return qLogNoisyExpectedImprovement(model, X_baseline=torch.as_tensor(law.pilot_mixtures, dtype=torch.float64), prune_baseline=True)

    def label(self, context) -> str:
        return self.name + (" (law + joint residual)" if context.option("residual_gp_model") else "")
