"""The depth module (siam_tracker_ros/depth.py, no ROS): depth image layout and encodings, the robust depth of a box,
back-projection and metric size, stamp matching in the bounded buffer, and the refusals."""
import math

import numpy as np
import pytest

from depth_scene import encode, plane_depth, render_plane, spoil
from siam_tracker_ros import depth as D

K = D.Intrinsics(fx=520.0, fy=530.0, cx=301.5, cy=251.0, width=640, height=480)  # not centred, not square


def _image(z, encoding="16UC1", stamp_ns=0):
    raw = encode(z, encoding)
    values, scale = D.depth_view(raw.tobytes(), encoding, raw.shape[1], raw.shape[0], raw.strides[0])
    return D.DepthImage(stamp_ns, "camera_color_optical_frame", values, scale)


# ------------------------------------------------------------------------------------------ layout and encodings
@pytest.mark.parametrize("encoding", ["16UC1", "32FC1"])
def test_view_reads_both_encodings_with_row_padding_and_byte_order(encoding):
    z = np.array([[1.25, 0.0, 2.5], [np.nan, 3.0, 0.5]])
    raw = encode(z, encoding)
    for bigendian in (False, True):
        padded = np.zeros((2, raw.strides[0] + 8), np.uint8)  # each row padded by 8 bytes
        padded[:, :raw.strides[0]] = raw.astype(raw.dtype.newbyteorder(">" if bigendian else "<")).view(np.uint8)
        values, scale = D.depth_view(padded.tobytes(), encoding, 3, 2, padded.shape[1], bigendian)
        img = D.DepthImage(0, "f", values, scale)
        m = img.metres()
        assert img.shape == (2, 3) and m.dtype == np.float32
        np.testing.assert_allclose(m[[0, 0, 1, 1], [0, 2, 1, 2]], [1.25, 2.5, 3.0, 0.5], rtol=1e-6)
        assert np.isnan(m[0, 1]) and np.isnan(m[1, 0])  # 0 and NaN: no reading


def test_float_depth_without_reading_is_nan():
    z = np.array([[np.inf, -np.inf, -1.0, 0.0, 2.0]], np.float32)
    values, scale = D.depth_view(z.tobytes(), "32FC1", 5, 1, 20)
    m = D.DepthImage(0, "f", values, scale).metres()
    assert np.isnan(m[0, :4]).all() and m[0, 4] == 2.0


@pytest.mark.parametrize("encoding", ["rgb8", "mono16", "16SC1", "32FC3", "", "x" * 1000])
def test_unsupported_encoding_is_refused(encoding):
    with pytest.raises(D.DepthRefused) as err:
        D.depth_view(bytes(64), encoding, 4, 4, 8)
    assert err.value.kind == "depth_encoding" and "16UC1" in str(err.value)
    assert len(str(err.value)) < 200  # a hostile encoding name is not repeated whole


@pytest.mark.parametrize("width,height,step,nbytes,what", [
    (4, 4, 6, 64, "step"),          # step shorter than a row of 4 x 2 bytes
    (4, 4, 8 + 5000, 10 ** 5, "step"),  # more padding than any driver uses
    (4, 4, 9, 64, "step"),          # not a whole number of values
    (4, 4, 8, 31, "bytes"),         # data shorter than step x height
    (0, 4, 8, 64, "empty"),
    (100000, 100000, 200000, 64, "limit"),  # declared huge, with 64 bytes: refused before anything is allocated
])
def test_malformed_layout_is_refused(width, height, step, nbytes, what):
    with pytest.raises(D.DepthRefused) as err:
        D.depth_view(bytes(nbytes), "16UC1", width, height, step, max_pixels=10 ** 8, max_bytes=2 ** 28)
    assert err.value.kind == "depth_invalid" and what in str(err.value)


# ------------------------------------------------------------------------------------------ robust depth
@pytest.mark.parametrize("encoding", ["16UC1", "32FC1"])
def test_plane_with_holes_and_out_of_range_readings(encoding):
    rng = np.random.default_rng(1)
    z = spoil(render_plane((480, 640), K, offset=2.37), rng, holes=0.3, too_far=0.1, too_near=0.1)
    img = _image(z, encoding)
    assert D.robust_depth(img, (100, 80, 60, 40)) == pytest.approx(2.37, abs=0.0011)  # 1 mm steps for 16UC1


def test_tilted_plane_gives_the_depth_at_the_box_centre():
    """The median of a symmetric region of a tilted plane is the plane's depth at the region's centre."""
    normal = np.array([0.35, -0.2, 1.0])
    normal /= np.linalg.norm(normal)
    z = spoil(render_plane((480, 640), K, normal, 2.5), np.random.default_rng(2), holes=0.2)
    img = _image(z, "32FC1")
    for box in [(40.0, 60.0, 80.0, 120.0), (400.5, 300.25, 150.0, 90.0), (290.0, 200.0, 30.0, 30.0)]:
        u, v = box[0] + box[2] / 2, box[1] + box[3] / 2
        truth = float(plane_depth(u - 0.5, v - 0.5, K, normal, 2.5))  # the region's centre in K's pixel grid
        assert D.robust_depth(img, box) == pytest.approx(truth, rel=0.002), box


