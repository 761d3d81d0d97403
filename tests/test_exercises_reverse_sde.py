"""The checkers of "The reverse-time SDE and the probability-flow ODE" accept the reference solutions and name each
typical mistake."""
import math

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

import sdelab
from sdelab import VPSDE, append_dims
from sdelab.exercises import WrongAnswer
from sdelab.exercises.reverse_sde import check_lambda_drift, check_pf_gaussian_map, check_reverse_em_step

VP = VPSDE(0.1, 20.0)


# ------------------------------------------------------------------ check_lambda_drift
def lambda_drift(x, t, score, lam):
    beta = append_dims(VP.beta(t), x.ndim)
    return -0.5 * beta * x - 0.5 * (1 + lam**2) * beta * score


def test_lambda_drift_accepts_solution_and_the_package():
    assert check_lambda_drift(lambda_drift).startswith("Correct!")
    # sdelab.reverse_drift with a score_fn that returns the given score
    assert check_lambda_drift(lambda x, t, s, lam: sdelab.reverse_drift(VP, lambda x_, t_: s, x, t, lam=lam)
                              ).startswith("Correct!")


def _drift(c, f_scale=-0.5, sign=-1.0, g_pow=1.0):
    def d(x, t, score, lam):
        beta = append_dims(VP.beta(t), x.ndim)
        return f_scale * beta * x + sign * c(lam) * beta**g_pow * score
    return d


@pytest.mark.parametrize("wrong, match", [
    (_drift(lambda lam: 1.0), "half\\* the score term"),
    (_drift(lambda lam: 0.5), "must grow with the noise"),
    (_drift(lambda lam: (1 + lam) / 2), "lambda enters squared"),
    (_drift(lambda lam: lam**2 / 2), "dropped the 1/2 g\\^2 s"),
    (_drift(lambda lam: lam**2), "not lambda\\^2"),
    (_drift(lambda lam: (1 + lam**2) / 2, sign=1.0), "sign error in the score term"),
    (_drift(lambda lam: (1 + lam**2) / 2, g_pow=0.5), "not g = sqrt"),
    (_drift(lambda lam: (1 + lam**2) / 2, f_scale=0.0), "forgot the forward drift"),
    (_drift(lambda lam: (1 + lam**2) / 2, f_scale=0.5), "sign of f"),
    (_drift(lambda lam: (1 + lam**2) / 2, f_scale=0.5, sign=1.0), "forward time tau"),
    (_drift(lambda lam: (1 + lam**2) / 2, f_scale=-1.0), "dropped its 1/2"),
    (_drift(lambda lam: (1 + lam**2) / 2 if lam < 1.5 else 3.0), "wrong for lambda in \\[2.0\\]"),
])
def test_lambda_drift_names_the_mistake(wrong, match):
    with pytest.raises(WrongAnswer, match=match):
        check_lambda_drift(wrong)


def test_lambda_drift_bad_returns():
    with pytest.raises(WrongAnswer, match="function"):
        check_lambda_drift(None)
    with pytest.raises(WrongAnswer, match="shape"):
        check_lambda_drift(lambda x, t, s, lam: x[:, 0])
    with pytest.raises(WrongAnswer, match="append_dims"):
        check_lambda_drift(lambda x, t, s, lam: -0.5 * VP.beta(t) * x)


# ------------------------------------------------------------------ check_reverse_em_step
def reverse_em_step(score_fn, sde, x, t, dt, z):
    tt = torch.full((x.shape[0],), t, dtype=x.dtype)
    g = sde.diffusion(tt)[:, None]
    return x + (sde.drift(x, tt) - g**2 * score_fn(x, tt)) * dt + g * math.sqrt(-dt) * z


