"""Run trackers over a folder of sequences (the ../shared/data layout, or any layout
data/sequences.py reads) with the OTB one-pass protocol, and collect the figures.

Every tracker sees the same frames: each is initialised on the first frame whose ground truth is present, with that
box (rounded to integers for OpenCV's trackers, as their API takes), and updated on every later frame. The
initialisation frame is scored with the init box. When an OpenCV tracker reports failure for a frame, its last box is
kept (the usual wrapper convention; it scores no better than a missing box once the target has moved). Frames are
decoded outside the timed region: FPS counts only the trackers' own init/update calls, over all frames tracked.
OpenCV's trackers run with OpenCV's own thread count (cv2.getNumThreads(), recorded in the report), never changed here.
"""
from __future__ import annotations

import datetime as _dt
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Protocol

import cv2
import numpy as np

from ..data import Sequence, load_sequences, peers_root, read_frame
from .metrics import OverallScore, SequenceScore, overall, score_sequence


class BoxTracker(Protocol):
    """One target: `init` on a frame with its box, then `update` per frame returning the box (x, y, w, h).

    A tracker that can say it has lost the target sets `tracked` after every init/update: False when it reports the
    target lost on that frame (read through evaluation.streaming.reports_tracked; trackers without it always count
    as tracking)."""

    name: str

    def init(self, frame: np.ndarray, box: np.ndarray) -> None: ...

    def update(self, frame: np.ndarray) -> np.ndarray: ...


class SiamAdapter:
    """Our SiamTracker behind the runner's one-target init/update interface."""

    def __init__(self, tracker, name: str = "siam"):
        self.tracker = tracker
        self.name = name

    def init(self, frame, box):
        self.tracker.clear()
        self.tracker.init(frame, tuple(float(v) for v in box))

    def update(self, frame):
        result = next(iter(self.tracker.update(frame).values()))
        self.tracked = not result.lost
        return np.asarray(result.box, dtype=np.float64)


OPENCV_TRACKERS = {"csrt": "TrackerCSRT", "kcf": "TrackerKCF", "mil": "TrackerMIL"}


def _opencv_factory(kind: str) -> Callable[[], object]:
    base = OPENCV_TRACKERS.get(kind.lower())
    if base is None:
        raise ValueError(f"unknown OpenCV peer {kind!r}; known: {', '.join(OPENCV_TRACKERS)}, nano")
    for owner in (cv2, getattr(cv2, "legacy", None)):
        if owner is None:
            continue
        fn = getattr(owner, base + "_create", None)
        if fn is None and hasattr(owner, base):
            fn = getattr(getattr(owner, base), "create", None)
        if fn is not None:
            return fn
    raise RuntimeError(f"this OpenCV build ({cv2.__version__}) has no {base}: install opencv-contrib-python")


class OpenCVAdapter:
    def __init__(self, kind: str):
        self.kind = kind.lower()
        self.name = self.kind
        self._create = _opencv_factory(kind)
        self._tracker = None
        self._last = None

    def init(self, frame, box):
        x, y, w, h = (int(round(v)) for v in box)
        w, h = max(w, 1), max(h, 1)
        self._tracker = self._create()
        self._tracker.init(frame, (x, y, w, h))
        self._last = np.array([x, y, w, h], dtype=np.float64)

    def update(self, frame):
        ok, box = self._tracker.update(frame)
        self.tracked = bool(ok)
        if ok:
            self._last = np.asarray(box, dtype=np.float64).reshape(4)
        return self._last.copy()


NANOTRACK_DIR = "nanotrack_v2"  # under peers_root(): ../shared/peers/README.md
NANOTRACK_FILES = ("nanotrack_backbone_sim.onnx", "nanotrack_head_sim.onnx")


def nanotrack_files(folder: str | Path | None = None) -> tuple[Path, Path]:
    """The NanoTrack v2 ONNX pair (backbone, head) in `folder` (default peers_root()/nanotrack_v2);
    FileNotFoundError naming what is missing and SIAM_PEERS_DIR otherwise."""
    folder = Path(folder) if folder is not None else peers_root() / NANOTRACK_DIR
    paths = tuple(folder / name for name in NANOTRACK_FILES)
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"NanoTrack peer: {', '.join(missing)} not found. Put the ONNX pair of ../shared/peers/README.md in "
            f"{folder}, or set SIAM_PEERS_DIR to the folder that holds {NANOTRACK_DIR}/")
    return paths


