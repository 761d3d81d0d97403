r"""Checkers for the exercises of the chapter "Taylor expansions and Itô's lemma" (`book/part1/taylor_ito.ipynb`).

Symbolic answers are sympy expressions (or strings sympy can parse); their symbols are matched by name,
so `sympy.Symbol("beta")` and `sympy.Symbol("beta", positive=True)` both work.
"""
from __future__ import annotations

from functools import partial

import numpy as np
import sympy as sp
import torch

from ._core import (WrongAnswer, correct, expect, expect_array, expect_callable, expect_close, expect_number,
                    parse_sympy, reject_mistakes, sympy_equal)
from ._core import call_answer as _call

__all__ = ["check_inverse_sqrt_series", "check_gbm_log", "check_quadratic_variation", "check_qv_scaled",
           "check_fourth_moment"]


# ---------------------------------------------------------------- 1. series of 1/sqrt(1 - beta h)
def check_inverse_sqrt_series(series) -> str:
    r"""Check the second-order expansion of DDPM's sampler coefficient $1/\sqrt{1 - \beta h}$ in $h$:
    $1 + \beta h/2 + 3\beta^2 h^2/8$ (a polynomial in the symbols `beta`, `h`; an `O(h**3)` term is allowed)."""
    beta, h = sp.symbols("beta h", positive=True)
    expr = sp.expand(parse_sympy(series, {"beta": beta, "h": h}, name="series"))
    expect(expr.is_polynomial(h), "series should be a polynomial in h (truncate after the h**2 term; drop O(h**3) "
                                  "or keep it, both are fine)")
    poly = sp.Poly(expr, h)
    expect(poly.degree() <= 2, f"keep terms up to h**2 only: your answer has degree {poly.degree()} in h. The "
                               "higher terms are part of O(h**3).")
    c0, c1, c2 = (sp.simplify(poly.coeff_monomial(h**k)) for k in range(3))
    expect(sympy_equal(c0, 1), f"the constant term should be 1 (the value at h = 0), got {c0}")
    if sympy_equal(c1, -beta / 2):
        raise WrongAnswer("the first-order coefficient has the wrong sign: -beta h/2 belongs to sqrt(1 - beta h) "
                          "itself. Its inverse grows with h: (1 - u)^(-1/2) = 1 + u/2 + ...")
    expect(sympy_equal(c1, beta / 2), f"the coefficient of h should be beta/2, got {c1}: (1 - u)^(-1/2) = "
                                      "1 + u/2 + ... with u = beta h")
    wrong2 = {
        -beta**2 / 8: "the h**2 coefficient -beta**2/8 is that of sqrt(1 - beta h). For (1 - u)^(-1/2) the "
                      "second derivative at 0 is (1/2)(3/2) = 3/4, so the coefficient is 3/4 / 2! = 3/8.",
        beta**2 / 8: "the h**2 coefficient should be 3 beta**2/8: the second derivative of (1 - u)^(-1/2) at 0 "
                     "is (1/2)(3/2) = 3/4; divide by 2! = 2.",
        3 * beta**2 / 4: "you forgot to divide the second derivative 3/4 by 2!: the coefficient is 3/8 beta**2.",
        beta**2 / 4: "(1 + beta h/2)^2 is not the answer: the h**2 coefficient of (1 - u)^(-1/2) is "
                     "(-1/2)(-3/2)/2! = 3/8.",
    }
    reject_mistakes(c2, wrong2.items(), same=sympy_equal)
    expect(sympy_equal(c2, 3 * beta**2 / 8), f"the h**2 coefficient should be 3 beta**2/8, got {c2}")
    return correct("1/sqrt(1 - beta h) = 1 + beta h/2 + 3 beta^2 h^2/8 + O(h^3).")


