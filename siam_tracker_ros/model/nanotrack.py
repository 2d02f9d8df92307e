"""NanoTrack v2 and v3 as PyTorch modules of this package, laid out so that the public checkpoints' tensors load by
name.

Written from the checkpoint's tensor names and shapes and the published ONNX pair's operators (strides, groups,
activations), not from other code. The backbone is MobileNetV3-small's first nine blocks (inverted residuals: 1x1
expansion, depth-wise k x k, optional squeeze-excitation with a hard sigmoid, 1x1 projection; ReLU or hard swish;
residual where input and output agree), stride 16, 48 channels. The head correlates template and search point-wise
(a 1x1 convolution + BN on each, then every template cell's vector dotted with every search cell's: 64 maps),
re-weights the maps by channel attention, and runs two towers of six (depth-wise 3x3, 1x1, BN, ReLU6) units, one to
the two class logits, one to the four side distances (exp of the last layer: positive).

v3: one more backbone block (96 channels). Each branch of its head joins two correlations: the point-wise one above,
followed by a 2x2 depth-wise convolution (ReLU6) and a 1x1 one (16 -> 15 cells), and a depth-wise cross-correlation of
the search features with the template's central 4 x 4 cells (both projected by 1x1 + BN; 15 x 15); the 64 + 96 maps
are reduced to 96 by a 1x1 convolution, then a tower of six (depth-wise 3x3, BN, ReLU6, 1x1, BN) units.

Batched: the point-wise correlation is a batched matrix product and the depth-wise one a grouped convolution over the
batch, so any number of (template, search) pairs go through in one call.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

# (expansion channels, output channels, kernel, stride, squeeze-excitation, hard swish) of blocks 1 .. 8
V2_BLOCKS = [(16, 16, 3, 2, True, False), (72, 24, 3, 2, False, False), (88, 24, 3, 1, False, False),
             (96, 40, 5, 2, True, True), (240, 40, 5, 1, True, True), (240, 40, 5, 1, True, True),
             (120, 48, 5, 1, True, True), (144, 48, 5, 1, True, True)]
V3_BLOCKS = V2_BLOCKS + [(288, 96, 5, 1, True, True)]
SE_HIDDEN = {16: 8, 96: 24, 240: 64, 120: 32, 144: 40, 288: 72}  # the checkpoints' squeeze widths


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.fc = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels))

    def forward(self, x):
        w = F.hardsigmoid(self.fc(x.mean(dim=(2, 3))))
        return x * w[:, :, None, None]


class InvertedResidual(nn.Module):
    """conv: [1x1, BN, act,] depth-wise, BN, [SE | Identity,] act, 1x1, BN; the indices are the checkpoint's."""

    def __init__(self, cin: int, hidden: int, cout: int, kernel: int, stride: int, se: bool, hswish: bool):
        super().__init__()
        act = nn.Hardswish if hswish else nn.ReLU
        dw = nn.Conv2d(hidden, hidden, kernel, stride, kernel // 2, groups=hidden, bias=False)
        squeeze = SqueezeExcite(hidden, SE_HIDDEN[hidden]) if se else nn.Identity()
        if hidden == cin:  # no expansion: [dw, BN, act, SE, 1x1, BN]
            layers = [dw, nn.BatchNorm2d(hidden), act(), squeeze]
        else:
            layers = [nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), act(), dw,
                      nn.BatchNorm2d(hidden), squeeze, act()]
        layers += [nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = self.conv(x)
        return x + y if self.residual else y


class Backbone(nn.Module):
    def __init__(self, blocks=V2_BLOCKS):
        super().__init__()
        features = [nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.Hardswish())]
        cin = 16
        for hidden, cout, kernel, stride, se, hswish in blocks:
            features.append(InvertedResidual(cin, hidden, cout, kernel, stride, se, hswish))
            cin = cout
        self.features = nn.Sequential(*features)

    def forward(self, x):
        return self.features(x)


class ChannelAttention(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, channels, 1)
        self.fc2 = nn.Conv2d(channels, channels, 1)

    def forward(self, x):
        return x * torch.sigmoid(self.fc2(F.relu(self.fc1(x.mean(dim=(2, 3), keepdim=True)))))


class PointwiseCorrelation(nn.Module):
    """Every template cell's (projected) feature vector dotted with every search cell's: (B, Hz*Wz, Hx, Wx)."""

    def __init__(self, channels: int, cells: int):
        super().__init__()
        self.conv_kernel = nn.Sequential(nn.Conv2d(channels, channels, 1), nn.BatchNorm2d(channels))
        self.conv_search = nn.Sequential(nn.Conv2d(channels, channels, 1), nn.BatchNorm2d(channels))
        self.CA_layer = ChannelAttention(cells)

    def forward(self, z, x):
        k = self.conv_kernel(z).flatten(2)  # (B, C, Hz*Wz)
        s = self.conv_search(x)
        b, c, h, w = s.shape
        corr = torch.bmm(k.transpose(1, 2), s.flatten(2)).view(b, -1, h, w)
        return self.CA_layer(corr)


def _tower(cin: int, width: int, units: int) -> nn.Sequential:
    layers = []
    for i in range(units):
        c = cin if i == 0 else width
        layers += [nn.Conv2d(c, c, 3, 1, 1, groups=c, bias=False), nn.Conv2d(c, width, 1, bias=False),
                   nn.BatchNorm2d(width), nn.ReLU6()]
    return nn.Sequential(*layers)


