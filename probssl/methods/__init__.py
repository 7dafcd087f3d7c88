"""SSL methods: each says how views become loss terms and how an image becomes a posterior."""
from probssl.methods.base import REPRESENTATIONS, Method
from probssl.methods.registry import create_method, list_methods, method_class, register_method
# Importing the method modules registers them.
from probssl.methods.simclr import SimCLR
from probssl.methods.vsimclr import VSimCLR

__all__ = ["Method", "REPRESENTATIONS", "SimCLR", "VSimCLR", "create_method", "list_methods",
           "method_class", "register_method"]
