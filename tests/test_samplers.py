"""Tests for sdelab.samplers, driven by exact scores of Gaussian mixtures (sdelab.toy)."""
import math

import numpy as np
import pytest
import torch

from sdelab.metrics import sliced_wasserstein
from sdelab.samplers import (SAMPLERS, CountingScore, _drift, _langevin, euler_maruyama, langevin_corrector, pf_ode_euler,
                             pf_ode_heun, pf_ode_rk45, predictor_corrector, trajectory)
from sdelab.sde import VESDE, VPSDE, SubVPSDE, pf_drift, reverse_drift
from sdelab.toy import GaussianMixture, ring

F64 = torch.float64
N_RING = 2000


def gen(seed):
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------------- recovering the 8-mode ring
@pytest.fixture(scope="module")
def ring_case():
    mix = ring(dtype=F64)
    sw = lambda a, b: float(sliced_wasserstein(a, b, n_proj=128, generator=gen(123)))  # noqa: E731
    # data-vs-data floor at the same sample size, averaged over 4 independent pairs (it fluctuates
    # between about 0.08 and 0.14 because the 8 mode counts fluctuate)
    floor = np.mean([sw(mix.sample(N_RING, gen(s)), mix.sample(N_RING, gen(s + 100))) for s in range(4)])
    return mix, sw, floor, mix.sample(N_RING, gen(999))


def ring_report(mix, x):
    """Within-mode spread (std of x - nearest mode, per coordinate) and the largest mode-weight error."""
    k = torch.cdist(x, mix.means).argmin(1)
    spread = float((x - mix.means[k]).std())
    freq = torch.bincount(k, minlength=mix.n_components).double() / len(x)
    return spread, float((freq - mix.weights).abs().max())


def check_ring(ring_case, sde, x0):
    """Shared acceptance test for a sampler's output on the ring (mode std 0.1, 8 equal modes)."""
    mix, sw, floor, fresh = ring_case
    assert x0.shape == (N_RING, 2) and torch.isfinite(x0).all()
    # p_eps's exact mode std is sqrt(alpha^2 0.1^2 + sigma^2) at eps = 1e-3: 0.1005 (VP) or 0.1000 (VE);
    # the estimate's standard error is 0.0011. Tolerance 5 %: the converged samplers are within 2 %, while
    # 25-step EM misses by a factor 2 (see test_ring_acceptance_rejects_a_coarse_sampler).
    spread, werr = ring_report(mix, x0)
    exact = math.sqrt(0.01 * float(sde.mean_coeff(1e-3)) ** 2 + float(sde.std(1e-3)) ** 2)
    assert abs(spread - exact) < 0.05 * exact, (spread, exact)
    # mode weights: standard error sqrt(1/8 * 7/8 / 2000) = 0.0074; max over 8 modes < 0.035 (4.7 SE)
    assert werr < 0.035
    # sliced W2 to fresh data within 2x the data-vs-data floor (converged samplers: 0.7x to 1.5x)
    assert sw(x0, fresh) < 2.0 * floor


@pytest.mark.parametrize("name, n_steps, kwargs", [
    ("em", 500, {}), ("pc", 300, {}), ("euler", 500, {}), ("heun", 100, {}), ("rk45", 1, {}),
])
def test_samplers_recover_the_ring_vp(ring_case, name, n_steps, kwargs):
    sde, mix = VPSDE(), ring_case[0]
    x = sde.prior_sample((N_RING, 2), generator=gen(1), dtype=F64)
    x0 = SAMPLERS[name](mix.score_fn(sde), sde, x, sde.time_grid(n_steps), generator=gen(2), **kwargs)
    check_ring(ring_case, sde, x0)


