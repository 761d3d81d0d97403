r"""Checkers for the chapter "Likelihood through the probability-flow ODE" (`book/part4/likelihood.ipynb`).

* `check_bits_per_dim(fn)`: `fn(logp, dims)` turns the log-density $\log p(x)$ (in nats, a tensor `(B,)` or a
  float) of 8-bit data, dequantised and scaled to $[-1, 1]$ (bins of width $\Delta = 2/256$), into bits per
  dimension $-(\log p(x) + D\log\Delta)/(D\ln 2)$.
* `check_hutchinson_trace(fn)`: `fn(f, x, n_probes, generator=None)` returns, for each row of `x` `(B, D)`, the
  mean over `n_probes` Rademacher probes of $\varepsilon^\top (\partial f/\partial x)\,\varepsilon$, shape `(B,)`.
* `check_vp_divergence(answer)`: $\nabla\cdot v$ of the VP probability-flow velocity for Gaussian data
  $\mathcal N(\mu, s^2 I)$ in $\mathbb R^d$, a function `answer(beta, d, alpha, sigma, s)` or a sympy expression in
  symbols with those names.

Each returns a `Feedback` message when the answer is right and raises `WrongAnswer` naming the mistake otherwise.
"""
from __future__ import annotations

import math
from functools import partial

import numpy as np
import sympy as sp
import torch

from ._core import (WrongAnswer, as_array, as_numeric_function, correct, expect, expect_callable, expect_number,
                    reject_mistakes)
from ._core import call_answer as _call

__all__ = ["check_bits_per_dim", "check_hutchinson_trace", "check_vp_divergence"]

F64 = torch.float64


# ------------------------------------------------------------------ 1. bits per dimension
_BPD_CASES = [  # (log p(x) in nats for a batch, D): CIFAR-like, MNIST-like, and a tiny D so D-scalings separate
    (torch.tensor([-6500.0, -5800.0, -7000.0], dtype=F64), 3072),
    (torch.tensor([1200.0, 800.0], dtype=F64), 784),
    (torch.tensor([-20.0, 3.5], dtype=F64), 4),
]


