"""The checkers of "DDPM and the VP-SDE, both directions" accept the reference solutions and name each mistake."""
import numpy as np
import pytest
import sympy as sp
import torch

from sdelab.exercises import WrongAnswer
from sdelab.exercises.ddpm_vpsde import (check_alphas_cumprod, check_ddpm_betas, check_em_variance_factor,
                                         check_posterior_variance)


# ------------------------------------------------------------------ check_ddpm_betas
def betas(sde, N):
    return torch.linspace(sde.beta_min / N, sde.beta_max / N, N, dtype=torch.float64)


def test_ddpm_betas_accepts_solution_and_the_package_agrees():
    assert check_ddpm_betas(betas).startswith("Correct!")
    assert check_ddpm_betas(lambda sde, N: sde.discrete_betas(N)).startswith("Correct!")
    assert check_ddpm_betas(lambda sde, N: np.linspace(sde.beta_min / N, sde.beta_max / N, N)).startswith("Correct!")


def _riemann(sde, N, shift):
    t = torch.arange(1, N + 1, dtype=torch.float64) / N - shift / N
    return (sde.beta_min + (sde.beta_max - sde.beta_min) * t) / N


@pytest.mark.parametrize("wrong, match", [
    (lambda sde, N: torch.linspace(sde.beta_min, sde.beta_max, N), "forgot the step size h = 1/N"),
    (lambda sde, N: betas(sde, N) / N, "divided by N twice"),
    (lambda sde, N: betas(sde, N).flip(0), "order is reversed"),
    (lambda sde, N: torch.linspace(1e-4, 0.02, N), "hard-coding"),
    (lambda sde, N: torch.linspace(1e-4, 0.02, 1000), "whatever N is"),
    (lambda sde, N: sde.exact_discrete_betas(N), "exact-discretisation betas"),
    (lambda sde, N: _riemann(sde, N, 0), "right Riemann sum"),
    (lambda sde, N: _riemann(sde, N, 1), "left Riemann sum"),
    (lambda sde, N: betas(sde, N).sqrt(), r"sqrt\(beta_i\)"),
    (lambda sde, N: torch.cumprod(1 - betas(sde, N), 0), "alphas_cumprod"),
    (lambda sde, N: torch.linspace(sde.beta_min / N, sde.beta_max / N, N + 1), "N \\+ 1"),
    (lambda sde, N: torch.linspace(sde.beta_min / N, sde.beta_max / N, N - 3), "one beta per step"),
    (lambda sde, N: betas(sde, N) * 1.01, "Use linspace"),
])
def test_ddpm_betas_names_the_mistake(wrong, match):
    with pytest.raises(WrongAnswer, match=match):
        check_ddpm_betas(wrong)


# ------------------------------------------------------------------ check_alphas_cumprod
def test_alphas_cumprod_accepts_solution():
    assert check_alphas_cumprod(lambda b: torch.cumprod(1 - b, dim=0)).startswith("Correct!")
    assert check_alphas_cumprod(lambda b: np.cumprod(1 - np.asarray(b))).startswith("Correct!")


@pytest.mark.parametrize("wrong, match", [
    (lambda b: torch.exp(-torch.cumsum(b, 0)), "first-order approximation"),
    (lambda b: torch.cumprod(b, 0), "multiplied the betas"),
    (lambda b: torch.cumprod((1 - b).sqrt(), 0), "sqrt_alphas_cumprod"),
    (lambda b: 1 - torch.cumprod(1 - b, 0), "variance of q"),
    (lambda b: torch.cat([torch.ones(1, dtype=b.dtype), torch.cumprod(1 - b, 0)[:-1]]), "shifted by one"),
    (lambda b: torch.cat([torch.ones(1, dtype=b.dtype), torch.cumprod(1 - b, 0)]), "N \\+ 1 values"),
    (lambda b: 1 - torch.cumsum(b, 0), "only to first order"),
    (lambda b: torch.cumprod((1 - b).flip(0), 0).flip(0), "from the end"),
    (lambda b: torch.prod(1 - b), "one number"),
    (lambda b: torch.cumprod(1 - b, 0) * 0.99, "prod_\\(j <= i\\)"),
    (lambda b: torch.cumprod(1 - b.float(), 0) if len(b) > 10 else torch.cumprod(1 - b, 0), "float64"),
])
def test_alphas_cumprod_names_the_mistake(wrong, match):
    with pytest.raises(WrongAnswer, match=match):
        check_alphas_cumprod(wrong)


