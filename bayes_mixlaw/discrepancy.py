r"""Model discrepancy of the nested law: how wrong the law's form may be beyond the pilots.

The law's posterior says how uncertain its parameters are *given its form*; beyond the pilots'
largest model or longest run the form itself is the larger error (a curve that bends later than
a power law, a schedule that anneals at another step). The nested law carries that error in every
prediction, by default:

.. math:: \log L^*_v = \log L_v + \sum_{a \in \{size, length\}} D_a\,\kappa_a\,
          \big(\sqrt{\rho}\, z_{a} + \sqrt{1-\rho}\, z_{a v}\big)

with ``D_a = max(0, log(x_a / x_a^{max}))`` the log-distance beyond the largest pilot size or longest
pilot run (0 inside the pilots' range: nothing changes there), ``kappa_a`` the error per unit of
log-distance (a parameter of the model, ``discrepancy_size`` / ``discrepancy_length`` in the
priors), ``z`` standard normal per posterior draw: ``z_a`` shared by every validation domain and
``z_av`` each domain's own, mixed by ``rho`` (``NestedLawConfig.discrepancy_correlation``): when a
law misjudges the target scale it misjudges most domains the same way, so a weighted total does
not average the error away. The discrepancy is a property of the law at a scale: every mixture
predicted in one call shares it, so it widens every interval (and P(beats reference) honestly
reflects that both mixtures are predicted by the same law) without reordering mixtures. Where the pilots
calibrated an axis, the part of the error each left-out run had of its own is drawn per run instead
(:func:`bayes_mixlaw.discrepancy_scale.scale_error`): a new run errs by its own amount beside the law's.

A mixture outside the pilots' convex hull is predicted by the mixing law's form, too, so it carries
a third factor of the same kind, :math:`\exp(D_m \kappa_m (\sqrt\rho z_r + \sqrt{1-\rho} z_{rv}))`,
with ``D_m`` the total-variation distance of the mixture from the hull (:func:`mixture_distance`; 0
inside, where the fitted departure ``mixture_sigma`` already says how well the law fits) and ``z``
drawn per mixture: unlike the scale axes it is a property of the mixture, so it widens the intervals
of far mixtures and can reorder them. ``optimize``'s differentiable target leaves it out (it has mean
zero on the log scale and does not move the best mixture); ``predict`` at the chosen mixture shows it.

The fit cannot inform ``kappa`` (its pilots are all at ``D = 0``), so it starts from an informative prior
measured outside any user's table by ``benchmarks/discrepancy_prior.py``: point fits of the law's form on the
small end of Chinchilla's models and of Luo et al.'s loss curves (schedules the law does not know),
read against the log-distance of their predictions (median RMS log-error per log-unit: size 0.017,
length 0.025; the config's priors put their medians there with a factor 1.65 spread). Override the
priors to use your own evidence. By default the pilots then update it: a calibration fit without
their largest size and last checkpoints learns each scale axis's ``kappa`` and the direction the law
erred in (:mod:`bayes_mixlaw.discrepancy_scale`, ``NestedLawConfig.learn_discrepancy``). The older
post-hoc calibration (:func:`bayes_mixlaw.calibrate.calibrate_extrapolation`) replaces an axis instead.
"""

from __future__ import annotations

import numpy as np

AXES = {"size": "params", "length": None}  # axis -> scale column (None: the fit's length column)
MIXTURE = "discrepancy_mixture"  # the mixture axis's posterior variable (distance from the pilots' hull)
PRIORS = (*(f"discrepancy_{axis}" for axis in AXES), MIXTURE)  # the discrepancy's parameters


