"""Detection and instance segmentation: BoTNet-FPN backbones, torchvision Mask R-CNN / Faster R-CNN builders, COCO
evaluation, and the training, evaluation and prediction of ``botnet detect``.

Names are imported on first use: the options of ``botnet detect train`` (:mod:`.config`) load without torch.
"""

from .._lazy import lazy_exports

__all__ = lazy_exports(
    __name__,
    {
        "backbone": ("botnet_fpn_backbone", "load_backbone_weights", "replace_batchnorm"),
        "config": ("DetectConfig",),
        "task": ("DETECTION", "DetectionTask"),
        "transform": ("FlooredResizeTransform",),
        "models": (
            "DETECTION_MODELS",
            "PadToSizeTransform",
            "create_detection_model",
            "default_image_size",
            "detector_has_masks",
            "detector_name",
            "fasterrcnn_botnet50_fpn",
            "fasterrcnn_botnet101_fpn",
            "fasterrcnn_botnet152_fpn",
            "fasterrcnn_botnet200_fpn",
            "fasterrcnn_botnet_fpn",
            "fasterrcnn_botnet_tiny_fpn",
            "fasterrcnn_resnet50_fpn",
            "fasterrcnn_resnet101_fpn",
            "fasterrcnn_resnet152_fpn",
            "fasterrcnn_resnet200_fpn",
            "has_masks",
            "list_detection_models",
            "maskrcnn_botnet50_fpn",
            "maskrcnn_botnet101_fpn",
            "maskrcnn_botnet152_fpn",
            "maskrcnn_botnet200_fpn",
            "maskrcnn_botnet_fpn",
            "maskrcnn_botnet_tiny_fpn",
            "maskrcnn_resnet50_fpn",
            "maskrcnn_resnet101_fpn",
            "maskrcnn_resnet152_fpn",
            "maskrcnn_resnet200_fpn",
        ),
    },
)
