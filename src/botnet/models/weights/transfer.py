"""Putting a foreign or partial state dict into a model, with a report of what happened to every tensor.

Every load ends in a :class:`TransferReport`: loaded, resized (position tables of another reference size),
reinitialised (a classifier with another class count, or for other class names), missing and unexpected keys, what
reading the source changed (a wrapper's key prefix removed), and the gaps a kind of source has by design (attention
weights a torchvision ResNet never had, its 3x3 convs that BoT blocks replace).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from torch import Tensor, nn

from .files import read_file

# Parameters with no counterpart in a torchvision ResNet.
ATTENTION_ONLY = (".attn.", ".se.", ".gate.", ".non_local.")
# Position tables: their length follows the reference input size, and a load resizes them by the layer's policy.
POSITION_TABLES = (".rel_h", ".rel_w", ".abs_h", ".abs_w")
_SHOWN = 5  # keys named per category in messages


@dataclass
class TransferReport:
    """What a load did, key by key (our names unless said otherwise)."""

    loaded: list[str] = field(default_factory=list)
    not_in_source: list[str] = field(default_factory=list)  # ours the kind of source cannot have (by design)
    unused: list[str] = field(default_factory=list)  # source keys with no place here by design
    resized: list[str] = field(default_factory=list)  # position tables resized to our reference size (also loaded)
    reinitialised: list[str] = field(default_factory=list)  # our classifier, kept fresh (why: reinitialised_why)
    missing: list[str] = field(default_factory=list)  # ours absent from the source
    unexpected: list[str] = field(default_factory=list)  # source keys we have no place for
    source: str = ""
    kind: str = ""  # "botnet", "timm" or "torchvision"
    reinitialised_why: str = "another class count"
    notes: list[str] = field(default_factory=list)  # what reading the source changed (a key prefix removed, ...)

    def summary(self) -> str:
        """A few lines: one per non-empty category, with counts and the first keys."""
        head = f"weights {self.source}" + (f" ({self.kind})" if self.kind else "")
        lines = [f"{head}: loaded {len(self.loaded)} tensors", *(f"  {note}" for note in self.notes)]
        for label, keys in (
            ("resized position tables", self.resized),
            (f"reinitialised ({self.reinitialised_why})", self.reinitialised),
            ("not in this kind of source (kept as initialised)", self.not_in_source),
            ("unused by design", self.unused),
            ("missing (kept as initialised)", self.missing),
            ("unexpected (ignored)", self.unexpected),
        ):
            if keys:
                lines.append(f"  {label}: {len(keys)}: {_names(keys)}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def _names(keys: list[str]) -> str:
    more = f", ... ({len(keys) - _SHOWN} more)" if len(keys) > _SHOWN else ""
    return ", ".join(keys[:_SHOWN]) + more


def apply_state_dict(
    model: nn.Module,
    state: dict[str, Tensor],
    *,
    strict: bool = True,
    source: str = "",
    kind: str = "",
    optional: Callable[[str], bool] = lambda key: False,
    ignorable: Callable[[str], bool] = lambda key: False,
    hint: Callable[[], str] | None = None,
) -> TransferReport:
    """Load ``state`` (already in our key names) into ``model`` and report on every key.

    Position tables of another length are resized by their layer's policy; a classifier (``fc.*``) of another shape
    is left as initialised and reported as reinitialised.

    Args:
        strict: missing or unexpected keys (other than ``optional`` / ``ignorable`` ones and the classifier) are an
            error; with False they are loaded around and reported.
        optional: our keys this kind of source lacks by design.
        ignorable: source keys this kind of source has and we do not use by design.
        hint: says which model the weights look like, for the error message.

    Raises:
        ValueError: a shape mismatch outside the classifier and position tables, nothing in common, or (strict)
            missing / unexpected keys; the message names the source and the keys.
    """
    own = model.state_dict()
    report = TransferReport(source=source, kind=kind)
    to_load, mismatched = {}, []
    for key, tensor in own.items():
        if key not in state:
            (report.not_in_source if optional(key) else report.missing).append(key)
            continue
        theirs = state[key]
        if theirs.shape == tensor.shape:
            to_load[key] = theirs
        elif key.startswith("fc."):
            report.reinitialised.append(key)
            continue
        elif key.endswith(POSITION_TABLES) and theirs.dim() == 2 and theirs.shape[1] == tensor.shape[1]:
            to_load[key] = theirs  # the layer's load hook resizes it
            report.resized.append(key)
        else:
            mismatched.append(f"{key}: ours {tuple(tensor.shape)}, source {tuple(theirs.shape)}")
            continue
        report.loaded.append(key)
    for key in state:
        if key not in own:
            headless = key.startswith("fc.") and not any(k.startswith("fc.") for k in own)
            (report.unused if ignorable(key) or headless else report.unexpected).append(key)
    problems = []
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatches ({_names(mismatched)})")
    if strict and report.missing:
        problems.append(f"{len(report.missing)} missing ({_names(report.missing)})")
    if strict and report.unexpected:
        problems.append(f"{len(report.unexpected)} unexpected ({_names(report.unexpected)})")
    if problems or not report.loaded:
        name = str(getattr(model, "pretrained_cfg", {}).get("architecture", "")) or type(model).__name__
        looks = hint() if hint is not None else ""
        advice = "" if mismatched or not report.loaded else " (strict=False loads the rest and reports them)"
        raise ValueError(
            f"weights {source or ''} do not fit {name}: {'; '.join(problems) or 'no tensor in common'}"
            f"{advice}.{(' ' + looks) if looks else ''}"
        )
    model.load_state_dict(to_load, strict=False)
    return report


def load_torchvision_weights(
    model: nn.Module, source: str | Path | dict[str, Tensor], *, strict: bool = True
) -> TransferReport:
    """Copy a torchvision ResNet state dict into every non-attention weight of a matching-depth model.

    Args:
        model: a :class:`~botnet.models.BoTNet` (any ResNet or BoTNet preset of the same depth as the source).
        source: a state dict, or a path to a ``.pth`` (read with ``weights_only=True``) or ``.safetensors`` file
            (see :func:`~botnet.models.weights.files.read_file`).
        strict: a non-attention weight the source lacks, or a source key we cannot place, is an error.

    Returns:
        A report: loaded keys, ours absent from the source by design (attention, SE, non-local:
        ``not_in_source``), source keys unused by design (3x3 convs replaced by attention: ``unused``), and the
        classifier when the class count differs (``reinitialised``).

    Raises:
        FileNotFoundError: no file at ``source``.
        WeightsSourceError: the file cannot be read as a state dict of tensors.
        ValueError: a shared key has another shape (typically another depth), or nothing matched at all.
    """
    state = source if isinstance(source, dict) else read_file(source)[0]
    own = model.state_dict()

    def replaced_conv(key: str) -> bool:  # a 3x3 conv of a block that is a BoT block here
        block = key.rsplit(".conv2.", 1)[0]
        return ".conv2." in key and f"{block}.attn.qkv.weight" in own

    return apply_state_dict(
        model,
        state,
        strict=strict,
        source=str(source) if not isinstance(source, dict) else "(torchvision state dict)",
        kind="torchvision",
        optional=lambda key: any(tag in f".{key}" for tag in ATTENTION_ONLY),
        ignorable=replaced_conv,
        hint=lambda: "Use the torchvision ResNet of the same depth.",
    )
