"""Networks as data: configs, the BoTNet class, the registry and the paper's presets.

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
        "finetune": ("finetune_param_groups", "freeze"),
        "paper": ("PAPER_ROWS", "PaperRow", "TableEntry", "paper_table"),
        "presets": _presets.PRESETS,  # one builder per preset, generated from its registration
        "known_sources": ("KnownSource", "known_sources"),
        "pretrained": ("load_pretrained", "looks_like"),
        "registry": ("create_model", "describe_model", "get_config", "list_models", "register_model"),
        "sources": ("Weights", "WeightsSourceError", "read_weights"),
        "timm_family": ("convert_timm_state_dict",),
        "transfer": ("TransferReport", "apply_state_dict", "load_torchvision_weights"),
        "weights": ("load_weights", "read_metadata", "save_weights"),
    },
)
