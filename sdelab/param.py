r"""Parameterisations of a diffusion model's output: noise $\varepsilon$, score $s$, clean data $x_0$ and velocity $v$.

All four describe the same object once $x_t = \alpha(t)\,x_0 + \sigma(t)\,\varepsilon$ is fixed
(chapter "Training a score model"):

* score: $s = \nabla_x \log p_t(x_t) = -\varepsilon/\sigma$, so $\varepsilon = -\sigma s$;
* data: $x_0 = (x_t - \sigma\varepsilon)/\alpha$, so $\varepsilon = (x_t - \alpha x_0)/\sigma$;
* velocity (Salimans & Ho, 2022): $v = \alpha\varepsilon - \sigma x_0$, so with $r^2 = \alpha^2 + \sigma^2$
  ($= 1$ for VP), $\varepsilon = (\sigma x_t + \alpha v)/r^2$ and $x_0 = (\alpha x_t - \sigma v)/r^2$.

For a network these hold between the *predictions* ($\varepsilon_\theta$, $s_\theta$, ...), and, with the optimal
network, between the posterior means: $s^*(x_t) = -\mathbb E[\varepsilon \mid x_t]/\sigma$ and Tweedie's formula
$\mathbb E[x_0 \mid x_t] = (x_t + \sigma^2 \nabla\log p_t(x_t))/\alpha$.
The coefficients come from `sde.mean_coeff` and `sde.std`, so every affine SDE (VP, sub-VP, VE) is covered.
Every function takes `x` of shape `(B, ...)`, a prediction of the same shape and `t` a scalar or `(B,)`; NumPy arrays
and integer tensors are converted, anything else (complex, None, an empty batch, another shape) raises `ValueError`
naming the argument (`sdelab.validate`).
"""
from __future__ import annotations

from typing import Callable

import torch

from .utils import append_dims, check_batch
from .validate import as_samples, check_output

__all__ = ["PREDICTIONS", "convert", "eps_to_score", "score_to_eps", "eps_to_x0", "x0_to_eps", "eps_to_v",
           "v_to_eps", "tweedie_denoiser", "eps_fn", "score_fn", "prediction_of"]

PREDICTIONS = ("eps", "score", "x0", "v")


def _prep(pred, x, t, sde, name: str):
    """Validated `(pred, x, alpha, sigma)`: `x` and the prediction `name` real tensors `(B, ...)` of one shape
    (NumPy arrays and integer tensors are converted, see `sdelab.validate`)."""
    x = as_samples("x", x)
    pred = as_samples(name, pred, dtype=x.dtype)
    if pred.shape != x.shape:
        raise ValueError(f"{name} must have the shape of x {tuple(x.shape)}, got {tuple(pred.shape)}")
    return (pred, x, *_coeffs(sde, x, t))


def _coeffs(sde, x: torch.Tensor, t) -> tuple[torch.Tensor, torch.Tensor]:
    """$\\alpha(t)$ and $\\sigma(t)$ broadcastable against `x` (t validated against `[0, T]`)."""
    t = sde._t(t, x)
    check_batch(x, t)
    alpha, sigma = sde._mean_coeff(t), sde._std(t)
    if t.ndim:
        alpha, sigma = append_dims(alpha, x.ndim), append_dims(sigma, x.ndim)
    return alpha, sigma


def _positive_sigma(sigma: torch.Tensor, t, sde) -> torch.Tensor:
    """`sigma` unchanged, or `ValueError` naming `t` where $\\sigma(t) = 0$ (t = 0 for VP / sub-VP): dividing by it
    would give inf."""
    if not (sigma > 0).all():
        raise ValueError(f"t must lie in (0, T] = (0, {sde.T:g}] here, where sigma(t) > 0 (use t >= a small eps "
                         f"such as 1e-3): sigma(t) = 0 at t = {sde._t(t).min().item():g}, and dividing by it gives inf")
    return sigma


