"""OTB metrics on hand-made boxes, and `eval` on two short real sequences."""
from __future__ import annotations

import numpy as np
import pytest

from siam_tracker_ros.evaluation import metrics as m


def _gt(n=10):
    return np.array([[10.0 + i, 20.0, 40.0, 20.0] for i in range(n)])


def test_perfect_track():
    gt = _gt()
    s = m.score_sequence("p", gt.copy(), gt)
    # IoU = 1 exceeds every threshold but t = 1 itself: 20 of 21
    assert s.auc == pytest.approx(20 / 21)
    assert s.precision20 == 1.0 and s.mean_iou == pytest.approx(1.0)
    assert s.frames == 10


def test_constant_offset():
    gt = _gt()
    pred = gt.copy()
    pred[:, 0] += 10.0  # shift by a quarter of the width: IoU = 30*20 / (50*20) = 0.6
    s = m.score_sequence("o", pred, gt)
    np.testing.assert_allclose(m.iou(pred, gt), 0.6)
    # thresholds 0, .05, ..., .55 are exceeded (12 of 21)
    assert s.auc == pytest.approx(12 / 21)
    assert s.precision20 == 1.0
    pred[:, 1] += 30.0  # centre error sqrt(10^2 + 30^2) = 31.6 px > 20
    s = m.score_sequence("o2", pred, gt)
    assert s.precision20 == 0.0
    assert s.precision[32] == 1.0 and s.precision[31] == 0.0


def test_total_loss():
    gt = _gt()
    pred = gt + [500, 500, 0, 0]
    s = m.score_sequence("l", pred, gt)
    assert s.auc == 0.0 and s.precision20 == 0.0
    nan_pred = np.full_like(gt, np.nan)
    s = m.score_sequence("n", nan_pred, gt)
    assert s.auc == 0.0 and s.precision20 == 0.0


def test_absent_frames_excluded_and_equal_weights():
    gt = _gt(4)
    gt[1] = np.nan
    pred = gt.copy()
    pred[3] += [500, 0, 0, 0]  # one wrong frame of the 3 scored
    s = m.score_sequence("a", pred, gt)
    assert s.frames == 3
    assert s.precision20 == pytest.approx(2 / 3)
    perfect = m.score_sequence("b", _gt(100), _gt(100))
    total = m.overall([s, perfect])
    assert total.precision20 == pytest.approx((2 / 3 + 1) / 2)  # sequences weighted equally, not frames
