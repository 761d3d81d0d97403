r"""A 1-D Fokker–Planck solver for the density of $dx = f(x, t)\,dt + g(t)\,dw$.

The density $p(x, t)$ of $x(t)$ obeys the Fokker–Planck equation (chapter "The Fokker–Planck equation")

$$\partial_t p = -\partial_x\big(f\,p\big) + \tfrac12 g(t)^2\,\partial_x^2 p = -\partial_x J,
\qquad J = f\,p - \tfrac12 g(t)^2\,\partial_x p,$$

a conservation law for probability with current $J$. The solver is a finite-volume method of lines:

* the interval $[x_0 - h/2,\ x_{n-1} + h/2]$ is cut into $n$ cells of width $h$ centred on the grid `x`;
  `p[i]` is the density at the centre of cell $i$ (second-order accurate for the cell average);
* the current through the face between cells $i$ and $i+1$ is the central flux
  $J_{i+1/2} = f(x_{i+1/2}, t)\,\frac{p_i + p_{i+1}}{2} - \frac{g(t)^2}{2}\,\frac{p_{i+1} - p_i}{h}$
  (second order in $h$), and no probability crosses the two outer faces (zero-flux boundaries);
* $\frac{d p_i}{dt} = -(J_{i+1/2} - J_{i-1/2})/h$ is a linear, stiff ODE system $\dot p = A(t)\,p$ with a
  tridiagonal $A$ whose columns sum to zero, integrated by SciPy's implicit BDF method.

Because the fluxes telescope, the mass $h \sum_i p_i$ is conserved to round-off, whatever the time
step. The domain must be wide enough that the true density is negligible at its edges.
The central flux stays non-oscillatory while the cell Péclet number $|f|\,h / (g^2/2)$ is below 2.
"""
from __future__ import annotations

import warnings
from typing import Callable

import numpy as np
import scipy.sparse as sps
import torch
from scipy.integrate import solve_ivp

__all__ = ["solve", "cell_grid", "mass", "l1_distance", "current", "gaussian_mixture_pdf", "sde_coefficients"]

Drift = Callable[[np.ndarray, float], np.ndarray]


def cell_grid(lo: float, hi: float, n: int) -> np.ndarray:
    """Centres of `n` equal cells that tile `[lo, hi]`, the grid `solve` expects (cell width `(hi - lo)/n`)."""
    n = int(n)
    if n < 3:
        raise ValueError(f"n must be an integer >= 3 (number of cells), got {n}")
    if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo):
        raise ValueError(f"need finite lo < hi, got lo={lo!r}, hi={hi!r}")
    h = (hi - lo) / n
    return lo + h * (np.arange(n) + 0.5)


