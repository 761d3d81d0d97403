r"""Brownian motion, a generic Euler–Maruyama solver and convergence-order helpers (chapter "SDE basics").

Shapes: a time grid `ts` has shape `(N + 1,)` and increases strictly (forward time). A path of a
batch of `B` states of shape `(B, *S)` has shape `(N + 1, B, *S)`: time first, then the batch, so
`path[k]` is the batch at time `ts[k]`. Brownian increments over the grid have shape `(N, B, *S)`.

Randomness is explicit: every function that draws noise takes `generator`, draws on the CPU in the
requested dtype and moves the result to `device`, so a seed gives the same numbers on every device.
Coarse and fine simulations can be driven by the *same* Brownian path: sum fine increments with
`coarsen`, or split coarse ones consistently with `refine` (a Brownian bridge).
"""
from __future__ import annotations

import math
import numbers
from typing import Callable, Sequence

import numpy as np
import torch

from .utils import append_dims, as_time, check_finite
from .validate import as_samples

__all__ = [
    "check_increasing_grid", "brownian_increments", "brownian_path", "path_from_increments",
    "euler_maruyama", "refine_grid", "coarsen", "refine", "strong_error", "weak_error", "convergence_order",
]

Coeff = Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | float


def check_increasing_grid(ts, *, name: str = "ts", dtype: torch.dtype | None = None) -> torch.Tensor:
    """Validate a forward time grid: 1-D, at least two times, finite, strictly increasing, `ts[0] >= 0`.

    Returns the grid as a float tensor (in `dtype` when given, so a Python list keeps float64 precision).
    """
    ts = torch.as_tensor(ts, dtype=dtype) if dtype is not None and not torch.is_tensor(ts) else as_time(ts)
    if ts.ndim != 1 or ts.numel() < 2:
        raise ValueError(f"{name} must be a 1-D grid with at least two times, got shape {tuple(ts.shape)}")
    check_finite(name, ts)
    if not (ts[1:] > ts[:-1]).all():
        raise ValueError(f"{name} must be strictly increasing (forward time), got {ts.tolist()[:6]}...")
    if ts[0] < 0:
        raise ValueError(f"{name} must start at a time >= 0 (Brownian motion starts at w(0) = 0), got {ts[0].item():g}")
    return ts


def _check_n_paths(n_paths) -> int:
    if isinstance(n_paths, bool) or int(n_paths) != n_paths or int(n_paths) < 1:
        raise ValueError(f"n_paths must be an integer >= 1, got {n_paths!r}")
    return int(n_paths)


def _shape(n_paths, dim) -> tuple[int, ...]:
    n = _check_n_paths(n_paths)
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    if any(isinstance(d, bool) or int(d) != d or int(d) < 1 for d in dims):
        raise ValueError(f"dim must be an integer >= 1 or a tuple of them, got {dim!r}")
    return (n, *map(int, dims))


def brownian_increments(ts, n_paths: int, dim: int | Sequence[int] = 1, *, generator: torch.Generator | None = None,
                        dtype: torch.dtype | None = None, device=None) -> torch.Tensor:
    r"""Independent increments $\Delta w_k = w(t_{k+1}) - w(t_k) \sim \mathcal N(0, (t_{k+1} - t_k) I)$.

    Args:
        ts: strictly increasing grid, shape `(N + 1,)`.
        n_paths: number of independent paths `B >= 1`.
        dim: dimension `d` of $w(t) \in \mathbb R^d$ (or a tuple, e.g. `(1, 28, 28)` for images).
        generator: CPU `torch.Generator` for reproducibility.
    Returns:
        Tensor of shape `(N, B, *dim)`; `dw[k]` is the increment over `[ts[k], ts[k+1]]`.
    """
    ts = check_increasing_grid(ts, dtype=dtype)
    dtype = dtype or ts.dtype
    shape = _shape(n_paths, dim)
    dt = torch.diff(ts).to(dtype)
    z = torch.randn((dt.numel(), *shape), generator=generator, dtype=dtype)
    dw = append_dims(dt.sqrt(), z.ndim) * z
    return dw.to(device) if device is not None else dw


def path_from_increments(dw: torch.Tensor, w0: torch.Tensor | float = 0.0) -> torch.Tensor:
    r"""Cumulative sum of increments: $w(t_k) = w_0 + \sum_{j<k} \Delta w_j$. `(N, B, ...)` -> `(N + 1, B, ...)`."""
    start = torch.zeros_like(dw[:1]) + w0
    return torch.cat([start, start + torch.cumsum(dw, 0)], 0)


