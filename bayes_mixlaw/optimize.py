"""The best mixture under the posterior, with per-domain caps and minimums.

For posterior draw s of a fitted law, ``f_s(r)`` is the expected target loss at mixture r (at the
target scale for a nested fit). The feasible set is the capped simplex

    R = { r : sum_j r_j = 1,  lo_j <= r_j <= hi_j }

(caps ``hi`` express how much of a domain exists; minimums ``lo`` what must be kept). We report

* the Bayes-optimal mixture ``r* = argmin_R E_s[f_s(r)]`` (the decision that minimises expected loss),
  its predicted loss with a credible interval, and ``P(f_s(r*) < f_s(r_ref))`` against a reference;
* the posterior over the best mixture: ``r*_s = argmin_R f_s(r)`` for every draw, summarised by the
  mean and interval of each proportion.

Every draw is optimised at once in torch: projected gradient descent (Adam steps, Euclidean projection
onto R by bisection on the shift) from several starts (the pilots' mean mixture, the reference, random
feasible points), keeping the best end point of each draw.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

from bayes_mixlaw.runs import MIX_PREFIX, read_mixtures
from bayes_mixlaw.summary import DEFAULT_CI, eti_values, interval_bounds


class ConstraintsError(ValueError):
    """Caps or minimums that name unknown domains, are out of [0, 1] or leave no feasible mixture."""


@dataclass(frozen=True)
class MixtureBounds:
    """Per-domain minimums and caps on the proportions (absent domains: 0 and 1)."""

    minimums: dict[str, float] = field(default_factory=dict)
    caps: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_file(cls, path) -> MixtureBounds:
        """Read ``{"caps": {domain: max}, "minimums": {domain: min}}`` (JSON or YAML); a flat
        ``{domain: max}`` mapping is read as caps."""
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as err:
            raise ConstraintsError(f"{path}: cannot read the caps file: {err}") from None
        if not isinstance(data, dict):
            raise ConstraintsError(f"{path}: expected a mapping of caps (and minimums), got {type(data).__name__}")
        if set(data) <= {"caps", "minimums"}:
            caps, minimums = data.get("caps") or {}, data.get("minimums") or {}
        else:
            caps, minimums = data, {}
        for name, mapping in (("caps", caps), ("minimums", minimums)):
            if not isinstance(mapping, dict):
                raise ConstraintsError(f"{path}: '{name}' must map training domains to proportions")
        return cls(dict(minimums), dict(caps))

    def arrays(self, train_domains: list[str], source: str = "caps") -> tuple[np.ndarray, np.ndarray]:
        """(lo, hi) vectors over ``train_domains``; errors name the domain and the problem."""
        lo, hi = np.zeros(len(train_domains)), np.ones(len(train_domains))
        for name, mapping, out in (("minimum", self.minimums, lo), ("cap", self.caps, hi)):
            for domain, value in mapping.items():
                if domain not in train_domains:
                    raise ConstraintsError(f"{source}: {name} for '{domain}', which is not a training domain of the fit ({train_domains})")
                if not isinstance(value, (int, float)) or not 0 <= value <= 1:
                    raise ConstraintsError(f"{source}: {name} of '{domain}' is {value!r}; it must be a proportion in [0, 1]")
                out[train_domains.index(domain)] = float(value)
        bad = np.flatnonzero(lo > hi)
        if len(bad):
            d = train_domains[bad[0]]
            raise ConstraintsError(f"{source}: the minimum of '{d}' ({lo[bad[0]]}) exceeds its cap ({hi[bad[0]]})")
        if lo.sum() > 1 + 1e-9:
            raise ConstraintsError(f"{source}: the minimums sum to {lo.sum():.3f} > 1; no mixture can meet them")
        if hi.sum() < 1 - 1e-9:
            raise ConstraintsError(f"{source}: the caps sum to {hi.sum():.3f} < 1; no mixture can meet them")
        return lo, hi


def project_capped_simplex(y: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """Euclidean projection of each row of ``y`` (..., M) onto {sum r = 1, lo <= r <= hi}:
    ``r = clip(y - tau, lo, hi)`` with the shift tau where ``g(tau) = sum clip(y - tau, lo, hi)`` is 1.
    ``g`` is piecewise linear and non-increasing with breakpoints ``y - lo`` and ``y - hi``: it is
    evaluated at all 2M of them at once and tau interpolated between the two that bracket 1 (exact, in
    a handful of tensor operations; a bisection took 60 rounds of them, which dominated optimize's time)."""
    lo, hi = torch.broadcast_to(lo, y.shape[-1:]), torch.broadcast_to(hi, y.shape[-1:])
    breaks = torch.cat([y - hi, y - lo], dim=-1).sort(dim=-1).values  # (..., 2M), ascending
    g = (y[..., None, :] - breaks[..., :, None]).clamp(min=lo, max=hi).sum(dim=-1)  # (..., 2M), non-increasing
    k = ((g >= 1).sum(dim=-1, keepdim=True) - 1).clamp(0, breaks.shape[-1] - 2)  # the last breakpoint with g >= 1
    b0, b1, g0, g1 = breaks.gather(-1, k), breaks.gather(-1, k + 1), g.gather(-1, k), g.gather(-1, k + 1)
    drop = g0 - g1
    share = torch.where(drop > 0, (g0 - 1) / torch.where(drop > 0, drop, torch.ones_like(drop)), torch.zeros_like(drop)).clamp(0, 1)
    return (y - (b0 + share * (b1 - b0))).clamp(min=lo, max=hi)


def random_feasible(n: int, lo: np.ndarray, hi: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``n`` random mixtures in the capped simplex (flat Dirichlet draws, projected)."""
    y = torch.as_tensor(rng.dirichlet(np.ones(len(lo)), size=n), dtype=torch.float64)
    return project_capped_simplex(y, torch.as_tensor(lo), torch.as_tensor(hi)).numpy()


MAX_GRID_POINTS = 200_000


def within_bounds(points: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """The rows of ``points`` whose proportions lie within the minimums ``lo`` and caps ``hi``."""
    return points[np.all((points >= lo - 1e-12) & (points <= hi + 1e-12), axis=1)]


def simplex_grid(m: int, step: float, lo: np.ndarray | None = None, hi: np.ndarray | None = None) -> np.ndarray:
    """Every mixture of ``m`` domains whose proportions are multiples of ``step`` (e.g. 0.125, 1/8),
    within the bounds: the allowed values when pilots are trained only on a grid."""
    import itertools
    from math import comb

    k = round(1 / step)
    if k < 1 or abs(k * step - 1) > 1e-9:
        raise ConstraintsError(f"grid step {step} must divide 1 (e.g. 0.25, 0.125, 0.1)")
    if comb(k + m - 1, m - 1) > MAX_GRID_POINTS:
        raise ConstraintsError(f"a {step} grid over {m} domains has {comb(k + m - 1, m - 1):,} points (more than {MAX_GRID_POINTS:,}); use a coarser step")
    points = np.array([[*c, k - sum(c)] for c in itertools.product(range(k + 1), repeat=m - 1) if sum(c) <= k], dtype=float) / k
    if lo is not None:
        points = within_bounds(points, lo, hi)
    if len(points) == 0:
        raise ConstraintsError(f"no point of the {step} grid meets the caps and minimums")
    return points


def minimize_batch(
    f, starts: torch.Tensor, lo: np.ndarray, hi: np.ndarray, *, steps: int = 300, lr: float = 0.02, progress: str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Minimise ``f`` over the capped simplex from every start at once.

    ``f`` maps (B, n, M) to (B, n); ``starts`` is (B, n, M). Returns the best end point and value of
    each batch element: (B, M), (B,). ``progress``: what the steps are, shown as they go
    (:class:`~bayes_mixlaw.inference.Progress`: a bar on a terminal, a log line every 15 s elsewhere).
    """
    from bayes_mixlaw.inference import Progress

    lo_t, hi_t = torch.as_tensor(lo, dtype=torch.float64), torch.as_tensor(hi, dtype=torch.float64)
    r = project_capped_simplex(starts.clone(), lo_t, hi_t).requires_grad_(True)
    optimizer = torch.optim.Adam([r], lr=lr)
    with Progress(f"{progress} (gradient steps)" if progress else "optimising", steps) as advance:
        for _ in range(steps):
            optimizer.zero_grad()
            f(r).sum().backward()
            optimizer.step()
            with torch.no_grad():
                r.copy_(project_capped_simplex(r, lo_t, hi_t))
            advance()
    with torch.no_grad():
        values = f(r)
        best = values.argmin(dim=1)
        index = torch.arange(len(best))
        return r[index, best].detach(), values[index, best]


def minimize_posterior_mean(f, n_draws: int, starts: torch.Tensor, lo: np.ndarray, hi: np.ndarray, *, steps: int = 300) -> tuple[torch.Tensor, torch.Tensor]:
    """The Bayes decision: minimise the posterior mean of ``f`` (per-draw losses, (S, n, M) -> (S, n))
    over the capped simplex from the ``starts`` (n, M). Returns the best mixture (M,) and its mean loss."""
    mean_f = lambda r: f(r.expand(n_draws, -1, -1)).mean(dim=0, keepdim=True)  # noqa: E731
    optimum, value = minimize_batch(
        mean_f, starts[None], lo, hi, steps=steps, progress=f"the Bayes-optimal mixture (lowest mean loss over {n_draws:,} draws, {len(starts)} starts)"
    )
    return optimum[0], value[0]


@dataclass
class OptimalMixture:
    """Result of :func:`optimal_mixture`."""

    train_domains: list[str]
    target: str
    optimum: np.ndarray  # Bayes-optimal mixture (M,)
    per_draw: np.ndarray  # argmin of every draw (S, M)
    loss_draws: np.ndarray  # predictive draws of the target loss at the optimum (S,)
    reference: np.ndarray | None
    reference_draws: np.ndarray | None
    p_beats_reference: float | None
    ci: float

    def table(self) -> pd.DataFrame:
        """Long table: ``quantity``, ``item``, ``optimum``, ``mean``, ``median``, ``lower``, ``upper``.

        quantity ``proportion`` (item: training domain; optimum: the Bayes-optimal proportion; mean and
        interval: the posterior over each draw's best mixture), ``loss`` and ``reference_loss`` (item:
        the target; predicted loss with interval), ``p_beats_reference``."""
        rows = []
        lowers, uppers = eti_values(self.per_draw, self.ci)
        for j, d in enumerate(self.train_domains):
            col = self.per_draw[:, j]
            rows.append(
                {
                    "quantity": "proportion",
                    "item": d,
                    "optimum": self.optimum[j],
                    "mean": col.mean(),
                    "median": np.median(col),
                    "lower": lowers[j],
                    "upper": uppers[j],
                    "reference": None if self.reference is None else self.reference[j],
                }
            )
        for name, draws in (("loss", self.loss_draws), ("reference_loss", self.reference_draws)):
            if draws is not None:
                lower, upper = eti_values(draws, self.ci)
                rows.append(
                    {
                        "quantity": name,
                        "item": self.target,
                        "optimum": draws.mean(),
                        "mean": draws.mean(),
                        "median": np.median(draws),
                        "lower": lower,
                        "upper": upper,
                    }
                )
        if self.p_beats_reference is not None:
            rows.append({"quantity": "p_beats_reference", "item": self.target, "optimum": self.p_beats_reference})
        return pd.DataFrame(rows)

    def mixture_frame(self) -> pd.DataFrame:
        """The Bayes-optimal mixture as a one-row mixtures table (feeds ``predict``)."""
        return pd.DataFrame([{"name": "optimum", **{MIX_PREFIX + d: v for d, v in zip(self.train_domains, self.optimum)}}])


# the most posterior draws optimize optimises at once: its time grows with them (about 2.5 minutes per
# 1,000 draws of a 5-domain mixing law on 2 cores)
MAX_DRAWS = 4000


def check_draws(draws: int, option: str = "draws") -> None:
    """Refuse a number of posterior draws to optimise below 1 or above :data:`MAX_DRAWS`, naming ``option``."""
    if draws < 1:
        raise ValueError(f"{option} must be at least 1, got {draws}")
    if draws > MAX_DRAWS:
        raise ValueError(
            f"{option} {draws} is above the limit of {MAX_DRAWS:,}: every draw's best mixture is optimised, and the time "
            f"grows with the draws (about 2.5 minutes per 1,000 on 2 cores); {MAX_DRAWS:,} draws pin the optimum's "
            "interval far below the posterior's own spread"
        )


def optimal_mixture(
    law,
    *,
    target: str = "total",
    bounds: MixtureBounds | None = None,
    reference=None,
    ci: float = DEFAULT_CI,
    draws: int = 1000,
    starts: int = 8,
    steps: int = 300,
    seed: int = 0,
    caps_source: str = "caps",
    **scale,
) -> OptimalMixture:
    """The posterior optimal mixture of a fitted :class:`MixingLaw` or :class:`NestedLaw`.

    ``scale``: ``params`` and ``step``/``tokens`` of the target run for a nested fit. ``reference``: a
    mixtures table (first row used), e.g. the default mixture. ``draws`` posterior draws are used
    (thinned at random with ``seed``).
    """
    interval_bounds(ci)
    check_draws(draws)
    domains = law.train_domains
    lo, hi = (bounds or MixtureBounds()).arrays(domains, caps_source)
    f = law.target_function(target, draws=draws, seed=seed, **scale)
    rng = np.random.default_rng(seed)
    center = law.pilot_mixtures.mean(axis=0)
    ref = None
    if reference is not None:
        ref = read_mixtures(reference, domains)[[MIX_PREFIX + d for d in domains]].to_numpy(dtype=float)[0].copy()  # a pandas view is read-only
    first = [center] + ([ref] if ref is not None else [])
    n_draws = f.n_draws
    pool = np.vstack([*first, random_feasible(starts - len(first), lo, hi, rng)]) if starts > len(first) else np.vstack(first[:starts])
    start = torch.as_tensor(np.broadcast_to(pool, (n_draws, *pool.shape)).copy())
    # each draw's own best mixture
    per_draw, _ = minimize_batch(f, start, lo, hi, steps=steps, progress=f"each of {n_draws:,} posterior draws' best mixture ({len(pool)} starts)")
    # the Bayes decision: minimise the posterior mean loss over the same starts
    optimum, _ = minimize_posterior_mean(f, n_draws, torch.as_tensor(pool), lo, hi, steps=steps)
    with torch.no_grad():
        at_opt = f(optimum.expand(n_draws, 1, -1))[:, 0].numpy()
        at_ref = f(torch.as_tensor(ref, dtype=torch.float64).expand(n_draws, 1, -1))[:, 0].numpy() if ref is not None else None
    # predictive draws (with observation noise) of the loss at the optimum and the reference
    predictive = _predictive(law, optimum.numpy(), target, seed, scale)
    ref_predictive = _predictive(law, ref, target, seed, scale) if ref is not None else None
    return OptimalMixture(
        train_domains=domains,
        target=target,
        optimum=optimum.numpy(),
        per_draw=per_draw.numpy(),
        loss_draws=predictive,
        reference=ref,
        reference_draws=ref_predictive,
        p_beats_reference=None if ref is None else float(np.mean(at_opt < at_ref)),
        ci=ci,
    )


def _predictive(law, r: np.ndarray, target: str, seed: int, scale: dict) -> np.ndarray:
    frame = pd.DataFrame([{MIX_PREFIX + d: v for d, v in zip(law.train_domains, r)}])
    draws = law.predict_draws(frame, seed=seed, **scale)
    return draws.sel(target=target).values.reshape(-1)
