"""Checkpoints of `sdelab.train`: atomic writes, safe loads, the random state that makes a resumed run exact, and a
Ctrl-C that waits for the step to finish.

A checkpoint is a dict of tensors and plain data (`format`, `step`, `model`, `ema`, `optimizer`, `losses`, `rng`,
`config`, `meta`), so it loads with `torch.load(weights_only=True)`.
"""
from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import torch
from torch import nn

__all__ = ["atomic_write", "save_checkpoint", "load_checkpoint", "load_weights", "rng_state", "set_rng_state", "DeferInterrupt"]


def atomic_write(path, write) -> None:
    """Call `write(f)` on a binary file opened in a temporary file beside `path`, flush it to disk, then
    `os.replace` it onto `path` (creating the folder if needed).

    A crash or kill mid-write leaves the previous file at `path` untouched (and no partial file behind).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def save_checkpoint(path, state: dict) -> None:
    """Write `state` with `torch.save` atomically (`atomic_write`)."""
    atomic_write(path, lambda f: torch.save(state, f))


def load_checkpoint(path, map_location="cpu") -> dict:
    """Load a checkpoint written by `train` with `torch.load(weights_only=True)` (only tensors and plain data)."""
    return torch.load(Path(path), map_location=map_location, weights_only=True)


def load_weights(model: nn.Module, path, *, ema: bool = True) -> nn.Module:
    """Load the EMA weights (or, with `ema=False`, the raw weights) of a `train` checkpoint into `model`."""
    model.load_state_dict(load_checkpoint(path)["ema" if ema else "model"])
    return model


def rng_state(generator: torch.Generator | None) -> dict:
    state = {"torch": torch.get_rng_state(), "generator": generator.get_state() if generator is not None else None}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict, generator: torch.Generator | None) -> None:
    torch.set_rng_state(state["torch"])
    if generator is not None and state.get("generator") is not None:
        generator.set_state(state["generator"])
    if state.get("cuda") is not None and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


class DeferInterrupt:
    """While active (when `enabled`, on the main thread, with the default handler), Ctrl-C sets `requested` instead of raising, so the loop can
    finish the step, write a consistent checkpoint and then raise. A second Ctrl-C raises at once."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled

    def __enter__(self):
        self.requested, self.old = False, None
        if self.enabled and threading.current_thread() is threading.main_thread() and \
                signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            self.old = signal.signal(signal.SIGINT, self._handler)
        return self

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        if self.old is not None:
            signal.signal(signal.SIGINT, self.old)
        return False
