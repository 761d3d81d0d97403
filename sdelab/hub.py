r"""Pretrained models: `sdelab.pretrained(name)`.

Two places hold weights, each a folder with `manifest.json` and one `<name>.safetensors` per model (float16
tensors; older `.pt` files written by `torch.save` still load, with `weights_only=True`):

* the user's cache, `sdelab.utils.cache_dir("weights")` (`~/.cache/sdelab/weights`): where
  `python -m sdelab checkpoints` writes the models it retrains; looked at first;
* the package's own `sdelab/weights`: the shipped models (`make checkpoints` writes there, for maintainers).

A manifest entry keeps the file's SHA-256 and size, the model's *spec* `{"class": "UNet", "kwargs": {...}}`
(classes in `MODEL_CLASSES`), the SDE, what the network predicts, how it was trained and what was measured. Extra
tensors that belong to a model (the MNIST-FID reference statistics of `mnist_classifier`) are stored in the same
file under `extra.<key>.` (`load_extra`).
"""
from __future__ import annotations

import hashlib
import importlib
import json
from pathlib import Path

import torch
from torch import nn

from .checkpoint import atomic_write, safe_load
from .utils import cache_dir

__all__ = ["pretrained", "available", "info", "locate", "export_weights", "load_extra", "load_file", "file_meta",
           "build_model", "build_sde", "sde_spec", "user_dir", "WEIGHTS_DIR", "MODEL_CLASSES", "MODEL_KWARGS",
           "MAX_PARAMETERS", "spec_shapes"]

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
FORMAT = "sdelab-weights-v1"
_EXTRA = "extra."

MODEL_CLASSES = {"MLPScore": "sdelab.nets", "UNet": "sdelab.unet", "MNISTClassifier": "sdelab.classifier"}
"""Registry of the network classes, mapping the class name in a spec to the module that defines it. The module is
imported when a model is built, so this module imports none of the network modules and they may import it."""


def user_dir() -> Path:
    """The user's weights folder, `sdelab.utils.cache_dir("weights")`, searched before the shipped one."""
    return cache_dir("weights")


_INT, _EMB = "int", ("sinusoidal", "fourier")
MODEL_KWARGS = {
    "MLPScore": {"dim": (_INT, 1, 4096), "hidden": (_INT, 1, 4096), "depth": (_INT, 1, 64), "emb_dim": (_INT, 4, 4096),
                 "embedding": _EMB, "num_classes": (_INT, 1, 1000, None)},
    "UNet": {"in_channels": (_INT, 1, 16), "channels": ("ints", 1, 1024), "base": (_INT, 1, 256),
             "num_res_blocks": (_INT, 1, 8), "emb_dim": (_INT, 4, 4096, None), "num_classes": (_INT, 1, 1000, None),
             "groups": (_INT, 1, 64), "dropout": ("float", 0, 1), "attention": (True, False),
             "attention_heads": (_INT, 1, 64), "embedding": _EMB},
    "MNISTClassifier": {"channels": ("ints", 1, 1024), "hidden": (_INT, 1, 4096), "dropout": ("float", 0, 1)},
}
"""The constructor arguments a spec may pass to each class of `MODEL_CLASSES`, with their allowed values:
`(kind, lo, hi[, None])` (None allowed where listed) or a tuple of choices. A file's metadata is untrusted input."""
MAX_PARAMETERS = 200_000_000
"""Most parameters a spec may ask for (800 MB in float32); counted on the `meta` device before anything is built."""


def _check_kwargs(cls: str, kwargs: dict) -> None:
    allowed = MODEL_KWARGS[cls]
    for k, v in kwargs.items():
        rule = allowed.get(k)
        if rule is None:
            raise ValueError(f"model spec: {cls} takes no argument {k!r}; allowed: {', '.join(allowed)}")
        if rule[0] in (_INT, "float", "ints"):
            kind, lo, hi = rule[:3]
            if v is None and rule[3:] == (None,):
                continue
            is_list = isinstance(v, (list, tuple)) and 1 <= len(v) <= 8
            items = v if kind == "ints" and is_list else [v]
            num = (int,) if kind != "float" else (int, float)
            ok = (kind == "ints") == is_list
            ok = ok and all(isinstance(i, num) and not isinstance(i, bool) and lo <= i <= hi for i in items)
            ok = ok and (kind != "float" or v < hi)
            if not ok:
                what = {"int": "an integer", "float": "a number", "ints": "a list of 1 to 8 integers, each"}[kind]
                raise ValueError(f"model spec: {cls} argument {k} must be {what} in [{lo}, {hi}], got {v!r}")
        elif v not in rule:
            raise ValueError(f"model spec: {cls} argument {k} must be one of {rule}, got {v!r}")


