"""Parameterisations: the converters against their definitions, Tweedie against a Gaussian posterior, model wrappers."""
import pytest
import torch

from sdelab import VESDE, VPSDE, SubVPSDE
from sdelab import param
from sdelab.param import PREDICTIONS, convert, eps_fn, score_fn, tweedie_denoiser

SDES = [VPSDE(), SubVPSDE(), VPSDE(schedule="cosine"), VESDE()]


def _setup(sde, shape=(6, 2, 3)):
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(shape, generator=g, dtype=torch.float64)
    eps = torch.randn(shape, generator=g, dtype=torch.float64)
    t = 0.05 + 0.95 * torch.rand(shape[0], generator=g, dtype=torch.float64)
    a = sde.mean_coeff(t).reshape(-1, *[1] * (len(shape) - 1))
    s = sde.std(t).reshape(-1, *[1] * (len(shape) - 1))
    return x0, eps, t, a, s, a * x0 + s * eps


@pytest.mark.parametrize("sde", SDES, ids=repr)
def test_converters_match_definitions(sde):
    x0, eps, t, a, s, x = _setup(sde)
    truth = {"eps": eps, "score": -eps / s, "x0": x0, "v": a * eps - s * x0}
    for src in PREDICTIONS:
        for dst in PREDICTIONS:
            got = convert(truth[src], x, t, sde, source=src, target=dst)
            torch.testing.assert_close(got, truth[dst], rtol=1e-9, atol=1e-9, msg=f"{src} -> {dst}")


