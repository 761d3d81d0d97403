r"""Checkers for the exercises of the chapter "The reverse-time SDE and the probability-flow ODE"
(`book/part3/reverse_sde.ipynb`).

Conventions: time runs from $T = 1$ down to a small $\epsilon$, so a step has $\Delta t < 0$ and the reverse-time
Brownian increment is $\sqrt{|\Delta t|}\,z$ with $z \sim \mathcal N(0, I)$; the VP-SDE has the linear schedule
$\beta(t) = 0.1 + 19.9\,t$ (`VPSDE(0.1, 20.0)`) unless an exercise says otherwise. Tensors are float64.
"""
from __future__ import annotations

import math

import torch

from ..sde import VPSDE, SubVPSDE
from ..toy import ring
from ._core import WrongAnswer, allclose, correct, expect, expect_callable, expect_tensor, reject_mistakes
from ._core import call_answer as _call

__all__ = ["check_lambda_drift", "check_reverse_em_step", "check_pf_gaussian_map"]

F64 = torch.float64
BETA_MIN, BETA_MAX = 0.1, 20.0


# ---------------------------------------------------------------- the lambda family of reverse drifts
_LAMS = (0.0, 0.5, 1.0, 2.0)


def check_lambda_drift(lambda_drift) -> str:
    r"""Check `lambda_drift(x, t, score, lam)`: the drift $f(x, t) - \frac{1 + \lambda^2}{2} g(t)^2 s$ of the
    reverse-time family $\mathrm{d}x = [f - \frac{1+\lambda^2}{2} g^2 \nabla\log p_t]\,\mathrm{d}t + \lambda g\,\mathrm{d}\bar w$
    for the VP-SDE with $\beta(t) = 0.1 + 19.9\,t$ ($f = -\beta x/2$, $g^2 = \beta$). `x`, `score`: `(B, 2)`; `t`: `(B,)`;
    `lam`: a float. Tested at $\lambda = 0, 0.5, 1, 2$."""
    expect_callable(lambda_drift, name="lambda_drift")
    gen = torch.Generator().manual_seed(11)
    B = 10
    x = 1.5 * torch.randn((B, 2), generator=gen, dtype=F64)
    score = torch.randn((B, 2), generator=gen, dtype=F64)
    t = 0.05 + 0.9 * torch.rand(B, generator=gen, dtype=F64)
    beta = (BETA_MIN + (BETA_MAX - BETA_MIN) * t)[:, None]
    f = -0.5 * beta * x
    got = {}
    for lam in _LAMS:
        call = f"lambda_drift(x, t, score, lam={lam:g})"
        got[lam] = expect_tensor(_call(lambda_drift, x.clone(), t.clone(), score.clone(), lam, name=call),
                                 name=f"the result of {call}", shape=(B, 2))

    def matches(c_of_lam, fx=f, g2=beta, sign=-1.0):
        return all(allclose(got[lam], fx + sign * c_of_lam(lam) * g2 * score) for lam in _LAMS)

    if matches(lambda lam: (1 + lam**2) / 2):
        return correct("f - (1 + lambda^2)/2 g^2 s: lambda = 0 is the PF-ODE, lambda = 1 Anderson's SDE.")
    wrong = [
        (lambda lam: 1.0, {}, "you used the reverse-SDE drift f - g^2 s for every lambda. It is right for lambda = 1 "
                              "only: the coefficient is (1 + lambda^2)/2, so the probability-flow ODE (lambda = 0) "
                              "has *half* the score term, f - g^2 s/2."),
        (lambda lam: 0.5, {}, "the score coefficient must grow with the noise: (1 + lambda^2)/2, i.e. 1/2 for the ODE "
                              "but 1 for the reverse SDE (lambda = 1). The extra lambda^2/2 g^2 s balances the "
                              "injected noise lambda g dw."),
        (lambda lam: (1 + lam) / 2, {}, "lambda enters squared: the noise lambda g dw has variance lambda^2 g^2 "
                                        "|dt|, so the coefficient is (1 + lambda^2)/2."),
        (lambda lam: lam**2 / 2, {}, "you dropped the 1/2 g^2 s that every member has: that part is the "
                                     "probability-flow velocity; lambda adds lambda^2/2 g^2 s on top. The coefficient "
                                     "is (1 + lambda^2)/2."),
        (lambda lam: lam**2, {}, "the coefficient is (1 + lambda^2)/2, not lambda^2: at lambda = 0 the score term must "
                                 "not vanish (that would be the forward drift run backwards)."),
        (lambda lam: (1 + lam**2) / 2, {"sign": 1.0}, "sign error in the score term: with dt < 0 the drift is "
                                                      "f - (1 + lambda^2)/2 g^2 s (the score term pulls towards the "
                                                      "data when multiplied by dt < 0)."),
        (lambda lam: (1 + lam**2) / 2, {"g2": beta.sqrt()}, "the score term carries g^2 = beta(t), not g = "
                                                            "sqrt(beta(t))."),
        (lambda lam: (1 + lam**2) / 2, {"fx": 0 * x}, "you forgot the forward drift f(x, t) = -beta(t) x/2; the "
                                                      "reverse drift is f minus the score term."),
        (lambda lam: (1 + lam**2) / 2, {"fx": -f}, "sign of f: in the t-convention (dt < 0) the reverse drift "
                                                   "contains f itself, f - (1 + lambda^2)/2 g^2 s."),
        (lambda lam: (1 + lam**2) / 2, {"fx": -f, "sign": 1.0}, "that is the drift in forward time tau = T - t, "
                                                                "-f + (1 + lambda^2)/2 g^2 s. The exercise uses t "
                                                                "itself (integrated with dt < 0): f - (1 + lambda^2)/2 "
                                                                "g^2 s."),
        (lambda lam: (1 + lam**2) / 2, {"fx": -beta * x}, "the VP drift is f = -beta x/2: you dropped its 1/2."),
    ]
    for c_of_lam, kw, msg in wrong:
        expect(not matches(c_of_lam, **kw), msg)
    bad = [lam for lam in _LAMS if not allclose(got[lam], f - (1 + lam**2) / 2 * beta * score)]
    raise WrongAnswer(f"the drift is wrong for lambda in {bad}: it should be -beta(t) x/2 - (1 + lambda^2)/2 beta(t) "
                      "score with beta(t) = 0.1 + 19.9 t.")


