r"""Pretrained models shipped with the package: `sdelab.pretrained(name)`.

The weights live in `sdelab/weights/<name>.pt` (half precision), listed in `sdelab/weights/manifest.json` with
their SHA-256, their size, the model's constructor arguments and how they were trained. `make checkpoints`
(`python -m sdelab checkpoints`) trains every model with the package's own code (`sdelab.recipes`) and writes both.

A model is described by plain data, its *spec* `{"class": "UNet", "kwargs": {...}}` (classes in `MODEL_CLASSES`),
so a file rebuilds its network by itself; the same spec is stored as `meta["model"]` in the checkpoints that
`python -m sdelab train` writes, which `load_file` also reads.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from torch import nn

from .checkpoint import atomic_write

__all__ = ["pretrained", "available", "info", "export_weights", "load_file", "file_meta", "build_model", "build_sde",
           "sde_spec", "WEIGHTS_DIR", "MODEL_CLASSES"]

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
FORMAT = "sdelab-weights-v1"


def _classes() -> dict:
    from .classifier import MNISTClassifier
    from .nets import MLPScore
    from .unet import UNet

    return {"MLPScore": MLPScore, "UNet": UNet, "MNISTClassifier": MNISTClassifier}


MODEL_CLASSES = ("MLPScore", "UNet", "MNISTClassifier")


def build_model(spec: dict) -> nn.Module:
    """A freshly initialised network from its spec `{"class": name, "kwargs": {...}}`."""
    if not isinstance(spec, dict) or spec.get("class") not in MODEL_CLASSES:
        raise ValueError(f"model spec must be a dict with 'class' in {MODEL_CLASSES}, got {spec!r}")
    kwargs = dict(spec.get("kwargs", {}))
    if "channels" in kwargs and kwargs["channels"] is not None:
        kwargs["channels"] = tuple(kwargs["channels"])
    return _classes()[spec["class"]](**kwargs)


def sde_spec(sde) -> dict:
    """Plain-data description of a VP / sub-VP / VE SDE, the inverse of `build_sde`."""
    name = type(sde).__name__
    if name in ("VPSDE", "SubVPSDE"):
        kw = {"beta_min": sde.beta_min, "beta_max": sde.beta_max, "schedule": sde.schedule.kind, "T": sde.T}
    elif name == "VESDE":
        kw = {"sigma_min": sde.sigma_min, "sigma_max": sde.sigma_max, "T": sde.T}
    else:
        raise ValueError(f"cannot describe an SDE of type {name}; use VPSDE, SubVPSDE or VESDE")
    return {"class": name, "kwargs": kw}


def build_sde(spec: dict | None):
    """The SDE of a spec written by `sde_spec` (None: the default `VPSDE()`)."""
    from . import sde as sde_mod

    if spec is None:
        return sde_mod.VPSDE()
    if spec.get("class") not in ("VPSDE", "SubVPSDE", "VESDE"):
        raise ValueError(f"unknown SDE spec {spec!r}")
    return getattr(sde_mod, spec["class"])(**spec.get("kwargs", {}))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _manifest(directory: Path) -> dict:
    p = directory / "manifest.json"
    if not p.exists():
        return {}
    return json.loads(p.read_text())


def available(*, directory=None) -> list[str]:
    """Names of the models listed in the manifest (whether or not their files are present)."""
    return sorted(_manifest(Path(directory) if directory else WEIGHTS_DIR))


def info(name: str, *, directory=None) -> dict:
    """The manifest entry of `name`: file, sha256, bytes, model spec, SDE, training details, metrics."""
    directory = Path(directory) if directory else WEIGHTS_DIR
    man = _manifest(directory)
    if name not in man:
        names = ", ".join(sorted(man)) or "none (run `make checkpoints`)"
        raise ValueError(f"unknown pretrained model {name!r}; available: {names}")
    return man[name]


def export_weights(name: str, model: nn.Module, meta: dict, *, directory=None, half: bool = True) -> dict:
    """Store `model`'s weights (float16 when `half`) as `<directory>/<name>.pt` and list them in the manifest.

    Args:
        name: the name `pretrained` will know it by (letters, digits, `_`, `-`).
        model: the network (for a diffusion model pass the EMA copy).
        meta: plain data; must hold `"model"`, the spec that rebuilds the network; usually also `"sde"`,
            `"prediction"`, `"training"` (device, steps, minutes, data) and `"metrics"`.
        directory: default `sdelab/weights`.
    Returns:
        The manifest entry written.
    """
    if not name or not all(c.isalnum() or c in "_-" for c in name):
        raise ValueError(f"name must be letters, digits, '_' or '-', got {name!r}")
    build_model(meta.get("model"))  # the spec must rebuild the network
    directory = Path(directory) if directory else WEIGHTS_DIR
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: (v.detach().half() if half and v.is_floating_point() else v.detach()).cpu().clone()
             for k, v in model.state_dict().items()}
    path = directory / f"{name}.pt"
    atomic_write(path, lambda f: torch.save({"format": FORMAT, "name": name, "state_dict": state, "meta": meta}, f))
    entry = {"file": path.name, "sha256": _sha256(path), "bytes": path.stat().st_size, **meta}
    man = _manifest(directory)
    man[name] = entry
    text = json.dumps(dict(sorted(man.items())), indent=1, sort_keys=False) + "\n"
    atomic_write(directory / "manifest.json", lambda f: f.write(text.encode()))
    return entry


def _rebuild(meta: dict, state: dict, device) -> nn.Module:
    """The network of `meta["model"]` with `state` (cast to its dtypes), `model.prediction` from `meta`, in eval mode."""
    model = build_model(meta["model"])
    ref = model.state_dict()
    model.load_state_dict({k: v.to(ref[k].dtype) if k in ref else v for k, v in state.items()})
    model.prediction = meta.get("prediction", "eps")  # what it outputs: sdelab.param.eps_fn/score_fn read it
    return model.to(device or "cpu").eval()


def pretrained(name: str, *, device=None, directory=None) -> nn.Module:
    """A shipped model, rebuilt from its spec, with float32 weights, in eval mode, on `device` (default CPU).

    The file's SHA-256 is checked against the manifest first. `info(name)` has the rest of its description
    (the SDE it was trained with, what it predicts, how it was trained, its metrics).

    Raises:
        ValueError: unknown `name` (the message lists the available ones), or a checksum mismatch.
        FileNotFoundError: the file is listed but missing (run `make checkpoints`).
    """
    directory = Path(directory) if directory else WEIGHTS_DIR
    entry = info(name, directory=directory)
    path = directory / entry["file"]
    if not path.exists():
        raise FileNotFoundError(f"pretrained model {name!r}: {path} is missing; run `make checkpoints` "
                                f"(or `python -m sdelab checkpoints --only {name}`) to train it")
    digest = _sha256(path)
    if digest != entry["sha256"]:
        raise ValueError(f"pretrained model {name!r}: checksum mismatch for {path} (sha256 {digest[:16]}..., the "
                         f"manifest says {entry['sha256'][:16]}...): the file is corrupt or stale; run "
                         f"`python -m sdelab checkpoints --only {name}`")
    ck = torch.load(path, map_location="cpu", weights_only=True)
    return _rebuild(entry, ck["state_dict"], device)


def load_file(path, *, device=None, ema: bool = True) -> nn.Module:
    """A network from a file that describes itself: a weights file written by `export_weights` /
    `train-classifier`, or a `python -m sdelab train` checkpoint (its EMA weights unless `ema=False`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such checkpoint: {path}")
    ck = torch.load(path, map_location="cpu", weights_only=True)
    meta = ck.get("meta") or {}
    if "model" not in meta:
        raise ValueError(f"{path} does not say which network it holds (no meta['model']); it was not written by "
                         f"`python -m sdelab train` or `export_weights`")
    state = ck["state_dict"] if ck.get("format") == FORMAT else ck["ema" if ema else "model"]
    return _rebuild(meta, state, device)


def file_meta(path) -> dict:
    """The `meta` dict stored in a weights file or a training checkpoint."""
    return torch.load(Path(path), map_location="cpu", weights_only=True).get("meta") or {}
