"""Square crops around a target, resampled to the network's input size, padded with the frame's per-channel mean.

One affine warp per crop: cheaper than crop-then-pad-then-resize and exact for sub-pixel centres. A crop of side
`region` (image pixels) centred on (cx, cy) maps image point (cx, cy) to the output's centre pixel (out - 1) / 2, so a
displacement of d response cells from the centre is d * stride * region / out image pixels.
"""
from __future__ import annotations

import math

import cv2
import numpy as np


def channel_mean(frame: np.ndarray) -> tuple[float, float, float]:
    """The frame's mean colour (the crops' padding). cv2.mean reads the whole frame faster than numpy reads a
    decimated copy of it (0.07 against 0.67 ms for 640x480)."""
    m = cv2.mean(frame)
    return float(m[0]), float(m[1]), float(m[2])


def crop_square(frame: np.ndarray, cx: float, cy: float, region: float, out: int,
                pad_value: tuple[float, float, float]) -> np.ndarray:
    """(out, out, 3) uint8 crop of the square of side `region` centred on (cx, cy) (the tracker's crops)."""
    return crop_rect(frame, cx, cy, region, region, out, pad_value)


def crop_rect(frame: np.ndarray, cx: float, cy: float, side_x: float, side_y: float, out: int,
              pad_value: tuple[float, float, float]) -> np.ndarray:
    """(out, out, 3) uint8 crop of the side_x x side_y rectangle centred on (cx, cy) (training stretches its crops;
    the tracker's are square): (cx, cy) lands on the output's centre pixel (out - 1) / 2.

    warpAffine has no area filter (it treats INTER_AREA as linear), so a crop that shrinks by more than 2x would alias.
    Along an axis whose scale is below 0.5 the part of the frame the crop covers is first shrunk by an integer factor
    k with an area filter (cv2.resize INTER_AREA: the mean of k-pixel blocks), which leaves a warp at a scale in
    (0.5, 1] there."""
    sx, sy = out / side_x, out / side_y
    c = (out - 1) / 2.0
    if sx >= 0.5 and sy >= 0.5:
        matrix = np.array([[sx, 0.0, c - sx * cx], [0.0, sy, c - sy * cy]], dtype=np.float64)
        return cv2.warpAffine(frame, matrix, (out, out), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                              borderValue=pad_value)
    kx, ky = max(1, int(1.0 / sx)), max(1, int(1.0 / sy))
    # The covered rectangle plus a margin of two blocks per side, in whole blocks. Blocks start where the crop's own
    # edge falls (cx - side / 2 + 0.5 in pixel-centre coordinates), rounded.
    x0 = int(np.floor(cx + 0.5 - side_x / 2.0 + 0.5)) - 2 * kx
    y0 = int(np.floor(cy + 0.5 - side_y / 2.0 + 0.5)) - 2 * ky
    jx = _blocks_on_frame(x0, kx, int(np.ceil(side_x / kx)) + 4, frame.shape[1])
    jy = _blocks_on_frame(y0, ky, int(np.ceil(side_y / ky)) + 4, frame.shape[0])
    if jx is None or jy is None:  # the crop lies wholly off the frame
        return np.full((out, out, frame.shape[2]), np.round(pad_value), frame.dtype)
    # Only the blocks that hold frame pixels are shrunk (a large target's region can be many times the frame); the
    # warp pads the rest with the same value, as the all-padding blocks would have been.
    x0, y0 = x0 + jx[0] * kx, y0 + jy[0] * ky
    nx, ny = jx[1] - jx[0], jy[1] - jy[0]
    window = _window(frame, x0, y0, nx * kx, ny * ky, pad_value)
    small = cv2.resize(window, (nx, ny), interpolation=cv2.INTER_AREA)
    # Shrunk pixel j is the mean of frame pixels x0 + k j .. x0 + k j + k - 1: centre x0 + k j + (k - 1) / 2.
    ox, oy = x0 + (kx - 1) / 2.0, y0 + (ky - 1) / 2.0
    matrix = np.array([[sx * kx, 0.0, c - sx * (cx - ox)], [0.0, sy * ky, c - sy * (cy - oy)]], dtype=np.float64)
    return cv2.warpAffine(small, matrix, (out, out), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=pad_value)


