"""Checkpoints of `sdelab.train`: atomic writes, safe loads, the random state that makes a resumed run exact, and a
Ctrl-C that waits for the step to finish.

A checkpoint is a dict of tensors and plain data (`format`, `step`, `model`, `ema`, `optimizer`, `losses`, `rng`,
`config`, `meta`), so it loads with `torch.load(weights_only=True)`.
"""
from __future__ import annotations

import contextlib
import errno
import os
import signal
import threading
from pathlib import Path

import torch
from torch import nn

__all__ = ["atomic_write", "save_checkpoint", "load_checkpoint", "load_weights", "rng_state", "set_rng_state",
           "DeferInterrupt", "check_writable", "remove_orphans", "run_lock", "safe_load"]


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
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise OSError(e.errno, f"disk full while writing {path}; the previous file there is intact") from None
        raise
    finally:
        if tmp.exists():
            tmp.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_orphans(path) -> list[Path]:
    """Delete the temporary files `atomic_write` left beside `path` when its process was killed mid-write
    (`.NAME.tmpPID` whose PID no longer runs). Returns the files removed."""
    path, gone = Path(path), []
    for tmp in path.parent.glob(f".{path.name}.tmp*"):
        pid = tmp.name.rsplit(".tmp", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            tmp.unlink(missing_ok=True)
            gone.append(tmp)
    return gone


def check_writable(path, name: str = "checkpoint") -> Path:
    """Fail early, with one clear `ValueError`, when a checkpoint could not be written to `path` (a folder, an
    unwritable folder, a missing parent that cannot be made) -- before any training time is spent."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{name} must be a file path, but {path} is a directory")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe = path.with_name(f".{path.name}.tmp{os.getpid()}")
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise ValueError(f"{name} {path} cannot be written: {e.strerror or e}") from None
    return path


@contextlib.contextmanager
def run_lock(path):
    """Hold an exclusive lock on `path` for one training run, so a second run on the same checkpoint stops at once
    (`RuntimeError`) instead of both writing it. POSIX only (elsewhere the lock is skipped)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    path = Path(path)
    lock = path.with_name(f".{path.name}.lock")
    with open(lock, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.seek(0)
            other = f.read().strip() or "?"
            raise RuntimeError(f"another run (pid {other}) is training into {path}; wait for it or use another "
                               f"path") from None
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def save_checkpoint(path, state: dict) -> None:
    """Write `state` with `torch.save` atomically (`atomic_write`)."""
    atomic_write(path, lambda f: torch.save(state, f))


def safe_load(path, map_location="cpu"):
    """`torch.load(path, weights_only=True)`, with every way a file can be unreadable (empty, truncated, text, an
    image, a pickle holding code) turned into one `ValueError` naming the file. Only tensors and plain data load."""
    import pickle

    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a directory, not a checkpoint file")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except (FileNotFoundError, PermissionError, MemoryError):
        raise
    except pickle.UnpicklingError:
        raise ValueError(f"{path} is not a file of tensors and plain data (sdelab loads weights only; this is another "
                         f"format, or a pickle of other objects, refused since loading them can run code)") from None
    except Exception as e:  # EOFError, RuntimeError, OSError, KeyError ... from a file torch cannot parse
        first = str(e).strip().splitlines()[0][:80] if str(e).strip() else ""
        why = "it is empty" if path.stat().st_size == 0 else f"{type(e).__name__}{': ' + first if first else ''}"
        raise ValueError(f"{path} is not a readable checkpoint (truncated, or another kind of file; {why})") from None


def load_checkpoint(path, map_location="cpu") -> dict:
    """Load a checkpoint written by `train` with `torch.load(weights_only=True)` (only tensors and plain data);
    `ValueError` for a file that is not one (`safe_load`)."""
    return safe_load(path, map_location)


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
    """While active (when `enabled`, on the main thread, for each signal whose handler is the default one), Ctrl-C,
    SIGTERM and SIGHUP set `requested` instead of stopping the process, so the loop can finish the step, write a
    consistent checkpoint and then raise `KeyboardInterrupt` (`signum` says which signal came).

    A second signal raises at once, except inside `critical()` (the parameter update), where it raises as soon as the
    update is complete: a checkpoint never holds half a step."""

    SIGNALS = tuple(s for s in (signal.SIGINT, getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None))
                    if s is not None)

    def __init__(self, enabled: bool = True):
        self.enabled = enabled

    def __enter__(self):
        self.requested, self.signum, self.old = False, None, {}
        self._critical = self._force = False
        if self.enabled and threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                if signal.getsignal(sig) in (signal.default_int_handler, signal.SIG_DFL):
                    self.old[sig] = signal.signal(sig, self._handler)
        return self

    def _handler(self, signum, frame):
        if self.requested and not self._critical:
            raise KeyboardInterrupt
        if self.requested:
            self._force = True
        self.requested, self.signum = True, self.signum or signum

    @contextlib.contextmanager
    def critical(self):
        """A block that a signal never cuts in half (the second signal waits for its end)."""
        self._critical = True
        try:
            yield
        finally:
            self._critical = False
        if self._force:
            raise KeyboardInterrupt

    def __exit__(self, *exc):
        for sig, old in self.old.items():
            signal.signal(sig, old)
        return False
