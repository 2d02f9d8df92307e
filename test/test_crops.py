"""Crops: a large target's crop is area-filtered (not aliased), a crop at scale >= 0.5 is the plain linear warp; the
training's stretched crops take the same filter per axis; the tracker's faster cropper and tensor layout give the
same values."""
import cv2
import numpy as np
import pytest

from siam_tracker_ros import data
from siam_tracker_ros.tracking.crops import (FramePad, SquareCropper, channel_mean, crop_rect, crop_square,
                                             to_tensor_layout)

DATA = data.data_root()


def _stripes(h=600, w=800):
    """1-pixel stripes and rows of noise: a linear (point-sampling) shrink aliases them, an area filter averages."""
    frame = np.zeros((h, w, 3), np.uint8)
    frame[:, ::2] = 255
    frame[::3] = np.random.default_rng(0).integers(0, 256, (h // 3, w, 3))
    return frame


@pytest.mark.parametrize("factor", [3, 4, 7])  # (at 2 a linear warp between two pixels is their mean)
def test_large_target_crop_equals_an_area_resize_of_its_region(factor):
    frame, out = _stripes(), 64
    region, x0, y0 = factor * out, 100, 50
    # Pixel-centre coordinates: the square [x0, x0 + region) of pixels is centred on x0 + region / 2 - 0.5.
    cx, cy = x0 + region / 2 - 0.5, y0 + region / 2 - 0.5
    reference = cv2.resize(frame[y0:y0 + region, x0:x0 + region], (out, out), interpolation=cv2.INTER_AREA)
    crop = crop_square(frame, cx, cy, region, out, (0, 0, 0))
    assert np.abs(crop.astype(int) - reference).max() <= 1
    # what warpAffine alone gives (its INTER_AREA is linear): far from the area average
    scale = out / region
    m = np.array([[scale, 0, (out - 1) / 2 - scale * cx], [0, scale, (out - 1) / 2 - scale * cy]])
    aliased = cv2.warpAffine(frame, m, (out, out), flags=cv2.INTER_AREA)
    assert np.abs(aliased.astype(int) - reference).mean() > 5


def test_crop_at_half_scale_or_more_is_the_linear_warp():
    frame = _stripes()
    for region, cx, cy in ((127.0, 300.2, 200.7), (254.0, 410.5, 250.0), (60.0, 5.0, 590.0)):
        out = 127
        scale = out / region
        m = np.array([[scale, 0, (out - 1) / 2 - scale * cx], [0, scale, (out - 1) / 2 - scale * cy]])
        expected = cv2.warpAffine(frame, m, (out, out), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                                  borderValue=(1, 2, 3))
        assert np.array_equal(crop_square(frame, cx, cy, region, out, (1, 2, 3)), expected)


def test_large_crop_off_the_image_is_padded():
    frame = _stripes()
    crop = crop_square(frame, -2000.0, -2000.0, 1000.0, 127, (10, 20, 30))
    assert crop.shape == (127, 127, 3) and (crop == (10, 20, 30)).all()
    half = crop_square(frame, 0.0, 300.0, 1000.0, 127, (10, 20, 30))
    assert (half[:, :50] == (10, 20, 30)).all() and not (half[:, 70:] == (10, 20, 30)).all()


@pytest.mark.parametrize("fx,fy", [(3, 1), (2, 5), (4, 4)])
def test_stretched_crop_is_area_filtered_along_each_shrunk_axis(fx, fy):
    frame, out = _stripes(), 64
    side_x, side_y, x0, y0 = fx * out, fy * out, 60, 40
    cx, cy = x0 + side_x / 2 - 0.5, y0 + side_y / 2 - 0.5
    reference = cv2.resize(frame[y0:y0 + side_y, x0:x0 + side_x], (out, out), interpolation=cv2.INTER_AREA)
    crop = crop_rect(frame, cx, cy, side_x, side_y, out, (0, 0, 0))
    assert crop.shape == (out, out, 3)
    assert np.abs(crop.astype(int) - reference).max() <= 1
    if fx == fy:
        assert np.array_equal(crop, crop_square(frame, cx, cy, side_x, out, (0, 0, 0)))


@pytest.mark.parametrize("factor,x0,y0", [(8, -2000, -1500), (13, -700, -2400), (5, 150, -300)])
def test_crop_larger_than_the_frame_equals_an_area_resize_of_the_padded_region(factor, x0, y0):
    """A large target's region can cover the frame many times over: only the blocks on the frame are shrunk, the
    rest is padding, exactly as if the frame had been pasted into a padded canvas of the region's size."""
    frame, out, pad = _stripes(), 64, (10, 20, 30)
    region = factor * out
    canvas = np.empty((region, region, 3), np.uint8)
    canvas[:] = pad
    ax, ay = max(0, -x0), max(0, -y0)
    bx, by = min(region, frame.shape[1] - x0), min(region, frame.shape[0] - y0)
    canvas[ay:by, ax:bx] = frame[ay + y0:by + y0, ax + x0:bx + x0]
    reference = cv2.resize(canvas, (out, out), interpolation=cv2.INTER_AREA)
    crop = crop_square(frame, x0 + region / 2 - 0.5, y0 + region / 2 - 0.5, region, out, pad)
    assert np.abs(crop.astype(int) - reference).max() <= 1


class _PadNotExpected(FramePad):
    """A crop that stays inside the frame must not ask for the padding."""

    @property
    def value(self):
        raise AssertionError("the padding was read for a crop inside the frame")


@pytest.mark.skipif(not (DATA / "train").is_dir(), reason=f"real sequences not found at {DATA}/train")
def test_square_cropper_gives_crop_squares_values_on_real_frames():
    cropper = SquareCropper()
    rng = np.random.default_rng(26)
    checked = {"inside": 0, "past the edge": 0, "shrunk": 0}
    for name in ("vot-car1", "davis-bmx-trees", "tir-airplane_tir"):
        frames, _ = data.load_sequence(DATA / "train" / name, 4)
        for frame in frames:  # frames of a new size reallocate the cropper's buffer; stale parts are never read
            height, width = frame.shape[:2]
            pad = channel_mean(frame)
            for _ in range(60):
                out = int(rng.choice([127, 255]))
                region = float(rng.uniform(0.3 * out, 2.6 * out))
                cx, cy = rng.uniform(-0.3, 1.3) * width, rng.uniform(-0.3, 1.3) * height
                reach = (out - 1) / 2 * region / out + 3
                shrunk = out / region < 0.5  # crop_square's area filter, which pads first
                inside = not shrunk and reach <= cx <= width - 1 - reach and reach <= cy <= height - 1 - reach
                crop = cropper.crop(frame, cx, cy, region, out, _PadNotExpected(frame) if inside else FramePad(frame))
                np.testing.assert_array_equal(crop[:, :, :3], crop_square(frame, cx, cy, region, out, pad))
                checked["shrunk" if shrunk else "inside" if inside else "past the edge"] += 1
    assert min(checked.values()) > 10, checked


@pytest.mark.parametrize("channels", [3, 4])
def test_tensor_layout_is_the_crops_planes_in_the_channel_order(channels):
    crops = [np.random.default_rng(k).integers(0, 256, (31, 31, channels), dtype=np.uint8) for k in range(3)]
    bgr = np.stack([c[:, :, :3] for c in crops]).transpose(0, 3, 1, 2).astype(np.float32)
    np.testing.assert_array_equal(to_tensor_layout(crops), bgr)
    np.testing.assert_array_equal(to_tensor_layout(crops, "rgb"), bgr[:, ::-1])
    assert to_tensor_layout(crops[:1]).flags.c_contiguous
