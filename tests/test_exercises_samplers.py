"""The checkers of "Samplers compared" accept the reference solutions and name each typical mistake."""
import math

import numpy as np
import pytest
import torch

from sdelab import discrete, samplers
from sdelab.exercises import WrongAnswer
from sdelab.exercises.samplers import check_budget_sampler, check_estimate_order, check_heun_step


# ------------------------------------------------------------------ check_heun_step
def heun(v, x, t, tn):
    h = tn - t
    k1 = v(x, t)
    return x + 0.5 * h * (k1 + v(x + h * k1, tn))


def test_heun_step_accepts_solution():
    assert check_heun_step(heun).startswith("Correct!")


def _twice_at_start(v, x, t, tn):
    k1, k2 = v(x, t), v(x, t)
    return x + 0.5 * (tn - t) * (k1 + k2)


def _three_calls(v, x, t, tn):
    v(x, t)
    return heun(v, x, t, tn)


@pytest.mark.parametrize("wrong, match", [
    (lambda v, x, t, tn: x + (tn - t) * v(x, t), "Euler's step"),
    (_twice_at_start, "Euler in disguise"),
    (lambda v, x, t, tn: x + (tn - t) * v(x + (tn - t) * v(x, t), tn), "only the slope at the predicted end"),
    (lambda v, x, t, tn: x + 0.5 * (tn - t) * (v(x, t) + v(x, tn)), "at the predicted point"),
    (lambda v, x, t, tn: x + 0.5 * (tn - t) * (v(x, t) + v(x + (tn - t) * v(x, t), t)), "new time t_next"),
    (lambda v, x, t, tn: x + (tn - t) * v(x + 0.5 * (tn - t) * v(x, t), t + 0.5 * (tn - t)), "midpoint method"),
    (lambda v, x, t, tn: x + 0.25 * (tn - t) * (v(x, t) + v(x + (tn - t) * v(x, t), tn)), "took half"),
    (lambda v, x, t, tn: x + (tn - t) * (v(x, t) + v(x + (tn - t) * v(x, t), tn)), "you added them"),
    (lambda v, x, t, tn: x - (tn - t) * v(x, t), "wrong way"),
    (lambda v, x, t, tn: heun(v, x, tn, t) * 0 + x - 0.5 * (tn - t) * (v(x, t) + v(x - (tn - t) * v(x, t), tn)),
     "Sign error"),
    (_three_calls, "called 3 times"),
    (lambda v, x, t, tn: 1.001 * heun(v, x, t, tn), "Heun's step gives"),
    (lambda v, x, t, tn: x[0], "shape of x"),
])
def test_heun_step_names_the_mistake(wrong, match):
    with pytest.raises(WrongAnswer, match=match):
        check_heun_step(wrong)


# ------------------------------------------------------------------ check_estimate_order
def order(nfe, err):
    return -np.polyfit(np.log(nfe), np.log(err), 1)[0]


def test_estimate_order_accepts_solution():
    assert check_estimate_order(order).startswith("Correct!")
    assert check_estimate_order(lambda n, e: -np.polyfit(np.log10(n), np.log10(e), 1)[0]).startswith("Correct!")
    assert check_estimate_order(lambda n, e: torch.tensor(order(n, e))).startswith("Correct!")


@pytest.mark.parametrize("wrong, match", [
    (lambda n, e: -order(n, e), "wrong sign"),
    (lambda n, e: -np.polyfit(np.log10(n), np.log(e), 1)[0], "ln 10 = 2.30"),
    (lambda n, e: -np.polyfit(np.log(n), np.log10(e), 1)[0], "1/ln 10"),
    (lambda n, e: -np.polyfit(n, np.log(e), 1)[0], "semi-log"),
    (lambda n, e: -np.polyfit(n, e, 1)[0], "without logarithms"),
    (lambda n, e: np.log2(e[:-1] / e[1:]).mean(), "only when NFE doubles"),
    (lambda n, e: np.log2(e[-2] / e[-1]), "only when NFE doubles"),
    (lambda n, e: order(n, e) + 0.3, "fit a straight line"),
    (lambda n, e: np.array([1.0, 2.0]), "one number"),
])
def test_estimate_order_names_the_mistake(wrong, match):
    with pytest.raises(WrongAnswer, match=match):
        check_estimate_order(wrong)


# ------------------------------------------------------------------ check_budget_sampler
def sqrt_grid(n):
    return torch.linspace(1.0, math.sqrt(1e-3), n + 1, dtype=torch.float64) ** 2


def test_budget_sampler_accepts_second_order_solvers():
    assert check_budget_sampler(lambda s, sde, x: samplers.pf_ode_heun(s, sde, x, sqrt_grid(10))).startswith(
        "Correct!")

    def dpm(s, sde, x):
        eps = lambda x, t: -sde.std(t)[:, None] * s(x, t)  # noqa: E731
        return discrete.dpm_solver_2m(eps, sde, x, sqrt_grid(20))

    assert check_budget_sampler(dpm).startswith("Correct!")


@pytest.mark.parametrize("wrong, match", [
    (lambda s, sde, x: samplers.pf_ode_euler(s, sde, x, sde.time_grid(20)), "W1 = 0.01"),
    (lambda s, sde, x: samplers.pf_ode_heun(s, sde, x, sde.time_grid(11)), "used 22 score evaluations"),
    (lambda s, sde, x: samplers.euler_maruyama(s, sde, x, sde.time_grid(20)), "stochastic"),
    (lambda s, sde, x: samplers.pf_ode_euler(s, sde, x, torch.tensor([1.0, 0.5])), "far off"),
    (lambda s, sde, x: x * 0.5, "never called score_fn"),
    (lambda s, sde, x: x[:10], "shape of x"),
])
def test_budget_sampler_names_the_mistake(wrong, match):
    with pytest.raises(WrongAnswer, match=match):
        check_budget_sampler(wrong)


# ---------------------------------------------------------------------- Karras grid
def karras(sde, n, eps, rho):
    hi, lo = (float(sde.noise_ratio(t)) ** (1 / rho) for t in (sde.T, eps))
    target = torch.linspace(hi, lo, n + 1, dtype=torch.float64) ** rho
    a, b = torch.full_like(target, eps), torch.full_like(target, sde.T)
    for _ in range(60):
        m = 0.5 * (a + b)
        below = sde.noise_ratio(m) < target
        a, b = torch.where(below, m, a), torch.where(below, b, m)
    return 0.5 * (a + b)


def test_karras_grid_accepts_solution():
    from sdelab.exercises.samplers import check_karras_grid

    assert "Correct" in check_karras_grid(karras)


@pytest.mark.parametrize("wrong, match", [
    (lambda sde, n, eps, rho: karras(sde, n, eps, rho).flip(0), "upwards"),
    (lambda sde, n, eps, rho: sde.time_grid(n, eps, kind="logsnr"), "log-SNR"),
    (lambda sde, n, eps, rho: torch.linspace(1, eps, n + 1), "uniform in t"),
    (lambda sde, n, eps, rho: karras(sde, n, eps, 7.0), "differs from Karras"),   # ignores rho
    (lambda sde, n, eps, rho: karras(sde, n, eps, rho)[:-1], "n \\+ 1"),
])
def test_karras_grid_names_the_mistake(wrong, match):
    from sdelab.exercises.samplers import check_karras_grid

    with pytest.raises(WrongAnswer, match=match):
        check_karras_grid(wrong)