def check_bits_per_dim(fn) -> str:
    r"""Check `fn(logp, dims)`: bits/dim $-(\log p + D\log\Delta)/(D\ln 2)$ with $\Delta = 2/256$, one per sample.

    Tested on three batches (D = 3072, 784, 4) given as float64 tensors, and on a plain float.
    """
    expect_callable(fn, name="your bits-per-dimension function")
    delta = 2 / 256
    log2 = math.log(2)
    for logp, D in _BPD_CASES:
        call = f"fn(logp, dims={D})"
        out = as_array(_call(fn, logp.clone(), D, name=call), call)
        want = (-(logp + D * math.log(delta)) / (D * log2)).numpy()
        if out.shape != want.shape:
            if out.size == 1 and want.size > 1:
                raise WrongAnswer(f"For a batch of {want.size} log-likelihoods your function returned one number: "
                                  "return one bits/dim value per sample (shape (B,)); average over a test set "
                                  "afterwards if you need to.")
            raise WrongAnswer(f"Your function should return one value per sample, shape {want.shape}; got shape "
                              f"{out.shape}.")
        expect(np.isfinite(out).all(), "Your bits/dim contain NaN or inf values.")
        if np.allclose(out, want, rtol=1e-9, atol=1e-9):
            continue
        nll = -logp.numpy()
        mistakes = [
            (-want, "Your values have the wrong sign: bits/dim are a code length, -log2 of a probability, so a "
                    "higher likelihood must give fewer bits."),
            (want * log2, "These are nats per dimension: bits need log base 2, so divide by ln 2 (i.e. multiply by "
                          "log2(e) = 1.4427)."),
            (want * log2 / math.log(10), "These look like base-10 logarithms (digits, not bits): divide the "
                                         "natural-log quantity by ln 2, not by ln 10."),
            (nll / (D * log2), "Your values are exactly 7 bits/dim too low: the dequantisation constant is "
                               "missing. A density of x in [-1, 1]^D is not a probability; the probability of a "
                               "bin of side Delta = 2/256 is about p(x) Delta^D, so add D log(Delta) to log p "
                               "before converting: bpd = -(log p + D log(2/256)) / (D ln 2)."),
            (nll / (D * log2) + math.log2(delta),
             "Your values are 14 bits/dim too low: the bin-volume term has the wrong sign. log P(bin) = log p(x) + "
             "D log(Delta), and log(Delta) = log(2/256) is negative, so bpd = -(log p + D log Delta)/(D ln 2)."),
            (want * D, "These are bits per image (per sample), not per dimension: divide by D, the number of "
                       "dimensions (pixels times channels)."),
            (want * D * log2, "These are nats per image: divide by D (per dimension) and by ln 2 (bits)."),
            (want + 1.0, "Your values are exactly 1 bit/dim too high: you used bins of width 1/256, the width for "
                         "data scaled to [0, 1]. Here the data lie in [-1, 1], so each of the 256 bins has width "
                         "Delta = 2/256 = 1/128."),
            (want - math.log2(256 / 255), "Your values are log2(256/255) = 0.0056 bits/dim too low: you used a bin "
                                          "width of 2/255 = 1/127.5. The 256 bins of 8-bit data tile [-1, 1] with "
                                          "width 2/256 = 1/128 (dequantised x = (k + u)/128 - 1); 127.5 is the "
                                          "spacing of the levels k/127.5 - 1 that put k = 0 and 255 exactly on the "
                                          "ends, not the width of a bin."),
        ]
        reject_mistakes(out, mistakes, same=partial(np.allclose, rtol=1e-7, atol=1e-7))
        raise WrongAnswer(f"For log p = {logp.tolist()} and D = {D} the bits/dim are "
                          f"{[round(v, 6) for v in want.tolist()]}, yours are {[round(v, 6) for v in out.tolist()]}. "
                          "Use bpd = -(log p + D log(2/256)) / (D ln 2).")
    # a plain float works too, and the uniform density on [-1, 1]^D is 8 bits/dim exactly
    D = 10
    call = f"fn(logp, dims={D}) with a float logp"
    out = as_array(_call(fn, -D * math.log(2), D, name=call), call)
    expect(out.size == 1 and abs(float(out.reshape(-1)[0]) - 8.0) < 1e-9,
           f"With a plain float log p = -D ln 2 (the uniform density on [-1, 1]^D, D = {D}) your function should "
           f"give exactly 8 bits/dim, got {out.tolist()}. Make it work for floats as well as tensors "
           "(use math.log for the constants).")
    return correct("bpd = -(log p + D log(2/256))/(D ln 2); uniform data cost 8 bits.")


# ------------------------------------------------------------------ 2. Hutchinson's trace estimator
_D, _B_DIAG, _K, _N_LIN = 5, 4000, 3, 20_000
_A = torch.tensor([[-1.0, 0.8, 0.0, 0.3, -0.2],
                   [0.2, -2.0, 0.5, 0.0, 0.4],
                   [0.1, 0.6, 0.5, -0.7, 0.0],
                   [-0.4, 0.0, 0.9, -1.5, 0.6],
                   [0.3, -0.5, 0.0, 0.2, 1.2]], dtype=F64)  # not symmetric


def _diag_fn(x: torch.Tensor) -> torch.Tensor:
    c = torch.arange(1, x.shape[1] + 1, dtype=x.dtype, device=x.device)
    return torch.tanh(x) * c


def _linear_fn(x: torch.Tensor) -> torch.Tensor:
    return x @ _A.to(x.dtype).T  # Jacobian A at every x


def _run_hutch(fn, f, x, K, seed):
    call = f"fn(f, x, n_probes={K}, generator)"
    out = _call(fn, f, x.clone(), K, generator=torch.Generator().manual_seed(seed), name=call)
    return out, as_array(out, call)


