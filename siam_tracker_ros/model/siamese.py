"""The two-subnetwork Siamese tracker network of the paper (Fig. 2).

One shared AlexNet backbone feeds two heads:
  * the fusion subnetwork: conv3/4/5 -> multi-layer feature fusion -> global attention (or plain conv5 when the
    switches are off), cross-correlated template against search;
  * the squeeze-excitation subnetwork: conv5 -> SE, cross-correlated likewise.
The two response maps are averaged. The paper's figure leaves open whether the subnetworks share the backbone; we share
it, which halves the backbone cost (the point of a lightweight tracker) and lets both heads learn from one set of
low-level features.

Tracking splits the network in two calls: `template(z)` once per target and `search(x, kernel)` every frame, where
`kernel` carries both heads' template features concatenated along channels, so one tensor crosses the backend
boundary (and is the one extra input of the exported search graph).
"""
from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ModelConfig
from .attention import GlobalAttention, SqueezeExcitation
from .backbone import AlexNetBackbone
from .box_head import OUTPUT_CHANNELS as HEAD_OUTPUT_CHANNELS, BoxHead
from .correlation import window_cells
from .fusion import MultiLayerFeatureFusion


def _tap_indices(height: int, width: int, h: int, w: int) -> torch.Tensor:
    """(out_h * out_w, h * w) flat indices into a (height * width * h * w) tap table: output cell (y, x) reads, for
    each kernel tap (i, j), the table entry of feature cell (y + i, x + j) and tap (i, j)."""
    return window_cells(height, width, h, w) * (h * w) + torch.arange(h * w)


