"""botnet: Bottleneck Transformers (Srinivas et al., CVPR 2021) at any input size."""

from . import layers, models
from .layers import MHSA2d, relative_logits
from .models import (
    BoTNet,
    BoTNetConfig,
    count_macs,
    count_params,
    create_model,
    list_models,
    load_torchvision_weights,
    load_weights,
    save_weights,
)

__version__ = "0.1.0"

__all__ = [
    "BoTNet",
    "BoTNetConfig",
    "MHSA2d",
    "__version__",
    "count_macs",
    "count_params",
    "create_model",
    "layers",
    "list_models",
    "load_torchvision_weights",
    "load_weights",
    "models",
    "relative_logits",
    "save_weights",
]
