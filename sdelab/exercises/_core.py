"""The building blocks of the exercise checkers: targeted messages instead of bare asserts.

A checker converts the student's answer with one of the `as_*` / `expect_*` helpers (each raises `WrongAnswer`
with a message naming the answer when it has the wrong type, shape or size), compares it with the reference
(`allclose`, `sympy_equal`), and, when it is wrong, goes through its table of typical mistakes with
`reject_mistakes` so that the message can say *which* mistake it is.
"""
from __future__ import annotations

import ast
import contextlib
import math
import os
import signal
import threading

import numpy as np
import torch

CHECK_SECONDS = float(os.environ.get("SDELAB_CHECK_SECONDS", "120"))
"""How long a student's function may run inside a checker (`$SDELAB_CHECK_SECONDS`, default 120 s)."""


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


# ---------------------------------------------------------------- converting answers
def _floats(value, message: str) -> np.ndarray:
    """`value` (not a tensor) as a float64 array, or `WrongAnswer(message + ", got <type>")`."""
    if value is not None:  # np.asarray(None, dtype=float) would be NaN
        try:
            return np.asarray(value, dtype=float)
        except (TypeError, ValueError):
            pass
    hint = " (a missing return statement?)" if value is None else ""
    raise WrongAnswer(f"{message}, got {type(value).__name__}{hint}")


def as_array(value, name: str) -> np.ndarray:
    """A numeric answer (number, list, NumPy array or tensor) as a float64 NumPy array.

    Raises `WrongAnswer` ("`name` should be a number or an array of numbers, got ...") for anything else.
    """
    if torch.is_tensor(value):
        return value.detach().to("cpu", torch.float64).numpy()
    return _floats(value, f"{name} should be a number or an array of numbers")


def as_tensor64(value, name: str) -> torch.Tensor:
    """What the student's function `name` returned, as a detached float64 CPU tensor.

    Tensors, NumPy arrays, lists and numbers are accepted; anything else raises `WrongAnswer` ("`name` should return
    a torch tensor (or an array), got ..."), so `name` should name the function or the call, e.g. `"fn(x, t)"`.
    """
    if torch.is_tensor(value):
        return value.detach().to("cpu", torch.float64)
    return torch.as_tensor(_floats(value, f"{name} should return a torch tensor (or an array)"))


def allclose(a, b, *, rtol: float = 1e-6, atol: float = 1e-10) -> bool:
    """`numpy.allclose` for answers: tensors and arrays alike, compared in float64, and False when the shapes
    differ (no broadcasting, so a `(B, 1)` answer never matches a `(B,)` reference by accident)."""
    a, b = as_array(a, "the answer"), as_array(b, "the reference")
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=rtol, atol=atol))


# ---------------------------------------------------------------- checking answers
def expect_number(value, *, name: str) -> float:
    """Check that an answer is a single number (a float, a 0-d or one-element array or tensor); return it."""
    arr = as_array(value, name)
    expect(arr.size == 1, f"{name} should be one number, got an array of shape {arr.shape}")
    return float(arr.reshape(()))


def expect_close(value, expected: float, *, name: str, rtol: float = 1e-2, atol: float = 0.0,
                 hint: str = "") -> float:
    """Check a scalar answer; the message names the value, the expected one and a hint."""
    v = expect_number(value, name=name)
    expect(math.isfinite(v), f"{name} is {v}: it must be a finite number. {hint}".strip())
    ok = abs(v - expected) <= atol + rtol * abs(expected)
    expect(ok, f"{name} = {v:.6g}, but it should be about {expected:.6g}. {hint}".strip())
    return v


def expect_array(value, *, name: str, shape: tuple | None = None, finite: bool = True) -> np.ndarray:
    """Check an array answer's type, shape and finiteness; return it as a NumPy array."""
    arr = as_array(value, name)
    if shape is not None:
        expect(arr.shape == tuple(shape), f"{name} should have shape {tuple(shape)}, got {arr.shape}")
    if finite:
        expect(np.isfinite(arr).all(), f"{name} contains NaN or inf values")
    return arr


def expect_tensor(value, *, name: str, shape: tuple, nan_hint: str = "") -> torch.Tensor:
    """Check that an answer is a torch tensor (a NumPy array is converted) of the given shape without NaN or inf;
    return it unchanged otherwise. `nan_hint` is added to the message about non-finite values."""
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(value)
    expect(torch.is_tensor(value), f"{name} should be a torch tensor, got {type(value).__name__}")
    expect(tuple(value.shape) == tuple(shape), f"{name} should have shape {tuple(shape)}, got {tuple(value.shape)}")
    expect(bool(torch.isfinite(value).all()), f"{name} contains NaN or inf values. {nan_hint}".strip())
    return value


