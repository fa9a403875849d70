"""Detection builders: training losses, eval outputs, any input size, frozen layers, backbone weights."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torchvision.models import resnet50 as tv_resnet50
from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
from torchvision.ops.misc import FrozenBatchNorm2d

from botnet.detection import (
    PadToSizeTransform,
    botnet_fpn_backbone,
    create_detection_model,
    fasterrcnn_botnet_tiny_fpn,
    list_detection_models,
    maskrcnn_botnet50_fpn,
    maskrcnn_botnet_tiny_fpn,
    maskrcnn_resnet50_fpn,
    replace_batchnorm,
)
from botnet.models import botnet50, save_weights


def _target(h: int, w: int, boxes: list[list[float]], labels: list[int]) -> dict[str, torch.Tensor]:
    masks = torch.zeros(len(boxes), h, w, dtype=torch.uint8)
    for m, (x0, y0, x1, y1) in zip(masks, boxes, strict=True):
        m[int(y0) : int(y1), int(x0) : int(x1)] = 1
    return {"boxes": torch.tensor(boxes), "labels": torch.tensor(labels), "masks": masks}


def test_registry_has_every_builder():
    names = list_detection_models()
    for kind in ("maskrcnn", "fasterrcnn"):
        for net in ("botnet", "resnet"):
            for depth in ("50", "101", "152", "200"):
                assert f"{kind}_{net}{depth}_fpn" in names
    with pytest.raises(ValueError, match="maskrcnn_botnet50_fpn"):
        create_detection_model("maskrcnn_botnet5_fpn")


@pytest.mark.parametrize("builder", [maskrcnn_botnet_tiny_fpn, fasterrcnn_botnet_tiny_fpn])
def test_train_losses_finite_and_backward_on_mixed_sizes(builder):
    torch.manual_seed(0)
    model = builder(num_classes=4, backbone_args={"zero_init_last": False})  # so that gradients reach the attention
    model.train()
    images = [torch.rand(3, 128, 96), torch.rand(3, 77, 131)]  # mixed sizes, odd sides
    targets = [
        _target(128, 96, [[10, 12, 60, 70], [5, 80, 30, 120]], [1, 3]),
        _target(77, 131, [[40, 10, 120, 60]], [2]),
    ]
    if builder is fasterrcnn_botnet_tiny_fpn:
        for t in targets:
            del t["masks"]
    losses = model(images, targets)
    expected = {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"}
    if builder is maskrcnn_botnet_tiny_fpn:
        expected.add("loss_mask")
    assert set(losses) == expected
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    attn_grads = [p.grad for n, p in model.backbone.body.named_parameters() if ".attn." in n]
    assert attn_grads and all(g is not None and torch.isfinite(g).all() for g in attn_grads)
    assert any(g.abs().sum() > 0 for g in attn_grads)


def test_eval_outputs_carry_masks_at_each_images_own_size():
    torch.manual_seed(0)
    model = maskrcnn_botnet_tiny_fpn(num_classes=3, box_score_thresh=0.0).eval()
    sizes = [(128, 96), (61, 143)]
    with torch.no_grad():
        out = model([torch.rand(3, h, w) for h, w in sizes])
    for o, (h, w) in zip(out, sizes, strict=True):
        assert set(o) == {"boxes", "labels", "scores", "masks"}
        n = len(o["boxes"])
        assert n > 0
        assert o["masks"].shape == (n, 1, h, w)
        assert (o["boxes"][:, 2] <= w).all() and (o["boxes"][:, 3] <= h).all()
        assert ((o["masks"] >= 0) & (o["masks"] <= 1)).all()


def test_botnet50_fpn_runs_at_sizes_other_than_its_reference():
    torch.manual_seed(0)
    backbone = botnet_fpn_backbone("botnet50", norm_layer=None, img_size=256).eval()
    with torch.no_grad():
        for h, w in ((256, 256), (200, 328), (97, 161)):
            feats = backbone(torch.rand(1, 3, h, w))
            assert list(feats) == ["0", "1", "2", "3", "pool"]
            assert feats["0"].shape[-2:] == (-(-h // 4), -(-w // 4))
            assert feats["3"].shape[-2:] == (-(-h // 32), -(-w // 32))
            assert all(torch.isfinite(f).all() for f in feats.values())


def test_fixed_size_pads_every_batch_to_the_paper_square():
    model = maskrcnn_botnet_tiny_fpn(num_classes=3, image_size=160, fixed_size=True).eval()
    assert isinstance(model.transform, PadToSizeTransform)
    batch, _ = model.transform([torch.rand(3, 100, 60), torch.rand(3, 50, 90)])
    assert batch.tensors.shape == (2, 3, 160, 160)
    assert batch.image_sizes == [(160, 96), (88, 160)]  # longer side resized to 160 (torchvision floors the other)
    free = maskrcnn_botnet_tiny_fpn(num_classes=3, image_size=160).eval()
    assert free.transform([torch.rand(3, 100, 60)])[0].tensors.shape == (1, 3, 160, 96)


def test_roi_poolers_use_the_fpn_scales_whatever_batch_comes_first():
    # torchvision would infer the scales from the first batch by its height alone: a wide image padded to the square
    # (160x100 in 160x160) gave P2 a scale of 1/2 instead of 1/4, and every box was pooled from the wrong places.
    torch.manual_seed(0)
    wide_first = maskrcnn_botnet_tiny_fpn(num_classes=3, image_size=160, fixed_size=True).eval()
    square_first = maskrcnn_botnet_tiny_fpn(num_classes=3, image_size=160, fixed_size=True).eval()
    square_first.load_state_dict(wide_first.state_dict())
    wide, square = torch.rand(3, 100, 160), torch.rand(3, 160, 160)
    with torch.no_grad():
        first = wide_first([wide])[0]
        square_first([square])
        second = square_first([wide])[0]
    for model in (wide_first, square_first):
        for pooler in (model.roi_heads.box_roi_pool, model.roi_heads.mask_roi_pool):
            assert pooler.scales == [1 / 4, 1 / 8, 1 / 16, 1 / 32]
            assert (pooler.map_levels.k_min, pooler.map_levels.k_max) == (2, 5)
    assert torch.equal(first["boxes"], second["boxes"]) and torch.equal(first["scores"], second["scores"])


@pytest.mark.parametrize("trainable", [0, 1, 3, 5])
def test_trainable_layers_match_torchvision(trainable):
    ours = botnet_fpn_backbone("resnet50", trainable_layers=trainable)
    ref = resnet_fpn_backbone(backbone_name="resnet50", weights=None, trainable_layers=trainable)

    def count(m: nn.Module) -> int:
        return sum(p.numel() for p in m.parameters() if p.requires_grad)

    assert count(ours) == count(ref)
    assert sum(isinstance(m, FrozenBatchNorm2d) for m in ours.modules()) == 53  # every BN of R50, frozen


def test_resnet50_fpn_equals_torchvisions_with_the_same_weights():
    torch.manual_seed(0)
    ref = resnet_fpn_backbone(backbone_name="resnet50", weights=None, trainable_layers=3).eval()
    for m in ref.modules():  # non-trivial statistics so that a BN mix-up would show
        if isinstance(m, FrozenBatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.uniform_(0.5, 1.5)
    ours = botnet_fpn_backbone("resnet50").eval()
    ours.load_state_dict(ref.state_dict())
    x = torch.rand(1, 3, 96, 160)
    with torch.no_grad():
        a, b = ours(x), ref(x)
    for key in b:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5)


def test_frozen_batchnorm_keeps_the_statistics():
    torch.manual_seed(0)
    net = botnet50(num_classes=0, img_size=64).eval()
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        before = net.forward_features(x)
        replace_batchnorm(net, FrozenBatchNorm2d)
        after = net.forward_features(x)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    # FrozenBatchNorm2d folds the statistics into a scale and shift: equal up to fp32 rounding through 50 layers.
    assert (after - before).abs().max() <= 1e-4 * before.abs().max()


def test_weights_backbone_from_a_classification_file(tmp_path):
    torch.manual_seed(0)
    cls = botnet50(num_classes=10, img_size=224)
    path = save_weights(cls, tmp_path / "bot50.safetensors")
    model = maskrcnn_botnet50_fpn(num_classes=3, weights_backbone=path, image_size=256)
    body = model.backbone.body
    torch.testing.assert_close(body.conv1.weight, cls.conv1.weight)
    torch.testing.assert_close(body.layer4[0].attn.qkv.weight, cls.layer4[0].attn.qkv.weight)
    assert isinstance(body.bn1, FrozenBatchNorm2d)
    assert not body.layer1[0].conv1.weight.requires_grad and body.layer2[0].conv1.weight.requires_grad  # 3 trainable
    # A torchvision ResNet state dict loads into the ResNet baseline.
    tv = tv_resnet50()
    base = maskrcnn_resnet50_fpn(num_classes=3, weights_backbone=tv.state_dict(), image_size=256)
    torch.testing.assert_close(base.backbone.body.layer3[2].conv2.weight, tv.layer3[2].conv2.weight)
    with pytest.raises(ValueError, match="do not fit"):
        maskrcnn_botnet50_fpn(
            num_classes=3, weights_backbone=botnet50(num_classes=0, widths=(32, 64, 128, 256)).state_dict()
        )


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="trainable_layers"):
        botnet_fpn_backbone("resnet50", trainable_layers=6)
    with pytest.raises(ValueError, match="returned_layers"):
        botnet_fpn_backbone("resnet50", returned_layers=[0, 2])
    with pytest.raises(ValueError, match="num_classes"):
        maskrcnn_botnet_tiny_fpn(num_classes=1)
    with pytest.raises(ValueError, match="unknown model"):
        botnet_fpn_backbone("botnet51")
