"""Exercise checkers, one module per chapter.

Each `check_*` function takes the student's answer, returns a short success message (and prints it),
or raises `WrongAnswer` (an `AssertionError`) whose message says what is wrong and what to look at.
"""
from ._core import (Feedback, WrongAnswer, allclose, as_array, as_numeric_function, as_tensor64, call_answer, correct,
                    expect, expect_array, expect_callable, expect_close, expect_number, expect_tensor, parse_sympy,
                    parse_sympy_in, reject_mistakes, sympy_equal)

__all__ = ["Feedback", "WrongAnswer", "correct", "expect", "expect_array", "expect_close", "expect_callable",
           "expect_number", "expect_tensor", "as_array", "as_tensor64", "as_numeric_function", "allclose",
           "call_answer", "reject_mistakes", "parse_sympy", "parse_sympy_in", "sympy_equal"]
