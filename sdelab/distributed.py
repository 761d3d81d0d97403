r"""Training on several processes with PyTorch DistributedDataParallel (chapter "MNIST", section "Beyond one GPU").

`torchrun --nproc_per_node=N -m sdelab train mnist ...` starts N copies of the command line; each finds its rank in
the environment variables torchrun sets (`RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `MASTER_ADDR`, `MASTER_PORT`), joins
the process group (NCCL on CUDA, one GPU per process; Gloo on the CPU) and runs `train_ddp`:

* every rank draws its own data and noise (its generator is seeded with `seed` and its rank), a batch of
  `batch_size / N` samples, so the global batch is that of the one-process run;
* DDP starts every rank from rank 0's weights and averages the gradients in the backward pass (all-reduce),
  so after each AdamW step the weights, and hence the EMA, are identical on every rank;
* only rank 0 shows progress and writes the checkpoint, in the format of `sdelab.train` (so
  `load_weights`, `python -m sdelab sample --checkpoint` and resuming work as for one process), with every rank's
  random state in it; on resume every rank reads it and takes its own state back, so on the CPU a resumed run is
  bitwise the run that was not stopped.

The loop itself is `sdelab.train.train`; `DDPProcesses` supplies the differences.

The recorded loss of a step is the mean over ranks.
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import nn

from .train import SingleProcess, TrainResult, train

__all__ = ["env", "is_distributed", "setup", "cleanup", "train_ddp", "DDPProcesses"]


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


class DDPProcesses(SingleProcess):
    """What `sdelab.train.train` does differently on one rank of several: DDP wrapper, rank 0 writes, mean loss,
    and each rank's own random state (all gathered into rank 0's checkpoint, so a resumed run continues exactly)."""

    defer_interrupt = False
    timed_checkpoints = False  # ranks must agree on when to checkpoint (the RNG states are gathered)

    def __init__(self, device: torch.device, seed: int):
        self.rank, self.world, self.device, self.seed = dist.get_rank(), dist.get_world_size(), device, int(seed)
        self.is_main = self.rank == 0

    def wrap(self, model):
        return nn.parallel.DistributedDataParallel(model, device_ids=[self.device.index]
                                                   if self.device.type == "cuda" else None)

    def mean(self, losses):
        losses = losses.to(self.device)
        dist.all_reduce(losses, op=dist.ReduceOp.SUM)
        return losses.cpu() / self.world

    def config(self):
        return {"world_size": self.world}

    def rng_state(self, generator):
        own = super().rng_state(generator)
        ranks = [None] * self.world
        dist.all_gather_object(ranks, own)
        return {**own, "ranks": ranks}

    def set_rng_state(self, state, generator, step):
        ranks = state.get("ranks")
        if ranks is not None and len(ranks) == self.world:
            super().set_rng_state(ranks[self.rank], generator, step)
        else:  # written by another number of processes: a fresh stream per rank (the run will not repeat exactly)
            generator.manual_seed(self.seed + 1000 * self.rank + 7919 * step)

    def finish(self):
        dist.barrier()


def train_ddp(model: nn.Module, sde, data, *, steps: int, batch_size: int = 256, device=None, seed: int = 0,
              **kwargs) -> TrainResult:
    """`sdelab.train.train` on every rank of an initialised process group, with DDP (module docstring).

    Same arguments as `train`, except: `batch_size` is the global batch (divisible by the number of ranks), `device`
    defaults to the CPU (pass what `setup()` returns), and `seed` replaces `generator` (rank r draws with seed
    `seed + 1000 * r`; a checkpoint stores every rank's state). Returns on every rank a `TrainResult` with identical
    `model`, `ema` and `losses`.
    """
    if not dist.is_initialized():
        raise RuntimeError("train_ddp needs an initialised process group: call sdelab.distributed.setup() "
                           "(or run under torchrun)")
    if "generator" in kwargs or "parallel" in kwargs:
        raise ValueError("train_ddp makes each rank's generator from `seed` and its own `parallel`: pass neither")
    world = dist.get_world_size()
    if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1 or int(batch_size) % world:
        raise ValueError(f"batch_size must be a positive integer divisible by the number of processes {world}, "
                         f"got {batch_size!r}")
    device = torch.device(device) if device is not None else torch.device("cpu")
    par = DDPProcesses(device, seed)
    generator = torch.Generator().manual_seed(par.seed + 1000 * par.rank)
    return train(model, sde, data, steps=steps, batch_size=int(batch_size) // world, device=device,
                 generator=generator, parallel=par, **kwargs)
