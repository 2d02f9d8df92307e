"""Each shipped model: its weights load with their card, the exported ONNX graphs give PyTorch's response maps on real
crops, and it follows a real object through a short real track."""
from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from siam_tracker_ros.backends import default_weights_path
from siam_tracker_ros.backends.onnx_backend import OnnxBackend
from siam_tracker_ros.backends.torch_backend import TorchBackend
from siam_tracker_ros.config import TrackingConfig
from siam_tracker_ros.model import load_weights
from siam_tracker_ros.tracking import SiamTracker, iou, track_sequence
from siam_tracker_ros.tracking.crops import channel_mean, crop_square, exemplar_region, to_tensor_layout

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SIAM_DATA_DIR", REPO.parent / "shared" / "data"))
needs_data = pytest.mark.skipif(not (DATA / "train").is_dir(), reason=f"real sequences not found at {DATA}")
MODELS = ["small", "large"]


def load_sequence(name: str, n: int):
    folder = DATA / "train" / name
    files = sorted(folder.glob("*.jpg"))[:n]
    boxes = np.genfromtxt(folder / "groundtruth.txt", delimiter=",")[: len(files)]
    return [cv2.imread(str(f)) for f in files], boxes


@pytest.fixture(scope="module", params=MODELS)
def shipped(request):
    path = default_weights_path(request.param)
    assert path.is_file(), f"shipped weights {path} missing"
    return request.param, path, load_weights(path)


def test_weights_load_with_a_card_naming_origin_and_licence(shipped):
    name, path, model = shipped
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["file"] == path.name
    text = json.dumps(card)
    for must in ("MIT", "Bertinetto", "ILSVRC2015"):
        assert must in text, f"{path.with_suffix('.json')} does not name {must}"
    assert model.config.channels, "shipped weights are built on a pretrained backbone (explicit channels)"
    if name == "large":
        assert list(model.config.channels) == [96, 256, 384, 384, 256]


@needs_data
def test_onnx_graphs_match_pytorch_on_real_crops(shipped, tmp_path):
    _, _, model = shipped
    frames, gt = load_sequence("vot-car1", 8)
    x, y, w, h = gt[0]
    cx, cy, s = x + w / 2, y + h / 2, exemplar_region(w, h, 0.5)
    z = to_tensor_layout([crop_square(frames[0], cx, cy, s, 127, channel_mean(frames[0]))])
    xs = to_tensor_layout([crop_square(frames[7], cx, cy, s * 255 / 127 * f, 255, channel_mean(frames[7]))
                           for f in (0.96, 1.0, 1.04)])
    torch_backend, onnx_backend = TorchBackend(model), OnnxBackend(model, onnx_dir=tmp_path)
    k_torch, k_onnx = torch_backend.template(z), onnx_backend.template(z)
    assert np.allclose(k_torch, k_onnx, atol=1e-4 * np.abs(k_torch).max())
    kernel = np.repeat(k_torch, 3, axis=0)
    r_torch, r_onnx = torch_backend.search(xs, kernel), onnx_backend.search(xs, kernel)
    spread = float(r_torch.max() - r_torch.min())
    assert spread > 1.0
    assert np.abs(r_torch - r_onnx).max() < 1e-4 * spread
    for a, b in zip(r_torch, r_onnx):
        assert np.argmax(a) == np.argmax(b)


@needs_data
def test_follows_a_real_object(shipped):
    _, _, model = shipped
    frames, gt = load_sequence("vot-car1", 30)
    tracker = SiamTracker(TorchBackend(model), TrackingConfig())
    boxes, confidences = track_sequence(tracker, frames, gt[0])
    ious = iou(boxes, gt)
    assert np.nanmean(ious) > 0.6, f"mean IoU {np.nanmean(ious):.3f} on vot-car1's first 30 frames"
    assert np.median(confidences[1:]) > 0.5
