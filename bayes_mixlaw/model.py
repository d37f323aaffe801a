"""What every Bayesian law shares: fit, diagnostics, save and load (pymc-marketing's ModelBuilder).

A law subclass says how a runs table is laid out for its model (``_layout``), how the PyMC model is
built from that layout (``_model``) and what of it fixes the model's structure (``_key_parts``); the
base's :meth:`BayesianLaw.build` joins them into a :class:`BuiltModel` (model, structure key, layout)
without touching the law. It also says which ``pm.Data`` values a refit swaps in (``_data``), which
data groups and attributes its fit file keeps (``_data_groups``, ``_attrs``), how the runs table is
read back from those (``_stored_runs``: a loaded fit rebuilds its model from its own file) and which
posterior quantities its convergence is judged on (``_diagnostic_quantities``). The fit is an
ArviZ-style ``xarray.DataTree`` with labelled dims.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pymc as pm
import xarray as xr

from bayes_mixlaw.atomic import write_atomically
from bayes_mixlaw.config import LawConfig, SamplerConfig
from bayes_mixlaw.inference import Diagnostics, Timer, diagnose, sample_posterior, warn_problems
from bayes_mixlaw.runs import MIX_PREFIX, RunsTable, load_runs
from bayes_mixlaw.summary import eti
from bayes_mixlaw.targets import Targets

# Unconstrained copies of variables that PyMC adds; the fit keeps the constrained ones.
_TRANSFORMED_SUFFIXES = ("_log__", "_interval__", "_simplex__", "_zerosum__")
# Root attribute of a fit file: SHA-256 of everything else in it (:func:`content_checksum`).
CHECKSUM_ATTR = "content_sha256"


def _is_hdf5(path: Path) -> bool:
    """Whether the file starts with the HDF5 signature (netCDF-4 files do), so a failed read means damage."""
    with open(path, "rb") as handle:
        return handle.read(8) == b"\x89HDF\r\n\x1a\n"


class FitFileError(ValueError):
    """A fit file that cannot be trusted: unreadable, damaged (checksum mismatch) or of another kind."""


def _canonical(value):
    """An attribute value as plain JSON-able Python (numpy scalars and arrays read back from netCDF
    compare equal to the values written)."""
    if isinstance(value, np.ndarray):
        return [_canonical(v) for v in value.tolist()]
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return value.decode()
    return value


def _canonical_bytes(values: np.ndarray) -> bytes:
    """An array's values as bytes that survive netCDF: integers and booleans as int64, numbers as
    float64, text as JSON. An object array of None (and numbers) is written as floats (None: NaN),
    one of text and None as text (None: ''), so both are hashed so here."""
    if values.dtype.kind in "biu":
        return np.ascontiguousarray(values, dtype="<i8").tobytes()
    if values.dtype.kind == "f":
        return np.ascontiguousarray(values, dtype="<f8").tobytes()
    flat = [v.item() if isinstance(v, np.generic) else v for v in values.ravel().tolist()]
    if not any(isinstance(v, (str, bytes)) for v in flat):
        try:
            return np.array([np.nan if v is None else v for v in flat], dtype="<f8").tobytes()
        except (TypeError, ValueError):
            pass
    missing = lambda v: v is None or (isinstance(v, float) and v != v)  # noqa: E731
    return json.dumps(["" if missing(v) else v.decode() if isinstance(v, bytes) else str(v) for v in flat]).encode()


def content_checksum(tree: xr.DataTree) -> str:
    """SHA-256 of a fit's contents: every node's attributes and every variable's name, dims, values
    and attributes (the checksum attribute itself left out). Numbers are hashed in a fixed width and
    byte order and text as text, so the value written by :meth:`BayesianLaw.save` is the value
    recomputed from the file by :meth:`BayesianLaw.load`; any damage to the data changes it."""
    digest = hashlib.sha256()

    def add_attrs(attrs):
        plain = {str(k): _canonical(v) for k, v in attrs.items() if k != CHECKSUM_ATTR}
        digest.update(json.dumps(plain, sort_keys=True, default=str).encode())

    for node in sorted(tree.subtree, key=lambda n: n.path):
        digest.update(f"node {node.path}".encode())
        add_attrs(node.attrs)
        dataset = node.to_dataset(inherit=False)
        for name in sorted(dataset.variables, key=str):
            variable = dataset.variables[name]
            values = np.asarray(variable.values)
            digest.update(json.dumps([str(name), list(map(str, variable.dims)), list(values.shape)]).encode())
            digest.update(_canonical_bytes(values))
            add_attrs(variable.attrs)
    return digest.hexdigest()


def _check_version(path, written: str, structure: str | None = None) -> None:
    """Warn where a fit file was written by another bayes_mixlaw than the one reading it, naming both
    versions; ``structure``: what the reader found of the file's model (a sentence), said with it."""
    from packaging.version import InvalidVersion, Version

    from bayes_mixlaw import __version__

    if not written or written == __version__:
        return
    try:
        newer = Version(written) > Version(__version__)
    except InvalidVersion:
        newer = False
    if newer:
        message = (
            f"{path} was written by bayes_mixlaw {written}, newer than this {__version__}: it may hold what this "
            "version cannot read right; upgrade bayes_mixlaw"
        )
    else:
        message = f"{path} was written by bayes_mixlaw {written}; this is bayes_mixlaw {__version__}"
    if structure:
        message += f" ({structure})"
    warnings.warn(message, UserWarning, stacklevel=4)


