r"""Toy data: Gaussian mixtures with exact (noised) densities and scores, and 2-D point clouds.

A Gaussian mixture stays a Gaussian mixture under every SDE of `sdelab.sde`: the kernel
$p_{0t}(x_t \mid x_0) = \mathcal N(\alpha(t) x_0, \sigma(t)^2 I)$ turns component
$\mathcal N(\mu_k, s_k^2 I)$ into $\mathcal N(\alpha\mu_k, (\alpha^2 s_k^2 + \sigma^2) I)$, so
$p_t$ and its score are known in closed form at every $t$ (chapters "Training" and "Sampling"):

$\nabla_x \log p_t(x) = \sum_k r_k(x)\,\bigl(-(x - \alpha\mu_k)/(\alpha^2 s_k^2 + \sigma^2)\bigr)$,
with responsibilities $r_k(x) \propto w_k\,\mathcal N(x; \alpha\mu_k, (\alpha^2 s_k^2 + \sigma^2) I)$.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from .utils import append_dims, check_batch, check_finite
from .validate import as_samples

__all__ = ["GaussianMixture", "ring", "grid_mixture", "moons", "swiss_roll", "checkerboard", "DATASETS"]


def _check_n(n) -> int:
    if isinstance(n, bool) or not float(n).is_integer() or int(n) < 0:
        raise ValueError(f"n (the number of samples) must be an integer >= 0, got {n!r}")
    return int(n)


def _as_tensor(v, dtype) -> torch.Tensor:
    if torch.is_tensor(v):
        return v.detach().to(dtype=dtype, device="cpu")
    return torch.as_tensor(np.asarray(v, dtype=np.float64), dtype=dtype)


class GaussianMixture:
    r"""Isotropic Gaussian mixture $p(x) = \sum_k w_k\,\mathcal N(x; \mu_k, s_k^2 I)$ in $\mathbb R^d$.

    Args:
        means: `(K, d)` component means (a 1-D array of length K means K one-dimensional components).
        stds: one float for all components, or `(K,)` per-component standard deviations, all > 0.
        weights: `(K,)` non-negative weights with a positive sum (normalised here); uniform if None.
        dtype: dtype of the stored parameters and of `sample`'s output. Defaults to the dtype of a
            floating `means` tensor, otherwise `torch.get_default_dtype()`.

    Densities and scores accept `x` of shape `(B, d)` or any `(B, ...)` with `d` entries per sample
    (e.g. `(B, 1, 28, 28)` with `d = 784`) and are computed in `x`'s dtype on `x`'s device.
    """

    def __init__(self, means, stds, weights=None, *, dtype: torch.dtype | None = None):
        if dtype is None:
            dtype = means.dtype if torch.is_tensor(means) and means.is_floating_point() else torch.get_default_dtype()
        mu = _as_tensor(means, dtype)
        if mu.ndim == 1:
            mu = mu[:, None]
        if mu.ndim != 2 or mu.shape[0] < 1 or mu.shape[1] < 1:
            raise ValueError(f"means must have shape (K, d) with K >= 1 components, got shape {tuple(mu.shape)}")
        check_finite("means", mu)
        K = mu.shape[0]
        s = _as_tensor(stds, dtype)
        if s.ndim == 0:
            s = s.expand(K).clone()
        if s.shape != (K,):
            raise ValueError(f"stds must be a float or have shape (K,) = ({K},), got shape {tuple(s.shape)}")
        if not (torch.isfinite(s).all() and (s > 0).all()):
            raise ValueError(f"stds must be finite and > 0, got {s.tolist()}")
        w = torch.ones(K, dtype=dtype) if weights is None else _as_tensor(weights, dtype)
        if w.shape != (K,):
            raise ValueError(f"weights must have shape (K,) = ({K},), got shape {tuple(w.shape)}")
        if not (torch.isfinite(w).all() and (w >= 0).all() and w.sum() > 0):
            raise ValueError(f"weights must be finite, >= 0 and have a positive sum, got {w.tolist()}")
        self.means, self.stds, self.weights = mu, s, w / w.sum()

    @property
    def n_components(self) -> int:
        return self.means.shape[0]

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    @property
    def dtype(self) -> torch.dtype:
        return self.means.dtype

    @property
    def mean(self) -> torch.Tensor:
        r"""$E[x] = \sum_k w_k \mu_k$, shape `(d,)`."""
        return self.weights @ self.means

    @property
    def cov(self) -> torch.Tensor:
        r"""$\mathrm{Cov}[x] = \sum_k w_k (s_k^2 I + \mu_k\mu_k^\top) - E[x] E[x]^\top$, shape `(d, d)`."""
        second = (self.weights[:, None] * self.means).T @ self.means
        second = second + (self.weights @ self.stds**2) * torch.eye(self.dim, dtype=self.dtype)
        m = self.mean
        return second - torch.outer(m, m)

    def __repr__(self) -> str:
        return f"GaussianMixture(K={self.n_components}, d={self.dim}, dtype={self.dtype})"

    # ------------------------------------------------------------------ sampling
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw `n` samples (on the CPU, with `generator`); returns `(n, d)` in `self.dtype`."""
        n = _check_n(n)
        k = torch.multinomial(self.weights.double(), n, replacement=True, generator=generator) if n else \
            torch.zeros(0, dtype=torch.long)
        z = torch.randn((n, self.dim), generator=generator, dtype=self.dtype)
        return self.means[k] + self.stds[k, None] * z

    # ------------------------------------------------------------------ densities and scores
    def _flat(self, x: torch.Tensor, name: str = "x") -> torch.Tensor:
        if x.ndim < 2 or x[0].numel() != self.dim:
            raise ValueError(f"{name} must have shape (B, ...) with {self.dim} entries per sample, got {tuple(x.shape)}")
        return x.reshape(x.shape[0], -1)

    def _params(self, x: torch.Tensor):
        return tuple(p.to(device=x.device, dtype=x.dtype) for p in (self.means, self.stds, self.weights))

    def _log_terms(self, xf: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor):
        """Per-component log terms $\\log w_k + \\log\\mathcal N(x; \\alpha\\mu_k, v_k)$ `(B, K)` and $v_k$ `(B, K)`."""
        mu, s, w = self._params(xf)
        var = alpha[:, None] ** 2 * s**2 + sigma[:, None] ** 2  # (B, K)
        diff = xf[:, None, :] - alpha[:, None, None] * mu[None]  # (B, K, d)
        sq = diff.pow(2).sum(-1)
        logn = -0.5 * self.dim * torch.log(2 * math.pi * var) - 0.5 * sq / var
        return torch.log(w) + logn, var

    def _responsibilities(self, xf: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor):
        """Posterior weights $r_k(x)$ `(B, K)` and variances $v_k$ `(B, K)`, finite for any finite `x`.

        The squared distances are computed on directions rescaled by the largest coordinate $m$ of $x - \\alpha\\mu_k$,
        and the softmax is shifted by the smallest $|x - \\alpha\\mu_k|^2/v_k$, so $|x| \\ge 10^{20}$ (whose square
        overflows float32) still gives weights (all on the nearest components) instead of NaN."""
        mu, s, w = self._params(xf)
        var = alpha[:, None] ** 2 * s**2 + sigma[:, None] ** 2  # (B, K)
        diff = xf[:, None, :] - alpha[:, None, None] * mu[None]  # (B, K, d)
        m = diff.abs().amax(dim=(1, 2)).clamp_min(1.0)  # (B,)
        q = (diff / m[:, None, None]).pow(2).sum(-1) / var  # |x - alpha mu_k|^2 / (m^2 v_k)
        gap = q - q.min(dim=1, keepdim=True).values  # >= 0, zero at the nearest component
        scaled = torch.nan_to_num(0.5 * gap * m[:, None] ** 2, nan=0.0)  # 0 * inf -> 0; keeps the gradient at ties
        logits = torch.log(w) - 0.5 * self.dim * torch.log(var) - scaled
        return torch.softmax(logits, dim=1), var

    def _coeffs(self, x: torch.Tensor, t, sde):
        t = sde._t(t, x)
        check_batch(x, t)
        t = t.expand(x.shape[0]) if t.ndim == 0 or t.shape[0] == 1 else t
        return sde._mean_coeff(t), sde._std(t)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact $\\log p(x)$ of the mixture; `x`: `(B, ...)`, returns `(B,)`."""
        x = as_samples("x", x, min_ndim=2, dtype=self.dtype)
        xf = self._flat(x)
        one = torch.ones(xf.shape[0], dtype=xf.dtype, device=xf.device)
        return torch.logsumexp(self._log_terms(xf, one, 0 * one)[0], dim=1)

    def log_prob_t(self, x: torch.Tensor, t, sde) -> torch.Tensor:
        r"""$\log p_t(x)$ of the mixture pushed through `sde`'s kernel to time `t` (scalar or `(B,)`); returns `(B,)`."""
        x = as_samples("x", x, min_ndim=2, dtype=self.dtype)
        xf = self._flat(x)
        alpha, sigma = self._coeffs(x, t, sde)
        return torch.logsumexp(self._log_terms(xf, alpha, sigma)[0], dim=1)

    # ------------------------------------------------------------------ one-dimensional laws
    def _check_1d(self, what: str) -> None:
        if self.dim != 1:
            raise ValueError(f"{what} needs a one-dimensional mixture (d = 1), this one has d = {self.dim}")

    def cdf(self, x) -> torch.Tensor:
        r"""$F(x) = \sum_k w_k \Phi((x - \mu_k)/s_k)$ of a 1-D mixture; `x`: `(B,)` or `(B, 1)`, returns `(B,)`."""
        self._check_1d("cdf")
        x = torch.as_tensor(x, dtype=self.dtype).reshape(-1)
        mu, s, w = self._params(x)
        return (w * torch.special.ndtr((x[:, None] - mu[:, 0]) / s)).sum(1)

    def quantiles(self, n: int) -> torch.Tensor:
        r"""The `n` quantiles $F^{-1}((j + \tfrac12)/n)$, $j = 0..n-1$, of a 1-D mixture: an evenly spread "sample"
        `(n, 1)` whose empirical law is as close to the mixture as `n` points can be (bisection to float64 precision)."""
        self._check_1d("quantiles")
        n = _check_n(n)
        u = (torch.arange(n, dtype=torch.float64) + 0.5) / n
        lo_x, hi_x = self._support()
        lo, hi = torch.full_like(u, lo_x), torch.full_like(u, hi_x)
        for _ in range(80):
            mid = 0.5 * (lo + hi)
            below = self.cdf(mid).double() < u
            lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
        return (0.5 * (lo + hi))[:, None].to(self.dtype)

    def _support(self, k: float = 12.0) -> tuple[float, float]:
        """An interval outside which a 1-D mixture has mass below about 1e-32: the components' means -+ k stds."""
        return (self.means[:, 0] - k * self.stds).min().item(), (self.means[:, 0] + k * self.stds).max().item()

    def wasserstein_1(self, x, points: int = 100_001) -> float:
        r"""$W_1$ between the samples `x` (`(n,)` or `(n, 1)`) and this 1-D mixture's exact law:
        $\int |F_n(y) - F(y)|\,dy$ by the trapezoid rule on `points` grid points spanning the samples and the
        mixture's support. No second sample, hence no Monte-Carlo floor of its own."""
        from .metrics import wasserstein_1d_to_cdf

        self._check_1d("wasserstein_1")
        return wasserstein_1d_to_cdf(x, self.cdf, *self._support(), points=points).item()

    def score(self, x: torch.Tensor, t=None, sde=None) -> torch.Tensor:
        r"""Exact score $\nabla_x \log p_t(x) = \sum_k r_k(x)\,(-(x - \alpha\mu_k)/(\alpha^2 s_k^2 + \sigma^2))$.

        Args:
            x: `(B, ...)` points with `d` entries per sample.
            t: scalar or `(B,)` times; with `sde=None` (and `t=None`) the score of the data itself.
            sde: an `sdelab.sde.SDE` supplying $\alpha(t)$ and $\sigma(t)$.
        Returns:
            `(B, ...)`, the shape of `x`. Responsibilities use a log-sum-exp, so far-away `x` stays finite.
        """
        x = as_samples("x", x, min_ndim=2, dtype=self.dtype)
        xf = self._flat(x)
        if sde is None:
            if t is not None:
                raise ValueError("score: pass sde together with t (or neither for the data score)")
            alpha = torch.ones(xf.shape[0], dtype=xf.dtype, device=xf.device)
            sigma = 0 * alpha
        else:
            if t is None:
                raise ValueError("score: pass t together with sde (or neither for the data score)")
            alpha, sigma = self._coeffs(x, t, sde)
        r, var = self._responsibilities(xf, alpha, sigma)  # (B, K)
        c = r / var
        mu = self._params(xf)[0]
        out = -xf * c.sum(1, keepdim=True) + alpha[:, None] * (c @ mu)
        return out.reshape(x.shape)

    def score_fn(self, sde) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """A callable `(x, t) -> score` of the noised mixture, the `score_fn` every sampler takes."""
        return lambda x, t: self.score(x, t, sde)

    def eps_fn(self, sde) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        r"""A callable `(x, t) -> eps_hat`, the exact noise prediction $\hat\varepsilon = -\sigma(t)\nabla_x\log p_t(x)$."""
        def eps(x, t):
            return -append_dims(sde.std(t), x.ndim) * self.score(x, t, sde)
        return eps

    def noised(self, t: float, sde) -> "GaussianMixture":
        r"""The mixture $p_t$ at one time `t`: means $\alpha\mu_k$, stds $\sqrt{\alpha^2 s_k^2 + \sigma^2}$."""
        t = sde._t(t, self.means)
        if t.numel() != 1:
            raise ValueError(f"noised: t must be a single time, got shape {tuple(t.shape)}")
        alpha, sigma = sde._mean_coeff(t.reshape(())), sde._std(t.reshape(()))
        return GaussianMixture(alpha * self.means, torch.sqrt(alpha**2 * self.stds**2 + sigma**2), self.weights,
                               dtype=self.dtype)


