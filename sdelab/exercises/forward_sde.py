r"""Checkers for the exercises of the chapter "Designing the forward SDE: VP, VE and sub-VP"
(`book/part1/forward_sde.ipynb`).

Conventions: $T = 1$; the linear schedule $\beta(t) = 0.1 + 19.9\,t$, $B(t) = \int_0^t \beta = 0.1\,t + 9.95\,t^2$;
the geometric VE noise level $\sigma(t) = \sigma_{min} (\sigma_{max}/\sigma_{min})^t$.
"""
from __future__ import annotations

import math
from functools import partial

import numpy as np
import torch

from ._core import (WrongAnswer, allclose, correct, expect, expect_array, expect_callable, expect_number,
                    reject_mistakes)
from ._core import call_answer as _call

__all__ = ["check_vp_diffusion", "check_subvp_variance", "check_ve_diffusion", "check_beta_max"]

BETA_MIN, BETA_MAX = 0.1, 20.0


_close = partial(allclose, rtol=1e-4, atol=1e-9)


def _B(t):
    return BETA_MIN * t + 0.5 * (BETA_MAX - BETA_MIN) * t**2


# ---------------------------------------------------------------- pairing drift and diffusion
_PAIRS = [(0.5, 1.0), (1.0, 1.0), (0.5, 4.0), (1.0, 20.0), (2.0, 0.3), (0.25, 7.0)]


def check_vp_diffusion(vp_diffusion) -> str:
    r"""Check `vp_diffusion(c, beta)`: the $g$ for which $dx = -c\,\beta\,x\,dt + g\,dw$ (constants $c, \beta > 0$)
    has stationary variance 1. From $v_\infty = g^2 / (2c\beta)$ the answer is $g = \sqrt{2c\beta}$: $\sqrt\beta$ for the
    VP drift $-\tfrac12\beta x$ and $\sqrt{2\beta}$ for the Langevin drift $-\beta x$."""
    expect_callable(vp_diffusion, name="vp_diffusion")
    got = []
    for c, beta in _PAIRS:
        call = f"vp_diffusion({c}, {beta})"
        got.append(expect_number(_call(vp_diffusion, c, beta, name=call), name=call))
    got = np.array(got)
    C, Bt = np.array(_PAIRS).T
    want = np.sqrt(2 * C * Bt)
    if _close(got, want):
        return correct("g = sqrt(2 c beta) keeps the stationary variance at 1.")
    wrong = [
        (np.sqrt(C * Bt), "with g^2 = c beta the stationary variance g^2 / (2 c beta) is 1/2: a factor 2 is missing. "
                          "This is the sqrt(beta) vs sqrt(2 beta) mix-up: g^2 must be twice the drift rate c beta."),
        (np.sqrt(4 * C * Bt), "with g^2 = 4 c beta the stationary variance g^2 / (2 c beta) is 2: one factor 2 too many. "
                              "This is the sqrt(beta) vs sqrt(2 beta) mix-up: g^2 must be twice the drift rate c beta."),
        (np.sqrt(2 * Bt), "g must depend on the drift rate c: sqrt(2 beta) is right for the drift -beta x (c = 1) but "
                          "gives stationary variance 2 with the VP drift -beta x / 2 (c = 1/2)."),
        (np.sqrt(Bt), "g must depend on the drift rate c: sqrt(beta) is right for the VP drift -beta x / 2 (c = 1/2) "
                      "but gives stationary variance 1/2 with the drift -beta x (c = 1)."),
        (2 * C * Bt, "that is g^2 = 2 c beta; g is its square root."),
        (np.sqrt(C * Bt / 2), "with g^2 = c beta / 2 the stationary variance is 1/4. Set v' = -2 c beta v + g^2 to zero "
                              "at v = 1."),
        (C * Bt, "g = c beta is dimensionally inconsistent: beta is a rate (1/time), and g dw must have the units of "
                 "x, so g^2 (not g) is a rate. Balance -2 c beta v + g^2 = 0 at v = 1."),
        (Bt, "g = beta is dimensionally inconsistent: beta is a rate (1/time), and g dw must have the units of x, so "
             "g^2 (not g) is a rate. Balance -2 c beta v + g^2 = 0 at v = 1."),
    ]
    reject_mistakes(got, wrong, same=_close)
    i = int(np.argmax(np.abs(got - want)))
    raise WrongAnswer(f"vp_diffusion({C[i]:g}, {Bt[i]:g}) = {got[i]:.6g} does not give stationary variance 1 "
                      f"(it gives {got[i] ** 2 / (2 * C[i] * Bt[i]):.4g}). Use v_inf = g^2 / (2 c beta).")


