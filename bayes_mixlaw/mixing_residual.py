r"""A learned residual of the mixing law over the mixture simplex, fitted jointly with the law (issue 16).

The law's form (:mod:`bayes_mixlaw.mixing_forms`) is the mean; the residual adds what it misses. For validation
domain i, in units of its loss scale s_i (the units the forms' priors use), at a mixture h over the M training domains::

    L_i(h) / s_i = law_i(h) / s_i + tau_i [sqrt(rho) g_0(h) + sqrt(1 - rho) g_i(h)]
    g_k(h) = phi(h) . w_k,   w_k ~ Normal(0, I_D)                (non-centred; k = 0 shared, k = 1..V per domain)
    phi(h) = sqrt(2 / D) cos((h / ell) W + b)                    (D random Fourier features)
    tau_i ~ Exponential(residual_scale),  ell_j ~ LogNormal(residual_lengthscale),  rho ~ Beta(residual_shared)

``W`` (M, D) and ``b`` (D,) are fixed: standard-normal frequencies (squared-exponential kernel; for the Matern-5/2
kernel each frequency column is divided by sqrt(chi2_5 / 5), a multivariate t with 5 degrees of freedom) and phases
uniform on [0, 2 pi), drawn from ``residual_seed`` with numpy's ``default_rng`` and kept in the fit file. Then
``E[g_k(h) g_k(h')] -> k(|(h - h') / ell|)`` as D grows (Rahimi and Recht, 2007), each g_k has unit prior variance at
every mixture, so ``tau_i`` is the residual's standard deviation in loss-scale units, and the validation domains'
residuals share a fraction ``rho`` of their variance (an intrinsic coregionalisation with per-domain scales).
``ell`` is one lengthscale for all training domains (``residual_lengthscales: shared``, the default) or one per
training domain (``per_domain``, automatic relevance determination; on RegMix its 17 lengthscales left the chains
disagreeing, benchmarks/README.md).

Why random Fourier features: the mixture simplex has 5-17 training domains (RegMix: 17), where a Hilbert-space basis
(``pm.gp.HSGP``) needs m^d functions; D Fourier features cover any dimension with the same D, need no Cholesky factor
(inducing points need one of K_ZZ in every gradient and every posterior draw), are plain ``cos`` and matrix products
that numpy, PyTensor and torch all run (so predict, optimize and the BoTorch model take the residual with no special
case), and cost O(n D (M + V)) per gradient. Measured on RegMix (384 runs x 13 domains, benchmarks/README.md,
"The law + a learned residual"): it cuts the law's held-out error by a third, sampling is slow (see there).

Switched on by evidence: ``tau_i``'s prior is a penalised-complexity (exponential) prior whose mean (0.003) is a small
fraction of the noise (about 0.01 of the loss): with a few pilots the likelihood cannot tell a residual from the
noise and tau stays near the prior, so the fit is the law's; with hundreds of pilots the residual's smooth structure
is what the data show, and tau grows to what the law misses.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from pymc_extras.prior import Prior

from bayes_mixlaw.laws import array_namespace

# Priors of the residual, in units of each validation domain's loss scale (its median observed loss).
RESIDUAL_PRIORS: dict[str, Prior] = {
    # tau_i, the residual's standard deviation: exponential (penalised complexity, Simpson et al. 2017) with
    # P(tau > 0.01) = 0.05, i.e. mean 0.0033: a third of the typical noise, so a few pilots leave it near zero
    "residual_scale": Prior("Exponential", lam=300.0),
    # ell_j, lengthscale of the kernel over the mixture proportions: median 0.3, a factor 1.65 either side at one sd
    "residual_lengthscale": Prior("LogNormal", mu=-1.2, sigma=0.5),
    # rho, the share of each domain's residual variance that all validation domains share
    "residual_shared": Prior("Beta", alpha=2.0, beta=2.0),
}

RESIDUAL_KINDS = ("none", "rff")
RESIDUAL_KERNELS = ("se", "matern52")

#: the posterior variables the residual's function takes (besides the fixed frequencies and phases)
PARAMETER_NAMES = ("residual_scale", "residual_lengthscale", "residual_shared", "residual_shared_weights", "residual_domain_weights")
#: what the residual keeps in the fit's ``constant_data``: the frequencies W (train_domain, residual_feature) and phases b
CONSTANT_NAMES = ("residual_frequencies", "residual_phases")


def fourier_basis(n_train: int, n_features: int, kernel: str = "se", seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The fixed frequencies ``W`` (n_train, n_features) and phases ``b`` (n_features,) of the random Fourier features.

    ``kernel``: ``se`` (squared exponential: W standard normal) or ``matern52`` (Matern 5/2: each column of W a
    standard normal over sqrt(chi2_5 / 5)). The same ``seed`` gives the same numbers in any process (numpy's
    ``default_rng``)."""
    if kernel not in RESIDUAL_KERNELS:
        raise ValueError(f"unknown residual kernel {kernel!r}; the kernels are {', '.join(RESIDUAL_KERNELS)}")
    if n_train < 1 or n_features < 1:
        raise ValueError(f"the residual needs at least one training domain and one feature, got {n_train} and {n_features}")
    rng = np.random.default_rng(seed)
    frequencies = rng.standard_normal((n_train, n_features))
    phases = rng.uniform(0.0, 2.0 * np.pi, n_features)
    if kernel == "matern52":
        frequencies = frequencies / np.sqrt(rng.chisquare(5.0, n_features) / 5.0)
    return frequencies, phases


