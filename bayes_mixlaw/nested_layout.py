"""How the nested law (:class:`~bayes_mixlaw.nested.NestedLaw`) reads a runs table and what its fit file keeps: the
layout its model is built from (the pilots' distinct mixtures, sizes and lengths, their curves, the schedules' areas),
the data a refit swaps in, the fit file's groups and attributes, and the runs read back from them."""

from __future__ import annotations

import dataclasses
import json
import warnings
from typing import ClassVar

import numpy as np
import pandas as pd
import xarray as xr

from bayes_mixlaw.discrepancy_scale import at_or_below
from bayes_mixlaw.runs import RunsTable
from bayes_mixlaw.schedule_grid import GridAreas, grid_areas
from bayes_mixlaw.schedules import Schedule

# version of the nested law's fit-file layout: 2 = Normal likelihood with the run effects integrated
# out (bayes_mixlaw.run_effects) and the model discrepancy (bayes_mixlaw.discrepancy)
NESTED_FORMAT = 2


def _mixture_labels(mixtures: pd.DataFrame, run_mixture: np.ndarray, runs: list[str]) -> list[str]:
    """A readable name per distinct mixture: the longest common end of its runs' names
    (``70M_RP_3-...`` and ``160M_RP_3-...`` give ``RP_3-...``), else ``mixture k``."""
    labels = []
    for k in range(len(mixtures)):
        names = [runs[j] for j in np.flatnonzero(run_mixture == k)]
        reversed_common = []
        for chars in zip(*[n[::-1] for n in names]):
            if len(set(chars)) > 1:
                break
            reversed_common.append(chars[0])
        label = "".join(reversed(reversed_common))
        # start at a name boundary: '70M_RP_3' and '160M_RP_3' share 'M_RP_3'; keep 'RP_3'
        while label and not all(len(n) == len(label) or n[-len(label) - 1] in "_-. " for n in names):
            label = label[1:]
        label = label.lstrip("_-. ")
        labels.append(label if label else f"mixture {k}")
    if len(set(labels)) < len(labels):
        labels = [f"mixture {k}" for k in range(len(mixtures))]
    return labels


