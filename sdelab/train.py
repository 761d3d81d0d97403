r"""The training loop: AdamW on the denoising score-matching loss, EMA weights, gradient clipping, bf16 autocast on
CUDA, a progress bar, and atomic checkpoints from which an interrupted run resumes exactly (chapters "Training a
score model" and "MNIST").

One step: draw a batch (by index from an in-memory tensor, or from a sampler `fn(n, generator)`), compute
`sdelab.losses.dsm_loss`, clip the gradient norm, take an AdamW step, and update the EMA
$\bar\theta \leftarrow d_n\bar\theta + (1 - d_n)\theta$ with $d_n = \min(d, (1 + n)/(10 + n))$ (a warm-up so that short
runs are not dominated by the initial weights). All randomness flows through one CPU generator (and torch's CPU RNG
for dropout), both stored in the checkpoint, so on the CPU a resumed run is bitwise the run that was not stopped.

The network called in the loop (`net`: `model`, maybe wrapped by `DistributedDataParallel`, maybe `torch.compile`d)
is kept apart from `model`, whose `state_dict` is what the checkpoint stores. What differs between one process and
several (the wrapper, who writes checkpoints and shows progress, averaging the loss, the random states) is gathered in
`SingleProcess`; `sdelab.distributed` overrides it, so the same loop serves both.
"""
from __future__ import annotations

import contextlib
import copy
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from .checkpoint import (DeferInterrupt, check_writable, load_checkpoint, load_weights, remove_orphans, rng_state,
                         run_lock, save_checkpoint, set_rng_state)
from .losses import dsm_loss
from .utils import default_device

__all__ = ["train", "TrainResult", "SingleProcess", "save_checkpoint", "load_checkpoint", "load_weights"]

_LOSS_KEYS = ("weighting", "prediction", "t_eps", "p_uncond")


@dataclass
class TrainResult:
    """What `train` returns: the trained `model`, its EMA copy `ema` (use it for sampling), the loss of every step
    (`losses[i]` is the loss of step i + 1), the final `step`, the step it started (or resumed) from, and the
    seconds spent in this call."""

    model: nn.Module
    ema: nn.Module
    losses: list[float] = field(default_factory=list)
    step: int = 0
    start_step: int = 0
    seconds: float = 0.0
    checkpoint: str | None = None


class SingleProcess:
    """How `train` runs in one process. `sdelab.distributed.DDPProcesses` overrides each member for several."""

    is_main = True  # this process shows progress and writes checkpoints
    defer_interrupt = True  # Ctrl-C/SIGTERM/SIGHUP finish the step and checkpoint (one process only: ranks would diverge)
    timed_checkpoints = True  # also checkpoint by the clock (ranks would disagree on when)

    def wrap(self, model: nn.Module) -> nn.Module:
        """The network the loop calls (a DDP wrapper, say); `model` itself is what gets checkpointed."""
        return model

    def mean(self, losses: torch.Tensor) -> torch.Tensor:
        """Per-step losses of this process -> the losses recorded (the mean over processes)."""
        return losses

    def config(self) -> dict:
        """Extra settings stored in the checkpoint; resuming with other values warns."""
        return {}

    def rng_state(self, generator: torch.Generator | None) -> dict:
        """The random state a checkpoint stores (called on every process at the same steps)."""
        return rng_state(generator)

    def set_rng_state(self, state: dict, generator: torch.Generator | None, step: int) -> None:
        """Restore the random state of a checkpoint written after `step` steps."""
        set_rng_state(state, generator)

    def finish(self) -> None:
        """Called once the last step is done."""


