"""The multi-power law format (bayes_mixlaw/formats/multipowerlaw.py): the published loss curves with their learning rates."""

from __future__ import annotations

import numpy as np

from bayes_mixlaw.runs import load_runs
from conftest import curve


def test_multipowerlaw_folder_loads_with_lr_and_warmup(shared_data):
    runs = load_runs(shared_data / "multipowerlaw")
    assert set(runs.runs) == {f"{s}/{n}" for s in (25, 100, 400) for n in ("cosine_24000", "constant_24000", "wsd_20000_24000", "wsdcon_9")}
    assert runs.scale_values("params") == [25_000_000, 100_000_000, 400_000_000]
    assert runs.valid_domains == ["valid"] and set(runs.data["warmup_steps"]) == {2160}
    raw = curve(shared_data, 25, "cosine_24000")
    one = runs.data[runs.data["run"] == "25/cosine_24000"]
    assert np.allclose(one["lr"], raw["lr"]) and np.allclose(one["loss"], raw["loss"])
    # one size folder and one file are recognised as well
    assert len(load_runs(shared_data / "multipowerlaw" / "csv_400").runs) == 4
    assert load_runs(shared_data / "multipowerlaw" / "csv_25" / "wsdcon_9.csv").runs == ["25/wsdcon_9"]
