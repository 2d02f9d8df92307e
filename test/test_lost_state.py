"""The lost-state contract that msg/TrackedTarget.msg, ros/messages.py and the README state: LOST below
lost_threshold; the box still follows the best match while the confidence is at or above freeze_threshold, and is
frozen below it. Real shipped network, real frames."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from siam_tracker_ros import data
from siam_tracker_ros.backends import default_weights_path
from siam_tracker_ros.config import Config
from siam_tracker_ros.tracking import SiamTracker, iou

REPO = Path(__file__).resolve().parents[1]
SEQ = data.data_root() / "train" / "vot-car1"


def tracker_with(lost: float, found: float, freeze: float) -> SiamTracker:
    cfg = Config()
    cfg.backend.name, cfg.backend.device, cfg.backend.num_threads = "torch", "cpu", 1
    cfg.tracking.lost_threshold, cfg.tracking.found_threshold, cfg.tracking.freeze_threshold = lost, found, freeze
    return SiamTracker.from_config(cfg)


@pytest.fixture(scope="module")
def frames():
    if not (SEQ / "groundtruth.txt").is_file():
        pytest.skip(f"real sequence not found at {SEQ}")
    if not default_weights_path().is_file():
        pytest.skip(f"shipped weights {default_weights_path()} not present")
    return data.load_sequence(SEQ, 15)


def test_lost_above_freeze_threshold_still_follows(frames):
    """Every confidence is below lost_threshold = found_threshold = 1 (always LOST) and above freeze_threshold = 0:
    reported lost on every frame, yet the box keeps following the target."""
    imgs, gt = frames
    tracker = tracker_with(lost=1.0, found=1.0, freeze=0.0)
    tracker.init(imgs[0], gt[0])
    boxes = []
    for img in imgs[1:]:
        r = tracker.update(img)["default"]
        assert r.lost and r.confidence < 1.0
        boxes.append(r.box.copy())
    assert not np.allclose(boxes[-1], gt[0])  # it moved
    assert np.mean([iou(b, g) for b, g in zip(boxes, gt[1:])]) > 0.5


def test_below_freeze_threshold_the_box_is_frozen(frames):
    imgs, gt = frames
    tracker = tracker_with(lost=1.0, found=1.0, freeze=1.0)
    tracker.init(imgs[0], gt[0])
    for img in imgs[1:]:
        r = tracker.update(img)["default"]
        assert r.lost
        np.testing.assert_allclose(r.box, gt[0], atol=1e-6)


def test_the_documents_state_the_same_contract():
    msg = (REPO / "msg" / "TrackedTarget.msg").read_text()
    from siam_tracker_ros.ros import messages

    readme = (REPO / "README.md").read_text()
    lost_paragraph = readme[readme.index("**Lost state.**"):readme.index("**Never lagging.**")]
    for text in (msg, messages.__doc__, lost_paragraph):
        flat = " ".join(text.replace("#", " ").split())
        assert "freeze_threshold" in flat and "lost_threshold" in flat and "found_threshold" in flat
        assert "follows the best match" in flat or "still the tracker's best match" in flat, flat
        assert "frozen at its last position" in flat
