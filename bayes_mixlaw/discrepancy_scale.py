r"""The model discrepancy's scale, learned from the pilots by leaving their largest scale out.

The nested law's discrepancy (:mod:`bayes_mixlaw.discrepancy`) multiplies a prediction at a
log-distance ``D_a`` beyond the pilots on axis ``a`` (model size, training length) by
:math:`\exp(D_a \kappa_a \xi_{av})`, with :math:`\xi_{a} \sim N(0, C)`, :math:`C = \rho 11^\top +
(1-\rho) I` across the validation domains. Inside the pilots ``D = 0``, so the fit itself cannot
learn :math:`\kappa_a`; its external prior (``discrepancy_size``, ``discrepancy_length``:
:math:`\log\kappa_a \sim N(\mu_0, \sigma_0)`, from Chinchilla and Luo et al.'s curves) is what
the package knows before it sees the user's pilots. This module lets the pilots speak:

1. **Calibration fit.** The same law, without discrepancy, on the pilots less their largest model
   size and less the last ``fraction`` of their log-length range (after the early transient): the full
   fit's model (its grid of mixtures, sizes and lengths) with a likelihood of the kept losses only, at their
   own reference scale (``NestedLaw.fit(observed_below=...)``), so the two fits share one compiled model.
2. **Left-out losses.** Each left-out loss ``i`` beyond the calibration fit on exactly one axis
   (the largest size at kept lengths: size; kept sizes at later checkpoints: length) at
   log-distance :math:`d_i` gives the log-residual :math:`r_{ik} = \log L_i - \log \hat L_{ik}`
   against each predictive draw ``k`` (parameters, run effects and noise: all the fit knows).
3. **Slopes.** Per axis, left-out run ``r`` and validation domain ``v``, the least-squares slope of the
   residuals against the distance, :math:`u_{rv,k} = \sum_i d_i r_{ik} / \sum_i d_i^2`; its centre
   :math:`\bar u_{rv}` (mean over draws) and its variance :math:`s_{rv}^2` over the draws, which
   carries the calibration fit's own uncertainty.
4. **Posterior of kappa, rho and the drift.** The slopes are :math:`\bar u_{rv} = m + \kappa_a(\sqrt{\rho_a}\,\eta_r
   + \sqrt{1-\rho_a}\,\xi_v) + \epsilon_{rv}`: a drift ``m`` that every left-out run and domain shares (the way the
   law erred beyond the pilots' own largest scale; flat prior), a part each run shares across its domains, each
   domain's own part, and :math:`\epsilon_{rv} \sim N(0, s_{rv}^2)`. With the external prior on :math:`\log\kappa_a`
   and a Beta prior on :math:`\rho_a` (mean ``discrepancy_correlation``, 0.75; a value the user set stays fixed), the
   posterior of :math:`(\log\kappa_a, \rho_a)` is computed on a grid with ``m`` integrated out
   (:class:`GridPosterior`); :math:`\log\kappa_a`'s marginal, summarised as a normal, becomes the full fit's prior on
   :math:`\log\kappa_a` (the pilots cannot inform it there, so it is also the posterior), :math:`\rho_a`'s marginal
   is drawn from at prediction, and ``m``'s posterior (mean, sd) is kept. ``kappa`` and ``rho`` are read from how
   the runs and the domains vary around the drift, not from the drift itself: one shared error, read both as the
   drift and as the scale of a fresh error (the version before, until 2026-12-05), made the totals' intervals 2-4x
   their error on the held-out checks.
5. **Drift.** Whether the law errs the same way again beyond the full fit's pilots is not known. The shared error
   there follows the calibration's as a stationary first-order process, :math:`\phi m + \sqrt{1-\phi^2}\,\sigma_m\nu`,
   with the persistence :math:`\phi \sim U(0, 1)` drawn per posterior draw, :math:`\sigma_m^2 = E[m^2]` the shared
   error's scale as its one realisation shows it and :math:`\nu` standard normal; the runs' and domains' parts are
   drawn afresh: the error per log-unit is :math:`\phi m + \sqrt{1-\phi^2}\,\sigma_m\nu + \kappa_a(\sqrt{\rho_a}\,\eta
   + \sqrt{1-\rho_a}\,\xi_v)` (:func:`scale_error`). The prediction moves by half the calibration's drift on average.
   (On RedPajama the pilots' law over-predicts every left-out scale. Calibrated at two levels on the length axis, the
   shared part of the drift kept its sign and halved from one level to the next, while the domains' pattern around
   it did not persist: correlation -0.32; so no domain's own drift is carried. On the held-out checks the shared
   error at the target was 0.4-0.5 of the calibration's on the length axis and 1.1 on the size axis: a persistence
   fixed at any one value would miss one of them.)

The discrepancy is taken to grow linearly in log-distance, as the model has it; the calibration's
distance (RedPajama: 201M -> 302M, 0.41 log-units; 16k -> 18-20k steps, 0.12-0.22) need not equal the target's. An axis the pilots cannot
calibrate (fewer than :data:`MIN_SIZES` sizes, or fewer than four lengths after the transient) keeps its
external prior, as an axis does when the calibration fit's chains disagree on its residual slopes or it diverged (with a warning); the
fit's summary says which axes were learned and from what.
"""

