"""Channel gates: squeeze-and-excitation (Hu et al. 2018; the BoTNet-S1 / T models use ratio 0.0625) and ECA
(Wang et al. 2020, "ECA-Net"; timm's ``eca_botnext26ts`` uses it)."""

from __future__ import annotations

import math

from torch import Tensor, nn


def make_divisible(value: float, divisor: int = 8) -> int:
    """``value`` rounded to the nearest multiple of ``divisor`` (at least ``divisor``): SE widths of timm's ByobNet."""
    return max(divisor, int(value + divisor / 2) // divisor * divisor)


class SqueezeExcite(nn.Module):
    """Channel gating: global average pool -> 1x1 conv -> act -> 1x1 conv -> sigmoid -> scale.

    Args:
        channels: channels of the gated map.
        rd_channels: width of the bottleneck (``round(ratio * channels)``; 0.0625 x block output in the paper).
        act_layer: activation between the two 1x1 convs.
    """

    def __init__(self, channels: int, rd_channels: int, act_layer: type[nn.Module] = nn.ReLU) -> None:
        super().__init__()
        if rd_channels < 1:
            raise ValueError(f"rd_channels must be >= 1, got {rd_channels} for {channels} channels")
        self.fc1 = nn.Conv2d(channels, rd_channels, kernel_size=1, bias=True)
        self.act = act_layer(inplace=True)
        self.fc2 = nn.Conv2d(rd_channels, channels, kernel_size=1, bias=True)

    def forward(self, x: Tensor) -> Tensor:
        s = x.mean(dim=(2, 3), keepdim=True)  # (B, C, 1, 1)
        s = self.fc2(self.act(self.fc1(s)))  # (B, C, 1, 1)
        return x * s.sigmoid()


class EfficientChannelAttention(nn.Module):
    """ECA: global average pool -> 1-D conv across the channels -> sigmoid -> scale (no dimension reduction).

    The kernel size follows the paper's rule ``k = |log2(C) + 1| / 2`` rounded up to an odd number, at least 3.

    Args:
        channels: channels of the gated map.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        if channels < 1:
            raise ValueError(f"channels must be >= 1, got {channels}")
        t = int(abs(math.log2(channels) + 1) / 2)
        kernel = max(t if t % 2 else t + 1, 3)
        self.conv = nn.Conv1d(1, 1, kernel_size=kernel, padding=(kernel - 1) // 2, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        B, C = x.shape[:2]
        s = x.mean(dim=(2, 3)).view(B, 1, C)  # (B, 1, C): channels as a 1-D signal
        s = self.conv(s).view(B, C, 1, 1)  # (B, C, 1, 1)
        return x * s.sigmoid()
