r"""The critical proportion of continual pre-training, with its posterior.

A model trained on the original data continues on a mixture of it (share p) and new data (share
1 - p). The critical share of a target (a validation domain, a group or ``total``) at checkpoint S is
the smallest share of the original data that keeps the target's loss at or below its starting value
plus a tolerance (Ye et al., 2025, the third application of data mixing laws):

.. math:: p^*(\theta) = \min\{\, p \in [0, 1] : L_{\text{target}}(p, S; \theta) \le L_{\text{target}}(\text{start}) + \delta \,\}

computed for every posterior draw theta of a :class:`~bayes_mixlaw.continual.ContinualLaw` on the
law's expected loss (not a run's noisy loss), so its posterior carries the law's uncertainty. A draw
for which even p = 1 does not keep the loss has ``p* = inf`` (the probability of that is reported as
``p_never``); ``p* = 0`` where the new data alone keep it. Then

- ``P(p keeps it) = P(p* <= p)`` for any share p (the law is monotone in p for every draw);
- the new domain's loss at the critical share, ``L_new(p*(theta), S; theta)``, per draw: what keeping
  the original loss costs on the new data.

``p*`` is found per draw on a grid of 101 shares (the first grid share that keeps the loss) and then by
bisection between it and the grid share before it, to 1e-6.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bayes_mixlaw.summary import DEFAULT_CI, eti_values, interval_bounds

GRID = 101
_NEVER = 1e9  # stands in for inf inside quantiles


def load_continual(law):
    """A fitted :class:`~bayes_mixlaw.continual.ContinualLaw`, or the one in the fit file ``law``; an
    error naming the file's kind for any other fit."""
    from bayes_mixlaw.model import BayesianLaw

    if isinstance(law, (str, Path)):
        path = law
        law = BayesianLaw.load(path)
    else:
        path = "this fit"
    if not law.supports_critical_share:
        raise ValueError(
            f"{path} is a {law.kind.replace('_', ' ')} fit; the critical share needs a continual pre-training fit "
            "(bayes-mixlaw fit on runs with a starting checkpoint, e.g. the ct format)"
        )
    return law


def _target_row(law, target: str) -> np.ndarray:
    names, matrix = law.targets.matrix(law.valid_domains)
    if target not in names:
        raise ValueError(f"unknown target {target!r} for --keep; the fit's targets are {', '.join(names)}")
    return matrix[names.index(target)]


def new_domain_target(law, new_target: str | None = None) -> str:
    """The validation domain that measures the new data: ``new_target`` if given (checked), else the one
    validation domain whose name contains the new training domain's name (``starcoder.python`` for
    ``Python``); an error naming the candidates if that is not exactly one."""
    names, _ = law.targets.matrix(law.valid_domains)
    if new_target is not None:
        if new_target not in names:
            raise ValueError(f"unknown new-domain target {new_target!r}; the fit's targets are {', '.join(names)}")
        return new_target
    new = law.new_domain.lower()
    found = [d for d in law.valid_domains if new in d.lower()]
    if len(found) != 1:
        raise ValueError(
            f"cannot tell which validation domain measures the new data '{law.new_domain}' "
            f"({'none' if not found else 'several: ' + ', '.join(found)} has its name); name it with --new-target "
            f"(Python: new_target=), one of {', '.join(names)}"
        )
    return found[0]


def _target_at(law, weights: np.ndarray, share: np.ndarray, step_idx: int) -> np.ndarray:
    """The law's expected target loss at per-draw shares: ``share`` (chain, draw, n) -> (chain, draw, n)."""
    return law.share_draws(share, step_idx) @ weights


def critical_share_draws(law, target: str = "total", *, tolerance: float = 0.0, step=None) -> np.ndarray:
    """Posterior draws (chain, draw) of the critical share ``p*`` of ``target`` (module docstring);
    ``inf`` where no share keeps the loss."""
    law = load_continual(law)
    if not np.isfinite(tolerance):
        raise ValueError(f"--tolerance must be a finite number, got {tolerance}")
    weights = _target_row(law, target)
    step_idx = law.step_index(step)
    threshold = float(weights @ law.idata["constant_data"]["reference_loss"].values) + tolerance
    grid = np.linspace(0.0, 1.0, GRID)
    post = law.idata["posterior"]
    shape = (post.sizes["chain"], post.sizes["draw"])
    losses = _target_at(law, weights, np.broadcast_to(grid, shape + (GRID,)), step_idx)
    keeps = losses <= threshold
    first = np.argmax(keeps, axis=-1)
    lo = grid[np.maximum(first - 1, 0)]
    hi = grid[first]
    for _ in range(20):  # 0.01 / 2^20 < 1e-8
        mid = 0.5 * (lo + hi)
        below = _target_at(law, weights, mid[..., None], step_idx)[..., 0] <= threshold
        hi, lo = np.where(below, mid, hi), np.where(below, lo, mid)
    out = np.where(first == 0, 0.0, hi)
    return np.where(keeps.any(axis=-1), out, np.inf)


