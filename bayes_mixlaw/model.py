"""What every Bayesian law shares: fit, diagnostics, save and load (pymc-marketing's ModelBuilder).

A law subclass says how a runs table is laid out for its model (``_layout``), how the PyMC model is
built from that layout (``_model``) and what of it fixes the model's structure (``_key_parts``); the
base's :meth:`BayesianLaw.build` joins them into a :class:`BuiltModel` (model, structure key, layout)
without touching the law. It also says which ``pm.Data`` values a refit swaps in (``_data``), which
data groups and attributes its fit file keeps (``_data_groups``, ``_attrs``), how the runs table is
read back from those (``_stored_runs``: a loaded fit rebuilds its model from its own file) and which
posterior quantities its convergence is judged on (``_diagnostic_quantities``). The fit is an
ArviZ-style ``xarray.DataTree`` with labelled dims.

Around it, one module per idea: the fit file (:mod:`bayes_mixlaw.fit_file`: checksum, reading, version and
structure checks), the seeds of the draws (:mod:`bayes_mixlaw.seeds`) and the base of the laws over data
mixtures (:mod:`bayes_mixlaw.mixture_law`).
"""

from __future__ import annotations

import copy
import hashlib
import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pymc as pm
import xarray as xr

from bayes_mixlaw.atomic import write_atomically
from bayes_mixlaw.config import LawConfig, SamplerConfig
from bayes_mixlaw.fit_file import CHECKSUM_ATTR, FitFileError, check_structure, content_checksum, read_fit_tree
from bayes_mixlaw.inference import Diagnostics, Timer, diagnose, sample_posterior, warn_problems
from bayes_mixlaw.runs import MIX_PREFIX, RunsTable, load_runs
from bayes_mixlaw.seeds import row_generators, row_seed_sequence, shared_generator
from bayes_mixlaw.summary import eti

__all__ = [  # the fit file's and the seeds' names, importable from here as before they had modules of their own
    "CHECKSUM_ATTR",
    "BayesianLaw",
    "BuiltModel",
    "FitFileError",
    "NotFittedError",
    "content_checksum",
    "row_generators",
    "row_seed_sequence",
    "shared_generator",
]

# Unconstrained copies of variables that PyMC adds; the fit keeps the constrained ones.
_TRANSFORMED_SUFFIXES = ("_log__", "_interval__", "_simplex__", "_zerosum__")


def without_transformed(posterior: xr.Dataset) -> xr.Dataset:
    """``posterior`` less the sampler's unconstrained copies of the variables (``*_log__``, ...)."""
    return posterior.drop_vars([v for v in posterior.data_vars if v.endswith(_TRANSFORMED_SUFFIXES)])


class NotFittedError(RuntimeError):
    """predict/save called before fit (or load)."""


@dataclass(frozen=True, eq=False)
class BuiltModel:
    """What :meth:`BayesianLaw.build` returns: the PyMC ``model``, its structure ``key`` (the compiled-model
    cache's key, written into the fit file as ``structure_key``) and the ``layout`` of the runs table it
    was built from (the law's own: what ``_data`` and ``_data_groups`` read)."""

    model: pm.Model
    key: str
    layout: Any


