"""SSL methods: each says how views become loss terms and how an image becomes a posterior.

Every module in this package registers its method(s) on import; they are imported here, so
``create_method`` knows them all. Add a method by adding one module.
"""

import importlib
import pkgutil

from probssl.methods.base import REPRESENTATIONS, Method
from probssl.methods.registry import create_method, list_methods, method_class, register_method

for _module in pkgutil.iter_modules(__path__):
    if _module.name not in ("base", "registry"):
        importlib.import_module(f"{__name__}.{_module.name}")

from probssl.methods.crvae import CRVAE  # noqa: E402
from probssl.methods.scl import SCL, compression_ratio  # noqa: E402
from probssl.methods.simclr import SimCLR  # noqa: E402
from probssl.methods.simvae import SimVAE  # noqa: E402
from probssl.methods.supcon import SupCon  # noqa: E402
from probssl.methods.vae import VAE, BetaVAE  # noqa: E402
from probssl.methods.vicreg import VICReg  # noqa: E402
from probssl.methods.vsimclr import VSimCLR  # noqa: E402
from probssl.methods.vsupcon import VSupCon  # noqa: E402

__all__ = [
    "BetaVAE",
    "CRVAE",
    "Method",
    "REPRESENTATIONS",
    "SCL",
    "SimCLR",
    "SimVAE",
    "SupCon",
    "VAE",
    "VICReg",
    "VSimCLR",
    "VSupCon",
    "compression_ratio",
    "create_method",
    "list_methods",
    "method_class",
    "register_method",
]
