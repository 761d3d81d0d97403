r"""Checkers for the exercises of the chapter "Overview: why the SDE view" (`book/part1/overview.ipynb`).

All exercises use the linear VP-SDE of the book, $\beta(t) = \beta_{min} + (\beta_{max} - \beta_{min})\,t$ with
$\beta_{min} = 0.1$, $\beta_{max} = 20$, $T = 1$, so $B(t) = \int_0^t \beta = 0.1\,t + 9.95\,t^2$,
$\alpha(t) = e^{-B(t)/2}$ and $\sigma(t) = \sqrt{1 - e^{-B(t)}}$.
"""
from __future__ import annotations

from functools import partial

import numpy as np
import torch

from ._core import (WrongAnswer, allclose, correct, expect, expect_array, expect_callable, expect_number,
                    reject_mistakes)
from ._core import call_answer as _call

__all__ = ["check_chosen_or_learned", "check_alpha_sigma", "check_reverse_drift", "check_marginal_moments",
           "ROLES", "CATEGORIES"]

BETA_MIN, BETA_MAX = 0.1, 20.0

#: The answer key of `check_chosen_or_learned`: each ingredient and its role.
ROLES = {
    "f": "chosen",
    "g": "chosen",
    "beta": "chosen",
    "T": "chosen",
    "prior": "chosen",
    "score": "learned",
    "p_data": "data",
}
CATEGORIES = ("chosen", "learned", "data")

_WHY = {
    "f": "The drift f(x, t) is part of the forward SDE, which is fixed before training: nothing in it is "
         "fitted (for the VP-SDE, f = -beta(t) x / 2).",
    "g": "The diffusion coefficient g(t) is part of the forward SDE, which is fixed before training "
         "(for the VP-SDE, g = sqrt(beta(t))).",
    "beta": "The noise schedule beta(t) is a design choice (linear, cosine, ...): it defines f and g of the "
            "VP-SDE and is never trained.",
    "T": "The end time T is a convention you pick (T = 1 here); only B(T) = int_0^T beta matters.",
    "prior": "The prior (N(0, I) for VP and sub-VP, N(0, sigma_max^2 I) for VE) is chosen to approximate p_T; "
             "it is not learned.",
    "score": "The score grad_x log p_t(x) depends on the unknown data distribution, so nobody can write it "
             "down: it is the one object the network s_theta(x, t) learns.",
    "p_data": "The data distribution p_0 is neither chosen nor learned as a formula: it is given to us only "
              "through samples (the training set). Answer 'data'.",
}


def check_chosen_or_learned(answer: dict) -> str:
    """Check a dict mapping each ingredient of a diffusion model to 'chosen', 'learned' or 'data'.

    Keys: 'f', 'g', 'beta', 'T', 'prior', 'score', 'p_data' (see the chapter's exercise).
    """
    expect(isinstance(answer, dict), f"answer should be a dict such as {{'f': 'chosen', ...}}, "
                                     f"got {type(answer).__name__}")
    keys = {str(k).strip(): v for k, v in answer.items()}
    missing = [k for k in ROLES if k not in keys]
    extra = [k for k in keys if k not in ROLES]
    expect(not missing, f"answer is missing the keys {missing}; give a role for each of {list(ROLES)}")
    expect(not extra, f"answer has unknown keys {extra}; use exactly {list(ROLES)}")
    for k, want in ROLES.items():
        got = str(keys[k]).strip().lower()
        expect(got in CATEGORIES, f"answer[{k!r}] = {keys[k]!r}: each role must be one of {CATEGORIES}")
        expect(got == want, f"answer[{k!r}] = {got!r} is not right. {_WHY[k]}")
    return correct("Only the score is learned; the data are only sampled.")


# ---------------------------------------------------------------- alpha(t), sigma(t)
def _B(t):
    return BETA_MIN * t + 0.5 * (BETA_MAX - BETA_MIN) * t**2


def _beta(t):
    return BETA_MIN + (BETA_MAX - BETA_MIN) * t


_TS = np.array([0.05, 0.2, 0.5, 0.8, 1.0])


_close = partial(allclose, rtol=1e-4, atol=1e-7)


