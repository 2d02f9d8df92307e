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
from siam_tracker_ros.tracking import DEFAULT_TARGET, SiamTracker, iou, track_sequence
from siam_tracker_ros.tracking.crops import channel_mean, crop_square, exemplar_region, to_tensor_layout

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SIAM_DATA_DIR", REPO.parent / "shared" / "data"))
needs_data = pytest.mark.skipif(not (DATA / "train").is_dir(), reason=f"real sequences not found at {DATA}")
MODELS = ["small", "large", "small_box"]


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
    name, _, model = shipped
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
    assert r_torch.shape[1] == model.output_channels == (6 if name == "small_box" else 1)
    spread = float(r_torch[:, 0].max() - r_torch[:, 0].min())
    assert spread > 1.0
    for c in range(r_torch.shape[1]):  # each channel against its own range (response, quality, box)
        scale = max(float(np.abs(r_torch[:, c]).max()), 1e-3)
        assert np.abs(r_torch[:, c] - r_onnx[:, c]).max() < 2e-4 * scale, c
    for a, b in zip(r_torch[:, 0], r_onnx[:, 0]):
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


@needs_data
def test_box_head_follows_an_aspect_ratio_change_the_pyramid_cannot():
    """scbt-GarbageBin (a validation track): a bin turned on its stand, its box's width / height changing by a factor
    of 4 within 40 frames. The pyramid keeps the first frame's aspect ratio; the box head, on the same network, reads
    the ratio off each frame. Measured: mean |log(aspect / true aspect)| 0.50 with the head, 0.63 with the pyramid (on
    davis-breakdance and vot-book the head is ahead too, on davis-dog and davis-parkour behind: docs/training.md)."""
    model = load_weights(default_weights_path("small_box"))
    frames, gt = load_sequence("scbt-GarbageBin", 40)
    errors = {}
    for box_mode in (True, False):
        tracker = SiamTracker(TorchBackend(model), TrackingConfig(box_regression=box_mode))
        assert tracker.box_mode == box_mode
        boxes, _ = track_sequence(tracker, frames, gt[0])
        if not box_mode:  # the pyramid scales width and height together: the first frame's ratio throughout
            np.testing.assert_allclose(boxes[:, 2] / boxes[:, 3], gt[0, 2] / gt[0, 3], rtol=1e-6)
        errors[box_mode] = float(np.mean(np.abs(np.log((boxes[:, 2] / boxes[:, 3]) / (gt[:, 2] / gt[:, 3])))))
    truth = np.log(gt[:, 2] / gt[:, 3])
    assert truth.max() - truth.min() > 1.0  # the track's ratio does change (by more than e)
    assert errors[True] < errors[False] - 0.05, errors


@needs_data
def test_box_position_response_takes_the_pyramids_centre_and_the_heads_size():
    """`box_position: response`: the centre is found exactly as a one-scale pyramid finds it on the same crop; the
    size is the head's (it changes from frame to frame, where the one-scale pyramid's cannot), and it still follows
    the object (scbt-GarbageBin's box changes shape)."""
    model = load_weights(default_weights_path("small_box"))
    frames, gt = load_sequence("scbt-GarbageBin", 30)
    response = SiamTracker(TorchBackend(model), TrackingConfig(box_position="response"))
    pyramid = SiamTracker(TorchBackend(model), TrackingConfig(box_regression=False, num_scales=1))
    assert response.box_mode and not pyramid.box_mode
    for tracker in (response, pyramid):
        tracker.init(frames[0], gt[0])
    first = response.update(frames[1])[DEFAULT_TARGET].box
    same_size = pyramid.update(frames[1])[DEFAULT_TARGET].box
    np.testing.assert_allclose(same_size[2:], gt[0, 2:], atol=1e-6)
    np.testing.assert_allclose(first[:2] + first[2:] / 2, same_size[:2] + same_size[2:] / 2, atol=1e-3)
    assert np.abs(first[2:] - gt[0, 2:]).max() > 0.5  # the head moved the size
    boxes, _ = track_sequence(SiamTracker(TorchBackend(model), TrackingConfig(box_position="response")), frames, gt[0])
    assert np.nanmean(iou(boxes, gt)) > 0.5
    assert len(np.unique(np.round(boxes[:, 2] / boxes[:, 3], 3))) > 10  # the ratio is read off the frames


@pytest.mark.skipif(not (DATA.parent / "pretrained").is_dir(), reason=f"pretrained files not found at {DATA.parent}")
def test_card_states_the_measured_distance_from_the_pretrained_file(shipped):
    """A card that states how far its file is from the pretrained origin states what distance_from_pretrained
    measures (per backbone layer), so the card cannot claim more training than there was."""
    from siam_tracker_ros.model.pretrained import distance_from_pretrained

    _, path, model = shipped
    card = json.loads(path.with_suffix(".json").read_text())
    if "distance_from_pretrained" not in card:
        pytest.skip(f"{path.name}'s card states no distance")
    origin = DATA.parent / "pretrained" / Path(card["pretrained_file"].split()[0]).name
    measured = distance_from_pretrained(model, origin)
    for layer, value in measured.items():
        assert card["distance_from_pretrained"][layer] == pytest.approx(value, abs=1e-6), layer
