"""Training loop: it learns a toy distribution, resumes exactly, writes checkpoints atomically, survives Ctrl-C."""
import os
import signal

import pytest
import torch

from sdelab import VPSDE, metrics, samplers, toy
from sdelab.nets import MLPScore, UNet
from sdelab.param import score_fn
from sdelab.train import TrainResult, load_checkpoint, load_weights, save_checkpoint, train

SDE = VPSDE()


def _small(seed=0, **kw):
    torch.manual_seed(seed)
    return MLPScore(hidden=32, depth=2, emb_dim=16, **kw)


def _assert_same_state(a: torch.nn.Module, b: torch.nn.Module):
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(p, q), name


def _interrupting(net, at, how="raise"):
    """Make forward call number `at` of `net` either raise KeyboardInterrupt or send SIGINT to this process."""
    forward, calls = net.forward, [0]

    def patched(*args):
        calls[0] += 1
        if calls[0] == at:
            if how == "raise":
                raise KeyboardInterrupt
            os.kill(os.getpid(), signal.SIGINT)  # deferred by train() until the step is complete
        return forward(*args)

    net.forward = patched
    return net


def test_learns_the_ring():
    # 2,000 steps of a small MLP on the 8-mode ring, then reverse-SDE sampling with the EMA weights.
    # Reference values (seeded): SW2 between two independent 2,000-point data sets ~0.10, samples from the exact
    # score ~0.12, the untrained prior N(0, I) ~0.57; the trained model reaches ~0.12-0.15. Threshold: 0.2.
    ring = toy.ring()
    torch.manual_seed(0)
    model = MLPScore(hidden=128, depth=3)
    res = train(model, SDE, ring.sample, steps=2000, batch_size=256, lr=2e-3, ema_decay=0.99,
                generator=torch.Generator().manual_seed(0), progress=False, device="cpu")
    assert isinstance(res, TrainResult) and res.step == 2000 and len(res.losses) == 2000
    assert sum(res.losses[-100:]) / 100 < 0.8 * sum(res.losses[:100]) / 100
    x = SDE.prior_sample((2000, 2), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = samplers.euler_maruyama(score_fn(res.ema, SDE), SDE, x, SDE.time_grid(200),
                                      generator=torch.Generator().manual_seed(2))
    data = ring.sample(2000, generator=torch.Generator().manual_seed(3))
    sw = metrics.sliced_wasserstein(out, data, generator=torch.Generator().manual_seed(4)).item()
    sw_prior = metrics.sliced_wasserstein(x, data, generator=torch.Generator().manual_seed(4)).item()
    assert sw < 0.2 < sw_prior, (sw, sw_prior)


def _run(tmp_path, name, model, data, **kw):
    args = dict(steps=30, batch_size=32, lr=1e-2, ema_decay=0.9, warmup=5, checkpoint=tmp_path / name,
                checkpoint_every=10, progress=False, device="cpu", log_every=7)
    args.update(kw)
    return train(model, SDE, data, **args)


def test_resume_after_interrupt_equals_uninterrupted(tmp_path):
    # tensor data with labels, label dropout and x0-prediction: every random draw must be restored exactly
    g = torch.Generator().manual_seed(0)
    data, labels = torch.randn(200, 2, generator=g), torch.randint(0, 3, (200,), generator=g)
    kw = dict(labels=labels, loss_kwargs={"p_uncond": 0.2, "prediction": "x0"})
    ref = _run(tmp_path, "a.pt", _small(num_classes=3), data, generator=torch.Generator().manual_seed(1), **kw)

    with pytest.raises(KeyboardInterrupt):  # raised in the middle of step 17 (before its update)
        _run(tmp_path, "b.pt", _interrupting(_small(num_classes=3), at=17), data,
             generator=torch.Generator().manual_seed(1), **kw)
    ck = load_checkpoint(tmp_path / "b.pt")
    assert ck["step"] == 16 and len(ck["losses"]) == 16
    torch.testing.assert_close(ck["losses"], torch.tensor(ref.losses[:16], dtype=torch.float64), rtol=0, atol=0)

    # resume with a freshly initialised model and a generator in another state: all of it comes from the file
    res = _run(tmp_path, "b.pt", _small(seed=5, num_classes=3), data, generator=torch.Generator().manual_seed(99),
               **kw)
    assert res.start_step == 16 and res.step == 30
    assert res.losses == ref.losses
    _assert_same_state(res.model, ref.model)
    _assert_same_state(res.ema, ref.ema)
    assert res.ema.prediction == res.model.prediction == "x0"  # samplers read what the model predicts


def test_ctrl_c_is_deferred_to_the_end_of_the_step(tmp_path):
    ring = toy.ring()
    ref = _run(tmp_path, "a.pt", _small(), ring.sample, generator=torch.Generator().manual_seed(3))
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, "b.pt", _interrupting(_small(), at=13, how="signal"), ring.sample,
             generator=torch.Generator().manual_seed(3))
    assert load_checkpoint(tmp_path / "b.pt")["step"] == 13  # step 13 finished, then the checkpoint, then the raise
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored
    res = _run(tmp_path, "b.pt", _small(), ring.sample, generator=None)  # the generator state is in the file
    assert res.losses == ref.losses
    _assert_same_state(res.model, ref.model)


