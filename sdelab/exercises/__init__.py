"""Exercise checkers, one module per chapter.

Each `check_*` function takes the student's answer, returns a short success message (and prints it),
or raises `WrongAnswer` (an `AssertionError`) whose message says what is wrong and what to look at.
"""
from ._core import Feedback, WrongAnswer, correct, expect, expect_array, expect_close, expect_callable

__all__ = ["Feedback", "WrongAnswer", "correct", "expect", "expect_array", "expect_close", "expect_callable"]
