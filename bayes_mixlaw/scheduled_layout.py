"""How the schedule-aware scaling law (:class:`~bayes_mixlaw.scheduled.ScheduledScalingLaw`) reads a runs table and what
its fit file keeps: the layout its model is built from (runs, sizes, each checkpoint's schedule areas), the data a
refit swaps in, the fit file's groups and attributes, and the runs read back from them."""

from __future__ import annotations

import json

import numpy as np
import xarray as xr

from bayes_mixlaw.runs import RunsTable
from bayes_mixlaw.scheduled_runs import run_schedules
from bayes_mixlaw.schedules import Schedule, StepFeatures

# version of the fit-file layout of a schedule-aware fit: 2 = the size term of several sizes sampled
# through size_term (log_level, log_size_slope, alpha_excess) instead of (log_e, log_a, alpha)
SCHEDULED_FORMAT = 2


class ScheduledLayout:
    """The schedule-aware law's hooks of :meth:`~bayes_mixlaw.model.BayesianLaw.build` and
    :meth:`~bayes_mixlaw.model.BayesianLaw.fit` that read and write data (a base of
    :class:`~bayes_mixlaw.scheduled.ScheduledScalingLaw`)."""

    def _layout(self, runs: RunsTable, schedule=None) -> dict:
        """``schedule``: as in :meth:`fit` (which passes it here through ``build_options``)."""
        data = runs.data
        if "step" not in data:
            raise ValueError(f"{runs.source}: a schedule-aware law needs a 'step' column")
        if runs.mix_columns and len(runs.mixtures().drop_duplicates()) > 1:
            raise ValueError(
                f"{runs.source}: the runs have {len(runs.mixtures().drop_duplicates())} different mixtures; "
                "ScheduledScalingLaw fits one data mixture (select one, or use the nested model)"
            )
        cfg = self.config
        schedules, origin = run_schedules(runs, schedule, allow_unknown=cfg.unknown_schedule is not None)
        known = [s for s in schedules.values() if s is not None]
        lr_ref = max(s.peak for s in known) if known else 1.0
        unknown = [r for r, s in schedules.items() if s is None]
        last = int(data.loc[data["run"].isin(unknown), "step"].max()) if unknown else 0
        if unknown and cfg.step_term != "annealing":
            raise ValueError(
                f"{runs.source}: runs {unknown[:3]} have no schedule (no 'lr' column, none given); an unknown schedule is "
                "weighed with the annealing step term only (step_term: annealing), or give the schedule"
            )
        # the runs of unknown schedule get features of a reference length (2 L, the prior median), replaced in the model
        reference = cfg.unknown_schedule.schedule(2 * last, last) if unknown else None
        parts, order = [], []
        for run, rows in data.groupby("run", sort=False):
            sched = schedules[run] if schedules[run] is not None else reference
            parts.append(
                sched.features(rows["step"].to_numpy(), lr_ref=lr_ref if schedules[run] is not None else 1.0, knots=cfg.knots, lam=cfg.annealing_lambda)
            )
            order.append(rows.index.to_numpy())
        feats = StepFeatures.concat([f if f.lr_ref == lr_ref else StepFeatures(f.steps, f.s1, f.s2, f.drop, f.eta, f.s_k, lr_ref, f.lam) for f in parts])
        feats = feats.take(np.argsort(np.concatenate(order), kind="stable"))
        if np.any(feats.s1 <= 0):
            bad = data.iloc[int(np.flatnonzero(feats.s1 <= 0)[0])]
            raise ValueError(
                f"{runs.source}: run '{bad['run']}' has a loss at step {bad['step']}, where its learning rate has not moved the model yet (S1 = 0)"
            )
        decays = feats.s2 > 0 if cfg.step_term == "annealing" else feats.drop.sum(-1) > 0
        annealing_runs = [r for r in runs.runs if decays[(data["run"] == r).to_numpy()].any()]
        n = data["params"].to_numpy(dtype=float) if "params" in data else np.ones(len(data))
        valid = runs.valid_domains
        run_names = runs.runs
        return {
            "runs": run_names,
            "run_idx": data["run"].map({r: i for i, r in enumerate(run_names)}).to_numpy(),
            "annealing_runs": annealing_runs,
            "anneal_row": data["run"].map({r: i + 1 for i, r in enumerate(annealing_runs)}).fillna(0).to_numpy(dtype=int),
            "table": runs,
            "valid": valid,
            "schedules": schedules,
            "origin": origin,
            "lr_ref": float(lr_ref),
            "features": feats,
            "unknown_runs": unknown,
            "unknown_row": data["run"].isin(unknown).to_numpy(),
            "unknown_last": last,
            "n": n,
            "n0": float(np.exp(np.log(n).mean())),
            "s0": float(np.exp(np.log(feats.s1).mean())),
            "multi_size": bool(len(np.unique(n)) > 1),
            "valid_idx": data["valid_domain"].map({v: i for i, v in enumerate(valid)}).to_numpy(),
            "loss": data["loss"].to_numpy(dtype=float),
            "scale": data.groupby("valid_domain")["loss"].median().loc[valid].to_numpy(),
        }

    def _key_parts(self, lay: dict, **options) -> tuple:
        effects = self.config.run_effects and len(lay["runs"]) > 1
        uncertain = bool(lay["unknown_runs"])
        return (
            lay["valid"],
            lay["multi_size"],
            lay["features"].knots,
            len(lay["runs"]),
            len(lay["annealing_runs"]),
            effects,
            lay["unknown_last"] if uncertain else None,
        )

    def _stored_runs(self) -> tuple[RunsTable, dict]:
        """The fitted runs and their schedules (those of unknown schedule left out: sampled), from the file."""
        attrs = self.idata.attrs
        data = self._observed_rows({"params": "params", "step": "step"}, run="run")
        schedules = {run: Schedule.from_dict(s["schedule"]) for run, s in json.loads(attrs["schedules"]).items() if s["schedule"] is not None}
        return RunsTable(data, source=str(attrs.get("source", "<fit>"))), {"schedule": schedules}

    # hooks of BayesianLaw.fit ---------------------------------------------------------------

    def _data(self, lay: dict) -> dict:
        f = lay["features"]
        curve = lay["run_idx"] * len(lay["valid"]) + lay["valid_idx"]
        out = {
            "log_n_rel": np.log(lay["n"] / lay["n0"]),
            "s1_rel": f.s1 / lay["s0"],
            "valid_idx": lay["valid_idx"],
            "run_idx": lay["run_idx"],
            "anneal_row": lay["anneal_row"],
            "obs_curve": curve,
            "curve_m": np.bincount(curve, minlength=len(lay["runs"]) * len(lay["valid"])).astype(float),
            "log_loss": np.log(lay["loss"]),
            "log_loss_scale": np.log(lay["scale"]),
            "log_n0": np.log(lay["n0"]),
            "log_s0": np.log(lay["s0"]),
            # the smallest and largest pilot sizes (size_term), relative to n0
            "log_n_lo": np.log(lay["n"].min() / lay["n0"]),
            "log_n_hi": np.log(lay["n"].max() / lay["n0"]),
        }
        if lay["unknown_runs"]:
            out["step"] = lay["table"].data["step"].to_numpy(dtype=float)
            out["unknown_row"] = lay["unknown_row"]
        if self.config.step_term == "annealing":
            out["s2_rel"] = f.s2 / lay["s0"]
        else:
            out.update(drop=f.drop, eta=f.eta, s_k=f.s_k)
        return out

    def _data_groups(self, lay: dict) -> dict[str, xr.Dataset]:
        table = lay["table"].data
        observed = xr.Dataset(
            {
                "loss": ("obs", lay["loss"]),
                "params": ("obs", lay["n"]),
                "step": ("obs", table["step"].to_numpy()),
                "run": ("obs", table["run"].to_numpy(dtype=str)),
                "obs_valid_domain": ("obs", np.asarray(lay["valid"], dtype=object)[lay["valid_idx"]].astype(str)),
            }
        )
        constant = xr.Dataset({"loss_scale": ("valid_domain", lay["scale"])}, coords={"valid_domain": lay["valid"]})
        return {"observed_data": observed, "constant_data": constant}

    def _attrs(self, lay: dict) -> dict:
        return {
            "lr_ref": lay["lr_ref"],
            "n0": lay["n0"],
            "s0": lay["s0"],
            "multi_size": int(lay["multi_size"]),
            "schedules": json.dumps(
                {run: {"origin": lay["origin"][run], "schedule": None if s is None else s.to_dict()} for run, s in lay["schedules"].items()}
            ),
            "unknown_last": int(lay["unknown_last"]),
            "scheduled_format": SCHEDULED_FORMAT,
            "pilot_params": json.dumps(sorted(float(v) for v in np.unique(lay["n"]))),
        }

    def _restore(self, tree: xr.DataTree) -> None:
        super()._restore(tree)
        from bayes_mixlaw import __version__

        written = int(tree.attrs.get("scheduled_format", 1))
        if written != SCHEDULED_FORMAT and int(tree.attrs.get("multi_size", 0)):
            raise ValueError(
                f"this schedule-aware fit of several sizes was written by bayes_mixlaw {tree.attrs.get('bayes_mixlaw_version', '?')} in format "
                f"{written}; bayes_mixlaw {__version__} reads format {SCHEDULED_FORMAT} (the size term sampled through what the pilots pin, "
                "size_term): refit the runs table with this version"
            )
