r"""Checkers for the exercises of "Appendix: notation and dimensional analysis" (`book/appendix/notation.ipynb`).

A dimension is written as a sympy monomial in two base symbols named ``[x]`` (the unit of the data) and
``[t]`` (the unit of diffusion time), e.g. ``DX / sympy.sqrt(DT)`` with
``DX, DT = sympy.symbols("[x] [t]", positive=True)``, or as the pair of exponents ``(p, q)`` meaning
$[x]^p [t]^q$. Only the exponents are compared, so dimensionless factors (2, pi, ...) do not matter.
"""
from __future__ import annotations

from fractions import Fraction

import sympy as sp

from ._core import WrongAnswer, _sympify, check_expression_string, correct, expect

__all__ = ["DX", "DT", "exponents", "check_score_units", "check_g_units", "check_consistent_sdes", "SDE_MENU"]

DX, DT = sp.symbols("[x] [t]", positive=True)


def _fraction(v, name: str) -> Fraction:
    if isinstance(v, str):
        check_expression_string(v, name)  # nsimplify would sympify (run) the string
    try:
        return Fraction(str(sp.nsimplify(v))) if not isinstance(v, Fraction) else v
    except (ValueError, TypeError, sp.SympifyError) as e:
        raise WrongAnswer(f"{name}: the exponent {v!r} is not a number") from e


def exponents(dim, *, name: str = "the dimension") -> tuple[Fraction, Fraction]:
    r"""The exponents $(p, q)$ of a dimension $[x]^p [t]^q$, given as a sympy monomial in symbols named ``[x]`` and
    ``[t]`` (any assumptions) or as a pair of numbers. Raises `WrongAnswer` for anything else."""
    if isinstance(dim, (tuple, list)):
        expect(len(dim) == 2, f"{name}: a pair of exponents (p, q) for [x]^p [t]^q has two entries, got {len(dim)}")
        return _fraction(dim[0], name), _fraction(dim[1], name)
    expr = _sympify(dim, name, "a sympy expression in [x] and [t] or a pair (p, q)")  # strings: AST-checked first
    by_name = {s.name: s for s in expr.free_symbols}
    unknown = sorted(set(by_name) - {"[x]", "[t]"})
    expect(not unknown, f"{name} may only use the base dimensions [x] and [t] (symbols named '[x]' and '[t]'), "
                        f"but it contains {unknown}.")
    a, b = sp.symbols("a b", real=True)
    subs = {}
    if "[x]" in by_name:
        subs[by_name["[x]"]] = sp.exp(a)
    if "[t]" in by_name:
        subs[by_name["[t]"]] = sp.exp(b)
    expect(expr.is_positive is not False and expr != 0, f"{name} = {expr} is not a dimension (use a monomial such as "
                                                        "[x]**2 / [t], positive).")
    log = sp.expand(sp.expand_log(sp.log(expr.subs(subs)), force=True))
    p, q = sp.diff(log, a), sp.diff(log, b)
    expect(p.free_symbols <= set() and q.free_symbols <= set(),
           f"{name} = {expr} is not a monomial [x]^p [t]^q (a sum of terms with different dimensions has no "
           "dimension at all).")
    return _fraction(p, name), _fraction(q, name)


def _fmt(p: Fraction, q: Fraction) -> str:
    parts = [f"[{s}]^{e}" if e != 1 else f"[{s}]" for s, e in (("x", p), ("t", q)) if e != 0]
    return " ".join(parts) or "1 (dimensionless)"


# ---------------------------------------------------------------- units of the score
def check_score_units(dim) -> str:
    r"""Check the dimension of the score $\nabla_x \log p_t(x)$ of a density on $\mathbb R^d$ whose coordinates have
    dimension $[x]$. Answer: $[x]^{-1}$ (whatever $d$ is)."""
    p, q = exponents(dim, name="the score's dimension")
    if (p, q) == (-1, 0):
        return correct("[score] = 1/[x], in any dimension d.")
    expect(q == 0, f"you gave {_fmt(p, q)}, but no time enters the score at a fixed t: p_t is a density in x, "
                   "and the gradient is with respect to x.")
    hints = {
        Fraction(0): "log p is dimensionless (up to a constant), but its gradient is not: d/dx divides by [x].",
        Fraction(1): "inverted: a gradient d/dx divides by [x], it does not multiply.",
        Fraction(-2): "one [x] too many: [x]^-2 is the dimension of a Hessian of log p (or of 1/sigma^2), not of "
                      "the gradient.",
    }
    expect(p not in hints, f"you gave {_fmt(p, q)}: " + hints.get(p, ""))
    raise WrongAnswer(f"you gave {_fmt(p, q)}. The density p has dimension [x]^(-d), but the score is the gradient of "
                      "its logarithm: grad p / p, in which [x]^(-d) cancels, leaving 1/[x] from the gradient.")