@pytest.mark.parametrize("sde", [SubVPSDE(), VESDE()], ids=["subvp", "ve"])
@pytest.mark.parametrize("name, n_steps", [("heun", 100), ("em", 300)])
def test_samplers_recover_the_ring_other_sdes(ring_case, sde, name, n_steps):
    mix = ring_case[0]
    x = sde.prior_sample((N_RING, 2), generator=gen(1), dtype=F64)
    x0 = SAMPLERS[name](mix.score_fn(sde), sde, x, sde.time_grid(n_steps), generator=gen(2))
    check_ring(ring_case, sde, x0)


def test_ring_acceptance_rejects_a_coarse_sampler(ring_case):
    # The acceptance test must be able to fail: 25 EM steps double the within-mode spread (0.20 vs 0.10);
    # with Song et al.'s noise-free last step they shrink it instead (0.066).
    sde, mix = VPSDE(), ring_case[0]
    x = sde.prior_sample((N_RING, 2), generator=gen(1), dtype=F64)
    for denoise_last in (False, True):
        x0 = euler_maruyama(mix.score_fn(sde), sde, x, sde.time_grid(25), generator=gen(2), denoise_last=denoise_last)
        with pytest.raises(AssertionError):
            check_ring(ring_case, sde, x0)


# ---------------------------------------------------------------------- 1-D Gaussian data: exact answers
M0, S0 = 1.0, 0.5
GAUSS = GaussianMixture([[M0]], S0, dtype=F64)


def gauss_var(sde, t):
    return float(sde.mean_coeff(t)) ** 2 * S0**2 + float(sde.std(t)) ** 2


def pf_flow_exact(sde, x, t_from, t_to):
    """The PF-ODE map for N(m, s^2) data is affine: (x - alpha m)/sqrt(v) is conserved."""
    a1, a2 = float(sde.mean_coeff(t_from)), float(sde.mean_coeff(t_to))
    return a2 * M0 + math.sqrt(gauss_var(sde, t_to) / gauss_var(sde, t_from)) * (x - a1 * M0)


ODE_SDES = {"vp": VPSDE, "subvp": SubVPSDE, "ve": lambda: VESDE(sigma_max=5.0)}


@pytest.mark.parametrize("sde_name", ODE_SDES)
@pytest.mark.parametrize("solver, order", [(pf_ode_euler, 1.0), (pf_ode_heun, 2.0)])
def test_pf_ode_convergence_order(sde_name, solver, order):
    # max error of the T -> 1e-3 map on uniform grids of K = 20..160 steps; log-log slope within +-0.25
    # of the order (observed: Euler 0.93-1.02, Heun 1.95-2.12).
    sde = ODE_SDES[sde_name]()
    x = float(sde.mean_coeff(1.0)) * M0 + math.sqrt(gauss_var(sde, 1.0)) * torch.linspace(-2, 2, 9, dtype=F64)[:, None]
    exact = pf_flow_exact(sde, x, 1.0, 1e-3)
    Ks = [20, 40, 80, 160]
    errs = [float((solver(GAUSS.score_fn(sde), sde, x, sde.time_grid(K)) - exact).abs().max()) for K in Ks]
    slope = -np.polyfit(np.log(Ks), np.log(errs), 1)[0]
    assert abs(slope - order) < 0.25, (slope, errs)


def test_rk45_matches_exact_flow_and_counts_evaluations():
    sde = VPSDE()
    x = torch.linspace(-2, 2, 7, dtype=F64)[:, None]
    exact = pf_flow_exact(sde, x, 1.0, 1e-3)
    counter = CountingScore(GAUSS.score_fn(sde))
    x0, info = pf_ode_rk45(counter, sde, x, sde.time_grid(4), rtol=1e-9, atol=1e-9, return_info=True)
    assert float((x0 - exact).abs().max()) < 1e-6
    assert info["nfe"] == counter.nfe > 0
    loose = CountingScore(GAUSS.score_fn(sde))
    x_loose = pf_ode_rk45(loose, sde, x, sde.time_grid(4))  # defaults rtol = atol = 1e-5
    assert float((x_loose - exact).abs().max()) < 1e-3 and loose.nfe < counter.nfe


