r"""Embeddings of the time $t$ and of class labels, shared by the networks of `sdelab.nets` and `sdelab.unet`.

Class labels: `num_classes=K` gives a learned embedding of $K + 1$ entries; index $K$ is the *null* label used for
unconditional predictions (classifier-free guidance). `y=None`, or entries equal to `-1` or `K`, mean "no label".
"""
from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["SinusoidalEmbedding", "FourierEmbedding", "TimeEmbedding", "LabelEmbedding"]


def _check_t(t, x: torch.Tensor) -> torch.Tensor:
    """Return `t` as a float tensor of shape `(B,)` on `x`'s device (a scalar is broadcast)."""
    if not torch.is_tensor(t):
        t = torch.as_tensor(t, dtype=torch.get_default_dtype())
    t = t.to(device=x.device)
    if not t.is_floating_point():
        t = t.to(torch.get_default_dtype())
    if t.ndim == 0 or (t.ndim == 1 and t.shape[0] == 1):
        t = t.reshape(1).expand(x.shape[0])
    if t.ndim != 1 or t.shape[0] != x.shape[0]:
        raise ValueError(f"t must be a scalar or have shape (B,) with B = x.shape[0] = {x.shape[0]}, "
                         f"got shape {tuple(t.shape)}")
    return t


class SinusoidalEmbedding(nn.Module):
    r"""Transformer-style embedding of a time $t$ (Vaswani et al., 2017; Ho et al., 2020).

    $e(t) = [\sin(s t\,\omega_k), \cos(s t\,\omega_k)]_{k<d/2}$ with $\omega_k = P^{-k/(d/2-1)}$. The scale $s$
    (default 1000) stretches $t \in [0, 1]$ to the range of DDPM's step indices, so the fastest frequency
    resolves $\Delta t = 10^{-3}$.

    Args:
        dim: output size $d$ (even, >= 4).
        scale: multiplier $s$ applied to $t$ before the sines.
        max_period: $P$, the slowest period.
    Shapes: `t` `(B,)` -> `(B, dim)`.
    """

    def __init__(self, dim: int, scale: float = 1000.0, max_period: float = 10_000.0):
        super().__init__()
        if int(dim) != dim or dim < 4 or dim % 2:
            raise ValueError(f"dim must be an even integer >= 4, got {dim!r}")
        half = dim // 2
        freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / (half - 1))
        self.register_buffer("freqs", freqs, persistent=False)
        self.dim, self.scale = int(dim), float(scale)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        arg = self.scale * t.float()[:, None] * self.freqs[None]
        return torch.cat([torch.sin(arg), torch.cos(arg)], dim=1)


class FourierEmbedding(nn.Module):
    r"""Gaussian random Fourier features of $t$ (Tancik et al., 2020; Song et al., 2021).

    $e(t) = [\sin(2\pi W t), \cos(2\pi W t)]$ with fixed (not trained) $W \sim \mathcal N(0, s^2 I_{d/2})$.
    $W$ is a persistent buffer, so it is saved with the model; draw it reproducibly with `generator`.

    Args:
        dim: output size $d$ (even, >= 2).
        scale: the std $s$ of the frequencies.
        generator: CPU generator for $W$ (None: torch's global RNG).
    Shapes: `t` `(B,)` -> `(B, dim)`.
    """

    def __init__(self, dim: int, scale: float = 16.0, generator: torch.Generator | None = None):
        super().__init__()
        if int(dim) != dim or dim < 2 or dim % 2:
            raise ValueError(f"dim must be an even integer >= 2, got {dim!r}")
        if not scale > 0:
            raise ValueError(f"scale must be > 0, got {scale!r}")
        self.register_buffer("W", scale * torch.randn(dim // 2, generator=generator))
        self.dim = int(dim)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        arg = 2 * math.pi * t.float()[:, None] * self.W[None]
        return torch.cat([torch.sin(arg), torch.cos(arg)], dim=1)


class TimeEmbedding(nn.Module):
    """A fixed embedding of `t` (`"sinusoidal"` or `"fourier"`) followed by a two-layer SiLU MLP: `(B,)` -> `(B, out_dim)`."""

    KINDS = ("sinusoidal", "fourier")

    def __init__(self, dim: int, out_dim: int | None = None, kind: str = "sinusoidal"):
        super().__init__()
        if kind not in self.KINDS:
            raise ValueError(f"embedding must be one of {self.KINDS}, got {kind!r}")
        out_dim = out_dim or dim
        self.base = SinusoidalEmbedding(dim) if kind == "sinusoidal" else FourierEmbedding(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, out_dim), nn.SiLU(), nn.Linear(out_dim, out_dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.base(t).to(self.mlp[0].weight.dtype))


class LabelEmbedding(nn.Module):
    """Embedding of class labels `0..K-1` plus the null label `K` (also written `-1`, or `y=None`)."""

    def __init__(self, num_classes: int, dim: int):
        super().__init__()
        if int(num_classes) != num_classes or num_classes < 1:
            raise ValueError(f"num_classes must be an integer >= 1 (or None), got {num_classes!r}")
        self.num_classes = int(num_classes)
        self.emb = nn.Embedding(self.num_classes + 1, dim)

    def labels(self, y: torch.Tensor | None, batch: int, device) -> torch.Tensor:
        """Labels as a long tensor `(B,)` in `0..K` (K = null)."""
        K = self.num_classes
        if y is None:
            return torch.full((batch,), K, dtype=torch.long, device=device)
        y = torch.as_tensor(y, device=device)
        if y.ndim == 0:
            y = y.expand(batch)
        if y.ndim != 1 or y.shape[0] != batch or y.is_floating_point():
            raise ValueError(f"y must be an integer tensor of shape (B,) = ({batch},), got {tuple(y.shape)} {y.dtype}")
        if y.numel() and (y.min() < -1 or y.max() > K):
            raise ValueError(f"y must hold class labels in 0..{K - 1}, or -1 / {K} for the null label; "
                             f"got values in [{int(y.min())}, {int(y.max())}]")
        return torch.where(y < 0, torch.full_like(y, K), y).long()

    def forward(self, y: torch.Tensor | None, batch: int, device) -> torch.Tensor:
        return self.emb(self.labels(y, batch, device))


def _check_labels_used(num_classes: int | None, y) -> None:
    if num_classes is None and y is not None:
        raise ValueError("y was given but the network has no class embedding; build it with num_classes=K")
