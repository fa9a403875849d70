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
from ..models.registry import create_model
from ..models.weights import _ATTENTION_ONLY, read_state_dict

# Trainable from the last stage backwards, as torchvision counts them (5: everything, stem BN included).
_LAYERS_FROM_TOP = ("layer4", "layer3", "layer2", "layer1", "conv1")

WeightsSource = str | Path | dict[str, Tensor]


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
        weights: backbone weights: a state dict, a ``.safetensors`` / ``.pth`` file (read with ``weights_only=True``)
            or a checkpoint directory of ``botnet train`` (its ``model.safetensors``). Our own classification
            weights or a torchvision ResNet of the same depth; the classifier is ignored and position tables of
            another reference size are resized.
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
    if weights is not None:
        load_backbone_weights(body, weights)
    if norm_layer is not None and norm_layer is not nn.BatchNorm2d:
        replace_batchnorm(body, norm_layer)

    trainable = list(_LAYERS_FROM_TOP[:trainable_layers]) + (["bn1"] if trainable_layers == 5 else [])
    for param_name, param in body.named_parameters():
        param.requires_grad_(any(param_name.startswith(prefix + ".") for prefix in trainable))

    stage_channels = [info["num_chs"] for info in body.feature_info[1:]]  # c2..c5
    return_layers = {f"layer{k}": str(i) for i, k in enumerate(returned)}
    return BackboneWithFPN(
        body,
        return_layers=return_layers,
        in_channels_list=[stage_channels[k - 1] for k in returned],
        out_channels=out_channels,
        extra_blocks=extra_blocks if extra_blocks is not None else LastLevelMaxPool(),
        norm_layer=fpn_norm_layer,
    )


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


def load_backbone_weights(body: BoTNet, source: WeightsSource) -> list[str]:
    """Load classification weights into a headless network; returns the keys the source lacked (attention only).

    Raises:
        ValueError: a non-attention weight is missing or has another shape (another depth or width).
    """
    if isinstance(source, (str, Path)) and Path(source).is_dir():
        source = Path(source) / "model.safetensors"
    state = {k: v for k, v in read_state_dict(source).items() if not k.startswith("fc.")}
    own = body.state_dict()
    missing = [k for k in own if k not in state]
    required = [k for k in missing if not any(tag in f".{k}" for tag in _ATTENTION_ONLY)]
    mismatched = [
        f"{k}: ours {tuple(own[k].shape)}, source {tuple(v.shape)}"
        for k, v in state.items()
        if k in own and v.shape != own[k].shape and ".attn." not in f".{k}"  # position tables are resized
    ]
    if required or mismatched:
        details = "; ".join(mismatched[:3] + [f"{k} missing" for k in required[:3]])
        raise ValueError(
            f"backbone weights do not fit {body.pretrained_cfg.get('architecture', 'the network')} "
            f"({len(mismatched)} shape mismatches, {len(required)} missing): {details}. "
            "Use weights of the same depth and width."
        )
    try:
        body.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
    except RuntimeError as err:
        raise ValueError(f"backbone weights do not fit: {err}") from None
    return missing
