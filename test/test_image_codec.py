"""The built-in sensor_msgs/Image converter: every encoding against OpenCV's own conversions, and clear errors."""
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from siam_tracker_ros.ros import image_codec
from siam_tracker_ros.ros.image_codec import (ENCODINGS, ImageConversionError, bgr_to_array, check_layout,
                                              compressed_to_bgr, imgmsg_to_bgr)

H, W = 37, 50  # odd height, even width (yuv422 needs an even width)


def _bgr():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    img[:5] = (10, 200, 30)  # a flat band, so the chroma-subsampled formats are exact there
    return img


def _msg(arr, encoding, pad=0, bigendian=False):
    """An Image-like message of `arr` rows, each padded with `pad` junk bytes (honouring `step` is tested)."""
    if arr.dtype == np.uint16:
        arr = arr.astype(">u2" if bigendian else "<u2")
    rows = arr.reshape(arr.shape[0], -1).view(np.uint8)
    step = rows.shape[1] + pad
    buf = np.full((arr.shape[0], step), 0xAB, np.uint8)
    buf[:, :rows.shape[1]] = rows
    return SimpleNamespace(height=arr.shape[0], width=arr.shape[1], encoding=encoding, is_bigendian=bigendian,
                           step=step, data=buf.tobytes())


def _expected(bgr, encoding):
    """What the image of `encoding` made from `bgr` looks like as BGR, computed with OpenCV directly."""
    to = {
        "bgr8": lambda: bgr, "8UC3": lambda: bgr,
        "rgb8": lambda: cv2.cvtColor(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), cv2.COLOR_RGB2BGR),
        "bgra8": lambda: bgr, "rgba8": lambda: bgr, "8UC4": lambda: bgr,
        "bgr16": lambda: bgr, "rgb16": lambda: bgr, "bgra16": lambda: bgr, "rgba16": lambda: bgr,
    }
    if encoding in to:
        return to[encoding]()
    if encoding in ("mono8", "8UC1", "mono16", "16UC1"):
        return cv2.cvtColor(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    if encoding in ("yuv422", "uyvy"):
        return cv2.cvtColor(cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_UYVY), cv2.COLOR_YUV2BGR_UYVY)
    if encoding in ("yuv422_yuy2", "yuyv"):
        return cv2.cvtColor(cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_YUY2), cv2.COLOR_YUV2BGR_YUY2)
    raise AssertionError(encoding)


NON_BAYER = [e for e in ENCODINGS if not e.startswith("bayer_")]


def _encode(bgr, encoding):
    """The pixel array a camera driver would send for `bgr` in `encoding`, built here with numpy slicing and OpenCV
    (never with the module's own encoder): channel order, alpha, 16-bit as value * 257, packed YUV 4:2:2."""
    alpha8 = np.full(bgr.shape[:2] + (1,), 255, np.uint8)
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    arrays8 = {
        "bgr8": bgr, "8UC3": bgr, "rgb8": bgr[..., ::-1],
        "bgra8": np.concatenate([bgr, alpha8], axis=2), "8UC4": np.concatenate([bgr, alpha8], axis=2),
        "rgba8": np.concatenate([bgr[..., ::-1], alpha8], axis=2), "mono8": gray, "8UC1": gray,
    }
    if encoding in arrays8:
        return np.ascontiguousarray(arrays8[encoding])
    wide = {"bgr16": "bgr8", "rgb16": "rgb8", "bgra16": "bgra8", "rgba16": "rgba8", "mono16": "mono8",
            "16UC1": "mono8"}
    if encoding in wide:
        return arrays8[wide[encoding]].astype(np.uint16) * 257
    if encoding in ("yuv422", "uyvy"):
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_UYVY)
    if encoding in ("yuv422_yuy2", "yuyv"):
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_YUY2)
    raise AssertionError(encoding)


