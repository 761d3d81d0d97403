"""`python -m sdelab bench`: the speed and quality targets of the package, measured, never invented.

Rows (`ROWS`; `--only` picks some):

* `ring`: seconds of `train()` (evaluation excluded) until the EMA model's samples (Euler–Maruyama, 200 steps,
  2,000 points) are within 1.5x the data-vs-data sliced Wasserstein floor on the 8-mode ring. Target <= 30 s on
  2 CPU cores.
* `mnist_throughput` (CUDA only): training images/s of the MNIST U-Net through `train()` (bf16 autocast, data on
  the device, with and without `torch.compile`) next to a plain loop (DataLoader, fp32, batch 32, same model) in
  the same run. Targets: >= 20,000 img/s on an H100 and >= 10x the plain loop.
* `mnist_fid` (CUDA only): `mnist_fid` of 1,000 samples after 5 minutes of GPU training (v-prediction, as the recipe).
* `sampling`: images/s of every sampler at its step count (one row each), with the shipped U-Net.
* `classifier`: held-out accuracy of the shipped MNIST classifier (target >= 0.95).
* `likelihood`: seconds per batch of 32 images for probability-flow bits/dim (Hutchinson, RK45).

On a machine without CUDA the GPU rows are printed as "unmeasured (no GPU)". The JSON file records the date,
the device, torch's version and the thread count next to every row.
"""
from __future__ import annotations

import datetime
import json
import platform
import time
from pathlib import Path

import torch

__all__ = ["ROWS", "run", "SAMPLER_STEPS"]

ROWS = ("ring", "mnist_throughput", "mnist_fid", "sampling", "classifier", "likelihood", "sampler_overhead",
        "sampler_quality")
SAMPLER_STEPS = {"euler_maruyama": 500, "pc": 250, "pf_euler": 500, "heun": 50, "rk45": None, "ddpm": 500,
                 "ddim": 50, "dpm2m": 20}
"""Step count of each sampler in the `sampling` rows (rk45 is adaptive)."""
NO_GPU = "unmeasured (no GPU)"


def _row(row, metric, value, unit, target="", status="measured", **details) -> dict:
    return {"row": row, "metric": metric, "value": value, "unit": unit, "target": target, "status": status,
            "details": details}


def _sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def _mnist():
    import warnings

    from .data import mnist

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (x, y), (xt, yt) = mnist("train"), mnist("test")
    return x, y, xt, yt


def _unet(device, base=32):
    from .hub import build_model
    from .recipes import mnist_spec

    torch.manual_seed(0)
    return build_model(mnist_spec(base)).to(device)


def bench_ring(quick: bool, device=None) -> list[dict]:
    from .hub import build_model
    from .metrics import sliced_wasserstein
    from .recipes import toy_quality, toy_spec, train_until
    from .sde import VPSDE
    from .toy import DATASETS

    data_fn, sde = DATASETS["ring"], VPSDE()
    torch.manual_seed(0)
    model = build_model(toy_spec())
    # the floor: SW between two independent 2,000-point data sets, averaged over 5 pairs
    floor = sum(sliced_wasserstein(data_fn(2000, torch.Generator().manual_seed(2 * s)),
                                   data_fn(2000, torch.Generator().manual_seed(2 * s + 1)),
                                   generator=torch.Generator().manual_seed(s)).item() for s in range(5)) / 5
    reached = {}

    def good(res):
        sw, _ = toy_quality(res.ema, sde, data_fn, n=2000, steps=200, seed=7)
        reached.update(sw=sw, step=res.step)
        return sw <= 1.5 * floor

    res = train_until(model, sde, data_fn, steps=3000 if quick else 10_000, chunk=250, callback=good,
                      progress=False, batch_size=256, lr=2e-3, ema_decay=0.999, warmup=100, device="cpu",
                      generator=torch.Generator().manual_seed(0))
    ok = reached["sw"] <= 1.5 * floor
    return [_row("ring", "time to SW <= 1.5x floor", round(res.seconds, 2) if ok else None, "s",
                 "<= 30 s (2 CPU cores)", "measured" if ok else f"not reached in {res.step} steps",
                 sw=round(reached["sw"], 4), floor=round(floor, 4), steps=reached["step"], batch_size=256,
                 threads=torch.get_num_threads(), eval="euler_maruyama 200 steps, n=2000, every 250 steps",
                 note=f"SW {reached['sw']:.3f} vs floor {floor:.3f} after {reached['step']} steps, "
                      f"{torch.get_num_threads()} threads")]