def eps_to_score(eps: torch.Tensor, x: torch.Tensor, t, sde) -> torch.Tensor:
    r"""$s = -\varepsilon/\sigma(t)$. Needs $\sigma(t) > 0$ (use $t \ge$ a small eps): `ValueError` naming `t` otherwise."""
    eps, x, _, sigma = _prep(eps, x, t, sde, "eps")
    return -eps / _positive_sigma(sigma, t, sde)


def score_to_eps(score: torch.Tensor, x: torch.Tensor, t, sde) -> torch.Tensor:
    r"""$\varepsilon = -\sigma(t)\,s$."""
    score, x, _, sigma = _prep(score, x, t, sde, "score")
    return -sigma * score


def eps_to_x0(eps: torch.Tensor, x: torch.Tensor, t, sde) -> torch.Tensor:
    r"""$x_0 = (x_t - \sigma(t)\,\varepsilon)/\alpha(t)$."""
    eps, x, alpha, sigma = _prep(eps, x, t, sde, "eps")
    return (x - sigma * eps) / alpha


def x0_to_eps(x0: torch.Tensor, x: torch.Tensor, t, sde) -> torch.Tensor:
    r"""$\varepsilon = (x_t - \alpha(t)\,x_0)/\sigma(t)$. Needs $\sigma(t) > 0$ (`ValueError` naming `t` otherwise)."""
    x0, x, alpha, sigma = _prep(x0, x, t, sde, "x0")
    return (x - alpha * x0) / _positive_sigma(sigma, t, sde)


def eps_to_v(eps: torch.Tensor, x: torch.Tensor, t, sde) -> torch.Tensor:
    r"""$v = \alpha\varepsilon - \sigma x_0$ with $x_0 = (x_t - \sigma\varepsilon)/\alpha$, i.e. $v = (r^2\varepsilon - \sigma x_t)/\alpha$, $r^2 = \alpha^2 + \sigma^2$."""
    eps, x, alpha, sigma = _prep(eps, x, t, sde, "eps")
    return ((alpha**2 + sigma**2) * eps - sigma * x) / alpha


def v_to_eps(v: torch.Tensor, x: torch.Tensor, t, sde) -> torch.Tensor:
    r"""$\varepsilon = (\sigma x_t + \alpha v)/(\alpha^2 + \sigma^2)$ (for VP the denominator is 1)."""
    v, x, alpha, sigma = _prep(v, x, t, sde, "v")
    return (sigma * x + alpha * v) / (alpha**2 + sigma**2)


_TO_EPS = {"eps": lambda p, x, t, sde: p, "score": score_to_eps, "x0": x0_to_eps, "v": v_to_eps}
_FROM_EPS = {"eps": lambda p, x, t, sde: p, "score": eps_to_score, "x0": eps_to_x0, "v": eps_to_v}


def _check_prediction(name: str, value: str) -> str:
    if value not in PREDICTIONS:
        raise ValueError(f"{name} must be one of {PREDICTIONS}, got {value!r}")
    return value


def convert(pred: torch.Tensor, x: torch.Tensor, t, sde, *, source: str, target: str) -> torch.Tensor:
    """Convert a prediction between `"eps"`, `"score"`, `"x0"` and `"v"` (through $\\varepsilon$; formulas above).

    Args:
        pred: the prediction, `(B, ...)`.
        x: the noisy input $x_t$, `(B, ...)`.
        t: scalar or `(B,)` in $[0, T]$.
        sde: an `sdelab.sde.SDE`.
        source, target: parameterisations, each one of `PREDICTIONS`.
    Returns:
        `(B, ...)`.
    """
    _check_prediction("source", source)
    _check_prediction("target", target)
    pred, x, _, _ = _prep(pred, x, t, sde, "pred")
    if source == target:
        return pred
    return _FROM_EPS[target](_TO_EPS[source](pred, x, t, sde), x, t, sde)


def tweedie_denoiser(score: torch.Tensor, x: torch.Tensor, t, sde) -> torch.Tensor:
    r"""Tweedie's formula $\mathbb E[x_0 \mid x_t] = (x_t + \sigma(t)^2\,\nabla_x\log p_t(x_t))/\alpha(t)$.

    Exact when `score` is the true score of $p_t$ (for a network: its best estimate of the posterior mean).

    Args:
        score: $\nabla_x \log p_t(x_t)$, `(B, ...)`.
        x: $x_t$, `(B, ...)`.
        t: scalar or `(B,)`.
        sde: the forward SDE.
    Returns:
        the posterior mean of $x_0$, `(B, ...)`.
    """
    score, x, alpha, sigma = _prep(score, x, t, sde, "score")
    return (x + sigma**2 * score) / alpha


