"""The node's frame ring buffer (siam_tracker_ros.engine.frame_buffer) on its own: frames older than the newest few are
kept as JPEG, the byte bound holds, and a stamp it lacks is explained (engine.missing_frame_message)."""
from types import SimpleNamespace

import numpy as np
import pytest

from siam_tracker_ros.engine.frame_buffer import Frame, FrameBuffer

W, H = 640, 480
SECOND = 1_000_000_000


def image_frame(stamp_ns: int, seed: int) -> Frame:
    """A bgr8 frame of smooth content (as a camera's: JPEG shrinks it), built like the node builds its Frames."""
    yy, xx = np.mgrid[0:H, 0:W]
    img = np.stack([(xx + seed * 7) % 256, (yy + seed * 3) % 256, ((xx + yy) // 2 + seed) % 256], -1).astype(np.uint8)
    msg = SimpleNamespace(height=H, width=W, encoding="bgr8", is_bigendian=0, step=W * 3, data=img.tobytes(),
                          header=None)
    return Frame(stamp_ns, None, msg, compressed=False, nbytes=len(msg.data)), img


def fill(buf: FrameBuffer, n: int, rate: float = 30.0, keep_raw: int = 10, max_bytes: int = 256 << 20,
         seconds: float = 10.0):
    images = {}
    for k in range(n):
        frame, img = image_frame(int(1000 * SECOND + k * SECOND / rate), k)
        images[frame.stamp_ns] = img
        buf.add(frame, 600, max_bytes, int(seconds * SECOND))
        for old in buf.to_compact(keep_raw):  # what the node's image callback does after add()
            buf.replace(old, old.compacted())
    return images


def test_older_frames_are_kept_as_jpeg_close_to_the_original():
    buf = FrameBuffer()
    images = fill(buf, 60)
    frames = list(buf.frames.values())
    assert len(frames) == 60
    assert all(f.raw for f in frames[-10:]) and not any(f.raw for f in frames[:-10])
    assert buf.nbytes == sum(f.nbytes for f in frames)
    assert buf.nbytes < 10 * W * H * 3 + 50 * W * H * 3 / 8  # the 50 older ones: under an eighth of their raw size
    old = frames[0]
    assert old.shape == (H, W) and old.msg is None
    diff = np.abs(old.decode().astype(int) - images[old.stamp_ns].astype(int))
    assert diff.mean() < 3.0


def test_byte_bound_holds_and_names_the_limit():
    buf = FrameBuffer()
    fill(buf, 40, keep_raw=40, max_bytes=8 * W * H * 3)  # all raw: room for 8 frames
    assert len(buf) == 8 and buf.nbytes <= 8 * W * H * 3 and buf.evicted_by == "frame_buffer_max_bytes"
    buf = FrameBuffer()
    fill(buf, 70, rate=30.0, seconds=2.0)
    assert buf.evicted_by == "frame_buffer_seconds" and buf.span_ns() <= 2 * SECOND


def test_a_missing_stamp_is_explained():
    pytest.importorskip("vision_msgs.msg", reason="vision_msgs (ROS 2) is not importable: source .ros/env.sh")
    from siam_tracker_ros.engine import missing_frame_message

    buf = FrameBuffer()
    fill(buf, 70, seconds=2.0)
    limits = {"frame_buffer_seconds": 2.0, "frame_buffer_max_frames": 600, "frame_buffer_max_bytes": 256 << 20}
    oldest, newest = buf.oldest_ns, buf.newest_ns
    old = missing_frame_message(buf, oldest - 3 * SECOND, limits)
    assert "3.000 s older than the oldest buffered frame" in old and "raise frame_buffer_seconds" in old
    assert "newer than the newest frame" in missing_frame_message(buf, newest + SECOND // 10, limits)
    between = missing_frame_message(buf, oldest + SECOND // 60, limits)
    assert "no frame of this stamp was received" in between and "16.7 ms before" in between
    fresh = FrameBuffer()
    fill(fresh, 3)
    assert "first frame received" in missing_frame_message(fresh, fresh.oldest_ns - SECOND, limits)
