"""Denoising score matching: every weighting and prediction against the formula written out by hand."""
import math

import pytest
import torch

from sdelab import VESDE, VPSDE, SubVPSDE
from sdelab.losses import dsm_loss


def model(x, t, y=None):
    """A fixed nonlinear 'network' (any shape)."""
    return torch.tanh(0.7 * x) + t.reshape(-1, *[1] * (x.ndim - 1)) ** 2 - 0.3


def _draws(sde, x0, seed, t_eps):
    g = torch.Generator().manual_seed(seed)
    t = t_eps + (sde.T - t_eps) * torch.rand(x0.shape[0], generator=g, dtype=x0.dtype)
    eps = torch.randn(x0.shape, generator=g, dtype=x0.dtype)
    return t, eps


def _by_hand(sde, x0, t, eps, weighting, prediction):
    """lambda(t) * mean |s_theta + eps/sigma|^2 with s_theta obtained from each prediction's definition."""
    shape = (-1,) + (1,) * (x0.ndim - 1)
    a, s, g = sde.mean_coeff(t).reshape(shape), sde.std(t).reshape(shape), sde.diffusion(t)
    x = a * x0 + s * eps
    out = model(x, t)
    eps_theta = {"eps": out, "score": -s * out, "x0": (x - a * out) / s, "v": (s * x + a * out) / (a**2 + s**2)}
    score = -eps_theta[prediction] / s
    lam = {"sigma2": s.flatten() ** 2, "likelihood": g**2, "none": torch.ones_like(t),
           "v": (s**2 * (a**2 + s**2) ** 2 / a**2).flatten()}[weighting]
    return lam * (score + eps / s).pow(2).flatten(1).mean(1)


@pytest.mark.parametrize("sde", [VPSDE(), SubVPSDE(), VESDE(sigma_max=10.0)], ids=repr)
@pytest.mark.parametrize("weighting", ["sigma2", "likelihood", "none", "v"])
@pytest.mark.parametrize("prediction", ["eps", "score", "x0", "v"])
def test_loss_equals_formula(sde, weighting, prediction):
    x0 = torch.randn(64, 1, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    t_eps = 1e-3
    got = dsm_loss(model, sde, x0, weighting=weighting, prediction=prediction, t_eps=t_eps,
                   generator=torch.Generator().manual_seed(7), reduce=False)
    t, eps = _draws(sde, x0, 7, t_eps)
    want = _by_hand(sde, x0, t, eps, weighting, prediction)
    assert got.shape == (64,)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=0)
    mean = dsm_loss(model, sde, x0, weighting=weighting, prediction=prediction, t_eps=t_eps,
                    generator=torch.Generator().manual_seed(7))
    assert mean.ndim == 0
    torch.testing.assert_close(mean, want.mean(), rtol=1e-9, atol=0)


def test_eps_sigma2_is_exactly_l_simple():
    # erratum 9: the sigma^2-weighted score loss IS |eps_theta - eps|^2, no reweighting at all
    sde = VPSDE()
    x0 = torch.randn(128, 2, generator=torch.Generator().manual_seed(0))
    got = dsm_loss(model, sde, x0, generator=torch.Generator().manual_seed(1), reduce=False)
    t, eps = _draws(sde, x0, 1, 1e-5)
    x = sde.mean_coeff(t)[:, None] * x0 + sde.std(t)[:, None] * eps
    assert torch.equal(got, (model(x, t) - eps).pow(2).mean(1))


