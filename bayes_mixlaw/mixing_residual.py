r"""A learned residual of the mixing law over the mixture simplex, fitted jointly with the law (issue 16).

The law's form (:mod:`bayes_mixlaw.mixing_forms`) is the mean; the residual adds what it misses. For validation
domain i, in units of its loss scale s_i (the units the forms' priors use), at a mixture h over the M training domains::

    L_i(h) / s_i = law_i(h) / s_i + tau_i [sqrt(rho) g_0(h) + sqrt(1 - rho) g_i(h)]
    g_k(h) = phi(h) . w_k,   w_k ~ Normal(0, I_D)                (non-centred; k = 0 shared, k = 1..V per domain)
    phi(h) = sqrt(2 / D) cos((x(h) / ell) W + b)                 (D random Fourier features)
    tau_i ~ Exponential(residual_scale),  ell_j / m ~ LogNormal(residual_lengthscale),  rho ~ Beta(residual_shared)

where x(h) is h itself or its square root (``residual_inputs``, :func:`residual_inputs`) and m the pilots' median
distance between their x (the kernel's median heuristic), so one lengthscale prior serves 5 training domains and 17.

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

Its weights integrated out (``residual_weights: integrated``, the default). Sampled, the weights ``w`` made the posterior
a funnel in the lengthscale: a new ``ell`` moves every feature, so every weight must follow it (RegMix: R-hat 1.74;
5Mix: 1.95). With Normal noise the residual is Gaussian given the rest, and its D (V + 1) weights integrate out in
closed form; with the lengthscale on a fixed grid of ``residual_grid`` points (nodes at equal-probability quantiles
of its prior, so the grid *is* the prior, discretised) the features' Gram matrix at each node is a constant of the data,
so its eigenbasis is computed once and the marginal likelihood is a sum over eigen-coordinates
(:func:`integrated_log_likelihood`), the lengthscale summed out over the grid. The sampler sees only the law, the
noise, ``tau`` and ``rho``. After sampling each draw takes its lengthscale and its weights from their exact conditional
posterior (:func:`conditional_weights`), so the fit file's draws are those of the same joint posterior and every
function of the weights (predict, optimize, the torch function) is unchanged. It needs the Normal likelihood, one
lengthscale, a complete runs table (every run with every validation domain) and no ``loss_sd``; otherwise
``residual_weights: sampled`` samples the weights.

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
    # ell_j, lengthscale of the kernel over the mixture proportions, in units of the pilots' median distance (the
    # kernel's median heuristic): median 1, a factor 2.1 either side at one sd. The data put it at 0.4x on 5Mix (21
    # pilots, median distance 0.46) and above 0.85x on RegMix (384 pilots, 0.76) (benchmarks/README.md)
    "residual_lengthscale": Prior("LogNormal", mu=0.0, sigma=0.75),
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


def lengthscale_grid(prior: Prior, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The lengthscale's grid: ``size`` nodes at the prior's quantiles (k + 1/2) / size, k = 0..size-1, each of
    prior probability 1 / size. Returns the nodes (size,) and their log prior weights (size,)."""
    quantiles = (np.arange(size) + 0.5) / size
    dist = getattr(pm, prior.distribution).dist(**prior.parameters)
    return np.asarray(pm.draw(pm.icdf(dist, quantiles)), dtype=float).reshape(size), np.full(size, -np.log(size))


def spectral_basis(mixtures: np.ndarray, frequencies: np.ndarray, phases: np.ndarray, nodes: np.ndarray) -> dict[str, np.ndarray]:
    r"""The features' singular value decomposition at each grid lengthscale :math:`\ell_k`:
    :math:`\Phi_k = U_k \,\mathrm{diag}(\sigma_k)\, V_k^\top` with :math:`\Phi_k` (n, D) the pilots' features.

    Returns ``projection`` (K, R, n) = diag(sigma_k) U_k^T (a residual vector's coordinates times the singular values),
    ``eigenvalues`` (K, R) = sigma_k^2 (those of the Gram matrix Phi_k^T Phi_k), R = min(n, D), and ``rotation``
    (K, D, D) = V_k (columns: the weights' eigen-coordinates, the null space of Phi_k last)."""
    projection, eigenvalues, rotation = [], [], []
    for ell in nodes:
        phi = fourier_features(mixtures, frequencies, phases, np.full(mixtures.shape[-1], ell))
        u, sigma, vt = np.linalg.svd(phi, full_matrices=True)
        rank = min(phi.shape)
        projection.append(sigma[:, None] * u[:, :rank].T)
        eigenvalues.append(sigma**2)
        rotation.append(vt.T)
    return {"projection": np.stack(projection), "eigenvalues": np.stack(eigenvalues), "rotation": np.stack(rotation)}


