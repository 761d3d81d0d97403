r"""Checkers for the exercises of the chapter "Solving the VP-SDE exactly" (`book/part1/solving_vpsde.ipynb`).

Conventions: $T = 1$; the linear schedule $\beta(t) = 0.1 + 19.9\,t$ and $B(t) = \int_0^t \beta = 0.1\,t + 9.95\,t^2$,
unless an exercise names another schedule.
"""
from __future__ import annotations

from functools import partial

import numpy as np
import sympy as sp
import torch

from ._core import (WrongAnswer, allclose, correct, expect, expect_array, expect_callable, parse_sympy_in,
                    reject_mistakes)
from ._core import call_answer as _call

__all__ = ["check_vp_moments", "check_integrating_factor", "check_scaled_linear_B"]

BETA_MIN, BETA_MAX = 0.1, 20.0


_close = partial(allclose, rtol=1e-4, atol=1e-9)


def _beta(t, bmin=BETA_MIN, bmax=BETA_MAX):
    return bmin + (bmax - bmin) * t


def _B(t, bmin=BETA_MIN, bmax=BETA_MAX):
    return bmin * t + 0.5 * (bmax - bmin) * t**2


# ---------------------------------------------------------------- mean and variance of x_t
_TS = np.array([0.02, 0.1, 0.3, 0.6, 1.0])
_CASES = [(2.0, 0.0), (-1.0, 0.25), (0.5, 4.0)]


def check_vp_moments(vp_moments) -> str:
    r"""Check `vp_moments(t, m0, v0) -> (mean, var)`: the mean and variance of $x_t$ under the VP-SDE with the
    linear schedule 0.1..20, for 1-D data with mean `m0` and variance `v0` (floats); `t` is a float64 tensor
    of shape `(5,)`. Answer: $m_0 e^{-B/2}$ and $1 - e^{-B} + e^{-B} v_0$."""
    expect_callable(vp_moments, name="vp_moments")
    t = torch.tensor(_TS, dtype=torch.float64)
    B = _B(_TS)
    Bwrong = _beta(_TS) * _TS  # beta(t) * t in place of the integral
    for m0, v0 in _CASES:
        call = f"vp_moments(t, {m0}, {v0})"
        out = _call(vp_moments, t, m0, v0, name=call)
        expect(isinstance(out, (tuple, list)) and len(out) == 2, f"{call} should return a pair (mean, var), got "
               f"{type(out).__name__}" + (f" of length {len(out)}" if isinstance(out, (tuple, list)) else ""))
        mean = expect_array(out[0], name=f"the mean from {call}")
        var = expect_array(out[1], name=f"the variance from {call}")
        for name, arr in (("mean", mean), ("variance", var)):
            expect(arr.shape == _TS.shape, f"the {name} from {call} should have the shape of t, {_TS.shape}, "
                                           f"got {arr.shape}")
        where = f"With m0 = {m0}, v0 = {v0}: "
        want_m = m0 * np.exp(-B / 2)
        if not _close(mean, want_m):
            wrong = [
                (m0 * np.exp(-B), "the mean decays like alpha(t) = e^{-B/2}, not e^{-B}: m' = -beta m / 2 has the "
                                  "factor 1/2 from the drift -beta x / 2. (e^{-B} = alpha^2 scales the variance.)"),
                (m0 * np.exp(-Bwrong / 2), "you used beta(t) t in place of B(t) = int_0^t beta(s) ds = "
                                           "beta_min t + (beta_max - beta_min) t^2 / 2."),
                (m0 * np.ones_like(B), "the mean is not constant: the drift -beta x / 2 pulls it to 0 like "
                                       "m0 e^{-B(t)/2}."),
                (m0 * np.exp(B / 2), "sign error: the drift shrinks x, so the mean is m0 e^{-B/2}, not e^{+B/2}."),
            ]
            reject_mistakes(mean, wrong, same=_close, prefix=where)
            i = int(np.argmax(np.abs(mean - want_m)))
            raise WrongAnswer(where + f"the mean at t = {_TS[i]:g} is {mean[i]:.6g}, but it should be "
                              f"{want_m[i]:.6g}. Solve m' = -beta(t) m / 2.")
        E = np.exp(-B)
        want_v = 1 - E + E * v0
        if _close(var, want_v):
            continue
        wrong = [
            (1 - E, "you gave the kernel's variance sigma(t)^2 = 1 - e^{-B}, which is the variance for a *fixed* x0. "
                    "Random data contribute alpha(t)^2 v0 = e^{-B} v0 as well: Var x_t = e^{-B} v0 + 1 - e^{-B}."),
            (1 - E + np.sqrt(E) * v0, "the data variance is scaled by alpha(t)^2 = e^{-B}, not by alpha(t) = e^{-B/2}."),
            (1 - E + v0, "the data variance does not survive unchanged: it is scaled by alpha(t)^2 = e^{-B}."),
            (1 - np.exp(-Bwrong) + np.exp(-Bwrong) * v0, "you used beta(t) t in place of B(t) = int_0^t beta(s) ds = "
                                                         "beta_min t + (beta_max - beta_min) t^2 / 2."),
            (2 * (1 - E) + E * v0, "that is the variance for g = sqrt(2 beta), whose stationary variance is 2. The "
                                   "VP-SDE has g = sqrt(beta): v' = -beta v + beta."),
            (np.sqrt(want_v), "you returned the standard deviation; the exercise asks for the variance."),
            (E + (1 - E) * v0, "the roles are swapped: the data part decays (e^{-B} v0) and the noise part grows "
                               "(1 - e^{-B})."),
            (np.full_like(B, v0), "the variance is constant only when v0 = 1 (that is what 'variance preserving' "
                                  "really promises); in general it relaxes from v0 to 1 as e^{-B} v0 + 1 - e^{-B}."),
        ]
        reject_mistakes(var, wrong, same=_close, prefix=where)
        i = int(np.argmax(np.abs(var - want_v)))
        raise WrongAnswer(where + f"the variance at t = {_TS[i]:g} is {var[i]:.6g}, but it should be {want_v[i]:.6g}. "
                          "Solve v' = -beta(t) v + beta(t) with v(0) = v0.")
    return correct("mean m0 e^{-B/2}, variance e^{-B} v0 + 1 - e^{-B}.")


