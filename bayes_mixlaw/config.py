"""Configuration of a fit: the law variant, likelihood, priors and sampler settings.

Priors are pymc-extras :class:`~pymc_extras.prior.Prior` objects named by their role. A config
file (YAML or JSON) overrides any of them in pymc-extras' dictionary form::

    law: explicit            # a registered form: explicit, implicit (K latent validation domains), power_law, power_law_base
    n_implicit: 4
    likelihood: studentt     # or normal
    priors:
      t_sigma: {dist: HalfNormal, kwargs: {sigma: 1.0}}
    sampler: {draws: 500, tune: 500, chains: 4}   # backend: jax samples with JAX (a GPU)

The model fixes each prior's dims (they follow from the data), so a config gives only the
distribution and its parameters.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar, Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pymc_extras.deserialize import deserialize
from pymc_extras.prior import Prior

from bayes_mixlaw.mixing_forms.explicit import EXPLICIT_PRIORS
from bayes_mixlaw.mixing_forms.implicit import IMPLICIT_PRIORS
from bayes_mixlaw.mixing_residual import RESIDUAL_PRIORS

# Priors of the mixing law, in units of each validation domain's loss scale s_i (its median observed
# loss), so the same defaults suit any tokenizer or data set. Each form of the law (bayes_mixlaw.mixing_forms)
# brings its own (``default_priors``: the explicit law's loss_at_mean, f_mu, f_sigma, t_mu, t_sigma, the
# implicit law's implicit_weights, the power laws' power_weights, power_gamma and power_base_gamma); the likelihood's are here.
LIKELIHOOD_PRIORS: dict[str, Prior] = {
    # observation noise relative to the loss scale: pilot losses scatter by about a percent
    "noise_sigma": Prior("HalfNormal", sigma=0.02),
    # Student-t degrees of freedom minus one (Juarez and Steel's weakly informative Gamma(2, 0.1),
    # shifted so that nu > 1: the additive noise then has a mean, and so does every prediction)
    "nu": Prior("Gamma", alpha=2.0, beta=0.1),
}
# The explicit and implicit laws' priors with the likelihood's, under the names the other laws reuse.
DEFAULT_PRIORS: dict[str, Prior] = {**EXPLICIT_PRIORS, **LIKELIHOOD_PRIORS, "implicit_weights": IMPLICIT_PRIORS["implicit_weights"]}


def registered_form(name: str) -> str:
    """``name`` if it is a registered mixing form's (bayes_mixlaw.mixing_forms); else the error that lists them."""
    from bayes_mixlaw.mixing_forms import get_form

    get_form(name)
    return name


class _WithFormPriors(Mapping):
    """A law's own priors (``own``; a later dict wins over an earlier) and every registered mixing form's, looked up when used (so a
    form registered after this module was imported brings its priors to the config); where both name one, the law's."""

    def __init__(self, *own: dict[str, Prior]):
        self.own = own

    def _all(self) -> dict[str, Prior]:
        from bayes_mixlaw.mixing_forms import form_priors

        merged = dict(form_priors())
        for priors in self.own:
            merged.update(priors)
        return merged

    def __getitem__(self, name):
        return self._all()[name]

    def __iter__(self):
        return iter(self._all())

    def __len__(self):
        return len(self._all())


class SamplerConfig(BaseModel):
    """How the posterior is computed."""

    model_config = ConfigDict(extra="forbid")

    # nuts: the default; fast: a short NUTS run for planning loops (FAST_NUTS below, same compiled
    # model); advi: mean-field ADVI (approximate, slower than "fast" on the mixing law)
    method: Literal["nuts", "fast", "advi"] = "nuts"
    draws: int = Field(1000, gt=0)
    tune: int = Field(1000, ge=0)
    chains: int = Field(4, gt=0)
    cores: int | None = Field(None, gt=0)
    target_accept: float = Field(0.8, gt=0, lt=1)
    # On 5Mix a diagonal mass matrix needs ~60 (pooled within groups) to ~390 (pooled across all)
    # leapfrog steps a draw at ~20 us a step; nutpie's low-rank one needs ~15 steps but costs far
    # more a step on this model (5 s against 51 s for 4 x 2000 iterations, pooled within groups).
    adaptation: Literal["diag", "low_rank"] = "diag"
    advi_iterations: int = Field(30000, gt=0, description="optimisation steps of method='advi'")
    # Where NUTS computes the log density and its gradient: numba (the default, fastest on small tables) or JAX
    # (nutpie's JAX backend; pip install 'bayes_mixlaw[jax]'), for a GPU and large tables: on CPU it took 3.6x numba's
    # sampling time at 250 runs x 10 domains, 0.46x at 5,000 x 50 (benchmarks/mixing_scale.py; README, "When to use
    # the JAX backend").
    backend: Literal["numba", "jax"] = "numba"
    # Draw until converged (NUTS, two chains or more; laws that say what they check, the nested law): after every
    # ``check_every`` draws a chain, the draws so far are checked, and sampling stops at the first check with max
    # R-hat <= ``stop_rhat`` and min bulk ESS >= ``min_ess`` over the law's checked quantities (``draws`` is then the
    # most a chain takes). A check reads exactly the first k x check_every draws of each chain, so a seed gives the
    # same draws in any process, whenever the checks run. None: always ``draws``. The defaults are the project's rule
    # for a converged fit; a fit whose draws serve a coarser purpose (the discrepancy's calibration fit) stops sooner.
    check_every: int | None = Field(None, gt=0)
    min_ess: int = Field(400, gt=0)
    stop_rhat: float = Field(1.01, ge=1.0)
    # Where a check while sampling finds divergent transitions in the draws so far, NUTS starts again once (warm-up
    # included, the same seed) at this higher target_accept: smaller steps through the curved region the divergences
    # mark, the advice a divergence warning gives, taken before the draws are spent. The restart is read from the same
    # fixed prefix as the stopping rule, so a seed still gives the same draws. None: draw on (the divergences are
    # reported). The nested law's default: 0.95 (the whole 5Mix table: 126 divergences at 0.8, converged at 0.95).
    retry_target_accept: float | None = Field(None, gt=0, lt=1)

    @property
    def checks_while_sampling(self) -> bool:
        """Whether NUTS draws until converged (``check_every`` above): method ``nuts``, ``check_every`` set, two chains
        or more."""
        return self.method == "nuts" and bool(self.check_every) and self.chains > 1

    @model_validator(mode="after")
    def _backend_samples_nuts(self):
        if self.backend != "numba" and self.method == "advi":
            raise ValueError(f"backend '{self.backend}' computes NUTS's gradients (method nuts or fast); method 'advi' runs in PyTensor's default backend")
        return self


