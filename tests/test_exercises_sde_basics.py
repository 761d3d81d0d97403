"""The checkers of the chapter "SDE basics" accept the reference solutions and name each typical mistake."""
import math
import re

import numpy as np
import pytest
import sympy as sp
import torch

from sdelab.exercises import WrongAnswer
from sdelab.exercises import sde_basics as ex


# ------------------------------------------------------------------ Brownian paths
def brownian_ok(ts, n_paths, generator=None):
    dt = torch.diff(ts)
    dw = dt.sqrt()[:, None] * torch.randn(len(dt), n_paths, generator=generator, dtype=ts.dtype)
    return torch.cat([torch.zeros(1, n_paths, dtype=ts.dtype), dw.cumsum(0)])


def _noise(ts, n, generator):
    return torch.randn(len(ts) - 1, n, generator=generator, dtype=ts.dtype)


def _path(dw):
    return torch.cat([torch.zeros(1, dw.shape[1], dtype=dw.dtype), dw.cumsum(0)])


BROWNIAN_MISTAKES = {
    "only increments": (lambda ts, n, generator=None: torch.diff(ts).sqrt()[:, None] * _noise(ts, n, generator),
                        "increments"),
    "transposed": (lambda ts, n, generator=None: brownian_ok(ts, n, generator).T, "time should come first"),
    "nonzero start": (lambda ts, n, generator=None: brownian_ok(ts, n, generator) + 0.1, "w(0) = 0"),
    "no generator": (lambda ts, n, generator=None: brownian_ok(ts, n, None), "generator argument"),
    "no cumsum": (lambda ts, n, generator=None: torch.cat([torch.zeros(1, n, dtype=ts.dtype),
                                                           torch.diff(ts).sqrt()[:, None] * _noise(ts, n, generator)]),
                  "torch.cumsum"),
    "std dt": (lambda ts, n, generator=None: _path(torch.diff(ts)[:, None] * _noise(ts, n, generator)),
               "variance dt^2"),
    "unscaled": (lambda ts, n, generator=None: _path(_noise(ts, n, generator)), "Scale each by sqrt(dt_k)"),
    "uniform dt": (lambda ts, n, generator=None: _path((ts[1] - ts[0]).sqrt() * _noise(ts, n, generator)),
                   "not uniform"),
    "reused noise": (lambda ts, n, generator=None: _path(torch.diff(ts).sqrt()[:, None]
                                                         * torch.randn(1, n, generator=generator, dtype=ts.dtype)),
                     "same standard normal"),
    "uniform noise": (lambda ts, n, generator=None: _path(
        torch.diff(ts).sqrt()[:, None] * (torch.rand(len(ts) - 1, n, generator=generator, dtype=ts.dtype) - 0.5)
        * math.sqrt(12)), "not Gaussian"),
    "drifting": (lambda ts, n, generator=None: _path(torch.diff(ts).sqrt()[:, None] * _noise(ts, n, generator)
                                                     + 0.1 * torch.diff(ts)[:, None]), "mean zero"),
    "not a function": (42, "should be a function"),
}


def test_brownian_checker_accepts_solution():
    assert ex.check_brownian_path(brownian_ok).startswith("Correct!")


@pytest.mark.parametrize("fn, words", BROWNIAN_MISTAKES.values(), ids=list(BROWNIAN_MISTAKES))
def test_brownian_checker_names_mistake(fn, words):
    with pytest.raises(WrongAnswer, match=re.escape(words)):
        ex.check_brownian_path(fn)


# ------------------------------------------------------------------ Euler–Maruyama for OU
def make_ou(*, drift_sign=-1.0, noise="sqrt", g_power=1, uniform=False, exact=False, drift=True, noise_on=True,
            return_path=False, use_generator=True, noise_times_g=True):
    """A family of OU solvers: the defaults are the reference solution, each flag one typical mistake."""
    def simulate_ou(x0, a, g, ts, generator=None):
        x = x0.clone()
        path = [x]
        gen = generator if use_generator else None
        for k in range(len(ts) - 1):
            dt = {False: ts[k + 1] - ts[k], True: ts[1] - ts[0], "T/N": (ts[-1] - ts[0]) / (len(ts) - 1)}[uniform]
            xi = torch.randn(x.shape, generator=gen, dtype=x.dtype)
            scale = {"sqrt": dt.sqrt(), "dt": dt, "one": 1.0, "sqrt_g": None}[noise]
            if noise == "sqrt_g":
                noise_term = torch.sqrt(g * dt) * xi
            else:
                noise_term = (g**g_power if noise_times_g else 1.0) * scale * xi
            if exact:
                x = x * torch.exp(-a * dt) + noise_term
            else:
                x = x + (drift_sign * a * x * dt if drift else 0.0) + (noise_term if noise_on else 0.0)
            path.append(x)
        return torch.stack(path) if return_path else x
    return simulate_ou