# ---------------------------------------------------------------- 2. Ito on log x for GBM
def check_gbm_log(drift, diffusion) -> str:
    r"""Check Itô's lemma for $\log x$ with $dx = \mu x\,dt + s x\,dw$: $d\log x = (\mu - s^2/2)\,dt + s\,dw$.
    `drift` and `diffusion` are sympy expressions in `mu`, `s` (and possibly `x`)."""
    mu, s, x = sp.Symbol("mu", real=True), sp.Symbol("s", positive=True), sp.Symbol("x", positive=True)
    allowed = {"mu": mu, "s": s, "x": x}
    a = parse_sympy(drift, allowed, name="drift")
    b = parse_sympy(diffusion, allowed, name="diffusion")
    if sympy_equal(b, s * x):
        raise WrongAnswer("the diffusion of log x is g phi'(x) = (s x)(1/x) = s: you kept g = s x without the "
                          "factor phi'(x) = 1/x.")
    if sympy_equal(b, s**2) or sympy_equal(b, s**2 * x**2):
        raise WrongAnswer("the dw coefficient is g phi'(x) = s x / x = s, not a square: g^2 appears only in the dt "
                          "term.")
    expect(sympy_equal(b, s) or sympy_equal(b, -s),
           f"the diffusion should be s (g phi'(x) with g = s x, phi' = 1/x), got {b}")
    expect(sympy_equal(b, s), "the sign of the dw term is conventional (-w is a Brownian motion too) but the book "
                              "writes +s: phi'(x) = 1/x > 0.")
    target = mu - s**2 / 2
    wrong = [
        (mu, "this is the ordinary chain rule: d log x = dx/x = mu dt + s dw misses Itô's correction "
             "(1/2) g^2 phi''(x) = (1/2) s^2 x^2 (-1/x^2) = -s^2/2."),
        (mu + s**2 / 2, "check the sign of phi''(x): for phi = log x, phi'' = -1/x^2, so the correction is -s^2/2."),
        (mu - s**2, "the Itô correction carries a factor 1/2: (1/2) g^2 phi'' = (1/2) s^2 x^2 (-1/x^2) = -s^2/2."),
        (mu - s / 2, "g^2 = s^2 x^2 enters the correction, not g: the drift is mu - s^2/2."),
        (mu - s**2 * x**2 / 2, "multiply g^2 = s^2 x^2 by phi''(x) = -1/x^2: the x's cancel, leaving -s^2/2."),
        (mu * x - s**2 / 2, "phi'(x) f = (1/x)(mu x) = mu: the x cancels in the first term too."),
    ]
    reject_mistakes(a, wrong, same=sympy_equal)
    expect(sympy_equal(a, target), f"the drift should be mu - s^2/2, got {a}. Itô: f phi' + (1/2) g^2 phi'' with "
                                   "f = mu x, g = s x, phi = log x.")
    return correct("d log x = (mu - s^2/2) dt + s dw.")


# ---------------------------------------------------------------- 3. quadratic variation
def check_quadratic_variation(quadratic_variation) -> str:
    r"""Check `quadratic_variation(path)`: for a path tensor of shape `(N + 1, B)` return the `(B,)` sums
    $\sum_k (x_{k+1} - x_k)^2$."""
    expect_callable(quadratic_variation, name="quadratic_variation")
    gen = torch.Generator().manual_seed(1)
    path = torch.cumsum(torch.randn(9, 3, generator=gen, dtype=torch.float64), 0)
    path = torch.cat([torch.zeros(1, 3, dtype=torch.float64), path])
    got = expect_array(_call(quadratic_variation, path.clone(), name="quadratic_variation(path)"),
                       name="quadratic_variation(path)")
    d = np.diff(path.numpy(), axis=0)
    want = (d**2).sum(0)
    if got.shape == (9,) or got.shape == (10,):
        raise WrongAnswer(f"quadratic_variation(path) has shape {got.shape}: sum over time (dim 0, the first "
                          "index), one number per path, shape (B,)")
    expect(got.shape == (3,), f"quadratic_variation(path) should have shape (B,) = (3,), got {got.shape}")
    wrong = [
        (np.abs(d).sum(0), "you summed |dx|, the total variation: for Brownian motion it grows like "
                           "sqrt(2t/(pi h)) and has no limit. Square the increments."),
        ((path.numpy()[1:] ** 2).sum(0), "square the increments x_{k+1} - x_k, not the values x_k."),
        ((path.numpy()[-1] - path.numpy()[0]) ** 2, "(x_N - x_0)^2 is the square of the sum of the increments; the "
                                                    "quadratic variation is the sum of their squares."),
        ((d**2).mean(0), "sum the squared increments, do not average them: the sum converges to t, the mean to 0."),
        (np.sqrt((d**2).sum(0)), "no square root: the quadratic variation is the sum of squared increments."),
    ]
    reject_mistakes(got, wrong, same=np.allclose)
    expect(np.allclose(got, want), f"quadratic_variation(path) = {got}, expected {want}: sum (x_(k+1) - x_k)^2 "
                                   "over k.")
    return correct("The sum of squared increments, one per path.")


