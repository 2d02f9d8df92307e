"""Where a tracker's time goes, per stage, summed over the calls since the last reset (`siam-tracker bench` reads it).

Stages: crop (cutting and stacking the crops), template (the template branch), search (the search branch), post
(reading the responses: localisation and state).
"""
from __future__ import annotations

import contextlib
import time

STAGES = ("crop", "template", "search", "post")


class StageTimes(dict):
    """Seconds per stage, a dict of STAGES."""

    def __init__(self):
        super().__init__((stage, 0.0) for stage in STAGES)

    def reset(self) -> None:
        for stage in self:
            self[stage] = 0.0

    @contextlib.contextmanager
    def stage(self, name: str):
        """Add the time spent inside the `with` block to stage `name`."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self[name] += time.perf_counter() - start