def row_seed_sequence(seed: int, row) -> np.random.SeedSequence:
    """The seed of one row's random draws, derived from ``seed`` and the row's own values (its
    mixture, or its scale): the row's numbers do not depend on the other rows or their order."""
    values = np.round(np.asarray(row, dtype=float).ravel(), 12) + 0.0  # + 0.0: -0.0 -> 0.0
    words = np.frombuffer(hashlib.sha256(values.tobytes()).digest(), dtype="<u4")
    return np.random.SeedSequence([int(seed) & 0xFFFFFFFF, *words.tolist()])


def row_generators(seed: int, rows: np.ndarray) -> list[np.random.Generator]:
    """One generator per row of ``rows`` (2-D: row x values), each from :func:`row_seed_sequence`."""
    return [np.random.default_rng(row_seed_sequence(seed, row)) for row in np.atleast_2d(rows)]


def shared_generator(seed: int) -> np.random.Generator:
    """The generator of what every row of one call shares (the law's error at a target scale): from
    ``seed`` alone, the same for every row."""
    return np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, 0x5EED]))


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


class _MethodIn:
    """A method whose body is a function in another module (:meth:`~bayes_mixlaw.model.BayesianLaw.method_in`)."""

    def __init__(self, target: str):
        self.target = target

    def __get__(self, law, owner=None):
        import importlib
        import types

        module, _, name = self.target.partition(":")
        function = getattr(importlib.import_module(module), name)
        return function if law is None else types.MethodType(function, law)


MIXTURE_REPORT = frozenset({"interactions", "proportions", "domains", "ternary", "optimum", "comparison"})
"""The parts of a report that are about a law over the mixture simplex: the interaction matrix, the share
bands, the per-domain panels, the ternary slice, the optimal mixture (with its predictions table) and the
comparison of variants by PSIS-LOO. Every report also has the posterior predictive check (fitted against
observed), the parameters and the diagnostics. A law class says which parts apply to it with its
``report_sections`` (:class:`~bayes_mixlaw.model.MixtureLaw`: these, and ``"curves"``, the pilots' curves against steps and size,
where the law has scale axes); ``"critical"`` is the critical share of continual pre-training
(:class:`~bayes_mixlaw.continual.ContinualLaw`); ``"schedule_curves"`` (the runs' curves against steps),
``"schedules"`` (their learning rates and the ``schedules`` table) and ``"unknown_schedule"`` (the posterior of
an unknown schedule's length and the ``schedule_assumptions`` table) are a schedule-aware fit's
(:class:`~bayes_mixlaw.scheduled.ScheduledScalingLaw`, per fit)."""


