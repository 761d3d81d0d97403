r"""Checkers for the exercises of the chapter "Training: learning the score needs no SDE solver"
(`book/part2/training.ipynb`).

Conventions: the VP-SDE with the linear schedule $\beta(t) = 0.1 + 19.9\,t$ on $[0, 1]$ (`VPSDE(0.1, 20.0)`) unless
an exercise says otherwise; $x_t = \alpha(t)\,x_0 + \sigma(t)\,\varepsilon$ with $\alpha$ = `sde.mean_coeff(t)` and
$\sigma$ = `sde.std(t)`; batches are `(B, d)` tensors and times `(B,)` tensors, all float64.
"""
from __future__ import annotations

import numpy as np
import torch

from ..sde import VESDE, VPSDE
from ._core import WrongAnswer, allclose, as_array, correct, expect, expect_callable, expect_tensor, reject_mistakes
from ._core import call_answer as _call

__all__ = ["check_dsm_eps_loss", "check_from_eps", "check_gaussian_denoiser"]

F64 = torch.float64


def _coeffs(sde, t: torch.Tensor, ndim: int = 2):
    a, s = sde.mean_coeff(t), sde.std(t)
    return a.reshape(-1, *([1] * (ndim - 1))), s.reshape(-1, *([1] * (ndim - 1)))


