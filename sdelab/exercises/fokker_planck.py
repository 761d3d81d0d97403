r"""Checkers for the exercises of the chapter "The Fokker–Planck equation" (`book/part1/fokker_planck.ipynb`).

Symbolic answers are sympy expressions (or strings); their symbols are matched by name. Numerical answers
are functions of NumPy arrays. Conventions: the VP-SDE $dx = -\tfrac12\beta x\,dt + \sqrt\beta\,dw$ with the linear
schedule $\beta(t) = 0.1 + 19.9\,t$, $B(t) = 0.1\,t + 9.95\,t^2$, $\alpha = e^{-B/2}$, $\sigma^2 = 1 - e^{-B}$.
"""
from __future__ import annotations

from functools import partial

import numpy as np
import sympy as sp

from ._core import (WrongAnswer, correct, expect, expect_array, expect_callable, parse_sympy, reject_mistakes,
                    sympy_equal)
from ._core import call_answer as _call

__all__ = ["check_ou_stationary", "check_second_moment_ode", "check_effective_drift"]


# ---------------------------------------------------------------- 1. OU stationary density
_OU_CASES = [(1.5, 0.0, 1.2), (2.5, 0.5, 0.7), (0.6, -1.0, 1.5)]  # (theta, mu, sigma): all hints differ


def _moments(fn, theta, mu, sigma):
    x = np.linspace(mu - 60.0, mu + 60.0, 60001)  # wide enough for every wrong variance the hints name
    with np.errstate(all="ignore"):
        p = np.asarray(fn(x, theta, mu, sigma), dtype=float) * np.ones_like(x)
    expect(np.isfinite(p).all(), f"p is not finite everywhere (theta={theta}, mu={mu}, sigma={sigma}); a density "
                                 "must be a finite function of x")
    expect(p.min() >= -1e-12, f"p takes negative values (theta={theta}, mu={mu}, sigma={sigma}): a density is >= 0")
    dx = x[1] - x[0]
    mass = p.sum() * dx
    expect(mass > 1e-9, "p integrates to 0: it must be a probability density")
    mean = (x * p).sum() * dx / mass
    var = ((x - mean) ** 2 * p).sum() * dx / mass
    return x, p, mass, mean, var