def draw_scales(law, names, priors: dict, seed: int | None) -> None:
    """Add the discrepancy's scales ``names`` to ``law``'s posterior, one per draw, from ``priors``
    (learned, :mod:`bayes_mixlaw.discrepancy_scale`) or else the config's. They enter no likelihood term
    (inside the pilots the distance beyond them is 0), so their posterior is their prior, independent of
    everything else: drawn after sampling rather than sampled, which keeps the compiled model the same
    whatever they are."""
    import pymc as pm
    import xarray as xr

    node = law.idata["posterior"]
    shape = (node.sizes["chain"], node.sizes["draw"])
    rng = np.random.default_rng(None if seed is None else [int(seed), 7])
    values = {}
    with pm.Model():
        for name in names:
            variable = priors.get(name, law.config.prior(name)).create_variable(name)
            values[name] = (("chain", "draw"), np.asarray(pm.draw(variable, draws=int(np.prod(shape)), random_seed=rng)).reshape(shape))
    law.idata["posterior"] = xr.DataTree(node.to_dataset().assign(values))


def distances(law, scale: dict) -> dict[str, float]:
    """Log-distance beyond the pilots per axis ({axis: D >= 0}) at ``scale`` ({column: value})."""
    pilots = law.pilot_scales()
    out = {}
    for axis, column in AXES.items():
        column = column or law.length_column
        out[axis] = max(0.0, float(np.log(scale[column] / pilots[column][-1])))
    return out


def mixture_distance(r: np.ndarray, pilots: np.ndarray) -> np.ndarray:
    r"""How far each mixture lies outside the pilots' convex hull, in total variation.

    .. math:: D(r) = \min_{w \ge 0,\ \sum w = 1} \tfrac12 \lVert r - P^\top w \rVert_1

    the share of the mixture that would have to move for it to become a blend of pilot mixtures
    (0 inside the hull, at most 1). ``r``: (n, M) mixtures; ``pilots``: (p, M). Returns (n,).
    Solved as a linear programme per mixture (``scipy.optimize.linprog``)."""
    from scipy.optimize import linprog

    r, pilots = np.atleast_2d(np.asarray(r, dtype=float)), np.asarray(pilots, dtype=float)
    n_pilots, m = pilots.shape
    # variables: w (n_pilots), then the positive and negative parts of r - P^T w (m each)
    cost = np.concatenate([np.zeros(n_pilots), np.full(2 * m, 0.5)])
    equality = np.block([[pilots.T, np.eye(m), -np.eye(m)], [np.ones((1, n_pilots)), np.zeros((1, 2 * m))]])
    out = np.empty(len(r))
    for k, row in enumerate(r):
        result = linprog(cost, A_eq=equality, b_eq=np.concatenate([row, [1.0]]), bounds=(0, None), method="highs")
        out[k] = max(0.0, float(result.fun)) if result.success else np.nan
    return out


def beyond_pilots(law, mixtures: np.ndarray, scale: dict | None = None) -> dict[str, np.ndarray]:
    """Columns saying how far each prediction lies beyond the pilots: ``beyond_mixture`` (total
    variation from their hull, :func:`mixture_distance`) and, at a ``scale``, ``beyond_log_size`` and
    ``beyond_log_length`` (log-distance beyond the largest pilot size and longest run, :func:`distances`)."""
    columns = {"beyond_mixture": np.round(mixture_distance(mixtures, law.pilot_mixtures), 6)}
    if scale is not None:
        for axis, d in distances(law, scale).items():
            columns[f"beyond_log_{axis}"] = np.full(len(mixtures), round(d, 6))
    return columns


def active_axes(law, scale: dict) -> dict[str, float]:
    """The axes whose discrepancy applies at ``scale``: {posterior variable: log-distance > 0};
    axes calibrated on the pilots (:mod:`bayes_mixlaw.calibrate`) are left to the calibration."""
    from bayes_mixlaw.calibrate import discrepancy as calibrated

    if not law.config.discrepancy:
        return {}
    post, skip = law.idata["posterior"], set(calibrated(law))
    return {
        f"discrepancy_{axis}": d
        for axis, d in distances(law, scale).items()
        if d > 0 and f"discrepancy_{axis}" in post and (AXES[axis] or law.length_column) not in skip
    }


