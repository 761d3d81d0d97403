"""Tests for sdelab.likelihood: PF-ODE log-likelihoods against exact Gaussian-mixture densities (sdelab.toy)."""
import math

import pytest
import torch

from sdelab.likelihood import (PROBES, bits_per_dim, draw_probes, exact_divergence, hutchinson_divergence,
                               image_bits_per_dim, log_likelihood)
from sdelab.samplers import CountingScore
from sdelab.sde import VESDE, VPSDE, SubVPSDE
from sdelab.toy import GaussianMixture, ring

F64 = torch.float64
EPS = 1e-5  # log_likelihood's default start time: it returns log p_eps, compared with mix.log_prob_t(x, EPS)


def gen(seed):
    return torch.Generator().manual_seed(seed)


def exact_prior(mix, sde):
    return lambda z: mix.log_prob_t(z, sde.T, sde)


@pytest.fixture(scope="module")
def gauss():
    """2-D Gaussian data N(m, 0.7^2 I) and 8 of its samples plus one point in the far tail."""
    mix = GaussianMixture(torch.tensor([[0.5, -1.0]], dtype=F64), 0.7)
    x = torch.cat([mix.sample(8, gen(0)), torch.tensor([[3.0, 2.5]], dtype=F64)])
    return mix, x


# ---------------------------------------------------------------------- exact divergence
@pytest.mark.parametrize("sde", [VPSDE(), SubVPSDE(), VESDE()], ids=["vp", "subvp", "ve"])
def test_gaussian_log_density_with_exact_prior(gauss, sde):
    # measured max errors at rtol = atol = 1e-10: 5e-11 (VP, 290 NFE), 7e-11 (sub-VP), 1.8e-9 (VE, 782 NFE)
    mix, x = gauss
    logp, info = log_likelihood(mix.score_fn(sde), sde, x, rtol=1e-10, atol=1e-10, prior_logp=exact_prior(mix, sde))
    exact = mix.log_prob_t(x, EPS, sde)
    assert logp.shape == (9,) and logp.dtype == F64
    assert (logp - exact).abs().max() < 1e-8
    # the two terms add up, and z = x(T) is reported with the shape of x
    assert info["z"].shape == x.shape
    assert torch.allclose(info["prior_logp"] + info["delta_logp"], logp, rtol=0, atol=1e-12)
    assert info["nfe"] > 50


def test_default_prior_costs_about_a_hundredth_of_a_nat(gauss):
    # With N(0, I) in place of the exact p_T = N(alpha_T m, alpha_T^2 s^2 + sigma_T^2) the error is the prior
    # mismatch at z = x(T): measured 9.3e-4 to 2.1e-2 nats over these 9 points (VP, beta 0.1..20).
    mix, x = gauss
    sde = VPSDE()
    logp, info = log_likelihood(mix.score_fn(sde), sde, x, rtol=1e-8, atol=1e-8)
    err = logp - mix.log_prob_t(x, EPS, sde)
    assert 1e-4 < err.abs().max() < 5e-2
    # ... and it is exactly that mismatch, up to the solver (measured 5e-8)
    z = info["z"]
    mismatch = sde.prior_logp(z) - mix.log_prob_t(z, sde.T, sde)
    assert (err - mismatch).abs().max() < 1e-6


def test_ring_mixture_matches_exact_log_prob():
    # 4-mode ring, std 0.3, plus the centre and a far point. Measured max errors (VP):
    # 5.0e-4 at the default rtol = atol = 1e-5 (86 NFE), 3.3e-7 at 1e-8 (266 NFE).
    mix = ring(4, radius=1.5, std=0.3, dtype=F64)
    x = torch.cat([mix.sample(16, gen(1)), torch.tensor([[0.0, 0.0], [3.0, 3.0]], dtype=F64)])
    sde = VPSDE()
    exact = mix.log_prob_t(x, EPS, sde)
    coarse, _ = log_likelihood(mix.score_fn(sde), sde, x, prior_logp=exact_prior(mix, sde))
    fine, info = log_likelihood(mix.score_fn(sde), sde, x, rtol=1e-8, atol=1e-8, prior_logp=exact_prior(mix, sde))
    assert (coarse - exact).abs().max() < 2e-3
    assert (fine - exact).abs().max() < 2e-6
    # the tighter tolerance is what buys the accuracy (guards against a silently ignored rtol)
    assert (fine - exact).abs().max() < 0.05 * (coarse - exact).abs().max()


