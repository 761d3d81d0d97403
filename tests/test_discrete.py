"""Tests for sdelab.discrete: DDPM schedule and posterior, ancestral sampling, DDIM, DPM-Solver++(2M)."""
import math

import numpy as np
import pytest
import torch

from sdelab.discrete import (ddim_sample, ddim_step, ddpm_sample, ddpm_schedule, dpm_solver_2m, logsnr_time_grid,
                             posterior_coefficients, posterior_mean_variance)
from sdelab.metrics import mmd, sliced_wasserstein
from sdelab.samplers import CountingScore
from sdelab.sde import VESDE, VPSDE, SubVPSDE
from sdelab.toy import GaussianMixture, ring

F64 = torch.float64
SDES = {"vp": VPSDE, "subvp": SubVPSDE, "ve": lambda: VESDE(sigma_max=5.0)}


def gen(seed):
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------------- schedule and posterior
def test_ddpm_schedule_matches_ho_et_al():
    s = ddpm_schedule(VPSDE(), 1000)
    torch.testing.assert_close(s.betas, torch.linspace(1e-4, 0.02, 1000, dtype=F64), rtol=0, atol=1e-15)
    torch.testing.assert_close(s.alphas_cumprod, torch.cumprod(1 - s.betas, 0))
    assert s.alphas_cumprod_prev[0] == 1 and s.alphas_cumprod_prev[1:].equal(s.alphas_cumprod[:-1])
    assert s.N == 1000 and float(s.times[-1]) == 1.0 and all(v.dtype == F64 for v in (s.betas, s.posterior_variance))
    # Bayes: q(x_{i-1} | x_i, x0) ∝ N(x_i; sqrt(1-b) x_{i-1}, b) N(x_{i-1}; sqrt(abar_prev) x0, 1 - abar_prev)
    b, ap = s.betas, s.alphas_cumprod_prev
    prec = (1 - b) / b + 1 / (1 - ap)
    torch.testing.assert_close(s.posterior_variance[1:], 1 / prec[1:], rtol=1e-10, atol=0)
    torch.testing.assert_close(s.posterior_mean_coef1[1:], (ap.sqrt() / (1 - ap) / prec)[1:], rtol=1e-10, atol=0)
    torch.testing.assert_close(s.posterior_mean_coef2, (1 - b).sqrt() / b / prec, rtol=1e-10, atol=0)
    assert float(s.posterior_variance[0]) == 0.0 and float(s.posterior_mean_coef1[0]) == pytest.approx(1.0)


def test_posterior_mean_variance_shapes():
    s = ddpm_schedule(VPSDE(), 100)
    x0, xt = torch.randn(3, 1, 4, 4, generator=gen(0)), torch.randn(3, 1, 4, 4, generator=gen(1))
    mean, var = posterior_mean_variance(x0, xt, 50, s)
    torch.testing.assert_close(mean, float(s.posterior_mean_coef1[50]) * x0 + float(s.posterior_mean_coef2[50]) * xt)
    assert var.ndim == 0
    idx = torch.tensor([0, 50, 99])
    mean_b, var_b = posterior_mean_variance(x0, xt, idx, s)
    assert mean_b.shape == x0.shape and var_b.shape == (3, 1, 1, 1)
    torch.testing.assert_close(mean_b[1], mean[1])
    torch.testing.assert_close(var_b[1].reshape(()), var)


@pytest.mark.parametrize("name", SDES)
def test_posterior_coefficients_by_bayes(name):
    # q(x_s | x_t, x0) from q(x_s | x0) = N(a_s x0, s_s^2) and q(x_t | x_s) = N(a_ts x_s, s_ts^2):
    # precision 1/s_s^2 + a_ts^2/s_ts^2, mean (a_s x0/s_s^2 + a_ts x_t/s_ts^2)/precision.
    sde = SDES[name]()
    t, s = torch.tensor([0.3, 0.8, 1.0], dtype=F64), torch.tensor([0.1, 0.75, 0.5], dtype=F64)
    a_t, a_s, s_t, s_s = sde.mean_coeff(t), sde.mean_coeff(s), sde.std(t), sde.std(s)
    a_ts = a_t / a_s
    v_ts = s_t**2 - a_ts**2 * s_s**2
    prec = 1 / s_s**2 + a_ts**2 / v_ts
    c0, ct, var = posterior_coefficients(sde, t, s)
    torch.testing.assert_close(var, 1 / prec, rtol=1e-9, atol=0)
    torch.testing.assert_close(c0, a_s / s_s**2 / prec, rtol=1e-9, atol=0)
    torch.testing.assert_close(ct, a_ts / v_ts / prec, rtol=1e-9, atol=0)