# ---------------------------------------------------------------------- mixtures
def ring(n_modes: int = 8, radius: float = 2.0, std: float = 0.1, *, dtype: torch.dtype | None = None) -> GaussianMixture:
    r"""`n_modes` equal-weight modes at angles $2\pi k/K$ on a circle of `radius`, each $\mathcal N(\cdot, s^2 I)$."""
    if int(n_modes) < 1:
        raise ValueError(f"n_modes must be an integer >= 1, got {n_modes!r}")
    ang = torch.arange(int(n_modes), dtype=torch.float64) * 2 * math.pi / int(n_modes)
    means = radius * torch.stack([torch.cos(ang), torch.sin(ang)], 1)
    return GaussianMixture(means, std, dtype=dtype or torch.get_default_dtype())


def grid_mixture(n_side: int = 3, spacing: float = 2.0, std: float = 0.1, *,
                 dtype: torch.dtype | None = None) -> GaussianMixture:
    """`n_side**2` equal-weight modes on a square grid with `spacing`, centred at the origin."""
    if int(n_side) < 1:
        raise ValueError(f"n_side must be an integer >= 1, got {n_side!r}")
    c = (torch.arange(int(n_side), dtype=torch.float64) - (int(n_side) - 1) / 2) * spacing
    means = torch.cartesian_prod(c, c)
    return GaussianMixture(means.reshape(-1, 2), std, dtype=dtype or torch.get_default_dtype())


