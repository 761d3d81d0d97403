r"""Checkers for the exercises of the chapter "DDPM and the VP-SDE, both directions" (`book/part1/ddpm_vpsde.ipynb`).

Conventions: $N$ steps of size $h = T/N$ on $[0, T]$, $t_i = i h$; DDPM's betas for the linear schedule are
`linspace(beta_min h, beta_max h, N)` (Ho et al.'s 1e-4..0.02 for $N = 1000$), $\alpha_i = 1 - \beta_i$ and
$\bar\alpha_i = \prod_{j \le i} \alpha_j$ (`alphas_cumprod`).
"""
from __future__ import annotations

from functools import partial

import numpy as np
import sympy as sp
import torch

from ..sde import VPSDE
from ._core import (WrongAnswer, allclose, correct, expect, expect_array, expect_callable, parse_sympy_in,
                    reject_mistakes)
from ._core import call_answer as _call

__all__ = ["check_ddpm_betas", "check_alphas_cumprod", "check_em_variance_factor", "check_posterior_variance"]


_close = partial(allclose, rtol=1e-6, atol=1e-12)  # the betas are about 1e-4: atol well below rtol * beta


# ---------------------------------------------------------------- DDPM betas from a continuous schedule
_BETA_CASES = [(VPSDE(0.1, 20.0), 1000), (VPSDE(0.1, 20.0), 50), (VPSDE(0.5, 10.0), 16)]


def check_ddpm_betas(ddpm_betas) -> str:
    r"""Check `ddpm_betas(sde, N)`: DDPM's $N$ betas for a `VPSDE` with the linear schedule (and $T = 1$),
    `linspace(beta_min / N, beta_max / N, N)`: $\beta_i = \beta(s_i)\,h$ with $h = 1/N$ and $s_i$ spread evenly from
    0 to 1, so $N = 1000$ gives DDPM's 1e-4..0.02. Returns a tensor or array of shape `(N,)`."""
    expect_callable(ddpm_betas, name="ddpm_betas")
    for sde, N in _BETA_CASES:
        call = f"ddpm_betas(VPSDE({sde.beta_min:g}, {sde.beta_max:g}), N={N})"
        got = expect_array(_call(ddpm_betas, sde, N, name=call), name=call).ravel()
        bmin, bmax, h = sde.beta_min, sde.beta_max, 1.0 / N
        want = np.linspace(bmin * h, bmax * h, N)
        if _close(got, want):
            continue
        where = f"{call}: "
        expect(not (got.size == 1000 != N and _close(got, np.linspace(1e-4, 0.02, 1000))),
               where + "these are Ho et al.'s 1000 betas whatever N is; derive the betas from sde.beta_min, "
                       "sde.beta_max and N instead of hard-coding them.")
        expect(got.size in (N, N + 1), where + f"there should be one beta per step, N = {N} values, got {got.size}.")
        expect(got.size == N, where + f"got N + 1 = {N + 1} values: the N steps go from t_0 = 0 to t_N = T, with one "
                                      "beta per step (beta_i takes x_{i-1} to x_i), not one per grid point.")
        ts = np.arange(1, N + 1) * h
        exact = -np.expm1(-np.diff(bmin * np.r_[0, ts] + 0.5 * (bmax - bmin) * np.r_[0, ts] ** 2))
        wrong = [
            (np.linspace(bmin, bmax, N), "you forgot the step size h = 1/N: beta_i = beta(t) h is the noise added in "
                                         "one step, a number in (0, 1), while beta(t) is a rate (per unit time) that "
                                         "can exceed 1."),
            (np.linspace(bmin * h * h, bmax * h * h, N), "you divided by N twice: beta_i = beta(t) h with h = 1/N."),
            (np.linspace(bmax * h, bmin * h, N), "the order is reversed: beta grows with t, so beta_1 is the smallest."),
            (np.linspace(1e-4, 0.02, N), "these are Ho et al.'s numbers for N = 1000 and beta in 0.1..20; derive the "
                                         "betas from sde.beta_min, sde.beta_max and N instead of hard-coding them."),
            (exact, "these are the exact-discretisation betas 1 - e^{-(B(t_i) - B(t_{i-1}))}, a better choice (their "
                    "product is exactly e^{-B}); the exercise asks for DDPM's linspace convention."),
            ((bmin + (bmax - bmin) * ts) * h, "close: this is beta(t_i) h at t_i = i/N (a right Riemann sum). DDPM's "
                                              "linspace starts at beta_min / N, i.e. spreads the s_i evenly from 0 to 1."),
            ((bmin + (bmax - bmin) * (ts - h)) * h, "close: this is beta(t_{i-1}) h (a left Riemann sum). DDPM's "
                                                    "linspace ends at beta_max / N, i.e. spreads the s_i evenly from 0 "
                                                    "to 1."),
            (np.sqrt(np.linspace(bmin * h, bmax * h, N)), "you returned sqrt(beta_i), the noise std of one step; "
                                                          "the betas themselves are variances."),
            (np.cumprod(1 - want), "that is alphas_cumprod; the exercise asks for the betas."),
        ]
        reject_mistakes(got, wrong, same=_close, prefix=where)
        i = int(np.argmax(np.abs(got - want)))
        raise WrongAnswer(where + f"beta_{i + 1} = {got[i]:.6g}, but it should be {want[i]:.6g}. "
                          "Use linspace(beta_min / N, beta_max / N, N).")
    return correct("beta_i = beta(s_i)/N: DDPM's 1e-4..0.02, dimensionless.")