def test_exact_schedule_equals_continuous_posterior():
    # With beta_i = 1 - exp(-(B(t_i) - B(t_{i-1}))), DDPM's coefficients are those of the VP kernel on the grid.
    sde, N = VPSDE(), 50
    s = ddpm_schedule(sde, N, exact=True)
    t = s.times
    c0, ct, var = posterior_coefficients(sde, t, t - 1.0 / N)
    torch.testing.assert_close(var, s.posterior_variance, rtol=1e-9, atol=1e-15)
    torch.testing.assert_close(c0, s.posterior_mean_coef1, rtol=1e-9, atol=1e-15)
    torch.testing.assert_close(ct, s.posterior_mean_coef2, rtol=1e-9, atol=1e-15)
    torch.testing.assert_close(s.alphas_cumprod, sde.alpha_bar(t), rtol=1e-12, atol=0)


# ---------------------------------------------------------------------- DDPM, DDIM
def test_ddpm_sample_is_ho_algorithm_2():
    # On ts = linspace(1, 0, N + 1) with exact betas, ddpm_sample is Ho et al.'s Algorithm 2 step for step.
    sde, N = VPSDE(), 20
    s = ddpm_schedule(sde, N, exact=True)
    eps_fn = ring(dtype=F64).eps_fn(sde)
    x = sde.prior_sample((16, 2), generator=gen(0), dtype=F64)
    out = ddpm_sample(eps_fn, sde, x, torch.linspace(1.0, 0.0, N + 1, dtype=F64), generator=gen(1))
    g, y = gen(1), x.clone()
    for i in reversed(range(N)):  # DDPM step i + 1 at time (i + 1)/N
        b, ab = float(s.betas[i]), float(s.alphas_cumprod[i])
        eps = eps_fn(y, torch.full((16,), (i + 1) / N, dtype=F64))
        y = (y - b / math.sqrt(1 - ab) * eps) / math.sqrt(1 - b)
        if i > 0:
            y = y + math.sqrt(float(s.posterior_variance[i])) * torch.randn(y.shape, generator=g, dtype=F64)
    torch.testing.assert_close(out, y, rtol=1e-9, atol=1e-9)


def test_ddim_step_is_equation_12():
    x, eps, z = (torch.randn(4, 3, generator=gen(k), dtype=F64) for k in range(3))
    ab_t, ab_p = 0.3, 0.7
    for eta in (0.0, 0.5, 1.0):
        sig = eta * math.sqrt((1 - ab_p) / (1 - ab_t)) * math.sqrt(1 - ab_t / ab_p)
        x0 = (x - math.sqrt(1 - ab_t) * eps) / math.sqrt(ab_t)
        ref = math.sqrt(ab_p) * x0 + math.sqrt(1 - ab_p - sig**2) * eps + sig * z
        torch.testing.assert_close(ddim_step(x, eps, ab_t, ab_p, eta=eta, noise=z), ref)
    # eta = 1: sigma^2 is DDPM's posterior variance and the mean is DDPM's posterior mean
    b = 1 - ab_t / ab_p
    x0 = (x - math.sqrt(1 - ab_t) * eps) / math.sqrt(ab_t)
    mean = math.sqrt(ab_p) * b / (1 - ab_t) * x0 + math.sqrt(1 - b) * (1 - ab_p) / (1 - ab_t) * x
    torch.testing.assert_close(ddim_step(x, eps, ab_t, ab_p, eta=1.0, noise=torch.zeros_like(x)), mean)
    torch.testing.assert_close(ddim_step(x, eps, ab_t, ab_p, eta=1.0, noise=z) - mean,
                               math.sqrt(b * (1 - ab_p) / (1 - ab_t)) * z)
    # per-sample alpha_bar tensors broadcast
    out = ddim_step(x, eps, torch.full((4,), ab_t), torch.full((4,), ab_p))
    torch.testing.assert_close(out, ddim_step(x, eps, ab_t, ab_p))


