"""LOOP.yaml (bayes_mixlaw/loop_config.py): each error names the key and the file."""

import json
from pathlib import Path

import pytest

from bayes_mixlaw.loop_config import LoopConfigError, load_loop_config
from conftest import SMALL, _write


@pytest.mark.parametrize(
    "change, words",
    [
        (lambda c: c.pop("budget"), "budget: Field required"),
        (lambda c: c["budget"].update(runs=0), "budget.runs: Input should be greater than or equal to 1"),
        (lambda c: c["budget"].update(runs=None), "budget: give runs and/or cost"),
        (lambda c: c["trainer"].update(command="train.sh"), "trainer: give exactly one of reference, command or callable"),
        (lambda c: c["backend"].update(kind="kubernetes"), "backend.kind: Input should be 'local', 'ray' or 'submitit'"),
        (lambda c: c.update(batchsize=2), "batchsize: unknown key"),
        (lambda c: c["pilots"].update(sizes=[11712, 35712]), "target: pilots at several sizes"),
        (lambda c: c.update(domains=["code", "poetry"]), "['poetry'] are not among them"),
        (lambda c: c["trainer"].update(reference=None, callable="no_colon"), "callable is 'module:function'"),
    ],
)
def test_bad_loop_config_names_the_key_and_the_file(tmp_path, change, words):
    config = json.loads(json.dumps(SMALL))
    change(config)
    path = _write(tmp_path, config)
    with pytest.raises(LoopConfigError) as err:
        load_loop_config(path)
    assert str(err.value).startswith(str(path)) and words in str(err.value), str(err.value)


def test_unreadable_loop_config(tmp_path):
    with pytest.raises(LoopConfigError, match="no such loop config"):
        load_loop_config(tmp_path / "missing.yaml")
    with pytest.raises(LoopConfigError, match="cannot read"):
        load_loop_config(_write(tmp_path, "trainer: [unclosed"))
    assert load_loop_config(Path(__file__).parents[1] / "examples" / "loop_local.yaml").nested


def test_rounds_refit_until_converged_unless_asked_for_fast_fits():
    # converged refits choose pilots that bring the recommendation within 0.5% of the target's optimum and keep it there
    # (benchmarks/README.md, bo_fidelity.py): the default; a config may still ask for the quicker fast fits
    from bayes_mixlaw.loop_config import loop_config_from_dict

    without = {k: v for k, v in SMALL.items() if k != "fit"}
    default = loop_config_from_dict(without).fit
    assert default.method == "nuts" and default.final == "nuts"
    assert loop_config_from_dict(SMALL).fit.method == "fast"
