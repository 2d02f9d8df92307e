"""sensor_msgs/Image <-> numpy BGR conversion, with or without cv_bridge.

`imgmsg_to_bgr(msg)` returns an (H, W, 3) uint8 BGR array, the tracker's input. The message layout (`step`, data
length, bytes per pixel) is checked first, so a malformed message gives the same clear `ImageConversionError` with
either converter. The pixels are then converted by cv_bridge where the ROS install has it, and otherwise (or for an
encoding cv_bridge does not know, such as yuv422_yuy2 in older releases) by this module's own converter, which honours
`step` (row padding) and `is_bigendian` and supports:

    bgr8 rgb8 bgra8 rgba8 mono8 mono16 bgr16 rgb16 bgra16 rgba16 yuv422 (UYVY) yuv422_yuy2 (YUYV)
    bayer_rggb8 bayer_bggr8 bayer_gbrg8 bayer_grbg8, and the aliases 8UC1 8UC3 8UC4 16UC1

16-bit images are scaled to 8 bits (value * 255 / 65535), as cv_bridge does for a bgr8 target.

Sizes are checked before anything is allocated: `check_layout` refuses more than `max_pixels` pixels or `max_bytes`
bytes (declared `step * height`, or the data actually sent) with `ImageTooLarge`, and a `step` more than
MAX_ROW_PADDING bytes longer than a row; the converter never pads the data to `step * height` (a 24-byte message
declaring step 3e8 must not cost 300 MB), so what it allocates is bounded by the bytes actually received.
The module only needs numpy and OpenCV; the message classes are imported lazily (`bgr_to_imgmsg`), so the converter
works (and is tested) with any object that has the sensor_msgs/Image fields.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


class ImageConversionError(ValueError):
    """An image message that cannot be converted: unsupported encoding or malformed layout."""


class ImageTooLarge(ImageConversionError):
    """An image over the configured pixel or byte limit."""


MAX_ROW_PADDING = 4096  # bytes a row's `step` may exceed width x bytes per pixel (drivers align rows to <= 4 KiB)
DEFAULT_MAX_PIXELS = 7680 * 4320  # 8K UHD
DEFAULT_MAX_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class _Encoding:
    channels: int  # values per pixel
    depth: int  # bytes per value
    to_bgr: int | None  # cv2 colour conversion code to BGR (None: already BGR)
    packed: bool = False  # yuv422: 2 bytes per pixel, width must be even


_E = _Encoding
ENCODINGS: dict[str, _Encoding] = {
    "bgr8": _E(3, 1, None),
    "rgb8": _E(3, 1, cv2.COLOR_RGB2BGR),
    "bgra8": _E(4, 1, cv2.COLOR_BGRA2BGR),
    "rgba8": _E(4, 1, cv2.COLOR_RGBA2BGR),
    "mono8": _E(1, 1, cv2.COLOR_GRAY2BGR),
    "mono16": _E(1, 2, cv2.COLOR_GRAY2BGR),
    "bgr16": _E(3, 2, None),
    "rgb16": _E(3, 2, cv2.COLOR_RGB2BGR),
    "bgra16": _E(4, 2, cv2.COLOR_BGRA2BGR),
    "rgba16": _E(4, 2, cv2.COLOR_RGBA2BGR),
    "yuv422": _E(2, 1, cv2.COLOR_YUV2BGR_UYVY, packed=True),
    "uyvy": _E(2, 1, cv2.COLOR_YUV2BGR_UYVY, packed=True),
    "yuv422_yuy2": _E(2, 1, cv2.COLOR_YUV2BGR_YUY2, packed=True),
    "yuyv": _E(2, 1, cv2.COLOR_YUV2BGR_YUY2, packed=True),
    # ROS names the Bayer pattern by its first row, OpenCV by the second row's 2x2 start: hence the swap.
    "bayer_rggb8": _E(1, 1, cv2.COLOR_BayerBG2BGR),
    "bayer_bggr8": _E(1, 1, cv2.COLOR_BayerRG2BGR),
    "bayer_gbrg8": _E(1, 1, cv2.COLOR_BayerGR2BGR),
    "bayer_grbg8": _E(1, 1, cv2.COLOR_BayerGB2BGR),
    "8UC1": _E(1, 1, cv2.COLOR_GRAY2BGR),
    "8UC3": _E(3, 1, None),
    "8UC4": _E(4, 1, cv2.COLOR_BGRA2BGR),
    "16UC1": _E(1, 2, cv2.COLOR_GRAY2BGR),
}
SUPPORTED_ENCODINGS = tuple(ENCODINGS)

try:  # pragma: no cover - depends on the ROS install
    from cv_bridge import CvBridge as _CvBridge

    _BRIDGE = _CvBridge()
except Exception:  # ImportError, or a cv_bridge built against another numpy
    _BRIDGE = None

HAVE_CV_BRIDGE = _BRIDGE is not None


def converter_name() -> str:
    """'cv_bridge' or 'builtin': which converter `imgmsg_to_bgr` uses by default (for logs and diagnostics)."""
    return "cv_bridge" if HAVE_CV_BRIDGE else "builtin"


def _encoding_of(msg) -> _Encoding:
    name = str(msg.encoding)
    enc = ENCODINGS.get(name) or ENCODINGS.get(name.lower())
    if enc is None:
        raise ImageConversionError(
            f"unsupported image encoding {name!r}; supported: {', '.join(SUPPORTED_ENCODINGS)}")
    return enc


def check_layout(msg, max_pixels: int | None = None, max_bytes: int | None = None) -> _Encoding:
    """Validate width/height/step/data length against the encoding and the limits; the encoding, or the error.

    max_pixels / max_bytes: None = no limit. Nothing here allocates: only the declared sizes and len(data) are used.
    """
    enc = _encoding_of(msg)
    width, height, step = int(msg.width), int(msg.height), int(msg.step)
    if width <= 0 or height <= 0:
        raise ImageConversionError(f"image of {width}x{height} pixels is empty")
    if max_pixels is not None and width * height > max_pixels:
        raise ImageTooLarge(f"image of {width}x{height} = {width * height} pixels is over the limit of {max_pixels} "
                            f"(parameter max_image_pixels)")
    if enc.packed and width % 2:
        raise ImageConversionError(f"{msg.encoding} image width {width} must be even (2 pixels share U and V)")
    row = width * enc.channels * enc.depth
    if step < row:
        raise ImageConversionError(
            f"image step {step} is smaller than width {width} x {enc.channels * enc.depth} bytes per pixel "
            f"({row}) for encoding {msg.encoding}")
    if step > row + MAX_ROW_PADDING:
        raise ImageConversionError(
            f"image step {step} does not fit width {width} x {enc.channels * enc.depth} bytes per pixel ({row}) for "
            f"encoding {msg.encoding}: at most {MAX_ROW_PADDING} bytes of row padding are accepted")
    size = len(msg.data)
    if max_bytes is not None and (step * height > max_bytes or size > max_bytes):
        raise ImageTooLarge(f"image of {max(step * height, size)} bytes (step {step} x height {height}, data {size}) "
                            f"is over the limit of {max_bytes} bytes (parameter max_image_bytes)")
    # The last row need not carry its padding, but every pixel must be there.
    need = step * (height - 1) + row
    if size < need:
        raise ImageConversionError(
            f"image data has {size} bytes, expected step x height = {step} x {height} = {step * height} "
            f"({msg.encoding}, {width}x{height}): the message is truncated")
    return enc


def _as_bytes(data) -> np.ndarray:
    if isinstance(data, np.ndarray):
        return np.ascontiguousarray(data).view(np.uint8).reshape(-1)
    try:
        return np.frombuffer(data, dtype=np.uint8)  # bytes, bytearray, array.array('B') (rclpy's uint8[])
    except (TypeError, ValueError):
        return np.asarray(data, dtype=np.uint8).reshape(-1)


def _builtin_to_bgr(msg, enc: _Encoding) -> np.ndarray:
    width, height, step = int(msg.width), int(msg.height), int(msg.step)
    buf = _as_bytes(msg.data)
    row = width * enc.channels * enc.depth
    need = step * (height - 1) + row  # the last row may come without its padding: no copy, no padding needed
    if buf.size < need:
        raise ImageConversionError(f"image data has {buf.size} bytes, {need} needed: the message is truncated")
    rows = np.lib.stride_tricks.as_strided(buf[:need], shape=(height, row), strides=(step, 1), writeable=False)
    if enc.depth == 1:
        img = np.ascontiguousarray(rows).reshape(height, width, enc.channels)
    else:
        dtype = np.dtype(">u2" if msg.is_bigendian else "<u2")
        vals = np.ascontiguousarray(rows).view(dtype).reshape(height, width, enc.channels)
        # 16 -> 8 bits with rounding: v * 255 / 65535 == v / 257
        img = ((vals.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    if enc.channels == 1:
        img = img[:, :, 0]
    if enc.to_bgr is not None:
        img = cv2.cvtColor(img, enc.to_bgr)
    return np.ascontiguousarray(img)


def imgmsg_to_bgr(msg, use_cv_bridge: bool | None = None, max_pixels: int | None = None,
                  max_bytes: int | None = None) -> np.ndarray:
    """(H, W, 3) uint8 BGR array from a sensor_msgs/Image; `ImageConversionError` when it cannot be converted.

    use_cv_bridge: None = cv_bridge when installed; False = always the built-in converter.
    max_pixels / max_bytes: limits checked before converting (None: none; the conversion allocates at most about
    the received data's size plus the BGR result either way).
    """
    enc = check_layout(msg, max_pixels, max_bytes)
    if use_cv_bridge is None:
        use_cv_bridge = HAVE_CV_BRIDGE
    if use_cv_bridge and _BRIDGE is not None:  # pragma: no cover - depends on the ROS install
        try:
            img = _BRIDGE.imgmsg_to_cv2(msg, desired_encoding="bgr8")
            if img.ndim == 3 and img.shape[2] == 3 and img.dtype == np.uint8:
                return img
        except Exception:
            pass  # an encoding this cv_bridge release lacks: the built-in converter below handles it
    try:
        return _builtin_to_bgr(msg, enc)
    except cv2.error as err:
        raise ImageConversionError(f"cannot convert {msg.encoding} image {msg.width}x{msg.height}: {err}") from None


def compressed_size(buf) -> tuple[int, int] | None:
    """(width, height) a PNG or JPEG declares in its header, without decoding it; None for other formats or when
    the header cannot be read."""
    data = bytes(buf[:65536])
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24 and data[12:16] == b"IHDR":
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data[:2] == b"\xff\xd8":  # JPEG: walk the segments up to the frame header (SOFn)
        i = 2
        while i + 9 <= len(data):
            if data[i] != 0xFF:
                return None
            marker = data[i + 1]
            if marker == 0xFF:  # fill byte
                i += 1
                continue
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length
                i += 2
                continue
            length = int.from_bytes(data[i + 2:i + 4], "big")
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                return int.from_bytes(data[i + 7:i + 9], "big"), int.from_bytes(data[i + 5:i + 7], "big")
            i += 2 + length
    return None


def compressed_to_bgr(msg, max_pixels: int | None = None, max_bytes: int | None = None) -> np.ndarray:
    """(H, W, 3) uint8 BGR from a sensor_msgs/CompressedImage (JPEG, PNG, ... whatever cv2.imdecode reads).

    A PNG or JPEG whose header declares more than max_pixels pixels is refused before decoding (a small file can
    declare a huge image); other formats are checked after decoding (OpenCV refuses more than 2^30 pixels itself).
    """
    buf = _as_bytes(msg.data)
    if buf.size == 0:
        raise ImageConversionError("compressed image has no data")
    if max_bytes is not None and buf.size > max_bytes:
        raise ImageTooLarge(f"compressed image of {buf.size} bytes is over the limit of {max_bytes} bytes "
                            f"(parameter max_image_bytes)")
    declared = compressed_size(buf) if max_pixels is not None else None
    if declared is not None and declared[0] * declared[1] > max_pixels:
        raise ImageTooLarge(f"compressed image declares {declared[0]}x{declared[1]} pixels, over the limit of "
                            f"{max_pixels} (parameter max_image_pixels)")
    img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if img is None:
        raise ImageConversionError(
            f"cannot decode compressed image (format {msg.format!r}, {buf.size} bytes): corrupt or unsupported")
    if max_pixels is not None and img.shape[0] * img.shape[1] > max_pixels:
        raise ImageTooLarge(f"compressed image decodes to {img.shape[1]}x{img.shape[0]} pixels, over the limit of "
                            f"{max_pixels} (parameter max_image_pixels)")
    return img


def bgr_to_array(img: np.ndarray, encoding: str = "bgr8") -> np.ndarray:
    """The pixel array of `encoding` for a BGR uint8 image (the inverse of the built-in converter, up to rounding)."""
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ImageConversionError(f"expected an (H, W, 3) uint8 BGR image, got {img.dtype} {img.shape}")
    name = encoding if encoding in ENCODINGS else encoding.lower()
    if name not in ENCODINGS:
        raise ImageConversionError(f"unsupported image encoding {encoding!r}")
    enc = ENCODINGS[name]
    if name.startswith("bayer_"):
        raise ImageConversionError("encoding to Bayer patterns is not supported")
    if enc.packed:
        code = cv2.COLOR_BGR2YUV_UYVY if ENCODINGS[name].to_bgr == cv2.COLOR_YUV2BGR_UYVY else cv2.COLOR_BGR2YUV_YUY2
        if img.shape[1] % 2:
            raise ImageConversionError(f"{encoding} needs an even image width, got {img.shape[1]}")
        return cv2.cvtColor(img, code)
    if enc.channels == 1:
        out = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    elif enc.channels == 3:
        out = img if enc.to_bgr is None else cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    else:
        out = cv2.cvtColor(img, cv2.COLOR_BGR2BGRA if enc.to_bgr == cv2.COLOR_BGRA2BGR else cv2.COLOR_BGR2RGBA)
    if enc.depth == 2:
        out = out.astype(np.uint16) * 257
    return np.ascontiguousarray(out)


def bgr_to_imgmsg(img: np.ndarray, header=None, encoding: str = "bgr8", is_bigendian: bool = False):
    """sensor_msgs/Image of `img` (H, W, 3 uint8 BGR), in `encoding` (default bgr8), with `header` copied."""
    from sensor_msgs.msg import Image

    arr = bgr_to_array(img, encoding)
    if arr.dtype == np.uint16:
        arr = arr.astype(">u2" if is_bigendian else "<u2")
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(arr.shape[0]), int(arr.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = bool(is_bigendian and arr.dtype.itemsize > 1)
    msg.step = int(arr.shape[1] * (arr.shape[2] if arr.ndim == 3 else 1) * arr.dtype.itemsize)
    msg.data = arr.tobytes()
    return msg