# ---------------------------------------------------------------- the DSM loss for noise prediction
class _SpyModel(torch.nn.Module):
    """A fixed, nonlinear 'network' $\\varepsilon_\\theta(x, t)$ with one trainable scalar; it records its inputs."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(0.7, dtype=F64))
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, x, t):
        self.calls.append((x.detach().clone(), torch.as_tensor(t).detach().clone()))
        t = torch.as_tensor(t, dtype=x.dtype)
        t = t.reshape(-1, 1) if t.ndim else t
        return self.w * torch.tanh(x) + 0.3 * t * x.flip(1) - 0.2


def check_dsm_eps_loss(dsm_eps_loss) -> str:
    r"""Check `dsm_eps_loss(model, sde, x0, t, eps) -> loss`: the denoising score-matching loss of a noise-predicting
    network for *given* times `t` `(B,)` and noise `eps` `(B, d)`: build $x_t = \alpha(t) x_0 + \sigma(t)\varepsilon$,
    call `model(x_t, t)` and return the mean over batch and coordinates of $(\varepsilon_\theta - \varepsilon)^2$, as a
    differentiable 0-dim tensor."""
    expect_callable(dsm_eps_loss, name="dsm_eps_loss")
    sde = VPSDE(0.1, 20.0)
    gen = torch.Generator().manual_seed(1234)
    B, d = 24, 2
    x0 = 2 * torch.randn((B, d), generator=gen, dtype=F64)
    t = 0.05 + 0.9 * torch.rand(B, generator=gen, dtype=F64)
    eps = torch.randn((B, d), generator=gen, dtype=F64)
    model = _SpyModel()
    call = "dsm_eps_loss(model, sde, x0, t, eps)"
    loss = _call(dsm_eps_loss, model, sde, x0.clone(), t.clone(), eps.clone(), name=call)
    expect(len(model.calls) > 0, "your loss never calls model(x_t, t): the network's prediction eps_theta(x_t, t) is "
                                 "what the loss compares with eps.")
    x_in, t_in = model.calls[-1]
    a, s = _coeffs(sde, t)
    expect(tuple(x_in.shape) == (B, d), f"model was called with x of shape {tuple(x_in.shape)}; it should get the "
                                        f"noisy batch x_t of shape {(B, d)}.")
    if not allclose(x_in, a * x0 + s * eps):
        wrong_x = [
            (a * x0 + eps, "the noise must be scaled by sigma(t): x_t = alpha(t) x0 + sigma(t) eps (sde.std(t))."),
            (x0 + s * eps, "you forgot the data coefficient: x_t = alpha(t) x0 + sigma(t) eps with alpha = "
                           "sde.mean_coeff(t), which is < 1 for the VP-SDE."),
            (a**2 * x0 + s * eps, "sde.mean_coeff(t) is already alpha(t) = sqrt(alpha_bar(t)); you squared it."),
            (a * x0 + s**2 * eps, "sigma(t)^2 is the kernel's variance; the noise is scaled by the standard "
                                  "deviation sigma(t) = sde.std(t)."),
            (a * x0 - s * eps, "sign: with the given eps the noisy point is x_t = alpha x0 + sigma eps (plus), "
                               "otherwise the target would be -eps."),
            (a * x0, "x_t has no noise in it: add sigma(t) * eps."),
            (x0, "the model must see the noisy x_t = alpha(t) x0 + sigma(t) eps, not the clean x0."),
            (s * x0 + a * eps, "alpha and sigma are swapped: alpha(t) = sde.mean_coeff(t) multiplies the data."),
        ]
        reject_mistakes(x_in, wrong_x, same=allclose)
        noise = (x_in - a * x0) / s
        corr = float((noise * eps).mean() / (noise.std() * eps.std()))
        expect(not (abs(float(noise.mean())) < 0.5 and abs(float(noise.std()) - 1) < 0.35 and abs(corr) < 0.5),
               "x_t has the right form but not the given noise: use the eps that is passed in (for example, "
               "sde.perturb draws fresh noise), or the loss compares the network with a noise it never saw.")
        raise WrongAnswer("model was called with a wrong x_t: it should be alpha(t) x0 + sigma(t) eps, with "
                          "alpha = sde.mean_coeff(t) and sigma = sde.std(t) broadcast over the coordinates.")
    t_got, t_want = as_array(t_in, "the time passed to model").reshape(-1), t.numpy()
    if not (t_got.shape == (B,) and np.allclose(t_got, t_want)):
        raise WrongAnswer("model should be called with the continuous times t of shape (B,) as given (in [0, 1]); "
                          f"it got times {np.round(t_got[:3], 4).tolist()}... instead of {np.round(t_want[:3], 4)}...")
    expect(torch.is_tensor(loss), f"the loss should be a torch tensor (so that loss.backward() works), got "
                                  f"{type(loss).__name__}: did you call .item() or convert to NumPy?")
    expect(loss.numel() == 1, f"the loss should be one number (a 0-dim tensor), got shape {tuple(loss.shape)}: "
                              "average over the batch too.")
    expect(loss.grad_fn is not None, "the loss is detached from the network (no grad_fn): do not wrap it in "
                                     "torch.no_grad() or .detach(), or the optimiser gets no gradient.")
    out = model.w.detach() * torch.tanh(x_in) + 0.3 * t.reshape(-1, 1) * x_in.flip(1) - 0.2
    val = float(loss.detach())
    want = float(((out - eps) ** 2).mean())
    if abs(val - want) <= 1e-8 * abs(want):
        return correct("|eps_theta - eps|^2 is the sigma^2-weighted DSM loss (L_simple).")
    r = out - eps
    wrong = [
        (float((r**2).sum(1).mean()), "you summed over the coordinates; the convention here (and in "
                                      "sdelab.losses.dsm_loss) is the mean over batch *and* coordinates, like "
                                      "F.mse_loss. (The sum is d times larger: same minimiser, different scale.)"),
        (float((r**2).sum()), "you summed over everything; take the mean over batch and coordinates."),
        (float(((out + eps) ** 2).mean()), "sign error: the target is eps itself, the noise that was added, so the "
                                           "residual is eps_theta - eps."),
        (float(((out - x0) ** 2).mean()), "the eps-model regresses onto the noise eps, not onto the clean data x0."),
        (float(((out + eps / s) ** 2).mean()), "-eps/sigma is the *score* target. A noise predictor is compared with "
                                               "eps itself; the score is s_theta = -eps_theta/sigma."),
        (float(((out - eps / s) ** 2).mean()), "eps/sigma is neither target: a noise predictor is compared with eps."),
        (float((r**2 / s**2).mean()), "you went to score space, |s_theta + eps/sigma|^2 = |eps_theta - eps|^2/sigma^2, "
                                      "and dropped the weight lambda = sigma^2; it cancels the 1/sigma^2 exactly."),
        (float((s**2 * r**2).mean()), "an extra factor sigma^2: |eps_theta - eps|^2 already *is* the sigma^2-weighted "
                                      "score loss; do not weight it again."),
        (float(r.abs().mean()), "square the residual: the loss is a mean *squared* error."),
        (float((r**2).mean().sqrt()), "you took a square root (an RMSE); the loss is the mean squared error."),
    ]
    for cand, msg in wrong:
        expect(not abs(val - cand) <= 1e-8 * abs(cand), msg)
    raise WrongAnswer(f"the loss is {val:.6g}, but it should be {want:.6g}: the mean of (model(x_t, t) - eps)^2 over "
                      "batch and coordinates.")


# ---------------------------------------------------------------- converting a noise prediction
_CONVERT_SDES = [VPSDE(0.1, 20.0), VESDE(0.01, 50.0)]


def _sde_name(sde) -> str:
    return "VESDE(0.01, 50)" if _is_ve(sde) else "VPSDE(0.1, 20)"


def _is_ve(sde) -> bool:
    """The VE case of the test list: mean coefficient 1 at every t (no isinstance on concrete SDEs)."""
    return bool(sde.mean_coeff(1.0) == 1.0)


def check_from_eps(from_eps) -> str:
    r"""Check `from_eps(eps_hat, x_t, t, sde) -> (score, x0_hat)`: the score $-\hat\varepsilon/\sigma(t)$ and the
    clean-data estimate $(x_t - \sigma(t)\hat\varepsilon)/\alpha(t)$ for any affine SDE (tested on VP and VE);
    `eps_hat`, `x_t` are `(B, d)` with $B \ne d$ and `t` is `(B,)`."""
    expect_callable(from_eps, name="from_eps")
    gen = torch.Generator().manual_seed(77)
    B, d = 16, 2
    for sde in _CONVERT_SDES:
        x_t = 1.5 * torch.randn((B, d), generator=gen, dtype=F64)
        eps_hat = torch.randn((B, d), generator=gen, dtype=F64)
        t = 0.05 + 0.9 * torch.rand(B, generator=gen, dtype=F64)
        call = f"from_eps(eps_hat, x_t, t, {_sde_name(sde)})"
        out = _call(from_eps, eps_hat.clone(), x_t.clone(), t.clone(), sde, name=call)
        expect(isinstance(out, (tuple, list)) and len(out) == 2,
               f"{call} should return a pair (score, x0_hat), got {type(out).__name__}")
        hint = ("On the VE-SDE alpha = 1 and sigma reaches 50: VP-only formulas such as alpha = sqrt(1 - sigma^2) "
                "give NaN or inf there; take alpha and sigma from sde.mean_coeff(t) and sde.std(t).") if _is_ve(sde) else ""
        score = expect_tensor(out[0], name=f"the score from {call}", shape=(B, d), nan_hint=hint)
        x0_hat = expect_tensor(out[1], name=f"x0_hat from {call}", shape=(B, d), nan_hint=hint)
        a, s = _coeffs(sde, t)
        where = f"{call}: "
        if not allclose(score, -eps_hat / s):
            wrong = [
                (-eps_hat / s**2, "divide by sigma, not sigma^2: the kernel score is -(x_t - alpha x0)/sigma^2 "
                                  "= -sigma eps/sigma^2 = -eps/sigma."),
                (eps_hat / s, "sign error: the score points from x_t back towards the data, s = -eps/sigma."),
                (-s * eps_hat, "that is the inverse map (eps = -sigma s); the score is s = -eps/sigma."),
                (-eps_hat, "you forgot to divide by sigma(t): s = -eps/sigma, which is large at small t."),
                (-eps_hat / a, "the score is -eps/sigma(t) (the noise's standard deviation), not -eps/alpha(t)."),
            ]
            reject_mistakes(score, wrong, same=allclose, prefix=where)
            raise WrongAnswer(where + "the score is wrong: it should be -eps_hat / sigma(t), with sigma = sde.std(t) "
                              "broadcast over the coordinates.")
        if not allclose(x0_hat, (x_t - s * eps_hat) / a):
            wrong = [
                (x_t - s * eps_hat, "you forgot to divide by alpha(t): x_t = alpha x0 + sigma eps gives "
                                    "x0 = (x_t - sigma eps)/alpha."),
                ((x_t - eps_hat) / a, "the noise enters x_t as sigma(t) * eps: subtract sigma * eps_hat."),
                ((x_t + s * eps_hat) / a, "sign error: x0 = (x_t - sigma eps)/alpha (subtract the noise)."),
                ((x_t - s * eps_hat) / a**2, "sde.mean_coeff(t) is already alpha(t) = sqrt(alpha_bar); divide by "
                                             "alpha once."),
                ((x_t - s * eps_hat) * a, "divide by alpha(t), do not multiply: x_t = alpha x0 + sigma eps."),
                (a * x_t - s * eps_hat, "that looks like the v-parameterisation; invert x_t = alpha x0 + sigma eps: "
                                        "x0 = (x_t - sigma eps)/alpha."),
                (x_t / a, "you ignored the noise: x0 = (x_t - sigma eps_hat)/alpha."),
                ((x_t - s**2 * eps_hat) / a, "the noise is scaled by the std sigma(t), not by the variance sigma^2."),
            ]
            reject_mistakes(x0_hat, wrong, same=allclose, prefix=where)
            if _is_ve(sde):
                raise WrongAnswer(where + "x0_hat is right for the VP-SDE but not for the VE-SDE: take alpha and sigma "
                                  "from sde.mean_coeff(t) and sde.std(t) instead of VP-only formulas such as "
                                  "alpha = sqrt(1 - sigma^2).")
            raise WrongAnswer(where + "x0_hat is wrong: it should be (x_t - sigma(t) eps_hat)/alpha(t).")
    return correct("s = -eps/sigma, x0_hat = (x_t - sigma eps)/alpha: one output, two readings.")


# ---------------------------------------------------------------- Tweedie's denoiser for Gaussian data
_DEN_CASES = [(VPSDE(0.1, 20.0), 0.8, 0.5), (VPSDE(0.1, 20.0), -1.0, 2.0), (VESDE(0.01, 50.0), 1.5, 0.7)]


def check_gaussian_denoiser(gaussian_denoiser) -> str:
    r"""Check `gaussian_denoiser(x_t, t, sde, m0, s0) -> E[x_0 | x_t]` for 1-D data $x_0 \sim \mathcal N(m_0, s_0^2)$:
    $m_0 + \alpha s_0^2 (x_t - \alpha m_0)/(\alpha^2 s_0^2 + \sigma^2)$, which is Tweedie's formula with the exact score
    of $p_t = \mathcal N(\alpha m_0, \alpha^2 s_0^2 + \sigma^2)$. `x_t` is `(B, 1)`, `t` is `(B,)`, `m0`, `s0`
    floats."""
    expect_callable(gaussian_denoiser, name="gaussian_denoiser")
    gen = torch.Generator().manual_seed(5)
    B = 12
    for sde, m0, s0 in _DEN_CASES:
        t = 0.1 + 0.8 * torch.rand(B, generator=gen, dtype=F64)
        a, s = _coeffs(sde, t)
        x_t = a * m0 + torch.sqrt(a**2 * s0**2 + s**2) * torch.randn((B, 1), generator=gen, dtype=F64)
        call = f"gaussian_denoiser(x_t, t, {_sde_name(sde)}, m0={m0}, s0={s0})"
        got = expect_tensor(_call(gaussian_denoiser, x_t.clone(), t.clone(), sde, m0, s0, name=call),
                            name=f"the result of {call}", shape=(B, 1))
        v = a**2 * s0**2 + s**2
        score = -(x_t - a * m0) / v
        want = m0 + a * s0**2 * (x_t - a * m0) / v
        if allclose(got, want):
            continue
        where = f"{call}: "
        v_vp = a**2 * s0**2 + 1 - a**2                         # sigma^2 written as 1 - alpha^2 (VP only)
        if _is_ve(sde) and allclose(got, m0 + a * s0**2 * (x_t - a * m0) / v_vp):
            raise WrongAnswer(where + "right for the VP-SDE but not for the VE-SDE: sigma^2 = 1 - alpha^2 holds only "
                              "for VP; take sigma from sde.std(t).")
        wrong = [
            (x_t / a, "x_t / alpha only undoes the scaling and ignores the noise. The posterior mean shrinks towards "
                      "the prior: Tweedie adds sigma^2 * score before dividing by alpha."),
            (torch.full_like(x_t, m0), "you returned the prior mean m0: the score in Tweedie's formula is the marginal "
                                       "score of p_t = N(alpha m0, alpha^2 s0^2 + sigma^2), not the kernel's score "
                                       "-(x_t - alpha m0)/sigma^2 at x0 = m0."),
            (m0 + s0**2 * (x_t - a * m0) / v, "the gain is alpha s0^2 / (alpha^2 s0^2 + sigma^2): you dropped the "
                                              "alpha in the numerator (Cov(x0, x_t) = alpha s0^2)."),
            (m0 + a * s0**2 * (x_t - a * m0) / (s0**2 + s**2), "the variance of x_t is alpha^2 s0^2 + sigma^2: the "
                                                               "data variance is scaled by alpha^2."),
            (m0 + a * s0 * (x_t - a * m0) / v, "s0 is the data's standard deviation; the formula needs the variance "
                                               "s0^2."),
            (m0 + a * s0**2 * (x_t - a * m0) / (a**2 * s0**2 + s), "sigma^2 (the kernel's variance), not sigma, goes "
                                                                   "into the variance of x_t."),
            (x_t + s**2 * score, "you returned alpha * E[x0 | x_t] = x_t + sigma^2 score: divide by alpha(t)."),
            ((x_t - s**2 * score) / a, "sign error: Tweedie's formula is (x_t + sigma^2 * score)/alpha."),
            ((x_t + s * score) / a, "Tweedie's formula multiplies the score by the variance sigma^2, not by sigma."),
            (score, "that is the score of p_t; the exercise asks for the denoised E[x0 | x_t]."),
            (a * m0 + a * s0**2 * (x_t - a * m0) / v, "the prior mean is m0 (at time 0), not alpha m0."),
        ]
        reject_mistakes(got, wrong, same=allclose, prefix=where)
        if _is_ve(sde):
            raise WrongAnswer(where + "right for the VP-SDE but not for the VE-SDE: take alpha and sigma from "
                              "sde.mean_coeff(t) and sde.std(t) instead of VP-only formulas.")
        raise WrongAnswer(where + "E[x0 | x_t] should be m0 + alpha s0^2 (x_t - alpha m0)/(alpha^2 s0^2 + sigma^2).")
    return correct("Tweedie: E[x0 | x_t] = (x_t + sigma^2 score)/alpha, the Wiener filter here.")