from __future__ import annotations

import hashlib
import json
import warnings

import numpy as np
import pandas as pd
import xarray as xr

from bayes_mixlaw.runs import RunsTable

ATTR = "discrepancy_learned"
AXES = {"size": "params", "length": None}  # as bayes_mixlaw.discrepancy.AXES (None: the fit's length column)
GRID = np.linspace(np.log(1e-4), np.log(1.0), 201)  # log kappa
# The domains' errors are correlated by rho (one error shared by all, sqrt(rho), and one each); the calibration's
# slopes say how much they share (how much the runs' slopes move together across domains against the domains' own
# spread, around the drift they all share), so rho is learned on a grid with kappa. Prior: Beta with the config's
# ``discrepancy_correlation`` as its mean (a value the user set is kept).
RHO_GRID = np.linspace(0.0, 0.98, 50)
RHO_CONCENTRATION = 4.0
# The size axis is learned from three pilot sizes or more: the calibration fit keeps all but the largest. On
# two sizes the size exponent and the irreducible share trade along a ridge (RedPajama 19M/85M -> 202M in
# ``share``'s coordinates: R-hat 1.27, bulk ESS 6); sampled along it (``stick``, config.for_sizes) the
# calibration converges (R-hat 1.03) and what it learns carries the size check (fit 19M-202M, predict 302M:
# 90% coverage 0.98 -> 0.90, domain MAE 0.0190 -> 0.0177, benchmarks/README.md). With two sizes the axis
# keeps its external prior.
MIN_SIZES = 3
# An axis is learned only if the calibration fit's chains agree this well on its residual slopes (R-hat; else that axis
# keeps its external prior, with a warning).
MAX_CALIBRATION_RHAT = 1.05
# ... and only if its divergent transitions are at most this share of its draws: a divergence marks a region of the
# posterior the sampler could not enter, whose draws are then missing from the slopes. A rare one at the rim of a
# well-sampled posterior is tolerated. The R-hat gate alone had accepted a calibration fit of a simulated table
# (nested_simulated.py) with 55 divergences.
MAX_CALIBRATION_DIVERGENCE_SHARE = 0.005
# A chain's draws in the calibration fit: its residual slopes' means and spreads are read (the full fit's warm-up is
# kept). Where the full fit draws until converged, the calibration fit draws until those slopes, all that is read from
# it, have converged to a coarser rule (max R-hat <= 1.02, bulk ESS >= 100: means and spreads; every other variable
# may mix as it will), at most CALIBRATION_MAX_DRAWS a chain: a fixed 1,000 left 4 of 6 calibration fits of 5-domain
# simulated tables at R-hat > 1.05, so their axes kept the external prior (benchmarks/README.md, nested_simulated.py).
# Checked on every variable instead (until 2026-12-05) it drew on where nothing read needed it. Without checks while
# sampling: a fixed CALIBRATION_DRAWS.
CALIBRATION_DRAWS = 1000
CALIBRATION_MAX_DRAWS = 3000
CALIBRATION_STOP = {"stop_rhat": 1.02, "min_ess": 100}


