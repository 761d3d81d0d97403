"""Figures shared by the chapters: a house style, 2-D scatters, score fields, paths, and animations."""
from __future__ import annotations

from typing import Callable

import matplotlib.pyplot as plt
import numpy as np
import torch

__all__ = ["style", "to_numpy", "scatter2d", "paths", "score_field", "animate", "band"]


def style() -> None:
    """The book's figure style: readable fonts, light grid, compact layout, SVG-sharp PNGs."""
    plt.rcParams.update({
        "figure.figsize": (6.4, 4.0), "figure.dpi": 100, "savefig.dpi": 150,
        "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False, "axes.spines.right": False,
        "font.size": 11, "axes.titlesize": 12, "legend.frameon": False,
        "figure.constrained_layout.use": True, "animation.html": "jshtml", "animation.embed_limit": 30.0,
    })


def to_numpy(x) -> np.ndarray:
    """Tensor or array-like to a NumPy array on the CPU."""
    if torch.is_tensor(x):
        return x.detach().float().cpu().numpy()
    return np.asarray(x)


def scatter2d(x, ax=None, *, s: float = 2.0, alpha: float = 0.5, lim: float | None = 3.0, title: str = "", **kw):
    """Scatter plot of `(N, 2)` points with equal aspect and optional symmetric limits."""
    ax = ax or plt.gca()
    x = to_numpy(x)
    ax.scatter(x[:, 0], x[:, 1], s=s, alpha=alpha, linewidths=0, **kw)
    ax.set_aspect("equal")
    if lim is not None:
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
    if title:
        ax.set_title(title)
    return ax


def paths(ts, xs, ax=None, *, n: int = 20, alpha: float = 0.6, lw: float = 0.8, xlabel: str = "time t",
          ylabel: str = "x(t)", **kw):
    """Plot the first `n` of a batch of 1-D paths `xs` of shape `(len(ts), B)` against `ts`."""
    ax = ax or plt.gca()
    ts, xs = to_numpy(ts), to_numpy(xs)
    ax.plot(ts, xs[:, :n], alpha=alpha, lw=lw, **kw)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return ax


def band(ts, mean, std, ax=None, *, k: float = 2.0, label: str = "", color=None, **kw):
    """A mean curve with a shaded band of `k` standard deviations."""
    ax = ax or plt.gca()
    ts, mean, std = to_numpy(ts), to_numpy(mean), to_numpy(std)
    (line,) = ax.plot(ts, mean, label=label, color=color, **kw)
    ax.fill_between(ts, mean - k * std, mean + k * std, alpha=0.2, color=line.get_color())
    return ax


def score_field(score_fn: Callable, t: float, ax=None, *, lim: float = 3.0, n: int = 21, normalize: bool = True,
                **kw):
    """Quiver plot of a 2-D score field `score_fn(x, t)` on an `n x n` grid over `[-lim, lim]^2`."""
    ax = ax or plt.gca()
    g = torch.linspace(-lim, lim, n)
    xx, yy = torch.meshgrid(g, g, indexing="xy")
    pts = torch.stack([xx.flatten(), yy.flatten()], 1)
    with torch.no_grad():
        v = score_fn(pts, torch.full((pts.shape[0],), float(t)))
    v = to_numpy(v)
    if normalize:
        v = v / (np.linalg.norm(v, axis=1, keepdims=True) + 1e-12)
    ax.quiver(to_numpy(pts[:, 0]), to_numpy(pts[:, 1]), v[:, 0], v[:, 1], angles="xy", **kw)
    ax.set_aspect("equal")
    return ax


def animate(draw: Callable[[plt.Figure, int], None], n_frames: int, *, figsize=(6.4, 4.0), interval: int = 150,
            html: bool = True):
    """Build an animation whose frame `i` is drawn by `draw(fig, i)` (the figure is cleared between frames).

    Returns the HTML of a self-contained JavaScript player with a slider (works in a static page, no
    kernel needed) when `html=True`, else the `FuncAnimation`.
    """
    from matplotlib.animation import FuncAnimation

    fig = plt.figure(figsize=figsize)

    def update(i):
        fig.clear()
        draw(fig, i)
        return []

    anim = FuncAnimation(fig, update, frames=n_frames, interval=interval, blit=False)
    if not html:
        return anim
    from IPython.display import HTML

    out = HTML(anim.to_jshtml(default_mode="once"))
    plt.close(fig)
    return out

