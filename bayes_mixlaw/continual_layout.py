"""How the continual pre-training law (:mod:`bayes_mixlaw.continual`) reads a runs table (the continued runs, their
checkpoints, the starting loss and the original data's share) and what its fit file keeps."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd
import xarray as xr

from bayes_mixlaw.runs import Reference, RunsTable


class ContinualLayout:
    """The continual law's layout (``lay``: the runs table as the model reads it), the data its model takes and the
    fit file's data groups and attributes; a base of :class:`~bayes_mixlaw.continual.ContinualLaw`."""

    def _layout(self, runs: RunsTable, reference=None, original_domain: str | None = None) -> dict:
        given = getattr(self, "_given", (None, None))  # those given to the running fit
        reference, original_domain = reference if reference is not None else given[0], original_domain or given[1]
        data = runs.data
        if not runs.mix_columns:
            raise ValueError(f"{runs.source}: the table has no 'mix:<domain>' columns; a continual pre-training law needs each run's mixture")
        if "step" not in data:
            raise ValueError(f"{runs.source}: the continual pre-training law needs a 'step' column (the checkpoints of the continued runs)")
        if "params" in data and data["params"].nunique() > 1:
            raise ValueError(
                f"{runs.source}: the runs have {data['params'].nunique()} model sizes; the continual pre-training law "
                "fits one model (select one with --params / .select(params=...))"
            )
        reference = reference if reference is not None else runs.reference
        if reference is None:
            raise ValueError(
                f"{runs.source}: no starting loss: continual pre-training needs the losses of the checkpoint the runs continue "
                "(the ct format reads them from its base checkpoint's lines; in Python pass reference={domain: loss})"
            )
        valid = runs.valid_domains
        reference = Reference.from_any(reference).check(valid, runs.source)
        original = original_domain or reference.original_domain
        if len(runs.train_domains) != 2:
            raise ValueError(
                f"{runs.source}: the runs mix {len(runs.train_domains)} training domains ({runs.train_domains}); continual "
                "pre-training mixes two, the original data and the new data"
            )
        if original is None:
            raise ValueError(
                f"{runs.source}: which training domain is the original data (the one the starting checkpoint was trained "
                f"on)? pass original_domain= one of {runs.train_domains}"
            )
        if original not in runs.train_domains:
            raise ValueError(f"original domain '{original}' is not a training domain of {runs.source}; they are {runs.train_domains}")
        targets = self.targets.check(valid, "targets")
        run_names = runs.runs
        mixtures = runs.mixtures().loc[run_names].to_numpy(dtype=float)
        if len(np.unique(mixtures.round(9), axis=0)) < 3:
            raise ValueError(f"{runs.source}: {len(np.unique(mixtures.round(9), axis=0))} distinct mixture(s); a mixing law needs at least 3")
        share = mixtures[:, runs.train_domains.index(original)]
        steps = runs.scale_values("step")
        loss = data["loss"].to_numpy(dtype=float)
        return {
            "table": runs,
            "targets": targets,
            "reference": reference,
            "original": original,
            "valid": valid,
            "train": runs.train_domains,
            "runs": run_names,
            "steps": steps,
            "mixtures": mixtures,
            "share": share,
            "run_idx": data["run"].map({r: i for i, r in enumerate(run_names)}).to_numpy(),
            "step_idx": data["step"].map({s: i for i, s in enumerate(steps)}).to_numpy(),
            "valid_idx": data["valid_domain"].map({v: i for i, v in enumerate(valid)}).to_numpy(),
            "loss": loss,
            "scale": data.groupby("valid_domain")["loss"].median().loc[valid].to_numpy(),
            "params": int(data["params"].iloc[0]) if "params" in data else None,
        }

    def _key_parts(self, lay: dict, **options) -> tuple:
        return (lay["valid"], lay["train"], len(lay["steps"]), len(lay["runs"]))

    def _stored_runs(self) -> tuple[RunsTable, dict]:
        """The fitted runs, their reference losses and original domain, from the file's data."""
        constant, attrs = self.idata["constant_data"], self.idata.attrs
        data = self._observed_rows({"step": "obs_step"}, mixtures="run_mixture")
        if int(attrs.get("params", -1)) != -1:
            data.insert(4, "params", int(attrs["params"]))
        valid = [str(v) for v in constant["valid_domain"].values]
        reference = Reference(pd.Series(constant["reference_loss"].values, index=valid), str(attrs["reference_checkpoint"]), str(attrs["original_domain"]))
        return RunsTable(data, source=str(attrs.get("source", "<fit>")), reference=reference), {}

    _DATA_DIMS: ClassVar[dict] = {
        "run_share": "run",
        "share_center": (),
        "run_idx": "obs",
        "step_idx": "obs",
        "valid_idx": "obs",
        "log_loss_scale": "valid_domain",
        "loss_scaled": "obs",
    }

    # ------------------------------------------------------------------------------------------
    # hooks of BayesianLaw.fit

    def _data(self, lay: dict) -> dict:
        return {
            "run_share": lay["share"],
            "share_center": np.asarray(lay["share"].mean()),
            "run_idx": lay["run_idx"],
            "step_idx": lay["step_idx"],
            "valid_idx": lay["valid_idx"],
            "log_loss_scale": np.log(lay["scale"]),
            "loss_scaled": lay["loss"] / lay["scale"][lay["valid_idx"]],
        }

    def _data_groups(self, lay: dict) -> dict[str, xr.Dataset]:
        self.targets = lay["targets"]
        observed = xr.Dataset(
            {
                "loss": ("obs", lay["loss"]),
                "obs_run": ("obs", np.asarray(lay["runs"], dtype=object)[lay["run_idx"]].astype(str)),
                "obs_step": ("obs", np.asarray(lay["steps"], dtype=np.int64)[lay["step_idx"]]),
                "obs_valid_domain": ("obs", np.asarray(lay["valid"], dtype=object)[lay["valid_idx"]].astype(str)),
            }
        )
        constant = xr.Dataset(
            {
                "run_mixture": (("run", "train_domain"), lay["mixtures"]),
                "share_center": ((), float(lay["share"].mean())),
                "loss_scale": ("valid_domain", lay["scale"]),
                "reference_loss": ("valid_domain", lay["reference"].losses.to_numpy(dtype=float)),
            },
            coords={"run": lay["runs"], "train_domain": lay["train"], "valid_domain": lay["valid"], "step": np.asarray(lay["steps"], dtype=np.int64)},
        )
        return {"observed_data": observed, "constant_data": constant}

    def _attrs(self, lay: dict) -> dict:
        return {
            "targets": self.targets.to_json(),
            "reference_checkpoint": lay["reference"].checkpoint,
            "original_domain": lay["original"],
            "params": -1 if lay["params"] is None else lay["params"],
        }