def _spacing(x) -> float:
    x = _real("x", x)
    if x.ndim != 1 or x.size < 3:
        raise ValueError(f"x must be a 1-D grid of at least 3 points, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("x contains non-finite values; the grid must be finite")
    d = np.diff(x)
    h = float(d.mean())
    if h <= 0 or np.abs(d - h).max() > 1e-9 * max(1.0, np.abs(x).max()):
        raise ValueError("x must be uniform and strictly increasing (equal spacing); "
                         "build it with cell_grid(lo, hi, n)")
    return h


def mass(p, x) -> np.ndarray:
    r"""Total probability $h \sum_i p_i$ (midpoint rule); `p` is `(n,)` or `(k, n)`, returns a scalar or `(k,)`."""
    return np.asarray(p, dtype=float).sum(-1) * _spacing(x)


def l1_distance(p, q, x) -> np.ndarray:
    r"""$\int |p - q|\,dx \approx h \sum_i |p_i - q_i|$ over the grid (twice the total-variation distance)."""
    return np.abs(np.asarray(p, dtype=float) - np.asarray(q, dtype=float)).sum(-1) * _spacing(x)


def gaussian_mixture_pdf(x, weights, means, stds) -> np.ndarray:
    r"""$\sum_k w_k\,\mathcal N(x; \mu_k, s_k^2)$ evaluated at the points `x` (any shape)."""
    x = np.asarray(x, dtype=float)[..., None]
    w, mu, s = (np.asarray(v, dtype=float).reshape(-1) for v in (weights, means, stds))
    if not (w.shape == mu.shape == s.shape) or w.size == 0:
        raise ValueError("weights, means and stds must have the same non-zero length, "
                         f"got {w.size}, {mu.size}, {s.size}")
    if (w < 0).any() or not np.isclose(w.sum(), 1.0) or (s <= 0).any():
        raise ValueError("weights must be >= 0 and sum to 1, and stds must be > 0")
    return (w * np.exp(-0.5 * ((x - mu) / s) ** 2) / (s * np.sqrt(2 * np.pi))).sum(-1)


def sde_coefficients(sde) -> tuple[Drift, Callable[[float], float]]:
    r"""NumPy callables `f(x, t)`, `g(t)` for an `sdelab.sde.SDE` (drift $a(t)\,x$, diffusion $g(t)$), for `solve`."""
    import torch

    def f(x, t):
        return float(sde.drift_coeff(torch.tensor(float(t), dtype=torch.float64))) * np.asarray(x, dtype=float)

    def g(t):
        return float(sde.diffusion(torch.tensor(float(t), dtype=torch.float64)))

    return f, g


def _real(name: str, v) -> np.ndarray:
    """`v` as a float array; `ValueError` naming `name` for None, complex or non-numeric values (NumPy would turn
    None into NaN and drop an imaginary part silently)."""
    if v is None or np.iscomplexobj(v) or (torch.is_tensor(v) and v.is_complex()):
        raise ValueError(f"{name} must be real numbers, got {'None' if v is None else 'complex values'}")
    try:
        return np.asarray(v.detach().cpu() if torch.is_tensor(v) else v, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be real numbers, got {type(v).__name__}") from None


def _coefficients(f: Drift, g, xf: np.ndarray, t: float) -> tuple[np.ndarray, float]:
    fv = _real("f(x, t)", f(xf, t))
    if fv.shape == ():
        fv = np.full_like(xf, float(fv))
    if fv.shape != xf.shape:
        raise ValueError(f"f(x, t) must return an array of the shape of x, {xf.shape}, got {fv.shape}")
    gv = _real("g(t)", g(t) if callable(g) else g)
    if gv.size != 1:
        raise ValueError(f"g(t) must be one number (it may not depend on x), got shape {gv.shape}")
    gv = float(gv.reshape(()))
    if not (np.isfinite(fv).all() and np.isfinite(gv)):
        raise ValueError(f"f and g must be finite; at t = {t:g} they are not")
    if gv < 0:
        raise ValueError(f"g(t) must be >= 0, got g({t:g}) = {gv:g}")
    return fv, gv


def _face_weights(f: Drift, g, x: np.ndarray, h: float, t: float) -> tuple[np.ndarray, np.ndarray]:
    """`a, b` with the interior-face current J_{i+1/2} = a_i p_i + b_i p_{i+1}, `(n - 1,)` each."""
    fv, gv = _coefficients(f, g, 0.5 * (x[1:] + x[:-1]), t)
    D = 0.5 * gv**2
    return 0.5 * fv + D / h, 0.5 * fv - D / h


def _operator(f: Drift, g, x: np.ndarray, h: float, t: float) -> sps.csr_matrix:
    """The tridiagonal matrix A(t) of dp/dt = A p (columns sum to zero: mass is conserved)."""
    a, b = _face_weights(f, g, x, h, t)
    n = x.size
    diag = np.zeros(n)
    diag[:-1] -= a
    diag[1:] += b
    return sps.diags([a / h, diag / h, -b / h], [-1, 0, 1], shape=(n, n), format="csr")


def current(p, x, f: Drift, g, t: float) -> tuple[np.ndarray, np.ndarray]:
    r"""The probability current $J = f p - \tfrac12 g^2 \partial_x p$ at the interior cell faces.

    Args:
        p: density on the grid, `(n,)`.
        x: the uniform grid, `(n,)`.
        f, g, t: drift `f(x, t)`, diffusion `g(t)` (or a number), and the time.
    Returns:
        `(faces, J)`, both `(n - 1,)`. The effective velocity $J / p = f - \tfrac12 g^2 \partial_x \log p$ is the
        probability-flow ODE's drift.
    """
    h = _spacing(x)
    x = np.asarray(x, dtype=float)
    p = _real("p", p)
    if p.shape != x.shape:
        raise ValueError(f"p must have the shape of x, {x.shape}, got {p.shape}")
    xf = 0.5 * (x[1:] + x[:-1])
    fv, gv = _coefficients(f, g, xf, t)
    return xf, fv * 0.5 * (p[1:] + p[:-1]) - 0.5 * gv**2 * np.diff(p) / h


def solve(f: Drift, g, p0, x, ts, *, method: str = "BDF", rtol: float = 1e-8, atol: float = 1e-12,
          mass_tol: float = 1e-3) -> np.ndarray:
    r"""Evolve a density by $\partial_t p = -\partial_x(f p) + \tfrac12 g(t)^2 \partial_x^2 p$, zero-flux boundaries.

    Args:
        f: drift, `f(x, t)` with `x` a NumPy array of points, returning an array of the same shape.
        g: diffusion coefficient, a function of `t` or a number ($g \ge 0$; it may not depend on $x$).
        p0: the density at time `ts[0]` on the grid, `(n,)`: non-negative, finite, $h\sum p_0 \approx 1$.
        x: uniform grid of cell centres, `(n,)` (see `cell_grid`); the boundaries lie half a cell outside.
        ts: strictly increasing times, `(k,)`; `ts[0]` is the time of `p0`.
        method: a stiff `scipy.integrate.solve_ivp` method ("BDF", "Radau" or "LSODA").
        rtol, atol: tolerances of the time integrator.
        mass_tol: allowed $|h\sum p_0 - 1|$.
    Returns:
        Densities at the times `ts`, `(k, n)`; row 0 is `p0`.
    Raises:
        ValueError: for a non-uniform grid, a `p0` that is not a probability density on it, times that do
            not increase, or non-finite / negative coefficients.
    Warns:
        RuntimeWarning: when the cell Péclet number exceeds 2 at the first or last time (refine the grid).
    """
    h = _spacing(x)
    x = np.asarray(x, dtype=float)
    p0 = _real("p0", p0)
    if p0.shape != x.shape:
        raise ValueError(f"p0 must have the shape of x, {x.shape}, got {p0.shape}")
    if not np.isfinite(p0).all():
        raise ValueError("p0 contains non-finite values (NaN or inf)")
    if p0.min() < 0:
        raise ValueError(f"p0 must be a density: non-negative, but its minimum is {p0.min():.3g}")
    m0 = float(p0.sum() * h)
    if abs(m0 - 1) > mass_tol:
        raise ValueError(f"p0 must integrate to 1 on the grid (h * sum(p0) = {m0:.6g}); normalise it with "
                         f"p0 / (p0.sum() * h), or widen the grid if the density is cut off at the edges")
    ts = np.atleast_1d(np.asarray(ts, dtype=float))
    if ts.ndim != 1 or ts.size == 0 or not np.isfinite(ts).all():
        raise ValueError(f"ts must be a non-empty 1-D array of finite times, got {ts!r}")
    if ts.size > 1 and not (np.diff(ts) > 0).all():
        raise ValueError(f"ts must be strictly increasing, got {ts[:6].tolist()}...")
    if method not in ("BDF", "Radau", "LSODA"):
        raise ValueError(f"method must be a stiff solver, 'BDF', 'Radau' or 'LSODA', got {method!r}")
    for t_check in (ts[0], ts[-1]):  # validate f and g with a clear message; warn where the central flux may oscillate
        fv, gv = _coefficients(f, g, 0.5 * (x[1:] + x[:-1]), float(t_check))
        peclet = np.abs(fv).max() * h / max(0.5 * gv**2, 1e-300)
        if peclet > 2:
            warnings.warn(f"cell Peclet number |f| h / (g^2/2) = {peclet:.3g} > 2 at t = {t_check:g}: the central flux "
                          "may oscillate; use more cells (smaller h)", RuntimeWarning, stacklevel=2)
    if ts.size == 1:
        return p0[None].copy()

    def rhs(t, p):  # -(J_{i+1/2} - J_{i-1/2}) / h with J = 0 on the two outer faces
        a, b = _face_weights(f, g, x, h, t)
        J = np.concatenate(([0.0], a * p[:-1] + b * p[1:], [0.0]))
        return -np.diff(J) / h

    def jac(t, p):
        A = _operator(f, g, x, h, t)
        return A.toarray() if method == "LSODA" else A

    sol = solve_ivp(rhs, (ts[0], ts[-1]), p0, method=method, t_eval=ts, jac=jac, rtol=rtol, atol=atol)
    if not sol.success:  # pragma: no cover - BDF on a linear problem does not fail in practice
        raise RuntimeError(f"the time integrator failed: {sol.message}")
    return sol.y.T.copy()
