"""Sampler rows of `python -m sdelab bench`: per-step overhead against minimal loops, and speed with the quality
reached at equal NFE on the default grids, and the fewest NFE at which each sampler reaches Euler-Maruyama-1000
quality with its default grid (the measurement of `sdelab.grid_measure`). Every ratio is measured side by side in one
run (interleaved repeats after a warm-up, `sdelab.bench_timing.measure`), with the median, the spread (min-max of the
repeats), CPU time and load average.
"""
from __future__ import annotations

import math
import time
from typing import Callable

import torch

from . import discrete, multistep, samplers, unipc
from .bench_timing import measure, timing_details
from .grids import DEFAULT_GRID, EVALS_PER_STEP, default_grid

__all__ = ["measure", "minimal_loops", "overhead_rows", "quality_rows", "nfe_rows",  # measure: from bench_timing
           "NFE_TARGETS"]


# ---------------------------------------------------------------------- minimal loops (the baselines)
def _floats(sde, tc):
    a, g = sde._drift_coeff(tc).tolist(), sde._diffusion(tc).tolist()
    al, si = sde._mean_coeff(tc).tolist(), sde._std(tc).tolist()
    return a, g, al, si, (tc[1:] - tc[:-1]).tolist()


def minimal_loops(sde) -> dict[str, Callable]:
    """The same algorithms as the package's samplers, written as plainly as possible: coefficients as floats,
    no validation, no finiteness check, no callback. Signature `(fn, x, tc, gen) -> x0`."""
    def em(fn, x, tc, gen, pc=False):
        a, g, al, _, dt = _floats(sde, tc)
        tb = tc.to(x.dtype)[:, None].expand(len(tc), x.shape[0])
        for i in range(len(dt)):
            if pc:
                s = fn(x, tb[i])
                z = torch.randn(x.shape, generator=gen, dtype=x.dtype)
                e = 2 * (al[i] / al[i + 1]) ** 2 * (0.16 * z.flatten(1).norm(dim=1).mean()
                                                   / s.flatten(1).norm(dim=1).mean()) ** 2
                x = x + e * s + torch.sqrt(2 * e) * z
            s = fn(x, tb[i])
            x = x + (a[i] * x - g[i] ** 2 * s) * dt[i] + g[i] * math.sqrt(-dt[i]) * torch.randn(
                x.shape, generator=gen, dtype=x.dtype)
        return x

    def euler(fn, x, tc, gen):
        a, g, _, _, dt = _floats(sde, tc)
        tb = tc.to(x.dtype)[:, None].expand(len(tc), x.shape[0])
        for i in range(len(dt)):
            x = x + (a[i] * x - 0.5 * g[i] ** 2 * fn(x, tb[i])) * dt[i]
        return x

    def heun(fn, x, tc, gen):
        a, g, _, _, dt = _floats(sde, tc)
        tb = tc.to(x.dtype)[:, None].expand(len(tc), x.shape[0])
        for i in range(len(dt)):
            d1 = a[i] * x - 0.5 * g[i] ** 2 * fn(x, tb[i])
            xp = x + d1 * dt[i]
            d2 = a[i + 1] * xp - 0.5 * g[i + 1] ** 2 * fn(xp, tb[i + 1])
            x = x + 0.5 * (d1 + d2) * dt[i]
        return x

    def ddim(fn, x, tc, gen):
        _, _, al, si, dt = _floats(sde, tc)
        tb = tc.to(x.dtype)[:, None].expand(len(tc), x.shape[0])
        for i in range(len(dt)):
            e = fn(x, tb[i])
            x = al[i + 1] * (x - si[i] * e) / al[i] + si[i + 1] * e
        return x

    def dpm2m(fn, x, tc, gen):
        _, _, al, si, dt = _floats(sde, tc)
        lam = [math.log(a / s) for a, s in zip(al, si)]
        tb = tc.to(x.dtype)[:, None].expand(len(tc), x.shape[0])
        prev, n = None, len(dt)
        for i in range(n):
            x0 = (x - si[i] * fn(x, tb[i])) / al[i]
            h = lam[i + 1] - lam[i]
            d = x0 if prev is None or (n < 15 and i == n - 1) else x0 + (x0 - prev[0]) * (h / prev[1]) * 0.5
            x = si[i + 1] / si[i] * x - al[i + 1] * math.expm1(-h) * d
            prev = (x0, h)
        return x

    def ddpm(fn, x, tc, gen):
        _, _, al, si, dt = _floats(sde, tc)
        c0, ct, var = (v.tolist() for v in discrete.posterior_coefficients(sde, tc[:-1], tc[1:]))
        tb = tc.to(x.dtype)[:, None].expand(len(tc), x.shape[0])
        for i in range(len(dt)):
            x = c0[i] * (x - si[i] * fn(x, tb[i])) / al[i] + ct[i] * x
            if i < len(dt) - 1:
                x = x + math.sqrt(var[i]) * torch.randn(x.shape, generator=gen, dtype=x.dtype)
        return x

    return {"euler_maruyama": em, "predictor_corrector": lambda *a: em(*a, pc=True), "pf_ode_euler": euler,
            "pf_ode_heun": heun, "ddim_sample": ddim, "dpm_solver_2m": dpm2m, "ddpm_sample": ddpm,
            "dpm_solver_3m": _minimal_3m(sde), "unipc": _minimal_unipc(sde)}