def check_qv_scaled(value) -> str:
    r"""Check the limit of the quadratic variation of $y_t = 3 w_t + 5 t$ over $[0, 2]$: $3^2 \cdot 2 = 18$."""
    hints = [
        (6.0, "scaling w by c scales every squared increment by c^2, not c: [3 w]_t = 9 t."),
        (3 * np.sqrt(2), "the quadratic variation of w over [0, t] is t itself, not sqrt(t), and the factor 3 "
                         "enters squared."),
        (68.0, "the drift's contribution vanishes: sum (5 h)^2 = 25 h t -> 0, and the cross terms 2 * 3 * 5 h dw "
               "sum to O(sqrt(h)) -> 0. Only 9 t remains."),
        (2.0, "the factor 3 counts: each increment of 3 w is 3 dw, whose square is 9 dw^2 = 9 dt."),
        (9.0, "over [0, 2] the quadratic variation is 9 * 2 = 18, not 9: [w]_t = t with t = 2."),
    ]
    v = expect_number(value, name="value")
    reject_mistakes(v, hints, same=partial(np.isclose, rtol=1e-3))
    expect_close(v, 18.0, name="value", rtol=1e-3,
                 hint="[y]_t = sum (3 dw + 5 dt)^2 -> 9 t: only the dw^2 = dt term survives.")
    return correct("9 * 2 = 18: the drift adds nothing.")


# ---------------------------------------------------------------- 4. fourth moment via Ito
def check_fourth_moment(moment) -> str:
    r"""Check $\mathbb E\, w_t^4$ from Itô's lemma ($d(w^4) = 4w^3\,dw + 6 w^2\,dt$): $3t^2$ (sympy, symbol `t`)."""
    t = sp.Symbol("t", positive=True)
    m = parse_sympy(moment, {"t": t}, name="moment")
    wrong = [
        (sp.Integer(0), "the ordinary chain rule gives d(w^4) = 4 w^3 dw, with mean zero: it misses Itô's term "
                        "(1/2) phi''(w) dt = 6 w^2 dt, whose mean 6 E w_s^2 = 6 s is what grows E w_t^4."),
        (6 * t**2, "integrate 6 E w_s^2 = 6 s from 0 to t: int_0^t 6 s ds = 3 t^2 (you forgot the 1/2 of the "
                   "integral, or doubled phi'')."),
        (12 * t**2, "the Itô term is (1/2) phi'' = (1/2) 12 w^2 = 6 w^2, not 12 w^2; then int_0^t 6 s ds = 3 t^2."),
        (t**2, "E w_t^4 = t^2 would make w_t^2 deterministic (variance E w^4 - (E w^2)^2 = 0); the Itô term 6 w^2 "
               "dt gives 3 t^2."),
        (6 * t, "that is d/dt E w_t^4 = 6 E w_t^2 = 6t; integrate it from 0 to t."),
        (3 * t, "E w_t^4 scales like t^2 (w_t ~ sqrt(t) N(0, 1)): int_0^t 6 s ds = 3 t^2."),
    ]
    reject_mistakes(m, wrong, same=sympy_equal)
    expect(sympy_equal(m, 3 * t**2),
           f"E w_t^4 should be 3 t^2, got {m}: take expectations in d(w^4) = 4 w^3 dw + 6 w^2 dt.")
    return correct("E w_t^4 = 3 t^2, the fourth moment of N(0, t).")
