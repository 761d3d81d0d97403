"""Sympy helpers for the derivation cells: checks that fail loudly and show what was checked.

A derivation cell builds both sides of an identity, calls `check_equal` (or a relative of it), and
the equation displayed is the one that was verified: `check_equal` returns a `sympy.Eq` that
renders as LaTeX in a notebook.
"""
from __future__ import annotations

import sympy as sp
from sympy.printing.latex import LatexPrinter

__all__ = [
    "DerivationError", "check_equal", "check_zero", "check_series", "check_solves", "show", "latex",
    "positive_symbols", "B_of_t", "substitute_B", "named",
]


class DerivationError(AssertionError):
    """A claimed identity that sympy could not confirm."""


def _simplify(expr, *, methods=("simplify",)):
    for name in methods:
        expr = getattr(sp, name)(expr)
        if expr == 0:
            break
    return expr


def check_zero(expr, *, label: str = "", assumptions: dict | None = None,
               methods=("simplify", "expand", "powsimp", "radsimp", "trigsimp", "logcombine")):
    """Assert that `expr` simplifies to 0; raise `DerivationError` with the leftover otherwise."""
    expr = sp.sympify(expr)
    if assumptions:
        expr = expr.subs(assumptions)
    rest = expr
    for name in methods:
        rest = getattr(sp, name)(rest)
        if rest == 0:
            return True
    rest = sp.simplify(sp.expand(rest))
    if rest != 0:
        raise DerivationError(f"{label or 'identity'} does not hold: the difference simplifies to {rest}")
    return True


def check_equal(lhs, rhs, *, label: str = "", **kw) -> sp.Eq:
    """Assert `lhs == rhs` symbolically and return `Eq(lhs, rhs)` for display."""
    check_zero(sp.sympify(lhs) - sp.sympify(rhs), label=label or f"{lhs} = {rhs}", **kw)
    return sp.Eq(lhs, rhs, evaluate=False)


def check_series(expr, var, expected, order: int, *, point=0, label: str = "") -> sp.Eq:
    """Assert the Taylor series of `expr` in `var` about `point` equals `expected + O(var^order)`."""
    series = sp.series(expr, var, point, order).removeO()
    check_zero(sp.expand(series - expected), label=label or f"series of {expr}")
    return sp.Eq(expr, expected + sp.Order(var**order, (var, point)), evaluate=False)


def check_solves(ode: sp.Eq, solution, func, var, *, label: str = "", subs: dict | None = None) -> sp.Eq:
    """Assert `func = solution` satisfies `ode` (an `Eq` in `func(var)` and its derivatives).

    `subs` is applied after differentiating, e.g. `{Derivative(B, t): beta}` for the B(t) trick.
    """
    residual = (ode.lhs - ode.rhs).subs(func, solution).doit()
    if subs:
        residual = residual.subs(subs)
    check_zero(residual, label=label or f"{func} = {solution} solves {ode}")
    return sp.Eq(func, solution, evaluate=False)


class _Latex(LatexPrinter):
    """sympy's LaTeX, except that a product under a derivative gets parentheses: d/dx (f p), not d/dx f p."""

    def _print_Derivative(self, expr):
        out, body = super()._print_Derivative(expr), self._print(expr.expr)
        if isinstance(expr.expr, sp.Mul) and out.endswith(" " + body):
            out = out[: -len(body)] + r"\left(" + body + r"\right)"
        return out


def latex(expr) -> str:
    """LaTeX for `expr` as the book prints it (see `_Latex`)."""
    return _Latex().doprint(expr)


def show(*exprs):
    """Display expressions as LaTeX in a notebook (plain text elsewhere)."""
    try:
        from IPython.display import Math, display

        for e in exprs:
            display(Math(latex(e)))
    except ImportError:  # pragma: no cover
        for e in exprs:
            print(sp.pretty(e))


def named(name: str, expr) -> sp.Eq:
    """The equation `name = expr` for display, `name` written in LaTeX (sympy would evaluate a left side)."""
    return sp.Eq(sp.Symbol(name), expr, evaluate=False)


def positive_symbols(names: str):
    """`sympy.symbols(names, positive=True)`: positivity lets `sqrt`, `exp(log(.))` simplify."""
    return sp.symbols(names, positive=True)


def B_of_t(t):
    r"""The integrated rate $B(t) = \int_0^t \beta$ as an unknown function, and $\beta(t) = B'(t)$."""
    B = sp.Function("B", positive=True)(t)
    beta = sp.Function("beta", positive=True)(t)
    return B, beta


def substitute_B(expr, B, beta, t):
    r"""Replace $B'(t)$ by $\beta(t)$ after differentiating (the trick that keeps $\int\beta$ symbolic)."""
    return expr.subs(sp.Derivative(B, t), beta)
