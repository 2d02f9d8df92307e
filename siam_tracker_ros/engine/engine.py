"""The tracking engine: the frame buffer, the init / stop jobs and the per-frame step around one tracker
(SiamTracker or NanoTracker), with no ROS (numpy, OpenCV and threads). The node (ros/node.py) is its adapter: it
checks and converts messages, calls `offer_frame`, `request_init` / `request_stop`, and publishes what the engine
hands to `on_result`.

Threads. `offer_frame` and the requests run on the caller's threads (the node's callbacks); one worker thread
(`start`) alone uses the tracker: queued jobs first, then the newest frame (`step`). Everything shared is guarded by
`cond`, which the depth input also waits on.

Jobs. A request checked at once is answered at once (an Answer); an accepted one is a Job the worker runs, answered
exactly once by whoever comes first: the worker, its timer (`init_timeout`), a newer init of the same id (supersede),
or the engine being deactivated / closed. An init is tracked on its own stamped frame under a provisional id, caught
up alone over the buffered frames the other targets were already tracked on, and installed under its own id only
when its job can still be claimed.
"""
from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from siam_tracker_ros.tracking import InputError, validate_box
from siam_tracker_ros.tracking.validation import check_box_margin

from . import jobs
from .frame_buffer import TIME_JUMP_NS, Frame, FrameBuffer, format_stamp
from .jobs import Answer, Job

# A target being initialised lives in the tracker under this prefix + its id until its job is claimed (not a valid
# id: no request can name it).
PROVISIONAL_PREFIX = " init "
STATE_TRACKED, STATE_LOST = "tracked", "lost"


@dataclass
class Limits:
    """The run-time settings the engine reads (plain attributes: the node writes them when a parameter changes)."""

    max_targets: int = 4
    max_queued_requests: int = 10
    init_timeout: float = 30.0
    box_margin: float = 0.5
    frame_buffer_seconds: float = 10.0
    frame_buffer_max_frames: int = 600
    frame_buffer_max_bytes: int = 256 * 2 ** 20
    frame_buffer_raw_frames: int = 3
    max_image_pixels: int = 33177600  # of a frame when it is decoded (Frame.limits)
    max_image_bytes: int = 268435456


@dataclass
class StepResult:
    """One tracked frame: the decoded image, each target's TrackResult, lost_frames and re-acquisitions (LOST ->
    TRACKED since its init), when its step began, and the seconds its stages took (decode, track; the node adds its
    own)."""

    frame: Frame
    image: np.ndarray
    results: dict
    lost_frames: dict
    started: float = field(default_factory=time.monotonic)
    reacquisitions: dict = field(default_factory=dict)
    stage_s: dict = field(default_factory=dict)

    def states(self) -> dict:
        """Per target: state, confidence, box, stamp, lost_frames (what /diagnostics shows)."""
        return {tid: {"state": STATE_LOST if r.lost else STATE_TRACKED, "confidence": round(float(r.confidence), 3),
                      "box": [round(float(v), 1) for v in r.box], "stamp": format_stamp(self.frame.stamp_ns),
                      "lost_frames": self.lost_frames[tid]}
                for tid, r in self.results.items()}


def no_target_message(target_id: str, tracked) -> str:
    return f"no target '{target_id}' (tracked: {', '.join(sorted(tracked)) or 'none'})"


def missing_frame_message(frames: FrameBuffer, want: int, limits: dict) -> str:
    """Why `frames` has no frame of stamp `want`, and what to change: how much older than the buffer it is and the
    parameter whose limit pushed it out (`limits`: name -> value), or that it is newer than anything received, or that
    no frame of that stamp came between the buffered ones."""
    oldest, newest = frames.oldest_ns, frames.newest_ns
    head = (f"no frame with stamp {format_stamp(want)} in the buffer ({len(frames)} frames, "
            f"{format_stamp(oldest)} .. {format_stamp(newest)}, {frames.span_ns() / 1e9:.1f} s, "
            f"{frames.nbytes / 2 ** 20:.1f} MiB)")
    if want > newest:
        return (f"{head}: {(want - newest) / 1e9:.3f} s newer than the newest frame received: not received (yet); "
                f"a zero stamp names the newest frame")
    if want < oldest:
        why = f"{(oldest - want) / 1e9:.3f} s older than the oldest buffered frame"
        limit = frames.evicted_by
        if limit is None:
            return f"{head}: {why}, which is the first frame received: the stamp names no frame this node got"
        return (f"{head}: {why}; frames that old were dropped by the limit {limit} = {limits[limit]:g}: raise "
                f"{limit} to name older frames")
    before = max(ns for ns in frames.frames if ns < want)
    after = min(ns for ns in frames.frames if ns > want)
    return (f"{head}: no frame of this stamp was received (the nearest are {(want - before) / 1e6:.1f} ms before "
            f"and {(after - want) / 1e6:.1f} ms after): lost in transport, or a stamp that names no frame")