# The fast path: 2 chains x (300 warm-up + 250 draws) of NUTS. On 5Mix it predicts held-out mixtures as
# well as the full run (MAE 0.0335 against 0.0334) in ~2 s, with R-hat around 1.02-1.05, which the
# diagnostics report: use the full run for numbers you publish.
FAST_NUTS = {"chains": 2, "tune": 300, "draws": 250}


# Priors over coefficients of the proportions: with sum_j r_j = 1 only their rows up to a shift are
# identified, so these must sum to zero.
ZERO_SUM_PRIORS = ("t_mu", "size_t_mu", "step_t_mu")


class LawConfig(BaseModel):
    """What every law's fit shares: likelihood, priors (overrides of ``DEFAULT_PRIORS``), sampler."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)
    DEFAULT_PRIORS: ClassVar[dict[str, Prior]] = {}

    likelihood: Literal["studentt", "normal"] = "studentt"
    priors: dict[str, Prior] = Field(default_factory=dict)
    sampler: SamplerConfig = Field(default_factory=SamplerConfig)

    @field_validator("priors", mode="before")
    @classmethod
    def _read_priors(cls, value):
        if value is None:
            return {}
        out = {}
        for name, prior in dict(value).items():
            if name not in cls.DEFAULT_PRIORS:
                raise ValueError(f"unknown prior '{name}'; the priors are {sorted(cls.DEFAULT_PRIORS)}")
            if isinstance(prior, dict):
                try:
                    prior = deserialize(prior) if "dist" in prior else Prior(prior.pop("distribution"), **prior)
                except Exception as err:  # pymc-extras raises several types for a bad spec
                    raise ValueError(f"prior '{name}': cannot read {prior!r} ({err})") from None
            if not isinstance(prior, Prior):
                raise ValueError(f"prior '{name}' must be a pymc_extras Prior or its dict form, got {prior!r}")
            if name in ZERO_SUM_PRIORS and prior.distribution != "ZeroSumNormal":
                raise ValueError(f"prior '{name}' must be a ZeroSumNormal: with sum_j r_j = 1 only its rows up to a shift are identified")
            out[name] = prior
        return out

    def prior(self, name: str, dims=None) -> Prior:
        """The prior for ``name`` (the user's or the default), with the dims the model needs."""
        prior = self.priors.get(name, self.DEFAULT_PRIORS[name])
        return Prior(prior.distribution, dims=dims, **prior.parameters)

    def structure_settings(self) -> dict:
        """The settings that fix the model's structure (every one but the sampler's and the priors'), as JSON-able
        values: part of the compiled-model cache's key and of a fit file's structure key."""
        return self.model_dump(mode="json", exclude={"sampler", "priors"})

    def to_dict(self) -> dict:
        data = self.model_dump(exclude={"priors"})
        data["priors"] = {name: p.to_dict() for name, p in self.priors.items()}
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict) -> LawConfig:
        return cls.model_validate(data)

    @classmethod
    def from_fit(cls, data: dict) -> LawConfig:
        """The config a fit file holds (its settings as they were written; :meth:`from_dict` for a current file)."""
        return cls.from_dict(data)

    @classmethod
    def from_file(cls, path) -> LawConfig:
        """Read a YAML or JSON config; errors name the file and the offending field."""
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as err:
            raise ConfigError(f"{path}: cannot read the config: {err}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: a config is a mapping of settings, got {type(data).__name__}")
        try:
            return cls.from_dict(data)
        except ValidationError as err:
            problems = "; ".join(f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in err.errors())
            raise ConfigError(f"{path}: {problems}") from None


