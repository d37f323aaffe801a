"""``qlognei``: q-log-noisy-expected-improvement over the pilots' mixtures (BoTorch's ``qLogNoisyExpectedImprovement``).

The default acquisition. The improvement is over the best of the pilots' mixtures under each posterior draw (noisy
EI's baseline, pruned), on the log scale so its gradient does not vanish far from the pilots; optimised jointly for
the batch, one suggestion after another, with the simplex as an equality constraint. Option ``residual_gp_model``:
run it on the law plus a GP on the law's residuals (:func:`~bayes_mixlaw.bo.residual_gp`, one-scale fits) instead.
"""

from __future__ import annotations

from bayes_mixlaw.acquisitions.base import (
    SEQUENTIAL_BATCH_LIMIT,
    Acquisition,
    register_acquisition,
)


@register_acquisition(
    "qlognei",
    "q-log-noisy-expected-improvement over the pilots' mixtures (BoTorch's qLogNoisyExpectedImprovement)",
    options={"residual_gp_model": "run it on the law plus a GP on its residuals (one-scale fits; for a misspecified law)"},
    max_suggestions=SEQUENTIAL_BATCH_LIMIT,
    title="qLogNEI",
    order=10,
)
class QLogNEI(Acquisition):
    def build(self, law, model, *, context):
        import torch
        from botorch.acquisition.logei import qLogNoisyExpectedImprovement

        if context.option("residual_gp_model"):
            from bayes_mixlaw.bo import residual_gp

            model = residual_gp(law, context.target, draws=context.draws, seed=context.seed)
        return qLogNoisyExpectedImprovement(model, X_baseline=torch.as_tensor(law.pilot_mixtures, dtype=torch.float64), prune_baseline=True)

    def label(self, context) -> str:
        return self.name + (" (law + residual GP)" if context.option("residual_gp_model") else "")