def _log_snr_floats(sde, tc):
    _, _, al, si, _ = _floats(sde, tc)
    return al, si, [math.log(a / s) for a, s in zip(al, si)]


def _minimal_3m(sde):
    def dpm3m(fn, x, tc, gen):
        al, si, lam = _log_snr_floats(sde, tc)
        tb = tc.to(x.dtype)[:, None].expand(len(tc), x.shape[0])
        n, ms = len(tc) - 1, []
        for i in range(n):
            ms = [(x - si[i] * fn(x, tb[i])) / al[i]] + ms[:2]
            h = lam[i + 1] - lam[i]
            p1 = math.expm1(-h)
            order = min(3, i + 1, n - i) if n < 15 else min(3, i + 1)
            x = si[i + 1] / si[i] * x - al[i + 1] * p1 * ms[0]
            if order >= 2:
                r0 = (lam[i] - lam[i - 1]) / h
                d10 = (ms[0] - ms[1]) / r0
                if order == 2:
                    x = x - 0.5 * al[i + 1] * p1 * d10
                else:
                    r1 = (lam[i - 1] - lam[i - 2]) / h
                    d11 = (ms[1] - ms[2]) / r1
                    x = (x + al[i + 1] * (p1 / h + 1) * (d10 + r0 / (r0 + r1) * (d10 - d11))
                         - al[i + 1] * ((p1 + h) / h**2 - 0.5) * (d10 - d11) / (r0 + r1))
        return x
    return dpm3m


def _minimal_unipc(sde, order: int = 3):
    """UniPC-3 (bh2) with every step's weights computed before the loop."""
    def step(x, ms, lam, i, j, al, si, w, m_new=None):
        b_h, rho, rks = w
        h = lam[j] - lam[i]
        out = si[j] / si[i] * x - al[j] * math.expm1(-h) * ms[-1]
        if not rho:
            return out
        res = sum(r / rk * (m - ms[-1]) for r, rk, m in zip(rho, rks, ms[-2::-1]))
        if m_new is not None:
            res = res + rho[-1] * (m_new - ms[-1])
        return out - al[j] * b_h * res

    def run(fn, x, tc, gen):
        al, si, lam = _log_snr_floats(sde, tc)
        tb = tc.to(x.dtype)[:, None].expand(len(tc), x.shape[0])
        n = len(tc) - 1
        used = [min(order, i + 1, n - i) for i in range(n)]
        pred = [unipc._step_weights(lam, i, i + 1, used[i], False) for i in range(n)]
        corr = [None] + [unipc._step_weights(lam, i - 1, i, used[i - 1], True) for i in range(1, n)]
        ms, x_last = [], None
        for i in range(n):
            m = (x - si[i] * fn(x, tb[i])) / al[i]
            if i > 0:
                x = step(x_last, ms[-used[i - 1]:], lam, i - 1, i, al, si, corr[i], m)
            ms = (ms + [m])[-order:]
            x_last = x
            x = step(x, ms[-used[i]:], lam, i, i + 1, al, si, pred[i])
        return x
    return run


