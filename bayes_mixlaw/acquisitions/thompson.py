"""``thompson``: Thompson sampling, each suggestion the optimum of one random posterior draw.

No ``AcquisitionFunction``: the "acquisition" is the ensemble itself, and :meth:`Thompson.optimize` minimises every
draw's loss over the capped simplex (``bayes_mixlaw.optimize.minimize_batch``) or, among allowed mixtures (a grid or
candidates), takes each picked draw's best one not chosen yet. A suggestion's value is its draw's negated loss there.
Option ``exploit``: the first suggestion is instead the Bayes-optimal mixture (the minimum of the posterior mean), so
every batch also runs the current best guess (on the 17-domain RegMix simulator, one seed: regret 0.021 after 256
runs against 0.027 without, ``benchmarks/README.md``).
"""

from __future__ import annotations

from bayes_mixlaw.acquisitions.base import Acquisition, Proposal, register_acquisition


@register_acquisition(
    "thompson",
    "Thompson sampling: each suggestion the optimum of one random posterior draw",
    options={"exploit": "make the first suggestion the posterior-mean optimum (the current best guess)"},
    max_suggestions=(256, "each suggestion is the optimum of one of 256 posterior draws; more would repeat draws"),
    order=20,
)
class Thompson(Acquisition):
    def build(self, law, model, *, context):
        return model  # the draws themselves: f_s(r) = model._f

    def optimize(self, model, context) -> Proposal:
        context.require_choices()
        exploit = bool(context.option("exploit"))
        if context.choices is not None:
            candidates, values, labels = _among_choices(model, context, exploit)
        else:
            candidates, values, labels = _over_the_simplex(model, context, exploit)
        return Proposal(candidates, values, labels)


def _among_choices(model, context, exploit: bool):
    """Each picked draw's best allowed mixture not chosen yet (after the posterior-mean best one with ``exploit``)."""
    import torch

    choices, n = context.choices, context.n
    picks = context.rng.choice(model.n_draws, size=model.n_draws, replace=False)
    with torch.no_grad():
        values = model._f(choices[None].expand(model.n_draws, -1, -1))  # (S, C)
    chosen, acq = [], []
    if exploit:  # the allowed mixture with the lowest posterior mean loss
        mean = values.mean(dim=0)
        chosen.append(int(torch.argmin(mean)))
        acq.append(-float(mean[chosen[0]]))
    for s_ in picks:  # each draw's best allowed mixture not yet chosen
        if len(chosen) == n:
            break
        order = torch.argsort(values[s_])
        best = next(int(i) for i in order if int(i) not in chosen)
        chosen.append(best)
        acq.append(-float(values[s_, best]))
    return choices[chosen], torch.as_tensor(acq), _labels(n, exploit)


def _over_the_simplex(model, context, exploit: bool):
    """The optima of ``n`` random draws (``n - 1`` and the posterior-mean optimum first with ``exploit``)."""
    import torch

    from bayes_mixlaw.optimize import (
        minimize_batch,
        minimize_posterior_mean,
        random_feasible,
    )

    lo, hi, rng, n = context.lo, context.hi, context.rng, context.n
    n_draws_picked = n - exploit
    picks = rng.choice(model.n_draws, size=n_draws_picked, replace=model.n_draws < n_draws_picked)
    start = torch.as_tensor(random_feasible(8, lo, hi, rng))[None].expand(model.n_draws, -1, -1).clone()
    optima, _ = minimize_batch(model._f, start, lo, hi, steps=200, progress=f"thompson: each of {model.n_draws:,} draws' best mixture")
    candidates = optima[torch.as_tensor(picks, dtype=torch.long)]
    values = torch.zeros(0, dtype=torch.float64)
    if n_draws_picked:
        with torch.no_grad():
            value = -model._f(candidates[None].expand(model.n_draws, -1, -1))  # (S, n)
            values = value[torch.as_tensor(picks), torch.arange(n_draws_picked)]
    if exploit:  # the Bayes decision: minimise the posterior mean loss from the same starts
        optimum, optimum_value = minimize_posterior_mean(model._f, model.n_draws, start[0], lo, hi, steps=300)
        candidates = torch.cat([optimum[None], candidates])
        values = torch.cat([-optimum_value[None], values])
    return candidates, values, _labels(n, exploit)


def _labels(n: int, exploit: bool) -> list[str]:
    return ["posterior-mean optimum"] * exploit + ["thompson"] * (n - exploit)