# ---------------------------------------------------------------- alphas_cumprod
def _test_betas() -> torch.Tensor:
    # large, distinct betas, so that every wrong formula gives clearly different numbers
    return torch.tensor([0.05, 0.1, 0.2, 0.3, 0.45, 0.6], dtype=torch.float64)


def check_alphas_cumprod(alphas_cumprod) -> str:
    r"""Check `alphas_cumprod(betas)`: $\bar\alpha_i = \prod_{j \le i}(1 - \beta_j)$ for a 1-D float64 tensor `betas`
    of shape `(N,)`; returns shape `(N,)`."""
    expect_callable(alphas_cumprod, name="alphas_cumprod")
    betas = _test_betas()
    call = f"alphas_cumprod({[round(b, 3) for b in betas.tolist()]})"
    got = expect_array(_call(alphas_cumprod, betas.clone(), name=call), name=call).ravel()
    b = betas.numpy()
    N = b.size
    want = np.cumprod(1 - b)
    if _close(got, want):
        big = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
        got_big = expect_array(_call(alphas_cumprod, big, name="alphas_cumprod(DDPM's betas)"),
                               name="alphas_cumprod(DDPM's betas)").ravel()
        expect(_close(got_big, np.cumprod(1 - big.numpy()), rtol=1e-9),
               "right on a short schedule but not on DDPM's 1000 betas: compute in float64 and keep the "
               "cumulative product (torch.cumprod) rather than a loop that loses precision.")
        return correct("alphas_cumprod = cumprod(1 - betas), 6.5 % below e^{-B(1)}.")
    expect(got.size != 1, f"{call} returned one number; alphas_cumprod is cumulative: one value per step, "
                          f"alpha_bar_i = prod_(j <= i) (1 - beta_j), shape ({N},).")
    expect(got.size in (N, N + 1), f"{call} should have shape ({N},), got {got.size} values.")
    expect(got.size == N, f"{call} has N + 1 values: drop the leading alpha_bar_0 = 1 (no step taken yet), "
                          "alphas_cumprod[i - 1] belongs to step i.")
    wrong = [
        (np.exp(-np.cumsum(b)), "exp(-cumsum(betas)) is only the first-order approximation of the product: "
                                "log(1 - beta) = -beta - beta^2 / 2 - ..., so it is off by about exp(-sum beta^2 / 2). "
                                "Multiply the (1 - beta_j) themselves."),
        (np.cumprod(b), "you multiplied the betas; alpha_bar multiplies the alphas, alpha_j = 1 - beta_j."),
        (np.cumprod(np.sqrt(1 - b)), "that is sqrt(alpha_bar_i), the mean coefficient of q(x_i | x_0) "
                                     "(sqrt_alphas_cumprod); alphas_cumprod is the product of 1 - beta_j itself."),
        (1 - np.cumprod(1 - b), "that is 1 - alpha_bar_i, the variance of q(x_i | x_0); alphas_cumprod is the "
                                "product of 1 - beta_j."),
        (np.r_[1.0, np.cumprod(1 - b)[:-1]], "the product is shifted by one: alpha_bar_i includes step i itself, "
                                              "alpha_bar_1 = 1 - beta_1."),
        (1 - np.cumsum(b), "1 - cumsum(betas) is the product only to first order; multiply the (1 - beta_j)."),
        (np.cumprod(1 - b[::-1])[::-1], "you multiplied from the end; alpha_bar_i is the product over the first i "
                                        "steps."),
    ]
    reject_mistakes(got, wrong, same=_close)
    i = int(np.argmax(np.abs(got - want)))
    raise WrongAnswer(f"{call}[{i}] = {got[i]:.6g}, but it should be {want[i]:.6g}: alpha_bar_i = "
                      "prod_(j <= i) (1 - beta_j).")


