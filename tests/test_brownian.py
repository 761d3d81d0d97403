"""Brownian motion, Euler–Maruyama and convergence orders (sdelab.brownian).

Monte-Carlo checks use fixed seeds and tolerances in standard errors (SE); order checks compare the
measured least-squares slope with the theory: strong 1/2 (multiplicative noise), strong 1 (additive
noise), weak 1.
"""
import math

import numpy as np
import pytest
import torch
from scipy import stats

from sdelab import VPSDE
from sdelab import brownian as bm

F64 = torch.float64


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------ Brownian motion
def test_path_shape_start_mean_and_variance():
    ts = torch.linspace(0, 2, 41, dtype=F64)
    M = 20_000
    w = bm.brownian_path(ts, M, dim=2, generator=gen())
    assert w.shape == (41, M, 2) and w.dtype == F64
    assert torch.all(w[0] == 0)
    t = ts[1:, None]
    mean, var = w[1:].mean(1), w[1:].var(1)
    # E w = 0 within 5 SE (SE = sqrt(t/M)); Var w = t within 5 SE (SE of a sample variance = t sqrt(2/(M-1)))
    assert torch.all(mean.abs() <= 5 * torch.sqrt(t / M))
    assert torch.all((var - t).abs() <= 5 * t * math.sqrt(2 / (M - 1)))


def test_path_starting_after_zero_has_variance_t0():
    M = 20_000
    w = bm.brownian_path([0.5, 0.7, 1.0], M, generator=gen(1), dtype=F64)
    assert abs(w[0].var().item() - 0.5) <= 5 * 0.5 * math.sqrt(2 / M)
    assert abs(w[-1].var().item() - 1.0) <= 5 * 1.0 * math.sqrt(2 / M)


def test_increments_gaussian_with_variance_dt_and_independent():
    ts = torch.tensor([0.0, 0.1, 0.15, 0.4, 0.41, 1.0], dtype=F64)  # a non-uniform grid
    M = 20_000
    dw = bm.brownian_increments(ts, M, generator=gen(2))[..., 0]  # (5, M)
    dt = torch.diff(ts)[:, None]
    assert dw.shape == (5, M)
    var = dw.pow(2).mean(1, keepdim=True)
    assert torch.all((var - dt).abs() <= 5 * dt * math.sqrt(2 / M))
    z = (dw / dt.sqrt()).numpy()
    for row in z:  # standardised increments are N(0, 1): Kolmogorov–Smirnov and the fourth moment (3)
        assert stats.kstest(row, "norm").pvalue > 1e-3
        assert abs(np.mean(row**4) - 3.0) <= 5 * math.sqrt(96 / M)  # Var(z^4) = 105 - 9 = 96
    # non-overlapping increments are uncorrelated: sample correlation within 4 SE (SE = 1/sqrt(M))
    corr = np.corrcoef(z)
    off = corr[~np.eye(len(z), dtype=bool)]
    assert np.abs(off).max() <= 4 / math.sqrt(M)


def test_overlapping_increments_are_correlated():
    """The independence test above can fail: overlapping intervals share noise (Cov = overlap)."""
    ts = torch.linspace(0, 1, 3, dtype=F64)
    w = bm.brownian_path(ts, 20_000, generator=gen(3))[..., 0]
    a, b = w[2] - w[0], w[1] - w[0]  # [0, 1] and [0, 1/2]: covariance 1/2
    cov = ((a - a.mean()) * (b - b.mean())).mean().item()
    assert abs(cov - 0.5) < 0.05


def test_same_seed_same_output():
    ts = torch.linspace(0, 1, 11)
    assert torch.equal(bm.brownian_path(ts, 7, 3, generator=gen(5)), bm.brownian_path(ts, 7, 3, generator=gen(5)))
    assert not torch.equal(bm.brownian_path(ts, 7, 3, generator=gen(5)), bm.brownian_path(ts, 7, 3, generator=gen(6)))
    f = lambda x, t: -x  # noqa: E731
    x0 = torch.ones(5, 2)
    a = bm.euler_maruyama(f, 0.5, x0, ts, generator=gen(7))
    b = bm.euler_maruyama(f, 0.5, x0, ts, generator=gen(7))
    assert torch.equal(a, b)


