"""The tracking engine without ROS (siam_tracker_ros/engine): frames, jobs (init on a stamped frame, catch-up, stop,
supersede, timeout, busy) and the per-frame step, on the real tracker with a small random network and the built-in
sequence's frames. No rclpy anywhere: the engine is what the node adapts."""
from __future__ import annotations

import subprocess
import sys
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

from siam_tracker_ros.engine import Frame, Job, Limits, TrackingEngine, jobs

NUM_FRAMES = 12


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """(frames, boxes, weights path): the built-in sequence's start and the node tests' small random network."""
    import torch
    from siam_tracker_ros.config import ModelConfig
    from siam_tracker_ros.model import build_model, save_weights
    from siam_tracker_ros.synthetic import make_sequence

    torch.manual_seed(0)
    weights = tmp_path_factory.mktemp("weights") / "w025.pt"
    save_weights(build_model(ModelConfig(width=0.25)), weights)
    frames, boxes = make_sequence(5 * NUM_FRAMES, size=(320, 180))
    return frames[:NUM_FRAMES], [tuple(float(v) for v in b) for b in boxes[:NUM_FRAMES]], weights


def tracker_of(scene):
    from siam_tracker_ros.config import Config
    from siam_tracker_ros.tracking import SiamTracker

    cfg = Config()
    cfg.backend.name, cfg.backend.device, cfg.backend.num_threads = "torch", "cpu", 1
    return SiamTracker.from_config(cfg, scene[2])


def frame(stamp_ns: int, img: np.ndarray) -> Frame:
    """A raw bgr8 image as the node receives it (the fields of sensor_msgs/Image that decoding reads)."""
    h, w = img.shape[:2]
    msg = SimpleNamespace(encoding="bgr8", height=h, width=w, step=3 * w, is_bigendian=0, data=img.tobytes())
    return Frame(stamp_ns, header=SimpleNamespace(stamp=stamp_ns), msg=msg, compressed=False, nbytes=img.nbytes)


class Recorder:
    """The callbacks of an engine: results, refusals, skipped frames, errors."""

    def __init__(self):
        self.lock = threading.Lock()
        self.results, self.refused, self.skipped, self.errors = [], [], [], []
        self.hold = None  # a threading.Event: on_result waits for it (a worker busy publishing)

    def on_result(self, step):
        with self.lock:
            self.results.append(step)
        if self.hold is not None:
            self.hold.wait(30)
        return {tid: {"extra": 1} for tid in step.results}

    def on_refuse(self, kind, message):
        with self.lock:
            self.refused.append(kind)


def make_engine(scene, rec: Recorder, **limits) -> TrackingEngine:
    engine = TrackingEngine(tracker_of(scene), Limits(**limits), on_refuse=rec.on_refuse, on_result=rec.on_result,
                            on_skipped=rec.skipped.append, on_error=rec.errors.append)
    engine.activate()
    return engine


def answer_of(result, timeout=60.0):
    if isinstance(result, Job):
        assert result.done.wait(timeout), "the job was not answered"
        return result.answer
    return result


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def hold_the_worker_on_a_frame(engine, rec: Recorder, frames, boxes) -> None:
    """Target 'a' installed on frame 1000, then the worker held in on_result (rec.hold) while it publishes frame
    2000: requests made now queue behind it."""
    engine.offer_frame(frame(1000, frames[0]))
    assert answer_of(engine.request_init("a", boxes[0], 1000)).success
    engine.offer_frame(frame(2000, frames[1]))
    wait_for(lambda: rec.results, 60, "the worker publishing a frame")


