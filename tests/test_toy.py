"""Tests for sdelab.toy: exact mixture densities and noised scores, and the 2-D data sets."""
import math

import pytest
import torch

from sdelab.sde import VESDE, VPSDE, SubVPSDE
from sdelab.toy import DATASETS, GaussianMixture, checkerboard, grid_mixture, moons, ring, swiss_roll

F64 = torch.float64
SDES = {"vp": VPSDE, "subvp": SubVPSDE, "ve": lambda: VESDE(sigma_max=5.0), "vp-cosine": lambda: VPSDE(schedule="cosine")}


def mixture(d=2):
    gen = torch.Generator().manual_seed(0)
    means = 2 * torch.randn(3, d, generator=gen, dtype=F64)
    return GaussianMixture(means, torch.tensor([0.2, 0.5, 1.0], dtype=F64), weights=[1.0, 2.0, 3.0])


def test_log_prob_matches_torch_distributions():
    gm = mixture()
    comp = torch.distributions.Independent(torch.distributions.Normal(gm.means, gm.stds[:, None].expand(3, 2)), 1)
    ref = torch.distributions.MixtureSameFamily(torch.distributions.Categorical(probs=gm.weights), comp)
    x = 3 * torch.randn(50, 2, generator=torch.Generator().manual_seed(1), dtype=F64)
    torch.testing.assert_close(gm.log_prob(x), ref.log_prob(x), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gm.weights, torch.tensor([1, 2, 3], dtype=F64) / 6)