OU_MISTAKES = {
    "dt instead of sqrt(dt)": (dict(noise="dt"), "multiplied the noise by dt"),
    "no noise": (dict(noise_on=False), "noise term g * sqrt(dt) * xi is missing"),
    "wrong drift sign": (dict(drift_sign=1.0), "minus sign"),
    "no drift": (dict(drift=False), "drift term"),
    "exact decay": (dict(exact=True), "exact solution"),
    "g squared": (dict(g_power=2), "g^4 instead of g^2"),
    "sqrt(g dt)": (dict(noise="sqrt_g"), "not the variance"),
    "unscaled noise": (dict(noise="one"), "not scaled by the step"),
    "noise ignores g": (dict(noise_times_g=False), "multiplied by g"),
    "uniform dt": (dict(uniform=True), "non-uniform"),
    "uniform T/N": (dict(uniform="T/N"), "non-uniform"),
    "returns path": (dict(return_path=True), "whole path"),
    "ignores generator": (dict(use_generator=False), "generator"),
}


def test_ou_checker_accepts_solution():
    assert ex.check_simulate_ou(make_ou()).startswith("Correct!")


@pytest.mark.parametrize("kw, words", OU_MISTAKES.values(), ids=list(OU_MISTAKES))
def test_ou_checker_names_mistake(kw, words):
    with pytest.raises(WrongAnswer, match=re.escape(words)):
        ex.check_simulate_ou(make_ou(**kw))


def test_ou_checker_rejects_non_tensor_output():
    with pytest.raises(WrongAnswer, match="tensor"):
        ex.check_simulate_ou(lambda x0, a, g, ts, generator=None: "x")


# ------------------------------------------------------------------ stationary variance
def test_stationary_variance_accepts_function_and_sympy():
    assert ex.check_stationary_variance(lambda a, g: g**2 / (2 * a)).startswith("Correct!")
    a, g = sp.symbols("a g", positive=True)
    assert ex.check_stationary_variance(g**2 / (2 * a)).startswith("Correct!")
    a2, g2 = sp.symbols("a g")  # symbols without assumptions work too
    assert ex.check_stationary_variance(g2**2 / (2 * a2)).startswith("Correct!")


@pytest.mark.parametrize("answer, words", [
    (lambda a, g: g / (2 * a), "through g^2, not g"),
    (lambda a, g: g**2 / a, "factor 2"),
    (lambda a, g: g**2 / 2 * a, "precedence"),
    (lambda a, g: g / math.sqrt(2 * a), "standard deviation"),
    (lambda a, g: g**2 / (2 * a) ** 2, "(2a)^2"),
    (lambda a, g: -(g**2) / (2 * a), "cannot be negative"),
    (lambda a, g: 0.0, "does not decay to 0"),
    (lambda a, g: g**2, "Set v' = 0"),
    (lambda a, g: g**2 / (2 * a) + 0 * a + 1e-3, "Set v' = 0"),
    (0.5, "not a single number"),
    (lambda a: a, "raised TypeError"),
])
def test_stationary_variance_names_mistake(answer, words):
    with pytest.raises(WrongAnswer, match=re.escape(words)):
        ex.check_stationary_variance(answer)


def test_stationary_variance_rejects_time_dependent_expression():
    a, g, t = sp.symbols("a g t", positive=True)
    with pytest.raises(WrongAnswer, match="limit"):
        ex.check_stationary_variance(g**2 / (2 * a) * (1 - sp.exp(-2 * a * t)))


# ------------------------------------------------------------------ convergence order
def test_convergence_order_accepts_least_squares_slope():
    hs, errs = ex.convergence_data()
    p = np.polyfit(np.log(hs), np.log(errs), 1)[0]
    assert ex.check_convergence_order(p).startswith("Correct!")
    assert ex.check_convergence_order(torch.tensor(p)).startswith("Correct!")
    assert ex.check_convergence_order(np.polyfit(np.log10(hs), np.log10(errs), 1)[0]).startswith("Correct!")


def _mistakes():
    hs, errs = ex.convergence_data()
    lh, le = np.log(hs), np.log(errs)
    slope, icpt = np.polyfit(lh, le, 1)
    return [
        (-slope, "wrong sign"),
        (np.polyfit(np.log(1 / hs), le, 1)[0], "wrong sign"),
        (np.polyfit(le, lh, 1)[0], "axes swapped"),
        (np.polyfit(np.log10(hs), le, 1)[0], "ln 10"),
        (np.polyfit(lh, np.log10(errs), 1)[0], "ln 10"),
        (icpt, "intercept"),
        (np.polyfit(hs, errs, 1)[0], "log-log"),
        ((le[1] - le[0]) / (lh[1] - lh[0]), "two points"),
        (np.polyfit(lh, le, 1), "[slope, intercept]"),
        (1.0, "not the least-squares slope"),
        (lambda: 2.0, "not a function"),
    ]


@pytest.mark.parametrize("answer, words", _mistakes())
def test_convergence_order_names_mistake(answer, words):
    with pytest.raises(WrongAnswer, match=re.escape(words)):
        ex.check_convergence_order(answer)


def test_convergence_order_rejects_two_point_slopes_close_to_the_fit():
    # the first-to-last (2.0115) and last-pair (2.0144) slopes lie within 0.01 of the fit (2.0045)
    hs, errs = ex.convergence_data()
    lh, le = np.log(hs), np.log(errs)
    for slope in [(le[-1] - le[0]) / (lh[-1] - lh[0]), (le[-1] - le[-2]) / (lh[-1] - lh[-2])]:
        with pytest.raises(WrongAnswer, match="two points"):
            ex.check_convergence_order(slope)
    assert ex.check_convergence_order(round(np.polyfit(lh, le, 1)[0], 2)).startswith("Correct!")
