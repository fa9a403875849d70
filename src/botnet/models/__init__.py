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
        "botnet": ("IMAGENET_MEAN", "IMAGENET_STD", "BoTNet"),
        "complexity": ("count_macs", "count_params"),
        "config": ("BoTNetConfig",),
        "finetune": ("finetune_param_groups", "freeze"),
        "paper": ("PAPER_ROWS", "PaperRow", "TableEntry", "paper_table"),
        "presets": (
            "botnet26",
            "botnet50",
            "botnet101",
            "botnet152",
            "botnet200",
            "botnet_s1_50",
            "botnet_s1_59",
            "botnet_s1_77",
            "botnet_s1_110",
            "botnet_s1_128",
            "botnet_t3",
            "botnet_t4",
            "botnet_t5",
            "botnet_t6",
            "botnet_t7",
            "botnet_tiny",
            "resnet50",
            "resnet101",
            "resnet152",
            "resnet200",
        ),
        "known_sources": ("KnownSource", "known_sources"),
        "pretrained": ("load_pretrained", "looks_like"),
        "registry": ("create_model", "describe_model", "get_config", "list_models", "register_model"),
        "sources": ("Weights", "WeightsSourceError", "read_weights"),
        "timm_family": ("convert_timm_state_dict",),
        "transfer": ("TransferReport", "apply_state_dict", "load_torchvision_weights"),
        "weights": ("load_weights", "read_metadata", "save_weights"),
    },
)
