"""Tests for sdelab.sde and sdelab.utils: closed-form kernels against simulation, autograd and DDPM."""
import math

import pytest
import torch

from sdelab.sde import VESDE, VPSDE, BetaSchedule, SubVPSDE, pf_drift, reverse_drift
from sdelab.utils import append_dims, as_time, check_batch, check_grid, check_positive, check_time

F64 = torch.float64

SDES = {
    "vp-linear": lambda: VPSDE(),
    "vp-cosine": lambda: VPSDE(schedule="cosine"),
    "subvp-linear": lambda: SubVPSDE(),
    "subvp-cosine": lambda: SubVPSDE(schedule="cosine"),
    "ve": lambda: VESDE(),
}


def em_moments(sde, n_steps, m0, v0, t_end):
    """Exact mean and variance of the Euler–Maruyama chain x <- (1 + a dt) x + g sqrt(dt) z for x0 ~ N(m0, v0)."""
    ts = torch.linspace(0, t_end, n_steps + 1, dtype=F64)[:-1]
    a, g2, dt = sde.drift_coeff(ts).tolist(), (sde.diffusion(ts) ** 2).tolist(), t_end / n_steps
    m, v = m0, v0
    for ai, gi in zip(a, g2):
        m, v = (1 + ai * dt) * m, (1 + ai * dt) ** 2 * v + gi * dt
    return m, v


@pytest.mark.parametrize("name", SDES)
@pytest.mark.parametrize("t_end", [0.5, 1.0])
def test_em_moments_converge_to_closed_form(name, t_end):
    # The EM moment recursion is first order in dt; Richardson extrapolation 2 r(2N) - r(N) removes the
    # 1/N term, so it must match alpha m0 and alpha^2 v0 + sigma^2 far better than r(N) does (< 3 % of
    # r(N)'s error; the observed remainder is <= 0.8 %), and r(N)'s error must shrink like 1/N.
    sde, m0, v0, N = SDES[name](), 1.5, 0.25, 1000
    alpha, sigma = float(sde.mean_coeff(t_end)), float(sde.std(t_end))
    exact = (alpha * m0, alpha**2 * v0 + sigma**2)
    r1, r2 = em_moments(sde, N, m0, v0, t_end), em_moments(sde, 2 * N, m0, v0, t_end)
    for k in range(2):
        e1, e2 = r1[k] - exact[k], r2[k] - exact[k]
        assert abs(2 * r2[k] - r1[k] - exact[k]) <= 0.03 * abs(e1) + 1e-12 * max(1.0, exact[k])
        if abs(e1) > 1e-12 * max(1.0, exact[k]):
            assert 1.8 < e1 / e2 < 2.2  # order 1


