r"""DPM-Solver++(3M), the third-order multistep solver of the probability-flow ODE (chapter "Samplers compared").

Same setting as `sdelab.discrete.dpm_solver_2m`: data prediction $\hat x_0 = (x - \sigma\hat\varepsilon)/\alpha$,
half log-SNR $\lambda = \log(\alpha/\sigma)$, and the exact solution of the linear part,
$x_t = \tfrac{\sigma_t}{\sigma_s}x_s + \sigma_t\int_{\lambda_s}^{\lambda_t} e^{\lambda}\hat x_0\,d\lambda$.
Here $\hat x_0$ is extrapolated by the quadratic through the last three predictions, which makes the
local error $O(h^4)$ and the global error $O(h^3)$ (its order is measured in `tests/test_multistep.py`).
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from .discrete import _clipped, _eps, _log_snr_setup
from .sde import SDE

__all__ = ["dpm_solver_3m"]

EpsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _phis(h: float) -> tuple[float, float, float]:
    r"""$\varphi_1 = e^{-h} - 1$, $\varphi_2 = \varphi_1/h + 1$, $\varphi_3 = (\varphi_1 + h)/h^2 - \tfrac12$
    (the weights of $D_0$, $D_1$, $D_2$ in one step of length $h$ in $\lambda$)."""
    p1 = math.expm1(-h)
    return p1, p1 / h + 1, (p1 + h) / h**2 - 0.5


def _weights_3m(lams: list[float], alpha_t: float) -> list[float]:
    r"""The update of `dpm_solver_3m` as weights of $m_0, m_1, m_2$ (newest first): $x_t = \tfrac{\sigma_t}{\sigma_{s_0}}x_{s_0}
    + \sum_k w_k m_k$. `lams`: $\lambda_t, \lambda_{s_0}, \dots$ (2, 3 or 4 values: order 1, 2 or 3). Expands
    $-\alpha_t\varphi_1 m_0$ (order 1), $-\tfrac12\alpha_t\varphi_1 D_{1,0}$ (order 2), $\alpha_t(\varphi_2 D_1 - \varphi_3 D_2)$
    (order 3) with the divided differences of the docstring, so a step is a few fused kernels."""
    h = lams[0] - lams[1]
    p1, p2, p3 = _phis(h)
    w = [-alpha_t * p1]
    if len(lams) == 3:                      # - 1/2 alpha p1 (m0 - m1) / r0
        c = -0.5 * alpha_t * p1 * h / (lams[1] - lams[2])
        w += [-c]
        w[0] += c
    elif len(lams) == 4:                    # alpha p2 D1 - alpha p3 D2 in m0, m1, m2
        r0, r1 = (lams[1] - lams[2]) / h, (lams[2] - lams[3]) / h
        a10, a11 = alpha_t * (p2 * (1 + r0 / (r0 + r1)) - p3 / (r0 + r1)), -alpha_t * (p2 * r0 - p3) / (r0 + r1)
        # d10 = (m0 - m1)/r0, d11 = (m1 - m2)/r1; the step adds a10 d10 + a11 d11
        w += [-a10 / r0 + a11 / r1, -a11 / r1]
        w[0] += a10 / r0
    return w


def _order(i: int, n: int, lower_order_final: bool) -> int:
    """Order of step `i` of `n`: 1, 2, then 3; with `lower_order_final` and n < 15 the last two steps drop to 1 and 2."""
    order = min(3, i + 1)
    if lower_order_final and n < 15:
        order = min(order, n - i)
    return order


def dpm_solver_3m(eps_fn: EpsFn, sde: SDE, x: torch.Tensor, ts, *, generator: torch.Generator | None = None,
                  callback=None, lower_order_final: bool = True, clip_x0: float | None = None) -> torch.Tensor:
    r"""DPM-Solver++(3M) (Lu et al., 2022b; the multistep third-order update of diffusers' `DPMSolverMultistepScheduler`).

    With $m_k$ the last three data predictions at $\lambda_{s_0} > \lambda_{s_1} > \lambda_{s_2}$ (newest first),
    $h = \lambda_t - \lambda_{s_0}$, $r_0 = (\lambda_{s_0} - \lambda_{s_1})/h$, $r_1 = (\lambda_{s_1} - \lambda_{s_2})/h$,
    $D_{1,0} = (m_0 - m_1)/r_0$, $D_{1,1} = (m_1 - m_2)/r_1$,
    $D_1 = D_{1,0} + \tfrac{r_0}{r_0 + r_1}(D_{1,0} - D_{1,1})$, $D_2 = \tfrac{1}{r_0 + r_1}(D_{1,0} - D_{1,1})$:

    $x_t = \tfrac{\sigma_t}{\sigma_{s_0}}x_{s_0} - \alpha_t\varphi_1 m_0 + \alpha_t\varphi_2 D_1 - \alpha_t\varphi_3 D_2$,
    $\varphi_1 = e^{-h} - 1$, $\varphi_2 = \varphi_1/h + 1$, $\varphi_3 = (\varphi_1 + h)/h^2 - \tfrac12$.

    The first step is DDIM (first order), the second is DPM-Solver++(2M); with fewer than 15 steps and
    `lower_order_final`, the last two steps are second and first order (as diffusers does). One evaluation per
    step; needs $\sigma > 0$ at every grid time. `ts`: a grid, or an int number of steps on the default grid
    (`sdelab.samplers.DEFAULT_GRID`). `clip_x0` as in `sdelab.discrete.ddim_sample`.
    """
    clip_x0, tb, tc, watch, al, si, lam = _log_snr_setup(sde, x, ts, "dpm_solver_3m", clip_x0)
    n, ms = len(tc) - 1, []
    for i in range(n):
        x0, _ = _clipped(x, _eps(eps_fn, x, tb[i]), al[i], si[i], clip_x0)
        ms = [x0] + ms[:2]
        order = _order(i, n, lower_order_final)
        w = _weights_3m(lam[max(i - order + 1, 0):i + 2][::-1], al[i + 1])
        x = (si[i + 1] / si[i]) * x
        for wk, m in zip(w, ms):
            x = x.add(m, alpha=wk) if wk else x
        watch(x)
        if callback is not None:
            callback(i, float(tc[i + 1]), x)
    return watch.check(x)
