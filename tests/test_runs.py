"""Runs-table loaders on the real published data, and a clear error for every kind of bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayes_mixlaw.runs import MIX_PREFIX, Reference, RunsTableError, load_runs, read_mixtures


def tidy(n_runs=3, domains=("a", "b"), valid=("x", "y")):
    rows = []
    rng = np.random.default_rng(0)
    for i in range(n_runs):
        r = rng.dirichlet(np.ones(len(domains)))
        for v in valid:
            rows.append({"run": f"r{i}", "valid_domain": v, "loss": 3.0 + rng.random(), **{MIX_PREFIX + d: p for d, p in zip(domains, r)}})
    return pd.DataFrame(rows)


# ---- real data ------------------------------------------------------------------------------


def test_mixinglaws_5mix_folder(shared_data):
    runs = load_runs(shared_data / "mixinglaws" / "5Mix")
    assert runs.train_domains == ["academic", "prose", "dialogue", "symbolic", "internet"]
    assert len(runs.valid_domains) == 22
    assert runs.scale_values("params") == [18_915_328, 85_056_000, 201_541_632, 302_311_424]
    one = runs.select(params=18_915_328, step=30000)
    assert one.pivot().shape == (21, 22)
    assert np.allclose(one.mixtures().sum(axis=1), 1)
    # tokens follow from the 1,048,576-token batch
    assert set(one.data["tokens"]) == {30000 * 1_048_576}


def test_mixinglaws_duplicates_are_removed(shared_data):
    raw = (shared_data / "mixinglaws" / "5Mix" / "70M.txt").read_text().splitlines()
    runs = load_runs(shared_data / "mixinglaws" / "5Mix" / "70M.txt")
    assert len(runs.data) < len(raw) or len(set(raw)) == len(raw)
    assert not runs.data.duplicated(["run", "step", "valid_domain"]).any()


def test_mixinglaws_3mix_skips_non_numeric_steps_with_warning(shared_data):
    with pytest.warns(UserWarning, match="step is not a number.*last"):
        runs = load_runs(shared_data / "mixinglaws" / "3Mix")
    # 410M.txt names runs without the size prefix; the size comes from the file name
    assert 302_311_424 in runs.scale_values("params")
    assert {60000, 30000} <= set(runs.scale_values("step"))


def test_regmix_pair(shared_data):
    runs = load_runs(shared_data / "regmix")
    assert len(runs.runs) == 512
    assert len(runs.train_domains) == 17 and "pile_cc" in runs.train_domains
    assert len(runs.valid_domains) == 13 and "pile_cc" in runs.valid_domains
    assert "params" not in runs.data and "step" not in runs.data


def test_tidy_csv_and_parquet_roundtrip(tmp_path):
    frame = tidy()
    frame.to_csv(tmp_path / "runs.csv", index=False)
    frame.to_parquet(tmp_path / "runs.parquet")
    a = load_runs(tmp_path / "runs.csv").data
    b = load_runs(tmp_path / "runs.parquet").data
    pd.testing.assert_frame_equal(a, b)
    assert len(a) == len(frame)


def test_select_unknown_scale_lists_available(shared_data):
    runs = load_runs(shared_data / "mixinglaws" / "2Mix")
    with pytest.raises(RunsTableError, match=r"step=12345 is not in the table; it has step in 10000, 12000"):
        runs.select(step=12345)
    with pytest.raises(RunsTableError, match="choose one with --params"):
        runs.single_scale()


# ---- bad input: one test each, the message names row and column ------------------------------


def _csv(tmp_path, frame):
    path = tmp_path / "runs.csv"
    frame.to_csv(path, index=False)
    return path


def test_empty_table(tmp_path):
    with pytest.raises(RunsTableError, match="empty"):
        load_runs(tidy().iloc[:0])


def test_missing_required_column():
    with pytest.raises(RunsTableError, match=r"column 'loss'.*required column"):
        load_runs(tidy().drop(columns="loss"))


def test_unknown_column_suggests_mix_prefix():
    with pytest.raises(RunsTableError, match=r"column 'github'.*'mix:' prefix"):
        load_runs(tidy().assign(github=0.1))


@pytest.mark.parametrize(
    "value,match", [(np.nan, "missing"), (np.inf, "must be finite"), (0.0, "must be positive"), (-1.0, "must be positive"), ("abc", "not a number")]
)
def test_bad_loss_names_file_row_and_column(tmp_path, value, match):
    frame = tidy().astype({"loss": object})
    frame.loc[3, "loss"] = value
    path = _csv(tmp_path, frame)
    with pytest.raises(RunsTableError) as err:
        load_runs(path)
    message = str(err.value)
    assert str(path) in message and "row 5" in message and "column 'loss'" in message  # CSV line 5 = index 3
    if value is not np.nan:
        assert match in message


def test_nan_loss_is_an_error_not_silent():
    frame = tidy()
    frame.loc[0, "loss"] = np.nan
    with pytest.raises(RunsTableError, match="row 0, column 'loss'"):
        load_runs(frame)


def test_proportion_outside_unit_interval():
    frame = tidy()
    frame.loc[frame.run == "r1", "mix:a"] = 1.5
    with pytest.raises(RunsTableError, match=r"row 2, column 'mix:a': proportion 1.5 is outside \[0, 1\]"):
        load_runs(frame)


def test_mixture_not_summing_to_one_is_shown_and_can_be_renormalised():
    frame = tidy()
    # a default mixture that sums to 1.02, as the mixinglaws default does
    frame.loc[frame.run == "r0", "mix:a"] += 0.02
    with pytest.raises(RunsTableError, match=r"run 'r0' sum to 1.02, not 1.*renormalise"):
        load_runs(frame)
    with pytest.warns(UserWarning, match=r"renormalised the mixtures of 1 run.*r0.*1.02"):
        runs = load_runs(frame, renormalize=True)
    assert np.allclose(runs.mixtures().sum(axis=1), 1)
    # a looser tolerance accepts it as given
    assert np.isclose(load_runs(frame, tolerance=0.05).mixtures().loc["r0"].sum(), 1.02)


def test_run_whose_mixture_changes():
    frame = tidy()
    frame.loc[1, "mix:a"] -= 0.1
    frame.loc[1, "mix:b"] += 0.1
    with pytest.raises(RunsTableError, match=r"row 1, column 'mix:a': run 'r0' changes its mixture"):
        load_runs(frame)


def test_duplicated_keys_with_different_losses():
    frame = pd.concat([tidy(), tidy().iloc[[2]].assign(loss=9.0)], ignore_index=True)
    with pytest.raises(RunsTableError, match=r"appears 2 times with different losses.*rows 2, 6"):
        load_runs(frame)


def test_exact_duplicates_are_dropped():
    frame = pd.concat([tidy(), tidy().iloc[[2]]], ignore_index=True)
    assert len(load_runs(frame).data) == len(tidy())


def test_bad_scale_values():
    frame = tidy().assign(params=70_000_000, step=1000.0)
    frame.loc[2, "step"] = 1000.5
    with pytest.raises(RunsTableError, match="row 2, column 'step'.*whole number"):
        load_runs(frame)
    frame.loc[2, "step"] = -5
    with pytest.raises(RunsTableError, match="row 2, column 'step'.*positive"):
        load_runs(frame)


def test_missing_run_name():
    frame = tidy()
    frame.loc[4, "run"] = None
    with pytest.raises(RunsTableError, match="row 4, column 'run': missing name"):
        load_runs(frame)


def test_bad_mixinglaws_line_names_file_and_line(tmp_path):
    path = tmp_path / "70M.txt"
    path.write_text("/c/70M_x_1-0.5-0.5/1000\t/v/pythia-pile.valid.Github.bin\t1.5\n/c/70M_x_1-0.5-0.5/1000\tonly-two-fields\n")
    with pytest.raises(RunsTableError, match=r"70M.txt, row 2: expected 3 tab-separated fields"):
        load_runs(path)


def test_unknown_format_and_missing_file(tmp_path):
    with pytest.raises(RunsTableError, match="no such file"):
        load_runs(tmp_path / "nope.csv")
    (tmp_path / "runs.xlsx").write_text("x")
    with pytest.raises(RunsTableError, match="pass --format"):
        load_runs(tmp_path / "runs.xlsx")


def test_read_mixtures_checks_domains_and_sums(tmp_path):
    good = pd.DataFrame({"name": ["m1"], "mix:a": [0.3], "mix:b": [0.7]})
    out = read_mixtures(good, ["a", "b"])
    assert list(out.columns) == ["name", "mix:a", "mix:b"]
    with pytest.raises(RunsTableError, match=r"missing \['mix:c'\]"):
        read_mixtures(good, ["a", "b", "c"])
    path = tmp_path / "m.csv"
    good.assign(**{"mix:a": 0.5}).to_csv(path, index=False)
    with pytest.raises(RunsTableError, match=r"m.csv, row 2.*sum to 1.2"):
        read_mixtures(path, ["a", "b"])


def test_read_mixtures_takes_a_runs_tables_mixtures_with_their_names(shared_data):
    """``RunsTable.mixtures()`` (run names as the index, a 'run'-named index) is a valid mixtures table."""
    runs = load_runs(shared_data / "mixinglaws" / "RedPajama")
    mixtures = runs.mixtures().iloc[:3]
    out = read_mixtures(mixtures, runs.train_domains)
    assert list(out["name"]) == list(mixtures.index)
    np.testing.assert_allclose(out[runs.mix_columns].to_numpy(), mixtures.to_numpy())


def test_reference_errors_name_the_domain():
    with pytest.raises(RunsTableError, match=r"validation domain\(s\) b; the reference 'reference' has a"):
        Reference.from_any({"a": 1.0}).check(["a", "b"])
    with pytest.raises(RunsTableError, match="reference loss of 'a' is -1"):
        Reference.from_any({"a": -1.0})
    with pytest.raises(RunsTableError, match="'valid_domain' and 'loss'"):
        Reference.from_any(pd.DataFrame({"domain": ["a"], "loss": [1.0]}))
