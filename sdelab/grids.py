r"""What every sampler shares: its default time grid (chosen by measurement), one validation per call, and the
check for non-finite values (chapter "Samplers compared").

`DEFAULT_GRID` maps each sampler to the grid kind of `SDE.time_grid` on which it reached the quality of
Euler–Maruyama with 1,000 steps in the fewest score evaluations (`tools/measure_grids.py`: exact score of the
8-mode ring, VP linear, 20,000 samples), among the grids on which a trained noise-predicting network's samples stay
in range (`OUT_OF_RANGE`, `tools/measure_grids.py --range`). Every sampler accepts `ts` either as an explicit decreasing grid or as
an int `n`, which means `n` steps on its default grid, `default_grid(sampler, sde, n)`, ending at $\epsilon = 10^{-3}$.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from .utils import check_grid

__all__ = ["DEFAULT_GRID", "EVALS_PER_STEP", "MEASURED_NFE", "HELD_OUT_NFE", "OUT_OF_RANGE", "IN_RANGE", "DEFAULT_EPS", "default_grid", "resolve_grid"]

DEFAULT_EPS = 1e-3
WATCH_BYTES = 1 << 16  # FiniteWatch keeps at most this many bytes of states, and at most WATCH_WINDOW states,
WATCH_WINDOW = 32      # to sum them with one reduction


OUT_OF_RANGE: dict[str, dict[str, float]] = {
    "euler_maruyama": {"uniform": 0.1329, "logsnr": 0.0039, "karras": 0.0384, "angle": 0.8343, "blend": 0.1190},
    "predictor_corrector": {"uniform": 0.2891, "logsnr": 0.2875, "karras": 0.3146, "angle": 0.8511, "blend": 0.8108},
    "pf_ode_euler": {"uniform": 0.0038, "logsnr": 0.0066, "karras": 0.0146, "angle": 0.0001, "blend": 0.0008},
    "pf_ode_heun": {"uniform": 0.0055, "logsnr": 0.0000, "karras": 0.0024, "angle": 0.0031, "blend": 0.0000},
    "ddpm_sample": {"uniform": 0.0000, "logsnr": 0.0000, "karras": 0.0000, "angle": 0.0000, "blend": 0.0000},
    "ddim_sample": {"uniform": 0.0001, "logsnr": 0.0001, "karras": 0.0001, "angle": 0.0449, "blend": 0.0024},
    "dpm_solver_2m": {"uniform": 0.0000, "logsnr": 0.0000, "karras": 0.0000, "angle": 0.0393, "blend": 0.0001},
    "dpm_solver_3m": {"uniform": 0.0002, "logsnr": 0.0001, "karras": 0.0000, "angle": 0.0398, "blend": 0.0001},
    "unipc": {"uniform": 0.0000, "logsnr": 0.0000, "karras": 0.0000, "angle": 0.0246, "blend": 0.0001},
}
"""Fraction of pixels beyond +-1.5 in samples of the shipped epsilon-network `mnist_unet_eps`, the larger of its
values at 10 and 20 NFE (`grid_measure.out_of_range`, 20 class-conditional samples, 2026-12-06): fewer steps make
the first step longer. A grid is in range for a sampler when at most `IN_RANGE` = 0.1 % are."""
IN_RANGE = 0.001

EVALS_PER_STEP: dict[str, int] = {
    "euler_maruyama": 1, "predictor_corrector": 2, "pf_ode_euler": 1, "pf_ode_heun": 2, "ddpm_sample": 1,
    "ddim_sample": 1, "dpm_solver_2m": 1, "dpm_solver_3m": 1, "unipc": 1,
}
"""Score evaluations (noise-predictor evaluations for the discrete samplers) per step of each sampler, keyed by its
function's name. It is the one table that NFE counts use. Predictor-corrector: with its default single corrector step (`n_corrector + 1` in general); Heun: a
last step that ends at t = 0 costs 1. RK45 (`pf_ode_rk45`) is adaptive and has no fixed count."""

MEASURED_NFE: dict[str, dict[str, tuple[int | None, int | None]]] = {
    "euler_maruyama": {"uniform": (40, 512), "logsnr": (8, 768), "karras": (16, 768), "angle": (16, 256), "blend": (6, 256)},
    "predictor_corrector": {"uniform": (64, None), "logsnr": (16, None), "karras": (28, None), "angle": (16, None), "blend": (10, None)},
    "pf_ode_euler": {"uniform": (14, 512), "logsnr": (12, 1024), "karras": (14, None), "angle": (6, 40), "blend": (6, 80)},
    "pf_ode_heun": {"uniform": (28, 384), "logsnr": (20, 40), "karras": (28, 128), "angle": (10, 96), "blend": (6, 80)},
    "ddpm_sample": {"uniform": (16, None), "logsnr": (10, 1024), "karras": (14, 1024), "angle": (28, 1024), "blend": (10, 1024)},
    "ddim_sample": {"uniform": (14, 1024), "logsnr": (18, 768), "karras": (20, 768), "angle": (14, 160), "blend": (12, 128)},
    "dpm_solver_2m": {"uniform": (12, 768), "logsnr": (14, 96), "karras": (20, 128), "angle": (14, 128), "blend": (12, 128)},
    "dpm_solver_3m": {"uniform": (48, 160), "logsnr": (12, 80), "karras": (20, 96), "angle": (14, 32), "blend": (12, 32)},
    "unipc": {"uniform": (48, 320), "logsnr": (14, 56), "karras": (18, 64), "angle": (12, 48), "blend": (10, 18)},
}
"""`(loose, strict)` NFE measured by `tools/measure_grids.py` (n = 20,000, 2026-12-06; the angle and blend grids
added the same day): the first NFE that passes loose, and the fewest NFE from which strict holds at every larger
NFE tried up to 1,024 (`grid_measure.strict_from`; None: strict fails at 1,024)."""


HELD_OUT_NFE: dict[str, dict[str, tuple[int | None, int | None]]] = {
    "unipc": {"logsnr": (24, 80), "angle": (16, 48), "blend": (10, 16)},
    "dpm_solver_3m": {"logsnr": (28, 128), "blend": (24, 40)},
}
"""`(loose, strict)` NFE as in `MEASURED_NFE`, on a held-out problem the grids were not chosen on
(`tools/measure_grids.py --problem grid`: 9 modes on a 3 x 3 grid, spacing 2, std 0.1; n = 20,000, 2026-12-06), for
the two samplers whose default is the blend grid. Not used by the rule: a check that the blend grid's `log_steps = 4`,
chosen on the ring, is not fitted to it."""


def _choose_grid(name: str) -> str:
    """The rule of `DEFAULT_GRID`, applied to `MEASURED_NFE` and `OUT_OF_RANGE`."""
    nfe, out, big = MEASURED_NFE[name], OUT_OF_RANGE[name], 10**9
    in_range = [k for k in nfe if out[k] <= IN_RANGE]
    if not in_range:
        return min(nfe, key=out.get)
    return min(in_range, key=lambda k: (nfe[k][1] or big, nfe[k][0] or big))


DEFAULT_GRID: dict[str, str] = {**{name: _choose_grid(name) for name in MEASURED_NFE}, "pf_ode_rk45": "uniform"}
"""Each sampler's default grid kind. Among the grids on which a trained noise-predicting network keeps its samples
in range (`OUT_OF_RANGE` at most `IN_RANGE`), it is the one with the fewest NFE to the strict quality of
`sdelab.grid_measure` (`MEASURED_NFE`), ties broken by the loose quality. A sampler in range on no grid
(predictor-corrector, and Euler-Maruyama, whose own noise strays at 10 NFE) takes the grid where it strays least. RK45 picks its own steps.

