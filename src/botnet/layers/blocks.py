"""Residual blocks: the ResNet v1.5 bottleneck and the BoT block (paper figure 3 and section 3).

Both keep torchvision's child names (``conv1, bn1, conv3, bn3, downsample``) so torchvision ResNet weights load
into every non-attention weight. Convs are bias-free, BN uses momentum 0.1 and eps 1e-5.
"""

from __future__ import annotations

from collections.abc import Callable

import torch.nn.functional as F
from torch import Tensor, nn

from .non_local import NonLocal2d
from .squeeze_excite import SqueezeExcite

EXPANSION = 4


def _se(channels: int, ratio: float, act_layer: type[nn.Module]) -> nn.Module:
    return SqueezeExcite(channels, max(round(channels * ratio), 1), act_layer) if ratio > 0 else nn.Identity()


def _check_stride(stride: int) -> None:
    if stride not in (1, 2):
        raise ValueError(f"a block's stride must be 1 or 2, got {stride}")


def _add_shortcut(y: Tensor, shortcut: Tensor) -> Tensor:
    """``y + shortcut``, written into ``y`` as torchvision's ``out += identity`` does: no new activation-sized buffer.

    ``y`` is the fresh output of the last BN (or of the SE multiply); neither saves its output for backward, so the
    in-place add is autograd-safe. Mixed dtypes (an autocast corner) fall back to the out-of-place add.
    """
    return y.add_(shortcut) if y.dtype == shortcut.dtype else y + shortcut


class CeilAvgPool2d(nn.Module):
    """2x2 average pool with stride 2 giving ceil(H/2) x ceil(W/2): a window that overhangs an odd edge averages the
    pixels it covers.

    The same numbers as ``nn.AvgPool2d(2, 2, ceil_mode=True)``, written as "replicate the last row / column of an
    odd map, then pool" (a replicated pixel counts twice in a window that holds its twin, which is its plain
    average). This form has no size-dependent branch, so ``torch.export`` and ONNX export keep H and W dynamic.
    """

    def forward(self, x: Tensor) -> Tensor:
        H, W = x.shape[-2:]
        return F.avg_pool2d(F.pad(x, (0, W % 2, 0, H % 2), mode="replicate"), kernel_size=2, stride=2)


class Bottleneck(nn.Module):
    """ResNet v1.5 bottleneck: 1x1 -> 3x3 (carries the stride) -> 1x1, optional SE, projection shortcut.

    Args:
        in_chs: input channels.
        mid_chs: bottleneck width.
        out_chs: output channels (default ``4 * mid_chs``).
        stride: 1 or 2.
        groups: groups of the 3x3 conv (ResNeXt); must divide ``mid_chs``.
        act_layer: activation class.
        se_ratio: squeeze-excitation width as a fraction of the output channels (0 disables).
        gate_layer: builds a channel gate (SE or ECA) applied to the 3x3 conv's activated output from the bottleneck
            width (timm's ByobNet places it there); ``None`` for none.
        non_local: append a :class:`NonLocal2d` block after this block's output.
    """

    def __init__(
        self,
        in_chs: int,
        mid_chs: int,
        *,
        out_chs: int | None = None,
        stride: int = 1,
        groups: int = 1,
        act_layer: type[nn.Module] = nn.ReLU,
        se_ratio: float = 0.0,
        gate_layer: Callable[[int], nn.Module] | None = None,
        non_local: bool = False,
    ) -> None:
        super().__init__()
        _check_stride(stride)
        if groups < 1 or mid_chs % groups:
            raise ValueError(f"groups must be a positive divisor of the bottleneck width {mid_chs}, got {groups}")
        out_chs = out_chs or mid_chs * EXPANSION
        self.conv1 = nn.Conv2d(in_chs, mid_chs, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid_chs)
        self.conv2 = nn.Conv2d(mid_chs, mid_chs, kernel_size=3, stride=stride, padding=1, groups=groups, bias=False)
        self.bn2 = nn.BatchNorm2d(mid_chs)
        self.gate = gate_layer(mid_chs) if gate_layer is not None else nn.Identity()
        self.conv3 = nn.Conv2d(mid_chs, out_chs, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_chs)
        self.se = _se(out_chs, se_ratio, act_layer)
        self.act = act_layer(inplace=True)
        self.downsample = None
        if stride != 1 or in_chs != out_chs:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_chs, out_chs, kernel_size=1, stride=stride, bias=False), nn.BatchNorm2d(out_chs)
            )
        self.non_local = NonLocal2d(out_chs) if non_local else None

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.bn3.weight)

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        y = self.act(self.bn1(self.conv1(x)))
        y = self.gate(self.act(self.bn2(self.conv2(y))))
        y = self.act(_add_shortcut(self.se(self.bn3(self.conv3(y))), shortcut))
        return y if self.non_local is None else self.non_local(y)


class BoTBlock(nn.Module):
    """Bottleneck Transformer block: the bottleneck with its 3x3 conv replaced by global MHSA.

    ``y = conv1 -> BN -> act -> MHSA -> [2x2 avg pool if stride 2] -> BN -> act -> conv3 -> BN(gamma 0) [-> SE]``,
    ``out = act(y + shortcut)``, with the official projection shortcut ``1x1 conv (stride) -> BN -> act`` (the act is
    optional).

    On odd maps the pool yields ``ceil(H/2)`` like the strided shortcut (the windows that overhang the edge average
    the pixels they cover, :class:`CeilAvgPool2d`). On even maps it is the plain 2x2 pool.

    Args:
        in_chs: input channels.
        mid_chs: bottleneck width (MHSA width).
        out_chs: output channels (default ``4 * mid_chs``).
        attn_layer: builds the attention module from its width, e.g. ``functools.partial(MHSA2d, heads=4)``.
        stride: 1 or 2 (attention runs at the input resolution, then pools).
        act_layer: activation class.
        se_ratio: squeeze-excitation ratio (0 disables).
        shortcut_act: the activation after the projection shortcut's BN (the official block has it; timm's
            ``SelfAttnBlock`` does not).
    """

    def __init__(
        self,
        in_chs: int,
        mid_chs: int,
        *,
        out_chs: int | None = None,
        attn_layer: Callable[[int], nn.Module],
        stride: int = 1,
        act_layer: type[nn.Module] = nn.ReLU,
        se_ratio: float = 0.0,
        shortcut_act: bool = True,
    ) -> None:
        super().__init__()
        _check_stride(stride)
        out_chs = out_chs or mid_chs * EXPANSION
        self.conv1 = nn.Conv2d(in_chs, mid_chs, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid_chs)
        self.attn = attn_layer(mid_chs)
        self.pool = CeilAvgPool2d() if stride == 2 else nn.Identity()
        self.bn2 = nn.BatchNorm2d(mid_chs)
        self.conv3 = nn.Conv2d(mid_chs, out_chs, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_chs)
        self.se = _se(out_chs, se_ratio, act_layer)
        self.act = act_layer(inplace=True)
        self.downsample = None
        if stride != 1 or in_chs != out_chs:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_chs, out_chs, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(out_chs),
                act_layer(inplace=True) if shortcut_act else nn.Identity(),
            )

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.bn3.weight)

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        y = self.act(self.bn1(self.conv1(x)))
        y = self.pool(self.attn(y))
        y = self.act(self.bn2(y))
        return self.act(_add_shortcut(self.se(self.bn3(self.conv3(y))), shortcut))