def _blocks_on_frame(start: int, k: int, count: int, size: int) -> tuple[int, int] | None:
    """[first, end) of the blocks start + k j .. start + k j + k - 1 (j < count) that hold a pixel of 0 .. size - 1."""
    first = max(0, (-start) // k)
    end = min(count, (size - 1 - start) // k + 1)
    return (first, end) if end > first else None


def _window(frame: np.ndarray, x0: int, y0: int, wx: int, wy: int, pad_value) -> np.ndarray:
    """The rectangle frame[y0:y0+wy, x0:x0+wx], which overlaps the frame (crop_rect's blocks on it), padded with
    `pad_value` where it leaves the frame."""
    h, w = frame.shape[:2]
    ax, ay, bx, by = max(x0, 0), max(y0, 0), min(x0 + wx, w), min(y0 + wy, h)
    return cv2.copyMakeBorder(frame[ay:by, ax:bx], ay - y0, y0 + wy - by, ax - x0, x0 + wx - bx,
                              cv2.BORDER_CONSTANT, value=pad_value)


class FramePad:
    """A frame's mean colour (channel_mean), the crops' padding, computed on first use: SquareCropper asks for it
    only for a crop that reaches past the frame's edge."""

    def __init__(self, frame: np.ndarray):
        self.frame = frame
        self._value: tuple[float, float, float] | None = None

    @property
    def value(self) -> tuple[float, float, float]:
        if self._value is None:
            self._value = channel_mean(self.frame)
        return self._value


class SquareCropper:
    """crop_square's crops, cut faster from frame after frame: the same values, warped from four channels.

    OpenCV's warpAffine has a vectorised kernel for 4-channel uint8 images that 3-channel ones do not get. A crop at
    scale >= 0.5 is therefore warped from a frame-sized BGRA buffer into which only the part of the frame that this
    crop reads (its square, the bilinear neighbours and a margin) has just been converted; the rest of the buffer is
    never read. The warp's arithmetic is the same per channel, so the crop equals crop_square's value for value
    (test_crops checks it on real frames); a crop that stays inside the frame never reads the padding, so the
    frame's mean is not computed for it. OpenCV 5.0 on a 2-core x86 VM, a 255 px crop of a 640x480 frame from a
    150-500 px square: 0.19-0.27 ms with the conversion, against 0.37 ms for crop_square. Shrinking crops (scale
    < 0.5) take crop_square's area filter. Not thread-safe: one per tracker."""

    def __init__(self):
        self._bgra: np.ndarray | None = None

    def crop(self, frame: np.ndarray, cx: float, cy: float, region: float, out: int, pad: FramePad) -> np.ndarray:
        """crop_square(frame, cx, cy, region, out, pad.value) in channels 0-2 of an (out, out, 4) uint8 array (or
        crop_square's own (out, out, 3) one where the crop shrinks): B, G, R first, as to_tensor_layout reads."""
        scale = out / region
        if scale < 0.5:
            return crop_square(frame, cx, cy, region, out, pad.value)
        height, width = frame.shape[:2]
        if self._bgra is None or self._bgra.shape[:2] != (height, width):
            self._bgra = np.empty((height, width, 4), np.uint8)
        c = (out - 1) / 2.0
        reach = c / scale + 2.0  # the output's corners are c / scale from the centre; bilinear reads one further
        x0, x1 = math.floor(cx - reach), math.ceil(cx + reach) + 1
        y0, y1 = math.floor(cy - reach), math.ceil(cy + reach) + 1
        inside = x0 >= 0 and y0 >= 0 and x1 <= width and y1 <= height
        x0, x1, y0, y1 = max(0, x0), min(width, x1), max(0, y0), min(height, y1)
        if x1 > x0 and y1 > y0:
            cv2.cvtColor(frame[y0:y1, x0:x1], cv2.COLOR_BGR2BGRA, dst=self._bgra[y0:y1, x0:x1])
        matrix = np.array([[scale, 0.0, c - scale * cx], [0.0, scale, c - scale * cy]], dtype=np.float64)
        border = (0.0, 0.0, 0.0, 0.0) if inside else (*pad.value, 0.0)
        return cv2.warpAffine(self._bgra, matrix, (out, out), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                              borderValue=border)


def to_tensor_layout(crops: list[np.ndarray], channel_order: str = "bgr") -> np.ndarray:
    """HWC uint8 crops (3 channels, or 4 of which the first 3 count: SquareCropper's) -> one (N, 3, H, W) float32
    array (pixel values 0-255; BGR as the network was trained, or RGB). One plane at a time: cv2.split and a
    contiguous cast copy faster than a transposing one."""
    height, width = crops[0].shape[:2]
    out = np.empty((len(crops), 3, height, width), np.float32)
    order = (2, 1, 0) if channel_order == "rgb" else (0, 1, 2)
    for k, crop in enumerate(crops):
        planes = cv2.split(crop)
        for c, source in enumerate(order):
            out[k, c] = planes[source]
    return out


def exemplar_region(w: float, h: float, context: float) -> float:
    """SiamFC's exemplar side: sqrt((w + p)(h + p)) with p = context * (w + h)."""
    p = context * (w + h)
    return float(np.sqrt((w + p) * (h + p)))
