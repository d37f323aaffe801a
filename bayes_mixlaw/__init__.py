"""bayes_mixlaw: Bayesian data mixing laws and nested scaling laws for choosing pretraining mixtures."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("bayes_mixlaw")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

# The laws import PyMC and friends (seconds): they load on first use, so a pilot's worker process or the
# reference trainer, which import bayes_mixlaw.runners / bayes_mixlaw.trainer, start without them.
_LAZY = {
    "MixingLawConfig": "config",
    "NestedLawConfig": "config",
    "SamplerConfig": "config",
    "ScalingLawConfig": "config",
    "ContinualLaw": "continual",
    "ContinualLawConfig": "continual",
    "SamplingWarning": "inference",
    "MixingLaw": "mixing",
    "BayesianLaw": "model",
    "NotFittedError": "model",
    "NestedLaw": "nested",
    "ChinchillaLaw": "scaling",
    "RunsTable": "runs",
    "RunsTableError": "runs",
    "load_runs": "runs",
    "read_mixtures": "runs",
    "Targets": "targets",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f"bayes_mixlaw.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'bayes_mixlaw' has no attribute {name!r}")


__all__ = [
    "BayesianLaw",
    "ChinchillaLaw",
    "ContinualLaw",
    "ContinualLawConfig",
    "MixingLaw",
    "MixingLawConfig",
    "NestedLaw",
    "NestedLawConfig",
    "NotFittedError",
    "RunsTable",
    "RunsTableError",
    "SamplerConfig",
    "SamplingWarning",
    "ScalingLawConfig",
    "Targets",
    "__version__",
    "load_runs",
    "read_mixtures",
]