# ---------------------------------------------------------------- integrating factor
_T_SYM = sp.Symbol("t", positive=True)
_TPTS = (0.05, 0.2, 0.4, 0.6, 0.8, 1.0)


def check_integrating_factor(phi) -> str:
    r"""Check an integrating factor $\varphi(t)$ for the VP-SDE with the linear schedule 0.1..20: a sympy expression
    in one symbol `t` (or a function of a sympy symbol) such that $y = \varphi(t)\,x$ has no $dt$ term. Any nonzero
    constant multiple of $e^{B(t)/2}$ is right."""
    expr = parse_sympy_in(phi, _T_SYM, name="phi", hint="Put the numbers beta_min = 0.1 and beta_max = 20 in.")
    beta = sp.Float(BETA_MIN) + sp.Float(BETA_MAX - BETA_MIN) * _T_SYM
    # Ito: d(phi x) = phi' x dt + phi dx = (phi' - beta phi / 2) x dt + phi sqrt(beta) dw
    dphi = sp.diff(expr, _T_SYM)
    ratios = []
    for tv in _TPTS:
        p = complex(expr.subs(_T_SYM, tv).evalf())
        expect(np.isfinite(p) and abs(p) > 1e-300, f"phi({tv}) = {p}: an integrating factor must be finite and "
                                                    "nonzero (y = 0 * x has no dt term, but says nothing about x).")
        dp = complex(dphi.subs(_T_SYM, tv).evalf())
        ratios.append((dp / p - float(_beta(tv)) / 2) / float(_beta(tv)))  # (dt coefficient) / (phi beta x)
    r = np.real(np.array(ratios))
    if np.allclose(r, 0, atol=1e-6):
        return correct("phi = e^{B(t)/2}: d(phi x) = phi sqrt(beta) dw, no dt term.")
    ts = np.array(_TPTS)
    wrong = [
        (np.full_like(r, 0.5), "y = e^{B} x leaves the dt term (beta / 2) y dt: the drift is -beta x / 2, so the "
                               "exponent needs the factor 1/2, phi = e^{B(t)/2}."),
        (np.full_like(r, -1.0), "sign error: phi = e^{-B/2} doubles the dt term instead of cancelling it. Choose phi "
                                "with phi' / phi = +beta / 2."),
        (np.full_like(r, -0.5), "a constant phi leaves the drift -beta x / 2 untouched; phi must grow like "
                                "e^{B(t)/2}."),
        ((BETA_MAX - BETA_MIN) * ts / (2 * _beta(ts)), "you used beta(t) t / 2 in the exponent; the exponent must be "
                                                       "B(t) / 2 = (1/2) int_0^t beta(s) ds, because d/dt (beta(t) t) "
                                                       "= beta(t) + beta'(t) t is not beta(t)."),
        (np.full_like(r, -1.5), "sign error: phi = e^{-B} makes the dt term worse. You need phi' / phi = +beta / 2."),
    ]
    reject_mistakes(r, wrong, same=partial(np.allclose, atol=1e-6))
    raise WrongAnswer("with this phi, d(phi x) still has a dt term c(t) x dt with c(t) / (phi beta) = "
                      f"{r[2]:.4g} at t = {_TPTS[2]}. You need phi'(t) = beta(t) phi(t) / 2.")