# Boundary-avoiding priors for the scales pooled across validation domains, used when a table has few of them
# (PooledLawConfig.few_domains; each law takes those of its own parameters). From the 5Mix pilots' nested fit (22
# domains, the same lab's 70M-410M runs): run_sigma per domain 0.0008-0.012 (median 0.0025), f_sigma 0.45-0.81,
# log_ab_sigma 0.24-0.40 (LogNormal(-1.15, 0.3): median 0.32; Gamma(2, 4) left 3Mix's divergent draws at log_ab_sigma
# ~ 0.04, where three log(a + b) collapse together); mixture_sigma Gamma(2, 100) (mean 0.02, Chung et al., 2013:
# zero-avoiding, as the 3Mix fits' stuck chains at mixture_sigma ~ 0.001 asked); gamma_sigma 0.018-0.032 (median 0.023;
# LogNormal(-3.5, 0.5): median 0.030, 0.013-0.068 at 90%; the HalfNormal(0.2) default let 3Mix's chains into the funnel
# where the three domains' gamma collapse together, gamma_sigma 0.002-0.01 at 24-46 divergences); log_exponent_sigma
# 0.16-0.25 (median 0.20; RedPajama's 22 domains: 0.22-0.33, median 0.27; LogNormal(-1.47, 0.4): median 0.23,
# 0.12-0.44 at 90%; the HalfNormal(0.15) default let one chain of the 2-size calibration fits of tables simulated
# from a 5-domain fit into the funnel where the domains' exponents collapse together, log_exponent_sigma ~0.07 at 116
# and 1,358 divergent draws, so those fits' axes kept their external prior; none diverged with this prior)
FEW_DOMAIN_PRIORS: dict[str, Prior] = {
    "run_sigma": Prior("LogNormal", mu=-6.0, sigma=0.8),
    "f_sigma": Prior("LogNormal", mu=-0.7, sigma=0.5),
    "log_ab_sigma": Prior("LogNormal", mu=-1.15, sigma=0.3),
    "mixture_sigma": Prior("Gamma", alpha=2.0, beta=100.0),
    "gamma_sigma": Prior("LogNormal", mu=-3.5, sigma=0.5),
    "log_exponent_sigma": Prior("LogNormal", mu=-1.47, sigma=0.4),
}


class PooledLawConfig(LawConfig):
    """A law whose parameters are pooled across validation domains (the mixing law, the nested law)."""

    # With fewer validation domains than this, the scales pooled across them are barely pinned by the data (Gelman,
    # 2006: a group-level scale over fewer than ~5 groups needs an informative prior), and their funnels held the 3Mix
    # nested fits (3 domains) at 260-1,034 divergences: FEW_DOMAIN_PRIORS (those of the law's own parameters) replace
    # the defaults the user has not overridden, and a law with FEW_DOMAIN_TARGET_ACCEPT samples with it unless the user
    # set one. Five domains are still too few: nested fits of tables simulated from a 5-domain RedPajama fit had 21-36
    # divergences each, in f_sigma's funnel (divergent draws at f_sigma ~0.04, posterior median 0.39); the mixing law on
    # the closed loop's 5 pilots x 3 domains had 75-104 divergences in 3 seeds, at f_sigma 0.15 against 0.39 in the
    # other draws (0 with f_sigma's prior here). 22 domains pin every pooled scale. 0 turns the rule off.
    few_domains: int = Field(8, ge=0)
    FEW_DOMAIN_TARGET_ACCEPT: ClassVar[float | None] = None
    # ... and a law with FEW_DOMAIN_TUNE warms up that many steps unless the user gave a sampler config
    FEW_DOMAIN_TUNE: ClassVar[int | None] = None
    # ... and a law with FEW_DOMAIN_RETRY_TARGET_ACCEPT starts again at that target_accept where its draws diverge
    # (SamplerConfig.retry_target_accept), unless the user gave a sampler config
    FEW_DOMAIN_RETRY_TARGET_ACCEPT: ClassVar[float | None] = None
    # ... and a law with FEW_DOMAIN_ADAPTATION adapts NUTS's mass matrix that way (SamplerConfig.adaptation), unless the
    # user gave a sampler config
    FEW_DOMAIN_ADAPTATION: ClassVar[Literal["diag", "low_rank"] | None] = None

    def for_domains(self, n_valid: int) -> Self:
        """The config a fit on ``n_valid`` validation domains uses (``few_domains`` above); the fit file keeps it."""
        if n_valid >= self.few_domains:
            return self
        own = {name: prior for name, prior in FEW_DOMAIN_PRIORS.items() if name in self.DEFAULT_PRIORS and name not in self.priors}
        update = {"priors": own | dict(self.priors)}
        sampler = {}
        if self.FEW_DOMAIN_TARGET_ACCEPT is not None and "target_accept" not in self.sampler.model_fields_set:
            sampler["target_accept"] = self.FEW_DOMAIN_TARGET_ACCEPT
        if "sampler" not in self.model_fields_set:
            unless_given = {"tune": self.FEW_DOMAIN_TUNE, "retry_target_accept": self.FEW_DOMAIN_RETRY_TARGET_ACCEPT, "adaptation": self.FEW_DOMAIN_ADAPTATION}
            sampler |= {name: value for name, value in unless_given.items() if value is not None}
        if sampler:
            update["sampler"] = self.sampler.model_copy(update=sampler)
        return self.model_copy(update=update)


