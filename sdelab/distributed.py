r"""Training on several processes with PyTorch DistributedDataParallel (chapter "MNIST", section "Beyond one GPU").

`torchrun --nproc_per_node=N -m sdelab train mnist ...` starts N copies of the command line; each finds its rank in
the environment variables torchrun sets (`RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `MASTER_ADDR`, `MASTER_PORT`), joins
the process group (NCCL on CUDA, one GPU per process; Gloo on the CPU) and runs `train_ddp`:

* every rank draws its own data and noise (its generator is seeded with `seed` and its rank), a batch of
  `batch_size / N` samples, so the global batch is that of the one-process run;
* DDP starts every rank from rank 0's weights and averages the gradients in the backward pass (all-reduce),
  so after each AdamW step the weights, and hence the EMA, are identical on every rank;
* only rank 0 shows progress and writes the checkpoint, in the format of `sdelab.train` (so
  `load_weights`, `python -m sdelab sample --checkpoint` and resuming work as for one process); on resume
  every rank reads it.

The recorded loss of a step is the mean over ranks.
"""
from __future__ import annotations

import copy
import os
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from .losses import dsm_loss
from .train import TrainResult, load_checkpoint, save_checkpoint

__all__ = ["env", "is_distributed", "setup", "cleanup", "train_ddp"]


def env() -> tuple[int, int, int]:
    """`(rank, world_size, local_rank)` from torchrun's environment variables (`(0, 1, 0)` when absent)."""
    return (int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0)))


def is_distributed() -> bool:
    """True when started by torchrun with more than one process (`WORLD_SIZE > 1`)."""
    return env()[1] > 1


def setup(backend: str | None = None) -> torch.device:
    """Join the process group (once) and return this rank's device: `cuda:LOCAL_RANK` with NCCL when CUDA is
    available, else the CPU with Gloo. `backend` overrides the choice."""
    rank, world, local = env()
    cuda = torch.cuda.is_available() and backend != "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend or ("nccl" if cuda else "gloo"), rank=rank, world_size=world)
    if cuda:
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return torch.device("cpu")


def cleanup() -> None:
    """Leave the process group (if joined)."""
    if dist.is_initialized():
        dist.destroy_process_group()


def _mean_over_ranks(v: torch.Tensor) -> torch.Tensor:
    dist.all_reduce(v, op=dist.ReduceOp.SUM)
    return v / dist.get_world_size()


def train_ddp(model: nn.Module, sde, data, *, steps: int, batch_size: int = 256, lr: float = 2e-3,
              weight_decay: float = 0.0, warmup: int = 0, ema_decay: float = 0.999, grad_clip: float | None = 1.0,
              checkpoint=None, checkpoint_every: int = 1000, device=None, amp: bool | None = None,
              progress: bool = True, seed: int = 0, loss_kwargs: dict | None = None,
              labels: torch.Tensor | None = None, log_every: int = 50, meta: dict | None = None) -> TrainResult:
    """`sdelab.train.train` on every rank of an initialised process group, with DDP (module docstring).

    Same arguments as `train`, except: `batch_size` is the global batch (divisible by the number of ranks),
    `seed` replaces `generator` (rank r draws with seed `seed + 1000 * r`, reseeded on resume), and `compile` is not
    offered. Returns on every rank a `TrainResult` with identical `model`, `ema` and `losses`.
    """
    if not dist.is_initialized():
        raise RuntimeError("train_ddp needs an initialised process group: call sdelab.distributed.setup() "
                           "(or run under torchrun)")
    rank, world = dist.get_rank(), dist.get_world_size()
    if int(batch_size) % world:
        raise ValueError(f"batch_size must be divisible by the number of processes {world}, got {batch_size}")
    if isinstance(steps, bool) or int(steps) != steps or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    device = torch.device(device) if device is not None else torch.device("cpu")
    amp = device.type == "cuda" if amp is None else bool(amp)
    loss_kwargs, per_rank = dict(loss_kwargs or {}), int(batch_size) // world
    model.to(device)
    data = torch.as_tensor(data).to(device) if torch.is_tensor(data) else data
    labels = torch.as_tensor(labels).to(device) if labels is not None else None
    ema = copy.deepcopy(model).requires_grad_(False).eval()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    step, losses = 0, []
    path = Path(checkpoint) if checkpoint is not None else None
    if path is not None and path.exists():
        ck = load_checkpoint(path)
        model.load_state_dict(ck["model"])
        ema.load_state_dict(ck["ema"])
        opt.load_state_dict(ck["optimizer"])
        step, losses = int(ck["step"]), ck["losses"].tolist()
    gen = torch.Generator().manual_seed(int(seed) + 1000 * rank + 7919 * step)
    ddp = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    params, ema_params = list(model.parameters()), list(ema.parameters())
    config = {"batch_size": int(batch_size), "lr": float(lr), "ema_decay": float(ema_decay), "world_size": world,
              "loss_kwargs": {k: v if isinstance(v, (str, int, float)) else repr(v) for k, v in loss_kwargs.items()}}

    def sample(n):
        if callable(data) and not torch.is_tensor(data):
            out = data(n, gen)
            return out if isinstance(out, (tuple, list)) else (out, None)
        idx = torch.randint(data.shape[0], (n,), generator=gen).to(device)
        return data[idx], (labels[idx] if labels is not None else None)

    def save():
        if rank == 0 and path is not None:
            save_checkpoint(path, {"format": "sdelab-train-v1", "step": step, "model": model.state_dict(),
                                   "ema": ema.state_dict(), "optimizer": opt.state_dict(),
                                   "losses": torch.tensor(losses, dtype=torch.float64),
                                   "rng": {"torch": torch.get_rng_state(), "generator": gen.get_state()},
                                   "config": config, "meta": meta or {}})

    from tqdm.auto import tqdm

    bar = tqdm(total=int(steps), initial=step, disable=not progress or rank != 0, desc=f"train x{world}", unit="it")
    pending: list[torch.Tensor] = []
    start, t0 = step, time.perf_counter()
    model.train()
    while step < steps:
        x, y = sample(per_rank)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
            loss = dsm_loss(ddp, sde, x.to(device), generator=gen, y=None if y is None else y.to(device),
                            **loss_kwargs)
        opt.zero_grad(set_to_none=True)
        loss.backward()  # DDP all-reduces (averages) the gradients here
        if grad_clip is not None:
            nn.utils.clip_grad_norm_(params, grad_clip)
        for g in opt.param_groups:
            g["lr"] = lr * min(1.0, (step + 1) / warmup) if warmup else lr
        opt.step()
        d = min(ema_decay, (1 + step) / (10 + step))
        with torch.no_grad():
            for e, p in zip(ema_params, params):
                e.lerp_(p, 1 - d)
            for e, b in zip(ema.buffers(), model.buffers()):
                e.copy_(b)
        pending.append(loss.detach().float())
        step += 1
        bar.update(1)
        if step % log_every == 0 or step == steps or step % checkpoint_every == 0:
            losses.extend(_mean_over_ranks(torch.stack(pending)).cpu().tolist())
            pending.clear()
            bar.set_postfix(loss=f"{losses[-1]:.4f}")
        if step % checkpoint_every == 0 or step == steps:
            save()
    bar.close()
    dist.barrier()
    model.eval()
    return TrainResult(model=model, ema=ema, losses=losses, step=step, start_step=start,
                       seconds=time.perf_counter() - t0, checkpoint=str(path) if path is not None else None)
