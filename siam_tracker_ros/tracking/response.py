"""The response map's geometry and maths: upsampling, the cosine windows, the peak, and the one scale between a
response pixel and the image.

A search crop of `x_size` input pixels covers a square of `region` image pixels; one response cell is `total_stride`
input pixels and one upsampled pixel `total_stride / response_upsample` of them.
"""
from __future__ import annotations

import functools

import cv2
import numpy as np

from ..config import TrackingConfig


def sigmoid(x) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


def to_image(cfg: TrackingConfig, upsampled_pixels, region: float, x_size: int):
    """A length in upsampled response pixels -> image pixels, for a crop of `x_size` input pixels over `region`.
    The response region's side is `to_image(cfg, map side, region, x_size)`."""
    return upsampled_pixels * cfg.total_stride / cfg.response_upsample * region / x_size


def upsample(cfg: TrackingConfig, logits: np.ndarray) -> np.ndarray:
    """One (H, W) logit map upsampled `response_upsample` times, bicubic.

    Logits, not probabilities: a confident network's peak logits (8-12 for the pretrained SiamFC weights) saturate the
    sigmoid into a flat plateau on which the peak's position is lost.
    """
    size = logits.shape[0] * cfg.response_upsample
    return cv2.resize(logits.astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)


@functools.lru_cache(maxsize=16)
def cosine_window(size: int) -> np.ndarray:
    """SiamFC's window on the upsampled response: a Hann window normalised to sum 1."""
    h = np.hanning(size)
    w = np.outer(h, h)
    return (w / w.sum()).astype(np.float32)


@functools.lru_cache(maxsize=16)
def peak_window(size: int) -> np.ndarray:
    """Box mode's cosine window on the cell grid: peak 1 (the score map is max-normalised), unlike SiamFC's (sum 1).
    No zero rows: an edge cell can still win on a strong score."""
    h = np.hanning(size + 2)[1:-1]
    return np.outer(h, h).astype(np.float32)


@functools.lru_cache(maxsize=64)
def motion_likelihood(size: int, sigma: float) -> np.ndarray:
    """The motion prior's likelihood on the upsampled response: a Gaussian of std `sigma` upsampled pixels around
    the map's centre (the predicted position), peak 1."""
    c = (size - 1) / 2.0
    d2 = (np.arange(size) - c) ** 2
    return np.exp(-(d2[:, None] + d2[None, :]) / (2.0 * sigma ** 2)).astype(np.float32)


def locate(up: np.ndarray, window_influence: float, motion: tuple[float, float] | None = None) -> tuple[float, float]:
    """The peak of a normalised upsampled response blended with the cosine window, its displacement from the map's
    centre in upsampled pixels (x, y). Given `motion` = (weight, std in upsampled pixels), that score is multiplied
    by (1 - weight) + weight x the motion prior's likelihood: the candidate chosen on response and motion together."""
    r = up - up.min()
    r /= r.sum() + 1e-12
    r = (1.0 - window_influence) * r + window_influence * cosine_window(r.shape[0])
    if motion is not None and motion[0] > 0.0:
        # The std rounded to a pixel: the likelihood maps are cached per size and std.
        r = r * ((1.0 - motion[0]) + motion[0] * motion_likelihood(r.shape[0], float(max(1.0, round(motion[1])))))
    py, px = np.unravel_index(int(np.argmax(r)), r.shape)
    c = (r.shape[0] - 1) / 2.0
    return px - c, py - c
