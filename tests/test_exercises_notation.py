"""The checkers of "Appendix: notation and dimensional analysis" accept the answers and name each mistake."""
from fractions import Fraction

import pytest
import sympy as sp

from sdelab.exercises import WrongAnswer
from sdelab.exercises.notation import (DT, DX, SDE_MENU, check_consistent_sdes, check_g_units, check_score_units,
                                       exponents)


def test_exponents_reads_monomials_and_pairs():
    assert exponents(DX / sp.sqrt(DT)) == (1, Fraction(-1, 2))
    X, T = sp.symbols("[x] [t]")  # the student's own symbols, without assumptions
    assert exponents(2 * X**2 / T) == (2, -1)
    assert exponents((1, -0.5)) == (1, Fraction(-1, 2))
    assert exponents(sp.Integer(1)) == (0, 0)
    with pytest.raises(WrongAnswer, match=r"only use the base dimensions.*'y'"):
        exponents(sp.Symbol("y") * DX)
    with pytest.raises(WrongAnswer, match="not a monomial"):
        exponents(DX + DT)
    with pytest.raises(WrongAnswer, match="two entries"):
        exponents((1, 2, 3))


def test_score_units():
    assert check_score_units(1 / DX).startswith("Correct!")
    assert check_score_units((-1, 0)).startswith("Correct!")


@pytest.mark.parametrize("wrong, match", [
    (sp.Integer(1), "gradient is not"),
    (DX, "inverted"),
    (DX**-2, "Hessian"),
    (DX**-3, r"\[x\]\^\(-d\)"),
    (1 / (DX * DT), "no time enters"),
    ("hello", "only use the base dimensions"),
])
def test_score_units_names_the_mistake(wrong, match):
    with pytest.raises(WrongAnswer, match=match):
        check_score_units(wrong)


def test_g_units():
    assert check_g_units(DX / sp.sqrt(DT)).startswith("Correct!")
    assert check_g_units(DX * DT ** sp.Rational(-1, 2) * sp.sqrt(2)).startswith("Correct!")


@pytest.mark.parametrize("wrong, match", [
    (DX / DT, "dimension of the drift"),
    (DX**2 / DT, "dimension of g\\^2"),
    (DX * sp.sqrt(DT), "wrong sign"),
    (1 / sp.sqrt(DT), "the factor s carries"),
    (DX, "has to cancel it"),
    (DX**3, r"Require \[g\]\[dw\] = \[x\]"),
])
def test_g_units_names_the_mistake(wrong, match):
    with pytest.raises(WrongAnswer, match=match):
        check_g_units(wrong)


def test_consistent_sdes():
    assert check_consistent_sdes({"A", "D", "E", "G"}).startswith("Correct!")
    assert check_consistent_sdes(["a", "d", "e", "g"]).startswith("Correct!")
    assert {k for k, v in SDE_MENU.items() if v[1]} == {"A", "D", "E", "G"}


@pytest.mark.parametrize("wrong, match", [
    ({"A", "B", "D", "E", "G"}, r"B \(.*\) is not consistent: beta dw"),
    ({"A", "C", "D", "E", "G"}, r"C \(.*\) is not consistent.*sqrt\(d sigma\^2 / dt\)"),
    ({"A", "D", "E", "F", "G"}, r"F \(.*\) is not consistent.*g\^2"),
    ({"A", "D", "E"}, r"G \(.*\) is consistent.*factor 2|G \(.*\) is consistent.*stationary variance 2"),
    ({"D", "E", "G"}, r"A \(.*\) is consistent"),
    ({"A", "Z"}, "unknown labels"),
    (3, "set of labels"),
])
def test_consistent_sdes_names_the_mistake(wrong, match):
    with pytest.raises(WrongAnswer, match=match):
        check_consistent_sdes(wrong)


def test_success_messages_are_one_short_line():
    # "Correct! ..." is printed inside a solution dropdown: it must fit the column (issue 9)
    import ast
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[1] / "sdelab" / "exercises"
    for name in ("fokker_planck", "solving_vpsde", "ddpm_vpsde", "notation"):
        calls = [node for node in ast.walk(ast.parse((root / f"{name}.py").read_text()))
                 if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "correct"]
        assert calls, name
        for call in calls:
            message = ast.literal_eval(call.args[0])
            assert len("Correct! " + message) <= 90 and "\n" not in message, (name, message)


@pytest.mark.parametrize("answer", ["__import__('os').system('touch /tmp/sdelab_pwned')",
                                    ("__import__('os').system('touch /tmp/sdelab_pwned')", 1)])
def test_string_answers_are_not_executed(answer, tmp_path, monkeypatch):
    """sympify runs Python: a string answer goes through the AST whitelist first and is refused, never run."""
    import os

    ran = []
    monkeypatch.setattr(os, "system", lambda cmd: ran.append(cmd) or 0)
    with pytest.raises(WrongAnswer):
        check_score_units(answer)
    assert ran == []