class Head(nn.Module):
    def __init__(self, channels: int = 48, cells: int = 64, width: int = 96, units: int = 6):
        super().__init__()
        self.corr_pw_reg = PointwiseCorrelation(channels, cells)
        self.corr_pw_cls = PointwiseCorrelation(channels, cells)
        self.cls_pw_tower = _tower(cells, width, units)
        self.bbox_pw_tower = _tower(cells, width, units)
        self.cls_pred = nn.Sequential(nn.Conv2d(width, 2, 1))
        self.bbox_pred = nn.Sequential(nn.Conv2d(width, 4, 1))

    def forward(self, z, x):
        cls = self.cls_pred(self.cls_pw_tower(self.corr_pw_cls(z, x)))
        box = torch.exp(self.bbox_pred(self.bbox_pw_tower(self.corr_pw_reg(z, x))))
        return torch.cat([cls, box], dim=1)


class NanoTrackV2(nn.Module):
    """features(x) -> (B, 48, H/16, W/16); head(z features, x features) -> (B, 6, n, n): 2 class logits (background,
    target), 4 side distances (l, t, r, b)."""

    family = "nanotrack_v2"

    def __init__(self):
        super().__init__()
        self.backbone = Backbone()
        self.ban_head = Head()

    def features(self, x):
        return self.backbone(x)

    def head(self, z, x):
        return self.ban_head(z, x)

    def forward(self, z, x):
        return self.head(self.features(z), self.features(x))


class PointwiseReduced(PointwiseCorrelation):
    """v3's point-wise correlation: then a 2x2 depth-wise convolution (BN, ReLU6) and a 1x1 one (BN)."""

    def __init__(self, channels: int, cells: int):
        super().__init__(channels, cells)
        self.conv = nn.Sequential(nn.Conv2d(cells, cells, 2, groups=cells, bias=False), nn.BatchNorm2d(cells),
                                  nn.ReLU6(), nn.Conv2d(cells, cells, 1), nn.BatchNorm2d(cells))

    def forward(self, z, x):
        return self.conv(super().forward(z, x))


class DepthwiseCorrelation(nn.Module):
    """The search features cross-correlated channel by channel with the template's central 4 x 4 cells (padding 1)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv_kernel = nn.Sequential(nn.Conv2d(channels, channels, 1), nn.BatchNorm2d(channels))
        self.conv_search = nn.Sequential(nn.Conv2d(channels, channels, 1), nn.BatchNorm2d(channels))

    def forward(self, z, x):
        k = self.conv_kernel(z[:, :, 2:6, 2:6])
        s = self.conv_search(x)
        b, c, h, w = s.shape
        out = F.conv2d(s.reshape(1, b * c, h, w), k.reshape(b * c, 1, *k.shape[2:]), padding=1, groups=b * c)
        return out.view(b, c, out.shape[2], out.shape[3])


def _tower_v3(width: int, units: int) -> nn.Sequential:
    layers = []
    for _ in range(units):
        layers += [nn.Conv2d(width, width, 3, 1, 1, groups=width, bias=False), nn.BatchNorm2d(width), nn.ReLU6(),
                   nn.Conv2d(width, width, 1, bias=False), nn.BatchNorm2d(width)]
    return nn.Sequential(*layers)


class HeadV3(nn.Module):
    def __init__(self, channels: int = 96, cells: int = 64, units: int = 6):
        super().__init__()
        self.corr_dw_reg = DepthwiseCorrelation(channels)
        self.corr_pw_reg = PointwiseReduced(channels, cells)
        self.corr_dw_cls = DepthwiseCorrelation(channels)
        self.corr_pw_cls = PointwiseReduced(channels, cells)
        self.down_reg = nn.Sequential(nn.Conv2d(cells + channels, channels, 1))
        self.down_cls = nn.Sequential(nn.Conv2d(cells + channels, channels, 1))
        self.cls_tower = _tower_v3(channels, units)
        self.bbox_tower = _tower_v3(channels, units)
        self.cls_logits = nn.Sequential(nn.Conv2d(channels, 2, 1))
        self.bbox_pred = nn.Sequential(nn.Conv2d(channels, 4, 1))

    def forward(self, z, x):
        cls = self.down_cls(torch.cat([self.corr_pw_cls(z, x), self.corr_dw_cls(z, x)], dim=1))
        reg = self.down_reg(torch.cat([self.corr_pw_reg(z, x), self.corr_dw_reg(z, x)], dim=1))
        cls = self.cls_logits(self.cls_tower(cls))
        box = torch.exp(self.bbox_pred(self.bbox_tower(reg)))
        return torch.cat([cls, box], dim=1)


class NanoTrackV3(NanoTrackV2):
    family = "nanotrack_v3"

    def __init__(self):
        nn.Module.__init__(self)
        self.backbone = Backbone(V3_BLOCKS)
        self.ban_head = HeadV3()


MODULES = {"nanotrack_v2": NanoTrackV2, "nanotrack_v3": NanoTrackV3}


def nanotrack_from_state(family: str, state: dict) -> NanoTrackV2:
    """The family's module with a checkpoint's tensors (the `neck` tensors the public checkpoints carry are unused
    by their graphs and left out); RuntimeError naming what does not match."""
    model = MODULES[family]()
    wanted = {k: v for k, v in state.items() if not k.startswith("neck.")}
    model.load_state_dict(wanted, strict=True)
    return model.eval()
