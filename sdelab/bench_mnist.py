"""The MNIST training rows of `python -m sdelab bench` (CUDA for the real measurement): throughput of `train()`
against a plain loop at the same batch size and precision, the tutorial-style loop as a second, labelled
comparison, and the FID reached after a GPU time budget.

`bench_mnist_throughput(..., cpu_tiny=True)` runs the same code path on the CPU at tiny sizes (for the tests); its
rows say "CPU, tiny sizes" in their metric and device and are never GPU figures.
"""
from __future__ import annotations

import warnings

import torch

from .bench_timing import NO_GPU, measure, row, sync, timing_details

__all__ = ["bench_mnist_throughput", "bench_mnist_fid", "mnist_digits", "unet"]

THROUGHPUT_TARGET = ">= 20,000 img/s (H100)"
SAME_SETTING_TARGET = ">= 0.9 (train() adds at most 10 %)"
TUTORIAL_TARGET = ">= 10x (tutorial setting)"


def mnist_digits():
    """`(x, y, x_test, y_test)` from `sdelab.data.mnist` (its offline-fallback warning silenced)."""
    from .data import mnist

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (x, y), (xt, yt) = mnist("train"), mnist("test")
    return x, y, xt, yt


def unet(device, base: int = 32):
    """The MNIST U-Net of the recipes (`mnist_spec(base)`), initialised with seed 0, on `device`."""
    from .hub import build_model
    from .recipes import mnist_spec

    torch.manual_seed(0)
    return build_model(mnist_spec(base)).to(device)


def _sizes(quick: bool, cuda: bool) -> dict:
    """Batch, steps per timed call, repeats and U-Net width: GPU full / quick, or the CPU's tiny mode."""
    if not cuda:
        return dict(batch=16, steps=2, tutorial_steps=2, repeats=2, base=8, n_data=512, compile=(False,))
    if quick:
        return dict(batch=256, steps=30, tutorial_steps=60, repeats=3, base=32, n_data=None, compile=(False,))
    return dict(batch=512, steps=100, tutorial_steps=200, repeats=5, base=32, n_data=None, compile=(False, True))


def _train_call(model, sde, x, y, size: dict, amp: bool, compile_: bool):
    """`sdelab.train.train` for `size["steps"]` steps (a fresh run each call: no checkpoint)."""
    from .train import train

    kw = dict(steps=size["steps"], batch_size=size["batch"], amp=amp, compile=compile_, device=x.device,
              progress=False, labels=y, loss_kwargs={"p_uncond": 0.1}, lr=5e-4)
    return lambda: train(model, sde, x, generator=torch.Generator().manual_seed(0), **kw)