def test_background_inside_the_box_median_and_low_percentile():
    """A 1.5 m object over a 4 m wall: background inside the inner part moves the median only past half of it."""
    z = np.full((200, 200), 4.0)
    box = (50.0, 50.0, 100.0, 100.0)  # inner part: pixels 75..124
    z[75:125, 75:110] = 1.5  # the object covers 70 % of the inner part: the median reads the object
    assert D.robust_depth(_image(z), box) == pytest.approx(1.5)
    z[75:125, 75:125] = 4.0
    z[75:125, 75:90] = 1.5  # 30 %: the median reads the wall, the 20th percentile the object
    assert D.robust_depth(_image(z), box) == pytest.approx(4.0)
    assert D.robust_depth(_image(z), box, D.Settings(percentile=20.0)) == pytest.approx(1.5)
    # Only the inner part is read: the object just outside it does not count at all.
    z[:] = 4.0
    z[50:150, 50:74] = 1.5
    assert D.robust_depth(_image(z), box, D.Settings(percentile=0.0)) == pytest.approx(4.0)
    assert D.robust_depth(_image(z), box, D.Settings(percentile=0.0, inner=1.0)) == pytest.approx(1.5)


def test_too_few_readings_or_box_off_image_gives_no_depth():
    z = np.full((100, 100), np.nan)
    box = (20.0, 20.0, 40.0, 40.0)  # inner part 30..49: 400 pixels
    z[30:33, 30:40] = 3.0  # 30 valid of 400 (7.5 %)
    assert D.robust_depth(_image(z), box) is None
    assert D.robust_depth(_image(z), box, D.Settings(min_valid_fraction=0.05)) == pytest.approx(3.0)
    z[30:50, 30:50] = 25.0  # all beyond max_m
    assert D.robust_depth(_image(z), box) is None
    assert D.robust_depth(_image(z), box, D.Settings(max_m=30.0)) == pytest.approx(25.0)
    img = _image(np.full((100, 100), 2.0))
    assert D.robust_depth(img, (150.0, 20.0, 40.0, 40.0)) is None  # off the image
    assert D.robust_depth(img, (-30.0, -30.0, 40.0, 40.0)) is None  # only its border inside: inner part is off
    assert D.robust_depth(img, (-10.0, 75.0, 40.0, 40.0)) == pytest.approx(2.0)  # inner part partly inside
    assert D.robust_depth(img, (10.0, 10.0, 0.3, 0.3)) == pytest.approx(2.0)  # tiny box: still its centre pixel
    assert D.robust_depth(img, (np.nan, 10.0, 5.0, 5.0)) is None


# ------------------------------------------------------------------------------------------ geometry
def test_back_projection_and_metric_size_against_a_known_object():
    """A 0.6 x 0.9 m board centred at (0.4, -0.3, 2.5) m: project its corners, then locate its box."""
    cx3, cy3, z3, w3, h3 = 0.4, -0.3, 2.5, 0.6, 0.9
    u0 = K.fx * (cx3 - w3 / 2) / z3 + K.cx
    u1 = K.fx * (cx3 + w3 / 2) / z3 + K.cx
    v0 = K.fy * (cy3 - h3 / 2) / z3 + K.cy
    v1 = K.fy * (cy3 + h3 / 2) / z3 + K.cy
    t = D.locate("board", (u0, v0, u1 - u0, v1 - v0), z3, K)
    np.testing.assert_allclose(t.centre, (cx3, cy3, z3), atol=1e-9)
    np.testing.assert_allclose(t.size, (w3, h3, w3), atol=1e-9)  # size z: the smaller of x and y
    assert t.distance == z3 and t.target_id == "board"


def test_measure_statuses():
    img = _image(np.full((480, 640), 3.0), "32FC1")
    box = (300.0, 200.0, 40.0, 40.0)
    t, status = D.measure("a", box, img, K)
    assert status == D.DEPTH_OK and t.centre[2] == pytest.approx(3.0)
    assert t.centre[0] == pytest.approx((320.0 - K.cx) * 3.0 / K.fx)
    assert D.measure("a", box, None, K) == (None, D.DEPTH_NO_IMAGE)
    assert D.measure("a", box, img, None) == (None, D.DEPTH_NO_CAMERA_INFO)
    other = D.Intrinsics(520.0, 530.0, 301.5, 251.0, 1280, 720)  # calibrated for another size
    assert D.measure("a", box, img, other) == (None, D.DEPTH_NO_CAMERA_INFO)
    assert D.measure("a", box, _image(np.zeros((480, 640))), K) == (None, D.DEPTH_NO_READINGS)
    assert set(D.STATUS_NAMES) == {D.DEPTH_OFF, D.DEPTH_OK, D.DEPTH_NO_IMAGE, D.DEPTH_NO_READINGS,
                                   D.DEPTH_NO_CAMERA_INFO, D.DEPTH_TARGET_LOST}