def split(runs: RunsTable, length_column: str, fraction: float) -> tuple[RunsTable, dict]:
    """(kept, cuts): the pilots less their largest size and the last ``fraction`` of their log-length
    range; ``cuts`` = {column: the largest kept value} for the axes that can be cut (:data:`MIN_SIZES`
    sizes with the largest run at a kept length, four lengths at least: the calibration fit keeps all but the
    largest size and three lengths or more)."""
    data = runs.data
    cuts = {}
    sizes = np.sort(data["params"].unique())
    if len(sizes) >= MIN_SIZES:
        cuts["params"] = float(sizes[-2])
    lengths = np.sort(data[length_column].unique())
    if len(lengths) >= 4:
        log_cut = np.log(lengths[-1]) - (np.log(lengths[-1]) - np.log(lengths[0])) * fraction
        index = int(np.searchsorted(np.log(lengths), log_cut, side="right")) - 1
        cuts[length_column] = float(lengths[max(2, min(len(lengths) - 2, index))])
    if "params" in cuts and length_column in cuts:  # the size axis needs left-out losses of the largest size at kept lengths
        largest = data["params"].to_numpy(float) > cuts["params"]
        if not (largest & (data[length_column].to_numpy(float) <= cuts[length_column])).any():
            del cuts["params"]
    return RunsTable(data[at_or_below(data, cuts)].reset_index(drop=True), runs.source), cuts


def at_or_below(data: pd.DataFrame, cuts: dict) -> np.ndarray:
    """The rows at or below every cut ({column: largest kept value}; all rows for no cut)."""
    kept = np.ones(len(data), dtype=bool)
    for column, cut in cuts.items():
        kept &= data[column].to_numpy(float) <= cut
    return kept


def summarise_slopes(per_draw: np.ndarray) -> tuple[np.ndarray, np.ndarray, int, tuple[float, float]]:
    r"""(:math:`\bar u_{gv}`, :math:`s_{gv}^2`, number of domains with left-out losses, (max R-hat, min bulk ESS)) of the
    per-draw residual slopes (chain, draw, group, valid_domain; NaN for a cell without left-out losses:
    :func:`_per_draw_slopes`). The slopes' convergence says whether the calibration fit's chains agree on what the axis
    learns (a part of the posterior the left-out losses do not read may mix slowly without mattering)."""
    from bayes_mixlaw.convergence import worst

    convergence = worst(xr.Dataset({"slope": (("chain", "draw", "cell"), _observed_cells(per_draw))}))
    flat = per_draw.reshape((-1,) + per_draw.shape[2:])
    n_domains = int(np.isfinite(per_draw).all(axis=(0, 1)).any(axis=0).sum())
    return flat.mean(axis=0), flat.var(axis=0), n_domains, convergence


def _per_draw_slopes(
    calibration, left_out: pd.DataFrame, column: str, cut: float, seed: int, schedules: dict | None = None, group: str | None = None
) -> np.ndarray:
    """The least-squares slope of each draw's log-residuals against the distance, per group and validation domain, of
    the left-out losses beyond ``cut`` on ``column``: (chain, draw, group, valid_domain); NaN for a cell without
    left-out losses. ``group``: the column whose values part the losses (``learn``: ``run``, each left-out run; sorted),
    None for one group. ``schedules``: run ->
    learning-rate schedule, for a calibration fit with schedules (each run predicted under its own)."""
    length = calibration.length_column
    valid = calibration.valid_domains
    mix_cols = [c for c in left_out.columns if c.startswith("mix:")]
    groups = pd.Index(np.sort(left_out[group].unique()) if group else [0])
    zd, dd = 0.0, np.zeros((len(groups), len(valid)))
    for (params, steps), g in left_out.groupby(["params", length]):
        g = g[g["valid_domain"].isin(valid)]
        runs_here = g.groupby("run")[mix_cols].first()
        scale = {"params": float(params), length: float(steps)}
        if schedules is None:
            draws = calibration.predict_draws(runs_here.reset_index(drop=True), seed=seed, **scale)
        else:  # one run at a time, each under its own schedule
            parts = [calibration.predict_draws(runs_here.iloc[[i]], seed=seed, schedule=schedules[run], **scale) for i, run in enumerate(runs_here.index)]
            draws = xr.concat(parts, dim="mixture")
        log_pred = np.log(draws.sel(target=valid).values)  # (chain, draw, run, valid)
        row = pd.Index(runs_here.index).get_indexer(g["run"])
        col = pd.Index(valid).get_indexer(g["valid_domain"])
        cell = groups.get_indexer(g[group]) if group else np.zeros(len(g), dtype=int)
        d = float(np.log((params if column == "params" else steps) / cut))
        residual = np.log(g["loss"].to_numpy(float)) - log_pred[:, :, row, col]  # (chain, draw, loss)
        per_cell = np.zeros(log_pred.shape[:2] + dd.shape)
        np.add.at(per_cell, (slice(None), slice(None), cell, col), d * residual)
        zd = zd + per_cell
        np.add.at(dd, (cell, col), d * d)
    return np.asarray(zd) / np.where(dd > 0, dd, np.nan)


