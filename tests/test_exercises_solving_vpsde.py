"""The checkers of "Solving the VP-SDE exactly" accept the reference solutions and name each typical mistake."""
import math

import numpy as np
import pytest
import sympy as sp
import torch
from scipy.integrate import quad

from sdelab import VPSDE
from sdelab.exercises import WrongAnswer
from sdelab.exercises.solving_vpsde import check_integrating_factor, check_scaled_linear_B, check_vp_moments

SDE = VPSDE(0.1, 20.0)


def _B(t):
    return 0.1 * t + 9.95 * t**2


# ------------------------------------------------------------------ check_vp_moments
def moments(t, m0, v0):
    B = SDE.beta_integral(t)
    return m0 * torch.exp(-B / 2), 1 - torch.exp(-B) + torch.exp(-B) * v0


def test_vp_moments_accepts_solution():
    assert check_vp_moments(moments).startswith("Correct!")
    # a float-by-float (NumPy) answer is fine too
    assert check_vp_moments(lambda t, m0, v0: (m0 * np.exp(-_B(t.numpy()) / 2),
                                               1 + (v0 - 1) * np.exp(-_B(t.numpy())))).startswith("Correct!")


def _with_var(var):
    return lambda t, m0, v0: (moments(t, m0, v0)[0], var(SDE.beta_integral(t), t, v0))


def _with_mean(mean):
    return lambda t, m0, v0: (mean(SDE.beta_integral(t), t, m0), moments(t, m0, v0)[1])


@pytest.mark.parametrize("wrong, match", [
    (_with_var(lambda B, t, v0: 1 - torch.exp(-B)), r"fixed\* x0.*e\^\{-B\} v0"),
    (_with_var(lambda B, t, v0: 1 - torch.exp(-B) + torch.exp(-B / 2) * v0), r"alpha\(t\)\^2 = e\^\{-B\}, not"),
    (_with_var(lambda B, t, v0: 1 - torch.exp(-B) + v0), "does not survive unchanged"),
    (_with_var(lambda B, t, v0: 2 * (1 - torch.exp(-B)) + torch.exp(-B) * v0), r"sqrt\(2 beta\)"),
    (_with_var(lambda B, t, v0: (1 - torch.exp(-B) + torch.exp(-B) * v0).sqrt()), "standard deviation"),
    (_with_var(lambda B, t, v0: torch.exp(-B) + (1 - torch.exp(-B)) * v0), "roles are swapped"),
    (_with_var(lambda B, t, v0: torch.full_like(B, v0)), "only when v0 = 1"),
    (_with_var(lambda B, t, v0: 1 + (v0 - 1) * torch.exp(-SDE.beta(t) * t)), r"beta\(t\) t in place of B\(t\)"),
    (_with_var(lambda B, t, v0: 1 - torch.exp(-B) + 1.1 * torch.exp(-B) * v0), "Solve v' = -beta"),
    (_with_mean(lambda B, t, m0: m0 * torch.exp(-B)), r"alpha\(t\) = e\^\{-B/2\}, not e\^\{-B\}"),
    (_with_mean(lambda B, t, m0: m0 * torch.exp(-SDE.beta(t) * t / 2)), r"beta\(t\) t in place of B\(t\)"),
    (_with_mean(lambda B, t, m0: m0 * torch.ones_like(B)), "not constant"),
    (_with_mean(lambda B, t, m0: m0 * torch.exp(B / 2)), "sign error"),
    (_with_mean(lambda B, t, m0: m0 * torch.exp(-B / 3)), r"Solve m' = -beta\(t\) m / 2"),
])
def test_vp_moments_names_the_mistake(wrong, match):
    with pytest.raises(WrongAnswer, match=match):
        check_vp_moments(wrong)


def test_vp_moments_rejects_bad_types():
    with pytest.raises(WrongAnswer, match="function"):
        check_vp_moments(1.0)
    with pytest.raises(WrongAnswer, match=r"pair \(mean, var\)"):
        check_vp_moments(lambda t, m0, v0: t)
    with pytest.raises(WrongAnswer, match="shape of t"):
        check_vp_moments(lambda t, m0, v0: (0.0, 1.0))
    with pytest.raises(WrongAnswer, match="raised ZeroDivisionError"):
        check_vp_moments(lambda t, m0, v0: 1 / 0)


