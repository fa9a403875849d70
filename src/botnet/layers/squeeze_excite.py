"""Squeeze-and-excitation (Hu et al. 2018), as used by the BoTNet-S1 / T models (SE ratio 0.0625)."""

from __future__ import annotations

from torch import Tensor, nn


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