def _coordinates(residuals, precision, residual_scale, residual_shared, projection, eigenvalues):
    """The pieces :func:`integrated_log_likelihood` and :func:`conditional_weights` share, per grid node and
    eigen-coordinate: a, b (..., 1, V, 1), the data's coordinates h (..., K, V, R), d = 1 + b^2 p lambda, and
    s = 1 + sum_i a_i^2 p_i lambda / d_i and c = sum_i a_i h_i / d_i (..., K, R), by name."""
    xp = array_namespace(residuals, precision, residual_scale, residual_shared)
    a = (residual_scale * residual_shared[..., None] ** 0.5)[..., None, :, None]
    b = (residual_scale * (1.0 - residual_shared[..., None]) ** 0.5)[..., None, :, None]
    p = precision[..., None, :, None]
    h = p * (residuals[..., None, :, :] @ xp.swapaxes(projection, -1, -2))  # (..., K, V, R)
    lam = eigenvalues[:, None, :]  # (K, 1, R)
    d = 1.0 + b**2 * p * lam
    s = 1.0 + (a**2 * p * lam / d).sum(axis=-2)
    c = (a * h / d).sum(axis=-2)
    return {"a": a, "b": b, "p": p, "h": h, "d": d, "s": s, "c": c, "xp": xp}


def _gain(k: dict):
    """The log-likelihood's gain (..., K) from :func:`_coordinates`' pieces (the formula of :func:`node_log_likelihood`)."""
    quad = (k["b"] ** 2 * k["h"] ** 2 / k["d"]).sum(axis=(-2, -1)) + (k["c"] ** 2 / k["s"]).sum(axis=-1)
    logdet = k["xp"].log(k["d"]).sum(axis=(-2, -1)) + k["xp"].log(k["s"]).sum(axis=-1)
    return 0.5 * quad - 0.5 * logdet


def node_log_likelihood(residuals, precision, residual_scale, residual_shared, projection, eigenvalues):
    r"""What the residual adds to the Normal log-likelihood of the law's residuals, at each grid node: (..., K).

    Per validation domain i the law's residuals r_i (n,) have precision p_i; the residual adds
    :math:`\Phi(a_i w_0 + b_i w_i)` with :math:`a_i = \tau_i\sqrt\rho`, :math:`b_i = \tau_i\sqrt{1-\rho}` and
    standard-normal weights. Integrating the weights out, with :math:`A` the weights' posterior precision and
    :math:`c` their data term, the log-likelihood gains :math:`\tfrac12 c^\top A^{-1} c - \tfrac12 \log|A|`. In the
    eigenbasis of the Gram matrix (eigenvalues :math:`\lambda_j`) A is block-diagonal over coordinates j, each block
    an arrow matrix over (w_0, w_1..w_V), so with :math:`h_{ij} = p_i \sigma_j u_j^\top r_i`,
    :math:`d_{ij} = 1 + b_i^2 p_i \lambda_j`, :math:`s_j = 1 + \sum_i a_i^2 p_i \lambda_j / d_{ij}` and
    :math:`c_j = \sum_i a_i h_{ij} / d_{ij}` (the Schur complement of the domains' weights):

    .. math:: \tfrac12 \Big[\sum_{ij} b_i^2 h_{ij}^2 / d_{ij} + \sum_j c_j^2 / s_j\Big]
              - \tfrac12 \Big[\sum_{ij} \log d_{ij} + \sum_j \log s_j\Big]

    ``residuals`` (..., V, n), ``precision`` (..., V), ``residual_scale`` tau (..., V), ``residual_shared`` rho (...),
    ``projection`` (K, R, n) and ``eigenvalues`` (K, R) from :func:`spectral_basis`. numpy or PyTensor."""
    return _gain(_coordinates(residuals, precision, residual_scale, residual_shared, projection, eigenvalues))


def integrated_log_likelihood(residuals, precision, residual_scale, residual_shared, projection, eigenvalues, log_weights):
    """:func:`node_log_likelihood` with the lengthscale summed out over its grid (log prior weights ``log_weights``
    (K,)): log sum_k exp(ll_k + log w_k), shape (...). numpy or PyTensor."""
    xp = array_namespace(residuals, precision, residual_scale, residual_shared)
    terms = node_log_likelihood(residuals, precision, residual_scale, residual_shared, projection, eigenvalues) + log_weights
    top = terms.max(axis=-1)
    return top + xp.log(xp.exp(terms - top[..., None]).sum(axis=-1))


