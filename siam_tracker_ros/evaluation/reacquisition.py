"""Re-acquisition protocol (`eval --reacquisition`): tracks where the target leaves the picture and comes back.

On the set of data/splice.build_reacquisition_set (camera cuts spliced into real tracks, and tracks whose own
ground truth has absent frames), each tracker runs one offline pass from the first present frame and is scored by:

* re-acquired within 1 s: a *return* is the first present frame after one or more absent frames (after the init
  frame). It counts as re-acquired when, on some present frame at most REACQUIRE_WITHIN_S after it (frames counted
  at the set's rate, data/splice.CUT_RATE_HZ), the tracker's box has IoU >= REACQUIRE_IOU with the truth AND the
  tracker reports the target as tracked. The figure is re-acquired returns / all returns, pooled over the set.
* tracked on absent frames: the fraction of absent frames (after the init frame) on which the tracker reports the
  target as tracked, pooled over the set. Ours reports tracked unless its TrackResult is lost (confidence under
  tracking.lost_threshold, back over found_threshold); OpenCV's trackers report their update's `ok`.
* AUC on the present frames: the OTB success AUC of metrics.py (absent frames are excluded there), sequences
  weighted equally.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..data.splice import CUT_RATE_HZ
from .metrics import SequenceScore, gt_valid, iou, overall, score_sequence

REACQUIRE_IOU = 0.5
REACQUIRE_WITHIN_S = 1.0


@dataclass
class ReacquisitionScore:
    """One tracker on one sequence."""

    name: str
    returns: list[int]  # frame index of each return
    reacquired_at: list[int | None]  # first frame that counts as re-acquired, per return (None: not within 1 s)
    absent: int  # absent frames after the init frame
    tracked_absent: int  # of those, frames the tracker reported as tracked
    present: SequenceScore  # OTB figures on the present frames

    @property
    def reacquired(self) -> int:
        return sum(r is not None for r in self.reacquired_at)

    def to_dict(self, rate_hz: float = CUT_RATE_HZ) -> dict:
        delays = [None if r is None else (r - t) / rate_hz for t, r in zip(self.returns, self.reacquired_at)]
        return {"returns": self.returns, "reacquired_at": self.reacquired_at, "reacquire_delay_s": delays,
                "reacquired": self.reacquired, "absent_frames": self.absent, "tracked_absent_frames":
                self.tracked_absent, "auc_present": self.present.auc, "precision20_present": self.present.precision20,
                "present_frames": self.present.frames}


def score_reacquisition(name: str, pred: np.ndarray, tracked: np.ndarray, gt: np.ndarray, start: int = 0,
                        rate_hz: float = CUT_RATE_HZ) -> ReacquisitionScore:
    """Score one pass: `pred` (N, 4) boxes, `tracked` (N,) the tracker's tracked flags, `gt` (N, 4) with NaN rows
    where the target is absent; the tracker ran from frame `start` (earlier frames count for nothing)."""
    pred = np.asarray(pred, dtype=np.float64).reshape(-1, 4)
    gt = np.asarray(gt, dtype=np.float64).reshape(-1, 4)
    tracked = np.asarray(tracked, dtype=bool).reshape(-1)
    if not len(pred) == len(gt) == len(tracked):
        raise ValueError(f"{name}: {len(pred)} boxes, {len(tracked)} flags, {len(gt)} ground-truth rows")
    present = gt_valid(gt)
    after = np.arange(len(gt)) > start
    absent = ~present & after
    window = int(round(REACQUIRE_WITHIN_S * rate_hz))
    hits = np.zeros(len(gt), dtype=bool)
    hits[present] = (iou(pred[present], gt[present]) >= REACQUIRE_IOU) & tracked[present]
    returns, reacquired_at = [], []
    for r in np.flatnonzero(present & np.roll(absent, 1) & after):
        found = np.flatnonzero(hits[r:r + window + 1])  # frames r .. r + 1 s
        returns.append(int(r))
        reacquired_at.append(int(r + found[0]) if len(found) else None)
    keep = np.arange(len(gt)) >= start
    scored_gt = np.where(keep[:, None], gt, np.nan)
    return ReacquisitionScore(name, returns, reacquired_at, int(absent.sum()), int((absent & tracked).sum()),
                              score_sequence(name, pred, scored_gt))


@dataclass
class ReacquisitionRun:
    """One tracker over the set."""

    name: str
    sequences: list[ReacquisitionScore] = field(default_factory=list)
    frames: int = 0
    seconds: float = 0.0

    def summary(self) -> dict:
        returns = sum(len(s.returns) for s in self.sequences)
        absent = sum(s.absent for s in self.sequences)
        present = overall([s.present for s in self.sequences])
        return {"returns": returns, "reacquired": sum(s.reacquired for s in self.sequences),
                "reacquired_fraction": sum(s.reacquired for s in self.sequences) / returns if returns else None,
                "absent_frames": absent, "tracked_absent_frames": sum(s.tracked_absent for s in self.sequences),
                "tracked_absent_fraction":
                    sum(s.tracked_absent for s in self.sequences) / absent if absent else None,
                "auc_present": present.auc, "precision20_present": present.precision20,
                "sequences": len(self.sequences), "frames": self.frames,
                "fps": self.frames / self.seconds if self.seconds > 0 else None}

    def to_dict(self, rate_hz: float = CUT_RATE_HZ) -> dict:
        return {"overall": self.summary(), "sequences": {s.name: s.to_dict(rate_hz) for s in self.sequences}}


def run_reacquisition(trackers: list, seqs: list, rate_hz: float = CUT_RATE_HZ, progress=None
                      ) -> dict[str, ReacquisitionRun]:
    """Every tracker, one offline pass over every sequence of the set (streaming.play keeps the tracked flags)."""
    from .streaming import play

    runs = {t.name: ReacquisitionRun(t.name) for t in trackers}
    for seq in seqs:
        parts = []
        for t in trackers:
            p = play(t, seq)
            score = score_reacquisition(seq.name, p.boxes, p.tracked, seq.boxes, p.start, rate_hz)
            run = runs[t.name]
            run.sequences.append(score)
            run.frames += p.frames
            run.seconds += p.seconds
            parts.append(f"{t.name} re-acquired {score.reacquired}/{len(score.returns)}, tracked on "
                         f"{score.tracked_absent}/{score.absent} absent, AUC {score.present.auc:.3f}")
        if progress:
            progress(f"{seq.name}: " + "; ".join(parts))
    return runs


def reacquisition_table(runs: dict[str, ReacquisitionRun]) -> str:
    lines = [f"{'tracker':<12} {'re-acquired <= 1 s':>19} {'tracked on absent':>18} {'AUC present':>12} "
             f"{'P@20 present':>13} {'FPS':>7}"]
    for name, run in runs.items():
        s = run.summary()
        reacq = "-" if s["reacquired_fraction"] is None else \
            f"{100 * s['reacquired_fraction']:.0f}% ({s['reacquired']}/{s['returns']})"
        absent = "-" if s["tracked_absent_fraction"] is None else f"{100 * s['tracked_absent_fraction']:.1f}%"
        lines.append(f"{name:<12} {reacq:>19} {absent:>18} {s['auc_present']:12.3f} {s['precision20_present']:13.3f} "
                     f"{s['fps'] or float('nan'):7.1f}")
    return "\n".join(lines)
