r"""Checkers for the chapter "MNIST lab".

* `check_inpaint_step(fn)`: `fn(x, x0, mask, t, sde, generator=None)` replaces the known pixels (`mask == 1`)
  of the reverse-time state `x` by a fresh forward sample $\alpha(t)\,x_0 + \sigma(t)\,z$ and keeps the others.
* `check_cfg(fn)`: `fn(eps_cond, eps_uncond, w)` is classifier-free guidance,
  $(1 + w)\,\varepsilon_c - w\,\varepsilon_u$.
* `check_frechet(fn)`: `fn(mu1, cov1, mu2, cov2)` is the squared Fréchet distance between two Gaussians,
  $\|\mu_1 - \mu_2\|^2 + \mathrm{tr}\bigl(\Sigma_1 + \Sigma_2 - 2(\Sigma_1^{1/2}\Sigma_2\Sigma_1^{1/2})^{1/2}\bigr)$.

Each returns a `Feedback` message when the answer is right and raises `WrongAnswer` naming the mistake otherwise.
"""
from __future__ import annotations

import math

import torch

from ._core import WrongAnswer, as_tensor64, correct, expect, expect_callable, expect_number
from ._core import call_answer as _call

__all__ = ["check_inpaint_step", "check_cfg", "check_frechet"]

F64 = torch.float64


