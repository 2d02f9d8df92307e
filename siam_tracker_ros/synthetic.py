"""The built-in demo sequence: real photographs shipped with scikit-image, composited into a moving scene.

The research sequences in ``../shared/data`` cannot be shipped with this package, so the demo (and any test that
needs a sequence with exact ground truth) renders one from scikit-image's sample photographs:

* background: the launch-pad photograph (``skimage.data.rocket()``: dusk sky, rocket, lattice towers, lights), seen
  through a camera that pans and zooms smoothly;
* object: the cat's head from ``skimage.data.chelsea()`` with a soft elliptical matte; it moves on a smooth path,
  grows and shrinks (about 0.8x to 1.4x), rotates a little (about +-10 degrees) and for a few frames leaves the left
  edge of the image by more than half its width;
* occluder: a tall patch of ``skimage.data.astronaut()`` that moves across in the foreground and covers up to about
  half of the object for a stretch;
* a moving light (global gain and a travelling brightness gradient), and mild sensor noise.

Ground truth is exact: the tight box ``(x, y, w, h)`` (top-left corner, 0-based pixels) of the object's rendered
matte (alpha >= 0.5) inside the image. The occluder does not shrink the box (the object is still there), the image
border does (the box is the visible part of the object, clipped to the frame); where none of the object is inside the
image the box is NaN. Everything is deterministic for a given ``seed``; the seed changes the camera path, small
offsets of the object's path and the noise, not the story (occlusion and the exit happen at the same times).

``make_sequence()`` renders in memory (about 150 frames of 640x480 in well under a second);
``write_sequence(folder)`` writes the layout of ``../shared/data`` (``00001.jpg``... and ``groundtruth.txt``).
This module imports no ROS.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import cv2
import numpy as np

from .data.sequences import format_box_lines

DEFAULT_FRAMES = 150
DEFAULT_SIZE = (640, 480)  # (width, height)
DEFAULT_RATE_HZ = 30.0

# Object keyframes over normalised time t in [0, 1]: (t, x / W, y / H, scale, angle in degrees). The object's centre
# follows a smooth (Catmull-Rom) curve through them. Around t = 0.36..0.50 the occluder crosses the object; around
# t = 0.74..0.80 the object's centre is close to the left edge (more than half of it outside the image).
_KEYFRAMES = np.array([
    # t     x      y     scale  angle
    [0.00, 0.30, 0.50, 1.00, 0.0],
    [0.18, 0.48, 0.36, 1.15, 6.0],
    [0.40, 0.62, 0.52, 1.38, -3.0],
    [0.58, 0.42, 0.62, 1.20, -10.0],
    [0.70, 0.12, 0.52, 1.00, -4.0],
    [0.77, 0.00, 0.46, 0.92, 2.0],
    [0.88, 0.24, 0.40, 0.85, 9.0],
    [1.00, 0.46, 0.50, 1.00, 3.0],
])
_OBJECT_BASE_WIDTH = 120  # pixels at scale 1 in a 640-pixel-wide frame
# Occluder: horizontal centre x / W from t0 to t1 (linear), vertical centre follows the object at that time.
# Camera: pan amplitude as a fraction of the room the enlarged background leaves, and the zoom range (1 .. 1 + zoom).
_CAMERA_PAN = 0.6
_CAMERA_ZOOM = 0.18
_OCCLUDER_T = (0.24, 0.70)
_OCCLUDER_X = (1.06, -0.06)


def _rgb_to_bgr(img: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(img[:, :, ::-1])


def _photos() -> dict[str, np.ndarray]:
    """The three photographs (BGR uint8). scikit-image ships them inside the wheel: no download."""
    try:
        from skimage import data
    except ImportError as err:  # pragma: no cover - scikit-image is a dependency of the demo
        raise ImportError("the built-in sequence needs scikit-image (pip install scikit-image)") from err
    return {
        "background": _rgb_to_bgr(data.rocket()),
        "object": _rgb_to_bgr(data.chelsea()),
        "occluder": _rgb_to_bgr(data.astronaut()),
    }


def _object_sprite(cat: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The cat's head (ears to chin) with a soft elliptical matte, `width` pixels wide. Returns (BGR float32,
    alpha float32 in [0, 1]) of the same size."""
    head = cat[8:292, 40:400]  # 360 x 284: both ears, the eyes, the nose and the chin
    h0, w0 = head.shape[:2]
    height = int(round(width * h0 / w0))
    sprite = cv2.resize(head, (width, height), interpolation=cv2.INTER_AREA).astype(np.float32)
    # Pad so rotation never cuts the matte; the matte is an ellipse inside the head crop, feathered by ~3 px.
    pad = int(0.25 * max(width, height))
    sprite = cv2.copyMakeBorder(sprite, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    alpha = np.zeros(sprite.shape[:2], np.float32)
    cv2.ellipse(alpha, (pad + width // 2, pad + height // 2), (int(width * 0.47), int(height * 0.47)), 0, 0, 360,
                1.0, -1, lineType=cv2.LINE_AA)
    alpha = cv2.GaussianBlur(alpha, (0, 0), 1.5)
    return sprite, alpha


def _occluder_sprite(astronaut: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """A tall patch of the astronaut photograph (suit and flag) with rounded corners."""
    patch = astronaut[150:512, 300:470]
    patch = cv2.resize(patch, (width, height), interpolation=cv2.INTER_AREA).astype(np.float32)
    alpha = np.zeros((height, width), np.float32)
    r = max(2, width // 6)
    cv2.rectangle(alpha, (r, 0), (width - 1 - r, height - 1), 1.0, -1)
    cv2.rectangle(alpha, (0, r), (width - 1, height - 1 - r), 1.0, -1)
    for cx, cy in ((r, r), (width - 1 - r, r), (r, height - 1 - r), (width - 1 - r, height - 1 - r)):
        cv2.circle(alpha, (cx, cy), r, 1.0, -1, lineType=cv2.LINE_AA)
    return patch, cv2.GaussianBlur(alpha, (0, 0), 1.0)


def _catmull_rom(keys: np.ndarray, t: float) -> np.ndarray:
    """Interpolate the keyframe columns 1.. at time t (keys[:, 0] increasing, clamped ends)."""
    times = keys[:, 0]
    t = float(np.clip(t, times[0], times[-1]))
    i = int(np.clip(np.searchsorted(times, t, side="right") - 1, 0, len(times) - 2))
    p0, p1, p2, p3 = (keys[max(i - 1, 0), 1:], keys[i, 1:], keys[i + 1, 1:], keys[min(i + 2, len(keys) - 1), 1:])
    u = (t - times[i]) / (times[i + 1] - times[i])
    u2, u3 = u * u, u * u * u
    return 0.5 * ((2 * p1) + (-p0 + p2) * u + (2 * p0 - 5 * p1 + 4 * p2 - p3) * u2 + (-p0 + 3 * p1 - 3 * p2 + p3) * u3)


def _composite(frame: np.ndarray, sprite: np.ndarray, alpha: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Warp sprite+alpha with the 2x3 matrix into frame (float32, in place); return the warped alpha (frame-sized)."""
    h, w = frame.shape[:2]
    sh, sw = alpha.shape
    corners = np.array([[0, 0, 1], [sw, 0, 1], [0, sh, 1], [sw, sh, 1]], dtype=np.float64) @ matrix.T
    x0, y0 = (max(0, int(np.floor(corners[:, i].min())) - 1) for i in (0, 1))
    x1 = min(w, int(np.ceil(corners[:, 0].max())) + 2)
    y1 = min(h, int(np.ceil(corners[:, 1].max())) + 2)
    full = np.zeros((h, w), np.float32)
    if x1 <= x0 or y1 <= y0:
        return full
    m = matrix.copy()
    m[:, 2] -= (x0, y0)  # warp only the part of the frame the sprite can reach
    size = (x1 - x0, y1 - y0)
    a = cv2.warpAffine(alpha, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    s = cv2.warpAffine(sprite, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    aa = a[:, :, None]
    roi = frame[y0:y1, x0:x1]
    roi += (s - roi) * aa
    full[y0:y1, x0:x1] = a
    return full


def _tight_box(alpha: np.ndarray) -> np.ndarray:
    rows = np.nonzero((alpha >= 0.5).any(axis=1))[0]
    cols = np.nonzero((alpha >= 0.5).any(axis=0))[0]
    if len(rows) == 0:
        return np.full(4, np.nan)
    return np.array([cols[0], rows[0], cols[-1] + 1 - cols[0], rows[-1] + 1 - rows[0]], dtype=np.float64)


def _jitter(t: float, amp, phase) -> np.ndarray:
    """Small smooth deviation of the object's path at time t (hand-held look): two sinusoids per axis, pixels."""
    jx = amp[0] * (math.sin(2 * np.pi * 2.3 * t + phase[0, 0]) + 0.5 * math.sin(2 * np.pi * 5.1 * t + phase[0, 1]))
    jy = amp[1] * (math.sin(2 * np.pi * 1.7 * t + phase[1, 0]) + 0.5 * math.sin(2 * np.pi * 4.3 * t + phase[1, 1]))
    return np.array([jx, jy])


def _occlude(frame, t, centre, a_obj, occ_sprite, occ_alpha, width, unit) -> tuple[float, np.ndarray]:
    """Composite the occluder while t is in its time window; the fraction of the object's matte it covers and the
    occluder's own tight box inside the image (NaN when it is not in the frame)."""
    t0, t1 = _OCCLUDER_T
    if not t0 <= t <= t1:
        return 0.0, np.full(4, np.nan)
    occ_h, occ_w = occ_alpha.shape[:2]
    u = (t - t0) / (t1 - t0)
    ox = (_OCCLUDER_X[0] + (_OCCLUDER_X[1] - _OCCLUDER_X[0]) * u) * width
    oy = centre[1] + 10 * unit
    mo = np.array([[1.0, 0.0, ox - occ_w / 2.0], [0.0, 1.0, oy - occ_h / 2.0]])
    a_occ = _composite(frame, occ_sprite, occ_alpha, mo)
    covered = ((a_obj >= 0.5) & (a_occ >= 0.5)).sum()
    return float(covered) / max(float((a_obj >= 0.5).sum()), 1.0), _tight_box(a_occ)


def _light(frame, t, light_phase, xs, ys):
    """A global gain (0.75..1.2) and a brightness gradient travelling across the image."""
    gain = 0.975 + 0.225 * math.sin(2 * np.pi * 0.8 * t + light_phase)
    gx, gy = math.cos(2 * np.pi * 0.5 * t), math.sin(2 * np.pi * 0.5 * t)
    light = (gain * (1.0 + 0.18 * (gx * xs + gy * ys))).astype(np.float32)
    return cv2.multiply(frame, cv2.merge([light, light, light]))


def make_sequence(n_frames: int = DEFAULT_FRAMES, size: tuple[int, int] = DEFAULT_SIZE, seed: int = 0,
                  return_info: bool = False):
    """Render the built-in sequence.

    Returns ``(frames, boxes)``: a list of ``n_frames`` BGR uint8 images of ``size = (width, height)`` and an
    ``(n_frames, 4)`` float array of ground-truth boxes ``(x, y, w, h)`` (NaN where the object is outside the image).
    With ``return_info=True`` a third value is a dict of per-frame arrays: ``occlusion`` (fraction of the object's
    matte covered by the occluder), ``in_frame`` (fraction of the object's matte inside the image), ``scale`` and
    ``angle`` (degrees) of the object, ``center`` (N, 2) of the object in image pixels, ``occluder_box`` (N, 4) the
    occluder's box in the image (NaN while it is not in view).
    """
    if n_frames < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")
    width, height = int(size[0]), int(size[1])
    if width < 64 or height < 64:
        raise ValueError(f"size must be at least 64x64, got {width}x{height}")
    rng = np.random.default_rng(seed)
    photos = _photos()

    # Background at a resolution that leaves room for panning and zooming (viewport at most 1/1.45 of it).
    bg = photos["background"]
    bg_scale = 1.45 * max(width / bg.shape[1], height / bg.shape[0])
    bg = cv2.resize(bg, None, fx=bg_scale, fy=bg_scale, interpolation=cv2.INTER_CUBIC)
    bh, bw = bg.shape[:2]
    # Camera: centre of the viewport in background pixels, zoom >= 1 (1 = viewport of width x height pixels).
    pan_x, pan_y = 0.5 * (bw - width) * _CAMERA_PAN, 0.5 * (bh - height) * _CAMERA_PAN
    cam_phase = rng.uniform(0, 2 * np.pi, size=4)
    cam_freq = np.array([0.9, 1.3, 0.7, 1.1]) * rng.uniform(0.9, 1.1, size=4)

    unit = width / 640.0  # object and occluder sizes scale with the frame width
    obj_sprite, obj_alpha = _object_sprite(photos["object"], max(16, int(round(_OBJECT_BASE_WIDTH * unit))))
    obj_centre = np.array([obj_alpha.shape[1] / 2.0, obj_alpha.shape[0] / 2.0])
    occ_w, occ_h = max(8, int(round(62 * unit))), max(16, int(round(190 * unit)))
    occ_sprite, occ_alpha = _occluder_sprite(photos["occluder"], occ_w, occ_h)
    obj_area = float((obj_alpha >= 0.5).sum())

    # Small smooth per-seed deviations of the object's path (hand-held look): sums of two sinusoids, a few pixels.
    jitter_phase = rng.uniform(0, 2 * np.pi, size=(2, 2))
    jitter_amp = rng.uniform(2.0, 5.0, size=2) * unit
    light_phase = rng.uniform(0, 2 * np.pi)
    noise_bank = [rng.standard_normal((height, width, 3), dtype=np.float32) * 2.0 + 0.5 for _ in range(3)]
    xs = np.linspace(-1.0, 1.0, width, dtype=np.float32)[None, :]
    ys = np.linspace(-1.0, 1.0, height, dtype=np.float32)[:, None]

    frames, boxes = [], np.full((n_frames, 4), np.nan)
    info = {k: np.zeros(n_frames) for k in ("occlusion", "in_frame", "scale", "angle")}
    info["center"] = np.zeros((n_frames, 2))
    info["occluder_box"] = np.full((n_frames, 4), np.nan)
    for i in range(n_frames):
        t = i / max(n_frames - 1, 1)
        # 1. background through the moving camera
        cx = bw / 2.0 + pan_x * math.sin(2 * np.pi * cam_freq[0] * t + cam_phase[0])
        cy = bh / 2.0 + pan_y * math.sin(2 * np.pi * cam_freq[1] * t + cam_phase[1])
        zoom = 1.0 + _CAMERA_ZOOM * (0.5 + 0.5 * math.sin(2 * np.pi * cam_freq[2] * t + cam_phase[2]))
        cam = np.array([[zoom, 0.0, width / 2.0 - zoom * cx], [0.0, zoom, height / 2.0 - zoom * cy]])
        frame = cv2.warpAffine(bg, cam, (width, height), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REFLECT).astype(np.float32)

        # 2. the object: similarity transform of the sprite about its centre
        kx, ky, scale, angle = _catmull_rom(_KEYFRAMES, t)
        centre = np.array([kx * width, ky * height]) + _jitter(t, jitter_amp, jitter_phase)
        m = cv2.getRotationMatrix2D((float(obj_centre[0]), float(obj_centre[1])), float(angle), float(scale))
        m[:, 2] += centre - obj_centre
        a_obj = _composite(frame, obj_sprite, obj_alpha, m)
        boxes[i] = _tight_box(a_obj)
        info["in_frame"][i] = min(1.0, float((a_obj >= 0.5).sum()) / (obj_area * scale * scale))
        info["scale"][i], info["angle"][i] = scale, angle
        info["center"][i] = centre

        # 3. the occluder in front, crossing while it is inside its time window
        info["occlusion"][i], info["occluder_box"][i] = _occlude(frame, t, centre, a_obj, occ_sprite, occ_alpha,
                                                                 width, unit)
        # 4. light: a global gain (0.75..1.2) and a brightness gradient travelling across the image
        frame = _light(frame, t, light_phase, xs, ys)
        # 5. sensor noise (sigma 2 grey levels; a few seeded noise images, shifted per frame) and rounding to uint8
        dy, dx = int(rng.integers(0, height)), int(rng.integers(0, width))
        noise = np.roll(noise_bank[i % len(noise_bank)], (dy, dx), axis=(0, 1))
        frames.append(cv2.add(frame, noise, dtype=cv2.CV_8U))

    if return_info:
        return frames, boxes, info
    return frames, boxes


def write_sequence(folder, n_frames: int = DEFAULT_FRAMES, size: tuple[int, int] = DEFAULT_SIZE, seed: int = 0,
                   jpeg_quality: int = 92) -> Path:
    """Write the built-in sequence in the ``../shared/data`` layout: ``folder/00001.jpg``... and
    ``folder/groundtruth.txt``. Returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    frames, boxes = make_sequence(n_frames=n_frames, size=size, seed=seed)
    for i, frame in enumerate(frames, start=1):
        if not cv2.imwrite(str(folder / f"{i:05d}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)]):
            raise OSError(f"could not write {folder / f'{i:05d}.jpg'}")
    (folder / "groundtruth.txt").write_text(format_box_lines(boxes))
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m siam_tracker_ros.synthetic",
                                     description="Write the built-in synthetic sequence (frames + groundtruth.txt).")
    parser.add_argument("folder")
    parser.add_argument("--frames", type=int, default=DEFAULT_FRAMES)
    parser.add_argument("--width", type=int, default=DEFAULT_SIZE[0])
    parser.add_argument("--height", type=int, default=DEFAULT_SIZE[1])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    out = write_sequence(args.folder, n_frames=args.frames, size=(args.width, args.height), seed=args.seed)
    print(f"wrote {args.frames} frames and groundtruth.txt to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