def nanotrack_missing(folder: str | Path | None = None) -> str | None:
    """Why the NanoTrack ONNX pair cannot be found (nanotrack_files' message), or None when it is there."""
    try:
        nanotrack_files(folder)
    except FileNotFoundError as err:
        return str(err)
    return None


class NanoTrackAdapter(OpenCVAdapter):
    """OpenCV's TrackerNano (NanoTrack v2) on the ONNX pair of nanotrack_files(). One tracker is created here and
    re-initialised for every run: creating it reads both networks (~40 ms), which must stay out of the timed init
    (re-initialising gives the same boxes as a fresh tracker). Its update() always reports success in the builds
    checked; the runner's convention (keep the last box on failure) still applies, and its peak score is kept in
    `score` without being used to drop boxes."""

    def __init__(self, folder: str | Path | None = None, name: str = "nano"):
        backbone, head = nanotrack_files(folder)
        params = cv2.TrackerNano_Params()
        params.backbone, params.neckhead = str(backbone), str(head)
        create = getattr(cv2, "TrackerNano_create", None) or cv2.TrackerNano.create
        self.kind = self.name = name
        self.files = (backbone, head)
        self._tracker = create(params)
        self._create = lambda: self._tracker
        self._last = None
        self.score = float("nan")

    def update(self, frame):
        box = super().update(frame)
        self.score = float(self._tracker.getTrackingScore())
        return box


def make_peer(kind: str) -> OpenCVAdapter:
    """A peer by its --peers name: "nano" (NanoTrack v2) or one of OPENCV_TRACKERS."""
    return NanoTrackAdapter() if kind.lower() == "nano" else OpenCVAdapter(kind)


@dataclass
class TrackerRun:
    name: str
    sequences: list[SequenceScore] = field(default_factory=list)
    frames: int = 0
    seconds: float = 0.0
    boxes: dict = field(default_factory=dict)  # sequence name -> (N, 4) predictions
    # --restarts: the one-pass runs plus runs started later in each sequence ("name@frame"), each weighted equally
    segments: list[SequenceScore] = field(default_factory=list)

    def overall(self) -> OverallScore:
        return overall(self.sequences, self.frames, self.seconds)

    def overall_restarts(self) -> OverallScore | None:
        return overall(self.sequences + self.segments) if self.segments else None

    def to_dict(self, with_boxes: bool = False) -> dict:
        d = {"overall": self.overall().to_dict(), "sequences": {s.name: s.to_dict() for s in self.sequences}}
        if self.segments:
            d["restarts"] = {"overall": self.overall_restarts().to_dict(),
                             "segments": {s.name: s.to_dict() for s in self.segments}}
        if with_boxes:
            d["boxes"] = {k: np.round(v, 2).tolist() for k, v in self.boxes.items()}
        return d


def track(tracker: BoxTracker, seq: Sequence, max_frames: int | None = None,
          first: int = 0) -> tuple[np.ndarray, int, float]:
    """One pass over a sequence from the first frame with ground truth at or after `first`: (predicted boxes (N, 4)
    with NaN before init, frames tracked, seconds)."""
    n = len(seq) if max_frames is None else min(len(seq), max_frames)
    pred = np.full((n, 4), np.nan)
    valid = np.flatnonzero(seq.valid[:n])
    valid = valid[valid >= first]
    if len(valid) == 0:
        return pred, 0, 0.0
    start = int(valid[0])
    frame = read_frame(seq.frame_paths[start])
    t0 = time.perf_counter()
    tracker.init(frame, seq.boxes[start])
    seconds = time.perf_counter() - t0
    pred[start] = seq.boxes[start]
    for i in range(start + 1, n):
        frame = read_frame(seq.frame_paths[i])
        t0 = time.perf_counter()
        box = tracker.update(frame)
        seconds += time.perf_counter() - t0
        pred[i] = box
    return pred, n - start, seconds


