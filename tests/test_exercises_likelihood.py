"""The checkers of the chapter "Likelihood through the probability-flow ODE" accept the reference solutions and
name each typical mistake."""
import math
import re

import pytest
import sympy as sp
import torch

from sdelab.exercises import WrongAnswer
from sdelab.exercises import likelihood as ex

LOG_DELTA = math.log(2 / 256)


# ------------------------------------------------------------------ bits per dimension
def bpd_ok(logp, dims):
    return -(logp + dims * math.log(2 / 256)) / (dims * math.log(2))


def test_bits_per_dim_accepts_solution():
    assert ex.check_bits_per_dim(bpd_ok).startswith("Correct!")


def test_bits_per_dim_accepts_the_package_function():
    from sdelab.likelihood import bits_per_dim

    assert ex.check_bits_per_dim(bits_per_dim).startswith("Correct!")


BPD_MISTAKES = {
    "natural log": (lambda lp, D: -(lp + D * LOG_DELTA) / D, "nats per dimension"),
    "log10": (lambda lp, D: -(lp + D * LOG_DELTA) / (D * math.log(10)), "base-10"),
    "no dequantisation constant": (lambda lp, D: -lp / (D * math.log(2)), "7 bits/dim too low"),
    "constant with wrong sign": (lambda lp, D: -(lp - D * LOG_DELTA) / (D * math.log(2)), "wrong sign"),
    "per image": (lambda lp, D: -(lp + D * LOG_DELTA) / math.log(2), "bits per image"),
    "nats per image": (lambda lp, D: -(lp + D * LOG_DELTA), "nats per image"),
    "[0, 1] bins": (lambda lp, D: -(lp + D * math.log(1 / 256)) / (D * math.log(2)), "1 bit/dim too high"),
    "bins of 1/127.5": (lambda lp, D: -(lp + D * math.log(1 / 127.5)) / (D * math.log(2)), "127.5"),
    "bins of 2/257": (lambda lp, D: -(lp + D * math.log(2 / 257)) / (D * math.log(2)), "Use bpd ="),
    "sign": (lambda lp, D: (lp + D * LOG_DELTA) / (D * math.log(2)), "wrong sign"),
    "batch mean": (lambda lp, D: bpd_ok(lp, D).mean(), "one bits/dim value per sample"),
    "float only": (lambda lp, D: bpd_ok(float(lp[0]), D), "one bits/dim value per sample"),
    "tensor only": (lambda lp, D: bpd_ok(lp, D) if torch.is_tensor(lp) else None.x, "raised AttributeError"),
    "not a function": (3.0, "should be a function"),
    "wrong shape": (lambda lp, D: torch.stack([bpd_ok(lp, D)] * 2), "one value per sample"),
    "text": (lambda lp, D: "eight", "number"),
}


@pytest.mark.parametrize("fn, words", BPD_MISTAKES.values(), ids=list(BPD_MISTAKES))
def test_bits_per_dim_names_mistake(fn, words):
    with pytest.raises(WrongAnswer, match=re.escape(words)):
        ex.check_bits_per_dim(fn)


# ------------------------------------------------------------------ Hutchinson's estimator
def make_hutch(*, probe="rademacher", reduce="mean", dot=True, share_rows=False, reuse_probe=False, ones=False,
               use_generator=True, exact=False, detach=False, sum_vjp=False):
    """A family of estimators: the defaults are the reference solution, each flag one typical mistake."""
    def hutchinson_trace(f, x, n_probes, generator=None):
        gen = generator if use_generator else None
        if exact:
            x = x.detach().requires_grad_(True)
            y = f(x)
            return sum(torch.autograd.grad(y[:, i].sum(), x, retain_graph=True)[0][:, i] for i in range(x.shape[1]))
        shape = (n_probes, 1 if share_rows else x.shape[0], x.shape[1])
        if reuse_probe:
            shape = (1,) + shape[1:]
        if probe == "rademacher":
            eps = torch.randint(0, 2, shape, generator=gen).to(x.dtype) * 2 - 1
        elif probe == "binary":
            eps = torch.randint(0, 2, shape, generator=gen).to(x.dtype)
        else:
            eps = torch.randn(shape, generator=gen, dtype=x.dtype)
        if ones:
            eps = torch.ones_like(eps)
        eps = eps.expand(n_probes, x.shape[0], x.shape[1])
        x = x.detach().requires_grad_(True)
        y = f(x)
        ests = []
        for k in range(n_probes):
            (vjp,) = torch.autograd.grad(y, x, eps[k], retain_graph=True)
            if not dot:
                ests.append(vjp)
            elif sum_vjp:
                ests.append(vjp.sum(1))
            else:
                ests.append((vjp * eps[k]).sum(1))
        est = torch.stack(ests)
        if detach:
            return torch.zeros(x.shape[0], dtype=x.dtype)
        return {"mean": est.mean(0), "sum": est.sum(0), "none": est}[reduce]
    return hutchinson_trace


def test_hutchinson_checker_accepts_solution():
    assert ex.check_hutchinson_trace(make_hutch()).startswith("Correct!")


HUTCH_MISTAKES = {
    "sums over probes": (dict(reduce="sum"), "summed"),
    "per-probe estimates": (dict(reduce="none"), "Average them"),
    "vjp without the dot product": (dict(dot=False), "vector-Jacobian product"),
    "gaussian probes": (dict(probe="gaussian"), "Gaussian"),
    "0/1 probes": (dict(probe="binary"), "0/1"),
    "one probe for all rows": (dict(share_rows=True), "one probe for all samples"),
    "the same probe K times": (dict(reuse_probe=True), "single probe"),
    "probe of ones": (dict(ones=True), "all* entries of the Jacobian"),
    "exact trace": (dict(exact=True), "exact trace"),
    "no generator": (dict(use_generator=False), "generator"),
    "graph lost": (dict(detach=True), "requires_grad"),
    "sum of the vjp": (dict(sum_vjp=True), "average to 0"),
}


