"""The building blocks of the exercise checkers: targeted messages instead of bare asserts."""
from __future__ import annotations

import math

import numpy as np
import torch


class WrongAnswer(AssertionError):
    """Raised by a checker: the message tells the student what is wrong and where to look."""


class Feedback(str):
    """The success message a checker returns (a `str`, so tests can inspect it).

    `correct()` has already printed it, so a notebook cell ending in a checker call does not echo it again.
    """

    def _ipython_display_(self):
        pass


def correct(message: str) -> Feedback:
    """Print and return a success message."""
    text = Feedback(f"Correct! {message}".strip())
    print(text)
    return text


def expect(condition: bool, message: str) -> None:
    """Raise `WrongAnswer(message)` unless `condition` holds."""
    if not condition:
        raise WrongAnswer(message)


def _to_numpy(value, name: str) -> np.ndarray:
    if torch.is_tensor(value):
        value = value.detach().cpu().numpy()
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise WrongAnswer(f"{name} should be a number or an array of numbers, got {type(value).__name__}") from None
    return arr


def expect_close(value, expected: float, *, name: str, rtol: float = 1e-2, atol: float = 0.0,
                 hint: str = "") -> float:
    """Check a scalar answer; the message names the value, the expected one and a hint."""
    arr = _to_numpy(value, name)
    expect(arr.size == 1, f"{name} should be a single number, got an array of shape {arr.shape}")
    v = float(arr.reshape(()))
    expect(math.isfinite(v), f"{name} is {v}: it must be a finite number. {hint}".strip())
    ok = abs(v - expected) <= atol + rtol * abs(expected)
    expect(ok, f"{name} = {v:.6g}, but it should be about {expected:.6g}. {hint}".strip())
    return v


def expect_array(value, *, name: str, shape: tuple | None = None, finite: bool = True) -> np.ndarray:
    """Check an array answer's type, shape and finiteness; return it as a NumPy array."""
    arr = _to_numpy(value, name)
    if shape is not None:
        expect(arr.shape == tuple(shape), f"{name} should have shape {tuple(shape)}, got {arr.shape}")
    if finite:
        expect(np.isfinite(arr).all(), f"{name} contains NaN or inf values")
    return arr


def call_answer(fn, *args, name: str):
    """Call the student's `fn(*args)`; turn an exception it raises into a `WrongAnswer` that quotes it."""
    try:
        return fn(*args)
    except WrongAnswer:
        raise
    except Exception as e:  # the student's code raised: say so, with the error and a hint for shape errors
        hint = ""
        if "size of tensor" in str(e) or "must match" in str(e) or "broadcast" in str(e):
            hint = (" A (B,) tensor of per-sample coefficients does not broadcast against (B, d) data: use "
                    "sdelab.append_dims(coef, x.ndim) (or coef[:, None]).")
        raise WrongAnswer(f"calling {name} raised {type(e).__name__}: {e}.{hint}") from e


def expect_callable(fn, *, name: str) -> None:
    """Check that an answer that should be a function is one."""
    expect(callable(fn), f"{name} should be a function (def ... or lambda), got {type(fn).__name__}")
