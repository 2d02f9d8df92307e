"""Streaming evaluation (`eval --realtime HZ`): what a robot sees of a tracker that runs beside a camera.

Frames arrive on a simulated clock, frame ``start + k`` at ``k / HZ`` seconds (the init frame at 0). The tracker
takes the newest frame that has arrived whenever it is free (the node's policy: frames that arrived while it was
busy are skipped, except the newest); when no new frame has arrived it waits for the next one. Every frame is scored
with the last box the tracker had *finished* by that frame's arrival time, so a box is late by its processing time
and even a tracker faster than the camera is scored one frame late. The init frame, and every frame before the
init call has finished, is scored with the given box.

The processing time of each call is its measured wall time (so real speed counts), or what a `cost` function makes
of it (tests inject durations instead of sleeping). The clock counts integer nanoseconds, so a box finished exactly
when a frame arrives scores that frame, without rounding doubt. Frames are decoded outside the timed calls.

`play(tracker, seq)` without a rate is the offline pass with the same bookkeeping: every frame processed and scored
with its own box, and the tracker's `tracked` flag kept per frame (the re-acquisition protocol reads it).
"""
from __future__ import annotations

import bisect
import os
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..data import Sequence, read_frame
from .metrics import OverallScore, SequenceScore, overall, score_sequence

NS = 1_000_000_000


def reports_tracked(tracker) -> bool:
    """The tracker's own word on its last call: False when it reported the target lost (BoxTracker.tracked);
    trackers that cannot say always count as tracking."""
    return bool(getattr(tracker, "tracked", True))


def measured(index: int, seconds: float) -> float:
    """The default cost: a call takes the wall time it was measured to take."""
    return seconds


@dataclass
class Playback:
    """One tracker's pass over one sequence. Frames before `start` (no ground truth yet) have NaN boxes."""

    boxes: np.ndarray  # (N, 4) the box each frame is scored with
    tracked: np.ndarray  # (N,) bool, the tracker's tracked flag of that box
    processed: list[int]  # frame indices the tracker ran on, in order (the init frame first)
    finished: list[float]  # when each processed frame's box was ready, seconds after the init frame arrived
    seconds: float  # the tracker's processing time, all calls (as costed)
    start: int

    @property
    def frames(self) -> int:
        """Frames from the init frame to the end (the frames scored)."""
        return len(self.boxes) - self.start if self.start < len(self.boxes) else 0

    @property
    def skipped(self) -> int:
        return self.frames - len(self.processed)


def play(tracker, seq: Sequence, hz: float | None = None, max_frames: int | None = None,
         cost: Callable[[int, float], float] = measured) -> Playback:
    """Run `tracker` over `seq` from its first frame with ground truth: offline (`hz` None: every frame, scored with
    its own box) or streaming at `hz` frames per second (the module's protocol). `cost(frame index, measured
    seconds)` gives each call's processing time."""
    n = len(seq) if max_frames is None else min(len(seq), max_frames)
    boxes = np.full((n, 4), np.nan)
    tracked = np.zeros(n, dtype=bool)
    valid = np.flatnonzero(seq.valid[:n])
    if len(valid) == 0:
        return Playback(boxes, tracked, [], [], 0.0, n)
    start = int(valid[0])

    def timed(index: int, call) -> tuple[object, int]:
        frame = read_frame(seq.frame_paths[index])
        t0 = time.perf_counter()
        out = call(frame)
        seconds = cost(index, time.perf_counter() - t0)
        return out, int(round(seconds * NS))

    _, cost_ns = timed(start, lambda frame: tracker.init(frame, seq.boxes[start]))
    # results in order of finishing: (finish time ns, box, tracked); the given box is there from the start
    finish_ns, out_boxes, out_tracked = [0], [np.array(seq.boxes[start], dtype=np.float64)], [True]
    processed, finished = [start], [cost_ns / NS]
    clock_ns = busy_ns = cost_ns

    def arrival_ns(index: int) -> int:
        return int(round((index - start) * NS / hz))

    while processed[-1] < n - 1:
        newest = processed[-1] + 1
        if hz is not None:
            while newest + 1 < n and arrival_ns(newest + 1) <= clock_ns:
                newest += 1  # the frames in between arrived while the tracker was busy: skipped
            clock_ns = max(clock_ns, arrival_ns(newest))  # free before it arrived: wait for it
        box, cost_ns = timed(newest, tracker.update)
        clock_ns += cost_ns
        busy_ns += cost_ns
        finish_ns.append(clock_ns)
        out_boxes.append(np.array(box, dtype=np.float64).reshape(4))
        out_tracked.append(reports_tracked(tracker))
        processed.append(newest)
        finished.append(clock_ns / NS)
    if hz is None:
        boxes[start:] = out_boxes
        tracked[start:] = out_tracked
    else:
        for i in range(start, n):
            k = bisect.bisect_right(finish_ns, arrival_ns(i)) - 1  # the last result finished by the arrival
            boxes[i], tracked[i] = out_boxes[k], out_tracked[k]
    return Playback(boxes, tracked, processed, finished, busy_ns / NS, start)