The angle grid alone is fast on the exact score (PF-ODE Euler strict from 40, its default), but its long first step
carries the network's error at high noise, where an epsilon-network's x0-estimate is poor: 0.3-85 % of the pixels of
every sampler but PF-ODE Euler and DDPM leave [-1.5, 1.5] on it at 10 or 20 NFE. The blend grid (4 of the steps
placed as on the log-SNR grid, the rest as on the angle grid) keeps UniPC (strict from 18) and DPM-Solver++(3M) (32)
in range, and is their default; on it DDIM and Euler-Maruyama stray at 10 NFE, so they keep the log-SNR grid, as do
DPM-Solver++(2M) (96 against 128 on blend), Heun, DDPM and predictor-corrector. `log_steps = 4` was chosen on the
ring; `HELD_OUT_NFE` checks it on another problem (UniPC 16 against 80 on log-SNR)."""


def _name(sampler) -> str:
    name = sampler if isinstance(sampler, str) else getattr(sampler, "__name__", None)
    if name not in DEFAULT_GRID:
        raise ValueError(f"sampler must be one of {sorted(DEFAULT_GRID)} (a name or the function), got {sampler!r}")
    return name


def default_grid(sampler, sde, n_steps: int, eps: float = DEFAULT_EPS) -> torch.Tensor:
    """`n_steps` steps from `T` to `eps` on `sampler`'s default grid (`DEFAULT_GRID`), float64.

    `eps = 0` on a grid other than uniform (log-SNR, Karras and angle grids cannot reach t = 0): the grid to
    `DEFAULT_EPS` with its last time set to 0, so the last step goes to t = 0, as k-diffusion's grids end with
    sigma = 0."""
    kind = DEFAULT_GRID[_name(sampler)]
    if kind == "uniform" or isinstance(eps, bool) or not isinstance(eps, (int, float)) or eps != 0:
        return sde.time_grid(n_steps, eps, kind=kind).to(torch.float64)
    ts = sde.time_grid(n_steps, DEFAULT_EPS, kind=kind).to(torch.float64)
    ts[-1] = 0.0
    return ts


def check_x(x, name: str = "x") -> None:
    """`x` must be a floating tensor (float16/bfloat16 are kept as they are) of shape `(B, ...)`, B >= 1, finite."""
    if not torch.is_tensor(x) or not x.is_floating_point() or x.ndim < 2 or x.shape[0] == 0:
        got = f"{type(x).__name__} {tuple(x.shape)} {x.dtype}" if torch.is_tensor(x) else type(x).__name__
        raise ValueError(f"{name} must be a real floating-point torch tensor of shape (B, ...) with B >= 1 and at "
                         f"least 2 dims (float16/bfloat16 allowed; convert numpy arrays with torch.as_tensor), got {got}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains non-finite values (NaN or inf); all entries must be finite")


def resolve_grid(sampler: str, sde, x: torch.Tensor, ts) -> torch.Tensor:
    """Validate `x` and `ts` once per call; an int `ts` becomes `default_grid(sampler, sde, ts)`.

    Returns the grid as a CPU float64 tensor (strictly decreasing, inside [0, T])."""
    check_x(x)
    if isinstance(ts, (int, np.integer)) and not isinstance(ts, bool):
        if ts < 1:
            raise ValueError(f"ts must be a grid or an int number of steps >= 1, got {ts!r}")
        return default_grid(sampler, sde, int(ts))
    if not (torch.is_tensor(ts) or isinstance(ts, (list, tuple, np.ndarray))):
        raise ValueError(f"ts must be a 1-D decreasing grid of times or an int number of steps, got {type(ts).__name__}")
    return check_grid(ts, sde.T).detach().to("cpu", torch.float64)


def batch_times(tc: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """`(n + 1, B)` view of the grid on `x`'s device and dtype: row `i` is the `(B,)` time `score_fn` gets at step i."""
    return tc.to(device=x.device, dtype=x.dtype)[:, None].expand(len(tc), x.shape[0])


