"""Re-detection: a lost target searched for over the whole frame, a few windows per frame, verified before it is taken.

After `redetect_after` frozen frames, the frame is covered by a grid of search windows at the lost search's input
size (the template's scale: the target is looked for at the size it was lost at) whose response areas tile the
frame. `redetect_windows` (M) of them go into each frame's batch beside the local wide searches, round-robin and
shared by the targets being scanned, so a full scan takes ceil(windows / M) frames with one such target and no frame
costs more than M extra crops however many targets are lost. The windows correlate with the first
template only (the one never taken from a possibly drifted track). The best peak of the frame's windows is a
candidate; it is verified when its score relative to the track's own typical score, (peak - floor) / (typical -
floor), reaches `redetect_threshold` (and its confidence, as every frozen target's, `found_threshold`); the loop
then moves the target there and reports it tracked again.

The typical score: the peak logit of the tracked search, averaged (exponentially) over the frames the target was
reported tracked; it starts at the init frame's reference.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..config import TrackingConfig
from .crops import exemplar_region
from .localisers import Search
from .search_plan import SearchPlan

if TYPE_CHECKING:
    from .tracker import Target

TYPICAL_SCORE_RATE = 0.05  # weight of each tracked frame in the typical score's running average
WINDOW_OVERLAP = 0.9  # windows' response areas overlap by a tenth, so a target on a seam is seen whole


@dataclass
class Candidate:
    cx: float
    cy: float
    peak_logit: float
    ratio: float  # its score relative to the track's typical score


class GlobalScan:
    def __init__(self, cfg: TrackingConfig, plan: SearchPlan):
        self.cfg, self.plan = cfg, plan

    def active(self, t: Target) -> bool:
        return self.cfg.redetect_after > 0 and t.searching and t.lost_frames >= self.cfg.redetect_after

    def _region(self, t: Target) -> float:
        z_size, x_size = self.plan.lost_key
        return exemplar_region(t.w, t.h, self.cfg.context) * x_size / z_size

    def grid(self, t: Target, frame_shape) -> list[tuple[float, float]]:
        """Window centres covering the frame: the response of one window spans (x - z) / x of its region."""
        z_size, x_size = self.plan.lost_key
        span = self._region(t) * (x_size - z_size) / x_size * WINDOW_OVERLAP
        height, width = frame_shape[:2]
        nx, ny = max(1, math.ceil(width / span)), max(1, math.ceil(height / span))
        xs, ys = (np.arange(nx) + 0.5) * width / nx, (np.arange(ny) + 0.5) * height / ny
        return [(float(x), float(y)) for y in ys for x in xs]

    def shares(self, scanning: list[str]) -> dict[str, int]:
        """This frame's windows per scanning target: redetect_windows split between them, the remainder to the
        first ones."""
        n, m = len(scanning), self.cfg.redetect_windows
        return {tid: m // n + (1 if i < m % n else 0) for i, tid in enumerate(scanning)} if n else {}

    def searches(self, t: Target, frame_shape, windows: int) -> list[Search]:
        """This frame's windows for `t` (at most `windows`), continuing its scan where the last frame left it."""
        cells = self.grid(t, frame_shape)
        count = min(windows, len(cells))
        start = t.scan_index % len(cells)
        t.scan_index = start + count
        region = self._region(t)
        return [Search(self.plan.lost_key, *cells[(start + i) % len(cells)], region, template="first")
                for i in range(count)]

    def best(self, t: Target, searches: list[Search], outputs: list[np.ndarray]) -> Candidate | None:
        """The strongest peak among the windows, in image coordinates."""
        if not searches:
            return None
        peak, cx, cy = max((self.locate(s, o) for s, o in zip(searches, outputs)), key=lambda found: found[0])
        return Candidate(cx, cy, peak, float((peak - t.floor) / max(t.typical - t.floor, 1e-6)))

    def locate(self, s: Search, output: np.ndarray) -> tuple[float, float, float]:
        """A window's peak (the response's peak logit) and where it lies in the image: (peak, cx, cy). The one
        network-specific step of the scan (NanoTracker's scan reads its own outputs)."""
        r = output[0]
        py, px = np.unravel_index(int(np.argmax(r)), r.shape)
        step = self.cfg.total_stride * s.region / s.key[1]  # image pixels per response cell
        cx = s.cx + (px - (r.shape[1] - 1) / 2.0) * step
        cy = s.cy + (py - (r.shape[0] - 1) / 2.0) * step
        return float(r[py, px]), cx, cy

    def verified(self, candidate: Candidate | None) -> bool:
        return candidate is not None and candidate.ratio >= self.cfg.redetect_threshold

    def verifies(self, t: Target, peak_logit: float) -> bool:
        """Whether a peak passes the verification (always, with re-detection off): the wide search's own peak must
        too before a frozen target counts as found."""
        if self.cfg.redetect_after <= 0:
            return True
        return (peak_logit - t.floor) / max(t.typical - t.floor, 1e-6) >= self.cfg.redetect_threshold


def update_typical(t: Target, peak_logit: float) -> None:
    """A tracked frame's peak joins the track's typical score."""
    t.typical += TYPICAL_SCORE_RATE * (peak_logit - t.typical)
