r"""Samplers for the reverse-time SDE and the probability-flow ODE (chapter "Sampling").

Every sampler has one signature, `sampler(score_fn, sde, x, ts, *, generator=None, callback=None) -> x0`:

* `score_fn(x, t)` returns $\nabla_x \log p_t(x)$ for `x` of shape `(B, ...)` and `t` of shape `(B,)`;
* `x` is the starting point at `ts[0]` (usually `sde.prior_sample(...)`), shape `(B, ...)`;
* `ts` is a strictly decreasing 1-D grid from about $T$ to a small $\epsilon$ (`sde.time_grid(n)`);
* `generator` draws the noise (on the CPU, then moved to `x.device`), so a seed fixes the output;
* `callback(i, t, x)` is called after step `i` (0-based) with the time `t` (a float) just reached.

All of them integrate $dx = [a(t)x - c\,g(t)^2\nabla_x\log p_t(x)]\,dt + \lambda g(t)\,d\bar w$ with $dt < 0$:
$c = 1, \lambda = 1$ for the reverse SDE and $c = \tfrac12, \lambda = 0$ for the probability-flow ODE.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from .grids import (DEFAULT_GRID, EVALS_PER_STEP, FiniteWatch, batch_times, call_score, check_x, default_grid,
                    float_list, resolve_grid)
from .sde import SDE

__all__ = ["euler_maruyama", "predictor_corrector", "langevin_corrector", "pf_ode_euler", "pf_ode_heun",
           "pf_ode_rk45", "CountingScore", "trajectory", "SAMPLERS", "DEFAULT_GRID", "EVALS_PER_STEP", "default_grid"]

ScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Callback = Callable[[int, float, torch.Tensor], None] | None


class CountingScore:
    """Wrap a `score_fn` (or `eps_fn`) and count its calls: `.nfe`, the number of function evaluations.

    A batched call counts once, whatever the batch size. Works with every sampler. `reset()` sets it to 0.
    """

    def __init__(self, score_fn: ScoreFn):
        self.score_fn = score_fn
        self.nfe = 0

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.nfe += 1
        return self.score_fn(x, t)

    def reset(self) -> None:
        self.nfe = 0


# ---------------------------------------------------------------------- shared pieces
def _prepare(sde: SDE, x: torch.Tensor, ts, sampler: str = "euler_maruyama"):
    """Validate `x` and the grid once (an int `ts` is that many steps on `sampler`'s default grid); return the
    `n + 1` batch times `(B,)` on `x`'s device and dtype (a tuple: no indexing op per step), the CPU float64 grid
    and the grid as Python floats (the times handed to `callback`)."""
    tc = resolve_grid(sampler, sde, x, ts)
    return batch_times(tc, x).unbind(0), tc, tc.tolist()


def _score(score_fn: ScoreFn, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return call_score(score_fn, x, t.expand(x.shape[0]) if t.ndim == 0 else t)


def _drift(sde: SDE, score_fn: ScoreFn, x: torch.Tensor, t: torch.Tensor, c: float) -> torch.Tensor:
    r"""$a(t)x - c\,g(t)^2 s(x, t)$ at one grid time `t` (0-dim, already validated): the same formula as
    `sdelab.sde.reverse_drift` with $c = (1 + \lambda^2)/2$ (used by RK45 and the tests)."""
    return sde._drift_coeff(t) * x - c * sde._diffusion(t) ** 2 * _score(score_fn, x, t)


def _coefficients(sde: SDE, tc: torch.Tensor, c: float):
    r"""Python floats on the grid: $a(t_i)$, $c\,g(t_i)^2$, $g(t_i)$ and $\Delta t_i$ (float64, computed once)."""
    a, g = sde._drift_coeff(tc), sde._diffusion(tc)
    return float_list(a), float_list(c * g**2), float_list(g), float_list(tc[1:] - tc[:-1])


def _randn(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Standard normal noise shaped like `x`, drawn on the CPU with `generator`, moved to `x.device`."""
    z = torch.randn(x.shape, generator=generator, dtype=x.dtype)
    return z if x.is_cpu else z.to(x.device)


def _em_steps(sde: SDE, tc: torch.Tensor, denoise_last: bool) -> list[tuple[float, float, float | None]]:
    r"""Per Euler–Maruyama step, the Python floats $(1 + a\Delta t,\ g^2\Delta t,\ g\sqrt{-\Delta t})$; the last is
    None for a step without noise (the last one when `denoise_last`)."""
    a, cg2, g, dt = _coefficients(sde, tc, 1.0)
    steps = [(1 + a[i] * dt[i], cg2[i] * dt[i], g[i] * math.sqrt(-dt[i])) for i in range(len(dt))]
    if denoise_last:
        steps[-1] = steps[-1][:2] + (None,)
    return steps


def _em_step(score_fn, x, t, step: tuple[float, float, float | None], generator) -> torch.Tensor:
    """One Euler–Maruyama step of the reverse SDE with the coefficients of `_em_steps`."""
    keep, drift, noise = step
    x = keep * x - drift * call_score(score_fn, x, t)
    return x if noise is None else x + noise * _randn(x, generator)


# ---------------------------------------------------------------------- reverse SDE
def euler_maruyama(score_fn: ScoreFn, sde: SDE, x: torch.Tensor, ts, *, generator: torch.Generator | None = None,
                   callback: Callback = None, denoise_last: bool = False) -> torch.Tensor:
    r"""Euler–Maruyama on the reverse SDE $dx = [a x - g^2 \nabla\log p_t]\,dt + g\,d\bar w$, $dt < 0$.

    Step: $x \leftarrow x + (a x - g^2 s)\,\Delta t + g\sqrt{|\Delta t|}\,z$, noise at every step (the plain
    scheme, weak order 1). With `denoise_last=True` the last step adds no noise and returns its mean, as
    Song et al. (2021) do for images; on a coarse grid that over-sharpens the sample (the dropped noise
    $g^2|\Delta t|$ exceeds $\sigma(\epsilon)^2$), so it is off by default. Shapes: `x` `(B, ...)` in and out.
    `ts`: a decreasing grid, or an int number of steps on the default grid (`DEFAULT_GRID`).
    """
    tb, tc, tl = _prepare(sde, x, ts, "euler_maruyama")
    watch = FiniteWatch("euler_maruyama", tc)
    for i, step in enumerate(_em_steps(sde, tc, denoise_last)):
        x = watch(_em_step(score_fn, x, tb[i], step, generator))
        if callback is not None:
            callback(i, tl[i + 1], x)
    return watch.check(x)


def _langevin(score_fn: ScoreFn, x: torch.Tensor, t: torch.Tensor, snr: float, alpha: float, generator):
    r"""One Langevin corrector step $x \leftarrow x + \epsilon s + \sqrt{2\epsilon}\,z$ with Song et al.'s step size
    $\epsilon = 2\alpha\,(r\,\overline{|z|}/\overline{|s|})^2$, norms averaged over the batch. Where the score is
    zero everywhere the step size is undefined (infinite); the step is skipped there ($\epsilon = 0$)."""
    s = _score(score_fn, x, t)
    z = _randn(x, generator)
    s_norm = s.flatten(1).norm(dim=1).mean()
    z_norm = z.flatten(1).norm(dim=1).mean()
    eps = torch.nan_to_num((2 * alpha * snr**2) * (z_norm / s_norm) ** 2, posinf=0.0)  # s = 0: inf -> skip
    return x + eps * s + torch.sqrt(2 * eps) * z


def predictor_corrector(score_fn: ScoreFn, sde: SDE, x: torch.Tensor, ts, *, snr: float = 0.16,
                        n_corrector: int = 1, generator: torch.Generator | None = None,
                        callback: Callback = None, denoise_last: bool = False) -> torch.Tensor:
    r"""Predictor–corrector sampling (Song et al., 2021): at each grid time $t_i$, `n_corrector` Langevin steps
    at fixed $t_i$ (the corrector, `langevin_corrector`), then one Euler–Maruyama step to $t_{i+1}$ (the predictor).

    The order is that of Song et al.'s reference code (`pc_sampler`: corrector, then predictor), so no corrector
    step follows the last predictor step. The paper's Algorithms 2–3 put the predictor first, and Algorithm 3 (VP)
    uses the reverse-diffusion predictor instead of Euler–Maruyama.

    The Langevin step size is $\epsilon = 2\alpha_i (r\,\overline{|z|}/\overline{|s|})^2$ with $r$ = `snr` and
    $\alpha_i = \bar\alpha(t_i)/\bar\alpha(t_{i+1})$ (Algorithms 4–5), which is DDPM's $1 - \beta_i$ for VP on its
    grid and 1 for VE. Sub-VP has VP's mean coefficient and so gets VP's value; the reference code also sends
    sub-VP to VP's discrete alphas, which its sub-VP class does not define. As in the reference code, the
    batch-averaged norms make the step size depend on the whole batch; a score that is zero everywhere skips the
    corrector step. `denoise_last` as in `euler_maruyama` (Song et al. use True). Costs `(n_corrector + 1)` score
    evaluations per step. `ts`: a grid or an int number of steps on the default grid.
    """
    if not (isinstance(snr, (int, float)) and math.isfinite(snr) and snr > 0):
        raise ValueError(f"snr must be a finite number > 0, got {snr!r}")
    if isinstance(n_corrector, bool) or int(n_corrector) != n_corrector or n_corrector < 0:
        raise ValueError(f"n_corrector must be an integer >= 0, got {n_corrector!r}")
    tb, tc, tl = _prepare(sde, x, ts, "predictor_corrector")
    abar = (sde._mean_coeff(tc) ** 2).tolist()
    watch, corrector = FiniteWatch("predictor_corrector", tc), range(int(n_corrector))
    for i, step in enumerate(_em_steps(sde, tc, denoise_last)):
        alpha = abar[i] / abar[i + 1]
        for _ in corrector:
            x = _langevin(score_fn, x, tb[i], snr, alpha, generator)
        x = watch(_em_step(score_fn, x, tb[i], step, generator))
        if callback is not None:
            callback(i, tl[i + 1], x)
    return watch.check(x)


def langevin_corrector(score_fn: ScoreFn, x: torch.Tensor, t, *, snr: float = 0.16, n_steps: int = 1,
                       alpha: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
    r"""The corrector of `predictor_corrector` alone: `n_steps` Langevin steps at the fixed time `t`,
    $x \leftarrow x + \epsilon s(x, t) + \sqrt{2\epsilon}\,z$, $\epsilon = 2\alpha(r\,\overline{|z|}/\overline{|s|})^2$
    (batch-averaged norms).

    With a finite step it is biased: for Gaussian $p_t = \mathcal N(m, v)$ its stationary variance is
    $v(1 + \alpha r^2)$, not $v$ (chapter "Samplers compared"). `t`: a number in $[0, T]$ (or a 0-dim tensor);
    `x`: `(B, ...)`, returned with the same shape; `alpha` > 0 scales the step as $\alpha_i$ does in the sampler.
    """
    check_x(x)
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    if t.ndim != 0 or not torch.isfinite(t):
        raise ValueError(f"t must be a finite number (one time for the whole batch), got {t.tolist()!r}")
    for name, v in (("snr", snr), ("alpha", alpha)):
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise ValueError(f"{name} must be a finite number > 0, got {v!r}")
    if isinstance(n_steps, bool) or int(n_steps) != n_steps or n_steps < 0:
        raise ValueError(f"n_steps must be an integer >= 0, got {n_steps!r}")
    for _ in range(int(n_steps)):
        x = _langevin(score_fn, x, t, snr, alpha, generator)
    return x


# ---------------------------------------------------------------------- probability-flow ODE
def pf_ode_euler(score_fn: ScoreFn, sde: SDE, x: torch.Tensor, ts, *, generator: torch.Generator | None = None,
                 callback: Callback = None) -> torch.Tensor:
    r"""Euler's method on the probability-flow ODE $dx/dt = a x - \tfrac12 g^2\nabla\log p_t$ (global order 1).

    `generator` is accepted for the common signature and not used. One score evaluation per step.
    `ts`: a grid or an int number of steps on the default grid.
    """
    tb, tc, tl = _prepare(sde, x, ts, "pf_ode_euler")
    a, cg2, _, dt = _coefficients(sde, tc, 0.5)
    watch = FiniteWatch("pf_ode_euler", tc)
    for i in range(len(tc) - 1):
        x = watch((1 + a[i] * dt[i]) * x - (cg2[i] * dt[i]) * call_score(score_fn, x, tb[i]))
        if callback is not None:
            callback(i, tl[i + 1], x)
    return watch.check(x)


def pf_ode_heun(score_fn: ScoreFn, sde: SDE, x: torch.Tensor, ts, *, generator: torch.Generator | None = None,
                callback: Callback = None) -> torch.Tensor:
    r"""Heun's method (explicit trapezoid) on the probability-flow ODE (global order 2).

    $\tilde x = x + v(x, t)\,\Delta t$, then $x \leftarrow x + \tfrac12[v(x, t) + v(\tilde x, t + \Delta t)]\,\Delta t$.
    A step that ends exactly at $t = 0$, where the score may be singular (a network is never trained
    there), is a plain Euler step, as in Karras et al. (2022); with the usual end time $\epsilon > 0$
    every step is a Heun step. Two score evaluations per Heun step. An int `ts` is that many steps on Heun's
    default grid (`sdelab.grids.DEFAULT_GRID`), the one on which it needed the fewest evaluations.
    """
    tb, tc, tl = _prepare(sde, x, ts, "pf_ode_heun")
    a, cg2, _, dt = _coefficients(sde, tc, 0.5)
    watch = FiniteWatch("pf_ode_heun", tc)
    for i in range(len(tc) - 1):
        d1 = a[i] * x - cg2[i] * call_score(score_fn, x, tb[i])
        x_pred = x + dt[i] * d1
        if tl[i + 1] > 0:
            d2 = a[i + 1] * x_pred - cg2[i + 1] * call_score(score_fn, x_pred, tb[i + 1])
            x = x + (0.5 * dt[i]) * (d1 + d2)
        else:
            x = x_pred
        watch(x)
        if callback is not None:
            callback(i, tl[i + 1], x)
    return watch.check(x)


def pf_ode_rk45(score_fn: ScoreFn, sde: SDE, x: torch.Tensor, ts, *, rtol: float = 1e-5, atol: float = 1e-5,
                generator: torch.Generator | None = None, callback: Callback = None,
                return_info: bool = False):
    r"""Adaptive Dormand–Prince RK45 (`scipy.integrate.solve_ivp`) on the probability-flow ODE.

    Integrates from `ts[0]` to `ts[-1]` on the flattened state in float64 (the score is evaluated in
    `x`'s dtype on `x`'s device); the solution is reported at every grid time (`t_eval = ts`), which is
    where `callback` is called; the step sizes are the solver's own. `generator` is not used.

    Returns:
        `x0` of the shape and dtype of `x`; with `return_info=True`, `(x0, info)` where `info["nfe"]` is
        the number of score evaluations (batched calls count once) and `info["message"]` the solver's.
    """
    from scipy.integrate import solve_ivp

    for name, v in (("rtol", rtol), ("atol", atol)):
        if not (math.isfinite(v) and v > 0):
            raise ValueError(f"{name} must be a finite number > 0, got {v!r}")
    tc = resolve_grid("pf_ode_rk45", sde, x, ts)
    shape, dtype, device = x.shape, x.dtype, x.device
    t_hi, t_lo = float(tc[0]), float(tc[-1])

    def velocity(t: float, y: np.ndarray) -> np.ndarray:
        xt = torch.from_numpy(y).reshape(shape).to(device=device, dtype=dtype)
        tt = torch.tensor(min(max(t, t_lo), t_hi), dtype=dtype, device=device)
        with torch.no_grad():
            v = _drift(sde, score_fn, xt, tt, 0.5).detach().to("cpu", torch.float64).numpy().ravel()
        if not np.isfinite(v).all():
            raise FloatingPointError(f"pf_ode_rk45: the velocity (from score_fn) is not finite at t = {t:.6g}")
        return v

    y0 = x.detach().to("cpu", torch.float64).numpy().ravel()
    t_eval = tc.numpy()
    sol = solve_ivp(velocity, (t_hi, t_lo), y0, method="RK45", t_eval=t_eval, rtol=rtol, atol=atol)
    if not sol.success:
        raise RuntimeError(f"pf_ode_rk45: solve_ivp failed: {sol.message}")
    states = [torch.from_numpy(sol.y[:, j].copy()).reshape(shape).to(device=device, dtype=dtype)
              for j in range(sol.y.shape[1])]
    if callback is not None:
        for j in range(1, len(states)):
            callback(j - 1, float(sol.t[j]), states[j])
    if return_info:
        return states[-1], {"nfe": int(sol.nfev), "message": sol.message}
    return states[-1]


# ---------------------------------------------------------------------- helpers
def trajectory(sampler: Callable, score_fn: ScoreFn, sde: SDE, x: torch.Tensor, ts, **kwargs):
    """Run `sampler` and keep every state: returns `(x0, xs)` with `xs` of shape `(len(ts), B, ...)`,
    `xs[0] = x` and `xs[i]` the state at `ts[i]` (the layout `sdelab.plot.paths` plots)."""
    user_cb = kwargs.pop("callback", None)
    xs = [x.detach().clone()]

    def keep(i, t, xi):
        xs.append(xi.detach().clone())
        if user_cb is not None:
            user_cb(i, t, xi)

    x0 = sampler(score_fn, sde, x, ts, callback=keep, **kwargs)
    return x0, torch.stack(xs)


SAMPLERS: dict[str, Callable] = {
    "em": euler_maruyama, "pc": predictor_corrector, "euler": pf_ode_euler, "heun": pf_ode_heun,
    "rk45": pf_ode_rk45,
}
"""Name -> score-based sampler with the common signature (the DDPM/DDIM/DPM-Solver samplers in
`sdelab.discrete` take a noise predictor instead)."""