def test_nfe_counts_score_calls(gauss):
    mix, x = gauss
    sde = VPSDE()
    counted = CountingScore(mix.score_fn(sde))
    _, info = log_likelihood(counted, sde, x)
    assert info["nfe"] == counted.nfe > 0


def test_exact_divergence_is_the_jacobian_trace_of_a_network():
    from sdelab.nets import MLPScore

    torch.manual_seed(0)
    net = MLPScore(dim=2, hidden=32, depth=2).eval()
    x = torch.randn(5, 2, generator=gen(2))
    t = torch.full((5,), 0.4)
    _, div = exact_divergence(lambda y, s: net(y, s), x, t)
    jac = torch.stack([torch.autograd.functional.jacobian(lambda y: net(y[None], t[:1])[0], xi) for xi in x])
    assert torch.allclose(div, jac.diagonal(dim1=1, dim2=2).sum(1), atol=1e-5)
    # inside no_grad (as a notebook would call it), float32, a network: runs, finite, leaves no .grad
    sde = VPSDE()
    with torch.no_grad():
        logp, info = log_likelihood(lambda y, s: net(y, s), sde, x)
    assert logp.shape == (5,) and torch.isfinite(logp).all() and info["z"].dtype == torch.float32
    assert all(p.grad is None for p in net.parameters())


# ---------------------------------------------------------------------- Hutchinson
@pytest.mark.parametrize("point", [[0.7, 0.9], [0.3, -0.2]])
def test_hutchinson_unbiased_with_the_predicted_variances(point):
    # For A = ds/dx: Var = 1/2 sum_{i!=j} (A_ij + A_ji)^2 (Rademacher), 1/2 ||A + A^T||_F^2 (Gaussian).
    mix = ring(4, radius=1.5, std=0.3, dtype=F64)
    sde = VPSDE()
    fn = mix.score_fn(sde)
    x, t = torch.tensor([point], dtype=F64), torch.full((1,), 0.3, dtype=F64)
    _, div = exact_divergence(fn, x, t)
    A = torch.autograd.functional.jacobian(lambda y: fn(y[None], t)[0], x[0])
    S = A + A.T
    predicted = {"rademacher": 0.5 * (S.pow(2).sum() - S.diagonal().pow(2).sum()), "gaussian": 0.5 * S.pow(2).sum()}
    n = 4000  # one probe for each of n copies of the point: one backward pass
    xs, ts = x.expand(n, 2).clone(), t.expand(n).clone()
    for probe in PROBES:
        _, est = hutchinson_divergence(fn, xs, ts, draw_probes(xs, 1, probe, generator=gen(1)))
        est = est[0]
        se = est.std() / math.sqrt(n)
        assert abs(est.mean() - div[0]) < 4 * se, probe
        # measured: means 0.16 SE (Rademacher) and 1.7-1.8 SE (Gaussian) from the exact trace; sample/predicted
        # variance - 1 = 2e-4 (Rademacher: a two-point law) and -3.5 %, -4.8 % (Gaussian: relative SE about 5 %)
        assert abs(est.var() / predicted[probe] - 1) < 0.15, (probe, est.var(), predicted[probe])


def test_hutchinson_log_likelihood_is_unbiased_and_rademacher_beats_gaussian():
    # One point between two modes, repeated 400 times: every row gets its own probe, so one ODE solve gives 400
    # independent estimates. Measured: Rademacher sd 5.0 (mean off by 0.1 SE), Gaussian sd 8.3 (1.1 SE).
    mix = ring(4, radius=1.5, std=0.3, dtype=F64)
    sde = VPSDE()
    x = torch.tensor([[0.7, 0.9]], dtype=F64)
    exact, _ = log_likelihood(mix.score_fn(sde), sde, x, rtol=1e-8, atol=1e-8, prior_logp=exact_prior(mix, sde))
    n = 400
    sd = {}
    for probe in PROBES:
        est, info = log_likelihood(mix.score_fn(sde), sde, x.expand(n, 2).clone(), divergence="hutchinson",
                                   probe=probe, rtol=1e-6, atol=1e-6, prior_logp=exact_prior(mix, sde),
                                   generator=gen(0))
        sd[probe] = est.std()
        assert abs(est.mean() - exact[0]) < 4 * sd[probe] / math.sqrt(n), probe
    # variance ratio measured 0.36; with 400 samples the ratio's relative SE is about 10 %
    assert sd["rademacher"] ** 2 < 0.7 * sd["gaussian"] ** 2


