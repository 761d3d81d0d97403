"""Timing shared by every row of `python -m sdelab bench`: untimed warm-up calls, then repeats (interleaved when
several callables are compared), reported as the median and spread of wall time, the median CPU time and the
1-minute load average before and after, so that a number taken on a busy shared machine says so.

Every timed row stores the same fields in its `details` (`TIMING_FIELDS`): `wall_s` (median wall seconds),
`wall_spread_s` ([min, max] over the repeats), `cpu_s` (median CPU seconds of the process, all threads; on CUDA only
the host's), `load_avg` ([before, after], the 1-minute load average), `repeats` and `warmup`.
"""
from __future__ import annotations

import dataclasses
import os
import statistics
import time
from typing import Callable

import torch

__all__ = ["TIMING_FIELDS", "NO_GPU", "Excluded", "measure", "timing_details", "load_average", "row", "sync"]

TIMING_FIELDS = ("wall_s", "wall_spread_s", "cpu_s", "load_avg", "repeats", "warmup")
NO_GPU = "unmeasured (no GPU)"


@dataclasses.dataclass
class Excluded:
    """What a timed callable may return: `wall_s` and `cpu_s` spent inside the call on work that is not part of
    what is timed (e.g. quality evaluations during a training run) are taken out of that repeat; `value` is what
    the call produced (kept in `measure`'s `values`)."""
    wall_s: float
    cpu_s: float
    value: object = None


def load_average() -> float | None:
    """The 1-minute load average (None where the platform has none)."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def _check_count(name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return value


def measure(fns: dict[str, Callable[[], object]], *, repeats: int = 5, warmup: int = 1,
            warm: dict[str, Callable[[], object]] | None = None, sync: Callable[[], None] | None = None
            ) -> dict[str, dict]:
    """Time each callable of `fns` `repeats` times, interleaved (a, b, a, b, ...) after `warmup` untimed rounds.

    Args:
        fns: name -> callable without arguments. A callable may return `Excluded` to leave part of its time out.
        repeats: timed calls of each callable (>= 1).
        warmup: untimed rounds before them (>= 0); each calls `warm[name]` when given (e.g. a tiny batch), else
            `fns[name]`.
        sync: called before every clock reading (e.g. `torch.cuda.synchronize`), so queued device work counts.
    Returns:
        name -> {"wall_s", "wall_spread_s", "cpu_s", "load_avg", "repeats", "warmup" (the `TIMING_FIELDS`),
        "walls", "cpus" (every repeat), "values" (what each timed call returned, `Excluded.value` unwrapped)}.
    """
    if not isinstance(fns, dict) or not fns or not all(callable(f) for f in fns.values()):
        raise ValueError(f"fns must be a non-empty dict of name -> callable, got {fns!r}")
    repeats, warmup = _check_count("repeats", repeats, 1), _check_count("warmup", warmup, 0)
    warm = warm or {}
    if set(warm) - set(fns) or not all(callable(f) for f in warm.values()):
        raise ValueError(f"warm must map names of fns {sorted(fns)} to callables, got {sorted(warm)}")
    sync = sync or (lambda: None)
    load_before = load_average()
    for _ in range(warmup):
        for name, f in fns.items():
            warm.get(name, f)()
    walls, cpus, values = ({k: [] for k in fns} for _ in range(3))
    for _ in range(repeats):
        for name, f in fns.items():
            sync()
            c0, t0 = time.process_time(), time.perf_counter()
            out = f()
            sync()
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            if isinstance(out, Excluded):
                wall, cpu, out = wall - out.wall_s, cpu - out.cpu_s, out.value
            walls[name].append(wall)
            cpus[name].append(cpu)
            values[name].append(out)
    load = [load_before, load_average()]
    return {k: {"wall_s": statistics.median(walls[k]), "wall_spread_s": [min(walls[k]), max(walls[k])],
                "cpu_s": statistics.median(cpus[k]), "load_avg": load, "repeats": repeats, "warmup": warmup,
                "walls": walls[k], "cpus": cpus[k], "values": values[k]} for k in fns}


def timing_details(t: dict, digits: int = 4) -> dict:
    """The `TIMING_FIELDS` of one entry of `measure`'s result, rounded for the JSON file."""
    return {"wall_s": round(t["wall_s"], digits), "wall_spread_s": [round(v, digits) for v in t["wall_spread_s"]],
            "cpu_s": round(t["cpu_s"], digits), "load_avg": t["load_avg"], "repeats": t["repeats"],
            "warmup": t["warmup"]}


def row(name: str, metric: str, value, unit: str, target: str = "", status: str = "measured", **details) -> dict:
    """One row of the bench's JSON: what is measured (`metric`), its `value` (None: not measured, `status` says
    why), `unit`, the `target`, and `details` (the timing fields, sizes, quality reached)."""
    return {"row": name, "metric": metric, "value": value, "unit": unit, "target": target, "status": status,
            "details": details}


def sync(device) -> Callable[[], None]:
    """A no-argument function that waits for `device`'s queued work (nothing to wait for on the CPU)."""
    device = torch.device(device)
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None
