"""Choosing the next pilot runs: the fitted law's posterior as a BoTorch model.

The posterior draws of a law are an ensemble: draw s gives the function ``f_s(r)`` (expected target
loss at mixture r, at the target scale for a nested fit). :class:`LawEnsembleModel` wraps them as a
``botorch.models.ensemble.EnsembleModel`` whose output is ``-f_s(r)`` (BoTorch maximises), float64 and
differentiable in r, so BoTorch's Monte-Carlo acquisition functions run on it unchanged.

:func:`suggest` proposes q distinct mixtures in the capped simplex (sum to one, per-domain caps and
minimums) with

* ``qlognei``: q-log-noisy-expected-improvement over the pilots' mixtures (BoTorch's
  ``qLogNoisyExpectedImprovement``, optimised with the simplex as an equality constraint);
* ``thompson``: Thompson sampling, each suggestion the optimum of one random posterior draw; with
  ``exploit=True`` the first suggestion is instead the Bayes-optimal mixture (the minimum of the
  posterior mean), so every batch also runs the current best guess (on the 17-domain RegMix simulator,
  one seed: regret 0.021 after 256 runs against 0.027 without, ``benchmarks/README.md``);
* ``info``: the expected reduction of the posterior standard deviation of the target-scale optimum
  ``v_s = min_r f_s(r)``, by reweighting the draws with fantasised outcomes of the candidate run
  (importance weights ``p(y | draw s)``), per unit cost. For a nested fit the candidates are pilot
  mixtures at each pilot size and the longest pilot length, and the cost is parameters x steps
  (or the user's costs per size): a cheap small run that says as much about the target as a large one wins.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from botorch.models.ensemble import EnsembleModel

from bayes_mixlaw.inference import Progress
from bayes_mixlaw.optimize import (
    MixtureBounds,
    minimize_batch,
    minimize_posterior_mean,
    random_feasible,
    simplex_grid,
    within_bounds,
)
from bayes_mixlaw.runs import MIX_PREFIX, load_runs, read_mixtures, validate_runs

ACQUISITIONS = ("qlognei", "thompson", "info")
# the most suggestions one call makes, per acquisition, and why (time and memory grow with n)
MAX_SUGGESTIONS = {
    "qlognei": (16, ("each suggestion re-optimises the joint acquisition of itself and every earlier one, so time and memory "
                     "grow faster than n (-n 16 takes minutes on 2 cores)")),
    "thompson": (256, "each suggestion is the optimum of one of 256 posterior draws; more would repeat draws"),
    "info": (32, "suggestions are picked, at least 0.05 apart, from 400 random candidate mixtures per pilot size"),
}


def check_suggestions(n: int, acquisition: str, option: str = "n") -> None:
    """Refuse a number of suggestions below 1 or above the acquisition's limit (:data:`MAX_SUGGESTIONS`),
    naming ``option`` (the command line's ``-n``), the limit and the reason."""
    if n < 1:
        raise ValueError(f"{option} must be at least 1, got {n}")
    if acquisition in MAX_SUGGESTIONS and n > MAX_SUGGESTIONS[acquisition][0]:
        limit, why = MAX_SUGGESTIONS[acquisition]
        others = [f"{a} up to {m}" for a, (m, _) in MAX_SUGGESTIONS.items() if m > limit]
        raise ValueError(f"{option} {n} is above the limit of {limit} suggestions for the {acquisition} acquisition: {why}; ask for fewer and "
                         f"refit with their results before asking again{' (or ' + ', '.join(others) + ')' if others else ''}")


class LawEnsembleModel(EnsembleModel):
    """A fitted law's posterior draws as a BoTorch ensemble model of the negated target loss.

    ``target_function``: from ``law.target_function(...)``, mapping (S, n, M) to (S, n).
    ``forward(X)``: X (batch..., n, M) -> (batch..., S, n, 1).
    """

    def __init__(self, target_function, n_draws: int):
        super().__init__()
        self._f = target_function
        self._num_outputs = 1
        self.n_draws = n_draws

    @classmethod
    def from_law(cls, law, target: str = "total", *, draws: int = 256, seed: int = 0, **scale) -> "LawEnsembleModel":
        f = law.target_function(target, draws=draws, seed=seed, **scale)
        return cls(f, f.n_draws)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        batch, (n, m) = X.shape[:-2], X.shape[-2:]
        flat = X.reshape(1, -1, m).expand(self.n_draws, -1, -1)
        values = -self._f(flat)  # (S, batch * n)
        values = values.reshape(self.n_draws, *batch, n)
        return values.movedim(0, -2).unsqueeze(-1)


def observed_target(law, target: str = "total") -> tuple[np.ndarray, np.ndarray]:
    """The pilots' mixtures and their observed ``target`` loss (a one-scale mixing-law fit)."""
    if law.kind != "mixing_law":
        raise ValueError("the residual GP is built on a one-scale mixing-law fit")
    obs = law.idata["observed_data"].to_dataset().to_dataframe()
    wide = obs.pivot(index="obs_run", columns="obs_valid_domain", values="loss")[law.valid_domains]
    names, matrix = law.targets.matrix(law.valid_domains)
    runs = list(law.idata["constant_data"]["run"].values)
    mixtures = law.pilot_mixtures
    complete = wide.dropna()
    keep = [runs.index(r) for r in complete.index]
    return mixtures[keep], complete.to_numpy() @ matrix[names.index(target)]


def residual_gp(law, target: str = "total", *, draws: int = 256, seed: int = 0):
    """Semi-parametric model for a misspecified law: a GP (BoTorch ``SingleTaskGP``) on the negated
    target loss whose prior mean is the law's posterior mean, so the GP models what the law misses.
    Far from the pilots it falls back on the law; near them it follows the data."""
    import gpytorch
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import SingleTaskGP

    f = law.target_function(target, draws=draws, seed=seed)

    class LawMean(gpytorch.means.Mean):
        def forward(self, x):
            batch, (n, m) = x.shape[:-2], x.shape[-2:]
            return -f(x.reshape(1, -1, m).expand(f.n_draws, -1, -1)).mean(0).reshape(*batch, n)

    mixtures, losses = observed_target(law, target)
    gp = SingleTaskGP(torch.as_tensor(mixtures), torch.as_tensor(-losses)[:, None], mean_module=LawMean(), outcome_transform=None)
    fit_gpytorch_mll(gpytorch.mlls.ExactMarginalLogLikelihood(gp.likelihood, gp))
    return gp


def _simplex_constraint(m: int):
    """BoTorch's equality constraint sum_j r_j = 1, as (indices, coefficients, rhs)."""
    return [(torch.arange(m), torch.ones(m, dtype=torch.float64), 1.0)]


def suggest(law, n: int = 4, *, acquisition: str = "qlognei", bounds: MixtureBounds | None = None, target: str = "total",
            draws: int = 256, seed: int = 0, caps_source: str = "caps", grid: float | None = None, residual_gp_model: bool = False,
            candidates: np.ndarray | None = None, exploit: bool = False, **scale) -> pd.DataFrame:
    """``n`` distinct mixtures to run next, best first: the ``mix:*`` proportions, the acquisition
    value and the predicted target loss with a 90% interval (plus ``params``/``step`` for a nested fit).
    ``grid``: only mixtures whose proportions are multiples of this step (pilots trained on a grid).
    ``candidates``: only these mixtures (rows over the training domains), e.g. a RegMix-style sample
    of plausible mixtures; those outside the bounds are dropped.
    ``residual_gp_model``: run ``qlognei`` on the law-plus-GP model (:func:`residual_gp`) instead of the law.
    ``exploit`` (``thompson`` only): the first suggestion is the posterior-mean optimum, the others Thompson draws."""
    if acquisition not in ACQUISITIONS:
        raise ValueError(f"unknown acquisition {acquisition!r}; choose one of {', '.join(ACQUISITIONS)}")
    check_suggestions(n, acquisition)
    if acquisition == "info":
        return suggest_informative(law, n, bounds=bounds, target=target, draws=draws, seed=seed, caps_source=caps_source, grid=grid, **scale)
    domains = law.train_domains
    lo, hi = (bounds or MixtureBounds()).arrays(domains, caps_source)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    if residual_gp_model and acquisition != "qlognei":
        raise ValueError("the residual-GP model works with --acquisition qlognei")
    model = LawEnsembleModel.from_law(law, target, draws=draws, seed=seed, **scale)
    acq_model = residual_gp(law, target, draws=draws, seed=seed) if residual_gp_model else model
    if grid and candidates is not None:
        raise ValueError("give a grid or candidates, not both")
    choices = torch.as_tensor(simplex_grid(len(domains), grid, lo, hi)) if grid else None
    if candidates is not None:
        candidates = np.asarray(candidates, dtype=float)
        if candidates.ndim != 2 or candidates.shape[1] != len(domains):
            raise ValueError(f"candidates must be rows of {len(domains)} non-negative proportions summing to 1 (training domains {domains})")
        checked = read_mixtures(pd.DataFrame(candidates, columns=[MIX_PREFIX + d for d in domains]), domains, tolerance=1e-6)
        choices = torch.as_tensor(within_bounds(checked.to_numpy(dtype=float), lo, hi))
    if exploit and acquisition != "thompson":
        raise ValueError("exploit (the posterior-mean optimum as the first suggestion) works with --acquisition thompson")
    if choices is not None and len(choices) < n:
        raise ValueError(f"only {len(choices)} allowed mixtures within the bounds ({'grid ' + str(grid) if grid else 'candidates'}); asked for {n}")
    if acquisition == "thompson" and choices is not None:
        picks = rng.choice(model.n_draws, size=model.n_draws, replace=False)
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
        candidates, acq_values = choices[chosen], torch.as_tensor(acq)
    elif acquisition == "thompson":
        n_draws_picked = n - exploit
        picks = rng.choice(model.n_draws, size=n_draws_picked, replace=model.n_draws < n_draws_picked)
        start = torch.as_tensor(random_feasible(8, lo, hi, rng))[None].expand(model.n_draws, -1, -1).clone()
        optima, _ = minimize_batch(model._f, start, lo, hi, steps=200, progress=f"thompson: each of {model.n_draws:,} draws' best mixture")
        candidates = optima[torch.as_tensor(picks, dtype=torch.long)]
        acq_values = torch.zeros(0, dtype=torch.float64)
        if n_draws_picked:
            with torch.no_grad():
                value = -model._f(candidates[None].expand(model.n_draws, -1, -1))  # (S, n)
                acq_values = value[torch.as_tensor(picks), torch.arange(n_draws_picked)]
        if exploit:  # the Bayes decision: minimise the posterior mean loss from the same starts
            optimum, optimum_value = minimize_posterior_mean(model._f, model.n_draws, start[0], lo, hi, steps=300)
            candidates = torch.cat([optimum[None], candidates])
            acq_values = torch.cat([-optimum_value[None], acq_values])
    else:
        from botorch.acquisition.logei import qLogNoisyExpectedImprovement
        from botorch.optim import optimize_acqf

        acqf = qLogNoisyExpectedImprovement(acq_model, X_baseline=torch.as_tensor(law.pilot_mixtures, dtype=torch.float64), prune_baseline=True)
        if choices is not None:
            from botorch.optim import optimize_acqf_discrete

            with Progress(f"qLogNEI: choosing {n} of {len(choices):,} allowed mixtures"):
                candidates, _ = optimize_acqf_discrete(acqf, q=n, choices=choices, unique=True)
        else:
            box = torch.as_tensor(np.stack([lo, hi]), dtype=torch.float64)
            with Progress(f"qLogNEI: optimising the acquisition for {n} suggestion(s), one after another"):
                candidates, _ = optimize_acqf(acqf, bounds=box, q=n, num_restarts=4, raw_samples=64,
                                              equality_constraints=_simplex_constraint(len(domains)), sequential=True, options={"maxiter": 100})
        with torch.no_grad():
            acq_values = torch.stack([acqf(c[None, None]) for c in candidates])
    frame = pd.DataFrame(candidates.detach().numpy().clip(0, 1), columns=[MIX_PREFIX + d for d in domains])
    frame = frame.div(frame.sum(axis=1), axis=0)
    frame.insert(0, "name", [f"suggestion {i + 1}" for i in range(n)])
    prediction = law.predict(frame, ci=0.9, seed=seed, **scale)
    prediction = prediction[prediction["target"] == target].reset_index(drop=True)
    label = acquisition + (" (law + residual GP)" if residual_gp_model else "")
    prediction.insert(len(prediction.columns) - 5, "acquisition", [label] * len(prediction))
    if exploit:
        prediction.loc[0, "acquisition"] = "posterior-mean optimum"
    prediction.insert(len(prediction.columns) - 5, "acquisition_value", acq_values.detach().numpy().ravel())
    return prediction.sort_values("acquisition_value", ascending=False, ignore_index=True)


def _observation_noise(law, frame: pd.DataFrame, target: str, seed: int, scale: dict) -> np.ndarray:
    """Standard deviation of a new run's observed ``target`` around the law, per candidate: the spread
    of posterior predictive minus posterior mean draws (observation noise, and a new run's run effects)."""
    predictive = law.predict_draws(frame, kind="predictive", seed=seed, **scale).sel(target=target).values
    mean = law.predict_draws(frame, kind="mean", seed=seed, **scale).sel(target=target).values
    return (predictive - mean).reshape(-1, len(frame)).std(axis=0)


def information_gain(law, candidates: np.ndarray, *, target: str = "total", draws: int = 256, seed: int = 0, fantasies: int = 64,
                     bounds: MixtureBounds | None = None, candidate_scale: dict | None = None, target_scale: dict | None = None) -> np.ndarray:
    """Expected reduction of the posterior standard deviation of ``min_r f_s(r)`` (the best achievable
    target loss, in loss units) from one run at each candidate mixture, run at ``candidate_scale`` (the
    target scale by default). Returns one value per candidate."""
    target_scale = target_scale or {}
    candidate_scale = candidate_scale if candidate_scale is not None else target_scale
    lo, hi = (bounds or MixtureBounds()).arrays(law.train_domains)
    rng = np.random.default_rng(seed)
    f_target = law.target_function(target, draws=draws, seed=seed, **target_scale)
    f_run = law.target_function(target, draws=draws, seed=seed, **candidate_scale)  # the same draws (same seed)
    n_draws = f_target.n_draws
    start = torch.as_tensor(random_feasible(6, lo, hi, rng))[None].expand(n_draws, -1, -1).clone()
    _, optimum_value = minimize_batch(f_target, start, lo, hi, steps=150, progress=f"info: each of {n_draws:,} draws' best loss")
    v = optimum_value.numpy()  # (S,)
    with torch.no_grad():
        m = f_run(torch.as_tensor(candidates)[None].expand(n_draws, -1, -1)).numpy()  # (S, C)
    frame = pd.DataFrame(candidates, columns=[MIX_PREFIX + d for d in law.train_domains])
    sd = _observation_noise(law, frame, target, seed, candidate_scale)  # (C,)
    j = rng.choice(n_draws, size=fantasies)
    y = m[j] + sd * rng.standard_normal((fantasies, len(sd)))  # (J, C): outcomes under draw j
    log_w = -0.5 * ((y[None] - m[:, None]) / sd) ** 2  # (S, J, C)
    w = np.exp(log_w - log_w.max(axis=0, keepdims=True))
    w /= w.sum(axis=0, keepdims=True)
    mean_v = np.einsum("sjc,s->jc", w, v)
    var_v = np.einsum("sjc,s->jc", w, v**2) - mean_v**2
    return v.std() - np.sqrt(np.clip(var_v, 0, None)).mean(axis=0)


def suggest_informative(law, n: int = 4, *, bounds: MixtureBounds | None = None, target: str = "total", draws: int = 256, seed: int = 0,
                        candidates: int = 400, costs: dict | None = None, caps_source: str = "caps", grid: float | None = None,
                        **scale) -> pd.DataFrame:
    """``n`` runs that most reduce the uncertainty about the target-scale optimum per unit cost (``info``)."""
    domains = law.train_domains
    lo, hi = (bounds or MixtureBounds()).arrays(domains, caps_source)
    rng = np.random.default_rng(seed)
    pool = simplex_grid(len(domains), grid, lo, hi) if grid else random_feasible(candidates, lo, hi, rng)
    if law.kind == "nested_law":
        pilots = law.pilot_scales()
        length = law.length_column
        options = [{"params": p, length: pilots[length][-1]} for p in pilots["params"]]
        cost = np.array([costs[o["params"]] if costs else o["params"] * o[length] for o in options], dtype=float)
        cost = cost / cost.min()  # relative to the cheapest pilot
    else:
        options, cost = [{}], [1.0]
    rows = []
    for option, c in zip(options, cost):
        gain = information_gain(law, pool, target=target, draws=draws, seed=seed, bounds=bounds, candidate_scale=option, target_scale=scale)
        rows += [{"index": i, "scale": option, "value": g / c} for i, g in enumerate(gain)]
    ranked = sorted(rows, key=lambda row: -row["value"])
    chosen = []
    for row in ranked:  # distinct suggestions: no two mixtures within 0.05 of each other at one scale
        if all(np.abs(pool[row["index"]] - pool[o["index"]]).max() > (1e-9 if grid else 0.05) or o["scale"] != row["scale"] for o in chosen):
            chosen.append(row)
        if len(chosen) == n:
            break
    out = []
    for k, row in enumerate(chosen):
        frame = pd.DataFrame([pool[row["index"]]], columns=[MIX_PREFIX + d for d in domains]).assign(name=f"suggestion {k + 1}")
        frame = frame[["name", *[MIX_PREFIX + d for d in domains]]]
        prediction = law.predict(frame, ci=0.9, seed=seed, **row["scale"])
        prediction = prediction[prediction["target"] == target].reset_index(drop=True)
        prediction.insert(len(prediction.columns) - 5, "acquisition", "info")
        prediction.insert(len(prediction.columns) - 5, "acquisition_value", row["value"])
        out.append(prediction)
    return pd.concat(out, ignore_index=True)


def pilot_loop(law, runs, evaluate, *, rounds: int, q: int = 1, acquisition: str = "thompson", method: str = "fast",
               bounds: MixtureBounds | None = None, target: str = "total", seed: int = 0, progress: bool = False, **scale):
    """Fit -> suggest -> run the suggestions -> refit, ``rounds`` times; the compiled model is reused.

    ``evaluate(mixtures)`` receives the suggested mixtures (a DataFrame with ``name`` and ``mix:*``)
    and returns their runs-table rows (e.g. from training the pilots, or from a simulator). Returns
    the final law and the runs table with every round's runs added.
    """
    table = load_runs(runs)
    for round_ in range(rounds):
        law.fit(table, seed=seed + round_, method=method, progress=progress)
        picks = suggest(law, q, acquisition=acquisition, bounds=bounds, target=target, seed=seed + round_, **scale)
        mixtures = picks[["name", *[c for c in picks.columns if c.startswith(MIX_PREFIX)]]].copy()
        mixtures["name"] = [f"round{round_ + 1}_{i}" for i in range(len(mixtures))]
        new = evaluate(mixtures)
        table = validate_runs(pd.concat([table.data, new], ignore_index=True), table.source)
    law.fit(table, seed=seed + rounds, method=method, progress=progress)
    return law, table
