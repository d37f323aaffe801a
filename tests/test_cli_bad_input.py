"""The bad-input suite (issue 15): each kind of bad input a user can give the command line ends in
one clear message (exit code 2, no traceback) that names the file, row and column where there is
one, and writes nothing. Sampling is mocked, so a case that were wrongly accepted fails fast.

Each case builds its input in a fresh folder and returns the command line and a regular expression
its message must match. ``KINDS`` counts them (the issue's target: at least 60)."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from bayes_mixlaw import datasets
from bayes_mixlaw.cli import app
from conftest import FIVE

cli = CliRunner()
CASES = {}


def case(fn):
    CASES[fn.__name__] = fn
    return fn


def flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def base() -> pd.DataFrame:
    """5Mix at 70M/30k as a tidy table: 21 runs x 22 validation domains (line i + 2 of its CSV is row i)."""
    return datasets.mixinglaws_5mix_70m().select(step=30000).data.copy()


class Inputs:
    """A case's folder, the base runs table and a mocked mixing-law fit (copied in)."""

    def __init__(self, folder, frame, fit):
        self.folder, self.frame = folder, frame.copy()
        self.fit = str(shutil.copy(fit, folder / "fit.nc"))
        self.out = str(folder / "out.csv")

    def path(self, name: str) -> str:
        return str(self.folder / name)

    def csv(self, frame: pd.DataFrame, name: str = "runs.csv", **kw) -> str:
        frame.to_csv(self.folder / name, index=False, **kw)
        return self.path(name)

    def text(self, content, name: str) -> str:
        (self.folder / name).write_bytes(content if isinstance(content, bytes) else content.encode())
        return self.path(name)

    def fit_args(self, frame: pd.DataFrame, *extra) -> list[str]:
        return ["fit", self.csv(frame), "-o", self.path("new.nc"), *extra]

    def mixtures(self, rows=None, name: str = "m.csv", **kw) -> str:
        rows = rows if rows is not None else [{"name": "uniform", **{f"mix:{d}": 0.2 for d in FIVE}}]
        return self.csv(pd.DataFrame(rows), name, **kw)

    def predict_args(self, mixtures: str, *extra) -> list[str]:
        return ["predict", self.fit, "--mixtures", mixtures, "-o", self.out, *extra]


def row(i: int) -> str:
    """How a message names line i + 2 of a CSV written from the base table."""
    return rf"row {i + 2}\b"


# -- the runs table (fit) ---------------------------------------------------------------------------------


@case
def runs_file_missing(x):
    return ["fit", x.path("nope.csv"), "-o", x.path("new.nc")], r"no such file or folder: \S*nope\.csv"


@case
def runs_file_empty(x):
    return ["fit", x.text("", "runs.csv"), "-o", x.path("new.nc")], r"runs\.csv.*is empty"


@case
def runs_header_only(x):
    return ["fit", x.csv(x.frame.iloc[:0]), "-o", x.path("new.nc")], r"runs\.csv: the runs table is empty"


@case
def runs_semicolon_separated(x):
    return ["fit", x.csv(x.frame, sep=";"), "-o", x.path("new.nc")], r"runs\.csv.*separated by ';'.*comma"


@case
def runs_tab_separated_csv(x):
    return ["fit", x.csv(x.frame, sep="\t"), "-o", x.path("new.nc")], r"runs\.csv.*separated by tabs"


@case
def runs_binary_garbage(x):
    return ["fit", x.text(bytes(range(256)) * 20, "runs.csv"), "-o", x.path("new.nc")], r"runs\.csv.*(not a text|could not read)"


@case
def runs_missing_loss_column(x):
    return x.fit_args(x.frame.drop(columns="loss")), r"runs\.csv, column 'loss': required column\(s\) \['loss'\] missing"


@case
def runs_missing_run_column(x):
    return x.fit_args(x.frame.drop(columns="run")), r"column 'run': required column"


@case
def runs_unknown_column(x):
    return x.fit_args(x.frame.rename(columns={"mix:prose": "prose"})), r"column 'prose': unknown column.*'mix:' prefix"