class MixingLawConfig(PooledLawConfig):
    """Everything that defines a mixing-law fit apart from the data."""

    # the likelihood's, the residual's and every registered form's
    DEFAULT_PRIORS: ClassVar[Mapping[str, Prior]] = _WithFormPriors(LIKELIHOOD_PRIORS, RESIDUAL_PRIORS)

    # the law's form, one of the registered forms (bayes_mixlaw.mixing_forms: explicit, implicit, power_law, power_law_base, ...)
    law: str = "explicit"
    n_implicit: int = Field(4, ge=1, description="K, the number of latent domains of the implicit law")
    # Partial pooling of the validation domains' parameters: across all domains, or within the
    # user's groups (the groups file always defines group targets). On 5Mix the paper's five groups
    # pool worse than all 22 together (held-out MAE 0.0359 against 0.0334, benchmarks/README.md).
    pool_by: Literal["all", "groups"] = "all"

    # A learned residual over the mixture simplex added to the law's mean (bayes_mixlaw.mixing_residual), fitted
    # jointly with it: none (the law alone), or rff (random Fourier features of a stationary kernel, shared across
    # validation domains with per-domain scales whose shrinking prior keeps it off until the pilots show it).
    residual: Literal["none", "rff"] = "none"
    residual_features: int = Field(64, ge=1, le=4096, description="D, the number of random Fourier features of the residual")
    residual_kernel: Literal["se", "matern52"] = "se"
    # one lengthscale shared by all training domains, or one per training domain (automatic relevance determination:
    # on RegMix its 17 lengthscales left the chains disagreeing, R-hat 1.74 in 2 x 600 iterations; benchmarks/README.md)
    residual_lengthscales: Literal["shared", "per_domain"] = "shared"
    residual_seed: int = Field(0, ge=0, description="seed of the residual's fixed Fourier frequencies and phases (kept in the fit file)")
    # the residual's weights integrated out of the likelihood, its lengthscale summed over a grid of its prior (the
    # default: sampled, the weights made a funnel with the lengthscale), or sampled (any likelihood and lengthscales)
    residual_weights: Literal["integrated", "sampled"] = "integrated"
    # the residual's inputs: the square roots of the shares (the Hellinger embedding of the simplex; on RegMix held-out
    # Spearman 0.984 against 0.972 with the shares themselves, benchmarks/README.md), or the shares
    residual_inputs: Literal["shares", "sqrt_shares"] = "sqrt_shares"
    residual_grid: int = Field(8, ge=1, le=64, description="K, the grid of the lengthscale's prior the integrated residual sums over")

    @classmethod
    def from_fit(cls, data: dict) -> MixingLawConfig:
        """As :meth:`LawConfig.from_fit`; a residual fitted before ``residual_weights`` and ``residual_inputs``
        existed sampled its weights and took the shares."""
        if data.get("residual", "none") != "none":  # what the residual's options were before they existed
            data = {"residual_weights": "sampled", "residual_inputs": "shares", **data}
        return cls.from_dict(data)

    @model_validator(mode="after")
    def _integrated_residual(self):
        """The integrated residual needs Normal noise and one lengthscale: the Normal is its default likelihood; a
        Student-t or per-domain lengthscales asked for with it are refused, naming the option that takes them."""
        if self.residual == "none" or self.residual_weights == "sampled":
            return self
        if self.likelihood == "studentt" and "likelihood" not in self.model_fields_set:
            object.__setattr__(self, "likelihood", "normal")
        if self.likelihood != "normal":
            raise ValueError(
                "residual_weights: integrated needs likelihood: normal (its weights integrate out under Normal noise); "
                "for a Student-t set residual_weights: sampled"
            )
        if self.residual_lengthscales != "shared":
            raise ValueError("residual_weights: integrated sums one lengthscale over a grid; for per-domain lengthscales set residual_weights: sampled")
        return self

    def structure_settings(self) -> dict:
        """As :meth:`LawConfig.structure_settings`; without a residual its options are left out, so the fits made
        before the residual existed keep their structure keys."""
        settings = super().structure_settings()
        if self.residual == "none":
            settings = {k: v for k, v in settings.items() if not k.startswith("residual")}
        return settings

    _known_form = field_validator("law")(classmethod(lambda cls, value: registered_form(value)))

    # 2 chains, 1000 warm-up steps, then draws until every checked quantity (the fitted losses at the pilots, the
    # noise, the form's identified parameters, nu) has R-hat <= 1.01 and bulk ESS >= 400 (SamplerConfig.check_every),
    # at most 4000 a chain. With t sampled as f^0.5 t and the Student-t's scales against nu (bayes_mixlaw/mixing.py) a
    # draw takes ~80-95 leapfrog steps; on 5Mix's 70M/30k pilots it stops at 1250-1500 draws a chain, 7 s once compiled
    # against 14-16 s for the fixed 4 x (1500 + 2000) it replaces (benchmarks/README.md, "The mixing law draws until
    # converged"). A learned residual's fitted losses need its weights, drawn after sampling: it takes all the draws.
    sampler: SamplerConfig = Field(default_factory=lambda: SamplerConfig(draws=4000, tune=1000, chains=2, check_every=250, target_accept=0.9))


