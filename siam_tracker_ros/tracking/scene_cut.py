"""Camera cuts: a frame of another scene than the one before it, and a target's own scene.

Two cheap whole-frame comparisons of two frames: a 32x24 grey thumbnail's normalised correlation (structure) and an
8x8x8 colour histogram's correlation (content). Measured on the 54 tracks of ../shared/data/train outside the test
split (4,752 pairs of consecutive frames of one track, the tracks' fast and thinned motion included; 3,000 random
pairs of frames of two different tracks):
* a cut is a frame below both limits against the frame before it: no consecutive pair of one track is, 89 % of the
  pairs of two tracks are;
* a frame shows a target's home scene again when it is above the structure limit and above a stricter colour limit,
  HOME_MIN_HISTOGRAM_CORRELATION, against the home frame: 97 % of consecutive pairs of one track are, none of the
  pairs of two tracks is (above both cut limits: 0.2 % are, which over the frames of a 1-3 s cut would let another
  scene pass for the home now and then).

On a cut the tracker freezes every target, reports it lost and marks it *away*: the camera shows another scene than
the target's. Each target keeps frames' signatures, with its centre on each: the last frame it was reported
tracked on, the last frame before a cut sent it away (its *home*), and, once the stricter verification of an away
target has found it in another scene (redetection.py), the home it had before (its *origin*: that match may have
been a look-alike). It stays away until a frame shows one of these scenes again (the camera cut back: the target is
looked for where it was there) or that verification finds it in the new scene; it is never found again by
following whatever the new scene shows.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

THUMB_SIZE = (32, 24)
SAMPLE_SIZE = (128, 96)  # the point sample the thumbnail is averaged from
MAX_THUMB_CORRELATION = 0.5
MAX_HISTOGRAM_CORRELATION = 0.7
HOME_MIN_HISTOGRAM_CORRELATION = 0.9


@dataclass(frozen=True)
class SceneSignature:
    """What two frames are compared on: the grey thumbnail (zero mean, unit norm) and the colour histogram."""

    thumb: np.ndarray
    histogram: np.ndarray


def signature(frame: np.ndarray) -> SceneSignature:
    # The thumbnail averages a point sample of the frame, not every pixel: a fixed cost whatever the camera's
    # resolution (0.05 against 0.21 ms for a 640x360 frame, and growing with the frame's area).
    sample = cv2.resize(frame, SAMPLE_SIZE, interpolation=cv2.INTER_NEAREST)
    small = cv2.resize(sample, THUMB_SIZE, interpolation=cv2.INTER_AREA)
    grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY).astype(np.float64).ravel()
    grey -= grey.mean()
    grey /= np.linalg.norm(grey) + 1e-9
    hist = cv2.calcHist([small], [0, 1, 2], None, [8, 8, 8], [0, 256] * 3)
    return SceneSignature(grey, cv2.normalize(hist, hist).flatten())


def _similarity(a: SceneSignature, b: SceneSignature) -> tuple[float, float]:
    """(structure, content) correlations of two frames' signatures."""
    return float(a.thumb @ b.thumb), cv2.compareHist(a.histogram, b.histogram, cv2.HISTCMP_CORREL)


def another_scene(a: SceneSignature, b: SceneSignature) -> bool:
    """Whether two frames show different scenes: unlike in both structure and colours (a cut between them)."""
    structure, content = _similarity(a, b)
    return structure < MAX_THUMB_CORRELATION and content < MAX_HISTOGRAM_CORRELATION


def shows_home(home: SceneSignature, frame: SceneSignature) -> bool:
    """Whether a frame shows the scene of the `home` frame: alike in structure and closely in colours."""
    structure, content = _similarity(home, frame)
    return structure >= MAX_THUMB_CORRELATION and content >= HOME_MIN_HISTOGRAM_CORRELATION


class SceneCutDetector:
    def __init__(self):
        self.last: SceneSignature | None = None  # the newest frame's signature

    def is_cut(self, frame: np.ndarray) -> bool:
        """Whether `frame` (BGR) shows another scene than the frame given before it."""
        current = signature(frame)
        last, self.last = self.last, current
        return last is not None and another_scene(last, current)

    def reset(self, frame: np.ndarray) -> None:
        """Start from `frame` (a target's init frame)."""
        self.last = signature(frame)
