"""What the laws over data mixtures share (:class:`MixtureLaw`, the base of the mixing, nested and continual laws), the
parts of a report about them (:data:`MIXTURE_REPORT`) and the check of the pilots' mixtures
(:func:`check_pilot_mixtures`)."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd
import xarray as xr

from bayes_mixlaw.config import LawConfig
from bayes_mixlaw.model import BayesianLaw
from bayes_mixlaw.runs import MIX_PREFIX, RunsTable, load_runs
from bayes_mixlaw.seeds import row_generators, shared_generator
from bayes_mixlaw.targets import Targets

MIXTURE_REPORT = frozenset({"interactions", "proportions", "domains", "ternary", "optimum", "comparison"})
"""The parts of a report that are about a law over the mixture simplex: the interaction matrix, the share
bands, the per-domain panels, the ternary slice, the optimal mixture (with its predictions table) and the
comparison of variants by PSIS-LOO. Every report also has the posterior predictive check (fitted against
observed), the parameters and the diagnostics. A law class says which parts apply to it with its
``report_sections`` (:class:`~bayes_mixlaw.mixture_law.MixtureLaw`: these, and ``"curves"``, the pilots' curves against steps and size,
where the law has scale axes); ``"critical"`` is the critical share of continual pre-training
(:class:`~bayes_mixlaw.continual.ContinualLaw`); ``"schedule_curves"`` (the runs' curves against steps),
``"schedules"`` (their learning rates and the ``schedules`` table) and ``"unknown_schedule"`` (the posterior of
an unknown schedule's length and the ``schedule_assumptions`` table) are a schedule-aware fit's
(:class:`~bayes_mixlaw.scheduled.ScheduledScalingLaw`, per fit)."""


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
    def form(self):
        """The form of the mixing law (a :class:`~bayes_mixlaw.mixing_forms.base.MixingForm`) the config names (``law``:
        the mixing law's, the nested law's at its reference scale)."""
        from bayes_mixlaw.mixing_forms import get_form

        return get_form(self.config.law)

    @property
    def report_sections(self) -> frozenset[str]:
        """:data:`~bayes_mixlaw.mixture_law.MIXTURE_REPORT`, and with scale axes the pilots' curves against them (``curves``)."""
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
