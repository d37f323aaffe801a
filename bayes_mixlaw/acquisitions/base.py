"""The acquisition interface, what :func:`~bayes_mixlaw.bo.suggest` hands it, and the registry (see the package docstring).

Importing this module (or any acquisition module) loads neither torch nor BoTorch: the command line reads the
registry's names and descriptions for its help, and the acquisitions import BoTorch when they build.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bayes_mixlaw.registry import PackageRegistry

#: the number of suggestions a gradient-optimised batch acquisition allows, and why (shared by qlognei and qucb)
SEQUENTIAL_BATCH_LIMIT = (
    16,
    (
        "each suggestion re-optimises the joint acquisition of itself and every earlier one, so time and memory "
        "grow faster than n (-n 16 takes minutes on 2 cores)"
    ),
)


@dataclass
class SuggestContext:
    """What one :func:`~bayes_mixlaw.bo.suggest` call asks, as an acquisition sees it.

    ``lo``/``hi``: each training domain's minimum and cap; ``choices``: the allowed mixtures (a tensor of rows over
    ``domains``, from ``grid`` or ``candidates``) or None for the whole capped simplex; ``options``: the acquisition's own
    options that were given (checked against its declared ones); ``scale``: the target scale of a nested fit (``{}`` for
    a one-scale fit); ``rng``: seeded with ``seed``.
    """

    law: Any
    n: int
    target: str
    draws: int
    seed: int
    domains: list[str]
    lo: np.ndarray
    hi: np.ndarray
    bounds: Any = None
    caps_source: str = "caps"
    grid: float | None = None
    choices: Any = None
    options: dict = field(default_factory=dict)
    scale: dict = field(default_factory=dict)
    rng: np.random.Generator | None = None

    def option(self, name: str, default=None):
        """The acquisition option ``name`` if it was given, else ``default``."""
        return self.options.get(name, default)

    def require_choices(self) -> None:
        """Refuse a batch larger than the allowed mixtures (a grid or candidates): suggestions are distinct."""
        if self.choices is not None and len(self.choices) < self.n:
            where = f"grid {self.grid}" if self.grid else "candidates"
            raise ValueError(f"only {len(self.choices)} allowed mixtures within the bounds ({where}); asked for {self.n}")


@dataclass
class Proposal:
    """An acquisition's answer: ``candidates`` (n rows over the training domains), their ``values`` (the acquisition's
    value of each, larger is better: the table is sorted by it), each row's ``labels`` (the table's ``acquisition``
    column; one string for all) and, for an acquisition that also picks the pilot's scale, each row's ``scales``."""

    candidates: Any
    values: Any
    labels: str | list[str]
    scales: list[dict] | None = None


class Acquisition:
    """One registered acquisition: its name, one-line description, the options it takes and its suggestion limit.

    ``build(law, model, *, context)`` returns the BoTorch ``AcquisitionFunction`` over ``model`` (the law's
    :class:`~bayes_mixlaw.bo.LawEnsembleModel`, negated loss: larger is better); :meth:`optimize` maximises it with
    ``optimize_acqf`` (the simplex as an equality constraint, each domain's minimum and cap as bounds) or, where
    ``context.choices`` holds the allowed mixtures, ``optimize_acqf_discrete``. An acquisition that is no
    ``AcquisitionFunction`` (Thompson sampling, information gain) subclasses this and overrides :meth:`optimize` too.
    ``options``: {name: one-line help} of the options it takes beyond :func:`~bayes_mixlaw.bo.suggest`'s own;
    ``max_suggestions``: (limit, why) or None; ``title``: its name in progress lines; ``order``: its place in listings.
    """

    def __init__(
        self,
        name: str,
        description: str,
        *,
        options: dict[str, str] | None = None,
        max_suggestions: tuple[int, str] | None = None,
        title: str | None = None,
        order: int = 100,
        build: Callable | None = None,
    ):
        self.name, self.description, self.options = name, description, dict(options or {})
        self.max_suggestions, self.title, self.order, self._build = max_suggestions, title or name, order, build

    def build(self, law, model, *, context: SuggestContext):
        if self._build is None:
            raise NotImplementedError(f"acquisition '{self.name}' has no builder")
        return self._build(law, model, context=context)

    def label(self, context: SuggestContext) -> str:
        """The table's ``acquisition`` column for this call."""
        return self.name

    def optimize(self, acqf, context: SuggestContext) -> Proposal:
        """``context.n`` distinct maximisers of ``acqf``, each with its value alone (no pending points)."""
        import torch
        from botorch.optim import optimize_acqf, optimize_acqf_discrete

        from bayes_mixlaw.inference import Progress

        context.require_choices()
        n = context.n
        if context.choices is not None:
            with Progress(f"{self.title}: choosing {n} of {len(context.choices):,} allowed mixtures"):
                candidates, _ = optimize_acqf_discrete(acqf, q=n, choices=context.choices, unique=True)
        else:
            box = torch.as_tensor(np.stack([context.lo, context.hi]), dtype=torch.float64)
            m = len(context.domains)
            simplex = [(torch.arange(m), torch.ones(m, dtype=torch.float64), 1.0)]  # sum_j r_j = 1
            with Progress(f"{self.title}: optimising the acquisition for {n} suggestion(s), one after another"):
                candidates, _ = optimize_acqf(
                    acqf, bounds=box, q=n, num_restarts=4, raw_samples=64, equality_constraints=simplex, sequential=True, options={"maxiter": 100}
                )
        with torch.no_grad():
            values = torch.stack([acqf(c[None, None]) for c in candidates])
        return Proposal(candidates, values, self.label(context))

    def check_n(self, n: int, option: str = "n") -> None:
        """Refuse a number of suggestions below 1 or above this acquisition's limit, naming ``option`` (the command
        line's ``-n``), the limit, the reason and the acquisitions that allow more."""
        if n < 1:
            raise ValueError(f"{option} must be at least 1, got {n}")
        if self.max_suggestions and n > self.max_suggestions[0]:
            limit, why = self.max_suggestions
            others = [f"{a.name} up to {a.max_suggestions[0]}" for a in acquisitions() if a.max_suggestions and a.max_suggestions[0] > limit]
            raise ValueError(
                f"{option} {n} is above the limit of {limit} suggestions for the {self.name} acquisition: {why}; ask for fewer and "
                f"refit with their results before asking again{' (or ' + ', '.join(others) + ')' if others else ''}"
            )

    def check_options(self, given: dict, flags: dict[str, str] | None = None) -> dict:
        """The options in ``given`` that are set (not None, not False), after refusing any this acquisition does not
        take: the error names the acquisition, the options it takes and the acquisitions that take the refused one.
        ``flags``: how to show an option's name (the command line's ``--exploit`` for ``exploit``)."""
        show = lambda name: (flags or {}).get(name, name)  # noqa: E731
        chosen = {k: v for k, v in given.items() if v is not None and v is not False}
        for name in chosen:
            if name not in self.options:
                takes = ", ".join(map(show, self.options)) or "no options of its own"
                others = [a.name for a in acquisitions() if name in a.options]
                where = (
                    f"{show(name)} works with {' or '.join('--acquisition ' + o if flags else o for o in others)}"
                    if others
                    else f"no acquisition takes {show(name)}"
                )
                raise ValueError(f"the {self.name} acquisition does not take {show(name)} (it takes {takes}); {where}")
        return chosen

    def __repr__(self) -> str:
        return f"<acquisition '{self.name}'>"


_REGISTRY = PackageRegistry(__package__)  # name -> Acquisition


def register_acquisition(
    name: str,
    description: str,
    *,
    options: dict[str, str] | None = None,
    max_suggestions: tuple[int, str] | None = None,
    title: str | None = None,
    order: int = 100,
):
    """Decorator: register a builder ``build(law, model, *, context) -> AcquisitionFunction`` (optimised by
    :meth:`Acquisition.optimize`) or an :class:`Acquisition` subclass (instantiated with these arguments) as ``name``.

    A name registered twice is an error (unregister the old one first). Returns its argument unchanged."""

    def decorate(obj):
        if not name or name != name.strip() or not description:
            raise ValueError(f"an acquisition needs a name and a one-line description (it is shown in --help), got {name!r}, {description!r}")
        if name in _REGISTRY:
            raise ValueError(f"an acquisition named '{name}' is registered already; unregister it first")
        kwargs = {"options": options, "max_suggestions": max_suggestions, "title": title, "order": order}
        if isinstance(obj, type) and issubclass(obj, Acquisition):
            instance = obj(name, description, **kwargs)
        elif callable(obj):
            instance = Acquisition(name, description, build=obj, **kwargs)
        else:
            raise TypeError(f"register_acquisition decorates a builder function or an Acquisition subclass, not {type(obj).__name__}")
        _REGISTRY[name] = instance
        return obj

    return decorate


def unregister_acquisition(name: str) -> Acquisition:
    """Remove an acquisition from the registry (tests, or replacing a packaged one); returns it."""
    return _REGISTRY.remove(name, "acquisition", acquisition_names)


def acquisitions() -> list[Acquisition]:
    """The registered acquisitions in listing order (``order``, then name)."""
    return sorted(_REGISTRY.discover().values(), key=lambda a: (a.order, a.name))


def acquisition_names() -> list[str]:
    """The registered acquisitions' names, the default (``qlognei``) first."""
    return [a.name for a in acquisitions()]


def acquisition_descriptions() -> dict[str, str]:
    """Each registered acquisition's one-line description, in listing order."""
    return {a.name: a.description for a in acquisitions()}


def get_acquisition(name: str) -> Acquisition:
    """The acquisition registered as ``name``; an unknown name is an error listing those there are."""
    if name not in _REGISTRY.discover():
        raise ValueError(f"unknown acquisition {name!r}; choose one of {', '.join(acquisition_names())}")
    return _REGISTRY[name]


def check_suggestions(n: int, acquisition: str, option: str = "n") -> None:
    """Refuse a number of suggestions below 1 or above ``acquisition``'s limit (:meth:`Acquisition.check_n`)."""
    get_acquisition(acquisition).check_n(n, option)
