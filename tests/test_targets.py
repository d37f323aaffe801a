"""Aggregate targets: weighted total and groups, and their input errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bayes_mixlaw.targets import Targets, TargetsError


def test_matrix_rows_are_weighted_means(shared_data):
    weights = json.loads((shared_data / "mixinglaws" / "valid_weight.json").read_text())
    domains = ["Github", "Pile-CC", "Books3"]
    with pytest.warns(UserWarning, match="renormalised over the 3 present"):
        targets = Targets(weights, {"code": ["Github"], "web+books": ["Pile-CC", "Books3"]}).check(domains)
    names, matrix = targets.matrix(domains)
    assert names == domains + ["code", "web+books", "total"]
    np.testing.assert_allclose(matrix[:3], np.eye(3))
    np.testing.assert_allclose(matrix[3:].sum(axis=1), 1)
    w = np.array([weights[d] for d in domains])
    np.testing.assert_allclose(matrix[-1], w / w.sum())
    np.testing.assert_allclose(matrix[4], [0, w[1] / (w[1] + w[2]), w[2] / (w[1] + w[2])])


def test_a_domain_named_total_is_the_total_target():
    names, matrix = Targets().matrix(["a", "total"])
    assert names == ["a", "total"] and np.allclose(matrix, np.eye(2))  # one 'total' row: the domain itself


def test_no_weights_means_equal_weights():
    _, matrix = Targets().check(["a", "b"]).matrix(["a", "b"])
    np.testing.assert_allclose(matrix[-1], [0.5, 0.5])


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(TargetsError, match=r"no weight for validation domain\(s\) \['b'\]"):
        Targets({"a": 1.0}).check(["a", "b"])
    with pytest.raises(TargetsError, match="weight of 'a' is -1"):
        Targets({"a": -1, "b": 1}).check(["a", "b"])
    with pytest.raises(TargetsError, match=r"group 'g' names domain\(s\) \['zz'\] not in the data"):
        Targets(groups={"g": ["zz"]}).check(["a", "b"])
    with pytest.raises(TargetsError, match="clashes"):
        Targets(groups={"total": ["a"]}).check(["a", "b"])
    bad = tmp_path / "w.json"
    bad.write_text("[1, 2]")
    with pytest.raises(TargetsError, match="w.json: the weights file must map"):
        Targets.from_files(weights=bad)


def test_aggregate_runs_to_groups(shared_data):
    from bayes_mixlaw import datasets

    runs = datasets.mixinglaws_5mix_70m().select(step=30000)
    targets = datasets.pile_targets()
    agg = targets.aggregate(runs)
    assert agg.valid_domains == ["academic", "prose", "dialogue", "symbolic", "internet", "total"]
    wide = runs.pivot()
    w = {d: targets.weights[d] for d in targets.groups["prose"]}
    expected = sum(wide[d] * v for d, v in w.items()) / sum(w.values())
    got = agg.pivot()["prose"]
    np.testing.assert_allclose(got.loc[expected.index], expected)