def check_ou_stationary(density) -> str:
    r"""Check the stationary density of $dx = -\theta(x - \mu)\,dt + \sigma\,dw$: $\N(\mu, \sigma^2/(2\theta))$.
    `density` is a sympy expression in `x`, `theta`, `mu`, `sigma` (all but `x`, `mu` positive)."""
    x, mu = sp.Symbol("x", real=True), sp.Symbol("mu", real=True)
    theta, sigma = sp.symbols("theta sigma", positive=True)
    p = parse_sympy(density, {"x": x, "theta": theta, "mu": mu, "sigma": sigma}, name="density")
    expect(p.has(x), "density should be a function of x")
    fn = sp.lambdify((x, theta, mu, sigma), p, "numpy")
    dfn = sp.lambdify((x, theta, mu, sigma), sp.diff(p, x), "numpy")
    stats = [_moments(fn, *case) for case in _OU_CASES]
    th, mus, sg = (np.array(c) for c in zip(*_OU_CASES))
    var = np.array([st[4] for st in stats])
    v_want = sg**2 / (2 * th)
    if not np.allclose(var, v_want, rtol=1e-3):
        hints = [
            (sg**2 / th, "the variance is sigma^2/theta, twice too large. The stationary FP equation "
                         "0 = d/dx[theta (x - mu) p] + (sigma^2/2) p'' integrates once to zero flux, "
                         "theta (x - mu) p + (sigma^2/2) p' = 0: the 1/2 in front of g^2 matters."),
            (sg**2 / (4 * th), "the variance is sigma^2/(4 theta), half too small: the zero-flux condition "
                               "is theta (x - mu) p + (sigma^2/2) p' = 0, so log p = -theta (x - mu)^2/sigma^2."),
            (sg / (2 * th), "the diffusion enters squared: the variance is sigma^2/(2 theta), not sigma/(2 theta)."),
            (sg**2 / 2, "the drift rate theta sets the variance too: sigma^2/(2 theta)."),
            (2 * th / sg**2, "you inverted the variance: stronger noise must give a wider density, sigma^2/(2 theta)."),
            (th / sg**2, "that looks like a precision, not a variance: the variance is sigma^2/(2 theta), so the "
                         "exponent is -(x - mu)^2 / (2 var) = -theta (x - mu)^2 / sigma^2."),
        ]
        reject_mistakes(var, hints, same=partial(np.allclose, rtol=1e-3))
        i = int(np.argmax(np.abs(var / v_want - 1)))
        raise WrongAnswer(f"with theta = {th[i]}, sigma = {sg[i]} the variance of your density is {var[i]:.5g}, but it "
                          f"should be sigma^2/(2 theta) = {v_want[i]:.5g}. Set the probability current "
                          "theta (x - mu) p + (sigma^2/2) p' to zero and solve for p.")
    for (theta_, mu_, sigma_), (grid, pv, mass, mean, _) in zip(_OU_CASES, stats):
        where = f"With theta = {theta_}, mu = {mu_}, sigma = {sigma_}: "
        if not np.isclose(mean, mu_, atol=1e-6):
            msg = "the density should be centred at mu: the drift -theta (x - mu) pushes towards mu, not 0." \
                if abs(mean) < 1e-6 and mu_ != 0 else f"the mean of your density is {mean:.5g}, but it should be mu."
            raise WrongAnswer(where + msg)
        if not np.isclose(mass, 1.0, rtol=1e-4):
            raise WrongAnswer(where + f"your density has the right shape but integrates to {mass:.5g}, not 1: the "
                                      "normalising constant of N(mu, s^2) is 1/sqrt(2 pi s^2), with "
                                      "s^2 = sigma^2/(2 theta).")
        # right moments and mass: also require zero probability current (it is then the Gaussian)
        dp = np.asarray(dfn(grid, theta_, mu_, sigma_), dtype=float) * np.ones_like(grid)
        flux = -theta_ * (grid - mu_) * pv - 0.5 * sigma_**2 * dp
        scale = theta_ * sigma_ / np.sqrt(2 * theta_) * pv.max()  # size of each of the two terms of the current
        expect(np.abs(flux).max() < 1e-4 * scale,
               where + "your density has the right mean, variance and mass but is not stationary: its probability "
                       "current -theta (x - mu) p - (sigma^2/2) p' is not zero. Only the Gaussian makes it vanish.")
    return correct("p_inf = N(mu, sigma^2/(2 theta)); for the VP-SDE, N(0, 1).")


# ---------------------------------------------------------------- 2. moment ODE for E x^2
def check_second_moment_ode(rate) -> str:
    r"""Check $\frac{d}{dt}\E x^2$ for $dx = (a x + b)\,dt + g\,dw$ from the weak form with $\varphi = x^2$:
    $2a\,m_2 + 2b\,m_1 + g^2$, a sympy expression in `a`, `b`, `g`, `m1` ($=\E x$), `m2` ($=\E x^2$)."""
    a, b, g, m1, m2 = sp.symbols("a b g m1 m2", real=True)
    x = sp.Symbol("x", real=True)
    r = sp.expand(parse_sympy(rate, {"a": a, "b": b, "g": g, "m1": m1, "m2": m2, "x": x}, name="rate"))
    expect(not r.has(x), "the answer should involve the moments m1 = E x and m2 = E x^2, not x: take the "
                         "expectation of f phi' + (1/2) g^2 phi''")
    target = 2 * a * m2 + 2 * b * m1 + g**2
    wrong = [
        (2 * a * m2 + 2 * b * m1, "the term (1/2) g^2 phi''(x) = (1/2) g^2 * 2 = g^2 is missing: without it you have "
                                  "the ordinary chain rule, and the noise would never spread the density."),
        (2 * a * m2 + 2 * b * m1 + g**2 / 2, "phi''(x) = 2 for phi = x^2, so (1/2) g^2 phi'' = g^2, not g^2/2."),
        (2 * a * m2 + 2 * b * m1 + 2 * g**2, "the Itô term has a factor 1/2: (1/2) g^2 phi'' = (1/2) g^2 2 = g^2."),
        (a * m2 + b * m1 + g**2, "phi'(x) = 2x, so E[f phi'] = E[(a x + b) 2x] = 2a m2 + 2b m1: a factor 2 is "
                                 "missing."),
        (a * m2 + b * m1 + g**2 / 2, "that is half the right answer: phi' = 2x and (1/2) g^2 phi'' = g^2."),
        (2 * a * m2 + 2 * b * m1 + g, "the diffusion enters squared: (1/2) g^2 phi'' = g^2, not g."),
        (2 * a * m2 + 2 * b + g**2, "E[2 x b] = 2b E x = 2b m1, not 2b."),
        (2 * a * m1**2 + 2 * b * m1 + g**2, "E[x^2] = m2, which differs from m1^2 by the variance: E[2a x^2] = 2a m2."),
        (2 * a * m2 + g**2, "the constant part b of the drift contributes E[2 x b] = 2b m1."),
    ]
    reject_mistakes(r, wrong, same=sympy_equal)
    expect(sympy_equal(r, target), f"d/dt E x^2 should be 2 a m2 + 2 b m1 + g^2, got {r}. Use d/dt E phi = "
                                   "E[f phi' + (1/2) g^2 phi''] with phi = x^2.")
    return correct("d/dt E x^2 = 2a m2 + 2b m1 + g^2, so v' = 2a v + g^2.")


