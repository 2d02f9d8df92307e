"""Anchor-free box head: one search, a measured box (the design of SiamFC++ / SiamCAR / NanoTrack).

The paper's network answers "where is the target" with one response map; its size comes from searching a pyramid of
three scales with a fixed aspect ratio. The head answers "how large is it" from the same single search: the template
and search features (conv5, or the fused map) are each projected by a 1x1 convolution, cross-correlated channel by
channel (depth-wise, so every channel keeps its own match map), and a small tower of 3x3 convolutions turns that into,
per response cell,

    quality   a logit of how well centred on the target the cell is (centre-ness, FCOS): multiplied into the
              classification score so that a cell near the target's edge, whose box is least reliable, loses;
    ox, oy    the target's centre from the cell's point in the search crop, in units of the stride (8 px);
    sw, sh    the log of the target's width and height relative to the box the search crop was cut for (the
              "anchor": the tracker's current box, in search-crop pixels).

A box is decoded as centre = cell + stride * (ox, oy), size = anchor * exp(sw, sh) (training/loss.py's decode_boxes,
tracking/box_decoding.py). Sizes are relative because 43 training tracks teach a change of size far better than a size
from scratch: at its initial zero output the head answers "the box you had, centred on this cell", and training
moves it from there (measured: absolute sides in pixels, 12,000 pairs, tracked worse than keeping the size).

The classification stays the paper's response map (the pretrained network's knowledge of "same object"); the head
only adds the box. Its output is concatenated to the response along channels, so every backend, graph and engine
still has one output: channel 0 the response logits, 1 the quality logit, 2-5 the sides (HEAD_CHANNELS).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .correlation import window_cells

OUTPUT_CHANNELS = 6  # response, quality, ox, oy, sw, sh


def depthwise_correlate(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Per-sample, per-channel cross-correlation: x (B, C, H, W), kernel (B, C, h, w) -> (B, C, H-h+1, W-w+1).

    Eager PyTorch uses one grouped convolution (batch and channels folded into groups). The exported graph has no
    convolution with runtime weights and a free batch dimension (a grouped convolution bakes the batch into its
    `group` attribute): it lays the features out cell-major, (H*W, B, C), gathers each output cell's h*w input cells
    along that first axis with constant indices (contiguous rows: a block copy per index) and sums their products
    with the kernel taps. In ONNX Runtime (one thread, the small network's head: 64 channels, 22x22 features, 6x6
    kernel) that takes 0.46 ms against 5.2 ms for gathering the same cells along the last axis of (B, C, H*W).
    """
    b, c = x.shape[0], int(kernel.shape[1])
    h, w = int(kernel.shape[2]), int(kernel.shape[3])
    height, width = int(x.shape[2]), int(x.shape[3])
    out_h, out_w = height - h + 1, width - w + 1
    if not torch.onnx.is_in_onnx_export():
        out = F.conv2d(x.reshape(1, b * c, height, width), kernel.reshape(b * c, 1, h, w), groups=b * c)
        return out.reshape(b, c, out_h, out_w)
    taps = window_cells(height, width, h, w)  # (out_h*out_w, h*w)
    patches = x.flatten(2).permute(2, 0, 1)[taps]  # (out_h*out_w, h*w, B, C)
    out = (patches * kernel.flatten(2).permute(2, 0, 1).unsqueeze(0)).sum(dim=1)  # (out_h*out_w, B, C)
    return out.permute(1, 2, 0).reshape(-1, c, out_h, out_w)


def _conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class BoxHead(nn.Module):
    """Template features (B, C, h, w) and search features (B, C, H, W) -> (B, 5, H-h+1, W-w+1): quality logit,
    ox, oy, sw, sh (module notes). `template_features` runs once per target (its output joins the kernel), `forward`
    every frame."""

    def __init__(self, in_channels: int, channels: int, tower_depth: int = 2):
        super().__init__()
        self.channels = channels
        self.adjust_z = nn.Sequential(nn.Conv2d(in_channels, channels, 1, bias=False), nn.BatchNorm2d(channels))
        self.adjust_x = nn.Sequential(nn.Conv2d(in_channels, channels, 1, bias=False), nn.BatchNorm2d(channels))
        self.norm = nn.BatchNorm2d(channels)  # the correlation sums h*w products: bring it back to a unit scale
        self.tower = nn.Sequential(*[_conv_bn_relu(channels, channels) for _ in range(tower_depth)])
        self.quality = nn.Conv2d(channels, 1, 3, padding=1)
        self.box = nn.Conv2d(channels, 4, 3, padding=1)
        nn.init.normal_(self.quality.weight, std=0.01)
        nn.init.zeros_(self.quality.bias)
        nn.init.normal_(self.box.weight, std=0.001)  # starts at "the anchor box, centred on the cell"
        nn.init.zeros_(self.box.bias)

    def template_features(self, z_features: torch.Tensor) -> torch.Tensor:
        return self.adjust_z(z_features)

    def forward(self, kernel: torch.Tensor, x_features: torch.Tensor) -> torch.Tensor:
        corr = F.relu(self.norm(depthwise_correlate(self.adjust_x(x_features), kernel)))
        t = self.tower(corr)
        return torch.cat([self.quality(t), self.box(t)], dim=1)
