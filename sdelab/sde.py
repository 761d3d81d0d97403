r"""Forward SDEs $dx = f(x,t)\,dt + g(t)\,dw$ with affine drift $f = a(t)\,x$.

Every SDE here has a Gaussian transition kernel $p_{0t}(x_t \mid x_0) = \mathcal N(\alpha(t) x_0, \sigma(t)^2 I)$
with $\alpha(t) = e^{\int_0^t a}$ and $\sigma(t)^2 = \alpha(t)^2 \int_0^t g(s)^2/\alpha(s)^2\,ds$
(chapter "Solving the VP-SDE exactly"). Samplers and losses only call the methods of `SDE`, so a new
forward process is one subclass that implements `drift_coeff`, `diffusion`, `mean_coeff` and `std`.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from .grids import call_score, check_x
from .utils import append_dims, as_time, check_batch, check_finite, check_positive, check_time

__all__ = ["SDE", "VPSDE", "SubVPSDE", "VESDE", "BetaSchedule", "reverse_drift", "pf_drift"]

ScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class BetaSchedule:
    r"""A noise rate $\beta(t) > 0$ on $[0, T]$ and its integral $B(t) = \int_0^t \beta(s)\,ds$.

    * ``"linear"``: $\beta(t) = \beta_{min} + (\beta_{max} - \beta_{min})\,t/T$, so
      $B(t) = \beta_{min} t + (\beta_{max} - \beta_{min})\,t^2/(2T)$ (Song et al., 2021).
    * ``"cosine"``: $\bar\alpha(t) = e^{-B(t)} = \cos^2\theta(t)/\cos^2\theta_0$ with $\theta$ linear in $t$
      from $\theta_0 = \frac{s}{1+s}\frac{\pi}{2}$ (Nichol & Dhariwal, 2021, $s = 0.008$) to the angle at which
      $\bar\alpha(T)$ equals the linear schedule's $e^{-B(T)}$, so both end equally noisy; then
      $\beta(t) = 2\theta'\tan\theta(t)$.
    """

    KINDS = ("linear", "cosine")

    def __init__(self, kind: str = "linear", beta_min: float = 0.1, beta_max: float = 20.0, T: float = 1.0,
                 cosine_s: float = 0.008):
        if kind not in self.KINDS:
            raise ValueError(f"schedule must be one of {self.KINDS}, got {kind!r}")
        self.kind = kind
        self.beta_min = check_positive("beta_min", beta_min)
        self.beta_max = check_positive("beta_max", beta_max)
        if self.beta_max < self.beta_min:
            raise ValueError(f"beta_max must be >= beta_min, got beta_min={beta_min}, beta_max={beta_max}")
        self.T = check_positive("T", T)
        self.theta0 = cosine_s / (1 + cosine_s) * math.pi / 2
        end_abar = math.exp(-(beta_min * T + (beta_max - beta_min) * T / 2))
        self.theta1 = math.acos(math.sqrt(end_abar) * math.cos(self.theta0))

    def beta(self, t: torch.Tensor) -> torch.Tensor:
        if self.kind == "linear":
            return self.beta_min + (self.beta_max - self.beta_min) * t / self.T
        rate = (self.theta1 - self.theta0) / self.T
        return 2 * rate * torch.tan(self.theta0 + rate * t)

    def integral(self, t: torch.Tensor) -> torch.Tensor:
        if self.kind == "linear":
            return self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t**2 / self.T
        theta = self.theta0 + (self.theta1 - self.theta0) * t / self.T
        return -2 * torch.log(torch.cos(theta) / math.cos(self.theta0))

    def __repr__(self) -> str:
        return f"BetaSchedule({self.kind!r}, beta_min={self.beta_min:g}, beta_max={self.beta_max:g}, T={self.T:g})"


class SDE:
    r"""Base class: an SDE $dx = a(t)\,x\,dt + g(t)\,dw$ on $[0, T]$ with a Gaussian kernel.

    Subclasses implement `drift_coeff` ($a$), `diffusion` ($g$), `mean_coeff` ($\alpha$), `std` ($\sigma$)
    and `prior_std` (the std of the Gaussian the reverse process starts from). Every time argument
    is a float or a tensor of shape `(B,)`; the returned coefficients have the same shape.
    """

    T: float = 1.0

    # --- what a subclass provides (t already validated, a tensor) ---
    def _drift_coeff(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _diffusion(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _mean_coeff(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _std(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def prior_std(self) -> float:
        raise NotImplementedError

    # --- public API ---
    def _t(self, t, like: torch.Tensor | None = None) -> torch.Tensor:
        t = as_time(t, like)
        check_time(t, self.T)
        return t

    def drift_coeff(self, t) -> torch.Tensor:
        """$a(t)$ in $f(x, t) = a(t)\\,x$."""
        return self._drift_coeff(self._t(t))

    def drift(self, x: torch.Tensor, t) -> torch.Tensor:
        r"""$f(x, t) = a(t)\,x$. `x`: `(B, ...)`, `t`: scalar or `(B,)`. Returns `(B, ...)`."""
        t = self._t(t, x)
        check_batch(x, t)
        return append_dims(self._drift_coeff(t), x.ndim) * x

    def diffusion(self, t) -> torch.Tensor:
        """$g(t)$, same shape as `t`."""
        return self._diffusion(self._t(t))

    def mean_coeff(self, t) -> torch.Tensor:
        r"""$\alpha(t)$: the kernel's mean is $\alpha(t)\,x_0$."""
        return self._mean_coeff(self._t(t))

    def std(self, t) -> torch.Tensor:
        r"""$\sigma(t)$: the kernel's standard deviation."""
        return self._std(self._t(t))

    def alpha_bar(self, t) -> torch.Tensor:
        r"""$\bar\alpha(t) = \alpha(t)^2$, DDPM's `alphas_cumprod` in continuous time."""
        return self.mean_coeff(t) ** 2

    def log_snr(self, t) -> torch.Tensor:
        r"""$\log \mathrm{SNR}(t) = \log(\alpha(t)^2 / \sigma(t)^2)$ (infinite at $t = 0$)."""
        t = self._t(t)
        return 2 * (torch.log(self._mean_coeff(t)) - torch.log(self._std(t)))

    def marginal(self, x0: torch.Tensor, t) -> tuple[torch.Tensor, torch.Tensor]:
        r"""Mean and std of the transition kernel $p_{0t}(x_t \mid x_0) = \mathcal N(\alpha(t) x_0, \sigma(t)^2 I)$.

        This is the law of $x_t$ *given* $x_0$. The marginal $p_t$ averages it over the data, and is Gaussian only
        for Gaussian data (`sdelab.toy.GaussianMixture.noised` gives it for mixtures).

        Args:
            x0: data, `(B, ...)`.
            t: scalar or `(B,)`.
        Returns:
            `mean` of shape `(B, ...)` and `std` broadcastable to it (`(B, 1, ...)`, or 0-dim for scalar `t`).
        """
        t = self._t(t, x0)
        check_batch(x0, t)
        alpha = append_dims(self._mean_coeff(t), x0.ndim) if t.ndim else self._mean_coeff(t)
        sigma = append_dims(self._std(t), x0.ndim) if t.ndim else self._std(t)
        return alpha * x0, sigma

    def perturb(self, x0: torch.Tensor, t, *, generator: torch.Generator | None = None):
        r"""Draw $x_t = \alpha(t) x_0 + \sigma(t)\varepsilon$; returns `(x_t, eps)`."""
        mean, std = self.marginal(x0, t)
        eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
        return mean + std * eps, eps

    def prior_sample(self, shape, *, generator: torch.Generator | None = None, device=None,
                     dtype: torch.dtype | None = None) -> torch.Tensor:
        r"""Draw from the prior $\mathcal N(0, \sigma_T^2 I)$ that approximates $p_T$. Drawn on the CPU
        (so a seed gives the same numbers everywhere), then moved to `device`."""
        shape = tuple(shape)
        if len(shape) == 0 or any(int(s) < 0 for s in shape):
            raise ValueError(f"shape must be a non-empty tuple of non-negative sizes, got {shape}")
        z = torch.randn(shape, generator=generator, dtype=dtype or torch.get_default_dtype())
        return (self.prior_std() * z).to(device) if device is not None else self.prior_std() * z

    def prior_logp(self, x: torch.Tensor) -> torch.Tensor:
        r"""$\log \mathcal N(x; 0, \sigma_T^2 I)$ summed over all but the batch dim; returns `(B,)`."""
        s2 = self.prior_std() ** 2
        d = x[0].numel()
        return -0.5 * d * math.log(2 * math.pi * s2) - 0.5 * x.flatten(1).pow(2).sum(1) / s2

    GRID_KINDS = ("uniform", "logsnr", "karras", "angle", "blend")

    def noise_ratio(self, t) -> torch.Tensor:
        r"""$\rho(t) = \sigma(t)/\alpha(t)$, the noise-to-signal ratio (EDM's $\sigma$; $\sqrt{(1-\bar\alpha)/\bar\alpha}$ for VP)."""
        t = self._t(t)
        return self._std(t) / self._mean_coeff(t)

    def time_grid(self, n_steps: int, eps: float = 1e-3, *, kind: str = "uniform", rho: float = 7.0,
                  sigma_data: float = 0.5, log_steps: int = 4) -> torch.Tensor:
        r"""Decreasing grid of `n_steps + 1` times from `T` to `eps`, the argument samplers take.

        `kind`: ``"uniform"`` in $t$; ``"logsnr"``, uniform in $\log\rho(t)$, $\rho = \sigma/\alpha$ (i.e. in the
        log-SNR, DPM-Solver's grid); ``"karras"``, uniform in $\rho^{1/r}$ with $r$ = `rho` (Karras et al., 2022,
        eq. 5, $r = 7$); ``"angle"``, uniform in the angle $\arctan(\rho/\sigma_d)$ with $\sigma_d$ = `sigma_data`
        (the time of TrigFlow, $x = \cos\theta\, x_0 + \sin\theta\, \sigma_d z$, Lu & Song, 2024, with their
        $\sigma_d = 0.5$); ``"blend"``, `log_steps` of the steps (at most half of them) placed as on the log-SNR grid and
        the rest as on the angle grid (the times where the two grids' step counts, added, are whole numbers): the
        angle grid's steps where the data take shape, and a few log-SNR steps that keep the first step short.
        Log-SNR, Karras, angle and blend grids are mapped back to $t$ by bisection (float64 precision), need
        `eps > 0` and are float64 (the uniform grid has the default dtype). Which grid each sampler uses by default:
        `sdelab.samplers.DEFAULT_GRID`.
        """
        if isinstance(n_steps, bool) or not float(n_steps).is_integer() or int(n_steps) < 1:
            raise ValueError(f"n_steps must be an integer >= 1, got {n_steps!r}")
        if kind not in self.GRID_KINDS:
            raise ValueError(f"kind must be one of {self.GRID_KINDS}, got {kind!r}")
        try:
            ok_eps = not isinstance(eps, (bool, str)) and 0 <= float(eps) < self.T
        except (TypeError, ValueError, RuntimeError):
            ok_eps = False
        if not ok_eps or (kind != "uniform" and float(eps) == 0):
            allowed = f"[0, {self.T:g})" if kind == "uniform" else f"(0, {self.T:g}) for kind={kind!r}"
            raise ValueError(f"eps must lie in {allowed}, got {eps!r}")
        n, eps = int(n_steps), float(eps)
        if kind == "uniform":
            return torch.linspace(float(self.T), float(eps), n + 1)  # the default dtype, as it always was
        for name, v in (("rho", rho), ("sigma_data", sigma_data)):
            if isinstance(v, bool) or not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {v!r}")
        if isinstance(log_steps, bool) or not isinstance(log_steps, int) or log_steps < 0:
            raise ValueError(f"log_steps must be an int >= 0, got {log_steps!r}")
        ends = torch.tensor([float(self.T), float(eps)], dtype=torch.float64)
        r_hi, r_lo = (self._std(ends) / self._mean_coeff(ends)).tolist()
        u = torch.linspace(0, 1, n + 1, dtype=torch.float64)
        if kind == "logsnr":
            target = torch.exp(math.log(r_hi) + u * (math.log(r_lo) - math.log(r_hi)))
        elif kind == "angle":
            a_hi, a_lo = math.atan(r_hi / sigma_data), math.atan(r_lo / sigma_data)
            target = sigma_data * torch.tan(a_hi + u * (a_lo - a_hi))
        elif kind == "blend":  # no closed form: bisect on the fraction of the way itself (increasing in t)
            share = 1 - min(log_steps, n / 2) / n
            return self._invert(lambda t: -_blend_fraction(self._std(t) / self._mean_coeff(t), r_hi, r_lo,
                                                           sigma_data, share), -u, float(eps))
        else:
            target = (r_hi ** (1 / rho) + u * (r_lo ** (1 / rho) - r_hi ** (1 / rho))) ** rho
        return self._invert_ratio(target, float(eps))

    def _invert_ratio(self, target: torch.Tensor, eps: float) -> torch.Tensor:
        """Times at which sigma/alpha (increasing in t) equals `target`, by bisection on [eps, T]."""
        return self._invert(lambda t: self._std(t) / self._mean_coeff(t), target, eps)

    def _invert(self, increasing, target: torch.Tensor, eps: float) -> torch.Tensor:
        """Times at which `increasing(t)` equals `target`, by bisection on [eps, T] (float64 precision); the ends are
        set to exactly T and `eps`."""
        lo, hi = torch.full_like(target, eps), torch.full_like(target, float(self.T))
        for _ in range(80):
            mid = 0.5 * (lo + hi)
            below = increasing(mid) < target
            lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
        ts = 0.5 * (lo + hi)
        ts[0], ts[-1] = float(self.T), eps
        return ts