@pytest.mark.parametrize("sde", [VPSDE(), VESDE(sigma_max=10.0)], ids=repr)
def test_v_weighting_with_v_prediction_is_exactly_the_v_mse(sde):
    x0 = torch.randn(128, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    got = dsm_loss(model, sde, x0, weighting="v", prediction="v", t_eps=1e-3,
                   generator=torch.Generator().manual_seed(1), reduce=False)
    t, eps = _draws(sde, x0, 1, 1e-3)
    a, s = sde.mean_coeff(t)[:, None], sde.std(t)[:, None]
    v = a * eps - s * x0
    torch.testing.assert_close(got, (model(a * x0 + s * eps, t) - v).pow(2).mean(1), rtol=1e-9, atol=0)


def test_fixed_times_and_callable_weighting():
    sde = VPSDE()
    x0 = torch.randn(16, 3, dtype=torch.float64)
    t = torch.linspace(0.1, 1.0, 16, dtype=torch.float64)
    ref = dsm_loss(model, sde, x0, weighting="none", t=t, generator=torch.Generator().manual_seed(2), reduce=False)
    g = torch.Generator().manual_seed(2)
    eps = torch.randn(x0.shape, generator=g, dtype=x0.dtype)  # with t given, eps is the first draw
    torch.testing.assert_close(ref, _by_hand(sde, x0, t, eps, "none", "eps"), rtol=1e-9, atol=0)
    lam = dsm_loss(model, sde, x0, weighting=lambda t: 1 + t, t=t, generator=torch.Generator().manual_seed(2),
                   reduce=False)
    torch.testing.assert_close(lam, (1 + t) * ref, rtol=1e-12, atol=0)


def test_unweighted_optimum_grows_like_one_over_sigma2():
    # erratum 10: with the exact score of N(0, s0^2 I) data, E|s* + eps/sigma|^2 per coordinate is
    # 1/sigma^2 - 1/(alpha^2 s0^2 + sigma^2), which blows up as t -> 0 (its time integral like ln(1/t_eps)).
    sde, s0 = VPSDE(), 0.5

    def exact_score(x, t):
        a, s = sde.mean_coeff(t)[:, None], sde.std(t)[:, None]
        return -x / (a**2 * s0**2 + s**2)

    g = torch.Generator().manual_seed(0)
    for tv in (1e-3, 1e-2, 0.5):
        x0 = s0 * torch.randn(20_000, 2, generator=g, dtype=torch.float64)
        t = torch.full((20_000,), tv, dtype=torch.float64)
        per = dsm_loss(exact_score, sde, x0, weighting="none", prediction="score", t=t, generator=g, reduce=False)
        a2, s2 = sde.alpha_bar(t[0]).item(), sde.std(t[0]).item() ** 2
        expected = 1 / s2 - 1 / (a2 * s0**2 + s2)
        se = per.std().item() / math.sqrt(per.numel())
        assert abs(per.mean().item() - expected) < 4 * se, (tv, per.mean().item(), expected)


def test_label_dropout_reaches_the_model():
    seen = []

    def cond_model(x, t, y):
        seen.append(y.clone())
        return torch.zeros_like(x)

    sde, x0, y = VPSDE(), torch.randn(50, 2), torch.arange(50) % 10
    dsm_loss(cond_model, sde, x0, y=y)
    assert torch.equal(seen[-1], y)
    dsm_loss(cond_model, sde, x0, y=y, p_uncond=1.0)
    assert (seen[-1] == -1).all()
    dsm_loss(cond_model, sde, x0, y=y, p_uncond=0.5, generator=torch.Generator().manual_seed(0))
    dropped = seen[-1] == -1
    assert 0 < dropped.sum() < 50 and torch.equal(seen[-1][~dropped], y[~dropped])


def test_bad_arguments_raise():
    sde, x0 = VPSDE(), torch.randn(8, 2)
    cases = [
        (dict(weighting="sigma"), "weighting must be one of"),
        (dict(prediction="noise"), "prediction must be one of"),
        (dict(t_eps=0.0), r"t_eps must lie in \(0, T\)"),
        (dict(t_eps=1.0), r"t_eps must lie in \(0, T\)"),
        (dict(p_uncond=1.5), r"p_uncond must lie in \[0, 1\]"),
        (dict(p_uncond=0.1), "p_uncond > 0 needs labels y"),
        (dict(y=torch.zeros(3, dtype=torch.long)), r"y must have shape \(B,\) = \(8,\)"),
        (dict(t=torch.rand(3)), r"t must have shape \(B,\)"),
        (dict(t=torch.zeros(8)), r"entries in \(0, T\]"),
    ]
    for kwargs, msg in cases:
        with pytest.raises(ValueError, match=msg):
            dsm_loss(model, sde, x0, **kwargs)
    with pytest.raises(ValueError, match="x0 must be a float tensor"):
        dsm_loss(model, sde, torch.randn(8))
    with pytest.raises(ValueError, match="the model must return the shape of x0"):
        dsm_loss(lambda x, t: x[:, :1], sde, x0)