def unreliable(slopes_rhat: float, divergences: int, draws: int) -> str:
    """Why the calibration fit cannot set an axis's discrepancy ("" where it can): its chains disagree on the axis's
    residual slopes (R-hat above :data:`MAX_CALIBRATION_RHAT`), or it diverged in more than
    :data:`MAX_CALIBRATION_DIVERGENCE_SHARE` of its ``draws`` (all chains)."""
    reasons = []
    if not slopes_rhat <= MAX_CALIBRATION_RHAT:
        reasons.append(f"max R-hat of its residual slopes {slopes_rhat:.3f} > {MAX_CALIBRATION_RHAT}")
    if divergences > MAX_CALIBRATION_DIVERGENCE_SHARE * draws:
        reasons.append(f"{divergences} divergent transitions in {draws} draws, more than {MAX_CALIBRATION_DIVERGENCE_SHARE:.1%}")
    return "; ".join(reasons)


def correlation_prior(mean: float, fixed: bool = False) -> tuple[np.ndarray, np.ndarray]:
    r"""(grid, log prior) of the correlation :math:`\rho` of the domains' errors: Beta with mean ``mean`` and
    concentration :data:`RHO_CONCENTRATION` on :data:`RHO_GRID`, or the one value ``mean`` where ``fixed`` (the user set it)."""
    if fixed:
        return np.array([float(mean)]), np.zeros(1)
    m = float(np.clip(mean, 0.02, 0.98))
    a, b = RHO_CONCENTRATION * m, RHO_CONCENTRATION * (1 - m)
    return RHO_GRID, (a - 1) * np.log(RHO_GRID + 1e-12) + (b - 1) * np.log1p(-RHO_GRID)


class GridPosterior:
    r"""The posterior of :math:`(\log\kappa, \rho)` on (:data:`GRID`, rho grid) and of the shared drift ``m`` given
    them, from the residual slopes ``u`` (group, domain) or (domain,) and their variances ``s2`` (the model:
    :func:`_grid_posterior`), the prior N(mu0, sigma0) on log kappa and ``rho``: the correlation, a number or
    :func:`correlation_prior`'s (grid, log prior) to integrate over. Cells with no left-out loss (NaN) are skipped."""

    def __init__(self, u: np.ndarray, s2: np.ndarray, rho, mu0: float, sigma0: float):
        self.weight, self.rho_grid, (self._drift_mean, self._drift_var) = _grid_posterior(u, s2, rho, mu0, sigma0)

    def log_kappa(self) -> tuple[float, float]:
        """Mean and sd of log kappa."""
        weight = self.weight.sum(axis=1)
        mean = float(weight @ GRID)
        return mean, float(np.sqrt(weight @ (GRID - mean) ** 2))

    def rho(self) -> tuple[np.ndarray, np.ndarray]:
        """(grid, weights): the marginal posterior of the correlation."""
        return self.rho_grid, self.weight.sum(axis=0)

    def drift(self) -> tuple[float, float]:
        """Mean and sd of the shared drift ``m``, averaged over the grid."""
        m = float((self.weight * self._drift_mean).sum())
        return m, float(np.sqrt((self.weight * (self._drift_var + (self._drift_mean - m) ** 2)).sum()))


