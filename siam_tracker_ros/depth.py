"""Where a tracked box is in metres: a registered depth image and the camera's intrinsics -> a 3D centre and size.

Pure numpy, no ROS (the node's thin ROS side is `ros/depth_input.py`); the names follow the ROS conventions so that
the node only copies message fields in and out.

Depth images (REP-118). `16UC1`: unsigned millimetres; `32FC1`: float metres. 0, NaN and +-inf mean "no reading"; so
do readings outside [min_m, max_m] (a sensor's saturation value, e.g. 65535 mm, or a reading nearer than it can
measure). Any other encoding is refused. `depth_view` checks the layout (step, data length, pixel and byte limits,
like image_codec.check_layout) and returns a zero-copy 2-D view of the raw values; only the pixels a box reads are
ever converted to metres.

The depth image must be *registered* to the colour image (same size, same pixel grid, e.g. RealSense
`aligned_depth_to_color`): a box drawn on the colour frame then reads the depth of the same scene points, and the
depth image's own camera_info holds the intrinsics of that grid (for registered depth they are the colour camera's).

Robust depth of a box. The readings of the box's *inner part* (the central `inner` fraction of its width and height,
0.5 by default: a quarter of its area, away from the edges where the background shows) that are valid; too few of
them (under `min_valid_fraction` of the inner part's pixels inside the image) and there is no depth. Of the valid
ones we take the `percentile`-th (default 50, the median). The median ignores holes (they are not readings) and
anything covering less than half of the inner part, whichever side it lies on, and for a plane it is the plane's
depth at the box centre (the inner part is symmetric about the centre). A lower percentile (e.g. 20-30) favours the
nearest surface: use it for thin targets whose inner part is mostly background, accepting that a smaller occluder
in front then pulls the distance towards the camera.

Geometry (pinhole, the camera's optical frame: x right, y down, z forward, metres). The box centre (u, v), in the
pixel coordinates the Detection2D carries, back-projected at the robust depth z: x = (u - cx) z / fx,
y = (v - cy) z / fy. z is the distance along the optical axis (a depth image's value), not the ray length. Size:
x = box width z / fx, y = box height z / fy, z (the target's extent in depth, which one view cannot measure) = the
smaller of the two: a round or boxy object's depth is about its narrower side (a person's chest ~0.3-0.5 m, a ball
its diameter); a controller that needs the front surface reads centre.z - size.z / 2. Lens distortion is not
modelled: registered depth topics are rectified (RealSense's aligned depth is), and for an unrectified image K alone
is off by the distortion at the box centre.

Matching (DepthBuffer). Depth frames are kept in a small buffer by stamp (at most `max_frames`); a colour frame takes
the depth frame with the same stamp or, failing that, the nearest one within a tolerance. A depth stamp more than
FAR_NS from every buffered colour frame and from the node's clock is refused (`check_stamp_near`: another clock, a
stale bag); a depth frame that merely arrives before its colour frame after a pause of the colour stream is near the
clock, so it is kept.
"""
from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

import numpy as np

# Per-target depth status, the values of siam_tracker_ros/TrackedTarget's DEPTH_* constants.
DEPTH_OFF = 0  # no depth input configured
DEPTH_OK = 1  # measured: a Detection3D was published
DEPTH_NO_IMAGE = 2  # no depth image within the stamp tolerance of this colour frame
DEPTH_NO_READINGS = 3  # too few valid readings in the box's inner part (holes, out of range, box off the image)
DEPTH_NO_CAMERA_INFO = 4  # no usable camera_info (none yet, or for another image size)
DEPTH_TARGET_LOST = 5  # the target is lost on this frame: not measured
STATUS_NAMES = {DEPTH_OFF: "off", DEPTH_OK: "ok", DEPTH_NO_IMAGE: "no depth image", DEPTH_NO_READINGS: "no readings",
                DEPTH_NO_CAMERA_INFO: "no camera_info", DEPTH_TARGET_LOST: "target lost"}

