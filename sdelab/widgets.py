"""Explorations that work with a kernel (ipywidgets sliders) and without one (a precomputed player).

`explore(draw, params)` shows live sliders when a kernel is running interactively, and otherwise (in
the static HTML book, where `SDELAB_STATIC=1` is set by the build) a JavaScript player that steps through
precomputed frames of one parameter, so readers of the static page can still explore.
"""
from __future__ import annotations

import itertools
import os
from typing import Callable, Sequence

import matplotlib.pyplot as plt

from .plot import animate

__all__ = ["explore", "live_kernel"]


def live_kernel() -> bool:
    """True inside a running Jupyter kernel, unless `SDELAB_STATIC=1` (static book build) is set."""
    if os.environ.get("SDELAB_STATIC", "0") not in ("", "0"):
        return False
    try:
        from IPython import get_ipython

        ip = get_ipython()
        return ip is not None and "IPKernelApp" in ip.config
    except ImportError:  # pragma: no cover
        return False


def explore(draw: Callable[..., None], params: dict[str, Sequence], *, sweep: str | None = None,
            live: bool | None = None, figsize=(7.0, 3.6)):
    """Interactive figure over the values in `params`.

    Args:
        draw: `draw(fig, **values)` draws one figure for one choice of every parameter.
        params: parameter name -> the values a slider offers (at least one each).
        sweep: the parameter the static player steps through (default: the first); the others are
            held at their middle value.
        live: force ipywidgets (`True`) or the static player (`False`); default: `live_kernel()`.
    Returns:
        The static player's HTML (display it as a cell's last value), or `None` when live widgets were shown.
    """
    if not params or any(len(v) == 0 for v in params.values()):
        raise ValueError("params must map each parameter name to a non-empty sequence of values")
    names = list(params)
    sweep = sweep or names[0]
    if sweep not in params:
        raise ValueError(f"sweep must be one of {names}, got {sweep!r}")
    middle = {k: v[len(v) // 2] for k, v in params.items()}
    if live is None:
        live = live_kernel()
    if live:
        import ipywidgets as w

        sliders = {k: w.SelectionSlider(options=list(v), value=middle[k], description=k,
                                        continuous_update=False) for k, v in params.items()}

        def show(**values):
            fig = plt.figure(figsize=figsize)
            draw(fig, **values)
            plt.show()

        w.interact(show, **sliders)
        return None

    values = list(params[sweep])

    def frame(fig, i):
        draw(fig, **{**middle, sweep: values[i]})

    return animate(frame, len(values), figsize=figsize, interval=400)


def grid(params: dict[str, Sequence]) -> list[dict]:
    """Every combination of parameter values, as a list of dicts (for precomputing frames)."""
    keys = list(params)
    return [dict(zip(keys, combo)) for combo in itertools.product(*params.values())]