# ---------------------------------------------------------------- one Euler-Maruyama step of the reverse SDE
def check_reverse_em_step(reverse_em_step) -> str:
    r"""Check `reverse_em_step(score_fn, sde, x, t, dt, z) -> x_next`: one Euler–Maruyama step of Anderson's reverse
    SDE from time `t` (a float) to `t + dt` with `dt < 0`:
    $x + [f(x, t) - g(t)^2 s(x, t)]\,\Delta t + g(t)\sqrt{|\Delta t|}\,z$, where `z` `(B, d)` is the standard normal draw;
    use `sde.drift(x, t)` and `sde.diffusion(t)`. Tested on VP and sub-VP with the exact score of a Gaussian mixture."""
    expect_callable(reverse_em_step, name="reverse_em_step")
    gen = torch.Generator().manual_seed(3)
    mix = ring(dtype=F64)
    B = 12
    for sde, t, dt in ((VPSDE(0.1, 20.0), 0.6, -0.01), (SubVPSDE(0.1, 20.0), 0.3, -0.02)):
        score_fn = mix.score_fn(sde)
        x = mix.noised(t, sde).sample(B, generator=gen)
        z = torch.randn((B, 2), generator=gen, dtype=F64)
        name = type(sde).__name__
        call = f"reverse_em_step(score_fn, {name}(0.1, 20), x, t={t}, dt={dt}, z)"
        got = expect_tensor(_call(reverse_em_step, score_fn, sde, x.clone(), t, dt, z.clone(), name=call),
                            name=f"the result of {call}", shape=(B, 2),
                            nan_hint="dt is negative: the noise is g sqrt(|dt|) z, the square root of |dt|.")
        tt = torch.full((B,), t, dtype=F64)
        f = sde.drift(x, tt)
        g = float(sde.diffusion(torch.tensor(t, dtype=F64)))
        s = score_fn(x, tt)
        want = x + (f - g**2 * s) * dt + g * math.sqrt(-dt) * z
        if allclose(got, want):
            continue
        where = f"{call}: "
        s_next = score_fn(x, torch.full((B,), t + dt, dtype=F64))
        f_next = sde.drift(x, torch.full((B,), t + dt, dtype=F64))
        g_next = float(sde.diffusion(torch.tensor(t + dt, dtype=F64)))
        wrong = [
            (x + (f - g**2 * s) * (-dt) + g * math.sqrt(-dt) * z,
             "the drift is multiplied by dt < 0: x + (f - g^2 s) dt. (Multiplying by |dt| runs the reverse drift "
             "forwards in time; in tau = T - t you would write x + (-f + g^2 s)|dt| instead.)"),
            (x + (f - g**2 * s) * dt + g * (-dt) * z, "the noise scales with sqrt(|dt|), not |dt|: a Brownian "
                                                      "increment over |dt| has variance |dt|."),
            (x + (f - g**2 * s) * dt + g**2 * math.sqrt(-dt) * z, "the noise amplitude is g(t), not g^2 (the variance "
                                                                  "of one step is g^2 |dt|)."),
            (x + (f - 0.5 * g**2 * s) * dt + g * math.sqrt(-dt) * z,
             "that mixes the probability-flow drift f - g^2 s/2 with the SDE's noise g dw: with noise g dw the "
             "score term is g^2 s (half of it undoes the noise's spreading, half reverses the forward diffusion)."),
            (x + (f - g**2 * s) * dt, "the noise term g sqrt(|dt|) z is missing: without it this is not the reverse "
                                      "SDE (and with the full g^2 s it over-sharpens the samples)."),
            (x + (f - 0.5 * g**2 * s) * dt, "that is an Euler step of the probability-flow ODE; the exercise asks for "
                                            "the reverse SDE: drift f - g^2 s and noise g sqrt(|dt|) z."),
            (x + (f + g**2 * s) * dt + g * math.sqrt(-dt) * z, "sign error in the score term: the drift is "
                                                               "f - g^2 s, multiplied by dt < 0."),
            (x + (-f - g**2 * s) * dt + g * math.sqrt(-dt) * z, "sign of f: the reverse drift (with dt < 0) contains "
                                                                "f itself, f - g^2 s."),
            (x + (f - g**2 * s) * dt - g * math.sqrt(-dt) * z, "z and -z have the same law, but the checker passes z: "
                                                               "add + g sqrt(|dt|) z."),
            (x + (f_next - g_next**2 * s_next) * dt + g_next * math.sqrt(-dt) * z,
             "Euler-Maruyama evaluates drift and noise at the start of the step, (x, t), not at t + dt."),
            (x + (f - g**2 * s) * dt + g * math.sqrt(-dt) * z * math.sqrt(2),
             "the noise is g sqrt(|dt|) z; a factor sqrt(2) belongs to the drift -beta x with g = sqrt(2 beta), not "
             "to the VP-SDE."),
        ]
        beta = BETA_MIN + (BETA_MAX - BETA_MIN) * t
        vp_coded = x + (-0.5 * beta * x - beta * s) * dt + math.sqrt(beta) * math.sqrt(-dt) * z
        if g**2 != beta:  # the sub-VP case: a VP-only step (f = -beta x/2, g^2 = beta) is wrong here
            wrong.insert(0, (vp_coded, "this is the VP step with beta(t) written out; on the sub-VP SDE "
                                       "g(t)^2 = beta(t)(1 - e^(-2B(t))) differs: use sde.drift and sde.diffusion."))
        reject_mistakes(got, wrong, same=allclose, prefix=where)
        raise WrongAnswer(where + "the step should be x + (f(x, t) - g(t)^2 score(x, t)) dt + g(t) sqrt(|dt|) z, with "
                          "f = sde.drift(x, t) and g = sde.diffusion(t).")
    return correct("x + (f - g^2 s) dt + g sqrt(|dt|) z, dt < 0: what euler_maruyama repeats.")