def _labels(y, batch: int, device) -> torch.Tensor | None:
    if y is None:
        return None
    y = torch.as_tensor(y, device=device)
    if y.ndim == 0:
        return y.expand(batch)
    if y.ndim != 1 or y.shape[0] != batch:
        raise ValueError(f"y must be an int or a tensor of shape (B,) = ({batch},), got shape {tuple(y.shape)}")
    return y


def prediction_of(model, prediction: str | None = None) -> str:
    """`prediction` if given, else what `model` says it predicts (`model.prediction`, set by `sdelab.pretrained`,
    `hub.load_file` and `sdelab.train.train`), else `"eps"`."""
    return _check_prediction("prediction", prediction or getattr(model, "prediction", None) or "eps")


def eps_fn(model: Callable, sde, prediction: str | None = None, y=None,
           guidance: float | None = None) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    r"""Wrap a network into $\varepsilon(x, t)$, optionally class-conditional with classifier-free guidance.

    With guidance weight $w$ (Ho & Salimans, 2022):
    $\tilde\varepsilon = (1 + w)\,\varepsilon_\theta(x, t, y) - w\,\varepsilon_\theta(x, t, \varnothing)$, where
    $\varnothing$ is the null label (`y = -1`); $w = 0$ is the plain conditional model. Both passes run as one
    batch of size `2B`. The returned function does not change grad mode or `model.train()/eval()`: call it
    under `torch.no_grad()` and on `model.eval()` (or the EMA copy) when sampling.

    Args:
        model: called as `model(x, t)`, or `model(x, t, y)` when `y` is given.
        sde: the SDE the model was trained with.
        prediction: what the model outputs, one of `PREDICTIONS`; None: `prediction_of(model)`.
        y: class label(s): an int or a long tensor `(B,)`; None for an unconditional model.
        guidance: $w \ge 0$, or None for no guidance (needs `y`).
    Returns:
        `f(x, t) -> (B, ...)` with `t` a scalar or `(B,)`.
    """
    prediction = prediction_of(model, prediction)
    if guidance is not None:
        if y is None:
            raise ValueError("guidance needs class labels y (classifier-free guidance mixes y with the null label)")
        if not float(guidance) >= 0:
            raise ValueError(f"guidance must be a number >= 0 (or None), got {guidance!r}")
        guidance = float(guidance)

    def f(x: torch.Tensor, t) -> torch.Tensor:
        x = as_samples("x", x)
        t = sde._t(t, x)
        check_batch(x, t)
        t = t.expand(x.shape[0]) if t.ndim == 0 or t.shape[0] == 1 else t
        labels = _labels(y, x.shape[0], x.device)
        if labels is None:
            out = check_output("model", model(x, t), x.shape)
        elif guidance is None:
            out = check_output("model", model(x, t, labels), x.shape)
        else:
            both = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([labels, torch.full_like(labels, -1)]))
            cond, uncond = check_output("model", both, (2 * x.shape[0], *x.shape[1:])).chunk(2)
            out = (1 + guidance) * cond - guidance * uncond
        return convert(out, x, t, sde, source=prediction, target="eps")

    return f


def score_fn(model: Callable, sde, prediction: str | None = None, y=None,
             guidance: float | None = None) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    r"""Wrap a network into the score $s_\theta(x, t) = -\tilde\varepsilon(x, t)/\sigma(t)$ that samplers take.

    Same arguments as `eps_fn` (guidance is applied to $\varepsilon$, equivalently to the score, since the
    conversion is affine in the prediction).
    """
    eps = eps_fn(model, sde, prediction, y, guidance)

    def f(x: torch.Tensor, t) -> torch.Tensor:
        return eps_to_score(eps(x, t), x, t, sde)

    return f