@pytest.mark.parametrize("sde_name", ODE_SDES)
def test_reverse_sde_moments(sde_name):
    # Start from the exact p_T; after 200 EM steps the sample mean and variance match p_eps within 4
    # standard errors (+ 5/N for EM's O(dt) bias in the variance).
    sde, n, N = ODE_SDES[sde_name](), 20_000, 200
    x = float(sde.mean_coeff(1.0)) * M0 + math.sqrt(gauss_var(sde, 1.0)) * torch.randn(n, 1, generator=gen(0), dtype=F64)
    out = euler_maruyama(GAUSS.score_fn(sde), sde, x, sde.time_grid(N), generator=gen(1))
    v = gauss_var(sde, 1e-3)
    assert abs(float(out.mean()) - float(sde.mean_coeff(1e-3)) * M0) < 4 * math.sqrt(v / n)
    assert abs(float(out.var()) / v - 1) < 4 * math.sqrt(2 / n) + 5 / N


def test_langevin_corrector_stationary_variance():
    # At fixed t, Langevin with Song et al.'s step eps = 2 (r |z|/|s|)^2 targets N(mu, v) with a bias:
    # for Gaussian p_t the stationary variance solves rho = 1/(1 - r^2/rho), i.e. v (1 + r^2).
    # With r = 0.5 that is 1.25 v (a step twice as small would give 1.125 v); tolerance 4 SE.
    sde, n, r, t = VPSDE(), 20_000, 0.5, torch.tensor(0.5, dtype=F64)
    x = torch.zeros(n, 1, dtype=F64)
    g = gen(3)
    for _ in range(100):
        x = _langevin(GAUSS.score_fn(sde), x, t, r, 1.0, g)
    v = gauss_var(sde, 0.5)
    assert abs(float(x.var()) / v - (1 + r**2)) < 4 * 1.25 * math.sqrt(2 / n)
    assert abs(float(x.mean()) - float(sde.mean_coeff(0.5)) * M0) < 4 * math.sqrt(1.25 * v / n)


@pytest.mark.parametrize("alpha", [1.0, 0.5])
def test_langevin_corrector_bias_is_one_plus_r2(alpha):
    # The corrector alone at r = 0.4 on N(m, v): stationary variance v (1 + alpha r^2) = 1.16 v (alpha = 1), not the
    # naive fixed point 1/(1 - r^2) = 1.19 v, not v (no bias), not v (1 + 2 r^2), and for alpha = 0.5 not the
    # alpha-free 1 + r^2. n = 200 000 samples; the ratio
    # is averaged over the last 40 of 100 steps (successive states are correlated by (1 - eps/v)^2 ~ 0.27), so its
    # standard error is about 0.0015; tolerance 0.01 separates the candidates (they are >= 0.03 apart).
    sde, n, r, t = VPSDE(), 200_000, 0.4, 0.5
    score, v = GAUSS.score_fn(sde), gauss_var(sde, t)
    x = GAUSS.noised(t, sde).sample(n, generator=gen(5))
    g, ratios = gen(6), []
    for k in range(100):
        x = langevin_corrector(score, x, t, snr=r, alpha=alpha, generator=g)
        if k >= 60:
            ratios.append(float(x.var()) / v)
    ratio, want = float(np.mean(ratios)), 1 + alpha * r**2
    assert abs(ratio - want) < 0.01, (ratio, want)
    wrongs = [1.0, 1 / (1 - alpha * r**2), 1 + 2 * alpha * r**2, 1 + r**2]   # the last ignores alpha
    for wrong in [w for w in wrongs if abs(w - want) > 0.025]:               # alpha = 0.5: 1/(1 - 0.08) is too close
        assert abs(ratio - wrong) > 0.015


def test_langevin_corrector_is_the_pc_corrector():
    sde, t = VPSDE(), 0.4
    x = torch.randn(64, 2, generator=gen(0), dtype=F64)
    score = ring(dtype=F64).score_fn(sde)
    a = langevin_corrector(score, x, t, snr=0.3, n_steps=3, alpha=0.9, generator=gen(1))
    b, g = x, gen(1)
    for _ in range(3):
        b = _langevin(score, b, torch.tensor(t, dtype=F64), 0.3, 0.9, g)
    assert a.equal(b)
    assert langevin_corrector(score, x, t, n_steps=0).equal(x)