def check_hutchinson_trace(fn) -> str:
    r"""Check `fn(f, x, n_probes, generator=None) -> (B,)`: Hutchinson's estimate of $\nabla\cdot f$ at each row of
    `x` with Rademacher probes, averaged over `n_probes` probes per row.

    Three experiments: an element-wise `f` (a diagonal Jacobian, for which Rademacher probes give the exact trace),
    a linear `f(x) = x A^T` with a non-symmetric `A` on 20 000 rows (mean $\mathrm{tr} A$ and variance
    $\tfrac12\sum_{i\ne j}(A_{ij} + A_{ji})^2 / K$, within 5 standard errors), and reproducibility with a seed.
    """
    expect_callable(fn, name="hutchinson_trace")
    gen = torch.Generator().manual_seed(0)
    B, D, K = _B_DIAG, _D, _K
    x = torch.randn(B, D, generator=gen, dtype=F64)
    raw, out = _run_hutch(fn, _diag_fn, x, K, 1)
    if out.shape == (B, D):
        raise WrongAnswer(f"Your result has shape {out.shape}, one vector per sample: that is the vector-Jacobian "
                          "product eps^T (df/dx). The estimate is its dot product with the same probe, "
                          "(vjp * eps).sum(dim=1), one number per sample.")
    if out.shape in ((K, B), (B, K)):
        raise WrongAnswer(f"Your result has shape {out.shape}: one estimate per probe. Average them over the "
                          f"{K} probes (mean over the probe dimension) to return shape ({B},).")
    expect(out.shape == (B,), f"Your function should return one estimate per row of x, shape ({B},); got {out.shape}.")
    expect(np.isfinite(out).all(), "Your estimates contain NaN or inf values.")
    expect(torch.is_tensor(raw), f"Return a torch tensor (got {type(raw).__name__}).")
    trace = ((1 - torch.tanh(x) ** 2) * torch.arange(1, D + 1, dtype=F64)).sum(1).numpy()
    if not np.allclose(out, trace, rtol=1e-8, atol=1e-8):
        if np.allclose(out, K * trace, rtol=1e-8, atol=1e-8):
            raise WrongAnswer(f"Your estimates are {K} times the divergence: you summed the {K} probe estimates. "
                              "Hutchinson's estimate is their mean (divide by n_probes).")
        if np.allclose(out, 0.0, atol=1e-9):
            raise WrongAnswer("Your estimates are all 0: did you detach x (or forget x.requires_grad_(True)) "
                              "before calling f? The vector-Jacobian product needs the graph from x to f(x).")
        if np.allclose(out, _diag_fn(x).sum(1).numpy(), rtol=1e-8, atol=1e-8):
            raise WrongAnswer("You returned the sum of f(x)'s entries, not of its derivatives: the estimate is "
                              "eps^T (df/dx) eps, from torch.autograd.grad(f(x), x, grad_outputs=eps).")
        ratio = float(out.mean() / trace.mean())
        resid = out - trace
        if abs(out.mean()) < 5 * out.std() / math.sqrt(B):
            raise WrongAnswer("Your estimates average to 0, not to the trace: you summed the entries of the "
                              "vector-Jacobian product eps^T J (that is eps^T J 1). Multiply it by the same probe "
                              "before summing: (vjp * eps).sum(dim=1).")
        if abs(ratio - 0.5) < 0.05:
            raise WrongAnswer("Your estimates are about half the divergence: the probes look like 0/1 values "
                              "(torch.randint(0, 2, ...)), for which E[eps eps^T] is not the identity. Map them to "
                              "+-1: torch.randint(0, 2, shape, generator=generator) * 2 - 1.")
        if abs(resid.mean()) < 5 * resid.std() / math.sqrt(B):
            raise WrongAnswer("Your estimates are unbiased but noisy for an element-wise f, whose Jacobian is "
                              "diagonal: Rademacher probes would give its trace exactly (eps_i^2 = 1). Your probes "
                              "look Gaussian (torch.randn). Gaussian probes are valid but have a larger variance, "
                              "2 sum_ij J_ij^2 instead of 2 sum_{i != j} J_ij^2 (symmetric J); the exercise asks "
                              "for +-1 entries: torch.randint(0, 2, shape, generator=generator) * 2 - 1.")
        raise WrongAnswer("For an element-wise f (a diagonal Jacobian) Rademacher probes give the exact trace, since "
                          "eps_i^2 = 1; your estimates are not exact. Check that the probes are +-1 and that you dot "
                          "the vector-Jacobian product with the same probe.")

    # linear f: mean and variance of the estimator over many rows
    n = _N_LIN
    xl = torch.randn(n, D, generator=gen, dtype=F64)
    _, est = _run_hutch(fn, _linear_fn, xl, 2, 2)
    expect(est.shape == (n,), f"For x of shape ({n}, {D}) your function returned shape {est.shape}, not ({n},).")
    tr = float(_A.trace())
    sym = (_A + _A.T) / 2
    var_rad = 2 * float((sym**2).sum() - (sym.diag() ** 2).sum())  # = (1/2) sum_{i != j} (A_ij + A_ji)^2
    m, v = float(est.mean()), float(est.var())
    if v < 1e-12:
        if abs(m - tr) < 1e-8:
            raise WrongAnswer("Your estimates have no randomness at all: you computed the exact trace (D backward "
                              "passes). The exercise asks for Hutchinson's estimate: one vector-Jacobian product per "
                              "random probe.")
        if abs(m - float(_A.sum())) < 1e-8:
            raise WrongAnswer("Your result is the sum of *all* entries of the Jacobian, 1^T J 1: the probe must be "
                              "random (independent +-1 entries), not a vector of ones.")
        raise WrongAnswer("For f(x) = A x every row got the same estimate: you reused one probe for all samples. "
                          "Draw a probe per sample and per repetition, shape (n_probes, B, D).")
    se = math.sqrt(var_rad / 2 / n)
    if abs(m - tr) > 5 * se:
        if abs(m) < 5 * math.sqrt(float((_A**2).sum()) / n):
            raise WrongAnswer("Your estimates average to 0, not to the trace: you summed the entries of the "
                              "vector-Jacobian product eps^T J (that is eps^T J 1). Multiply it by the same probe "
                              "before summing: (vjp * eps).sum(dim=1).")
        raise WrongAnswer(f"For f(x) = A x the divergence is tr A = {tr:.4f}; your estimates average {m:.4f} over "
                          f"{n} rows, {abs(m - tr) / se:.1f} standard errors away. The estimator must be unbiased: "
                          "E[eps^T J eps] = tr J when E[eps eps^T] = I.")
    rel = 5 * math.sqrt(2 / n) * 1.5  # 5 standard errors of a sample variance (kurtosis allowance 1.5)
    if abs(v / (var_rad / 2) - 1) > rel:
        if abs(v / var_rad - 1) < rel:
            raise WrongAnswer("The estimates are unbiased but as noisy as a single probe although n_probes = 2: "
                              "draw n_probes *different* probes (a tensor of shape (n_probes, B, D)) and average "
                              "their estimates.")
        raise WrongAnswer(f"The estimates average tr A correctly, but their variance {v:.4f} is not that of the mean "
                          f"of 2 Rademacher estimates, {var_rad / 2:.4f}. Use independent +-1 probes.")
    again, _ = _run_hutch(fn, _linear_fn, xl[:64], 2, 3)
    again2, _ = _run_hutch(fn, _linear_fn, xl[:64], 2, 3)
    expect(torch.equal(torch.as_tensor(again), torch.as_tensor(again2)),
           "Two calls with generators seeded alike gave different estimates: draw the probes with the generator "
           "argument, e.g. torch.randint(0, 2, shape, generator=generator).")
    return correct("Unbiased, exact for diagonal Jacobians, with the Rademacher variance.")


