r"""Discrete-time samplers seen from the SDE: DDPM, DDIM and DPM-Solver++(2M) (chapters "DDPM and the
VP-SDE" and "DDIM").

Everything is written with the kernel coefficients $\alpha(t)$ = `sde.mean_coeff(t)` and
$\sigma(t)$ = `sde.std(t)`, so it works for any SDE of `sdelab.sde` on any decreasing grid `ts`:
between grid times $s < t$ the forward transition is
$p(x_t \mid x_s) = \mathcal N(\alpha_{t|s} x_s, \sigma_{t|s}^2 I)$ with $\alpha_{t|s} = \alpha_t/\alpha_s$ and
$\sigma_{t|s}^2 = \sigma_t^2 - \alpha_{t|s}^2\sigma_s^2$ (for VP, $\sigma_{t|s}^2 = 1 - \bar\alpha_t/\bar\alpha_s$ = DDPM's $\beta$).
The samplers take a noise predictor `eps_fn(x, t)` $\approx \varepsilon$, with $x_t = \alpha_t x_0 + \sigma_t\varepsilon$;
from a score, $\hat\varepsilon = -\sigma_t\,\nabla_x\log p_t$. Signature and `callback(i, t, x)` as in `sdelab.samplers`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from .grids import FiniteWatch, batch_times, call_score, check_x, resolve_grid
from .samplers import _randn
from .sde import SDE
from .utils import append_dims

__all__ = ["DDPMSchedule", "ddpm_schedule", "posterior_mean_variance", "posterior_coefficients", "ddpm_sample",
           "ddim_step", "ddim_sample", "dpm_solver_2m", "logsnr_time_grid"]

EpsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class DDPMSchedule:
    r"""DDPM's per-step quantities (all float64, shape `(N,)`), index $i = 0..N-1$ = DDPM's step $i + 1$,
    at time $t_i = (i + 1)T/N$:
    $\bar\alpha_i = \prod_{j \le i}(1 - \beta_j)$, posterior variance $\tilde\beta_i = \beta_i(1 - \bar\alpha_{i-1})/(1 - \bar\alpha_i)$,
    posterior mean $\tilde\mu_i = c_1 x_0 + c_2 x_t$ with $c_1 = \beta_i\sqrt{\bar\alpha_{i-1}}/(1 - \bar\alpha_i)$ and
    $c_2 = (1 - \bar\alpha_{i-1})\sqrt{1 - \beta_i}/(1 - \bar\alpha_i)$ (Ho et al., 2020, eq. 7).
    """

    betas: torch.Tensor
    alphas: torch.Tensor
    alphas_cumprod: torch.Tensor
    alphas_cumprod_prev: torch.Tensor
    posterior_variance: torch.Tensor
    posterior_mean_coef1: torch.Tensor
    posterior_mean_coef2: torch.Tensor
    T: float = 1.0

    @property
    def N(self) -> int:
        return len(self.betas)

    @property
    def times(self) -> torch.Tensor:
        """Continuous times $t_i = (i + 1)T/N$ of the N steps, float64 `(N,)`."""
        return torch.arange(1, self.N + 1, dtype=torch.float64) * self.T / self.N


def ddpm_schedule(sde: SDE, N: int, *, exact: bool = False) -> DDPMSchedule:
    r"""DDPM's schedule from a VP-type SDE: `sde.discrete_betas(N)` (DDPM's linspace(1e-4, 0.02, 1000) for
    `VPSDE()` and N = 1000), or with `exact=True` `sde.exact_discrete_betas(N)`, for which
    $\prod(1 - \beta_i) = e^{-B(t)}$ exactly. Raises `ValueError` if `sde` has no discrete betas (VE)."""
    method = getattr(sde, "exact_discrete_betas" if exact else "discrete_betas", None)
    if method is None:
        raise ValueError(f"ddpm_schedule needs an SDE with discrete betas (VPSDE), got {sde!r}")
    betas = method(N).to(torch.float64)
    alphas = 1 - betas
    acp = torch.cumprod(alphas, 0)
    acp_prev = torch.cat([torch.ones(1, dtype=torch.float64), acp[:-1]])
    return DDPMSchedule(
        betas=betas, alphas=alphas, alphas_cumprod=acp, alphas_cumprod_prev=acp_prev,
        posterior_variance=betas * (1 - acp_prev) / (1 - acp),
        posterior_mean_coef1=betas * acp_prev.sqrt() / (1 - acp),
        posterior_mean_coef2=(1 - acp_prev) * alphas.sqrt() / (1 - acp),
        T=float(sde.T),
    )


def posterior_mean_variance(x0: torch.Tensor, xt: torch.Tensor, i, schedule: DDPMSchedule):
    r"""Mean and variance of $q(x_{i-1} \mid x_i, x_0) = \mathcal N(c_1 x_0 + c_2 x_i, \tilde\beta_i I)$.

    Args:
        x0, xt: `(B, ...)`, same shape.
        i: step index in `[0, N)` (an int or a `(B,)` integer tensor).
    Returns:
        `mean` `(B, ...)` and `variance` broadcastable to it (0-dim for an int `i`, `(B, 1, ...)` otherwise).
    """
    if x0.shape != xt.shape:
        raise ValueError(f"x0 and xt must have the same shape, got {tuple(x0.shape)} and {tuple(xt.shape)}")
    idx = torch.as_tensor(i)
    if idx.is_floating_point() or idx.ndim > 1 or (idx.ndim == 1 and idx.shape[0] != x0.shape[0]):
        raise ValueError(f"i must be an integer or a (B,) integer tensor with B = {x0.shape[0]}, got {i!r}")
    if idx.numel() and (idx.min() < 0 or idx.max() >= schedule.N):
        raise ValueError(f"i must lie in [0, N) = [0, {schedule.N}), got {idx.tolist()}")
    idx = idx.cpu()

    def pick(v):
        v = v[idx].to(device=xt.device, dtype=xt.dtype)
        return append_dims(v, xt.ndim) if v.ndim else v

    return pick(schedule.posterior_mean_coef1) * x0 + pick(schedule.posterior_mean_coef2) * xt, \
        pick(schedule.posterior_variance)


def posterior_coefficients(sde: SDE, t, s):
    r"""$q(x_s \mid x_t, x_0) = \mathcal N(c_0 x_0 + c_t x_t, v\,I)$ for any SDE and times $0 \le s < t \le T$:
    $c_t = \alpha_{t|s}\sigma_s^2/\sigma_t^2$, $c_0 = \alpha_s\sigma_{t|s}^2/\sigma_t^2$, $v = \sigma_{t|s}^2\sigma_s^2/\sigma_t^2$.
    For VP these are DDPM's coefficients with $\beta = 1 - \bar\alpha_t/\bar\alpha_s$. Returns float64 `(c0, ct, v)`."""
    t, s = sde._t(torch.as_tensor(t, dtype=torch.float64)), sde._t(torch.as_tensor(s, dtype=torch.float64))
    if not (s < t).all():
        raise ValueError(f"posterior_coefficients needs s < t, got t={t.tolist()}, s={s.tolist()}")
    a_t, s_t, a_s, s_s = sde._mean_coeff(t), sde._std(t), sde._mean_coeff(s), sde._std(s)
    var_ts = (s_t**2 - (a_t / a_s) ** 2 * s_s**2).clamp_min(0)
    return a_s * var_ts / s_t**2, (a_t / a_s) * s_s**2 / s_t**2, var_ts * s_s**2 / s_t**2


