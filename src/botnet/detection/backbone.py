"""BoTNet / ResNet + FPN backbones for torchvision's detection models (paper section 5: Mask R-CNN with FPN).

The network comes from this package's zoo (``create_model(name, num_classes=0)``); its torchvision child names
(``conv1 .. layer4``) let torchvision's ``BackboneWithFPN`` / ``IntermediateLayerGetter`` take the stage outputs
unchanged. Nothing here assumes an input size: the c5 attention reads (H, W) from each batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from torch import Tensor, nn
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.ops.feature_pyramid_network import ExtraFPNBlock, LastLevelMaxPool
from torchvision.ops.misc import FrozenBatchNorm2d

from ..models.botnet import BoTNet
from ..models.factory import create_model
from ..models.weights import TransferReport, Weights, load_pretrained, read_weights

# Trainable from the last stage backwards, as torchvision counts them (5: everything, stem BN included).
_LAYERS_FROM_TOP = ("layer4", "layer3", "layer2", "layer1", "conv1")

WeightsSource = str | Path | dict[str, Tensor] | Weights


def botnet_fpn_backbone(
    name: str,
    *,
    weights: WeightsSource | None = None,
    trainable_layers: int = 3,
    returned_layers: Sequence[int] | None = None,
    norm_layer: Callable[[int], nn.Module] | None = FrozenBatchNorm2d,
    extra_blocks: ExtraFPNBlock | None = None,
    out_channels: int = 256,
    fpn_norm_layer: Callable[..., nn.Module] | None = None,
    **overrides: object,
) -> BackboneWithFPN:
    """A registered network (``botnet50``, ``resnet101``, ...) with torchvision's FPN on top.

    Mirrors torchvision's ``resnet_fpn_backbone``.

    Args:
        name: a model from :func:`botnet.models.list_models`.
        weights: backbone weights: any weights SOURCE (see :mod:`botnet.models.weights.sources`): a state dict, a
            file, a ``botnet train`` run or checkpoint directory, ``timm:NAME.TAG``, ``torchvision:WEIGHTS`` or a
            :class:`~botnet.models.Weights` already read. The classifier is ignored and position tables of another
            reference size are resized; the load's report is kept as the returned module's ``pretrained_report``.
        trainable_layers: stages left trainable counting from c5 (0..5; 5 also trains the stem).
        returned_layers: stages fed to the FPN, 1..4 for c2..c5 (default all four).
        norm_layer: what each BatchNorm2d of the network becomes (its statistics are kept); the default freezes
            them, as detection fine-tuning from ImageNet weights does. ``None`` or ``nn.BatchNorm2d`` keeps
            trainable BatchNorm (training from scratch).
        extra_blocks: FPN extra levels (default: max pool, giving the "pool" level).
        out_channels: FPN channels.
        fpn_norm_layer: norm inside the FPN convs (torchvision's ``norm_layer`` of ``BackboneWithFPN``).
        **overrides: :class:`~botnet.models.BoTNetConfig` fields, e.g. ``img_size=1024`` (the reference size of the
            position tables: the paper's detection input) or ``attn_backend="chunked"``.
    """
    if not 0 <= trainable_layers <= 5:
        raise ValueError(f"trainable_layers must be in 0..5 (5: the whole network trainable), got {trainable_layers}")
    returned = [1, 2, 3, 4] if returned_layers is None else list(returned_layers)
    if not returned or any(layer not in (1, 2, 3, 4) for layer in returned) or sorted(set(returned)) != returned:
        raise ValueError(f"returned_layers must be increasing stage numbers from 1..4 (c2..c5), got {returned_layers}")
    body = create_model(name, num_classes=0, **overrides)
    report = load_backbone_weights(body, weights) if weights is not None else None
    if norm_layer is not None and norm_layer is not nn.BatchNorm2d:
        replace_batchnorm(body, norm_layer)

    trainable = list(_LAYERS_FROM_TOP[:trainable_layers]) + (["bn1"] if trainable_layers == 5 else [])
    for param_name, param in body.named_parameters():
        param.requires_grad_(any(param_name.startswith(prefix + ".") for prefix in trainable))

    stage_channels = [info["num_chs"] for info in body.feature_info[1:]]  # c2..c5
    return_layers = {f"layer{k}": str(i) for i, k in enumerate(returned)}
    fpn = BackboneWithFPN(
        body,
        return_layers=return_layers,
        in_channels_list=[stage_channels[k - 1] for k in returned],
        out_channels=out_channels,
        extra_blocks=extra_blocks if extra_blocks is not None else LastLevelMaxPool(),
        norm_layer=fpn_norm_layer,
    )
    fpn.pretrained_report = report  # what loading ``weights`` did (None without them)
    return fpn


def replace_batchnorm(module: nn.Module, norm_layer: Callable[[int], nn.Module]) -> nn.Module:
    """Swap every ``nn.BatchNorm2d`` in ``module`` for ``norm_layer(num_features)``, keeping affine and statistics."""
    for child_name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            new = norm_layer(child.num_features)
            state = {k: v for k, v in child.state_dict().items() if k in new.state_dict()}
            new.load_state_dict(state, strict=False)
            if isinstance(new, FrozenBatchNorm2d):
                new.eps = child.eps
            setattr(module, child_name, new)
        else:
            replace_batchnorm(child, norm_layer)
    return module


def load_backbone_weights(body: BoTNet, source: WeightsSource) -> TransferReport:
    """Load weights SOURCE (see :mod:`botnet.models.weights.sources`) into a headless network and report what happened.

    The source's classifier is reported unused; for a torchvision ResNet the attention weights it never had are
    reported as not in the source, and position tables of another reference size are resized.

    Raises:
        WeightsSourceError: the source cannot be read.
        ValueError: the weights do not fit (another depth or width): the message names the keys and the model they
            look like.
    """
    return load_pretrained(body, source)


def check_backbone_weights(
    backbone: str, source: WeightsSource, *, img_size: int, **overrides: object
) -> tuple[Weights, TransferReport]:
    """Read SOURCE and load it into a headless ``backbone`` once, so that a bad source is an error before any data
    is built or anything written; returns the weights read (to build the detector without reading them again)."""
    weights = read_weights(source)
    body = create_model(backbone, num_classes=0, img_size=img_size, **overrides)
    return weights, load_backbone_weights(body, weights)
