r"""Networks for $\varepsilon_\theta(x, t)$: an MLP for 2-D data and (in `sdelab.unet`) a small U-Net; their time and
label embeddings are in `sdelab.embeddings` (re-exported here).

Every network here is called as `net(x, t)` or `net(x, t, y)` with `x` of shape `(B, ...)`, `t` a float tensor of
shape `(B,)` (or a scalar) holding times in $[0, T]$, and optional class labels `y` of shape `(B,)`. By default the
output is the noise prediction $\varepsilon_\theta(x_t, t)$, the same shape as `x`; `sdelab.param` turns it into a
score $s_\theta = -\varepsilon_\theta/\sigma(t)$ (chapter "Training a score model").

Class labels: `num_classes=K` adds a learned embedding of $K + 1$ entries; index $K$ is the *null* label used for
unconditional predictions (classifier-free guidance). `y=None`, or entries equal to `-1` or `K`, mean "no label".
"""
from __future__ import annotations

import torch
from torch import nn

from .embeddings import (FourierEmbedding, LabelEmbedding, SinusoidalEmbedding, TimeEmbedding,  # noqa: F401
                         _check_labels_used, _check_t)
from .unet import UNet  # noqa: F401  (re-exported; sdelab.unet imports only sdelab.embeddings)

__all__ = ["SinusoidalEmbedding", "FourierEmbedding", "TimeEmbedding", "LabelEmbedding", "MLPScore", "UNet"]


class MLPScore(nn.Module):
    r"""Residual MLP $\varepsilon_\theta(x, t)$ for low-dimensional data (the 2-D toy sets).

    $h_0 = W_{in} x + e(t)$, then `depth` blocks $h_{i+1} = h_i + W_i\,\mathrm{SiLU}(\mathrm{LN}(h_i) + e_i(t))$
    with a per-block projection $e_i$ of the time (and label) embedding, and $\varepsilon_\theta = W_{out}\,\mathrm{SiLU}(h)$.

    Args:
        dim: data dimension $d$.
        hidden: width of the hidden layers.
        depth: number of residual blocks (>= 1).
        emb_dim: size of the time embedding.
        embedding: `"sinusoidal"` or `"fourier"`.
        num_classes: `K` for a class-conditional model (label `K` = null), None for unconditional.
    Shapes: `x` `(B, dim)`, `t` `(B,)`, `y` `(B,)` or None -> `(B, dim)`.
    """

    def __init__(self, dim: int = 2, hidden: int = 128, depth: int = 3, emb_dim: int = 64,
                 embedding: str = "sinusoidal", num_classes: int | None = None):
        super().__init__()
        for name, v, lo in (("dim", dim, 1), ("hidden", hidden, 1), ("depth", depth, 1), ("emb_dim", emb_dim, 4)):
            if int(v) != v or v < lo:
                raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
        self.dim, self.num_classes = int(dim), num_classes
        self.time = TimeEmbedding(emb_dim, hidden, embedding)
        self.label = LabelEmbedding(num_classes, hidden) if num_classes is not None else None
        self.inp = nn.Linear(dim, hidden)
        self.norms = nn.ModuleList(nn.LayerNorm(hidden) for _ in range(depth))
        self.embs = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(depth))
        self.layers = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(depth))
        self.out = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor, t, y: torch.Tensor | None = None) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (B, {self.dim}), got {tuple(x.shape)}")
        _check_labels_used(self.num_classes, y)
        t = _check_t(t, x)
        e = self.time(t)
        if self.label is not None:
            e = e + self.label(y, x.shape[0], x.device)
        e = nn.functional.silu(e)
        h = self.inp(x) + e
        for norm, emb, layer in zip(self.norms, self.embs, self.layers):
            h = h + layer(nn.functional.silu(norm(h) + emb(e)))
        return self.out(nn.functional.silu(h))
