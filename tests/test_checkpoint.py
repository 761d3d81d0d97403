"""Checkpoint primitives: atomic save, weights-only load, exact random state, deferred Ctrl-C.

(The training loop's use of them, resume and a killed write, is tested in test_train.py.)"""
import os
import signal

import pytest
import torch

from sdelab.checkpoint import DeferInterrupt, load_checkpoint, rng_state, save_checkpoint, set_rng_state


def test_save_then_load_round_trips_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "sub" / "c.pt"  # the folder is created
    state = {"step": 3, "w": torch.arange(4.0), "nested": {"losses": [0.5, 0.25]}}
    save_checkpoint(path, state)
    back = load_checkpoint(path)
    assert back["step"] == 3 and torch.equal(back["w"], state["w"]) and back["nested"] == state["nested"]
    assert os.listdir(path.parent) == ["c.pt"]


class Payload:  # unpickling an arbitrary class may run code: a checkpoint must not carry one
    pass


def test_load_refuses_arbitrary_objects(tmp_path):
    path = tmp_path / "bad.pt"
    torch.save({"obj": Payload()}, path)
    with pytest.raises(Exception, match="[Ww]eights only"):
        load_checkpoint(path)


def test_random_state_restores_the_same_draws():
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(1)
    torch.randn(3), torch.randn(3, generator=gen)
    saved = rng_state(gen)
    first = torch.randn(5), torch.randn(5, generator=gen)
    torch.randn(7), torch.randn(7, generator=gen)  # move both streams on
    set_rng_state(saved, gen)
    again = torch.randn(5), torch.randn(5, generator=gen)
    assert all(torch.equal(a, b) for a, b in zip(first, again))


def test_ctrl_c_is_deferred_once_and_a_second_one_raises():
    with DeferInterrupt() as sigint:
        os.kill(os.getpid(), signal.SIGINT)
        assert sigint.requested  # recorded, not raised
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored
    with DeferInterrupt(enabled=False) as sigint, pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)


def test_atomic_write_keeps_the_old_file_when_the_writer_fails(tmp_path):
    from sdelab.checkpoint import atomic_write

    path = tmp_path / "m.json"
    atomic_write(path, lambda f: f.write(b"old"))

    def failing(f):
        f.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, failing)
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["m.json"]


def test_an_ignored_signal_stays_ignored():
    # a job started with SIGINT ignored (nohup, `cmd &` without job control) is not made interruptible
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with DeferInterrupt() as sigint:
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGINT)
            assert not sigint.requested
    finally:
        signal.signal(signal.SIGINT, old)