# ---------------------------------------------------------------- the probability-flow map for Gaussian data
_MAP_CASES = [(1.0, 0.5, 0.3), (-2.0, 1.5, 0.05), (0.5, 0.2, 0.7)]  # (m0, s0, t)


def _B(t: float) -> float:
    return BETA_MIN * t + 0.5 * (BETA_MAX - BETA_MIN) * t**2


def check_pf_gaussian_map(pf_map) -> str:
    r"""Check `pf_map(x_T, t, m0, s0) -> x_t`: where the probability-flow ODE of the VP-SDE ($\beta(t) = 0.1 + 19.9\,t$,
    $T = 1$), with the exact score of 1-D data $\mathcal N(m_0, s_0^2)$, carries the points `x_T` `(B,)` from time 1 to
    time `t` (a float): $m(t) + (x_T - m(1))\sqrt{v(t)/v(1)}$ with $m = \alpha m_0$ and
    $v = \alpha^2 s_0^2 + \sigma^2$."""
    expect_callable(pf_map, name="pf_map")
    x_T = torch.linspace(-2.5, 2.5, 11, dtype=F64)
    for m0, s0, t in _MAP_CASES:
        call = f"pf_map(x_T, t={t}, m0={m0}, s0={s0})"
        got = expect_tensor(_call(pf_map, x_T.clone(), t, m0, s0, name=call), name=f"the result of {call}",
                            shape=(11,))
        a, a1 = math.exp(-_B(t) / 2), math.exp(-_B(1.0) / 2)
        v, v1 = a**2 * s0**2 + 1 - a**2, a1**2 * s0**2 + 1 - a1**2
        m, m1 = a * m0, a1 * m0
        want = m + (x_T - m1) * math.sqrt(v / v1)
        if allclose(got, want):
            continue
        where = f"{call}: "
        vs = a**2 * s0**2 + (1 - a**2) ** 2, a1**2 * s0**2 + (1 - a1**2) ** 2  # sigma^2 squared by mistake
        wrong = [
            (m + (x_T - m1) * v / v1, "each point keeps its standardised position (x - m)/sqrt(v): the scale factor is "
                                      "the ratio of standard deviations sqrt(v(t)/v(1)), not of variances."),
            (m + (x_T - m1) * math.sqrt(v1 / v), "the ratio is upside down: going from time 1 to t the deviation from "
                                                 "the mean scales by sqrt(v(t)/v(1))."),
            (x_T * math.sqrt(v / v1), "the means are missing: subtract m(1) = alpha(1) m0 and add m(t) = alpha(t) m0. "
                                      "(The PF-ODE moves the mean like the forward mean, m' = -beta m/2.)"),
            (m0 + (x_T - m0) * math.sqrt(v / v1), "the mean of p_t is alpha(t) m0, not m0: the drift shrinks it."),
            (x_T * a / a1, "x(t) = x_T alpha(t)/alpha(1) solves dx/dt = f = -beta x/2 alone: you dropped the score "
                           "term -g^2/2 grad log p_t, which is what makes the flow transport p_1 to p_t."),
            (m + x_T * math.sqrt(v), "close, but you assumed p_1 = N(0, 1). Exactly, p_1 = N(alpha(1) m0, v(1)) with "
                                     "alpha(1) = 0.0066 and v(1) slightly below 1 when s0 < 1: use m(1) and v(1), so "
                                     "that the map carries p_1 exactly to p_t."),
            (m + (x_T - m1) * math.sqrt((a**2 * s0**2) / (a1**2 * s0**2)),
             "v(t) = alpha^2 s0^2 + sigma^2 includes the noise variance sigma(t)^2 = 1 - alpha(t)^2."),
            (m + (x_T - m1) * math.sqrt((s0**2 + 1 - a**2) / (s0**2 + 1 - a1**2)),
             "the data variance is scaled by alpha^2: v(t) = alpha(t)^2 s0^2 + sigma(t)^2."),
            (m + (x_T - m1) * math.sqrt(vs[0] / vs[1]), "for the VP-SDE sigma(t)^2 = 1 - alpha(t)^2 is already the "
                                                        "variance; do not square it again."),
            (m + (x_T - m1) * math.sqrt((a**2 * s0 + 1 - a**2) / (a1**2 * s0 + 1 - a1**2)),
             "s0 is the data's standard deviation: v(t) = alpha^2 s0^2 + sigma^2 uses s0^2."),
        ]
        reject_mistakes(got, wrong, same=allclose, prefix=where)
        raise WrongAnswer(where + "x(t) should be alpha(t) m0 + (x_T - alpha(1) m0) sqrt(v(t)/v(1)) with "
                          "v = alpha^2 s0^2 + 1 - alpha^2 and alpha(t) = exp(-B(t)/2), B(t) = 0.1 t + 9.95 t^2.")
    return correct("each point keeps its standardised position (x - m(t))/sqrt(v(t)).")