def fourier_features(r, frequencies, phases, lengthscale):
    r"""Random Fourier features :math:`\phi(h) = \sqrt{2/D} \cos((h / \ell) W + b)`.

    ``r``: (..., n, M) mixtures; ``frequencies``: (M, D); ``phases``: (D,); ``lengthscale``: (..., M), one per
    training domain (leading dims: the posterior draws'). Returns (..., n, D). numpy, PyTensor or torch."""
    xp = array_namespace(r, frequencies, phases, lengthscale)
    n_features = frequencies.shape[-1]
    return (2.0 / n_features) ** 0.5 * xp.cos((r / lengthscale[..., None, :]) @ frequencies + phases)


def residual(r, frequencies, phases, residual_scale, residual_lengthscale, residual_shared, residual_shared_weights, residual_domain_weights):
    r"""The residual :math:`\tau_i [\sqrt{\rho}\, g_0(h) + \sqrt{1 - \rho}\, g_i(h)]` in units of each domain's loss scale.

    ``r`` (..., n, M); ``frequencies`` (M, D), ``phases`` (D,); ``residual_scale`` tau (..., V);
    ``residual_lengthscale`` ell (..., M); ``residual_shared`` rho (...); ``residual_shared_weights`` w_0 (..., D);
    ``residual_domain_weights`` w_1..V (..., V, D). Returns (..., n, V). numpy, PyTensor or torch."""
    xp = array_namespace(r, residual_scale, residual_lengthscale, residual_shared, residual_shared_weights, residual_domain_weights)
    phi = fourier_features(r, frequencies, phases, residual_lengthscale)  # (..., n, D)
    shared = phi @ residual_shared_weights[..., :, None]  # (..., n, 1)
    own = phi @ xp.swapaxes(residual_domain_weights, -1, -2)  # (..., n, V)
    rho = residual_shared[..., None, None]
    return residual_scale[..., None, :] * (rho**0.5 * shared + (1.0 - rho) ** 0.5 * own)


class MixingResidual:
    """The residual of a mixing-law config (``residual: rff`` and its options): the PyMC builder, the fixed basis and
    the function on posterior draws. ``MixingLaw`` adds it to the form's mean in the model, in the predictions,
    the log-likelihood and the torch function BoTorch and the optimiser use."""

    parameter_names = PARAMETER_NAMES
    diagnostic_names = ("residual_scale", "residual_lengthscale")  # identified, judged by R-hat and ESS

    def __init__(self, config):
        self.features = config.residual_features
        self.kernel = config.residual_kernel
        self.lengthscales = config.residual_lengthscales
        self.seed = config.residual_seed

    def basis(self, n_train: int) -> tuple[np.ndarray, np.ndarray]:
        """The fixed frequencies (n_train, D) and phases (D,) (:func:`fourier_basis`)."""
        return fourier_basis(n_train, self.features, self.kernel, self.seed)

    def coords(self) -> dict:
        return {"residual_feature": np.arange(self.features)}

    def build(self, config, mixtures, frequencies, phases):
        """Inside the ``pm.Model`` (coords ``valid_domain``, ``train_domain``, ``residual_feature``): sample the
        residual's variables and return it at the pilots' ``mixtures``, (run, valid_domain) in loss-scale units.
        Every variable is forward-samplable (prior predictive simulation needs nothing else)."""
        tau = config.prior("residual_scale", dims="valid_domain").create_variable("residual_scale")
        if self.lengthscales == "shared":
            one = config.prior("residual_lengthscale").create_variable("residual_lengthscale_shared")
            ell = pm.Deterministic("residual_lengthscale", pt.ones(frequencies.shape[0]) * one, dims="train_domain")
        else:
            ell = config.prior("residual_lengthscale", dims="train_domain").create_variable("residual_lengthscale")
        rho = config.prior("residual_shared").create_variable("residual_shared")
        shared_weights = pm.Normal("residual_shared_weights", 0.0, 1.0, dims="residual_feature")
        domain_weights = pm.Normal("residual_domain_weights", 0.0, 1.0, dims=("valid_domain", "residual_feature"))
        return residual(mixtures, pt.as_tensor(frequencies), pt.as_tensor(phases), tau, ell, rho, shared_weights, domain_weights)

    def evaluate(self, r, params: dict, constants: dict):
        """The residual (..., n, V) in loss-scale units at mixtures ``r`` for posterior draws ``params`` (leading dims
        the draws'), with the fit's ``constants`` (frequencies and phases), all numpy or all torch."""
        return residual(r, constants["residual_frequencies"], constants["residual_phases"], *(params[k] for k in PARAMETER_NAMES))


def get_residual(config) -> MixingResidual | None:
    """The config's residual, or ``None`` for ``residual: none``."""
    if config.residual == "none":
        return None
    if config.residual == "rff":
        return MixingResidual(config)
    raise ValueError(f"unknown residual {config.residual!r}; the residuals are {', '.join(RESIDUAL_KINDS)}")