# ------------------------------------------------------------------ inpainting replacement
def check_inpaint_step(fn) -> str:
    r"""Check `fn(x, x0, mask, t, sde, generator=None)`: known pixels (`mask == 1`) become
    $\alpha(t)\,x_0 + \sigma(t)\,z$ with fresh $z \sim \mathcal N(0, I)$, unknown pixels (`mask == 0`) are unchanged.

    Tested on the default VP-SDE at $t = 0.15$ ($\alpha = 0.887$, $\sigma = 0.461$; at $t = 0.3$, where
    $\alpha = 0.630$, $\sigma = 0.777$, the wrong noise scales $\sigma^2$ and $\sqrt{1-\alpha}$ nearly coincide and
    could not be told apart) with 4,000 images of 2x2 pixels: the mean and standard deviation of the known pixels
    within 5 standard errors.
    """
    from ..sde import VPSDE

    expect_callable(fn, name="your inpainting step")
    sde, t, M = VPSDE(), 0.15, 4000
    alpha, sigma = float(sde.mean_coeff(torch.tensor(t))), float(sde.std(torch.tensor(t)))
    g = torch.Generator().manual_seed(0)
    x = torch.randn(M, 1, 2, 2, generator=g) * 3.0 + 5.0      # the current reverse-time state: far from x0
    x0 = torch.rand(M, 1, 2, 2, generator=g) * 2 - 1            # clean images in [-1, 1]
    mask = torch.zeros(1, 1, 2, 2)
    mask[..., 0, :] = 1.0                                       # the top row is known
    mask = mask.expand(M, 1, 2, 2).clone()
    step = "your inpainting step"
    out = as_tensor64(_call(fn, x.clone(), x0.clone(), mask.clone(), t, sde,
                            generator=torch.Generator().manual_seed(1), name=step), step)
    expect(tuple(out.shape) == tuple(x.shape),
           f"Your step should return a tensor shaped like x, {tuple(x.shape)}; got {tuple(out.shape)}.")
    expect(bool(torch.isfinite(out).all()), "Your step returned NaN or inf values.")
    known, unknown = mask.bool(), ~mask.bool()
    xd, x0d = x.to(F64), x0.to(F64)
    if torch.allclose(out[known], xd[known]) and not torch.allclose(out[unknown], xd[unknown]):
        raise WrongAnswer("Mask polarity: your step changed the unknown pixels (mask == 0) and kept the known ones. "
                          "mask == 1 marks the pixels you know; replace those, keep x where mask == 0, e.g. "
                          "mask * known + (1 - mask) * x.")
    expect(not torch.allclose(out[known], xd[known]),
           "Your step leaves the known pixels (mask == 1) as they were: replace them by the noised observation "
           "alpha(t) x0 + sigma(t) z.")
    expect(torch.allclose(out[unknown], xd[unknown]),
           "Your step changed the unknown pixels (mask == 0): the sampler fills those in; only the known pixels "
           "(mask == 1) are replaced.")
    got = out[known]
    if torch.allclose(got, x0d[known]):
        raise WrongAnswer("You pasted the clean pixels x0 into a noisy state. At time t the sampler's state has "
                          "noise level sigma(t), so the known pixels must be noised to the same level: "
                          "alpha(t) x0 + sigma(t) z, a draw from the forward marginal q(x_t | x0).")
    resid = got - alpha * x0d[known]
    if resid.abs().max() < 1e-6:
        raise WrongAnswer("The known pixels are alpha(t) x0 exactly: the noise is missing. The forward process at "
                          "time t gives alpha(t) x0 + sigma(t) z with fresh z ~ N(0, I); without z the known region "
                          "is too smooth and does not match the noise level of the rest of the image.")
    xk = x0d[known]
    slope = float(((resid - resid.mean()) * (xk - xk.mean())).sum() / (xk - xk.mean()).pow(2).sum())
    se_slope = sigma / math.sqrt(float((xk - xk.mean()).pow(2).sum()))
    if abs(slope - (1 - alpha)) <= 5 * se_slope:
        raise WrongAnswer("The known pixels are x0 + sigma(t) z: the mean is missing the factor alpha(t). The forward "
                          "marginal is N(alpha(t) x0, sigma(t)^2 I), so use alpha(t) * x0 + sigma(t) * z.")
    expect(abs(slope) <= 5 * se_slope,
           f"The known pixels should have mean alpha(t) x0 with alpha({t}) = {alpha:.3f}; yours scale x0 by about "
           f"{alpha + slope:.3f}. Use sde.mean_coeff(t) and sde.std(t).")
    n = resid.numel()
    sd = float(resid.std())
    mean = float(resid.mean())
    if abs(sd - sigma**2) < 0.03 and abs(sigma**2 - sigma) > 0.1:
        raise WrongAnswer(f"The noise on the known pixels has standard deviation {sd:.3f} = sigma(t)^2: multiply z by "
                          f"the standard deviation sigma(t) = {sigma:.3f}, not by the variance.")
    if abs(sd - 1.0) < 0.03:
        raise WrongAnswer("The noise on the known pixels has standard deviation 1: scale z by sigma(t) "
                          f"(= {sigma:.3f} at t = {t}).")
    se_sd = sigma / math.sqrt(2 * (n - 1))
    expect(abs(sd - sigma) <= 5 * se_sd and abs(mean) <= 5 * sigma / math.sqrt(n),
           f"At t = {t} the known pixels should be alpha x0 + sigma z with alpha = {alpha:.3f}, sigma = {sigma:.3f}: "
           f"after subtracting alpha x0 they should have mean 0 and standard deviation {sigma:.3f}; yours have "
           f"{mean:.3f} and {sd:.3f}.")
    z = resid / sigma
    rows = z.reshape(M, 2)
    corr = float(torch.corrcoef(rows.T)[0, 1])
    expect(abs(corr) <= 5 / math.sqrt(M),
           f"The noise of two different known pixels has correlation {corr:.2f}: draw an independent z for every "
           "pixel (torch.randn(x.shape, generator=generator)).")
    again = as_tensor64(_call(fn, x.clone(), x0.clone(), mask.clone(), t, sde,
                              generator=torch.Generator().manual_seed(1), name=step), step)
    expect(torch.equal(out, again),
           "Two calls with generators seeded alike gave different results: draw z with the generator argument, "
           "torch.randn(x.shape, generator=generator).")
    return correct("Known pixels are a fresh draw of alpha(t) x0 + sigma(t) z.")


