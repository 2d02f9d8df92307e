"""The engine's received frames: a ring buffer by stamp (for init_target on a past frame), bounded in frames, bytes and
seconds with the newest frame always kept, and the one-frame mailbox the worker takes the newest frame from (a frame
still there when a newer one arrives is dropped). Not thread-safe: the engine calls it under its condition's lock.

Only the newest frames keep the message as received; older raw images are kept JPEG-encoded (`Frame.compacted`,
about a tenth of the bytes), so that seconds of a camera stream fit in little memory: 10 s of 640x480 at 30 Hz is
265 MiB raw, about 40 MiB this way."""
from __future__ import annotations

import collections
from dataclasses import dataclass

import cv2
import numpy as np

from siam_tracker_ros.ros.image_codec import compressed_to_bgr, imgmsg_to_bgr

TIME_JUMP_NS = 1_000_000_000  # an image stamp this far behind the newest one means the clock was reset
JPEG_QUALITY = 90  # of the buffered frames older than the newest few: close to the original for the tracker's crops


def format_stamp(ns: int) -> str:
    """Integer nanoseconds as "sec.nanosec" (how stamps are written in answers and logs)."""
    return f"{ns // 1_000_000_000}.{ns % 1_000_000_000:09d}"


@dataclass
class Frame:
    """A received image message, decoded only when the worker uses it."""

    stamp_ns: int
    header: object
    msg: object
    compressed: bool
    nbytes: int = 0  # image data held (for the ring buffer's byte bound)
    limits: tuple = (None, None)  # (max pixels, max bytes) at arrival
    jpeg: bytes | None = None  # set by compacted(): the decoded image as JPEG, instead of the message
    size: tuple | None = None  # (height, width) of a compacted frame

    def decode(self) -> np.ndarray:
        if self.jpeg is not None:
            return cv2.imdecode(np.frombuffer(self.jpeg, np.uint8), cv2.IMREAD_COLOR)
        if self.compressed:
            return compressed_to_bgr(self.msg, *self.limits)
        return imgmsg_to_bgr(self.msg, max_pixels=self.limits[0], max_bytes=self.limits[1])

    @property
    def shape(self):
        """(height, width) from the message, or None for a compressed frame (known only after decoding)."""
        if self.size is not None:
            return self.size
        return None if self.compressed else (int(self.msg.height), int(self.msg.width))

    @property
    def raw(self) -> bool:
        """Holds an uncompressed Image message (what compacted() shrinks)."""
        return self.jpeg is None and not self.compressed

    def compacted(self) -> "Frame":
        """A copy holding the image as JPEG and no message (raises ImageConversionError for an unusable image).
        A new object, so that the worker can go on using this one meanwhile."""
        img = self.decode()
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise ValueError("JPEG encoding failed")
        jpeg = buf.tobytes()
        return Frame(self.stamp_ns, self.header, None, False, len(jpeg), self.limits, jpeg, img.shape[:2])


class FrameBuffer:
    def __init__(self):
        self.frames: "collections.OrderedDict[int, Frame]" = collections.OrderedDict()  # by stamp, oldest first
        self.nbytes = 0
        self.mailbox: Frame | None = None
        self.evicted_by: str | None = None  # the parameter whose limit last pushed a frame out (None: none yet)

    def __len__(self) -> int:
        return len(self.frames)

    def __contains__(self, stamp_ns: int) -> bool:
        return stamp_ns in self.frames

    @property
    def oldest_ns(self) -> int:
        return next(iter(self.frames))

    @property
    def newest_ns(self) -> int:
        return next(reversed(self.frames))

    def get(self, stamp_ns: int) -> Frame | None:
        """The frame of that stamp; 0 names the newest one."""
        return self.frames.get(self.newest_ns if stamp_ns == 0 and self.frames else stamp_ns)

    def between(self, after_ns: int, up_to_ns: int) -> list[Frame]:
        """The buffered frames with after_ns < stamp <= up_to_ns, oldest first."""
        return [f for ns, f in self.frames.items() if after_ns < ns <= up_to_ns]

    def clear(self) -> None:
        self.frames.clear()
        self.nbytes = 0
        self.evicted_by = None

    def to_compact(self, keep_raw: int) -> list[Frame]:
        """The raw frames older than the newest `keep_raw` frames, oldest first."""
        older = list(self.frames.values())[:-keep_raw] if keep_raw > 0 else list(self.frames.values())
        return [f for f in older if f.raw]

    def replace(self, old: Frame, new: Frame) -> None:
        """Put `new` in place of `old` when `old` is still buffered (it may have been pushed out meanwhile)."""
        if self.frames.get(old.stamp_ns) is old:
            self.frames[old.stamp_ns] = new
            self.nbytes += new.nbytes - old.nbytes

    def span_ns(self) -> int:
        return self.newest_ns - self.oldest_ns if self.frames else 0

    def add(self, frame: Frame, max_frames: int, max_bytes: int, max_age_ns: int) -> bool:
        """Keep a new frame (the caller checked it is not a duplicate) and put it into the mailbox; True when a frame
        is dropped from tracking: the one the worker had not taken yet from the mailbox, or this frame itself when it
        is older than the newest buffered one (kept for init_target by stamp, never tracked: the targets only move
        forward in time). The buffer is kept sorted by stamp."""
        # Checked before the frame goes in: an older stamp than the newest (two drivers, a bag replay, a network
        # hiccup) must not become the newest, so the buffer is re-sorted by stamp.
        out_of_order = bool(self.frames) and frame.stamp_ns < self.newest_ns
        self.frames[frame.stamp_ns] = frame
        self.nbytes += frame.nbytes
        if out_of_order:
            self.frames = collections.OrderedDict(sorted(self.frames.items()))
        newest = self.newest_ns
        while len(self.frames) > 1:
            if self.oldest_ns < newest - max_age_ns:
                self.evicted_by = "frame_buffer_seconds"
            elif len(self.frames) > max_frames:
                self.evicted_by = "frame_buffer_max_frames"
            elif self.nbytes > max_bytes:
                self.evicted_by = "frame_buffer_max_bytes"
            else:
                break
            _, old = self.frames.popitem(last=False)
            self.nbytes -= old.nbytes
        if out_of_order:
            return True
        dropped = self.mailbox is not None
        self.mailbox = frame
        return dropped

    def take(self) -> Frame | None:
        frame, self.mailbox = self.mailbox, None
        return frame