def test_alphas_cumprod_ratio_to_continuous_is_about_exp_minus_half_sum_beta_squared():
    # the claim in the success message: DDPM's linspace(1e-4, 0.02, 1000) vs e^{-B(1)} with B(1) = 10.05
    b = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    ratio = torch.prod(1 - b).item() / np.exp(-10.05)
    assert ratio == pytest.approx(np.exp(-0.5 * (b**2).sum().item()), rel=1e-3)
    assert 0.06 < 1 - ratio < 0.07


# ------------------------------------------------------------------ check_em_variance_factor
beta = sp.Symbol("beta", positive=True)


def test_em_variance_factor_accepts_solution():
    assert check_em_variance_factor((1 - beta / 2) ** 2 + beta).startswith("Correct!")
    assert check_em_variance_factor(1 + sp.Symbol("b") ** 2 / 4).startswith("Correct!")
    assert check_em_variance_factor(lambda b: (1 - b / 2) ** 2 + b).startswith("Correct!")


@pytest.mark.parametrize("wrong, match", [
    (sp.Integer(1), "DDPM's factor"),
    ((1 - beta / 2) ** 2, "forgot the noise"),
    (1 - beta / 2 + beta, "must be squared"),
    ((1 - beta) ** 2 + beta, "not 1 - beta_i"),
    ((1 - beta / 2) ** 2 + 2 * beta, r"not sqrt\(2 beta\)"),
    ((1 - beta / 2) ** 2 + beta**2, "erratum 2"),
    ((1 - beta / 2) ** 2 + sp.sqrt(beta), "standard deviation"),
    (1 + beta**2 / 8, "not 1/8"),
    (1 + beta**2 / 3, r"Var\(\(1 - beta_i/2\) x"),
])
def test_em_variance_factor_names_the_mistake(wrong, match):
    with pytest.raises(WrongAnswer, match=match):
        check_em_variance_factor(wrong)


def test_em_variance_factor_rejects_two_symbols():
    with pytest.raises(WrongAnswer, match="beta_i only"):
        check_em_variance_factor(beta + sp.Symbol("h"))
    with pytest.raises(WrongAnswer, match="sympy expression"):
        check_em_variance_factor("not an expression (")


# ------------------------------------------------------------------ check_posterior_variance
def post_var(b, ab, abp):
    return b * (1 - abp) / (1 - ab)


def test_posterior_variance_accepts_solution():
    assert check_posterior_variance(post_var).startswith("Correct!")
    assert check_posterior_variance(lambda b, ab, abp: 1 / ((1 - b) / b + 1 / (1 - abp))).startswith("Correct!")


@pytest.mark.parametrize("wrong, match", [
    (lambda b, ab, abp: b, "narrower"),
    (lambda b, ab, abp: b * (1 - ab) / (1 - abp), "upside down"),
    (lambda b, ab, abp: (1 - abp) / (1 - ab), "dropped the factor beta_i"),
    (lambda b, ab, abp: 1 - abp, "alone"),
    (lambda b, ab, abp: 1 / (1 - b + 1 / (1 - abp)), "alpha_i / beta_i, not alpha_i"),
    (lambda b, ab, abp: post_var(b, ab, abp) * (1 - b), "do not rescale"),
    (lambda b, ab, abp: post_var(b, ab, abp).sqrt(), "standard deviation"),
    (lambda b, ab, abp: post_var(b, ab, abp) * 1.1, "Complete the square"),
    (lambda b, ab, abp: post_var(b, ab, abp)[:3], r"shape of its inputs"),
])
def test_posterior_variance_names_the_mistake(wrong, match):
    with pytest.raises(WrongAnswer, match=match):
        check_posterior_variance(wrong)
