import math

import numpy as np
import pytest
import sympy as sp
import torch

from sdelab.exercises import (WrongAnswer, allclose, as_array, as_numeric_function, as_tensor64, call_answer, correct,
                              expect, expect_array, expect_callable, expect_close, expect_number, expect_tensor,
                              parse_sympy, parse_sympy_in, reject_mistakes, sympy_equal)


def test_expect_close_messages():
    assert expect_close(torch.tensor(2.0), 2.0, name="variance") == 2.0
    with pytest.raises(WrongAnswer, match=r"variance = 4.*about 2.*factor"):
        expect_close(4.0, 2.0, name="variance", hint="Check the factor 2.")
    with pytest.raises(WrongAnswer, match="one number"):
        expect_close([1.0, 2.0], 2.0, name="variance")
    with pytest.raises(WrongAnswer, match="finite"):
        expect_close(float("nan"), 2.0, name="variance")
    with pytest.raises(WrongAnswer, match="number"):
        expect_close("two", 2.0, name="variance")


def test_expect_array_and_callable():
    arr = expect_array(np.zeros((2, 3)), name="x", shape=(2, 3))
    assert arr.shape == (2, 3)
    with pytest.raises(WrongAnswer, match=r"shape \(3, 2\)"):
        expect_array(np.zeros((2, 3)), name="x", shape=(3, 2))
    with pytest.raises(WrongAnswer, match="function"):
        expect_callable(3, name="step")


def test_correct_prints(capsys):
    msg = correct("Well done.")
    assert msg.startswith("Correct!") and "Well done." in capsys.readouterr().out


def test_feedback_is_not_echoed_by_ipython():
    msg = correct("Fine.")
    assert hasattr(msg, "_ipython_display_") and msg._ipython_display_() is None


def test_converters_accept_numbers_arrays_and_tensors():
    assert as_array(torch.tensor([1, 2]), "x").dtype == np.float64
    assert as_array(3, "x").shape == ()
    with pytest.raises(WrongAnswer, match="x should be a number or an array of numbers, got str"):
        as_array("three", "x")
    t = as_tensor64(np.arange(3), "fn(x)")
    assert t.dtype == torch.float64 and t.tolist() == [0.0, 1.0, 2.0]
    leaf = torch.ones(2, requires_grad=True)
    assert not as_tensor64(leaf * 2, "fn(x)").requires_grad
    with pytest.raises(WrongAnswer, match=r"fn\(x\) should return a torch tensor .*got NoneType \(a missing return"):
        as_tensor64(None, "fn(x)")
    assert expect_number(torch.tensor([2.5]), name="v") == 2.5
    with pytest.raises(WrongAnswer, match=r"v should be one number, got an array of shape \(2,\)"):
        expect_number([1.0, 2.0], name="v")


def test_allclose_needs_equal_shapes():
    assert allclose(torch.tensor([1.0, 2.0]), np.array([1.0, 2.0 + 1e-9]))
    assert not allclose(np.ones((3, 1)), np.ones(3))  # no broadcasting
    assert not allclose([1.0], [1.1])
    assert allclose([1.0], [1.1], rtol=0.2)


def test_expect_tensor_names_type_shape_and_nan():
    x = np.zeros((2, 3))
    assert torch.is_tensor(expect_tensor(x, name="out", shape=(2, 3)))
    with pytest.raises(WrongAnswer, match="out should be a torch tensor, got list"):
        expect_tensor([0.0], name="out", shape=(1,))
    with pytest.raises(WrongAnswer, match=r"out should have shape \(3, 2\), got \(2, 3\)"):
        expect_tensor(x, name="out", shape=(3, 2))
    with pytest.raises(WrongAnswer, match="NaN or inf values. Check dt."):
        expect_tensor(torch.tensor([float("nan")]), name="out", shape=(1,), nan_hint="Check dt.")


def test_call_answer_passes_keywords_and_quotes_errors():
    assert call_answer(lambda a, b=0: a + b, 1, b=2, name="f") == 3
    with pytest.raises(WrongAnswer, match="calling f raised ZeroDivisionError"):
        call_answer(lambda: 1 / 0, name="f")
    with pytest.raises(WrongAnswer, match="append_dims"):
        call_answer(lambda: torch.ones(3) * torch.ones(3, 2), name="f")
    with pytest.raises(WrongAnswer, match="^inner$"):  # a checker's own WrongAnswer passes through unchanged
        call_answer(lambda: expect(False, "inner"), name="f")


def test_reject_mistakes_names_the_first_match():
    mistakes = [(2.0, "doubled"), (0.5, "halved"), (2.0, "never reached")]
    reject_mistakes(1.0, mistakes, same=np.isclose)
    with pytest.raises(WrongAnswer, match="^case 1: doubled$"):
        reject_mistakes(2.0, mistakes, same=np.isclose, prefix="case 1: ")


