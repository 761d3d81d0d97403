r"""A small U-Net $\varepsilon_\theta(x, t, y)$ for 1x28x28 images (MNIST), small enough to train on a CPU in quick mode.

Layout (Ho et al., 2020, scaled down): a 3x3 input convolution, then for each resolution `num_res_blocks` residual
blocks and a stride-2 down-sampling (28 -> 14 -> 7 for three levels), a middle block (residual, self-attention,
residual), and the mirror path up with skip connections; GroupNorm + SiLU everywhere. The time embedding (plus the
class embedding for a conditional model) is added to the feature maps inside every residual block.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .embeddings import LabelEmbedding, TimeEmbedding, _check_labels_used, _check_t
from .utils import append_dims

__all__ = ["UNet", "ResBlock"]


def _zero(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ResBlock(nn.Module):
    r"""$h = \mathrm{Conv}(\mathrm{SiLU}(\mathrm{GN}(x))) + W e$; $\mathrm{out} = \mathrm{skip}(x) + \mathrm{Conv}(\mathrm{Drop}(\mathrm{SiLU}(\mathrm{GN}(h))))$.

    Shapes: `x` `(B, in_ch, H, W)`, `emb` `(B, emb_dim)` -> `(B, out_ch, H, W)`. The last convolution starts at zero,
    so every block starts as the identity (or a 1x1 projection when the channel count changes).
    """

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, groups: int = 8, dropout: float = 0.0):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(groups, in_ch), nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb = nn.Linear(emb_dim, out_ch)
        self.norm2, self.drop = nn.GroupNorm(groups, out_ch), nn.Dropout(dropout)
        self.conv2 = _zero(nn.Conv2d(out_ch, out_ch, 3, padding=1))
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + append_dims(self.emb(emb), h.ndim)
        h = self.conv2(self.drop(F.silu(self.norm2(h))))
        return self.skip(x) + h


class _Attention(nn.Module):
    """Multi-head self-attention over the pixels of a feature map, residual, output projection starting at zero."""

    def __init__(self, ch: int, heads: int, groups: int):
        super().__init__()
        if ch % heads:
            raise ValueError(f"attention_heads must divide the channel count {ch}, got {heads}")
        self.heads, self.norm = heads, nn.GroupNorm(groups, ch)
        self.qkv, self.proj = nn.Conv2d(ch, 3 * ch, 1), _zero(nn.Conv2d(ch, ch, 1))

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        B, C, H, W = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(B, 3, self.heads, C // self.heads, H * W).transpose(-1, -2).unbind(1)
        h = F.scaled_dot_product_attention(q, k, v)  # (B, heads, HW, C/heads)
        return x + self.proj(h.transpose(-1, -2).reshape(B, C, H, W))


class UNet(nn.Module):
    r"""U-Net noise predictor $\varepsilon_\theta(x, t, y)$ for small images.

    Args:
        in_channels: image channels (1 for MNIST).
        channels: feature widths per resolution, e.g. `(32, 64, 128)` (28 -> 14 -> 7); `base` is the shorthand
            `channels = (base, 2 base, 4 base)`.
        num_res_blocks: residual blocks per resolution on the way down (one more on the way up).
        emb_dim: size of the time/label embedding (default `4 * channels[0]`).
        num_classes: `K` for class-conditional training with label `K` as the null class (classifier-free
            guidance); None for an unconditional model.
        groups: GroupNorm groups (must divide every width).
        dropout: dropout rate inside residual blocks.
        attention: self-attention in the middle block (at the lowest resolution).
        attention_heads: heads of that attention.
        embedding: `"sinusoidal"` or `"fourier"` time features.
    Shapes: `x` `(B, in_channels, H, W)` with H, W divisible by `2**(len(channels)-1)`, `t` `(B,)` or scalar,
        `y` `(B,)` long or None -> `(B, in_channels, H, W)`.
    """

    def __init__(self, in_channels: int = 1, channels: tuple[int, ...] | None = None, *, base: int | None = None,
                 num_res_blocks: int = 1, emb_dim: int | None = None, num_classes: int | None = None,
                 groups: int = 8, dropout: float = 0.0, attention: bool = True, attention_heads: int = 4,
                 embedding: str = "sinusoidal"):
        super().__init__()
        if channels is not None and base is not None:
            raise ValueError("give either channels or base, not both")
        if channels is None:
            b = 32 if base is None else base
            if int(b) != b or b < 1:
                raise ValueError(f"base must be an integer >= 1, got {base!r}")
            channels = (b, 2 * b, 4 * b)
        channels = tuple(int(c) for c in channels)
        if not channels or any(c < 1 or c % groups for c in channels):
            raise ValueError(f"channels must be a non-empty tuple of widths divisible by groups={groups}, got {channels}")
        for name, v, lo in (("in_channels", in_channels, 1), ("num_res_blocks", num_res_blocks, 1)):
            if int(v) != v or v < lo:
                raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout!r}")
        self.in_channels, self.channels, self.num_classes = int(in_channels), channels, num_classes
        emb_dim = int(emb_dim or 4 * channels[0])
        self.time = TimeEmbedding(max(channels[0], 4) // 2 * 2, emb_dim, embedding)
        self.label = LabelEmbedding(num_classes, emb_dim) if num_classes is not None else None

        def res(i, o):
            return ResBlock(i, o, emb_dim, groups, dropout)

        self.conv_in = nn.Conv2d(in_channels, channels[0], 3, padding=1)
        self.down, skips, ch = nn.ModuleList(), [channels[0]], channels[0]
        for level, c in enumerate(channels):
            for _ in range(num_res_blocks):
                self.down.append(res(ch, c))
                ch = c
                skips.append(ch)
            if level < len(channels) - 1:
                self.down.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1))
                skips.append(ch)
        mid = [res(ch, ch)] + ([_Attention(ch, attention_heads, groups)] if attention else []) + [res(ch, ch)]
        self.mid = nn.ModuleList(mid)
        self.up = nn.ModuleList()
        for level, c in reversed(list(enumerate(channels))):
            for _ in range(num_res_blocks + 1):
                self.up.append(res(ch + skips.pop(), c))
                ch = c
            if level > 0:
                self.up.append(nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(ch, ch, 3, padding=1)))
        self.norm_out = nn.GroupNorm(groups, ch)
        self.conv_out = _zero(nn.Conv2d(ch, in_channels, 3, padding=1))

    def forward(self, x: torch.Tensor, t, y: torch.Tensor | None = None) -> torch.Tensor:
        factor = 2 ** (len(self.channels) - 1)
        if x.ndim != 4 or x.shape[1] != self.in_channels or x.shape[2] % factor or x.shape[3] % factor:
            raise ValueError(f"x must have shape (B, {self.in_channels}, H, W) with H, W divisible by {factor}, "
                             f"got {tuple(x.shape)}")
        _check_labels_used(self.num_classes, y)
        t = _check_t(t, x)
        emb = self.time(t)
        if self.label is not None:
            emb = emb + self.label(y, x.shape[0], x.device)
        emb = F.silu(emb)
        h = self.conv_in(x)
        hs = [h]
        for m in self.down:
            h = m(h, emb) if isinstance(m, ResBlock) else m(h)
            hs.append(h)
        for m in self.mid:
            h = m(h, emb)
        for m in self.up:
            h = m(torch.cat([h, hs.pop()], dim=1), emb) if isinstance(m, ResBlock) else m(h)
        return self.conv_out(F.silu(self.norm_out(h)))
