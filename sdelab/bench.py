"""`python -m sdelab bench`: the speed and quality targets of the package, measured, never invented.

Every timed row runs warm-up calls and then repeats (`sdelab.bench_timing.measure`) and records, in its `details`,
the median wall time `wall_s`, its spread `wall_spread_s`, the CPU time `cpu_s`, the 1-minute load average
before and after `load_avg`, `repeats` and `warmup`: a number taken on a busy shared machine says so. Every ratio is
measured side by side in one run. Rows (`ROWS`; `--only` picks some):

* `ring`: seconds of training (quality evaluations excluded) until the EMA model's samples (Euler–Maruyama, 200
  steps, 2,000 points) are within 1.5x the data-vs-data sliced Wasserstein floor on the 8-mode ring; 3 seeds
  (median and spread), 1 in quick mode. Target <= 30 s on 2 CPU cores.
* `mnist_throughput` (CUDA; `sdelab.bench_mnist`): training img/s of `train()` next to a plain loop at the same batch
  and precision (bf16, data on the device, same model and optimiser), interleaved; then a tutorial-style loop
  (DataLoader, fp32, batch 32) as a second, labelled comparison. Targets: >= 20,000 img/s on an H100,
  train() / plain >= 0.9, and >= 10x the tutorial loop.
* `mnist_fid` (CUDA): `mnist_fid` of 1,000 samples after 5 minutes of GPU training (v-prediction, as the recipe).
* `sampling` (`sdelab.bench_images`): img/s of every sampler at the same 20 network evaluations, with the quality
  reached (max |pixel|, the classifier's confident and label-match rates; FID from 256 images up).
* `classifier`: held-out accuracy of the shipped MNIST classifier (not timed).
* `likelihood`: seconds per batch of images for probability-flow bits/dim (Hutchinson, RK45).
* `sampler_overhead`, `sampler_quality` (`sdelab.bench_samplers`): per-step overhead against minimal loops; speed
  and quality at 20 NFE on the 2-D ring.
* `sampler_nfe` (`sdelab.bench_samplers.nfe_rows`): per sampler, with its default grid, the fewest NFE from which
  it is as good as Euler-Maruyama with 1,000 steps (strict, at every larger budget up to 1,024), and the best of them.
  Targets: best <= 20, Heun <= 48, DDIM <= 64.

On a machine without CUDA the GPU rows are printed as "unmeasured (no GPU)". The JSON file records the date, the
device, torch's version, the thread count and the load average next to every row; `markdown_table` (or
`python -m sdelab bench --markdown FILE.json`) turns it into README's performance table.
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import re
import time
from pathlib import Path

import torch

from .bench_images import SAMPLING_NFE, bench_likelihood, bench_sampling
from .bench_mnist import bench_mnist_fid, bench_mnist_throughput, mnist_digits
from .bench_timing import NO_GPU, TIMING_FIELDS, Excluded, load_average, measure, row, timing_details

__all__ = ["ROWS", "run", "markdown_table", "readme_with_table", "SAMPLING_NFE", "NO_GPU"]

ROWS = ("ring", "mnist_throughput", "mnist_fid", "sampling", "classifier", "likelihood", "sampler_overhead",
        "sampler_quality", "sampler_nfe")


def _ring_floor(data_fn) -> float:
    """Sliced W between two independent 2,000-point data sets, averaged over 5 pairs."""
    from .metrics import sliced_wasserstein

    return sum(sliced_wasserstein(data_fn(2000, torch.Generator().manual_seed(2 * s)),
                                  data_fn(2000, torch.Generator().manual_seed(2 * s + 1)),
                                  generator=torch.Generator().manual_seed(s)).item() for s in range(5)) / 5


def bench_ring(quick: bool, device=None) -> list[dict]:
    """Time to train the 2-D MLP to quality on the ring (CPU), the quality evaluations left out of the time."""
    from .hub import build_model
    from .recipes import toy_quality, toy_spec, train_until
    from .sde import VPSDE
    from .toy import DATASETS

    data_fn, sde = DATASETS["ring"], VPSDE()
    floor, seeds, max_steps = _ring_floor(data_fn), range(1 if quick else 3), 3000 if quick else 10_000

    def train_one(seed: int, steps: int, chunk: int, n_eval: int) -> Excluded:
        torch.manual_seed(seed)
        model, spent, reached = build_model(toy_spec()), [0.0, 0.0], {}

        def good(res):
            c0, t0 = time.process_time(), time.perf_counter()
            sw, _ = toy_quality(res.ema, sde, data_fn, n=n_eval, steps=200, seed=7)
            reached.update(sw=round(sw, 4), steps=res.step, reached=sw <= 1.5 * floor)
            spent[0], spent[1] = spent[0] + time.perf_counter() - t0, spent[1] + time.process_time() - c0
            return sw <= 1.5 * floor

        res = train_until(model, sde, data_fn, steps=steps, chunk=chunk, callback=good, progress=False,
                          batch_size=256, lr=2e-3, ema_decay=0.999, warmup=100, device="cpu",
                          generator=torch.Generator().manual_seed(seed))
        return Excluded(*spent, value={"seed": seed, "train_s": round(res.seconds, 2), **reached})

    pending = iter(seeds)
    t = measure({"ring": lambda: train_one(next(pending), max_steps, 250, 2000)},
                warm={"ring": lambda: train_one(0, 20, 20, 200)}, repeats=len(seeds), warmup=1)["ring"]
    runs = t["values"]
    missed = [r["seed"] for r in runs if not r["reached"]]
    status = f"not reached in {max_steps} steps (seeds {missed})" if missed else "measured"
    return [row("ring", "time to SW <= 1.5x floor (evaluation excluded)", None if missed else round(t["wall_s"], 2),
                "s", "<= 30 s (2 CPU cores)", status, **timing_details(t), runs=runs, floor=round(floor, 4),
                batch_size=256, threads=torch.get_num_threads(),
                eval="euler_maruyama 200 steps, n=2000, every 250 steps",
                note=f"seeds {[r['seed'] for r in runs]}: steps {[r['steps'] for r in runs]}, "
                     f"SW {[r['sw'] for r in runs]} vs floor {floor:.3f}")]


def bench_classifier(quick: bool, device) -> list[dict]:
    """Held-out accuracy of the shipped MNIST classifier (not timed)."""
    from . import hub
    from .classifier import accuracy

    try:
        model = hub.pretrained("mnist_classifier", device=device)
    except (FileNotFoundError, ValueError) as e:
        return [row("classifier", "held-out accuracy", None, "", ">= 0.95", f"unmeasured ({e})")]
    _, _, xt, yt = mnist_digits()
    target = ">= 0.99" if len(xt) == 10000 else ">= 0.97 (offline fallback digits)"
    return [row("classifier", f"held-out accuracy ({len(xt)} test digits)", round(accuracy(model, xt, yt), 4), "",
                target, shipped=hub.info("mnist_classifier").get("metrics"))]


def bench_sampler_overhead(quick: bool, device) -> list[dict]:
    """Each sampler / a minimal loop of the same algorithm, interleaved in one run (CPU, float32, batch 64)."""
    from .bench_samplers import overhead_rows

    return [row(f"sampler_overhead:{r['sampler']}:{r['score']}", f"time / minimal loop ({r['score']} score, "
                f"{r['steps']} steps, batch {r['batch']})", round(r["ratio"], 3), "x", "<= 1.1",
                ratio_spread=[round(v, 3) for v in r["ratio_spread"]], **r["package"],
                minimal_wall_s=r["minimal"]["wall_s"])
            for r in overhead_rows(batch=64, steps=20 if quick else 100, repeats=3 if quick else 9)]


def bench_sampler_quality(quick: bool, device) -> list[dict]:
    """Every sampler at 20 NFE on its default grid, exact ring score: speed beside the quality reached."""
    from .bench_samplers import quality_rows

    return [row(f"sampler_quality:{r['sampler']}", f"sliced W2 at NFE {r['nfe']} ({r['grid']} grid, n={r['n']})",
                round(r["sliced_w2"], 4), "", "", spread_err=round(r["spread_err"], 4),
                **{k: r[k] for k in TIMING_FIELDS})
            for r in quality_rows(20, n=2_000 if quick else 20_000, repeats=1 if quick else 3)]


def bench_sampler_nfe(quick: bool, device) -> list[dict]:
    """NFE to Euler-Maruyama-1000 quality with each sampler's default grid (exact ring score, float64), and the best."""
    from .bench_samplers import NFE_TARGETS, nfe_rows

    rs = nfe_rows(2_000 if quick else 20_000, [10, 20, 40] if quick else None)
    out = []
    for r in rs:
        target = f"<= {NFE_TARGETS[r['sampler']]}" if r["sampler"] in NFE_TARGETS else ""
        status = "measured" if r["strict_from"] else f"not strict at {r['max_nfe']:,} NFE (the largest tried)"
        out.append(row(f"sampler_nfe:{r['sampler']}", f"NFE to Euler-Maruyama-1000 quality, strict from which on "
                       f"({r['grid']} grid, ring, n={r['n']:,})", r["strict_from"], "NFE", target, status,
                       loose=r["loose"], first_strict=r["first_strict"], sweep_s=round(r["sweep_s"], 1)))
    best = min((r for r in rs if r["strict_from"]), key=lambda r: r["strict_from"], default=None)
    out.append(row("sampler_nfe:best", "fewest NFE to Euler-Maruyama-1000 quality (strict) of any sampler, default grids",
                   best and best["strict_from"], "NFE", f"<= {NFE_TARGETS['best']}",
                   "measured" if best else "no sampler strict", sampler=best and best["sampler"]))
    return out