def _check_args(steps, batch_size, lr, ema_decay, grad_clip, checkpoint_every, log_every, warmup, weight_decay,
                generator, loss_kwargs):
    for name, v in (("steps", steps), ("batch_size", batch_size), ("checkpoint_every", checkpoint_every),
                    ("log_every", log_every)):
        if isinstance(v, bool) or int(v) != v or v < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
    if isinstance(warmup, bool) or int(warmup) != warmup or warmup < 0:
        raise ValueError(f"warmup must be an integer >= 0, got {warmup!r}")
    if not float(lr) > 0 or lr == float("inf"):
        raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
    if not 0 <= float(ema_decay) < 1:
        raise ValueError(f"ema_decay must lie in [0, 1), got {ema_decay!r}")
    if grad_clip is not None and not float(grad_clip) > 0:
        raise ValueError(f"grad_clip must be > 0 or None, got {grad_clip!r}")
    if not float(weight_decay) >= 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
    if generator is not None and (not isinstance(generator, torch.Generator) or generator.device.type != "cpu"):
        raise ValueError("generator must be a CPU torch.Generator (draws happen on the CPU, then move to the device)")
    bad = set(loss_kwargs) - set(_LOSS_KEYS)
    if bad:
        raise ValueError(f"loss_kwargs may only hold {_LOSS_KEYS}, got {sorted(bad)}")