def _warm_up(trackers: list[BoxTracker], seq: Sequence) -> None:
    valid = seq.valid_indices
    if len(valid) == 0:
        return
    frame = read_frame(seq.frame_paths[int(valid[0])])
    for t in trackers:
        t.init(frame, seq.boxes[int(valid[0])])
        t.update(frame)


def select_sequences(seqs: list[Sequence], names: Iterable[str] | None) -> list[Sequence]:
    if not names:
        return seqs
    names = list(names)
    by_name = {s.name: s for s in seqs}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise ValueError(f"sequence(s) not found: {', '.join(missing)}; available: {', '.join(sorted(by_name))}")
    return [by_name[n] for n in names]


def evaluate(data_dir: str | Path, trackers: list[BoxTracker], sequences: Iterable[str] | None = None,
             max_frames: int | None = None, progress: Callable[[str], None] | None = None,
             warmup: bool = True, restarts: int = 1) -> dict[str, TrackerRun]:
    """Run every tracker over every selected sequence of `data_dir`; returns {tracker name: TrackerRun}.

    With `restarts` = K > 1 each tracker also starts afresh at frames k * N / K (k = 1 .. K-1; OTB's temporal
    robustness idea) and is scored from there to the end: with few sequences, one early failure then decides less.

    With `warmup`, each tracker first runs one untimed init + update (lazy initialisation, allocator and kernel
    warm-up stay out of the FPS figures); it is re-initialised for every sequence anyway."""
    seqs = select_sequences(load_sequences(data_dir), sequences)
    runs = {t.name: TrackerRun(t.name) for t in trackers}
    if warmup and seqs:
        _warm_up(trackers, seqs[0])
    for seq in seqs:
        n = len(seq) if max_frames is None else min(len(seq), max_frames)
        gt = seq.boxes[:n]
        parts = []
        for t in trackers:
            pred, frames, seconds = track(t, seq, max_frames)
            fps = frames / seconds if seconds > 0 else float("nan")
            score = score_sequence(seq.name, pred, gt, fps)
            run = runs[t.name]
            run.sequences.append(score)
            run.frames += frames
            run.seconds += seconds
            run.boxes[seq.name] = pred
            parts.append(f"{t.name} AUC {score.auc:.3f} P@20 {score.precision20:.3f} {fps:.0f} fps")
            for k in range(1, restarts):
                pred, frames, _ = track(t, seq, max_frames, first=k * n // restarts)
                if frames:
                    start = n - frames  # track() runs from its init frame to the end
                    run.segments.append(score_sequence(f"{seq.name}@{start}", pred[start:], gt[start:]))
        if progress:
            progress(f"{seq.name} ({n} frames): " + "; ".join(parts))
    return runs


def report(runs: dict[str, TrackerRun], data_dir, extra: dict | None = None, with_boxes: bool = False) -> dict:
    out = {"protocol": "OTB one-pass: success AUC = mean over IoU thresholds linspace(0,1,21) of P(IoU > t); "
                       "precision = P(centre error <= 20 px); frames with absent ground truth excluded; "
                       "init frame counted; sequences weighted equally",
           "data_dir": str(data_dir), "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
           "trackers": {name: run.to_dict(with_boxes) for name, run in runs.items()}}
    if runs:
        out["sequences"] = [s.name for s in next(iter(runs.values())).sequences]
    out.update(extra or {})
    return out


def summary_table(runs: dict[str, TrackerRun]) -> str:
    restarts = any(run.segments for run in runs.values())
    lines = [f"{'tracker':<12} {'AUC':>6} {'P@20':>6} {'FPS':>8} {'seqs':>5} {'frames':>7}"
             + (f" {'AUC, all starts':>15} {'P@20, all starts':>16} {'runs':>5}" if restarts else "")]
    for name, run in runs.items():
        o = run.overall()
        line = f"{name:<12} {o.auc:6.3f} {o.precision20:6.3f} {o.fps:8.1f} {o.sequences:5d} {o.frames:7d}"
        r = run.overall_restarts()
        if r is not None:
            line += f" {r.auc:15.3f} {r.precision20:16.3f} {r.sequences:5d}"
        lines.append(line)
    return "\n".join(lines)
