"""Initialise the project's network from public SiamFC AlexNet weights (`../shared/pretrained/*.npz`).

The files follow the common PyTorch SiamFC port: conv1..conv5 with biases, BatchNorm (eps 1e-6) after conv1..conv4,
conv5 linear, input RGB in 0..255, response = out_scale * xcorr + bias. The project's backbone has bias-free
convolutions followed by BatchNorm (eps 1e-5) everywhere, including conv5, and takes BGR. Everything folds exactly:

* conv1's input channels are reversed (RGB -> BGR), no other change of the input (both take raw 0..255);
* a conv bias b before a BatchNorm is the same as running_mean - b;
* the eps difference is folded into the BatchNorm scale: gamma * sqrt(var + 1e-5) / sqrt(var + 1e-6);
* conv5 keeps its bias, followed by an identity BatchNorm;
* out_scale is the model's response_scale, the head bias the logit offset of every head.

The paper's modules are then added so that they do not disturb the pretrained response before training: the SE
subnetwork and the global attention start with their blend `mix` at 0 (identity, model/attention.py), and the
multi-layer fusion starts as the identity on conv5 (its 1x1 convolution passes conv5 through and gives conv3 and
conv4 zero weight), with its BatchNorm statistics measured on real crops when given. The two heads then see the same
features and their averaged response equals the plain network's. Fine-tuning moves them from there.

These files are starting points and teachers: the weights the project ships are trained by it (docs/training.md).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..config import ModelConfig
from .siamese import SiamNet
from .weights import WeightsError

PRETRAINED_BN_EPS = 1e-6
LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5")
# (module path of the conv, of the BatchNorm after it) in AlexNetBackbone
PROJECT_LAYERS = {"conv1": ("stem.0.0", "stem.0.1"), "conv2": ("stem.2.0", "stem.2.1"),
                  "conv3": ("conv3.0", "conv3.1"), "conv4": ("conv4.0", "conv4.1"), "conv5": ("conv5.0", "conv5.1")}
GROUPS = {"conv1": 1, "conv2": 2, "conv3": 1, "conv4": 2, "conv5": 2}
KERNELS = {"conv1": 11, "conv2": 5, "conv3": 3, "conv4": 3, "conv5": 3}


def read_npz(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of a SiamFC .npz, checked for the layout above (WeightsError naming what is wrong)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"pretrained file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: np.asarray(data[k], dtype=np.float32) for k in data.files}
    except Exception as err:  # zipfile / ValueError for truncated or foreign files
        raise WeightsError(f"pretrained file {path} is not a readable .npz: {err}") from None
    channels = npz_channels(arrays, path)
    cin = 3
    for name, cout in zip(LAYERS, channels):
        shape = arrays[f"backbone.{name}.0.weight"].shape
        expected = (cout, cin // GROUPS[name], KERNELS[name], KERNELS[name])
        if shape != expected:
            raise WeightsError(f"pretrained file {path}: backbone.{name}.0.weight has shape {shape}, "
                               f"expected {expected} (SiamFC AlexNet layout)")
        keys = ["0.bias"] + ([] if name == "conv5" else
                             ["1.weight", "1.bias", "1.running_mean", "1.running_var"])
        for key in keys:
            a = arrays.get(f"backbone.{name}.{key}")
            if a is None or a.shape != (cout,):
                raise WeightsError(f"pretrained file {path}: backbone.{name}.{key} is missing or not ({cout},)")
        cin = cout
    for name, a in arrays.items():
        if not np.all(np.isfinite(a)):
            raise WeightsError(f"pretrained file {path}: {name} holds NaN or infinite values")
    return arrays


def npz_channels(arrays: dict[str, np.ndarray], path: str | Path = "") -> tuple[int, ...]:
    try:
        return tuple(int(arrays[f"backbone.{name}.0.weight"].shape[0]) for name in LAYERS)
    except KeyError as err:
        raise WeightsError(f"pretrained file {path} has no {err.args[0]}: not a SiamFC AlexNet .npz") from None


def backbone_state(arrays: dict[str, np.ndarray], bn_eps: float = 1e-5) -> dict[str, torch.Tensor]:
    """The AlexNetBackbone state dict equivalent to the file's backbone (BGR input, exact up to float rounding)."""
    state = {}
    for name in LAYERS:
        conv, bn = PROJECT_LAYERS[name]
        weight = arrays[f"backbone.{name}.0.weight"].astype(np.float64)
        bias = arrays[f"backbone.{name}.0.bias"].astype(np.float64)
        if name == "conv1":
            weight = weight[:, ::-1]  # RGB -> BGR input
        if name == "conv5":  # conv5 keeps its bias (the project's conv5 has one) before an identity BatchNorm
            state[f"{conv}.bias"] = torch.from_numpy(bias.astype(np.float32))
            gamma, beta = np.ones_like(bias), np.zeros_like(bias)
            mean, var = np.zeros_like(bias), np.full_like(bias, 1.0 - bn_eps)
        else:
            gamma = arrays[f"backbone.{name}.1.weight"].astype(np.float64)
            beta = arrays[f"backbone.{name}.1.bias"].astype(np.float64)
            mean = arrays[f"backbone.{name}.1.running_mean"].astype(np.float64) - bias
            var = arrays[f"backbone.{name}.1.running_var"].astype(np.float64)
            gamma = gamma * np.sqrt(var + bn_eps) / np.sqrt(var + PRETRAINED_BN_EPS)
        for key, value in ((f"{conv}.weight", weight), (f"{bn}.weight", gamma), (f"{bn}.bias", beta),
                           (f"{bn}.running_mean", mean), (f"{bn}.running_var", var)):
            state[key] = torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))
        state[f"{bn}.num_batches_tracked"] = torch.zeros((), dtype=torch.long)
    return state