def log_factor(kappas: dict[str, np.ndarray], axes: dict[str, float | np.ndarray], n_valid: int, rho: float, rng: np.random.Generator, rows: int = 1):
    """The discrepancy's log-multiplier of the losses, shape (*draws, rows, n_valid): ``kappas`` maps each
    active axis (:func:`active_axes`) to its posterior draws (any shape ``draws``) and ``axes`` to its
    distance (a number, one per row, or one per draw and row: shape (*draws, rows)); one error per draw,
    row and domain. With ``rows=1`` (a scale axis) the error is shared by every mixture of a call (and by
    every point of a curve: the distances may still differ by row); the mixture axis draws one per mixture.
    0.0 where no axis is active."""
    total = 0.0
    for name, d in axes.items():
        kappa = np.asarray(kappas[name])[..., None, None]
        draws = kappa.shape[:-2]
        z = np.sqrt(rho) * rng.standard_normal(draws + (rows, 1)) + np.sqrt(1 - rho) * rng.standard_normal(draws + (rows, n_valid))
        total = total + np.asarray(d, dtype=float)[..., None] * kappa * z
    return total


def mixture_factor(law, r: np.ndarray, kappa: np.ndarray, n_valid: int, rng: np.random.Generator) -> np.ndarray | float:
    r"""Multiplier of the losses of mixtures ``r`` (n, M) beyond the pilots' hull, broadcastable to
    (*draws, n, n_valid): :math:`\exp(D_m \kappa_m (\sqrt\rho z_r + \sqrt{1-\rho} z_{rv}))` with
    ``D_m`` the total-variation distance from the hull (:func:`mixture_distance`) and ``z`` drawn per
    mixture (``rng``: the row's own generator). 1.0 for mixtures inside the hull."""
    distance = mixture_distance(r, law.pilot_mixtures)
    if not (distance > 0).any():
        return 1.0
    return np.exp(log_factor({MIXTURE: kappa}, {MIXTURE: distance}, n_valid, law.config.discrepancy_correlation, rng, rows=len(r)))


def extrapolation_factor(
    law, scale: dict, kappas: dict[str, np.ndarray], shape: tuple, rng: np.random.Generator, predictive: bool, row_rng: np.random.Generator | None = None
):
    """Multiplier of the losses at ``scale``, broadcastable to ``shape`` (*draws, mixture, valid_domain):
    the calibrated drift where an axis was calibrated on the pilots (:mod:`bayes_mixlaw.calibrate`), the
    model discrepancy on the other active axes (``kappas``: their posterior draws, shape ``draws``), with
    the drift the pilots showed where the fit learned it (:func:`bayes_mixlaw.discrepancy_scale.scale_error`).
    ``rng`` draws what the mixtures share; ``row_rng`` (default ``rng``) a new run's own drift and its own part of the
    learned discrepancy."""
    from bayes_mixlaw.calibrate import discrepancy_factor
    from bayes_mixlaw.discrepancy_scale import read, scale_error

    calibrated = discrepancy_factor(law, scale, shape, rng, predictive=predictive, row_rng=row_rng)
    learned, rho = read(law), law.config.discrepancy_correlation
    log = 0.0
    for name, d in active_axes(law, scale).items():
        log = log + d * scale_error(learned, name.removeprefix("discrepancy_"), kappas[name], shape[-1], rho, rng, row_rng)
    return calibrated * np.exp(log)


def describe(law, scale: dict) -> str:
    """One sentence: how far ``scale`` is beyond the pilots and the discrepancy's 90% factor there."""
    post = law.idata["posterior"]
    parts = []
    for name, d in active_axes(law, scale).items():
        spread = 1.645 * d * float(np.sqrt(np.mean(post[name].values ** 2)))
        parts.append(f"{name.removeprefix('discrepancy_')} {np.exp(d):.2g}x beyond the pilots (law-form error +-{100 * spread:.1f}% at 90%)")
    return "; ".join(parts)
