"""Anchor-free box head: one search, a measured box (issue 19; the design of SiamFC++ / SiamCAR / NanoTrack).

The paper's network answers "where is the target" with one response map; its size comes from searching a pyramid of
three scales with a fixed aspect ratio. The head answers "how large is it" from the same single search: the template
and search features (conv5, or the fused map) are each projected by a 1x1 convolution, cross-correlated channel by
channel (depth-wise, so every channel keeps its own match map), and a small tower of 3x3 convolutions turns that into,
per response cell,

    quality   a logit of how well centred on the target the cell is (centre-ness, FCOS): multiplied into the
              classification score so that a cell near the target's edge, whose box is least reliable, loses;
    l, t, r, b  the distances from the cell's point in the search crop to the target box's four sides, in search-crop
              pixels: exp(v) * BOX_SCALE, positive by construction.

The classification stays the paper's response map (the pretrained network's knowledge of "same object"); the head
only adds the box. Its output is concatenated to the response along channels, so every backend, graph and engine
still has one output: channel 0 the response logits, 1 the quality logit, 2-5 the sides (HEAD_CHANNELS).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# Sides are exp(v) * BOX_SCALE search pixels: v = 0 is a 64x64 box, the size of a square target in a 255 search crop
# with SiamFC's context (127 * 255 / 255 / 2), so the head starts at the typical answer.
BOX_SCALE = 32.0
# exp() is clamped to this range of v: boxes from 0.08 to 12,900 search pixels, never inf.
BOX_LOG_RANGE = 6.0
OUTPUT_CHANNELS = 6  # response, quality, l, t, r, b


def _tap_table_indices(height: int, width: int, h: int, w: int) -> torch.Tensor:
    """(out_h * out_w, h * w) flat indices into a (height * width) feature map: output cell (y, x) reads, for each
    kernel tap (i, j), feature cell (y + i, x + j)."""
    out_h, out_w = height - h + 1, width - w + 1
    y = torch.arange(out_h).view(-1, 1, 1, 1)
    x = torch.arange(out_w).view(1, -1, 1, 1)
    i = torch.arange(h).view(1, 1, -1, 1)
    j = torch.arange(w).view(1, 1, 1, -1)
    return ((y + i) * width + (x + j)).reshape(out_h * out_w, h * w)


def depthwise_correlate(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Per-sample, per-channel cross-correlation: x (B, C, H, W), kernel (B, C, h, w) -> (B, C, H-h+1, W-w+1).

    Eager PyTorch uses one grouped convolution (batch and channels folded into groups). The exported graph gathers
    each output cell's h*w input cells with constant indices and takes the product with the kernel taps: no
    convolution with runtime weights and a free batch dimension (a grouped convolution bakes the batch into its
    `group` attribute), as model/siamese.py's cross_correlate does for the response.
    """
    b, c = x.shape[0], int(kernel.shape[1])
    h, w = int(kernel.shape[2]), int(kernel.shape[3])
    height, width = int(x.shape[2]), int(x.shape[3])
    out_h, out_w = height - h + 1, width - w + 1
    if not torch.onnx.is_in_onnx_export():
        out = F.conv2d(x.reshape(1, b * c, height, width), kernel.reshape(b * c, 1, h, w), groups=b * c)
        return out.reshape(b, c, out_h, out_w)
    taps = _tap_table_indices(height, width, h, w)  # (out_h*out_w, h*w)
    patches = x.flatten(2)[:, :, taps]  # (B, C, out_h*out_w, h*w)
    out = torch.matmul(patches, kernel.flatten(2).unsqueeze(3))  # (B, C, out_h*out_w, 1)
    return out.reshape(-1, c, out_h, out_w)


def _conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class BoxHead(nn.Module):
    """Template features (B, C, h, w) and search features (B, C, H, W) -> (B, 5, H-h+1, W-w+1): quality logit and
    the four side distances in search pixels. `template_features` runs once per target (its output joins the
    kernel), `forward` every frame."""

    def __init__(self, in_channels: int, channels: int, tower_depth: int = 2):
        super().__init__()
        self.channels = channels
        self.adjust_z = nn.Sequential(nn.Conv2d(in_channels, channels, 1, bias=False), nn.BatchNorm2d(channels))
        self.adjust_x = nn.Sequential(nn.Conv2d(in_channels, channels, 1, bias=False), nn.BatchNorm2d(channels))
        self.norm = nn.BatchNorm2d(channels)  # the correlation sums h*w products: bring it back to a unit scale
        self.tower = nn.Sequential(*[_conv_bn_relu(channels, channels) for _ in range(tower_depth)])
        self.quality = nn.Conv2d(channels, 1, 3, padding=1)
        self.sides = nn.Conv2d(channels, 4, 3, padding=1)
        nn.init.normal_(self.quality.weight, std=0.01)
        nn.init.zeros_(self.quality.bias)
        nn.init.normal_(self.sides.weight, std=0.01)
        nn.init.zeros_(self.sides.bias)

    def template_features(self, z_features: torch.Tensor) -> torch.Tensor:
        return self.adjust_z(z_features)

    def forward(self, kernel: torch.Tensor, x_features: torch.Tensor) -> torch.Tensor:
        corr = F.relu(self.norm(depthwise_correlate(self.adjust_x(x_features), kernel)))
        t = self.tower(corr)
        sides = torch.exp(torch.clamp(self.sides(t), -BOX_LOG_RANGE, BOX_LOG_RANGE)) * BOX_SCALE
        return torch.cat([self.quality(t), sides], dim=1)
