"""Datasets and transforms: the built-in shapes dataset, ImageFolder directories, torchvision v2 transforms."""

from .folder import BadImageTracker, BadSample, DataError, ImageFolderDataset, collate_skip_bad, load_rgb
from .shapes import SHAPE_CLASSES, ShapesDataset, render_shape_image
from .transforms import BatchMix, SeededDataset, build_eval_transform, build_train_transform, parse_randaugment

__all__ = [
    "SHAPE_CLASSES",
    "BadImageTracker",
    "BadSample",
    "BatchMix",
    "DataError",
    "ImageFolderDataset",
    "SeededDataset",
    "ShapesDataset",
    "build_eval_transform",
    "build_train_transform",
    "collate_skip_bad",
    "load_rgb",
    "parse_randaugment",
    "render_shape_image",
]