@pytest.mark.parametrize("sde", SDES, ids=repr)
def test_converters_round_trip_arbitrary_predictions(sde):
    _, _, t, _, _, x = _setup(sde, (5, 4))
    pred = torch.randn(5, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    for src in PREDICTIONS:
        for dst in PREDICTIONS:
            back = convert(convert(pred, x, t, sde, source=src, target=dst), x, t, sde, source=dst, target=src)
            torch.testing.assert_close(back, pred, rtol=1e-9, atol=1e-9)


def test_vp_velocity_closed_forms():
    sde = VPSDE()
    x0, eps, t, a, s, x = _setup(sde)
    torch.testing.assert_close(a**2 + s**2, torch.ones_like(a))  # VP: r^2 = 1
    v = a * eps - s * x0
    torch.testing.assert_close(param.v_to_eps(v, x, t, sde), s * x + a * v)
    torch.testing.assert_close(convert(v, x, t, sde, source="v", target="x0"), a * x - s * v)


@pytest.mark.parametrize("sde", [VPSDE(), SubVPSDE(), VESDE(sigma_max=5.0)], ids=repr)
def test_tweedie_is_the_gaussian_posterior_mean(sde):
    # x0 ~ N(m, s0^2 I): p_t = N(alpha m, (alpha^2 s0^2 + sigma^2) I), and
    # E[x0 | x_t] = m + alpha s0^2 / (alpha^2 s0^2 + sigma^2) (x_t - alpha m)  (Gaussian conditioning)
    m, s0 = torch.tensor([1.5, -0.5, 2.0], dtype=torch.float64), 0.7
    g = torch.Generator().manual_seed(3)
    t = torch.tensor([0.01, 0.1, 0.5, 0.9, 1.0], dtype=torch.float64)
    x = 3 * torch.randn(5, 3, generator=g, dtype=torch.float64)
    a, s = sde.mean_coeff(t)[:, None], sde.std(t)[:, None]
    var = a**2 * s0**2 + s**2
    score = -(x - a * m) / var
    posterior = m + a * s0**2 / var * (x - a * m)
    torch.testing.assert_close(tweedie_denoiser(score, x, t, sde), posterior, rtol=1e-12, atol=1e-12)


def test_tweedie_monte_carlo():
    # independent check: average x0 over the exact posterior p(x0 | x_t) for one x_t (Gaussian data)
    sde, m, s0 = VPSDE(), 0.8, 0.5
    t = torch.tensor([0.3], dtype=torch.float64)
    a, s = sde.mean_coeff(t), sde.std(t)
    g = torch.Generator().manual_seed(0)
    x0 = m + s0 * torch.randn(400_000, generator=g, dtype=torch.float64)
    xt = a * x0 + s * torch.randn(400_000, generator=g, dtype=torch.float64)
    sel = (xt - 0.5).abs() < 0.01  # condition on x_t close to 0.5
    x = torch.tensor([[0.5]], dtype=torch.float64)
    score = -(x - a * m) / (a**2 * s0**2 + s**2)
    est = x0[sel].mean()
    se = x0[sel].std() / sel.sum().sqrt()
    assert abs(tweedie_denoiser(score, x, t, sde).item() - est.item()) < 4 * se.item()


def test_convert_rejects_bad_input():
    sde = VPSDE()
    x = torch.randn(3, 2)
    with pytest.raises(ValueError, match="source must be one of"):
        convert(x, x, torch.rand(3), sde, source="noise", target="eps")
    with pytest.raises(ValueError, match="pred must have the shape of x"):
        convert(torch.randn(3, 3), x, torch.rand(3), sde, source="eps", target="x0")
    with pytest.raises(ValueError, match=r"t must lie in \[0, T\]"):
        convert(x, x, torch.full((3,), 2.0), sde, source="eps", target="x0")
    with pytest.raises(ValueError, match="score must have the shape"):
        tweedie_denoiser(torch.randn(3, 3), x, torch.rand(3), sde)


class _Recorder(torch.nn.Module):
    """eps_theta(x, t, y) = 0.5 x + t + y (labels as numbers, -1 the null label); records the batch sizes."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, x, t, y=None):
        self.calls.append(x.shape[0])
        out = 0.5 * x + t[:, None]
        return out if y is None else out + y[:, None].to(x.dtype)


def test_score_fn_and_eps_fn_unconditional():
    sde, model = VPSDE(), _Recorder()
    x, t = torch.randn(4, 2, dtype=torch.float64), torch.rand(4, dtype=torch.float64)
    eps = 0.5 * x + t[:, None]
    torch.testing.assert_close(eps_fn(model, sde)(x, t), eps)
    torch.testing.assert_close(score_fn(model, sde)(x, t), -eps / sde.std(t)[:, None])
    torch.testing.assert_close(eps_fn(model, sde)(x, 0.5), 0.5 * x + 0.5)  # scalar t is broadcast
    # a model that predicts x0: eps = (x - alpha x0_theta) / sigma
    x0_pred = 0.5 * x + t[:, None]
    a, s = sde.mean_coeff(t)[:, None], sde.std(t)[:, None]
    torch.testing.assert_close(eps_fn(model, sde, prediction="x0")(x, t), (x - a * x0_pred) / s)


def test_classifier_free_guidance():
    sde, model = VPSDE(), _Recorder()
    x, t = torch.randn(3, 2, dtype=torch.float64), torch.rand(3, dtype=torch.float64)
    y = torch.tensor([2, 0, 1])
    base = 0.5 * x + t[:, None]
    cond, uncond = base + y[:, None], base - 1
    torch.testing.assert_close(eps_fn(model, sde, y=y)(x, t), cond)
    w = 2.5
    got = eps_fn(model, sde, y=y, guidance=w)(x, t)
    torch.testing.assert_close(got, (1 + w) * cond - w * uncond)
    assert model.calls[-1] == 6  # conditional and unconditional passes in one batch
    torch.testing.assert_close(eps_fn(model, sde, y=y, guidance=0.0)(x, t), cond)
    torch.testing.assert_close(eps_fn(model, sde, y=1)(x, t), base + 1)  # an int label is broadcast
    s = score_fn(model, sde, y=y, guidance=w)(x, t)
    torch.testing.assert_close(s, -got / sde.std(t)[:, None])


def test_wrappers_reject_bad_arguments():
    sde, model = VPSDE(), _Recorder()
    with pytest.raises(ValueError, match="guidance needs class labels"):
        eps_fn(model, sde, guidance=1.0)
    with pytest.raises(ValueError, match="guidance must be a number >= 0"):
        eps_fn(model, sde, y=1, guidance=-1.0)
    with pytest.raises(ValueError, match="prediction must be one of"):
        score_fn(model, sde, prediction="noise")
    with pytest.raises(ValueError, match=r"y must be an int or a tensor of shape \(B,\)"):
        eps_fn(model, sde, y=torch.tensor([1, 2]))(torch.randn(3, 2), torch.rand(3))


def test_the_prediction_travels_with_the_model():
    # a v-predicting model says so (model.prediction, set by train and by sdelab.pretrained); eps_fn reads it
    from sdelab.param import eps_fn, prediction_of

    sde = VPSDE()
    net = lambda x, t: torch.tanh(x) + t[:, None]  # noqa: E731
    x, t = torch.randn(5, 2, dtype=torch.float64), torch.full((5,), 0.4, dtype=torch.float64)
    assert prediction_of(net) == "eps"
    net.prediction = "v"
    assert prediction_of(net) == "v" and prediction_of(net, "x0") == "x0"
    torch.testing.assert_close(eps_fn(net, sde)(x, t), eps_fn(net, sde, "v")(x, t))
    assert not torch.allclose(eps_fn(net, sde)(x, t), eps_fn(net, sde, "eps")(x, t))
    net.prediction = "velocity"
    with pytest.raises(ValueError, match="prediction must be one of"):
        eps_fn(net, sde)


@pytest.mark.parametrize("sde", [VPSDE(), SubVPSDE()], ids=repr)
def test_dividing_by_sigma_at_t_zero_is_refused_naming_t(sde):
    """sigma(0) = 0 for VP and sub-VP: eps -> score and x0 -> eps would return inf; they raise instead."""
    x = torch.randn(4, 2)
    for t in (0.0, torch.tensor([0.5, 0.0, 0.2, 0.3])):
        with pytest.raises(ValueError, match=r"^t must lie in \(0, T\]"):
            param.eps_to_score(x, x, t, sde)
        with pytest.raises(ValueError, match=r"^t must lie in \(0, T\]"):
            convert(x, x, t, sde, source="x0", target="eps")
    model = lambda x, t: torch.ones_like(x)  # noqa: E731
    with pytest.raises(ValueError, match=r"^t must lie in \(0, T\]"):
        score_fn(model, sde)(x, 0.0)
    assert torch.isfinite(score_fn(model, sde)(x, 1e-3)).all()
