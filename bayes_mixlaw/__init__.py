"""bayes_mixlaw: Bayesian data mixing laws and nested scaling laws for choosing pretraining mixtures."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("bayes_mixlaw")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

from bayes_mixlaw.config import MixingLawConfig, NestedLawConfig, SamplerConfig, ScalingLawConfig
from bayes_mixlaw.continual import ContinualLaw, ContinualLawConfig
from bayes_mixlaw.inference import SamplingWarning
from bayes_mixlaw.mixing import MixingLaw
from bayes_mixlaw.model import BayesianLaw, NotFittedError
from bayes_mixlaw.nested import NestedLaw
from bayes_mixlaw.scaling import ChinchillaLaw
from bayes_mixlaw.runs import RunsTable, RunsTableError, load_runs, read_mixtures
from bayes_mixlaw.targets import Targets

__all__ = [
    "BayesianLaw",
    "ChinchillaLaw",
    "ContinualLaw",
    "ContinualLawConfig",
    "NotFittedError",
    "ScalingLawConfig",
    "MixingLaw",
    "MixingLawConfig",
    "NestedLaw",
    "NestedLawConfig",
    "RunsTable",
    "RunsTableError",
    "SamplerConfig",
    "SamplingWarning",
    "Targets",
    "load_runs",
    "read_mixtures",
    "__version__",
]