def brownian_path(ts, n_paths: int, dim: int | Sequence[int] = 1, *, generator: torch.Generator | None = None,
                  dtype: torch.dtype | None = None, device=None) -> torch.Tensor:
    r"""Standard Brownian motion $w(t) \in \mathbb R^d$ sampled exactly on the grid `ts`.

    $w(0) = 0$; if `ts[0] > 0` the first value is drawn from $\mathcal N(0, t_0 I)$, so the result
    is Brownian motion observed at `ts` whatever the first time.

    Returns:
        Tensor of shape `(N + 1, B, *dim)` with `w[k]` $= w(t_k)$.
    """
    ts = check_increasing_grid(ts, dtype=dtype)
    dtype = dtype or ts.dtype
    dw = brownian_increments(ts, n_paths, dim, generator=generator, dtype=dtype)
    w0 = 0.0
    if ts[0] > 0:
        w0 = math.sqrt(ts[0].item()) * torch.randn(dw.shape[1:], generator=generator, dtype=dtype)
    w = path_from_increments(dw, w0)
    return w.to(device) if device is not None else w


def _coeff(c: Coeff, x: torch.Tensor, t: torch.Tensor, name: str = "f") -> torch.Tensor | float:
    """Evaluate a drift/diffusion coefficient; a tensor of shape `(B,)` is broadcast per sample. Anything else than a
    real number or a real tensor that broadcasts to `x`'s shape (without changing it) raises `ValueError`."""
    v = c(x, t) if callable(c) else c
    if isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)):
        return v
    if not torch.is_tensor(v) or v.is_complex() or v.dtype == torch.bool:
        raise ValueError(f"{name} must give a real number or a tensor broadcastable to x {tuple(x.shape)}, got "
                         f"{type(v).__name__ if not torch.is_tensor(v) else v.dtype}")
    if v.ndim == 1 and x.ndim > 1 and v.shape[0] == x.shape[0]:
        v = append_dims(v, x.ndim)
    try:
        ok = torch.broadcast_shapes(v.shape, x.shape) == x.shape
    except RuntimeError:
        ok = False
    if not ok:
        raise ValueError(f"{name} must give a real number or a tensor broadcastable to x {tuple(x.shape)}, got "
                         f"shape {tuple(v.shape)}")
    return v


def euler_maruyama(f: Coeff, g: Coeff, x0: torch.Tensor, ts, *, generator: torch.Generator | None = None,
                   dw: torch.Tensor | None = None, return_path: bool = True,
                   callback: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None) -> torch.Tensor:
    r"""Euler–Maruyama for the Itô SDE $dx = f(x, t)\,dt + g(x, t)\,dw$ forward in time.

    $x_{k+1} = x_k + f(x_k, t_k)\,\Delta t_k + g(x_k, t_k)\,\Delta w_k$, with
    $\Delta w_k \sim \mathcal N(0, \Delta t_k I)$ (drawn here, or given as `dw`). Strong order 1/2 in
    general, 1 when $g$ does not depend on $x$ (additive noise); weak order 1 (chapter "SDE basics").

    Args:
        f: drift `f(x, t)` (or a number): `x` has shape `(B, *S)`, `t` is a 0-dim tensor (every sample
            shares the grid time); returns something broadcastable to `x` (a `(B,)` tensor is
            broadcast per sample).
        g: diffusion `g(x, t)` (or a number), same conventions; elementwise (diagonal) noise, so
            geometric Brownian motion is `g = lambda x, t: s * x`.
        x0: initial states, shape `(B, *S)`.
        ts: strictly increasing grid `(N + 1,)`.
        generator: CPU generator for the increments (ignored when `dw` is given).
        dw: precomputed Brownian increments `(N, B, *S)`, e.g. from `brownian_increments`, to compare
            with an exact solution driven by the same path.
        return_path: return the whole path `(N + 1, B, *S)` (default) or only the final state `(B, *S)`.
        callback: called as `callback(k, t_k, x_k)` after each step (`k = 1..N`).
    """
    if not torch.is_tensor(x0) or x0.ndim < 1:
        raise ValueError(f"x0 must be a tensor of shape (B, ...) with a batch dimension, got {type(x0).__name__}"
                         + (f" of shape {tuple(x0.shape)}" if torch.is_tensor(x0) else ""))
    x0 = as_samples("x0", x0)  # integers converted; complex, bool and an empty batch raise
    check_finite("x0", x0)
    dtype = x0.dtype
    ts = check_increasing_grid(ts, dtype=dtype)
    n = ts.numel() - 1
    x = x0.to(dtype)
    if dw is None:
        dw = torch.randn((n, *x.shape), generator=generator, dtype=dtype)
        dw = append_dims(torch.diff(ts).to(dtype).sqrt(), dw.ndim) * dw
    elif tuple(dw.shape) != (n, *x.shape):
        raise ValueError(f"dw must have shape (len(ts) - 1, *x0.shape) = {(n, *x.shape)}, got {tuple(dw.shape)}")
    dw = dw.to(device=x.device, dtype=dtype)
    ts_x = ts.to(device=x.device, dtype=dtype)
    out = [x] if return_path else None
    for k in range(n):
        t, dt = ts_x[k], ts_x[k + 1] - ts_x[k]
        x = x + _coeff(f, x, t, "f") * dt + _coeff(g, x, t, "g") * dw[k]
        if return_path:
            out.append(x)
        if callback is not None:
            callback(k + 1, ts_x[k + 1], x)
    return torch.stack(out, 0) if return_path else x


