"""Networks as data: configs, the BoTNet class, the registry and the paper's presets."""

from . import presets as _presets  # noqa: F401  (registers the paper's models)
from . import timm_family as _timm_family  # noqa: F401  (registers timm's BoTNet-family networks)
from .attention_maps import AttentionMap, attention_layers, attention_maps
from .botnet import IMAGENET_MEAN, IMAGENET_STD, BoTNet
from .complexity import count_macs, count_params
from .config import BoTNetConfig
from .finetune import finetune_param_groups, freeze
from .paper import PAPER_ROWS, PaperRow, TableEntry, paper_table
from .presets import (
    botnet26,
    botnet50,
    botnet101,
    botnet152,
    botnet200,
    botnet_s1_50,
    botnet_s1_59,
    botnet_s1_77,
    botnet_s1_110,
    botnet_s1_128,
    botnet_t3,
    botnet_t4,
    botnet_t5,
    botnet_t6,
    botnet_t7,
    botnet_tiny,
    resnet50,
    resnet101,
    resnet152,
    resnet200,
)
from .pretrained import KnownSource, known_sources, load_pretrained, looks_like
from .registry import create_model, describe_model, get_config, list_models, register_model
from .sources import Weights, WeightsSourceError, read_weights
from .timm_family import convert_timm_state_dict
from .transfer import TransferReport, apply_state_dict, load_torchvision_weights
from .weights import load_weights, read_metadata, save_weights

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "KnownSource",
    "PAPER_ROWS",
    "AttentionMap",
    "BoTNet",
    "BoTNetConfig",
    "PaperRow",
    "TableEntry",
    "TransferReport",
    "Weights",
    "WeightsSourceError",
    "apply_state_dict",
    "attention_layers",
    "attention_maps",
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
    "botnet26",
    "convert_timm_state_dict",
    "count_macs",
    "count_params",
    "create_model",
    "describe_model",
    "finetune_param_groups",
    "freeze",
    "get_config",
    "known_sources",
    "list_models",
    "load_pretrained",
    "load_torchvision_weights",
    "load_weights",
    "looks_like",
    "paper_table",
    "read_metadata",
    "read_weights",
    "register_model",
    "resnet50",
    "resnet101",
    "resnet152",
    "resnet200",
    "save_weights",
]
