"""The two attention blocks of the paper: squeeze-excitation (sec. 3.1) and the global attention module (sec. 3.3).

Each block has a learned blend `mix` (a scalar): U' = U * ((1 - mix) + mix * A). At mix = 1 (the initial value) this
is exactly the paper's U' = U * A; a block added on top of a pretrained backbone starts at mix = 0, the identity, so
it leaves the pretrained response untouched until fine-tuning has learned what the attention adds (model/pretrained.py).
"""
from __future__ import annotations

import torch
from torch import nn


class SqueezeExcitation(nn.Module):
    """SENet channel recalibration: global average pool, bottleneck MLP, sigmoid gate, channel-wise reweighting."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        hidden = max(4, channels // reduction)
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, hidden, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1),
            nn.Sigmoid(),
        )
        self.mix = nn.Parameter(torch.ones(()))

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return u * ((1.0 - self.mix) + self.mix * self.gate(u))


class GlobalAttention(nn.Module):
    """Global attention module, eq. 3-6.

    g = w_expand(relu(w_reduce(avgpool(U))))          channel vector, 1x1xC   (eq. 3)
    S = v_collapse * relu(v_reduce * U)                spatial map,    HxWx1   (eq. 4)
    A = tanh((G + S) + G * S)                          G, S tiled to HxWxC     (eq. 5)
    U' = U * A                                                                 (eq. 6)

    The paper's figure also mentions a spatial-transformer localisation net, but eq. 4 defines S by the two 1x1
    convolutions alone; we implement the equations. Broadcasting does the tiling.
    """

    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.w_reduce = nn.Conv2d(channels, hidden, 1)
        self.w_expand = nn.Conv2d(hidden, channels, 1)
        self.v_reduce = nn.Conv2d(channels, hidden, 1)
        self.v_collapse = nn.Conv2d(hidden, 1, 1)
        self.relu = nn.ReLU(inplace=False)
        # Start near A = tanh(1 + 1 + 1) ~ 1, i.e. U' ~ U: with zero biases A ~ 0 at initialisation and the branch's
        # features (and gradients) would start out vanishing.
        nn.init.constant_(self.w_expand.bias, 1.0)
        nn.init.constant_(self.v_collapse.bias, 1.0)
        self.mix = nn.Parameter(torch.ones(()))

    def attention(self, u: torch.Tensor) -> torch.Tensor:
        g = self.w_expand(self.relu(self.w_reduce(self.pool(u))))  # (B, C, 1, 1)
        s = self.v_collapse(self.relu(self.v_reduce(u)))  # (B, 1, H, W)
        return torch.tanh((g + s) + g * s)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return u * ((1.0 - self.mix) + self.mix * self.attention(u))
