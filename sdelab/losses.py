r"""Denoising score matching (Vincent, 2011; Song et al., 2021) with a choice of weighting $\lambda(t)$.

$$\mathcal L(\theta) = \mathbb E_{t \sim U(t_\epsilon, T)}\,\mathbb E_{x_0, \varepsilon}\,
\lambda(t)\,\big\|s_\theta(x_t, t) + \varepsilon/\sigma(t)\big\|^2, \qquad x_t = \alpha(t)\,x_0 + \sigma(t)\,\varepsilon,$$

since $\nabla_{x_t}\log p_{0t}(x_t \mid x_0) = -\varepsilon/\sigma(t)$ (chapter "Training a score model").
Here $\|\cdot\|^2$ is the *mean* of the squares over the data coordinates (so the loss is O(1) in any dimension;
multiply by $d$ for the sum). Whatever the network predicts, its output is mapped to the score residual through
`sdelab.param`, and the loss is evaluated in the network's own space with the equivalent weight, which avoids
dividing by a tiny $\sigma$:

* `eps`: residual $r = \varepsilon_\theta - \varepsilon$, loss $\lambda/\sigma^2\,\|r\|^2$;
* `score`: residual $r = s_\theta + \varepsilon/\sigma$, loss $\lambda\,\|r\|^2$;
* `x0`: residual $r = x_{0,\theta} - x_0$, loss $\lambda\,\alpha^2/\sigma^4\,\|r\|^2$;
* `v`: residual $r = v_\theta - v$ with $v = \alpha\varepsilon - \sigma x_0$, loss
  $\lambda\,\alpha^2/(\sigma^2 (\alpha^2+\sigma^2)^2)\,\|r\|^2$.
"""
from __future__ import annotations

from typing import Callable

import torch

from .param import PREDICTIONS
from .utils import append_dims

__all__ = ["dsm_loss", "WEIGHTINGS"]

WEIGHTINGS = ("sigma2", "likelihood", "none", "v")


def _weight_over_sigma2(sde, t: torch.Tensor, sigma: torch.Tensor, weighting) -> torch.Tensor:
    r"""$\lambda(t)/\sigma(t)^2$, the weight of $\|\varepsilon_\theta - \varepsilon\|^2$ (exactly 1 for `"sigma2"`)."""
    if callable(weighting):
        lam = torch.as_tensor(weighting(t), dtype=sigma.dtype, device=sigma.device)
        if lam.shape not in ((), t.shape):
            raise ValueError(f"a weighting callable must return shape {tuple(t.shape)}, got {tuple(lam.shape)}")
        return lam / sigma**2
    if weighting == "sigma2":
        return torch.ones_like(sigma)
    if weighting == "likelihood":
        return sde._diffusion(t) ** 2 / sigma**2
    if weighting == "v":
        alpha = sde._mean_coeff(t)
        return (alpha**2 + sigma**2) ** 2 / alpha**2
    return 1 / sigma**2


