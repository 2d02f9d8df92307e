"""FrameBuffer (engine/frame_buffer.py): the engine's ring buffer by stamp and one-frame mailbox, without ROS."""
from __future__ import annotations

from siam_tracker_ros.engine.frame_buffer import Frame, FrameBuffer

BIG = 1 << 40


def frame(stamp_ns: int, nbytes: int = 10) -> Frame:
    return Frame(stamp_ns, header=None, msg=None, compressed=False, nbytes=nbytes)


def test_frames_in_order_fill_the_mailbox_and_drop_the_untaken_one():
    buf = FrameBuffer()
    assert buf.add(frame(10), 100, BIG, BIG) is False
    assert buf.add(frame(20), 100, BIG, BIG) is True  # frame 10 was still in the mailbox
    assert buf.take().stamp_ns == 20 and buf.take() is None
    assert list(buf.frames) == [10, 20] and buf.nbytes == 20


def test_an_older_stamp_arriving_late_keeps_the_order_newest_and_mailbox():
    """Two drivers, a bag replay or a network hiccup: a frame older than the newest arrives after it."""
    buf = FrameBuffer()
    buf.add(frame(10), 100, BIG, BIG)
    buf.add(frame(30), 100, BIG, BIG)
    assert buf.take().stamp_ns == 30
    assert buf.add(frame(20), 100, BIG, BIG) is True  # kept for init by stamp, not tracked
    assert buf.newest_ns == 30 and buf.oldest_ns == 10
    assert list(buf.frames) == [10, 20, 30]
    assert buf.get(0).stamp_ns == 30  # stamp 0 names the newest frame
    assert buf.get(20).stamp_ns == 20
    assert [f.stamp_ns for f in buf.between(10, 30)] == [20, 30]  # the catch-up order
    assert buf.mailbox is None  # the worker is never handed a frame older than one it has seen

    # A late frame does not replace a newer one waiting in the mailbox.
    buf.add(frame(40), 100, BIG, BIG)
    buf.add(frame(35), 100, BIG, BIG)
    assert buf.take().stamp_ns == 40


def test_age_and_count_eviction_after_an_out_of_order_frame():
    buf = FrameBuffer()
    buf.add(frame(10), 100, BIG, 15)
    buf.add(frame(30), 100, BIG, 15)  # 10 is older than 30 - 15: evicted
    assert list(buf.frames) == [30]
    buf.add(frame(20), 100, BIG, 15)  # within the age bound of the newest (30): kept, in order
    assert list(buf.frames) == [20, 30] and buf.newest_ns == 30
    buf.add(frame(5), 100, BIG, 15)  # too old for the age bound: evicted at once, the newest stays
    assert list(buf.frames) == [20, 30]
    assert buf.nbytes == 20
    buf.add(frame(25), 2, BIG, BIG)  # the count bound evicts the oldest stamp, not the last added
    assert list(buf.frames) == [25, 30]
    assert buf.nbytes == 20