@pytest.mark.parametrize("name", SDES)
def test_noised_score_is_gradient_of_noised_log_density(name):
    # The closed-form score must equal autograd of log p_t at several t, to float64 precision.
    sde, gm = SDES[name](), mixture()
    x = 3 * torch.randn(40, 2, generator=torch.Generator().manual_seed(2), dtype=F64)
    for t in (0.0, 0.01, 0.1, 0.4, 0.8, 1.0):
        xr = x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(gm.log_prob_t(xr, t, sde).sum(), xr)
        torch.testing.assert_close(gm.score(x, t, sde), grad, rtol=1e-9, atol=1e-10)
        torch.testing.assert_close(gm.noised(t, sde).log_prob(x), gm.log_prob_t(x, t, sde), rtol=1e-12, atol=1e-12)
    xr = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(gm.log_prob(xr).sum(), xr)
    torch.testing.assert_close(gm.score(x), grad, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("name", ["vp", "subvp", "ve"])
def test_noised_density_solves_fokker_planck(name):
    # d/dt p_t = -d/dx (a x p_t) + g^2/2 d^2/dx^2 p_t for a 1-D mixture, by central differences
    # (h = 1e-3 in t and x: residual observed <= 6e-5 of max |d/dt p|; tolerance 1e-3, while a 1 %
    # error in g^2 leaves a residual of 1e-2 to 9e-2).
    sde = SDES[name]()
    gm = GaussianMixture([[-1.0], [0.5], [2.0]], [0.3, 0.2, 0.6], [0.2, 0.5, 0.3], dtype=F64)
    x = torch.linspace(-4, 4, 201, dtype=F64)[:, None]
    h, k = 1e-3, 1e-3
    for t in (0.2, 0.5):
        p = lambda xx, tt: gm.log_prob_t(xx, tt, sde).exp()  # noqa: E731
        dpdt = (p(x, t + k) - p(x, t - k)) / (2 * k)
        a, g2 = float(sde.drift_coeff(t)), float(sde.diffusion(t)) ** 2
        flux = lambda xx: a * xx[:, 0] * p(xx, t)  # noqa: E731
        dflux = (flux(x + h) - flux(x - h)) / (2 * h)
        lap = (p(x + h, t) - 2 * p(x, t) + p(x - h, t)) / h**2
        rhs = -dflux + 0.5 * g2 * lap
        assert float((dpdt - rhs).abs().max()) <= 1e-3 * float(dpdt.abs().max())


def test_noised_mixture_matches_perturbed_samples():
    # Pushing data samples through sde.perturb gives the moments of gm.noised(t) (4 standard errors).
    sde, gm, n = VPSDE(), mixture(), 40_000
    gen = torch.Generator().manual_seed(3)
    xt, _ = sde.perturb(gm.sample(n, generator=gen), 0.3, generator=gen)
    nt = gm.noised(0.3, sde)
    se = torch.sqrt(torch.diagonal(nt.cov) / n)
    assert ((xt.mean(0) - nt.mean).abs() <= 4 * se).all()
    cov = torch.cov(xt.T)
    assert ((cov - nt.cov).abs() <= 4 * math.sqrt(2 / n) * torch.diagonal(nt.cov).max()).all()


def test_sample_moments_and_component_frequencies():
    gm, n = mixture(), 60_000
    x = gm.sample(n, generator=torch.Generator().manual_seed(4))
    assert x.shape == (n, 2) and x.dtype == F64
    se = torch.sqrt(torch.diagonal(gm.cov) / n)
    assert ((x.mean(0) - gm.mean).abs() <= 4 * se).all()
    assert ((torch.cov(x.T) - gm.cov).abs() <= 4 * math.sqrt(2 / n) * torch.diagonal(gm.cov).max()).all()
    assert gm.sample(0).shape == (0, 2)
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    assert gm.sample(10, generator=g1).equal(gm.sample(10, generator=g2))


def test_score_batch_t_matches_scalar_t_and_is_shape_generic():
    sde, gm = VPSDE(), mixture()
    x = torch.randn(4, 2, generator=torch.Generator().manual_seed(5), dtype=F64)
    t = torch.tensor([0.1, 0.3, 0.5, 0.9], dtype=F64)
    batched = gm.score(x, t, sde)
    for i in range(4):
        torch.testing.assert_close(batched[i:i + 1], gm.score(x[i:i + 1], float(t[i]), sde))
    # 784-d mixture with images of shape (B, 1, 28, 28)
    img = GaussianMixture(torch.zeros(2, 784, dtype=F64).index_fill_(1, torch.tensor([0]), 1.0), 0.5)
    xi = torch.randn(3, 1, 28, 28, generator=torch.Generator().manual_seed(6), dtype=F64)
    s = img.score(xi, torch.full((3,), 0.5, dtype=F64), sde)
    assert s.shape == xi.shape
    torch.testing.assert_close(s.flatten(1), img.score(xi.flatten(1), 0.5, sde))
    assert img.score_fn(sde)(xi, torch.full((3,), 0.5, dtype=F64)).shape == xi.shape
    # eps_fn = -sigma * score
    e = gm.eps_fn(sde)(x, t)
    torch.testing.assert_close(e, -sde.std(t)[:, None] * batched)


def test_score_stable_far_from_modes():
    # Far away, the responsibilities saturate on the widest component: score -> -(x - mu_k)/s_k^2.
    gm = GaussianMixture([[0.0, 0.0], [1.0, 0.0]], [0.1, 1.0])
    x = torch.tensor([[1e3, -2e3]])
    s = gm.score(x)
    assert torch.isfinite(s).all()
    torch.testing.assert_close(s, -(x - torch.tensor([1.0, 0.0])) / 1.0)
    assert torch.isfinite(gm.log_prob(torch.tensor([[1e4, 1e4]]))).all()


def test_float32_inputs_and_noised_parameters():
    sde, gm = VESDE(), ring()
    assert gm.dtype == torch.get_default_dtype()
    x = gm.sample(5, generator=torch.Generator().manual_seed(0))
    assert gm.score(x, 0.5, sde).dtype == x.dtype
    nt = gm.noised(0.5, sde)
    torch.testing.assert_close(nt.stds, torch.sqrt(gm.stds**2 + sde.std(0.5) ** 2))
    torch.testing.assert_close(nt.means, gm.means)


def test_ring_and_grid():
    gm = ring(8, radius=2.0, std=0.1)
    torch.testing.assert_close(gm.means.norm(dim=1), torch.full((8,), 2.0))
    torch.testing.assert_close(gm.mean, torch.zeros(2), atol=1e-6, rtol=0)
    torch.testing.assert_close(gm.stds, torch.full((8,), 0.1))
    g = grid_mixture(3, spacing=2.0)
    assert g.n_components == 9 and float(g.means.abs().max()) == 2.0


def test_datasets_shapes_scale_and_seeds():
    for name, fn in DATASETS.items():
        x = fn(2000, torch.Generator().manual_seed(0))
        assert x.shape == (2000, 2), name
        assert torch.isfinite(x).all()
        assert (x.mean(0).abs() < 0.5).all(), name  # roughly centred ...
        assert ((x.std(0) > 0.5) & (x.std(0) < 1.6)).all(), name  # ... and roughly unit scale
        assert x.equal(fn(2000, torch.Generator().manual_seed(0))), name
        assert fn(0, None).shape == (0, 2)
    assert set(DATASETS) == {"ring", "moons", "swiss_roll", "checkerboard"}


def test_dataset_geometry():
    # noise-free moons lie on the two unit half circles; checkerboard points lie in dark cells
    m = moons(500, noise=0.0, generator=torch.Generator().manual_seed(0)) / 1.4 + torch.tensor([0.5, 0.25])
    r_outer = m.norm(dim=1)
    r_inner = (m - torch.tensor([1.0, 0.5])).norm(dim=1)
    assert torch.minimum((r_outer - 1).abs(), (r_inner - 1).abs()).max() < 1e-5
    c = checkerboard(2000, generator=torch.Generator().manual_seed(0))
    assert (c.abs() <= 2).all()
    cell = torch.floor(c + 2).long()
    assert ((cell[:, 0] + cell[:, 1]) % 2 == 0).all()
    s = swiss_roll(500, noise=0.0, generator=torch.Generator().manual_seed(0)) * 6
    u = s.norm(dim=1)  # radius = angle parameter u in [1.5 pi, 4.5 pi]
    assert (u >= 1.5 * math.pi - 1e-4).all() and (u <= 4.5 * math.pi + 1e-4).all()


@pytest.mark.parametrize("make, match", [
    (lambda: GaussianMixture(torch.zeros(0, 2), 1.0), "means"),
    (lambda: GaussianMixture(torch.zeros(2, 2, 2), 1.0), "means"),
    (lambda: GaussianMixture(torch.zeros(2, 2), [1.0, -1.0]), "stds"),
    (lambda: GaussianMixture(torch.zeros(2, 2), 0.0), "stds"),
    (lambda: GaussianMixture(torch.zeros(2, 2), [1.0, 1.0, 1.0]), "stds"),
    (lambda: GaussianMixture(torch.zeros(2, 2), 1.0, weights=[1.0, -0.5]), "weights"),
    (lambda: GaussianMixture(torch.zeros(2, 2), 1.0, weights=[0.0, 0.0]), "weights"),
    (lambda: GaussianMixture(torch.zeros(2, 2), 1.0, weights=[1.0]), "weights"),
    (lambda: GaussianMixture([[float("nan"), 0.0]], 1.0), "means"),
    (lambda: ring().sample(-1), "n"),
    (lambda: ring().sample(2.5), "n"),
    (lambda: moons(-3), "n"),
    (lambda: swiss_roll(10, noise=-1.0), "noise"),
    (lambda: checkerboard(-1), "n"),
    (lambda: ring().log_prob(torch.zeros(4, 3)), "x must have shape"),
    (lambda: ring().score(torch.zeros(4, 2), 1.5, VPSDE()), "t must lie"),
    (lambda: ring().score(torch.zeros(4, 2), torch.full((3,), 0.5), VPSDE()), "shape"),
    (lambda: ring().score(torch.zeros(4, 2), 0.5), "sde"),
    (lambda: ring(0), "n_modes"),
])
def test_bad_input_raises(make, match):
    with pytest.raises(ValueError, match=match):
        make()


# ---------------------------------------------------------------------- one-dimensional laws
MIX1 = GaussianMixture([-1.0, 0.5, 2.0], [0.3, 0.15, 0.4], [0.3, 0.3, 0.4], dtype=torch.float64)


def test_cdf_is_the_integral_of_the_density():
    x = torch.linspace(-6, 6, 200_001, dtype=torch.float64)
    dens = MIX1.log_prob(x[:, None]).exp()
    integral = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumulative_trapezoid(dens, x)])
    assert torch.allclose(MIX1.cdf(x), integral, atol=1e-9)
    assert MIX1.cdf(torch.tensor([-50.0, 50.0])).tolist() == [0.0, 1.0]