def _blend_fraction(rho: torch.Tensor, r_hi: float, r_lo: float, sigma_data: float, share: float) -> torch.Tensor:
    """How far along the blend grid `rho` lies, 0 at `r_hi` and 1 at `r_lo`: `share` x (angle grid's fraction of the
    way) + (1 - share) x (log-SNR grid's); `time_grid` passes `share = 1 - log_steps / n`."""
    a_hi, a_lo = math.atan(r_hi / sigma_data), math.atan(r_lo / sigma_data)
    angle = (a_hi - torch.atan(rho / sigma_data)) / (a_hi - a_lo)
    return share * angle + (1 - share) * (math.log(r_hi) - rho.log()) / (math.log(r_hi) - math.log(r_lo))


class _BetaSDE(SDE):
    """Shared parts of VP and sub-VP: a beta schedule, the same drift and the same mean coefficient."""

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0, schedule: str = "linear", T: float = 1.0):
        self.schedule = BetaSchedule(schedule, beta_min, beta_max, T)
        self.beta_min, self.beta_max, self.T = self.schedule.beta_min, self.schedule.beta_max, self.schedule.T

    def beta(self, t) -> torch.Tensor:
        r"""$\beta(t)$."""
        return self.schedule.beta(self._t(t))

    def beta_integral(self, t) -> torch.Tensor:
        r"""$B(t) = \int_0^t \beta(s)\,ds$."""
        return self.schedule.integral(self._t(t))

    def _drift_coeff(self, t):
        return -0.5 * self.schedule.beta(t)

    def _mean_coeff(self, t):
        return torch.exp(-0.5 * self.schedule.integral(t))

    def prior_std(self) -> float:
        return 1.0

    def __repr__(self) -> str:
        s = self.schedule
        return f"{type(self).__name__}(beta_min={s.beta_min:g}, beta_max={s.beta_max:g}, schedule={s.kind!r}, T={s.T:g})"


