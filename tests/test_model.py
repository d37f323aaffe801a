"""Fit files carry a checksum of their contents (and the version and structure key that wrote them),
checked on load; no command writes a NaN or infinite prediction (issue 15, item 1)."""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from bayes_mixlaw import BayesianLaw
from bayes_mixlaw.cli import app
from bayes_mixlaw.model import CHECKSUM_ATTR, FitFileError, content_checksum
from conftest import flat

cli = CliRunner()


def mixtures_csv(path, domains):
    rows = [{"name": "uniform", **{f"mix:{d}": 1 / len(domains) for d in domains}}, {"name": "web", **{f"mix:{d}": float(d == "internet") for d in domains}}]
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_saved_fit_carries_checksum_version_and_structure_key(mock_mixing_fit):
    law = BayesianLaw.load(mock_mixing_fit)
    attrs = law.idata.attrs
    assert len(attrs[CHECKSUM_ATTR]) == 64 and attrs["bayes_mixlaw_version"] and len(attrs["structure_key"]) == 64
    assert content_checksum(law.idata) == attrs[CHECKSUM_ATTR]


def damaged_copies(source, folder):
    """Copies of ``source`` with 4 KB of random bytes written at several places in the middle."""
    raw = source.read_bytes()
    rng = np.random.default_rng(0)
    for k, where in enumerate((0.25, 0.4, 0.5, 0.6, 0.75)):
        data = bytearray(raw)
        i = int(len(data) * where)
        data[i : i + 4096] = rng.bytes(4096)
        path = folder / f"damaged{k}.nc"
        path.write_bytes(bytes(data))
        yield path


def test_damaged_fit_is_refused_naming_the_file(mock_mixing_fit, tmp_path):
    refused = 0
    for path in damaged_copies(mock_mixing_fit, tmp_path):
        try:
            law = BayesianLaw.load(path)
        except FitFileError as err:
            assert str(path) in str(err) and ("damaged" in str(err))
            refused += 1
        else:  # the bytes hit space the file does not use: the contents are intact, predictions identical
            assert content_checksum(law.idata) == law.idata.attrs[CHECKSUM_ATTR]
    assert refused >= 3


def test_damaged_fit_fails_predict_on_the_command_line(mock_mixing_fit, tmp_path):
    path = next(p for p in damaged_copies(mock_mixing_fit, tmp_path) if _refused(p))
    mixtures = mixtures_csv(tmp_path / "m.csv", ["academic", "prose", "dialogue", "symbolic", "internet"])
    result = cli.invoke(app, ["predict", str(path), "--mixtures", str(mixtures), "-o", str(tmp_path / "p.csv")])
    assert result.exit_code == 2 and str(path) in flat(result) and "damaged" in flat(result)
    assert not (tmp_path / "p.csv").exists()


def _refused(path) -> bool:
    try:
        BayesianLaw.load(path)
    except FitFileError:
        return True
    return False


def test_file_without_checksum_loads_with_a_warning(mock_mixing_fit, tmp_path):
    law = BayesianLaw.load(mock_mixing_fit)
    del law.idata.attrs[CHECKSUM_ATTR]
    old = tmp_path / "old.nc"
    law.idata.to_netcdf(old, engine="h5netcdf")
    with pytest.warns(UserWarning, match="carries no checksum"):
        BayesianLaw.load(old)


@pytest.mark.parametrize(
    "content, match",
    [
        (b"", "is empty"),
        (b"not a netcdf file at all\n" * 50, "could not be read"),
    ],
)
def test_unreadable_fit_files(tmp_path, content, match):
    path = tmp_path / "fit.nc"
    path.write_bytes(content)
    with pytest.raises(FitFileError, match=match):
        BayesianLaw.load(path)


def test_nan_prediction_is_never_written(mock_mixing_fit, tmp_path):
    """A fit whose posterior holds a NaN (saved with a valid checksum): predict fails naming the row
    and target and writes nothing."""
    law = BayesianLaw.load(mock_mixing_fit)
    law.idata["posterior"]["log_c"].values[..., 3] = np.nan  # one validation domain, in place
    nan_fit = tmp_path / "nan.nc"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        law.save(nan_fit)
    mixtures = mixtures_csv(tmp_path / "m.csv", law.train_domains)
    out = tmp_path / "p.csv"
    result = cli.invoke(app, ["predict", str(nan_fit), "--mixtures", str(mixtures), "-o", str(out)])
    text = flat(result)
    assert result.exit_code == 2, text
    assert "name 'uniform'" in text and "target=" in text and "nothing was written" in text
    assert not out.exists()


def test_save_is_atomic_and_never_overwrites(mock_mixing_fit, tmp_path):
    target = tmp_path / "fit.nc"
    shutil.copy(mock_mixing_fit, target)
    law = BayesianLaw.load(target)
    with pytest.raises(FileExistsError, match="--force"):
        law.save(target)
    law.save(target, overwrite=True)
    assert not list(tmp_path.glob("*.partial"))
    BayesianLaw.load(target)


