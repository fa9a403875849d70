"""torchvision's detection transform with a floor of 1 px per side, so images of extreme aspect ratio work.

``GeneralizedRCNNTransform`` scales an image so its shorter side becomes ``min_size`` unless its longer side would
pass ``max_size``; with ``min_size == max_size`` (this package's default) a 5000 x 20 image is scaled by 1/39 at
128 px, and its 20 px side rounds down to 0, which ``interpolate`` refuses. Here each side is at least 1 px; every
other image gets exactly torchvision's sizes and pixels (the same scale factor, floored as torchvision floors it).
"""

from __future__ import annotations

import math

import torch
import torchvision
from torch import Tensor
from torch.nn import functional as F
from torchvision.models.detection.transform import GeneralizedRCNNTransform, resize_boxes, resize_keypoints


def floored_size(height: int, width: int, min_size: float, max_size: float) -> tuple[int, int]:
    """torchvision's resized ``(height, width)``: scale ``min(min_size / shorter, max_size / longer)``, each side
    floored, and at least 1 px."""
    scale = min(min_size / min(height, width), max_size / max(height, width))
    return max(1, math.floor(height * scale)), max(1, math.floor(width * scale))


class FlooredResizeTransform(GeneralizedRCNNTransform):
    """``GeneralizedRCNNTransform`` whose resize keeps every side at least 1 px (see the module doc).

    Scripting, tracing (ONNX) and ``fixed_size`` use torchvision's own resize unchanged.
    """

    def resize(self, image: Tensor, target: dict[str, Tensor] | None = None) -> tuple[Tensor, dict | None]:
        if torch.jit.is_scripting() or torchvision._is_tracing() or self.fixed_size is not None:
            return super().resize(image, target)
        h, w = image.shape[-2:]
        if self.training:
            if self._skip_resize:
                return image, target
            size = self.torch_choice(self.min_size)
        else:
            size = self.min_size[-1]
        out = floored_size(h, w, size, self.max_size)
        image = F.interpolate(image[None], size=out, mode="bilinear", align_corners=False)[0]
        if target is None:
            return image, target
        if "masks" in target:
            target["masks"] = F.interpolate(target["masks"][:, None].float(), size=out)[:, 0].byte()
        target["boxes"] = resize_boxes(target["boxes"], (h, w), image.shape[-2:])
        if "keypoints" in target:
            target["keypoints"] = resize_keypoints(target["keypoints"], (h, w), image.shape[-2:])
        return image, target

    @classmethod
    def like(cls, transform: GeneralizedRCNNTransform, **kwargs) -> FlooredResizeTransform:
        """This class (or a subclass) with the settings of an existing detection transform."""
        return cls(
            transform.min_size,
            transform.max_size,
            transform.image_mean,
            transform.image_std,
            size_divisible=transform.size_divisible,
            fixed_size=transform.fixed_size,
            _skip_resize=transform._skip_resize,
            **kwargs,
        )