def _construct(spec: dict) -> tuple[type, dict]:
    if not isinstance(spec, dict) or spec.get("class") not in MODEL_CLASSES:
        raise ValueError(f"model spec must be a dict with 'class' in {tuple(MODEL_CLASSES)}, got {spec!r}")
    kwargs = spec.get("kwargs", {})
    if not isinstance(kwargs, dict):
        raise ValueError(f"model spec: kwargs must be a dict, got {kwargs!r}")
    kwargs = dict(kwargs)
    _check_kwargs(spec["class"], kwargs)
    if "channels" in kwargs and kwargs["channels"] is not None:
        kwargs["channels"] = tuple(kwargs["channels"])
    return getattr(importlib.import_module(MODEL_CLASSES[spec["class"]]), spec["class"]), kwargs


def spec_shapes(spec: dict) -> dict:
    """`{name: shape}` of the state dict the spec's network has, found on the `meta` device (no memory used);
    `ValueError` if it asks for more than `MAX_PARAMETERS` parameters."""
    cls, kwargs = _construct(spec)
    with torch.device("meta"):
        model = cls(**kwargs)
    n = sum(p.numel() for p in model.parameters())
    if n > MAX_PARAMETERS:
        raise ValueError(f"model spec {spec!r} asks for {n:,} parameters, more than MAX_PARAMETERS = {MAX_PARAMETERS:,}")
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def build_model(spec: dict) -> nn.Module:
    """A freshly initialised network from its spec `{"class": name, "kwargs": {...}}` (arguments checked against
    `MODEL_KWARGS`, size against `MAX_PARAMETERS`, before any memory is allocated)."""
    spec_shapes(spec)
    cls, kwargs = _construct(spec)
    return cls(**kwargs)


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
    p = Path(directory) / "manifest.json"
    return json.loads(p.read_text()) if p.exists() else {}


def _search(directory) -> list[Path]:
    return [Path(directory)] if directory is not None else [user_dir(), WEIGHTS_DIR]


def locate(name: str, *, directory=None) -> Path:
    """The folder whose manifest lists `name`: `directory` if given, else the user's folder, else the shipped one."""
    for d in _search(directory):
        if name in _manifest(d):
            return d
    names = ", ".join(available(directory=directory)) or "none (run `make checkpoints`)"
    raise ValueError(f"unknown pretrained model {name!r}; available: {names}")


def available(*, directory=None) -> list[str]:
    """Names of the models listed in the manifest(s) (whether or not their files are present)."""
    return sorted(set().union(*(_manifest(d) for d in _search(directory))))


def info(name: str, *, directory=None) -> dict:
    """The manifest entry of `name`: file, sha256, bytes, model spec, SDE, training details, metrics."""
    return _manifest(locate(name, directory=directory))[name]


def _safetensors():
    try:
        from safetensors import torch as st
    except ImportError:
        raise ImportError("reading and writing sdelab weights needs `safetensors` (pip install safetensors)") from None
    return st


def export_weights(name: str, model: nn.Module, meta: dict, *, directory=None, half: bool = True,
                   extra: dict | None = None) -> dict:
    """Store `model`'s weights (float16 when `half`) as `<directory>/<name>.safetensors` and list them in its manifest.

    Args:
        name: the name `pretrained` will know it by (letters, digits, `_`, `-`).
        model: the network (for a diffusion model pass the EMA copy).
        meta: plain data; must hold `"model"`, the spec that rebuilds the network; usually also `"sde"`,
            `"prediction"`, `"training"` (device, steps, minutes, data) and `"metrics"`.
        directory: default the user's folder `user_dir()`, never the installed package.
        extra: `{key: {tensor name: tensor}}` stored as they are in the same file (see `load_extra`).
    Returns:
        The manifest entry written.
    """
    if not name or not all(c.isalnum() or c in "_-" for c in name):
        raise ValueError(f"name must be letters, digits, '_' or '-', got {name!r}")
    build_model(meta.get("model"))  # the spec must rebuild the network
    st = _safetensors()
    directory = Path(directory) if directory is not None else user_dir()
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: (v.detach().half() if half and v.is_floating_point() else v.detach()).cpu().contiguous().clone()
             for k, v in model.state_dict().items()}
    for key, tensors in (extra or {}).items():
        state.update({f"{_EXTRA}{key}.{k}": torch.as_tensor(v).detach().cpu().contiguous().clone()
                      for k, v in tensors.items()})
    path = directory / f"{name}.safetensors"
    blob = st.save(state, metadata={"format": FORMAT, "name": name, "meta": json.dumps(meta)})
    atomic_write(path, lambda f: f.write(blob))
    entry = {"file": path.name, "sha256": _sha256(path), "bytes": path.stat().st_size, **meta}
    if extra:
        entry["extra"] = sorted(extra)
    man = _manifest(directory)
    man[name] = entry
    text = json.dumps(dict(sorted(man.items())), indent=1, sort_keys=False) + "\n"
    atomic_write(directory / "manifest.json", lambda f: f.write(text.encode()))
    for old in (directory / f"{name}.pt",):  # an older format of the same model would be stale
        old.unlink(missing_ok=True)
    return entry


