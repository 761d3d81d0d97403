"""Command line of `sdelab.grid_measure`: for every sampler and grid kind, the fewest NFE that reach the quality of
Euler-Maruyama with 1,000 steps on the 8-mode ring (the measurement behind `sdelab.samplers.DEFAULT_GRID`).

Usage: `python tools/measure_grids.py [--n 20000] [--json out.json] [--samplers name ...] [--kinds kind ...]
[--problem ring|grid]` (about 15 minutes on one core).
"""
from __future__ import annotations

import argparse
import json

import torch

from sdelab.grid_measure import KINDS, PROBLEMS, measure, out_of_range


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=20_000)
    p.add_argument("--json", default=None)
    p.add_argument("--samplers", nargs="*", default=None)
    p.add_argument("--kinds", nargs="*", default=list(KINDS), choices=KINDS)
    p.add_argument("--problem", default="ring", choices=sorted(PROBLEMS),
                   help="the ring (the measurement behind the defaults) or the held-out 3x3 grid of modes")
    p.add_argument("--range", action="store_true", help="measure only the out-of-range fractions of the shipped "
                   "epsilon-network at 10 and 20 NFE (grid_measure.out_of_range, about two minutes)")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    if a.range:
        res = out_of_range(a.samplers, a.kinds)
        for key, v in res.items():
            by = ", ".join(f"{k} NFE {f:.4f}" for k, f in v["by_nfe"].items())
            print(f"{key:32s} beyond +-1.5: {v['fraction']:.4f} ({by})  max |x| {v['max_abs']:.2f}")
        if a.json:
            with open(a.json, "w") as f:
                json.dump(res, f, indent=1)
        return
    res = measure(a.n, a.samplers, kinds=a.kinds, problem=a.problem)
    r = res["reference"]
    print(f"EM-1000: sliced W2 {r['sw']:.4f}, spread error {r['spread_err']:+.4f} (tolerance {r['spread_tol']:.4f})")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