def train(model: nn.Module, sde, data: torch.Tensor | Callable, *, steps: int, batch_size: int = 256, lr: float = 2e-3,
          weight_decay: float = 0.0, warmup: int = 0, ema_decay: float = 0.999, grad_clip: float | None = 1.0,
          checkpoint=None, checkpoint_every: int = 1000, checkpoint_seconds: float | None = 60.0, device=None,
          amp: bool | None = None,
          compile: bool = False, progress: bool = True, generator: torch.Generator | None = None,
          loss_kwargs: dict | None = None, labels: torch.Tensor | None = None, log_every: int = 50,
          meta: dict | None = None, parallel: SingleProcess | None = None) -> TrainResult:
    r"""Train `model` (in place) with denoising score matching on `data`; return a `TrainResult`.

    Args:
        model: network `model(x, t[, y])` predicting what `loss_kwargs["prediction"]` says ($\varepsilon$ by default).
        sde: the forward SDE.
        data: a tensor `(N, ...)` (moved to `device` once; batches drawn by index with replacement), or a sampler
            `fn(n, generator) -> x` or `-> (x, y)` for infinite data.
        steps: total number of optimisation steps (a resumed run continues up to `steps`).
        batch_size, lr, weight_decay: AdamW settings (betas 0.9, 0.999); `warmup` linear lr warm-up steps.
        ema_decay: $d \in [0, 1)$ of the exponential moving average.
        grad_clip: max gradient norm, or None.
        checkpoint: a file path; written atomically every `checkpoint_every` steps, at least every
            `checkpoint_seconds` seconds (None: by steps only), at the end, and on Ctrl-C, SIGTERM or SIGHUP. If it
            exists, training resumes from it (and returns at once when it already holds `steps` steps); a checkpoint
            written with other settings (`config`, `meta`, parameter shapes) is refused with a `ValueError` naming
            them. The path is checked to be writable before training, and locked for the run (a second run on it
            raises `RuntimeError`).
        device: None for `sdelab.utils.default_device()` (CUDA when available).
        amp: bf16 autocast; None means on for CUDA, off otherwise (True on the CPU is an error).
        compile: run the network through `torch.compile`.
        progress: show a tqdm bar with the loss, it/s and samples/s.
        generator: CPU generator for every draw (None: torch's global RNG). Both states are checkpointed and, on
            resume, overwrite those of `generator` and of torch's CPU RNG.
        loss_kwargs: `weighting`, `prediction`, `t_eps`, `p_uncond` for `dsm_loss`.
        labels: class labels `(N,)` aligned with a data tensor (class-conditional training).
        log_every: steps between progress updates (and loss read-backs from the device).
        meta: plain data (str, numbers, lists, dicts) stored in the checkpoint, e.g. the model's constructor args.
        parallel: how the run is spread over processes; None for one process (`SingleProcess`). Use
            `sdelab.distributed.train_ddp` rather than passing one by hand.
    Raises:
        KeyboardInterrupt: after writing a checkpoint (when `checkpoint` is set), so nothing is lost.
    """
    loss_kwargs, par = dict(loss_kwargs or {}), parallel or SingleProcess()
    _check_args(steps, batch_size, lr, ema_decay, grad_clip, checkpoint_every, log_every, warmup, weight_decay,
                generator, loss_kwargs)
    steps, batch_size, log_every, checkpoint_every = int(steps), int(batch_size), int(log_every), int(checkpoint_every)
    device = torch.device(device) if device is not None else default_device()
    amp = device.type == "cuda" if amp is None else bool(amp)
    if amp and device.type != "cuda":
        raise ValueError(f"amp=True needs a CUDA device (bf16 autocast is used on CUDA only), got device {device}")
    model.to(device)
    if callable(data) and not torch.is_tensor(data):
        if labels is not None:
            raise ValueError("labels go with a data tensor; a sampler fn(n, generator) returns (x, y) itself")
        sampler = data
    else:
        data = torch.as_tensor(data).to(device)
        if data.ndim < 2 or data.shape[0] < 1:
            raise ValueError(f"data must be a tensor of shape (N, ...) with N >= 1, or a sampler fn(n, generator); "
                             f"got shape {tuple(data.shape)}")
        if labels is not None:
            labels = torch.as_tensor(labels).to(device)
            if labels.shape != data.shape[:1]:
                raise ValueError(f"labels must have shape (N,) = ({data.shape[0]},), got {tuple(labels.shape)}")

        def sampler(n, gen):
            idx = torch.randint(data.shape[0], (n,), generator=gen).to(device)
            return data[idx] if labels is None else (data[idx], labels[idx])

    ema = copy.deepcopy(model).requires_grad_(False).eval()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    losses: list[float] = []
    step = 0
    config = {"batch_size": batch_size, "lr": float(lr), "ema_decay": float(ema_decay),
              "loss_kwargs": {k: v if isinstance(v, (str, int, float)) else repr(v) for k, v in loss_kwargs.items()},
              **par.config()}
    path = check_writable(checkpoint) if checkpoint is not None else None
    lock = contextlib.ExitStack()
    if path is not None and par.is_main:
        remove_orphans(path)
        lock.enter_context(run_lock(path))
    if path is not None and path.exists():
        try:
            step, losses, generator = _resume(path, model, ema, opt, config, meta, par, generator)
        except BaseException:
            lock.close()
            raise
    start = step
    net = par.wrap(model)
    net = torch.compile(net) if compile else net
    params, ema_params = list(model.parameters()), list(ema.parameters())

    def state(rng: dict) -> dict:
        return {"format": "sdelab-train-v1", "step": step, "model": model.state_dict(), "ema": ema.state_dict(),
                "optimizer": opt.state_dict(), "losses": torch.tensor(losses, dtype=torch.float64), "rng": rng,
                "config": config, "meta": meta or {}}

    pending: list[torch.Tensor] = []

    def flush():
        if pending:
            vals = par.mean(torch.stack(pending).float()).tolist()
            pending.clear()
            losses.extend(vals)
            bad = [v for v in vals if not math.isfinite(v)]
            if bad:
                _diverged(f"non-finite training loss {bad[0]} at or before step {step}", path)

    from tqdm.auto import tqdm

    bar = tqdm(total=steps, initial=step, disable=not progress or step >= steps or not par.is_main, desc="train",
               unit="it")
    model.train()
    t0 = tick = saved = time.perf_counter()
    tick_step, snapshot = step, None
    try:
        with DeferInterrupt(par.defer_interrupt) as sigint:
            while step < steps:
                snapshot = rng_state(generator)  # the state a checkpoint needs if this step is cut short
                batch = sampler(batch_size, generator)
                x, y = batch if isinstance(batch, (tuple, list)) else (batch, None)
                x = x.to(device)
                y = y.to(device) if y is not None else None
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
                    loss = dsm_loss(net, sde, x, generator=generator, y=y, **loss_kwargs)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if grad_clip is not None:
                    nn.utils.clip_grad_norm_(params, grad_clip)
                for g in opt.param_groups:
                    g["lr"] = lr * min(1.0, (step + 1) / warmup) if warmup else lr
                with sigint.critical():  # a second signal waits until the step is whole
                    opt.step()
                    d = min(ema_decay, (1 + step) / (10 + step))
                    with torch.no_grad():
                        for e, p in zip(ema_params, params):
                            e.lerp_(p, 1 - d)
                        for e, b in zip(ema.buffers(), model.buffers()):
                            e.copy_(b)
                    pending.append(loss.detach())
                    step += 1
                    snapshot = None
                bar.update(1)
                if step % log_every == 0 or step == steps or sigint.requested:
                    flush()
                    now = time.perf_counter()
                    rate = (step - tick_step) / max(now - tick, 1e-9)
                    bar.set_postfix(loss=f"{losses[-1]:.4f}", samples_s=f"{rate * batch_size:,.0f}")
                    tick, tick_step = now, step
                timed = (par.timed_checkpoints and checkpoint_seconds is not None
                         and time.perf_counter() - saved >= checkpoint_seconds)
                if path is not None and (step % checkpoint_every == 0 or step == steps or timed):
                    flush()
                    rng = par.rng_state(generator)  # on every process: it may gather theirs
                    if not all(bool(torch.isfinite(p).all()) for p in params):
                        _diverged(f"non-finite network weights after step {step}", path)
                    if par.is_main:
                        save_checkpoint(path, state(rng))
                    saved = time.perf_counter()
                if sigint.requested:  # Ctrl-C arrived during the step, which is now complete
                    raise KeyboardInterrupt
    except KeyboardInterrupt:
        if path is not None and par.is_main:
            # Cut short before the update: the state is that of `step` steps with the RNG as it was when the
            # unfinished step began (`snapshot`); after it, the current one. The update itself is never cut.
            flush()
            save_checkpoint(path, state(snapshot if snapshot is not None else rng_state(generator)))
            bar.write(f"interrupted at step {step}: checkpoint written to {path}")
        raise
    finally:
        bar.close()
        lock.close()
    par.finish()
    model.eval()
    model.prediction = ema.prediction = loss_kwargs.get("prediction", "eps")  # read by sdelab.param.eps_fn/score_fn
    return TrainResult(model=model, ema=ema, losses=losses, step=step, start_step=start,
                       seconds=time.perf_counter() - t0, checkpoint=str(path) if path is not None else None)


