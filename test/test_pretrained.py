"""The public SiamFC weights in the project's network: an independent numpy forward pass of the file's own layout
(RGB input, conv biases, BatchNorm eps 1e-6, linear conv5, out_scale and bias) gives the response map the project's
plain configuration gives on BGR crops, and the paper's modules added on top start as the identity."""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from siam_tracker_ros.config import ModelConfig
from siam_tracker_ros.model.pretrained import build_from_pretrained, read_npz
from siam_tracker_ros.model.weights import WeightsError, load_weights
from siam_tracker_ros.tracking.crops import channel_mean, crop_square, exemplar_region, to_tensor_layout

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SIAM_DATA_DIR", REPO.parent / "shared" / "data"))
PRETRAINED = Path(os.environ.get("SIAM_PRETRAINED_DIR", DATA.parent / "pretrained"))
FILES = ["fdsiamfc_w015.npz", "fdsiamfc_w030.npz", "siamfc_alexnet_vid.npz"]
needs_files = pytest.mark.skipif(not all((PRETRAINED / f).is_file() for f in FILES) or not (DATA / "train").is_dir(),
                                 reason=f"pretrained weights ({PRETRAINED}) or real sequences ({DATA}) not found "
                                        "(set SIAM_DATA_DIR / SIAM_PRETRAINED_DIR)")


# ----------------------------------------------------------------------------------------- independent reference
def _conv(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int = 1, groups: int = 1) -> np.ndarray:
    """Valid cross-correlation, x (C, H, W), w (O, C/groups, k, k): im2col and one matrix product per group."""
    c, h, wd = x.shape
    o, cg, k, _ = w.shape
    oh, ow = (h - k) // stride + 1, (wd - k) // stride + 1
    win = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(1, 2))[:, ::stride, ::stride][:, :oh, :ow]
    out = np.empty((o, oh, ow))
    og = o // groups
    for g in range(groups):
        cols = win[g * cg:(g + 1) * cg].transpose(1, 2, 0, 3, 4).reshape(oh * ow, cg * k * k)
        out[g * og:(g + 1) * og] = (cols @ w[g * og:(g + 1) * og].reshape(og, -1).T).T.reshape(og, oh, ow)
    return out + b[:, None, None]


def _maxpool(x: np.ndarray) -> np.ndarray:
    win = np.lib.stride_tricks.sliding_window_view(x, (3, 3), axis=(1, 2))[:, ::2, ::2]
    return win.max(axis=(3, 4))


def reference_features(a: dict, rgb: np.ndarray) -> np.ndarray:
    """The file's backbone as its README describes it, on an (H, W, 3) RGB image in 0..255."""
    x = rgb.astype(np.float64).transpose(2, 0, 1)
    for name, stride, groups in (("conv1", 2, 1), ("conv2", 1, 2), ("conv3", 1, 1), ("conv4", 1, 2),
                                 ("conv5", 1, 2)):
        x = _conv(x, a[f"backbone.{name}.0.weight"].astype(np.float64), a[f"backbone.{name}.0.bias"], stride, groups)
        if name == "conv5":
            break
        bn = {k: a[f"backbone.{name}.1.{k}"].astype(np.float64)
              for k in ("weight", "bias", "running_mean", "running_var")}
        x = (x - bn["running_mean"][:, None, None]) / np.sqrt(bn["running_var"][:, None, None] + 1e-6)
        x = np.maximum(x * bn["weight"][:, None, None] + bn["bias"][:, None, None], 0.0)
        if name in ("conv1", "conv2"):
            x = _maxpool(x)
    return x


def reference_response(a: dict, z_rgb: np.ndarray, x_rgb: np.ndarray) -> np.ndarray:
    fz, fx = reference_features(a, z_rgb), reference_features(a, x_rgb)
    scale = float(a.get("head.out_scale", 0.001))
    bias = float(a.get("head.bias", 0.0))
    return scale * _conv(fx, fz[None], np.zeros(1))[0] + bias


def _crops(name: str = "vot-car1", later: int = 6):
    folder = DATA / "train" / name
    gt = np.genfromtxt(folder / "groundtruth.txt", delimiter=",")
    f0, f1 = cv2.imread(str(folder / "00001.jpg")), cv2.imread(str(folder / f"{later + 1:05d}.jpg"))
    x, y, w, h = gt[0]
    cx, cy, s = x + w / 2, y + h / 2, exemplar_region(w, h, 0.5)
    z = crop_square(f0, cx, cy, s, 127, channel_mean(f0))
    xs = crop_square(f1, cx, cy, s * 255 / 127, 255, channel_mean(f1))
    return z, xs


