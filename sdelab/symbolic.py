"""Sympy helpers for the derivation cells: checks that fail loudly and show what was checked.

A derivation cell builds both sides of an identity, calls `check_equal` (or a relative of it), and
the equation displayed is the one that was verified: `check_equal` returns a `sympy.Eq` that
renders as LaTeX in a notebook.

Power audit: inside `power_check()` (or with the environment variable `SDELAB_CHECK_POWER=1`) every
check also re-runs itself on perturbed claims (one side times 2, one side negated, the sign of one
term flipped) and requires each to fail; a check whose two sides are one expression before any
simplification, made so by arithmetic alone (`check_equal(x, x)`, or a side *defined* as the other),
is flagged as a tautology. `tests/test_check_power.py` runs the audit on every chapter.
"""
from __future__ import annotations

import ast
import contextlib
import linecache
import os
import random
import sys

import sympy as sp
from sympy.core.function import AppliedUndef
from sympy.printing.latex import LatexPrinter
from sympy.stats.rv import RandomSymbol

__all__ = [
    "DerivationError", "check_equal", "check_zero", "check_series", "check_solves", "show", "latex",
    "positive_symbols", "B_of_t", "substitute_B", "named", "PowerlessCheck", "power_check",
]


class DerivationError(AssertionError):
    """A claimed identity that sympy could not confirm."""


class PowerlessCheck(DerivationError):
    """A check that would also pass for a wrong formula (raised only by the power audit)."""


_AUDIT = {"on": os.environ.get("SDELAB_CHECK_POWER", "") not in ("", "0"), "records": None, "sources": ()}


@contextlib.contextmanager
def power_check(sources=()):
    """Audit every check made inside: yields a list that gets one record (a dict) per check.

    A record holds `kind`, `label`, `site` (file, line, text of the calling line), `trivial` (both
    sides one expression by arithmetic alone, see `_computes`), `survived` (perturbations the check did not reject) and
    `powerful` (neither). `sources`: earlier code (e.g. the notebook's previous cells) whose
    assignments are followed too. Without this context, `SDELAB_CHECK_POWER=1` raises `PowerlessCheck`.
    """
    old, records = dict(_AUDIT), []
    _AUDIT.update(on=True, records=records, sources=tuple(sources))
    try:
        yield records
    finally:
        _AUDIT.update(old)


def _caller():
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename == __file__:
        frame = frame.f_back
    return frame


def _site(frame):
    if frame is None:  # pragma: no cover
        return ("?", 0, "")
    name, line = frame.f_code.co_filename, frame.f_lineno
    return (name, line, linecache.getline(name, line).strip())


# Calls that only build an expression; any other call in a check's arguments computes something.
_BUILDERS = {"sqrt", "exp", "log", "Rational", "Integer", "Symbol", "symbols", "Add", "Mul", "Pow", "sympify",
             "Function", "Eq", "S", "Float", "abs", "Abs", "sin", "cos", "positive_symbols", "B_of_t", "named",
             "Matrix", "eye", "Normal", "Min", "Max"}


def _assignments(tree) -> dict:
    """name -> the expressions assigned to it in `tree` (loop variables: the iterated expression)."""
    defs = {}
    for node in ast.walk(tree):
        pairs = []
        if isinstance(node, ast.Assign):
            pairs = [(t, node.value) for t in node.targets]
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)) and node.value is not None:
            pairs = [(node.target, node.value)]
        elif isinstance(node, (ast.For, ast.comprehension)):
            pairs = [(node.target, node.iter)]
        for target, value in pairs:
            for name in ast.walk(target):
                if isinstance(name, ast.Name):
                    defs.setdefault(name.id, []).append(value)
    return defs


def _has_computation(node, defs, depth=0) -> bool:
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call):
            if (getattr(sub.func, "attr", None) or getattr(sub.func, "id", "")) not in _BUILDERS:
                return True
        elif isinstance(sub, ast.Name) and depth < 6:
            if any(_has_computation(v, defs, depth + 1) for v in defs.get(sub.id, ()) if v is not node):
                return True
    return False


def _computes(frame, kind) -> bool:
    """Whether the arguments of the calling `kind(...)` come from a computation (a call that builds nothing).

    Two sides that are one expression before simplification are fine when a computation (a limit,
    an expectation, `dsolve`, a derivative) made them so, and a tautology when only arithmetic did.
    Names are followed to their assignments in the same cell or file.
    """
    if frame is None:
        return False
    name, line = frame.f_code.co_filename, frame.f_lineno
    try:
        tree = ast.parse("".join(linecache.getlines(name)))
    except (SyntaxError, ValueError):
        return False
    defs = _assignments(tree)
    for source in _AUDIT["sources"]:
        try:
            for key, values in _assignments(ast.parse(source)).items():
                defs.setdefault(key, []).extend(values)
        except SyntaxError:
            continue
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and n.lineno <= line <= n.end_lineno
             and (getattr(n.func, "attr", None) or getattr(n.func, "id", None)) == kind]
    return any(_has_computation(arg, defs) for call in calls for arg in call.args[:2])


def _first_add(expr):
    """The first sum met in a pre-order walk of `expr` (None if there is none)."""
    for node in sp.preorder_traversal(expr):
        if isinstance(node, sp.Add):
            return node
    return None


def _term_variants(expr):
    """`expr` with one term of its first sum doubled, and with that term's sign flipped."""
    add = _first_add(expr)
    if add is None:
        return [("plus 1", expr + 1), ("minus 1", expr - 1)]
    term = add.args[0]
    rest = add - term
    return [(f"term {term} doubled", expr.xreplace({add: rest + 2 * term})),
            (f"sign of term {term} flipped", expr.xreplace({add: rest - term}))]


