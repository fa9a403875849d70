"""torchvision's IntermediateLayerGetter / BackboneWithFPN work on our models unchanged (child names, order)."""

from __future__ import annotations

import math

import pytest
import torch
from torchvision.models.detection.backbone_utils import BackboneWithFPN

import botnet


@pytest.mark.parametrize("name", ["botnet50", "botnet_s1_50", "botnet26t_256", "sebotnet33ts_256"])
def test_backbone_with_fpn_at_a_non_square_odd_size(name):
    model = botnet.create_model(name, num_classes=0)
    return_layers = {f"layer{i}": str(i - 1) for i in range(1, 5)}
    channels = [info["num_chs"] for info in model.feature_info[1:]]
    fpn = BackboneWithFPN(model, return_layers, channels, out_channels=64).eval()
    x = torch.randn(1, 3, 97, 130)
    with torch.no_grad():
        feats = fpn(x)
    reductions = [info["reduction"] for info in model.feature_info[1:]]
    assert list(feats) == ["0", "1", "2", "3", "pool"]
    for key, reduction in zip(["0", "1", "2", "3"], reductions, strict=True):
        assert feats[key].shape == (1, 64, math.ceil(97 / reduction), math.ceil(130 / reduction))