@case
def runs_mix_column_without_domain(x):
    return x.fit_args(x.frame.rename(columns={"mix:prose": "mix:"})), r"column 'mix:': a mixture column has no domain name"


@case
def runs_empty_column_name(x):
    return x.fit_args(x.frame.rename(columns={"tokens": " "})), r"column ' ': a column has an empty or non-text name"


@case
def runs_loss_not_a_number(x):
    x.frame["loss"] = x.frame["loss"].astype(object)
    x.frame.loc[7, "loss"] = "abc"
    return x.fit_args(x.frame), rf"runs\.csv, {row(7)}, column 'loss': loss 'abc' is not a number"


@case
def runs_loss_missing(x):
    x.frame.loc[5, "loss"] = np.nan
    return x.fit_args(x.frame), rf"{row(5)}, column 'loss': loss is nan; losses must be finite"


@case
def runs_loss_infinite(x):
    x.frame.loc[9, "loss"] = np.inf
    return x.fit_args(x.frame), rf"{row(9)}, column 'loss': loss is inf"


@case
def runs_loss_negative(x):
    x.frame.loc[3, "loss"] = -1.5
    return x.fit_args(x.frame), rf"{row(3)}, column 'loss': loss is -1.5; losses must be positive"


@case
def runs_loss_zero(x):
    x.frame.loc[4, "loss"] = 0
    return x.fit_args(x.frame), rf"{row(4)}, column 'loss': loss is 0(\.0)?; losses must be positive"


@case
def runs_params_fractional(x):
    x.frame["params"] = x.frame["params"].astype(float)
    x.frame.loc[2, "params"] = 1.5e7 + 0.5
    return x.fit_args(x.frame), rf"{row(2)}, column 'params': params is .*whole number"


@case
def runs_params_negative(x):
    x.frame.loc[2, "params"] = -5
    return x.fit_args(x.frame), rf"{row(2)}, column 'params': params is -5; it must be positive"


@case
def runs_step_not_a_number(x):
    x.frame["step"] = x.frame["step"].astype(object)
    x.frame.loc[6, "step"] = "30k"
    return x.fit_args(x.frame), rf"{row(6)}, column 'step': step is '30k'; it must be a finite number"


@case
def runs_tokens_zero(x):
    x.frame.loc[8, "tokens"] = 0
    return x.fit_args(x.frame), rf"{row(8)}, column 'tokens': tokens is 0.*positive"


@case
def runs_proportion_above_one(x):
    x.frame.loc[x.frame["run"] == x.frame["run"][0], "mix:prose"] = 1.5
    return x.fit_args(x.frame), rf"{row(0)}, column 'mix:prose': proportion 1.5 is outside \[0, 1\]"


@case
def runs_proportion_negative(x):
    x.frame.loc[x.frame["run"] == x.frame["run"][0], "mix:prose"] = -0.1
    return x.fit_args(x.frame), rf"{row(0)}, column 'mix:prose': proportion -0.1 is outside"


@case
def runs_proportion_missing(x):
    x.frame.loc[11, "mix:dialogue"] = np.nan
    return x.fit_args(x.frame), rf"{row(11)}, column 'mix:dialogue': proportion .* is missing or not a number"


@case
def runs_proportions_do_not_sum_to_one(x):
    x.frame.loc[x.frame["run"] == x.frame["run"][0], "mix:internet"] = 0.5
    return x.fit_args(x.frame), rf"{row(0)}.*proportions of run '70M_23\S*' sum to 0\.75, not 1.*--renormalize"


@case
def runs_mixture_changes_within_a_run(x):
    x.frame.loc[3, ["mix:academic", "mix:internet"]] = [0.0625 + 0.1, 0.75 - 0.1]
    return x.fit_args(x.frame), rf"{row(3)}, column 'mix:academic': run '\S+' changes its mixture"