# ------------------------------------------------------------------ classifier-free guidance
def check_cfg(fn) -> str:
    r"""Check `fn(eps_cond, eps_uncond, w) -> (1 + w) eps_cond - w eps_uncond` on random tensors and several $w$."""
    expect_callable(fn, name="your guidance function")
    g = torch.Generator().manual_seed(0)
    c, u = torch.randn(4, 1, 3, 3, generator=g), torch.randn(4, 1, 3, 3, generator=g)
    results = {}
    for w in (0.0, 0.5, 2.0):
        call = f"your guidance function with w = {w}"
        out = as_tensor64(_call(fn, c.clone(), u.clone(), w, name=call), call)
        expect(tuple(out.shape) == tuple(c.shape),
               f"The guided prediction should have the shape of eps_cond, {tuple(c.shape)}; got {tuple(out.shape)}.")
        results[w] = out
    cd, ud = c.to(F64), u.to(F64)
    mistakes = [
        (lambda w: (1 + w) * cd - w * ud, None),
        (lambda w: (1 + w) * ud - w * cd, "The conditional and unconditional predictions are swapped: guidance "
                                          "pushes *towards* the class, (1 + w) eps_cond - w eps_uncond, i.e. "
                                          "eps_cond + w (eps_cond - eps_uncond)."),
        (lambda w: w * cd - (w - 1) * ud, "You used the convention eps_uncond + w (eps_cond - eps_uncond), whose "
                                          "weight is shifted by one: in this book (and in sdelab.param.eps_fn) "
                                          "w = 0 is the plain conditional model, so the combination is "
                                          "(1 + w) eps_cond - w eps_uncond."),
        (lambda w: w * cd - w * ud, "With w = 0 your combination vanishes: it is w (eps_cond - eps_uncond), the "
                                    "guidance direction alone. Add it to the conditional prediction: "
                                    "eps_cond + w (eps_cond - eps_uncond)."),
        (lambda w: (1 + w) * cd, "The unconditional prediction is missing: the guided prediction is "
                                 "(1 + w) eps_cond - w eps_uncond; scaling eps_cond alone is not guidance."),
        (lambda w: (1 + w) * cd + w * ud, "Sign: the unconditional prediction is subtracted, "
                                          "(1 + w) eps_cond - w eps_uncond."),
        (lambda w: (1 - w) * cd + w * ud, "That interpolates between the two predictions (w moves you towards the "
                                          "unconditional model). Guidance extrapolates beyond the conditional one: "
                                          "(1 + w) eps_cond - w eps_uncond."),
    ]
    for ref, msg in mistakes:
        if all(torch.allclose(results[w], ref(w), atol=1e-5) for w in results):
            if msg is None:
                return correct("(1 + w) eps_cond - w eps_uncond; w = 0 is the conditional model.")
            raise WrongAnswer(msg)
    if torch.allclose(results[0.0], cd, atol=1e-5):
        raise WrongAnswer("Right at w = 0 (the conditional prediction) but not for w > 0: the guided prediction is "
                          "(1 + w) eps_cond - w eps_uncond.")
    raise WrongAnswer("Your combination is not (1 + w) eps_cond - w eps_uncond. With w = 0 it should return eps_cond "
                      "unchanged; with w = 2 it should be 3 eps_cond - 2 eps_uncond.")


# ------------------------------------------------------------------ Fréchet distance
def _sqrtm(c: torch.Tensor) -> torch.Tensor:
    w, v = torch.linalg.eigh((c + c.T) / 2)
    return (v * w.clamp_min(0).sqrt()) @ v.T


def _fd(mu1, c1, mu2, c2, *, sqrt=True, factor=2.0, squared_mean=True) -> float:
    s1 = _sqrtm(c1)
    m = s1 @ c2 @ s1
    tr = torch.linalg.eigvalsh((m + m.T) / 2).clamp_min(0)
    tr = tr.sqrt().sum() if sqrt else tr.sum()
    d = (mu1 - mu2).pow(2).sum()
    d = d if squared_mean else d.sqrt()
    return float(d + torch.trace(c1) + torch.trace(c2) - factor * tr)


