"""sdelab: the package behind the executable textbook on the SDE view of diffusion models."""
__version__ = "0.1.0"

from .utils import append_dims, default_device, pick, quick, seed_everything, setup  # noqa: E402,F401
from .sde import SDE, VESDE, VPSDE, SubVPSDE, pf_drift, reverse_drift  # noqa: E402,F401