@case
def runs_duplicate_key_different_loss(x):
    dup = x.frame.iloc[[0]].assign(loss=x.frame["loss"][0] + 0.1)
    frame = pd.concat([x.frame, dup], ignore_index=True)
    return x.fit_args(frame), r"'params': 18915328, 'step': 30000.*appears 2 times with different losses"


@case
def runs_missing_run_name(x):
    x.frame.loc[12, "run"] = np.nan
    return x.fit_args(x.frame), rf"{row(12)}, column 'run': missing name"


@case
def runs_missing_valid_domain(x):
    x.frame.loc[13, "valid_domain"] = ""
    return x.fit_args(x.frame), rf"{row(13)}, column 'valid_domain': missing name"


@case
def runs_loss_sd_negative(x):
    x.frame["loss_sd"] = 0.01
    x.frame.loc[14, "loss_sd"] = -0.01
    return x.fit_args(x.frame), rf"{row(14)}, column 'loss_sd': loss_sd is -0.01"


@case
def runs_lr_negative(x):
    x.frame["lr"] = 3e-4
    x.frame.loc[15, "lr"] = -3e-4
    return x.fit_args(x.frame), rf"{row(15)}, column 'lr': lr is -0.0003; a learning rate must be positive"


@case
def runs_lr_without_step(x):
    frame = x.frame.drop(columns=["step"]).assign(lr=3e-4)
    return x.fit_args(frame), r"column 'lr': an 'lr' column needs a 'step' column"


@case
def runs_warmup_fractional(x):
    x.frame["warmup_steps"] = 100.5
    return x.fit_args(x.frame), rf"{row(0)}, column 'warmup_steps': warmup_steps is 100.5"


@case
def runs_two_rows(x):
    return x.fit_args(x.frame.iloc[:2]), r"runs\.csv: the pilots have only 1 mixture \(1 run\(s\), 2 row\(s\)\); a mixing law cannot be fitted"


@case
def runs_single_mixture(x):
    frame = x.frame[x.frame["run"] == x.frame["run"][0]]
    return x.fit_args(frame), r"runs\.csv: the pilots have only 1 mixture.*needs pilots of at least 2 different mixtures"


@case
def runs_training_domain_never_used(x):
    frame = x.frame[x.frame["mix:prose"] == 0]
    return x.fit_args(frame), r"runs\.csv, column 'mix:prose': training domain 'prose' is 0 in every pilot.*drop its column"


@case
def runs_several_steps_one_size(x):
    table = datasets.mixinglaws_5mix_70m().data
    frame = table[table["step"].isin([20000, 30000])]
    return x.fit_args(frame), r"column 'step'.*2 values of 'step'.*--step"


@case
def select_step_not_in_table(x):
    return x.fit_args(x.frame, "--step", "12345"), r"column 'step': step=12345 is not in the table; it has step in 30000"


@case
def select_params_not_in_table(x):
    return x.fit_args(x.frame, "--params", "7"), r"column 'params': params=7 is not in the table"


@case
def tolerance_negative(x):
    return x.fit_args(x.frame, "--tolerance", "-1"), r"runs\.csv: the tolerance \(--tolerance\) is -1; .*a number >= 0"


@case
def format_unknown(x):
    return x.fit_args(x.frame, "--format", "excel"), r"Invalid value for '--format'.*'excel' is not one of"


@case
def runs_unknown_extension(x):
    return ["fit", x.text("a,b\n", "runs.xlsx"), "-o", x.path("new.nc")], r"runs\.xlsx: cannot tell the format.*--format"


@case
def output_folder_missing(x):
    return ["fit", x.csv(x.frame), "-o", x.path("no/such/fit.nc")], r"folder \S*no/such does not exist"


@case
def output_exists(x):
    return ["fit", x.csv(x.frame), "-o", x.fit], r"fit\.nc exists; pass --force"


@case
def fit_output_to_stdout(x):
    return ["fit", x.csv(x.frame), "-o", "-"], r"-o - writes a CSV to standard output; a fit is a netCDF file"


