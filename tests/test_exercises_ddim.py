"""The checkers of "DDIM update coefficients" accept the reference solutions and name each typical mistake."""
import math

import numpy as np
import pytest
import torch

from sdelab.discrete import ddim_step
from sdelab.exercises import WrongAnswer
from sdelab.exercises.ddim import check_ddim_inversion, check_ddim_step, check_strided_timesteps

sq = math.sqrt


# ------------------------------------------------------------------ check_ddim_step
def ddim(x, eps, ab_t, ab_p, eta, noise, *, x0_fn=None, dir_fn=None, sigma_fn=None, noise_scale=None):
    """The reference step with one piece replaceable, to build each typical mistake."""
    x0 = x0_fn(x, eps, ab_t) if x0_fn else (x - sq(1 - ab_t) * eps) / sq(ab_t)
    s = sigma_fn(ab_t, ab_p, eta) if sigma_fn else eta * sq((1 - ab_p) / (1 - ab_t)) * sq(1 - ab_t / ab_p)
    d = dir_fn(ab_p, s) if dir_fn else sq(1 - ab_p - s**2)
    c = noise_scale(s) if noise_scale else s
    return sq(ab_p) * x0 + d * eps + c * noise


def test_ddim_step_accepts_solution_and_the_package():
    assert check_ddim_step(ddim).startswith("Correct!")
    pkg = lambda x, e, a, p, eta, z: ddim_step(x, e, a, p, eta=eta, noise=z)  # noqa: E731
    assert check_ddim_step(pkg).startswith("Correct!")


@pytest.mark.parametrize("wrong, match", [
    (lambda x, e, a, p, eta, z: ddim(x, e, a, p, eta, z) + (p - sq(p)) * (x - sq(1 - a) * e) / sq(a),
     r"signal coefficient is sqrt\(abar_prev\), not abar_prev"),
    (lambda *a: ddim(*a, dir_fn=lambda p, s: 1 - p - s**2), "without the square root"),
    (lambda *a: ddim(*a, x0_fn=lambda x, e, a_: (x - (1 - a_) * e) / sq(a_)), "x0_hat is wrong.*1 - abar_t without"),
    (lambda *a: ddim(*a, x0_fn=lambda x, e, a_: (x - sq(1 - a_) * e) / a_), r"divide by sqrt\(abar_t\)"),
    (lambda *a: ddim(*a, x0_fn=lambda x, e, a_: (x - sq(a_) * e) / sq(1 - a_)), "swapped"),
    (lambda *a: ddim(*a, x0_fn=lambda x, e, a_: x), "x_t itself"),
    (lambda x, e, a, p, eta, z: sq(a) * (x - sq(1 - p) * e) / sq(p) + sq(1 - a) * e,
     "abar_t and abar_prev are swapped"),
    (lambda *a: ddim(*a, dir_fn=lambda p, s: sq(1 - p)), "forgot the sigma\\^2 inside the square root"),
    (lambda *a: ddim(*a, sigma_fn=lambda a_, p, eta: eta * sq(1 - a_ / p)), r"variance of the \*forward\* step"),
    (lambda *a: ddim(*a, sigma_fn=lambda a_, p, eta: eta * (1 - p) / (1 - a_) * (1 - a_ / p)), "You used its square"),
    (lambda *a: ddim(*a, sigma_fn=lambda a_, p, eta: eta**2 * sq((1 - p) / (1 - a_) * (1 - a_ / p))), "not eta\\^2"),
    (lambda *a: ddim(*a, sigma_fn=lambda a_, p, eta: eta * sq((1 - a_) / (1 - p) * (1 - a_ / p))), "upside down"),
    (lambda *a: ddim(*a, noise_scale=lambda s: 0.0), "left the noise out"),
    (lambda *a: ddim(*a, noise_scale=lambda s: 1.0), "not noise"),
    (lambda x, e, a, p, eta, z: ddim(x, e, a, p, 0.0, z), "you returned the eta = 0 step"),
    (lambda *a: ddim(*a, sigma_fn=lambda a_, p, eta: 0.9 * eta * sq((1 - p) / (1 - a_) * (1 - a_ / p))),
     "right for eta = 0 but not"),
    (lambda *a: 1.01 * ddim(*a), "Compute x0_hat"),
])
def test_ddim_step_names_the_mistake(wrong, match):
    with pytest.raises(WrongAnswer, match=match):
        check_ddim_step(wrong)