def test_ddim_eta0_deterministic_and_eta1_is_ddpm():
    sde = VPSDE()
    eps_fn = ring(dtype=F64).eps_fn(sde)
    x = sde.prior_sample((100, 2), generator=gen(0), dtype=F64)
    ts = sde.time_grid(30)
    g = gen(5)
    state = g.get_state()
    a = ddim_sample(eps_fn, sde, x, ts, generator=g)
    assert g.get_state().equal(state)  # no noise drawn
    assert a.equal(ddim_sample(eps_fn, sde, x, ts, generator=gen(6)))
    # eta = 1 has DDPM's posterior mean and variance: with the same seed it is ddpm_sample path by path
    torch.testing.assert_close(ddim_sample(eps_fn, sde, x, ts, eta=1.0, generator=gen(7)),
                               ddpm_sample(eps_fn, sde, x, ts, generator=gen(7)), rtol=1e-9, atol=1e-9)


def test_ddim_eta1_matches_ddpm_in_distribution():
    # Independent seeds: DDIM(eta = 1) and DDPM samples of the ring are as close as two data samples
    # (SW within 2x the data-vs-data value, unbiased MMD^2 below 2e-3, about 3 of its standard errors).
    sde, mix, n = VPSDE(), ring(dtype=F64), 1000
    x1 = sde.prior_sample((n, 2), generator=gen(0), dtype=F64)
    x2 = sde.prior_sample((n, 2), generator=gen(1), dtype=F64)
    ts = sde.time_grid(200)
    a = ddim_sample(mix.eps_fn(sde), sde, x1, ts, eta=1.0, generator=gen(2))
    b = ddpm_sample(mix.eps_fn(sde), sde, x2, ts, generator=gen(3))
    floor = float(sliced_wasserstein(mix.sample(n, gen(4)), mix.sample(n, gen(5)), generator=gen(9)))
    assert float(sliced_wasserstein(a, b, generator=gen(9))) < 2 * floor
    assert abs(float(mmd(a, b))) < 2e-3


def test_ddim_is_exact_for_point_mass_data():
    # For (nearly) point-mass data x0_hat is exact, so one DDIM (= DPM-Solver-1) step is the exact PF-ODE map
    # x_eps = alpha_eps mu + sigma_eps (x_T - alpha_T mu)/sigma_T, up to O(s^2/sigma_eps^2) = 1e-8.
    for sde in (VPSDE(), VESDE()):
        mu = torch.tensor([[0.7, -1.2]], dtype=F64)
        point = GaussianMixture(mu, 1e-6)
        x = sde.prior_sample((8, 2), generator=gen(0), dtype=F64)
        ts = torch.tensor([1.0, 1e-3], dtype=F64)
        exact = sde.mean_coeff(1e-3) * mu + sde.std(1e-3) * (x - sde.mean_coeff(1.0) * mu) / sde.std(1.0)
        torch.testing.assert_close(ddim_sample(point.eps_fn(sde), sde, x, ts), exact, rtol=0, atol=1e-6)
        torch.testing.assert_close(dpm_solver_2m(point.eps_fn(sde), sde, x, ts), exact, rtol=0, atol=1e-6)


# ---------------------------------------------------------------------- convergence orders (1-D Gaussian data)
M0, S0 = 1.0, 0.5
GAUSS = GaussianMixture([[M0]], S0, dtype=F64)


def gauss_var(sde, t):
    return float(sde.mean_coeff(t)) ** 2 * S0**2 + float(sde.std(t)) ** 2


