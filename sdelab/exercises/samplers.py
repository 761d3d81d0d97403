r"""Checkers for the exercises of the chapter "Samplers compared" (`book/part3/samplers.ipynb`).

* `check_heun_step(fn)`: `fn(velocity, x, t, t_next)` takes one Heun (explicit trapezoid) step of
  $dx/dt = v(x, t)$ from `t` to `t_next` (either direction), calling `velocity(x, t)` twice.
* `check_estimate_order(fn)`: `fn(nfe, errors)` returns the order $p > 0$ of errors that behave like
  $C\,\mathrm{NFE}^{-p}$ (the least-squares slope on log-log axes, with its sign flipped).
* `check_budget_sampler(fn)`: `fn(score_fn, sde, x)` turns samples `x` of $p_T$ into samples at
  $t = 10^{-3}$ with at most 20 score evaluations, accurately enough (the chapter's 1-D mixture).
* `check_karras_grid(fn)`: `fn(sde, n, eps, rho)` returns the `n + 1` decreasing times from $T$ to `eps` evenly
  spaced in $\rho(t)^{1/r}$, $\rho = \sigma/\alpha$, $r$ = `rho` (Karras et al.'s grid, `sde.time_grid(..., kind="karras")`).

Each returns a `Feedback` message when the answer is right and raises `WrongAnswer` naming the mistake otherwise.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ._core import WrongAnswer, as_tensor64, correct, expect, expect_callable, expect_number
from ._core import call_answer as _call

__all__ = ["check_heun_step", "check_estimate_order", "check_budget_sampler", "check_karras_grid", "MIXTURE", "BUDGET_NFE",
           "BUDGET_W1"]

F64 = torch.float64
MIXTURE = {"means": [-1.0, 0.5, 2.0], "stds": [0.3, 0.15, 0.4], "weights": [0.3, 0.3, 0.4]}
"""The chapter's 1-D test problem: a three-component Gaussian mixture (pushed through `VPSDE()`)."""
BUDGET_NFE = 20
BUDGET_W1 = 0.01
T_END = 1e-3


# ------------------------------------------------------------------ Heun step
def _velocity(x: torch.Tensor, t) -> torch.Tensor:
    t = float(t)
    return -0.5 * x**3 + math.cos(3 * t) * x + 0.7 * t


class _Counted:
    def __init__(self):
        self.calls = []

    def __call__(self, x, t):
        self.calls.append((x.detach().clone() if torch.is_tensor(x) else x, float(t)))
        return _velocity(torch.as_tensor(x, dtype=F64), t)


def _step_variants(x, t, tn):
    v, h = _velocity, tn - t
    k1 = v(x, t)
    xp = x + h * k1
    return [
        (x + h * k1, "This is Euler's step x + h v(x, t): Heun's method corrects it with a second slope, taken at "
                     "the Euler prediction x_pred = x + h v(x, t) and the new time t_next."),
        (x + h * v(xp, tn), "You used only the slope at the predicted end point. Heun averages both slopes: "
                            "x + h/2 [v(x, t) + v(x_pred, t_next)]."),
        (x + 0.5 * h * (k1 + v(x, tn)), "The second slope must be taken at the predicted point x_pred = x + h v(x, t), "
                                        "not at the old x: x + h/2 [v(x, t) + v(x_pred, t_next)]."),
        (x + 0.5 * h * (k1 + v(xp, t)), "The second slope is taken at the new time t_next (together with x_pred); "
                                        "you kept the old time t."),
        (x + h * v(x + 0.5 * h * k1, t + 0.5 * h), "This is the explicit midpoint method: also second order, but not "
                                                   "Heun's trapezoid. Average the slopes at the two ends: "
                                                   "x + h/2 [v(x, t) + v(x_pred, t_next)]."),
        (x + 0.25 * h * (k1 + v(xp, tn)), "The average of two slopes is (v1 + v2)/2, applied over the whole step h: "
                                          "you took half of that."),
        (x + h * (k1 + v(xp, tn)), "The two slopes must be averaged, (v1 + v2)/2: you added them."),
        (x - h * k1, "The step goes the wrong way: with h = t_next - t (negative when integrating backwards in "
                     "time, as samplers do) the Euler prediction is x + h v(x, t)."),
        (x - 0.5 * h * (k1 + v(x - h * k1, tn)), "Sign error: use h = t_next - t, which is negative for a step "
                                                   "backwards in time."),
    ]