_BENCH = {"ring": bench_ring, "mnist_throughput": bench_mnist_throughput, "mnist_fid": bench_mnist_fid,
          "sampling": bench_sampling, "classifier": bench_classifier, "likelihood": bench_likelihood,
          "sampler_overhead": bench_sampler_overhead, "sampler_quality": bench_sampler_quality,
          "sampler_nfe": bench_sampler_nfe}


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    return f"{v:,.4g}" if isinstance(v, float) and abs(v) < 1e4 else f"{v:,}"


def _timing_text(d: dict) -> str:
    """'median of 3: 1.2 s (1.1-1.4), CPU 1.2 s, load 0.9->1.3' from a row's details ('' when not timed)."""
    if "wall_s" not in d:
        return ""
    lo, hi = d["wall_spread_s"]
    load = "->".join("?" if v is None else f"{v:g}" for v in d.get("load_avg") or [None])
    return (f"median of {d['repeats']}: {_fmt(d['wall_s'])} s ({_fmt(lo)}-{_fmt(hi)}), CPU {_fmt(d['cpu_s'])} s, "
            f"load {load}")


_EXTRAS = (("nfe", "NFE"), ("fid", "FID"), ("label_match", "label match"), ("confident", "confident"),
           ("max_abs_pixel", "max abs pixel"), ("bits_per_dim", "bits/dim"), ("ratio_spread", "spread"),
           ("floor", "SW floor"), ("spread_err", "spread error"), ("sampler", "by"), ("loose", "loose from"),
           ("first_strict", "first strict"))


