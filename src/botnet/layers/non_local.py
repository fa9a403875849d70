"""Non-local block (Wang et al. 2018, embedded Gaussian): the baseline the BoTNet paper compares against.

Unlike MHSA2d it has a single head, no position encoding, a value projection to half the width, an output
projection with BN whose gamma starts at zero, and its own residual connection.
"""

from __future__ import annotations

from torch import Tensor, nn


class NonLocal2d(nn.Module):
    """Embedded-Gaussian non-local block: ``z = x + BN(W_z softmax(theta(x)^T phi(x)) g(x))``.

    Args:
        channels: input and output channels.
        inter_channels: width of theta, phi and g (default ``channels // 2``, as in the paper).
    """

    def __init__(self, channels: int, inter_channels: int | None = None) -> None:
        super().__init__()
        inter = inter_channels or max(channels // 2, 1)
        self.theta = nn.Conv2d(channels, inter, kernel_size=1)
        self.phi = nn.Conv2d(channels, inter, kernel_size=1)
        self.g = nn.Conv2d(channels, inter, kernel_size=1)
        self.out = nn.Conv2d(inter, channels, kernel_size=1, bias=False)
        self.bn = nn.BatchNorm2d(channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for conv in (self.theta, self.phi, self.g, self.out):
            nn.init.kaiming_normal_(conv.weight, mode="fan_in", nonlinearity="relu")
            if conv.bias is not None:
                nn.init.zeros_(conv.bias)
        nn.init.zeros_(self.bn.weight)  # the block starts as the identity
        nn.init.zeros_(self.bn.bias)

    def forward(self, x: Tensor) -> Tensor:
        B, C, H, W = x.shape
        theta = self.theta(x).flatten(2).transpose(1, 2)  # (B, H*W, Ci)
        phi = self.phi(x).flatten(2)  # (B, Ci, H*W)
        g = self.g(x).flatten(2).transpose(1, 2)  # (B, H*W, Ci)
        attn = (theta @ phi).softmax(dim=-1)  # (B, H*W, H*W)
        y = (attn @ g).transpose(1, 2).reshape(B, -1, H, W)  # (B, Ci, H, W)
        return x + self.bn(self.out(y))