# encoding -> (numpy value type, metres per unit)
ENCODINGS = {"16UC1": (np.dtype(np.uint16), 0.001), "32FC1": (np.dtype(np.float32), 1.0)}
MAX_ROW_PADDING = 4096  # as image_codec: bytes a row's step may exceed width x bytes per pixel
FAR_NS = 1_000_000_000  # a depth stamp this far from every colour frame is refused (the node's time-jump bound)


class DepthRefused(ValueError):
    """Depth input that cannot be used; `kind` names the refusal counted in /diagnostics (refused_<kind>)."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Settings:
    """How a box's depth is read (the node's depth_* parameters)."""

    percentile: float = 50.0  # of the valid readings in the inner part
    inner: float = 0.5  # fraction of the box's width and height read (centred)
    min_m: float = 0.1  # readings outside [min_m, max_m] are no readings
    max_m: float = 20.0
    min_valid_fraction: float = 0.1  # of the inner part's pixels (inside the image) that must be valid


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics of the depth image's pixel grid (CameraInfo K), and the size they are for (0: unknown)."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int = 0
    height: int = 0

    @classmethod
    def from_k(cls, k, width: int = 0, height: int = 0) -> "Intrinsics":
        """From a row-major 3x3 K (CameraInfo.k); refused (kind camera_info) for a zero, negative or non-finite
        focal length or a non-finite principal point."""
        k = [float(v) for v in k]
        if len(k) != 9:
            raise DepthRefused("camera_info", f"camera_info K has {len(k)} values, not 9")
        fx, fy, cx, cy = k[0], k[4], k[2], k[5]
        if not (math.isfinite(fx) and math.isfinite(fy) and fx > 0 and fy > 0):
            raise DepthRefused("camera_info", f"camera_info K has focal lengths fx = {fx}, fy = {fy}: they must be "
                                              f"finite and > 0 (an uncalibrated camera publishes zeros)")
        if not (math.isfinite(cx) and math.isfinite(cy)):
            raise DepthRefused("camera_info", f"camera_info K has a non-finite principal point ({cx}, {cy})")
        return cls(fx, fy, cx, cy, int(width), int(height))

    def fits(self, width: int, height: int) -> bool:
        """True unless the camera_info names another image size than (width, height)."""
        return (self.width, self.height) in ((0, 0), (int(width), int(height)))

    def back_project(self, u: float, v: float, z: float) -> tuple[float, float, float]:
        return (u - self.cx) * z / self.fx, (v - self.cy) * z / self.fy, z


@dataclass
class DepthImage:
    """A depth frame: its stamp, optical frame id and a 2-D view of its raw values (not converted)."""

    stamp_ns: int
    frame_id: str
    values: np.ndarray  # (height, width) uint16 millimetres or float32 metres, any byte order
    scale: float  # metres per unit

    @property
    def shape(self) -> tuple[int, int]:
        return self.values.shape[0], self.values.shape[1]

    def metres(self, rows: slice = slice(None), cols: slice = slice(None)) -> np.ndarray:
        """float32 metres of a region, NaN where there is no reading (0, NaN, inf, negative)."""
        raw = self.values[rows, cols]
        m = raw.astype(np.float32) * np.float32(self.scale)
        m[~(m > 0) | ~np.isfinite(m)] = np.nan
        return m


def depth_view(data, encoding: str, width: int, height: int, step: int, is_bigendian: bool = False,
               max_pixels: int | None = None, max_bytes: int | None = None) -> tuple[np.ndarray, float]:
    """(2-D view of the raw values, metres per unit) of a depth image's bytes, checked first: the encoding
    (`DepthRefused` kind depth_encoding), the layout and the size limits (kind depth_invalid). No copy."""
    enc = str(encoding)
    if enc not in ENCODINGS:
        raise DepthRefused("depth_encoding", f"depth image encoding {enc[:32]!r} is not supported: expected 16UC1 "
                                             f"(millimetres) or 32FC1 (metres), REP-118")
    dtype, scale = ENCODINGS[enc]
    width, height, step = int(width), int(height), int(step)
    row = width * dtype.itemsize
    if width <= 0 or height <= 0:
        raise DepthRefused("depth_invalid", f"depth image of {width}x{height} pixels is empty")
    if max_pixels is not None and width * height > max_pixels:
        raise DepthRefused("depth_invalid", f"depth image of {width}x{height} pixels is over the limit of "
                                            f"{max_pixels} (parameter max_image_pixels)")
    if step < row or step > row + MAX_ROW_PADDING or step % dtype.itemsize:
        raise DepthRefused("depth_invalid", f"depth image step {step} does not fit rows of {width} x "
                                            f"{dtype.itemsize} bytes")
    if max_bytes is not None and step * height > max_bytes:
        raise DepthRefused("depth_invalid", f"depth image of {step * height} bytes is over the limit of {max_bytes} "
                                            f"(parameter max_image_bytes)")
    buf = memoryview(data).cast("B") if not isinstance(data, np.ndarray) else data.reshape(-1).view(np.uint8)
    if len(buf) < step * height:
        raise DepthRefused("depth_invalid", f"depth image data has {len(buf)} bytes, less than step x height = "
                                            f"{step * height}")
    typed = dtype.newbyteorder(">" if is_bigendian else "<")
    flat = np.frombuffer(buf, dtype=np.uint8, count=step * height).reshape(height, step)
    return flat[:, :row].view(typed), scale


def inner_region(box, inner: float, shape) -> tuple[slice, slice, int]:
    """(rows, cols, pixels) of the central `inner` fraction of a (x, y, w, h) box, clipped to an image of `shape`
    ((height, width)); at least one pixel before clipping. pixels = 0 when it lies off the image."""
    x, y, w, h = (float(v) for v in box)
    height, width = int(shape[0]), int(shape[1])
    if not all(math.isfinite(v) for v in (x, y, w, h)) or w <= 0 or h <= 0:
        return slice(0, 0), slice(0, 0), 0
    cx, cy, iw, ih = x + w / 2.0, y + h / 2.0, w * inner, h * inner
    c0, c1 = math.floor(cx - iw / 2.0), math.ceil(cx + iw / 2.0)
    r0, r1 = math.floor(cy - ih / 2.0), math.ceil(cy + ih / 2.0)
    c1, r1 = max(c1, c0 + 1), max(r1, r0 + 1)
    c0, c1 = max(c0, 0), min(c1, width)
    r0, r1 = max(r0, 0), min(r1, height)
    if c1 <= c0 or r1 <= r0:
        return slice(0, 0), slice(0, 0), 0
    return slice(r0, r1), slice(c0, c1), (r1 - r0) * (c1 - c0)


def robust_depth(depth: DepthImage, box, settings: Settings = Settings()) -> float | None:
    """The box's distance in metres (see the module docstring), or None without enough valid readings."""
    rows, cols, pixels = inner_region(box, settings.inner, depth.shape)
    if pixels == 0:
        return None
    m = depth.metres(rows, cols)
    valid = m[(m >= settings.min_m) & (m <= settings.max_m)]  # NaN compares False: holes drop out here
    if valid.size == 0 or valid.size < settings.min_valid_fraction * pixels:
        return None
    return float(np.percentile(valid, settings.percentile))


