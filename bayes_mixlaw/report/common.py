"""What the report's figures and tables share: the interval level (:data:`CI`), the scale a figure is at and how far
beyond the pilots that is, model sizes as users know them, the law's draws along a line of mixtures, a figure as PNG."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from bayes_mixlaw.runs import MIX_PREFIX, PYTHIA_PARAMS
from bayes_mixlaw.summary import DEFAULT_CI as CI  # noqa: F401  (the report's interval level, the package's one default: its modules read it here)


def _scale(law) -> dict:
    """The scale predictions are made at: the largest pilot scale for a law with scale axes (nested), else none."""
    if not law.has_scale_axes:
        return {}
    scales = law.pilot_scales()
    return {"params": scales["params"][-1], law.length_column: scales[law.length_column][-1]}


def _size_label(params: float) -> str:
    """A model size as users know it: the Pythia name where the size is one (non-embedding 18,915,328
    is Pythia-70M), else millions or billions of parameters."""
    for name, n in PYTHIA_PARAMS.items():
        if np.isclose(params, n, rtol=1e-9):
            return f"Pythia-{name}"
    return f"{params / 1e9:.3g}B" if params >= 1e9 else f"{params / 1e6:.3g}M"


def _beyond(law, scale: dict) -> str:
    """'' inside the pilots' scales; else a clause saying every point of a figure at ``scale`` is an
    extrapolation in size and/or length (laws with scale axes: nested fits)."""
    if not law.has_scale_axes or not scale:
        return ""
    from bayes_mixlaw.discrepancy import distances

    far = {axis: d for axis, d in distances(law, scale).items() if d > 0}
    if not far:
        return ""
    return (
        "; every point is an extrapolation beyond the pilots ("
        + ", ".join(f"{axis} {np.exp(d):.2g}x" for axis, d in far.items())
        + "): the grey mixture range is where pilots were, not where predictions are safe"
    )


def _at(scale: dict, lead: str = "; at ") -> str:
    """The scale a figure or table is at, for its title ("; at params=805,736,448, step=100,000"); empty
    for a one-scale fit."""
    return lead + ", ".join(f"{k}={v:,.0f}" for k, v in scale.items()) if scale else ""


def _law_draws(law, r: np.ndarray, target: str, scale: dict | None = None) -> np.ndarray:
    """The law's expected ``target`` loss at each mixture, per draw: (sample, n). For a nested fit, at
    ``scale`` (default: the largest pilot scale) and without a new mixture's random departure (smooth in r)."""
    scale = _scale(law) if scale is None else scale
    f = law.target_function(target, **scale)
    import torch

    with torch.no_grad():
        return f(torch.as_tensor(r, dtype=torch.float64)[None].expand(f.n_draws, -1, -1)).numpy()


def _share_line(center: np.ndarray, j: int, share: np.ndarray) -> np.ndarray:
    """Mixtures with domain j at each ``share`` and the others in ``center``'s ratio: (len(share), M)."""
    others = np.delete(center, j)
    others = others / others.sum() if others.sum() > 0 else np.full(len(others), 1 / len(others))
    return np.array([np.insert(others * (1 - x), j, x) for x in share])


def _frame(law, r: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(r, columns=[MIX_PREFIX + d for d in law.train_domains])


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()