def reference_heun_step(velocity, x, t, t_next):
    r"""The reference solution: $x + \tfrac h2[v(x, t) + v(x + h\,v(x, t), t + h)]$ with $h$ = `t_next - t`."""
    h = t_next - t
    k1 = velocity(x, t)
    return x + 0.5 * h * (k1 + velocity(x + h * k1, t_next))


def check_heun_step(fn) -> str:
    r"""Check `fn(velocity, x, t, t_next) -> x_next`, one Heun step of $dx/dt = v(x, t)$ (any direction).

    Tested on the non-linear ODE $v(x, t) = -x^3/2 + \cos(3t)\,x + 0.7t$, backwards and forwards in time, against
    the trapezoid formula to 1e-12; it must call `velocity` exactly twice.
    """
    expect_callable(fn, name="your Heun step")
    x = torch.tensor([[-1.2], [0.3], [0.9], [1.7]], dtype=F64)
    for t, tn in [(0.8, 0.55), (0.2, 0.45), (1.0, 0.9)]:
        call = f"fn(velocity, x, t={t}, t_next={tn})"
        vel = _Counted()
        got = as_tensor64(_call(fn, vel, x.clone(), t, tn, name=call), call)
        expect(tuple(got.shape) == tuple(x.shape), f"{call} should return x_next with the shape of x, "
                                                   f"{tuple(x.shape)}; got {tuple(got.shape)}.")
        want = reference_heun_step(_velocity, x, t, tn)
        if torch.allclose(got, want, rtol=1e-12, atol=1e-12):
            expect(len(vel.calls) == 2, f"{call}: the result is right but velocity was called {len(vel.calls)} "
                                        "times; Heun needs exactly two evaluations per step (that is its cost).")
            continue
        euler = x + (tn - t) * _velocity(x, t)
        if torch.allclose(got, euler, rtol=1e-12, atol=1e-12) and len(vel.calls) >= 2:
            raise WrongAnswer(f"{call}: Euler in disguise. You call velocity {len(vel.calls)} times, but the result "
                              "equals Euler's x + h v(x, t): both slopes were evaluated at the same point "
                              f"(calls at {[(round(float(c[0].flatten()[0]), 4), c[1]) for c in vel.calls]}). The "
                              "second must be at x_pred = x + h v(x, t) and t_next.")
        for value, msg in _step_variants(x, t, tn):
            if torch.allclose(got, value, rtol=1e-12, atol=1e-12):
                raise WrongAnswer(f"{call}: {msg}")
        i = int((got - want).abs().argmax())
        raise WrongAnswer(f"{call}: entry {i} is {got.flatten()[i].item():.6g}, but Heun's step gives "
                          f"{want.flatten()[i].item():.6g}. With h = t_next - t: x_pred = x + h v(x, t), then "
                          "x_next = x + h/2 [v(x, t) + v(x_pred, t_next)].")
    return correct("Euler predictor, then the mean of both end slopes: order 2.")


# ------------------------------------------------------------------ convergence order
def _order_cases():
    g = np.random.default_rng(7)
    out = []
    for p, nfe, C in [(1.0, [10, 20, 50, 100, 200], 0.3), (2.0, [8, 16, 40, 100, 250, 400], 3.0),
                      (1.5, [12, 30, 60, 150], 1.0)]:
        nfe = np.asarray(nfe, dtype=float)
        err = C * nfe**-p * np.exp(0.04 * g.standard_normal(nfe.size))
        out.append((p, nfe, err))
    return out


def _fit(nfe, err) -> float:
    return -float(np.polyfit(np.log(nfe), np.log(err), 1)[0])