def refine_grid(ts, factor: int) -> torch.Tensor:
    """Insert `factor - 1` equally spaced times in every interval of `ts`: `(N + 1,)` -> `(factor * N + 1,)`."""
    ts = check_increasing_grid(ts)
    factor = _check_factor(factor)
    frac = torch.arange(factor, dtype=ts.dtype) / factor
    inner = (ts[:-1, None] + frac * torch.diff(ts)[:, None]).reshape(-1)
    return torch.cat([inner, ts[-1:]])


def _check_factor(factor) -> int:
    if isinstance(factor, bool) or int(factor) != factor or int(factor) < 1:
        raise ValueError(f"factor must be an integer >= 1, got {factor!r}")
    return int(factor)


def coarsen(dw: torch.Tensor, factor: int) -> torch.Tensor:
    r"""Sum consecutive blocks of `factor` increments: the same Brownian path on a grid `factor` times coarser.

    `(N, B, ...)` -> `(N / factor, B, ...)`; `N` must be divisible by `factor`. The matching grid is `ts[::factor]`.
    """
    factor = _check_factor(factor)
    if dw.ndim < 1 or dw.shape[0] % factor:
        raise ValueError(f"the number of increments ({dw.shape[0] if dw.ndim else 0}) must be divisible by "
                         f"factor={factor}")
    return dw.reshape(dw.shape[0] // factor, factor, *dw.shape[1:]).sum(1)


def refine(ts, dw: torch.Tensor, factor: int, *, generator: torch.Generator | None = None):
    r"""Split each increment of a Brownian path into `factor` sub-increments with the exact conditional law.

    Given $\Delta w$ over an interval of length $h$, draw $z_1..z_m \sim \mathcal N(0, h/m)$ independently and
    return $z_j - (\sum_i z_i - \Delta w)/m$: these sum to $\Delta w$ and have the law of Brownian increments
    conditioned on their sum (a Brownian bridge). So a fine path consistent with a coarse one is drawn
    *after* the coarse one, and `coarsen(refined, factor)` returns `dw` up to rounding.

    Returns:
        `(ts_fine, dw_fine)` with shapes `(factor * N + 1,)` and `(factor * N, B, ...)`.
    """
    ts = check_increasing_grid(ts)
    factor = _check_factor(factor)
    n = ts.numel() - 1
    if dw.ndim < 2 or dw.shape[0] != n:
        raise ValueError(f"dw must have shape (len(ts) - 1, B, ...) = ({n}, B, ...), got {tuple(dw.shape)}")
    h = torch.diff(ts).to(dw.dtype) / factor
    z = torch.randn((n, factor, *dw.shape[1:]), generator=generator, dtype=dw.dtype).to(dw.device)
    z = append_dims(h.sqrt().to(dw.device), z.ndim) * z
    z = z - (z.sum(1, keepdim=True) - dw.unsqueeze(1)) / factor
    return refine_grid(ts, factor), z.reshape(n * factor, *dw.shape[1:])


def _flat_abs_err(x: torch.Tensor, x_ref: torch.Tensor) -> torch.Tensor:
    x, x_ref = as_samples("x", x), as_samples("x_ref", x_ref)
    if x.shape != x_ref.shape:
        raise ValueError(f"x and x_ref must have the same shape, got {tuple(x.shape)} and {tuple(x_ref.shape)}")
    if x.ndim < 1:
        raise ValueError("x must have a batch dimension (B, ...)")
    d = (x - x_ref).reshape(x.shape[0], -1)
    return d.norm(dim=1)


def strong_error(x: torch.Tensor, x_ref: torch.Tensor, *, return_stderr: bool = False):
    r"""Strong error $\mathbb E\,|x_N - x(T)|$ between a numerical and a reference solution driven by the same path.

    Args:
        x, x_ref: final states `(B, ...)`; the norm is taken over all but the batch dim.
        return_stderr: also return the Monte-Carlo standard error of the estimate.
    Returns:
        A float (or `(error, stderr)`).
    """
    e = _flat_abs_err(x, x_ref).double()
    err = e.mean().item()
    if not return_stderr:
        return err
    return err, (e.std().item() / math.sqrt(e.numel()) if e.numel() > 1 else float("nan"))


def weak_error(x: torch.Tensor, exact: float | None = None, phi: Callable[[torch.Tensor], torch.Tensor] | None = None,
               *, x_ref: torch.Tensor | None = None, return_stderr: bool = False):
    r"""Weak error $|\mathbb E\,\varphi(x_N) - \mathbb E\,\varphi(x(T))|$, estimated by Monte Carlo.

    Give exactly one of `exact` and `x_ref`:

    * `exact`: the value $\mathbb E\,\varphi(x(T))$; the error is $|\frac1B\sum_b \varphi(x_N^{(b)}) - \text{exact}|$.
    * `x_ref`: exact solutions driven by the same Brownian paths as `x`; the error is
      $|\frac1B\sum_b [\varphi(x_N^{(b)}) - \varphi(x^{(b)}(T))]|$. Both estimate the same number (the second
      uses $\mathbb E\,\varphi(x(T))$ only implicitly), but pairing cancels most of the Monte-Carlo noise: a
      control variate, needed to see errors of order $h$ beneath a noise of order $1/\sqrt B$.

    Args:
        x: final states `(B, ...)` of the numerical scheme.
        phi: test function applied per sample (default: identity, i.e. the mean); its output is summed
            over all but the batch dim.
        return_stderr: also return the Monte-Carlo standard error, the floor below which a measured
            weak error means nothing.
    """
    if x.ndim < 1 or x.shape[0] < 1:
        raise ValueError("x must have a batch dimension (B, ...) with B >= 1")
    if (exact is None) == (x_ref is None):
        raise ValueError("give exactly one of exact (the value of E phi(x(T))) and x_ref (exact solutions on the same paths)")

    def per_sample(z):
        y = phi(z) if phi is not None else z
        return y.reshape(z.shape[0], -1).sum(1).double()

    if x_ref is not None:
        if x_ref.shape != x.shape:
            raise ValueError(f"x and x_ref must have the same shape, got {tuple(x.shape)} and {tuple(x_ref.shape)}")
        y, target = per_sample(x) - per_sample(x_ref), 0.0
    else:
        y, target = per_sample(x), float(exact)
    err = abs(y.mean().item() - target)
    if not return_stderr:
        return err
    return err, (y.std().item() / math.sqrt(y.numel()) if y.numel() > 1 else float("nan"))


def convergence_order(hs, errors) -> float:
    r"""Least-squares slope $p$ of $\log e = \log C + p \log h$: errors behave like $C h^p$.

    Args:
        hs: step sizes (positive).
        errors: the matching errors (positive).
    Returns:
        The order $p$ (positive when the errors shrink with the step).
    """
    h = np.asarray(torch.as_tensor(hs).double().cpu() if torch.is_tensor(hs) else hs, dtype=float).ravel()
    e = np.asarray(torch.as_tensor(errors).double().cpu() if torch.is_tensor(errors) else errors, dtype=float).ravel()
    if h.shape != e.shape or h.size < 2:
        raise ValueError(f"hs and errors must have the same length >= 2, got {h.size} and {e.size}")
    if not (np.isfinite(h).all() and (h > 0).all()):
        raise ValueError("hs must be finite and > 0")
    if not (np.isfinite(e).all() and (e > 0).all()):
        raise ValueError("errors must be finite and > 0 (a zero error has no logarithm)")
    if np.ptp(np.log(h)) == 0:
        raise ValueError("hs must contain at least two different step sizes")
    return float(np.polyfit(np.log(h), np.log(e), 1)[0])