def _ignore(*_args) -> None:
    return None


class TrackingEngine:
    """One tracker, its frames and its jobs. Callbacks (each may be left out):

    - on_refuse(kind, message): a refused request or frame (kind: the /diagnostics counter's name);
    - on_result(StepResult) -> {target id: extra /diagnostics fields}: a tracked frame, on the worker thread, to
      publish; what it returns is added to the targets' snapshot;
    - on_skipped(frame): a frame not tracked because it is not newer than the targets' last one;
    - on_error(exception): an error of the tracker or of on_result (the worker carries on);
    - on_queued(job): a job is accepted, before anything can answer it (under cond: the node gives it its future);
    - on_answer(job): a job was answered (from whichever thread answered it);
    - inactive_answer() -> Answer: the answer to a request while the engine is not active.
    """

    def __init__(self, tracker=None, limits: Limits | None = None, *, on_refuse: Callable = _ignore,
                 on_result: Callable | None = None, on_skipped: Callable = _ignore, on_error: Callable = _ignore,
                 on_queued: Callable = _ignore, on_answer: Callable = _ignore, inactive_answer: Callable | None = None):
        self.tracker = tracker
        self.limits = limits or Limits()
        self.on_refuse, self.on_result, self.on_skipped = on_refuse, on_result, on_skipped
        self.on_error, self.on_queued, self.on_answer = on_error, on_queued, on_answer
        self.inactive_answer = inactive_answer or (lambda: Answer.refused(jobs.INACTIVE, "not active"))
        self.cond = threading.Condition()
        self.frames = FrameBuffer()
        self.jobs: collections.deque[Job] = collections.deque()
        self.running_job: Job | None = None
        self.active = False
        self.closed = False
        self.last_processed_ns: int | None = None  # frames not newer than this are stale: skipped
        self.target_states: dict[str, dict] = {}
        self._worker: threading.Thread | None = None

    # ------------------------------------------------------------------ life
    def open(self, tracker) -> None:
        """Take a tracker (configure): requests are served once activated, frames tracked once started."""
        with self.cond:
            self.tracker, self.closed = tracker, False

    def warm_up(self, max_targets: int) -> int:
        """Run every graph the tracker can use (each scale set, the lost-mode search, every batch size up to
        max_targets), so nothing is built in the middle of tracking; the number of graph calls."""
        rng = np.random.default_rng(0)
        img = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
        try:  # self.tracker each time: a close() meanwhile (the process ending) cuts the warm-up short
            self.tracker.init(img, (140, 100, 40, 40), "__warmup__")
            self.tracker.update(img)
            self.tracker.remove("__warmup__")
            return len(self.tracker.warm_up(max_targets))
        finally:
            if self.tracker is not None:
                self.tracker.remove("__warmup__")
                self.tracker.reset_timings()

    def start(self) -> None:
        """The worker thread."""
        self._worker = threading.Thread(target=self._run, name="tracker_worker", daemon=True)
        self._worker.start()

    def activate(self) -> None:
        with self.cond:
            self.active = True

    def deactivate(self, reason: str) -> None:
        """Stop taking frames and requests: the frame in the mailbox is dropped, the queued requests are answered."""
        with self.cond:
            self.active = False
            self.frames.take()
            queued = list(self.jobs)
        for job in queued:
            job.cancel(jobs.INACTIVE, f"node inactive: {reason} before the request was served")

    def close(self, reason: str, join_timeout: float = 5.0) -> bool:
        """Stop the worker (waiting at most join_timeout s), answer what waits, drop the frames, the targets and the
        tracker; False when the worker did not stop in time."""
        with self.cond:
            self.active = False
            self.closed = True
            self.cond.notify_all()
        worker, stopped = self._worker, True
        if worker is not None and worker is not threading.current_thread():
            worker.join(timeout=join_timeout)
            stopped = not worker.is_alive()
        self._worker = None
        for job in list(self.jobs):
            job.finish(Answer.refused(jobs.INACTIVE, reason))
        with self.cond:
            self.jobs.clear()
            self.frames.clear()
            self.frames.take()
            self.target_states = {}
            self.last_processed_ns = None
            self.tracker = None
            self.cond.notify_all()
        return stopped

    # ------------------------------------------------------------------ frames
    def offer_frame(self, frame: Frame) -> tuple[bool, bool]:
        """Buffer a received frame and put it in the mailbox: (accepted, dropped). Not accepted while inactive or
        when the same stamp is buffered already; dropped: a frame left untracked (the one still in the mailbox, or
        this one when it is older than the newest). The raw frames that left the newest frame_buffer_raw_frames are
        then JPEG-encoded here, outside the lock."""
        limits = self.limits
        with self.cond:
            if not self.active or frame.stamp_ns in self.frames:
                return False, False
            jumped = len(self.frames) and frame.stamp_ns < self.frames.newest_ns - TIME_JUMP_NS
            if jumped:  # time jumped back (bag loop, simulator reset): start over
                self.frames.clear()
                self.last_processed_ns = None
            dropped = self.frames.add(frame, limits.frame_buffer_max_frames, limits.frame_buffer_max_bytes,
                                      int(limits.frame_buffer_seconds * 1e9))
            self.cond.notify_all()
            older = self.frames.to_compact(limits.frame_buffer_raw_frames)
        for old in older:
            try:
                small = old.compacted()
            except Exception:  # an image the worker could not use either: keep it as it came
                continue
            with self.cond:
                self.frames.replace(old, small)
        return True, dropped

    def has_work(self) -> bool:
        """A job or a newer frame waits, or the engine is stopping (under cond): a reason to stop waiting."""
        return bool(self.closed or not self.active or self.jobs or self.frames.mailbox is not None)

    # ------------------------------------------------------------------ requests
    def pending_ids(self) -> set:
        """Ids with an init that may still install them (under cond)."""
        waiting = list(self.jobs) + [self.running_job]
        return {j.target_id for j in waiting if j is not None and j.kind == "init" and not j.finished}

    def request_init(self, target_id: str, box, stamp_ns: int) -> Answer | Job:
        """Start tracking target_id from box (x, y, w, h) on the frame of stamp_ns (0: the newest): the Answer to a
        request refused at once, else the queued Job."""
        limits = self.limits
        with self.cond:
            if not self.active:
                return self._refused(jobs.INACTIVE, "inactive", f"init_target '{target_id}'", self.inactive_answer())
            if not len(self.frames):
                return self._refused(jobs.UNKNOWN_STAMP, "frame", "init_target before any frame",
                                     "no frames received yet")
            frame = self.frames.get(stamp_ns)
            if frame is None:
                why = missing_frame_message(self.frames, stamp_ns, {
                    "frame_buffer_seconds": limits.frame_buffer_seconds,
                    "frame_buffer_max_frames": limits.frame_buffer_max_frames,
                    "frame_buffer_max_bytes": limits.frame_buffer_max_bytes})
                return self._refused(jobs.UNKNOWN_STAMP, "frame", f"init_target '{target_id}': {why}", why)
            if target_id not in self.target_states and target_id not in self.pending_ids() \
                    and len(self.target_states) >= limits.max_targets:
                return self._refused(jobs.TOO_MANY_TARGETS, "max_targets", f"init_target '{target_id}'", (
                    f"already tracking {len(self.target_states)} targets (max_targets = {limits.max_targets}): stop "
                    f"one first or re-use its id"))
        try:
            if frame.shape is not None:
                validate_box(box, frame.shape)
                check_box_margin(box, frame.shape, limits.box_margin)
        except InputError as err:
            return self._refused(jobs.BAD_BOX, "box", f"init_target '{target_id}': {err}", f"bad box: {err}")
        return self._submit(Job("init", target_id, box=tuple(box), frame=frame))

    def request_stop(self, target_id: str) -> Answer | Job:
        """Stop target_id ("": all of them): the Answer to a request refused at once, else the queued Job."""
        with self.cond:
            if not self.active:
                return self._refused(jobs.INACTIVE, "inactive", f"stop_target {target_id[:64]!r}",
                                     self.inactive_answer())
        return self._submit(Job("stop", target_id))

    def _refused(self, reason: str, kind: str, log: str, message) -> Answer:
        """Count and log a refusal (on_refuse) and answer it; `message` a str or the Answer itself."""
        self.on_refuse(kind, log)
        return message if isinstance(message, Answer) else Answer.refused(reason, message)

    def _submit(self, job: Job) -> Answer | Job:
        limits = self.limits
        with self.cond:
            if self.closed or not self.active:
                return self.inactive_answer()
            if job.kind == "stop" and job.target_id and job.target_id not in self.target_states \
                    and job.target_id not in self.pending_ids():
                # Nothing to stop and no init of it that could still install it: answered now, so that stops of
                # unknown ids never take the queue's places from requests that need the tracker.
                return Answer.refused(jobs.NOT_TRACKED, no_target_message(job.target_id, self.target_states))
            if job.kind == "init":
                # A new init of an id replaces the older one: cancel it queued, abort its catch-up if running.
                for other in list(self.jobs) + [self.running_job]:
                    if other is not None and other.kind == "init" and other.target_id == job.target_id:
                        if other.cancel(jobs.SUPERSEDED, f"superseded by a newer init_target for '{job.target_id}'"):
                            self.on_refuse("superseded", f"init_target '{job.target_id}'")
            waiting = sum(1 for j in self.jobs if not j.finished)
            if waiting >= limits.max_queued_requests:
                return self._refused(jobs.BUSY, "busy", f"{job.kind}_target '{job.target_id}' with {waiting} "
                                     f"requests queued", (f"busy: {waiting} requests are waiting for the tracker "
                                                          f"(max_queued_requests = {limits.max_queued_requests}); "
                                                          f"try again"))
            job.notify = self.on_answer
            self.on_queued(job)
            self.jobs = collections.deque(j for j in self.jobs if not j.finished)
            self.jobs.append(job)
            job.timer = threading.Timer(limits.init_timeout, self._expire, (job, limits.init_timeout))
            job.timer.daemon = True
            job.timer.start()
            self.cond.notify_all()
        return job

    def _expire(self, job: Job, timeout: float) -> None:
        message = (f"timed out after {timeout:g} s waiting for the tracker (init_timeout); the request is "
                   f"cancelled" + (", the target is not installed" if job.kind == "init" else ""))
        if job.cancel(jobs.TIMED_OUT, message):
            self.on_refuse("timeout", f"{job.kind}_target '{job.target_id}'")

    # ------------------------------------------------------------------ the worker
    def _run(self) -> None:
        me = threading.current_thread()
        while self.step(me):
            pass

    def step(self, worker: threading.Thread | None = None, wait: float = 0.5) -> bool:
        """Run the next job, else track the mailbox's frame, waiting up to `wait` s for either; False once the
        engine is closed (or `worker` is no longer its worker)."""
        with self.cond:
            if not self.closed and (worker is None or self._worker is worker) and not self.jobs \
                    and self.frames.mailbox is None:
                self.cond.wait(wait)
            if self.closed or (worker is not None and self._worker is not worker):
                for job in self.jobs:
                    job.finish(Answer.refused(jobs.INACTIVE, "node is shutting down"))
                return False
            job = self.jobs.popleft() if self.jobs else None
            frame = None
            if job is None:
                frame = self.frames.take()
            elif job.finished:  # cancelled (timed out, superseded) while queued
                return True
            self.running_job = job
        try:
            if job is not None:
                self._run_job(job)
            elif frame is not None:
                self._track(frame)
        except Exception as err:  # the worker must survive anything
            if job is not None:
                job.finish(Answer.refused(jobs.FAILED, f"tracker error: {type(err).__name__}: {err}"))
            if not self.closed:
                self.on_error(err)
        finally:
            with self.cond:
                self.running_job = None
        return True

    def _run_job(self, job: Job) -> None:
        if job.kind == "stop":
            if not job.claim():
                return
            ids = self.tracker.targets if job.target_id == "" else [job.target_id]
            stopped = [tid for tid in ids if self.tracker.remove(tid)]
            with self.cond:  # the requests read the target set under this lock (stop of an unknown id)
                for tid in stopped:
                    self.target_states.pop(tid, None)
            if job.target_id == "":
                job.finish(Answer(True, jobs.OK, f"stopped {', '.join(stopped)}" if stopped
                                  else "no targets were tracked"))
            elif stopped:
                job.finish(Answer(True, jobs.OK, f"stopped {job.target_id}"))
            else:
                job.finish(Answer.refused(jobs.NOT_TRACKED, no_target_message(job.target_id, self.tracker.targets)))
            return
        self._run_init(job)

    def _run_init(self, job: Job) -> None:
        from siam_tracker_ros.ros.image_codec import ImageConversionError

        tid, limits = job.target_id, self.limits
        if tid not in self.tracker.targets and len(self.tracker.targets) >= limits.max_targets:
            self.on_refuse("max_targets", f"init_target '{tid}'")
            job.finish(Answer.refused(jobs.TOO_MANY_TARGETS, f"already tracking {len(self.tracker.targets)} "
                                                             f"targets (max_targets = {limits.max_targets})"))
            return
        try:
            img = job.frame.decode()
        except ImageConversionError as err:
            message = f"cannot use the frame {format_stamp(job.frame.stamp_ns)}: {err}"
            self.on_refuse("frame", f"init_target '{tid}': {message}")
            job.finish(Answer.refused(jobs.BAD_FRAME, message))
            return
        s = job.frame.stamp_ns
        with self.cond:
            last = self.last_processed_ns
            catch_up = self.frames.between(s, last) if last is not None else []
        provisional = PROVISIONAL_PREFIX + tid
        done = 0
        try:
            check_box_margin(job.box, img.shape, limits.box_margin)
            self.tracker.init(img, job.box, provisional)
            for f in catch_up:  # track it alone through the frames the others have already been tracked on
                if job.cancelled:
                    return  # answered already (superseded or timed out): stop spending time on it
                try:
                    self.tracker.update(f.decode(), ids=[provisional])
                    done += 1
                except ImageConversionError:
                    continue
            if not job.claim():
                return
            self.tracker.rename(provisional, tid)
        except InputError as err:
            self.on_refuse("box", f"init_target '{tid}': {err}")
            job.finish(Answer.refused(jobs.BAD_BOX, f"bad box: {err}"))
            return
        finally:
            self.tracker.remove(provisional)
        with self.cond:
            if last is None or s > last:
                self.last_processed_ns = s  # frames up to the init frame must not move the new target
            # Still the running job here (it is answered below): a stop of this id meanwhile is queued, not refused.
            self.target_states[tid] = {"state": "initialized", "confidence": 1.0, "box": list(job.box),
                                       "stamp": format_stamp(s), "lost_frames": 0}
        x, y, w, h = job.box
        job.finish(Answer(True, jobs.OK, f"tracking '{tid}' from box ({x:.1f}, {y:.1f}, {w:.1f} x {h:.1f}) on frame "
                                         f"{format_stamp(s)}" + (f", caught up over {done} buffered frames"
                                                                 if catch_up else ""), caught_up_frames=done))

    def _track(self, frame: Frame) -> None:
        with self.cond:
            last = self.last_processed_ns
            if last is not None and frame.stamp_ns <= last:
                # Not newer than what the targets have seen (a target was just initialized on a newer frame, or
                # frames arrived out of order): tracking on it would move the targets back in time.
                self.on_skipped(frame)
                return
            if not self.tracker.targets:
                self.last_processed_ns = frame.stamp_ns
                return
        started = time.monotonic()
        img = frame.decode()  # an ImageConversionError goes to on_error
        decoded = time.monotonic()
        results = self.tracker.update(img)
        stage_s = {"decode": decoded - started, "track": time.monotonic() - decoded}
        with self.cond:
            self.last_processed_ns = frame.stamp_ns
        tracked = {tid: self.tracker.state(tid) for tid in results}
        step = StepResult(frame, img, results, {tid: st["lost_frames"] for tid, st in tracked.items()}, started,
                          {tid: st.get("reacquisitions", 0) for tid, st in tracked.items()}, stage_s)
        extra = (self.on_result(step) if self.on_result is not None else None) or {}
        states = step.states()
        for tid, fields in extra.items():
            states.get(tid, {}).update(fields)
        with self.cond:
            self.target_states = states


__all__ = ["Limits", "StepResult", "TrackingEngine", "missing_frame_message", "no_target_message"]