def conditional_weights(residuals, precision, residual_scale, residual_shared, basis: dict, nodes, log_weights, rng):
    """One draw of the lengthscale and the weights from their posterior given everything else, per posterior draw.

    Inputs as :func:`node_log_likelihood` with a leading draws dim (S,) (numpy); ``basis`` from
    :func:`spectral_basis`. The grid node k ~ p(k | rest) ∝ w_k exp(ll_k); then in node k's eigen-coordinates, per
    coordinate j: w_0j ~ Normal(c_j / s_j, 1 / s_j) and w_ij | w_0j ~ Normal(b_i (h_ij - a_i p_i lambda_j w_0j) / d_ij,
    1 / d_ij) (the arrow matrix's conditionals); coordinates in Phi's null space keep their standard-normal prior.
    Returns the lengthscale (S,), w_0 (S, D) and w_1..V (S, V, D)."""
    pieces = _coordinates(residuals, precision, residual_scale, residual_shared, basis["projection"], basis["eigenvalues"])
    ll = _gain(pieces) + log_weights
    prob = np.exp(ll - ll.max(axis=-1, keepdims=True))
    prob /= prob.sum(axis=-1, keepdims=True)
    n_draws, n_domains = residuals.shape[0], residuals.shape[-2]
    k = (prob.cumsum(axis=-1) < rng.uniform(size=(n_draws, 1))).sum(axis=-1).clip(max=len(nodes) - 1)
    pick = np.arange(n_draws)
    rank, n_features = basis["eigenvalues"].shape[-1], basis["rotation"].shape[-1]
    shared = rng.standard_normal((n_draws, n_features))
    own = rng.standard_normal((n_draws, n_domains, n_features))
    s_k, c_k, d_k, h_k = (pieces[name][pick, k] for name in "scdh")  # (S, R), (S, R), (S, V, R), (S, V, R)
    shared[:, :rank] = c_k / s_k + shared[:, :rank] / np.sqrt(s_k)
    lam_k = basis["eigenvalues"][k][:, None, :]
    a_s, b_s, p_s = (pieces[name][:, 0] for name in "abp")  # (S, V, 1)
    own[:, :, :rank] = b_s * (h_k - a_s * p_s * lam_k * shared[:, None, :rank]) / d_k + own[:, :, :rank] / np.sqrt(d_k)
    rotation = basis["rotation"][k]  # (S, D, D)
    return nodes[k], (rotation @ shared[..., None])[..., 0], own @ np.swapaxes(rotation, -1, -2)


#: the floor under a share before its square root (``residual_inputs: sqrt_shares``): finite gradients at zero shares
SQRT_FLOOR = 1e-4


def residual_inputs(r, kind: str = "shares"):
    """The residual's inputs from mixtures ``r`` (..., M): the shares themselves, or their square roots
    (``sqrt_shares``: the Hellinger embedding of the simplex, in which 0 -> 1% is as far as 25% -> 36%), each share
    floored at ``SQRT_FLOOR``. numpy, PyTensor or torch."""
    if kind == "shares":
        return r
    if kind == "sqrt_shares":
        return (r + SQRT_FLOOR) ** 0.5
    raise ValueError(f"unknown residual inputs {kind!r}; they are shares, sqrt_shares")


