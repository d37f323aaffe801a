"""The interface of a mixing-law form and the registry that finds the forms by name (see the package docstring).

This module stays light (numpy only): the command line lists the packaged forms from it without loading
PyMC; a form's own module imports PyMC, and the registry imports the form modules on first use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from bayes_mixlaw.laws import array_namespace
from bayes_mixlaw.registry import PackageRegistry


@dataclass(frozen=True)
class ModelPieces:
    """What :meth:`MixingForm.build` gets from :class:`~bayes_mixlaw.mixing.MixingLaw`'s model, inside its ``pm.Model``.

    The model's coords are ``valid_domain`` (V), ``train_domain`` (M), ``group`` (the pooling groups),
    ``run`` (n) and whatever :meth:`MixingForm.coords` adds. Losses are modelled in units of each
    validation domain's loss scale s_i (its median observed loss), so a form's priors suit any data set.
    """

    config: Any  # the fit's MixingLawConfig: ``config.prior(name, dims)`` gives a prior with the dims the model needs
    mixtures: Any  # pm.Data (run, train_domain): the pilots' mixtures
    center: Any  # pm.Data (train_domain): the pilots' mean mixture
    log_scale: Any  # pm.Data (valid_domain): log s_i
    group_idx: np.ndarray  # (valid_domain,): each validation domain's pooling group, an index into the ``group`` coord
    generative: bool = False  # True: write every variable in a forward-samplable form (prior predictive simulation)


class MixingForm:
    """One form of the data mixing law, pymc-marketing style (``SaturationTransformation``): a lookup name,
    the function written once for numpy, PyTensor and torch, its parameters, default priors and PyMC builder.

    Subclass it, set the class attributes, write :meth:`function` and :meth:`build`, and decorate the
    class with :func:`register`. Everything else (predict, optimize, suggest, the report, compare) works
    through :meth:`evaluate` on the posterior draws of ``parameter_names``.
    """

    lookup_name: ClassVar[str] = ""  # the config's ``law:`` value; a packaged form's module has this name
    description: ClassVar[str] = ""  # one line: the form and its source
    parameter_names: ClassVar[tuple[str, ...]] = ()  # posterior variables that :meth:`function` takes, by keyword
    default_priors: ClassVar[dict] = {}  # pymc_extras Prior by name (the config's ``priors:`` override them)
    relative: ClassVar[bool] = False  # True: :meth:`function` gives the loss in units of each domain's loss scale s_i
    summary_names: ClassVar[tuple[str, ...]] = ()  # what :meth:`parameter_table` reports (before the slopes and noise)
    slope_summary: ClassVar[bool] = False  # also report the centred slopes dL_i/dr_j at the pilots' mean (``slope``)
    diagnostic_names: ClassVar[tuple[str, ...]] = ()  # identified posterior quantities whose R-hat and ESS are judged

    def function(self, xp, r, **params):  # pragma: no cover - abstract
        """The law: ``r`` (..., n, M) mixtures -> (..., n, V) losses, written once in the operations of ``xp``
        (numpy, ``pytensor.tensor`` or torch); leading (batch) dims of the parameters broadcast."""
        raise NotImplementedError

    def build(self, pieces: ModelPieces):  # pragma: no cover - abstract
        """Sample the parameters (with ``pieces.config.prior(name, dims)``) inside the model, record
        ``parameter_names`` as variables (``pm.Deterministic`` where derived), and return the mean loss
        (run, valid_domain) in units of each domain's loss scale."""
        raise NotImplementedError

    def coords(self, config) -> dict:
        """Coordinates this form adds to the model (e.g. the implicit law's latent domains)."""
        return {}

    def evaluate(self, r, params: dict, scale):
        """The expected loss in absolute units at mixtures ``r`` (numpy or torch) for parameter draws ``params``
        (by name, leading dims the draws'), ``scale`` the loss scales s (V,) in the same library."""
        xp = array_namespace(r, *params.values())
        loss = self.function(xp, r, **{k: params[k] for k in self.parameter_names})
        return loss * scale if self.relative else loss

    def parameter_table(self, law, ci: float):
        """``law.parameters(ci)``: the rows of ``summary_names``, the centred slopes if ``slope_summary``, ``noise_sigma``."""
        import xarray as xr

        post = law.idata["posterior"]
        names = [*self.summary_names, *(["slope"] if self.slope_summary else []), "noise_sigma"]
        draws = xr.Dataset({name: post[name] for name in names if name != "slope"})
        if self.slope_summary:
            draws["slope"] = centred_slopes(law)
        return law._parameter_table(names, ci, draws)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} law form '{self.lookup_name}'>"