@needs_files
@pytest.mark.parametrize("name", FILES)
def test_plain_network_matches_an_independent_forward_pass(name):
    arrays = read_npz(PRETRAINED / name)
    z, x = _crops()  # BGR, as the project's crops are
    expected = reference_response(arrays, z[:, :, ::-1], x[:, :, ::-1])
    model = load_weights(PRETRAINED / name)  # the untouched network through the project's loader
    with torch.no_grad():
        got = model(torch.from_numpy(to_tensor_layout([z])), torch.from_numpy(to_tensor_layout([x])))[0, 0].numpy()
    assert got.shape == expected.shape == (17, 17)
    assert np.unravel_index(got.argmax(), got.shape) == np.unravel_index(expected.argmax(), expected.shape)
    spread = expected.max() - expected.min()
    assert spread > 1.0  # a real, peaked response: the comparison below is not between two flat maps
    assert np.abs(got - expected).max() < 1e-4 * spread


@needs_files
@pytest.mark.parametrize("name", FILES)
def test_paper_modules_start_as_the_identity(name):
    z, x = _crops()
    zt, xt = torch.from_numpy(to_tensor_layout([z])), torch.from_numpy(to_tensor_layout([x]))
    plain = build_from_pretrained(PRETRAINED / name)
    calibration = torch.from_numpy(to_tensor_layout([x, cv2.resize(z, (255, 255))]))
    full = build_from_pretrained(PRETRAINED / name, ModelConfig(use_se=True, use_fusion=True, use_gam=True),
                                 calibration)
    assert full.fusion is not None and full.se is not None and full.gam is not None
    with torch.no_grad():
        a, b = plain(zt, xt), full(zt, xt)
    assert torch.allclose(a, b, atol=1e-4 * float(a.max() - a.min()))
    # ... and fine-tuning can move them: the blends and the fusion's conv3/conv4 weights get gradients.
    full.train()
    full(zt, xt).sum().backward()
    assert float(full.gam.mix.grad.abs()) > 0 and float(full.se.mix.grad.abs()) > 0
    c5 = full.backbone.channels[4]
    assert float(full.fusion.reduce[0].weight.grad[:, :-c5].abs().sum()) > 0


def test_bad_files_are_refused_with_the_reason(tmp_path):
    with pytest.raises(WeightsError, match="does not exist"):
        read_npz(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(WeightsError, match="not a readable"):
        read_npz(tmp_path / "junk.npz")
    arrays = {"backbone.conv1.0.weight": np.zeros((8, 3, 7, 7), np.float32)}
    np.savez(tmp_path / "shape.npz", **arrays)
    with pytest.raises(WeightsError, match="SiamFC AlexNet"):
        read_npz(tmp_path / "shape.npz")


# Success AUC of the reference rows of ../shared/pretrained/README.md (plain SiamFC, standard hyper-parameters, the
# 11 held-out tracks of config/train_default.yaml, one pass): the project's tracker must do at least as well with the
# same untouched network. (Precision is reported, not asserted: the README's table gives both, and the untouched 15 %
# network's is 0.008 below its reference row here, docs/training.md.)
REFERENCE = {"fdsiamfc_w015.npz": 0.353, "fdsiamfc_w030.npz": 0.387}


@needs_files
@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_untouched_network_tracks_the_held_out_tracks_with_at_least_the_reference_auc(name):
    import yaml

    from siam_tracker_ros.config import Config
    from siam_tracker_ros.evaluation.runner import SiamAdapter, evaluate
    from siam_tracker_ros.tracking import SiamTracker

    held_out = yaml.safe_load((REPO / "config" / "train_default.yaml").read_text())["training"]["val_sequences"]
    tracker = SiamTracker.from_config(Config(), weights=PRETRAINED / name)
    run = evaluate(DATA / "train", [SiamAdapter(tracker, "untouched")], held_out)["untouched"]
    score = run.overall()
    assert score.sequences == 11
    assert score.auc >= REFERENCE[name], (score.auc, score.precision20)
