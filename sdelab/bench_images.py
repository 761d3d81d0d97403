"""The image rows of `python -m sdelab bench` with the shipped MNIST U-Net: every sampler at the same number of
network evaluations (NFE) with the quality reached beside its speed, and the probability-flow bits/dim.

Quality of the `sampling` rows: the largest |pixel| (far above 1: the sampler diverged); with the shipped classifier,
the fraction of images it calls with probability >= 0.9 (`confident`) and the fraction it labels as the class asked
for (`label_match`); with n >= 256 images, also `mnist_fid` against the shipped test-digit statistics.
"""
from __future__ import annotations

import functools

import torch

from .bench_timing import measure, row, sync, timing_details
from .grids import EVALS_PER_STEP

__all__ = ["SAMPLING_NFE", "evals_per_step", "sampling_samplers", "sampling_steps", "grid_kind", "image_quality",
           "bench_sampling", "bench_likelihood"]

SAMPLING_NFE = 20
"""Network evaluations per image in every `sampling` row (rk45 is adaptive and reports its own)."""
CONFIDENT = 0.9


def evals_per_step(sampler: str) -> int | None:
    """Network evaluations per step of `sampler`, a name `sdelab.recipes.generate` accepts:
    `sdelab.grids.EVALS_PER_STEP` of the function it runs; None for rk45 (adaptive, no fixed count)."""
    from .recipes import sampler_function

    return EVALS_PER_STEP.get(sampler_function(sampler).__name__)


def sampling_samplers() -> list[str]:
    """The samplers of `sdelab.recipes.generate` with a fixed number of evaluations per step (all but rk45), in its
    order: one `sampling` row each."""
    from .recipes import SAMPLER_NAMES

    return [name for name in SAMPLER_NAMES if evals_per_step(name) is not None]


def sampling_steps(sampler: str, nfe: int = SAMPLING_NFE) -> int:
    """Steps that give `sampler` `nfe` network evaluations."""
    per_step = evals_per_step(sampler)
    if per_step is None:
        raise ValueError(f"sampler must be one of {sampling_samplers()} (rk45 picks its own steps), got {sampler!r}")
    if isinstance(nfe, bool) or not isinstance(nfe, int) or nfe < 1 or nfe % per_step:
        raise ValueError(f"nfe must be a positive integer divisible by {per_step} for {sampler}, got {nfe!r}")
    return nfe // per_step


def _sampling_model(device):
    from . import hub
    from .bench_mnist import unet

    if "mnist_unet" in hub.available():
        try:
            return hub.pretrained("mnist_unet", device=device), "pretrained mnist_unet"
        except (FileNotFoundError, ValueError):
            pass
    return unet(device, base=16), "untrained UNet(base=16) (no shipped mnist_unet)"


def _classifier():
    from . import hub

    try:
        return hub.pretrained("mnist_classifier", device="cpu").eval()
    except (FileNotFoundError, ValueError):
        return None


def image_quality(x: torch.Tensor, labels: torch.Tensor | None, classifier) -> dict:
    """The quality fields of a `sampling` row for images `x` `(n, 1, 28, 28)` drawn for class `labels` (module
    docstring)."""
    from .classifier import mnist_fid

    q = {"max_abs_pixel": round(x.abs().max().item(), 3)}
    if classifier is not None:
        with torch.no_grad():
            p = classifier(x.clamp(-1, 1)).softmax(1)
        q["confident"] = round((p.max(1).values >= CONFIDENT).double().mean().item(), 3)
        if labels is not None:
            q["label_match"] = round((p.argmax(1) == labels).double().mean().item(), 3)
    if len(x) >= 256:
        q["fid"] = round(mnist_fid(x), 3)
    return q


def grid_kind(times: list[float], steps: int, sde) -> str:
    """Which `sde.time_grid(steps, kind=...)` the network was evaluated on: the kind whose times before the last one
    all appear in `times` (the first sample's t of every evaluation), else "other"."""
    seen = torch.tensor(sorted(set(times)), dtype=torch.float64)
    for kind in sde.GRID_KINDS:
        grid = sde.time_grid(steps, 1e-3, kind=kind).double()[:-1]
        if len(seen) and all((seen - g).abs().min() < 1e-5 for g in grid):
            return kind
    return "other"