@pytest.mark.parametrize("name", SDES)
@pytest.mark.parametrize("solver, order, grid", [
    (ddim_sample, 1.0, "uniform"), (dpm_solver_2m, 2.0, "logsnr"),
])
def test_convergence_order(name, solver, order, grid):
    # Error of the T -> 1e-3 map against the exact affine PF-ODE map for N(1, 0.5^2) data, K = 20..160
    # steps; log-log slope within +-0.25 (observed: DDIM 0.97-0.98; DPM-Solver++(2M) on a log-SNR grid 1.9-1.96).
    sde = SDES[name]()
    aT, ae = float(sde.mean_coeff(1.0)), float(sde.mean_coeff(1e-3))
    x = aT * M0 + math.sqrt(gauss_var(sde, 1.0)) * torch.linspace(-2, 2, 9, dtype=F64)[:, None]
    exact = ae * M0 + math.sqrt(gauss_var(sde, 1e-3) / gauss_var(sde, 1.0)) * (x - aT * M0)
    Ks = [20, 40, 80, 160]
    errs = []
    for K in Ks:
        ts = sde.time_grid(K) if grid == "uniform" else logsnr_time_grid(sde, K)
        errs.append(float((solver(GAUSS.eps_fn(sde), sde, x, ts) - exact).abs().max()))
    slope = -np.polyfit(np.log(Ks), np.log(errs), 1)[0]
    assert abs(slope - order) < 0.25, (slope, errs)


def test_logsnr_time_grid():
    for sde in SDES.values():
        sde = sde()
        ts = logsnr_time_grid(sde, 10, eps=1e-3)
        assert ts.shape == (11,) and float(ts[0]) == 1.0 and float(ts[-1]) == 1e-3 and (ts[1:] < ts[:-1]).all()
        lam = torch.log(sde.mean_coeff(ts)) - torch.log(sde.std(ts))
        d = torch.diff(lam)
        torch.testing.assert_close(d, d.mean().expand(10), rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------------- recovering the ring
def check_ring(mix, sde, x0, floor, fresh, sw, tol=0.05):
    # as in test_samplers: mode std within `tol` of p_eps's 0.1005 (standard error 0.0011), mode weights
    # within 0.035 (4.7 SE), sliced W2 to fresh data < 2x the data-vs-data floor
    k = torch.cdist(x0, mix.means).argmin(1)
    spread = float((x0 - mix.means[k]).std())
    exact = math.sqrt(0.01 * float(sde.mean_coeff(1e-3)) ** 2 + float(sde.std(1e-3)) ** 2)
    assert abs(spread - exact) < tol * exact, (spread, exact)
    freq = torch.bincount(k, minlength=8).double() / len(x0)
    assert float((freq - mix.weights).abs().max()) < 0.035
    assert sw(x0, fresh) < 2.0 * floor


@pytest.fixture(scope="module")
def ring_case():
    mix, n = ring(dtype=F64), 2000
    sw = lambda a, b: float(sliced_wasserstein(a, b, n_proj=128, generator=gen(123)))  # noqa: E731
    floor = np.mean([sw(mix.sample(n, gen(s)), mix.sample(n, gen(s + 100))) for s in range(4)])
    return mix, floor, mix.sample(n, gen(999)), sw


@pytest.mark.parametrize("solver, ts_fn, tol", [
    # ancestral sampling plugs E[x0 | x_t] into the posterior and so loses variance at O(1/N): the
    # within-mode spread is 3.4 % low at 1000 steps (7 % at 500), hence the wider tolerance
    (ddpm_sample, lambda sde: sde.time_grid(1000), 0.07),
    (ddim_sample, lambda sde: sde.time_grid(500), 0.05),  # observed -2.7 %
    (dpm_solver_2m, lambda sde: logsnr_time_grid(sde, 25), 0.05),  # observed +1.8 %
])
def test_discrete_samplers_recover_the_ring(ring_case, solver, ts_fn, tol):
    mix, floor, fresh, sw = ring_case
    sde = VPSDE()
    x = sde.prior_sample((2000, 2), generator=gen(1), dtype=F64)
    x0 = solver(mix.eps_fn(sde), sde, x, ts_fn(sde), generator=gen(2))
    check_ring(mix, sde, x0, floor, fresh, sw, tol)


# ---------------------------------------------------------------------- clip_x0 (clamping the predicted x0)
SOLVERS = {"ddpm": ddpm_sample, "ddim": ddim_sample, "dpm2m": dpm_solver_2m}


@pytest.mark.parametrize("name", SOLVERS)
def test_clip_x0_leaves_an_exact_denoiser_unchanged(name):
    # Data inside [-0.8, 0.8]^2 (std 0.01): the exact x0_hat = E[x0 | x_t] stays in the convex hull (+- 0.05), so
    # clamping to [-1, 1] never acts and the samples agree with the unclipped ones to rounding (float64).
    sde = VPSDE()
    mix = GaussianMixture(torch.tensor([[0.8, -0.8], [-0.5, 0.3], [0.0, 0.8]], dtype=F64), 0.01)
    x = sde.prior_sample((64, 2), generator=gen(0), dtype=F64)
    ts = logsnr_time_grid(sde, 20) if name == "dpm2m" else sde.time_grid(40)
    a = SOLVERS[name](mix.eps_fn(sde), sde, x, ts, generator=gen(1))
    b = SOLVERS[name](mix.eps_fn(sde), sde, x, ts, generator=gen(1), clip_x0=1.0)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-10)


