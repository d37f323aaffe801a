"""The stage-wise nested pipeline (:class:`StagewiseNestedFit`): the nested law with free per-mixture levels, then
the mixing law across the pilot mixtures at one target scale, the first stage's uncertainty carried on."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from bayes_mixlaw.config import MixingLawConfig, NestedLawConfig
from bayes_mixlaw.mixing import MixingLaw
from bayes_mixlaw.nested import NestedLaw
from bayes_mixlaw.runs import MIX_PREFIX, validate_runs
from bayes_mixlaw.summary import DEFAULT_CI
from bayes_mixlaw.targets import Targets


class StagewiseNestedFit:
    """The stage-wise pipeline, with the upstream posterior carried on (errors in variables).

    Stage one: the nested law with free per-mixture levels (``mixture_model="free"``) predicts each
    pilot mixture's loss per validation domain at the target scale (posterior mean of the law, run
    effects at zero). Stage two: the mixing law fitted across the pilot mixtures on those predictions,
    each with its posterior standard deviation as a known measurement error (``loss_sd``), so the
    mixing law sees how uncertain every extrapolated loss is, not just its point value.
    Unlike the joint :class:`NestedLaw`, the result holds for one target scale.
    """

    def __init__(self, targets: Targets | None = None, stage_one: NestedLawConfig | None = None, stage_two: MixingLawConfig | None = None):
        self.targets = targets or Targets()
        self.stage_one = NestedLaw((stage_one or NestedLawConfig()).model_copy(update={"mixture_model": "free"}), self.targets)
        self.stage_two_config = stage_two or MixingLawConfig()
        self.stage_two = None
        self.scale: dict | None = None

    def fit(self, runs, *, params, step=None, tokens=None, seed: int | None = None, stage_one_fit=None, **sampler):
        """Fit both stages for the target scale; ``stage_one_fit`` reuses a fitted stage one."""
        if stage_one_fit is not None:
            self.stage_one = stage_one_fit
        else:
            self.stage_one.fit(runs, seed=seed, **sampler)
        n, length = self.stage_one._read_scale(params, step, tokens)
        self.scale = {"params": n, self.stage_one.length_column: length}
        pilots = self.stage_one.pilot_mixtures
        labels = [str(m) for m in self.stage_one.idata["constant_data"]["mixture"].values]
        draws = self.stage_one.law_draws(pilots, n, length, rng=np.random.default_rng(0), new_runs=False)
        flat = draws.reshape(-1, *draws.shape[2:])  # (sample, mixture, valid)
        rows = []
        for k, label in enumerate(labels):
            for v, domain in enumerate(self.stage_one.valid_domains):
                rows.append(
                    {
                        "run": label,
                        "valid_domain": domain,
                        "loss": float(flat[:, k, v].mean()),
                        "loss_sd": float(flat[:, k, v].std()),
                        **{MIX_PREFIX + d: float(x) for d, x in zip(self.stage_one.train_domains, pilots[k])},
                    }
                )
        table = validate_runs(pd.DataFrame(rows), f"stage one at params={n:g}, {self.stage_one.length_column}={length:g}")
        self.stage_two = MixingLaw(self.stage_two_config, self.targets).fit(table, seed=seed, **sampler)
        return self

    def predict_draws(self, mixtures, *, kind: str = "predictive", seed: int = 0) -> xr.DataArray:
        return self.stage_two.predict_draws(mixtures, kind=kind, seed=seed)

    def predict(self, mixtures, *, ci: float = DEFAULT_CI, kind: str = "predictive", seed: int = 0) -> pd.DataFrame:
        table = self.stage_two.predict(mixtures, ci=ci, kind=kind, seed=seed)
        for k, v in self.scale.items():
            table.insert(len(table.columns) - 5, k, v)
        return table
