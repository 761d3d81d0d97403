"""The checkers of the forward-SDE chapter accept the reference solutions and name each typical mistake."""
import math

import numpy as np
import pytest
import torch

from sdelab import VESDE, SubVPSDE
from sdelab.exercises import WrongAnswer
from sdelab.exercises import forward_sde as ex


# ---------------------------------------------------------------- pairing drift and diffusion
def test_vp_diffusion_accepts_solution():
    assert ex.check_vp_diffusion(lambda c, beta: math.sqrt(2 * c * beta)).startswith("Correct!")
    assert ex.check_vp_diffusion(lambda c, beta: torch.tensor(2 * c * beta).sqrt()).startswith("Correct!")


@pytest.mark.parametrize("fn, match", [
    (lambda c, b: math.sqrt(c * b), "variance g\\^2 / \\(2 c beta\\) is 1/2: a factor 2 is missing.*sqrt\\(2 beta\\)"),
    (lambda c, b: math.sqrt(4 * c * b), "is 2: one factor 2 too many"),
    (lambda c, b: math.sqrt(2 * b), "sqrt\\(2 beta\\) is right for the drift -beta x"),
    (lambda c, b: math.sqrt(b), "sqrt\\(beta\\) is right for the VP drift"),
    (lambda c, b: 2 * c * b, "g is its square root"),
    (lambda c, b: math.sqrt(c * b / 2), "variance is 1/4"),
    (lambda c, b: c * b, "dimensionally inconsistent"),
    (lambda c, b: b, "g = beta is dimensionally inconsistent"),
    (lambda c, b: math.sqrt(3 * c * b), "it gives 1.5"),
    (lambda c, b: [c, b], "one number"),
    (lambda c, b: c / 0, "raised ZeroDivisionError"),
])
def test_vp_diffusion_names_mistakes(fn, match):
    with pytest.raises(WrongAnswer, match=match):
        ex.check_vp_diffusion(fn)


# ---------------------------------------------------------------- sub-VP variance
def Bt(t):
    return 0.1 * t + 9.95 * t**2


def subvp_var(t, v0):
    e = torch.exp(-Bt(t))
    return e * v0 + (1 - e) ** 2


def test_subvp_variance_accepts_solution_and_the_package():
    assert ex.check_subvp_variance(subvp_var).startswith("Correct!")
    sde = SubVPSDE(0.1, 20.0)
    assert ex.check_subvp_variance(lambda t, v0: sde.alpha_bar(t) * v0 + sde.std(t) ** 2).startswith("Correct!")


@pytest.mark.parametrize("fn, match", [
    (lambda t, v0: torch.exp(-Bt(t)) * v0 + 1 - torch.exp(-Bt(t)), "VP-SDE's variance"),
    (lambda t, v0: (1 - torch.exp(-Bt(t))) ** 2, "only the kernel variance"),
    (lambda t, v0: torch.exp(-Bt(t) / 2) * v0 + (1 - torch.exp(-Bt(t))) ** 2, "not by\nalpha|not by alpha"),
    (lambda t, v0: torch.exp(-Bt(t)) * v0 + 1 - torch.exp(-2 * Bt(t)), "appears in sub-VP's g\\^2"),
    (lambda t, v0: torch.exp(-Bt(t)) * v0 + (1 - torch.exp(-(0.1 + 19.9 * t) * t)) ** 2, "beta\\(t\\) t in place"),
    (lambda t, v0: torch.exp(-Bt(t)) * v0 + (1 - torch.exp(-Bt(t))) ** 3, "should be"),
    (lambda t, v0: subvp_var(t, v0)[:2], "shape of t"),
])
def test_subvp_variance_names_mistakes(fn, match):
    with pytest.raises(WrongAnswer, match=match):
        ex.check_subvp_variance(fn)


# ---------------------------------------------------------------- VE g(t)
def ve_g(t, smin, smax):
    return smin * (smax / smin) ** t * math.sqrt(2 * math.log(smax / smin))


def test_ve_diffusion_accepts_solution_and_the_package():
    assert ex.check_ve_diffusion(ve_g).startswith("Correct!")
    assert ex.check_ve_diffusion(lambda t, a, b: VESDE(a, b).diffusion(t)).startswith("Correct!")


def sig(t, a, b):
    return a * (b / a) ** t


@pytest.mark.parametrize("fn, match", [
    (sig, "returned the noise level sigma\\(t\\) itself.*sqrt\\(2 ln"),
    (lambda t, a, b: sig(t, a, b) ** 2 * 2 * math.log(b / a), "take the square root"),
    (lambda t, a, b: sig(t, a, b) * 2 * math.log(b / a), "not 2 ln"),
    (lambda t, a, b: sig(t, a, b) * math.sqrt(math.log(b / a)), "factor sqrt\\(2\\) is missing"),
    (lambda t, a, b: sig(t, a, b) * math.sqrt(2 * math.log10(b / a)), "natural logarithm"),
    (lambda t, a, b: math.sqrt(2 * math.log(b / a)) * torch.ones_like(t), "must multiply"),
    (lambda t, a, b: torch.sqrt(sig(t, a, b) ** 2 - a**2), "kernel's standard deviation"),
    (lambda t, a, b: sig(t, a, b) * math.log(b / a), "derivative of sigma\\^2"),
    (lambda t, a, b: sig(t, a, b) * 3.0, "should be"),
    (lambda t, a, b: 1.0, "shape of t"),
])
def test_ve_diffusion_names_mistakes(fn, match):
    with pytest.raises(WrongAnswer, match=match):
        ex.check_ve_diffusion(fn)


# ---------------------------------------------------------------- beta_max
def test_beta_max_accepts_solution():
    assert ex.check_beta_max(4 * math.log(100) - 0.1).startswith("Correct!")
    assert ex.check_beta_max(np.float32(18.32)).startswith("Correct!")


@pytest.mark.parametrize("value, match", [
    (2 * math.log(100) - 0.1, "alpha_bar\\(1\\)"),
    (4 * math.log(100), "includes beta_min"),
    (2 * math.log(100), "not beta_max"),
    (4 * math.log(100) - 0.2, "subtract beta_min once"),
    (math.log(100), "solve exp"),
    (30.0, "too large"),
    (12.0, "too small"),
    (-1.0, "above beta_min"),
    ([18.0, 19.0], "one number"),
])
def test_beta_max_names_mistakes(value, match):
    with pytest.raises(WrongAnswer, match=match):
        ex.check_beta_max(value)
