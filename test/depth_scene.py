"""Depth images rendered for tests: a plane seen by a pinhole camera, with holes and out-of-range readings, encoded
as REP-118 16UC1 (millimetres) or 32FC1 (metres). The truth of any pixel is the plane's depth along its ray."""
from __future__ import annotations

import numpy as np


def plane_depth(u, v, intrinsics, normal, offset):
    """Depth z (along the optical axis) where the ray through pixel (u, v) meets the plane n . X = offset (metres)."""
    nx, ny, nz = normal
    rx = (np.asarray(u, float) - intrinsics.cx) / intrinsics.fx
    ry = (np.asarray(v, float) - intrinsics.cy) / intrinsics.fy
    return offset / (nx * rx + ny * ry + nz)


def render_plane(shape, intrinsics, normal=(0.0, 0.0, 1.0), offset=2.0):
    """(height, width) float64 depth of a plane in metres (pixel (i, j) at u = j, v = i: K's convention)."""
    vv, uu = np.mgrid[0:shape[0], 0:shape[1]]
    return plane_depth(uu, vv, intrinsics, normal, offset)


def spoil(z, rng, holes=0.2, too_far=0.05, too_near=0.05):
    """A copy with `holes` of the pixels without a reading (NaN), and `too_far` / `too_near` of them out of range
    (70 m, 0.02 m): the readings a real sensor gives at edges, on glass and in sunlight."""
    z = np.array(z, dtype=np.float64)
    r = rng.random(z.shape)
    z[r < holes] = np.nan
    z[(r >= holes) & (r < holes + too_far)] = 70.0
    z[(r >= holes + too_far) & (r < holes + too_far + too_near)] = 0.02
    return z


def encode(z, encoding):
    """Metres (NaN = no reading) -> the raw array of a 16UC1 (mm, 0 = none) or 32FC1 (m, NaN = none) image."""
    if encoding == "16UC1":
        mm = np.where(np.isfinite(z), np.round(z * 1000.0), 0.0)
        return np.clip(mm, 0, 65535).astype(np.uint16)
    if encoding == "32FC1":
        return np.asarray(z, dtype=np.float32)
    raise ValueError(encoding)