# ---------------------------------------------------------------- EM variance factor
_B_SYM = sp.Symbol("beta_i", positive=True)
_B_VALUES = (0.01, 0.1, 0.3, 0.5)


def check_em_variance_factor(factor) -> str:
    r"""Check the variance of one Euler–Maruyama step of the VP-SDE, $x' = (1 - \beta_i/2)x + \sqrt{\beta_i}\,\varepsilon$,
    applied to an $x$ of variance 1: a sympy expression in one symbol ($\beta_i$). Answer: $1 + \beta_i^2/4$."""
    expr = parse_sympy_in(factor, _B_SYM, name="factor")
    vals = np.array([float(sp.N(expr.subs(_B_SYM, v))) for v in _B_VALUES])
    bs = np.array(_B_VALUES)
    want = 1 + bs**2 / 4
    if _close(vals, want, rtol=1e-9):
        return correct("1 + beta_i^2/4: EM inflates a unit variance at second order.")
    wrong = [
        (np.ones_like(bs), "1 is DDPM's factor, (sqrt(1 - beta_i))^2 + beta_i. The Euler-Maruyama step has the mean "
                           "coefficient 1 - beta_i / 2 (from the drift -beta x / 2 times h), whose square is not "
                           "1 - beta_i."),
        ((1 - bs / 2) ** 2, "you forgot the noise: the step adds sqrt(beta_i) eps, independent of x, which adds "
                            "beta_i to the variance."),
        (1 - bs / 2 + bs, "the mean coefficient must be squared: Var(c x) = c^2 Var(x)."),
        ((1 - bs) ** 2 + bs, "the VP drift is -beta x / 2, so the EM mean coefficient is 1 - beta_i / 2, not 1 - beta_i."),
        ((1 - bs / 2) ** 2 + 2 * bs, "the noise variance of one step is g^2 h = beta(t) h = beta_i, with g = sqrt(beta), "
                                     "not sqrt(2 beta)."),
        ((1 - bs / 2) ** 2 + bs**2, "the noise variance of one step is g^2 h = beta_i (g = sqrt(beta)), not beta_i^2 "
                                    "(that would be g = beta, erratum 2)."),
        ((1 - bs / 2) ** 2 + np.sqrt(bs), "sqrt(beta_i) is the noise's standard deviation; it adds its square, beta_i, "
                                          "to the variance."),
        (1 + bs**2 / 8, "expand (1 - beta_i/2)^2 = 1 - beta_i + beta_i^2 / 4; the beta_i^2 term is 1/4, not 1/8 "
                        "(1/8 is the gap between the mean coefficients sqrt(1 - beta_i) and 1 - beta_i / 2)."),
    ]
    reject_mistakes(vals, wrong, same=partial(_close, rtol=1e-9))
    raise WrongAnswer(f"at beta_i = {bs[2]} your factor is {vals[2]:.6g}, but it should be {want[2]:.6g}. "
                      "Var((1 - beta_i/2) x + sqrt(beta_i) eps) with Var x = 1 and eps independent of x.")