def _summary(values: np.ndarray, ci: float, prefix: str = "") -> dict:
    """Mean, median and equal-tailed interval of draws. Where some draws are ``inf`` (shares: no share
    keeps the loss) they count as above every share, and a quantile that reaches them (above 1) is ``inf``,
    as is the mean."""
    finite = np.isfinite(values)
    pooled = np.where(finite, values, _NEVER).ravel()
    q = [np.quantile(pooled, 0.5), *eti_values(pooled, ci)]
    median, lower, upper = (float(v) if finite.all() or v <= 1.0 else np.inf for v in q)
    return {f"{prefix}mean": float(np.mean(values)) if finite.all() else np.inf, f"{prefix}median": median, f"{prefix}lower": lower, f"{prefix}upper": upper}


def critical_share(law, keep="total", *, tolerance: float = 0.0, step=None, ci: float = DEFAULT_CI, shares=None, new_target: str | None = None) -> pd.DataFrame:
    """The critical share of the original data for each target in ``keep``: one row per target.

    ``law``: a fitted :class:`~bayes_mixlaw.continual.ContinualLaw` or the path of its fit file;
    ``keep``: a target name or a list of them (validation domains, groups, ``total``); ``tolerance``:
    how far above its starting loss the target may end (loss units); ``step``: the checkpoint (default
    the last); ``ci``: probability of the equal-tailed intervals; ``shares``: the shares whose
    probability of keeping the loss is reported (default: the pilots'); ``new_target``: the validation
    domain of the new data (default: found by name, :func:`new_domain_target`).

    Columns: ``target``, ``step``, ``domain`` (the original data's training domain), ``mean``,
    ``median``, ``lower``, ``upper``, ``width`` of the critical share; ``p_never`` (probability that no
    share keeps the loss); ``start_loss`` (the target's starting loss) and ``threshold`` (plus the
    tolerance); ``p_keep@<share>`` for each share; ``new_target``, its ``new_start_loss`` and
    ``new_mean``, ``new_median``, ``new_lower``, ``new_upper``: the new domain's expected loss at the
    critical share (over the draws where one exists); last, the fit's diagnostics as every table
    computed from a fit carries them (``fit_converged``, ``fit_max_rhat``, ``fit_min_ess_bulk``,
    ``fit_divergences``: :meth:`~bayes_mixlaw.inference.Diagnostics.columns`).
    """
    law = load_continual(law)
    targets = [keep] if isinstance(keep, str) else list(keep)
    if not targets:
        raise ValueError("give at least one target to keep (--keep)")
    step_idx = law.step_index(step)
    step_value = law.steps[step_idx]
    interval_bounds(ci)  # checks ci
    pilots = sorted(set(np.round(law.pilot_mixtures[:, law.train_domains.index(law.original_domain)], 6).tolist()))
    shares = pilots if shares is None else [float(s) for s in np.atleast_1d(shares)]
    bad = [s for s in shares if not (0.0 <= s <= 1.0)]
    if bad:
        raise ValueError(f"--share {bad[0]}: a share of the original data is between 0 and 1")
    new = new_domain_target(law, new_target)
    new_weights = _target_row(law, new)
    reference = law.reference_losses()
    rows = []
    for target in targets:
        draws = critical_share_draws(law, target, tolerance=tolerance, step=step_value)
        found = np.isfinite(draws)
        row = {"target": target, "step": step_value, "domain": law.original_domain, **_summary(draws, ci)}
        row["width"] = row["upper"] - row["lower"]
        row["p_never"] = float(1.0 - found.mean())
        row["start_loss"] = float(reference[target])
        row["threshold"] = float(reference[target] + tolerance)
        for s in shares:
            row[f"p_keep@{s:g}"] = float(np.mean(draws <= s))
        row["new_target"] = new
        row["new_start_loss"] = float(reference[new])
        at = np.where(found, draws, 1.0)
        new_loss = _target_at(law, new_weights, at[..., None], step_idx)[..., 0]
        row.update(_summary(new_loss[found], ci, "new_") if found.any() else {f"new_{k}": np.nan for k in ("mean", "median", "lower", "upper")})
        rows.append(row)
    return pd.DataFrame(rows).assign(**law.diagnostics.columns())