# ---------------------------------------------------------------- 3. effective drift
_TS = (0.05, 0.2, 0.5, 1.0)
_X = np.linspace(-3.0, 3.0, 13)
_M0, _S0 = 1.0, 0.5


def _vp(t: float):
    B = 0.1 * t + 9.95 * t**2
    beta = 0.1 + 19.9 * t
    alpha = np.exp(-B / 2)
    return beta, alpha, 1 - np.exp(-B)


def check_effective_drift(velocity) -> str:
    r"""Check `velocity(x, t)`: the effective (probability-flow) velocity $f - \tfrac12 g^2 \partial_x \log p_t$ of the
    VP-SDE for data $\N(1, 0.5^2)$, where $p_t = \N(\alpha, \alpha^2/4 + \sigma^2)$. `x`: NumPy array, `t`: float."""
    expect_callable(velocity, name="velocity")
    for t in _TS:
        call = f"velocity(x, {t})"
        v = expect_array(_call(velocity, _X.copy(), t, name=call), name=call)
        expect(v.shape == _X.shape, f"velocity(x, {t}) should have the shape of x, {_X.shape}, got {v.shape}")
        beta, alpha, sig2 = _vp(t)
        m, var = alpha * _M0, alpha**2 * _S0**2 + sig2
        f = -0.5 * beta * _X
        score = -(_X - m) / var
        want = f - 0.5 * beta * score
        if np.allclose(v, want, rtol=1e-4, atol=1e-6):
            continue
        where = f"At t = {t}: "
        wrong = [
            (f + 0.5 * beta * score, "the sign of the score term is flipped: the current is J = f p - (g^2/2) p', so "
                                     "J/p = f - (g^2/2) d/dx log p. Diffusion pushes mass down the density gradient."),
            (f - beta * score, "f - g^2 score is the drift of the reverse SDE (which has noise as well). The "
                               "deterministic velocity that moves p_t has half of it: f - (g^2/2) score."),
            (-0.5 * beta * score, "you dropped the drift f = -beta x/2: the effective velocity is the SDE's drift "
                                  "plus the diffusion's contribution -(g^2/2) d/dx log p."),
            (f - 0.5 * np.sqrt(beta) * score, "use g^2 = beta, not g = sqrt(beta), in front of the score."),
            (f - 0.5 * beta * (-(_X - m) / sig2), "you used the kernel's variance sigma(t)^2; the marginal p_t of data "
                                                  "N(1, 0.5^2) has variance alpha^2 0.25 + sigma^2."),
            (f - 0.5 * beta * (-(_X - _M0) / var), "the marginal's mean is alpha(t) * 1, not the data mean 1."),
            (f, "that is only the drift f: the diffusion adds the velocity -(g^2/2) d/dx log p (Fick's law)."),
            (np.zeros_like(_X), "the effective velocity is zero only when p_t is stationary; here p_t = "
                                "N(alpha, alpha^2/4 + sigma^2) still changes."),
        ]
        reject_mistakes(v, wrong, same=partial(np.allclose, rtol=1e-4, atol=1e-6), prefix=where)
        i = int(np.argmax(np.abs(v - want)))
        raise WrongAnswer(where + f"velocity({_X[i]:g}, {t}) = {v[i]:.6g}, expected {want[i]:.6g}: f(x) - (beta/2) "
                                  "d/dx log p_t(x) with p_t = N(alpha, alpha^2/4 + sigma^2).")
    return correct("v = f - (g^2/2) score: the probability-flow velocity.")