class NestedLayout:
    """The nested law's hooks of :meth:`~bayes_mixlaw.model.BayesianLaw.build` and :meth:`~bayes_mixlaw.model.BayesianLaw.fit`
    that read and write data (a base of :class:`~bayes_mixlaw.nested.NestedLaw`)."""

    def _layout(self, runs: RunsTable, schedule=None, areas: GridAreas | None = None, observed_below: dict | None = None) -> dict:
        """``schedule``: as in :meth:`fit` (which passes it here through ``build_options``); ``areas``:
        the schedule areas a fit file keeps (a reloaded fit's runs are named by mixture); ``observed_below``:
        {column: largest value}, the likelihood reads only the losses at or below every one of them (and the reference
        scale is theirs), while the grid of mixtures, sizes and lengths and the loss scales stay the whole table's (the
        discrepancy's calibration fit, :mod:`bayes_mixlaw.discrepancy_scale`: the full fit's model, and its compiled
        form, on fewer losses)."""
        data = runs.data
        if not runs.mix_columns:
            raise ValueError(f"{runs.source}: the table has no 'mix:<domain>' columns; fit one mixture with ChinchillaLaw")
        if "params" not in data:
            raise ValueError(f"{runs.source}: the nested law needs a 'params' column (model size)")
        length = "step" if "step" in data else "tokens" if "tokens" in data else None
        if length is None:
            raise ValueError(f"{runs.source}: the nested law needs a 'step' or 'tokens' column (training length)")
        data, early = self._drop_transient(data, length, runs.source)
        runs = dataclasses.replace(runs, data=data) if early else runs
        for column in ("params", length):
            if data[column].nunique() < 2:
                raise ValueError(f"{runs.source}: '{column}' takes one value; fit a MixingLaw at one scale instead (or add pilots)")
        valid = runs.valid_domains
        targets = self.targets.check(valid, "targets")
        run_names = runs.runs
        per_run = runs.mixtures().loc[run_names]
        distinct = per_run.round(9).drop_duplicates()
        distinct_values = distinct.to_numpy(dtype=float)
        run_mixture = np.array([int(np.argmin(np.abs(distinct_values - row).max(axis=1))) for row in per_run.to_numpy(dtype=float)])
        labels = _mixture_labels(distinct, run_mixture, run_names)
        run_pos = {r: i for i, r in enumerate(run_names)}
        valid_pos = {v: i for i, v in enumerate(valid)}
        n = data["params"].to_numpy(dtype=float)
        s = data[length].to_numpy(dtype=float)
        observed = at_or_below(data, observed_below or {})  # the losses the likelihood reads; their reference scale
        n0, s0 = float(np.exp(np.log(n[observed]).mean())), float(np.exp(np.log(s[observed]).mean()))
        loss = data["loss"].to_numpy(dtype=float)
        valid_idx = data["valid_domain"].map(valid_pos).to_numpy()
        mix_idx = run_mixture[data["run"].map(run_pos).to_numpy()]
        sizes, size_idx = np.unique(n, return_inverse=True)
        length_values, length_idx = np.unique(s, return_inverse=True)
        grid_shape = (len(distinct_values), len(sizes), len(length_values), len(valid))
        curve_shape = (len(distinct_values), len(sizes), len(valid))  # one curve per run and domain
        curve = np.ravel_multi_index((mix_idx, size_idx, valid_idx), curve_shape)
        log_length = np.log(s / s0)
        n_curves = int(np.prod(curve_shape))
        if areas is None:
            run_rows = data.drop_duplicates("run")
            cell = dict(zip(run_rows["run"], zip(mix_idx[run_rows.index], size_idx[run_rows.index])))
            areas = grid_areas(runs, length, schedule, cell, curve_shape[:2], length_values, (mix_idx, size_idx, length_idx))
        scale = data.groupby("valid_domain")["loss"].median().loc[valid].to_numpy()
        if observed_below:  # the kept losses on the whole grid
            runs = dataclasses.replace(runs, data=data[observed].reset_index(drop=True))
            valid_idx, mix_idx, curve, log_length = valid_idx[observed], mix_idx[observed], curve[observed], log_length[observed]
            n, s, loss, length_idx, size_idx = n[observed], s[observed], loss[observed], length_idx[observed], size_idx[observed]
        return {
            "areas": areas,
            "table": runs,
            "targets": targets,
            "valid": valid,
            "train": runs.train_domains,
            "length": length,
            "mixture_labels": labels,
            "mixtures": distinct_values,
            "mix_idx": mix_idx,
            "sizes": sizes,
            "length_values": length_values,
            "obs_cell": np.ravel_multi_index((mix_idx, size_idx, length_idx, valid_idx), grid_shape),
            "curve": curve,
            "log_length": log_length,
            "curve_shape": curve_shape,
            "curve_m": np.bincount(curve, minlength=n_curves).astype(float),
            "curve_sy": np.bincount(curve, weights=log_length, minlength=n_curves),
            "curve_syy": np.bincount(curve, weights=log_length**2, minlength=n_curves),
            "curve_sy3": np.bincount(curve, weights=log_length**3, minlength=n_curves),
            "curve_sy4": np.bincount(curve, weights=log_length**4, minlength=n_curves),
            "curve_valid": np.unravel_index(np.arange(n_curves), curve_shape)[2],
            "transient": early,
            "valid_idx": valid_idx,
            "params": n,
            "lengths": s,
            "n0": n0,
            "s0": s0,
            "loss": loss,
            "scale": scale,
        }

    def _drop_transient(self, data: pd.DataFrame, length: str, source: str) -> tuple[pd.DataFrame, dict]:
        """Leave out the checkpoints before ``transient_fraction`` of the longest pilot run, saying so.

        Returns the kept rows and what was left out (``{}`` when nothing was): the cut, how many losses
        and checkpoints."""
        cut = self.config.transient_fraction * float(data[length].max())
        early = data[length] < cut
        if not early.any():
            return data, {}
        left_out = {"cut": cut, "losses": int(early.sum()), "checkpoints": sorted(float(x) for x in data.loc[early, length].unique())}
        warnings.warn(
            f"{source}: left out {left_out['losses']} losses at {length}s below {cut:g} ({len(left_out['checkpoints'])} checkpoints, "
            f"{length} {left_out['checkpoints'][0]:g}-{left_out['checkpoints'][-1]:g}): a power law in {length}s describes training after "
            f"its early transient; NestedLawConfig(transient_fraction=0) keeps them",
            UserWarning,
            stacklevel=4,
        )
        return data[~early].reset_index(drop=True), left_out

    def _key_parts(self, lay: dict, **options) -> tuple:
        parts = (lay["valid"], lay["train"], len(lay["mixture_labels"]), len(lay["sizes"]), len(lay["length_values"]))
        return parts if lay["areas"] is None else (*parts, "schedule-aware step term")  # fits without schedules keep their keys

    def _stored_runs(self) -> tuple[RunsTable, dict]:
        """The fitted runs (after the transient was left out), from the file's observed data: a run per
        pilot mixture, named by its label."""
        attrs = self.idata.attrs
        data = self._observed_rows(
            {"params": "params", str(attrs["length_column"]): str(attrs["length_column"])}, run="obs_mixture", mixtures="mixture_proportions"
        )
        return RunsTable(data, source=str(attrs.get("source", "<fit>"))), {} if self.schedule_areas is None else {"areas": self.schedule_areas}

    @property
    def schedule_areas(self) -> GridAreas | None:
        """The pilots' schedule areas on the grid (:mod:`bayes_mixlaw.schedule_grid`), ``None`` for a
        fit that takes steps as they come; read once per posterior."""
        self._require_fit()
        cached = self.__dict__.get("_areas")
        if cached is not None and cached[0] is self.idata:
            return cached[1]
        areas = None
        if "schedules" in self.idata.attrs:
            record, constant = json.loads(self.idata.attrs["schedules"]), self.idata["constant_data"]
            schedules = {run: Schedule.from_dict(r["schedule"]) for run, r in record["runs"].items()}
            origin = {run: r["origin"] for run, r in record["runs"].items()}
            areas = GridAreas(constant["schedule_s1"].values, constant["schedule_s2"].values, record["s0"], record["lr_ref"], schedules, origin)
        self._areas = (self.idata, areas)
        return areas

    _DATA_DIMS: ClassVar[dict[str, str | tuple[str, ...]]] = {
        "mixture_proportions": ("mixture", "train_domain"),
        "mixture_center": "train_domain",
        "valid_idx": "obs",
        "obs_cell": "obs",
        "sizes_rel": "size",
        "lengths_rel": "length",
        "log_loss": "obs",
        "log_loss_scale": "valid_domain",
        "obs_curve": "obs",
        "log_length": "obs",
        "curve_m": "curve",
        "curve_sy": "curve",
        "curve_syy": "curve",
        "curve_sy3": "curve",
        "curve_sy4": "curve",
        "curve_valid": "curve",
        "schedule_s1": ("mixture", "size", "length"),
        "schedule_s2": ("mixture", "size", "length"),
    }

    # ------------------------------------------------------------------------------------------
    # hooks of BayesianLaw.fit

    def _data(self, lay: dict) -> dict:
        return {
            "mixture_proportions": lay["mixtures"],
            "mixture_center": lay["mixtures"].mean(axis=0),
            "valid_idx": lay["valid_idx"],
            "obs_cell": lay["obs_cell"],
            "sizes_rel": lay["sizes"] / lay["n0"],
            "lengths_rel": lay["length_values"] / lay["s0"],
            "log_loss": np.log(lay["loss"]),
            "log_loss_scale": np.log(lay["scale"]),
            "obs_curve": lay["curve"],
            **{k: lay[k] for k in ("log_length", "curve_valid", *self._curve_moment_names())},
            **({} if lay["areas"] is None else {"schedule_s1": lay["areas"].s1, "schedule_s2": lay["areas"].s2}),
        }

    def _data_groups(self, lay: dict) -> dict[str, xr.Dataset]:
        self.targets = lay["targets"]
        observed = xr.Dataset(
            {
                "loss": ("obs", lay["loss"]),
                "params": ("obs", lay["params"]),
                lay["length"]: ("obs", lay["lengths"]),
                "obs_mixture": ("obs", np.asarray(lay["mixture_labels"], dtype=object)[lay["mix_idx"]].astype(str)),
                "obs_valid_domain": ("obs", np.asarray(lay["valid"], dtype=object)[lay["valid_idx"]].astype(str)),
                "obs_curve": ("obs", lay["curve"]),  # index into the (mixture, size, valid_domain) curves
                "obs_log_length": ("obs", lay["log_length"]),
            }
        )
        constant = xr.Dataset(
            {
                "mixture_proportions": (("mixture", "train_domain"), lay["mixtures"]),
                "mixture_center": ("train_domain", lay["mixtures"].mean(axis=0)),
                "loss_scale": ("valid_domain", lay["scale"]),
                **{k: (("mixture", "size", "valid_domain"), lay[k].reshape(lay["curve_shape"])) for k in self._curve_moment_names()},
                **({} if lay["areas"] is None else {f"schedule_{k}": (("mixture", "size", "length"), getattr(lay["areas"], k)) for k in ("s1", "s2")}),
            },
            coords={"mixture": lay["mixture_labels"], "train_domain": lay["train"], "valid_domain": lay["valid"], "size": lay["sizes"]}
            | ({} if lay["areas"] is None else {"length": lay["length_values"]}),
        )
        return {"observed_data": observed, "constant_data": constant}

    def _attrs(self, lay: dict) -> dict:
        return {
            "targets": self.targets.to_json(),
            "nested_format": NESTED_FORMAT,
            "length_column": lay["length"],
            "reference_scale": json.dumps({"params": lay["n0"], lay["length"]: lay["s0"]}),
            "pilot_scales": json.dumps({"params": sorted(set(lay["params"].tolist())), lay["length"]: sorted(set(lay["lengths"].tolist()))}),
            "transient": json.dumps(lay["transient"]),
            **({} if lay["areas"] is None else {"schedules": json.dumps(self._schedule_record(lay["areas"]))}),
        }

    @staticmethod
    def _schedule_record(areas: GridAreas) -> dict:
        """What the file keeps of the schedules besides the grid of areas: each run's schedule and
        where it came from, the reference LR and S0."""
        runs = {run: {"schedule": sched.to_dict(), "origin": areas.origin[run]} for run, sched in areas.schedules.items()}
        return {"lr_ref": areas.lr_ref, "s0": areas.s0, "runs": runs}

    def _restore(self, tree: xr.DataTree) -> None:
        super()._restore(tree)
        from bayes_mixlaw import __version__

        written = int(tree.attrs.get("nested_format", 1))
        if written != NESTED_FORMAT:
            raise ValueError(
                f"this nested fit was written by bayes_mixlaw {tree.attrs.get('bayes_mixlaw_version', '?')} in nested-law format {written}; "
                f"bayes_mixlaw {__version__} reads format {NESTED_FORMAT} (Normal likelihood with the run effects integrated out, "
                "model discrepancy): refit the runs table with this version"
            )