def test_hutchinson_is_reproducible_and_averages_probes(gauss):
    mix, x = gauss
    sde = VPSDE()
    fn = mix.score_fn(sde)
    ring_mix = ring(4, radius=1.5, std=0.3, dtype=F64)
    rfn = ring_mix.score_fn(sde)
    a, _ = log_likelihood(rfn, sde, x, divergence="hutchinson", generator=gen(7))
    b, _ = log_likelihood(rfn, sde, x, divergence="hutchinson", generator=gen(7))
    c, _ = log_likelihood(rfn, sde, x, divergence="hutchinson", generator=gen(8))
    assert torch.equal(a, b) and not torch.allclose(a, c)
    # more probes -> closer to the exact trace (ring: the score Jacobian has off-diagonal entries);
    # measured mean |error| 2.45 nats with one probe, 0.52 with 16
    exact, _ = log_likelihood(rfn, sde, x)
    many, _ = log_likelihood(rfn, sde, x, divergence="hutchinson", n_probes=16, generator=gen(7))
    assert (many - exact).abs().mean() < 0.5 * (a - exact).abs().mean()
    # for Gaussian data the score Jacobian is a multiple of I, so a Rademacher probe is exact
    g, _ = log_likelihood(fn, sde, x, divergence="hutchinson", generator=gen(7), rtol=1e-5, atol=1e-5)
    e, _ = log_likelihood(fn, sde, x)
    assert (g - e).abs().max() < 1e-6


@pytest.fixture(scope="module")
def images():
    """Gaussian 'images' N(mu, 0.5^2 I) in 784 dims, 4 samples of shape (1, 28, 28)."""
    g = gen(0)
    mix = GaussianMixture(0.3 * torch.randn(1, 784, generator=g, dtype=F64), 0.5)
    return mix, mix.sample(4, g).reshape(4, 1, 28, 28)


def test_hutchinson_on_image_batches(images):
    # Measured at the default rtol = atol = 1e-5 (44 NFE): Rademacher errors 3e-3 to 5.5e-3 nats on
    # log-densities near -560. Gaussian probes: errors of hundreds of nats, each (|e|^2/D - 1) times one
    # common integral, since ds/dx = -I/(alpha^2 s^2 + sigma^2) here.
    mix, x = images
    sde = VPSDE()
    exact = mix.log_prob_t(x, EPS, sde)
    rad, info = log_likelihood(mix.score_fn(sde), sde, x, divergence="hutchinson", prior_logp=exact_prior(mix, sde),
                               generator=gen(3), rtol=1e-5, atol=1e-5)
    assert rad.shape == (4,) and info["z"].shape == (4, 1, 28, 28)
    assert (rad - exact).abs().max() < 2e-2
    # the Hutchinson default tolerance (1e-3) needs fewer evaluations and stays far below one probe's noise:
    # measured 0.046 nats (8.5e-5 bits/dim) at 1e-3 against 5.5e-3 nats at 1e-5
    loose, info_l = log_likelihood(mix.score_fn(sde), sde, x, divergence="hutchinson",
                                   prior_logp=exact_prior(mix, sde), generator=gen(3))
    assert info_l["nfe"] < info["nfe"] and (loose - exact).abs().max() < 0.1
    assert (loose - exact).abs().max() > (rad - exact).abs().max()   # the default is really looser
    gau, _ = log_likelihood(mix.score_fn(sde), sde, x, divergence="hutchinson", probe="gaussian",
                            prior_logp=exact_prior(mix, sde), generator=gen(3))
    probes = draw_probes(x, 1, "gaussian", generator=gen(3))[0]  # the same probes, drawn again
    ratio = (gau - exact) / (probes.flatten(1).pow(2).sum(1) / 784 - 1)
    assert (ratio - ratio.mean()).abs().max() < 1e-2 * ratio.abs().mean()  # one probe kept along the path


