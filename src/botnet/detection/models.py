"""Mask R-CNN / Faster R-CNN with a BoTNet-FPN or ResNet-FPN backbone (paper section 5), in torchvision's style.

Both sides of the paper's comparison come from one code path: ``maskrcnn_resnet50_fpn`` and
``maskrcnn_botnet50_fpn`` differ only in the c5 blocks. torchvision's heads, RoIAlign, NMS and
``GeneralizedRCNNTransform`` are used as they are, the transform's resize with a floor of 1 px per side
(:class:`~botnet.detection.transform.FlooredResizeTransform`). Images of any size and aspect ratio work;
``fixed_size=True`` pads every batch to ``image_size`` x ``image_size``, the paper's 1024 x 1024 setting.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torchvision.models.detection import FasterRCNN, MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.ops import MultiScaleRoIAlign
from torchvision.ops.misc import FrozenBatchNorm2d
from torchvision.ops.poolers import initLevelMapper

from ..models.registry import list_models, model_entry, register_model
from ..models.weights import TIMM_TAGS
from .backbone import WeightsSource, botnet_fpn_backbone
from .transform import FlooredResizeTransform

DEFAULT_ANCHOR_SIZES = (32, 64, 128, 256, 512)  # torchvision's, one size per FPN level (c2..c5 + pool)
PROPOSALS_PER_DETECTION = 3  # with max_detections: RPN proposals kept per detection, at least
FPN_STRIDES = (4, 8, 16, 32)  # the RoI-pooled FPN levels "0".."3": c2..c5 of every backbone here
ASPECT_RATIOS = (0.5, 1.0, 2.0)


class PadToSizeTransform(FlooredResizeTransform):
    """torchvision's detection transform, but every batch is padded to exactly ``pad_to`` = (H, W).

    With ``min_size == max_size == S`` torchvision resizes each image so its longer side is S; padding to S x S
    then gives the paper's fixed 1024 x 1024 input (and a fixed c5 size, e.g. 32 x 32 at 1024).
    """

    def __init__(self, *args: Any, pad_to: tuple[int, int], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pad_to = tuple(pad_to)

    def batch_images(self, images: list[Tensor], size_divisible: int = 32) -> Tensor:
        height, width = self.pad_to
        too_big = [tuple(img.shape[-2:]) for img in images if img.shape[-2] > height or img.shape[-1] > width]
        if too_big:
            raise ValueError(
                f"images of size {too_big[0]} do not fit the fixed input size {height}x{width}; "
                "use min_size = max_size = the fixed size"
            )
        # zeros below and right of each image, by F.pad: the same pixels as a copy into a zero tensor, and a traced
        # (ONNX) graph keeps the image's size as a variable instead of the size it was traced at
        return torch.stack([F.pad(img, (0, width - img.shape[-1], 0, height - img.shape[-2])) for img in images])


def set_pooler_scales(model: nn.Module) -> None:
    """Give the RoI poolers the FPN levels' scales (strides :data:`FPN_STRIDES`) instead of letting them infer it.

    torchvision's ``MultiScaleRoIAlign`` infers each level's scale from the first batch it sees, by the padded
    feature height over the largest image height, and keeps it. In a batch padded to a square (``fixed_size``) of
    wide images only (1100x700 frames; 16:9 photos) that is twice the true scale: a model built in a new process
    (``detect eval``, ``predict``, an export) and shown such images first pooled every box from the wrong places.
    """
    for pooler in (model.roi_heads.box_roi_pool, getattr(model.roi_heads, "mask_roi_pool", None)):
        if pooler is not None:
            pooler.scales = [1 / stride for stride in FPN_STRIDES]
            levels = [int(math.log2(stride)) for stride in FPN_STRIDES]
            pooler.map_levels = initLevelMapper(
                levels[0], levels[-1], canonical_scale=pooler.canonical_scale, canonical_level=pooler.canonical_level
            )


def _detector(
    kind: str,
    backbone: str,
    *,
    num_classes: int = 91,
    weights_backbone: WeightsSource | None = None,
    trainable_backbone_layers: int | None = None,
    image_size: int = 1024,
    fixed_size: bool = False,
    fpn_channels: int = 256,
    representation_size: int = 1024,
    mask_channels: int = 256,
    anchor_sizes: Sequence[int] = DEFAULT_ANCHOR_SIZES,
    roi_sampling_ratio: int = 2,
    backbone_args: dict[str, Any] | None = None,
    max_detections: int | None = None,
    **kwargs: Any,
) -> nn.Module:
    if num_classes < 2:
        raise ValueError(f"num_classes counts the background too and must be >= 2, got {num_classes}")
    if image_size < 32:
        raise ValueError(f"image_size must be at least 32 pixels, got {image_size}")
    if len(anchor_sizes) != 5:
        raise ValueError(f"anchor_sizes needs one size per FPN level (c2..c5 and pool): 5 values, got {anchor_sizes}")
    pretrained = weights_backbone is not None
    if trainable_backbone_layers is None:
        trainable_backbone_layers = 3 if pretrained else 5  # torchvision's rule
    # Frozen BN for fine-tuning pretrained statistics; plain BN when training the backbone from scratch.
    norm_layer: Callable[[int], nn.Module] = FrozenBatchNorm2d if pretrained else nn.BatchNorm2d
    body_args = {"img_size": image_size, **(backbone_args or {})}
    fpn = botnet_fpn_backbone(
        backbone,
        weights=weights_backbone,
        trainable_layers=trainable_backbone_layers,
        norm_layer=norm_layer,
        out_channels=fpn_channels,
        **body_args,
    )
    if max_detections is not None:  # dense images: more detections, and proposals to find them (3 per detection)
        kwargs["box_detections_per_img"] = max_detections
        for key, default in (("rpn_pre_nms_top_n", 2000), ("rpn_post_nms_top_n", 2000)):
            for phase, fallback in (("train", default), ("test", default // 2)):
                name = f"{key}_{phase}"
                kwargs[name] = max(kwargs.get(name, fallback), PROPOSALS_PER_DETECTION * max_detections)
    kwargs.setdefault("min_size", image_size)
    kwargs.setdefault("max_size", image_size)
    kwargs.setdefault(
        "rpn_anchor_generator", AnchorGenerator(tuple((s,) for s in anchor_sizes), (ASPECT_RATIOS,) * len(anchor_sizes))
    )
    levels = ["0", "1", "2", "3"]
    if roi_sampling_ratio != 2:
        kwargs.setdefault("box_roi_pool", MultiScaleRoIAlign(levels, output_size=7, sampling_ratio=roi_sampling_ratio))
        if kind == "maskrcnn":
            pool = MultiScaleRoIAlign(levels, output_size=14, sampling_ratio=roi_sampling_ratio)
            kwargs.setdefault("mask_roi_pool", pool)
    if representation_size != 1024 and "box_head" not in kwargs:
        kwargs["box_head"] = TwoMLPHead(fpn_channels * 7 * 7, representation_size)
        kwargs["box_predictor"] = FastRCNNPredictor(representation_size, num_classes)
    if kind == "maskrcnn" and mask_channels != 256 and "mask_head" not in kwargs:
        kwargs["mask_head"] = MaskRCNNHeads(fpn_channels, (mask_channels,) * 4, 1)
        kwargs["mask_predictor"] = MaskRCNNPredictor(mask_channels, mask_channels, num_classes)
    given_predictor = "box_predictor" in kwargs or "mask_predictor" in kwargs
    cls = MaskRCNN if kind == "maskrcnn" else FasterRCNN
    model = cls(fpn, num_classes=None if given_predictor else num_classes, **kwargs)
    set_pooler_scales(model)
    if fixed_size:
        model.transform = PadToSizeTransform.like(model.transform, pad_to=(image_size, image_size))
    else:
        model.transform = FlooredResizeTransform.like(model.transform)
    return model


def maskrcnn_botnet_fpn(backbone: str = "botnet50", **kwargs: Any) -> MaskRCNN:
    """Mask R-CNN with any registered network + FPN as backbone.

    Args:
        backbone: a name from :func:`botnet.models.list_models` (``botnet50``, ``resnet101``, ...).
        num_classes: object classes + 1 for the background (91: COCO's ids).
        weights_backbone: classification weights for the backbone, any weights SOURCE (a file, a run directory,
            ``timm:NAME.TAG``, ``torchvision:WEIGHTS``, a state dict; see :func:`botnet_fpn_backbone`). With them the
            backbone's BN is frozen and 3 stages train by default; without them everything trains with plain BN
            (torchvision's rule).
        trainable_backbone_layers: stages trained counting from c5 (0..5).
        image_size: the longer image side after resizing (torchvision's ``min_size``/``max_size`` both default to
            it) and the reference size of the c5 position tables. The paper: 1024.
        fixed_size: pad every batch to ``image_size`` x ``image_size`` (the paper's setting) instead of to the
            batch's largest image rounded up to 32.
        fpn_channels, representation_size, mask_channels: widths of the FPN, the box head's MLP and the mask
            head's convs (torchvision: 256, 1024, 256).
        anchor_sizes: anchor size per FPN level (5 values).
        roi_sampling_ratio: RoIAlign sampling points per bin side for the box and mask heads (torchvision: 2).
        max_detections: detections kept per image (torchvision's ``box_detections_per_img``, 100); the RPN keeps at
            least 3 proposals per detection before and after its NMS.
        backbone_args: :class:`~botnet.models.BoTNetConfig` overrides, e.g. ``{"attn_backend": "chunked"}``.
        **kwargs: any argument of torchvision's ``MaskRCNN`` (``box_detections_per_img``, ``rpn_*``, ...).
    """
    return _detector("maskrcnn", backbone, **kwargs)


def fasterrcnn_botnet_fpn(backbone: str = "botnet50", **kwargs: Any) -> FasterRCNN:
    """Faster R-CNN with any registered network + FPN as backbone; arguments as :func:`maskrcnn_botnet_fpn`."""
    kwargs.pop("mask_channels", None)
    return _detector("fasterrcnn", backbone, **kwargs)


# A small detector for the built-in dataset and quick experiments: botnet_tiny with c5 at stride 32 (so the
# c5 attention sees a 4x4 map at 128 px), narrow FPN and heads, anchors for objects of 8..128 px, fewer sampled
# RoIs and proposals. RoIAlign samples one point per bin: its CPU backward was 40% of a training step with 2x2.
TINY = dict(
    roi_sampling_ratio=1,
    image_size=128,
    fpn_channels=64,
    representation_size=256,
    mask_channels=64,
    anchor_sizes=(8, 16, 32, 64, 128),
    backbone_args={"c5_stride": 2},
    box_batch_size_per_image=64,
    rpn_batch_size_per_image=128,
    rpn_pre_nms_top_n_train=500,
    rpn_post_nms_top_n_train=250,
    rpn_pre_nms_top_n_test=500,
    rpn_post_nms_top_n_test=250,
)


def _with_defaults(defaults: dict[str, Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    merged = {**defaults, **kwargs}
    if "backbone_args" in kwargs:
        merged["backbone_args"] = {**defaults.get("backbone_args", {}), **(kwargs["backbone_args"] or {})}
    return merged


PAPER_IMAGE_SIZE = 1024  # the paper's detection input (section 5); the small detector's is in TINY

# The detectors, registered in the model registry under task "detection": each backbone network with each head, a
# builder generated per pair (the module's attributes of the same name, e.g. ``maskrcnn_botnet50_fpn``); the small
# one carries its :data:`TINY` defaults.
PAPER_BACKBONES = ("botnet50", "botnet101", "botnet152", "botnet200", "resnet50", "resnet101", "resnet152", "resnet200")
TIMM_FAMILY_BACKBONES = tuple(TIMM_TAGS)  # timm's networks with published weights (timm:NAME.TAG sources)
DETECTOR_BACKBONES = (*PAPER_BACKBONES, "botnet_tiny", *TIMM_FAMILY_BACKBONES)
_HEADS = {"maskrcnn": ("Mask R-CNN", "maskrcnn_botnet_fpn"), "fasterrcnn": ("Faster R-CNN", "fasterrcnn_botnet_fpn")}


def _preset_builder(kind: str, backbone: str) -> Callable[..., nn.Module]:
    base = maskrcnn_botnet_fpn if kind == "maskrcnn" else fasterrcnn_botnet_fpn
    defaults = TINY if backbone == "botnet_tiny" else {}

    def build(**kwargs: Any) -> nn.Module:
        return base(backbone, **_with_defaults(defaults, kwargs))

    head, generic = _HEADS[kind]
    build.kind, build.backbone, build.defaults = kind, backbone, defaults  # what the lookups below answer from
    build.__name__ = build.__qualname__ = f"{kind}_{backbone}_fpn"
    build.__doc__ = (
        f"{head} on the small ``botnet_tiny`` backbone (c5 at stride 32) with narrow heads, for 128 px images."
        if defaults
        else f"{head} with the {backbone} network + FPN (arguments: :func:`{generic}`)."
    )
    return build


for _kind in _HEADS:
    for _backbone in DETECTOR_BACKBONES:
        _build = _preset_builder(_kind, _backbone)
        register_model(_build.__name__, description=_build.__doc__, task="detection", builder=_build)


def list_detection_models() -> list[str]:
    """Names accepted by :func:`create_detection_model` (and ``botnet detect train --model``)."""
    return list_models(task="detection")


def _builder(name: str) -> Callable[..., nn.Module]:
    return model_entry(name, task="detection").builder


# The registered detectors' builders by name.
DETECTION_MODELS: dict[str, Callable[..., nn.Module]] = {name: _builder(name) for name in list_detection_models()}


def __getattr__(name: str) -> Callable[..., nn.Module]:
    """A registered detector's builder as an attribute of this module (``from ... import maskrcnn_botnet50_fpn``)."""
    if name in DETECTION_MODELS:
        return DETECTION_MODELS[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def create_detection_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered detector: ``create_detection_model("maskrcnn_botnet50_fpn", num_classes=81)``."""
    return _builder(name)(**kwargs)


def backbone_name(name: str) -> str:
    """The registered network under a detector: ``maskrcnn_botnet50_fpn`` -> ``botnet50``."""
    return _builder(name).backbone


DEFAULT_BACKBONE = "botnet_tiny"  # the detector botnet detect train builds when --model is left out


def detector_name(masks: bool, backbone: str = DEFAULT_BACKBONE) -> str:
    """The registered detector with ``backbone`` and a mask head (Mask R-CNN) or boxes only (Faster R-CNN)."""
    return _builder(f"{'maskrcnn' if masks else 'fasterrcnn'}_{backbone}_fpn").__name__


def detector_has_masks(name: str) -> bool:
    """Whether the registered detector ``name`` predicts masks (a Mask R-CNN) or boxes only."""
    return _builder(name).kind == "maskrcnn"


def default_image_size(name: str) -> int:
    """The input size a registered detector is built for: 128 for the small ones, the paper's 1024 otherwise."""
    return _builder(name).defaults.get("image_size", PAPER_IMAGE_SIZE)


def has_masks(model: nn.Module) -> bool:
    """Whether ``model`` predicts instance masks (Mask R-CNN) or boxes only (Faster R-CNN)."""
    return getattr(model.roi_heads, "mask_predictor", None) is not None
