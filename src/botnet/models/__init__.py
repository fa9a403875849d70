"""Networks as data: configs, the BoTNet class, the registry and the paper's presets; their weights in :mod:`.weights`.

The registry and the configs import no torch (``botnet list`` answers at once); the other names are imported on
first use.
"""

from .._lazy import lazy_exports
from . import presets as _presets  # noqa: F401  (registers the paper's models)
from . import timm_family as _timm_family  # noqa: F401  (registers timm's BoTNet-family networks)

__all__ = lazy_exports(
    __name__,
    {
        "attention_maps": ("AttentionMap", "attention_layers", "attention_maps"),
        "botnet": ("BoTNet",),
        "complexity": ("count_macs", "count_params"),
        "config": ("IMAGENET_MEAN", "IMAGENET_STD", "BoTNetConfig"),
        "factory": ("create_model",),
        "finetune": ("finetune_param_groups", "freeze"),
        "paper": ("PAPER_ROWS", "PaperRow", "TableEntry", "paper_table"),
        "presets": _presets.PRESETS,  # one builder per preset, generated from its registration
        "registry": ("describe_model", "get_config", "list_models", "register_model"),
        "weights": (
            "KnownSource",
            "TransferReport",
            "Weights",
            "WeightsSourceError",
            "apply_state_dict",
            "convert_timm_state_dict",
            "known_sources",
            "load_pretrained",
            "load_torchvision_weights",
            "load_weights",
            "looks_like",
            "read_metadata",
            "read_weights",
            "save_weights",
        ),
    },
)
