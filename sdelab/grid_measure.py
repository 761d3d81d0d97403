r"""Measure, for every sampler and every grid kind, the fewest score evaluations (NFE) that reach the quality of
Euler-Maruyama with 1,000 steps. This is the measurement behind `sdelab.samplers.DEFAULT_GRID`.

Problem: exact score of the 8-mode ring (`sdelab.toy.ring`), VP linear, all samplers from the same 20,000
prior points to eps = 1e-3, float64. Quality of a sample x (the reference is EM-1000 from the same points):

* loose: sliced W2 to an independent exact sample of p_eps (20,000 points, 128 fixed directions) at most
  1.1 x that of the converged samplers: the larger of EM-1000's and of the accurate probability-flow map of the
  same points (DPM-Solver++(3M), 1,024 log-SNR steps). The distance is dominated by the Monte-Carlo
  fluctuation of the 8 mode counts, which differs between the stochastic and the deterministic limit;
* strict: loose, and the within-mode spread (std of x minus its nearest mode centre) within EM-1000's own
  relative error of the exact spread, or within 2 standard errors of the estimate if that is larger.

A sampler's figure is the fewest NFE from which it is strict at every larger NFE tried (`strict_from`): the
first NFE that passes can be a zero crossing of an error that changes sign.

Command line: `python tools/measure_grids.py [--n 20000] [--json out.json]` (about 15 minutes on one core).
"""
from __future__ import annotations

import math

import torch

from .discrete import ddim_sample, ddpm_sample, dpm_solver_2m
from .grids import EVALS_PER_STEP
from .metrics import sliced_wasserstein
from .multistep import dpm_solver_3m
from .samplers import euler_maruyama, pf_ode_euler, pf_ode_heun, predictor_corrector
from .sde import VPSDE
from .toy import grid_mixture, ring
from .unipc import unipc

__all__ = ["make_problem", "run", "measure", "thresholds", "grade", "strict_from", "measure_row", "out_of_range",
           "KINDS", "NFES", "PROBLEMS", "SAMPLERS", "RANGE_LIMIT", "RANGE_NFES"]

F64 = torch.float64
EPS = 1e-3
NFES = [6, 8, 10, 12, 14, 16, 18, 20, 24, 28, 32, 40, 48, 56, 64, 80, 96, 128, 160, 192, 256, 320, 384, 512, 768, 1024]
KINDS = ("uniform", "logsnr", "karras", "angle", "blend")
PROBLEMS = {"ring": lambda: ring(dtype=F64), "grid": lambda: grid_mixture(3, 2.0, 0.1, dtype=F64)}
"""The measured problem, the 8-mode ring (radius 2, mode std 0.1), and a held-out one for checking that a grid
chosen on the ring is not fitted to it: 9 modes on a square grid, spacing 2, std 0.1."""
# name -> (function, score evaluations per step (`sdelab.grids.EVALS_PER_STEP`), takes a noise predictor)
SAMPLERS = {fn.__name__: (fn, EVALS_PER_STEP[fn.__name__], eps_based) for fn, eps_based in (
    (euler_maruyama, False), (predictor_corrector, False), (pf_ode_euler, False), (pf_ode_heun, False),
    (ddpm_sample, True), (ddim_sample, True), (dpm_solver_2m, True), (dpm_solver_3m, True), (unipc, True))}


def make_problem(n: int, seed: int = 0, problem: str = "ring"):
    if problem not in PROBLEMS:
        raise ValueError(f"problem must be one of {sorted(PROBLEMS)}, got {problem!r}")
    sde, mix = VPSDE(), PROBLEMS[problem]()
    score = mix.score_fn(sde)
    eps_fn = mix.eps_fn(sde)
    x_T = sde.prior_sample((n, 2), generator=torch.Generator().manual_seed(seed), dtype=F64)
    fresh = mix.noised(EPS, sde).sample(n, generator=torch.Generator().manual_seed(seed + 1))
    std = float(mix.stds[0])
    exact_spread = math.sqrt(std**2 * float(sde.mean_coeff(EPS)) ** 2 + float(sde.std(EPS)) ** 2)

    def quality(x):
        sw = float(sliced_wasserstein(x, fresh, n_proj=128, generator=torch.Generator().manual_seed(123)))
        k = torch.cdist(x, mix.means).argmin(1)
        spread = float((x - mix.means[k]).std())
        return sw, spread / exact_spread - 1

    return sde, score, eps_fn, x_T, quality


def run(name: str, kind: str, nfe: int, sde, score, eps_fn, x_T, seed: int = 2):
    fn, per_step, eps_based = SAMPLERS[name]
    steps = nfe // per_step
    ts = sde.time_grid(steps, EPS, kind=kind).to(F64)
    with torch.no_grad():
        return fn(eps_fn if eps_based else score, sde, x_T, ts, generator=torch.Generator().manual_seed(seed))