@pytest.mark.parametrize("name", SOLVERS)
def test_clip_x0_one_step_formula(name):
    # One step t -> s with an arbitrary noise prediction: DDIM / DPM-Solver-1 give
    # x_s = (sigma_s/sigma_t) x_t + (alpha_s - sigma_s alpha_t/sigma_t) clip(x0_hat), DDPM's (noise-free) last step
    # c0 clip(x0_hat) + ct x_t, with x0_hat = (x_t - sigma_t eps)/alpha_t clamped to [-c, c].
    sde, c = VPSDE(), 0.7
    t, s = 0.6, 0.2
    x = torch.randn(5, 1, 4, 4, generator=gen(0), dtype=F64)
    e = 3 * torch.randn(5, 1, 4, 4, generator=gen(1), dtype=F64)
    a_t, s_t, a_s, s_s = (float(f(torch.tensor(v, dtype=F64)))
                          for f, v in ((sde.mean_coeff, t), (sde.std, t), (sde.mean_coeff, s), (sde.std, s)))
    x0 = ((x - s_t * e) / a_t).clamp(-c, c)
    assert ((x - s_t * e) / a_t).abs().max() > c  # the clamp acts
    if name == "ddpm":
        c0, ct, _ = posterior_coefficients(sde, t, s)
        expected = float(c0) * x0 + float(ct) * x
    else:
        expected = (s_s / s_t) * x + (a_s - s_s * a_t / s_t) * x0
    out = SOLVERS[name](lambda xx, tt: e, sde, x, torch.tensor([t, s], dtype=F64), generator=gen(2), clip_x0=c)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ["ddpm", "ddim"])
def test_clip_x0_bounds_samples_that_end_at_zero(name):
    # A model whose denoiser overshoots the data range (the exact one of N(0, 2^2 I) data, standing in for a
    # network that extrapolates x0_hat linearly off the data) gives samples far outside [-1, 1] (std 2); on a grid
    # ending at t = 0 the last step returns x0_hat itself, so with clip_x0 = 1 every sample lies in [-1, 1].
    sde = VPSDE()
    wide = GaussianMixture(torch.zeros(1, 2, dtype=F64), 2.0)
    x = sde.prior_sample((256, 2), generator=gen(0), dtype=F64)
    ts = torch.linspace(1.0, 0.0, 41, dtype=F64)
    plain = SOLVERS[name](wide.eps_fn(sde), sde, x, ts, generator=gen(1))
    clipped = SOLVERS[name](wide.eps_fn(sde), sde, x, ts, generator=gen(1), clip_x0=1.0)
    assert plain.abs().max() > 3
    assert clipped.abs().max() <= 1.0


# ---------------------------------------------------------------------- shapes, seeds, NFE, bad input
IMG = GaussianMixture(torch.zeros(2, 784).index_fill_(1, torch.tensor([0, 5]), 1.0), 0.5)


@pytest.mark.parametrize("solver", [ddpm_sample, ddim_sample, dpm_solver_2m])
@pytest.mark.parametrize("shape", [(6, 2), (3, 1, 28, 28)])
def test_shapes_seeds_and_nfe(solver, shape):
    sde = VPSDE()
    mix = ring() if shape[-1] == 2 else IMG
    x = sde.prior_sample(shape, generator=gen(0))
    eps = CountingScore(mix.eps_fn(sde))
    a = solver(eps, sde, x, sde.time_grid(5), generator=gen(1))
    assert a.shape == x.shape and a.dtype == x.dtype and torch.isfinite(a).all() and eps.nfe == 5
    assert a.equal(solver(mix.eps_fn(sde), sde, x, sde.time_grid(5), generator=gen(1)))
    seen = []
    solver(mix.eps_fn(sde), sde, x, sde.time_grid(5), generator=gen(1), callback=lambda i, t, x: seen.append(i))
    assert seen == list(range(5))


