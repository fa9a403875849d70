"""Datasets and transforms: the built-in shapes dataset, ImageFolder directories, torchvision v2 transforms."""

from .coco import CocoDetection
from .coco_shapes import DETECTION_CLASSES, builtin_coco_shapes, render_detection_image, write_coco_shapes
from .det_transforms import build_detection_eval_transform, build_detection_train_transform, collate_detection
from .folder import BadImageTracker, BadSample, DataError, ImageFolderDataset, collate_skip_bad, load_rgb
from .scan import NotRegularFile, open_regular, scan_class_folders
from .shapes import SHAPE_CLASSES, ShapesDataset, render_shape_image
from .transforms import BatchMix, SeededDataset, build_eval_transform, build_train_transform, parse_randaugment

__all__ = [
    "DETECTION_CLASSES",
    "SHAPE_CLASSES",
    "BadImageTracker",
    "BadSample",
    "BatchMix",
    "CocoDetection",
    "DataError",
    "ImageFolderDataset",
    "NotRegularFile",
    "SeededDataset",
    "ShapesDataset",
    "build_detection_eval_transform",
    "build_detection_train_transform",
    "build_eval_transform",
    "build_train_transform",
    "builtin_coco_shapes",
    "collate_detection",
    "collate_skip_bad",
    "load_rgb",
    "open_regular",
    "parse_randaugment",
    "render_detection_image",
    "render_shape_image",
    "scan_class_folders",
    "write_coco_shapes",
]