# ---------------------------------------------------------------- units of g
def check_g_units(dim) -> str:
    r"""Check the dimension of $g$ in the Ornstein–Uhlenbeck SDE $dx = -\theta x\,dt + s\sqrt{2\theta}\,dw$, where
    $[\theta] = 1/[t]$ and the scale $s$ has the dimension of the data, $[s] = [x]$. Answer: $[x]\,[t]^{-1/2}$."""
    p, q = exponents(dim, name="the dimension of g")
    if (p, q) == (1, Fraction(-1, 2)):
        return correct("[g] = [x]/sqrt([t]), so g dw has the units of dx.")
    hints = {
        (Fraction(1), Fraction(-1)): "that is the dimension of the drift f = dx/dt-like terms; g multiplies dw, which "
                                     "has dimension sqrt([t]), not dt.",
        (Fraction(2), Fraction(-1)): "that is the dimension of g^2 (a diffusivity); the exercise asks for g.",
        (Fraction(1), Fraction(1, 2)): "the time exponent has the wrong sign: g dw must be [x] and [dw] = [t]^(1/2), so "
                                       "[g] = [x] [t]^(-1/2).",
        (Fraction(0), Fraction(-1, 2)): "that is the dimension of sqrt(2 theta) alone; the factor s carries [x].",
        (Fraction(1), Fraction(0)): "g dw must have the dimension of x, and dw carries sqrt([t]); g has to cancel it.",
    }
    expect((p, q) not in hints, f"you gave {_fmt(p, q)}: " + hints.get((p, q), ""))
    raise WrongAnswer(f"you gave {_fmt(p, q)}. Require [g][dw] = [x] with [dw] = [t]^(1/2), or read it off: "
                      "[s] [theta]^(1/2) = [x] [t]^(-1/2).")


# ---------------------------------------------------------------- which SDEs are consistent
#: The menu of the last exercise: label -> (the equation, whether it is dimensionally consistent, why).
SDE_MENU = {
    "A": ("dx = -beta(t) x / 2 dt + sqrt(beta(t)) dw, x dimensionless", True,
          "with [beta] = 1/[t] every term is dimensionless."),
    "B": ("dx = -beta(t) x / 2 dt + beta(t) dw, x dimensionless", False,
          "beta dw has dimension [t]^(-1/2), not 1: g = beta(t) is the erratum; g = sqrt(beta)."),
    "C": ("dx = sigma(t) dw, [sigma] = [x]", False,
          "sigma dw has dimension [x][t]^(1/2): the VE-SDE's g is sqrt(d sigma^2 / dt), not sigma."),
    "D": ("dx = sqrt(d sigma(t)^2 / dt) dw, [sigma] = [x]", True,
          "sqrt(d sigma^2/dt) has [x][t]^(-1/2), times sqrt([t]) gives [x]."),
    "E": ("dx = [f - g^2 grad log p_t] dt + g dw_bar (reverse SDE)", True,
          "g^2 * score * dt = [x]^2/[t] * 1/[x] * [t] = [x], like f dt and g dw_bar."),
    "F": ("dx = [f - g grad log p_t] dt + g dw_bar", False,
          "g * score * dt has dimension [x][t]^(-1/2) * 1/[x] * [t] = [t]^(1/2), not [x]: the score is "
          "multiplied by g^2."),
    "G": ("dx = -beta(t) x / 2 dt + sqrt(2 beta(t)) dw, x dimensionless", True,
          "dimensionally fine (2 is a pure number); its flaw is the stationary variance 2 (erratum 1), which only "
          "the algebra catches, not the units."),
}


def check_consistent_sdes(answer) -> str:
    r"""Check the set of labels (from `SDE_MENU`) of the dimensionally consistent equations: `{"A", "D", "E", "G"}`."""
    try:
        chosen = {str(a).strip().upper() for a in answer}
    except TypeError as e:
        raise WrongAnswer(f"give a set of labels such as {{'A', 'B'}}, got {type(answer).__name__}") from e
    unknown = sorted(chosen - set(SDE_MENU))
    expect(not unknown, f"unknown labels {unknown}: choose among {sorted(SDE_MENU)}.")
    want = {k for k, (_, ok, _) in SDE_MENU.items() if ok}
    if chosen == want:
        return correct("A, D, E and G; G passes units yet has the wrong variance.")
    lines = []
    for k in sorted(chosen - want):
        eq, _, why = SDE_MENU[k]
        lines.append(f"{k} ({eq}) is not consistent: {why}")
    for k in sorted(want - chosen):
        eq, _, why = SDE_MENU[k]
        lines.append(f"{k} ({eq}) is consistent: {why}")
    raise WrongAnswer("not quite. " + " ".join(lines))