@pytest.mark.parametrize("kwargs, match", [
    (dict(t=float("nan")), "t must be"), (dict(t=torch.zeros(2)), "t must be"), (dict(snr=0.0), "snr"),
    (dict(alpha=-1.0), "alpha"), (dict(n_steps=1.5), "n_steps"), (dict(n_steps=-1), "n_steps"),
])
def test_langevin_corrector_bad_input(kwargs, match):
    kw = dict(t=0.5) | kwargs
    with pytest.raises(ValueError, match=match):
        langevin_corrector(GAUSS.score_fn(VPSDE()), torch.zeros(4, 1, dtype=F64), kw.pop("t"), **kw)


def test_pc_without_corrector_is_euler_maruyama():
    sde = VPSDE()
    x = sde.prior_sample((50, 2), generator=gen(0), dtype=F64)
    score = ring(dtype=F64).score_fn(sde)
    a = predictor_corrector(score, sde, x, sde.time_grid(20), n_corrector=0, generator=gen(1))
    b = euler_maruyama(score, sde, x, sde.time_grid(20), generator=gen(1))
    assert a.equal(b)


@pytest.mark.parametrize("denoise_last", [False, True])
def test_euler_maruyama_is_its_step_formula(denoise_last):
    # bit for bit (float64): x <- (1 + a dt) x - g^2 dt s + g sqrt(-dt) z, no noise on the last step if denoise_last
    sde, n = VPSDE(), 9
    x = sde.prior_sample((32, 2), generator=gen(0), dtype=F64)
    score, ts = ring(dtype=F64).score_fn(sde), sde.time_grid(n).to(F64)
    a, g, dt = sde._drift_coeff(ts).tolist(), sde._diffusion(ts).tolist(), (ts[1:] - ts[:-1]).tolist()
    b, noise = x, gen(1)
    for i in range(n):
        b = (1 + a[i] * dt[i]) * b - (g[i] ** 2 * dt[i]) * score(b, ts[i].expand(32))
        if not (denoise_last and i == n - 1):
            b = b + (g[i] * math.sqrt(-dt[i])) * torch.randn(b.shape, generator=noise, dtype=F64)
    assert euler_maruyama(score, sde, x, ts, generator=gen(1), denoise_last=denoise_last).equal(b)


def test_shared_drift_matches_sde_module():
    sde = SubVPSDE()
    x = torch.randn(5, 2, generator=gen(0), dtype=F64)
    score = ring(dtype=F64).score_fn(sde)
    t = torch.tensor(0.37, dtype=F64)
    torch.testing.assert_close(_drift(sde, score, x, t, 1.0), reverse_drift(sde, score, x, t.expand(5)))
    torch.testing.assert_close(_drift(sde, score, x, t, 0.5), pf_drift(sde, score, x, t.expand(5)))


# ---------------------------------------------------------------------- shapes, seeds, callbacks, NFE
IMG = GaussianMixture(torch.zeros(2, 784).index_fill_(1, torch.tensor([0, 5]), 1.0), 0.5)


@pytest.mark.parametrize("name", SAMPLERS)
@pytest.mark.parametrize("shape", [(6, 2), (3, 1, 28, 28)])
def test_shapes_and_seeds(name, shape):
    sde, sampler = VPSDE(), SAMPLERS[name]
    mix = ring() if shape[-1] == 2 else IMG
    x = sde.prior_sample(shape, generator=gen(0))
    ts = sde.time_grid(4)
    a = sampler(mix.score_fn(sde), sde, x, ts, generator=gen(1))
    b = sampler(mix.score_fn(sde), sde, x, ts, generator=gen(1))
    assert a.shape == x.shape and a.dtype == x.dtype and torch.isfinite(a).all()
    assert a.equal(b)  # same seed, same output
    g = gen(5)
    state = g.get_state()
    c = sampler(mix.score_fn(sde), sde, x, ts, generator=g)
    if name in ("em", "pc"):
        assert not c.equal(a)  # a different seed gives different noise
    else:
        assert c.equal(a) and g.get_state().equal(state)  # ODE samplers never touch the generator