def _measured(r: dict) -> str:
    """The 'measured' cell of one row: value and unit, then the timing and what the row reached."""
    if r["value"] is None:
        return r["status"] if r["status"].startswith(("unmeasured", "not strict")) else f"unmeasured ({r['status']})"
    d = r.get("details", {})
    extras = [f"{label} {'-'.join(map(_fmt, d[k])) if isinstance(d[k], list) else _fmt(d[k])}"
              for k, label in _EXTRAS if k in d]
    inner = "; ".join(x for x in (_timing_text(d), ", ".join(extras)) if x)
    return f"{_fmt(r['value'])} {r['unit']}".strip() + (f" ({inner})" if inner else "")


def markdown_table(result: dict) -> str:
    """README's performance table, "| row | target | measured | device, date |", from a bench JSON result alone;
    a row without a value shows why it is unmeasured."""
    missing = [k for k in ("date", "device", "rows") if not isinstance(result, dict) or k not in result]
    if missing:
        raise ValueError(f"result must be the JSON of `python -m sdelab bench` (with date, device, rows); "
                         f"missing {missing}")

    def cell(text) -> str:
        return " ".join(str(text).split()).replace("|", "\\|")

    date = str(result["date"])[:10] + (" (quick mode: small budgets)" if result.get("quick") else "")
    lines = ["| row | target | measured | device, date |", "|---|---|---|---|"]
    for r in result["rows"]:
        device = r.get("details", {}).get("device", result["device"])
        lines.append(f"| {cell(r['row'] + ': ' + r['metric'])} | {cell(r['target'])} | {cell(_measured(r))} | "
                     f"{cell(device)}, {date} |")
    return "\n".join(lines) + "\n"


