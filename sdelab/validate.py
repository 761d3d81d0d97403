"""Checks of what a caller hands the maths API: sample tensors and what a model or score function returns.

One place, so every module says the same thing. The rules:

* a sample tensor must be a real tensor; a NumPy array is converted with `torch.as_tensor` and an integer tensor to
  the default float dtype (both safe, documented conversions); complex, bool, None and other types raise
  `ValueError` naming the argument;
* a batch must hold at least one sample (an empty batch raises, since no statistic or score of it means anything);
* a function's output must be a tensor of the expected shape (`None`, a tuple or a silently broadcast shape raise).
"""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["as_samples", "check_output"]


def as_samples(name: str, x, *, min_ndim: int = 1, dtype: torch.dtype | None = None) -> torch.Tensor:
    """`x` as a real floating tensor with a non-empty batch dim, or `ValueError` naming `name`.

    Args:
        name: the argument's name, for the message.
        x: a tensor `(B, ...)`, or a NumPy array (converted).
        min_ndim: fewest dims allowed (1: a batch of scalars; 2: `(B, d)` and up).
        dtype: the float dtype integer input is converted to (default: torch's default dtype).
    """
    if isinstance(x, np.ndarray):
        x = torch.as_tensor(x)
    if not torch.is_tensor(x):
        raise ValueError(f"{name} must be a torch tensor of shape (B, ...), got {type(x).__name__}")
    if x.is_complex() or x.dtype == torch.bool:
        raise ValueError(f"{name} must be a real tensor (float, or integers that are converted), got {x.dtype}")
    if not x.is_floating_point():
        x = x.to(dtype or torch.get_default_dtype())
    if x.ndim < min_ndim:
        dims = "(B,)" if min_ndim <= 1 else "(B, " + ", ".join(["..."] * (min_ndim - 1)) + ")"
        raise ValueError(f"{name} must have at least {min_ndim} dim(s), {dims}, got shape {tuple(x.shape)}")
    if x.shape[0] < 1:
        raise ValueError(f"{name} must hold at least one sample (batch size B >= 1), got shape {tuple(x.shape)}")
    return x


def check_output(name: str, out, shape) -> torch.Tensor:
    """`out` if it is a real floating tensor of exactly `shape`, else `ValueError` naming the function `name`."""
    shape = tuple(shape)
    if not torch.is_tensor(out):
        raise ValueError(f"{name} must return a tensor of shape {shape}, got {type(out).__name__}")
    if tuple(out.shape) != shape:
        raise ValueError(f"{name} must return a tensor of shape {shape} (the shape of its input), "
                         f"got {tuple(out.shape)}")
    if not out.is_floating_point():
        raise ValueError(f"{name} must return a real floating tensor, got {out.dtype}")
    return out