# ------------------------------------------------------------------ check_integrating_factor
t = sp.Symbol("t", positive=True)
B_lin = sp.Rational(1, 10) * t + sp.Rational(199, 20) * t**2


def test_integrating_factor_accepts_solution_and_multiples():
    assert check_integrating_factor(sp.exp(B_lin / 2)).startswith("Correct!")
    assert check_integrating_factor(3 * sp.exp(0.05 * t + 4.975 * t**2)).startswith("Correct!")
    tt = sp.Symbol("t")  # assumptions on the student's symbol do not matter
    assert check_integrating_factor(sp.exp((0.1 * tt + 9.95 * tt**2) / 2)).startswith("Correct!")
    assert check_integrating_factor(lambda s: sp.exp((0.1 * s + 9.95 * s**2) / 2)).startswith("Correct!")


@pytest.mark.parametrize("wrong, match", [
    (sp.exp(B_lin), "needs the factor 1/2"),
    (sp.exp(-B_lin / 2), "sign error: phi = e\\^\\{-B/2\\}"),
    (sp.Integer(5), "constant phi"),
    (sp.exp((sp.Rational(1, 10) + sp.Rational(199, 10) * t) * t / 2), r"beta\(t\) t / 2 in the exponent"),
    (sp.exp(-B_lin), "phi = e\\^\\{-B\\} makes"),
    (sp.exp(t), r"phi'\(t\) = beta\(t\) phi\(t\) / 2"),
    (sp.Integer(0), "finite and nonzero"),
])
def test_integrating_factor_names_the_mistake(wrong, match):
    with pytest.raises(WrongAnswer, match=match):
        check_integrating_factor(wrong)


def test_integrating_factor_rejects_extra_symbols_and_numeric_functions():
    bmin = sp.Symbol("beta_min")
    with pytest.raises(WrongAnswer, match="depend on t only"):
        check_integrating_factor(sp.exp(bmin * t / 2))
    with pytest.raises(WrongAnswer, match="sympy.exp"):
        check_integrating_factor(lambda s: math.exp(0.05 * s))


# ------------------------------------------------------------------ check_scaled_linear_B
def B_sl(t, bmin, bmax):
    a, b = math.sqrt(bmin), math.sqrt(bmax)
    return ((a + (b - a) * t) ** 3 - a**3) / (3 * (b - a))


def test_scaled_linear_B_accepts_solution_and_matches_quadrature():
    assert check_scaled_linear_B(B_sl).startswith("Correct!")
    beta = lambda s: (math.sqrt(0.85) + s * (math.sqrt(12.0) - math.sqrt(0.85))) ** 2  # noqa: E731
    for tv in (0.3, 1.0):
        assert B_sl(torch.tensor(tv, dtype=torch.float64), 0.85, 12.0).item() == pytest.approx(quad(beta, 0, tv)[0],
                                                                                               rel=1e-10)


def _sl_beta(t, bmin, bmax):
    a, b = math.sqrt(bmin), math.sqrt(bmax)
    return (a + (b - a) * t) ** 2


@pytest.mark.parametrize("wrong, match", [
    (lambda t, lo, hi: _sl_beta(t, lo, hi) * t, "multiplied beta\\(t\\) by t"),
    (lambda t, lo, hi: _sl_beta(t, lo, hi), "the integrand"),
    (lambda t, lo, hi: B_sl(t, lo, hi) + lo**1.5 / (3 * (hi**0.5 - lo**0.5)), "B\\(0\\) must be 0"),
    (lambda t, lo, hi: lo * t + 0.5 * (hi - lo) * t**2, "linear schedule's integral"),
    (lambda t, lo, hi: B_sl(t, lo, hi) * (hi**0.5 - lo**0.5), "chain-rule factor"),
    (lambda t, lo, hi: torch.exp(-B_sl(t, lo, hi)), "alpha_bar"),
    (lambda t, lo, hi: 3 * B_sl(t, lo, hi), "dropped the 1/3"),
    (lambda t, lo, hi: 2 * B_sl(t, lo, hi), "2 times the right one"),
    (lambda t, lo, hi: B_sl(t, lo, hi) + t**3, "Expand beta\\(t\\)"),
])
def test_scaled_linear_B_names_the_mistake(wrong, match):
    with pytest.raises(WrongAnswer, match=match):
        check_scaled_linear_B(wrong)
