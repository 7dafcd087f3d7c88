"""probssl: probabilistic self-supervised representation learning in PyTorch.

Every embedding is a distribution: contrastive methods (SimCLR, SupCon) and their variational
versions (VSimCLR, VSupCon), stochastic contrastive learning and SimVAE share one method
interface, one trainer and one evaluation suite.
"""

from probssl.config import Config, ConfigError, list_presets, load_config
from probssl.data import DataError, load_dataset
from probssl.evaluation import evaluate_method, evaluate_run
from probssl.evaluation.embed import embed
from probssl.methods import Method, create_method, list_methods
from probssl.train import Trainer, load_run
from probssl.train.export import export_run, from_pretrained

__version__ = "0.2.0"
__all__ = [
    "Config",
    "ConfigError",
    "DataError",
    "Method",
    "Trainer",
    "create_method",
    "evaluate_method",
    "embed",
    "evaluate_run",
    "export_run",
    "from_pretrained",
    "list_methods",
    "list_presets",
    "load_config",
    "load_dataset",
    "load_run",
]
