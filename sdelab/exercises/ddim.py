r"""Checkers for the exercises of the chapter "DDIM update coefficients" (`book/part3/ddim.ipynb`).

* `check_ddim_step(fn)`: `fn(x, eps, abar_t, abar_prev, eta, noise)` returns
  $x_{prev} = \sqrt{\bar\alpha_{prev}}\,\hat x_0 + \sqrt{1 - \bar\alpha_{prev} - \sigma^2}\,\hat\varepsilon
  + \sigma z$ with
  $\hat x_0 = (x - \sqrt{1 - \bar\alpha_t}\,\hat\varepsilon)/\sqrt{\bar\alpha_t}$ and
  $\sigma = \eta\sqrt{(1 - \bar\alpha_{prev})/(1 - \bar\alpha_t)}\sqrt{1 - \bar\alpha_t/\bar\alpha_{prev}}$.
* `check_strided_timesteps(fn)`: `fn(N, K)` returns the K 0-based indices into `alphas_cumprod` at which a K-step
  sampler evaluates the network, noisiest first, with "trailing" spacing: the K + 1 boundaries
  $N - 1 = \tau_1 > \dots > \tau_K > -1$ (index -1 is the clean data, $\bar\alpha = 1$) evenly spaced.
* `check_ddim_inversion(fn)`: `fn(eps_fn, sde, x, ts)` runs DDIM backwards, from `x` at `ts[-1]` up to `ts[0]`.

Each returns a `Feedback` message when the answer is right and raises `WrongAnswer` naming the mistake otherwise.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ._core import WrongAnswer, as_tensor64, correct, expect, expect_callable
from ._core import call_answer as _call

__all__ = ["check_ddim_step", "check_strided_timesteps", "check_ddim_inversion", "reference_ddim_step"]

F64 = torch.float64


# ------------------------------------------------------------------ one DDIM step
def _sigma(ab_t: float, ab_p: float, eta: float) -> float:
    return eta * math.sqrt((1 - ab_p) / (1 - ab_t)) * math.sqrt(1 - ab_t / ab_p)


def reference_ddim_step(x, eps, abar_t: float, abar_prev: float, eta: float, noise):
    r"""The reference solution of the exercise (Song et al., 2021, eq. 12), for floats `abar_t < abar_prev`."""
    x0 = (x - math.sqrt(1 - abar_t) * eps) / math.sqrt(abar_t)
    s = _sigma(abar_t, abar_prev, eta)
    return math.sqrt(abar_prev) * x0 + math.sqrt(1 - abar_prev - s**2) * eps + s * noise


def _variants(x, eps, z, ab_t, ab_p, eta):
    """Typical wrong answers, each with the message that names the mistake."""
    sq = math.sqrt
    s = _sigma(ab_t, ab_p, eta)
    x0 = (x - sq(1 - ab_t) * eps) / sq(ab_t)
    out = []

    def add(value, msg):
        out.append((value, msg))

    add(ab_p * x0 + sq(1 - ab_p - s**2) * eps + s * z,
        "The signal coefficient is sqrt(abar_prev), not abar_prev: alpha_bar scales the *variance* of the signal, "
        "so its amplitude x0 is multiplied by the square root (x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps).")
    add(sq(ab_p) * x0 + (1 - ab_p - s**2) * eps + s * z,
        "The coefficient of eps_hat must be a standard deviation, sqrt(1 - abar_prev - sigma^2); you used the "
        "variance 1 - abar_prev - sigma^2 without the square root.")
    add(sq(ab_p) * (x - (1 - ab_t) * eps) / sq(ab_t) + sq(1 - ab_p - s**2) * eps + s * z,
        "x0_hat is wrong: invert x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, so "
        "x0_hat = (x_t - sqrt(1 - abar_t) eps_hat) / sqrt(abar_t); you used 1 - abar_t without the square root.")
    add(sq(ab_p) * (x - sq(1 - ab_t) * eps) / ab_t + sq(1 - ab_p - s**2) * eps + s * z,
        "x0_hat is wrong: divide by sqrt(abar_t), not by abar_t: "
        "x0_hat = (x_t - sqrt(1 - abar_t) eps_hat) / sqrt(abar_t).")
    add(sq(ab_p) * (x - sq(ab_t) * eps) / sq(1 - ab_t) + sq(1 - ab_p - s**2) * eps + s * z,
        "x0_hat is wrong: alpha and sigma are swapped. x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, so "
        "x0_hat = (x_t - sqrt(1 - abar_t) eps_hat) / sqrt(abar_t).")
    add(sq(ab_p) * x + sq(1 - ab_p - s**2) * eps + s * z,
        "You used x_t itself where the predicted clean data x0_hat = (x_t - sqrt(1 - abar_t) eps_hat) / "
        "sqrt(abar_t) belongs.")
    if eta == 0:
        add(sq(ab_p) * x0 + sq(1 - ab_p) * eps + z,
            "With eta = 0 the step is deterministic: the noise must be scaled by sigma, which is 0 here; add "
            "sigma * noise, not noise.")
        x0s = (x - sq(1 - ab_p) * eps) / sq(ab_p)
        add(sq(ab_t) * x0s + sq(1 - ab_t) * eps,
            "abar_t and abar_prev are swapped: x0_hat is computed at the *current* noise level abar_t (the one x is "
            "at), and the step lands at abar_prev > abar_t (less noise). Your step moves towards more noise.")
    if eta > 0:
        add(sq(ab_p) * x0 + sq(1 - ab_p) * eps + s * z,
            "For eta > 0 the noise s*z adds variance s^2, so the deterministic direction must give it back: its "
            "coefficient is sqrt(1 - abar_prev - sigma^2). You forgot the sigma^2 inside the square root, so "
            "x_prev has variance 1 - abar_prev + sigma^2 instead of 1 - abar_prev given x0.")
        b = 1 - ab_t / ab_p
        for s_bad, msg in [
            (eta * sq(b), "sigma uses beta_t = 1 - abar_t/abar_prev, the variance of the *forward* step. DDIM's "
                          "sigma is eta times the posterior std sqrt(beta_tilde_t), beta_tilde_t = "
                          "(1 - abar_prev)/(1 - abar_t) * beta_t."),
            (eta * (1 - ab_p) / (1 - ab_t) * b, "sigma is a standard deviation: sigma = eta * sqrt((1 - abar_prev)/"
                                                 "(1 - abar_t)) * sqrt(1 - abar_t/abar_prev). You used its square."),
            (eta**2 * sq((1 - ab_p) / (1 - ab_t) * b), "sigma is proportional to eta, not eta^2: "
                                                        "sigma = eta * sqrt(beta_tilde_t)."),
            (eta * sq((1 - ab_t) / (1 - ab_p) * b),
             "the ratio inside sigma is upside down: sigma = eta * sqrt((1 - abar_prev)/(1 - abar_t)) * "
             "sqrt(1 - abar_t/abar_prev)."),
        ]:
            if math.isfinite(s_bad) and s_bad**2 < 1 - ab_p:
                add(sq(ab_p) * x0 + sq(1 - ab_p - s_bad**2) * eps + s_bad * z, msg)
        add(sq(ab_p) * x0 + sq(1 - ab_p - s**2) * eps,
            "With eta > 0 the step is random: add sigma * noise (you left the noise out).")
        add(sq(ab_p) * x0 + sq(1 - ab_p - s**2) * eps + z,
            "The noise must be scaled by sigma = eta * sqrt(beta_tilde_t): add sigma * noise, not noise.")
        add(sq(ab_p) * x0 + sq(1 - ab_p) * eps,
            "With eta > 0 the step draws noise sigma * z and shrinks the eps_hat coefficient to "
            "sqrt(1 - abar_prev - sigma^2); you returned the eta = 0 step.")
    return out


_STEP_CASES = [(0.3, 0.6), (0.02, 0.4), (0.9, 0.99)]
_ETAS = [0.0, 0.5, 1.0]


def check_ddim_step(fn) -> str:
    r"""Check `fn(x, eps, abar_t, abar_prev, eta, noise) -> x_prev`, one DDIM step (Song et al., 2021, eq. 12).

    `x`, `eps`, `noise`: float64 tensors of shape `(B, d)`; `abar_t < abar_prev` and `eta` are floats. The answer is
    compared with the reference to 1e-9 for three pairs of noise levels and eta in {0, 0.5, 1}.
    """
    expect_callable(fn, name="your DDIM step")
    g = torch.Generator().manual_seed(3)
    x = torch.randn((6, 2), generator=g, dtype=F64) * 1.3 + 0.4
    eps = torch.randn((6, 2), generator=g, dtype=F64)
    z = torch.randn((6, 2), generator=g, dtype=F64)
    for eta in _ETAS:  # the eta = 0 cases come first: a failure at eta > 0 means the deterministic part is right
        for ab_t, ab_p in _STEP_CASES:
            call = f"fn(x, eps, abar_t={ab_t}, abar_prev={ab_p}, eta={eta}, noise)"
            got = as_tensor64(_call(fn, x.clone(), eps.clone(), ab_t, ab_p, eta, z.clone(), name=call), call)
            expect(tuple(got.shape) == tuple(x.shape),
                   f"{call} should return x_prev with the shape of x, {tuple(x.shape)}; got {tuple(got.shape)}.")
            expect(bool(torch.isfinite(got).all()), f"{call} returned NaN or inf values (a square root of a "
                                                    "negative number? check which abar goes where).")
            want = reference_ddim_step(x, eps, ab_t, ab_p, eta, z)
            if torch.allclose(got, want, rtol=1e-9, atol=1e-10):
                continue
            for value, msg in _variants(x, eps, z, ab_t, ab_p, eta):
                if torch.allclose(got, value, rtol=1e-9, atol=1e-10):
                    raise WrongAnswer(f"{call}: {msg}")
            if eta > 0:
                raise WrongAnswer(f"Your step is right for eta = 0 but not for eta = {eta}: check sigma = eta * "
                                  "sqrt((1 - abar_prev)/(1 - abar_t)) * sqrt(1 - abar_t/abar_prev), the eps_hat "
                                  "coefficient sqrt(1 - abar_prev - sigma^2) and the added sigma * noise.")
            i = int((got - want).abs().argmax())
            raise WrongAnswer(f"{call}: entry {i} is {got.flatten()[i].item():.6g}, but it should be "
                              f"{want.flatten()[i].item():.6g}. Compute x0_hat = (x - sqrt(1 - abar_t) eps) / "
                              "sqrt(abar_t) first, then x_prev = sqrt(abar_prev) x0_hat + sqrt(1 - abar_prev - "
                              "sigma^2) eps + sigma noise.")
    return correct("right for eta = 0 (DDIM), 0.5 and 1 (DDPM's posterior variance).")


# ------------------------------------------------------------------ strided timesteps
_STRIDE_CASES = [(1000, 10), (1000, 50), (1000, 7), (1000, 1000), (100, 3), (50, 1)]


def _as_indices(value, call: str) -> np.ndarray:
    if torch.is_tensor(value):
        value = value.detach().cpu().numpy()
    try:
        arr = np.asarray(value)
    except Exception:  # pragma: no cover - exotic containers
        raise WrongAnswer(f"{call} should return a sequence of integers") from None
    expect(arr.ndim == 1, f"{call} should return a 1-D sequence of K indices, got shape {arr.shape}")
    expect(arr.dtype.kind in "iuf", f"{call} should return integers, got values of type {arr.dtype}")
    if arr.dtype.kind == "f":
        expect(bool(np.all(np.isfinite(arr))) and bool(np.all(arr == np.round(arr))),
               f"{call} returned non-integer values {arr[:5]}...: indices into alphas_cumprod are integers (round "
               "them, e.g. with np.round(...).astype(int)).")
    return arr.astype(np.int64)


def check_strided_timesteps(fn) -> str:
    r"""Check `fn(N, K)`: K 0-based indices into an `alphas_cumprod` of length N, strictly decreasing, starting at
    N - 1, with the K + 1 boundaries $N - 1 = \tau_1 > \dots > \tau_K > -1$ evenly spaced (every gap, including the
    last one from $\tau_K$ down to -1, is floor(N/K) or ceil(N/K)): DDIM's "trailing" spacing."""
    expect_callable(fn, name="your timestep function")
    for N, K in _STRIDE_CASES:
        call = f"fn(N={N}, K={K})"
        tau = _as_indices(_call(fn, N, K, name=call), call)
        lo, hi = N // K, -(-N // K)
        if tau.size == K + 1 and tau[-1] in (0, -1):
            raise WrongAnswer(f"{call} returned K + 1 = {K + 1} indices, ending at {tau[-1]}. A K-step sampler "
                              "evaluates the network K times; the last step goes from tau_K to the clean data "
                              "(abar = 1), which is not an entry of alphas_cumprod. Drop the final index.")
        expect(tau.size == K, f"{call} should return K = {K} indices, got {tau.size}.")
        if K > 1 and np.all(np.diff(tau) > 0):
            raise WrongAnswer(f"{call} is increasing ({tau[:3].tolist()}...). Sampling runs from noise to data: the "
                              "first index must be the noisiest, N - 1. Reverse the order.")
        expect(K == 1 or bool(np.all(np.diff(tau) < 0)),
               f"{call} = {tau[:8].tolist()}... must be strictly decreasing (no repeats): each step must reduce the "
               "noise level.")
        if tau.max() == N:
            raise WrongAnswer(f"{call} contains the index {N}, outside alphas_cumprod (length {N}, indices "
                              f"0..{N - 1}): you counted DDPM's steps 1..N; Python's indices are 0-based, so "
                              "subtract 1.")
        expect(tau.min() >= 0 and tau.max() <= N - 1,
               f"{call} has indices outside 0..{N - 1}: {tau.min()}..{tau.max()}.")
        if tau[0] != N - 1:
            raise WrongAnswer(
                f"{call} starts at index {tau[0]}, not N - 1 = {N - 1}. With this 'leading' spacing the sampler "
                f"starts from x_T ~ N(0, I) but treats it as a sample at step {tau[0] + 1}, where alpha_bar is "
                f"larger than at step N: the first step is evaluated at the wrong noise level and the noisiest "
                f"part of the schedule is never used. Start at N - 1 and space the steps evenly down to -1 "
                f"('trailing' spacing).")
        gaps = np.diff(np.r_[tau, -1]) * -1
        if not np.all((gaps >= lo) & (gaps <= hi)):
            if tau[-1] == 0 and K > 1:
                raise WrongAnswer(
                    f"{call} ends at index 0, so the last step covers 1 of the N steps while the others cover about "
                    f"{gaps[:-1].mean():.0f}: the K + 1 boundaries N - 1 = tau_1 > ... > tau_K > -1 (index -1 stands "
                    "for the clean data) should be evenly spaced, e.g. round(N - k N/K) - 1 for k = 0..K-1.")
            raise WrongAnswer(f"{call} has gaps between {gaps.min()} and {gaps.max()} steps; with trailing spacing "
                              f"every gap (the last one from tau_K down to -1 included) is {lo} or {hi}.")
    return correct("trailing spacing: for N = 1000, K = 10 it is 999, 899, ..., 99.")


