import numpy as np
import pytest
import torch

from sdelab.exercises import WrongAnswer, correct, expect_array, expect_callable, expect_close


def test_expect_close_messages():
    assert expect_close(torch.tensor(2.0), 2.0, name="variance") == 2.0
    with pytest.raises(WrongAnswer, match=r"variance = 4.*about 2.*factor"):
        expect_close(4.0, 2.0, name="variance", hint="Check the factor 2.")
    with pytest.raises(WrongAnswer, match="single number"):
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
