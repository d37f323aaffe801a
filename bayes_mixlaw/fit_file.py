"""A fit file: one netCDF-4 file written by :meth:`~bayes_mixlaw.model.BayesianLaw.save` and read by
:meth:`~bayes_mixlaw.model.BayesianLaw.load`. Its contents are checksummed (:func:`content_checksum`), so damage is
found on reading (:func:`read_fit_tree`); the package version and the model's structure key written into it are
checked against this version's (:func:`check_structure`)."""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import numpy as np
import xarray as xr

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


def read_fit_tree(path: Path) -> xr.DataTree:
    """The contents of the fit file at ``path``, checked: a missing, empty, unreadable or damaged file (its checksum
    does not match), or a netCDF file that is not a fit (no ``kind``), is refused in words (:class:`FitFileError`)."""
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
            warnings.warn(
                f"{path} carries no checksum (written by bayes_mixlaw {tree.attrs.get('bayes_mixlaw_version', '?')}, "
                "before fit files had one): its contents cannot be verified; re-save it to add one",
                UserWarning,
                stacklevel=3,  # the caller of BayesianLaw.load
            )
    elif content_checksum(tree) != str(written):
        raise FitFileError(
            f"{path} is damaged: its contents do not match the checksum written when it was saved "
            f"(by bayes_mixlaw {tree.attrs.get('bayes_mixlaw_version', '?')}); refit or restore the file from a copy"
        )
    kind = tree.attrs.get("kind")
    if kind is None:
        raise FitFileError(f"{path} is a netCDF file but not a bayes_mixlaw fit (it has no 'kind' attribute); fit files are written by 'bayes-mixlaw fit'")
    return tree


def check_structure(law, path) -> None:
    """Check a loaded fit's structure key against the model this version rebuilds from the file's
    own config and data, and its version against this one.

    Written by this version, a different key is an error (the file's posterior is not of the model
    its contents build: edited, or written by a development copy). Written by another version, the
    version is said in a warning, and a different key with it (a setting or the model's form changed
    since: the posterior predicts as saved; a refit with this version samples this version's model).
    A file whose runs cannot be read back (written before fit files kept them all) is not checked;
    its model is rebuilt only when asked for."""
    from bayes_mixlaw import __version__

    version = str(law.idata.attrs.get("bayes_mixlaw_version", ""))
    written = str(law.idata.attrs.get("structure_key", ""))
    key = None
    if written:
        try:
            runs, options = law._stored_runs()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                key = law.structure_key(runs, **options)
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