def check_alpha_sigma(alpha_sigma) -> str:
    r"""Check `alpha_sigma(t) -> (alpha, sigma)` for the linear VP-SDE ($\beta_{min} = 0.1$, $\beta_{max} = 20$).

    `t` is a float64 tensor of shape `(5,)`; both outputs must have that shape.
    """
    expect_callable(alpha_sigma, name="alpha_sigma")
    t = torch.tensor(_TS, dtype=torch.float64)
    out = _call(alpha_sigma, t, name="alpha_sigma(t)")
    expect(isinstance(out, (tuple, list)) and len(out) == 2,
           "alpha_sigma(t) should return a pair (alpha, sigma)")
    a = expect_array(out[0], name="alpha", shape=_TS.shape)
    s = expect_array(out[1], name="sigma", shape=_TS.shape)
    B = _B(_TS)
    alpha = np.exp(-B / 2)
    sigma = np.sqrt(1 - np.exp(-B))
    alpha_mistakes = [
        (np.exp(-B), "you returned alpha_bar(t) = alpha(t)^2 = exp(-B(t)). The mean coefficient is "
                     "alpha(t) = exp(-B(t)/2): mind the 1/2."),
        (np.exp(-_beta(_TS) * _TS / 2), "your B(t) is beta(t) * t = beta_min t + (beta_max - beta_min) t^2, which "
                                        "lacks the 1/2 of the quadratic term. B(t) is the integral int_0^t beta(s) ds "
                                        "= beta_min t + (beta_max - beta_min) t^2 / 2."),
        (np.exp(-BETA_MAX * _TS / 2), "you used a constant rate beta_max; the schedule is linear, so integrate "
                                      "beta(s) = beta_min + (beta_max - beta_min) s."),
    ]
    sigma_mistakes = [
        (1 - alpha, "sigma is not 1 - alpha: the kernel's variance is 1 - alpha^2, so sigma = sqrt(1 - alpha^2)."),
        (1 - alpha**2, "you returned the variance sigma^2 = 1 - exp(-B(t)); take its square root."),
        (np.sqrt(1 - alpha), "you used alpha where alpha^2 = alpha_bar belongs: "
                             "sigma = sqrt(1 - alpha^2) = sqrt(1 - exp(-B(t)))."),
    ]
    for name, got, want, mistakes, formula in [
        ("alpha", a, alpha, alpha_mistakes, "alpha(t) = exp(-B(t)/2) with B(t) = beta_min t + (beta_max - beta_min) "
                                            "t^2 / 2"),
        ("sigma", s, sigma, sigma_mistakes, "sigma(t) = sqrt(1 - exp(-B(t)))"),
    ]:
        if _close(got, want):
            continue
        reject_mistakes(got, mistakes, same=_close, prefix=f"{name} is wrong: ")
        i = int(np.argmax(np.abs(got - want)))
        raise WrongAnswer(f"{name}({_TS[i]:g}) = {got[i]:.6g}, but it should be {want[i]:.6g}. Use {formula}.")
    return correct(f"alpha(1) = {alpha[-1]:.4f}, sigma(1) = {sigma[-1]:.6f}.")