# Priors of the joint scaling law L(N, D) = E + A N^-alpha + B D^-beta, written with N and D relative
# to the geometric means of the pilots' sizes and token counts (N0, D0) and amplitudes relative to
# the median loss s, so the defaults fit any scale:  L / s = e + a (N/N0)^-alpha + b (D/D0)^-beta.
SCALING_PRIORS: dict[str, Prior] = {
    # irreducible loss: most of the loss, below every observation (exp(-0.4) = 0.67 of the median)
    "log_e": Prior("Normal", mu=-0.4, sigma=0.5),
    # reducible parts at the pilots' typical size and data: a few tens of percent of the loss
    "log_a": Prior("Normal", mu=-2.0, sigma=1.5),
    "log_b": Prior("Normal", mu=-2.0, sigma=1.5),
    # exponents: positive, typically 0.1-0.7 (Chinchilla: 0.34, 0.28)
    "alpha": Prior("Gamma", alpha=3.0, beta=8.0),
    "beta": Prior("Gamma", alpha=3.0, beta=8.0),
    # noise on the log loss, i.e. relative to the loss
    "noise_sigma": Prior("HalfNormal", sigma=0.05),
    "nu": Prior("Gamma", alpha=2.0, beta=0.1),
}


class ScalingLawConfig(LawConfig):
    """Everything that defines a scaling-law fit apart from the data."""

    DEFAULT_PRIORS: ClassVar[dict[str, Prior]] = SCALING_PRIORS


class ConfigError(ValueError):
    """A config file that cannot be used; the message names the file and field."""


