"""SiamFC's AlexNet with batch norm, exposing conv3, conv4 and conv5 for the multi-layer feature fusion.

Valid convolutions only (no padding), so the total stride is 8 and a 127 exemplar gives a 6x6 conv5 map and a 255
search image a 22x22 one; the response is then 17x17.
"""
from __future__ import annotations

import torch
from torch import nn

# Channel widths of the paper-size (width 1.0) AlexNet of SiamFC.
ALEXNET_CHANNELS = (96, 256, 384, 384, 256)
TOTAL_STRIDE = 8


def scaled_channels(width: float) -> tuple[int, ...]:
    """Channel counts for a width multiplier, rounded to multiples of 8 (even, for the grouped convolutions)."""
    return tuple(max(8, int(round(c * width / 8.0)) * 8) for c in ALEXNET_CHANNELS)


def _conv_bn_relu(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride=stride, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class AlexNetBackbone(nn.Module):
    def __init__(self, width: float = 1.0, channels: tuple[int, ...] | None = None):
        super().__init__()
        c1, c2, c3, c4, c5 = self.channels = tuple(channels) if channels else scaled_channels(width)
        self.stem = nn.Sequential(
            _conv_bn_relu(3, c1, 11, stride=2),
            nn.MaxPool2d(3, 2),
            _conv_bn_relu(c1, c2, 5, groups=2),
            nn.MaxPool2d(3, 2),
        )
        self.conv3 = _conv_bn_relu(c2, c3, 3)
        self.conv4 = _conv_bn_relu(c3, c4, 3, groups=2)
        # conv5 stays linear as in SiamFC: its output is what gets cross-correlated.
        self.conv5 = nn.Sequential(nn.Conv2d(c4, c5, 3, groups=2), nn.BatchNorm2d(c5))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        f3 = self.conv3(self.stem(x))
        f4 = self.conv4(f3)
        f5 = self.conv5(f4)
        return f3, f4, f5


def feature_size(input_size: int) -> dict[str, int]:
    """Spatial size of each tapped map for a square input, by the stride arithmetic of the layers above."""
    s = (input_size - 11) // 2 + 1  # conv1
    s = (s - 3) // 2 + 1  # pool1
    s = s - 4  # conv2
    s = (s - 3) // 2 + 1  # pool2
    return {"conv3": s - 2, "conv4": s - 4, "conv5": s - 6}