@case
def output_is_a_folder(x):
    return ["fit", x.csv(x.frame), "-o", str(x.folder)], r"is a folder; -o takes the file"


@case
def calibrate_unknown_axis(x):
    return x.fit_args(x.frame, "--calibrate", "width"), r"--calibrate takes 'length' or 'params'"


# -- mixinglaws, RegMix and Chinchilla files ----------------------------------------------------------------


def mixinglaws_line(run="70M_1-0.2-0.2-0.2-0.2-0.2", step="30000", domain="Github", loss="2.5"):
    return f"/ckpt/{run}/{step}\t/data/pythia-pile.valid.{domain}.bin\t{loss}\n"


@case
def mixinglaws_two_fields(x):
    folder = x.folder / "5Mix"
    folder.mkdir()
    (folder / "70M.txt").write_text(mixinglaws_line() + "/ckpt/70M_1-0.2-0.2-0.2-0.2-0.2/30000\t2.5\n")
    return ["fit", str(folder), "-o", x.path("new.nc")], r"70M\.txt, row 2: expected 3 tab-separated fields, found 2"


@case
def mixinglaws_loss_not_a_number(x):
    folder = x.folder / "5Mix"
    folder.mkdir()
    (folder / "70M.txt").write_text(mixinglaws_line() + mixinglaws_line(loss="n/a"))
    return ["fit", str(folder), "-o", x.path("new.nc")], r"70M\.txt, row 2, column 'loss': loss 'n/a' is not a number"


@case
def mixinglaws_run_without_proportions(x):
    folder = x.folder / "5Mix"
    folder.mkdir()
    (folder / "70M.txt").write_text(mixinglaws_line(run="70M_baseline"))
    return ["fit", str(folder), "-o", x.path("new.nc")], r"70M\.txt, row 1, column 'checkpoint': run name '70M_baseline' has no '-<proportion>' parts"


@case
def mixinglaws_unknown_folder_name(x):
    folder = x.folder / "mydata"
    folder.mkdir()
    (folder / "70M.txt").write_text(mixinglaws_line() + mixinglaws_line(run="70M_2-0.6-0.1-0.1-0.1-0.1"))
    return ["fit", str(folder), "-o", x.path("new.nc")], r"mydata.*not a published mixinglaws experiment.*--train-domains"


@case
def mixinglaws_train_domains_count(x):
    folder = x.folder / "5Mix"
    folder.mkdir()
    (folder / "70M.txt").write_text(mixinglaws_line())
    return ["fit", str(folder), "-o", x.path("new.nc"), "--train-domains", "a,b,c"], r"run names carry 5 proportions but 3 training domains"


@case
def regmix_loss_file_missing(x):
    folder = x.folder / "regmix"
    folder.mkdir()
    pd.DataFrame({"index": [0, 1], "train_the_pile_a": [0.5, 1], "train_the_pile_b": [0.5, 0]}).to_csv(folder / "train_mixture_1m.csv", index=False)
    return ["fit", str(folder), "-o", x.path("new.nc")], r"regmix: expected one train_mixture\*\.csv and one train_pile_loss\*\.csv"


@case
def regmix_duplicate_index(x):
    folder = x.folder / "regmix"
    folder.mkdir()
    pd.DataFrame({"index": [0, 0], "train_the_pile_a": [0.5, 1], "train_the_pile_b": [0.5, 0]}).to_csv(folder / "train_mixture_1m.csv", index=False)
    pd.DataFrame({"index": [0, 1], "metric/the_pile_a_val_loss": [3.0, 3.1]}).to_csv(folder / "train_pile_loss_1m.csv", index=False)
    return ["fit", str(folder), "-o", x.path("new.nc")], r"train_mixture_1m\.csv, row 3, column 'index': index 0 appears twice"


@case
def chinchilla_missing_column(x):
    path = x.csv(pd.DataFrame({"Model Size": [1e8], "Training FLOP": [1e19], "los": [3.0]}), "points.csv")
    return ["fit", path, "-o", x.path("new.nc"), "--format", "chinchilla"], r"points\.csv, column 'loss': not Epoch's Chinchilla format"