def expect_callable(fn, *, name: str) -> None:
    """Check that an answer that should be a function is one."""
    expect(callable(fn), f"{name} should be a function (def ... or lambda), got {type(fn).__name__}")


class _OutOfTime(BaseException):  # not an Exception, so a student's `except Exception` cannot swallow it
    pass


def _raise_out_of_time(signum, frame):
    raise _OutOfTime


@contextlib.contextmanager
def student_code(name: str, seconds: float | None = None):
    """Run the student's code inside: stop it after `seconds` (default `CHECK_SECONDS`; POSIX main thread only) with
    a `WrongAnswer` that says so, and give back torch's global state afterwards -- the default dtype, the grad mode,
    and the random state if the code reseeded it -- so a check never changes the notebook it runs in."""
    seconds = CHECK_SECONDS if seconds is None else float(seconds)
    dtype, grad, seed, rng = torch.get_default_dtype(), torch.is_grad_enabled(), torch.initial_seed(), torch.get_rng_state()
    timed = (seconds > 0 and hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
             and signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, signal.SIG_IGN, None))
    if timed:
        old = signal.signal(signal.SIGALRM, _raise_out_of_time)
        signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    except _OutOfTime:
        raise WrongAnswer(f"{name} did not finish within {seconds:g} s, so the check stopped it (an endless loop? "
                          "a loop over far too many steps?)") from None
    finally:
        if timed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
        torch.set_default_dtype(dtype)
        torch.set_grad_enabled(grad)
        if torch.initial_seed() != seed:  # the student reseeded: put the notebook's random stream back
            torch.manual_seed(seed)
            torch.set_rng_state(rng)


def call_answer(fn, *args, name: str, **kwargs):
    """Call the student's `fn(*args, **kwargs)` under `student_code` (time limit, torch state given back); turn an
    exception it raises into a `WrongAnswer` that quotes it."""
    try:
        with student_code(name):
            return fn(*args, **kwargs)
    except WrongAnswer:
        raise
    except Exception as e:  # the student's code raised: say so, with the error and a hint for shape errors
        hint = ""
        if "size of tensor" in str(e) or "must match" in str(e) or "broadcast" in str(e):
            hint = (" A (B,) tensor of per-sample coefficients does not broadcast against (B, d) data: use "
                    "sdelab.append_dims(coef, x.ndim) (or coef[:, None]).")
        raise WrongAnswer(f"calling {name} raised {type(e).__name__}: {e}.{hint}") from e


def reject_mistakes(got, mistakes, *, same, prefix: str = "") -> None:
    """Go through a checker's table of typical mistakes.

    Args:
        got: the student's answer.
        mistakes: `(candidate, message)` pairs: what a typical wrong answer gives, and what to tell the student.
        same: `same(got, candidate) -> bool`, true when the answer equals the candidate (e.g. `allclose`).
        prefix: put before the message, e.g. the test case that failed.

    Raises:
        WrongAnswer: `prefix + message` of the first candidate that `got` equals.
    """
    for candidate, message in mistakes:
        expect(not same(got, candidate), prefix + message)


# ---------------------------------------------------------------- symbolic answers
_SAFE_NODES = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Call, ast.Name, ast.Load, ast.Constant, ast.operator,
               ast.unaryop, ast.Tuple)


def _constant_only(node) -> bool:
    return not any(isinstance(n, ast.Name) for n in ast.walk(node))


def check_expression_string(text: str, name: str) -> None:
    """Refuse a string answer that is more than a formula, before sympy evaluates it (`sympify` runs Python):
    only numbers, names, arithmetic and calls of plain names are allowed -- no attributes, indexing, lambdas,
    dunder names or numbers big enough to hang the parser (`9**9**9`)."""
    if len(text) > 2000:
        raise WrongAnswer(f"{name} is a string of {len(text)} characters; a formula should be shorter")
    try:
        tree = ast.parse(text.replace("^", "**").strip(), mode="eval")
    except SyntaxError as e:
        raise WrongAnswer(f"{name} should be a sympy expression (or a formula sympy can read): {e.msg}") from None
    for node in ast.walk(tree):
        bad = not isinstance(node, _SAFE_NODES)
        bad = bad or (isinstance(node, ast.Name) and node.id.startswith("_"))
        bad = bad or (isinstance(node, ast.Call) and (not isinstance(node.func, ast.Name) or node.keywords))
        bad = bad or (isinstance(node, ast.Constant) and not isinstance(node.value, (int, float, complex)))
        bad = bad or (isinstance(node, ast.Constant) and isinstance(node.value, int) and abs(node.value) > 10**30)
        huge_power = (isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow) and _constant_only(node.right)
                      and any(isinstance(n, ast.BinOp) and isinstance(n.op, ast.Pow) or
                              isinstance(n, ast.Constant) and abs(n.value) > 1000 for n in ast.walk(node.right)))
        if bad or huge_power:
            raise WrongAnswer(f"{name} should be a formula (numbers, symbols, + - * / **, and functions such as exp, "
                              f"sqrt, log); {ast.unparse(node)!r} is not allowed in it")


