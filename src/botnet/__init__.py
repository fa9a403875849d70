"""botnet: Bottleneck Transformers (Srinivas et al., CVPR 2021) at any input size.

The names below are imported on first use: ``import botnet`` and the ``botnet`` command's help do not load torch.
"""

from ._lazy import lazy_exports

__version__ = "0.1.0"

__all__ = [
    "__version__",
    *lazy_exports(
        __name__,
        {
            "": ("layers", "models"),
            "layers": ("MHSA2d", "relative_logits"),
            "models": (
                "BoTNet",
                "BoTNetConfig",
                "count_macs",
                "count_params",
                "create_model",
                "list_models",
                "load_torchvision_weights",
                "load_weights",
                "save_weights",
            ),
        },
    ),
]