def thresholds(n: int = 20_000, problem: str = "ring"):
    """The problem and its pass marks: returns `(problem, ref)` with `problem = make_problem(n, problem=problem)` and
    `ref` a dict with EM-1000's sliced W2 and spread error, `sw_max` (1.1 x the converged samplers') and `spread_tol`."""
    problem = make_problem(n, problem=problem)
    sde, score, eps_fn, x_T, quality = problem
    with torch.no_grad():
        em = euler_maruyama(score, sde, x_T, sde.time_grid(1000, EPS).to(F64), generator=torch.Generator().manual_seed(2))
    sw_em, spread_em = quality(em)
    sw_ode, _ = quality(run("dpm_solver_3m", "logsnr", 1024, sde, score, eps_fn, x_T))
    ref = {"sw": sw_em, "sw_ode": sw_ode, "spread_err": spread_em, "sw_max": 1.1 * max(sw_em, sw_ode),
           "spread_tol": max(abs(spread_em), 2 / math.sqrt(4 * n))}   # SE of the spread ~ 1/sqrt(2 * 2n), relative
    return problem, ref


def grade(quality_pair, ref) -> tuple[bool, bool]:
    """(loose, strict) for a `(sliced W2, spread error)` pair against `thresholds`' `ref`."""
    sw, sp = quality_pair
    loose = sw <= ref["sw_max"]
    return loose, loose and abs(sp) <= ref["spread_tol"]


def strict_from(runs: list[tuple[int, bool]]) -> int | None:
    """The fewest NFE from which every larger NFE tried passes too (`runs`: `(nfe, passed)`), None if the largest
    fails. Robust where "the first NFE that passes" is not: an error that changes sign as the steps grow passes
    once at its zero crossing and fails again after it."""
    best = None
    for nfe, ok in sorted(runs, reverse=True):
        if not ok:
            break
        best = nfe
    return best


def measure_row(name: str, kind: str, problem, ref, nfes=NFES) -> dict:
    """One sampler on one grid kind: `loose` and `strict` (the first NFE of `nfes` that passes each), `strict_from`
    and `runs` (`(nfe, sliced W2, spread error)` for every budget tried), on `thresholds`' problem and `ref`."""
    sde, score, eps_fn, x_T, quality = problem
    row, passes = {"loose": None, "strict": None, "runs": []}, []
    for nfe in [k for k in nfes if k % SAMPLERS[name][1] == 0]:
        sw, sp = quality(run(name, kind, nfe, sde, score, eps_fn, x_T))
        loose, strict = grade((sw, sp), ref)
        row["runs"].append((nfe, sw, sp))
        passes.append((nfe, strict))
        if loose and row["loose"] is None:
            row["loose"] = nfe
        if strict and row["strict"] is None:
            row["strict"] = nfe
    row["strict_from"] = strict_from(passes)
    return row


def measure(n: int = 20_000, samplers=None, kinds=KINDS, nfes=NFES, problem: str = "ring") -> dict:
    """For every sampler and grid kind: the first NFE that passes loose and strict, and `strict_from`, the fewest
    NFE from which strict holds at every larger NFE of `nfes` (the figure `MEASURED_NFE` records, on the ring)."""
    prob, ref = thresholds(n, problem)
    reference = {"sw": ref["sw_max"] / 1.1, "spread_err": ref["spread_err"], "spread_tol": ref["spread_tol"]}
    out = {"n": n, "problem": problem, "reference": reference, "rows": {}}
    for name in samplers or SAMPLERS:
        for kind in kinds:
            row = out["rows"][f"{name}/{kind}"] = measure_row(name, kind, prob, ref, nfes)
            print(f"{name:20s} {kind:8s} loose {row['loose']}  strict {row['strict']}  strict from {row['strict_from']}",
                  flush=True)
    return out


RANGE_LIMIT = 1.5  # MNIST pixels lie in [-1, 1]; a sample pixel beyond +-1.5 is out of range
RANGE_NFES = (10, 20)  # budgets at which a default grid must keep the samples in range


def out_of_range(samplers=None, kinds=KINDS, nfes=RANGE_NFES, n: int = 20, model: str = "mnist_unet_eps") -> dict:
    """For every sampler and grid kind: the fraction of pixels beyond `RANGE_LIMIT` in `n` class-conditional samples
    (labels 0-9 in turn, fixed seeds) of the shipped noise-predicting network `model`, at each budget of `nfes`
    (`by_nfe`) and the largest of them (`fraction`), and the largest |pixel|. A grid whose first steps are long
    carries that network's poor x0-estimate at high noise into the sample, which the exact score of `measure` cannot
    show; fewer steps make the first step longer, hence more than one budget."""
    from . import hub
    from .param import eps_fn as eps_of, score_fn as score_of

    net, sde = hub.pretrained(model), hub.build_sde(hub.info(model).get("sde"))
    y = torch.arange(n) % 10
    x_T = sde.prior_sample((n, 1, 28, 28), generator=torch.Generator().manual_seed(1))  # the same for every run
    out = {}
    for name in samplers or SAMPLERS:
        fn, per_step, eps_based = SAMPLERS[name]
        f = (eps_of if eps_based else score_of)(net.eval(), sde, None, y, None)
        for kind in kinds:
            row = {"by_nfe": {}, "max_abs": 0.0}
            for nfe in nfes:
                with torch.no_grad():
                    x = fn(f, sde, x_T, sde.time_grid(nfe // per_step, EPS, kind=kind).to(F64),
                           generator=torch.Generator().manual_seed(2))
                row["by_nfe"][nfe] = float((x.abs() > RANGE_LIMIT).double().mean())
                row["max_abs"] = max(row["max_abs"], float(x.abs().max()))
            row["fraction"] = max(row["by_nfe"].values())
            out[f"{name}/{kind}"] = row
    return out