@case
def chinchilla_bad_number(x):
    frame = pd.DataFrame({"Model Size": ["1e8", "big", "3e8"], "Training FLOP": [1e19, 2e19, 3e19], "loss": [3.0, 2.9, 2.8]})
    return [
        "fit",
        x.csv(frame, "points.csv"),
        "-o",
        x.path("new.nc"),
        "--format",
        "chinchilla",
    ], r"points\.csv, row 3, column 'Model Size': Model Size is 'big'; it must be a positive number"


# -- settings files of fit ----------------------------------------------------------------------------------


@case
def config_unknown_key(x):
    return x.fit_args(x.frame, "--config", x.text("lawz: explicit\n", "config.yaml")), r"config\.yaml.*lawz"


@case
def config_yaml_syntax(x):
    return x.fit_args(x.frame, "--config", x.text("law: [explicit\n", "config.yaml")), r"config\.yaml"


@case
def config_file_missing(x):
    return x.fit_args(x.frame, "--config", x.path("none.yaml")), r"none\.yaml"


@case
def weights_unknown_domain(x):
    weights = {d: 1 / 22 for d in x.frame["valid_domain"].unique()} | {"Wikipedia (en)": 0.1}
    return x.fit_args(x.frame, "--valid-weights", x.text(json.dumps(weights), "w.json")), r"w\.json.*'Wikipedia \(en\)'.*not a validation domain"


@case
def weights_negative(x):
    weights = {d: 1 / 22 for d in x.frame["valid_domain"].unique()} | {"Github": -1}
    return x.fit_args(x.frame, "--valid-weights", x.text(json.dumps(weights), "w.json")), r"w\.json: weight of 'Github' is -1"


@case
def weights_missing_domain(x):
    weights = {d: 1 / 21 for d in x.frame["valid_domain"].unique() if d != "Github"}
    return x.fit_args(x.frame, "--valid-weights", x.text(json.dumps(weights), "w.json")), r"w\.json: no weight for validation domain\(s\) \['Github'\]"


@case
def weights_empty_file(x):
    return x.fit_args(x.frame, "--valid-weights", x.text("", "w.json")), r"w\.json.*(empty|cannot read)"


@case
def weights_not_a_mapping(x):
    return x.fit_args(x.frame, "--valid-weights", x.text("[1, 2]", "w.json")), r"w\.json: the weights file must map names to numbers"


@case
def groups_unknown_domain(x):
    return x.fit_args(
        x.frame, "--groups", x.text(json.dumps({"code": ["Github", "Gitlab"]}), "g.json")
    ), r"g\.json: group 'code' names domain\(s\) \['Gitlab'\] not in the data"


@case
def schedule_file_missing(x):
    return x.fit_args(x.frame, "--schedule", x.path("sched.json")), r"sched\.json"


# -- predict --------------------------------------------------------------------------------------------------


@case
def fit_file_missing(x):
    return ["predict", x.path("none.nc"), "--mixtures", x.mixtures(), "-o", x.out], r"no fit at \S*none\.nc"


@case
def fit_file_empty(x):
    return ["predict", x.text("", "empty.nc"), "--mixtures", x.mixtures(), "-o", x.out], r"empty\.nc is empty"


@case
def fit_file_is_a_csv(x):
    return ["predict", x.csv(x.frame, "fit.csv"), "--mixtures", x.mixtures(), "-o", x.out], r"fit\.csv could not be read as a bayes_mixlaw fit file"


@case
def fit_file_damaged(x):
    raw = bytearray((x.folder / "fit.nc").read_bytes())
    i = len(raw) // 2
    raw[i : i + 4096] = np.random.default_rng(0).bytes(4096)
    return ["predict", x.text(bytes(raw), "damaged.nc"), "--mixtures", x.mixtures(), "-o", x.out], r"damaged\.nc is damaged"