# ---------------------------------------------------------------- posterior variance
def _post_args():
    betas = torch.tensor([0.001, 0.02, 0.1, 0.3, 0.05], dtype=torch.float64)
    abar_prev = torch.tensor([0.999, 0.5, 0.2, 0.9, 0.01], dtype=torch.float64)
    abar = (1 - betas) * abar_prev
    return betas, abar, abar_prev


def check_posterior_variance(posterior_variance) -> str:
    r"""Check `posterior_variance(beta_i, abar_i, abar_prev)`: the variance $\tilde\beta_i$ of
    $q(x_{i-1} \mid x_i, x_0)$ for float64 tensors of shape `(5,)` with `abar_i = (1 - beta_i) * abar_prev`.
    Answer: $\tilde\beta_i = \beta_i (1 - \bar\alpha_{i-1}) / (1 - \bar\alpha_i)$."""
    expect_callable(posterior_variance, name="posterior_variance")
    b, ab, abp = _post_args()
    call = "posterior_variance(beta_i, abar_i, abar_prev)"
    got = expect_array(_call(posterior_variance, b.clone(), ab.clone(), abp.clone(), name=call), name=call).ravel()
    expect(got.shape == (5,), f"{call} should have the shape of its inputs, (5,), got {got.shape}")
    b, ab, abp = b.numpy(), ab.numpy(), abp.numpy()
    want = b * (1 - abp) / (1 - ab)
    if _close(got, want):
        return correct("beta_tilde_i = beta_i (1 - abar_{i-1}) / (1 - abar_i) <= beta_i.")
    wrong = [
        (b, "beta_i is the forward step's variance (and one of Ho et al.'s two choices of sampler variance); the "
            "posterior q(x_{i-1} | x_i, x_0) is narrower: beta_i (1 - abar_{i-1}) / (1 - abar_i)."),
        (b * (1 - ab) / (1 - abp), "the ratio is upside down: the posterior variance is smaller than beta_i, "
                                   "(1 - abar_{i-1}) / (1 - abar_i) < 1."),
        ((1 - abp) / (1 - ab), "you dropped the factor beta_i."),
        (1 - abp, "1 - abar_{i-1} is the variance of q(x_{i-1} | x_0) alone; conditioning on x_i as well shrinks it."),
        (1 / (1 - b + 1 / (1 - abp)), "the precisions add, but the forward step's precision is "
                                      "alpha_i / beta_i, not alpha_i: 1 / beta_tilde = alpha_i / beta_i + "
                                      "1 / (1 - abar_{i-1})."),
        (1 / ((1 - b) / b + 1 / (1 - abp)) * (1 - b), "close: the precisions add, 1 / beta_tilde = alpha_i / beta_i + "
                                                      "1 / (1 - abar_{i-1}); do not rescale by alpha_i afterwards."),
        (np.sqrt(want), "that is the posterior standard deviation; the exercise asks for the variance."),
    ]
    reject_mistakes(got, wrong, same=_close)
    i = int(np.argmax(np.abs(got - want)))
    raise WrongAnswer(f"entry {i} is {got[i]:.6g}, but it should be {want[i]:.6g}. Complete the square in x_{{i-1}} of "
                      "-(x_i - sqrt(alpha_i) x_{i-1})^2 / (2 beta_i) - (x_{i-1} - sqrt(abar_{i-1}) x_0)^2 / "
                      "(2 (1 - abar_{i-1})).")