class BayesianLaw:
    """Base class of the laws: ``build_model``, ``fit``, ``save``, ``load``, ``diagnostics``."""

    kind: ClassVar[str]
    config_class: ClassVar[type[LawConfig]]

    # What the law says about itself: the command line, the report, compare, calibrate and suggest read these
    # capabilities, so a new law declares them instead of being named in those modules.
    over_mixtures: ClassVar[bool] = False
    """Whether the law predicts at data mixtures (``mix:*`` columns, ``train_domains``): ``optimize``, ``suggest`` and
    the report's simplex parts take its fits (:class:`~bayes_mixlaw.model.MixtureLaw`)."""
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
    """Whether ``suggest`` can model what the law misses by a GP on its residuals at the pilots' mixtures
    (:func:`~bayes_mixlaw.bo.residual_gp`, ``--residual-gp``; the one-scale mixing law)."""
    supports_critical_share: ClassVar[bool] = False
    """Whether the critical share of continual pre-training applies (:mod:`bayes_mixlaw.critical`; the continual law)."""
    report_sections: ClassVar[frozenset[str] | None] = None
    """The optional parts of the fit's report (:data:`~bayes_mixlaw.model.MIXTURE_REPORT` lists them; a property where they depend on the
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

    @staticmethod
    def method_in(target: str):
        """A law's method written as ``function(law, ...)`` in another module, ``"package.module:function"``, imported
        on first use: one line in the law's class (``predict_request = BayesianLaw.method_in(...)``) where the law's
        own module is not yet the place for it."""
        return _MethodIn(target)

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
        settings = cfg.model_dump(mode="json", exclude={"sampler", "priors"})
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

    def fit(self, runs, *, seed: int | None = None, method: str | None = None, progress: bool = True, **sampler):
        """Fit to a runs table. ``method``: ``nuts`` (default), ``fast`` (a short NUTS run on the same
        compiled model, for planning loops) or ``advi`` (mean-field, approximate);
        other keywords override the config's sampler settings (draws, tune, chains, cores, ...).
        Sampler problems are raised as :class:`~bayes_mixlaw.inference.SamplingWarning`."""
        runs = load_runs(runs)
        settings = SamplerConfig.model_validate(self.config.sampler.model_dump() | {k: v for k, v in {"method": method, **sampler}.items() if v is not None})
        built = self.build(runs)
        lay = built.layout
        with Timer() as timer:
            tree = sample_posterior(built.model, self._data(lay), built.key, settings, seed, progress)
        posterior = tree["posterior"].to_dataset()
        posterior = posterior.drop_vars([v for v in posterior.data_vars if v.endswith(_TRANSFORMED_SUFFIXES)])
        self._built = built
        self.runs = self._table(lay)
        self.idata = self._assemble(posterior, tree, built, settings, seed)
        diagnostics = self._diagnose(settings.method, timer.seconds)
        self.idata["diagnostics"] = xr.DataTree(xr.Dataset(attrs={"json": json.dumps(diagnostics.__dict__)}))
        warn_problems(diagnostics, f"{self.kind.replace('_', '-')} fit")
        return self

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
        self.idata.attrs[CHECKSUM_ATTR] = content_checksum(self.idata)
        return write_atomically(path, lambda partial: self.idata.to_netcdf(partial, engine="h5netcdf"))

    @classmethod
    def load(cls, path):
        """Read a fit written by :meth:`save`; it predicts exactly as before it was saved.

        Called on ``BayesianLaw`` it returns whichever law the file holds."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no fit at {path}")
        if path.is_dir():
            raise FitFileError(f"{path} is a folder, not a fit file (a .nc file written by 'bayes-mixlaw fit')")
        if path.stat().st_size == 0:
            raise FitFileError(f"{path} is empty (0 bytes), not a fit file; was it written to the end?")
        try:
            tree = xr.open_datatree(path, engine="h5netcdf").load()
        except Exception as err:  # h5py and xarray raise many kinds on a damaged or foreign file
            if _is_hdf5(path):
                raise FitFileError(
                    f"{path} is damaged: it is a netCDF/HDF5 file but its structure cannot be read "
                    f"({type(err).__name__}: {err}); refit or restore the file from a copy"
                ) from None
            raise FitFileError(f"{path} could not be read as a bayes_mixlaw fit file (damaged, or not a fit file): {type(err).__name__}: {err}") from None
        written = tree.attrs.get(CHECKSUM_ATTR)
        if written is None:
            if "kind" in tree.attrs:
                import warnings

                warnings.warn(
                    f"{path} carries no checksum (written by bayes_mixlaw {tree.attrs.get('bayes_mixlaw_version', '?')}, "
                    "before fit files had one): its contents cannot be verified; re-save it to add one",
                    UserWarning,
                    stacklevel=2,
                )
        elif content_checksum(tree) != str(written):
            raise FitFileError(
                f"{path} is damaged: its contents do not match the checksum written when it was saved "
                f"(by bayes_mixlaw {tree.attrs.get('bayes_mixlaw_version', '?')}); refit or restore the file from a copy"
            )
        kind = tree.attrs.get("kind")
        if kind is None:
            raise FitFileError(f"{path} is a netCDF file but not a bayes_mixlaw fit (it has no 'kind' attribute); fit files are written by 'bayes-mixlaw fit'")
        import importlib

        for module in ("continual", "mixing", "nested", "scaling", "scheduled"):  # register every law (found below as subclasses)
            importlib.import_module(f"bayes_mixlaw.{module}")

        classes = {c.kind: c for c in _subclasses(BayesianLaw) if hasattr(c, "kind")}  # concrete laws only
        if kind not in classes or (cls is not BayesianLaw and classes[kind] is not cls):
            raise FitFileError(f"{path} holds a fit of kind {kind!r}, not a {getattr(cls, 'kind', 'bayes_mixlaw')} fit")
        law_class = classes[kind]
        law = law_class(law_class.config_class.from_dict(json.loads(tree.attrs["config"])))
        law.idata = tree
        law._restore(tree)
        law._check_structure(path)
        return law

    def _check_structure(self, path) -> None:
        """Check a loaded fit's structure key against the model this version rebuilds from the file's
        own config and data, and its version against this one.

        Written by this version, a different key is an error (the file's posterior is not of the model
        its contents build: edited, or written by a development copy). Written by another version, the
        version is said in a warning, and a different key with it (a setting or the model's form changed
        since: the posterior predicts as saved; a refit with this version samples this version's model).
        A file whose runs cannot be read back (written before fit files kept them all) is not checked;
        its model is rebuilt only when asked for."""
        from bayes_mixlaw import __version__

        version = str(self.idata.attrs.get("bayes_mixlaw_version", ""))
        written = str(self.idata.attrs.get("structure_key", ""))
        key = None
        if written:
            try:
                runs, options = self._stored_runs()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    key = self.structure_key(runs, **options)
            except Exception:  # an older file without all its runs: nothing to check against
                key = None
        if key is not None and key != written and (not version or version == __version__):
            raise FitFileError(
                f"{path} does not match the model its own config and data build: its structure key is {written[:12]}..., the "
                f"model rebuilt from it has {key[:12]}... (both bayes_mixlaw {__version__}); the file was edited or written by a "
                "modified copy of bayes_mixlaw: refit the runs table"
            )
        structure = None
        if key is not None:
            structure = (
                "its model's structure is this version's"
                if key == written
                else "its model differs from the one this version builds from its config and data (a setting or the law's form changed "
                "since): its posterior predicts as it was saved; refit with this version for this version's model"
            )
        _check_version(path, version, structure)

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