# Priors of the nested (mixture x size x steps) law. For validation domain i, a run with mixture r
# (rbar the pilots' mean mixture), n = N / N0 and s = S / S0 (sizes and steps relative to the
# geometric means of the pilots'), in units of the domain's median loss:
#   L_i(r, n, s) = ref_i(r) * (1 + a_i(r) n^-alpha_i + b_i(r) n^-gamma_i s^-beta_i) / (1 + a_i(r) + b_i(r))
#   ref_i(r) = m_i [(1 - f_i) + f_i exp(t_i . (r - rbar))] exp(d_ri)   (mixing law at N0, S0)
#   log a_i(r) = log_a_i + u_i . (r - rbar),   log b_i(r) = log_b_i + w_i . (r - rbar)
# a and b are the size and step terms relative to the irreducible loss; the mixture moves the loss
# at the reference scale (t) and the share of it that scale removes (u, w); d is each pilot mixture's
# departure from the mixing law, shared by all its sizes and lengths.
NESTED_PRIORS: dict[str, Prior] = {
    **{k: DEFAULT_PRIORS[k] for k in ("loss_at_mean", "f_mu", "f_sigma", "t_mu", "t_sigma")},
    # size and step terms relative to the irreducible loss at the reference scale (Chinchilla on
    # its pilots: a few tenths), pooled across validation domains
    "log_a_mu": Prior("Normal", mu=-1.5, sigma=1.5),
    "log_b_mu": Prior("Normal", mu=-1.5, sigma=1.5),
    "log_ab_sigma": Prior("HalfNormal", sigma=1.0),
    # the same terms as log(a + b) and the split logit(a / (a + b)) (scaling_parameterisation="share")
    "log_ab_mu": Prior("Normal", mu=-0.8, sigma=1.5),
    "ab_split_mu": Prior("Normal", mu=0.0, sigma=1.5),
    # exponents, pooled across validation domains on the log scale. Informative, from fits of the
    # same law form outside the user's table: over 70M-410M and 10k-30k steps the pilots cannot tell
    # E + A N^-alpha from a pure power law (alpha slides towards Kaplan's 0.076 as E goes to 0, and
    # the prediction beyond the pilots falls with it), so the exponents come from where that was
    # told apart: Chinchilla alpha 0.34, beta 0.28 (Hoffmann et al. 2022); Epoch's refit of its data
    # alpha 0.348 (0.317-0.373), beta 0.366 (0.331-0.415) (Besiroglu et al. 2024, reproduced by
    # benchmarks/chinchilla.py); Luo et al. 2025's step exponent 0.43 at 400M (multipowerlaw/).
    # Medians 0.34 and 0.33, a factor 1.3 either side at one sd; override to let the data decide.
    "log_alpha_mu": Prior("Normal", mu=-1.08, sigma=0.25),
    "log_beta_mu": Prior("Normal", mu=-1.11, sigma=0.25),
    "log_exponent_sigma": Prior("HalfNormal", sigma=0.15),
    # size dependence of the step term, b n^-gamma s^-beta (0: Chinchilla's additive law)
    "gamma_mu": Prior("Normal", mu=0.0, sigma=0.5),
    "gamma_sigma": Prior("HalfNormal", sigma=0.2),
    # how the mixture moves the size and step terms (rows sum to zero), pooled across domains
    "size_t_mu": Prior("ZeroSumNormal", sigma=1.0),
    "step_t_mu": Prior("ZeroSumNormal", sigma=1.0),
    "scale_t_sigma": Prior("HalfNormal", sigma=0.5),
    # a pilot mixture's departure from the mixing law (log scale), per validation domain; 'free'
    # mixtures: spread of the per-mixture levels around the domain's mean
    "mixture_sigma": Prior("HalfNormal", sigma=0.03),
    # with mixture_size_slope: a pilot mixture's own slope in log size beside that departure, d + e log n, per unit of
    # log size and per validation domain (5Mix: point fits with such a slope, 0.05 at one sd, erred 0.0147 at 410M
    # where the level alone erred 0.0201)
    "mixture_size_sigma": Prior("HalfNormal", sigma=0.03),
    # run effects, per validation domain: a run's level (seed-to-seed spread of a whole curve, log
    # scale) and its slope in log-steps (how much faster or slower its curve falls than the law's,
    # per unit of log-steps); integrated out of the likelihood (bayes_mixlaw.run_effects)
    "run_sigma": Prior("HalfNormal", sigma=0.02),
    "run_slope_sigma": Prior("HalfNormal", sigma=0.05),
    # with run_curvature: a run's curvature in log-steps, c y^2 (y: log-steps from the pilots' geometric-mean length),
    # per validation domain; the slope's scale, so a curve bends by at most a few percent across the pilots' range
    "run_curvature_sigma": Prior("HalfNormal", sigma=0.05),
    # annealing under known schedules (bayes_mixlaw.schedule_grid), per validation domain: the drop per
    # unit of S2 / S0 as a multiple c of the step term's amplitude, b n^-gamma (s^-beta - c S2 / S0).
    # Luo et al.'s curves (multipowerlaw/, Tissue et al.'s form fitted by benchmarks/schedules.py: D ~
    # 1.2e-4 - 1.7e-4 per step, B S0^-beta ~ 0.35 - 0.46 at S0 = 8k) give c ~ 2.8 at 25M, 100M and 400M;
    # c grows as S0^(1 + beta) / B with the pilots' length, so the prior is wide: 0.2 - 90 at two sd
    "log_anneal": Prior("Normal", mu=1.5, sigma=1.5),
    # observation noise on the log loss
    "noise_sigma": Prior("HalfNormal", sigma=0.02),
    # model discrepancy: the law-form error of the log loss per unit of log-distance beyond the
    # largest pilot size / longest pilot run (bayes_mixlaw.discrepancy). Informative, measured outside
    # the user's table (benchmarks/discrepancy_prior.py: Chinchilla's models, median 0.017; Luo et
    # al.'s curves under schedules the law does not know, median 0.025); spread 1.65x at one sd
    "discrepancy_size": Prior("LogNormal", mu=-4.07, sigma=0.5),
    "discrepancy_length": Prior("LogNormal", mu=-3.69, sigma=0.5),
    # the mixing law's form error per unit of a mixture's total-variation distance from the pilots'
    # hull (benchmarks/discrepancy_prior.py: the explicit law fitted to RegMix's runs with a low share
    # of one training domain, read on the others: 0.25-0.34, median 0.30; 1M-parameter models, the one
    # public table with enough mixtures to leave some out): a mixture 0.1 outside the hull +-3%
    "discrepancy_mixture": Prior("LogNormal", mu=-1.2, sigma=0.5),
}