def test_reverse_em_step_accepts_solution_and_matches_the_sampler():
    assert check_reverse_em_step(reverse_em_step).startswith("Correct!")
    # one step of sdelab.samplers.euler_maruyama is the same step
    mix = sdelab.toy.ring(dtype=torch.float64)
    x = mix.noised(0.5, VP).sample(8, generator=torch.Generator().manual_seed(0))
    out = sdelab.samplers.euler_maruyama(mix.score_fn(VP), VP, x, torch.tensor([0.5, 0.45], dtype=torch.float64),
                                         generator=torch.Generator().manual_seed(1))
    z = torch.randn(x.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert torch.allclose(out, reverse_em_step(mix.score_fn(VP), VP, x, 0.5, -0.05, z), atol=1e-12)


def _step(drift_c=1.0, dt_sign=1.0, noise=lambda g, dt: g * math.sqrt(-dt), f_sign=1.0, score_sign=-1.0,
          at_next=False):
    def step(score_fn, sde, x, t, dt, z):
        tv = t + dt if at_next else t
        tt = torch.full((x.shape[0],), tv, dtype=x.dtype)
        g = float(sde.diffusion(torch.tensor(tv, dtype=x.dtype)))
        drift = f_sign * sde.drift(x, tt) + score_sign * drift_c * g**2 * score_fn(x, tt)
        return x + drift * dt * dt_sign + noise(g, dt) * z
    return step


@pytest.mark.parametrize("wrong, match", [
    (_step(dt_sign=-1.0), "multiplied by dt < 0"),
    (_step(noise=lambda g, dt: g * (-dt)), "not \\|dt\\|"),
    (_step(noise=lambda g, dt: g**2 * math.sqrt(-dt)), "amplitude is g\\(t\\), not g\\^2"),
    (_step(drift_c=0.5), "mixes the probability-flow drift"),
    (_step(noise=lambda g, dt: 0.0), "noise term g sqrt\\(\\|dt\\|\\) z is missing"),
    (_step(drift_c=0.5, noise=lambda g, dt: 0.0), "Euler step of the probability-flow ODE"),
    (_step(score_sign=1.0), "sign error in the score term"),
    (_step(f_sign=-1.0), "sign of f"),
    (_step(noise=lambda g, dt: -g * math.sqrt(-dt)), "add \\+ g sqrt"),
    (_step(at_next=True), "start of the step"),
    (_step(noise=lambda g, dt: math.sqrt(2) * g * math.sqrt(-dt)), "sqrt\\(2\\)"),
    (_step(drift_c=1.05), "the step should be"),
])
def test_reverse_em_step_names_the_mistake(wrong, match):
    with pytest.raises(WrongAnswer, match=match):
        check_reverse_em_step(wrong)


def test_reverse_em_step_nan_from_sqrt_of_negative_dt():
    def bad(score_fn, sde, x, t, dt, z):
        tt = torch.full((x.shape[0],), t, dtype=x.dtype)
        g = sde.diffusion(tt)[:, None]
        return x + (sde.drift(x, tt) - g**2 * score_fn(x, tt)) * dt + g * torch.sqrt(torch.tensor(dt)) * z
    with pytest.raises(WrongAnswer, match="sqrt\\(\\|dt\\|\\)"):
        check_reverse_em_step(bad)
    with pytest.raises(WrongAnswer, match="raised ValueError"):
        check_reverse_em_step(lambda score_fn, sde, x, t, dt, z: x + math.sqrt(dt) * z)


# ------------------------------------------------------------------ check_pf_gaussian_map
def _B(t):
    return 0.1 * t + 9.95 * t**2


def pf_map(x_T, t, m0, s0):
    a, a1 = math.exp(-_B(t) / 2), math.exp(-_B(1.0) / 2)
    v, v1 = a**2 * s0**2 + 1 - a**2, a1**2 * s0**2 + 1 - a1**2
    return a * m0 + (x_T - a1 * m0) * math.sqrt(v / v1)


def test_pf_gaussian_map_accepts_solution_and_matches_an_ode_solve():
    assert check_pf_gaussian_map(pf_map).startswith("Correct!")
    # integrate dx/dt = -beta x/2 + beta (x - m)/(2 v) numerically from 1 to 0.3
    m0, s0 = 1.0, 0.5

    def v(t):
        a = math.exp(-_B(t) / 2)
        return a**2 * s0**2 + 1 - a**2

    def rhs(t, x):
        beta, m = 0.1 + 19.9 * t, math.exp(-_B(t) / 2) * m0
        return -0.5 * beta * x + 0.5 * beta * (x - m) / v(t)

    x_T = np.array([-1.0, 0.2, 2.0])
    sol = solve_ivp(rhs, (1.0, 0.3), x_T, rtol=1e-11, atol=1e-12)
    assert np.allclose(sol.y[:, -1], pf_map(torch.tensor(x_T), 0.3, m0, s0).numpy(), atol=1e-8)


def _map(fn):
    def m(x_T, t, m0, s0):
        a, a1 = math.exp(-_B(t) / 2), math.exp(-_B(1.0) / 2)
        return fn(x_T, a, a1, m0, s0)
    return m


def _v(a, s0):
    return a**2 * s0**2 + 1 - a**2


@pytest.mark.parametrize("wrong, match", [
    (_map(lambda x, a, a1, m0, s0: a * m0 + (x - a1 * m0) * _v(a, s0) / _v(a1, s0)), "ratio of standard deviations"),
    (_map(lambda x, a, a1, m0, s0: a * m0 + (x - a1 * m0) * math.sqrt(_v(a1, s0) / _v(a, s0))), "upside down"),
    (_map(lambda x, a, a1, m0, s0: x * math.sqrt(_v(a, s0) / _v(a1, s0))), "means are missing"),
    (_map(lambda x, a, a1, m0, s0: m0 + (x - m0) * math.sqrt(_v(a, s0) / _v(a1, s0))), "not m0"),
    (_map(lambda x, a, a1, m0, s0: x * a / a1), "dropped the score term"),
    (_map(lambda x, a, a1, m0, s0: a * m0 + (x - a1 * m0) * a / a1), "dropped the score term"),
    (_map(lambda x, a, a1, m0, s0: a * m0 + x * math.sqrt(_v(a, s0))), "assumed p_1 = N\\(0, 1\\)"),
    (_map(lambda x, a, a1, m0, s0: a * m0 + (x - a1 * m0) * math.sqrt((s0**2 + 1 - a**2) / (s0**2 + 1 - a1**2))),
     "scaled by alpha\\^2"),
    (_map(lambda x, a, a1, m0, s0: a * m0 + (x - a1 * m0) * math.sqrt((a**2 * s0**2 + (1 - a**2) ** 2)
                                                                      / (a1**2 * s0**2 + (1 - a1**2) ** 2))),
     "do not square it again"),
    (_map(lambda x, a, a1, m0, s0: a * m0 + (x - a1 * m0) * math.sqrt((a**2 * s0 + 1 - a**2)
                                                                      / (a1**2 * s0 + 1 - a1**2))), "uses s0\\^2"),
    (_map(lambda x, a, a1, m0, s0: a * m0 + (x - a1 * m0) * math.sqrt(_v(a, s0) / _v(a1, s0)) + 0.01),
     "x\\(t\\) should be"),
])
def test_pf_gaussian_map_names_the_mistake(wrong, match):
    with pytest.raises(WrongAnswer, match=match):
        check_pf_gaussian_map(wrong)


def test_pf_gaussian_map_bad_returns():
    with pytest.raises(WrongAnswer, match="shape"):
        check_pf_gaussian_map(lambda x_T, t, m0, s0: x_T[:3])
    with pytest.raises(WrongAnswer, match="torch tensor"):
        check_pf_gaussian_map(lambda x_T, t, m0, s0: 1.0)


def test_reverse_em_step_vp_beta_hard_coded_is_named():
    def vp_coded(score_fn, sde, x, t, dt, z):  # f and g of the VP-SDE written out: wrong on sub-VP
        beta = 0.1 + 19.9 * t
        s = score_fn(x, torch.full((x.shape[0],), t, dtype=x.dtype))
        return x + (-0.5 * beta * x - beta * s) * dt + math.sqrt(beta) * math.sqrt(-dt) * z
    with pytest.raises(WrongAnswer, match="sub-VP SDE"):
        check_reverse_em_step(vp_coded)


def test_success_messages_are_one_short_line():
    msgs = [check_lambda_drift(lambda_drift), check_reverse_em_step(reverse_em_step), check_pf_gaussian_map(pf_map)]
    assert all(len(m) <= 90 and "\n" not in m for m in msgs), [len(m) for m in msgs]
