"""Weights for the zoo: every weights SOURCE read once, timm's layout converted, fitted to a model with a report.

:mod:`.files` reads any weights file and writes and loads our own; :mod:`.hub` fetches ``timm:`` and
``torchvision:`` sources into their caches; :mod:`.timm` converts timm's key names; :mod:`.sources` reads any SOURCE
into our key names; :mod:`.transfer` puts a state dict into a model with a :class:`TransferReport`; :mod:`.fit` loads
a SOURCE into a model and tells which model a state dict fits; :mod:`.known` is the table of published weights and
their figures; :mod:`.convert` writes any SOURCE as our safetensors file.

Names are imported on first use: the table of known sources loads without torch (``botnet list``).
"""

from ..._lazy import lazy_exports

__all__ = lazy_exports(
    __name__,
    {
        "convert": ("Conversion", "check_class_names", "convert_weights"),
        "files": ("WeightsSourceError", "load_weights", "read_file", "read_metadata", "save_weights"),
        "fit": ("load_pretrained", "looks_like", "source_preprocessing", "trained_size"),
        "hub": ("fetch_timm", "fetch_torchvision"),
        "known": ("TIMM_SOURCES", "TIMM_TAGS", "TORCHVISION_SOURCES", "KnownSource", "known_sources"),
        "sources": ("Weights", "read_weights", "torchvision_preprocessing", "weights_file"),
        "timm": ("convert_timm_state_dict", "is_timm_state_dict", "timm_key"),
        "transfer": (
            "ATTENTION_ONLY",
            "POSITION_TABLES",
            "TransferReport",
            "apply_state_dict",
            "load_torchvision_weights",
        ),
    },
)