def test_ema_follows_its_formula(tmp_path):
    # ema_n = d_n ema_{n-1} + (1 - d_n) theta_n with d_n = min(decay, (1 + n) / (10 + n)), n = 0, 1, ... the step
    # index; read theta_n and ema_n from a checkpoint after every step (each call resumes and adds one step)
    model = _small()
    ema = {k: v.clone() for k, v in model.state_dict().items()}
    for n in range(12):
        res = _run(tmp_path, "e.pt", model, toy.ring().sample, steps=n + 1, ema_decay=0.5, checkpoint_every=1,
                   generator=torch.Generator().manual_seed(0))
        assert res.start_step == n
        ck = load_checkpoint(tmp_path / "e.pt")
        d = min(0.5, (1 + n) / (10 + n))
        for k, theta in ck["model"].items():
            ema[k] = d * ema[k] + (1 - d) * theta
            torch.testing.assert_close(ck["ema"][k], ema[k], rtol=1e-6, atol=1e-7)


def test_checkpoint_contents_and_finished_run(tmp_path):
    res = _run(tmp_path, "c.pt", _small(), toy.ring().sample, generator=torch.Generator().manual_seed(0),
               meta={"arch": "MLPScore", "hidden": 32})
    ck = torch.load(tmp_path / "c.pt", weights_only=True)
    assert ck["step"] == 30 and ck["meta"] == {"arch": "MLPScore", "hidden": 32}
    assert set(ck) >= {"model", "ema", "optimizer", "losses", "rng", "config"}
    again = _run(tmp_path, "c.pt", _small(seed=1), toy.ring().sample)  # already complete: no training
    assert again.start_step == again.step == 30 and again.losses == res.losses
    _assert_same_state(again.ema, res.ema)
    _assert_same_state(load_weights(_small(seed=2), tmp_path / "c.pt"), res.ema)
    _assert_same_state(load_weights(_small(seed=2), tmp_path / "c.pt", ema=False), res.model)


def test_killed_checkpoint_write_keeps_the_previous_one(tmp_path, monkeypatch):
    path = tmp_path / "d.pt"
    _run(tmp_path, "d.pt", _small(), toy.ring().sample, steps=10, generator=torch.Generator().manual_seed(0))
    before = load_checkpoint(path)

    def dying_save(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a zip file")  # part of the file is written, then the process "dies"
        raise RuntimeError("killed during torch.save")

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(RuntimeError, match="killed during torch.save"):
        _run(tmp_path, "d.pt", _small(), toy.ring().sample, steps=20, generator=torch.Generator().manual_seed(0))
    monkeypatch.undo()
    after = torch.load(path, weights_only=True)  # still the complete step-10 checkpoint
    assert after["step"] == 10
    _assert_same_state_dicts(after["model"], before["model"])
    assert sorted(os.listdir(tmp_path)) == [".d.pt.lock", "d.pt"]  # no temporary file left behind (the lock stays)
    with pytest.raises(RuntimeError):
        monkeypatch.setattr(torch, "save", dying_save)
        save_checkpoint(path, {"step": 99})
    assert torch.load(path, weights_only=True)["step"] == 10


def _assert_same_state_dicts(a, b):
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_progress_bar_reports_throughput(capsys):
    train(_small(), SDE, toy.ring().sample, steps=6, batch_size=16, log_every=3, device="cpu", progress=True)
    err = capsys.readouterr().err
    assert "it/s" in err and "samples_s" in err and "loss" in err


def test_bad_arguments_raise():
    data = toy.ring().sample
    cases = [
        (dict(steps=0), "steps must be an integer >= 1"),
        (dict(steps=10, batch_size=0), "batch_size must be an integer >= 1"),
        (dict(steps=10, lr=0.0), "lr must be a finite number > 0"),
        (dict(steps=10, ema_decay=1.0), r"ema_decay must lie in \[0, 1\)"),
        (dict(steps=10, ema_decay=-0.1), r"ema_decay must lie in \[0, 1\)"),
        (dict(steps=10, grad_clip=0.0), "grad_clip must be > 0 or None"),
        (dict(steps=10, amp=True, device="cpu"), "amp=True needs a CUDA device"),
        (dict(steps=10, loss_kwargs={"generator": None}), "loss_kwargs may only hold"),
        (dict(steps=10, generator=0), "generator must be a CPU torch.Generator"),
    ]
    for kwargs, msg in cases:
        with pytest.raises(ValueError, match=msg):
            train(_small(), SDE, data, progress=False, **kwargs)
    with pytest.raises(ValueError, match="labels go with a data tensor"):
        train(_small(), SDE, data, labels=torch.zeros(3, dtype=torch.long), steps=1, progress=False)
    with pytest.raises(ValueError, match=r"labels must have shape \(N,\)"):
        train(_small(num_classes=2), SDE, torch.randn(10, 2), labels=torch.zeros(9, dtype=torch.long), steps=1,
              progress=False, device="cpu")


def test_class_conditional_unet_steps(tmp_path):
    # the MNIST configuration in miniature: a UNet with labels, label dropout, checkpoint with weights_only
    g = torch.Generator().manual_seed(0)
    images, labels = torch.rand(16, 1, 28, 28, generator=g) * 2 - 1, torch.arange(16) % 10
    torch.manual_seed(0)
    res = train(UNet(base=8, num_classes=10), SDE, images, labels=labels, steps=3, batch_size=4, progress=False,
                device="cpu", checkpoint=tmp_path / "u.pt", loss_kwargs={"p_uncond": 0.1}, generator=g)
    assert len(res.losses) == 3 and all(0 < v < 10 for v in res.losses)
    net = load_weights(UNet(base=8, num_classes=10), tmp_path / "u.pt")
    assert net(images[:2], torch.rand(2), labels[:2]).shape == (2, 1, 28, 28)
