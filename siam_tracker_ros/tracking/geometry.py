"""Boxes: (x, y, w, h) with (x, y) the top-left corner, in pixels, 0-based. Centre form: (cx, cy, w, h)."""
from __future__ import annotations

import numpy as np


def xywh_to_cxcywh(box) -> np.ndarray:
    x, y, w, h = np.asarray(box, dtype=np.float64)
    return np.array([x + w / 2.0, y + h / 2.0, w, h])


def cxcywh_to_xywh(box) -> np.ndarray:
    cx, cy, w, h = np.asarray(box, dtype=np.float64)
    return np.array([cx - w / 2.0, cy - h / 2.0, w, h])


def iou(a, b) -> np.ndarray:
    """IoU of (N, 4) or (4,) xywh boxes, row by row. NaN rows give NaN."""
    a = np.atleast_2d(np.asarray(a, dtype=np.float64))
    b = np.atleast_2d(np.asarray(b, dtype=np.float64))
    x1 = np.maximum(a[:, 0], b[:, 0])
    y1 = np.maximum(a[:, 1], b[:, 1])
    x2 = np.minimum(a[:, 0] + a[:, 2], b[:, 0] + b[:, 2])
    y2 = np.minimum(a[:, 1] + a[:, 3], b[:, 1] + b[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    union = a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / union, 0.0) + 0.0 * (a[:, 0] + b[:, 0])  # keeps NaN rows NaN


def center_error(a, b) -> np.ndarray:
    a = np.atleast_2d(np.asarray(a, dtype=np.float64))
    b = np.atleast_2d(np.asarray(b, dtype=np.float64))
    ca = a[:, :2] + a[:, 2:] / 2.0
    cb = b[:, :2] + b[:, 2:] / 2.0
    return np.linalg.norm(ca - cb, axis=1)