# ---------------------------------------------------------------- reverse drift
def _test_score(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """A made-up, non-linear 'score' (any field will do to test the formula), with argument checks."""
    if not torch.is_tensor(x) or not torch.is_tensor(t) or x.ndim != 2 or t.ndim != 1 or t.shape[0] != x.shape[0]:
        raise WrongAnswer("score_fn must be called as score_fn(x, t) with x of shape (B, 2) and t of shape (B,): "
                          "arguments in the order (x, t), the same t you were given")
    tt = t[:, None]
    return -x / (1 + tt) + torch.sin(3 * x.flip(1)) * tt


def check_reverse_drift(reverse_drift) -> str:
    r"""Check `reverse_drift(x, t, score_fn)` $= f(x,t) - g(t)^2\,\mathrm{score}$ for the linear VP-SDE.

    `x`: `(B, 2)`, `t`: `(B,)`, `score_fn(x, t)` returns `(B, 2)`. The drift is the one integrated with
    $dt < 0$ (from $T$ down to 0), Anderson's form $f - g^2 \nabla_x \log p_t$.
    """
    expect_callable(reverse_drift, name="reverse_drift")
    g = torch.Generator().manual_seed(1)
    x = torch.randn(64, 2, generator=g, dtype=torch.float64)
    t = 0.05 + 0.95 * torch.rand(64, generator=g, dtype=torch.float64)
    out = _call(reverse_drift, x, t, _test_score, name="reverse_drift(x, t, score_fn)")
    d = expect_array(out, name="reverse_drift(x, t, score_fn)", finite=True)
    expect(d.shape == (64, 2), f"reverse_drift(x, t, score_fn) should have the shape of x, (64, 2), got {d.shape}. "
                               "Broadcast beta(t) of shape (B,) against x with sdelab.append_dims(beta, x.ndim) "
                               "(or beta[:, None]).")
    b = _beta(t.numpy())[:, None]
    xn = x.numpy()
    s = _test_score(x, t).numpy()
    f = -0.5 * b * xn
    want = f - b * s
    if _close(d, want, rtol=1e-6):
        return correct("The reverse drift is -beta x / 2 - beta score.")
    wrong = [
        (f + b * s, "the score term has the wrong sign. Anderson's reverse SDE is dx = [f - g^2 score] dt + g dw_bar "
                    "with dt < 0; the minus sign together with dt < 0 moves x towards higher density."),
        (f - 0.5 * b * s, "that is the probability-flow ODE's drift, f - g^2 score / 2. The reverse SDE has the full "
                          "g^2 score (half of it balances the noise it injects)."),
        (f - np.sqrt(b) * s, "the score is multiplied by g(t)^2 = beta(t), not by g(t) = sqrt(beta(t))."),
        (-b * s, "you dropped the forward drift f(x, t) = -beta(t) x / 2: the reverse drift is f - g^2 score."),
        (-f + b * s, "that is the drift in reversed time tau = T - t (for d tau > 0), -f + g^2 score. The exercise asks "
                     "for the form used with dt < 0 (t from T down to 0): f - g^2 score."),
        (f, "you left out the score term: the reverse drift is f - g^2 score."),
        (-0.5 * BETA_MAX * xn - BETA_MAX * s, "you used beta_max for every t; beta(t) = beta_min + "
                                              "(beta_max - beta_min) t varies with t."),
    ]
    reject_mistakes(d, wrong, same=partial(_close, rtol=1e-6))
    raise WrongAnswer("reverse_drift does not match f(x, t) - g(t)^2 score(x, t) with f = -beta(t) x / 2 and "
                      "g(t)^2 = beta(t), beta(t) = 0.1 + 19.9 t. Call score_fn(x, t) once and combine.")


# ---------------------------------------------------------------- kernel vs marginal
_CASES = [(2.0, 0.5, 0.3), (-1.0, 0.2, 0.1), (0.5, 1.5, 0.6), (3.0, 0.1, 0.05)]


def check_marginal_moments(marginal_moments) -> str:
    r"""Check `marginal_moments(mu0, s0, t) -> (mean, var)` of $p_t$ for 1-D data $\mathcal N(\mu_0, s_0^2)$
    under the linear VP-SDE: mean $\alpha\mu_0$, variance $\alpha^2 s_0^2 + \sigma^2$ (floats in, floats out).
    """
    expect_callable(marginal_moments, name="marginal_moments")
    for mu0, s0, t in _CASES:
        out = _call(marginal_moments, mu0, s0, t, name=f"marginal_moments({mu0}, {s0}, {t})")
        expect(isinstance(out, (tuple, list)) and len(out) == 2,
               "marginal_moments should return a pair (mean, var)")
        m = expect_number(out[0], name="mean")
        v = expect_number(out[1], name="var")
        B = _B(t)
        a, s2 = np.exp(-B / 2), 1 - np.exp(-B)
        where = f"For mu0 = {mu0}, s0 = {s0}, t = {t}: "
        if not np.isclose(m, a * mu0, rtol=1e-4, atol=1e-8):
            expect(not np.isclose(m, mu0, rtol=1e-4), where + "the mean is not mu0: the drift shrinks every sample "
                   "by alpha(t), so E x_t = alpha(t) mu0.")
            expect(not np.isclose(m, a**2 * mu0, rtol=1e-4), where + "the mean is alpha(t) mu0 with "
                   "alpha = exp(-B/2), not alpha^2 mu0.")
            raise WrongAnswer(where + f"mean = {m:.6g}, expected alpha(t) mu0 = {a * mu0:.6g}.")
        want = a**2 * s0**2 + s2
        if not np.isclose(v, want, rtol=1e-4, atol=1e-10):
            expect(not np.isclose(v, s2, rtol=1e-4), where + "you gave the variance sigma(t)^2 of the transition "
                   "kernel p_0t(x_t | x_0), which is for one fixed x_0. The marginal p_t also carries the spread of "
                   "the data: Var x_t = alpha^2 s0^2 + sigma^2.")
            expect(not np.isclose(v, a * s0**2 + s2, rtol=1e-4), where + "the data variance is scaled by alpha(t)^2, "
                   "not alpha(t): Var(alpha x0) = alpha^2 Var x0.")
            expect(not np.isclose(v, s0**2 + s2, rtol=1e-4), where + "the data variance must be scaled by "
                   "alpha(t)^2 as well: x_t = alpha x0 + sigma eps.")
            expect(not np.isclose(v, a**2 * s0 + s2, rtol=1e-4), where + "s0 is a standard deviation; the data "
                   "variance is s0^2.")
            raise WrongAnswer(where + f"var = {v:.6g}, expected alpha^2 s0^2 + sigma^2 = {want:.6g}.")
    return correct("Mean alpha mu0, variance alpha^2 s0^2 + sigma^2.")