def check_estimate_order(fn) -> str:
    r"""Check `fn(nfe, errors) -> p`: the order $p$ in $\text{error} \approx C\,\mathrm{NFE}^{-p}$, i.e. minus the
    least-squares slope of $\log(\text{error})$ against $\log(\mathrm{NFE})$ (NumPy arrays in, a float out).
    Tested on noisy synthetic data of orders 1, 2 and 1.5 with unevenly spaced NFE; tolerance 0.05."""
    expect_callable(fn, name="your order estimator")
    for p, nfe, err in _order_cases():
        call = f"fn(nfe={nfe.astype(int).tolist()}, errors)"
        got = expect_number(_call(fn, nfe.copy(), err.copy(), name=call), name=f"{call} (the order)")
        want = _fit(nfe, err)
        if abs(got - want) <= 0.05:
            continue
        ln10 = math.log(10)
        slope_lin = float(np.polyfit(nfe, np.log(err), 1)[0])
        ratios = np.log2(err[:-1] / err[1:])
        checks = [
            (-want, "Your order has the wrong sign: errors that fall like NFE^-p have slope -p on log-log axes; "
                    "the order is minus the slope."),
            (want * ln10, "You mixed logarithms: log10 on one axis and the natural log on the other scales the "
                          "slope by ln 10 = 2.30. Use the same logarithm for both."),
            (want / ln10, "You mixed logarithms: the natural log on one axis and log10 on the other scales the "
                          "slope by 1/ln 10. Use the same logarithm for both."),
            (-slope_lin, "You fitted log(error) against NFE itself (a semi-log fit); a power law is a straight line "
                         "when both axes are logarithmic: fit log(error) against log(NFE)."),
            (-float(np.polyfit(nfe, err, 1)[0]), "You fitted the errors against NFE without logarithms; fit "
                                                 "log(error) against log(NFE)."),
            (float(ratios.mean()), "You averaged log2(e_k / e_{k+1}), which is the order only when NFE doubles "
                                   "from one run to the next. Here it does not: divide by log2(NFE_{k+1} / NFE_k), "
                                   "or better, fit a line to all points on log-log axes."),
            (float(ratios[-1]), "log2(e_{k} / e_{k+1}) is the order only when NFE doubles from one run to the next. "
                                "Divide by log2(NFE_{k+1} / NFE_k), or fit a line on log-log axes."),
        ]
        for cand, msg in checks:
            if math.isfinite(cand) and abs(got - cand) <= 0.02 * abs(cand) + 1e-12:
                raise WrongAnswer(f"{call} = {got:.4g}: {msg}")
        raise WrongAnswer(f"{call} = {got:.4g}, but these errors fall like NFE^-{want:.3f}: fit a straight line to "
                          "(log NFE, log error), e.g. np.polyfit(np.log(nfe), np.log(errors), 1), and return minus "
                          "its slope.")
    return correct("The order is minus the least-squares slope on log-log axes.")


# ------------------------------------------------------------------ a sampler on a budget
_REF_CACHE: dict = {}


def _budget_problem():
    if "ref" not in _REF_CACHE:
        from ..samplers import pf_ode_rk45
        from ..sde import VPSDE
        from ..toy import GaussianMixture

        sde = VPSDE()
        data = GaussianMixture(MIXTURE["means"], MIXTURE["stds"], MIXTURE["weights"], dtype=F64)
        x = data.noised(1.0, sde).sample(1000, generator=torch.Generator().manual_seed(11))
        ref = pf_ode_rk45(data.score_fn(sde), sde, x, torch.tensor([1.0, T_END], dtype=F64), rtol=1e-9, atol=1e-9)
        _REF_CACHE.update(sde=sde, data=data, x=x, ref=ref)
    c = _REF_CACHE
    return c["sde"], c["data"], c["x"], c["ref"]