README_MARK = re.compile(r"<!-- bench: (?P<path>[^ ]+) -->\n(?P<table>.*?)<!-- /bench -->\n", re.S)
"""README's generated performance table: `<!-- bench: FILE.json -->`, the table, `<!-- /bench -->`."""


def readme_with_table(readme: str, root: Path) -> str:
    """`readme`'s text with the table between its bench marks rewritten from the JSON file the mark names
    (relative to `root`)."""
    m = README_MARK.search(readme)
    if m is None:
        raise ValueError("README has no '<!-- bench: FILE.json -->' ... '<!-- /bench -->' block")
    result = json.loads((root / m["path"]).read_text())
    if isinstance(result, dict) and result.get("quick"):
        raise ValueError(f"{m['path']} is a quick-mode run (small budgets, not the figures its labels name); "
                         "README's table is written from a full run: python -m sdelab bench --out FILE.json")
    table = markdown_table(result)
    return readme[:m.start("table")] + table + readme[m.end("table"):]


def _print_row(r: dict) -> None:
    shown = _fmt(r["value"]) if r["value"] is not None else r["status"]
    note = "; ".join(x for x in (_timing_text(r["details"]), r["details"].get("note")) if x)
    unit = r["unit"] if r["value"] is not None else ""
    print(f"{r['row']:24s} {r['metric'][:62]:62s} {shown:>20s} {unit:6s} {r['target']}"
          + (f"  [{note}]" if note else ""), flush=True)


def _header(device: torch.device, quick: bool) -> dict:
    threads = torch.get_num_threads()
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, {threads} threads)"
    return {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"), "device": name,
            "cuda": device.type == "cuda", "torch": torch.__version__, "python": platform.python_version(),
            "threads": threads, "cpu_count": os.cpu_count(), "load_avg_start": load_average(), "quick": bool(quick),
            "rows": []}


def run(only=None, *, quick: bool = False, out="bench_results.json", device=None, print_table: bool = True) -> dict:
    """Run the rows named in `only` (default: all), print a table and write the JSON file `out` (None: don't)."""
    from .utils import default_device

    names = list(only) if only else list(ROWS)
    bad = [n for n in names if n not in _BENCH]
    if bad:
        raise ValueError(f"unknown bench rows {bad}; choose from {ROWS}")
    device = torch.device(device) if device is not None else default_device()
    result = _header(device, quick)
    for n in names:
        t0 = time.perf_counter()
        rows = _BENCH[n](quick, device)
        for r in rows:
            r["details"]["row_seconds"] = round(time.perf_counter() - t0, 1)
            if print_table:
                _print_row(r)
        result["rows"].extend(rows)
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(result, indent=1) + "\n")
        if print_table:
            print(f"written to {out}  ({result['device']}, torch {result['torch']}, {result['date']})"
                  + ("; quick mode: small budgets, not the figures README reports" if quick else ""))
    return result
