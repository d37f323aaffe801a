"""Aggregate targets: the weighted total over validation domains, and named groups of them.

With validation-domain weights s_i (e.g. the Pile's ``valid_weight.json``), the ``total`` target is
``sum_i s_i L_i / sum_i s_i`` over the validation domains of the fit, and a group target is the
same weighted mean over the group's domains. Without weights every domain weighs the same.
Aggregates are taken per posterior draw, so their intervals carry the joint uncertainty.
"""

from __future__ import annotations

import difflib
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

TOTAL = "total"


class TargetsError(ValueError):
    """A weights or groups file that does not fit the data; the message names the file and domain."""


@dataclass(frozen=True)
class Targets:
    """Validation-domain weights and groups. ``weights`` and ``groups`` may each be empty."""

    weights: dict[str, float] = field(default_factory=dict)
    groups: dict[str, list[str]] = field(default_factory=dict)
    # the files they were read from, for messages (not part of the targets)
    weights_source: str | None = field(default=None, compare=False, repr=False)
    groups_source: str | None = field(default=None, compare=False, repr=False)

    @classmethod
    def from_files(cls, weights=None, groups=None) -> Targets:
        source = lambda x: None if not x or isinstance(x, dict) else str(x)  # noqa: E731
        return cls(_read_mapping(weights, "weights") if weights else {}, _read_mapping(groups, "groups") if groups else {}, source(weights), source(groups))

    def check(self, valid_domains: list[str], source: str = "targets") -> Targets:
        """Check against the fit's validation domains. A weight for a domain the data lack is an error
        where its name is close to one of the data's (a misspelling), else dropped with a warning that
        says how the total is then taken. Messages name the weights or groups file where there is one."""
        groups_source, source = self.groups_source or source, self.weights_source or source
        weights = {}
        for name, w in self.weights.items():
            if not isinstance(w, (int, float)) or not np.isfinite(w) or w < 0:
                raise TargetsError(f"{source}: weight of '{name}' is {w!r}; weights are non-negative numbers")
            weights[name] = float(w)
        if weights:
            missing = [d for d in valid_domains if d not in weights]
            if missing:
                near = {m: difflib.get_close_matches(m, [d for d in weights if d not in valid_domains], n=1, cutoff=0.75) for m in missing}
                hint = "; ".join(f"'{n[0]}' in the file is not in the data: is it '{m}'?" for m, n in near.items() if n)
                raise TargetsError(f"{source}: no weight for validation domain(s) {missing} of the data" + (f" ({hint})" if hint else ""))
            absent = [d for d in weights if d not in valid_domains]
            unused = [d for d in valid_domains if d not in weights] or list(valid_domains)
            for name in absent:
                close = difflib.get_close_matches(name, unused, n=1, cutoff=0.75)
                if close:
                    raise TargetsError(
                        f"{source}: '{name}' is not a validation domain of the data; did you mean '{close[0]}'? "
                        f"(the data's domains: {', '.join(valid_domains)})"
                    )
            if absent:
                kept = sum(weights[d] for d in valid_domains)
                warnings.warn(
                    f"{source}: weights {len(absent)} validation domain(s) the data do not have ({', '.join(absent[:5])}"
                    f"{', ...' if len(absent) > 5 else ''}): they are left out, and 'total' (and each group) is the weighted mean "
                    f"renormalised over the {len(valid_domains)} present, their weights (summing to {kept:.4g}) rescaled to sum to 1",
                    UserWarning,
                    stacklevel=2,
                )
            weights = {d: weights[d] for d in valid_domains}
            if sum(weights.values()) <= 0:
                raise TargetsError(f"{source}: the weights of the data's validation domains sum to zero")
        groups = {}
        source = groups_source
        for name, members in self.groups.items():
            if name == TOTAL or name in valid_domains:
                raise TargetsError(f"{source}: group name '{name}' clashes with a validation domain or '{TOTAL}'")
            if isinstance(members, str) or not members:
                raise TargetsError(f"{source}: group '{name}' must list one or more validation domains")
            unknown = [m for m in members if m not in valid_domains]
            if unknown:
                raise TargetsError(f"{source}: group '{name}' names domain(s) {unknown} not in the data; it has {valid_domains}")
            groups[name] = list(members)
        return Targets(weights, groups, self.weights_source, self.groups_source)

    def weight_vector(self, valid_domains: list[str]) -> np.ndarray:
        if not self.weights:
            return np.ones(len(valid_domains))
        return np.array([self.weights[d] for d in valid_domains], dtype=float)

    def matrix(self, valid_domains: list[str]) -> tuple[list[str], np.ndarray]:
        """Names of all targets and the (targets x valid_domain) matrix mapping domain losses to them.

        Rows: each validation domain (identity), each group, and ``total``; each aggregate row sums to 1.
        A validation domain already named ``total`` (e.g. the paper's group losses with their total,
        from :meth:`aggregate`) is the ``total`` target itself: no second row of that name is added.
        """
        w = self.weight_vector(valid_domains)
        names = list(valid_domains)
        rows = [np.eye(len(valid_domains))]
        for name, members in self.groups.items():
            mask = np.isin(valid_domains, members).astype(float) * w
            if mask.sum() <= 0:
                raise TargetsError(f"group '{name}' has zero total weight")
            rows.append((mask / mask.sum())[None])
            names.append(name)
        if TOTAL not in valid_domains:
            rows.append((w / w.sum())[None])
            names.append(TOTAL)
        return names, np.vstack(rows)

    def group_of(self, valid_domains: list[str]) -> list[str]:
        """The group each validation domain is pooled in (its first group, else ``all``)."""
        out = []
        for d in valid_domains:
            out.append(next((g for g, members in self.groups.items() if d in members), "all"))
        return out

    def aggregate(self, runs):
        """A runs table whose validation domains are this object's groups (and ``total``), each loss
        the weighted mean of its domains' observed losses: how the paper fits group-level laws."""
        from bayes_mixlaw.runs import KEY_COLUMNS, RunsTable

        data = runs.data
        valid = list(pd.unique(data["valid_domain"]))
        names, matrix = self.check(valid, runs.source).matrix(valid)
        keys = [c for c in KEY_COLUMNS if c in data and c != "valid_domain"]
        wide = data.pivot_table(index=keys, columns="valid_domain", values="loss", aggfunc="first")[valid]
        complete = wide.dropna()
        aggregated = pd.DataFrame(complete.to_numpy() @ matrix[len(valid) :].T, index=complete.index, columns=names[len(valid) :])
        long = aggregated.stack().rename("loss").reset_index().rename(columns={"level_" + str(len(keys)): "valid_domain"})
        long = long.rename(columns={long.columns[len(keys)]: "valid_domain"})
        mix = runs.mixtures()
        long = long.join(mix, on="run")
        return RunsTable(long[[*keys, "valid_domain", "loss", *runs.mix_columns]], runs.source + " (aggregated)")

    def to_json(self) -> str:
        return json.dumps({"weights": self.weights, "groups": self.groups})  # group order is meaningful

    @classmethod
    def from_json(cls, text: str) -> Targets:
        data = json.loads(text)
        return cls(data.get("weights", {}), data.get("groups", {}))


def _read_mapping(source, what: str) -> dict:
    if isinstance(source, dict):
        return dict(source)
    path = Path(source)
    try:
        text = path.read_text()
        data = yaml.safe_load(text)  # YAML is a superset of JSON
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise TargetsError(f"{path}: cannot read the {what} file: {err}") from None
    if not text.strip():
        raise TargetsError(f"{path}: the {what} file is empty")
    if not isinstance(data, dict):
        raise TargetsError(f"{path}: the {what} file must map names to {'numbers' if what == 'weights' else 'lists of domains'}")
    return data