def test_ddim_step_rejects_bad_output():
    with pytest.raises(WrongAnswer, match="function"):
        check_ddim_step(0.5)
    with pytest.raises(WrongAnswer, match="shape of x"):
        check_ddim_step(lambda x, e, a, p, eta, z: x[0])
    with pytest.raises(WrongAnswer, match="NaN"):
        check_ddim_step(lambda x, e, a, p, eta, z: x * float("nan"))
    with pytest.raises(WrongAnswer, match="raised ZeroDivisionError"):
        check_ddim_step(lambda *a: 1 / 0)


# ------------------------------------------------------------------ check_strided_timesteps
def trailing(N, K):
    return np.round(N - np.arange(K) * N / K).astype(int) - 1


def test_strided_timesteps_accepts_solution():
    assert check_strided_timesteps(trailing).startswith("Correct!")
    assert check_strided_timesteps(lambda N, K: torch.from_numpy(trailing(N, K))).startswith("Correct!")
    assert check_strided_timesteps(lambda N, K: [int(v) for v in trailing(N, K)]).startswith("Correct!")
    assert check_strided_timesteps(lambda N, K: trailing(N, K).astype(float)).startswith("Correct!")


@pytest.mark.parametrize("wrong, match", [
    (lambda N, K: trailing(N, K)[::-1], "increasing"),
    (lambda N, K: (np.arange(K) * (N // K))[::-1], "leading"),
    (lambda N, K: trailing(N, K) + 1, "0-based"),
    (lambda N, K: np.r_[trailing(N, K), 0], r"K \+ 1"),
    (lambda N, K: np.round(np.linspace(N - 1, 0, K)).astype(int), "ends at index 0"),
    (lambda N, K: trailing(N, K) + 0.5, "non-integer"),
    (lambda N, K: trailing(N, K)[:-1], "should return K"),
    (lambda N, K: np.r_[N - 1, N - 1, trailing(N, K)[2:]] if K > 2 else trailing(N, K), "strictly decreasing"),
    (lambda N, K: np.r_[N - 1, trailing(N, K)[1:] - 3], "gaps between"),
    (lambda N, K: np.stack([trailing(N, K)] * 2), "1-D"),
])
def test_strided_timesteps_names_the_mistake(wrong, match):
    with pytest.raises(WrongAnswer, match=match):
        check_strided_timesteps(wrong)


# ------------------------------------------------------------------ check_ddim_inversion
def _ab(sde, t):
    t = torch.tensor(t, dtype=torch.float64)
    return sde.mean_coeff(t).item(), sde.std(t).item()


def invert(eps_fn, sde, x, ts, *, at_target=False, swap=False, noise=None):
    for i in range(len(ts) - 2, -1, -1):
        (a_s, s_s), (a_t, s_t) = _ab(sde, float(ts[i + 1])), _ab(sde, float(ts[i]))
        t_eval = ts[i] if at_target else ts[i + 1]
        eps = eps_fn(x, t_eval.expand(x.shape[0]).to(x.dtype))
        x0 = (x - s_s * eps) / a_s
        x = (s_t * x0 + a_t * eps) if swap else (a_t * x0 + s_t * eps)
    return x


def test_ddim_inversion_accepts_solution():
    assert check_ddim_inversion(invert).startswith("Correct!")


def _euler(eps_fn, sde, x, ts):
    for i in range(len(ts) - 2, -1, -1):
        s, t = ts[i + 1], ts[i]
        beta, sig = sde.beta(s).item(), sde.std(s).item()
        x = x + (-0.5 * beta * x + 0.5 * beta * eps_fn(x, s.expand(x.shape[0]).to(x.dtype)) / sig) * float(t - s)
    return x


def _stochastic(eps_fn, sde, x, ts):
    a, s = _ab(sde, float(ts[0]))
    return a * x + s * torch.randn_like(x)


@pytest.mark.parametrize("wrong, match", [
    (lambda *a: invert(*a, at_target=True), "time you step \\*to\\*"),
    (lambda *a: invert(*a, swap=True), "swapped"),
    (_euler, "Euler step in t"),
    (_stochastic, "encoding is random"),
    (lambda eps_fn, sde, x, ts: x, "unchanged"),
    (lambda eps_fn, sde, x, ts: torch.stack([x, x]), "trajectory"),
    (lambda eps_fn, sde, x, ts: x[:, 0], "shape of x"),
    (lambda eps_fn, sde, x, ts: 1.02 * invert(eps_fn, sde, x, ts), "differ from DDIM inversion"),
])
def test_ddim_inversion_names_the_mistake(wrong, match):
    with pytest.raises(WrongAnswer, match=match):
        check_ddim_inversion(wrong)


def test_success_messages_are_one_short_line():
    msgs = [check_ddim_step(ddim), check_strided_timesteps(trailing), check_ddim_inversion(invert)]
    assert all(len(m) <= 90 and "\n" not in m for m in msgs), [len(m) for m in msgs]
