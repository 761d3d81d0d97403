"""Figures shared by the chapters: a house style, 2-D scatters, score fields, paths, and animations."""
from __future__ import annotations

from typing import Callable

import matplotlib.pyplot as plt
import numpy as np
import torch

__all__ = ["style", "to_numpy", "scatter2d", "paths", "score_field", "animate", "player_html", "band"]


def style() -> None:
    """The book's figure style: readable fonts, light grid, compact layout, SVG-sharp PNGs."""
    plt.rcParams.update({
        "figure.figsize": (6.4, 4.0), "figure.dpi": 100, "savefig.dpi": 150,
        "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False, "axes.spines.right": False,
        # 12 pt on a 7 in figure scaled to the 784 px column is ~19 px; legends and ticks ~17 px.
        "font.size": 12, "axes.titlesize": 13, "axes.labelsize": 12, "legend.fontsize": 11,
        "xtick.labelsize": 11, "ytick.labelsize": 11, "legend.frameon": False,
        # White figures: they read on the dark theme too (the page gives images a light backdrop).
        "figure.facecolor": "white", "savefig.facecolor": "white",
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


_PLAYER_JS = """(function () {
  var root = document.getElementById("%(id)s");
  if (!root || root.dataset.ready) return;
  root.dataset.ready = "1";
  var frames = JSON.parse(root.querySelector("script.sdelab-frames").textContent);
  var img = root.querySelector("img"), slider = root.querySelector("input"),
      label = root.querySelector(".sdelab-player-label"), play = root.querySelector("[data-act=play]"),
      timer = null, n = frames.length;
  function anim_step(i) {
    i = ((i %% n) + n) %% n;
    img.src = "data:%(mime)s;base64," + frames[i];
    slider.value = i; label.textContent = (i + 1) + " / " + n;
    img.alt = "frame " + (i + 1) + " of " + n;
    root.dataset.frame = i;
  }
  function stop() { clearInterval(timer); timer = null; play.textContent = "\\u25B6"; play.setAttribute("aria-label", "play"); }
  function start() {
    play.textContent = "\\u275A\\u275A"; play.setAttribute("aria-label", "pause");
    timer = setInterval(function () {
      var i = +slider.value + 1;
      if (i >= n) { stop(); return; }
      anim_step(i);
    }, %(interval)d);
  }
  slider.addEventListener("input", function () { stop(); anim_step(+slider.value); });
  root.querySelector("[data-act=prev]").addEventListener("click", function () { stop(); anim_step(+slider.value - 1); });
  root.querySelector("[data-act=next]").addEventListener("click", function () { stop(); anim_step(+slider.value + 1); });
  play.addEventListener("click", function () {
    if (timer) { stop(); return; }
    if (+slider.value >= n - 1) anim_step(0);
    start();
  });
  anim_step(0);
})();"""

_PLAYER_CSS = (".sdelab-player{max-width:100%%;margin:.5em 0}"
               ".sdelab-player img{display:block;max-width:100%%;height:auto;background:#fff}"
               ".sdelab-player-controls{display:flex;flex-wrap:wrap;align-items:center;gap:.4em;margin-top:.3em;"
               "max-width:%(width)dpx}"
               ".sdelab-player-controls input{flex:1 1 8em;min-width:6em}"
               ".sdelab-player-controls button{min-width:2.4em;padding:.1em .4em;font:inherit;line-height:1.4}")


def _frame(fig, fmt: str, quality: int) -> str:
    import base64
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, facecolor="white", pil_kwargs={"quality": quality})
    return base64.b64encode(buf.getvalue()).decode("ascii")


def player_html(frames: list[str], *, width: int, interval: int = 150, mime: str = "image/webp") -> str:
    """HTML of an offline, responsive player for base64 image `frames` (slider, play/pause, step buttons).

    The page needs no network: the buttons are Unicode characters and the frames are inline data.
    """
    import json
    import uuid

    if not frames:
        raise ValueError("frames must hold at least one frame")
    pid = "sdelab-player-" + uuid.uuid4().hex[:12]
    n = len(frames)
    return (
        f'<div class="animation sdelab-player" id="{pid}" style="width:{width}px">'
        f"<style>{_PLAYER_CSS % {'width': width}}</style>"
        f'<img src="data:{mime};base64,{frames[0]}" alt="frame 1 of {n}" width="{width}">'
        '<div class="sdelab-player-controls">'
        '<button type="button" data-act="prev" aria-label="previous frame">|&#9664;&#xFE0E;</button>'
        '<button type="button" data-act="play" aria-label="play">&#9654;&#xFE0E;</button>'
        '<button type="button" data-act="next" aria-label="next frame">&#9654;&#xFE0E;|</button>'
        f'<input type="range" min="0" max="{n - 1}" value="0" step="1" aria-label="frame">'
        f'<span class="sdelab-player-label">1 / {n}</span></div>'
        f'<script type="application/json" class="sdelab-frames">{json.dumps(frames)}</script>'
        f"<script>{_PLAYER_JS % {'id': pid, 'mime': mime, 'interval': int(interval)}}</script></div>"
    )


def animate(draw: Callable[[plt.Figure, int], None], n_frames: int, *, figsize=(6.4, 4.0), interval: int = 150,
            html: bool = True, dpi: int = 100, quality: int = 80):
    """Build an animation whose frame `i` is drawn by `draw(fig, i)` (the figure is cleared between frames).

    Returns (`html=True`) a self-contained player: WebP frames inline, a slider, play/pause and step
    buttons; it needs no kernel and no network, and it shrinks to the column on a phone. With
    `html=False` it returns the matplotlib `FuncAnimation` instead.
    """
    if int(n_frames) < 1:
        raise ValueError(f"n_frames must be a positive integer, got {n_frames!r}")
    fig = plt.figure(figsize=figsize, dpi=dpi)

    def update(i):
        fig.clear()
        draw(fig, i)
        return []

    if not html:
        from matplotlib.animation import FuncAnimation

        return FuncAnimation(fig, update, frames=n_frames, interval=interval, blit=False)
    from IPython.display import HTML

    frames = []
    for i in range(int(n_frames)):
        update(i)
        frames.append(_frame(fig, "webp", quality))
    plt.close(fig)
    return HTML(player_html(frames, width=int(round(figsize[0] * dpi)), interval=interval))
