"""The box head's output read as boxes (model/box_head.py), in NumPy: the tracker imports no torch.

Per response cell the head gives a centre-ness logit, the centre's offset (in strides) from the cell and the log size
change against the box the search crop was cut for (the anchor). Boxes here are in search-crop pixels, centres measured
from the crop's centre.
"""
from __future__ import annotations

import numpy as np

from ..config import MAX_LOG_SIZE_CHANGE


def decode_head_size(sw, sh, anchor) -> tuple[np.ndarray, np.ndarray]:
    """The box head's log size changes -> width, height in search pixels: anchor * exp(clipped change)."""
    return (anchor[0] * np.exp(np.clip(sw, -MAX_LOG_SIZE_CHANGE, MAX_LOG_SIZE_CHANGE)),
            anchor[1] * np.exp(np.clip(sh, -MAX_LOG_SIZE_CHANGE, MAX_LOG_SIZE_CHANGE)))


def decode_head_boxes(box: np.ndarray, anchor, stride: float) -> tuple[np.ndarray, ...]:
    """One map of the box head's (4, H, W) ox, oy, sw, sh and the anchor (w, h) -> cx, cy, w, h maps in search
    pixels from the crop's centre: centre = cell + stride * offset, size = anchor * exp(change). The NumPy twin of
    training/loss.py decode_boxes; test_training checks that the two agree."""
    ox, oy, sw, sh = box
    n_y, n_x = ox.shape
    cx = (np.arange(n_x) - (n_x - 1) / 2.0)[None, :] * stride + stride * ox
    cy = (np.arange(n_y) - (n_y - 1) / 2.0)[:, None] * stride + stride * oy
    width, height = decode_head_size(sw, sh, anchor)
    return cx, cy, width, height


def sample_bilinear(maps: np.ndarray, x: float, y: float) -> np.ndarray:
    """Values of maps (C, H, W) at the fractional cell (x, y), clamped into the map."""
    n_y, n_x = maps.shape[1:]
    x, y = float(np.clip(x, 0, n_x - 1)), float(np.clip(y, 0, n_y - 1))
    x0, y0 = min(int(x), n_x - 2), min(int(y), n_y - 2)
    fx, fy = x - x0, y - y0
    top = maps[:, y0, x0] * (1 - fx) + maps[:, y0, x0 + 1] * fx
    bottom = maps[:, y0 + 1, x0] * (1 - fx) + maps[:, y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def change_penalty(width, height, anchor, k: float):
    """SiamRPN's penalty on a change of size and aspect ratio against the anchor box, in (0, 1]:
    exp(-k * (size change x ratio change - 1)), each change the larger of a ratio and its inverse."""
    w0, h0 = anchor
    size_change = _change(_context_size(width, height) / _context_size(w0, h0))
    ratio_change = _change((w0 / h0) / (width / height))
    return np.exp(-(size_change * ratio_change - 1.0) * k)


def _change(r):
    return np.maximum(r, 1.0 / r)


def _context_size(w, h):
    """SiamFC's size of a box with its context, sqrt((w + p)(h + p)), p = (w + h) / 2: the size penalty's measure."""
    p = (w + h) * 0.5
    return np.sqrt((w + p) * (h + p))