def test_prediction_resting_on_the_prior_is_flagged_in_words(mock_mixing_fit, tmp_path):
    """A share far beyond any pilot's (dialogue: pilots use at most 0.094) is named on the terminal;
    mixtures inside the pilots' range are not."""
    law = BayesianLaw.load(mock_mixing_fit)
    domains = law.train_domains
    inside = {"name": "inside", **{f"mix:{d}": x for d, x in zip(domains, [0.3, 0.15, 0.05, 0.1, 0.4])}}
    chatty = {"name": "chatty", **{f"mix:{d}": 0.125 for d in domains}, "mix:dialogue": 0.5}
    pd.DataFrame([inside, chatty]).to_csv(tmp_path / "m.csv", index=False)
    assert law.prior_reliance(pd.DataFrame([inside])) == []
    notes = law.prior_reliance(pd.DataFrame([chatty]))
    assert notes == ["mixture 'chatty': dialogue 0.50 (5.3x the largest pilot share, 0.09)"]
    result = cli.invoke(app, ["predict", str(mock_mixing_fit), "--mixtures", str(tmp_path / "m.csv"), "-o", str(tmp_path / "p.csv")])
    assert result.exit_code == 0 and "rest mostly on the prior" in flat(result) and "mixture 'chatty'" in flat(result)
    assert "mixture 'inside'" not in flat(result)


def test_fit_from_a_newer_version_warns(mock_mixing_fit, tmp_path):
    law = BayesianLaw.load(mock_mixing_fit)
    law.idata.attrs["bayes_mixlaw_version"] = "99.0"
    law.save(tmp_path / "new.nc")
    with pytest.warns(UserWarning, match=r"new\.nc was written by bayes_mixlaw 99\.0, newer than this"):
        BayesianLaw.load(tmp_path / "new.nc")


def _resaved(source, folder, name, **attrs):
    """A copy of the fit at ``source`` with ``attrs`` changed, saved with a valid checksum."""
    law = BayesianLaw.load(source)
    law.idata.attrs.update(attrs)
    return law.save(folder / name)


def test_loaded_fit_rebuilds_its_model_from_the_file_on_demand(mock_mixing_fit):
    law = BayesianLaw.load(mock_mixing_fit)
    assert law._built is None  # not built on load: only its structure key is checked
    runs, options = law._stored_runs()
    assert law.structure_key(runs, **options) == law.idata.attrs["structure_key"]
    assert law.built.key == law.idata.attrs["structure_key"]
    assert "noise_spread" in {v.name for v in law.model.free_RVs} and "log_c" in law.model.named_vars
    assert list(law.model.coords["run"]) == [str(r) for r in law.idata["constant_data"]["run"].values]


def test_fit_from_another_version_loads_naming_both_versions(mock_mixing_fit, tmp_path):
    from bayes_mixlaw import __version__

    path = _resaved(mock_mixing_fit, tmp_path, "old.nc", bayes_mixlaw_version="0.0.1")
    with pytest.warns(UserWarning, match=rf"old\.nc was written by bayes_mixlaw 0\.0\.1; this is bayes_mixlaw {__version__} \(its model's structure is this"):
        law = BayesianLaw.load(path)
    assert law.model is not None


def test_fit_whose_structure_key_does_not_match_its_model_is_refused(mock_mixing_fit, tmp_path):
    path = _resaved(mock_mixing_fit, tmp_path, "edited.nc", structure_key="0" * 64)
    with pytest.raises(FitFileError, match="does not match the model its own config and data build") as err:
        BayesianLaw.load(path)
    assert str(path) in str(err.value)


def test_fit_of_another_version_and_structure_loads_saying_so(mock_mixing_fit, tmp_path):
    path = _resaved(mock_mixing_fit, tmp_path, "older.nc", structure_key="0" * 64, bayes_mixlaw_version="0.0.1")
    with pytest.warns(UserWarning, match=r"bayes_mixlaw 0\.0\.1; .*its model differs from the one this version builds"):
        law = BayesianLaw.load(path)
    assert law.built.key != law.idata.attrs["structure_key"]  # this version's model, rebuilt


def test_laws_say_what_they_can():
    """The capabilities the command line, the report, compare, calibrate and suggest read instead of a law's kind
    (BayesianLaw's class attributes, off by default): each law declares its own."""
    from bayes_mixlaw.config import NestedLawConfig
    from bayes_mixlaw.continual import ContinualLaw
    from bayes_mixlaw.mixing import MixingLaw
    from bayes_mixlaw.model import MIXTURE_REPORT
    from bayes_mixlaw.nested import NestedLaw
    from bayes_mixlaw.scaling import ChinchillaLaw
    from bayes_mixlaw.scheduled import ScheduledScalingLaw

    names = ["over_mixtures", "has_scale_axes", "takes_schedule", "supports_calibration", "supports_holdout", "supports_residual_gp", "supports_critical_share"]
    assert not any(getattr(BayesianLaw, name) for name in names) and BayesianLaw.report_sections is None
    declared = {
        MixingLaw: {"over_mixtures", "supports_holdout", "supports_residual_gp"},
        NestedLaw: {"over_mixtures", "has_scale_axes", "takes_schedule", "supports_calibration", "supports_holdout"},
        ContinualLaw: {"over_mixtures", "supports_critical_share"},
        ChinchillaLaw: set(),
        ScheduledScalingLaw: {"takes_schedule"},
    }
    for law_class, capabilities in declared.items():
        assert {name for name in names if getattr(law_class, name)} == capabilities, law_class.__name__
    laws = [law_class() for law_class in declared]
    assert [law.fit_name for law in laws] == ["mixing-law", "nested", "continual pre-training", "scaling-law", "scheduled scaling law"]
    assert [law.report_sections for law in laws] == [
        MIXTURE_REPORT,
        MIXTURE_REPORT | {"curves"},  # the pilots' curves against the scale axes
        frozenset({"critical"}),
        None,  # no report
        frozenset({"schedule_curves", "schedules"}),
    ]
    assert [law.learns_discrepancy for law in laws] == [False, True, False, False, False]
    assert not NestedLaw(NestedLawConfig(learn_discrepancy=False)).learns_discrepancy
