"""The offline driver: one target through a sequence of frames (evaluation tools, tests, the GPU check)."""
from __future__ import annotations

import numpy as np

from .tracker import DEFAULT_TARGET, SiamTracker


def track_sequence(tracker: SiamTracker, frames, init_box) -> tuple[np.ndarray, np.ndarray]:
    """Track one target over an iterable of frames (the first gets `init_box`); boxes (N, 4) and confidences (N,)."""
    boxes, confidences = [], []
    for i, frame in enumerate(frames):
        if i == 0:
            tracker.init(frame, init_box, DEFAULT_TARGET)
            boxes.append(np.asarray(init_box, dtype=np.float64))
            confidences.append(1.0)
            continue
        r = tracker.update(frame)[DEFAULT_TARGET]
        boxes.append(r.box)
        confidences.append(r.confidence)
    return np.array(boxes), np.array(confidences)
