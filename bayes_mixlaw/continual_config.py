"""The continual pre-training law's config and priors (:mod:`bayes_mixlaw.continual`)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pymc_extras.prior import Prior

from bayes_mixlaw.config import DEFAULT_PRIORS, LawConfig, SamplerConfig

# in units of each validation domain's median loss; shares are fractions of the mixture
CONTINUAL_PRIORS: dict[str, Prior] = {
    # log of the loss at the pilots' mean share, relative to the median loss: near 0
    "loss_at_mean": DEFAULT_PRIORS["loss_at_mean"],
    # slope of the (relative) loss per unit of the original data's share, pooled over checkpoints;
    # on the ct runs -0.07 (Pile-CC) to +0.12 (Python)
    "slope_mu": Prior("Normal", mu=0.0, sigma=0.5),
    "slope_sigma": Prior("HalfNormal", sigma=0.2),
    # relative curvature tau (the mixing law's t_original - t_new): a few units, as the published t
    "curvature_mu": Prior("Normal", mu=0.0, sigma=3.0),
    "curvature_sigma": Prior("HalfNormal", sigma=3.0),
    # observation noise relative to the loss scale, and the Student-t's degrees of freedom minus one
    "noise_sigma": DEFAULT_PRIORS["noise_sigma"],
    "nu": DEFAULT_PRIORS["nu"],
}


class ContinualLawConfig(LawConfig):
    """Everything that defines a continual pre-training fit apart from the data (priors: ``CONTINUAL_PRIORS``).

    Sampler: 2 chains x (1000 + 2000); the ct table (4 runs x 10 steps x 23 domains) takes well under
    a minute on 2 cores (``benchmarks/critical.py``)."""

    DEFAULT_PRIORS: ClassVar[dict[str, Prior]] = CONTINUAL_PRIORS
    sampler: SamplerConfig = Field(default_factory=lambda: SamplerConfig(draws=2000, tune=1000, chains=2))