def bench_mnist_throughput(quick: bool, device) -> list[dict]:
    from .losses import dsm_loss
    from .sde import VPSDE
    from .train import train

    target = ">= 20,000 img/s (H100), >= 10x baseline"
    if device.type != "cuda":
        return [_row("mnist_throughput", "training img/s (bf16, data on device)", None, "img/s", target, NO_GPU)]
    x, y, _, _ = _mnist()
    sde, rows = VPSDE(), []
    # plain baseline: DataLoader, fp32, batch 32, the same model
    model = _unet(device)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-4)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32, shuffle=True,
                                         drop_last=True)
    n_base, done, t0 = (60 if quick else 300), 0, None
    while done < n_base + 10:
        for xb, yb in loader:
            if done == 10:
                _sync(device)
                t0 = time.perf_counter()
            loss = dsm_loss(model, sde, xb.to(device), y=yb.to(device), p_uncond=0.1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            done += 1
            if done >= n_base + 10:
                break
    _sync(device)
    base_rate = n_base * 32 / (time.perf_counter() - t0)
    rows.append(_row("mnist_throughput", "baseline img/s (DataLoader, fp32, batch 32)", round(base_rate), "img/s",
                     "", device=torch.cuda.get_device_name(device)))
    batch = 256 if quick else 512
    best = 0.0
    for compile_ in ((False,) if quick else (False, True)):
        model = _unet(device)
        kw = dict(batch_size=batch, amp=True, compile=compile_, device=device, progress=False, labels=y,
                  loss_kwargs={"p_uncond": 0.1}, generator=torch.Generator().manual_seed(0), lr=5e-4)
        train(model, sde, x, steps=20, **kw)  # warm-up (and compilation)
        s1, s2 = (50, 150) if quick else (100, 500)
        t1 = train(model, sde, x, steps=s1, **kw).seconds
        t2 = train(model, sde, x, steps=s2, **kw).seconds
        rate = (s2 - s1) * batch / max(t2 - t1, 1e-9)
        best = max(best, rate)
        rows.append(_row("mnist_throughput", f"train() img/s (bf16{', compile' if compile_ else ''}, batch {batch})",
                         round(rate), "img/s", target, speedup=round(rate / base_rate, 1),
                         device=torch.cuda.get_device_name(device)))
    rows.append(_row("mnist_throughput", "speed-up over baseline", round(best / base_rate, 1), "x", ">= 10x"))
    return rows


def bench_mnist_fid(quick: bool, device) -> list[dict]:
    from .classifier import mnist_fid
    from .recipes import generate, train_until
    from .sde import VPSDE

    budget = 60 if quick else 300  # the target: digits readable at a glance after 5 minutes on an H100
    metric = f"mnist_fid of 1,000 samples after {budget} s of GPU training"
    if device.type != "cuda":
        return [_row("mnist_fid", metric, None, "", "", NO_GPU)]
    x, y, _, _ = _mnist()
    sde, model = VPSDE(), _unet(device)
    res = train_until(model, sde, x, labels=y, steps=10**7, chunk=500, seconds=budget, progress=False,
                      batch_size=256, lr=1e-3, ema_decay=0.999, warmup=200, amp=True, device=device,
                      generator=torch.Generator().manual_seed(0),
                      loss_kwargs={"p_uncond": 0.1, "prediction": "v", "weighting": "v"})  # the recipe's loss
    s, _ = generate(res.ema, sde, 1000, sampler="dpm2m", steps=20, generator=torch.Generator().manual_seed(0))
    fid = mnist_fid(s)  # against the shipped statistics of the 10,000 test digits
    return [_row("mnist_fid", metric, round(fid, 3), "", "lower is better", steps=res.step, n_train=len(x),
                 sampler="dpm2m, 20 steps", train_vs_test=round(mnist_fid(x[:1000]), 3))]


def _sampling_model(device):
    from . import hub

    if "mnist_unet" in hub.available():
        try:
            return hub.pretrained("mnist_unet", device=device), "pretrained mnist_unet"
        except (FileNotFoundError, ValueError):
            pass
    return _unet(device, base=16), "untrained UNet(base=16) (no shipped mnist_unet)"


def bench_sampling(quick: bool, device) -> list[dict]:
    from .classifier import mnist_fid
    from .recipes import generate
    from .sde import VPSDE

    model, which = _sampling_model(device)
    nfe = [0]
    hook = model.register_forward_hook(lambda *a: nfe.__setitem__(0, nfe[0] + 1))
    n = (2 if quick else 16) if device.type == "cpu" else (64 if quick else 1000)
    with_fid = n >= 256  # FID (against the shipped test-digit statistics) only where it means something
    rows = []
    try:
        for name, steps in SAMPLER_STEPS.items():
            if quick and name == "rk45":
                continue
            k = max(5, steps // 25) if quick and steps else steps
            nfe[0] = 0
            _sync(device)
            t0 = time.perf_counter()
            x, _ = generate(model, VPSDE(), n, sampler=name, steps=k or 1, device=device, batch_size=n,
                            generator=torch.Generator().manual_seed(0))
            _sync(device)
            dt = time.perf_counter() - t0
            quality = {"max_abs_pixel": round(x.abs().max().item(), 3)}  # far above 1: the sampler diverged
            if with_fid:
                quality["fid"] = round(mnist_fid(x), 3)
            rows.append(_row(f"sampling:{name}", f"img/s, {k or 'adaptive'} steps, n={n}", round(n / dt, 3),
                             "img/s", "", nfe=nfe[0], seconds=round(dt, 2), model=which, **quality,
                             note=f"{nfe[0]} network evaluations, {dt:.1f} s, max |x| {quality['max_abs_pixel']}"
                                  + (f", FID {quality['fid']}" if "fid" in quality else "")))
    finally:
        hook.remove()
    return rows


def bench_classifier(quick: bool, device) -> list[dict]:
    from . import hub
    from .classifier import accuracy

    try:
        model = hub.pretrained("mnist_classifier", device=device)
    except (FileNotFoundError, ValueError) as e:
        return [_row("classifier", "held-out accuracy", None, "", ">= 0.95", f"unmeasured ({e})")]
    _, _, xt, yt = _mnist()
    target = ">= 0.99" if len(xt) == 10000 else ">= 0.97 (offline fallback digits)"
    return [_row("classifier", f"held-out accuracy ({len(xt)} test digits)", round(accuracy(model, xt, yt), 4), "",
                 target, shipped=hub.info("mnist_classifier").get("metrics"))]


def bench_likelihood(quick: bool, device) -> list[dict]:
    try:
        from .likelihood import image_bits_per_dim
    except ImportError:  # hook: sdelab.likelihood not there yet
        return [_row("likelihood", "s per batch of 32 (bits/dim)", None, "s", "", "unmeasured (no sdelab.likelihood)")]
    from .param import score_fn
    from .sde import VPSDE

    model, which = _sampling_model(device)
    _, _, xt, _ = _mnist()
    b, tol = (4, 1e-3) if quick else (32, 1e-3)  # 1e-3: log_likelihood's Hutchinson default (measured there)
    sde = VPSDE()
    _sync(device)
    t0 = time.perf_counter()
    bpd, info = image_bits_per_dim(score_fn(model, sde), sde, xt[:b].to(device), rtol=tol, atol=tol,
                                   generator=torch.Generator().manual_seed(0))
    _sync(device)
    dt = time.perf_counter() - t0
    return [_row("likelihood", f"s per batch of {b} (bits/dim, Hutchinson, RK45 tol {tol:g})", round(dt, 2), "s", "",
                 bits_per_dim=round(float(bpd.mean()), 3), nfe=info["nfe"], model=which,
                 note=f"{float(bpd.mean()):.3f} bits/dim, {info['nfe']} ODE evaluations")]


def bench_sampler_overhead(quick: bool, device) -> list[dict]:
    """Each sampler / a minimal loop of the same algorithm, interleaved in one run (CPU, float32, batch 64)."""
    from .bench_samplers import overhead_rows

    rows = []
    for r in overhead_rows(batch=64, steps=20 if quick else 100, repeats=3 if quick else 9):
        rows.append(_row(f"sampler_overhead:{r['sampler']}:{r['score']}", f"time / minimal loop ({r['score']} score, "
                         f"{r['steps']} steps, batch {r['batch']})", round(r["ratio"], 3), "x", "<= 1.1",
                         spread=[round(v, 3) for v in r["ratio_spread"]], cpu_s=r["package"]["cpu_s"],
                         wall_s=r["package"]["median_s"], load_avg=r["package"]["load_avg"]))
    return rows


def bench_sampler_quality(quick: bool, device) -> list[dict]:
    """Every sampler at 20 NFE on its default grid, exact ring score: speed beside the quality reached."""
    from .bench_samplers import quality_rows

    return [_row(f"sampler_quality:{r['sampler']}", f"sliced W2 at NFE {r['nfe']} ({r['grid']} grid, n={r['n']})",
                 round(r["sliced_w2"], 4), "", "", spread_err=round(r["spread_err"], 4), wall_s=r["median_s"],
                 wall_spread_s=[r["min_s"], r["max_s"]], cpu_s=r["cpu_s"], load_avg=r["load_avg"])
            for r in quality_rows(20, n=2_000 if quick else 20_000, repeats=1 if quick else 3)]


_BENCH = {"sampler_overhead": bench_sampler_overhead, "sampler_quality": bench_sampler_quality, "ring": bench_ring, "mnist_throughput": bench_mnist_throughput, "mnist_fid": bench_mnist_fid,
          "sampling": bench_sampling, "classifier": bench_classifier, "likelihood": bench_likelihood}


def _fmt(v) -> str:
    if v is None:
        return "-"
    return f"{v:,.4g}" if isinstance(v, float) and abs(v) < 1e4 else f"{v:,}"


def run(only=None, *, quick: bool = False, out="bench_results.json", device=None, print_table: bool = True) -> dict:
    """Run the rows named in `only` (default: all), print a table and write the JSON file `out` (None: don't)."""
    from .utils import default_device

    names = list(only) if only else list(ROWS)
    bad = [n for n in names if n not in _BENCH]
    if bad:
        raise ValueError(f"unknown bench rows {bad}; choose from {ROWS}")
    device = torch.device(device) if device is not None else default_device()
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    result = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"), "device": name,
              "cuda": device.type == "cuda", "torch": torch.__version__, "python": platform.python_version(),
              "threads": torch.get_num_threads(), "quick": bool(quick), "rows": []}
    for n in names:
        t0 = time.perf_counter()
        rows = _BENCH[n](quick, device)
        for r in rows:
            r["details"]["row_seconds"] = round(time.perf_counter() - t0, 1)
        result["rows"].extend(rows)
        if print_table:
            for r in rows:
                shown = _fmt(r["value"]) if r["status"] == "measured" else r["status"]
                note = f"  [{r['details']['note']}]" if r["details"].get("note") else ""
                print(f"{r['row']:22s} {r['metric'][:58]:58s} {shown:>24s} {r['unit']:6s} {r['target']}{note}",
                      flush=True)
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(result, indent=1) + "\n")
        if print_table:
            print(f"written to {out}  ({result['device']}, torch {result['torch']}, {result['date']})")
    return result
