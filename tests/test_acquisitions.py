"""The registry of acquisitions (bayes_mixlaw/acquisitions): names, refused options, one registered from outside, each through suggest."""

from __future__ import annotations

import re

import numpy as np
import pytest
from typer.testing import CliRunner

from bayes_mixlaw import acquisitions
from bayes_mixlaw.acquisitions import (
    acquisition_names,
    get_acquisition,
    register_acquisition,
    unregister_acquisition,
)
from bayes_mixlaw.bo import LawEnsembleModel, suggest
from bayes_mixlaw.cli import ACQUISITION_HELP, AcquisitionChoice, app
from bayes_mixlaw.model import BayesianLaw
from bayes_mixlaw.optimize import MixtureBounds
from conftest import flat

PACKAGED = ["qlognei", "thompson", "info", "kg", "qucb"]
COLUMNS = [
    "name",
    "mix:academic",
    "mix:prose",
    "mix:dialogue",
    "mix:symbolic",
    "mix:internet",
    "target",
    "acquisition",
    "acquisition_value",
    "mean",
    "median",
    "lower",
    "upper",
    "beyond_mixture",
]
cli = CliRunner()


@pytest.fixture(scope="module")
def law(mock_mixing_fit):
    """The 5Mix 70M mixing law fitted with mocked sampling (conftest's mock_mixing_fit)."""
    return BayesianLaw.load(mock_mixing_fit)


def test_names_descriptions_and_limits_come_from_the_registry():
    names = acquisition_names()
    assert set(PACKAGED) <= set(names) and names[0] == "qlognei"  # the default first
    assert [a.value for a in AcquisitionChoice] == names
    assert all(f"{a.name} ({a.description})" in ACQUISITION_HELP and a.description for a in acquisitions.acquisitions())
    assert {a.name: a.max_suggestions[0] for a in acquisitions.acquisitions() if a.max_suggestions} == {
        "qlognei": 16,
        "thompson": 256,
        "info": 32,
        "kg": 32,
        "qucb": 16,
    }
    help_text = flat(cli.invoke(app, ["suggest", "--help"], env={"COLUMNS": "250"}))
    assert all(name in help_text for name in names) and "--option" in help_text and "16 with qlognei, 256 with thompson" in help_text


def test_unknown_acquisition_lists_the_registered_ones(law, tmp_path):
    with pytest.raises(ValueError, match=r"unknown acquisition 'ei'; choose one of qlognei, ") as err:
        suggest(law, 2, acquisition="ei")
    listed = [n.strip() for n in re.search(r"one of (.*)$", str(err.value)).group(1).split(",")]
    assert listed == acquisition_names() and all(get_acquisition(n).name == n for n in listed)
    result = cli.invoke(app, ["suggest", str(tmp_path / "fit.nc"), "--acquisition", "ei", "-o", str(tmp_path / "next.csv")])
    assert result.exit_code == 2 and "qlognei" in flat(result)


@pytest.mark.parametrize(
    "acquisition, options, message, taker",
    [
        (
            "thompson",
            {"residual_gp_model": True},
            ("the thompson acquisition does not take residual_gp_model (it takes exploit); residual_gp_model works with qlognei"),
            "qlognei",
        ),
        ("qlognei", {"exploit": True}, "the qlognei acquisition does not take exploit (it takes residual_gp_model); exploit works with thompson", "thompson"),
        ("info", {"exploit": True}, "the info acquisition does not take exploit (it takes costs, pool); exploit works with thompson", "thompson"),
        ("qlognei", {"beta": 0.5}, "does not take beta (it takes residual_gp_model); beta works with qucb", "qucb"),
        ("qucb", {"bta": 0.5}, "the qucb acquisition does not take bta (it takes beta); no acquisition takes bta", None),
    ],
)
def test_options_that_do_not_apply_are_refused(law, acquisition, options, message, taker):
    with pytest.raises(ValueError) as err:
        suggest(law, 2, acquisition=acquisition, **options)
    assert message in str(err.value)
    if taker:  # the option the error points to exists where it says
        assert next(iter(options)) in get_acquisition(taker).options
    # an option left at None or False is not given
    assert get_acquisition("thompson").check_options({"residual_gp_model": False, "exploit": None}) == {}


