"""Fault injection on training: signals and kills at random points (also inside the parameter update and during
checkpoint writes), a second run on the same checkpoint, paths that cannot be written, a full disk, a checkpoint
from another run, and the temporary files a kill leaves behind.

The central property: after any interruption, resuming gives bitwise the run that was never interrupted.
"""
from __future__ import annotations

import errno
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from sdelab import toy
from sdelab.checkpoint import atomic_write, load_checkpoint, remove_orphans, run_lock, save_checkpoint
from sdelab.nets import MLPScore
from sdelab.sde import VPSDE
from sdelab.train import train

STEPS = 400
WORKER = textwrap.dedent(f"""
    import sys, torch
    torch.set_num_threads(1)
    from sdelab import toy
    from sdelab.nets import MLPScore
    from sdelab.sde import VPSDE
    from sdelab.train import train
    torch.manual_seed(0)
    model = MLPScore(dim=2, hidden=64, depth=2)
    print("ready", flush=True)
    train(model, VPSDE(), toy.ring().sample, steps={STEPS}, batch_size=256, lr=1e-3, checkpoint=sys.argv[1],
          checkpoint_every=int(sys.argv[2]), checkpoint_seconds=None, progress=False,
          generator=torch.Generator().manual_seed(0), meta={{"hidden": 64}})
""")


def _start(path, every):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-c", WORKER, str(path), str(every)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, text=True)
    assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
    return proc


def _run_to_the_end(path, every, faults, rng):
    """Restart the worker until it finishes; the first `len(faults)` runs get a fault at a random moment."""
    for sigs in faults + [()]:
        proc = _start(path, every)
        if sigs:
            time.sleep(rng.uniform(0.05, 0.6))
            for sig in sigs:
                if proc.poll() is None:
                    proc.send_signal(sig)
                time.sleep(rng.choice([0.0, 0.0005, 0.002]))
        _, err = proc.communicate(timeout=120)
        if not sigs:
            assert proc.returncode == 0, err
        else:  # stopped by the signal (a clean KeyboardInterrupt exit or the kill), or finished first
            assert "Traceback" not in err or "KeyboardInterrupt" in err, err
    return load_checkpoint(path)


def _same(a, b):
    for key in ("model", "ema"):
        assert a[key].keys() == b[key].keys()
        for k in a[key]:
            assert torch.equal(a[key][k], b[key][k]), f"{key}.{k} differs from the uninterrupted run"
    assert torch.equal(a["losses"], b["losses"])
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    path = tmp_path_factory.mktemp("ref") / "ref.pt"
    return _run_to_the_end(path, 1000, [], random.Random(0))


def test_signals_anywhere_then_resume_is_bitwise_the_uninterrupted_run(tmp_path, reference):
    rng = random.Random(1)
    faults = [(signal.SIGINT,), (signal.SIGTERM,), (signal.SIGHUP,), (signal.SIGINT, signal.SIGINT),
              (signal.SIGTERM, signal.SIGINT), (signal.SIGINT, signal.SIGINT, signal.SIGINT)]
    got = _run_to_the_end(tmp_path / "run.pt", 1000, faults, rng)
    assert int(got["step"]) == STEPS
    _same(got, reference)


def test_kills_during_frequent_writes_lose_nothing_and_leave_no_temporary_file(tmp_path, reference):
    rng = random.Random(2)
    path = tmp_path / "run.pt"
    got = _run_to_the_end(path, 1, [(signal.SIGKILL,)] * 4, rng)
    assert int(got["step"]) == STEPS
    _same(got, reference)
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]


def _tiny():
    torch.manual_seed(0)
    return MLPScore(dim=2, hidden=16, depth=1)


def _train(path, model=None, **kw):
    kw = {"steps": 5, "batch_size": 32, "progress": False, "generator": torch.Generator().manual_seed(0), **kw}
    return train(model or _tiny(), VPSDE(), toy.ring().sample, checkpoint=path, **kw)


def test_a_second_run_on_the_same_checkpoint_is_refused(tmp_path):
    path = tmp_path / "c.pt"
    with run_lock(path):
        with pytest.raises(RuntimeError, match="another run .* is training into"):
            _train(path)
    _train(path)  # the lock is free again