class MixtureLaw(BayesianLaw):
    """What the laws over data mixtures share: aggregate targets, labelled training and validation
    domains, the pilots' mixtures, predictive draws in chunks, and posterior draws in torch.

    A subclass names the constant-data variable holding the pilots' mixtures (``pilot_mixture_var``)
    and gives the domain losses of a chunk of mixtures (``_domain_draws``)."""

    pilot_mixture_var: ClassVar[str]
    over_mixtures = True
    supports_holdout = True

    def __init__(self, config: LawConfig | None = None, targets: Targets | None = None):
        super().__init__(config)
        self.targets = targets or Targets()
        self._flagged: set[str] = set()  # mixtures already said to rest on the prior

    @property
    def report_sections(self) -> frozenset[str]:
        """:data:`~bayes_mixlaw.model.MIXTURE_REPORT`, and with scale axes the pilots' curves against them (``curves``)."""
        return MIXTURE_REPORT | ({"curves"} if self.has_scale_axes else set())

    @property
    def pilot_labels(self) -> list[str]:
        """The pilots' labels, one per row of :attr:`pilot_mixtures` (runs, or mixtures run at several scales)."""
        self._require_fit()
        proportions = self.idata["constant_data"][self.pilot_mixture_var]
        return [str(label) for label in proportions[proportions.dims[0]].values]

    @property
    def pilot_label_var(self) -> str:
        """The observed-data variable naming each loss's pilot (one of :attr:`pilot_labels`): ``obs_run``, ``obs_mixture``."""
        self._require_fit()
        return f"obs_{self.idata['constant_data'][self.pilot_mixture_var].dims[0]}"

    def target_scale(self, source, params=None, step=None, tokens=None) -> dict:
        """The target scale a command gives (lists of its ``--params``, ``--step`` and ``--tokens`` values, each may be
        None), as keywords of ``predict``: ``{}`` for a law at one scale (which refuses a scale, naming ``source``);
        with scale axes, exactly one size and one length, of the kind the fit was fitted on."""
        if not self.has_scale_axes:
            if params or step or tokens:
                raise ValueError(f"{source} is a mixing law at one scale; --params/--step/--tokens need a nested fit")
            return {}
        column = self.length_column
        other, given = ("tokens", tokens) if column == "step" else ("step", step)
        values = step if column == "step" else tokens
        if given:
            raise ValueError(f"{source} was fitted on {column}s, not {other}: give --{column}")
        if not params or not values:
            scales = self.pilot_scales()
            raise ValueError(
                f"{source} is a {self.fit_name} fit: give the target scale with --params N --{column} S "
                f"(its pilots span params {scales['params'][0]:.3g}-{scales['params'][-1]:.3g}, {column} {scales[column][0]:g}-{scales[column][-1]:g})"
            )
        if len(params) > 1 or len(values) > 1:
            raise ValueError(f"a {self.fit_name} fit predicts at one target scale per call: give one --params and one --{column}")
        return {"params": params[0], column: values[0]}

    def predict_request(self, request) -> pd.DataFrame:
        """:meth:`~bayes_mixlaw.model.BayesianLaw.predict_request`: at ``--mixtures``, and with scale axes at one target scale (said on the
        terminal where it lies beyond the pilots: the intervals carry the model discrepancy there)."""
        if request.mixtures is None:
            raise ValueError(f"{request.source} is a {self.fit_name} fit: give --mixtures M.csv")
        if not self.has_scale_axes and (request.params or request.tokens or request.step):
            raise ValueError(f"{request.source} is a mixing law at one scale; --params/--tokens/--step need the nested model")
        scale = self.target_scale(request.source, request.params, request.step, request.tokens)
        schedule = {"schedule": request.schedule} if self.takes_schedule and request.schedule is not None else {}
        table = self.predict(request.mixtures, ci=request.ci, kind=request.kind, seed=request.seed, **scale, **schedule)
        if scale:
            from bayes_mixlaw import discrepancy
            from bayes_mixlaw.request import say_extrapolation

            say_extrapolation(self, scale)
            beyond = discrepancy.describe(self, scale)
            if beyond and not request.quiet:
                request.say(f"extrapolation: {beyond}; the intervals carry it")
        return table

    def fit(self, runs, **kwargs):
        """:meth:`BayesianLaw.fit`, after :func:`check_pilot_mixtures` refuses pilots whose mixtures
        cannot inform a mixing law."""
        runs = load_runs(runs)
        if getattr(self.config, "mixture_model", "law") != "free":  # a free fit keeps each mixture's own curve
            check_pilot_mixtures(runs, self.kind.replace("_", " "))
        return super().fit(runs, **kwargs)

    def prior_reliance(self, frame: pd.DataFrame) -> list[str]:
        """Where predictions at the mixtures of ``frame`` (a validated mixtures table) rest on the prior
        rather than the pilots: a training domain no pilot used, or a share far beyond the largest any
        pilot used (0.2 above it, or 0.1 above and 1.5x it). One sentence per such mixture."""
        r = frame[[MIX_PREFIX + d for d in self.train_domains]].to_numpy(dtype=float)
        most = self.pilot_mixtures.max(axis=0)
        labels = frame["name"].tolist() if "name" in frame else [f"row {i}" for i in range(len(frame))]
        notes = []
        for label, row in zip(labels, r):
            parts = [
                f"{d} {x:.2f} (no pilot used {d})" if m == 0 else f"{d} {x:.2f} ({x / m:.1f}x the largest pilot share, {m:.2f})"
                for d, x, m in zip(self.train_domains, row, most)
                if x > 0 and (m == 0 or (x - m >= 0.1 and (x >= 1.5 * m or x - m >= 0.2)))
            ]
            if parts:
                notes.append(f"mixture '{label}': {', '.join(parts)}")
        return notes

    def _restore(self, tree: xr.DataTree) -> None:
        self.targets = Targets.from_json(tree.attrs["targets"])

    @property
    def train_domains(self) -> list[str]:
        self._require_fit()
        return [str(d) for d in self.idata["constant_data"]["train_domain"].values]

    @property
    def valid_domains(self) -> list[str]:
        self._require_fit()
        return [str(d) for d in self.idata["constant_data"]["valid_domain"].values]

    @property
    def pilot_mixtures(self) -> np.ndarray:
        """The pilots' distinct mixtures (rows) over the training domains."""
        self._require_fit()
        return self.idata["constant_data"][self.pilot_mixture_var].values

    def _domain_draws(
        self, r: np.ndarray, kind: str, rng: np.random.Generator, *, shared_rng: np.random.Generator, **scale
    ) -> np.ndarray:  # pragma: no cover - abstract
        """Loss draws (chain, draw, mixture, valid_domain) at the mixtures ``r``: the law's (``mean``)
        or a new run's (``predictive``); ``rng`` draws what belongs to these mixtures, ``shared_rng``
        what every mixture of the call shares."""
        raise NotImplementedError

    def _draws_at(self, frame: pd.DataFrame, kind: str, seed: int, **scale) -> xr.DataArray:
        """Draws of every target at a validated mixtures table: dims (chain, draw, mixture, target)."""
        self._check_kind(kind)
        notes = [n for n in self.prior_reliance(frame) if n not in self._flagged]  # each mixture once per law
        self._flagged.update(notes)
        if notes:
            import warnings

            warnings.warn(
                f"{len(notes)} mixture(s) go beyond what the pilots cover, so their predictions rest mostly on the prior "
                f"and the law's form, not on data: {'; '.join(notes[:5])}{'; ...' if len(notes) > 5 else ''}",
                UserWarning,
                stacklevel=1,  # as before: the line here (predict, predict_draws and optimize all come through it)
            )
        r = frame[[MIX_PREFIX + d for d in self.train_domains]].to_numpy(dtype=float)
        names, matrix = self.targets.matrix(self.valid_domains)
        # each mixture's draws from its own generator (seed and its proportions), what the mixtures of
        # one call share (the law's error at the scale) from one generator of the seed: a row's numbers
        # do not depend on the other rows of the table or their order
        out = [
            self._domain_draws(r[i : i + 1], kind, rng, shared_rng=shared_generator(seed), **scale) @ matrix.T for i, rng in enumerate(row_generators(seed, r))
        ]
        labels = frame["name"].tolist() if "name" in frame else [f"mixture {i}" for i in range(len(frame))]
        return xr.DataArray(np.concatenate(out, axis=2), dims=("chain", "draw", "mixture", "target"), coords={"mixture": labels, "target": names}, name="loss")

    def _torch_posterior(self, names: list[str], draws: int | None, seed: int) -> dict:
        """Posterior draws of the named quantities as float64 torch tensors (sample, ...), thinned
        at random (``seed``) to ``draws`` of them (all if None)."""
        import torch

        post = self.idata["posterior"]
        total = post.sizes["chain"] * post.sizes["draw"]
        pick = np.arange(total) if draws is None or draws >= total else np.sort(np.random.default_rng(seed).choice(total, size=draws, replace=False))
        return {k: torch.as_tensor(np.ascontiguousarray(post[k].values.reshape(-1, *post[k].shape[2:])[pick]), dtype=torch.float64) for k in names}

    def _target_weights(self, target: str):
        """The row of ``Targets.matrix`` for ``target`` as a torch vector over the validation domains."""
        import torch

        names, matrix = self.targets.matrix(self.valid_domains)
        if target not in names:
            raise ValueError(f"unknown target {target!r}; the fit's targets are {names}")
        return torch.as_tensor(matrix[names.index(target)], dtype=torch.float64)