def _grid_posterior(u, s2, rho, mu0, sigma0):
    r"""(weights over (:data:`GRID`, rho grid), the rho grid, (mean, variance) of the shared drift per grid point).

    The slopes :math:`u_{gv}` of group ``g`` (a left-out run) and domain ``v`` are
    :math:`u_{gv} = m + \kappa(\sqrt\rho\,\eta_g + \sqrt{1-\rho}\,\xi_v) + \epsilon_{gv}`: a shared drift ``m``
    (flat prior, integrated out), a part each group shares across its domains, each domain's own part, and the
    calibration fit's own uncertainty :math:`\epsilon_{gv} \sim N(0, s^2_{gv})`. The covariance
    :math:`S + Z D Z^\top` (``Z`` the group and domain indicators, ``D`` their variances) is handled through the
    ``(G + V)``-square matrix :math:`I + D^{1/2} Z^\top S^{-1} Z D^{1/2}` (Woodbury, the matrix determinant lemma),
    on the whole grid at once. With one group its shared part is the drift's: only the domains' spread informs."""
    grid, log_prior = correlation_prior(rho, fixed=True) if np.isscalar(rho) else rho
    u, s2 = np.atleast_2d(u), np.atleast_2d(s2)
    group, domain = np.nonzero(np.isfinite(u))
    u, inv_s = u[group, domain], 1 / s2[group, domain]
    n_groups = group.max() + 1
    z = np.concatenate([np.eye(n_groups)[group], np.eye(domain.max() + 1)[domain]], axis=1)  # (n, G + V)
    m_z = (z.T * inv_s) @ z  # Z' S^-1 Z
    b_u, b_1 = z.T @ (inv_s * u), z.T @ inv_s
    uu, u1, one = float(u @ (inv_s * u)), float(u @ inv_s), float(inv_s.sum())
    share = np.where(np.arange(z.shape[1]) < n_groups, grid[:, None], 1 - grid[:, None])  # (R, G + V)
    parts = []
    for k2 in np.array_split(np.exp(2 * GRID), 8):  # (K, R, G + V, G + V) in parts: memory
        sd = np.sqrt(k2[:, None, None] * share)
        chol = np.linalg.cholesky(np.eye(z.shape[1]) + sd[..., :, None] * m_z * sd[..., None, :])
        x_u = np.linalg.solve(chol, (sd * b_u)[..., None])[..., 0]
        x_1 = np.linalg.solve(chol, (sd * b_1)[..., None])[..., 0]
        logdet = 2 * np.log(np.diagonal(chol, axis1=-2, axis2=-1)).sum(-1)
        parts.append((logdet, uu - (x_u * x_u).sum(-1), u1 - (x_u * x_1).sum(-1), one - (x_1 * x_1).sum(-1)))
    logdet, q_uu, q_u1, q_11 = (np.concatenate(p) for p in zip(*parts))
    log_like = -0.5 * (logdet + q_uu - q_u1**2 / q_11 + np.log(q_11))
    log_post = log_like - 0.5 * ((GRID[:, None] - mu0) / sigma0) ** 2 + log_prior[None, :]
    weight = np.exp(log_post - log_post.max())
    return weight / weight.sum(), grid, (q_u1 / q_11, 1 / q_11)


