"""sdelab: the package behind the executable textbook on the SDE view of diffusion models.

Submodules load on first use, so `import sdelab; sdelab.toy.ring()` works without importing
everything (sympy, matplotlib) up front.
"""
import importlib

__version__ = "0.1.0"

from .utils import append_dims, default_device, pick, quick, seed_everything, setup  # noqa: E402,F401
from .sde import SDE, VESDE, VPSDE, SubVPSDE, pf_drift, reverse_drift  # noqa: E402,F401

_SUBMODULES = {
    "brownian", "sde", "fokker_planck", "symbolic", "toy", "param", "losses", "nets", "unet", "train",
    "data", "samplers", "discrete", "likelihood", "metrics", "plot", "widgets", "exercises", "cli", "bench",
    "hub", "classifier", "distributed", "recipes", "checkpoint", "embeddings",
    "grids", "multistep", "validate", "grid_measure", "bench_samplers", "cli_args", "bench_timing", "bench_mnist",
    "bench_images", "unipc",
}


def __getattr__(name):
    if name == "pretrained":  # sdelab.pretrained(name): the shipped models
        return importlib.import_module(".hub", __name__).pretrained
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'sdelab' has no attribute {name!r}")