# ---------------------------------------------------------------------- bits per dimension
def test_bits_per_dim_hand_computations():
    # uniform on [-1, 1]^D: log p = -D ln 2 -> log2(256) = 8 bits/dim exactly
    for D in (1, 784, 3072):
        assert bits_per_dim(-D * math.log(2), D) == pytest.approx(8.0, abs=1e-12)
    # log p = -1000 nats in 784 dims: (1000 - 784 ln(2/256)) / (784 ln 2) = 1000/(784 ln 2) + 7
    assert bits_per_dim(-1000.0, 784) == pytest.approx(1000 / (784 * math.log(2)) + 7, abs=1e-12)
    # 16 levels on [0, 1] (data_range 1): bin width 1/16, uniform density 1 -> 4 bits/dim
    assert bits_per_dim(0.0, 10, n_bins=16, data_range=1.0) == pytest.approx(4.0, abs=1e-12)
    t = bits_per_dim(torch.tensor([-2 * math.log(2), 0.0], dtype=F64), 2)
    assert torch.allclose(t, torch.tensor([8.0, 7.0], dtype=F64))


def test_image_bits_per_dim(images):
    mix, _ = images
    sde = VPSDE()
    levels = torch.randint(0, 256, (3, 1, 28, 28), generator=gen(4), dtype=torch.uint8)
    kw = dict(generator=gen(5), prior_logp=exact_prior(mix, sde), rtol=1e-5, atol=1e-5)
    bpd, info = image_bits_per_dim(mix.score_fn(sde), sde, levels, dtype=F64, **kw)
    x = info["x"]
    # dequantised into the right cell: x = 2(k + u)/256 - 1 with u in [0, 1)
    assert torch.equal(torch.floor((x + 1) * 128).long(), levels.long())
    # = bits_per_dim of the exact log p_eps at those points: Rademacher is exact for this Gaussian, what is left
    # is the solver's error at rtol = 1e-5 (measured 3.3e-5 bits/dim, i.e. 0.018 nats on log p near -880)
    assert torch.allclose(bpd, bits_per_dim(mix.log_prob_t(x, EPS, sde), 784), rtol=0, atol=2e-4)
    # floats scaled like sdelab.data.mnist (k/127.5 - 1) give the same numbers; the seed fixes them
    kw["generator"] = gen(5)
    again, _ = image_bits_per_dim(mix.score_fn(sde), sde, levels.double() / 127.5 - 1, **kw)
    assert torch.equal(bpd, again)
    with pytest.raises(ValueError, match="127.5"):
        image_bits_per_dim(mix.score_fn(sde), sde, levels.double() / 127.5 - 1 + 1e-2, generator=gen(5))
    with pytest.raises(ValueError, match="uint8"):
        image_bits_per_dim(mix.score_fn(sde), sde, levels.long(), generator=gen(5))


# ---------------------------------------------------------------------- bad input
def test_bad_inputs(gauss):
    mix, x = gauss
    sde = VPSDE()
    fn = mix.score_fn(sde)
    cases = [
        (dict(divergence="trace"), "divergence must be one of"),
        (dict(divergence="hutchinson", n_probes=0), "n_probes must be an integer >= 1"),
        (dict(divergence="hutchinson", n_probes=1.5), "n_probes"),
        (dict(divergence="hutchinson", probe="uniform"), "probe must be one of"),
        (dict(eps=0.0), r"eps must lie in \(0, T\)"),
        (dict(eps=1.0), r"eps must lie in \(0, T\)"),
        (dict(eps=-1e-3), r"eps must lie in \(0, T\)"),
        (dict(rtol=0.0), "rtol"),
        (dict(atol=float("nan")), "atol"),
        (dict(prior_logp=lambda z: z.sum()), r"prior_logp must return a tensor of shape \(B,\)"),
    ]
    for kwargs, msg in cases:
        with pytest.raises(ValueError, match=msg):
            log_likelihood(fn, sde, x, **kwargs)
    bad = x.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="x contains non-finite"):
        log_likelihood(fn, sde, bad)
    with pytest.raises(ValueError, match=r"x must be a floating-point tensor of shape \(B, ...\)"):
        log_likelihood(fn, sde, x[0])
    with pytest.raises(ValueError, match="score_fn must return the shape of x"):
        log_likelihood(lambda y, t: y.sum(1), sde, x)
    with pytest.raises(ValueError, match="probes must have shape"):
        hutchinson_divergence(fn, x, torch.full((9,), 0.5, dtype=F64), torch.ones(2, 9, 3, dtype=F64))
    for kwargs, msg in [(dict(dims=0), "dims"), (dict(dims=2, n_bins=1), "n_bins"),
                        (dict(dims=2, data_range=0.0), "data_range")]:
        with pytest.raises(ValueError, match=msg):
            bits_per_dim(-1.0, **kwargs)