def learn(
    law_class, config, targets, runs: RunsTable, *, seed: int | None, sampler: dict, progress: bool = False, fraction: float = 0.2, schedule=None
) -> tuple[dict, dict]:
    """(priors, record): fit ``law_class`` without discrepancy on the pilots less their largest scale,
    read the left-out losses, and update each calibratable axis's prior on ``kappa`` and its drift
    (module docstring). ``priors``: {posterior variable: learned Prior}; ``record`` (kept in the fit
    file as :data:`ATTR`) says per axis what was left out, the external prior, the learned one, the
    drift's mean and covariance, and the calibration fit's convergence. ``sampler``: the full fit's
    settings (method, draws, ...), used for the calibration fit too, with at most :data:`CALIBRATION_MAX_DRAWS` draws
    (checked while sampling, stopping at :data:`CALIBRATION_STOP`) or :data:`CALIBRATION_DRAWS` (fixed draws).
    ``schedule``: the full fit's (for runs without an ``lr`` column)."""
    from pymc_extras.prior import Prior

    data = runs.data
    length = "step" if "step" in data else "tokens"
    data = data[data[length] >= config.transient_fraction * float(data[length].max())]  # the rows the full fit keeps
    kept, cuts = split(RunsTable(data.reset_index(drop=True), runs.source), length, fraction)
    if not cuts:
        return {}, {}
    # the calibration fit's own sizes choose its parameterisation (two sizes: stick-breaking, config.for_sizes)
    calibration_config = config.model_copy(update={"discrepancy": False}).for_sizes(kept.data["params"].nunique())
    settings = {k: v for k, v in sampler.items() if v is not None}
    if settings.get("method") in (None, "nuts"):
        full = config.sampler.model_copy(update=settings)  # the full fit's sampler, as fit resolves it
        settings["draws"] = min(full.draws, CALIBRATION_MAX_DRAWS if full.checks_while_sampling else CALIBRATION_DRAWS)
        if full.checks_while_sampling:
            settings |= CALIBRATION_STOP
    # axis -> (column, the losses beyond the calibration fit on that axis only, the column that groups them: their runs)
    left_out = {}
    for axis, column in AXES.items():
        column = column or length
        if column in cuts:
            beyond = data[column].to_numpy(float) > cuts[column]
            for other in (c for c in cuts if c != column):
                beyond &= data[other].to_numpy(float) <= cuts[other]
            if beyond.any():  # else no loss lies beyond on this axis alone (smaller sizes not run past the length cut)
                left_out[axis] = (column, data[beyond], "run")
    if not left_out:
        return {}, {}
    slopes = _SlopesOfDraws(left_out, cuts, seed or 0, RunsTable(data.reset_index(drop=True), runs.source), schedule)
    with warnings.catch_warnings():  # the calibration fit's convergence is checked below
        warnings.simplefilter("ignore")
        # the full fit's model on the kept losses only (its grid: same structure, one compile), drawn until the
        # residual slopes (all that is read from it) have converged
        calibration = law_class(calibration_config, targets).fit(
            runs, schedule=schedule, seed=seed, progress=progress, observed_below=cuts, checked=slopes, **settings
        )
    diagnostics = calibration.diagnostics
    converged = {"calibration_rhat": diagnostics.max_rhat, "calibration_ess": diagnostics.min_ess_bulk, "calibration_divergences": diagnostics.divergences}
    per_axis = slopes.of(calibration)
    priors, record = {}, {}
    for axis, (column, losses, group) in left_out.items():
        u, s2, n_domains, (slopes_rhat, slopes_ess) = summarise_slopes(per_axis[axis])
        # an axis is learned where the chains agree on its slopes, what it learns from (the fit's every variable need
        # not: 5Mix's calibration on 70M + 160M mixes its size exponent slowly, max R-hat 1.056, its length slopes 1.003)
        problem = unreliable(slopes_rhat, diagnostics.divergences, diagnostics.chains * diagnostics.draws)
        if problem:
            warnings.warn(
                f"the calibration fit that would learn the {axis} axis's discrepancy scale from the pilots did not converge on "
                f"it ({problem}; max R-hat of every variable {diagnostics.max_rhat:.3f}): that axis keeps its external prior",
                UserWarning,
                stacklevel=3,
            )
            continue
        name = f"discrepancy_{axis}"
        prior = config.prior(name)
        if prior.distribution != "LogNormal":
            warnings.warn(f"the {name} prior is {prior.distribution}, not LogNormal: kept as given, not learned from the pilots", UserWarning, stacklevel=3)
            continue
        mu0, sigma0 = float(prior.parameters["mu"]), float(prior.parameters["sigma"])
        rho = correlation_prior(config.discrepancy_correlation, fixed="discrepancy_correlation" in config.model_fields_set)
        posterior = GridPosterior(u, s2, rho, mu0, sigma0)
        (mu, sigma), (rho_grid, rho_weights) = posterior.log_kappa(), posterior.rho()
        priors[name] = Prior("LogNormal", mu=mu, sigma=sigma)
        distance = np.log(losses[column].to_numpy(float) / cuts[column])
        record[axis] = {
            "left_out": f"{column} > {cuts[column]:g}",
            "losses": len(losses),
            "domains": n_domains,
            "distance": [round(float(distance.min()), 4), round(float(distance.max()), 4)],
            "runs": int(losses[group].nunique()),
            "slopes": _listed(u),
            "slopes_var": _listed(s2),
            "slope_mean": float(np.nanmean(u)),
            "slope_rms": float(np.sqrt(np.nanmean(u**2))),
            "slope_sd_of_fit": float(np.sqrt(np.nanmean(s2))),
            "external": [mu0, sigma0],
            "learned": [mu, sigma],
            "drift": list(posterior.drift()),
            "rho_prior_mean": config.discrepancy_correlation,
            "rho_grid": rho_grid.round(6).tolist(),
            "rho_weights": rho_weights.tolist(),
            "slopes_rhat": slopes_rhat,
            "slopes_ess": slopes_ess,
            **converged,
        }
    return priors, record


