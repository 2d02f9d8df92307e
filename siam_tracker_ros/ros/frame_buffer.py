"""The node's received frames: a ring buffer by stamp (for init_target on a past frame), bounded in frames, bytes and
seconds with the newest frame always kept, and the one-frame mailbox the worker takes the newest frame from (a frame
still there when a newer one arrives is dropped). Not thread-safe: the node calls it under its condition's lock."""
from __future__ import annotations

import collections
from dataclasses import dataclass

import numpy as np

from .image_codec import compressed_to_bgr, imgmsg_to_bgr

TIME_JUMP_NS = 1_000_000_000  # an image stamp this far behind the newest one means the clock was reset


@dataclass
class Frame:
    """A received image message, decoded only when the worker uses it."""

    stamp_ns: int
    header: object
    msg: object
    compressed: bool
    nbytes: int = 0  # image data held (for the ring buffer's byte bound)
    limits: tuple = (None, None)  # (max pixels, max bytes) at arrival

    def decode(self) -> np.ndarray:
        if self.compressed:
            return compressed_to_bgr(self.msg, *self.limits)
        return imgmsg_to_bgr(self.msg, max_pixels=self.limits[0], max_bytes=self.limits[1])

    @property
    def shape(self):
        """(height, width) from the message, or None for a compressed frame (known only after decoding)."""
        return None if self.compressed else (int(self.msg.height), int(self.msg.width))


class FrameBuffer:
    def __init__(self):
        self.frames: "collections.OrderedDict[int, Frame]" = collections.OrderedDict()  # by stamp, oldest first
        self.nbytes = 0
        self.mailbox: Frame | None = None

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
        while len(self.frames) > 1 and (len(self.frames) > max_frames or self.nbytes > max_bytes
                                        or self.oldest_ns < newest - max_age_ns):
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