# ---------------------------------------------------------------------- 2-D point clouds
def _noise(x: torch.Tensor, noise: float, generator) -> torch.Tensor:
    if not (math.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise must be a finite number >= 0, got {noise!r}")
    return x + noise * torch.randn(x.shape, generator=generator, dtype=x.dtype)


def _shuffle(x: torch.Tensor, generator) -> torch.Tensor:
    return x[torch.randperm(x.shape[0], generator=generator)]


def moons(n: int, noise: float = 0.05, generator: torch.Generator | None = None) -> torch.Tensor:
    r"""Two interleaved half circles (as scikit-learn's `make_moons`), centred and scaled to about unit std.

    The raw moons $(\cos\theta, \sin\theta)$ and $(1 - \cos\theta, \tfrac12 - \sin\theta)$, $\theta \sim U[0, \pi]$,
    are shifted by $(-\tfrac12, -\tfrac14)$ and multiplied by 1.4; then isotropic noise of std `noise` is
    added. Returns `(n, 2)`.
    """
    n = _check_n(n)
    n_out = n - n // 2
    th = math.pi * torch.rand(n, generator=generator)
    outer = torch.stack([torch.cos(th[:n_out]), torch.sin(th[:n_out])], 1)
    inner = torch.stack([1 - torch.cos(th[n_out:]), 0.5 - torch.sin(th[n_out:])], 1)
    x = (torch.cat([outer, inner]) - torch.tensor([0.5, 0.25])) * 1.4
    return _shuffle(_noise(x, noise, generator), generator)


def swiss_roll(n: int, noise: float = 0.05, generator: torch.Generator | None = None) -> torch.Tensor:
    r"""2-D Swiss roll $u(\cos u, \sin u)/6$ with $u = \tfrac32\pi(1 + 2v)$, $v \sim U[0, 1]$, plus noise of std `noise`.

    The factor 1/6 makes each coordinate's std about 1. Returns `(n, 2)`.
    """
    n = _check_n(n)
    u = 1.5 * math.pi * (1 + 2 * torch.rand(n, generator=generator))
    x = torch.stack([u * torch.cos(u), u * torch.sin(u)], 1) / 6
    return _noise(x, noise, generator)


def checkerboard(n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Uniform on the 8 dark cells of a 4 x 4 checkerboard on $[-2, 2]^2$ (cells of side 1). Returns `(n, 2)`."""
    n = _check_n(n)
    cells = torch.tensor([(i, j) for i in range(4) for j in range(4) if (i + j) % 2 == 0], dtype=torch.float32)
    k = torch.randint(0, len(cells), (n,), generator=generator)
    return cells[k] - 2 + torch.rand((n, 2), generator=generator)


def _ring(n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    return ring().sample(n, generator=generator)


DATASETS: dict[str, Callable[..., torch.Tensor]] = {
    "ring": _ring,
    "moons": lambda n, generator=None: moons(n, generator=generator),
    "swiss_roll": lambda n, generator=None: swiss_roll(n, generator=generator),
    "checkerboard": checkerboard,
}
"""Name -> sampler `fn(n, generator=None) -> (n, 2)` tensor, for the command line and the chapters."""