# ---------------------------------------------------------------- B(t) of the scaled-linear schedule
_SL_CASES = [(0.1, 20.0), (0.85, 12.0), (0.01, 5.0)]  # (beta_min, beta_max)


def _sl_beta(t, bmin, bmax):
    a, b = np.sqrt(bmin), np.sqrt(bmax)
    return (a + (b - a) * t) ** 2


def _sl_B(t, bmin, bmax):
    a, b = np.sqrt(bmin), np.sqrt(bmax)
    return ((a + (b - a) * t) ** 3 - a**3) / (3 * (b - a))


def check_scaled_linear_B(B_fn) -> str:
    r"""Check `B_fn(t, beta_min, beta_max)`: $B(t) = \int_0^t \beta$ for the scaled-linear schedule
    $\beta(t) = (\sqrt{\beta_{min}} + t(\sqrt{\beta_{max}} - \sqrt{\beta_{min}}))^2$; `t` is a float64 tensor of shape `(5,)`.
    Answer: $\big[(\sqrt{\beta_{min}} + t(\sqrt{\beta_{max}} - \sqrt{\beta_{min}}))^3 - \beta_{min}^{3/2}\big] /
    \big(3(\sqrt{\beta_{max}} - \sqrt{\beta_{min}})\big)$."""
    expect_callable(B_fn, name="B_fn")
    t = torch.tensor(_TS, dtype=torch.float64)
    for bmin, bmax in _SL_CASES:
        call = f"B_fn(t, {bmin}, {bmax})"
        got = expect_array(_call(B_fn, t, bmin, bmax, name=call), name=call)
        expect(got.shape == _TS.shape, f"{call} should have the shape of t, {_TS.shape}, got {got.shape}")
        want = _sl_B(_TS, bmin, bmax)
        if _close(got, want):
            continue
        where = f"With beta_min = {bmin}, beta_max = {bmax}: "
        a, b = np.sqrt(bmin), np.sqrt(bmax)
        wrong = [
            (_sl_beta(_TS, bmin, bmax) * _TS, "you multiplied beta(t) by t; beta changes with t, so integrate it: "
                                              "B(t) = int_0^t beta(s) ds."),
            (_sl_beta(_TS, bmin, bmax), "that is beta(t) itself, the integrand; B is its integral from 0 to t."),
            ((a + (b - a) * _TS) ** 3 / (3 * (b - a)), "B(0) must be 0 (no noise yet at t = 0): subtract the "
                                                       "antiderivative's value at 0, beta_min^{3/2} / (3 (sqrt(beta_max)"
                                                       " - sqrt(beta_min)))."),
            (_B(_TS, bmin, bmax), "that is the linear schedule's integral; this schedule interpolates sqrt(beta) "
                                  "linearly, so beta(t) is quadratic in t and B(t) cubic."),
            (((a + (b - a) * _TS) ** 3 - a**3) / 3, "you dropped the chain-rule factor 1 / (sqrt(beta_max) - "
                                                    "sqrt(beta_min)): d/dt (a + (b - a) t)^3 = 3 (b - a) (a + (b - a) t)^2."),
            (np.exp(-want), "that is alpha_bar(t) = e^{-B(t)}; the exercise asks for B(t) itself."),
            (((a + (b - a) * _TS) ** 3 - a**3) / (b - a), "you dropped the 1/3 of int s^2 ds = s^3 / 3."),
        ]
        reject_mistakes(got, wrong, same=_close, prefix=where)
        ratio = got / want
        if np.allclose(ratio, ratio[0], rtol=1e-6):
            raise WrongAnswer(where + f"your B is {ratio[0]:.6g} times the right one at every t: a constant factor is "
                              "off (check the chain rule and the 1/3).")
        i = int(np.argmax(np.abs(got - want)))
        raise WrongAnswer(where + f"B({_TS[i]:g}) = {got[i]:.6g}, but it should be {want[i]:.6g}. Expand beta(t) = "
                          "(a + (b - a) t)^2 with a = sqrt(beta_min), b = sqrt(beta_max) and integrate from 0 to t.")
    return correct("B(t) = [(a + (b - a) t)^3 - a^3] / (3 (b - a)), a = sqrt(beta_min).")
