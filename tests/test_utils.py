from pathlib import Path

import pytest
import torch

from sdelab import utils


def test_append_dims_broadcasts_per_sample_values():
    v = torch.tensor([1.0, 2.0])
    x = torch.ones(2, 1, 3, 3)
    out = utils.append_dims(v, x.ndim)
    assert out.shape == (2, 1, 1, 1)
    assert torch.equal((out * x)[1], 2 * torch.ones(1, 3, 3))


def test_append_dims_rejects_too_many_dims():
    with pytest.raises(ValueError, match="ndim"):
        utils.append_dims(torch.ones(2, 3), 1)


def test_quick_and_pick(monkeypatch):
    monkeypatch.setenv("SDELAB_QUICK", "1")
    assert utils.quick() and utils.pick(100, 5) == 5
    monkeypatch.setenv("SDELAB_QUICK", "0")
    assert not utils.quick() and utils.pick(100, 5) == 100


def test_seed_gives_same_numbers():
    a = torch.randn(3, generator=utils.seed_everything(7))
    b = torch.randn(3, generator=utils.seed_everything(7))
    assert torch.equal(a, b)


@pytest.mark.parametrize("bad, msg", [
    ([1.0], "at least two"),
    ([[1.0, 0.5]], "1-D"),
    ([0.5, 1.0], "strictly decreasing"),
    ([1.0, float("nan")], "non-finite"),
    ([2.0, 0.5], r"\[0, T\]"),
])
def test_check_grid_rejects_bad_grids(bad, msg):
    with pytest.raises(ValueError, match=msg):
        utils.check_grid(bad, T=1.0)


def test_check_positive():
    assert utils.check_positive("beta_min", 0.1) == 0.1
    for bad in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="beta_min"):
            utils.check_positive("beta_min", bad)


def test_default_device_respects_env(monkeypatch):
    monkeypatch.setenv("SDELAB_DEVICE", "cpu")
    assert utils.default_device() == torch.device("cpu")


def test_cache_dir_follows_xdg_cache_home(monkeypatch, tmp_path):
    from sdelab.data import data_dir
    from sdelab.utils import cache_dir

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("SDELAB_DATA", raising=False)
    assert cache_dir("runs", "a.pt") == tmp_path / "sdelab" / "runs" / "a.pt"
    assert data_dir() == tmp_path / "sdelab" / "mnist"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir() == Path.home() / ".cache" / "sdelab"


def test_num_threads_env_overrides(monkeypatch):
    monkeypatch.setenv("SDELAB_THREADS", "3")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert utils.num_threads() == 3  # SDELAB_THREADS wins over OMP_NUM_THREADS
    monkeypatch.delenv("SDELAB_THREADS")
    assert utils.num_threads() == 1
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv("SDELAB_THREADS", bad)
        with pytest.raises(ValueError, match="SDELAB_THREADS"):
            utils.num_threads()


@pytest.mark.parametrize("cores, expected", [(1, 1), (2, 1), (3, 1), (4, 2), (6, 3), (8, 4), (64, 4)])
def test_num_threads_default_is_half_the_cores_between_1_and_4(monkeypatch, cores, expected):
    monkeypatch.delenv("SDELAB_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(utils.os, "sched_getaffinity", lambda pid: set(range(cores)), raising=False)
    assert utils.num_threads() == expected


def test_setup_sets_and_prints_the_thread_count(monkeypatch, capsys):
    before = torch.get_num_threads()
    monkeypatch.setenv("SDELAB_THREADS", "2")
    try:
        utils.setup(0)
        assert torch.get_num_threads() == 2
        assert "2 threads" in capsys.readouterr().out
        monkeypatch.setenv("SDELAB_THREADS", "1")
        utils.setup(0)
        assert torch.get_num_threads() == 1 and "1 thread\n" in capsys.readouterr().out
    finally:
        torch.set_num_threads(before)
