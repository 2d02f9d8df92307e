"""Square crops around a target, resampled to the network's input size, padded with the frame's per-channel mean.

One affine warp per crop: cheaper than crop-then-pad-then-resize and exact for sub-pixel centres. A crop of side
`region` (image pixels) centred on (cx, cy) maps image point (cx, cy) to the output's centre pixel (out - 1) / 2, so a
displacement of d response cells from the centre is d * stride * region / out image pixels.
"""
from __future__ import annotations

import cv2
import numpy as np


def channel_mean(frame: np.ndarray) -> tuple[float, float, float]:
    # A 4x-decimated view is plenty for a mean and four times cheaper on a 640x480 frame.
    m = frame[::4, ::4].reshape(-1, frame.shape[2]).mean(axis=0)
    return float(m[0]), float(m[1]), float(m[2])


def crop_square(frame: np.ndarray, cx: float, cy: float, region: float, out: int,
                pad_value: tuple[float, float, float]) -> np.ndarray:
    """(out, out, 3) uint8 crop of the square of side `region` centred on (cx, cy).

    warpAffine has no area filter (it treats INTER_AREA as linear), so a crop that shrinks by more than 2x would alias.
    Below a scale of 0.5 the part of the frame the crop covers is first shrunk by an integer factor k with an area
    filter (cv2.resize INTER_AREA: the mean of k x k blocks), which leaves a warp at a scale in (0.5, 1]."""
    scale = out / region
    c = (out - 1) / 2.0
    if scale >= 0.5:
        matrix = np.array([[scale, 0.0, c - scale * cx], [0.0, scale, c - scale * cy]], dtype=np.float64)
        return cv2.warpAffine(frame, matrix, (out, out), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                              borderValue=pad_value)
    k = int(1.0 / scale)
    side = (int(np.ceil(region / k)) + 4) * k  # the covered square plus a margin of two blocks per side
    # Blocks start where the crop's own edge falls (cx - region / 2 + 0.5 in pixel-centre coordinates), rounded.
    x0 = int(np.floor(cx + 0.5 - region / 2.0 + 0.5)) - 2 * k
    y0 = int(np.floor(cy + 0.5 - region / 2.0 + 0.5)) - 2 * k
    window = _window(frame, x0, y0, side, pad_value)
    small = cv2.resize(window, (side // k, side // k), interpolation=cv2.INTER_AREA)
    # Shrunk pixel j is the mean of frame pixels x0 + k j .. x0 + k j + k - 1: centre x0 + k j + (k - 1) / 2.
    s = scale * k
    ox, oy = x0 + (k - 1) / 2.0, y0 + (k - 1) / 2.0
    matrix = np.array([[s, 0.0, c - scale * (cx - ox)], [0.0, s, c - scale * (cy - oy)]], dtype=np.float64)
    return cv2.warpAffine(small, matrix, (out, out), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=pad_value)


def _window(frame: np.ndarray, x0: int, y0: int, side: int, pad_value) -> np.ndarray:
    """The square frame[y0:y0+side, x0:x0+side], padded with `pad_value` where it leaves the frame."""
    h, w = frame.shape[:2]
    ax, ay, bx, by = max(x0, 0), max(y0, 0), min(x0 + side, w), min(y0 + side, h)
    if bx <= ax or by <= ay:
        return np.full((side, side, frame.shape[2]), np.round(pad_value), frame.dtype)
    return cv2.copyMakeBorder(frame[ay:by, ax:bx], ay - y0, y0 + side - by, ax - x0, x0 + side - bx,
                              cv2.BORDER_CONSTANT, value=pad_value)


def to_tensor_layout(crops: list[np.ndarray]) -> np.ndarray:
    """HWC uint8 crops -> one (N, 3, H, W) float32 array (pixel values 0-255, BGR, as the network was trained)."""
    return np.ascontiguousarray(np.stack(crops).transpose(0, 3, 1, 2), dtype=np.float32)


def exemplar_region(w: float, h: float, context: float) -> float:
    """SiamFC's exemplar side: sqrt((w + p)(h + p)) with p = context * (w + h)."""
    p = context * (w + h)
    return float(np.sqrt((w + p) * (h + p)))