PACKAGE = {"euler_maruyama": samplers.euler_maruyama, "predictor_corrector": samplers.predictor_corrector,
           "pf_ode_euler": samplers.pf_ode_euler, "pf_ode_heun": samplers.pf_ode_heun,
           "ddim_sample": discrete.ddim_sample, "dpm_solver_2m": discrete.dpm_solver_2m,
           "ddpm_sample": discrete.ddpm_sample, "dpm_solver_3m": multistep.dpm_solver_3m, "unipc": unipc.unipc}
EPS_BASED = {"ddim_sample", "dpm_solver_2m", "ddpm_sample", "dpm_solver_3m", "unipc"}


def overhead_rows(*, batch: int = 64, steps: int = 100, repeats: int = 7, dtype=torch.float32) -> list[dict]:
    """Package sampler / minimal loop, per sampler, with a near-free score (`-x`) and the exact ring score."""
    from .sde import VPSDE
    from .toy import ring

    sde, mix = VPSDE(), ring(dtype=dtype)
    x = sde.prior_sample((batch, 2), generator=torch.Generator().manual_seed(0), dtype=dtype)
    rows = []
    for score_name, score, eps in (("near-free", lambda x, t: -x, lambda x, t: x),
                                   ("ring", mix.score_fn(sde), mix.eps_fn(sde))):
        for name, loop in minimal_loops(sde).items():
            fn = eps if name in EPS_BASED else score
            tc = default_grid(name, sde, steps)

            def pkg(name=name, fn=fn, tc=tc):
                return PACKAGE[name](fn, sde, x, tc, generator=torch.Generator().manual_seed(1))

            def base(loop=loop, fn=fn, tc=tc):
                return loop(fn, x, tc, torch.Generator().manual_seed(1))

            t = measure({"package": pkg, "minimal": base}, repeats=repeats, warmup=2)
            rows.append({"sampler": name, "score": score_name, "batch": batch, "steps": steps, "dtype": str(dtype),
                         "ratio": t["package"]["wall_s"] / t["minimal"]["wall_s"],
                         "ratio_spread": [t["package"]["wall_spread_s"][0] / t["minimal"]["wall_spread_s"][1],
                                          t["package"]["wall_spread_s"][1] / t["minimal"]["wall_spread_s"][0]],
                         "package": timing_details(t["package"]), "minimal": timing_details(t["minimal"])})
    return rows


def quality_rows(nfe: int = 20, *, n: int = 20_000, repeats: int = 3) -> list[dict]:
    """Every grid-based sampler at the same NFE on its default grid (exact ring score, VP, float64): wall time and
    the quality reached (sliced W2 to exact samples of p_eps, relative error of the within-mode spread)."""
    from .grid_measure import make_problem

    sde, score, eps_fn, x_T, quality = make_problem(n)
    rows = []
    for name, fn in PACKAGE.items():
        per_step = EVALS_PER_STEP[name]
        steps = nfe // per_step
        f = eps_fn if name in EPS_BASED else score

        def go(fn=fn, f=f, steps=steps):
            return fn(f, sde, x_T, steps, generator=torch.Generator().manual_seed(2))

        t = measure({name: go}, repeats=repeats, warmup=1)[name]
        sw, spread = quality(t["values"][-1])
        rows.append({"sampler": name, "nfe": steps * per_step, "grid": DEFAULT_GRID[name],
                     "sliced_w2": sw, "spread_err": spread, "n": n, **timing_details(t)})
    return rows


NFE_TARGETS = {"best": 20, "pf_ode_heun": 48, "ddim_sample": 64}
"""Issue 13's targets for `nfe_rows`: strict NFE of the best sampler, of Heun and of DDIM, with default grids."""


def nfe_rows(n: int = 20_000, nfes=None) -> list[dict]:
    """Per sampler, on its default grid: the fewest NFE from which it is strictly as good as Euler-Maruyama-1000 at
    every larger budget of `nfes` (`grid_measure.measure_row` on the 8-mode ring, `n` samples, float64)."""
    from .grid_measure import NFES, measure_row, thresholds

    problem, ref = thresholds(n)
    rows = []
    for name in PACKAGE:
        t0 = time.perf_counter()
        r = measure_row(name, DEFAULT_GRID[name], problem, ref, nfes or NFES)
        rows.append({"sampler": name, "grid": DEFAULT_GRID[name], "n": n, "strict_from": r["strict_from"],
                     "loose": r["loose"], "first_strict": r["strict"], "max_nfe": max(k for k, *_ in r["runs"]),
                     "sweep_s": time.perf_counter() - t0})
    return rows