def _read(path: Path) -> tuple[dict, dict]:
    """`(tensors, meta)` of a weights file: safetensors, or a `.pt` of `export_weights`' older format."""
    if path.suffix == ".safetensors":
        _safetensors()
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                header = f.metadata() or {}
                tensors = {k: f.get_tensor(k) for k in f.keys()}
            return tensors, json.loads(header.get("meta", "{}"))
        except (FileNotFoundError, PermissionError, MemoryError):
            raise
        except Exception as e:  # SafetensorError, a bad JSON header ...
            raise ValueError(f"{path} is not a readable safetensors weights file ({str(e)[:80]})") from None
    ck = safe_load(path)
    if not isinstance(ck, dict):
        raise ValueError(f"{path} holds a {type(ck).__name__}, not a dict of weights")
    if ck.get("format") == FORMAT:
        return ck["state_dict"], ck.get("meta") or {}
    return ck, ck.get("meta") or {}


def _rebuild(meta: dict, state: dict, device) -> nn.Module:
    """The network of `meta["model"]` with `state` (cast to its dtypes), `model.prediction` from `meta`, in eval mode."""
    want = spec_shapes(meta["model"])  # the spec's shapes, before building anything
    got = {k: tuple(v.shape) for k, v in state.items() if not k.startswith(_EXTRA)}
    bad = sorted(k for k in set(want) | set(got) if want.get(k) != got.get(k))
    if bad:
        k = bad[0]
        raise ValueError(f"the weights do not fit the network the metadata describes: {len(bad)} tensor(s) differ, "
                         f"e.g. {k!r}: {got.get(k, 'missing')} in the file, {want.get(k, 'not in the network')} "
                         f"in the spec")
    model = build_model(meta["model"])
    ref = model.state_dict()
    model.load_state_dict({k: v.to(ref[k].dtype) if k in ref else v for k, v in state.items()
                           if not k.startswith(_EXTRA)})
    model.prediction = meta.get("prediction", "eps")  # what it outputs: sdelab.param.eps_fn/score_fn read it
    return model.to(device or "cpu").eval()


def _checked_file(name: str, directory) -> tuple[Path, dict]:
    d = locate(name, directory=directory)
    entry = _manifest(d)[name]
    path = d / entry["file"]
    if not path.exists():
        raise FileNotFoundError(f"pretrained model {name!r}: {path} is missing; run `make checkpoints` "
                                f"(or `python -m sdelab checkpoints --only {name}`) to train it")
    digest = _sha256(path)
    if digest != entry["sha256"]:
        raise ValueError(f"pretrained model {name!r}: checksum mismatch for {path} (sha256 {digest[:16]}..., the "
                         f"manifest says {entry['sha256'][:16]}...): the file is corrupt or stale; run "
                         f"`python -m sdelab checkpoints --only {name}`")
    return path, entry


def pretrained(name: str, *, device=None, directory=None) -> nn.Module:
    """A pretrained model, rebuilt from its spec, with float32 weights, in eval mode, on `device` (default CPU).

    Looked up in `directory` if given, else in the user's folder (`user_dir()`), else among the shipped weights.
    The file's SHA-256 is checked against the manifest first. `info(name)` has the rest of its description.

    Raises:
        ValueError: unknown `name` (the message lists the available ones), or a checksum mismatch.
        FileNotFoundError: the file is listed but missing (run `make checkpoints`).
    """
    path, entry = _checked_file(name, directory)
    state, _ = _read(path)
    return _rebuild(entry, state, device)


def load_extra(name: str, key: str, *, directory=None) -> dict:
    """The extra tensors `key` stored with model `name` by `export_weights(..., extra={key: ...})` (checksum-checked)."""
    path, entry = _checked_file(name, directory)
    prefix = f"{_EXTRA}{key}."
    out = {k[len(prefix):]: v for k, v in _read(path)[0].items() if k.startswith(prefix)}
    if not out:
        raise ValueError(f"pretrained model {name!r} stores no extra tensors {key!r} (has: {entry.get('extra', [])})")
    return out


def load_file(path, *, device=None, ema: bool = True) -> nn.Module:
    """A network from a file that describes itself: a weights file written by `export_weights` /
    `train-classifier` (`.safetensors`, or the older `.pt`), or a `python -m sdelab train` checkpoint (its EMA
    weights unless `ema=False`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such checkpoint: {path}")
    state, meta = _read(path)
    if "model" not in meta:
        raise ValueError(f"{path} does not say which network it holds (no meta['model']); it was not written by "
                         f"`python -m sdelab train` or `export_weights`")
    if "state_dict" not in state and ("ema" in state or "model" in state):  # a training checkpoint
        state = state["ema" if ema else "model"]
    return _rebuild(meta, state, device)


def file_meta(path) -> dict:
    """The `meta` dict stored in a weights file or a training checkpoint."""
    return _read(Path(path))[1]