def test_parse_sympy_matches_symbols_by_name():
    b = sp.Symbol("b", positive=True)
    assert parse_sympy(sp.Symbol("b") ** 2, {"b": b}, name="ans") == b**2
    assert parse_sympy("b/2", {"b": b}, name="ans") == b / 2
    assert parse_sympy(sp.series(sp.exp(b), b, 0, 2), {"b": b}, name="ans") == 1 + b  # O(b^2) dropped
    with pytest.raises(WrongAnswer, match=r"ans uses the symbols \['t'\]; use only \['b'\]. Let t -> oo."):
        parse_sympy(sp.Symbol("t") * b, {"b": b}, name="ans", hint="Let t -> oo.")
    with pytest.raises(WrongAnswer, match="sympy expression"):
        parse_sympy("b +", {"b": b}, name="ans")
    assert sympy_equal(sp.sin(b) ** 2 + sp.cos(b) ** 2, 1) and not sympy_equal(b, 2 * b)


def test_parse_sympy_in_renames_the_one_symbol_and_calls_functions():
    t = sp.Symbol("t", positive=True)
    assert parse_sympy_in(sp.exp(sp.Symbol("s")), t, name="phi") == sp.exp(t)
    assert parse_sympy_in(lambda u: 2 * u, t, name="phi") == 2 * t
    assert parse_sympy_in(3, t, name="phi") == 3
    with pytest.raises(WrongAnswer, match="phi should depend on t only.*Put the numbers in."):
        parse_sympy_in(sp.Symbol("a") * sp.Symbol("b"), t, name="phi", hint="Put the numbers in.")
    with pytest.raises(WrongAnswer, match=r"calling phi\(t\) with a sympy symbol t raised TypeError.*sympy.exp"):
        parse_sympy_in(lambda u: math.exp(u), t, name="phi")


def test_as_numeric_function_from_sympy_string_or_callable():
    a, g = sp.symbols("a g")
    for answer in (g**2 / (2 * a), "g**2/(2*a)", lambda a, g: g**2 / (2 * a)):
        assert as_numeric_function(answer, ("a", "g"), name="v")(0.5, 1.0) == pytest.approx(1.0)
    with pytest.raises(WrongAnswer, match=r"Give a function v\(a, g\) or a sympy expression in a, g"):
        as_numeric_function(0.5, ("a", "g"), name="v")
    with pytest.raises(WrongAnswer, match="should be a function"):
        as_numeric_function([1.0], ("a", "g"), name="v")


# ---------------------------------------------------------------- student code cannot hang or change the notebook
def test_an_endless_student_function_is_stopped_with_a_message(monkeypatch):
    import time

    import sdelab.exercises._core as core

    monkeypatch.setattr(core, "CHECK_SECONDS", 0.5)

    def endless(x):
        while True:
            try:
                time.sleep(0.01)
            except Exception:  # a student's broad except must not swallow the stop
                pass

    t0 = time.perf_counter()
    with pytest.raises(WrongAnswer, match=r"fn\(x\) did not finish within 0.5 s"):
        core.call_answer(endless, 1.0, name="fn(x)")
    assert time.perf_counter() - t0 < 5


def test_student_code_gives_back_dtype_grad_mode_and_reseeded_rng():
    import sdelab.exercises._core as core

    def meddling(x):
        torch.set_default_dtype(torch.float64)
        torch.set_grad_enabled(False)
        torch.manual_seed(123)
        return x

    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    core.call_answer(meddling, 1.0, name="fn")
    assert torch.get_default_dtype() == torch.float32 and torch.is_grad_enabled()
    assert torch.equal(torch.rand(3), expected)  # the notebook's stream goes on as if nothing happened


@pytest.mark.parametrize("text", ["__import__('os').system('true')", "().__class__", "exp(x).subs", "[x for x in y]",
                                  "lambda: 1", "9**9**9**9", "10**100000", "x[0]", "f(x, evaluate=False)"])
def test_string_answers_that_are_not_formulas_are_refused_before_evaluation(text):
    b = sp.Symbol("b")
    with pytest.raises(WrongAnswer, match="should be"):
        parse_sympy(text, {"b": b, "x": sp.Symbol("x")}, name="ans")


def test_ordinary_formulas_still_parse():
    b, t = sp.symbols("b t", positive=True)
    assert parse_sympy("exp(-b*t/2) * sqrt(1 - exp(-b*t)) + b^2/2 - 3e-2", {"b": b, "t": t}, name="ans") == \
        sp.exp(-b * t / 2) * sp.sqrt(1 - sp.exp(-b * t)) + b**2 / 2 - sp.Float("0.03")