def test_the_engine_imports_no_ros():
    """In a fresh interpreter (this one may hold other tests' rclpy): the engine loads no ROS module."""
    code = ("import sys, siam_tracker_ros.engine; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('rclpy', 'rosidl_parser', 'sensor_msgs', "
            "'vision_msgs', 'std_msgs', 'builtin_interfaces')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]", out.stdout


def test_refusals_decided_at_once(scene):
    frames, boxes, _ = scene
    rec = Recorder()
    engine = make_engine(scene, rec, max_targets=1)
    a = engine.request_init("a", boxes[0], 0)
    assert a.reason == jobs.UNKNOWN_STAMP and "no frames" in a.message
    engine.offer_frame(frame(1000, frames[0]))
    assert engine.request_init("a", boxes[0], 999).reason == jobs.UNKNOWN_STAMP
    assert engine.request_init("a", (1000.0, 1000.0, 20.0, 20.0), 1000).reason == jobs.BAD_BOX
    assert engine.request_stop("ghost").reason == jobs.NOT_TRACKED
    engine.deactivate("test")
    assert engine.request_init("a", boxes[0], 1000).reason == jobs.INACTIVE
    assert engine.request_stop("").reason == jobs.INACTIVE
    assert rec.refused == ["frame", "frame", "box", "inactive", "inactive"]


def test_init_on_a_past_frame_catches_up_and_tracks_like_the_tracker(scene):
    """Frames tracked with one target, a second one started on an older frame: caught up over the frames between,
    then both tracked together; the result equals the tracker run offline on the same frames (all kept raw: no
    JPEG copies of the older frames)."""
    frames, boxes, _ = scene
    rec = Recorder()
    engine = make_engine(scene, rec, frame_buffer_raw_frames=NUM_FRAMES)
    engine.start()
    try:
        stamps = [1000 * (i + 1) for i in range(NUM_FRAMES)]
        engine.offer_frame(frame(stamps[0], frames[0]))
        assert answer_of(engine.request_init("a", boxes[0], stamps[0])).success
        for i in range(1, 6):
            engine.offer_frame(frame(stamps[i], frames[i]))
            wait_for(lambda: engine.last_processed_ns == stamps[i], 60, f"frame {i} tracked")
        answer = answer_of(engine.request_init("b", boxes[2], stamps[2]))
        assert answer.success and answer.reason == jobs.OK and answer.caught_up_frames == 3, answer
        for i in range(6, NUM_FRAMES):
            engine.offer_frame(frame(stamps[i], frames[i]))
            wait_for(lambda: engine.last_processed_ns == stamps[i], 60, f"frame {i} tracked")
        last = rec.results[-1]
        assert set(last.results) == {"a", "b"} and last.frame.stamp_ns == stamps[-1]
        assert engine.target_states["a"]["extra"] == 1 and engine.target_states["b"]["lost_frames"] >= 0
    finally:
        engine.close("end of test")
    # The same calls on the tracker itself: "a" over frames 1-5, "b" from frame 2 alone over 3-5, then both.
    offline = tracker_of(scene)
    offline.init(frames[0], boxes[0], "a")
    for f in frames[1:6]:
        offline.update(f)
    offline.init(frames[2], boxes[2], "b")
    for f in frames[3:6]:
        offline.update(f, ids=["b"])
    for f in frames[6:]:
        out = offline.update(f)
    np.testing.assert_allclose(last.results["a"].box, out["a"].box, atol=1e-3)
    np.testing.assert_allclose(last.results["b"].box, out["b"].box, atol=1e-3)
    assert not rec.errors


def test_stale_and_unneeded_frames(scene):
    """The steps run here, one by one (no worker thread). A frame still in the mailbox when a newer one comes is
    dropped; one older than the newest is kept for init, not tracked; a frame not newer than the targets' last one
    is skipped."""
    frames, boxes, _ = scene
    rec = Recorder()
    engine = make_engine(scene, rec)
    assert engine.offer_frame(frame(3000, frames[0])) == (True, False)
    assert engine.offer_frame(frame(3000, frames[0])) == (False, False)  # the same stamp again
    assert engine.offer_frame(frame(4000, frames[1])) == (True, True)  # 3000 was still in the mailbox
    assert engine.offer_frame(frame(2000, frames[2])) == (True, True)  # older than the newest: kept, not tracked
    init = engine.request_init("a", boxes[1], 4000)
    assert engine.step(wait=0) and init.answer.success  # jobs before frames
    assert engine.step(wait=0) and [f.stamp_ns for f in rec.skipped] == [4000] and not rec.results
    engine.offer_frame(frame(5000, frames[3]))
    assert engine.step(wait=0) and [s.frame.stamp_ns for s in rec.results] == [5000]
    assert list(engine.frames.frames) == [2000, 3000, 4000, 5000]
    engine.close("end of test")
    assert not engine.step(wait=0)  # closed: the worker would end


def test_a_newer_init_supersedes_the_pending_one_and_a_stop_of_it_waits(scene):
    """While the worker is busy, an init of 'x' waits; a second init of 'x' supersedes it (answered at once); a stop
    of 'x' is queued behind the second (not refused: an init of it is pending) and stops it once installed."""
    frames, boxes, _ = scene
    rec = Recorder()
    engine = make_engine(scene, rec)
    rec.hold = threading.Event()
    engine.start()
    try:
        hold_the_worker_on_a_frame(engine, rec, frames, boxes)
        first = engine.request_init("x", boxes[0], 1000)
        second = engine.request_init("x", boxes[0], 1000)
        assert isinstance(first, Job) and isinstance(second, Job)
        assert first.done.is_set() and first.answer.reason == jobs.SUPERSEDED
        stop = engine.request_stop("x")
        assert isinstance(stop, Job) and not stop.done.is_set()
        rec.hold.set()
        assert answer_of(second).success
        assert answer_of(stop).success and answer_of(stop).message == "stopped x"
        assert rec.refused.count("superseded") == 1
        assert "x" not in engine.tracker.targets
    finally:
        rec.hold.set()
        engine.close("end of test")


def test_busy_and_timeout_racing_the_worker(scene):
    """With the worker held, the queue fills: one more is answered busy at once. A job whose timer fires before the
    worker claims it is answered timed_out and its target never installed; a claimed job is the worker's."""
    frames, boxes, _ = scene
    rec = Recorder()
    engine = make_engine(scene, rec, max_queued_requests=2)
    rec.hold = threading.Event()
    engine.start()
    try:
        hold_the_worker_on_a_frame(engine, rec, frames, boxes)
        queued = [engine.request_init(f"q{k}", boxes[0], 1000) for k in range(2)]
        busy = engine.request_init("busy", boxes[0], 1000)
        assert busy.reason == jobs.BUSY and "max_queued_requests = 2" in busy.message
        engine.limits.max_queued_requests, engine.limits.init_timeout = 3, 0.3
        late = engine.request_init("late", boxes[0], 1000)
        assert answer_of(late, 30).reason == jobs.TIMED_OUT and "not installed" in late.answer.message
        rec.hold.set()
        assert all(answer_of(q).success for q in queued)
        assert "late" not in engine.tracker.targets and {"q0", "q1"} <= set(engine.tracker.targets)
        assert rec.refused.count("timeout") == 1 and rec.refused.count("busy") == 1
    finally:
        rec.hold.set()
        engine.close("end of test")
    # A claimed job is no longer cancellable: a timer that fires after the claim leaves it to the worker.
    job = Job("init", "x")
    assert job.claim() and not job.cancel(jobs.TIMED_OUT, "too late") and not job.finished


def test_deactivate_and_close_answer_what_waits(scene):
    frames, boxes, _ = scene
    rec = Recorder()
    engine = make_engine(scene, rec)
    engine.offer_frame(frame(1000, frames[0]))
    queued = engine.request_init("a", boxes[0], 1000)  # no worker: it waits
    engine.deactivate("node deactivated")
    assert answer_of(queued, 5).reason == jobs.INACTIVE and "node deactivated" in queued.answer.message
    engine.activate()
    queued = engine.request_init("a", boxes[0], 1000)
    engine.close("node cleaned up")
    assert answer_of(queued, 5).reason == jobs.INACTIVE and engine.tracker is None and not len(engine.frames)