@dataclass
class StreamRun:
    """One tracker's streaming figures over several sequences."""

    name: str
    hz: float
    sequences: list[SequenceScore] = field(default_factory=list)
    frames: int = 0
    processed: int = 0
    latency_s: float = 0.0  # sum over processed frames of (box ready - frame arrival)

    def overall(self) -> OverallScore:
        return overall(self.sequences, self.frames)

    def to_dict(self) -> dict:
        o = self.overall().to_dict()
        o.pop("fps")
        return {"hz": self.hz, "overall": o, "frames": self.frames, "processed": self.processed,
                "skipped": self.frames - self.processed,
                "processed_fraction": self.processed / self.frames if self.frames else float("nan"),
                "mean_latency_ms": 1e3 * self.latency_s / self.processed if self.processed else float("nan"),
                "sequences": {s.name: s.to_dict() for s in self.sequences}}


def stream(trackers: list, seqs: list[Sequence], hz: float, max_frames: int | None = None,
           cost: Callable[[int, float], float] = measured,
           progress: Callable[[str], None] | None = None) -> dict[str, StreamRun]:
    """Every tracker over every sequence at `hz` (trackers warmed up already: the first init counts as it runs)."""
    runs = {t.name: StreamRun(t.name, hz) for t in trackers}
    for seq in seqs:
        n = len(seq) if max_frames is None else min(len(seq), max_frames)
        parts = []
        for t in trackers:
            p = play(t, seq, hz, max_frames, cost)
            score = score_sequence(seq.name, p.boxes, seq.boxes[:n])
            latency = sum(f - (i - p.start) / hz for i, f in zip(p.processed, p.finished))
            score.extra.update({"processed": len(p.processed), "skipped": p.skipped,
                                "mean_latency_ms": 1e3 * latency / len(p.processed) if p.processed else None})
            run = runs[t.name]
            run.sequences.append(score)
            run.frames += p.frames
            run.processed += len(p.processed)
            run.latency_s += latency
            parts.append(f"{t.name} AUC {score.auc:.3f}, {len(p.processed)}/{p.frames} frames processed")
        if progress:
            progress(f"{seq.name} at {hz:g} Hz: " + "; ".join(parts))
    return runs


def load_average() -> list[float] | None:
    """os.getloadavg() (1, 5, 15 min) where the platform has it: streaming figures depend on the machine's load."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def side_by_side(offline: dict, streaming: dict[str, StreamRun]) -> str:
    """The table of `eval --realtime`: offline AUC and frames/s next to the streaming AUC and frames processed."""
    hz = next(iter(streaming.values())).hz if streaming else float("nan")
    lines = [f"{'tracker':<12} {'AUC':>6} {'P@20':>6} {'FPS':>8} {'AUC@' + format(hz, 'g') + 'Hz':>10} "
             f"{'P@20@' + format(hz, 'g') + 'Hz':>11} {'processed':>10} {'latency ms':>11}"]
    for name, run in offline.items():
        o = run.overall()
        s = streaming[name].to_dict()
        lines.append(f"{name:<12} {o.auc:6.3f} {o.precision20:6.3f} {o.fps:8.1f} {s['overall']['auc']:10.3f} "
                     f"{s['overall']['precision20']:11.3f} {100 * s['processed_fraction']:9.1f}% "
                     f"{s['mean_latency_ms']:11.1f}")
    return "\n".join(lines)