def check_pilot_mixtures(runs: RunsTable, law: str = "mixing law") -> None:
    """Refuse pilots a mixing law cannot be fitted on, naming what is missing: fewer than two different
    mixtures, or a training domain that is 0 in every pilot (nothing tells how it moves the loss).
    Fewer distinct mixtures than training domains is allowed with a warning (the prior fills in)."""
    from bayes_mixlaw.runs import RunsTableError

    if not runs.mix_columns:
        return
    distinct = runs.mixtures().drop_duplicates()
    if len(distinct) < 2:
        raise RunsTableError(
            f"the pilots have only {len(distinct)} mixture ({len(runs.runs)} run(s), {len(runs.data)} row(s)); a {law} cannot be "
            f"fitted on it: it needs pilots of at least 2 different mixtures (better, more than the {len(runs.mix_columns)} "
            "training domains) to learn how the loss moves with the mixture. For one data mixture, drop the mix: columns "
            "(the scaling law over size and data)",
            source=runs.source,
        )
    never = [c for c in runs.mix_columns if (distinct[c] == 0).all()]
    if never:
        names = ", ".join(f"'{c[len(MIX_PREFIX) :]}'" for c in never)
        raise RunsTableError(
            f"training domain {names} is 0 in every pilot: the pilots say nothing about how it moves the loss, so any "
            f"prediction with some of it would rest on the prior alone; drop its column ({', '.join(never)}) or add pilots "
            "that train on it",
            source=runs.source,
            column=never[0],
        )
    if len(distinct) <= len(runs.mix_columns):
        import warnings

        warnings.warn(
            f"{runs.source}: {len(distinct)} distinct pilot mixtures for {len(runs.mix_columns)} training domains: the data "
            "cannot pin down every interaction of the law, so predictions away from the pilots lean on the prior",
            UserWarning,
            stacklevel=3,
        )


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)