class _SlopesOfDraws:
    """The calibration fit's residual slopes per axis, per draw (:func:`_per_draw_slopes`): what
    :func:`learn` reads from that fit, so what its sampling is checked on (``BayesianLaw.fit``'s ``checked``).

    A check reads the first ``n`` draws of each chain, a later one more of the same draws, so the slopes are computed
    once per draw: each call adds those of the draws since the last (their noise seeded by ``seed`` and the first
    draw's index), and the fit's final draws, which are a check's, take that check's slopes. A check's cost then stays
    that of ``check_every`` draws instead of growing with the draws so far (on RedPajama's size check, 2 x 2000 draws
    took ~20 s a check beside the chains). Other draws than those seen (a restart) start again."""

    def __init__(self, left_out: dict, cuts: dict, seed: int, runs: RunsTable, schedule):
        self.left_out, self.cuts, self.seed, self.runs, self.schedule = left_out, cuts, seed, runs, schedule
        self._done: tuple[str | None, dict] = (None, {})  # (the draws' fingerprint, {axis: their slopes})

    def of(self, fit) -> dict[str, np.ndarray]:
        """{axis: per-draw slopes (chain, draw, valid_domain), NaN for a domain without left-out losses}."""
        posterior = fit.idata["posterior"]
        n = posterior.sizes["draw"]
        fingerprint, done = self._done
        m = next(iter(done.values())).shape[1] if done else 0
        if m > n or fingerprint != _fingerprint(posterior, m):
            done, m = {}, 0
        if m < n:
            block = fit._with_draws(draw=slice(m, n))
            schedules = self._schedules(fit)
            new = {
                axis: _per_draw_slopes(block, losses, column, self.cuts[column], self.seed + m, schedules, group)
                for axis, (column, losses, group) in self.left_out.items()
            }
            done = {axis: np.concatenate([done[axis], slopes], axis=1) if m else slopes for axis, slopes in new.items()}
            self._done = (_fingerprint(posterior, n), done)
        return done

    def _schedules(self, fit) -> dict | None:
        """run -> learning-rate schedule where the calibration fit has schedules (each run predicted under its own), else
        None; read once."""
        if fit.schedule_areas is None:
            return None
        if "_run_schedules" not in self.__dict__:
            from bayes_mixlaw.scheduled import run_schedules

            self._run_schedules, _ = run_schedules(self.runs, self.schedule, allow_unknown=True)
        return self._run_schedules

    def __call__(self, fit) -> xr.Dataset:
        """The slopes of the cells (group, domain) with left-out losses, one variable per axis: what the sampling is checked on."""
        return xr.Dataset({axis: (("chain", "draw", f"{axis}_cell"), _observed_cells(slopes)) for axis, slopes in self.of(fit).items()})


def _observed_cells(per_draw: np.ndarray) -> np.ndarray:
    """The per-draw slopes (chain, draw, group, valid_domain) of the cells with left-out losses, flattened: (chain, draw, cell)."""
    cells = per_draw.reshape(per_draw.shape[:2] + (-1,))
    return cells[:, :, np.isfinite(cells).all(axis=(0, 1))]


def _listed(values: np.ndarray) -> list:
    """An array as nested lists for the fit file's JSON, NaN as None."""
    return [_listed(v) for v in values] if np.ndim(values) > 1 else [None if not np.isfinite(x) else float(x) for x in values]


def _fingerprint(posterior: xr.Dataset, n: int) -> str:
    """A digest of the first ``n`` draws of each chain (of one variable: draws that differ differ there too)."""
    return hashlib.sha1(np.ascontiguousarray(posterior["noise_sigma"].values[:, :n]).tobytes()).hexdigest()