# ------------------------------------------------------------------ DDIM inversion
def _problem():
    from ..sde import VPSDE
    from ..toy import GaussianMixture

    sde = VPSDE()
    data = GaussianMixture([-1.0, 0.5, 2.0], [0.3, 0.15, 0.4], [0.3, 0.3, 0.4], dtype=F64)
    ts = sde.time_grid(50).to(F64)
    x = data.noised(float(ts[-1]), sde).sample(400, generator=torch.Generator().manual_seed(5))
    return sde, data, ts, x


def _coeffs(sde, t: float):
    tt = torch.tensor(t, dtype=F64)
    return sde.mean_coeff(tt).item(), sde.std(tt).item()


def _invert(eps_fn, sde, x, ts, *, variant: str = "ddim"):
    for i in range(len(ts) - 2, -1, -1):
        t_from, t_to = float(ts[i + 1]), float(ts[i])
        a_f, s_f = _coeffs(sde, t_from)
        a_t, s_t = _coeffs(sde, t_to)
        t_eval = t_to if variant == "target_time" else t_from
        eps = eps_fn(x, torch.full((x.shape[0],), t_eval, dtype=x.dtype))
        x0 = (x - s_f * eps) / a_f
        if variant == "swapped":
            x = s_t * x0 + a_t * eps
        elif variant == "euler":
            beta = sde.beta(torch.tensor(t_from, dtype=F64)).item()
            x = x + (-0.5 * beta * x + 0.5 * beta * eps / s_f) * (t_to - t_from)
        else:
            x = a_t * x0 + s_t * eps
    return x