def _sizes(quick: bool, device) -> tuple[int, int]:
    """Images per call and timed repeats: a couple of images on the CPU, 1,000 (FID-sized) on a GPU."""
    if device.type == "cpu":
        return (2, 3) if quick else (16, 5)
    return (64, 3) if quick else (1000, 5)


def bench_sampling(quick: bool, device) -> list[dict]:
    """img/s of every sampler at `SAMPLING_NFE` network evaluations (counted by a forward hook), from the median of
    the repeats (all samplers interleaved) after a warm-up call each, with the quality reached (rk45, adaptive, only
    in full mode)."""
    from .recipes import generate
    from .sde import VPSDE

    device = torch.device(device)
    model, which = _sampling_model(device)
    classifier, (n, repeats) = _classifier(), _sizes(quick, device)
    evals: list[torch.Tensor] = []  # the first sample's t at every network evaluation of the last call
    hook = model.register_forward_hook(lambda module, args, out: evals.append(args[1].detach().flatten()[:1]))
    described = "max |pixel|" + (", classifier confident / label-match rates" if classifier is not None else "") + \
        (", mnist_fid" if n >= 256 else "") + f" of the {n} images"
    names = [*sampling_samplers(), *(() if quick else ("rk45",))]
    steps = {name: sampling_steps(name) if name != "rk45" else SAMPLING_NFE for name in names}  # rk45: t_eval only

    def go(name):
        evals.clear()
        x, labels = generate(model, VPSDE(), n, sampler=name, steps=steps[name], device=device, batch_size=n,
                             generator=torch.Generator().manual_seed(0))
        return x, labels, torch.cat(evals).double().cpu().tolist()

    rows = []
    try:  # all samplers interleaved in one run, so that a change of load hits them alike
        timed = measure({name: functools.partial(go, name) for name in names}, repeats=repeats, warmup=1,
                        sync=sync(device))
        for name, t in timed.items():
            x, labels, times = t["values"][-1]
            q, nfe = image_quality(x, labels, classifier), len(times)
            grid = "adaptive" if name == "rk45" else grid_kind(times, steps[name], VPSDE())
            evals_text = f"{SAMPLING_NFE} NFE ({steps[name]} steps)" if name != "rk45" else f"adaptive, {nfe} NFE"
            lo, hi = t["wall_spread_s"]
            rows.append(row(f"sampling:{name}", f"img/s at {evals_text}, n={n}", round(n / t["wall_s"], 3), "img/s",
                            "", **timing_details(t), img_s_spread=[round(n / hi, 3), round(n / lo, 3)], nfe=nfe,
                            steps=steps[name], n=n, model=which, grid=grid, quality=described, **q,
                            note=f"{nfe} NFE, {grid} grid, " + ", ".join(f"{k} {v}" for k, v in q.items())))
    finally:
        hook.remove()
    return rows


def bench_likelihood(quick: bool, device) -> list[dict]:
    """Seconds per batch of probability-flow bits/dim (Hutchinson, RK45 tolerance 1e-3) after a warm-up on one image
    at a loose tolerance."""
    from .bench_mnist import mnist_digits
    from .likelihood import image_bits_per_dim
    from .param import score_fn
    from .sde import VPSDE

    device = torch.device(device)
    model, which = _sampling_model(device)
    _, _, xt, _ = mnist_digits()
    b, tol, sde = (4 if quick else 32), 1e-3, VPSDE()  # 1e-3: log_likelihood's Hutchinson default (measured there)

    def bpd(batch, tol):
        return lambda: image_bits_per_dim(score_fn(model, sde), sde, xt[:batch].to(device), rtol=tol, atol=tol,
                                          generator=torch.Generator().manual_seed(0))

    t = measure({"bpd": bpd(b, tol)}, warm={"bpd": bpd(1, 1e-1)}, repeats=1 if quick else 3, warmup=1,
                sync=sync(device))["bpd"]
    bits, info = t["values"][-1]
    return [row("likelihood", f"s per batch of {b} (bits/dim, Hutchinson, RK45 tol {tol:g})", round(t["wall_s"], 2),
                "s", "", **timing_details(t), bits_per_dim=round(float(bits.mean()), 3), nfe=info["nfe"], model=which,
                note=f"{float(bits.mean()):.3f} bits/dim, {info['nfe']} ODE evaluations")]