def dsm_loss(model: Callable, sde, x0: torch.Tensor, *, weighting: str | Callable = "sigma2",
             prediction: str = "eps", t_eps: float = 1e-5, generator: torch.Generator | None = None,
             y: torch.Tensor | None = None, p_uncond: float = 0.0, t: torch.Tensor | None = None,
             reduce: bool = True) -> torch.Tensor:
    r"""Denoising score-matching loss $\lambda(t)\,\|s_\theta(x_t, t) + \varepsilon/\sigma(t)\|^2$ (module docstring).

    Weightings:

    * `"sigma2"`: $\lambda = \sigma(t)^2$. With `prediction="eps"` ($s_\theta = -\varepsilon_\theta/\sigma$) this is
      *exactly* $\|\varepsilon_\theta(x_t, t) - \varepsilon\|^2$, Ho et al.'s $L_\text{simple}$, with no reweighting at
      all (the source note's "up to weighting" holds only relative to the variational bound; erratum 9).
    * `"likelihood"`: $\lambda = g(t)^2$, for which the integrated loss bounds the KL divergence / negative
      log-likelihood (Song et al., 2021, "Maximum likelihood training of score-based diffusion models").
    * `"none"`: $\lambda = 1$, the raw score MSE. Even the exact score leaves a loss of about $1/\sigma(t)^2$ per
      coordinate near $t = 0$, so the expected loss diverges like $\ln(1/t_\epsilon)$ as $t_\epsilon \to 0$
      (erratum 10): keep $t_\epsilon > 0$.
    * `"v"`: $\lambda = \sigma^2(\alpha^2 + \sigma^2)^2/\alpha^2$. With `prediction="v"` this is *exactly*
      $\|v_\theta - v\|^2$, $v = \alpha\varepsilon - \sigma x_0$ (Salimans and Ho's v-MSE): since
      $\varepsilon = (\sigma x_t + \alpha v)/(\alpha^2 + \sigma^2)$, an error in $v$ is an error in $\varepsilon$
      scaled by $\alpha/(\alpha^2 + \sigma^2)$. Near $t = T$, where $\alpha \to 0$, it weights the noise error by
      $1/\alpha^2$: exactly where an $\varepsilon$-network's implied $\hat x_0 = (x_t - \sigma\hat\varepsilon)/\alpha$
      is worst (chapter "MNIST lab").
    * a callable `lam(t) -> (B,)`.

    Draws, in this order and on the CPU with `generator`: $t \sim U(t_\epsilon, T)$ (unless `t` is given),
    $\varepsilon \sim \mathcal N(0, I)$, then the label-dropout coin flips (if `p_uncond > 0`).

    Args:
        model: network called as `model(x_t, t)` or, with labels, `model(x_t, t, y)`; returns `(B, ...)`.
        sde: the forward SDE (provides $\alpha$, $\sigma$, $g$).
        x0: a batch of data, `(B, ...)`.
        weighting: `"sigma2"`, `"likelihood"`, `"none"`, `"v"` or a callable $\lambda(t)$.
        prediction: what the model outputs: `"eps"`, `"score"`, `"x0"` or `"v"` (see `sdelab.param`).
        t_eps: smallest time, $0 < t_\epsilon < T$.
        generator: CPU generator for all draws.
        y: class labels `(B,)` for a conditional model (None: unconditional call).
        p_uncond: probability of replacing a label by the null label `-1` (classifier-free guidance training).
        t: optional fixed times `(B,)` in $(0, T]$ instead of drawing them.
        reduce: return the batch mean (a scalar) if True, else the per-sample losses `(B,)`.
    Returns:
        scalar, or `(B,)` when `reduce=False`.
    """
    if prediction not in PREDICTIONS:
        raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")
    if not (callable(weighting) or weighting in WEIGHTINGS):
        raise ValueError(f"weighting must be one of {WEIGHTINGS} or a callable lam(t), got {weighting!r}")
    if not torch.is_tensor(x0) or x0.ndim < 2 or x0.shape[0] < 1 or not x0.is_floating_point():
        raise ValueError(f"x0 must be a float tensor of shape (B, ...) with B >= 1 and at least 2 dims, "
                         f"got {getattr(x0, 'shape', type(x0))}")
    if not 0 < float(t_eps) < sde.T:
        raise ValueError(f"t_eps must lie in (0, T) = (0, {sde.T:g}), got {t_eps!r}")
    if not 0 <= float(p_uncond) <= 1:
        raise ValueError(f"p_uncond must lie in [0, 1], got {p_uncond!r}")
    if p_uncond > 0 and y is None:
        raise ValueError("p_uncond > 0 needs labels y")
    B, dev, dt = x0.shape[0], x0.device, x0.dtype
    if t is None:
        t = t_eps + (sde.T - t_eps) * torch.rand(B, generator=generator, dtype=dt)
        t = t.to(dev)
    else:
        t = sde._t(t, x0)
        if t.shape != (B,) or (t <= 0).any():
            raise ValueError(f"t must have shape (B,) = ({B},) with entries in (0, T], got shape {tuple(t.shape)}")
    eps = torch.randn(x0.shape, generator=generator, dtype=dt).to(dev)
    if y is not None:
        y = torch.as_tensor(y, device=dev)
        if y.shape != (B,):
            raise ValueError(f"y must have shape (B,) = ({B},), got {tuple(y.shape)}")
        if p_uncond > 0:
            drop = (torch.rand(B, generator=generator) < p_uncond).to(dev)
            y = torch.where(drop, torch.full_like(y, -1), y)
    alpha, sigma = sde._mean_coeff(t), sde._std(t)
    a, s = append_dims(alpha, x0.ndim), append_dims(sigma, x0.ndim)
    xt = a * x0 + s * eps
    out = model(xt, t) if y is None else model(xt, t, y)
    if not torch.is_tensor(out):
        raise ValueError(f"the model must return a tensor of the shape of x0 {tuple(x0.shape)}, got "
                         f"{type(out).__name__}")
    if out.shape != x0.shape:
        raise ValueError(f"the model must return the shape of x0 {tuple(x0.shape)}, got {tuple(out.shape)}")
    out = out.to(dt)
    w = _weight_over_sigma2(sde, t, sigma, weighting)  # weight of |eps_theta - eps|^2
    if prediction == "eps":
        r, c2 = out - eps, None
    elif prediction == "score":
        r, c2 = out + eps / s, sigma**2
    elif prediction == "x0":
        r, c2 = out - x0, alpha**2 / sigma**2
    else:
        r, c2 = out - (a * eps - s * x0), alpha**2 / (alpha**2 + sigma**2) ** 2
    if c2 is not None:
        w = w * c2
    per_sample = w * r.pow(2).flatten(1).mean(1)
    return per_sample.mean() if reduce else per_sample