def check_ddim_inversion(fn) -> str:
    r"""Check `fn(eps_fn, sde, x, ts) -> x_T`: DDIM with eta = 0 run backwards on the decreasing grid `ts`, from
    `x` at `ts[-1]` up to `ts[0]`. Each step from $s$ = `ts[i+1]` to $t$ = `ts[i]` evaluates
    $\hat\varepsilon = $ `eps_fn(x_s, s)` and sets $x_t = \alpha_t\hat x_0 + \sigma_t\hat\varepsilon$ with
    $\hat x_0 = (x_s - \sigma_s\hat\varepsilon)/\alpha_s$. Tested on a 1-D Gaussian mixture with its exact
    noise prediction; decoding the answer with `ddim_sample` on the same grid must give `x` back."""
    from ..discrete import ddim_sample

    expect_callable(fn, name="your inversion function")
    sde, data, ts, x = _problem()
    eps_fn = data.eps_fn(sde)
    call = "fn(eps_fn, sde, x, ts)"
    got = as_tensor64(_call(fn, eps_fn, sde, x.clone(), ts.clone(), name=call), call)
    if got.ndim == x.ndim + 1 and got.shape[1:] == x.shape:
        raise WrongAnswer(f"{call} returned a whole trajectory, shape {tuple(got.shape)}; return only the final "
                          f"latents x_T, with the shape of x, {tuple(x.shape)}.")
    expect(tuple(got.shape) == tuple(x.shape),
           f"{call} should return latents with the shape of x, {tuple(x.shape)}; got {tuple(got.shape)}.")
    expect(bool(torch.isfinite(got).all()), f"{call} returned NaN or inf values.")
    expect(not torch.allclose(got, x), f"{call} returned its input unchanged: walk the grid from ts[-1] up to ts[0].")
    again = as_tensor64(_call(fn, eps_fn, sde, x.clone(), ts.clone(), name=call), call)
    expect(torch.allclose(got, again, rtol=1e-12, atol=1e-12),
           "Two calls with the same input gave different latents: your encoding is random. DDIM inversion is "
           "deterministic (eta = 0): drawing x_T = alpha_T x0 + sigma_T z samples the forward kernel, and the "
           "deterministic decoder does not bring such a random x_T back to x.")
    want = _invert(eps_fn, sde, x, ts)
    decoded = ddim_sample(eps_fn, sde, got.to(x.dtype), ts)
    round_trip = (decoded - x).abs().mean().item()
    if torch.allclose(got, want, rtol=1e-8, atol=1e-8):
        return correct(f"decoding your latents returns x to {round_trip:.1e} (mean abs).")
    for variant, msg in [
        ("target_time", "you evaluated eps_fn at the time you step *to*. The explicit DDIM step uses the noise "
                        "prediction at the current point and time, eps_fn(x_s, s): the point at time t is what the "
                        "step computes, so it cannot be used yet."),
        ("swapped", "alpha and sigma are swapped in the update: x_t = alpha_t x0_hat + sigma_t eps_hat (the data "
                    "coefficient is alpha_t = sqrt(abar(t)))."),
        ("euler", "this is an Euler step in t of the probability-flow ODE, a valid first-order solver but not "
                  "DDIM: keep eps_hat frozen and move in rho = sigma/alpha, i.e. x_t = alpha_t x0_hat + "
                  "sigma_t eps_hat."),
    ]:
        if torch.allclose(got, _invert(eps_fn, sde, x, ts, variant=variant), rtol=1e-8, atol=1e-8):
            raise WrongAnswer(f"{call}: {msg}")
    raise WrongAnswer(f"{call}: your latents differ from DDIM inversion (largest difference "
                      f"{(got - want).abs().max().item():.3g}); decoding them with ddim_sample misses x by "
                      f"{round_trip:.3g} on average. For i = K-1, ..., 0 step from s = ts[i+1] to t = ts[i]: "
                      "eps = eps_fn(x, s), x0_hat = (x - sigma_s eps)/alpha_s, x = alpha_t x0_hat + sigma_t eps.")