def centred_slopes(law):
    r"""Label-free summary of any form: ``slope[i, j]``, the change of validation loss i per unit of share
    moved to training domain j at the pilots' mean mixture r̄, centred (only moves within the simplex
    are defined): :math:`\partial L_i / \partial r_j - \frac{1}{M} \sum_{j'} \partial L_i / \partial r_{j'}`,
    by automatic differentiation of the form's function (torch) for every posterior draw.
    Dims (chain, draw, valid_domain, train_domain)."""
    import torch
    import xarray as xr

    post = law.idata["posterior"]
    form = get_form(law.config.law)
    chains, draws = post.sizes["chain"], post.sizes["draw"]
    params = {
        k: torch.as_tensor(np.ascontiguousarray(post[k].values.reshape(chains * draws, *post[k].shape[2:])), dtype=torch.float64) for k in form.parameter_names
    }
    scale = torch.as_tensor(law.idata["constant_data"]["loss_scale"].values, dtype=torch.float64)
    center = torch.as_tensor(law.pilot_mixtures.mean(axis=0), dtype=torch.float64)
    r = center.expand(chains * draws, 1, -1).clone().requires_grad_(True)
    loss = form.evaluate(r, params, scale)[:, 0, :]  # (sample, V): one draw's loss depends on its own row of r only
    rows = [torch.autograd.grad(loss[:, i].sum(), r, retain_graph=True)[0][:, 0, :] for i in range(loss.shape[1])]
    gradient = torch.stack(rows, dim=1).numpy()  # (sample, V, M)
    slope = (gradient - gradient.mean(axis=-1, keepdims=True)).reshape(chains, draws, *gradient.shape[1:])
    return xr.DataArray(
        slope, dims=("chain", "draw", "valid_domain", "train_domain"), coords={"valid_domain": law.valid_domains, "train_domain": law.train_domains}
    )


def dirichlet_rows(config, prior_name: str, var_name: str, dims: tuple[str, str], k: int):
    """A ``Dirichlet`` prior's rows over the last of ``dims`` (length ``k``), its concentration ``a``
    broadcast to that length (a config gives one number or k of them)."""
    prior = config.prior(prior_name, dims=dims)
    concentration = np.broadcast_to(np.asarray(prior.parameters["a"], dtype=float), (k,))
    return type(prior)("Dirichlet", a=concentration, dims=prior.dims).create_variable(var_name)


_REGISTRY = PackageRegistry(__package__)  # lookup name -> MixingForm


def register(form):
    """Class decorator (or call with an instance): add a form to the registry under its ``lookup_name``.

    A name registered twice is an error (unregister the old one first), and so is a prior name that another
    form defines differently (a prior's name means one prior in a config). Returns its argument.
    """
    instance = form() if isinstance(form, type) else form
    if not isinstance(instance, MixingForm):
        raise TypeError(f"register() takes a MixingForm subclass or instance, not {type(instance).__name__}")
    name = instance.lookup_name
    if not name or not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"{type(instance).__name__}: a form needs a lookup_name (a word such as 'power_law'), got {name!r}")
    if not instance.description or not instance.parameter_names:
        raise ValueError(f"form '{name}' needs a one-line description and its parameter_names")
    if name in _REGISTRY and type(_REGISTRY[name]) is not type(instance):
        raise ValueError(f"a form named '{name}' is registered already ({type(_REGISTRY[name]).__name__}); unregister it first")
    for other in _REGISTRY.values():
        for prior, value in instance.default_priors.items():
            if other.lookup_name != name and prior in other.default_priors and other.default_priors[prior].to_dict() != value.to_dict():
                raise ValueError(
                    f"form '{name}': prior '{prior}' is {value}, but form '{other.lookup_name}' defines it as "
                    f"{other.default_priors[prior]}; a prior's name means one prior, so give it another name"
                )
    _REGISTRY[name] = instance
    return form


def unregister(name: str) -> MixingForm:
    """Remove a form from the registry (tests, or replacing a packaged form); returns it."""
    return _REGISTRY.remove(name, "law form", form_names)


def packaged_form_names() -> list[str]:
    """The forms that come with the package, without importing them (each module is named for its form):
    what the command line lists, so that its ``--help`` does not load PyMC."""
    return _REGISTRY.module_names()


def forms() -> list[MixingForm]:
    """The registered forms, by name."""
    _REGISTRY.discover()
    return [_REGISTRY[name] for name in sorted(_REGISTRY)]


def form_names() -> list[str]:
    """The registered forms' lookup names (the config's ``law:`` choices)."""
    return [form.lookup_name for form in forms()]


def form_descriptions() -> dict[str, str]:
    """Each registered form's one-line description."""
    return {form.lookup_name: form.description for form in forms()}


def form_priors() -> dict:
    """Every registered form's default priors by name (a prior shared by forms is the same prior)."""
    return {name: prior for form in forms() for name, prior in form.default_priors.items()}


def get_form(name: str) -> MixingForm:
    """The form registered as ``name``; an unknown name is an error listing the forms there are."""
    if name not in _REGISTRY.discover():
        raise ValueError(f"unknown law form '{name}'; the registered forms are {', '.join(form_names())} (bayes_mixlaw.mixing_forms)")
    return _REGISTRY[name]
