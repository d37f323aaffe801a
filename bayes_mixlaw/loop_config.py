"""LOOP.yaml: what ``bayes-mixlaw loop`` runs, as a pydantic model with errors that name the key and file.

::

    trainer:                      # exactly one of reference / command / callable
      reference: {threads: 1}     # the package's torch trainer (bayes_mixlaw.trainer), options passed to it
      # command: "sbatch --wait train.sh --mix {mixture_json} --params {params} --steps {steps} --out {out_dir}"
      # callable: "my_lab.train:pilot"     # f(pilot, out_dir) -> DataFrame of rows, or None after writing rows.csv
      rows_file: rows.csv         # where a command leaves its rows, in {out_dir}
      timeout_s: 600              # an attempt running longer is stopped and counts as failed
      retries: 2                  # attempts after the first
    domains: [code, prose, numbers]  # training domains (default: the reference trainer's)
    backend: {kind: local, workers: 1}   # local | ray (address, num_cpus) | submitit (cluster, parameters)
    budget: {runs: 8, cost: null, max_failures: 5}   # pilots to complete; and/or params x steps over all attempts
    pilots: {sizes: [11712, 35712], steps: [150], schedule: constant}
    target: {params: 1000000, step: 2000}      # the run the mixture is for (nested law: pilots at >= 2 sizes)
    initial_design: {runs: 4, alpha: 1.0}      # Dirichlet(alpha) mixtures, sizes in turn, the longest steps
    acquisition: kg               # kg or info (value per unit cost, pick size and length too), thompson, qlognei, qucb (bayes_mixlaw.acquisitions)
    batch_size: 2                 # pilots suggested per round
    caps: {caps: {numbers: 0.5}, minimums: {}}  # or a path to a caps file
    valid_weights: null           # {valid_domain: weight} or a path; 'total' is their weighted sum (default: the mean)
    costs: null                   # {params: cost of one step}; default params (so cost = params x steps)
    tokens_per_step: null         # given: costs and budget.cost in FLOPs, 6 x params x steps x tokens_per_step
    fit: {method: nuts, final: nuts, seed: 0}   # the rounds' fits choose pilots (fast: quicker, chooses worse); the final one (fit.nc, the answer)
    seed: 0
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

REFERENCE_DOMAINS = ["code", "prose", "numbers"]


class LoopConfigError(ValueError):
    """A LOOP.yaml that cannot be used; the message names the file and the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TrainerConfig(_Strict):
    reference: dict | None = Field(None, description="the package's reference trainer; options for bayes_mixlaw.trainer.train_pilot")
    command: str | None = Field(None, description="a shell command template with {mixture_json}, {params}, {steps}, {out_dir}, ...")
    callable: str | None = Field(None, description="'module:function' taking (pilot, out_dir)")
    rows_file: str = "rows.csv"
    timeout_s: float | None = Field(None, gt=0)
    retries: int = Field(2, ge=0)

    @model_validator(mode="after")
    def _one_trainer(self):
        given = [k for k in ("reference", "command", "callable") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of reference, command or callable (got {given or 'none'})")
        if self.callable is not None and ":" not in self.callable:
            raise ValueError(f"callable is 'module:function', got {self.callable!r}")
        return self


class BackendConfig(_Strict):
    kind: Literal["local", "ray", "submitit"] = "local"
    workers: int = Field(1, ge=1, description="pilots run at once")
    address: str | None = Field(None, description="ray: the cluster's address ('auto', 'ray://host:10001'); none starts a local runtime")
    num_cpus: float = Field(1, gt=0, description="ray: CPUs per pilot task")
    cluster: Literal["slurm", "local", "debug"] | None = Field(None, description="submitit: slurm, local (its local executor), or none for auto")
    parameters: dict = Field(default_factory=dict, description="submitit: executor.update_parameters(...), e.g. slurm_partition, gpus_per_node")


class BudgetConfig(_Strict):
    runs: int | None = Field(None, ge=1, description="pilots to complete")
    cost: float | None = Field(None, gt=0, description="params x steps summed over every attempt (or the costs given)")
    max_failures: int = Field(5, ge=1, description="pilots failing every attempt before the loop stops")

    @model_validator(mode="after")
    def _some_budget(self):
        if self.runs is None and self.cost is None:
            raise ValueError("give runs and/or cost")
        return self


class PilotsConfig(_Strict):
    sizes: list[int] = Field(..., min_length=1, description="model sizes the pilots may use (parameters)")
    steps: list[int] = Field(..., min_length=1, description="training lengths the pilots may use (optimiser steps)")
    schedule: str = "constant"

    @model_validator(mode="after")
    def _positive(self):
        for name in ("sizes", "steps"):
            values = getattr(self, name)
            if any(v < 1 for v in values):
                raise ValueError(f"{name} must be positive integers, got {values}")
            setattr(self, name, sorted(set(values)))
        return self


class TargetConfig(_Strict):
    params: float = Field(..., gt=0)
    step: float = Field(..., gt=0)


class DesignConfig(_Strict):
    runs: int = Field(4, ge=2, description="pilots before the first fit")
    alpha: float = Field(1.0, gt=0, description="Dirichlet concentration of the initial mixtures")


class FitSettings(_Strict):
    # NUTS until converged by default: on the 5Mix multi-fidelity benchmark the recommendation after converged refits
    # came within 0.5% of the target's optimum and stayed there in 4 of 4 seeds (median cost 0.68 beyond the initial
    # design), after fast refits (2 x (300 + 250) draws) in 3 of 4 (median 2.47) (benchmarks/README.md, session 25)
    method: Literal["fast", "nuts", "advi"] = Field("nuts", description="the rounds' fits, which choose the next pilots (fast: a short NUTS run)")
    final: Literal["fast", "nuts", "advi"] = Field(
        "nuts", description="the fit on every pilot the loop ends with (fit.nc, the best mixture): NUTS until converged by default"
    )
    seed: int = 0


class LoopConfig(_Strict):
    trainer: TrainerConfig
    domains: list[str] | None = None
    backend: BackendConfig = BackendConfig()
    budget: BudgetConfig
    pilots: PilotsConfig
    target: TargetConfig | None = None
    initial_design: DesignConfig = DesignConfig()
    # kg by default: on the multi-fidelity benchmark it came within 0.5% of the target's optimum sooner than info on
    # every seed run both ways (benchmarks/README.md, bo_fidelity.py, session 28)
    acquisition: str = Field("kg", description="a registered acquisition (bayes_mixlaw.acquisitions)")
    batch_size: int = Field(2, ge=1)
    caps: dict | str | None = None
    valid_weights: dict | str | None = None
    costs: dict[int, float] | None = None
    tokens_per_step: int | None = Field(None, gt=0, description="with it, costs and budget.cost are FLOPs: 6 x params x steps x tokens_per_step")
    fit: FitSettings = FitSettings()
    seed: int = 0
    poll_s: float = Field(0.5, gt=0, description="seconds between looks at the running pilots")

    @model_validator(mode="after")
    def _check(self):
        from bayes_mixlaw.acquisitions import acquisition_names

        if self.acquisition not in acquisition_names():
            raise ValueError(f"acquisition: unknown acquisition {self.acquisition!r}; choose one of {', '.join(acquisition_names())}")
        if self.domains is None:
            if self.trainer.reference is None:
                raise ValueError("domains: name the training domains (only the reference trainer has default ones)")
            self.domains = list(REFERENCE_DOMAINS)
        if len(set(self.domains)) != len(self.domains) or len(self.domains) < 2:
            raise ValueError(f"domains: at least two distinct training domains, got {self.domains}")
        if self.trainer.reference is not None and set(self.domains) - set(REFERENCE_DOMAINS):
            raise ValueError(f"domains: the reference trainer has {REFERENCE_DOMAINS}; {sorted(set(self.domains) - set(REFERENCE_DOMAINS))} are not among them")
        if len(self.pilots.sizes) >= 2 and self.target is None:
            raise ValueError("target: pilots at several sizes fit the nested law, which needs the target run's params and step")
        if self.costs is not None:
            missing = [s for s in self.pilots.sizes if s not in self.costs]
            if missing:
                raise ValueError(f"costs: no cost for pilot size(s) {missing}")
        return self

    @property
    def nested(self) -> bool:
        """Pilots at several sizes: the nested law (mixture x size x length); one size: the mixing law at the last step."""
        return len(self.pilots.sizes) >= 2

    def cost(self, params: int, steps: int) -> float:
        """One pilot's cost: ``costs[params] x steps`` where costs are given, else ``params x steps``,
        or the FLOPs ``6 x params x steps x tokens_per_step`` where that is given."""
        if self.costs:
            return float(self.costs[params]) * float(steps)
        if self.tokens_per_step:
            return 6.0 * float(params) * float(steps) * float(self.tokens_per_step)
        return float(params) * float(steps)


def load_loop_config(path: str | Path) -> LoopConfig:
    """Read and check LOOP.yaml; every problem is reported as ``FILE: key.path: what is wrong``."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise LoopConfigError(f"{path}: no such loop config") from None
    except (OSError, yaml.YAMLError) as err:
        raise LoopConfigError(f"{path}: cannot read the loop config: {err}") from None
    return loop_config_from_dict(data, str(path))


def loop_config_from_dict(data, source: str = "<loop config>") -> LoopConfig:
    if not isinstance(data, dict):
        raise LoopConfigError(f"{source}: a loop config is a mapping of settings, got {type(data).__name__}")
    try:
        return LoopConfig.model_validate(data)
    except ValidationError as err:
        problems = []
        for e in err.errors():
            key = ".".join(str(x) for x in e["loc"]) or "(top level)"
            message = e["msg"].removeprefix("Value error, ")
            if e["type"] == "extra_forbidden":
                message = "unknown key"
            problems.append(f"{key}: {message}")
        raise LoopConfigError(f"{source}: " + "; ".join(problems)) from None
