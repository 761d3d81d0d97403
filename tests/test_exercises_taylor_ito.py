"""The checkers of the Taylor/Itô chapter accept the reference solutions and name each typical mistake."""
import numpy as np
import pytest
import sympy as sp
import torch

from sdelab.exercises import WrongAnswer
from sdelab.exercises import taylor_ito as ex

beta, h = sp.symbols("beta h", positive=True)
mu, s, x, t = sp.Symbol("mu"), sp.Symbol("s"), sp.Symbol("x"), sp.Symbol("t")


# ---------------------------------------------------------------- 1. series
def test_inverse_sqrt_series_accepts_solution():
    series = sp.series(1 / sp.sqrt(1 - beta * h), h, 0, 3)
    assert ex.check_inverse_sqrt_series(series).startswith("Correct!")
    assert ex.check_inverse_sqrt_series(series.removeO()).startswith("Correct!")
    assert ex.check_inverse_sqrt_series("1 + beta*h/2 + 3*beta**2*h**2/8").startswith("Correct!")
    b, hh = sp.symbols("beta h")  # no assumptions: matched by name
    assert ex.check_inverse_sqrt_series(1 + b * hh / 2 + 3 * b**2 * hh**2 / 8).startswith("Correct!")


@pytest.mark.parametrize("answer, match", [
    (1 - beta * h / 2 - beta**2 * h**2 / 8, "wrong sign"),
    (1 + beta * h / 2 - beta**2 * h**2 / 8, "that of sqrt\\(1 - beta h\\)"),
    (1 + beta * h / 2 + beta**2 * h**2 / 8, "should be 3 beta\\*\\*2/8"),
    (1 + beta * h / 2 + 3 * beta**2 * h**2 / 4, "divide the second derivative"),
    (1 + beta * h / 2 + beta**2 * h**2 / 4, "\\(1 \\+ beta h/2\\)\\^2"),
    (1 + beta * h + 3 * beta**2 * h**2 / 8, "coefficient of h should be beta/2"),
    (2 + beta * h / 2, "constant term should be 1"),
    (1 + beta * h / 2 + 3 * beta**2 * h**2 / 8 + 5 * beta**3 * h**3 / 16, "degree 3"),
    (1 / sp.sqrt(1 - beta * h), "polynomial in h"),
    (1 + sp.Symbol("b") * h / 2, "uses the symbols \\['b'\\]"),
    (1 + beta * h / 2 + beta**2 * h**2 / 3, "should be 3 beta\\*\\*2/8, got beta\\*\\*2/3"),
    ("1 + beta*h/2 +", "sympy expression"),
])
def test_inverse_sqrt_series_names_mistakes(answer, match):
    with pytest.raises(WrongAnswer, match=match):
        ex.check_inverse_sqrt_series(answer)


# ---------------------------------------------------------------- 2. GBM
def test_gbm_log_accepts_solution():
    assert ex.check_gbm_log(mu - s**2 / 2, s).startswith("Correct!")
    xx = sp.Symbol("x", positive=True)
    assert ex.check_gbm_log(mu * xx / xx - s**2 * xx**2 / (2 * xx**2), "s").startswith("Correct!")


@pytest.mark.parametrize("drift, diffusion, match", [
    (mu, s, "ordinary chain rule"),
    (mu + s**2 / 2, s, "sign of phi''"),
    (mu - s**2, s, "factor 1/2"),
    (mu - s / 2, s, "g\\^2 = s\\^2 x\\^2 enters"),
    (mu - s**2 * x**2 / 2, s, "the x's cancel"),
    (mu * x - s**2 / 2, s, "the x cancels in the first term"),
    (mu - s**2 / 3, s, "should be mu - s\\^2/2"),
    (mu - s**2 / 2, s * x, "without the factor phi'"),
    (mu - s**2 / 2, s**2, "not a square"),
    (mu - s**2 / 2, -s, "conventional"),
    (mu - s**2 / 2, 2 * s, "diffusion should be s"),
    (mu - sp.Symbol("sigma") ** 2 / 2, s, "uses the symbols \\['sigma'\\]"),
])
def test_gbm_log_names_mistakes(drift, diffusion, match):
    with pytest.raises(WrongAnswer, match=match):
        ex.check_gbm_log(drift, diffusion)


# ---------------------------------------------------------------- 3. quadratic variation
def qv(path):
    return (path[1:] - path[:-1]).pow(2).sum(0)


def test_quadratic_variation_accepts_solution():
    assert ex.check_quadratic_variation(qv).startswith("Correct!")
    numpy_qv = lambda p: np.sum(np.diff(p.numpy(), axis=0) ** 2, axis=0)  # noqa: E731
    assert ex.check_quadratic_variation(numpy_qv).startswith("Correct!")
    assert ex.check_qv_scaled(18).startswith("Correct!")
    assert ex.check_qv_scaled(torch.tensor(18.0)).startswith("Correct!")


@pytest.mark.parametrize("fn, match", [
    (lambda p: (p[1:] - p[:-1]).abs().sum(0), "total variation"),
    (lambda p: p[1:].pow(2).sum(0), "not the values"),
    (lambda p: (p[-1] - p[0]) ** 2, "square of the sum"),
    (lambda p: (p[1:] - p[:-1]).pow(2).mean(0), "do not average"),
    (lambda p: (p[1:] - p[:-1]).pow(2).sum(0).sqrt(), "no square root"),
    (lambda p: (p[1:] - p[:-1]).pow(2).sum(1), "sum over time"),
    (lambda p: (p[1:] - p[:-1]).pow(2).sum(), "shape \\(B,\\)"),
    (lambda p: 2 * (p[1:] - p[:-1]).pow(2).sum(0), "expected"),
    (lambda p: p.foo(), "raised AttributeError"),
    (3.0, "should be a function"),
])
def test_quadratic_variation_names_mistakes(fn, match):
    with pytest.raises(WrongAnswer, match=match):
        ex.check_quadratic_variation(fn)


@pytest.mark.parametrize("value, match", [
    (6.0, "c\\^2, not c"),
    (3 * np.sqrt(2), "not sqrt\\(t\\)"),
    (68.0, "drift's contribution vanishes"),
    (2.0, "factor 3 counts"),
    (9.0, "not 9"),
    (17.0, "should be about 18"),
    ([18.0, 18.0], "one number"),
    (float("nan"), "must be a finite number"),
])
def test_qv_scaled_names_mistakes(value, match):
    with pytest.raises(WrongAnswer, match=match):
        ex.check_qv_scaled(value)


# ---------------------------------------------------------------- 4. fourth moment
def test_fourth_moment_accepts_solution():
    s_ = sp.Symbol("s", positive=True)
    tt = sp.Symbol("t", positive=True)
    assert ex.check_fourth_moment(sp.integrate(6 * s_, (s_, 0, tt))).startswith("Correct!")
    assert ex.check_fourth_moment("3*t**2").startswith("Correct!")


@pytest.mark.parametrize("answer, match", [
    (sp.Integer(0), "ordinary chain rule"),
    (6 * t**2, "int_0\\^t 6 s ds"),
    (12 * t**2, "not 12 w\\^2"),
    (t**2, "deterministic"),
    (6 * t, "integrate it"),
    (3 * t, "scales like t\\^2"),
    (4 * t**2, "should be 3 t\\^2"),
])
def test_fourth_moment_names_mistakes(answer, match):
    with pytest.raises(WrongAnswer, match=match):
        ex.check_fourth_moment(answer)
