"""``qucb``: q-upper-confidence-bound (BoTorch's ``qUpperConfidenceBound``), the optimistic choice.

The batch's expected best of ``mean + sqrt(beta * pi / 2) * |f_s - mean|`` over the posterior draws of the negated
loss: a mixture whose draws spread toward low losses scores above one with the same mean and a narrow spread. Option
``beta`` (default 0.2): larger explores more; 0 is the posterior mean alone (exploitation). It is the worked example
of "a new acquisition is one file plus its test" (``tests/test_acquisitions_qucb.py``): a builder registered with its
name, description, options and limit; ``suggest`` optimises it over the capped simplex (or among a grid or candidates).
"""

from __future__ import annotations

from bayes_mixlaw.acquisitions.base import SEQUENTIAL_BATCH_LIMIT, register_acquisition

DEFAULT_BETA = 0.2


@register_acquisition(
    "qucb",
    "q-upper-confidence-bound, optimistic about the law's spread (BoTorch's qUpperConfidenceBound; option beta)",
    options={"beta": f"how much the spread of the draws counts (default {DEFAULT_BETA}; 0: the posterior mean alone)"},
    max_suggestions=SEQUENTIAL_BATCH_LIMIT,
    title="qUCB",
    order=40,
)
def build(law, model, *, context):
    from botorch.acquisition.monte_carlo import qUpperConfidenceBound

    beta = float(context.option("beta", DEFAULT_BETA))
    if beta < 0:
        raise ValueError(f"beta must be at least 0, got {beta}")
    return qUpperConfidenceBound(model, beta=beta)