def test_unwritable_paths_fail_before_training(tmp_path):
    with pytest.raises(ValueError, match="is a directory"):
        _train(tmp_path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="cannot be written"):
        _train(tmp_path / "file" / "c.pt")


def test_a_full_disk_is_reported_as_such_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "c.pt"
    save_checkpoint(path, {"step": 1})

    def full(f):
        f.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError, match="disk full while writing"):
        atomic_write(path, full)
    assert load_checkpoint(path) == {"step": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pt"]


def test_a_checkpoint_of_another_run_is_refused_with_what_differs(tmp_path):
    path = tmp_path / "c.pt"
    _train(path, meta={"data": "ring"})
    with pytest.raises(ValueError, match=r"data: 'ring' in the file, 'moons' now"):
        _train(path, steps=10, meta={"data": "moons"})
    with pytest.raises(ValueError, match="lr"):
        _train(path, steps=10, lr=1e-4, meta={"data": "ring"})
    torch.manual_seed(0)
    with pytest.raises(ValueError, match="network parameters"):
        _train(path, model=MLPScore(dim=2, hidden=32, depth=1), steps=10, meta={"data": "ring"})
    assert _train(path, steps=10, meta={"data": "ring"}).step == 10  # the same settings resume


def test_orphan_temporary_files_are_removed_on_the_next_run(tmp_path):
    path = tmp_path / "c.pt"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    orphan = tmp_path / f".c.pt.tmp{dead.stdout.strip()}"
    orphan.write_bytes(b"half")
    mine = tmp_path / ".c.pt.tmp1"  # a live writer's file (pid 1 always runs) stays
    mine.write_bytes(b"busy")
    assert remove_orphans(path) == [orphan]
    orphan.write_bytes(b"half")
    _train(path)
    assert not orphan.exists() and mine.exists()


def test_checkpoints_by_the_clock(tmp_path, monkeypatch):
    import sdelab.train as tr

    saves = []
    monkeypatch.setattr(tr, "save_checkpoint", lambda path, state: saves.append(state["step"]))
    _train(tmp_path / "c.pt", steps=6, checkpoint_every=1000, checkpoint_seconds=0.0)
    assert saves == [1, 2, 3, 4, 5, 6]
    saves.clear()
    _train(tmp_path / "d.pt", steps=6, checkpoint_every=1000, checkpoint_seconds=None)
    assert saves == [6]


def test_a_second_ctrl_c_inside_the_update_waits_for_the_step(tmp_path, monkeypatch):
    reference = _train(tmp_path / "ref.pt", steps=8)
    real_step, calls = torch.optim.AdamW.step, []

    def step_hit_twice(self, *a, **kw):
        calls.append(1)
        if len(calls) == 4:  # the fourth update: two Ctrl-C land inside it
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
        return real_step(self, *a, **kw)

    monkeypatch.setattr(torch.optim.AdamW, "step", step_hit_twice)
    path = tmp_path / "cut.pt"
    with pytest.raises(KeyboardInterrupt):
        _train(path, steps=8)
    assert int(load_checkpoint(path)["step"]) == 4  # the whole fourth step, not half of it
    monkeypatch.undo()
    resumed = _train(path, steps=8, model=_tiny())
    assert resumed.losses == reference.losses
    for a, b in zip(resumed.ema.state_dict().values(), reference.ema.state_dict().values()):
        assert torch.equal(a, b)


def test_diverging_training_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    """lr = 1e6 blows the weights up: training stops with one FloatingPointError, and the checkpoint on disk is the
    last one whose weights were finite (never the diverged state)."""
    from sdelab.checkpoint import load_checkpoint
    from sdelab.nets import MLPScore
    from sdelab.sde import VPSDE
    from sdelab.train import train

    torch.manual_seed(0)
    path = tmp_path / "div.pt"
    with pytest.raises(FloatingPointError, match="training diverged: .*the last good checkpoint"):
        train(MLPScore(dim=2, hidden=16, depth=1), VPSDE(), torch.randn(64, 2), steps=200, batch_size=16, lr=1e6,
              checkpoint=path, checkpoint_every=1, log_every=1, device="cpu", progress=False, grad_clip=None,
              generator=torch.Generator().manual_seed(0))
    ck = load_checkpoint(path)
    assert 1 <= ck["step"] < 200
    assert all(torch.isfinite(v).all() for v in ck["model"].values())