# ---------------------------------------------------------------- sub-VP variance
_TS = np.array([0.02, 0.1, 0.3, 0.6, 1.0])
_V0S = (0.25, 1.0, 4.0)


def check_subvp_variance(subvp_var) -> str:
    r"""Check `subvp_var(t, v0)`: $\mathrm{Var}\,x_t$ of the sub-VP SDE (linear schedule 0.1..20) for 1-D data of
    variance `v0`; `t` is a float64 tensor of shape `(5,)`. Answer: $e^{-B} v_0 + (1 - e^{-B})^2$."""
    expect_callable(subvp_var, name="subvp_var")
    t = torch.tensor(_TS, dtype=torch.float64)
    E = np.exp(-_B(_TS))
    for v0 in _V0S:
        out = _call(subvp_var, t, v0, name=f"subvp_var(t, {v0})")
        v = expect_array(out, name=f"subvp_var(t, {v0})")
        expect(v.shape == _TS.shape, f"subvp_var(t, {v0}) should have the shape of t, {_TS.shape}, got {v.shape}")
        want = E * v0 + (1 - E) ** 2
        if _close(v, want):
            continue
        where = f"With v0 = {v0}: "
        wrong = [
            (E * v0 + (1 - E), "that is the VP-SDE's variance. Sub-VP's kernel variance is (1 - e^{-B})^2, the square "
                               "of VP's, hence smaller."),
            ((1 - E) ** 2, "you gave only the kernel variance sigma(t)^2 = (1 - e^{-B})^2; the data contribute "
                           "alpha(t)^2 v0 = e^{-B} v0 as well."),
            (np.sqrt(E) * v0 + (1 - E) ** 2, "the data variance is scaled by alpha(t)^2 = e^{-B}, not by "
                                             "alpha(t) = e^{-B/2}."),
            (E * v0 + (1 - np.exp(-2 * _B(_TS))), "1 - e^{-2B} appears in sub-VP's g^2, not in its variance; solve "
                                                  "v' = -beta v + beta (1 - e^{-2B}): the variance is (1 - e^{-B})^2."),
            (E * v0 + 1 - E**2, "1 - e^{-2B} appears in sub-VP's g^2, not in its variance; solve "
                                "v' = -beta v + beta (1 - e^{-2B}): the variance is (1 - e^{-B})^2."),
            (E * v0 + (1 - np.exp(-(BETA_MIN + (BETA_MAX - BETA_MIN) * _TS) * _TS)) ** 2,
             "you used beta(t) t in place of B(t) = int_0^t beta(s) ds = beta_min t + (beta_max - beta_min) t^2 / 2."),
        ]
        reject_mistakes(v, wrong, same=_close, prefix=where)
        i = int(np.argmax(np.abs(v - want)))
        raise WrongAnswer(where + f"subvp_var({_TS[i]:g}) = {v[i]:.6g}, but it should be {want[i]:.6g}. "
                          "Var x_t = alpha^2 v0 + sigma^2 with alpha^2 = e^{-B}, sigma^2 = (1 - e^{-B})^2.")
    return correct("Var x_t = e^{-B} v0 + (1 - e^{-B})^2, below the VP's.")


# ---------------------------------------------------------------- VE diffusion coefficient
_VE_CASES = [(0.01, 50.0), (0.002, 80.0), (0.1, 10.0)]
_VE_TS = np.array([0.0, 0.25, 0.5, 0.9, 1.0])