# ------------------------------------------------------------------------------------------ refusals
@pytest.mark.parametrize("k,what", [
    ([0.0, 0, 320, 0, 0.0, 240, 0, 0, 1], "focal"),   # an uncalibrated driver's all-zero K
    ([525.0, 0, 320, 0, 0.0, 240, 0, 0, 1], "focal"),
    ([-525.0, 0, 320, 0, 525, 240, 0, 0, 1], "focal"),
    ([math.nan, 0, 320, 0, 525, 240, 0, 0, 1], "focal"),
    ([525.0, 0, math.inf, 0, 525, 240, 0, 0, 1], "principal point"),
    ([525.0, 0, 320], "not 9"),
])
def test_camera_info_without_a_usable_focal_length_is_refused(k, what):
    with pytest.raises(D.DepthRefused) as err:
        D.Intrinsics.from_k(k, 640, 480)
    assert err.value.kind == "camera_info" and what in str(err.value)


def test_intrinsics_from_k():
    k = D.Intrinsics.from_k([615.0, 0, 321.0, 0, 616.0, 239.0, 0, 0, 1], 640, 480)
    assert (k.fx, k.fy, k.cx, k.cy) == (615.0, 616.0, 321.0, 239.0)
    assert k.fits(640, 480) and not k.fits(1280, 720) and D.Intrinsics(1, 1, 0, 0).fits(1280, 720)


def test_depth_of_another_size_is_refused():
    D.check_same_size((480, 640), (480, 640, 3))
    with pytest.raises(D.DepthRefused) as err:
        D.check_same_size((240, 320), (480, 640, 3))
    assert err.value.kind == "depth_size" and "320x240" in str(err.value) and "640x480" in str(err.value)


def test_depth_stamp_far_from_every_colour_frame_is_refused():
    colour = [10_000_000_000 + i * 33_000_000 for i in range(30)]
    D.check_stamp_near(colour[5] + 3_000_000, colour)
    D.check_stamp_near(colour[-1] + 900_000_000, colour)  # ahead of the colour stream by less than FAR_NS
    D.check_stamp_near(123, [])  # no colour frames yet: nothing to compare with
    # Ahead of a colour stream that paused for 3 s, but near the clock: a depth frame that beat its colour frame.
    D.check_stamp_near(colour[-1] + 3 * D.FAR_NS, colour, now_ns=colour[-1] + 3 * D.FAR_NS - 5_000_000)
    for stamp in (colour[-1] + D.FAR_NS + 1, colour[0] - 5 * D.FAR_NS, 3600 * 10 ** 9 + colour[0]):
        for now in (None, colour[0] - 3 * D.FAR_NS):  # a clock far from the stamp too
            with pytest.raises(D.DepthRefused) as err:
                D.check_stamp_near(stamp, colour, now_ns=now)
            assert err.value.kind == "depth_stamp"


# ------------------------------------------------------------------------------------------ stamp matching
def _frame(ns):
    return D.DepthImage(ns, "f", np.zeros((1, 1), np.uint16), 0.001)


def test_buffer_matches_exact_or_nearest_within_tolerance():
    buf = D.DepthBuffer(max_frames=5)
    for ns in (100, 200, 300, 400):
        buf.add(_frame(ns))
    assert buf.nearest(300, 0).stamp_ns == 300  # exact
    assert buf.nearest(310, 0) is None  # tolerance 0: exact only
    assert buf.nearest(310, 20).stamp_ns == 300
    assert buf.nearest(285, 20).stamp_ns == 300
    assert buf.nearest(250, 50).stamp_ns == 200  # a tie: the older
    assert buf.nearest(250, 49) is None
    assert buf.nearest(480, 100).stamp_ns == 400 and buf.nearest(50, 50).stamp_ns == 100
    assert buf.newest_ns == 400


def test_buffer_is_bounded_and_sorted_by_stamp():
    buf = D.DepthBuffer(max_frames=3)
    for ns in (500, 100, 300, 200, 400):  # out of order
        buf.add(_frame(ns))
    assert len(buf) == 3 and buf.newest_ns == 500
    assert buf.nearest(200, 0) is None and buf.nearest(300, 0).stamp_ns == 300  # the oldest went first
    replacement = _frame(400)
    buf.add(replacement)
    assert len(buf) == 3 and buf.nearest(400, 0) is replacement
    buf.clear()
    assert len(buf) == 0 and buf.newest_ns is None and buf.nearest(400, 10 ** 9) is None
