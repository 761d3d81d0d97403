"""Tests for sdelab.metrics: exact 1-D Wasserstein, sliced Wasserstein and MMD against closed forms."""
import math

import pytest
import scipy.stats
import torch

from sdelab.metrics import mmd, sliced_wasserstein, wasserstein_1d

F64 = torch.float64


def gen(seed):
    return torch.Generator().manual_seed(seed)


def test_wasserstein_1d_matches_scipy_for_unequal_sizes():
    a = torch.randn(137, generator=gen(0), dtype=F64)
    b = 0.5 + 2 * torch.randn(60, generator=gen(1), dtype=F64)
    ref = scipy.stats.wasserstein_distance(a.numpy(), b.numpy())
    assert abs(float(wasserstein_1d(a, b)) - ref) < 1e-12
    assert abs(float(wasserstein_1d(b[:, None], a[:, None])) - ref) < 1e-12  # symmetric, (n, 1) accepted


def test_wasserstein_1d_closed_forms():
    a = torch.randn(100, generator=gen(2), dtype=F64)
    # a shift moves every quantile by c: W_p = |c| for every p
    for p in (1, 2, 3):
        assert abs(float(wasserstein_1d(a, a + 0.7, p=p)) - 0.7) < 1e-12
    # repeating every point gives the same empirical measure: distance 0 across sizes
    assert float(wasserstein_1d(a, a.repeat(3))) < 1e-14
    # two atoms: W1(delta_0, {0, 1} with weights 1/2) = 1/2; W2 = sqrt(1/2)
    assert abs(float(wasserstein_1d(torch.zeros(3), torch.tensor([0.0, 1.0]))) - 0.5) < 1e-12
    assert abs(float(wasserstein_1d(torch.zeros(3), torch.tensor([0.0, 1.0]), p=2)) - math.sqrt(0.5)) < 1e-12


def test_sliced_wasserstein_of_a_shift():
    # b = a + c: each projection is shifted by theta.c, so SW^2 = mean (theta.c)^2 -> |c|^2/d.
    # With 4096 directions in d = 3 the Monte-Carlo error of mean (theta.c)^2 is about 1.5 %; tolerance 5 %.
    a = torch.randn(500, 3, generator=gen(3), dtype=F64)
    c = torch.tensor([1.0, -2.0, 0.5], dtype=F64)
    sw = float(sliced_wasserstein(a, a + c, n_proj=4096, generator=gen(4)))
    assert abs(sw**2 - float(c @ c) / 3) < 0.05 * float(c @ c) / 3
    assert float(sliced_wasserstein(a, a, generator=gen(4))) == 0.0


def test_sliced_wasserstein_unequal_sizes_and_1d():
    a = torch.randn(300, 2, generator=gen(5), dtype=F64)
    assert float(sliced_wasserstein(a, a.repeat(2, 1), generator=gen(6))) < 1e-12  # same measure
    b = torch.randn(170, 2, generator=gen(7), dtype=F64)
    sw_ab = sliced_wasserstein(a, b, generator=gen(8))
    torch.testing.assert_close(sw_ab, sliced_wasserstein(b, a, generator=gen(8)))  # symmetric
    # in d = 1 every direction is +-1: SW equals the exact W2
    x, y = torch.randn(80, 1, generator=gen(9), dtype=F64), 1 + torch.randn(45, 1, generator=gen(10), dtype=F64)
    assert abs(float(sliced_wasserstein(x, y, n_proj=5, generator=gen(0))) - float(wasserstein_1d(x, y, p=2))) < 1e-12


def test_sliced_wasserstein_gaussians_scale():
    # N(0, I) vs N(0, 4 I): every projection is N(0, 1) vs N(0, 4), W2 = |1 - 2| = 1 (finite-n error ~ few %).
    a = torch.randn(20_000, 2, generator=gen(11), dtype=F64)
    b = 2 * torch.randn(20_000, 2, generator=gen(12), dtype=F64)
    assert abs(float(sliced_wasserstein(a, b, n_proj=64, generator=gen(13))) - 1.0) < 0.05


def test_sliced_wasserstein_seed_and_images():
    a = torch.randn(50, 1, 28, 28, generator=gen(14))
    b = torch.randn(40, 1, 28, 28, generator=gen(15))
    assert sliced_wasserstein(a, b, generator=gen(1)).equal(sliced_wasserstein(a, b, generator=gen(1)))
    a.requires_grad_(True)
    sliced_wasserstein(a, b, generator=gen(1)).backward()
    assert a.grad is not None and torch.isfinite(a.grad).all()


def mmd2_gaussians(delta2, s, h, d):
    """Population MMD^2 between N(mu1, s^2 I) and N(mu2, s^2 I) for one RBF kernel of width h."""
    c = (h * h / (h * h + 2 * s * s)) ** (d / 2)
    return 2 * c * (1 - math.exp(-delta2 / (2 * (h * h + 2 * s * s))))


def test_mmd_closed_form_and_bias():
    n, d, s, h = 800, 2, 1.0, 1.5
    shift = torch.tensor([1.0, 0.0], dtype=F64)
    a = torch.randn(n, d, generator=gen(16), dtype=F64)
    b = torch.randn(n, d, generator=gen(17), dtype=F64) + shift
    exact = mmd2_gaussians(1.0, s, h, d)  # about 0.15
    # unbiased estimate: standard error ~ 1e-2 at n = 800; tolerance 0.03
    assert abs(float(mmd(a, b, bandwidths=[h])) - exact) < 0.03
    c = torch.randn(n, d, generator=gen(18), dtype=F64)
    same = float(mmd(a, c, bandwidths=[h]))
    assert abs(same) < 0.01  # same law: unbiased estimate centred at 0
    assert float(mmd(a, a, bandwidths=[h], unbiased=False)) < 1e-12  # V-statistic of identical samples is 0
    assert float(mmd(a, c, bandwidths=[h], unbiased=False)) > same  # V-statistic is biased upwards
    # default bandwidths (median heuristic) still separate the two laws
    assert float(mmd(a, b)) > 10 * abs(float(mmd(a, c)))


@pytest.mark.parametrize("call, match", [
    (lambda: wasserstein_1d(torch.zeros(3, 2), torch.zeros(3, 2)), "1-D"),
    (lambda: wasserstein_1d(torch.zeros(3), torch.zeros(3), p=0.5), "p must"),
    (lambda: wasserstein_1d(torch.zeros(0), torch.zeros(3)), "a must hold"),
    (lambda: sliced_wasserstein(torch.zeros(3, 2), torch.zeros(3, 3)), "dimension"),
    (lambda: sliced_wasserstein(torch.zeros(3, 2), torch.zeros(3, 2), n_proj=0), "n_proj"),
    (lambda: sliced_wasserstein(torch.tensor([[float("nan"), 0.0]]), torch.zeros(3, 2)), "non-finite"),
    (lambda: mmd(torch.zeros(3, 2), torch.zeros(3, 3)), "dimension"),
    (lambda: mmd(torch.zeros(1, 2), torch.zeros(3, 2)), "at least 2"),
    (lambda: mmd(torch.zeros(3, 2), torch.zeros(3, 2), bandwidths=[1.0, -1.0]), "bandwidths"),
])
def test_bad_input_raises(call, match):
    with pytest.raises(ValueError, match=match):
        call()