@pytest.mark.parametrize("encoding", NON_BAYER)
@pytest.mark.parametrize("pad", [0, 6])
def test_decoding_against_independently_built_buffers(encoding, pad):
    bgr = _bgr()
    out = imgmsg_to_bgr(_msg(_encode(bgr, encoding), encoding, pad=pad), use_cv_bridge=False)
    assert out.dtype == np.uint8 and out.shape == (H, W, 3)
    np.testing.assert_array_equal(out, _expected(bgr, encoding))


@pytest.mark.parametrize("encoding", NON_BAYER)
def test_encoder_matches_independently_built_buffers(encoding):
    np.testing.assert_array_equal(bgr_to_array(_bgr(), encoding), _encode(_bgr(), encoding))


def test_known_bytes_decode_to_known_colours():
    """One red pixel and one blue-ish pixel, written byte by byte in each layout."""
    red, blue = (0, 0, 255), (200, 10, 20)  # BGR
    raw = {
        "rgb8": [255, 0, 0, 20, 10, 200], "bgr8": [0, 0, 255, 200, 10, 20],
        "rgba8": [255, 0, 0, 255, 20, 10, 200, 7], "bgra8": [0, 0, 255, 9, 200, 10, 20, 255],
        # 16-bit full range: v * 257 has both bytes v; 0x00ff (255) is 1 after rounding v / 257, 0xff00 is 254
        "rgb16": [255, 255, 0, 0, 0, 0, 20, 20, 10, 10, 200, 200],
        "bgr16": [0xff, 0x00, 0, 0, 0x00, 0xff, 200, 200, 10, 10, 20, 20],
    }
    for encoding, values in raw.items():
        msg = SimpleNamespace(height=1, width=2, encoding=encoding, is_bigendian=False, step=len(values),
                              data=bytes(values))
        out = imgmsg_to_bgr(msg, use_cv_bridge=False)
        first = [1, 0, 254] if encoding == "bgr16" else list(red)
        assert out[0, 0].tolist() == first and out[0, 1].tolist() == list(blue), encoding