def _plain_call(model, sde, x, y, size: dict, amp: bool, compile_: bool):
    """The plain loop at train()'s setting: data on the device, the same batch, precision, loss and AdamW; no EMA,
    no gradient clipping, no bookkeeping."""
    from .losses import dsm_loss

    net = torch.compile(model) if compile_ else model
    opt = torch.optim.AdamW(model.parameters(), lr=5e-4)

    def run():
        for _ in range(size["steps"]):
            idx = torch.randint(len(x), (size["batch"],), device=x.device)
            with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
                loss = dsm_loss(net, sde, x[idx], y=y[idx], p_uncond=0.1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return run


def _tutorial_call(model, sde, x, y, size: dict, device):
    """The tutorial-style loop: a DataLoader over CPU tensors, batch 32, fp32, each batch copied to `device`."""
    from .losses import dsm_loss

    opt = torch.optim.AdamW(model.parameters(), lr=5e-4)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x.cpu(), y.cpu()), batch_size=32,
                                         shuffle=True, drop_last=True)
    batches = iter(())

    def run():
        nonlocal batches
        for _ in range(size["tutorial_steps"]):
            batch = next(batches, None)
            if batch is None:
                batches = iter(loader)
                batch = next(batches)
            loss = dsm_loss(model, sde, batch[0].to(device), y=batch[1].to(device), p_uncond=0.1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return run


def _device_label(device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return "CPU, tiny sizes (not a GPU figure)"


def _ratio(num: dict, den: dict, num_images: int, den_images: int) -> tuple[float, list[float]]:
    """img/s of `num` over img/s of `den` (two `measure` entries doing `*_images` images per call): the ratio of the
    medians and [worst, best] from the spreads."""
    (n_lo, n_hi), (d_lo, d_hi) = num["wall_spread_s"], den["wall_spread_s"]
    scale = num_images / den_images
    return scale * den["wall_s"] / num["wall_s"], [round(scale * d_lo / n_hi, 3), round(scale * d_hi / n_lo, 3)]


def bench_mnist_throughput(quick: bool, device, *, cpu_tiny: bool = False) -> list[dict]:
    """Training img/s of `train()` and of a plain loop at the same batch and precision, interleaved in one run, and
    of the tutorial-style loop (DataLoader, fp32, batch 32) in the same run as a second, labelled comparison.

    Without CUDA the row is "unmeasured (no GPU)" unless `cpu_tiny=True` asks for the CPU code path at tiny sizes
    (fp32 there: `train()` autocasts to bf16 on CUDA only)."""
    from .sde import VPSDE

    device = torch.device(device)
    cuda = device.type == "cuda"
    if not cuda and not cpu_tiny:
        return [row("mnist_throughput", "training img/s (bf16, data on device)", None, "img/s", THROUGHPUT_TARGET,
                    NO_GPU)]
    size, sde = _sizes(quick, cuda), VPSDE()
    x, y, _, _ = mnist_digits()
    x, y = (x, y) if size["n_data"] is None else (x[:size["n_data"]], y[:size["n_data"]])
    x_dev, y_dev = x.to(device), y.to(device)
    precision, tag = ("bf16 autocast", "") if cuda else ("fp32", " [CPU, tiny sizes]")
    common = dict(device=_device_label(device), batch=size["batch"], steps_per_call=size["steps"], base=size["base"],
                  precision=precision, n_data=len(x))
    images, tut_images = size["batch"] * size["steps"], 32 * size["tutorial_steps"]
    rows, runs = [], {}
    for compile_ in size["compile"]:
        fns = {"train": _train_call(unet(device, size["base"]), sde, x_dev, y_dev, size, cuda, compile_),
               "plain": _plain_call(unet(device, size["base"]), sde, x_dev, y_dev, size, cuda, compile_)}
        if not compile_:  # the tutorial loop runs interleaved with the first pair
            fns["tutorial"] = _tutorial_call(unet(device, size["base"]), sde, x, y, size, device)
        t = runs[compile_] = measure(fns, repeats=size["repeats"], warmup=1, sync=sync(device))
        label, suffix = f"{precision}{', compile' if compile_ else ''}, batch {size['batch']}", ":compile" * compile_
        ratio, spread = _ratio(t["train"], t["plain"], images, images)
        rows += [row(f"mnist_throughput{suffix}", f"train() img/s ({label}, data on device){tag}",
                     round(images / t["train"]["wall_s"], 1), "img/s", THROUGHPUT_TARGET if cuda else "",
                     **timing_details(t["train"]), **common),
                 row(f"mnist_throughput:plain{suffix}", f"plain loop img/s ({label}, data on device){tag}",
                     round(images / t["plain"]["wall_s"], 1), "img/s", "", **timing_details(t["plain"]), **common),
                 row(f"mnist_throughput:ratio{suffix}",
                     f"train() / plain loop, same batch and precision ({label}){tag}",
                     round(ratio, 3), "x", SAME_SETTING_TARGET if cuda else "", ratio_spread=spread,
                     **common)]
    tut = runs[False]["tutorial"]
    ratio, spread = _ratio(runs[False]["train"], tut, images, tut_images)
    tut_common = {**common, "batch": 32, "steps_per_call": size["tutorial_steps"], "precision": "fp32"}
    rows += [row("mnist_throughput:tutorial", f"tutorial-style loop img/s (DataLoader, fp32, batch 32){tag}",
                 round(tut_images / tut["wall_s"], 1), "img/s", "", **timing_details(tut), **tut_common),
             row("mnist_throughput:tutorial_ratio", f"train() ({precision}, batch {size['batch']}) / tutorial-style "
                 f"loop (fp32, batch 32): the tutorial setting{tag}", round(ratio, 3), "x",
                 TUTORIAL_TARGET if cuda else "", ratio_spread=spread, **common)]
    return rows


def bench_mnist_fid(quick: bool, device) -> list[dict]:
    """`mnist_fid` of 1,000 samples (dpm2m, 20 steps) after a GPU training budget (5 minutes; 1 in quick mode)."""
    from .bench_timing import load_average
    from .classifier import mnist_fid
    from .recipes import generate, train_until
    from .sde import VPSDE

    budget = 60 if quick else 300  # the target: digits readable at a glance after 5 minutes on an H100
    metric = f"mnist_fid of 1,000 samples after {budget} s of GPU training"
    device = torch.device(device)
    if device.type != "cuda":
        return [row("mnist_fid", metric, None, "", "", NO_GPU)]
    x, y, _, _ = mnist_digits()
    sde, model, load_before = VPSDE(), unet(device), load_average()
    res = train_until(model, sde, x, labels=y, steps=10**7, chunk=500, seconds=budget, progress=False,
                      batch_size=256, lr=1e-3, ema_decay=0.999, warmup=200, amp=True, device=device,
                      generator=torch.Generator().manual_seed(0),
                      loss_kwargs={"p_uncond": 0.1, "prediction": "v", "weighting": "v"})  # the recipe's loss
    s, _ = generate(res.ema, sde, 1000, sampler="dpm2m", steps=20, generator=torch.Generator().manual_seed(0))
    fid = mnist_fid(s)  # against the shipped statistics of the 10,000 test digits
    return [row("mnist_fid", metric, round(fid, 3), "", "lower is better", steps=res.step, n_train=len(x),
                sampler="dpm2m, 20 steps", train_vs_test=round(mnist_fid(x[:1000]), 3), device=_device_label(device),
                train_s=round(res.seconds, 1), load_avg=[load_before, load_average()])]