@dataclass(frozen=True)
class Target3D:
    """One target in the optical frame: centre (x, y, z) and size (x, y, z) in metres."""

    target_id: str
    centre: tuple[float, float, float]
    size: tuple[float, float, float]

    @property
    def distance(self) -> float:
        """Along the optical axis (the depth image's value), metres."""
        return self.centre[2]


def locate(target_id: str, box, z: float, intrinsics: Intrinsics) -> Target3D:
    """The box back-projected at depth z: centre from its centre pixel, size from its width / height (module
    docstring: size z = the smaller of size x and size y)."""
    x, y, w, h = (float(v) for v in box)
    centre = intrinsics.back_project(x + w / 2.0, y + h / 2.0, z)
    sx, sy = w * z / intrinsics.fx, h * z / intrinsics.fy
    return Target3D(target_id, centre, (sx, sy, min(sx, sy)))


def measure(target_id: str, box, depth: DepthImage | None, intrinsics: Intrinsics | None,
            settings: Settings = Settings()) -> tuple[Target3D | None, int]:
    """(Target3D or None, DEPTH_* status) of one tracked (not lost) box on a colour frame matched to `depth`."""
    if depth is None:
        return None, DEPTH_NO_IMAGE
    if intrinsics is None or not intrinsics.fits(depth.shape[1], depth.shape[0]):
        return None, DEPTH_NO_CAMERA_INFO
    z = robust_depth(depth, box, settings)
    if z is None:
        return None, DEPTH_NO_READINGS
    return locate(target_id, box, z, intrinsics), DEPTH_OK