def head_scale_and_bias(arrays: dict[str, np.ndarray]) -> tuple[float, float]:
    scale = float(arrays["head.out_scale"]) if "head.out_scale" in arrays else 0.001
    bias = float(arrays["head.bias"]) if "head.bias" in arrays else 0.0
    return scale, bias


def pretrained_config(arrays: dict[str, np.ndarray], base: ModelConfig | None = None) -> ModelConfig:
    """`base`'s module switches with the file's channels and response scale."""
    base = base or ModelConfig(use_se=False, use_fusion=False, use_gam=False)
    channels = npz_channels(arrays)
    scale, _ = head_scale_and_bias(arrays)
    width = round(channels[0] / 96.0, 4)
    return dataclasses.replace(base, channels=list(channels), width=min(max(width, 0.1), 2.0),
                               response_scale=scale, members=1)


def build_from_pretrained(path: str | Path, base: ModelConfig | None = None,
                          calibration: torch.Tensor | None = None) -> SiamNet:
    """A SiamNet whose backbone is the file's and whose paper modules start as the identity (see the module doc).

    `calibration`: (N, 3, H, W) BGR crops in 0..255 on which the fusion's BatchNorm statistics are measured.
    """
    arrays = read_npz(path)
    config = pretrained_config(arrays, base)
    model = SiamNet(config)
    model.backbone.load_state_dict(backbone_state(arrays), strict=True)
    model.eval()  # the calibration pass must not touch the backbone's BatchNorm statistics
    _, bias = head_scale_and_bias(arrays)
    with torch.no_grad():
        model.bias.fill_(bias)
        if model.se is not None:
            model.se.mix.zero_()
        if model.gam is not None:
            model.gam.mix.zero_()
        if model.fusion is not None:
            _fusion_identity(model, calibration)
    return model


@torch.no_grad()
def _fusion_identity(model: SiamNet, calibration: torch.Tensor | None) -> None:
    fusion = model.fusion
    if calibration is not None and len(calibration):
        f3, f4, f5 = model.backbone(calibration.float())
        for norm, m in zip(fusion.norms, (fusion.pool3(f3), fusion.pool4(f4), f5)):
            norm.running_mean.copy_(m.mean(dim=(0, 2, 3)))
            norm.running_var.copy_(m.var(dim=(0, 2, 3), unbiased=False).clamp(min=1e-6))
    c3, c4, c5 = model.backbone.channels[2:]
    norm5 = fusion.norms[2]
    std5 = torch.sqrt(norm5.running_var + norm5.eps) / norm5.weight
    conv = fusion.reduce[0]
    conv.weight.zero_()
    # reduce(concat(.., bn5(f5))) = std5 * (f5 - mean5) / std5 + mean5 = f5 (with beta5 = 0)
    conv.weight[torch.arange(c5), c3 + c4 + torch.arange(c5), 0, 0] = std5
    norm5.bias.zero_()
    out_bn = fusion.reduce[1]
    out_bn.running_mean.zero_()
    out_bn.running_var.fill_(1.0 - out_bn.eps)
    out_bn.weight.fill_(1.0)
    out_bn.bias.copy_(norm5.running_mean)


def freeze_batchnorm(model: nn.Module) -> None:
    """Put every BatchNorm in eval mode (statistics frozen; affine parameters still train), except the box head's:
    it is new, and its statistics are learned, not inherited."""
    for name, m in model.named_modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and "box_head." not in name:
            m.eval()


def distance_from_pretrained(model: SiamNet, path: str | Path) -> dict[str, float]:
    """How far a network's backbone is from the public file it was initialised from: per layer (conv1..conv5),
    ||W - W0|| / ||W0|| over the convolution's weights, BatchNorm scale and shift and running statistics together,
    where W0 is the file folded into the project's layout (backbone_state). 0.0: the layer is the file's, untouched.
    What a weights card states as "how far the file is from its origin"."""
    reference = backbone_state(read_npz(path))
    state = model.backbone.state_dict()
    distances = {}
    for name in LAYERS:
        keys = [k for k in reference if k.split(".")[0] + "." + k.split(".")[1] in PROJECT_LAYERS[name]
                and not k.endswith("num_batches_tracked")]
        if any(state[k].shape != reference[k].shape for k in keys):
            raise WeightsError(f"the network's {name} does not have the shape of {path}'s")
        diff = sum(float(((state[k].double() - reference[k].double()) ** 2).sum()) for k in keys)
        norm = sum(float((reference[k].double() ** 2).sum()) for k in keys)
        distances[name] = (diff / max(norm, 1e-30)) ** 0.5
    return distances