def check_ve_diffusion(ve_g) -> str:
    r"""Check `ve_g(t, sigma_min, sigma_max)`: $g(t)$ of the geometric VE-SDE on $[0, 1]$, i.e.
    $\sigma(t)\sqrt{2\ln(\sigma_{max}/\sigma_{min})}$ with $\sigma(t) = \sigma_{min}(\sigma_{max}/\sigma_{min})^t$;
    `t` is a float64 tensor of shape `(5,)`."""
    expect_callable(ve_g, name="ve_g")
    t = torch.tensor(_VE_TS, dtype=torch.float64)
    for smin, smax in _VE_CASES:
        out = _call(ve_g, t, smin, smax, name=f"ve_g(t, {smin}, {smax})")
        g = expect_array(out, name=f"ve_g(t, {smin}, {smax})")
        expect(g.shape == _VE_TS.shape, f"ve_g(t, ...) should have the shape of t, {_VE_TS.shape}, got {g.shape}")
        L = math.log(smax / smin)
        sig = smin * (smax / smin) ** _VE_TS
        want = sig * math.sqrt(2 * L)
        if _close(g, want):
            continue
        where = f"With sigma_min = {smin}, sigma_max = {smax}: "
        wrong = [
            (sig, "you returned the noise level sigma(t) itself. g is the rate of noise injection: g^2 = "
                  "d sigma^2/dt = 2 ln(sigma_max/sigma_min) sigma(t)^2, so a factor sqrt(2 ln(sigma_max/sigma_min)) "
                  "is missing."),
            (sig**2 * 2 * L, "that is g(t)^2 = d sigma^2/dt; take the square root."),
            (sig * 2 * L, "the factor is sqrt(2 ln(sigma_max/sigma_min)), not 2 ln(...): g = sqrt(d sigma^2 / dt)."),
            (sig * math.sqrt(L), "a factor sqrt(2) is missing: d sigma^2/dt = 2 sigma sigma' = 2 ln(ratio) sigma^2."),
            (sig * math.sqrt(2 * math.log10(smax / smin)), "use the natural logarithm ln, not log10: "
                                                          "d/dt r^t = ln(r) r^t."),
            (np.full_like(sig, math.sqrt(2 * L)), "the factor sqrt(2 ln(sigma_max/sigma_min)) must multiply "
                                                   "sigma(t) = sigma_min (sigma_max/sigma_min)^t."),
            (np.sqrt(np.maximum(sig**2 - smin**2, 0)), "that is the kernel's standard deviation "
                                                         "sqrt(sigma(t)^2 - sigma_min^2), not the diffusion "
                                                         "coefficient g(t) = sqrt(d sigma^2/dt)."),
            (sig * L, "g is sigma(t) sqrt(2 ln(ratio)): you have ln(ratio) sigma = sigma', the derivative of sigma, "
                      "but g^2 is the derivative of sigma^2."),
        ]
        reject_mistakes(g, wrong, same=_close, prefix=where)
        i = int(np.argmax(np.abs(g - want)))
        raise WrongAnswer(where + f"ve_g({_VE_TS[i]:g}) = {g[i]:.6g}, but it should be {want[i]:.6g}. "
                          "g(t) = sqrt(d sigma(t)^2 / dt).")
    return correct("g(t) = sigma(t) sqrt(2 ln(sigma_max / sigma_min)).")


# ---------------------------------------------------------------- choosing beta_max
def check_beta_max(beta_max) -> str:
    r"""Check the $\beta_{max}$ for which the linear VP schedule with $\beta_{min} = 0.1$, $T = 1$ ends at
    $\alpha(1) = 0.01$: $B(1) = (\beta_{min} + \beta_{max})/2 = 2\ln 100$, so $\beta_{max} = 4\ln 100 - 0.1$."""
    want = 4 * math.log(100) - BETA_MIN
    v = expect_number(beta_max, name="beta_max")
    if abs(v - want) <= 1e-3 * want:
        return correct(f"beta_max = 4 ln(100) - beta_min = {want:.3f}.")
    L = math.log(100)
    wrong = [
        (2 * L - BETA_MIN, "you made alpha_bar(1) = alpha(1)^2 equal to 0.01. The condition is on alpha(1) = "
                           "exp(-B(1)/2), so B(1) = 2 ln(100)."),
        (4 * L, "B(1) = (beta_min + beta_max) / 2 includes beta_min: subtract it."),
        (2 * L, "B(1) is the integral of beta over [0, 1], (beta_min + beta_max)/2, not beta_max; and alpha(1) = "
                "exp(-B(1)/2)."),
        (4 * L - 2 * BETA_MIN, "B(1) = (beta_min + beta_max)/2, so beta_max = 2 B(1) - beta_min (subtract beta_min "
                               "once)."),
        (L, "alpha(1) = exp(-B(1)/2) with B(1) = (beta_min + beta_max)/2: solve exp(-(0.1 + beta_max)/4) = 0.01."),
    ]
    reject_mistakes(v, wrong, same=lambda got, cand: abs(got - cand) <= 1e-3 * abs(cand),
                    prefix=f"beta_max = {v:.6g} is not right: ")
    expect(math.isfinite(v) and v > BETA_MIN, f"beta_max = {v:.6g}: it must be a finite number above beta_min = 0.1.")
    direction = "large" if v > want else "small"
    raise WrongAnswer(f"beta_max = {v:.6g} is too {direction}: alpha(1) would be {math.exp(-(BETA_MIN + v) / 4):.4g}, "
                      "not 0.01. Solve exp(-B(1)/2) = 0.01 with B(1) = (beta_min + beta_max)/2.")