def test_coarsen_and_refine_describe_the_same_path():
    ts = torch.linspace(0, 1, 5, dtype=F64)
    M = 20_000
    dw = bm.brownian_increments(ts, M, generator=gen(8))
    ts_f, dw_f = bm.refine(ts, dw, 4, generator=gen(9))
    assert ts_f.shape == (17,) and dw_f.shape == (16, M, 1)
    assert torch.allclose(ts_f[::4], ts)
    assert torch.allclose(bm.coarsen(dw_f, 4), dw, atol=1e-12)
    # the refined increments are Brownian increments over steps of 1/16: variance 1/16, uncorrelated
    var = dw_f[..., 0].pow(2).mean(1)
    assert torch.all((var - 1 / 16).abs() <= 5 / 16 * math.sqrt(2 / M))
    c = np.corrcoef(dw_f[:8, :, 0].numpy())
    assert np.abs(c[~np.eye(8, dtype=bool)]).max() <= 4 / math.sqrt(M)


# ------------------------------------------------------------------ Euler–Maruyama
def test_em_is_exact_for_constant_coefficients():
    ts = torch.linspace(0, 1, 21, dtype=F64)
    dw = bm.brownian_increments(ts, 4, 2, generator=gen(10))
    x0 = torch.randn(4, 2, generator=gen(11), dtype=F64)
    path = bm.euler_maruyama(lambda x, t: 0.3, 2.0, x0, ts, dw=dw)
    w = bm.path_from_increments(dw)
    exact = x0 + 0.3 * ts[:, None, None] + 2.0 * w
    assert path.shape == (21, 4, 2)
    assert torch.allclose(path, exact, atol=1e-12)
    last = bm.euler_maruyama(lambda x, t: 0.3, 2.0, x0, ts, dw=dw, return_path=False)
    assert torch.equal(last, path[-1])


def test_em_broadcasts_per_sample_coefficients_and_calls_back():
    ts = torch.linspace(0, 1, 5, dtype=F64)
    x0 = torch.zeros(3, 2, dtype=F64)
    dw = bm.brownian_increments(ts, 1, 2, generator=gen(12)).expand(4, 3, 2)  # one path shared by 3 samples
    seen = []
    g = lambda x, t: torch.tensor([0.0, 1.0, 2.0], dtype=F64)  # noqa: E731  (B,) -> one scale per sample
    path = bm.euler_maruyama(0.0, g, x0, ts, dw=dw, callback=lambda k, t, x: seen.append((k, float(t))))
    assert seen == [(1, 0.25), (2, 0.5), (3, 0.75), (4, 1.0)]
    assert torch.all(path[:, 0] == 0)
    assert torch.allclose(path[:, 2], 2 * path[:, 1])


def test_em_matches_ou_moments():
    """Monte-Carlo moments of EM agree with the exact EM recursion m_{k+1} = (1 - a h) m_k,
    v_{k+1} = (1 - a h)^2 v_k + g^2 h within 5 SE."""
    a, g, n, M = 1.5, 0.8, 50, 40_000
    ts = torch.linspace(0, 1, n + 1, dtype=F64)
    x = bm.euler_maruyama(lambda x, t: -a * x, g, torch.full((M, 1), 2.0, dtype=F64), ts, generator=gen(13),
                          return_path=False)
    h = 1 / n
    m, v = 2.0 * (1 - a * h) ** n, 0.0
    for _ in range(n):
        v = (1 - a * h) ** 2 * v + g**2 * h
    assert abs(x.mean().item() - m) <= 5 * math.sqrt(v / M)
    assert abs(x.var().item() - v) <= 5 * v * math.sqrt(2 / M)