@pytest.mark.parametrize("name, per_step", [("em", 1), ("pc", 2), ("euler", 1), ("heun", 2)])
def test_nfe_and_callback(name, per_step):
    sde = VPSDE()
    score = CountingScore(ring().score_fn(sde))
    ts = sde.time_grid(7)
    seen = []
    x0, xs = trajectory(SAMPLERS[name], score, sde, sde.prior_sample((4, 2), generator=gen(0)), ts,
                        generator=gen(1), callback=lambda i, t, x: seen.append((i, t)))
    assert score.nfe == per_step * 7
    assert [i for i, _ in seen] == list(range(7))
    np.testing.assert_allclose([t for _, t in seen], ts[1:].tolist(), rtol=1e-6)
    assert xs.shape == (8, 4, 2) and xs[-1].equal(x0)
    score.reset()
    assert score.nfe == 0


def test_heun_last_step_to_zero_is_euler():
    sde = VPSDE()
    score = CountingScore(lambda x, t: -x)  # standard-normal data: the score is finite even at t = 0
    pf_ode_heun(score, sde, torch.ones(3, 2), torch.linspace(1.0, 0.0, 6))
    assert score.nfe == 2 * 5 - 1


def test_rk45_callback_at_grid_times():
    sde = VPSDE()
    ts = sde.time_grid(5)
    x0, xs = trajectory(pf_ode_rk45, ring().score_fn(sde), sde, sde.prior_sample((3, 2), generator=gen(0)), ts)
    assert xs.shape == (6, 3, 2) and xs[-1].equal(x0)


@pytest.mark.parametrize("call, match", [
    (lambda s, f, x: s(f, VPSDE(), x, torch.tensor([0.1, 0.5, 1.0])), "strictly decreasing"),
    (lambda s, f, x: s(f, VPSDE(), x, torch.tensor([1.0])), "at least two"),
    (lambda s, f, x: s(f, VPSDE(), x, torch.tensor([1.5, 0.5])), r"\[0, T\]"),
    (lambda s, f, x: s(f, VPSDE(), x, torch.tensor([1.0, -0.1])), r"\[0, T\]"),
    (lambda s, f, x: s(f, VPSDE(), x, torch.tensor([1.0, float("nan")])), "non-finite"),
    (lambda s, f, x: s(f, VPSDE(), x.index_fill(0, torch.tensor([0]), float("nan")), VPSDE().time_grid(3)), "x contains"),
    (lambda s, f, x: s(f, VPSDE(), x[:, 0], VPSDE().time_grid(3)), "x must"),
    (lambda s, f, x: s(lambda x, t: x[:, :1], VPSDE(), x, VPSDE().time_grid(3)), "score_fn must return"),
])
@pytest.mark.parametrize("name", SAMPLERS)
def test_bad_input_raises(name, call, match):
    with pytest.raises(ValueError, match=match):
        call(SAMPLERS[name], ring().score_fn(VPSDE()), torch.zeros(4, 2))


@pytest.mark.parametrize("call, match", [
    (lambda f, x: predictor_corrector(f, VPSDE(), x, VPSDE().time_grid(3), snr=0.0), "snr"),
    (lambda f, x: predictor_corrector(f, VPSDE(), x, VPSDE().time_grid(3), n_corrector=-1), "n_corrector"),
    (lambda f, x: pf_ode_rk45(f, VPSDE(), x, VPSDE().time_grid(3), rtol=0.0), "rtol"),
])
def test_bad_options_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call(ring().score_fn(VPSDE()), torch.zeros(4, 2))
