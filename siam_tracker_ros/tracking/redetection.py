"""Re-detection: a lost target searched for over the whole frame, a few windows per frame, and every candidate
verified (after a camera cut, also confirmed) before the target is reported tracked again.

The scan. After `redetect_after` frozen frames, the frame is covered by a grid of search windows at the lost
search's input size (the template's scale: the target is looked for at the size it was lost at) whose response
areas tile the frame. `redetect_windows` (M) of them go into each frame's batch beside the local wide searches,
round-robin and shared by the targets being scanned, so a full scan takes ceil(windows / M) frames with one such
target and no frame costs more than M extra crops however many targets are lost. The windows correlate with the first
template only (the one never taken from a possibly drifted track); the best peak of a frame's windows is a candidate.
The drift check (SiamTracker) runs the same scan, sharing the same M windows, for a target reported lost whose box
still follows a match, and moves the box to a verified candidate that clearly beats that match.

The verification. A frozen target's candidate (the wide search's peak, else the scan's best) is verified when its
confidence, its score against the target's own score on its init frame, (peak - floor) / (reference - floor),
reaches `found_threshold`, and its score relative to the track's own typical score, (peak - floor) / (typical -
floor), reaches `redetect_threshold`; the target is then tracked again there.

While the target is away (a camera cut showed another scene, and no frame since has shown its own: scene_cut.py) the
camera shows a scene it was never tracked in, where a match that merely resembles it is the likely one: a candidate
must also reach `redetect_away_threshold` of the init frame's score, nearly as strong a match as the target was on
its init frame, and be confirmed: verified on `redetect_away_frames` frames in a row, each within one target size of
the one before. Meanwhile the frozen box (still reported lost) is moved onto the candidate, so that the next frame's
wide search looks there again. A single frame's match in another scene, or one that moves about, is not taken.

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
CONFIRM_DISTANCE = 1.0  # a confirming candidate is within this many target sizes (the larger side) of the last


@dataclass
class Candidate:
    """Where a frozen target may be: a peak in image coordinates, and how many frames in a row it was verified."""

    cx: float
    cy: float
    peak_logit: float
    scanned: bool = False  # found (first) by the scan's windows
    hits: int = 1


def confidence(t: Target, peak_logit: float) -> float:
    """A peak's score against the target's own score on its init frame, in [0, 1]."""
    return float(np.clip((peak_logit - t.floor) / (t.reference - t.floor), 0.0, 1.0))


def typical_ratio(t: Target, peak_logit: float) -> float:
    """A peak's score relative to the track's typical score."""
    return (peak_logit - t.floor) / max(t.typical - t.floor, 1e-6)


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

    def best(self, searches: list[Search], outputs: list[np.ndarray]) -> Candidate | None:
        """The strongest peak among the windows, in image coordinates."""
        if not searches:
            return None
        peak, cx, cy = max((self.locate(s, o) for s, o in zip(searches, outputs)), key=lambda found: found[0])
        return Candidate(cx, cy, peak, scanned=True)

    def locate(self, s: Search, output: np.ndarray) -> tuple[float, float, float]:
        """A window's peak (the response's peak logit) and where it lies in the image: (peak, cx, cy). The one
        network-specific step of the scan (NanoTracker's scan reads its own outputs)."""
        r = output[0]
        py, px = np.unravel_index(int(np.argmax(r)), r.shape)
        step = self.cfg.total_stride * s.region / s.key[1]  # image pixels per response cell
        cx = s.cx + (px - (r.shape[1] - 1) / 2.0) * step
        cy = s.cy + (py - (r.shape[0] - 1) / 2.0) * step
        return float(r[py, px]), cx, cy


class Verifier:
    """The verification and confirmation of a frozen target's candidates (the module's rules)."""

    def __init__(self, cfg: TrackingConfig):
        self.cfg = cfg

    def verified(self, t: Target, c: Candidate | None) -> bool:
        """Whether one frame's candidate passes the scores: found_threshold and redetect_threshold, and while the
        target is away, redetect_away_threshold."""
        if c is None:
            return False
        score = confidence(t, c.peak_logit)
        if score < self.cfg.found_threshold or typical_ratio(t, c.peak_logit) < self.cfg.redetect_threshold:
            return False
        return not t.away or score >= self.cfg.redetect_away_threshold

    def confirm(self, t: Target, c: Candidate) -> bool:
        """Count a verified candidate against the target's pending one (kept as `t.candidate`); whether it is now
        confirmed: at once in the target's own scene, while away once verified on redetect_away_frames frames in a
        row at a consistent position."""
        last = t.candidate
        if last is not None and math.hypot(c.cx - last.cx, c.cy - last.cy) <= CONFIRM_DISTANCE * max(t.w, t.h):
            c.hits, c.scanned = last.hits + 1, c.scanned or last.scanned
        t.candidate = c
        return c.hits >= (self.cfg.redetect_away_frames if t.away else 1)


def update_typical(t: Target, peak_logit: float) -> None:
    """A tracked frame's peak joins the track's typical score."""
    t.typical += TYPICAL_SCORE_RATE * (peak_logit - t.typical)