class MixingResidual:
    """The residual of a mixing-law config (``residual: rff`` and its options): the PyMC builder, the fixed basis and
    the function on posterior draws. ``MixingLaw`` adds it to the form's mean in the model, in the predictions,
    the log-likelihood and the torch function BoTorch and the optimiser use."""

    parameter_names = PARAMETER_NAMES

    def __init__(self, config):
        self.features = config.residual_features
        self.kernel = config.residual_kernel
        self.lengthscales = config.residual_lengthscales
        self.seed = config.residual_seed
        self.integrated = config.residual_weights == "integrated"
        self.inputs = config.residual_inputs
        self.grid = lengthscale_grid(config.prior("residual_lengthscale"), config.residual_grid) if self.integrated else None

    @property
    def diagnostic_names(self) -> tuple[str, ...]:
        """The sampled variables judged by R-hat and ESS (an integrated residual's lengthscale and weights are drawn
        from their exact conditionals after sampling, so they mix as the sampled ones do)."""
        return ("residual_scale", "residual_shared") if self.integrated else ("residual_scale", "residual_lengthscale")

    @staticmethod
    def distance_scale(mixtures: np.ndarray) -> float:
        """The pilots' median Euclidean distance between mixtures (distinct pairs), the lengthscale's unit; 1 with
        fewer than two distinct pilots."""
        unique = np.unique(np.asarray(mixtures, dtype=float), axis=0)  # in the residual's inputs
        if len(unique) < 2:
            return 1.0
        i, j = np.triu_indices(len(unique), k=1)
        return float(np.median(np.linalg.norm(unique[i] - unique[j], axis=-1)))

    def data(self, mixtures: np.ndarray) -> dict[str, np.ndarray]:
        """The model's data of the residual (``pm.Data``, refreshed on every fit): the lengthscale's unit and, for the
        integrated residual, the features' spectral basis at the grid's nodes."""
        out = {"residual_distance_scale": np.asarray(self.distance_scale(residual_inputs(mixtures, self.inputs)))}
        if self.integrated:
            basis = self.spectral(mixtures)
            out.update(residual_projection=basis["projection"], residual_eigenvalues=basis["eigenvalues"])
        return out

    def basis(self, n_train: int) -> tuple[np.ndarray, np.ndarray]:
        """The fixed frequencies (n_train, D) and phases (D,) (:func:`fourier_basis`)."""
        return fourier_basis(n_train, self.features, self.kernel, self.seed)

    def coords(self) -> dict:
        return {"residual_feature": np.arange(self.features)}

    def build(self, config, mixtures, frequencies, phases, distance_scale):
        """Inside the ``pm.Model`` (coords ``valid_domain``, ``train_domain``, ``residual_feature``): sample the
        residual's variables and return it at the pilots' ``mixtures``, (run, valid_domain) in loss-scale units.
        Every variable is forward-samplable (prior predictive simulation needs nothing else)."""
        tau = config.prior("residual_scale", dims="valid_domain").create_variable("residual_scale")
        if self.lengthscales == "shared":
            one = config.prior("residual_lengthscale").create_variable("residual_lengthscale_shared")
            ell = pm.Deterministic("residual_lengthscale", pt.ones(frequencies.shape[0]) * one * distance_scale, dims="train_domain")
        else:
            relative = config.prior("residual_lengthscale", dims="train_domain").create_variable("residual_lengthscale_relative")
            ell = pm.Deterministic("residual_lengthscale", relative * distance_scale, dims="train_domain")
        rho = config.prior("residual_shared").create_variable("residual_shared")
        shared_weights = pm.Normal("residual_shared_weights", 0.0, 1.0, dims="residual_feature")
        domain_weights = pm.Normal("residual_domain_weights", 0.0, 1.0, dims=("valid_domain", "residual_feature"))
        x = residual_inputs(mixtures, self.inputs)
        return residual(x, pt.as_tensor(frequencies), pt.as_tensor(phases), tau, ell, rho, shared_weights, domain_weights)

    # the integrated residual (residual_weights: integrated) ---------------------------------------------------

    def check_table(self, source: str, runs: list[str], valid: list[str], run_idx: np.ndarray, valid_idx: np.ndarray, loss_sd: np.ndarray) -> None:
        """The integrated residual needs every run with every validation domain once and no ``loss_sd``: else a
        ValueError naming the table, the first missing pair and the option that takes such tables."""
        if np.any(loss_sd != 0):
            raise ValueError(
                f"{source}: the integrated residual takes no loss_sd column (the noise must be one scale per domain); set residual_weights: sampled"
            )
        counts = np.zeros((len(valid), len(runs)), dtype=int)
        np.add.at(counts, (valid_idx, run_idx), 1)
        if np.any(counts != 1):
            v, r = np.argwhere(counts != 1)[0]
            problem = "no loss" if counts[v, r] == 0 else f"{counts[v, r]} losses"
            raise ValueError(
                f"{source}: the integrated residual needs every run with every validation domain once; run {runs[r]!r} has "
                f"{problem} for {valid[v]!r}; set residual_weights: sampled"
            )

    def spectral(self, mixtures: np.ndarray) -> dict[str, np.ndarray]:
        """:func:`spectral_basis` of the pilots' ``mixtures`` at the lengthscale grid's nodes."""
        x = residual_inputs(mixtures, self.inputs)
        return spectral_basis(x, *self.basis(mixtures.shape[-1]), self.grid[0] * self.distance_scale(x))

    def integrate(self, config, mixtures: np.ndarray, mean_scaled, observed, run_idx, valid_idx, noise) -> None:
        """Inside the ``pm.Model``: sample tau and rho and add the weights' and the lengthscale's integral
        (:func:`integrated_log_likelihood`) as a potential. ``mean_scaled`` (run, valid_domain) is the law's mean,
        ``observed`` (obs,) the losses, both in loss-scale units; ``noise`` (valid_domain,) the Normal's scales."""
        tau = config.prior("residual_scale", dims="valid_domain").create_variable("residual_scale")
        rho = config.prior("residual_shared").create_variable("residual_shared")
        data = self.data(mixtures)
        pm.Data("residual_distance_scale", data["residual_distance_scale"])  # in the lengthscale's grid, kept as data
        projection = pm.Data("residual_projection", data["residual_projection"])
        eigenvalues = pm.Data("residual_eigenvalues", data["residual_eigenvalues"])
        # shapes from the graph, not the build's numbers: a compiled model is reused for tables with other run counts
        residuals = pt.zeros((noise.shape[0], mean_scaled.shape[0]))[valid_idx, run_idx].set(observed - mean_scaled[run_idx, valid_idx])
        loglik = integrated_log_likelihood(residuals, noise**-2, tau, rho, projection, eigenvalues, pt.as_tensor(self.grid[1]))
        pm.Potential("residual_integrated", loglik)

    def draw_weights(self, posterior, mixtures: np.ndarray, mean_scaled, observed: np.ndarray, run_idx, valid_idx, seed: int | None):
        """The posterior with the lengthscale and the weights drawn from their conditionals (:func:`conditional_weights`),
        draw by draw. ``mean_scaled(params)``: the law's mean (S, run, valid_domain) in loss-scale units for a chunk of
        draws' parameters; ``observed`` (obs,) in the same units. An integer ``seed`` gives the same draws anywhere."""
        basis = self.spectral(mixtures)
        nodes, log_weights = self.grid[0] * self.distance_scale(residual_inputs(mixtures, self.inputs)), self.grid[1]
        chains, draws = posterior.sizes["chain"], posterior.sizes["draw"]
        flat = {name: posterior[name].values.reshape(chains * draws, *posterior[name].shape[2:]) for name in posterior.data_vars}
        rng = np.random.default_rng(None if seed is None else [seed, 16])
        n_runs, n_valid = mixtures.shape[0], posterior.sizes["valid_domain"]
        ell, shared, own = [], [], []
        for start in range(0, chains * draws, 256):
            chunk = {name: values[start : start + 256] for name, values in flat.items()}
            residuals = np.zeros((len(chunk["noise_sigma"]), n_valid, n_runs))
            residuals[:, valid_idx, run_idx] = observed - mean_scaled(chunk)[:, run_idx, valid_idx]
            out = conditional_weights(
                residuals, chunk["noise_sigma"] ** -2.0, chunk["residual_scale"], chunk["residual_shared"], basis, nodes, log_weights, rng
            )
            ell.append(out[0]), shared.append(out[1]), own.append(out[2])
        train = mixtures.shape[-1]
        ell = np.broadcast_to(np.concatenate(ell)[:, None], (chains * draws, train)).reshape(chains, draws, train)
        return posterior.assign_coords(residual_feature=np.arange(self.features)).assign(
            residual_lengthscale=(("chain", "draw", "train_domain"), ell),
            residual_shared_weights=(("chain", "draw", "residual_feature"), np.concatenate(shared).reshape(chains, draws, -1)),
            residual_domain_weights=(("chain", "draw", "valid_domain", "residual_feature"), np.concatenate(own).reshape(chains, draws, n_valid, -1)),
        )

    def evaluate(self, r, params: dict, constants: dict):
        """The residual (..., n, V) in loss-scale units at mixtures ``r`` for posterior draws ``params`` (leading dims
        the draws'), with the fit's ``constants`` (frequencies and phases), all numpy or all torch."""
        x = residual_inputs(r, self.inputs)
        return residual(x, constants["residual_frequencies"], constants["residual_phases"], *(params[k] for k in PARAMETER_NAMES))


def get_residual(config) -> MixingResidual | None:
    """The config's residual, or ``None`` for ``residual: none``."""
    if config.residual == "none":
        return None
    if config.residual == "rff":
        return MixingResidual(config)
    raise ValueError(f"unknown residual {config.residual!r}; the residuals are {', '.join(RESIDUAL_KINDS)}")