def test_em_works_with_the_vp_sde():
    sde = VPSDE()
    ts = torch.linspace(0, 1, 201, dtype=F64)
    x0 = torch.full((20_000, 1), 3.0, dtype=F64)
    x = bm.euler_maruyama(lambda x, t: sde.drift(x, t), lambda x, t: sde.diffusion(t), x0, ts,
                          generator=gen(14), return_path=False)
    alpha, sigma = sde.mean_coeff(1.0).item(), sde.std(1.0).item()
    # EM's variance bias is about +4.8/N (CHECKLIST): tolerance 5 SE + 5/N
    assert abs(x.mean().item() - 3.0 * alpha) <= 5 * sigma / math.sqrt(20_000) + 5 / 200
    assert abs(x.var().item() - sigma**2) <= 5 * math.sqrt(2 / 20_000) + 5 / 200


# ------------------------------------------------------------------ convergence orders
def _fine_paths(M, nf, seed):
    """A uniform grid of nf steps on [0, 1] and the increments of M Brownian paths on it."""
    ts = torch.linspace(0, 1, nf + 1, dtype=F64)
    return ts, bm.brownian_increments(ts, M, generator=gen(seed))


def _em_coarse(f, g, x0, ts, dw, R):
    """x(1) from EM on every R-th point of the grid ts, driven by the same Brownian paths dw."""
    return bm.euler_maruyama(f, g, x0, ts[::R], dw=bm.coarsen(dw, R), return_path=False)


def _gbm(mu, s, M, nf, seed):
    """GBM dx = mu x dt + s x dw from x0 = 1 on M paths of a grid of nf steps: the exact x(1) on each path,
    x0 exp((mu - s^2/2) + s w(1)), and `em(R)`, the EM solution on the grid coarsened R times (same paths)."""
    ts, dw = _fine_paths(M, nf, seed)
    exact = torch.exp((mu - s**2 / 2) + s * dw.sum(0))
    x0 = torch.ones(M, 1, dtype=F64)
    return exact, lambda R: _em_coarse(lambda x, t: mu * x, lambda x, t: s * x, x0, ts, dw, R)


def test_strong_order_half_on_geometric_brownian_motion():
    """GBM dx = mu x dt + s x dw, exact x0 exp((mu - s^2/2) t + s w_t): strong order 1/2 (slope 0.5 +- 0.15)."""
    nf, Rs = 512, (1, 2, 4, 8, 16)
    exact, em = _gbm(mu=2.0, s=1.0, M=2000, nf=nf, seed=20)
    errs = [bm.strong_error(em(R), exact) for R in Rs]
    p = bm.convergence_order([R / nf for R in Rs], errs)
    assert abs(p - 0.5) <= 0.15, p


@pytest.mark.parametrize("which", ["ou", "vp"])
def test_strong_order_one_for_additive_noise(which):
    """Additive noise (g independent of x): EM = Milstein, strong order 1 (slope 1 +- 0.2). The exact
    solution on the same path is approximated by EM on a grid 8x finer than the finest tested."""
    if which == "ou":
        f, g = (lambda x, t: -2.0 * x), 1.0
    else:
        sde = VPSDE()
        f, g = (lambda x, t: sde.drift(x, t)), (lambda x, t: sde.diffusion(t))
    M, nf, Rs = 1000, 2048, (8, 16, 32, 64)
    ts, dw = _fine_paths(M, nf, seed=21)
    x0 = torch.randn(M, 1, generator=gen(22), dtype=F64)
    ref = _em_coarse(f, g, x0, ts, dw, 1)
    errs = [bm.strong_error(_em_coarse(f, g, x0, ts, dw, R), ref) for R in Rs]
    p = bm.convergence_order([R / nf for R in Rs], errs)
    assert abs(p - 1.0) <= 0.2, p


def test_weak_order_one_on_geometric_brownian_motion():
    """E x_T = e^{mu T}: weak order 1 (slope 1 +- 0.25). Paired with the exact solution (control variate)
    so that the O(h) errors stand well above the Monte-Carlo noise, which is checked too."""
    mu, nf, Rs = 1.0, 256, (2, 4, 8, 16, 32)
    exact, em = _gbm(mu=mu, s=0.5, M=20_000, nf=nf, seed=23)
    errs = []
    for R in Rs:
        err, se = bm.weak_error(em(R), x_ref=exact, return_stderr=True)
        assert err > 5 * se
        errs.append(err)
    p = bm.convergence_order([R / nf for R in Rs], errs)
    assert abs(p - 1.0) <= 0.25, p
    # the plain estimator against the closed form E x_T = e^mu agrees with the paired one within its noise
    plain, se = bm.weak_error(em(Rs[-1]), math.exp(mu), return_stderr=True)
    assert abs(plain - errs[-1]) <= 5 * se