def _disproved(expr, n_points: int = 2) -> bool:
    """True if `expr` is clearly non-zero at a random point (undefined functions made concrete)."""
    if expr.atoms(RandomSymbol):
        return False
    rng = random.Random(0)
    try:
        funcs = sorted({a.func for a in expr.atoms(AppliedUndef)}, key=str)
        for k, f in enumerate(funcs):  # a smooth positive stand-in for each undefined function
            expr = expr.replace(f, lambda *a, k=k: sp.Rational(k + 2, 3) + sp.exp(sum(a) * (k + 1) / 5))
        expr = expr.doit()
        for _ in range(n_points):
            value = complex(expr.subs({s: sp.Rational(rng.randint(30, 170), 100) for s in expr.free_symbols}).evalf(30))
            if abs(value) > 1e-8 and abs(value) < float("inf"):
                return True
    except (TypeError, ValueError, AttributeError, ZeroDivisionError):
        return False
    return False


def _audit(kind, label, trivial, variants):
    """Run the perturbed `variants` (description, claimed-zero expression, real check) and record."""
    frame = _caller()
    trivial = bool(trivial) and not _computes(frame, kind)
    survived = []
    for desc, claim, run in variants:
        if _disproved(claim):
            continue
        try:
            run()
        except DerivationError:
            continue
        survived.append(desc)
    record = {"kind": kind, "label": label, "site": _site(frame), "trivial": trivial,
              "survived": survived, "powerful": not trivial and not survived}
    if _AUDIT["records"] is not None:
        _AUDIT["records"].append(record)
    elif not record["powerful"]:
        why = "its sides are one expression, by arithmetic alone" if trivial else f"it also passes with {survived}"
        raise PowerlessCheck(f"{label or kind} checks nothing: {why} (at {record['site'][2]!r})")


def _zero(expr, label, assumptions, methods):
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


_METHODS = ("simplify", "expand", "powsimp", "radsimp", "trigsimp", "logcombine")


def check_zero(expr, *, label: str = "", assumptions: dict | None = None, methods=_METHODS):
    """Assert that `expr` simplifies to 0; raise `DerivationError` with the leftover otherwise."""
    expr = sp.sympify(expr)
    _zero(expr, label, assumptions, methods)
    if _AUDIT["on"]:
        _audit("check_zero", label, expr == 0,
               [(d, e, lambda e=e: _zero(e, label, assumptions, methods)) for d, e in _term_variants(expr)])
    return True


def check_equal(lhs, rhs, *, label: str = "", assumptions: dict | None = None, methods=_METHODS) -> sp.Eq:
    """Assert `lhs == rhs` symbolically and return `Eq(lhs, rhs)` for display."""
    label = label or f"{lhs} = {rhs}"
    left, right = sp.sympify(lhs), sp.sympify(rhs)
    _zero(left - right, label, assumptions, methods)
    if _AUDIT["on"]:
        if left == 0 or right == 0:  # a claim "expression = 0": perturb a term of the expression
            wrong = [(d, e) for d, e in _term_variants(right if left == 0 else left)]
        else:
            side = left if _first_add(left) is not None or _first_add(right) is None else right
            wrong = [("2 * lhs", 2 * left - right), ("-lhs", -left - right)]
            wrong += [(d, e - right if side is left else left - e) for d, e in _term_variants(side)[1:]]
        _audit("check_equal", label, left - right == 0,
               [(d, e, lambda e=e: _zero(e, label, assumptions, methods)) for d, e in wrong])
    return sp.Eq(lhs, rhs, evaluate=False)


def check_series(expr, var, expected, order: int, *, point=0, label: str = "") -> sp.Eq:
    """Assert the Taylor series of `expr` in `var` about `point` equals `expected + O(var^order)`."""
    expected = sp.sympify(expected)
    series = sp.series(expr, var, point, order).removeO()
    label = label or f"series of {expr}"
    _zero(sp.expand(series - expected), label, None, _METHODS)
    if _AUDIT["on"]:
        wrong = [("2 * expected", 2 * expected), ("-expected", -expected)] if expected != 0 else \
            [("expected + var", (var - point) ** max(order - 1, 0))]
        claims = [(d, sp.expand(series - e)) for d, e in wrong]
        _audit("check_series", label, sp.sympify(expr) - expected == 0,
               [(d, c, lambda c=c: _zero(c, label, None, _METHODS)) for d, c in claims])
    return sp.Eq(expr, expected + sp.Order(var**order, (var, point)), evaluate=False)


def _residual(ode, solution, func, subs):
    residual = (ode.lhs - ode.rhs).subs(func, solution).doit()
    return residual.subs(subs) if subs else residual


def check_solves(ode: sp.Eq, solution, func, var, *, label: str = "", subs: dict | None = None) -> sp.Eq:
    """Assert `func = solution` satisfies `ode` (an `Eq` in `func(var)` and its derivatives).

    `subs` is applied after differentiating, e.g. `{Derivative(B, t): beta}` for the B(t) trick.
    """
    label = label or f"{func} = {solution} solves {ode}"
    _zero(_residual(ode, solution, func, subs), label, None, _METHODS)
    if _AUDIT["on"]:
        if ode.rhs != 0:
            odes = [("2 * rhs", sp.Eq(ode.lhs, 2 * ode.rhs)), ("-rhs", sp.Eq(ode.lhs, -ode.rhs))]
        else:
            odes = [(d, sp.Eq(e, 0)) for d, e in _term_variants(ode.lhs)]
        wrong = [(d, _residual(o, solution, func, subs)) for d, o in odes]
        trivial = (ode.lhs - ode.rhs).subs(func, solution) == 0
        _audit("check_solves", label, trivial,
               [(d, r, lambda r=r: _zero(r, label, None, _METHODS)) for d, r in wrong])
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