def test_grid_ending_at_zero():
    # DDPM and DDIM may end at t = 0 (the last step returns x0_hat); DPM-Solver needs sigma > 0.
    sde = VPSDE()
    eps_fn = ring().eps_fn(sde)
    x = sde.prior_sample((4, 2), generator=gen(0))
    ts = torch.linspace(1.0, 0.0, 11)
    assert torch.isfinite(ddpm_sample(eps_fn, sde, x, ts, generator=gen(1))).all()
    assert torch.isfinite(ddim_sample(eps_fn, sde, x, ts)).all()
    with pytest.raises(ValueError, match="sigma"):
        dpm_solver_2m(eps_fn, sde, x, ts)


@pytest.mark.parametrize("call, match", [
    (lambda: ddpm_schedule(VESDE(), 10), "discrete betas"),
    (lambda: ddpm_schedule(VPSDE(), 0), "N"),
    (lambda: posterior_mean_variance(torch.zeros(2, 2), torch.zeros(2, 2), 40, ddpm_schedule(VPSDE(), 40)), "i must"),
    (lambda: posterior_mean_variance(torch.zeros(2, 2), torch.zeros(2, 2), torch.tensor([1, 2, 3]),
                                     ddpm_schedule(VPSDE(), 40)), "i must"),
    (lambda: posterior_mean_variance(torch.zeros(2, 2), torch.zeros(3, 2), 1, ddpm_schedule(VPSDE(), 40)), "same shape"),
    (lambda: posterior_coefficients(VPSDE(), 0.2, 0.5), "s < t"),
    (lambda: posterior_coefficients(VPSDE(), 1.5, 0.5), "t must lie"),
    (lambda: ddim_step(torch.zeros(2, 2), torch.zeros(2, 2), 0.3, 0.7, eta=1.0), "noise"),
    (lambda: ddim_step(torch.zeros(2, 2), torch.zeros(2, 2), 0.3, 0.7, eta=1.5), "eta"),
    (lambda: ddim_step(torch.zeros(2, 2), torch.zeros(2, 2), 0.7, 0.3), "alpha_bar"),
    (lambda: ddim_sample(ring().eps_fn(VPSDE()), VPSDE(), torch.zeros(2, 2), VPSDE().time_grid(3), eta=-0.1), "eta"),
    (lambda: ddim_sample(ring().eps_fn(VPSDE()), VPSDE(), torch.zeros(2, 2), torch.tensor([0.5, 1.0])), "decreasing"),
    (lambda: ddpm_sample(ring().eps_fn(VPSDE()), VPSDE(), torch.zeros(2, 2), torch.tensor([1.0])), "at least two"),
    (lambda: ddpm_sample(ring().eps_fn(VPSDE()), VPSDE(), torch.zeros(2, 2), torch.tensor([1.2, 0.1])), r"\[0, T\]"),
    (lambda: dpm_solver_2m(ring().eps_fn(VPSDE()), VPSDE(), torch.full((2, 2), float("inf")), VPSDE().time_grid(3)),
     "x contains"),
    (lambda: dpm_solver_2m(lambda x, t: x[:1], VPSDE(), torch.zeros(2, 2), VPSDE().time_grid(3)), "eps_fn must"),
    (lambda: ddim_sample(ring().eps_fn(VPSDE()), VPSDE(), torch.zeros(2, 2), VPSDE().time_grid(3), clip_x0=0.0),
     "clip_x0"),
    (lambda: ddpm_sample(ring().eps_fn(VPSDE()), VPSDE(), torch.zeros(2, 2), VPSDE().time_grid(3),
                         clip_x0=float("nan")), "clip_x0"),
    (lambda: dpm_solver_2m(ring().eps_fn(VPSDE()), VPSDE(), torch.zeros(2, 2), VPSDE().time_grid(3), clip_x0=True),
     "clip_x0"),
    (lambda: logsnr_time_grid(VPSDE(), 0), "n_steps"),
    (lambda: logsnr_time_grid(VPSDE(), 5, eps=0.0), "eps"),
])
def test_bad_input_raises(call, match):
    with pytest.raises(ValueError, match=match):
        call()