class BayesianLaw:
    """Base class of the laws: ``build_model``, ``fit``, ``save``, ``load``, ``diagnostics``."""

    kind: ClassVar[str]
    config_class: ClassVar[type[LawConfig]]

    # What the law says about itself: the command line, the report, compare, calibrate and suggest read these
    # capabilities, so a new law declares them instead of being named in those modules.
    over_mixtures: ClassVar[bool] = False
    """Whether the law predicts at data mixtures (``mix:*`` columns, ``train_domains``): ``optimize``, ``suggest`` and
    the report's simplex parts take its fits (:class:`~bayes_mixlaw.mixture_law.MixtureLaw`)."""
    has_scale_axes: ClassVar[bool] = False
    """Whether a mixture law predicts at a target scale too: a model size (``params``) and a training length (its
    ``length_column``, ``step`` or ``tokens``; the pilots' in ``pilot_scales()``). Its commands take one target scale,
    its report defaults to the largest pilot scale and says how far beyond the pilots a figure is (the nested law)."""
    takes_schedule: ClassVar[bool] = False
    """Whether ``fit`` and ``predict`` take a learning-rate schedule (``--schedule``; the schedule-aware scaling law, and
    the nested law, whose step term reads the pilots' schedules when they have them)."""
    supports_calibration: ClassVar[bool] = False
    """Whether the extrapolation discrepancy is calibrated by refitting without the pilots' last scale
    (:func:`~bayes_mixlaw.calibrate.calibrate_extrapolation`, ``fit --calibrate``; the nested law)."""
    supports_holdout: ClassVar[bool] = False
    """Whether the fit's pilots can be rebuilt from its file (:func:`~bayes_mixlaw.compare.runs_from_fit`) and the law
    refitted without some of them (``report --holdout``, calibration; the mixing and nested laws)."""
    supports_residual_gp: ClassVar[bool] = False
    """Whether the law's fit can model what its form misses by a residual fitted jointly with it, which ``suggest``'s
    model then carries (``residual: rff``, :mod:`bayes_mixlaw.mixing_residual`, ``--residual-gp``; the one-scale mixing law)."""
    supports_critical_share: ClassVar[bool] = False
    """Whether the critical share of continual pre-training applies (:mod:`bayes_mixlaw.critical`; the continual law)."""
    report_sections: ClassVar[frozenset[str] | None] = None
    """The optional parts of the fit's report (:data:`~bayes_mixlaw.mixture_law.MIXTURE_REPORT` lists them; a property where they depend on the
    fit); ``None``: the law has no report."""

    @property
    def fit_name(self) -> str:
        """What messages call a fit of this law ("a nested fit"); a class attribute where its kind in words is not it."""
        return self.kind.replace("_", " ")

    @property
    def learns_discrepancy(self) -> bool:
        """Whether :meth:`fit` first fits the pilots without their largest size and last checkpoints to learn the
        model discrepancy beyond them: a config with ``discrepancy`` and ``learn_discrepancy`` on (the nested law's)."""
        return bool(getattr(self.config, "discrepancy", False) and getattr(self.config, "learn_discrepancy", False))

    def predict_request(self, request) -> pd.DataFrame:
        """Answer ``bayes-mixlaw predict``: ``request`` (:class:`~bayes_mixlaw.request.PredictRequest`) holds what the
        command line gives (mixtures, scales, schedule, interval, seed). Each law takes the options that apply to it and
        refuses the others, naming ``request.source``; warns where the target scale is far beyond the pilots
        (:func:`~bayes_mixlaw.request.say_extrapolation`); and says on the terminal (``request.say``) what its numbers
        assume. One signature for every law: the command line dispatches on nothing."""
        raise ValueError(f"{request.source} is a {self.fit_name} fit: it does not predict from the command line")

    def __init__(self, config: LawConfig | None = None):
        self.config = config or self.config_class()
        self.idata: xr.DataTree | None = None
        self.runs: RunsTable | None = None
        self._built: BuiltModel | None = None  # set by fit, or rebuilt from the fit's file on demand

    # the model ---------------------------------------------------------------------------------

    def build(self, runs: RunsTable, **options) -> BuiltModel:
        """The PyMC model for ``runs``, its structure key and the layout it was built from; the law
        itself is left as it was (``options``: the law's, e.g. the mixing law's ``generative``)."""
        lay = self._layout(runs, **options)
        return BuiltModel(self._model(lay, **options), self._structure_key(*self._key_parts(lay, **options)), lay)

    def build_model(self, runs: RunsTable, **options) -> pm.Model:
        """The PyMC model of :meth:`build` alone."""
        return self.build(runs, **options).model

    def structure_key(self, runs: RunsTable, **options) -> str:
        """The structure key :meth:`build` would give, without building the model."""
        return self._structure_key(*self._key_parts(self._layout(runs, **options), **options))

    @property
    def built(self) -> BuiltModel | None:
        """The model the fit was sampled on (:class:`BuiltModel`): the fit's own, or after :meth:`load`
        rebuilt from the data the file keeps, on first use; ``None`` before a fit."""
        if self._built is None and self.idata is not None:
            runs, options = self._stored_runs()
            with warnings.catch_warnings():  # said when the runs were fitted
                warnings.simplefilter("ignore")
                self._built = self.build(runs, **options)
        return self._built

    @property
    def model(self) -> pm.Model | None:
        """The PyMC model of the fit (:attr:`built`), ``None`` before a fit."""
        built = self.built
        return None if built is None else built.model

    def pointwise_log_likelihood(self) -> xr.DataArray:
        """log p(y_obs | draw) for every observation, dims (chain, draw, obs), on the scale the model was
        fitted on, for PSIS-LOO (:func:`bayes_mixlaw.compare.loo`); a law without one says so."""
        raise ValueError(f"no pointwise log-likelihood for a {self.kind} fit")

    # subclass hooks --------------------------------------------------------------------------

    def _layout(self, runs: RunsTable, **options):  # pragma: no cover - abstract
        """What the model reads of ``runs``: labels, indices and data arrays."""
        raise NotImplementedError

    def _model(self, lay, **options) -> pm.Model:  # pragma: no cover - abstract
        """The PyMC model of a layout (no side effects on the law)."""
        raise NotImplementedError

    def _key_parts(self, lay, **options) -> tuple:  # pragma: no cover - abstract
        """What of the layout fixes the model's structure, besides the config (:meth:`_structure_key`)."""
        raise NotImplementedError

    def _stored_runs(self) -> tuple[RunsTable, dict]:  # pragma: no cover - abstract
        """The runs table (and ``build`` options) the fit was built from, read back from ``idata``."""
        raise NotImplementedError

    def _observed_rows(self, columns: dict[str, str], *, run: str | None = "obs_run", mixtures: str | None = None) -> pd.DataFrame:
        """The fitted rows read back from ``idata``: ``run`` (labels from ``observed_data[run]``; ``None``:
        ``point i``), ``valid_domain``, ``loss``, each ``columns`` item (table column <- observed variable),
        and, with ``mixtures`` (a ``constant_data`` variable over (label, train_domain) whose labels are
        the runs'), each row's mixture proportions as ``mix_*`` columns."""
        observed = self.idata["observed_data"]
        labels = [f"point {i}" for i in range(observed.sizes["obs"])] if run is None else [str(r) for r in observed[run].values]
        data = pd.DataFrame({"run": labels, "valid_domain": [str(v) for v in observed["obs_valid_domain"].values], "loss": observed["loss"].values})
        for column, variable in columns.items():
            data[column] = observed[variable].values
        if mixtures is not None:
            constant = self.idata["constant_data"]
            proportions = constant[mixtures]
            index = [str(r) for r in proportions[proportions.dims[0]].values]
            frame = pd.DataFrame(proportions.values, index=index, columns=[MIX_PREFIX + str(d) for d in constant["train_domain"].values])
            data = pd.concat([data, frame.loc[labels].reset_index(drop=True)], axis=1)
        return data

    def _data(self, lay: dict) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def _data_groups(self, lay: dict) -> dict[str, xr.Dataset]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _attrs(self, lay: dict) -> dict:
        return {}

    def _diagnostic_quantities(self) -> xr.Dataset:  # pragma: no cover - abstract
        raise NotImplementedError

    def _checked_in_sampling(self, built: BuiltModel):
        """What ``SamplerConfig.check_every`` checks while NUTS runs: a function of the posterior draws so far giving the
        quantities of :meth:`_diagnostic_quantities`, or None where those need more than the draws (sampling then
        always takes ``draws``)."""
        return None

    def _restore(self, tree: xr.DataTree) -> None:
        """Rebuild what the subclass needs from a loaded fit's attributes."""

    # shared pieces of the subclasses' models ------------------------------------------------------

    def _likelihood(self, mu, sigma, observed):
        """The observed ``loss``: Student-t (robust) or Normal, per config. The Student-t's degrees of
        freedom are ``nu = 1 + x`` with ``x`` from the ``nu`` prior: above 1, so an additive Student-t
        noise has a mean and a predictive's ``mean`` is a finite summary (issue 13)."""
        if self.config.likelihood == "studentt":
            nu = pm.Deterministic("nu", 1.0 + self.config.prior("nu").create_variable("nu_minus_one"))
            return pm.StudentT("loss", nu=nu, mu=mu, sigma=sigma, observed=observed, dims="obs")
        return pm.Normal("loss", mu=mu, sigma=sigma, observed=observed, dims="obs")

    def _structure_key(self, *parts) -> str:
        """Key of the compiled-model cache: the law, every setting of its config but the sampler's
        (likelihood, priors, structural options), and ``parts`` (what else fixes the model: the
        data's shapes and labels); refits with the same key reuse the compiled model."""
        cfg = self.config
        settings = cfg.structure_settings()
        payload = [self.kind, settings, {k: cfg.priors[k].to_dict() for k in sorted(cfg.priors)}, *parts]  # a file keeps them sorted
        return hashlib.sha256(json.dumps(payload, default=str).encode()).hexdigest()

    def _standard_noise(self, shape: tuple, rng: np.random.Generator) -> np.ndarray:
        """Unit-scale draws of the likelihood's noise, one per posterior draw: shape (chain, draw, ...)."""
        if self.config.likelihood == "studentt":
            nu = self.idata["posterior"]["nu"].values
            return rng.standard_t(np.broadcast_to(nu.reshape(nu.shape + (1,) * (len(shape) - 2)), shape))
        return rng.standard_normal(shape)

    def _row_noise(self, shape: tuple, generators: list[np.random.Generator]) -> np.ndarray:
        """:meth:`_standard_noise` of shape (chain, draw, row, ...), each row from its own generator
        (:func:`row_generators`)."""
        one = (*shape[:2], 1, *shape[3:])
        return np.concatenate([self._standard_noise(one, g) for g in generators], axis=2)

    # fit ---------------------------------------------------------------------------------------

    def fit(
        self,
        runs,
        *,
        seed: int | None = None,
        method: str | None = None,
        progress: bool = True,
        build_options: dict | None = None,
        checked: Callable[[BayesianLaw], xr.Dataset] | None = None,
        **sampler,
    ):
        """Fit to a runs table. ``method``: ``nuts`` (default), ``fast`` (a short NUTS run on the same
        compiled model, for planning loops) or ``advi`` (mean-field, approximate); ``build_options``: the
        law's options of :meth:`build` (e.g. the runs' learning-rate ``schedule``); ``checked``: what the
        caller will read from the fit, as a function of a fit (chain, draw, ...), checked while sampling in
        place of the law's own quantities (the fit is then converged on those only: the discrepancy's
        calibration fit, read through its residual slopes); other keywords override the config's sampler
        settings (draws, tune, chains, cores, ...). Sampler problems are raised as
        :class:`~bayes_mixlaw.inference.SamplingWarning`."""
        runs = load_runs(runs)
        settings = SamplerConfig.model_validate(self.config.sampler.model_dump() | {k: v for k, v in {"method": method, **sampler}.items() if v is not None})
        built = self.build(runs, **(build_options or {}))
        lay = built.layout
        in_sampling = self._checked_in_sampling(built) if checked is None else self._checked_on_draws(built, settings, seed, checked)
        with Timer() as timer:
            tree = sample_posterior(built.model, self._data(lay), built.key, settings, seed, progress, checked=in_sampling)
        restarted = tree.attrs.get("retried_after")  # the draws are from a restart at a higher target_accept: the fit file says so
        if restarted:
            settings = settings.model_copy(update={"target_accept": float(tree.attrs["target_accept"]), "retry_target_accept": None})
        self._hold_draws(tree, built, settings, seed)
        diagnostics = self._diagnose(settings.method, timer.seconds, settings.target_accept)
        if restarted:
            diagnostics.restarted = f"sampled again at target_accept {settings.target_accept} after {restarted}"
        self.idata["diagnostics"] = xr.DataTree(xr.Dataset(attrs={"json": json.dumps(diagnostics.__dict__)}))
        warn_problems(diagnostics, f"{self.kind.replace('_', '-')} fit")
        return self

    def _hold_draws(self, tree: xr.DataTree, built: BuiltModel, settings: SamplerConfig, seed) -> None:
        """Make this law the fit of ``tree``'s posterior draws (as :meth:`fit` leaves it, before its diagnostics)."""
        self._built = built
        self.runs = self._table(built.layout)
        self.idata = self._assemble(without_transformed(tree["posterior"].to_dataset()), tree, built, settings, seed)
        self._after_sampling()

    def _with_draws(self, **draws) -> BayesianLaw:
        """A copy of this fit holding a part of its posterior draws (``draws``: ``isel`` on chain and draw, e.g.
        ``draw=slice(0, None, 10)``); the fit itself is untouched."""
        part = copy.copy(self)
        part.idata = self.idata.copy()
        part.idata["posterior"] = self.idata["posterior"].isel(**draws)
        return part

    def _after_sampling(self) -> None:
        """What a fit estimates from its draws once they are in ``idata`` (nothing here)."""

    def _checked_on_draws(self, built: BuiltModel, settings: SamplerConfig, seed, checked: Callable[[BayesianLaw], xr.Dataset]):
        """:meth:`fit`'s ``checked`` as a function of the draws so far: ``checked`` of a copy of this law holding them."""

        def quantities(posterior: xr.Dataset) -> xr.Dataset:
            provisional = copy.copy(self)
            provisional._hold_draws(xr.DataTree.from_dict({"posterior": posterior}), built, settings, seed)
            return checked(provisional)

        return quantities

    @staticmethod
    def _table(lay) -> RunsTable:
        """The runs table a layout was made from."""
        return lay["table"] if isinstance(lay, dict) else lay.table

    def _assemble(self, posterior, tree, built: BuiltModel, settings, seed) -> xr.DataTree:
        from bayes_mixlaw import __version__

        lay = built.layout
        nodes = {"posterior": posterior}
        if "sample_stats" in tree.children:
            nodes["sample_stats"] = tree["sample_stats"].to_dataset()
        nodes.update(self._data_groups(lay))
        attrs = {
            "bayes_mixlaw_version": __version__,
            "kind": self.kind,
            "config": self.config.model_copy(update={"sampler": settings}).to_json(),
            "source": self._table(lay).source,
            "seed": -1 if seed is None else int(seed),
            "structure_key": built.key,
            **self._attrs(lay),
        }
        return xr.DataTree.from_dict({"/": xr.Dataset(attrs=attrs), **nodes})

    def _diagnose(self, method: str, seconds: float, target_accept: float | None = None) -> Diagnostics:
        check = self._diagnostic_quantities()
        stats = self.idata["sample_stats"].to_dataset() if "sample_stats" in self.idata.children else None
        return diagnose(check, stats, method, seconds, list(check.data_vars), target_accept)

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
        self.idata.attrs[CHECKSUM_ATTR] = content_checksum(self.idata)
        return write_atomically(path, lambda partial: self.idata.to_netcdf(partial, engine="h5netcdf"))

    @classmethod
    def load(cls, path):
        """Read a fit written by :meth:`save`; it predicts exactly as before it was saved.

        Called on ``BayesianLaw`` it returns whichever law the file holds."""
        path = Path(path)
        tree = read_fit_tree(path)
        kind = tree.attrs["kind"]
        import importlib

        for module in ("continual", "mixing", "nested", "scaling", "scheduled"):  # register every law (found below as subclasses)
            importlib.import_module(f"bayes_mixlaw.{module}")

        classes = {c.kind: c for c in _subclasses(BayesianLaw) if hasattr(c, "kind")}  # concrete laws only
        if kind not in classes or (cls is not BayesianLaw and classes[kind] is not cls):
            raise FitFileError(f"{path} holds a fit of kind {kind!r}, not a {getattr(cls, 'kind', 'bayes_mixlaw')} fit")
        law_class = classes[kind]
        law = law_class(law_class.config_class.from_fit(json.loads(tree.attrs["config"])))
        law.idata = tree
        law._restore(tree)
        check_structure(law, path)
        return law

    @staticmethod
    def _check_kind(kind: str) -> None:
        if kind not in ("mean", "predictive"):
            raise ValueError(f"kind must be 'mean' or 'predictive', not {kind!r}")

    def _parameter_table(self, names: list[str], ci: float, draws: xr.Dataset | None = None) -> pd.DataFrame:
        """Posterior mean and equal-tailed interval of each element of the named quantities (in the
        posterior, or in ``draws`` with dims (chain, draw, ...)): one row per element, with its
        labelled coordinates."""
        post = self.idata["posterior"] if draws is None else draws
        rows = []
        for name in names:
            mean = post[name].stack(sample=("chain", "draw")).mean("sample")
            bounds = eti(post[name], ci, skipna=True).transpose(*mean.dims, "ci_bound").values  # NaN draws left out, as the mean does
            for index in np.ndindex(*mean.shape):
                sel = {d: str(mean[d].values[j]) for d, j in zip(mean.dims, index)}
                rows.append(
                    {"parameter": name, **sel, "mean": float(mean.values[index]), "lower": float(bounds[(*index, 0)]), "upper": float(bounds[(*index, 1)])}
                )
        return pd.DataFrame(rows)

    def _require_fit(self):
        if self.idata is None:
            raise NotFittedError(f"this {type(self).__name__} has not been fitted; call fit() or {type(self).__name__}.load()")


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def __getattr__(name):
    """The mixture laws' base and its parts, importable from here as before they had a module of their own
    (:mod:`bayes_mixlaw.mixture_law`, which imports this module)."""
    if name in ("MixtureLaw", "MIXTURE_REPORT", "check_pilot_mixtures"):
        from bayes_mixlaw import mixture_law

        return getattr(mixture_law, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