def test_quantiles_invert_the_cdf_and_have_zero_w1():
    q = MIX1.quantiles(1000)
    assert q.shape == (1000, 1) and torch.all(q[1:] > q[:-1])
    assert torch.allclose(MIX1.cdf(q), (torch.arange(1000, dtype=torch.float64) + 0.5) / 1000, atol=1e-12)
    # evenly spread quantiles: W1 to the law is O(1/n); an i.i.d. sample's is O(1/sqrt(n))
    w1_q, w1_iid = MIX1.wasserstein_1(q), MIX1.wasserstein_1(MIX1.sample(1000, torch.Generator().manual_seed(0)))
    assert w1_q < 2e-3 < w1_iid, (w1_q, w1_iid)


def test_wasserstein_1_of_a_shifted_law_is_the_shift():
    # W1(mu shifted by c, mu) = |c|: quantiles of the law, moved by c, against the law itself
    q = MIX1.quantiles(20_000)
    for c in (0.05, -0.3, 1.0):
        assert abs(MIX1.wasserstein_1(q + c) - abs(c)) < 2e-4, c


def test_one_dimensional_methods_reject_2d_mixtures_and_bad_grids():
    from sdelab.metrics import wasserstein_1d_to_cdf

    two_d = ring()
    for call in (lambda: two_d.cdf(torch.zeros(3)), lambda: two_d.quantiles(3),
                 lambda: two_d.wasserstein_1(torch.zeros(3))):
        with pytest.raises(ValueError, match="one-dimensional"):
            call()
    with pytest.raises(ValueError, match="lo must be < hi"):
        wasserstein_1d_to_cdf(torch.zeros(3), MIX1.cdf, 1.0, -1.0)
    with pytest.raises(ValueError, match="points"):
        wasserstein_1d_to_cdf(torch.zeros(3), MIX1.cdf, -1.0, 1.0, points=1)
    with pytest.raises(ValueError, match="1-D samples"):
        wasserstein_1d_to_cdf(torch.zeros(3, 2), MIX1.cdf, -1.0, 1.0)


@pytest.mark.parametrize("scale", [1e20, 1e30])
def test_ring_score_is_finite_and_points_home_far_away(scale):
    """|x| >= 1e20 squares past float32's range; the score must stay finite and equal -(x - mu_k)/v_k of the
    nearest mode (weights all on it), as the docstring promises."""
    mix, sde = ring(), VPSDE()
    x = torch.tensor([[scale, 0.0], [0.0, -scale], [scale, scale]])
    for s, var in ((mix.score(x), 0.1**2), (mix.score(x, 0.5, sde), None)):
        assert torch.isfinite(s).all(), s
        if var is not None:  # data score: -(x - mu_nearest) / s^2
            mu = torch.tensor([[2.0, 0.0], [0.0, -2.0], [2 ** 0.5, 2 ** 0.5]])
            torch.testing.assert_close(s, -(x - mu) / var, rtol=1e-5, atol=1e-3)
        assert (s * x)[x != 0].lt(0).all()  # towards the origin