class VPSDE(_BetaSDE):
    r"""Variance-preserving SDE $dx = -\tfrac12\beta(t)\,x\,dt + \sqrt{\beta(t)}\,dw$ (DDPM's limit).

    $\alpha(t) = e^{-B(t)/2}$, $\sigma(t)^2 = 1 - e^{-B(t)}$. "Variance preserving" means
    $\mathrm{Cov}\,x_t = \bar\alpha(t)\,\mathrm{Cov}\,x_0 + (1 - \bar\alpha(t)) I$: constant only if $\mathrm{Cov}\,x_0 = I$.
    """

    def _diffusion(self, t):
        return torch.sqrt(self.schedule.beta(t))

    def _std(self, t):
        return torch.sqrt(torch.clamp(-torch.expm1(-self.schedule.integral(t)), min=0))

    def discrete_betas(self, N: int) -> torch.Tensor:
        r"""DDPM's $N$ betas. Linear schedule: `linspace(beta_min/N, beta_max/N, N)` ($\beta_i \approx \beta(t_i)/N$,
        DDPM's 1e-4..0.02 for N = 1000). Cosine: $\beta_i = 1 - \bar\alpha(t_i)/\bar\alpha(t_{i-1})$, $t_i = iT/N$."""
        N = int(N)
        if N < 1:
            raise ValueError(f"N must be an integer >= 1, got {N!r}")
        if self.schedule.kind == "linear":
            if self.beta_max * self.T / N >= 1:
                raise ValueError(f"N must exceed beta_max * T = {self.beta_max * self.T:g} so that every beta_i < 1, "
                                 f"got N={N}")
            return torch.linspace(self.beta_min * self.T / N, self.beta_max * self.T / N, N, dtype=torch.float64)
        return self.exact_discrete_betas(N)

    def exact_discrete_betas(self, N: int) -> torch.Tensor:
        r"""$\beta_i = 1 - e^{-(B(t_i) - B(t_{i-1}))}$: the betas for which $\prod_i (1 - \beta_i) = e^{-B(t_N)}$ exactly."""
        if int(N) < 1:
            raise ValueError(f"N must be an integer >= 1, got {N!r}")
        t = torch.linspace(0, self.T, int(N) + 1, dtype=torch.float64)
        return -torch.expm1(-torch.diff(self.schedule.integral(t)))