@case
def fit_file_damaged_metadata(x):
    raw = bytearray((x.folder / "fit.nc").read_bytes())
    raw[600 : 600 + 4096] = np.random.default_rng(1).bytes(4096)  # past the signature, into HDF5's own structures
    return ["predict", x.text(bytes(raw), "damaged.nc"), "--mixtures", x.mixtures(), "-o", x.out], r"damaged\.nc is damaged"


@case
def fit_file_is_a_folder(x):
    return ["predict", str(x.folder), "--mixtures", x.mixtures(), "-o", x.out], r"is a folder, not a fit file"


@case
def mixtures_file_missing(x):
    return x.predict_args(x.path("none.csv")), r"no such file: \S*none\.csv"


@case
def mixtures_file_empty(x):
    return x.predict_args(x.text("", "m.csv")), r"m\.csv.*is empty"


@case
def mixtures_header_only(x):
    return x.predict_args(x.text("name," + ",".join(f"mix:{d}" for d in FIVE) + "\n", "m.csv")), r"m\.csv: the mixtures table is empty"


@case
def mixtures_missing_domain(x):
    return x.predict_args(x.mixtures([{"name": "a", **{f"mix:{d}": 0.25 for d in FIVE[:4]}}])), r"m\.csv, column 'mix:internet'.*missing \['mix:internet'\]"


@case
def mixtures_extra_domain(x):
    return x.predict_args(x.mixtures([{"name": "a", **{f"mix:{d}": 0.2 for d in FIVE}, "mix:code": 0}])), r"column 'mix:code'.*not in the fit: \['mix:code'\]"


@case
def mixtures_sum_not_one(x):
    rows = [{"name": "uniform", **{f"mix:{d}": 0.2 for d in FIVE}}, {"name": "heavy", **{f"mix:{d}": 0.3 for d in FIVE}}]
    return x.predict_args(x.mixtures(rows)), r"m\.csv, row 3.*proportions of mixture 'heavy' sum to 1\.5, not 1"


@case
def mixtures_negative(x):
    return x.predict_args(
        x.mixtures([{"name": "a", **{f"mix:{d}": 0.3 for d in FIVE[:4]}, "mix:internet": -0.2}])
    ), r"m\.csv, row 2, column 'mix:internet': proportion -0.2 is outside"


@case
def mixtures_not_a_number(x):
    return x.predict_args(
        x.mixtures([{"name": "a", **{f"mix:{d}": 0.2 for d in FIVE[:4]}, "mix:internet": "x"}])
    ), r"row 2, column 'mix:internet': proportion 'x' is missing or not a number"


@case
def mixtures_unknown_column(x):
    return x.predict_args(x.mixtures([{"label": "a", **{f"mix:{d}": 0.2 for d in FIVE}}])), r"m\.csv, column 'label': unknown column"


@case
def mixtures_semicolon_separated(x):
    return x.predict_args(x.mixtures(sep=";")), r"m\.csv.*separated by ';'"


@case
def mixtures_duplicate_names(x):
    rows = [{"name": "a", **{f"mix:{d}": 0.2 for d in FIVE}}, {"name": "a", **{f"mix:{d}": float(d == "internet") for d in FIVE}}]
    return x.predict_args(x.mixtures(rows)), r"m\.csv, row 3, column 'name': the name 'a' is given twice"


@case
def predict_ci_out_of_range(x):
    return x.predict_args(x.mixtures(), "--ci", "1.5"), r"ci must be between 0 and 1"


@case
def predict_kind_unknown(x):
    return x.predict_args(x.mixtures(), "--kind", "posterior"), r"kind must be 'mean' or 'predictive', not 'posterior'"


@case
def predict_scale_for_one_scale_fit(x):
    return x.predict_args(x.mixtures(), "--params", "1e9"), r"mixing law at one scale; --params/--tokens/--step need the nested model"


@case
def predict_without_mixtures(x):
    return ["predict", x.fit, "-o", x.out], r"is a mixing-law fit: give --mixtures M\.csv"


@case
def predict_output_exists(x):
    return ["predict", x.fit, "--mixtures", x.mixtures(), "-o", x.fit], r"fit\.nc exists; pass --force"


