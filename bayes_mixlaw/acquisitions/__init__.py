"""Acquisitions: one module per acquisition function, found through a registry, as BoTorch's input constructors are.

:func:`~bayes_mixlaw.bo.suggest` looks the acquisition up by name (:func:`get_acquisition`), refuses the options it
does not take (the error names the acquisition, the options it takes and the acquisitions that take the refused
one), builds the law's :class:`~bayes_mixlaw.bo.LawEnsembleModel`, asks the acquisition to ``build`` a BoTorch
``AcquisitionFunction`` over it, optimises that (``optimize_acqf`` over the capped simplex, or
``optimize_acqf_discrete`` among a grid or candidates) and returns the table. The command line's ``--acquisition``
choices and help, ``-n``'s limits and LOOP.yaml's ``acquisition`` come from the registry. The packaged acquisitions:

* ``qlognei`` (the default): q-log-noisy-expected-improvement over the pilots' mixtures; option ``residual_gp_model``;
* ``thompson``: each suggestion the optimum of one random posterior draw (its own optimiser); option ``exploit``;
* ``info``: the expected reduction of the optimum's uncertainty per unit cost (its own optimiser); options ``costs``, ``pool``;
* ``kg``: the expected improvement of the decision per unit cost (a knowledge gradient on the draws; ``info``'s optimiser and options);
* ``qucb``: q-upper-confidence-bound, optimistic about the spread of the draws; option ``beta``.

Adding an acquisition: one new file plus its test
-------------------------------------------------
A new acquisition is one new module in this folder and one test; nothing else changes (the package imports every
module here on first use, so ``suggest``, ``--acquisition``'s choices and help, ``-n``'s limit and the option checks
pick it up). ``qucb.py`` is the example to copy::

    from bayes_mixlaw.acquisitions.base import register_acquisition

    @register_acquisition("mine", "one line for --help", options={"beta": "what it does"}, max_suggestions=(16, "why"))
    def build(law, model, *, context):          # model: the law's draws as a BoTorch EnsembleModel of the negated loss
        from botorch.acquisition.monte_carlo import qUpperConfidenceBound
        return qUpperConfidenceBound(model, beta=context.option("beta", 0.2))

An acquisition that is not an ``AcquisitionFunction`` (Thompson sampling, information gain) subclasses
:class:`Acquisition`, registers the class and overrides ``optimize`` (see ``thompson.py``, ``info.py``). Import
torch and BoTorch inside the functions: the command line reads the registry without loading them. Options reach an
acquisition as ``suggest(..., beta=1.0)`` in Python and ``--option beta=1.0`` on the command line.
"""

from bayes_mixlaw.acquisitions.base import (
    Acquisition,
    Proposal,
    SuggestContext,
    acquisition_descriptions,
    acquisition_names,
    acquisitions,
    check_suggestions,
    get_acquisition,
    register_acquisition,
    unregister_acquisition,
)

__all__ = [
    "Acquisition",
    "Proposal",
    "SuggestContext",
    "acquisition_descriptions",
    "acquisition_names",
    "acquisitions",
    "check_suggestions",
    "get_acquisition",
    "register_acquisition",
    "unregister_acquisition",
]
