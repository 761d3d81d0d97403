r"""UniPC (Zhao et al., 2023): a multistep predictor (UniP) and a corrector (UniC) for the probability-flow ODE in
data prediction, the corrector using the evaluation the next step makes anyway (chapter "Samplers compared").

Setting of `sdelab.discrete.dpm_solver_2m`: $\hat x_0 = (x - \sigma\hat\varepsilon)/\alpha$, half log-SNR
$\lambda = \log(\alpha/\sigma)$, and the exact linear part $x_t = \tfrac{\sigma_t}{\sigma_s}x_s - \alpha_t(e^{-h} - 1)\hat x_0
+ \dots$, $h = \lambda_t - \lambda_s$. UniP-$p$ adds $-\alpha_t B(h)\sum_k \rho_k D_k$ with $D_k = (m_k - m_0)/r_k$, the
divided differences of the last $p$ data predictions, $r_k = (\lambda_{s_k} - \lambda_{s_0})/h$, and weights $\rho$ that
solve $\sum_k \rho_k r_k^{i-1} = i!\,\varphi_{i+1}(h)\,h / B(h)$ (the order conditions; $B(h) = e^{h} - 1$ in
$-h$, diffusers' "bh2"). UniC redoes the step once $\hat x_0$ at its end is known, with $r = 1$ for that point: one
more order, no extra evaluation. The corrected point keeps the evaluation made before the correction.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from .discrete import _clipped, _eps, _log_snr_setup
from .sde import SDE

__all__ = ["unipc", "unipc_weights"]

EpsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def unipc_weights(h: float, rks: list[float], corrector: bool) -> tuple[float, list[float]]:
    r"""`(B(h), rho)` for one step of length `h` in $\lambda$ with earlier points at `rks` (relative, < 0).

    Predictor: `len(rks)` weights (order `len(rks) + 1`); corrector: `len(rks) + 1` weights, the last one for the
    new point ($r = 1$). As diffusers' `UniPCMultistepScheduler` (bh2): the second-order predictor uses $\rho = 1/2$,
    the first-order corrector $\rho = 1/2$; otherwise $R\rho = b$ with $R_{ik} = r_k^{i-1}$.
    """
    hh = -h
    b_h = math.expm1(hh)
    rk = np.array(list(rks) + [1.0])
    order = len(rk)
    h_phi_k, fact, b = math.expm1(hh) / hh - 1, 1, []
    for i in range(1, order + 1):
        b.append(h_phi_k * fact / b_h)
        fact *= i + 1
        h_phi_k = h_phi_k / hh - 1 / fact
    big_r = np.stack([rk ** (i - 1) for i in range(1, order + 1)])
    if corrector:
        rho = [0.5] if order == 1 else np.linalg.solve(big_r, np.array(b)).tolist()
    elif order == 1:
        rho = []
    else:
        rho = [0.5] if order == 2 else np.linalg.solve(big_r[:-1, :-1], np.array(b[:-1])).tolist()
    return b_h, rho


def _step_weights(lam, i_from: int, i_to: int, used: int, corrector: bool):
    """`(B(h), rho, rks)` of the step from grid point `i_from` to `i_to` with `used` predictions."""
    h = lam[i_to] - lam[i_from]
    rks = [(lam[i_from - k] - lam[i_from]) / h for k in range(1, used)]
    return (*unipc_weights(h, rks, corrector), rks)


def _update(x, ms, lam, i_from, i_to, al, si, weights, corrector_m=None):
    """One UniP step from grid point `i_from` to `i_to` with the history `ms` (newest last, at `i_from`, ...) and
    its `_step_weights`, or, given `corrector_m` (the prediction at `i_to`), the UniC correction of that step."""
    b_h, rho, rks = weights
    m0 = ms[-1]
    x_new = torch.add((si[i_to] / si[i_from]) * x, m0, alpha=-al[i_to] * math.expm1(-(lam[i_to] - lam[i_from])))
    if not rho:
        return x_new
    c = -al[i_to] * b_h
    for r, rk, m in zip(rho, rks, ms[-2::-1]):   # c rho_k (m_k - m0) / r_k
        x_new = x_new.add(m - m0, alpha=c * r / rk)
    return x_new if corrector_m is None else x_new.add(corrector_m - m0, alpha=c * rho[-1])


def unipc(eps_fn: EpsFn, sde: SDE, x: torch.Tensor, ts, *, order: int = 3, generator: torch.Generator | None = None,
          callback=None, lower_order_final: bool = True, clip_x0: float | None = None) -> torch.Tensor:
    r"""UniPC-`order` (bh2, data prediction) with the UniC corrector after every step but the last.

    One evaluation per step; the first steps warm up with lower orders, and with `lower_order_final` the last
    steps drop to order 1 (as diffusers). `ts`: a grid or an int number of steps on the default grid
    (`sdelab.grids.DEFAULT_GRID`); needs $\sigma > 0$ on the grid. `clip_x0` as in `sdelab.discrete.ddim_sample`.
    """
    if isinstance(order, bool) or order not in (1, 2, 3):
        raise ValueError(f"order must be 1, 2 or 3, got {order!r}")
    clip_x0, tb, tc, watch, al, si, lam = _log_snr_setup(sde, x, ts, "unipc", clip_x0)
    n, ms, x_last = len(tc) - 1, [], None
    used = [min(order, i + 1, n - i if lower_order_final else order) for i in range(n)]
    pred = [_step_weights(lam, i, i + 1, used[i], False) for i in range(n)]   # all weights before the loop
    corr = [None] + [_step_weights(lam, i - 1, i, used[i - 1], True) for i in range(1, n)]
    for i in range(n):
        m, _ = _clipped(x, _eps(eps_fn, x, tb[i]), al[i], si[i], clip_x0)
        if i > 0:  # correct the point just reached with its own prediction m (m itself is kept)
            x = _update(x_last, ms[-used[i - 1]:], lam, i - 1, i, al, si, corr[i], corrector_m=m)
        ms = (ms + [m])[-order:]
        x_last = x
        x = _update(x, ms[-used[i]:], lam, i, i + 1, al, si, pred[i])
        watch(x)
        if callback is not None:
            callback(i, float(tc[i + 1]), x)
    return watch.check(x)
