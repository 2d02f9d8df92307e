"""The scale choice when every scale's peak is below the target's background level (negative margins): an
off-centre scale must still be penalised, so on a frame where every scale sees the same thing the box keeps its size
(tracking/localisers.py ScalePyramid, `scale_penalty`). Real shipped network, real frames."""
from __future__ import annotations

import numpy as np
import pytest

from siam_tracker_ros import data
from siam_tracker_ros.backends import default_weights_path
from siam_tracker_ros.config import Config
from siam_tracker_ros.tracking import SiamTracker

DATA = data.data_root()


@pytest.mark.parametrize("grey", [0, 128, 255])
def test_equal_scales_with_negative_logits_keep_the_centre_scale(grey):
    seq = DATA / "train" / "vot-car1"
    if not (seq / "groundtruth.txt").is_file():
        pytest.skip(f"real sequence not found at {seq}")
    if not default_weights_path().is_file():
        pytest.skip(f"shipped weights {default_weights_path()} not present")
    frames, gt = data.load_sequence(seq, 1)
    cfg = Config()
    cfg.backend.name, cfg.backend.device, cfg.backend.num_threads = "torch", "cpu", 1
    # The box follows the best match whatever the confidence: the scale choice decides the new size.
    cfg.tracking.freeze_threshold = 0.0
    tracker = SiamTracker.from_config(cfg)
    tracker.init(frames[0], gt[0])
    # A uniform frame: every scale's crop is the same flat image, so every scale gives the same map, whose peak is
    # below the target's background level (confidence 0: a negative margin for every scale).
    flat = np.full_like(frames[0], grey)
    result = tracker.update(flat)["default"]
    assert result.confidence == 0.0
    assert tracker.state("default")["lost"]
    # Equal scores before the penalty: the centre scale (factor 1) must win, so the size is unchanged.
    np.testing.assert_allclose(result.box[2:], gt[0][2:], rtol=1e-9)