@pytest.mark.parametrize("name", SDES)
def test_monte_carlo_marginals(name):
    # Simulate the forward SDE with fine EM (N = 1000 steps, n = 10^4 paths from N(1.5, 0.5^2)); at
    # t = T/2 and T the sample mean and variance must match alpha m0 and alpha^2 v0 + sigma^2 within
    # 4 standard errors plus EM's own O(dt) bias, computed exactly by the moment recursion.
    sde, gen, n, N = SDES[name](), torch.Generator().manual_seed(0), 10_000, 1000
    x = 1.5 + 0.5 * torch.randn(n, 1, generator=gen, dtype=F64)
    ts = torch.linspace(0, sde.T, N + 1, dtype=F64)
    dt = sde.T / N
    for i in range(N):
        t = ts[i].expand(n)
        x = x + sde.drift(x, t) * dt + append_dims(sde.diffusion(t), 2) * math.sqrt(dt) * torch.randn(
            x.shape, generator=gen, dtype=F64)
        if i + 1 in (N // 2, N):
            t_now = float(ts[i + 1])
            alpha, sigma = float(sde.mean_coeff(t_now)), float(sde.std(t_now))
            m, v = 1.5 * alpha, 0.25 * alpha**2 + sigma**2
            bm, bv = (r - e for r, e in zip(em_moments(sde, i + 1, 1.5, 0.25, t_now), (m, v)))
            assert abs(float(x.mean()) - m) <= 4 * math.sqrt(v / n) + abs(bm)
            assert abs(float(x.var()) - v) <= 4 * v * math.sqrt(2 / (n - 1)) + abs(bv)


@pytest.mark.parametrize("name", SDES)
def test_kernel_solves_moment_odes(name):
    # alpha' = a alpha and (sigma^2)' = 2 a sigma^2 + g^2, by autograd, to float64 precision (rel. 1e-9).
    sde = SDES[name]()
    t = torch.tensor([0.02, 0.1, 0.3, 0.6, 0.9, 0.999], dtype=F64, requires_grad=True)
    alpha, var = sde.mean_coeff(t), sde.std(t) ** 2
    # (VE's alpha = 1 is a constant with no graph: its derivative is 0.)
    dalpha = torch.autograd.grad(alpha.sum(), t)[0] if alpha.requires_grad else torch.zeros_like(alpha)
    (dvar,) = torch.autograd.grad(var.sum(), t)
    a, g2 = sde.drift_coeff(t).detach(), sde.diffusion(t).detach() ** 2
    torch.testing.assert_close(dalpha, a * alpha.detach(), rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(dvar, 2 * a * var.detach() + g2, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("kind", BetaSchedule.KINDS)
def test_beta_is_derivative_of_integral(kind):
    sde = VPSDE(schedule=kind)
    t = torch.linspace(0.0, 1.0, 11, dtype=F64, requires_grad=True)
    (dB,) = torch.autograd.grad(sde.beta_integral(t).sum(), t)
    torch.testing.assert_close(dB, sde.beta(t).detach(), rtol=1e-10, atol=1e-12)
    assert float(sde.beta_integral(0.0)) == 0.0


def test_kernel_closed_forms():
    t = torch.tensor([0.1, 0.5, 1.0], dtype=F64)
    vp, svp, ve = VPSDE(), SubVPSDE(), VESDE()
    B = 0.1 * t + 0.5 * 19.9 * t**2
    torch.testing.assert_close(vp.mean_coeff(t), torch.exp(-B / 2))
    torch.testing.assert_close(vp.std(t) ** 2, 1 - torch.exp(-B))
    torch.testing.assert_close(svp.std(t), 1 - torch.exp(-B))
    assert (svp.std(t) < vp.std(t)).all()  # sub-VP variance is below VP's at every t > 0
    torch.testing.assert_close(ve.std(t) ** 2, ve.sigma(t) ** 2 - 0.01**2)
    torch.testing.assert_close(ve.sigma(t), 0.01 * (50 / 0.01) ** t)
    torch.testing.assert_close(vp.alpha_bar(t), vp.mean_coeff(t) ** 2)
    torch.testing.assert_close(vp.log_snr(t), torch.log(vp.alpha_bar(t) / vp.std(t) ** 2))


def test_cosine_schedule_ends_like_linear_and_has_cosine_shape():
    lin, cos = VPSDE(), VPSDE(schedule="cosine")
    one = torch.tensor(1.0, dtype=F64)
    torch.testing.assert_close(cos.alpha_bar(one), lin.alpha_bar(one), rtol=1e-10, atol=0)
    s = cos.schedule
    t = torch.linspace(0, 1, 7, dtype=F64)
    theta = s.theta0 + (s.theta1 - s.theta0) * t
    torch.testing.assert_close(cos.alpha_bar(t), torch.cos(theta) ** 2 / math.cos(s.theta0) ** 2)


def test_discrete_betas_match_ddpm():
    betas = VPSDE().discrete_betas(1000)
    assert betas.dtype == F64
    torch.testing.assert_close(betas, torch.linspace(1e-4, 0.02, 1000, dtype=F64), rtol=0, atol=1e-15)


@pytest.mark.parametrize("kind", BetaSchedule.KINDS)
def test_exact_discrete_betas_product(kind):
    sde = VPSDE(schedule=kind)
    for N in (1, 10, 1000):
        b = sde.exact_discrete_betas(N)
        assert b.shape == (N,) and (b > 0).all() and (b < 1).all()
        torch.testing.assert_close(torch.prod(1 - b), torch.exp(-sde.beta_integral(torch.tensor(1.0, dtype=F64))),
                                   rtol=1e-12, atol=0)


def test_ddpm_linspace_is_only_approximately_exact():
    # Erratum 8: prod(1 - beta_i) for DDPM's linspace is exp(-B(1)) times about exp(-sum beta^2 / 2).
    sde = VPSDE()
    b = sde.discrete_betas(1000)
    ratio = float(torch.prod(1 - b) / torch.exp(-sde.beta_integral(torch.tensor(1.0, dtype=F64))))
    assert abs(ratio - math.exp(-float((b**2).sum()) / 2)) < 2e-3
    assert 0.05 < 1 - ratio < 0.08
    torch.testing.assert_close(VPSDE(schedule="cosine").discrete_betas(50), VPSDE(schedule="cosine").exact_discrete_betas(50))


@pytest.mark.parametrize("name", SDES)
@pytest.mark.parametrize("shape", [(5, 2), (3, 1, 4, 4)])
def test_prior_logp_matches_torch_distributions(name, shape):
    sde = SDES[name]()
    x = sde.prior_sample(shape, generator=torch.Generator().manual_seed(0), dtype=F64)
    ref = torch.distributions.Normal(0.0, sde.prior_std()).log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(sde.prior_logp(x), ref)
    assert sde.prior_sample(shape, generator=torch.Generator().manual_seed(0), dtype=F64).equal(x)


def test_marginal_perturb_and_shapes():
    sde = VPSDE()
    x0 = torch.randn(4, 1, 3, 3, generator=torch.Generator().manual_seed(0), dtype=F64)
    t = torch.tensor([0.1, 0.2, 0.5, 1.0], dtype=F64)
    mean, std = sde.marginal(x0, t)
    assert mean.shape == x0.shape and std.shape == (4, 1, 1, 1)
    xt, eps = sde.perturb(x0, t, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(xt, mean + std * eps)
    xt2, _ = sde.perturb(x0, t, generator=torch.Generator().manual_seed(1))
    assert xt2.equal(xt)
    mean_s, std_s = sde.marginal(x0, 0.5)
    assert std_s.ndim == 0 and mean_s.shape == x0.shape
    assert sde.drift(x0, t).shape == x0.shape


def test_time_grid():
    ts = VPSDE().time_grid(10, eps=1e-3)
    assert ts.shape == (11,) and float(ts[0]) == 1.0 and abs(float(ts[-1]) - 1e-3) < 1e-9
    assert (ts[1:] < ts[:-1]).all()
    with pytest.raises(ValueError, match="n_steps"):
        VPSDE().time_grid(0)
    with pytest.raises(ValueError, match="eps"):
        VPSDE().time_grid(10, eps=1.0)


def test_reverse_and_pf_drift():
    # For standard-normal data the VP marginals stay N(0, I), score = -x: reverse drift = beta x / 2,
    # PF-ODE velocity = 0.
    sde = VPSDE()
    x = torch.randn(6, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    t = torch.full((6,), 0.4, dtype=F64)
    beta = append_dims(sde.beta(t), 2)
    torch.testing.assert_close(reverse_drift(sde, lambda x, t: -x, x, t), 0.5 * beta * x)
    torch.testing.assert_close(pf_drift(sde, lambda x, t: -x, x, t), torch.zeros_like(x))
    torch.testing.assert_close(reverse_drift(sde, lambda x, t: -x, x, t, lam=0.0), pf_drift(sde, lambda x, t: -x, x, t))


@pytest.mark.parametrize("make, match", [
    (lambda: VPSDE(beta_min=-0.1), "beta_min"),
    (lambda: VPSDE(beta_min=0.0), "beta_min"),
    (lambda: VPSDE(beta_min=5.0, beta_max=1.0), "beta_max"),
    (lambda: SubVPSDE(beta_max=-1.0), "beta_max"),
    (lambda: VPSDE(schedule="quadratic"), "schedule"),
    (lambda: VPSDE(T=0.0), "T"),
    (lambda: VESDE(sigma_min=-1.0), "sigma_min"),
    (lambda: VESDE(sigma_min=2.0, sigma_max=1.0), "sigma_max"),
    (lambda: VESDE(sigma_min=1.0, sigma_max=1.0), "sigma_max"),
    (lambda: VPSDE().std(1.5), "t must lie in"),
    (lambda: VPSDE().mean_coeff(-0.1), "t must lie in"),
    (lambda: VESDE().std(float("nan")), "non-finite"),
    (lambda: VPSDE().drift(torch.zeros(4, 2), torch.full((3,), 0.5)), "shape"),
    (lambda: VPSDE().marginal(torch.zeros(4, 2), torch.full((3,), 0.5)), "shape"),
    (lambda: VPSDE().prior_sample((2, -1)), "shape"),
    (lambda: VPSDE().discrete_betas(0), "N"),
])
def test_bad_input_raises(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_utils_validation():
    assert append_dims(torch.ones(3), 4).shape == (3, 1, 1, 1)
    with pytest.raises(ValueError, match="ndim"):
        append_dims(torch.ones(3, 2), 1)
    assert as_time(0.5).dtype == torch.get_default_dtype()
    assert as_time(1, like=torch.zeros(2, dtype=F64)).dtype == F64
    check_grid([1.0, 0.5, 0.1], 1.0)
    for bad in ([1.0], [0.1, 0.5], [1.0, 1.0, 0.5], [1.0, float("nan")], [[1.0, 0.5]], [2.0, 0.5]):
        with pytest.raises(ValueError, match="ts"):
            check_grid(bad, 1.0)
    with pytest.raises(ValueError, match="t must lie"):
        check_time(torch.tensor([0.5, 1.5]), 1.0)
    with pytest.raises(ValueError, match=r"shape \(B,\)"):
        check_batch(torch.zeros(4, 2), torch.zeros(4, 1))
    check_batch(torch.zeros(4, 2), torch.zeros(1))
    assert check_positive("h", 2) == 2.0
    for bad in (0, -1, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="h must"):
            check_positive("h", bad)
    assert check_positive("h", 0, allow_zero=True) == 0.0


def test_discrete_betas_rejects_too_few_steps():
    with pytest.raises(ValueError, match="N must exceed"):
        VPSDE().discrete_betas(20)