# ------------------------------------------------------------------ 3. divergence of the VP PF-ODE velocity
_NAMES = ("beta", "d", "alpha", "sigma", "s")
# VP cases: sigma^2 = 1 - alpha^2, so an answer written with 1 - alpha^2 for sigma^2 is right too
_DIV_CASES = [(b, d, a, math.sqrt(1 - a * a), s) for b, d, a, s in
              [(3.0, 2, 0.8, 0.5), (10.0, 784, 0.3, 1.2), (0.5, 5, 0.99, 0.3), (7.0, 3, 0.05, 2.0)]]


def check_vp_divergence(answer) -> str:
    r"""Check $\nabla\cdot v = \tfrac{\beta d}{2}\bigl(1/(\alpha^2 s^2 + \sigma^2) - 1\bigr)$ for the VP PF-ODE velocity
    $v = -\tfrac12\beta x - \tfrac12\beta\nabla\log p_t$ and data $\mathcal N(\mu, s^2 I_d)$.

    `answer` is `answer(beta, d, alpha, sigma, s)` or a sympy expression in symbols named `beta`, `d`, `alpha`,
    `sigma`, `s`.
    """
    if isinstance(answer, sp.Basic) and {v.name for v in answer.free_symbols} & {"x", "mu"}:
        raise WrongAnswer("The divergence of this velocity does not depend on x or mu: differentiate first, "
                          "then simplify (div x = d, and the score is affine in x).")
    fn = as_numeric_function(answer, _NAMES, name="div_v")
    got = []
    for case in _DIV_CASES:
        call = "div_v({}, {}, {}, {}, {})".format(*case)
        got.append(expect_number(_call(fn, *case, name=call), name=call))

    def vt(a, sg, s):
        return a**2 * s**2 + sg**2

    candidates = [
        (lambda b, d, a, sg, s: b * d / 2 * (1 / vt(a, sg, s) - 1), None),
        (lambda b, d, a, sg, s: b * d / (2 * vt(a, sg, s)),
         "The drift's contribution is missing: v = f - (1/2) g^2 s has two terms, and the drift f = -(1/2) beta x "
         "has divergence -(1/2) beta d (each of the d coordinates contributes -beta/2)."),
        (lambda b, d, a, sg, s: -b / 2 + b * d / (2 * vt(a, sg, s)),
         "The drift term has no factor d: f = -(1/2) beta x has divergence -(1/2) beta times d (div x = d)."),
        (lambda b, d, a, sg, s: b / 2 * (1 / vt(a, sg, s) - 1),
         "That is the one-dimensional answer: in R^d both terms are sums over d coordinates, so multiply by d."),
        (lambda b, d, a, sg, s: -b * d / 2 + b * d / vt(a, sg, s),
         "The score term carries g^2 = beta, not beta/2: that is the reverse-SDE drift f - g^2 s. The "
         "probability-flow ODE has half the score term, v = f - (1/2) g^2 s."),
        (lambda b, d, a, sg, s: -b * d / 2 - b * d / (2 * vt(a, sg, s)),
         "The score term has the wrong sign: the score of N(alpha mu, v_t I) is -(x - alpha mu)/v_t, whose divergence "
         "is -d/v_t, so -(1/2) beta times it is +beta d/(2 v_t)."),
        (lambda b, d, a, sg, s: b * d / 2 * (1 / sg**2 - 1),
         "You used the kernel's variance sigma^2: the velocity needs the score of the marginal p_t, and for data "
         "N(mu, s^2 I) that is N(alpha mu, (alpha^2 s^2 + sigma^2) I)."),
        (lambda b, d, a, sg, s: b * d / 2 * (1 / (a * s**2 + sg**2) - 1),
         "The marginal variance is alpha^2 s^2 + sigma^2: the mean is scaled by alpha, so the data variance by "
         "alpha^2."),
        (lambda b, d, a, sg, s: b * d / 2 * (1 / (a**2 * s + sg**2) - 1),
         "The marginal variance is alpha^2 s^2 + sigma^2, with s^2 (s is the data's standard deviation)."),
        (lambda b, d, a, sg, s: b * d / 2 * (1 / (a**2 * s**2 + sg) - 1),
         "The marginal variance is alpha^2 s^2 + sigma^2, with sigma^2 (sigma is the kernel's standard deviation)."),
        (lambda b, d, a, sg, s: -(b * d / 2 * (1 / vt(a, sg, s) - 1)),
         "Right size, wrong sign: d/dt log p_t(x(t)) = -div v, but the question asks for div v itself, "
         "-(1/2) beta d + beta d / (2 v_t)."),
    ]
    for ref, msg in candidates:
        if all(math.isclose(v, ref(*c), rel_tol=1e-6, abs_tol=1e-9) for v, c in zip(got, _DIV_CASES)):
            if msg is None:
                return correct("div v = (beta d/2)(1/V - 1), V = alpha^2 s^2 + sigma^2.")
            raise WrongAnswer(msg)
    k = next(i for i, (v, c) in enumerate(zip(got, _DIV_CASES))
             if not math.isclose(v, candidates[0][0](*c), rel_tol=1e-6, abs_tol=1e-9))
    b, d, a, sg, s = _DIV_CASES[k]
    raise WrongAnswer(f"For beta = {b}, d = {d}, alpha = {a}, sigma = {sg:.6g}, s = {s} the divergence is "
                      f"{candidates[0][0](*_DIV_CASES[k]):.6g}, your answer gives {got[k]:.6g}. Write "
                      "v = -(1/2) beta x - (1/2) beta grad log p_t with p_t = N(alpha mu, (alpha^2 s^2 + sigma^2) I), "
                      "then sum dv_i/dx_i.")
