"""UniPC (sdelab.unipc): measured orders on Gaussian data, the corrector's extra order, bad input."""
import math

import numpy as np
import pytest
import torch

from sdelab.discrete import ddim_sample
from sdelab.multistep import dpm_solver_3m
from sdelab.sde import VPSDE
from sdelab.toy import GaussianMixture, ring
from sdelab.unipc import unipc, unipc_weights

F64 = torch.float64
SDE, M0, S0 = VPSDE(), 1.0, 0.5
GAUSS = GaussianMixture([[M0]], S0, dtype=F64)
KS = [16, 32, 64, 128]


def _var(t):
    return float(SDE.mean_coeff(t)) ** 2 * S0**2 + float(SDE.std(t)) ** 2


def _errors(fn, **kw):
    """Max error of the T -> 1e-3 map on log-SNR grids of KS steps against the exact affine PF-ODE map of N(1, 0.5^2)."""
    a_t = float(SDE.mean_coeff(1.0))
    x = a_t * M0 + math.sqrt(_var(1.0)) * torch.linspace(-2, 2, 9, dtype=F64)[:, None]
    exact = float(SDE.mean_coeff(1e-3)) * M0 + math.sqrt(_var(1e-3) / _var(1.0)) * (x - a_t * M0)
    return [float((fn(GAUSS.eps_fn(SDE), SDE, x, SDE.time_grid(k, kind="logsnr"), **kw) - exact).abs().max())
            for k in KS]


def _slope(errs):
    return -np.polyfit(np.log(KS), np.log(errs), 1)[0]


@pytest.mark.parametrize("order, low, high, lof", [(1, 1.8, 2.2, True), (2, 2.7, 3.2, True), (3, 3.3, 4.2, False)])
def test_the_corrector_adds_one_order(order, low, high, lof):
    # Measured slopes (K = 16..128): order 1 -> 1.96, order 2 -> 2.91, order 3 -> 3.63 (without the first-order
    # last step, which caps it at about 2.9). DDIM, the predictor of order 1 alone, has slope 1.
    slope = _slope(_errors(unipc, order=order, lower_order_final=lof))
    assert low < slope < high, slope


def test_unipc3_beats_dpm_solver_3m_at_every_step_count():
    # Measured ratio of max errors UniPC-3 / DPM-Solver++(3M): 0.087 at K = 16, 0.02-0.05 for K >= 32.
    ratios = [u / d for u, d in zip(_errors(unipc, order=3), _errors(dpm_solver_3m))]
    assert max(ratios) < 0.15, ratios


def test_one_step_of_order_one_is_ddim_and_the_corrector_changes_the_next():
    sde, mix = VPSDE(), ring(dtype=F64)
    x = sde.prior_sample((16, 2), generator=torch.Generator().manual_seed(0), dtype=F64)
    ts, eps = sde.time_grid(8, kind="logsnr"), mix.eps_fn(sde)
    assert torch.allclose(unipc(eps, sde, x, ts[:2], order=1), ddim_sample(eps, sde, x, ts[:2]), atol=1e-12)
    assert not torch.allclose(unipc(eps, sde, x, ts[:3], order=1), ddim_sample(eps, sde, x, ts[:3]), atol=1e-6)


def test_weights_of_order_two_corrector_solve_the_order_conditions():
    # corrector with one earlier point at r = -0.8 and the new point at r = 1: R rho = b, R = [[1, 1], [r, 1]]
    h = 0.4
    b_h, rho = unipc_weights(h, [-0.8], corrector=True)
    hh, phi1 = -h, math.expm1(-h)
    b1 = (phi1 / hh - 1) / b_h
    b2 = ((phi1 / hh - 1) / hh - 0.5) * 2 / b_h
    assert b_h == pytest.approx(math.expm1(-h))
    assert rho[0] + rho[1] == pytest.approx(b1, rel=1e-12)
    assert -0.8 * rho[0] + rho[1] == pytest.approx(b2, rel=1e-12)


def test_bad_input():
    x = torch.zeros(4, 2, dtype=F64)
    eps = ring(dtype=F64).eps_fn(SDE)
    with pytest.raises(ValueError, match="order must be 1, 2 or 3"):
        unipc(eps, SDE, x, 10, order=4)
    with pytest.raises(ValueError, match="sigma"):
        unipc(eps, SDE, x, torch.tensor([1.0, 0.5, 0.0], dtype=F64))