class SubVPSDE(_BetaSDE):
    r"""Sub-VP SDE $dx = -\tfrac12\beta(t)\,x\,dt + \sqrt{\beta(t)(1 - e^{-2B(t)})}\,dw$ (Song et al., 2021).

    Same mean as VP, $\sigma(t)^2 = (1 - e^{-B(t)})^2$, which is below VP's $1 - e^{-B(t)}$ at every $t > 0$.
    """

    def _diffusion(self, t):
        return torch.sqrt(self.schedule.beta(t) * -torch.expm1(-2 * self.schedule.integral(t)))

    def _std(self, t):
        return torch.clamp(-torch.expm1(-self.schedule.integral(t)), min=0)


class VESDE(SDE):
    r"""Variance-exploding SDE $dx = \sqrt{d\sigma^2(t)/dt}\,dw$ with $\sigma(t) = \sigma_{min}(\sigma_{max}/\sigma_{min})^{t/T}$.

    $g(t) = \sigma(t)\sqrt{2\ln(\sigma_{max}/\sigma_{min})/T}$, $\alpha = 1$ and the exact kernel variance
    $\sigma(t)^2 - \sigma_{min}^2$ (Song et al.'s code uses $\sigma(t)^2$, i.e. data already blurred by $\sigma_{min}$).
    The prior is $\mathcal N(0, \sigma_{max}^2 I)$, not $\mathcal N(0, I)$.
    """

    def __init__(self, sigma_min: float = 0.01, sigma_max: float = 50.0, T: float = 1.0):
        self.sigma_min = check_positive("sigma_min", sigma_min)
        self.sigma_max = check_positive("sigma_max", sigma_max)
        if self.sigma_max <= self.sigma_min:
            raise ValueError(f"sigma_max must be > sigma_min, got sigma_min={sigma_min}, sigma_max={sigma_max}")
        self.T = check_positive("T", T)
        self._log_ratio = math.log(self.sigma_max / self.sigma_min)

    def sigma(self, t) -> torch.Tensor:
        r"""The noise level $\sigma(t) = \sigma_{min}(\sigma_{max}/\sigma_{min})^{t/T}$."""
        return self._sigma(self._t(t))

    def _sigma(self, t):
        return self.sigma_min * torch.exp(self._log_ratio * t / self.T)

    def _drift_coeff(self, t):
        return torch.zeros_like(t)

    def _diffusion(self, t):
        return self._sigma(t) * math.sqrt(2 * self._log_ratio / self.T)

    def _mean_coeff(self, t):
        return torch.ones_like(t)

    def _std(self, t):
        return self.sigma_min * torch.sqrt(torch.expm1(2 * self._log_ratio * t / self.T))

    def prior_std(self) -> float:
        return self.sigma_max

    def __repr__(self) -> str:
        return f"VESDE(sigma_min={self.sigma_min:g}, sigma_max={self.sigma_max:g}, T={self.T:g})"


