r"""A checkpoint's deviation shared by the sizes of a pilot mixture (they read the same data in the same order).

The pilot runs of one mixture at different model sizes usually read the same data in the same order (Data Mixing Laws'
pilots; most labs' sweeps), so at checkpoint ``s`` every size's loss on validation domain ``v`` departs from its curve
by a shared ``eta`` besides its own noise:

.. math:: \log L_{r n s v} = \mu + u + w\,y_s + \eta_{r s v} + \varepsilon, \qquad
          \eta \sim N(0, \rho_v \sigma_v^2), \quad \varepsilon \sim N(0, (1 - \rho_v) \sigma_v^2)

Measured after the nested fit on the shared tables (each run's deviation from the law and its own run effects): two
sizes' deviations at the same checkpoint correlate 0.53 (RedPajama) and 0.68 (5Mix); at adjacent checkpoints -0.14
and -0.07. The law's likelihood keeps the noise independent (``sigma_v^2`` the total); ``rho_v`` is estimated after
sampling from the pilots' deviations (:func:`shared_fraction`), and a new run of a pilot mixture at a checkpoint the
pilots reached draws its noise given theirs (:func:`conditional_noise`): the size checks' target (410M at 30k, where
the smaller pilots stopped) is the case where this matters.
"""

from __future__ import annotations

import numpy as np

ATTR = "checkpoint_shared"
# a fraction this close to one would read a checkpoint's deviation as the same for every size
MAX_FRACTION = 0.9


def shared_fraction(deviation: np.ndarray, group: np.ndarray, valid: np.ndarray, n_valid: int) -> np.ndarray:
    r"""``rho_v``: the share of the noise variance a checkpoint's deviations share across sizes, per validation domain.

    ``deviation`` (obs,): each observed loss's deviation from its run's curve (log scale); ``group`` (obs,): the
    (mixture, checkpoint, domain) it belongs to, as integers; ``valid`` (obs,): its domain. With ``K_g`` sizes in
    group ``g``, :math:`E[(\sum d)^2 - \sum d^2] = K(K-1)\rho\sigma^2` and :math:`E[(K-1)\sum d^2] = K(K-1)\sigma^2`,
    so :math:`\hat\rho_v = \sum_g [(\sum d)^2 - \sum d^2] / \sum_g (K_g - 1)\sum d^2` over the domain's groups, clipped
    to ``[0, MAX_FRACTION]``; 0 where no checkpoint has two sizes."""
    _, g = np.unique(group, return_inverse=True)
    total = np.bincount(g, weights=deviation)
    square = np.bincount(g, weights=deviation * deviation)
    count = np.bincount(g)
    domain = np.zeros(len(count), dtype=int)
    domain[g] = valid
    pairs = np.bincount(domain, weights=total * total - square, minlength=n_valid)
    scale = np.bincount(domain, weights=(count - 1) * square, minlength=n_valid)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.where(scale > 0, pairs / scale, 0.0)
    return np.clip(rho, 0.0, MAX_FRACTION)


def conditional_noise(deviation_sum, count, rho, sigma):
    r"""A new run's noise at a checkpoint where ``count`` pilot sizes of its mixture deviated by ``deviation_sum`` in
    all: ``(shift, sd)``, the new run's log loss departing from its curve by ``shift + sd z``, ``z ~ N(0, 1)``:

    .. math:: v^{-1} = \frac{1}{\rho\sigma^2} + \frac{K}{(1-\rho)\sigma^2}, \quad
              \mathrm{shift} = v \frac{\sum_k d_k}{(1-\rho)\sigma^2}, \quad \mathrm{sd} = \sqrt{v + (1-\rho)\sigma^2}

    (``K = 0`` or ``rho = 0``: no shift and ``sd = sigma``). Arrays broadcast."""
    own, shared = (1.0 - rho) * sigma * sigma, rho * sigma * sigma
    spread = own + count * shared  # v = shared own / spread: no division by a zero rho
    shift = np.where(count > 0, shared * deviation_sum / spread, 0.0)
    return shift, np.sqrt(shared * own / spread + own)
