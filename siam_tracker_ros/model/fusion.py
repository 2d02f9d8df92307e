"""Multi-layer feature fusion (paper eq. 1-2): f_final = conv1x1(concat_i bn(maxpool(f_conv_i))), i = 3, 4, 5.

The shallower maps are max-pooled with stride 1 down to conv5's size. Valid 3x3 convolutions shrink each map by 2,
so conv3 is 4 larger than conv5 and conv4 is 2 larger for every input size: kernels 5 and 3 at stride 1 align the
three maps cell for cell and keep the total stride at 8, which the tracker's displacement arithmetic relies on. (Pooling
with a
larger stride would change the stride of the fused map; centre-cropping would throw information away.)
"""
from __future__ import annotations

import torch
from torch import nn


class MultiLayerFeatureFusion(nn.Module):
    def __init__(self, in_channels: tuple[int, int, int], out_channels: int):
        super().__init__()
        self.pool3 = nn.MaxPool2d(5, stride=1)
        self.pool4 = nn.MaxPool2d(3, stride=1)
        self.norms = nn.ModuleList(nn.BatchNorm2d(c) for c in in_channels)
        self.reduce = nn.Sequential(nn.Conv2d(sum(in_channels), out_channels, 1, bias=False),
                                    nn.BatchNorm2d(out_channels))

    def forward(self, f3: torch.Tensor, f4: torch.Tensor, f5: torch.Tensor) -> torch.Tensor:
        maps = (self.pool3(f3), self.pool4(f4), f5)
        fused = torch.cat([norm(m) for norm, m in zip(self.norms, maps)], dim=1)
        return self.reduce(fused)