@pytest.mark.parametrize("encoding,channels", [("mono16", 1), ("bgr16", 3), ("rgba16", 4)])
def test_sixteen_bit_honours_endianness(encoding, channels):
    shape = (H, W) if channels == 1 else (H, W, channels)
    arr = np.random.default_rng(2).integers(0, 65536, shape, dtype=np.uint16)
    little = imgmsg_to_bgr(_msg(arr, encoding, bigendian=False), use_cv_bridge=False)
    big = imgmsg_to_bgr(_msg(arr, encoding, bigendian=True), use_cv_bridge=False)
    np.testing.assert_array_equal(little, big)
    eight = ((arr.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    np.testing.assert_array_equal(little[..., 0],
                                  eight if channels == 1 else eight[..., 2 if encoding == "rgba16" else 0])
    # Reading big-endian bytes as little-endian swaps high and low bytes: a different image.
    wrong = _msg(arr, encoding, bigendian=True)
    wrong.is_bigendian = False
    assert not np.array_equal(imgmsg_to_bgr(wrong, use_cv_bridge=False), big)


def test_mono16_scales_to_eight_bits():
    arr = np.array([[0, 257, 65535, 1000]], dtype=np.uint16).repeat(2, axis=0)
    out = imgmsg_to_bgr(_msg(arr, "mono16"), use_cv_bridge=False)
    np.testing.assert_array_equal(out[0, :, 0], [0, 1, 255, 4])


@pytest.mark.parametrize("encoding,code", [("bayer_rggb8", cv2.COLOR_BayerBG2BGR),
                                           ("bayer_bggr8", cv2.COLOR_BayerRG2BGR),
                                           ("bayer_gbrg8", cv2.COLOR_BayerGR2BGR),
                                           ("bayer_grbg8", cv2.COLOR_BayerGB2BGR)])
def test_bayer_matches_opencv(encoding, code):
    raw = np.random.default_rng(1).integers(0, 256, (H, W), dtype=np.uint8)
    out = imgmsg_to_bgr(_msg(raw, encoding, pad=3), use_cv_bridge=False)
    np.testing.assert_array_equal(out, cv2.cvtColor(raw, code))


def test_bayer_rggb_red_pixel_is_red():
    raw = np.zeros((8, 8), np.uint8)
    raw[0::2, 0::2] = 255  # R sites of an RGGB mosaic
    out = imgmsg_to_bgr(_msg(raw, "bayer_rggb8"), use_cv_bridge=False)
    b, g, r = out[3:5, 3:5].reshape(-1, 3).mean(axis=0)
    assert r > 200 and g < 60 and b < 60


def test_rgb_channels_are_swapped():
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[..., 0] = 255  # red
    out = imgmsg_to_bgr(_msg(rgb, "rgb8"), use_cv_bridge=False)
    assert (out[..., 2] == 255).all() and (out[..., :2] == 0).all()


def test_rclpy_array_data_and_last_row_without_padding():
    import array

    bgr = _bgr()
    m = _msg(bgr, "bgr8", pad=4)
    m.data = array.array("B", m.data[:-4])  # rclpy hands uint8[] as array.array; last row's padding cut
    np.testing.assert_array_equal(imgmsg_to_bgr(m, use_cv_bridge=False), bgr)


def test_unsupported_encoding_is_clear():
    m = _msg(_bgr(), "bgr8")
    m.encoding = "32FC1"
    with pytest.raises(ImageConversionError, match="unsupported image encoding '32FC1'"):
        imgmsg_to_bgr(m)


def test_step_smaller_than_row_is_clear():
    m = _msg(_bgr(), "bgr8")
    m.step = W * 3 - 1
    with pytest.raises(ImageConversionError, match="step .* smaller than width"):
        imgmsg_to_bgr(m)


def test_truncated_data_is_clear():
    m = _msg(_bgr(), "rgb8")
    m.data = m.data[: len(m.data) // 2]
    with pytest.raises(ImageConversionError, match="truncated"):
        imgmsg_to_bgr(m)


@pytest.mark.parametrize("field,value,match", [("width", 0, "empty"), ("height", 0, "empty")])
def test_empty_image_is_clear(field, value, match):
    m = _msg(_bgr(), "bgr8")
    setattr(m, field, value)
    with pytest.raises(ImageConversionError, match=match):
        check_layout(m)


def test_odd_width_yuv422_is_clear():
    m = SimpleNamespace(height=2, width=3, encoding="yuv422", is_bigendian=False, step=6, data=bytes(12))
    with pytest.raises(ImageConversionError, match="even"):
        imgmsg_to_bgr(m)


def test_compressed_decodes_and_rejects_garbage():
    bgr = _bgr()
    ok, png = cv2.imencode(".png", bgr)
    out = compressed_to_bgr(SimpleNamespace(format="png", data=png.tobytes()))
    np.testing.assert_array_equal(out, bgr)
    with pytest.raises(ImageConversionError, match="cannot decode"):
        compressed_to_bgr(SimpleNamespace(format="jpeg", data=b"not a jpeg at all"))
    with pytest.raises(ImageConversionError, match="no data"):
        compressed_to_bgr(SimpleNamespace(format="jpeg", data=b""))


def test_bgr_to_imgmsg_round_trip():
    pytest.importorskip("sensor_msgs.msg", reason="sensor_msgs (ROS 2) is not installed here")
    from std_msgs.msg import Header

    bgr = _bgr()
    header = Header(frame_id="cam")
    header.stamp.sec, header.stamp.nanosec = 12, 34
    for encoding in ("bgr8", "rgb8", "mono16", "yuv422"):
        msg = image_codec.bgr_to_imgmsg(bgr, header, encoding=encoding)
        assert msg.header.frame_id == "cam" and msg.header.stamp.sec == 12
        encoded = _encode(bgr, encoding)
        assert bytes(msg.data) == encoded.astype(encoded.dtype.newbyteorder("<")).tobytes()
        assert msg.step * msg.height == len(msg.data)


# ---------------------------------------------------------------------------------------------------- limits
def _peak_alloc(fn):
    """Peak bytes allocated (tracemalloc, numpy included) while fn() runs; fn's exception is swallowed."""
    import tracemalloc

    tracemalloc.start()
    try:
        fn()
    except ImageConversionError:
        pass
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


@pytest.mark.parametrize("step", [300_000_000, 2 ** 32 - 1])
def test_huge_declared_step_allocates_nothing(step):
    """A 24-byte message declaring a 300 MB (or 4 GB) row is refused without allocating it."""
    msg = SimpleNamespace(height=1, width=8, encoding="bgr8", is_bigendian=False, step=step, data=bytes(24))
    with pytest.raises(ImageConversionError, match="step"):
        imgmsg_to_bgr(msg, use_cv_bridge=False)
    assert _peak_alloc(lambda: imgmsg_to_bgr(msg, use_cv_bridge=False)) < 1_000_000


def test_padding_is_bounded_and_the_last_row_needs_no_copy_of_it():
    row = 8 * 3
    ok = SimpleNamespace(height=2, width=8, encoding="bgr8", is_bigendian=False,
                         step=row + image_codec.MAX_ROW_PADDING, data=bytes(row + image_codec.MAX_ROW_PADDING + row))
    assert imgmsg_to_bgr(ok, use_cv_bridge=False).shape == (2, 8, 3)
    bad = SimpleNamespace(**{**vars(ok), "step": row + image_codec.MAX_ROW_PADDING + 1})
    with pytest.raises(ImageConversionError, match="row padding"):
        check_layout(bad)


def test_pixel_and_byte_limits():
    from siam_tracker_ros.ros.image_codec import ImageTooLarge

    msg = _msg(_bgr(), "bgr8")
    check_layout(msg, max_pixels=H * W, max_bytes=H * W * 3)
    with pytest.raises(ImageTooLarge, match="max_image_pixels"):
        check_layout(msg, max_pixels=H * W - 1)
    with pytest.raises(ImageTooLarge, match="max_image_bytes"):
        check_layout(msg, max_bytes=H * W * 3 - 1)
    huge = SimpleNamespace(height=2 ** 31, width=2 ** 31, encoding="mono8", is_bigendian=False, step=2 ** 31,
                           data=bytes(10))
    with pytest.raises(ImageTooLarge):
        check_layout(huge, max_pixels=image_codec.DEFAULT_MAX_PIXELS)
    png = SimpleNamespace(format="png", data=cv2.imencode(".png", _bgr())[1].tobytes())
    with pytest.raises(ImageTooLarge, match="max_image_pixels"):
        compressed_to_bgr(png, max_pixels=100)
    with pytest.raises(ImageTooLarge, match="max_image_bytes"):
        compressed_to_bgr(png, max_bytes=10)


def test_compressed_header_sizes_are_checked_before_decoding():
    from siam_tracker_ros.ros.image_codec import ImageTooLarge, compressed_size

    img = _bgr()
    for ext in (".png", ".jpg"):
        data = cv2.imencode(ext, img)[1].tobytes()
        assert compressed_size(np.frombuffer(data, np.uint8)) == (W, H), ext
    # a 100-byte PNG claiming 100000 x 100000 pixels: refused from its header, never decoded
    png = bytearray(cv2.imencode(".png", img)[1].tobytes())
    png[16:24] = (100000).to_bytes(4, "big") + (100000).to_bytes(4, "big")
    bomb = SimpleNamespace(format="png", data=bytes(png))
    with pytest.raises(ImageTooLarge, match="declares 100000x100000"):
        compressed_to_bgr(bomb, max_pixels=image_codec.DEFAULT_MAX_PIXELS)
    assert compressed_size(np.frombuffer(b"GIF89a....", np.uint8)) is None