def call_score(fn: Callable, x: torch.Tensor, t: torch.Tensor, name: str = "score_fn") -> torch.Tensor:
    """`fn(x, t)`, refused unless it returns a tensor of `x`'s shape."""
    s = fn(x, t)
    if not isinstance(s, torch.Tensor) or s.shape != x.shape:  # isinstance: what torch.is_tensor does, cheaper
        got = tuple(s.shape) if torch.is_tensor(s) else type(s).__name__
        raise ValueError(f"{name} must return a tensor of the shape of x, {tuple(x.shape)}, got {got}")
    return s


class FiniteWatch:
    """Records one sum of the state per step (no device sync) and raises, once, after the run, a
    `FloatingPointError` naming the sampler, the first step whose state is not finite, and its time.

    To keep the per-step cost low, up to `WATCH_WINDOW` states, `WATCH_BYTES` in all, are kept and summed together
    (one stack and one reduction per window); a state larger than that is summed at its step. States are not
    changed (one changed in place before its window is summed is summed as changed). A NaN or inf in the score or
    the state propagates into every later state (the updates are linear in both), so the first non-finite sum
    marks the step where it appeared."""

    def __init__(self, sampler: str, tc: torch.Tensor):
        self.sampler, self.tc, self.sums, self.window, self.size = sampler, tc, [], [], 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if not self.size:  # window length from the first state's size
            self.size = max(1, min(WATCH_WINDOW, WATCH_BYTES // max(1, x.numel() * x.element_size())))
        self.window.append(x)
        if len(self.window) >= self.size:
            self._flush()
        return x

    def _flush(self) -> None:
        """Append the per-step sums of the kept states (float32 at least: float16 sums overflow)."""
        if self.window:
            states = torch.stack(self.window)
            dims = tuple(range(1, states.ndim))
            self.sums.append(states.sum(dims, dtype=torch.float32) if states.element_size() < 4 else states.sum(dims))
            self.window = []

    def check(self, x: torch.Tensor) -> torch.Tensor:
        self._flush()
        sums = torch.cat(self.sums) if self.sums else None
        if sums is not None and not bool(torch.isfinite(sums).all()):
            i = int((~torch.isfinite(sums)).nonzero()[0])
            raise FloatingPointError(
                f"{self.sampler}: the state became non-finite (NaN or inf) at step {i}, from t = {float(self.tc[i]):.6g} "
                f"to t = {float(self.tc[i + 1]):.6g}; check score_fn at that time (a NaN or inf output), or use finer steps")
        return x


def float_list(v: torch.Tensor) -> list[float]:
    """A float64 coefficient vector as Python floats (so the loop does no 0-dim tensor arithmetic)."""
    out = v.to(torch.float64).tolist()
    if not all(map(math.isfinite, out)):
        raise ValueError("ts: the SDE's coefficients are not finite on this grid (a time too close to 0?)")
    return out