def test_error_helpers_on_known_values():
    x = torch.tensor([[3.0, 4.0], [0.0, 0.0]])
    assert bm.strong_error(x, torch.zeros(2, 2)) == pytest.approx(2.5)  # norms 5 and 0
    assert bm.weak_error(x, 1.0, phi=lambda z: z[:, :1]) == pytest.approx(0.5)  # mean of first coordinate 1.5
    e, se = bm.strong_error(x, torch.zeros(2, 2), return_stderr=True)
    assert se == pytest.approx(np.std([5.0, 0.0], ddof=1) / math.sqrt(2))
    hs = np.array([0.1, 0.05, 0.025, 0.0125])
    assert bm.convergence_order(hs, 3 * hs**1.5) == pytest.approx(1.5)
    assert bm.convergence_order(torch.tensor(hs), torch.tensor(0.2 * hs)) == pytest.approx(1.0)


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("ts, match", [
    ([0.0, 0.5, 0.5, 1.0], "strictly increasing"),
    ([1.0, 0.5, 0.0], "strictly increasing"),
    ([0.0], "at least two"),
    ([[0.0, 1.0]], "1-D"),
    ([-0.1, 1.0], ">= 0"),
    ([0.0, float("nan")], "non-finite"),
])
def test_bad_grids(ts, match):
    with pytest.raises(ValueError, match=match):
        bm.brownian_path(ts, 3)
    with pytest.raises(ValueError, match=match):
        bm.euler_maruyama(0.0, 1.0, torch.zeros(2), ts)


@pytest.mark.parametrize("n_paths", [0, -1, 1.5, True])
def test_bad_n_paths(n_paths):
    with pytest.raises(ValueError, match="n_paths"):
        bm.brownian_increments([0.0, 1.0], n_paths)


def test_other_bad_inputs():
    ts = torch.linspace(0, 1, 5)
    with pytest.raises(ValueError, match="dim"):
        bm.brownian_path(ts, 2, dim=0)
    with pytest.raises(ValueError, match="x0"):
        bm.euler_maruyama(0.0, 1.0, torch.tensor(1.0), ts)
    with pytest.raises(ValueError, match="x0"):
        bm.euler_maruyama(0.0, 1.0, torch.tensor([1.0, float("inf")]), ts)
    with pytest.raises(ValueError, match="dw must have shape"):
        bm.euler_maruyama(0.0, 1.0, torch.zeros(3, 1), ts, dw=torch.zeros(3, 3, 1))
    with pytest.raises(ValueError, match="divisible"):
        bm.coarsen(torch.zeros(6, 2, 1), 4)
    with pytest.raises(ValueError, match="factor"):
        bm.refine_grid(ts, 0)
    with pytest.raises(ValueError, match="dw must have shape"):
        bm.refine(ts, torch.zeros(3, 2, 1), 2)
    with pytest.raises(ValueError, match="same length"):
        bm.convergence_order([0.1, 0.2], [1.0])
    with pytest.raises(ValueError, match="errors must be finite and > 0"):
        bm.convergence_order([0.1, 0.2], [0.0, 1.0])
    with pytest.raises(ValueError, match="two different"):
        bm.convergence_order([0.1, 0.1], [1.0, 2.0])
    with pytest.raises(ValueError, match="exactly one"):
        bm.weak_error(torch.zeros(3, 1))
    with pytest.raises(ValueError, match="exactly one"):
        bm.weak_error(torch.zeros(3, 1), 0.0, x_ref=torch.zeros(3, 1))
    with pytest.raises(ValueError, match="same shape"):
        bm.strong_error(torch.zeros(3, 1), torch.zeros(2, 1))