def logsnr_time_grid(sde: SDE, n_steps: int, eps: float = 1e-3) -> torch.Tensor:
    r"""Decreasing grid of `n_steps + 1` times from $T$ to `eps`, uniform in $\lambda(t) = \log(\alpha/\sigma)$
    (the grid DPM-Solver recommends): `sde.time_grid(n_steps, eps, kind="logsnr")`."""
    return sde.time_grid(n_steps, eps, kind="logsnr")


# ---------------------------------------------------------------------- samplers
def _coeffs(sde: SDE, tc: torch.Tensor):
    """float64 alpha and sigma on the (CPU) grid; every step starts at sigma > 0."""
    a, s = sde._mean_coeff(tc), sde._std(tc)
    if not (s[:-1] > 0).all():
        raise ValueError("ts: sigma(t) must be > 0 at every grid time but the last")
    return a.tolist(), s.tolist()


def _eps(eps_fn: EpsFn, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return call_score(eps_fn, x, t, "eps_fn")


def _prepare(sde: SDE, x: torch.Tensor, ts, sampler: str):
    """One validation per call: `(n + 1, B)` batch times on `x`'s device, the CPU float64 grid, a `FiniteWatch`."""
    tc = resolve_grid(sampler, sde, x, ts)
    return batch_times(tc, x), tc, FiniteWatch(sampler, tc)


def _check_clip(clip_x0) -> float | None:
    if clip_x0 is None:
        return None
    if isinstance(clip_x0, bool) or not (isinstance(clip_x0, (int, float)) and math.isfinite(clip_x0) and clip_x0 > 0):
        raise ValueError(f"clip_x0 must be None or a finite number > 0 (the data range, 1.0 for images in [-1, 1]), "
                         f"got {clip_x0!r}")
    return float(clip_x0)


def _clipped(x, eps, a, s, clip_x0):
    r"""$\hat x_0 = (x - \sigma\hat\varepsilon)/\alpha$, clamped to $[-c, c]$ when `clip_x0` $= c$ is set, and the noise
    prediction consistent with it, $(x - \alpha\hat x_0)/\sigma$ (DDPM's `clip_denoised`, diffusers' `clip_sample`)."""
    x0 = (x - s * eps) / a
    if clip_x0 is None:
        return x0, eps
    x0 = x0.clamp(-clip_x0, clip_x0)
    return x0, (x - a * x0) / s


def ddpm_sample(eps_fn: EpsFn, sde: SDE, x: torch.Tensor, ts, *, generator: torch.Generator | None = None,
                callback=None, clip_x0: float | None = None) -> torch.Tensor:
    r"""Ancestral sampling: $x_s \sim q(x_s \mid x_t, \hat x_0)$ between consecutive grid times $t > s$, with
    $\hat x_0 = (x_t - \sigma_t\hat\varepsilon)/\alpha_t$ and the coefficients of `posterior_coefficients`.

    On VP with `ts = linspace(T, 0, N + 1)` and exact betas this is Ho et al.'s Algorithm 2; on any other
    decreasing grid it is DDPM with $\beta = 1 - \bar\alpha_t/\bar\alpha_s$. As in DDPM the last step adds no
    noise (its variance is 0 when `ts[-1] = 0`, and small otherwise): the sample is the posterior mean.

    `clip_x0` $= c$ clamps every $\hat x_0$ to $[-c, c]$ (Ho et al.'s `clip_denoised`); see `ddim_sample`.
    """
    clip_x0 = _check_clip(clip_x0)
    ts, tc, watch = _prepare(sde, x, ts, "ddpm_sample")
    al, si = _coeffs(sde, tc)
    c0, ct, var = (v.tolist() for v in posterior_coefficients(sde, tc[:-1], tc[1:]))
    n = len(tc) - 1
    for i in range(n):
        eps = _eps(eps_fn, x, ts[i])
        if clip_x0 is None:   # c0 x0 + ct x with x0 = (x - sigma eps)/alpha, as two kernels
            x = torch.add((c0[i] / al[i] + ct[i]) * x, eps, alpha=-c0[i] * si[i] / al[i])
        else:
            x = torch.add(ct[i] * x, _clipped(x, eps, al[i], si[i], clip_x0)[0], alpha=c0[i])
        if i < n - 1:
            x.add_(_randn(x, generator), alpha=math.sqrt(var[i]))   # x is this step's own tensor
        watch(x)
        if callback is not None:
            callback(i, float(tc[i + 1]), x)
    return watch.check(x)


def _ddim_update(x, eps, a_t, s_t, a_s, s_s, eta: float, noise, x0=None):
    r"""$x_s = \alpha_s\hat x_0 + \sqrt{\sigma_s^2 - c^2}\,\hat\varepsilon + c z$, $c = \eta\,(\sigma_s/\sigma_t)\,\sigma_{t|s}$
    ($\hat x_0 = (x - \sigma_t\hat\varepsilon)/\alpha_t$ unless given)."""
    x0 = (x - s_t * eps) / a_t if x0 is None else x0
    var_ts = (s_t**2 - (a_t / a_s) ** 2 * s_s**2)
    var_ts = var_ts.clamp_min(0) if torch.is_tensor(var_ts) else max(var_ts, 0.0)
    c = eta * s_s / s_t * var_ts**0.5
    dir_coef = (s_s**2 - c**2)
    dir_coef = dir_coef.clamp_min(0) ** 0.5 if torch.is_tensor(dir_coef) else max(dir_coef, 0.0) ** 0.5
    out = a_s * x0 + dir_coef * eps
    return out if noise is None else out + c * noise


def ddim_step(x: torch.Tensor, eps: torch.Tensor, alpha_bar_t, alpha_bar_prev, eta: float = 0.0,
              noise: torch.Tensor | None = None) -> torch.Tensor:
    r"""One DDIM step (Song, Meng & Ermon, 2021, eq. 12) in DDPM's variance-preserving notation:

    $x_{prev} = \sqrt{\bar\alpha_{prev}}\,\hat x_0 + \sqrt{1 - \bar\alpha_{prev} - \sigma^2}\,\hat\varepsilon + \sigma z$,
    $\hat x_0 = (x - \sqrt{1 - \bar\alpha_t}\,\hat\varepsilon)/\sqrt{\bar\alpha_t}$,
    $\sigma = \eta\sqrt{(1 - \bar\alpha_{prev})/(1 - \bar\alpha_t)}\sqrt{1 - \bar\alpha_t/\bar\alpha_{prev}}$.

    Args:
        x, eps: `(B, ...)`. alpha_bar_t, alpha_bar_prev: floats or `(B,)` tensors, $0 < \bar\alpha_t < \bar\alpha_{prev} \le 1$.
        eta: in `[0, 1]`; 0 is the deterministic DDIM, 1 has DDPM's posterior variance.
        noise: `(B, ...)` standard normal $z$; required when `eta > 0`.

    `x` must be a floating tensor (float16 kept as it is) and `eps` exactly its shape: a wrongly shaped
    prediction is refused (`ValueError`), not broadcast.
    """
    if not (0 <= eta <= 1):
        raise ValueError(f"eta must lie in [0, 1], got {eta!r}")
    check_x(x)
    if not torch.is_tensor(eps) or eps.shape != x.shape:
        raise ValueError(f"eps must be a tensor of the shape of x, {tuple(x.shape)} (no broadcasting), got "
                         f"{tuple(eps.shape) if torch.is_tensor(eps) else type(eps).__name__}")
    if eta > 0 and noise is None:
        raise ValueError("ddim_step: pass noise (a standard normal tensor shaped like x) when eta > 0")
    ab_t, ab_p = (torch.as_tensor(v, dtype=torch.float64) for v in (alpha_bar_t, alpha_bar_prev))
    if not ((ab_t > 0).all() and (ab_t < ab_p).all() and (ab_p <= 1).all()):
        raise ValueError(f"need 0 < alpha_bar_t < alpha_bar_prev <= 1, got {ab_t.tolist()} and {ab_p.tolist()}")
    co = [(v.to(device=x.device, dtype=x.dtype)) for v in (ab_t.sqrt(), (1 - ab_t).sqrt(), ab_p.sqrt(), (1 - ab_p).sqrt())]
    co = [append_dims(v, x.ndim) if v.ndim else v for v in co]
    return _ddim_update(x, eps, *co, eta, noise if eta > 0 else None)


def ddim_sample(eps_fn: EpsFn, sde: SDE, x: torch.Tensor, ts, *, eta: float = 0.0,
                generator: torch.Generator | None = None, callback=None, clip_x0: float | None = None) -> torch.Tensor:
    r"""DDIM on any SDE: $x_s = \alpha_s\hat x_0 + \sqrt{\sigma_s^2 - c^2}\,\hat\varepsilon + c z$ with
    $c = \eta\,(\sigma_s/\sigma_t)\,\sigma_{t|s}$ (eq. 12 of Song et al. when $\alpha^2 + \sigma^2 = 1$).

    `eta = 0` is deterministic (the first-order exponential integrator of the PF-ODE, an Euler step of
    $dy/d\rho = \varepsilon$ in $y = x/\alpha$, $\rho = \sigma/\alpha$) and draws no noise; `eta = 1` has DDPM's
    posterior variance and mean, so it is `ddpm_sample` step for step. The last step adds no noise.

    `clip_x0` $= c$ (off by default; diffusers' `clip_sample`) clamps each prediction $\hat x_0$ to $[-c, c]$
    and uses the noise prediction consistent with it, $\hat\varepsilon = (x_t - \alpha_t\hat x_0)/\sigma_t$, so
    the `eta = 0` step becomes
    $x_s = (\sigma_s/\sigma_t)\,x_t + (\alpha_s - \sigma_s\alpha_t/\sigma_t)\,\mathrm{clip}(\hat x_0)$.
    The exact denoiser $\mathbb E[x_0 \mid x_t]$ lies in the convex hull of the data, so for data in $[-c, c]^d$
    the clamp only moves $\hat x_0$ towards it: it tames a network whose $\hat x_0$ is poor at high noise
    (chapter "MNIST lab"), at the price of no longer solving the learned probability-flow ODE exactly.
    """
    if not (0 <= eta <= 1):
        raise ValueError(f"eta must lie in [0, 1], got {eta!r}")
    clip_x0 = _check_clip(clip_x0)
    ts, tc, watch = _prepare(sde, x, ts, "ddim_sample")
    al, si = _coeffs(sde, tc)
    n = len(tc) - 1
    for i in range(n):
        z = _randn(x, generator) if (eta > 0 and i < n - 1) else None
        e = _eps(eps_fn, x, ts[i])
        if eta == 0 and clip_x0 is None:  # x_s = (alpha_s/alpha_t) x + (sigma_s - alpha_s sigma_t/alpha_t) eps
            x = (al[i + 1] / al[i]) * x + (si[i + 1] - al[i + 1] * si[i] / al[i]) * e
        else:
            x0, e = _clipped(x, e, al[i], si[i], clip_x0)
            x = _ddim_update(x, e, al[i], si[i], al[i + 1], si[i + 1], eta, z, x0)
        watch(x)
        if callback is not None:
            callback(i, float(tc[i + 1]), x)
    return watch.check(x)


def _log_snr_setup(sde: SDE, x: torch.Tensor, ts, sampler: str, clip_x0):
    """What every log-SNR solver starts with: the checked `clip_x0`, the batch times, the CPU grid, a `FiniteWatch`,
    alpha and sigma as floats and the half log-SNR $\\lambda = \\log(\\alpha/\\sigma)$ (needs sigma > 0 at the end)."""
    clip_x0 = _check_clip(clip_x0)
    tb, tc, watch = _prepare(sde, x, ts, sampler)
    al, si = _coeffs(sde, tc)
    if si[-1] <= 0:
        raise ValueError(f"{sampler}: sigma(ts[-1]) must be > 0 (lambda = log(alpha/sigma) is infinite at t = 0)")
    lam = [math.log(a) - math.log(s) for a, s in zip(al, si)]
    return clip_x0, tb, tc, watch, al, si, lam


def dpm_solver_2m(eps_fn: EpsFn, sde: SDE, x: torch.Tensor, ts, *, generator: torch.Generator | None = None,
                  callback=None, lower_order_final: bool = True, clip_x0: float | None = None) -> torch.Tensor:
    r"""DPM-Solver++(2M) (Lu et al., 2022b, Alg. 2): a multistep second-order solver of the PF-ODE in data
    prediction $\hat x_0 = (x - \sigma\hat\varepsilon)/\alpha$ and half log-SNR $\lambda = \log(\alpha/\sigma)$.

    With $h_i = \lambda_{t_i} - \lambda_{t_{i-1}}$ and $r_i = h_{i-1}/h_i$:
    $x_{t_i} = \tfrac{\sigma_{t_i}}{\sigma_{t_{i-1}}} x_{t_{i-1}} - \alpha_{t_i}(e^{-h_i} - 1) D_i$,
    $D_i = (1 + \tfrac{1}{2r_i})\hat x_0^{(i-1)} - \tfrac{1}{2r_i}\hat x_0^{(i-2)}$; the first step is first order
    ($D_1 = \hat x_0^{(0)}$, which is DDIM). As in diffusers' `DPMSolverMultistepScheduler`, with fewer than 15
    steps the last step is first order too (`lower_order_final`), which stabilises the final, large $\lambda$ jump
    (Lu et al.'s own code uses a threshold of 10 steps).
    Needs $\sigma > 0$ at every grid time (so `ts[-1] > 0`); one evaluation per step; no noise drawn.
    Use it on `logsnr_time_grid(sde, n)`: on a grid uniform in $t$ the VP steps near $\epsilon$ are large jumps
    in $\lambda$ unless $n \gg T/\epsilon$, and second order only shows for very many steps.

    `clip_x0` $= c$ clamps every $\hat x_0$ to $[-c, c]$ before it enters $D_i$ (the static thresholding of
    Lu et al.); see `ddim_sample`.
    """
    clip_x0, ts, tc, watch, al, si, lam = _log_snr_setup(sde, x, ts, "dpm_solver_2m", clip_x0)
    n = len(tc) - 1
    x0_prev, h_prev = None, None
    for i in range(n):
        h = lam[i + 1] - lam[i]
        x0, _ = _clipped(x, _eps(eps_fn, x, ts[i]), al[i], si[i], clip_x0)
        if x0_prev is None or (lower_order_final and n < 15 and i == n - 1):
            d = x0
        else:
            r = h_prev / h
            d = torch.lerp(x0_prev, x0, 1 + 0.5 / r)  # (1 + 1/2r) x0 - (1/2r) x0_prev, one kernel
        x = torch.add((si[i + 1] / si[i]) * x, d, alpha=-al[i + 1] * math.expm1(-h))
        x0_prev, h_prev = x0, h
        watch(x)
        if callback is not None:
            callback(i, float(tc[i + 1]), x)
    return watch.check(x)