def test_the_command_line_refuses_them_before_reading_the_fit(tmp_path):
    missing, out = str(tmp_path / "missing.nc"), str(tmp_path / "next.csv")
    cases = [
        (["--acquisition", "thompson", "--residual-gp"], "does not take --residual-gp (it takes --exploit); --residual-gp works with --acquisition qlognei"),
        (["--option", "beta=0.5"], "the qlognei acquisition does not take beta (it takes --residual-gp); beta works with --acquisition qucb"),
        (["--acquisition", "qucb", "--option", "beta"], "--option takes KEY=VALUE (e.g. --option beta=0.5), got 'beta'"),
        (["--acquisition", "qucb", "-n", "17"], "-n 17 is above the limit of 16 suggestions for the qucb acquisition"),
    ]
    for args, message in cases:
        result = cli.invoke(app, ["suggest", missing, *args, "-o", out])
        assert result.exit_code == 2 and message in flat(result), result.output


def test_limits_name_the_acquisitions_that_allow_more(law):
    with pytest.raises(ValueError, match=r"n 17 is above the limit of 16 .* \(or thompson up to 256, info up to 32, kg up to 32\)"):
        suggest(law, 17, acquisition="qucb")
    with pytest.raises(ValueError, match="n must be at least 1, got 0"):
        suggest(law, 0, acquisition="thompson")


def test_an_acquisition_registered_from_outside_is_used_by_suggest_then_unregistered(law):
    built = []

    @register_acquisition(
        "test-posterior-mean", "the batch's best posterior mean (qSimpleRegret), registered by a test", options={"note": "recorded by the builder"}
    )
    def build(law_, model, *, context):
        from botorch.acquisition.monte_carlo import qSimpleRegret

        built.append((model, context.n, context.option("note"), context.choices is not None))
        return qSimpleRegret(model)

    try:
        assert "test-posterior-mean" in acquisition_names()
        with pytest.raises(ValueError, match="registered already"):
            register_acquisition("test-posterior-mean", "again")(build)
        table = suggest(law, 2, acquisition="test-posterior-mean", grid=0.25, draws=16, note="hello")
        assert list(table.columns) == COLUMNS and (table["acquisition"] == "test-posterior-mean").all()
        [(model, n, note, discrete)] = built
        assert isinstance(model, LawEnsembleModel) and (n, note, discrete) == (2, "hello", True)
        assert table["acquisition_value"].is_monotonic_decreasing and len(np.unique(table.filter(like="mix:").round(9), axis=0)) == 2
    finally:
        unregister_acquisition("test-posterior-mean")
    assert "test-posterior-mean" not in acquisition_names()
    with pytest.raises(ValueError, match="unknown acquisition 'test-posterior-mean'"):
        suggest(law, 1, acquisition="test-posterior-mean")
    with pytest.raises(KeyError, match="no acquisition named"):
        unregister_acquisition("test-posterior-mean")


@pytest.mark.filterwarnings("ignore:Optimization failed:RuntimeWarning")  # qucb on the mocked fit's prior draws (huge losses); not on a real fit
@pytest.mark.parametrize("acquisition", acquisition_names())
def test_each_registered_acquisition_runs_through_suggest(law, acquisition):
    table = suggest(law, 2, acquisition=acquisition, bounds=MixtureBounds(caps={"internet": 0.5}), draws=16, seed=0)
    mix = table.filter(like="mix:")
    assert list(table.columns) == COLUMNS and len(table) == 2 and (table["target"] == "total").all()
    assert np.allclose(mix.sum(axis=1), 1.0) and (mix["mix:internet"] <= 0.5 + 1e-6).all() and (mix >= -1e-9).all().all()
    assert table["acquisition"].str.startswith(acquisition).all() and table["acquisition_value"].is_monotonic_decreasing
    assert (table["lower"] <= table["upper"]).all()


def test_loop_config_takes_any_registered_acquisition():
    from bayes_mixlaw.loop_config import LoopConfigError, loop_config_from_dict

    small = {"trainer": {"reference": {"threads": 1}}, "budget": {"runs": 4}, "pilots": {"sizes": [11712], "steps": [60]}}
    assert loop_config_from_dict({**small, "acquisition": "qucb"}).acquisition == "qucb"
    with pytest.raises(LoopConfigError, match=r"unknown acquisition 'ei'; choose one of qlognei, thompson, info, kg, qucb"):
        loop_config_from_dict({**small, "acquisition": "ei"}, "loop.yaml")
