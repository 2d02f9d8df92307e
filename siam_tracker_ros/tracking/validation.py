"""The checks on what a caller hands the tracker: a frame and a box. One module, one box margin.

How far a box may reach past the image is `TrackingConfig.box_margin` (the node's `box_margin` parameter is that
setting): `SiamTracker.init` checks every box against it. A caller that answers requests before the tracker sees them
(the node's services) runs the same checks at once: `validate_box`, and `check_box_margin` with its margin. Without a
margin, `validate_box` takes the loosest one the configuration allows (MAX_BOX_MARGIN), which still bounds the
coordinates themselves.
"""
from __future__ import annotations

import cv2
import numpy as np

from ..config import MAX_BOX_MARGIN

MIN_FRAME_SIDE = 8  # pixels
MIN_BOX_SIDE = 2  # pixels


class InputError(ValueError):
    """A frame or box the tracker cannot use; the message says what is wrong."""


def prepare_frame(frame) -> np.ndarray:
    """Return an (H, W, 3) uint8 BGR frame, converting grey and 4-channel frames; reject anything else clearly."""
    if not isinstance(frame, np.ndarray):
        raise InputError(f"frame must be a numpy array, not {type(frame).__name__}")
    if frame.dtype != np.uint8:
        raise InputError(f"frame must be uint8 (8-bit BGR), got dtype {frame.dtype}")
    if frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] == 1):
        frame = cv2.cvtColor(frame.reshape(frame.shape[:2]), cv2.COLOR_GRAY2BGR)
    elif frame.ndim == 3 and frame.shape[2] == 4:
        frame = cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    elif frame.ndim != 3 or frame.shape[2] != 3:
        raise InputError(f"frame must be HxW (grey), HxWx3 (BGR) or HxWx4 (BGRA), got shape {frame.shape}")
    if frame.shape[0] < MIN_FRAME_SIDE or frame.shape[1] < MIN_FRAME_SIDE:
        raise InputError(f"frame of {frame.shape[1]}x{frame.shape[0]} pixels is too small")
    return frame


def validate_box(box, frame_shape, margin: float = MAX_BOX_MARGIN) -> np.ndarray:
    """(x, y, w, h) as floats, or InputError naming what is wrong (NaN, too small, off the image, reaching more than
    `margin` x the image size past it: check_box_margin)."""
    try:
        b = np.asarray(box, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise InputError(f"box must be four numbers (x, y, w, h), got {box!r}") from None
    if b.size != 4:
        raise InputError(f"box must be four numbers (x, y, w, h), got {b.size}")
    if not np.all(np.isfinite(b)):
        raise InputError(f"box {b.tolist()} has NaN or infinite values")
    x, y, w, h = b
    if w <= 0 or h <= 0:
        raise InputError(f"box {b.tolist()} is empty: width and height must be positive")
    if w < MIN_BOX_SIDE or h < MIN_BOX_SIDE:
        raise InputError(f"box {b.tolist()} is too small to track: at least {MIN_BOX_SIDE}x{MIN_BOX_SIDE} pixels")
    height, width = frame_shape[:2]
    if x >= width or y >= height or x + w <= 0 or y + h <= 0:
        raise InputError(f"box {b.tolist()} lies outside the {width}x{height} image")
    check_box_margin(b, frame_shape, margin)
    return b


def check_box_margin(box, frame_shape, margin: float) -> None:
    """InputError unless the box stays within `margin` x the image size of the image on every side.

    Bounds the coordinates themselves: (-5e307, 100, 1e308, 20) overlaps the image but is not a box to track.
    """
    x, y, w, h = (float(v) for v in box)
    height, width = frame_shape[:2]
    mx, my = margin * width, margin * height
    if not (x >= -mx and y >= -my and x + w <= width + mx and y + h <= height + my):
        raise InputError(f"box {[x, y, w, h]} reaches too far outside the {width}x{height} image: every edge must "
                         f"lie within {margin:g} x the image size of it (x in [{-mx:g}, {width + mx:g}], "
                         f"y in [{-my:g}, {height + my:g}])")