def cross_correlate(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Per-sample cross-correlation of search features x (B, C, H, W) with kernels (B, C, h, w) -> (B, 1, H-h+1, W-w+1).

    Exported without a grouped convolution, so the batch stays a free dimension in the ONNX graph (a grouped
    convolution bakes the batch size into its `group` attribute) and TensorRT needs no convolution with runtime
    weights. The exported form sums over channels first, in one batched matrix product: every feature cell against
    every kernel tap, a (B, H*W, h*w) table of one number per pair; each output cell is then the sum of the h*w
    entries on its diagonal (one Gather with constant indices, one ReduceSum). The channels are read once, so it is
    a few cheap nodes however large the kernel: in ONNX Runtime (2 threads, three 255 crops of the small network)
    0.55 ms against 3.0 ms for a sum of h*w shifted slices of all channels. Every form gives the same
    numbers (tests).
    """
    # Python ints: spatial sizes are static in an exported graph, the batch stays free (-1).
    c, h, w = int(kernel.shape[1]), int(kernel.shape[2]), int(kernel.shape[3])
    height, width = int(x.shape[2]), int(x.shape[3])
    out_h, out_w = height - h + 1, width - w + 1
    if not torch.onnx.is_in_onnx_export():
        # Eager PyTorch: a grouped convolution with the batch folded into channels is the fastest CPU kernel.
        b = x.shape[0]
        return F.conv2d(x.reshape(1, b * c, height, width), kernel, groups=b).reshape(b, 1, out_h, out_w)
    table = torch.matmul(x.flatten(2).transpose(1, 2), kernel.flatten(2))  # (B, H*W, h*w)
    taps = _tap_indices(height, width, h, w)
    response = table.flatten(1)[:, taps].sum(dim=2)  # (B, out_h*out_w)
    return response.reshape(-1, 1, out_h, out_w)


class SiamNet(nn.Module):
    def __init__(self, config: ModelConfig | None = None):
        super().__init__()
        self.config = config = config or ModelConfig()
        self.backbone = AlexNetBackbone(config.width, config.channels or None)
        c3, c4, c5 = self.backbone.channels[2:]
        if config.use_fusion:
            # With explicit channels (a pretrained backbone) f_final keeps conv5's width, so the fusion can start
            # as the identity on conv5 (model/pretrained.py).
            fused = c5 if config.channels else max(8, int(round(config.fused_channels * config.width / 8.0)) * 8)
            self.fusion = MultiLayerFeatureFusion((c3, c4, c5), fused)
            main_channels = fused
        else:
            self.fusion = None
            main_channels = c5
        self.gam = GlobalAttention(main_channels, config.gam_reduction) if config.use_gam else None
        self.se = SqueezeExcitation(c5, config.se_reduction) if config.use_se else None
        self.main_channels = main_channels
        self.se_channels = c5 if config.use_se else 0
        # Logit offset of each head: the fixed response_scale keeps initial logits small (SiamFC's "adjust"), the
        # learned bias lets sigmoid(response) be a calibrated "target is here" probability.
        self.bias = nn.Parameter(torch.zeros(2 if config.use_se else 1))
        # The box head reads the features the response is made of (conv5, or the fused and attended map).
        self.box_head = (BoxHead(main_channels, config.box_head_channels, config.box_head_depth)
                         if config.box_head else None)
        self.head_channels = config.box_head_channels if config.box_head else 0

    @property
    def kernel_channels(self) -> int:
        return self.main_channels + self.se_channels + self.head_channels

    @property
    def output_channels(self) -> int:
        """Channels of `search`'s output: 1 (the response logits), or model/box_head.py's 6 with the box head."""
        return HEAD_OUTPUT_CHANNELS if self.box_head is not None else 1

    def _features(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(main features, SE features or None) of an image."""
        f3, f4, f5 = self.backbone(image)
        main = self.fusion(f3, f4, f5) if self.fusion is not None else f5
        if self.gam is not None:
            main = self.gam(main)
        return main, (self.se(f5) if self.se is not None else None)

    def template(self, z: torch.Tensor) -> torch.Tensor:
        """Exemplar crops (N, 3, Hz, Wz), pixel values 0-255 in BGR order -> kernels (N, kernel_channels, h, w):
        the main features, the SE features, the box head's projection, concatenated along channels."""
        main, se = self._features(z)
        parts = [main] + ([se] if se is not None else [])
        if self.box_head is not None:
            parts.append(self.box_head.template_features(main))
        return torch.cat(parts, dim=1) if len(parts) > 1 else main

    def search(self, x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
        """Search crops (B, 3, Hx, Wx) and one kernel per crop (B, kernel_channels, h, w) -> (B, output_channels, H,
        W): the response logits, then (box head) the quality logit and the four side distances."""
        main, se = self._features(x)
        scale = self.config.response_scale
        m = self.main_channels
        response = cross_correlate(main, kernel[:, :m]) * scale + self.bias[0]
        if se is not None:
            se_response = cross_correlate(se, kernel[:, m: m + self.se_channels])
            response = 0.5 * (response + se_response * scale + self.bias[1])
        if self.box_head is None:
            return response
        box = self.box_head(kernel[:, m + self.se_channels:], main)
        return torch.cat([response, box], dim=1)

    def forward(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.search(x, self.template(z))


class SiamEnsemble(nn.Module):
    """`members` separately trained SiamNets of one configuration behind SiamNet's interface; logits averaged.

    The kernel is the members' kernels concatenated along channels, so backends, export and the tracker see one
    network with a wider kernel. Built from finished runs (`model.weights.combine_weights`, `siam-tracker
    ensemble`): averaging networks trained from different seeds cancels part of what each learned by chance.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        single = dataclasses.replace(config, members=1)
        self.members = nn.ModuleList(SiamNet(single) for _ in range(config.members))

    @property
    def kernel_channels(self) -> int:
        return sum(m.kernel_channels for m in self.members)

    @property
    def output_channels(self) -> int:
        return self.members[0].output_channels

    def template(self, z: torch.Tensor) -> torch.Tensor:
        return torch.cat([m.template(z) for m in self.members], dim=1)

    def _split(self, kernel: torch.Tensor) -> list[torch.Tensor]:
        return list(torch.split(kernel, [m.kernel_channels for m in self.members], dim=1))

    def search(self, x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
        responses = [m.search(x, k) for m, k in zip(self.members, self._split(kernel))]
        return torch.stack(responses).mean(dim=0)

    def forward(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.search(x, self.template(z))


TrackerNet = SiamNet | SiamEnsemble


def build_model(config: ModelConfig | None = None) -> TrackerNet:
    config = config or ModelConfig()
    return SiamEnsemble(config) if config.members > 1 else SiamNet(config)
