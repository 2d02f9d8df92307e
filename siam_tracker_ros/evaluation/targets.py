"""`eval --targets K`: a multi-target load, K copies of the sequence's target tracked at once.

Our tracker tracks the K copies as K target ids of one SiamTracker, all in one update call (its search crops go
through the backend as one batch, as in the node). OpenCV's trackers track one target each: K instances, updated
one after another. Either way the first copy's box (and tracked flag) is the one scored, and the time of all K
counts as the call's processing time.
"""
from __future__ import annotations

import numpy as np

from .runner import OpenCVAdapter, SiamAdapter, make_peer
from .streaming import reports_tracked


class SiamTargets:
    """K copies of the target as K ids of one SiamTracker, updated in one call."""

    def __init__(self, adapter: SiamAdapter, k: int):
        self.tracker = adapter.tracker
        self.name = adapter.name
        self.ids = [f"copy{i}" for i in range(k)]
        self.tracked = True

    def init(self, frame, box):
        self.tracker.clear()
        for target_id in self.ids:
            self.tracker.init(frame, tuple(float(v) for v in box), target_id)
        self.tracked = True

    def update(self, frame):
        result = self.tracker.update(frame)[self.ids[0]]
        self.tracked = not result.lost
        return np.asarray(result.box, dtype=np.float64)


class PeerCopies:
    """K instances of one OpenCV tracker, each on its own copy of the target, updated one after another."""

    def __init__(self, first: OpenCVAdapter, k: int):
        self.copies = [first] + [make_peer(first.kind) for _ in range(k - 1)]
        self.name = first.name
        self.tracked = True

    def init(self, frame, box):
        for c in self.copies:
            c.init(frame, box)
        self.tracked = True

    def update(self, frame):
        boxes = [c.update(frame) for c in self.copies]
        self.tracked = reports_tracked(self.copies[0])
        return boxes[0]


def with_targets(tracker, k: int):
    """`tracker` (a SiamAdapter or an OpenCV peer) tracking `k` copies of the target; itself when k is 1."""
    if k < 1:
        raise ValueError(f"--targets must be >= 1, not {k}")
    if k == 1:
        return tracker
    if isinstance(tracker, SiamAdapter):
        return SiamTargets(tracker, k)
    if isinstance(tracker, OpenCVAdapter):
        return PeerCopies(tracker, k)
    raise ValueError(f"{tracker.name}: cannot make a {k}-target load of {type(tracker).__name__}")


def load_description(k: int) -> str:
    """What `--targets k` runs, for the table and the JSON."""
    if k == 1:
        return "one target per tracker"
    return (f"{k} copies of the target: ours as {k} target ids in one update call (one batch); each OpenCV peer as "
            f"{k} instances updated one after another; the first copy's box is scored and all {k} count in the time")
