"""Small helpers every module and chapter uses: broadcasting, validation, seeding, device, quick mode."""
from __future__ import annotations

import math
import os
import random

import numpy as np
import torch

__all__ = [
    "append_dims", "quick", "pick", "seed_everything", "default_device", "setup", "cache_dir", "num_threads",
    "check_finite", "check_time", "check_grid", "check_positive", "check_batch", "as_time",
]


def append_dims(v: torch.Tensor, ndim: int) -> torch.Tensor:
    """Append trailing singleton dims so a per-sample tensor of shape `(B,)` broadcasts against `(B, ...)`.

    Args:
        v: tensor of shape `(B,)` (or a scalar tensor, returned unchanged).
        ndim: number of dims of the tensor it must broadcast against.
    """
    if v.ndim > ndim:
        raise ValueError(f"append_dims: v has {v.ndim} dims, more than ndim={ndim}")
    return v.reshape(v.shape + (1,) * (ndim - v.ndim))


def quick() -> bool:
    """True when quick mode is on (`SDELAB_QUICK=1`, set by `make test` and CI)."""
    return os.environ.get("SDELAB_QUICK", "0").strip().lower() not in ("", "0", "false", "no")


def pick(full, quick_value):
    """Return `quick_value` in quick mode and `full` otherwise (training budgets, sample counts)."""
    return quick_value if quick() else full


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and torch; return a CPU `torch.Generator` seeded with `seed`."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def default_device() -> torch.device:
    """CUDA when available (or when `SDELAB_DEVICE` names a device), otherwise the CPU."""
    name = os.environ.get("SDELAB_DEVICE")
    if name:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def cache_dir(*parts: str) -> "Path":
    """`$XDG_CACHE_HOME/sdelab/<parts>` (default `~/.cache/sdelab/...`): where downloads and resumable training
    checkpoints of the notebooks live. The folder is not created here."""
    from pathlib import Path

    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "sdelab", *parts)


def num_threads() -> int:
    """The torch thread count `setup()` uses: `SDELAB_THREADS` if set, else `OMP_NUM_THREADS` if set, else half
    the usable cores, at least 1 and at most 4.

    Half the cores, because torch's OpenMP threads busy-wait: on cores shared with another job, a small model
    with one thread per core trains many times slower than with one thread (see README, "Performance").
    """
    for var in ("SDELAB_THREADS", "OMP_NUM_THREADS"):
        text = os.environ.get(var, "").strip()
        if text:
            if not text.isdigit() or int(text) < 1:
                raise ValueError(f"{var} must be a positive integer (a thread count), got {text!r}")
            return int(text)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(4, cores // 2))


def setup(seed: int = 0, *, verbose: bool = True) -> torch.Generator:
    """First call of every notebook: seed, thread count (`num_threads()`), figure style, and a line saying mode,
    device and threads."""
    from . import plot

    torch.set_num_threads(num_threads())
    plot.style()
    gen = seed_everything(seed)
    if verbose:
        mode = "quick mode" if quick() else "full mode"
        n = torch.get_num_threads()
        torch_version = torch.__version__.split("+")[0]
        print(f"sdelab {_version()} · torch {torch_version} · {default_device()} · {mode} · "
              f"{n} thread{'s' if n > 1 else ''}")
    return gen


def _version() -> str:
    from . import __version__

    return __version__


# ---------------------------------------------------------------- validation
def check_finite(name: str, x: torch.Tensor) -> None:
    """Raise `ValueError` if `x` holds NaN or inf."""
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains non-finite values (NaN or inf); all entries must be finite")


def check_positive(name: str, value: float, *, allow_zero: bool = False) -> float:
    """Return `float(value)` or raise `ValueError` unless it is finite and > 0 (>= 0 with `allow_zero`)."""
    v = float(value)
    ok = math.isfinite(v) and (v >= 0 if allow_zero else v > 0)
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
    return v


def as_time(t, like: torch.Tensor | None = None) -> torch.Tensor:
    """Convert a float, list or tensor of times to a float tensor (on `like`'s device and dtype)."""
    if not torch.is_tensor(t):
        t = torch.as_tensor(t, dtype=torch.get_default_dtype())
    if like is not None:
        t = t.to(device=like.device, dtype=like.dtype if like.is_floating_point() else t.dtype)
    elif not t.is_floating_point():
        t = t.to(torch.get_default_dtype())
    return t


def check_time(t: torch.Tensor, T: float, *, name: str = "t") -> None:
    """Raise `ValueError` unless every entry of `t` is finite and in `[0, T]`."""
    check_finite(name, t)
    if t.numel() and (t.min() < 0 or t.max() > T * (1 + 1e-6)):
        raise ValueError(
            f"{name} must lie in [0, T] = [0, {T:g}], got values in [{t.min().item():.4g}, {t.max().item():.4g}]"
        )


def check_grid(ts, T: float | None = None, *, name: str = "ts") -> torch.Tensor:
    """Validate a sampler time grid: 1-D, at least two times, finite, strictly decreasing, inside [0, T]."""
    ts = as_time(ts)
    if ts.ndim != 1 or ts.numel() < 2:
        raise ValueError(f"{name} must be a 1-D grid with at least two times, got shape {tuple(ts.shape)}")
    check_finite(name, ts)
    if not (ts[1:] < ts[:-1]).all():
        raise ValueError(f"{name} must be strictly decreasing (from T down to a small eps), got {ts.tolist()[:6]}...")
    if T is not None:
        check_time(ts, T, name=name)
    return ts


def check_batch(x: torch.Tensor, t: torch.Tensor) -> None:
    """Raise `ValueError` unless `t` is a scalar or has one entry per sample of `x`."""
    if t.ndim > 1 or (t.ndim == 1 and t.shape[0] not in (1, x.shape[0])):
        raise ValueError(
            f"t must be a scalar or have shape (B,) with B = x.shape[0] = {x.shape[0]}, got shape {tuple(t.shape)}"
        )