class NestedLawConfig(PooledLawConfig):
    """Everything that defines a nested-law fit apart from the data."""

    # the nested law's and every registered mixing form's (its mixing law at the reference scale, ``law``)
    DEFAULT_PRIORS: ClassVar[Mapping[str, Prior]] = _WithFormPriors(NESTED_PRIORS)

    # Normal on the log loss: the run effects integrate out in closed form, and a prediction
    # (log-normal) has a finite mean; a Student-t on the log loss has none (exp of a t).
    likelihood: Literal["normal"] = "normal"

    # law: the mixing law ties the mixtures together (predicts any mixture: the joint model);
    # free: each pilot mixture has its own pooled levels (predicts the pilots' mixtures only: the
    # first stage of the stage-wise pipeline)
    mixture_model: Literal["law", "free"] = "law"
    # the mixing law at the reference scale (mixture_model: law): a registered form (bayes_mixlaw.mixing_forms), the
    # explicit law by default; power_law_base there fitted 5Mix's size check no better and did not converge (R-hat 1.06
    # at the draw cap: the pilot mixtures' departures take up what the form does not fix; benchmarks/README.md)
    law: str = "explicit"
    _known_form = field_validator("law")(classmethod(lambda cls, value: registered_form(value)))
    # law: let the mixture move the size and step terms too (u, w above); off, every mixture of a
    # domain shares its scaling shape and the mixture moves only the level
    mixture_scaling: bool = True
    # run effects: a level and a step-term scale per run (mixture x size), so a run's future
    # checkpoints follow its own curve and a new run's spread is part of its prediction
    run_effects: bool = True
    # a pilot mixture's departure from the mixing law as a level and a slope in log size, d + e log n, both integrated
    # out (bayes_mixlaw.run_effects.integrate_shared_line): a pilot mixture extrapolates its own size slope, a new one
    # draws one (its spread grows with the distance in size); off, the departure is a level shared by every size
    # (5Mix's size check, fit 70M-305M -> 410M@30k: domain MAE 0.0195 -> 0.0158; RedPajama's checks unchanged)
    mixture_size_slope: bool = True
    # and a curvature in log-steps per run beside its level and slope, integrated out the same way
    # (bayes_mixlaw.run_effects.CurvedEffects): a run's curve need not bend as the law's step term does
    run_curvature: bool = False
    # share (default): sample log(a + b) and the split logit(a / (a + b)); a and b move together along
    # the poorly pinned irreducible share 1 / (1 + a + b), so sampling log a and log b directly
    # (amplitude) leaves them correlated at 0.96-1.0 and needs 2.4x the leapfrog steps (whole RedPajama fit).
    # stick: the step share and the size share of the rest by stick-breaking, the same prior; what a fit on
    # pilots of two sizes uses unless set (for_sizes)
    scaling_parameterisation: Literal["share", "stick", "amplitude"] = "share"
    # the domains' log size and step exponents around their pooled means: centred (default: the data pin each domain's,
    # as on 3Mix's three domains, 0 divergences; non-centred there 5 and 2.4x the leapfrog steps) or non_centred,
    # mu + sigma z (where the data pin them barely: the example loop's final fit, 8 tiny pilots x 3 domains, had 30
    # divergent draws in the funnel of their spread centred and 2-3 non-centred; benchmarks/README.md)
    exponent_parameterisation: Literal["centred", "non_centred"] = "centred"
    # model discrepancy beyond the pilots (bayes_mixlaw.discrepancy), on by default; and how much of
    # it validation domains share (the correlation of their errors at one target scale)
    discrepancy: bool = True
    discrepancy_correlation: float = Field(0.75, ge=0, le=1)
    # learn the discrepancy's scale per axis from the pilots by leaving their largest size and the last
    # fifth of their log-length range out (bayes_mixlaw.discrepancy_scale: one extra, shorter fit); the
    # external priors above are its starting point. Off: the external priors alone.
    learn_discrepancy: bool = True
    # checkpoints before this fraction of the longest pilot run are left out (and said so): a power
    # law in steps describes training after its early transient, not the warm-up and the first
    # fast drop. On 5Mix (checkpoints from 3k of 30k steps) keeping them splits the posterior
    # between a step exponent ~0.5 and one ~2 whose curves the run slopes bend back (R-hat 1.85);
    # from 9k-10k on it converges (R-hat 1.007-1.009) with exponents 0.39-0.53 (benchmarks/README.md).
    # RedPajama's checkpoints start at a third of its runs. 0 keeps every checkpoint.
    transient_fraction: float = Field(0.3, ge=0, lt=1)
    # The whole RedPajama table (19,360 losses): ~31 leapfrog steps a draw at ~0.5 ms a gradient; 2 x (1500 + 3500)
    # gave max R-hat 1.006 and min bulk ESS 1053 over every variable, 5Mix's size check ESS 344-457 (benchmarks/README.md).
    # So the draws are not fixed: checked every 250 a chain, sampling stops once every variable has R-hat <= 1.01 and
    # bulk ESS >= 400 (SamplerConfig.check_every), at most 6000 a chain, after 500 warm-up steps: nutpie's adaptation
    # has settled by then, and where the draws stop did not move (whole table, seeds 0-2: 1000 warm-up steps stopped
    # at 1750-3000 draws, 500 at 2000-2250; benchmarks/whole_fit.py, benchmarks/README.md). With few domains the
    # geometry is harder (3Mix: ~95 leapfrog steps a draw against ~31): 1000 warm-up steps and target_accept 0.95
    # (500 left one divergent draw in 3Mix's check, 1000 none).
    sampler: SamplerConfig = Field(default_factory=lambda: SamplerConfig(draws=6000, tune=500, chains=2, check_every=250, retry_target_accept=0.95))
    FEW_DOMAIN_TARGET_ACCEPT: ClassVar[float | None] = 0.95
    FEW_DOMAIN_TUNE: ClassVar[int | None] = 1000
    # Even so, the closed loop's first tables (8 pilots, the Pile's 5 groups; benchmarks/bo_fidelity.py) diverged at
    # 0.95 in every seed recorded (7-169 divergent transitions); started again at 0.99, 3 of 4 had none and met the
    # stopping rule (seeds 1, 4, 5: 0 divergences, R-hat <= 1.007, ESS >= 403) and one kept 2 (benchmarks/README.md)
    FEW_DOMAIN_RETRY_TARGET_ACCEPT: ClassVar[float | None] = 0.99
    # ... and NUTS adapts a low-rank mass matrix beside the diagonal (nutpie's low_rank): the loop's 16-pilot refits
    # stopped at the 6,000-draw cap with a diagonal one, the mixing law's interactions and their share (t, logit_f)
    # trading along a ridge the diagonal cannot follow (bulk ESS 145); low-rank met the stopping rule at 1,750-3,750
    # draws on each of the five loop tables probed (8, 16, 24 pilots), and in the benchmark's rerun 28 of 30 refits met
    # it, none diverging (benchmarks/README.md). With few domains a gradient is cheap and the rank small; with 22 the
    # diagonal stays (5Mix's mixing law: ~10x the time with low-rank, SamplerConfig.adaptation)
    FEW_DOMAIN_ADAPTATION: ClassVar[Literal["diag", "low_rank"] | None] = "low_rank"

    # a new run of a pilot mixture at a checkpoint its other sizes reached draws its noise given their deviations there
    # (they read the same data in the same order: bayes_mixlaw.checkpoint_noise); off for sweeps whose sizes did not
    shared_checkpoints: bool = True

    # settings that act after sampling (the discrepancy is drawn from its prior or learned scale at prediction; the
    # checkpoints' shared share is estimated after it), so the calibration fit without discrepancy samples the full
    # fit's model and shares its compiled form
    AFTER_SAMPLING: ClassVar[tuple[str, ...]] = ("discrepancy", "discrepancy_correlation", "learn_discrepancy", "shared_checkpoints")

    def structure_settings(self) -> dict:
        """As :meth:`LawConfig.structure_settings`, less :data:`AFTER_SAMPLING`; centred exponents, the explicit law and run
        effects without a curvature (the defaults) are left out, so the fits made before those options existed keep their structure keys."""
        settings = {k: v for k, v in super().structure_settings().items() if k not in self.AFTER_SAMPLING}
        for option, default in (("exponent_parameterisation", "centred"), ("law", "explicit")):
            if settings.get(option) == default:
                del settings[option]
        for option in ("run_curvature", "mixture_size_slope"):
            if settings.get(option) is False:
                del settings[option]
        return settings

    @model_validator(mode="after")
    def _form_builds_in_the_nested_law(self):
        """A form that reads a mixing-law setting the nested law lacks (the implicit law's ``n_implicit``) is refused."""
        from bayes_mixlaw.mixing_forms import get_form

        try:
            get_form(self.law).coords(self)
        except AttributeError as err:
            raise ValueError(
                f"law: {self.law} reads a setting of the mixing law's that the nested law does not have ({err}); fit it with "
                "the mixing law (MixingLawConfig), or take law: explicit, power_law or power_law_base here"
            ) from None
        return self

    @model_validator(mode="after")
    def _curvature_needs_run_effects(self):
        """A run's curvature is one of its run effects: without them there is no curve to bend."""
        if self.run_curvature and not self.run_effects:
            raise ValueError("run_curvature: true needs run_effects: true (the curvature is integrated out with each run's level and slope)")
        return self

    @model_validator(mode="after")
    def _size_slope_needs_the_law(self):
        """A mixture's size slope is part of its departure from the mixing law, which only the 'law' mixtures have."""
        if self.mixture_size_slope and self.mixture_model != "law":
            raise ValueError("mixture_size_slope: true needs mixture_model: law (the slope is part of a pilot mixture's departure from the mixing law)")
        return self

    def for_domains(self, n_valid: int) -> NestedLawConfig:
        """As :meth:`PooledLawConfig.for_domains`; with few domains a pilot mixture's departure is a level alone unless the
        user set ``mixture_size_slope``: on 3Mix (3 domains, 10 mixtures, most with two sizes) the slope left 7-15
        divergent draws in every fit tried (a boundary-avoiding prior on its scale did not remove them) and erred
        0.0707 against 0.0684 on the 410M@60k check (benchmarks/README.md)."""
        config = super().for_domains(n_valid)
        if n_valid >= self.few_domains or "mixture_size_slope" in self.model_fields_set:
            return config
        return config.model_copy(update={"mixture_size_slope": False})

    @classmethod
    def from_fit(cls, data: dict) -> NestedLawConfig:
        """As :meth:`LawConfig.from_fit`; a fit made before ``mixture_size_slope`` existed had a level alone."""
        return cls.from_dict({"mixture_size_slope": False, **data})

    def for_sizes(self, n_sizes: int) -> NestedLawConfig:
        """The config a fit on pilots of ``n_sizes`` model sizes uses; the fit file keeps it. Two sizes pin the size
        slope and leave the size exponent to its prior, trading with the irreducible share along a curve in
        ``share``'s coordinates: unless the user chose a parameterisation, ``stick`` samples along that axis
        (3Mix 70M + 160M: max R-hat 1.015 -> 1.004, min bulk ESS 104 -> 689, benchmarks/README.md). With three
        sizes or more ``share`` stays: on 5Mix (three sizes) ``stick`` let one chain into the second mode of the
        step term (a step exponent ~2 with a vanishing step share; R-hat 1.83)."""
        if n_sizes != 2 or "scaling_parameterisation" in self.model_fields_set:
            return self
        return self.model_copy(update={"scaling_parameterisation": "stick"})