def _sympify(answer, name: str, what: str, locals_: dict | None = None):
    import sympy as sp

    if isinstance(answer, sp.Order):
        answer = answer.removeO()
    if isinstance(answer, str):
        check_expression_string(answer, name)
    try:
        expr = sp.sympify(answer, locals=dict(locals_)) if isinstance(answer, str) and locals_ else sp.sympify(answer)
    except (sp.SympifyError, TypeError, SyntaxError) as e:
        raise WrongAnswer(f"{name} should be {what} (or a string sympy can parse): {e}") from None
    expect(isinstance(expr, sp.Expr), f"{name} should be {what}, got {type(answer).__name__}")
    return expr.removeO() if expr.has(sp.Order) else expr


def parse_sympy(answer, symbols: dict, *, name: str, hint: str = "") -> "sympy.Expr":
    """A symbolic answer (a sympy expression, or a string sympy can parse) in the checker's own symbols.

    The student's symbols are matched by name, so `sympy.Symbol("beta")` and `sympy.Symbol("beta", positive=True)`
    both become `symbols["beta"]`; an `O(...)` term is dropped. A symbol that is not in `symbols` raises
    `WrongAnswer` naming it, followed by `hint`.
    """
    expr = _sympify(answer, name, "a sympy expression", symbols)
    unknown = sorted(s.name for s in expr.free_symbols if s.name not in symbols)
    expect(not unknown, f"{name} uses the symbols {unknown}; use only {sorted(symbols)}. {hint}".strip())
    return expr.subs({s: symbols[s.name] for s in expr.free_symbols})


def parse_sympy_in(answer, symbol, *, name: str, hint: str = "") -> "sympy.Expr":
    """A symbolic answer in one variable, whatever the student named it, as an expression in `symbol`.

    `answer` is a sympy expression (or string) with at most one free symbol, or a function that builds one from a
    sympy symbol (`lambda t: sympy.exp(t)`). More than one symbol raises `WrongAnswer`, followed by `hint`.
    """
    import sympy as sp

    if callable(answer) and not isinstance(answer, sp.Basic):
        try:
            with student_code(name):
                answer = answer(symbol)
        except WrongAnswer:
            raise
        except Exception as e:  # e.g. math.exp of a symbol
            raise WrongAnswer(f"calling {name}({symbol}) with a sympy symbol {symbol} raised {type(e).__name__}: {e}. "
                              f"Give a sympy expression in {symbol} (build it from sympy functions such as "
                              "sympy.exp, not math.exp or torch.exp).") from e
    expr = _sympify(answer, name, f"a sympy expression in {symbol}")
    free = sorted(expr.free_symbols, key=str)
    expect(len(free) <= 1, f"{name} should depend on {symbol} only, but it contains the symbols {free}. {hint}".strip())
    return expr.subs(free[0], symbol) if free else expr


def sympy_equal(expr, target) -> bool:
    """True when `expr - target` simplifies to 0."""
    import sympy as sp

    return sp.simplify(sp.expand(expr - target)) == 0


def as_numeric_function(answer, names: tuple, *, name: str, hint: str = ""):
    """A formula given as a Python function of `names` or as a sympy expression (or string) in symbols with those
    names (matched by name, see `parse_sympy`), as a Python function of floats. A bare number raises `WrongAnswer`."""
    import sympy as sp

    args = ", ".join(names)
    if isinstance(answer, (int, float)) and not isinstance(answer, bool):
        raise WrongAnswer(f"Give a function {name}({args}) or a sympy expression in {args}, not a single number.")
    if isinstance(answer, (sp.Basic, str)):
        symbols = {n: sp.Symbol(n, positive=True) for n in names}
        expr = parse_sympy(answer, symbols, name=name, hint=hint)
        return sp.lambdify([symbols[n] for n in names], expr, "math")
    expect_callable(answer, name=name)
    return answer
