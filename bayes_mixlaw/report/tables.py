"""The report's tables: every pilot loss against its fitted interval, the parameters, the interaction matrix, the
predictions at the optimum, the diagnostics; each written as CSV, Markdown and LaTeX (:func:`write_tables`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bayes_mixlaw.report.common import CI, _frame, _scale
from bayes_mixlaw.summary import eti


def fitted_vs_observed(law, ci: float = CI) -> pd.DataFrame:
    """Every observed loss with the posterior predictive median and interval at its run and scale (a law
    with its own ``pilot_predictions``, the schedule-aware one: each loss at its own run's schedule)."""
    own = getattr(law, "pilot_predictions", None)
    if own is not None:
        return own(ci)
    obs = law.idata["observed_data"].to_dataset().to_dataframe().reset_index(drop=True)
    labels = law.pilot_labels
    if law.has_scale_axes:  # each loss at its own scale
        pilots = law.pilot_mixtures
        column = law.length_column
        out = []
        for (n, s), g in obs.groupby(["params", column]):
            draws = law.predict_draws(_frame(law, pilots), params=n, **{column: s})  # (chain, draw, mixture, target)
            median, bounds = _median(draws), eti(draws, ci).values
            mi = g[law.pilot_label_var].astype(str).map({m: i for i, m in enumerate(labels)}).to_numpy()
            vi = g["obs_valid_domain"].map({v: i for i, v in enumerate(law.valid_domains)}).to_numpy()
            out.append(g.assign(median=median[mi, vi], lower=bounds[mi, vi, 0], upper=bounds[mi, vi, 1]))
        return pd.concat(out).sort_index()
    draws = law.predict_draws(_frame(law, law.pilot_mixtures))  # (chain, draw, mixture[, step], target)
    median, bounds = _median(draws), eti(draws, ci).values
    index = [obs[law.pilot_label_var].astype(str).map({r: i for i, r in enumerate(labels)}).to_numpy()]
    if "step" in draws.dims:  # a law fitted per checkpoint (continual pre-training): each loss at its own step
        index.append(obs["obs_step"].map({s: i for i, s in enumerate(draws["step"].values)}).to_numpy())
    index.append(obs["obs_valid_domain"].map({v: i for i, v in enumerate(law.valid_domains)}).to_numpy())
    at = tuple(index)
    return obs.assign(median=median[at], lower=bounds[(*at, 0)], upper=bounds[(*at, 1)])


def _median(draws) -> np.ndarray:
    """The median over ``chain`` and ``draw`` (first) of labelled draws, as an array of the other dims."""
    values = draws.values
    return np.quantile(values.reshape(-1, *values.shape[2:]), 0.5, axis=0)


def interaction_rows(law, table: pd.DataFrame | None = None) -> tuple[str | None, pd.DataFrame | None]:
    """The interaction matrix's rows of ``law.parameters(CI)`` (or of ``table``, if already computed):
    ("t", rows) for the explicit law and the nested law, ("slope", rows) for the implicit law's centred
    slopes, (None, None) for a fit without one."""
    table = law.parameters(ci=CI) if table is None else table
    name = next((n for n in ("t", "slope") if (table["parameter"] == n).any()), None)
    return name, (table[table["parameter"] == name] if name else None)


def parameter_table(law, ci: float = CI, table: pd.DataFrame | None = None) -> pd.DataFrame:
    """``law.parameters(ci)`` (or ``table``, if already computed) with the labels first and no column
    that no parameter has."""
    table = (law.parameters(ci=ci) if table is None else table).dropna(axis=1, how="all")
    labels = [c for c in table.columns if c not in ("mean", "median", "lower", "upper")]
    return table[labels + [c for c in ("mean", "median", "lower", "upper") if c in table.columns]]


def _estimate(table: pd.DataFrame, digits: int) -> pd.Series:
    """'mean [lower, upper]' per row, the way a paper prints an estimate with its interval (blank
    where a row has none)."""
    return pd.Series(
        [f"{m:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]" if m == m else "" for m, lo, hi in zip(table["mean"], table["lower"], table["upper"])],
        index=table.index,
    )


def paper_table(table: pd.DataFrame, ci: float = CI, digits: int = 3) -> pd.DataFrame:
    """A table of estimates for a paper: the other columns (numbers to ``digits``; blank where a row
    has no value), then one column 'mean [lower, upper]' headed by the interval's probability."""
    table = table.dropna(axis=1, how="all")
    out = pd.DataFrame(index=table.index)
    for column in table.columns.drop(["mean", "median", "lower", "upper"], errors="ignore"):
        out[column] = table[column].map(lambda v: _cell(v, digits))
    out[f"mean [{ci:.0%} interval]"] = _estimate(table, digits)
    return out


def _cell(value, digits: int) -> str:
    """A table cell as text: blank for a missing value, floats to ``digits``."""
    if value is None or value != value:
        return ""
    return f"{value:.{digits}f}" if isinstance(value, (float, np.floating)) else str(value)


def interaction_matrix(law, digits: int = 2, table: pd.DataFrame | None = None) -> pd.DataFrame | None:
    """The interaction matrix (t, or the implicit law's centred slopes; named in ``.attrs["parameter"]``):
    a ``valid_domain`` column, then one column per training domain, each cell 'mean [lower, upper]' of
    the 90% interval; None for a fit without one. ``table``: ``law.parameters(CI)`` if already computed."""
    name, rows = interaction_rows(law, table)
    if name is None:
        return None
    cells = rows.assign(cell=_estimate(rows, digits)).pivot(index="valid_domain", columns="train_domain", values="cell")
    matrix = cells.loc[law.valid_domains, law.train_domains].rename_axis(columns=None).reset_index()
    matrix.attrs["parameter"] = name
    return matrix


def prediction_table(law, optimum, ci: float = CI, scale: dict | None = None) -> pd.DataFrame:
    """The law's expected loss of every target (each validation domain, each group, ``total``) at the
    Bayes-optimal mixture, the pilots' mean mixture and the optimum's reference (if it has one), with
    ``ci`` intervals: one row per mixture and target (``mixture``, ``target``, ``mean``, ``lower``,
    ``upper``). Nested fits: at ``scale`` (default: the largest pilot scale)."""
    scale = _scale(law) if scale is None else scale
    rows = {"optimum": optimum.optimum, "pilots' mean mixture": law.pilot_mixtures.mean(axis=0)}
    if optimum.reference is not None:
        rows["reference"] = optimum.reference
    frame = _frame(law, np.array(list(rows.values()))).assign(name=list(rows))
    predicted = law.predict(frame, ci=ci, kind="mean", **scale)
    return predicted.rename(columns={"name": "mixture"})[["mixture", "target", "mean", "lower", "upper"]]


def _by_target(table: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """A prediction table as the paper prints it: one row per target, one column per mixture, each cell
    'mean [lower, upper]'."""
    cells = table.assign(cell=_estimate(table, digits)).pivot(index="target", columns="mixture", values="cell")
    order = list(dict.fromkeys(table["target"]))
    return cells.loc[order, list(dict.fromkeys(table["mixture"]))].rename_axis(columns=None).reset_index()


def write_tables(
    table: pd.DataFrame, folder: Path, name: str, caption: str, ci: float = CI, digits: int = 3, index: bool = False, shown: pd.DataFrame | None = None
):
    """``name``.csv (every number), and ``name``.md / ``name``.tex (estimates with intervals, LaTeX
    escaped, booktabs) ready to paste into a paper. The latter two show ``shown`` if given, else
    ``table`` formatted by :func:`paper_table` if it has ``mean``/``lower``/``upper`` columns, else
    ``table`` as it is."""
    table.to_csv(folder / f"{name}.csv", index=index)
    if shown is None:
        shown = paper_table(table, ci, digits) if {"mean", "lower", "upper"} <= set(table.columns) else table
    (folder / f"{name}.md").write_text(shown.to_markdown(index=index, disable_numparse=True) + "\n")
    (folder / f"{name}.tex").write_text(
        shown.to_latex(index=index, escape=True, caption=_latex_escape(caption), label=f"tab:{name}", longtable=len(shown) > 40)
    )


def _latex_escape(text: str) -> str:
    """Text as LaTeX prints it literally (pandas escapes cells, not captions)."""
    special = {
        "\\": r"\textbackslash{}",
        "&": r"\&",
        "%": r"\%",
        "$": r"\$",
        "#": r"\#",
        "_": r"\_",
        "{": r"\{",
        "}": r"\}",
        "~": r"\textasciitilde{}",
        "^": r"\textasciicircum{}",
    }
    return "".join(special.get(c, c) for c in text)


def coverage_verdict(table: pd.DataFrame, ci: float = CI) -> tuple[float, str]:
    """The share of pilot losses inside their ``ci`` posterior predictive interval and what it says:
    'ok' within sampling error (2.5 binomial SE, at least 3 points) of ``ci``; above it the noise is
    over-estimated (intervals too wide), below it under-estimated or the law misses the pilots."""
    inside = float(((table["lower"] <= table["loss"]) & (table["loss"] <= table["upper"])).mean())
    slack = max(0.03, 2.5 * np.sqrt(ci * (1 - ci) / max(len(table), 1)))
    if inside > ci + slack:
        return inside, (f"over-covers ({inside:.1%} at a nominal {ci:.0%}): the noise is over-estimated, so predictive intervals are too wide")
    if inside < ci - slack:
        return inside, (
            f"under-covers ({inside:.1%} at a nominal {ci:.0%}): intervals are too narrow; the noise is "
            "under-estimated or the law misses some pilots (see the red points)"
        )
    return inside, "ok"


def diagnostics_table(law, ppc: pd.DataFrame | None = None) -> pd.DataFrame:
    """Convergence checks and, with ``ppc`` (:func:`fitted_vs_observed`), the predictive coverage of
    the pilots; 'no problems' only where every check is ok."""
    d = law.diagnostics
    problems = list(d.problems)
    rows = []
    if ppc is not None:
        inside, said = coverage_verdict(ppc)
        rows.append({"check": f"posterior predictive coverage ({CI:.0%} intervals)", "value": f"{inside:.1%}", "verdict": said})
        if said != "ok":
            problems.append(said)
    verdict = "no problems: the chains agree, the draws are enough and the intervals cover as they should" if not problems else "; ".join(problems)
    return pd.DataFrame(
        [
            {"check": "method", "value": f"{d.method} ({d.chains} chains x {d.draws} draws)", "verdict": ""},
            {"check": "divergent transitions", "value": d.divergences, "verdict": "ok" if d.divergences == 0 else "biased posterior possible"},
            {"check": "max R-hat", "value": f"{d.max_rhat:.3f}", "verdict": "ok" if not d.max_rhat > 1.01 else "chains disagree: run longer"},
            {
                "check": "min bulk ESS",
                "value": f"{d.min_ess_bulk:.0f}",
                "verdict": "ok" if d.min_ess_bulk >= 100 * d.chains else "few effective draws: intervals are noisy",
            },
            {"check": "sampling time", "value": f"{d.seconds:.1f} s", "verdict": ""},
            *rows,
            {"check": "overall", "value": "", "verdict": verdict},
        ]
    )


def _critical_shown(table: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """The critical-share table as a paper prints it: the target and where it is kept, the critical share
    'mean [lower, upper]', P(no share keeps it), and the new domain's loss there 'mean [lower, upper]'."""
    new = table[["new_mean", "new_lower", "new_upper"]].set_axis(["mean", "lower", "upper"], axis=1)
    return pd.DataFrame(
        {
            "target": table["target"],
            "step": table["step"].map(lambda s: f"{s:,}"),
            "original data": table["domain"],
            "start loss": table["start_loss"].map(lambda v: f"{v:.{digits + 1}f}"),
            f"critical share, mean [{CI:.0%} interval]": _estimate(table, digits),
            "P(no share keeps it)": table["p_never"].map(lambda v: f"{v:.{digits}f}"),
            "new-data target": table["new_target"],
            f"its loss there, mean [{CI:.0%} interval]": _estimate(new, digits + 1),
        }
    )
