"""What every Bayesian law shares: fit, diagnostics, save and load (pymc-marketing's ModelBuilder).

A law subclass says how to build its PyMC model from a runs table (``build_model``), which
``pm.Data`` values a refit swaps in (``_data``), which data groups and attributes its fit file keeps
(``_data_groups``, ``_attrs``) and which posterior quantities its convergence is judged on
(``_diagnostic_quantities``). The fit is an ArviZ-style ``xarray.DataTree`` with labelled dims.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import ClassVar

import numpy as np
import pymc as pm
import xarray as xr

from bayes_mixlaw.config import LawConfig, SamplerConfig
from bayes_mixlaw.inference import Diagnostics, Timer, diagnose, sample_posterior, warn_problems
from bayes_mixlaw.runs import RunsTable, load_runs

# Unconstrained copies of variables that PyMC adds; the fit keeps the constrained ones.
_TRANSFORMED_SUFFIXES = ("_log__", "_interval__", "_simplex__", "_zerosum__")


class NotFittedError(RuntimeError):
    """predict/save called before fit (or load)."""


class BayesianLaw:
    """Base class of the laws: ``build_model``, ``fit``, ``save``, ``load``, ``diagnostics``."""

    kind: ClassVar[str]
    config_class: ClassVar[type[LawConfig]]

    def __init__(self, config: LawConfig | None = None):
        self.config = config or self.config_class()
        self.idata: xr.DataTree | None = None
        self.model: pm.Model | None = None
        self.runs: RunsTable | None = None
        self._model_key: str | None = None
        self._layout_cache: dict | None = None

    # subclass hooks --------------------------------------------------------------------------

    def build_model(self, runs: RunsTable) -> pm.Model:  # pragma: no cover - abstract
        raise NotImplementedError

    def _data(self, lay: dict) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def _data_groups(self, lay: dict) -> dict[str, xr.Dataset]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _attrs(self, lay: dict) -> dict:
        return {}

    def _diagnostic_quantities(self) -> xr.Dataset:  # pragma: no cover - abstract
        raise NotImplementedError

    def _restore(self, tree: xr.DataTree) -> None:
        """Rebuild what the subclass needs from a loaded fit's attributes."""

    # shared pieces of the subclasses' models ------------------------------------------------------

    def _likelihood(self, mu, sigma, observed):
        """The observed ``loss``: Student-t (robust; ``nu`` from the priors) or Normal, per config."""
        if self.config.likelihood == "studentt":
            nu = self.config.prior("nu").create_variable("nu")
            return pm.StudentT("loss", nu=nu, mu=mu, sigma=sigma, observed=observed, dims="obs")
        return pm.Normal("loss", mu=mu, sigma=sigma, observed=observed, dims="obs")

    def _structure_key(self, *parts) -> str:
        """Key of the compiled-model cache: the law, its likelihood and priors, and ``parts`` (what
        fixes the model's shapes); refits with the same key reuse the compiled model."""
        cfg = self.config
        payload = [self.kind, cfg.likelihood, {k: v.to_dict() for k, v in cfg.priors.items()}, *parts]
        return hashlib.sha256(json.dumps(payload, default=str).encode()).hexdigest()

    def _standard_noise(self, shape: tuple, rng: np.random.Generator) -> np.ndarray:
        """Unit-scale draws of the likelihood's noise, one per posterior draw: shape (chain, draw, ...)."""
        if self.config.likelihood == "studentt":
            nu = self.idata["posterior"]["nu"].values
            return rng.standard_t(np.broadcast_to(nu.reshape(nu.shape + (1,) * (len(shape) - 2)), shape))
        return rng.standard_normal(shape)

    # fit ---------------------------------------------------------------------------------------

    def fit(self, runs, *, seed: int | None = None, method: str | None = None, progress: bool = True, **sampler):
        """Fit to a runs table. ``method``: ``nuts`` (default), ``fast`` (a short NUTS run on the same
        compiled model, for planning loops) or ``advi`` (mean-field, approximate);
        other keywords override the config's sampler settings (draws, tune, chains, cores, ...).
        Sampler problems are raised as :class:`~bayes_mixlaw.inference.SamplingWarning`."""
        runs = load_runs(runs)
        settings = SamplerConfig.model_validate(
            self.config.sampler.model_dump() | {k: v for k, v in {"method": method, **sampler}.items() if v is not None}
        )
        self.model = self.build_model(runs)
        lay = self._layout_cache
        with Timer() as timer:
            tree = sample_posterior(self.model, self._data(lay), self._model_key, settings, seed, progress)
        posterior = tree["posterior"].to_dataset()
        posterior = posterior.drop_vars([v for v in posterior.data_vars if v.endswith(_TRANSFORMED_SUFFIXES)])
        self.runs = lay["table"]
        self.idata = self._assemble(posterior, tree, lay, settings, seed)
        diagnostics = self._diagnose(settings.method, timer.seconds)
        self.idata["diagnostics"] = xr.DataTree(xr.Dataset(attrs={"json": json.dumps(diagnostics.__dict__)}))
        warn_problems(diagnostics, f"{self.kind.replace('_', '-')} fit")
        return self

    def _assemble(self, posterior, tree, lay, settings, seed) -> xr.DataTree:
        from bayes_mixlaw import __version__

        nodes = {"posterior": posterior}
        if "sample_stats" in tree.children:
            nodes["sample_stats"] = tree["sample_stats"].to_dataset()
        nodes.update(self._data_groups(lay))
        attrs = {
            "bayes_mixlaw_version": __version__,
            "kind": self.kind,
            "config": self.config.model_copy(update={"sampler": settings}).to_json(),
            "source": lay["table"].source,
            "seed": -1 if seed is None else int(seed),
            **self._attrs(lay),
        }
        return xr.DataTree.from_dict({"/": xr.Dataset(attrs=attrs), **nodes})

    def _diagnose(self, method: str, seconds: float) -> Diagnostics:
        check = self._diagnostic_quantities()
        stats = self.idata["sample_stats"].to_dataset() if "sample_stats" in self.idata.children else None
        return diagnose(check, stats, method, seconds, list(check.data_vars))

    @property
    def diagnostics(self) -> Diagnostics:
        self._require_fit()
        return Diagnostics(**json.loads(self.idata["diagnostics"].attrs["json"]))

    # persistence -------------------------------------------------------------------------------

    def save(self, path, *, overwrite: bool = False) -> Path:
        """Write the fit (posterior, diagnostics, data, config, version) to one netCDF file."""
        self._require_fit()
        path = Path(path)
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} exists; pass overwrite=True (CLI: --force) to replace it")
        tmp = path.with_name(path.name + ".partial")
        self.idata.to_netcdf(tmp, engine="h5netcdf")
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path):
        """Read a fit written by :meth:`save`; it predicts exactly as before it was saved.

        Called on ``BayesianLaw`` it returns whichever law the file holds."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no fit at {path}")
        try:
            tree = xr.open_datatree(path, engine="h5netcdf").load()
        except (OSError, ValueError) as err:
            raise ValueError(f"{path} is not a bayes_mixlaw fit file: {err}") from None
        kind = tree.attrs.get("kind")
        import bayes_mixlaw.mixing, bayes_mixlaw.nested, bayes_mixlaw.scaling  # noqa: F401, E401  (register every law)

        classes = {c.kind: c for c in _subclasses(BayesianLaw)}
        if kind not in classes or (cls is not BayesianLaw and classes[kind] is not cls):
            raise ValueError(f"{path} holds a fit of kind {kind!r}, not a {getattr(cls, 'kind', 'bayes_mixlaw')} fit")
        law_class = classes[kind]
        law = law_class(law_class.config_class.from_dict(json.loads(tree.attrs["config"])))
        law.idata = tree
        law._restore(tree)
        return law

    def _require_fit(self):
        if self.idata is None:
            raise NotFittedError(f"this {type(self).__name__} has not been fitted; call fit() or {type(self).__name__}.load()")


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)