@case
def predict_schedule_for_mixing_fit(x):
    return x.predict_args(x.mixtures(), "--schedule", x.text("{}", "s.json")), r"is not a schedule-aware fit"


# -- optimize, suggest, report ------------------------------------------------------------------------------


@case
def caps_unknown_domain(x):
    caps = x.text(json.dumps({"caps": {"code": 0.3}}), "caps.json")
    return ["optimize", x.fit, "-o", x.out, "--caps", caps], r"caps\.json: cap for 'code', which is not a training domain of the fit"


@case
def caps_infeasible(x):
    caps = x.text(json.dumps({d: 0.1 for d in FIVE}), "caps.json")
    return ["optimize", x.fit, "-o", x.out, "--caps", caps], r"caps\.json.*caps sum to 0\.5"


@case
def caps_minimum_above_cap(x):
    caps = x.text(json.dumps({"caps": {"prose": 0.2}, "minimums": {"prose": 0.3}}), "caps.json")
    return ["optimize", x.fit, "-o", x.out, "--caps", caps], r"caps\.json: the minimum of 'prose' \(0\.3\) exceeds its cap \(0\.2\)"


@case
def caps_not_a_mapping(x):
    return ["optimize", x.fit, "-o", x.out, "--caps", x.text("[0.1]", "caps.json")], r"caps\.json: expected a mapping"


@case
def optimize_unknown_target(x):
    return ["optimize", x.fit, "-o", x.out, "--target", "pile"], r"unknown target 'pile'"


@case
def suggest_zero_runs(x):
    return ["suggest", x.fit, "-o", x.out, "-n", "0"], r"-n must be at least 1, got 0"


@case
def report_output_is_a_file(x):
    notes = x.text("notes", "notes.txt")
    return ["report", x.fit, "-o", notes], r"notes\.txt is a file, not a folder"


@case
def report_along_unknown(x):
    return ["report", x.fit, "-o", x.path("rep"), "--along", "code"], r"--along 'code' is not a training domain"


@case
def report_mixture_for_one_scale_fit(x):
    return ["report", x.fit, "-o", x.path("rep"), "--mixture", "a"], r"--mixture picks the curves of a nested fit"


@case
def report_compare_missing(x):
    return ["report", x.fit, "-o", x.path("rep"), "--compare", x.path("other.nc")], r"no fit at \S*other\.nc"


@case
def report_caps_unknown_domain(x):
    caps = x.text(json.dumps({"caps": {"code": 0.3}}), "caps.json")
    return ["report", x.fit, "-o", x.path("rep"), "--caps", caps], r"caps\.json: cap for 'code', which is not a training domain"


@case
def report_caps_infeasible(x):
    caps = x.text(json.dumps({"minimums": {"prose": 0.7, "academic": 0.6}}), "caps.json")
    return ["report", x.fit, "-o", x.path("rep"), "--caps", caps], r"caps\.json: the minimums sum to 1\.300 > 1"


@case
def runs_duplicate_column(x):
    frame = x.frame.copy()
    frame.insert(len(frame.columns), "loss_copy", frame["loss"])
    x.csv(frame)
    text = (x.folder / "runs.csv").read_text().replace("loss_copy", "loss", 1)
    return ["fit", x.text(text, "runs.csv"), "-o", x.path("new.nc")], r"column 'loss\.1': unknown column\(s\) \['loss\.1'\]"


@case
def runs_parquet_damaged(x):
    return ["fit", x.text(b"PAR1" + bytes(200) + b"PAR1", "runs.parquet"), "-o", x.path("new.nc")], r"runs\.parquet: could not read the table"


@case
def weights_yaml_syntax(x):
    return x.fit_args(x.frame, "--valid-weights", x.text("Github: [1\n", "w.yaml")), r"w\.yaml: cannot read the weights file"


@case
def groups_named_total(x):
    return x.fit_args(x.frame, "--groups", x.text(json.dumps({"total": ["Github"]}), "g.json")), r"g\.json: group name 'total' clashes"


