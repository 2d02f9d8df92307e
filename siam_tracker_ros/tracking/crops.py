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
    """(out, out, 3) uint8 crop of the square of side `region` centred on (cx, cy)."""
    scale = out / region
    c = (out - 1) / 2.0
    matrix = np.array([[scale, 0.0, c - scale * cx], [0.0, scale, c - scale * cy]], dtype=np.float64)
    interp = cv2.INTER_AREA if scale < 0.5 else cv2.INTER_LINEAR
    return cv2.warpAffine(frame, matrix, (out, out), flags=interp, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=pad_value)


def to_tensor_layout(crops: list[np.ndarray]) -> np.ndarray:
    """HWC uint8 crops -> one (N, 3, H, W) float32 array (pixel values 0-255, BGR, as the network was trained)."""
    return np.ascontiguousarray(np.stack(crops).transpose(0, 3, 1, 2), dtype=np.float32)


def exemplar_region(w: float, h: float, context: float) -> float:
    """SiamFC's exemplar side: sqrt((w + p)(h + p)) with p = context * (w + h)."""
    p = context * (w + h)
    return float(np.sqrt((w + p) * (h + p)))
