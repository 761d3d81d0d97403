r"""Checkers for the chapter "SDE basics: from ODEs to SDEs".

* `check_brownian_path(fn)`: `fn(ts, n_paths, generator=None)` returns Brownian paths `(len(ts), n_paths)`.
* `check_simulate_ou(fn)`: `fn(x0, a, g, ts, generator=None)` runs Euler–Maruyama for
  $dx = -a x\,dt + g\,dw$ and returns the final states.
* `check_stationary_variance(answer)`: $\lim_{t\to\infty}\mathrm{Var}\,x(t)$ for that SDE, as a function
  `answer(a, g)` or a sympy expression in the symbols `a`, `g`.
* `check_convergence_order(order)`: the least-squares order of the errors in `convergence_data()`.

Each returns a `Feedback` message when the answer is right and raises `WrongAnswer` naming the mistake otherwise.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ._core import (WrongAnswer, as_array, as_numeric_function, as_tensor64, correct, expect, expect_callable,
                    expect_number)
from ._core import call_answer as _call

__all__ = ["check_brownian_path", "check_simulate_ou", "check_stationary_variance", "check_convergence_order",
           "convergence_data"]

F64 = torch.float64
_N_MC = 20_000  # Monte-Carlo sample size of the checkers: relative SE of a variance sqrt(2/N) = 1 %


def _close(value: float, target: float, rel: float) -> bool:
    return abs(value - target) <= rel * abs(target)


# ------------------------------------------------------------------ Brownian paths
def check_brownian_path(fn) -> str:
    r"""Check `fn(ts, n_paths, generator=None) -> (len(ts), n_paths)` samples Brownian motion on the grid `ts`.

    Tested on the non-uniform grid `[0, 0.1, 0.3, 0.35, 0.6, 1]`: $w(0) = 0$, $\mathbb E\,w = 0$,
    $\mathrm{Var}\,w(t) = t$, Gaussian increments, uncorrelated increments, reproducible with a seed.
    """
    expect_callable(fn, name="your Brownian-path function")
    ts = torch.tensor([0.0, 0.1, 0.3, 0.35, 0.6, 1.0], dtype=F64)
    n, M = len(ts), _N_MC
    call = "fn(ts, n_paths, generator)"
    w = as_tensor64(_call(fn, ts, M, generator=torch.Generator().manual_seed(0), name=call), call)
    expect(tuple(w.shape) != (n - 1, M),
           f"Your result has shape {tuple(w.shape)}: one row short. These look like the {n - 1} increments "
           f"(or the path without its start): a path on a grid of {n} times has {n} rows, starting with w(0) = 0.")
    expect(tuple(w.shape) != (M, n),
           f"Your result has shape {tuple(w.shape)}: time should come first, shape (len(ts), n_paths) = {(n, M)}.")
    expect(tuple(w.shape) == (n, M), f"Your result should have shape (len(ts), n_paths) = {(n, M)}, got {tuple(w.shape)}.")
    expect(bool(torch.isfinite(w).all()), "Your paths contain NaN or inf values.")
    expect(bool((w[0] == 0).all()), "Brownian motion starts at w(0) = 0: the first row must be all zeros.")

    again = as_tensor64(_call(fn, ts, M, generator=torch.Generator().manual_seed(0), name=call), call)
    expect(torch.equal(w, again),
           "Two calls with generators seeded alike gave different paths: draw the noise with the generator "
           "argument, e.g. torch.randn(shape, generator=generator, dtype=ts.dtype).")

    t, dt = ts[1:], torch.diff(ts)
    var = w[1:].var(1)
    tol = 5 * math.sqrt(2 / (M - 1))  # 5 standard errors, relative
    if not all(_close(v, tt, tol) for v, tt in zip(var.tolist(), t.tolist())):
        candidates = {
            "increments": (dt, "Var w(t_k) equals the step length, not t_k: you returned the increments. Add them "
                               "up (torch.cumsum over time) to get the path."),
            "dt_std": (torch.cumsum(dt**2, 0), "The variance of w(t) is far too small: your increments have "
                                               "standard deviation dt (variance dt^2). A Brownian increment over dt "
                                               "has variance dt, so scale standard normals by sqrt(dt)."),
            "unscaled": (torch.arange(1, n, dtype=F64), "Var w(t_k) equals k, the number of steps: the increments "
                                                        "are standard normals. Scale each by sqrt(dt_k)."),
            "reused": (torch.cumsum(dt.sqrt(), 0) ** 2, "Var w(t_k) is (sqrt(dt_0) + ... + sqrt(dt_k-1))^2: every step "
                                                       "reuses the same standard normal. Draw a fresh one for each "
                                                       "step and path, e.g. torch.randn(len(ts) - 1, n_paths)."),
            "uniform": (torch.arange(1, n, dtype=F64) * dt[0], "Var w(t_k) grows by the first step length at every "
                                                               "step: the grid is not uniform, so use each step's "
                                                               "own length dt_k = ts[k+1] - ts[k] (torch.diff(ts))."),
        }
        for target, msg in candidates.values():
            if all(_close(v, tt, tol) for v, tt in zip(var.tolist(), target.tolist())):
                raise WrongAnswer(msg)
        raise WrongAnswer(f"Var w(t) should equal t at every grid time {t.tolist()}, but your paths have variances "
                          f"{[round(v, 4) for v in var.tolist()]}.")
    mean = w[1:].mean(1)
    expect(bool((mean.abs() <= 5 * torch.sqrt(t / M)).all()),
           f"E w(t) should be 0, but your paths have means {[round(v, 4) for v in mean.tolist()]}: "
           "the increments must have mean zero.")
    dw = torch.diff(w, dim=0)
    z = dw / dt.sqrt()[:, None]
    kurt = z.pow(4).mean(1)
    expect(bool(((kurt - 3).abs() <= 5 * math.sqrt(96 / M)).all()),
           f"The increments have the right variance but are not Gaussian (E z^4 = {[round(k, 2) for k in kurt.tolist()]}, "
           "a Gaussian has 3; torch.rand gives 1.8). Draw them with torch.randn.")
    corr = torch.corrcoef(z)
    off = corr[~torch.eye(n - 1, dtype=torch.bool)].abs().max().item()
    expect(off <= 5 / math.sqrt(M),
           f"Increments over different steps should be independent, but two of them have correlation {off:.2f}: "
           "draw fresh noise for every step (one torch.randn call of shape (len(ts) - 1, n_paths) does it).")
    return correct("Your paths are Brownian, also on an uneven grid.")


# ------------------------------------------------------------------ Euler–Maruyama for OU
def _em_moments(ts: torch.Tensor, a: float, g: float, m0: float) -> tuple[float, float]:
    """Exact mean and variance of the Euler–Maruyama chain for dx = -a x dt + g dw started at m0."""
    m, v = m0, 0.0
    for h in torch.diff(ts).tolist():
        m, v = (1 - a * h) * m, (1 - a * h) ** 2 * v + g**2 * h
    return m, v


def _run_ou(fn, x0, a, g, ts, seed):
    call = f"simulate_ou(x0, a={a}, g={g}, ts, generator)"
    x = as_tensor64(_call(fn, x0.clone(), a, g, ts.clone(), generator=torch.Generator().manual_seed(seed), name=call),
                    call)
    if tuple(x.shape) == (len(ts), *x0.shape):
        raise WrongAnswer(f"simulate_ou returned the whole path, shape {tuple(x.shape)}: return only the final "
                          f"states x(ts[-1]), shape {tuple(x0.shape)} (the same as x0).")
    expect(tuple(x.shape) == tuple(x0.shape),
           f"simulate_ou should return the final states with the shape of x0, {tuple(x0.shape)}; got {tuple(x.shape)}.")
    expect(bool(torch.isfinite(x).all()), "simulate_ou returned NaN or inf values.")
    return x


def check_simulate_ou(fn) -> str:
    r"""Check an Euler–Maruyama solver `fn(x0, a, g, ts, generator=None)` for $dx = -a x\,dt + g\,dw$.

    Three experiments, each isolating one part of the step $x + (-a x)\,\Delta t + g\sqrt{\Delta t}\,\xi$:
    `g = 0` (Euler's method, exact comparison), `a = 0` (variance $g^2 T$), and both on a non-uniform grid
    (mean and variance of the Euler–Maruyama chain, within 5 standard errors).
    """
    expect_callable(fn, name="simulate_ou")
    M = _N_MC
    x0 = torch.full((M,), 2.0, dtype=F64)
    ts = torch.linspace(0, 1, 21, dtype=F64)
    h, N = 0.05, 20

    # 1. no noise: Euler's method for x' = -a x, deterministic
    a = 1.5
    x = _run_ou(fn, x0, a, 0.0, ts, 1)
    expect(x.std().item() < 1e-9,
           "With g = 0 your result is still random: the noise term must be multiplied by g (g * sqrt(dt) * xi).")
    got = x.mean().item()
    if not _close(got, 2 * (1 - a * h) ** N, 1e-6):
        if _close(got, 2 * (1 + a * h) ** N, 1e-6):
            raise WrongAnswer("With g = 0 your x grows instead of decaying: the drift of dx = -a x dt + g dw is "
                              "f(x) = -a x (note the minus sign), so the step is x + (-a * x) * dt.")
        if _close(got, 2.0, 1e-9):
            raise WrongAnswer("With g = 0 your x never moves: the drift term f(x) dt = -a * x * dt is missing.")
        if _close(got, 2 * math.exp(-a), 1e-6):
            raise WrongAnswer("With g = 0 you reproduce the exact solution x0 exp(-a T). Nice, but the exercise asks "
                              "for the Euler–Maruyama step x + (-a x) dt + g sqrt(dt) xi, whose noise-free "
                              f"version gives x0 (1 - a dt)^N = {2 * (1 - a * h) ** N:.6f}.")
        raise WrongAnswer(f"With g = 0 your function should reduce to Euler's method for x' = -a x, giving "
                          f"x0 (1 - a dt)^N = {2 * (1 - a * h) ** N:.6f} for x0 = 2, a = {a}, dt = {h}, N = {N}; "
                          f"got {got:.6f}.")

    # 2. no drift: x(T) = x0 + g w(T), variance g^2 T
    g = 2.0
    x = _run_ou(fn, x0, 0.0, g, ts, 2)
    var = x.var().item()
    tol = 5 * math.sqrt(2 / (M - 1))
    if not _close(var, g**2, tol):
        expect(var > 1e-12, "With a = 0 your result has no spread at all: the noise term g * sqrt(dt) * xi is missing.")
        mistakes = [
            (g**2 * h, "The variance at T = 1 is g^2 dt instead of g^2 T: you multiplied the noise by dt. A Brownian "
                       "increment has standard deviation sqrt(dt), so the noise term is g * sqrt(dt) * xi."),
            (g**2 / h, "The variance at T = 1 is g^2 / dt, far too big: the noise was not scaled by the step. Use "
                       "g * sqrt(dt) * xi with xi ~ N(0, 1)."),
            (g**4, "The variance at T = 1 is g^4 instead of g^2: the noise term is g * sqrt(dt) * xi, not g**2 * ..."),
            (g, "The variance at T = 1 is g instead of g^2: g multiplies the standard normal (g * sqrt(dt) * xi), "
                "it is not the variance (sqrt(g * dt) * xi)."),
        ]
        for target, msg in mistakes:
            if _close(var, target, tol):
                raise WrongAnswer(msg)
        raise WrongAnswer(f"With a = 0 the solution is x0 + g w(T), whose variance is g^2 T = {g**2:g}; yours is "
                          f"{var:.4g}. The noise term should be g * sqrt(dt) * xi with a fresh xi ~ N(0, 1) per step.")
    expect(abs(x.mean().item() - 2.0) <= 5 * g / math.sqrt(M),
           f"With a = 0 the mean should stay at x0 = 2, got {x.mean().item():.4f}: the noise must have mean zero.")

    again = _run_ou(fn, x0, 0.0, g, ts, 2)
    expect(torch.equal(x, again),
           "Two runs with generators seeded alike gave different results: draw the noise with the generator "
           "argument, e.g. torch.randn(x.shape, generator=generator, dtype=x.dtype).")

    # 3. both, on a non-uniform grid: compare with the exact moments of the EM chain
    a, g = 1.5, 0.8
    ts_nu = torch.cat([torch.zeros(1, dtype=F64), torch.linspace(0.5, 1, 26, dtype=F64)])  # one long step first
    x = _run_ou(fn, x0, a, g, ts_nu, 3)
    m, v = _em_moments(ts_nu, a, g, 2.0)
    ok_m = abs(x.mean().item() - m) <= 5 * math.sqrt(v / M)
    ok_v = _close(x.var().item(), v, tol)
    if not (ok_m and ok_v):
        n_nu = len(ts_nu) - 1
        for step in (ts_nu[1] - ts_nu[0], (ts_nu[-1] - ts_nu[0]) / n_nu):  # one dt for all steps: first, or T/N
            mu, vu = _em_moments(torch.arange(n_nu + 1, dtype=F64) * step, a, g, 2.0)
            if abs(x.mean().item() - mu) <= 5 * math.sqrt(vu / M) and _close(x.var().item(), vu, tol):
                raise WrongAnswer("Right on uniform grids, wrong on a non-uniform one: use each step's own "
                                  "length dt = ts[k+1] - ts[k] rather than a single dt.")
        raise WrongAnswer(f"On the grid ts = [0, 0.5, 0.52, 0.54, ..., 1] with a = {a}, g = {g}, x0 = 2 the Euler–Maruyama "
                          f"chain has mean {m:.4f} and variance {v:.4f}; yours has {x.mean().item():.4f} and "
                          f"{x.var().item():.4f}.")
    return correct("Right drift, sqrt(dt) noise, uneven grids work.")


# ------------------------------------------------------------------ stationary variance
def check_stationary_variance(answer) -> str:
    r"""Check $\lim_{t\to\infty}\mathrm{Var}\,x(t) = g^2/(2a)$ for $dx = -a x\,dt + g\,dw$ ($a > 0$).

    `answer` is a function `answer(a, g)` or a sympy expression in symbols named `a` and `g`.
    """
    fn = as_numeric_function(answer, ("a", "g"), name="stationary_variance", hint="Take the limit t -> oo first.")
    cases = [(0.5, 1.3), (2.0, 0.7), (1.25, 3.0)]
    got = []
    for a, g in cases:
        call = f"stationary_variance(a={a}, g={g})"
        got.append(expect_number(_call(fn, a, g, name=call), name=call))
    mistakes = [
        (lambda a, g: g**2 / (2 * a), None),
        (lambda a, g: g / (2 * a), "The noise enters the variance through g^2, not g: over a step dt it adds "
                                   "g^2 dt of variance (the ODE is v' = -2 a v + g^2)."),
        (lambda a, g: g**2 / a, "Off by a factor 2: the drift -a x shrinks the variance at rate 2a, not a "
                                "(v' = -2 a v + g^2), so the balance is 2 a v = g^2."),
        (lambda a, g: g**2 * a / 2, "Operator precedence: g**2/2*a means (g^2/2)*a. Write g**2/(2*a)."),
        (lambda a, g: g / math.sqrt(2 * a), "That is the stationary standard deviation; the variance is its square."),
        (lambda a, g: g**2 / (2 * a) ** 2, "The variance balances 2 a v = g^2, so v = g^2/(2a): you divided by "
                                           "(2a)^2."),
        (lambda a, g: -(g**2) / (2 * a), "A variance cannot be negative: check the sign (v' = -2 a v + g^2 = 0)."),
        (lambda a, g: 0.0, "The variance does not decay to 0: the drift pulls paths together but the noise keeps "
                           "spreading them, and the two balance (v' = -2 a v + g^2 = 0)."),
    ]
    for ref, msg in mistakes:
        if all(math.isclose(v, ref(a, g), rel_tol=1e-6, abs_tol=1e-12) for v, (a, g) in zip(got, cases)):
            if msg is None:
                return correct("v = g^2 / (2a): drift and noise balance.")
            raise WrongAnswer(msg)
    a, g = cases[0]
    raise WrongAnswer(f"For a = {a}, g = {g} the stationary variance is {g**2 / (2 * a):.4g}, your answer gives "
                      f"{got[0]:.4g}. Set v' = 0 in v' = -2 a v + g^2, or take t -> oo in v(t).")


# ------------------------------------------------------------------ convergence order
_HS = 2.0 ** -np.arange(3, 9)
_ERRS = 3.0 * _HS**2 * np.exp(np.array([0.06, -0.04, 0.05, -0.07, 0.03, 0.02]))


def convergence_data() -> tuple[np.ndarray, np.ndarray]:
    """Step sizes and strong errors measured for a mystery scheme: `(hs, errors)`, six of each."""
    return _HS.copy(), _ERRS.copy()


def check_convergence_order(order) -> str:
    r"""Check the least-squares slope $p$ of $\log e$ against $\log h$ for `convergence_data()` (to 0.005)."""
    hs, errs = convergence_data()
    lh, le = np.log(hs), np.log(errs)
    p, logc = np.polyfit(lh, le, 1)
    expect(not callable(order), "Give the order as a number (e.g. order = np.polyfit(...)[0]), not a function.")
    arr = as_array(order, "order")
    expect(arr.size == 1, f"Give the order as a single number, got an array of shape {arr.shape}: np.polyfit(x, y, 1) "
                          "returns [slope, intercept], and the order is the slope.")
    q = float(arr.reshape(()))
    near = lambda x, tol=0.03: abs(q - x) <= tol  # noqa: E731
    two_point = [(le[i + 1] - le[i]) / (lh[i + 1] - lh[i]) for i in range(len(hs) - 1)]
    two_point.append((le[-1] - le[0]) / (lh[-1] - lh[0]))
    if not near(p, 1e-3) and any(near(s, 1e-3) for s in two_point):
        raise WrongAnswer("That is a slope through two points only; with noisy errors use all points: the "
                          "least-squares slope np.polyfit(np.log(hs), np.log(errors), 1)[0].")
    if near(p, 0.005):  # the least-squares slope, to two decimals
        return correct(f"The errors fall like h^{p:.2f}.")
    if near(-p):
        raise WrongAnswer("Right size, wrong sign. Errors shrink as h shrinks, so log e increases with log h and the "
                          "order is positive. (Regressing on the number of steps N = T/h gives -p.)")
    if near(1 / p):
        raise WrongAnswer("You fitted log h against log e (axes swapped), which gives 1/p. Regress log(errors) on "
                          "log(hs): np.polyfit(np.log(hs), np.log(errors), 1)[0].")
    if near(p * math.log(10)) or near(p / math.log(10)):
        raise WrongAnswer("The slope is off by a factor ln 10 = 2.30: use the same logarithm on both axes.")
    if near(logc, 0.05) or near(math.exp(logc), 0.05):
        raise WrongAnswer("That is the intercept (log C in e = C h^p): np.polyfit returns [slope, intercept], so "
                          "take element [0].")
    if near(float(np.polyfit(hs, errs, 1)[0]), 0.05):
        raise WrongAnswer("That is the slope of a straight line through (h, e): the order is the slope in log-log "
                          "coordinates, np.polyfit(np.log(hs), np.log(errors), 1)[0].")
    raise WrongAnswer(f"Your order {q:.3g} is not the least-squares slope of log(errors) against log(hs). Fit a line "
                      "to the log-log data: np.polyfit(np.log(hs), np.log(errors), 1)[0].")
