"""The checkers of the Fokker–Planck chapter accept the reference solutions and name each typical mistake."""
import numpy as np
import pytest
import sympy as sp
import torch

from sdelab.exercises import WrongAnswer
from sdelab.exercises import fokker_planck as ex

x, mu = sp.Symbol("x", real=True), sp.Symbol("mu", real=True)
theta, sigma = sp.symbols("theta sigma", positive=True)


def gauss(mean, var):
    return sp.exp(-(x - mean) ** 2 / (2 * var)) / sp.sqrt(2 * sp.pi * var)


# ---------------------------------------------------------------- 1. OU stationary density
def test_ou_stationary_accepts_solution():
    assert ex.check_ou_stationary(gauss(mu, sigma**2 / (2 * theta))).startswith("Correct!")
    assert ex.check_ou_stationary(sp.sqrt(theta / (sp.pi * sigma**2)) * sp.exp(-theta * (x - mu) ** 2 / sigma**2))
    assert ex.check_ou_stationary("sqrt(theta/(pi*sigma**2))*exp(-theta*(x - mu)**2/sigma**2)")
    X, MU, TH, SI = sp.symbols("x mu theta sigma")  # plain symbols are matched by name
    assert ex.check_ou_stationary(sp.sqrt(TH / (sp.pi * SI**2)) * sp.exp(-TH * (X - MU) ** 2 / SI**2))


@pytest.mark.parametrize("answer, match", [
    (gauss(mu, sigma**2 / theta), "twice too large.*1/2 in front of g\\^2"),
    (gauss(mu, sigma**2 / (4 * theta)), "half too small"),
    (gauss(mu, sigma / (2 * theta)), "enters squared"),
    (gauss(mu, sigma**2 / 2), "drift rate theta sets"),
    (gauss(mu, 2 * theta / sigma**2), "inverted the variance"),
    (gauss(mu, theta / sigma**2), "precision"),
    (gauss(mu, sigma**2 / (3 * theta)), "should be sigma\\^2/\\(2 theta\\)"),
    (gauss(0, sigma**2 / (2 * theta)), "centred at mu"),
    (gauss(mu + 1, sigma**2 / (2 * theta)), "mean of your density"),
    (sp.exp(-theta * (x - mu) ** 2 / sigma**2), "integrates to"),
    (sp.Rational(1, 2) * gauss(mu - sigma * sp.sqrt(3 / (8 * theta)), sigma**2 / (8 * theta))  # same mean and var
     + sp.Rational(1, 2) * gauss(mu + sigma * sp.sqrt(3 / (8 * theta)), sigma**2 / (8 * theta)),
     "not stationary"),
    (-gauss(mu, sigma**2 / (2 * theta)), "negative"),
    (theta * sigma, "function of x"),
    (gauss(mu, sp.Symbol("s") ** 2), "uses the symbols \\['s'\\]"),
])
def test_ou_stationary_names_mistakes(answer, match):
    with pytest.raises(WrongAnswer, match=match):
        ex.check_ou_stationary(answer)


# ---------------------------------------------------------------- 2. second-moment ODE
a, b, g, m1, m2 = sp.symbols("a b g m1 m2", real=True)


def test_second_moment_ode_accepts_solution():
    assert ex.check_second_moment_ode(2 * a * m2 + 2 * b * m1 + g**2).startswith("Correct!")
    assert ex.check_second_moment_ode("g**2 + 2*(a*m2 + b*m1)").startswith("Correct!")


@pytest.mark.parametrize("answer, match", [
    (2 * a * m2 + 2 * b * m1, "is missing"),
    (2 * a * m2 + 2 * b * m1 + g**2 / 2, "not g\\^2/2"),
    (2 * a * m2 + 2 * b * m1 + 2 * g**2, "has a factor 1/2"),
    (a * m2 + b * m1 + g**2, "a factor 2 is missing"),
    (a * m2 + b * m1 + g**2 / 2, "half the right answer"),
    (2 * a * m2 + 2 * b * m1 + g, "enters squared"),
    (2 * a * m2 + 2 * b + g**2, "not 2b"),
    (2 * a * m1**2 + 2 * b * m1 + g**2, "differs from m1\\^2"),
    (2 * a * m2 + g**2, "constant part b"),
    (2 * a * sp.Symbol("x") ** 2 + g**2, "not x"),
    (3 * a * m2 + 2 * b * m1 + g**2, "should be 2 a m2"),
])
def test_second_moment_ode_names_mistakes(answer, match):
    with pytest.raises(WrongAnswer, match=match):
        ex.check_second_moment_ode(answer)


# ---------------------------------------------------------------- 3. effective drift
def vp(t):
    B = 0.1 * t + 9.95 * t**2
    return 0.1 + 19.9 * t, np.exp(-B / 2), 1 - np.exp(-B)


def make_velocity(kind):
    def velocity(x, t):
        beta, alpha, sig2 = vp(t)
        var = alpha**2 * 0.25 + sig2
        score = -(x - alpha) / var
        f = -0.5 * beta * x
        return {
            "ok": f - 0.5 * beta * score,
            "sign": f + 0.5 * beta * score,
            "reverse": f - beta * score,
            "no_f": -0.5 * beta * score,
            "g": f - 0.5 * np.sqrt(beta) * score,
            "kernel": f - 0.5 * beta * (-(x - alpha) / sig2),
            "mean": f - 0.5 * beta * (-(x - 1.0) / var),
            "f_only": f,
            "zero": 0 * x,
            "other": f - 0.4 * beta * score,
            "shape": (f - 0.5 * beta * score)[:3],
        }[kind]
    return velocity


def test_effective_drift_accepts_solution():
    assert ex.check_effective_drift(make_velocity("ok")).startswith("Correct!")
    ok = make_velocity("ok")
    assert ex.check_effective_drift(lambda x, t: torch.as_tensor(ok(x, t))).startswith("Correct!")


@pytest.mark.parametrize("kind, match", [
    ("sign", "sign of the score term"),
    ("reverse", "reverse SDE"),
    ("no_f", "dropped the drift"),
    ("g", "not g = sqrt"),
    ("kernel", "kernel's variance"),
    ("mean", "alpha\\(t\\) \\* 1"),
    ("f_only", "only the drift f"),
    ("zero", "stationary"),
    ("other", "expected"),
    ("shape", "shape of x"),
])
def test_effective_drift_names_mistakes(kind, match):
    with pytest.raises(WrongAnswer, match=match):
        ex.check_effective_drift(make_velocity(kind))


def test_effective_drift_reports_errors_and_non_functions():
    with pytest.raises(WrongAnswer, match="raised ZeroDivisionError"):
        ex.check_effective_drift(lambda x, t: 1 / 0)
    with pytest.raises(WrongAnswer, match="should be a function"):
        ex.check_effective_drift(3.0)