def _diverged(what: str, path: Path | None):
    """Stop a diverging run (never overwriting the last good checkpoint with it)."""
    kept = f"the last good checkpoint {path} is kept" if path is not None and path.exists() else \
        "no checkpoint was written"
    raise FloatingPointError(f"training diverged: {what}; lower the learning rate or check the data ({kept})")


def _resume(path: Path, model, ema, opt, config: dict, meta: dict | None, par, generator):
    """Load the checkpoint at `path` into model, EMA and optimizer after checking it was written by the same kind of
    run; returns `(step, losses, generator)`."""
    try:
        ck = load_checkpoint(path)
    except ValueError as e:
        raise ValueError(f"{e}; it is left untouched: move it or train into another path") from None
    if not isinstance(ck, dict) or ck.get("format") != "sdelab-train-v1":
        raise ValueError(f"checkpoint {path} is not a training checkpoint of sdelab.train; it is left untouched: "
                         f"move it or train into another path")
    old_meta = ck.get("meta") or {}
    differ = [f"{k}: {old_meta.get(k)!r} in the file, {v!r} now" for k, v in (meta or {}).items()
              if k in old_meta and old_meta[k] != v]
    loose = par.config()  # e.g. the number of processes, which may change between runs
    differ += [f"{k}: {ck.get('config', {}).get(k)!r} in the file, {v!r} now" for k, v in config.items()
               if k not in loose and ck.get("config", {}).get(k) != v]
    mine = model.state_dict()
    shapes = [k for k, v in ck["model"].items() if k not in mine or tuple(mine[k].shape) != tuple(v.shape)]
    shapes += [k for k in mine if k not in ck["model"]]
    if shapes:
        differ.append(f"network parameters {shapes[:3]}{' ...' if len(shapes) > 3 else ''} do not match")
    if differ:
        raise ValueError(f"checkpoint {path} was written by another run ({'; '.join(differ)}): resume with the same "
                         f"settings or train into a new path")
    model.load_state_dict(ck["model"])
    ema.load_state_dict(ck["ema"])
    opt.load_state_dict(ck["optimizer"])
    step, losses = int(ck["step"]), ck["losses"].tolist()
    if generator is None and ck["rng"].get("generator") is not None:
        generator = torch.Generator()
    par.set_rng_state(ck["rng"], generator, step)
    return step, losses, generator
