"""Images of extreme aspect ratio (5000 x 20) through the detection transforms and models: resized, never a crash."""

from __future__ import annotations

import pytest
import torch
from torchvision import tv_tensors
from torchvision.models.detection.transform import GeneralizedRCNNTransform

from botnet.data.det_transforms import build_detection_eval_transform, build_detection_train_transform
from botnet.detection import FlooredResizeTransform, fasterrcnn_botnet_tiny_fpn, maskrcnn_botnet_tiny_fpn
from botnet.detection.transform import floored_size

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def _target(h, w, box):
    mask = torch.zeros(1, h, w, dtype=torch.uint8)
    x0, y0, x1, y1 = box
    mask[:, y0:y1, x0:x1] = 1
    return {"boxes": torch.tensor([box], dtype=torch.float32), "labels": torch.tensor([1]), "masks": mask}


@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("hw", [(128, 96), (77, 131), (300, 41), (20, 60), (1000, 999)])
def test_same_as_torchvision_where_torchvision_works(hw, training):
    h, w = hw
    ours = FlooredResizeTransform((100, 128), 128, MEAN, STD)
    reference = GeneralizedRCNNTransform((100, 128), 128, MEAN, STD)
    ours.train(training), reference.train(training)
    image = torch.rand(3, h, w)
    box = [w // 4, h // 4, w // 2 + 1, h // 2 + 1]
    torch.manual_seed(0)
    got_batch, got_targets = ours([image.clone()], [_target(h, w, box)])
    torch.manual_seed(0)
    ref_batch, ref_targets = reference([image.clone()], [_target(h, w, box)])
    assert got_batch.image_sizes == ref_batch.image_sizes
    assert torch.equal(got_batch.tensors, ref_batch.tensors)
    for key in ("boxes", "masks"):
        assert torch.equal(got_targets[0][key], ref_targets[0][key])


@pytest.mark.parametrize("hw", [(20, 5000), (5000, 20), (1, 100000)])
def test_extreme_aspect_ratio_keeps_one_pixel(hw):
    h, w = hw
    assert floored_size(h, w, 128, 128) == tuple(max(1, int(s * 128 / max(h, w))) for s in (h, w))
    reference = GeneralizedRCNNTransform(128, 128, MEAN, STD).eval()
    with pytest.raises(RuntimeError, match="Input and output sizes should be greater than 0"):
        reference([torch.rand(3, h, w)])  # what torchvision itself does with such an image
    batch, _ = FlooredResizeTransform(128, 128, MEAN, STD).eval()([torch.rand(3, h, w)])
    expected = floored_size(h, w, 128, 128)
    assert batch.image_sizes == [expected] and min(expected) == 1 and max(expected) == 128
    assert torch.isfinite(batch.tensors).all()


def test_models_get_the_floored_transform_and_run_on_5000x20():
    torch.manual_seed(0)
    model = maskrcnn_botnet_tiny_fpn(num_classes=3, box_score_thresh=0.0).eval()
    assert type(model.transform) is FlooredResizeTransform
    assert fasterrcnn_botnet_tiny_fpn(num_classes=3, image_size=64, fixed_size=True).transform.pad_to == (64, 64)
    with torch.no_grad():
        (out,) = model([torch.rand(3, 20, 5000)])
    n = len(out["boxes"])
    assert out["masks"].shape == (n, 1, 20, 5000)
    assert (out["boxes"][:, 2] <= 5000).all() and (out["boxes"][:, 3] <= 20).all()
    model.train()
    losses = model([torch.rand(3, 20, 5000)], [_target(20, 5000, [100, 2, 900, 18])])
    assert all(torch.isfinite(v) for v in losses.values())


@pytest.mark.parametrize("hw", [(20, 5000), (5000, 20)])
def test_train_transform_resizes_extreme_aspect_ratios(hw):
    h, w = hw
    transform = build_detection_train_transform(64, scale_range=(0.1, 2.0))
    box = [w // 4, h // 4, w // 2, h // 2] if min(h, w) > 4 else [0, 0, w, h]
    for seed in range(10):
        torch.manual_seed(seed)
        target = {
            "boxes": tv_tensors.BoundingBoxes([box], format="XYXY", canvas_size=(h, w)),
            "labels": torch.tensor([1]),
            "masks": tv_tensors.Mask(_target(h, w, box)["masks"]),
        }
        image, out = transform(tv_tensors.Image(torch.randint(0, 256, (3, h, w), dtype=torch.uint8)), target)
        assert image.shape == (3, 64, 64) and image.dtype == torch.float32
        assert out["masks"].shape[-2:] == (64, 64)
        assert len(out["boxes"]) == len(out["labels"]) == len(out["masks"])
    image, _ = build_detection_eval_transform()(tv_tensors.Image(torch.zeros(3, h, w, dtype=torch.uint8)), {})
    assert image.shape == (3, h, w)