def check_budget_sampler(fn) -> str:
    r"""Check `fn(score_fn, sde, x) -> samples`: from `x` ~ $p_T$ (shape `(1000, 1)`, float64) reach $t = 10^{-3}$
    with at most `BUDGET_NFE` = 20 calls of `score_fn` (batched calls count once), with Wasserstein-1 distance at
    most `BUDGET_W1` = 0.01 to the exact probability-flow push-forward of the same `x` (adaptive RK45, tolerance
    1e-9). The score is the exact score of the chapter's mixture `MIXTURE` under `VPSDE()`."""
    from ..metrics import wasserstein_1d
    from ..samplers import CountingScore

    expect_callable(fn, name="your sampler")
    sde, data, x, ref = _budget_problem()
    score = CountingScore(data.score_fn(sde))
    call = "fn(score_fn, sde, x)"
    out = as_tensor64(_call(fn, score, sde, x.clone(), name=call), call)
    expect(tuple(out.shape) == tuple(x.shape), f"{call} should return samples with the shape of x, "
                                               f"{tuple(x.shape)}; got {tuple(out.shape)}.")
    expect(bool(torch.isfinite(out).all()), f"{call} returned NaN or inf values.")
    expect(score.nfe > 0, f"{call} never called score_fn: the samples must come from the score model (pass the "
                          "score_fn you are given to a sampler, or call it yourself).")
    expect(score.nfe <= BUDGET_NFE, f"{call} used {score.nfe} score evaluations; the budget is {BUDGET_NFE}. Count "
                                    "them: Heun costs 2 per step, predictor-corrector 2, the others 1.")
    err = wasserstein_1d(out, ref).item()
    if err <= BUDGET_W1:
        return correct(f"W1 = {err:.4f} with {score.nfe} evaluations (20 Euler steps: 0.017).")
    hint = ("Use a deterministic (ODE) sampler on a grid from T = 1 to t = 1e-3: with 20 evaluations a stochastic "
            "sampler is still far from its limit. A second-order solver (Heun with 10 steps, or DPM-Solver++(2M) "
            "with 20) on a grid denser near t = 0 than the uniform one, but less extreme than the log-SNR grid "
            "(uniform in sqrt(t), for instance), gets below 0.01 here.")
    expect(err < 0.1, f"W1 = {err:.3g} to the exact push-forward: far off. Did you end the grid at t = {T_END:g} "
                      f"(not at 0, or at T), and start it at T = 1? {hint}")
    raise WrongAnswer(f"W1 = {err:.4f} with {score.nfe} evaluations; the target is {BUDGET_W1} (Euler with 20 "
                      f"uniform steps gives about 0.017). {hint}")


# ------------------------------------------------------------------ choosing a grid: Karras' spacing
def check_karras_grid(fn) -> str:
    r"""Check `fn(sde, n, eps, rho)`: `n + 1` times from $T$ down to `eps`, evenly spaced in $\rho(t)^{1/r}$ with
    $\rho = \sigma/\alpha$ (`sde.noise_ratio`), compared with `sde.time_grid(n, eps, kind="karras", rho=rho)` to 1e-6."""
    from ..sde import VPSDE

    expect_callable(fn, name="your grid function")
    sde = VPSDE()
    for n, eps, rho in ((10, 1e-3, 7.0), (25, 1e-2, 3.0)):
        call = f"fn(VPSDE(), n={n}, eps={eps:g}, rho={rho:g})"
        got = as_tensor64(_call(fn, sde, n, eps, rho, name=call), name=call).reshape(-1)
        want = sde.time_grid(n, eps, kind="karras", rho=rho)
        expect(got.numel() == n + 1, f"{call} should return n + 1 = {n + 1} times (both ends included), got {got.numel()}.")
        if torch.allclose(got, want, atol=1e-6, rtol=0):
            continue
        if torch.allclose(got.flip(0), want, atol=1e-6, rtol=0):
            raise WrongAnswer(f"{call}: your grid runs upwards; samplers integrate from T down to eps, so reverse it.")
        expect(abs(float(got[0]) - sde.T) < 1e-6 and abs(float(got[-1]) - eps) < 1e-6,
               f"{call} should start at T = 1 and end at eps = {eps:g}, got {float(got[0]):.4g} ... {float(got[-1]):.4g}.")
        u = sde.noise_ratio(got.clamp(eps, sde.T))
        if torch.allclose(torch.log(u).diff(), torch.log(u).diff()[0].expand(n), rtol=1e-4):
            raise WrongAnswer(f"{call}: your times are evenly spaced in log(sigma/alpha), the log-SNR grid. Karras' grid "
                              "is evenly spaced in (sigma/alpha)^(1/rho) instead.")
        if torch.allclose(got, torch.linspace(sde.T, eps, n + 1, dtype=F64), atol=1e-6):
            raise WrongAnswer(f"{call}: your grid is uniform in t. Space rho(t)^(1/rho) = (sigma/alpha)^(1/rho) evenly "
                              "and map each value back to t (e.g. by bisection: sigma/alpha increases with t).")
        raise WrongAnswer(f"{call} differs from Karras' grid by up to {float((got - want).abs().max()):.3g}: space "
                          "u = (sigma/alpha)^(1/rho) evenly from its value at T to its value at eps, then solve "
                          "sigma(t)/alpha(t) = u^rho for t.")
    return correct("Karras' grid is even in (sigma/alpha)^(1/rho): dense near eps, sparse near T.")