@pytest.mark.parametrize("kw, words", HUTCH_MISTAKES.values(), ids=list(HUTCH_MISTAKES))
def test_hutchinson_checker_names_mistake(kw, words):
    with pytest.raises(WrongAnswer, match=re.escape(words)):
        ex.check_hutchinson_trace(make_hutch(**kw))


def test_hutchinson_checker_rejects_sum_of_outputs_and_broken_code():
    with pytest.raises(WrongAnswer, match="sum of f"):
        ex.check_hutchinson_trace(lambda f, x, n_probes, generator=None: f(x).sum(1))
    with pytest.raises(WrongAnswer, match="raised TypeError"):
        ex.check_hutchinson_trace(lambda f, x, n_probes: f(x))
    with pytest.raises(WrongAnswer, match="should be a function"):
        ex.check_hutchinson_trace("trace")


def test_hutchinson_checker_accepts_the_package_estimator():
    from sdelab.likelihood import draw_probes, hutchinson_divergence

    def via_package(f, x, n_probes, generator=None):
        probes = draw_probes(x, n_probes, "rademacher", generator=generator)
        _, est = hutchinson_divergence(lambda z, t: f(z), x, torch.zeros(x.shape[0], dtype=x.dtype), probes)
        return est.mean(0)

    assert ex.check_hutchinson_trace(via_package).startswith("Correct!")


# ------------------------------------------------------------------ divergence of the VP PF-ODE velocity
beta, d, alpha, sigma, s = sp.symbols("beta d alpha sigma s", positive=True)
V_T = alpha**2 * s**2 + sigma**2


def test_vp_divergence_accepts_sympy_function_and_string():
    assert ex.check_vp_divergence(beta * d / 2 * (1 / V_T - 1)).startswith("Correct!")
    assert ex.check_vp_divergence(-beta * d / 2 + beta * d / (2 * V_T)).startswith("Correct!")
    b2, d2, a2, sg2, s2 = sp.symbols("beta d alpha sigma s")  # no assumptions
    assert ex.check_vp_divergence(b2 * d2 / 2 * (1 / (a2**2 * s2**2 + sg2**2) - 1)).startswith("Correct!")
    assert ex.check_vp_divergence(lambda b, dd, a, sg, ss: b * dd / 2 * (1 / (a**2 * ss**2 + sg**2) - 1)
                                  ).startswith("Correct!")
    assert ex.check_vp_divergence("beta*d/2*(1/(alpha**2*s**2 + sigma**2) - 1)").startswith("Correct!")


def test_vp_divergence_accepts_the_vp_variance_written_with_one_minus_alpha2():
    # the exercise is about the VP-SDE, where sigma^2 = 1 - alpha^2: this form is right (review M6)
    V_vp = alpha**2 * s**2 + 1 - alpha**2
    assert ex.check_vp_divergence(beta * d / 2 * (1 / V_vp - 1)).startswith("Correct!")
    assert ex.check_vp_divergence(lambda b, dd, a, sg, ss: b * dd / 2 * (1 / (a**2 * ss**2 + 1 - a**2) - 1)
                                  ).startswith("Correct!")


def test_vp_divergence_cases_are_vp_and_the_message_quotes_a_failing_case():
    for b, dd, a, sg, ss in ex._DIV_CASES:
        assert abs(a**2 + sg**2 - 1) < 1e-12
    # right on the first case only (a hard-coded number): the message must quote a case where it fails
    b0, d0, a0, sg0, s0 = ex._DIV_CASES[0]
    first = b0 * d0 / 2 * (1 / (a0**2 * s0**2 + sg0**2) - 1)
    b1, d1, a1, sg1, s1 = ex._DIV_CASES[1]
    with pytest.raises(WrongAnswer) as err:
        ex.check_vp_divergence(lambda b, dd, a, sg, ss: first + 0 * b)
    msg = str(err.value)
    assert f"beta = {b1}, d = {d1}, alpha = {a1}" in msg and f"{first:.6g}" in msg.split("your answer gives")[1]
    want = b1 * d1 / 2 * (1 / (a1**2 * s1**2 + sg1**2) - 1)
    assert f"the divergence is {want:.6g}" in msg


@pytest.mark.parametrize("answer, words", [
    (beta * d / (2 * V_T), "drift's contribution is missing"),
    (-beta / 2 + beta * d / (2 * V_T), "no factor d"),
    (beta / 2 * (1 / V_T - 1), "one-dimensional"),
    (-beta * d / 2 + beta * d / V_T, "reverse-SDE"),
    (-beta * d / 2 - beta * d / (2 * V_T), "score term has the wrong sign"),
    (beta * d / 2 * (1 / sigma**2 - 1), "kernel's variance"),
    (beta * d / 2 * (1 / (alpha * s**2 + sigma**2) - 1), "scaled by alpha"),
    (beta * d / 2 * (1 / (alpha**2 * s + sigma**2) - 1), "with s^2"),
    (beta * d / 2 * (1 / (alpha**2 * s**2 + sigma) - 1), "with sigma^2"),
    (-beta * d / 2 * (1 / V_T - 1), "wrong sign"),
    (beta * d / 2 * (1 / V_T + 1), "Write v ="),
    (sp.Symbol("x") * beta, "does not depend on x"),
    (sp.Symbol("t") * beta, "symbols"),
    (1.5, "not a single number"),
    (lambda b, dd: b, "raised TypeError"),
])
def test_vp_divergence_names_mistake(answer, words):
    with pytest.raises(WrongAnswer, match=re.escape(words)):
        ex.check_vp_divergence(answer)