def reverse_drift(sde: SDE, score_fn: ScoreFn, x: torch.Tensor, t, *, lam: float = 1.0) -> torch.Tensor:
    r"""Drift of the reverse-time process $f(x,t) - \tfrac{1 + \lambda^2}{2}\,g(t)^2\,\nabla_x \log p_t(x)$.

    With `lam = 1` this is Anderson's reverse SDE $f - g^2 s$ (noise $g\,d\bar w$), with `lam = 0` the
    probability-flow ODE $f - \tfrac12 g^2 s$; every `lam` gives the same marginals when the noise is
    $\lambda g\,d\bar w$ (chapter "Reverse SDE and probability-flow ODE"). Integrate with $dt < 0$.

    `x`: a floating tensor `(B, ...)`, B >= 1 (float16 kept as it is); `t`: a number or `(B,)`; `score_fn` must
    return a tensor of `x`'s shape (anything else is a `ValueError`, never a broadcast).
    """
    check_x(x)
    t = sde._t(t, x)
    check_batch(x, t)
    if t.ndim == 0 or t.shape[0] != x.shape[0]:
        t = t.expand(x.shape[0])
    g2 = append_dims(sde._diffusion(t) ** 2, x.ndim)
    s = call_score(score_fn, x, t)
    return append_dims(sde._drift_coeff(t), x.ndim) * x - 0.5 * (1 + lam**2) * g2 * s


def pf_drift(sde: SDE, score_fn: ScoreFn, x: torch.Tensor, t) -> torch.Tensor:
    r"""Probability-flow ODE velocity $f(x,t) - \tfrac12 g(t)^2 \nabla_x \log p_t(x)$."""
    return reverse_drift(sde, score_fn, x, t, lam=0.0)