def check_same_size(depth_shape, colour_shape) -> None:
    """Refused (kind depth_size) unless the depth image has the colour image's (height, width)."""
    dh, dw = (int(v) for v in depth_shape[:2])
    ch, cw = (int(v) for v in colour_shape[:2])
    if (dh, dw) != (ch, cw):
        raise DepthRefused("depth_size", f"depth image of {dw}x{dh} pixels does not match the colour image's {cw}x{ch}:"
                                         f" it must be registered to the colour image (e.g. aligned_depth_to_color)")


def check_stamp_near(stamp_ns: int, colour_stamps, far_ns: int = FAR_NS, now_ns: int | None = None) -> None:
    """Refused (kind depth_stamp) when colour frames are known and the depth stamp is more than far_ns from all of
    them (`colour_stamps`: sorted ns) and from `now_ns` (the receiver's clock, when given). Without colour frames
    nothing can be said: accepted."""
    colour_stamps = list(colour_stamps)
    if not colour_stamps or (now_ns is not None and abs(stamp_ns - now_ns) <= far_ns):
        return
    i = bisect.bisect_left(colour_stamps, stamp_ns)
    near = [colour_stamps[j] for j in (i - 1, i) if 0 <= j < len(colour_stamps)]
    gap = min(abs(stamp_ns - s) for s in near)
    if gap > far_ns:
        raise DepthRefused("depth_stamp", f"depth image stamp is {gap / 1e9:.3f} s from every colour frame received "
                                          f"(more than {far_ns / 1e9:g} s) and from the clock: another clock?")


class DepthBuffer:
    """The last `max_frames` depth frames by stamp (oldest first); the nearest to a colour stamp within a tolerance.
    Not thread-safe (the node uses it under its lock)."""

    def __init__(self, max_frames: int = 10):
        self.max_frames = max(1, int(max_frames))
        self._stamps: list[int] = []
        self._frames: list[DepthImage] = []

    def __len__(self) -> int:
        return len(self._stamps)

    @property
    def newest_ns(self) -> int | None:
        return self._stamps[-1] if self._stamps else None

    def clear(self) -> None:
        self._stamps.clear()
        self._frames.clear()

    def add(self, depth: DepthImage) -> None:
        """Keep a frame (one of the same stamp is replaced); the oldest go beyond max_frames."""
        i = bisect.bisect_left(self._stamps, depth.stamp_ns)
        if i < len(self._stamps) and self._stamps[i] == depth.stamp_ns:
            self._frames[i] = depth
        else:
            self._stamps.insert(i, depth.stamp_ns)
            self._frames.insert(i, depth)
        while len(self._stamps) > self.max_frames:
            del self._stamps[0], self._frames[0]

    def nearest(self, stamp_ns: int, tolerance_ns: int) -> DepthImage | None:
        """The frame of that stamp, else the nearest within tolerance_ns (the older one on a tie), else None."""
        i = bisect.bisect_left(self._stamps, stamp_ns)
        best, gap = None, None
        for j in (i - 1, i):
            if 0 <= j < len(self._stamps):
                d = abs(self._stamps[j] - stamp_ns)
                if d <= tolerance_ns and (gap is None or d < gap):
                    best, gap = self._frames[j], d
        return best
