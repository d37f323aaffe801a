"""The registry of input formats (bayes_mixlaw/formats): names, auto-detection, errors, and a reader added from outside."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayes_mixlaw import formats
from bayes_mixlaw.formats import Reader, detect_format, reader_names
from bayes_mixlaw.runs import FORMAT_DESCRIPTIONS, FORMATS, RunsTableError, load_runs

PACKAGED = Path(formats.__file__).parents[1] / "data"


def test_names_descriptions_and_order_come_from_the_registry():
    readers = formats.readers()
    assert FORMATS == ("auto", *[r.name for r in readers]) == formats.format_names()
    assert list(FORMAT_DESCRIPTIONS) == list(FORMATS) and all(FORMAT_DESCRIPTIONS.values())
    assert {"tidy", "mixinglaws", "ct", "regmix", "chinchilla", "multipowerlaw", "wide"} <= set(reader_names())
    assert [r.priority for r in readers] == sorted(r.priority for r in readers)  # auto-detection order
    assert readers[-1].name == "tidy"  # any CSV/Parquet file: the fallback, tried last
    from bayes_mixlaw.cli import Format

    assert [f.value for f in Format] == list(FORMATS)


def listed_names(message: str) -> list[str]:
    return [n.strip() for n in re.search(r"one of (.*)$", message).group(1).split(",")]


def test_unknown_format_name_lists_the_formats_there_are(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text("run,valid_domain,loss\na,x,1.0\n")
    with pytest.raises(RunsTableError, match=r"runs\.csv: unknown format 'excel'; choose one of auto, ") as err:
        load_runs(path, "excel")
    names = listed_names(str(err.value))
    assert names == list(FORMATS) and all(formats.get_reader(n) for n in names if n != "auto")
    with pytest.raises(RunsTableError, match="unknown format 'excel'"):
        formats.get_reader("excel")


def test_undetectable_path_lists_the_formats_to_pass(tmp_path):
    (tmp_path / "runs.xlsx").write_text("x")
    with pytest.raises(RunsTableError, match=r"runs\.xlsx: cannot tell the format .*pass --format, one of ") as err:
        load_runs(tmp_path / "runs.xlsx")
    assert listed_names(str(err.value)) == reader_names()
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunsTableError, match=r"empty: cannot tell the format of this folder"):
        detect_format(tmp_path / "empty")


@pytest.mark.parametrize(
    "where, name",
    [
        ("regmix", "regmix"),
        ("regmix/train_mixture_1m.csv", "regmix"),
        ("regmix/train_pile_loss_1m.csv", "regmix"),
        ("chinchilla/svg_extracted_data.csv", "chinchilla"),
        ("multipowerlaw", "multipowerlaw"),
        ("multipowerlaw/csv_100", "multipowerlaw"),
        ("multipowerlaw/csv_25/cosine_24000.csv", "multipowerlaw"),
        ("mixinglaws", "mixinglaws"),
        ("mixinglaws/5Mix", "mixinglaws"),
        ("mixinglaws/3Mix/410M.txt", "mixinglaws"),
        ("mixinglaws/ct", "mixinglaws"),  # ct is chosen by name only; mixinglaws keeps the starting checkpoint too
        ("packaged:mixinglaws_5Mix_70M.txt.gz", "mixinglaws"),
    ],
)
def test_each_real_dataset_is_detected_as_its_format(shared_data, where, name):
    path = PACKAGED / where.removeprefix("packaged:") if where.startswith("packaged:") else shared_data / where
    assert detect_format(path).name == name


def test_tidy_tables_are_detected_as_tidy(tmp_path):
    frame = pd.DataFrame({"run": ["a", "b"], "valid_domain": "x", "loss": [1.0, 2.0], "mix:p": [0.5, 1.0], "mix:q": [0.5, 0.0]})
    for name in ("runs.csv", "runs.CSV", "runs.parquet"):
        path = tmp_path / name
        frame.to_parquet(path) if name.endswith("parquet") else frame.to_csv(path, index=False)
        assert detect_format(path).name == "tidy"


class JsonLinesReader(Reader):
    """A format defined outside the package: JSON lines of tidy rows."""

    name = "jsonl"
    description = "JSON lines of tidy rows"
    priority = 45

    def detect(self, path):
        return path.is_file() and path.name.endswith(".jsonl")

    def read(self, path, **options):
        frame = pd.read_json(path, lines=True)
        frame["__row__"] = np.arange(len(frame)) + 1
        return frame


@pytest.fixture
def jsonl():
    formats.register(JsonLinesReader)
    yield JsonLinesReader
    formats.unregister("jsonl")


def test_a_registered_reader_is_found_by_load_runs_and_auto_detection(jsonl, tmp_path):
    from bayes_mixlaw import runs

    path = tmp_path / "runs.jsonl"
    pd.DataFrame(
        {"run": ["a", "a", "b"], "valid_domain": ["x", "y", "x"], "loss": [1.0, 2.0, 1.5], "mix:p": [0.3, 0.3, 1.0], "mix:q": [0.7, 0.7, 0.0]}
    ).to_json(path, orient="records", lines=True)
    assert "jsonl" in runs.FORMATS and "jsonl" in runs.FORMAT_DESCRIPTIONS and "jsonl" in reader_names()
    assert detect_format(path).name == "jsonl"
    table = load_runs(path)
    assert table.runs == ["a", "b"] and table.valid_domains == ["x", "y"] and table.source == str(path)
    assert load_runs(path, "jsonl").data.equals(table.data)
    with pytest.raises(ValueError, match="'jsonl' is registered already"):
        formats.register(type("Other", (JsonLinesReader,), {}))
    bad = path.with_name("bad.jsonl")
    bad.write_text('{"run": "a", "valid_domain": "x", "loss": -1, "mix:p": 1.0}\n')
    with pytest.raises(RunsTableError, match=r"bad\.jsonl, row 1, column 'loss': loss is -1"):
        load_runs(bad)


def test_unregistered_reader_is_gone(tmp_path):
    from bayes_mixlaw import runs

    formats.register(JsonLinesReader)
    formats.unregister("jsonl")
    assert "jsonl" not in reader_names() and "jsonl" not in runs.FORMATS
    path = tmp_path / "runs.jsonl"
    path.write_text('{"run": "a"}\n')
    with pytest.raises(RunsTableError, match="cannot tell the format"):
        load_runs(path)
    with pytest.raises(RunsTableError, match="unknown format 'jsonl'"):
        load_runs(path, "jsonl")
    with pytest.raises(KeyError, match="no reader named 'jsonl'"):
        formats.unregister("jsonl")


def test_register_checks_the_reader():
    with pytest.raises(ValueError, match="needs a name"):
        formats.register(type("Nameless", (Reader,), {"description": "x"}))
    with pytest.raises(ValueError, match="needs a name"):
        formats.register(type("Auto", (Reader,), {"name": "auto", "description": "x"}))
    with pytest.raises(ValueError, match="one-line description"):
        formats.register(type("Silent", (Reader,), {"name": "silent"}))
    with pytest.raises(TypeError, match="Reader subclass or instance"):
        formats.register(object)
    assert "silent" not in reader_names()
