"""What the nested law (:class:`~bayes_mixlaw.nested.NestedLaw`) draws at a target: which pilot mixture a mixture is,
the pilot mixtures' departures from the mixing law, the run effects of a new run or a pilot's, the target scale
relative to the reference, and the domain losses at a chunk of mixtures."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from bayes_mixlaw import checkpoint_noise, discrepancy
from bayes_mixlaw.laws import array_namespace
from bayes_mixlaw.run_effects import CurvedEffects, conditional_effects, draw_effects

# posterior draws the checkpoints' shared share is estimated from (their deviations' medians)
MEDIAN_DRAWS = 400
# two mixtures closer than this (max abs difference of proportions) are the same mixture
SAME_MIXTURE = 1e-6


class NestedDraws:
    """The nested law's draws at a target (a base of :class:`~bayes_mixlaw.nested.NestedLaw`)."""

    def reference_law(self, r, params: dict | None = None):
        """The mixing law at the reference scale, its form ``config.law``'s, in absolute units: ``r`` (..., n, M)
        mixtures, ``params`` the form's parameters by name (numpy or torch, leading dims the draws'; the posterior's
        (chain, draw, ...) if None) -> (..., n, V) losses."""
        if params is None:
            post = self.idata["posterior"]
            params = {name: post[name].values for name in self.form.parameter_names}
        scale = array_namespace(r).asarray(self.idata["constant_data"]["loss_scale"].values)  # in r's library
        return self.form.evaluate(r, params, scale)

    def _pilot_index(self, r: np.ndarray) -> np.ndarray:
        """Index of the pilot mixture each row of ``r`` is (-1: a new mixture)."""
        pilots = self.pilot_mixtures
        distance = np.abs(r[:, None, :] - pilots[None, :, :]).max(axis=-1)
        nearest = distance.argmin(axis=1)
        return np.where(distance[np.arange(len(r)), nearest] < SAME_MIXTURE, nearest, -1)

    def _pilot_departures(self) -> np.ndarray:
        """Each pilot mixture's fitted departure from the mixing law, log scale, (chain, draw, mixture,
        valid_domain); computed once per posterior (every predicted row needs it)."""
        cached = self.__dict__.get("_departures")
        if cached is None or cached[0] is not self.idata:
            post = self.idata["posterior"]
            law = np.log(self.reference_law(self.pilot_mixtures))
            cached = self._departures = (self.idata, post["log_ref"].values - law)
        return cached[1]

    def _run_effects(self, pilot: np.ndarray, params: float, log_length: float, shape: tuple, rng: np.random.Generator, new_runs: bool):
        """``u + w y`` (``+ c y^2`` with ``run_curvature``) per draw, (chain, draw, mixture, valid_domain), at
        ``y = log_length``: a pilot run's effects drawn from their posterior given its curve, a new run's from their
        prior if ``new_runs``, else zero (:mod:`bayes_mixlaw.run_effects`)."""
        post = self.idata["posterior"]
        curved = self.config.run_curvature
        taus = [post[k].values[:, :, None, :] for k in self.run_scale_names]
        basis = (1.0, log_length, log_length**2)
        if new_runs:
            effect = sum(tau * x * rng.standard_normal(shape) for tau, x in zip(taus, basis))
        else:
            effect = np.zeros(shape)
        sizes = np.asarray(post["run_level"]["size"].values, dtype=float)
        match = np.flatnonzero(np.isclose(sizes, params, rtol=1e-9))
        known = (pilot >= 0) & (len(match) > 0)
        if known.any():
            rows, size = np.flatnonzero(known), match[0]
            constant = self.idata["constant_data"]
            moments = [constant[k].values[pilot[rows], size, :][None, None] for k in self._curve_moment_names()]
            sigma = post["noise_sigma"].values[:, :, None, :]
            _, _, var_u, cov_uw, var_w = conditional_effects(*moments[:3], 0.0, 0.0, sigma, *taus[:2])
            means = [post[k].values[:, :, pilot[rows], size, :] for k in self.run_effect_names]
            if curved:  # c from its conditional, then (u, w) given c: their means move along A^-1 Z^T z
                effects = CurvedEffects(moments, (0.0,) * 4, (sigma, *taus))  # the sd and directions do not read the residuals
                c = means[2] + effects.curvature_sd * rng.standard_normal(means[2].shape)
                z_u, z_w = effects.along_curvature
                means = [means[0] - (c - means[2]) * z_u, means[1] - (c - means[2]) * z_w]
            u, w = draw_effects(*means, var_u, cov_uw, var_w, rng)
            effect[:, :, rows] = u + w * log_length + (c * log_length**2 if curved else 0.0)
        return effect

    def _checkpoint_noise(self, pilot: np.ndarray, params: float, length: float, sigma: np.ndarray):
        """``(shift, sd)`` of a new run's noise, (chain, draw, mixture, valid_domain): given the deviations of its pilot
        mixture's other sizes at this checkpoint where they reached it (:mod:`bayes_mixlaw.checkpoint_noise`), else no
        shift and ``sigma``."""
        rho = self.checkpoint_shared
        if rho is None or not (pilot >= 0).any():
            return 0.0, sigma
        total, count = self._pilot_checkpoint_deviations(params, length)
        known = np.maximum(pilot, 0)
        count = np.where((pilot >= 0)[:, None], count[known], 0)
        return checkpoint_noise.conditional_noise(total[:, :, known], count, rho, sigma)

    @property
    def checkpoint_shared(self) -> np.ndarray | None:
        """``rho`` per validation domain (:func:`bayes_mixlaw.checkpoint_noise.shared_fraction`), or ``None`` (a fit
        without it, or ``shared_checkpoints`` off)."""
        record = self.idata.attrs.get(checkpoint_noise.ATTR)
        if record is None or not self.config.shared_checkpoints:
            return None
        return np.asarray(json.loads(record), dtype=float)

    def _pilot_checkpoint_deviations(self, params: float, length: float) -> tuple[np.ndarray, np.ndarray]:
        """Per pilot mixture and domain, the summed deviation from their runs' curves of its other sizes' losses at
        ``length`` (chain, draw, mixture, valid_domain) and how many there are (mixture, valid_domain); cached."""
        cached = self.__dict__.get("_checkpoint_cache")
        if cached is None or cached[0] is not self.idata or cached[1] != (float(params), float(length)):
            obs, constant = self.idata["observed_data"], self.idata["constant_data"]
            shape = constant["curve_m"].shape
            at = np.isclose(obs[self.length_column].values, length, rtol=1e-9) & ~np.isclose(obs["params"].values, params, rtol=1e-9)
            rows = np.flatnonzero(at)
            mi, _, vi = np.unravel_index(obs["obs_curve"].values[rows], shape)
            total = np.zeros(self.idata["posterior"]["noise_sigma"].shape[:2] + (shape[0], shape[2]))
            count = np.zeros((shape[0], shape[2]))
            if len(rows):
                np.add.at(total, (slice(None), slice(None), mi, vi), self._observation_deviations(rows))
                np.add.at(count, (mi, vi), 1.0)
            cached = self._checkpoint_cache = (self.idata, (float(params), float(length)), (total, count))  # one scale at a time
        return cached[2]

    def _estimate_checkpoint_sharing(self) -> np.ndarray:
        """``rho`` per validation domain from the pilots' deviations (posterior medians; one pilot scale at a time):
        :func:`bayes_mixlaw.checkpoint_noise.shared_fraction` over (mixture, checkpoint, domain) groups."""
        obs, constant = self.idata["observed_data"], self.idata["constant_data"]
        shape = constant["curve_m"].shape
        mi, _, vi = np.unravel_index(obs["obs_curve"].values, shape)
        _, length = np.unique(obs[self.length_column].values, return_inverse=True)
        deviation = np.empty(len(mi))
        frame = pd.DataFrame({"params": obs["params"].values, "length": length})
        posterior = self.idata["posterior"]
        step = max(1, posterior.sizes["chain"] * posterior.sizes["draw"] // MEDIAN_DRAWS)
        thinned = self._with_draws(draw=slice(None, None, step))  # the medians need a few hundred draws, not every one (the whole RedPajama table: 15 s -> 2 s)
        for rows in frame.groupby(["params", "length"]).indices.values():
            deviation[rows] = np.median(thinned._observation_deviations(rows), axis=(0, 1))
        group = (mi * (length.max() + 1) + length) * shape[2] + vi
        return checkpoint_noise.shared_fraction(deviation, group, vi, shape[2])

    def _relative_scale(self, params: float, length: float) -> tuple[float, float]:
        """(n, s): the size and length relative to the fit's reference scale."""
        reference = json.loads(self.idata.attrs["reference_scale"])
        return params / reference["params"], length / reference[self.length_column]

    def _read_scale(self, params, step, tokens) -> tuple[float, float]:
        length_column = self.length_column
        given = {"step": step, "tokens": tokens}
        if params is None or given[length_column] is None:
            other = "tokens" if length_column == "step" else "step"
            hint = f" (this fit measures training length in {length_column}, not {other})" if given[other] is not None else ""
            raise ValueError(f"a nested fit predicts at a model size and a training length: give params and {length_column}{hint}")
        values = (float(params), float(given[length_column]))
        if not all(np.isfinite(v) and v > 0 for v in values):
            raise ValueError(f"params and {length_column} must be positive and finite, got {values}")
        return values

    def _domain_draws(
        self,
        r: np.ndarray,
        kind: str,
        rng: np.random.Generator,
        *,
        params: float,
        length: float,
        schedule=None,
        shared_rng: np.random.Generator | None = None,
    ) -> np.ndarray:
        losses = self.law_draws(r, params, length, rng=rng, new_runs=kind == "predictive", schedule=schedule)
        scale = {"params": params, self.length_column: length}
        post = self.idata["posterior"]
        kappas = {k: post[k].values for k in discrepancy.active_axes(self, scale)}
        losses = losses * discrepancy.extrapolation_factor(self, scale, kappas, losses.shape, shared_rng or rng, predictive=kind == "predictive", row_rng=rng)
        if self.config.discrepancy and discrepancy.MIXTURE in post:  # beyond the pilots' hull, each mixture its own error
            losses = losses * discrepancy.mixture_factor(self, r, post[discrepancy.MIXTURE].values, losses.shape[-1], rng)
        if kind == "predictive":  # a new run's noise, given its mixture's other sizes at this checkpoint if they reached it
            shift, noise = self._checkpoint_noise(self._pilot_index(r), params, length, post["noise_sigma"].values[:, :, None, :])
            losses = losses * np.exp(shift + noise * self._standard_noise(losses.shape, rng))
        return losses