def scale_error(
    record: dict, axis: str, kappa: np.ndarray, n_valid: int, rho: float, rng: np.random.Generator, row_rng: np.random.Generator | None = None
) -> np.ndarray:
    r"""The law's log-error per unit of log-distance on a scale ``axis``, shape (*draws, 1, n_valid):
    :math:`\kappa\xi` with :math:`\xi \sim N(0, C)` where the pilots did not calibrate the axis; where
    they did, :math:`\phi m + \sqrt{1-\phi^2}\,\sigma_m\nu + \kappa\xi` with :math:`m` the calibration's shared drift
    (drawn from its posterior, :class:`GridPosterior`), :math:`\sigma_m^2 = E[m^2]` its scale, :math:`\nu` standard
    normal and the persistence :math:`\phi \sim U(0, 1)` (module docstring); the correlation
    ``rho`` is drawn per draw from its learned posterior where the record has one (else the given ``rho``).
    ``kappa``: posterior draws (any shape ``draws``). What the calibration read as shared by every left-out run (the
    drift and each domain's part, :math:`\xi_v`) is drawn from ``rng``, shared by a call's mixtures; the part each
    left-out run had of its own (:math:`\eta`) from ``row_rng``, the row's own generator (default ``rng``), so each
    new run takes its own (drawn once for a call's mixtures until 2026-12-05, which made a check's joint draws too
    all-or-nothing: benchmarks/README.md). An axis the pilots did not calibrate has no run part (:math:`\sqrt\rho`
    of its error is the domains' common part, shared). A record of the version before (2026-12-05: a drift per
    domain, ``drift_mean``) is read as that version did."""
    kappa = np.asarray(kappa)[..., None, None]
    draws = kappa.shape[:-2]
    entry = record.get(axis, {})
    if "rho_weights" in entry:
        weights = np.asarray(entry["rho_weights"])
        rho = rng.choice(np.asarray(entry["rho_grid"]), p=weights / weights.sum(), size=draws + (1, 1))
    # both drawn on either branch, in this order, so that what a call's mixtures share follows the same stream
    common, own = rng.standard_normal(draws + (1, 1)), rng.standard_normal(draws + (1, n_valid))
    if "drift" in entry:
        (mean, sd), phi = entry["drift"], rng.uniform(size=draws + (1, 1))
        m = mean + sd * rng.standard_normal(draws + (1, 1))
        shared = phi * m + np.sqrt((1 - phi**2) * (mean**2 + sd**2)) * rng.standard_normal(draws + (1, 1))
        run = (row_rng or rng).standard_normal(draws + (1, 1))  # the row's own: each new run its own part
        return shared + kappa * (np.sqrt(rho) * run + np.sqrt(1 - rho) * own)
    xi = np.sqrt(rho) * common + np.sqrt(1 - rho) * own
    if "drift_mean" in entry:  # the version before
        g = np.asarray(entry["drift_mean"]) + rng.standard_normal(draws + (1, n_valid)) @ np.asarray(entry["drift_chol"]).T
        phi = rng.uniform(size=draws + (1, 1))
        return phi * g + np.sqrt(1 - phi**2) * kappa * xi
    return kappa * xi


def describe(record: dict) -> str:
    """One clause for the fit's summary: which axes' discrepancy scale the pilots set, and how."""
    if not record:
        return ""
    parts = [
        f"{axis} {100 * np.exp(e['learned'][0]):.1f}% per log-unit (external prior {100 * np.exp(e['external'][0]):.1f}%), "
        f"drift {100 * (e['drift'][0] if 'drift' in e else np.mean(e['drift_mean'])):+.1f}%"
        + (
            f", shared by the domains at correlation {np.dot(e['rho_weights'], e['rho_grid']):.2f} (prior mean {e['rho_prior_mean']:.2f})"
            if "rho_weights" in e
            else ""
        )
        + f" ({e['left_out']} left out, {e['losses']} losses)"
        for axis, e in record.items()
    ]
    return "; discrepancy learned from the pilots: " + ", ".join(parts)


def read(law) -> dict:
    """The record kept in a fit ({} if the discrepancy's scale was not learned)."""
    return json.loads(law.idata.attrs.get(ATTR, "{}"))
