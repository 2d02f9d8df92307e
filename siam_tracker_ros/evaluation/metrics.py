"""The OTB one-pass evaluation (OPE) protocol.

* success: for each of 21 overlap thresholds t = 0, 0.05, ..., 1 the fraction of frames whose IoU with the ground
  truth is strictly greater than t; the success AUC is the mean of those 21 fractions. A perfect track scores
  20/21 = 0.952 (no IoU exceeds 1), a track that never overlaps scores 0.
* precision: for each centre-error threshold 0..50 px the fraction of frames whose centre error is at most that
  many pixels; "precision" is the value at 20 px.
* frames whose ground truth is absent (NaN) count in neither; frame 1 (the initialisation frame, given the
  ground-truth box) counts like every other frame; a predicted box that is missing (NaN) has IoU 0 and an
  infinite centre error.
* overall figures weight sequences equally: the mean of the per-sequence curves.

Boxes are 0-based ``x, y, w, h`` (top-left, size) in continuous coordinates: area = w * h, centre = (x + w/2, y + h/2).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..tracking.geometry import center_error, iou  # noqa: F401  (re-exported: the metrics use them)

SUCCESS_THRESHOLDS = np.linspace(0.0, 1.0, 21)
PRECISION_THRESHOLDS = np.arange(0, 51, dtype=np.float64)
PRECISION_AT = 20.0


def gt_valid(gt: np.ndarray) -> np.ndarray:
    gt = np.asarray(gt, dtype=np.float64).reshape(-1, 4)
    with np.errstate(invalid="ignore"):
        return np.isfinite(gt).all(axis=1) & (gt[:, 2] > 0) & (gt[:, 3] > 0)


def success_curve(ious: np.ndarray) -> np.ndarray:
    ious = np.asarray(ious, dtype=np.float64)
    if ious.size == 0:
        return np.zeros_like(SUCCESS_THRESHOLDS)
    return (ious[None, :] > SUCCESS_THRESHOLDS[:, None]).mean(axis=1)


def precision_curve(errors: np.ndarray) -> np.ndarray:
    errors = np.asarray(errors, dtype=np.float64)
    if errors.size == 0:
        return np.zeros_like(PRECISION_THRESHOLDS)
    return (errors[None, :] <= PRECISION_THRESHOLDS[:, None]).mean(axis=1)


class _CurveSummary:
    """The two OTB figures read off a success curve (`self.success`) and a precision curve (`self.precision`)."""

    @property
    def auc(self) -> float:
        return float(self.success.mean())

    @property
    def precision20(self) -> float:
        return float(self.precision[int(PRECISION_AT)])


@dataclass
class SequenceScore(_CurveSummary):
    name: str
    frames: int  # frames scored (ground truth present)
    success: np.ndarray  # (21,)
    precision: np.ndarray  # (51,)
    mean_iou: float
    fps: float = float("nan")
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"name": self.name, "frames": self.frames, "auc": self.auc, "precision20": self.precision20,
                "mean_iou": self.mean_iou, "fps": self.fps, "success_curve": self.success.tolist(),
                "precision_curve": self.precision.tolist(), **self.extra}


def score_sequence(name: str, pred: np.ndarray, gt: np.ndarray, fps: float = float("nan")) -> SequenceScore:
    """Score one tracked sequence; `pred` and `gt` are (N, 4), frames with absent ground truth are excluded."""
    pred = np.asarray(pred, dtype=np.float64).reshape(-1, 4)
    gt = np.asarray(gt, dtype=np.float64).reshape(-1, 4)
    if len(pred) != len(gt):
        raise ValueError(f"{name}: {len(pred)} predicted boxes for {len(gt)} ground-truth boxes")
    keep = gt_valid(gt)
    ious = iou(pred[keep], gt[keep])
    errs = center_error(pred[keep], gt[keep])
    return SequenceScore(name, int(keep.sum()), success_curve(ious), precision_curve(errs),
                         float(ious.mean()) if ious.size else float("nan"), fps)


@dataclass
class OverallScore(_CurveSummary):
    success: np.ndarray
    precision: np.ndarray
    sequences: int
    frames: int
    fps: float  # total frames / total tracking time

    def to_dict(self) -> dict:
        return {"auc": self.auc, "precision20": self.precision20, "sequences": self.sequences,
                "frames": self.frames, "fps": self.fps, "success_curve": self.success.tolist(),
                "precision_curve": self.precision.tolist()}


def overall(scores: list[SequenceScore], total_frames: int | None = None,
            total_seconds: float | None = None) -> OverallScore:
    """Sequences weighted equally: mean of the per-sequence curves (sequences with no scored frame are left out)."""
    used = [s for s in scores if s.frames > 0]
    if not used:
        return OverallScore(np.zeros_like(SUCCESS_THRESHOLDS), np.zeros_like(PRECISION_THRESHOLDS), 0, 0,
                            float("nan"))
    fps = float("nan")
    if total_frames and total_seconds and total_seconds > 0:
        fps = total_frames / total_seconds
    return OverallScore(np.mean([s.success for s in used], axis=0), np.mean([s.precision for s in used], axis=0),
                        len(used), sum(s.frames for s in used), fps)
