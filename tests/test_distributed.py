"""DistributedDataParallel training: two CPU processes (Gloo) end with identical weights and a falling loss."""
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from sdelab import VPSDE, distributed, toy
from sdelab.nets import MLPScore
from sdelab.train import load_checkpoint


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world, port, folder):
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    device = distributed.setup(backend="gloo")
    torch.manual_seed(100 + rank)  # different initial weights: DDP must broadcast rank 0's
    model = MLPScore(hidden=32, depth=2, emb_dim=16)
    try:
        res = distributed.train_ddp(model, VPSDE(), toy.DATASETS["ring"], steps=200, batch_size=128, lr=3e-3,
                                    ema_decay=0.9, device=device, progress=False, seed=0, log_every=25,
                                    checkpoint=os.path.join(folder, "ddp.pt"), checkpoint_every=100,
                                    meta={"note": "ddp test"})
    finally:
        distributed.cleanup()
    torch.save({"model": res.model.state_dict(), "ema": res.ema.state_dict(), "losses": res.losses},
               os.path.join(folder, f"rank{rank}.pt"))


def test_two_gloo_processes_stay_in_sync_and_learn(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    for key in ("model", "ema"):
        for name, p in r0[key].items():
            assert torch.equal(p, r1[key][name]), (key, name)
    losses = r0["losses"]
    assert losses == r1["losses"] and len(losses) == 200  # the loss of a step is the mean over ranks
    first, last = sum(losses[:25]) / 25, sum(losses[-50:]) / 50
    assert last < 0.8 * first, (first, last)
    ck = load_checkpoint(tmp_path / "ddp.pt")  # written by rank 0 only, in train()'s format
    assert ck["step"] == 200 and ck["config"]["world_size"] == 2 and ck["meta"] == {"note": "ddp test"}
    for name, p in r0["ema"].items():
        assert torch.equal(ck["ema"][name], p), name


def _resume_worker(rank, world, port, folder):
    # 60 steps straight, and 30 steps then a resumed run to 60 from its checkpoint: the same weights, bit for bit
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    device = distributed.setup(backend="gloo")
    kw = dict(batch_size=64, lr=3e-3, ema_decay=0.9, device=device, progress=False, seed=3, log_every=10,
              checkpoint_every=30)
    try:
        runs = {}
        for name, plan in (("straight", (60,)), ("resumed", (30, 60))):
            torch.manual_seed(5)
            model = MLPScore(hidden=16, depth=1, emb_dim=8)
            for steps in plan:
                res = distributed.train_ddp(model, VPSDE(), toy.DATASETS["ring"], steps=steps,
                                            checkpoint=os.path.join(folder, f"{name}.pt"), **kw)
                model = MLPScore(hidden=16, depth=1, emb_dim=8)  # a fresh process would build a new model
            runs[name] = res
    finally:
        distributed.cleanup()
    torch.save({n: {"ema": r.ema.state_dict(), "losses": r.losses, "start": r.start_step} for n, r in runs.items()},
               os.path.join(folder, f"resume{rank}.pt"))


def test_ddp_resume_repeats_the_uninterrupted_run(tmp_path):
    mp.spawn(_resume_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    for rank in (0, 1):
        runs = torch.load(tmp_path / f"resume{rank}.pt")
        straight, resumed = runs["straight"], runs["resumed"]
        assert resumed["start"] == 30 and straight["start"] == 0
        assert resumed["losses"] == straight["losses"]
        for name, p in straight["ema"].items():
            assert torch.equal(p, resumed["ema"][name]), (rank, name)
    ck = load_checkpoint(tmp_path / "resumed.pt")
    assert len(ck["rng"]["ranks"]) == 2  # every rank's random state, gathered by rank 0
    assert not torch.equal(ck["rng"]["ranks"][0]["generator"], ck["rng"]["ranks"][1]["generator"])


def test_env_defaults_and_errors(monkeypatch):
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)
    assert distributed.env() == (0, 1, 0) and not distributed.is_distributed()
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert distributed.is_distributed()
    with pytest.raises(RuntimeError, match="process group"):
        distributed.train_ddp(MLPScore(hidden=8, depth=1, emb_dim=8), VPSDE(), toy.DATASETS["ring"], steps=1)


def test_torchrun_two_processes_through_the_command_line(tmp_path):
    # `torchrun --nproc_per_node=2 -m sdelab train toy`: rank 0 writes one checkpoint that records both ranks.
    import shutil
    import subprocess
    import sys

    torchrun = shutil.which("torchrun") or os.path.join(os.path.dirname(sys.executable), "torchrun")
    if not os.path.exists(torchrun):
        pytest.skip("torchrun not installed")
    out = tmp_path / "ddp.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([torchrun, "--nproc_per_node=2", "--master_port", str(_free_port()), "-m", "sdelab", "train",
                        "toy", "--steps", "30", "--batch-size", "32", "--hidden", "16", "--depth", "1", "--out",
                        str(out), "--no-progress"], capture_output=True, text=True, env=env, timeout=180)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.count("trained 30 steps") == 1  # printed by rank 0 only
    ck = load_checkpoint(out)
    assert ck["step"] == 30 and ck["config"]["world_size"] == 2 and ck["meta"]["model"]["class"] == "MLPScore"
