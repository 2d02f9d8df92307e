"""Boxes: (x, y, w, h) with (x, y) the top-left corner, in pixels, 0-based. The two box forms (top-left + size for the
API, files and metrics; centre + size inside the tracker and in vision_msgs) convert here, once; IoU and centre error
live here too (the evaluation protocol, evaluation/metrics.py, uses them)."""
from __future__ import annotations

import numpy as np


def to_center(box) -> tuple[float, float, float, float]:
    """(x, y, w, h) top-left box -> (cx, cy, w, h) centre box."""
    x, y, w, h = (float(v) for v in box)
    return x + w / 2.0, y + h / 2.0, w, h


def from_center(cx: float, cy: float, w: float, h: float) -> tuple[float, float, float, float]:
    """(cx, cy, w, h) centre box -> (x, y, w, h) top-left box."""
    return cx - w / 2.0, cy - h / 2.0, w, h


def iou(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Row-wise IoU of (N, 4) x,y,w,h boxes; rows with a NaN or empty box give 0."""
    pred = np.asarray(pred, dtype=np.float64).reshape(-1, 4)
    gt = np.asarray(gt, dtype=np.float64).reshape(-1, 4)
    x0 = np.maximum(pred[:, 0], gt[:, 0])
    y0 = np.maximum(pred[:, 1], gt[:, 1])
    x1 = np.minimum(pred[:, 0] + pred[:, 2], gt[:, 0] + gt[:, 2])
    y1 = np.minimum(pred[:, 1] + pred[:, 3], gt[:, 1] + gt[:, 3])
    with np.errstate(invalid="ignore"):
        inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
        union = pred[:, 2] * pred[:, 3] + gt[:, 2] * gt[:, 3] - inter
        out = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    # (x + w) - x is not always w in floating point: identical fractional boxes could give 1 + 1e-16, which would pass
    # the success threshold t = 1 that no overlap may pass.
    return np.clip(np.nan_to_num(out, nan=0.0), 0.0, 1.0)


def center_error(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Row-wise Euclidean distance of box centres in pixels; a NaN prediction gives +inf."""
    pred = np.asarray(pred, dtype=np.float64).reshape(-1, 4)
    gt = np.asarray(gt, dtype=np.float64).reshape(-1, 4)
    d = (pred[:, :2] + pred[:, 2:] / 2) - (gt[:, :2] + gt[:, 2:] / 2)
    err = np.sqrt((d ** 2).sum(axis=1))
    return np.where(np.isfinite(err), err, np.inf)


def on_distractor(pred: np.ndarray, gt: np.ndarray, distractor: np.ndarray) -> np.ndarray:
    """Row-wise: the predicted box overlaps the distractor (an occluder, say) and more than it overlaps the target's
    ground truth, i.e. it follows the distractor. Rows without a distractor box (NaN) give False."""
    with_distractor = np.all(np.isfinite(np.asarray(distractor, dtype=np.float64).reshape(-1, 4)), axis=1)
    on = iou(pred, distractor)
    return with_distractor & (on > 0.0) & (on > iou(pred, gt))