@case
def regmix_losses_without_mixture(x):
    folder = x.folder / "regmix"
    folder.mkdir()
    pd.DataFrame({"index": [0, 1], "train_the_pile_a": [0.5, 1], "train_the_pile_b": [0.5, 0]}).to_csv(folder / "train_mixture_1m.csv", index=False)
    pd.DataFrame({"index": [0, 1, 7], "metric/the_pile_a_val_loss": [3.0, 3.1, 3.2]}).to_csv(folder / "train_pile_loss_1m.csv", index=False)
    return ["fit", str(folder), "-o", x.path("new.nc")], r"train_pile_loss_1m\.csv, column 'index': runs 7 have losses but no mixture"


@case
def predict_ci_zero(x):
    return x.predict_args(x.mixtures(), "--ci", "0"), r"ci must be between 0 and 1 \(exclusive\), got 0"


@case
def caps_value_out_of_range(x):
    caps = x.text(json.dumps({"caps": {"prose": 1.5}}), "caps.json")
    return ["optimize", x.fit, "-o", x.out, "--caps", caps], r"caps\.json: cap of 'prose' is 1\.5; it must be a proportion in \[0, 1\]"


KINDS = len(CASES)


@pytest.mark.parametrize("kind", list(CASES))
def test_bad_input_is_refused_clearly(kind, base, mock_mixing_fit, tmp_path, mocked_sampling):
    x = Inputs(tmp_path, base, mock_mixing_fit)
    args, pattern = CASES[kind](x)
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    result = cli.invoke(app, args)
    text = flat(result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit), f"{kind}: {result.exception!r}\n{text}"
    assert result.exit_code == 2, f"{kind}: exit {result.exit_code}: {text}"
    assert "Traceback" not in text and "np.int64" not in text and "np.float64" not in text, text
    assert re.search(pattern, text), f"{kind}: {text!r} does not match {pattern!r}"
    after = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    assert {k: v for k, v in after.items() if k in before} == before, "an input was changed"
    assert not {"new.nc", "out.csv", "rep"} & (set(after) - set(before)), "an output was written"


def test_the_suite_covers_sixty_kinds():
    assert KINDS >= 60


# -- what is accepted, but said in words ----------------------------------------------------------------------


def test_chinchilla_loader_says_which_rows_it_drops(shared_data):
    from bayes_mixlaw.runs import load_runs

    with pytest.warns(UserWarning, match=r"svg_extracted_data\.csv: left out the 5 highest losses .*rows .*Epoch's refit"):
        table = load_runs(shared_data / "chinchilla" / "svg_extracted_data.csv")
    assert len(table.data) == 240


def test_weights_of_domains_the_data_lack_are_explained(tmp_path):
    from bayes_mixlaw.targets import Targets, TargetsError

    path = tmp_path / "w.json"
    path.write_text(json.dumps({"Github": 1, "Pile-CC": 1, "ArXiv": 2}))
    with pytest.warns(UserWarning, match=r"w\.json: weights 1 validation domain\(s\) the data do not have \(ArXiv\).*renormalised over the 2 present"):
        Targets.from_files(path).check(["Github", "Pile-CC"])
    path.write_text(json.dumps({"Github": 1, "Pile_CC": 1}))
    with pytest.raises(
        TargetsError, match=r"w\.json: no weight for validation domain\(s\) \['Pile-CC'\].*'Pile_CC' in the file is not in the data: is it 'Pile-CC'\?"
    ):
        Targets.from_files(path).check(["Github", "Pile-CC"])


def test_few_distinct_mixtures_warn(base, mocked_sampling):
    from bayes_mixlaw import MixingLaw, MixingLawConfig

    runs = base[base["run"].isin(base["run"].unique()[:3])]
    with pytest.warns(UserWarning, match="3 distinct pilot mixtures for 5 training domains"):
        MixingLaw(MixingLawConfig(sampler={"draws": 5, "chains": 1})).fit(runs, progress=False)
