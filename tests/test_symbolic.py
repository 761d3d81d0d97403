import pytest
import sympy as sp

from sdelab import symbolic as S


def test_check_equal_accepts_identity_and_rejects_wrong_one():
    x = sp.symbols("x", positive=True)
    eq = S.check_equal(sp.sin(x) ** 2 + sp.cos(x) ** 2, 1)
    assert isinstance(eq, sp.Eq)
    with pytest.raises(S.DerivationError, match="does not hold"):
        S.check_equal(sp.sqrt(1 - x), 1 - x / 2)


def test_check_series_detects_wrong_coefficient():
    b, h = sp.symbols("beta h", positive=True)
    S.check_series(sp.sqrt(1 - b * h), h, 1 - b * h / 2 - b**2 * h**2 / 8, 3)
    with pytest.raises(S.DerivationError):
        S.check_series(sp.sqrt(1 - b * h), h, 1 - b * h / 2 + b**2 * h**2 / 8, 3)


def test_check_solves_ode():
    t, lam, x0 = sp.symbols("t lambda x0", positive=True)
    x = sp.Function("x")
    ode = sp.Eq(x(t).diff(t), -lam * x(t))
    S.check_solves(ode, x0 * sp.exp(-lam * t), x(t), t)
    with pytest.raises(S.DerivationError):
        S.check_solves(ode, x0 * sp.exp(lam * t), x(t), t)


def test_B_trick_solves_vp_mean_ode():
    t, m0 = sp.symbols("t m0", positive=True)
    B, beta = S.B_of_t(t)
    m = m0 * sp.exp(-B / 2)
    lhs = S.substitute_B(sp.diff(m, t), B, beta, t)
    S.check_equal(lhs, -beta * m / 2)


def test_latex_puts_products_under_derivatives_in_parentheses():
    x = sp.symbols("x")
    f, p = sp.Function("f")(x), sp.Function("p")(x)
    out = S.latex(sp.Derivative(f * p, x))
    assert r"\left(" in out and r"\right)" in out


def test_check_solves_with_B_substitution():
    t, m0 = sp.symbols("t m0", positive=True)
    B, beta = S.B_of_t(t)
    m = sp.Function("m")
    ode = sp.Eq(m(t).diff(t), -beta * m(t) / 2)
    S.check_solves(ode, m0 * sp.exp(-B / 2), m(t), t, subs={sp.Derivative(B, t): beta})
    with pytest.raises(S.DerivationError):
        S.check_solves(ode, m0 * sp.exp(-B), m(t), t, subs={sp.Derivative(B, t): beta})