def check_frechet(fn) -> str:
    r"""Check `fn(mu1, cov1, mu2, cov2)` returns
    $\|\mu_1 - \mu_2\|^2 + \mathrm{tr}\,\Sigma_1 + \mathrm{tr}\,\Sigma_2 - 2\,\mathrm{tr}(\Sigma_1^{1/2}\Sigma_2\Sigma_1^{1/2})^{1/2}$
    (relative tolerance 1e-5) on three pairs of 3-D Gaussians (float64 inputs), including non-commuting covariances.
    """
    expect_callable(fn, name="your Fréchet distance")
    g = torch.Generator().manual_seed(0)
    cases = []
    for k in range(3):
        a = torch.randn(3, 3, generator=g, dtype=F64)
        b = torch.randn(3, 3, generator=g, dtype=F64)
        c1, c2 = a @ a.T + 0.5 * torch.eye(3, dtype=F64), b @ b.T + 0.3 * torch.eye(3, dtype=F64)
        mu1, mu2 = torch.randn(3, generator=g, dtype=F64), torch.randn(3, generator=g, dtype=F64) * 2
        cases.append((mu1, c1, mu2, c2))
    name = "your Fréchet distance"
    got = []
    for mu1, c1, mu2, c2 in cases:
        val = expect_number(_call(fn, mu1.clone(), c1.clone(), mu2.clone(), c2.clone(), name=name), name=name)
        expect(math.isfinite(val), f"Your distance is {val}: it should be a finite number.")
        got.append(val)

    def near(ref):
        return all(math.isclose(v, r, rel_tol=1e-5, abs_tol=1e-8) for v, r in zip(got, ref))

    ref = [_fd(*c) for c in cases]
    if near(ref):
        # the same Gaussian twice must give 0
        mu1, c1, _, _ = cases[0]
        zero = expect_number(_call(fn, mu1.clone(), c1.clone(), mu1.clone(), c1.clone(), name=name), name=name)
        expect(abs(zero) < 1e-6, f"The distance of a Gaussian to itself should be 0, yours is {zero:.3g}.")
        return correct("That is the squared Fréchet distance (the FID on classifier features).")
    mistakes = [
        ([_fd(*c, sqrt=False) for c in cases], "The cross term needs a matrix square root: it is "
         "2 tr (Sigma_1^(1/2) Sigma_2 Sigma_1^(1/2))^(1/2), not 2 tr(Sigma_1 Sigma_2). Take the square root of the "
         "eigenvalues of the symmetric matrix Sigma_1^(1/2) Sigma_2 Sigma_1^(1/2) before summing them."),
        ([_fd(*c, factor=-2.0) for c in cases], "Sign: the cross term is subtracted, "
         "tr Sigma_1 + tr Sigma_2 - 2 tr(...)^(1/2); with a plus sign two identical Gaussians would not be at "
         "distance 0."),
        ([_fd(*c, factor=1.0) for c in cases], "The cross term has a factor 2: tr Sigma_1 + tr Sigma_2 - "
         "2 tr(Sigma_1^(1/2) Sigma_2 Sigma_1^(1/2))^(1/2) (in 1-D this is (s_1 - s_2)^2 = s_1^2 + s_2^2 - 2 s_1 s_2)."),
        ([_fd(*c, squared_mean=False) for c in cases], "The mean term is the squared distance ||mu_1 - mu_2||^2, "
         "not the distance ||mu_1 - mu_2||."),
        ([math.sqrt(max(r, 0.0)) for r in ref], "You returned the square root: the FID is the *squared* Fréchet "
         "(2-Wasserstein) distance, ||mu_1 - mu_2||^2 + tr(...), without a final square root."),
    ]
    elementwise = []
    for mu1, c1, mu2, c2 in cases:
        elementwise.append(float((mu1 - mu2).pow(2).sum() + torch.trace(c1) + torch.trace(c2)
                                 - 2 * torch.trace((c1 * c2).abs().sqrt())))
    mistakes.append((elementwise, "The square root must be a matrix square root, not an elementwise one: "
                                  "(Sigma_1 * Sigma_2).sqrt() takes the root of each entry. Use an eigendecomposition "
                                  "(torch.linalg.eigh) or scipy.linalg.sqrtm."))
    for target, msg in mistakes:
        if near(target):
            raise WrongAnswer(msg)
    mu1, c1, mu2, c2 = cases[0]
    raise WrongAnswer(f"For the first test pair the squared Fréchet distance is {ref[0]:.5g}, yours is {got[0]:.5g}. "
                      "It is ||mu_1 - mu_2||^2 + tr Sigma_1 + tr Sigma_2 - 2 tr(Sigma_1^(1/2) Sigma_2 "
                      "Sigma_1^(1/2))^(1/2).")
