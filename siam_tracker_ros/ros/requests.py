"""The tracker node's services: checks made at once (target id, box, frame stamp, max_targets), the job queue (busy,
timeout, supersede) and the coroutines that await a job's answer. A mixin of TrackerNode (node.py)."""
from __future__ import annotations

import collections
import re
import threading

import numpy as np

from siam_tracker_ros.tracking.tracker import DEFAULT_TARGET

from . import jobs, messages
from .jobs import Answer, Job
from .messages import format_stamp, stamp_ns

TARGET_ID_PATTERN = re.compile(r"[A-Za-z0-9_.:/-]+")


def no_target_message(target_id: str, tracked) -> str:
    return f"no target '{target_id}' (tracked: {', '.join(sorted(tracked)) or 'none'})"


def missing_frame_message(frames, want: int, limits: dict) -> str:
    """Why the FrameBuffer `frames` has no frame of stamp `want`, and what to change: how much older than the
    buffer it is and the parameter whose limit pushed it out (`limits`: parameter name -> its value), or that it
    is newer than anything received, or that no frame of that stamp came between the buffered ones."""
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


def _fill(response, answer: Answer):
    """The service response of an Answer (InitTarget's or StopTarget's)."""
    response.success, response.reason, response.message = answer.success, answer.reason, answer.message
    if hasattr(response, "caught_up_frames"):
        response.caught_up_frames = answer.caught_up_frames
    return response


class RequestsMixin:
    def _target_id_error(self, target_id: str) -> str | None:
        if len(target_id) > self._max_id_length:
            return (f"target_id of {len(target_id)} characters is too long (max_target_id_length = "
                    f"{self._max_id_length})")
        if not TARGET_ID_PATTERN.fullmatch(target_id):
            return (f"target_id {target_id[:32]!r} has characters other than A-Z a-z 0-9 _ . : / - (ids name "
                    f"diagnostics statuses and log lines)")
        return None

    async def _on_init_target(self, request, response):
        target_id = request.target_id or DEFAULT_TARGET
        try:
            bad_id = self._target_id_error(target_id)
            if bad_id:
                self._refuse("target_id", f"init_target: {bad_id}")
                response.target_id = ""
                return _fill(response, Answer.refused(jobs.BAD_ID, bad_id))
            response.target_id = target_id
            answer = self._init_target(request, target_id)
            if isinstance(answer, Job):
                answer = await self._wait(answer)
        except Exception as err:  # never let a request take the node down
            answer = Answer.refused(jobs.FAILED, f"internal error: {type(err).__name__}: {err}")
            self.get_logger().error(f"init_target '{target_id}': {answer.message}")
        # A refusal was logged once where it was decided (_refuse); a success is logged here, with the frame's stamp.
        if answer.success:
            self.get_logger().info(f"init_target '{target_id}': {answer.message}")
        return _fill(response, answer)

    def _init_target(self, request, target_id: str):
        """The Answer to a request refused at once, else the queued Job."""
        from siam_tracker_ros.tracking import InputError, validate_box
        from siam_tracker_ros.tracking.validation import check_box_margin

        if not self._active:
            self._refuse("inactive", f"init_target '{target_id}'")
            return self._inactive_answer()
        if self.tracker is None:
            self._refuse("unavailable", f"init_target '{target_id}': {self.tracker_error}")
            return Answer.refused(jobs.UNAVAILABLE, self.tracker_error)
        try:
            b = request.bbox
            values = [b.center.position.x, b.center.position.y, b.size_x, b.size_y, b.center.theta]
            if not all(np.isfinite(values)):
                raise InputError(f"bbox has NaN or infinite values: centre ({values[0]}, {values[1]}), "
                                 f"size {values[2]} x {values[3]}, theta {values[4]}")
            if abs(b.center.theta) > 1e-6:
                raise InputError(f"bbox.center.theta = {b.center.theta}: only axis-aligned boxes (theta 0) are "
                                 f"supported")
            box = messages.bbox_to_box(b)
            want = stamp_ns(request.header.stamp)
            with self._cond:
                if not len(self._frames):
                    self._refuse("frame", "init_target before any frame")
                    return Answer.refused(jobs.UNKNOWN_STAMP, f"no frames received yet on {self.image_topic}")
                frame = self._frames.get(want)
                if frame is None:
                    why = missing_frame_message(self._frames, want, {
                        "frame_buffer_seconds": self._buffer_ns / 1e9, "frame_buffer_max_frames": self._buffer_max,
                        "frame_buffer_max_bytes": self._buffer_max_bytes})
                    self._refuse("frame", f"init_target '{target_id}': {why}")
                    return Answer.refused(jobs.UNKNOWN_STAMP, why)
                if target_id not in self._target_states and target_id not in self._pending_ids() \
                        and len(self._target_states) >= self._max_targets:
                    self._refuse("max_targets", f"init_target '{target_id}'")
                    return Answer.refused(jobs.TOO_MANY_TARGETS, (
                        f"already tracking {len(self._target_states)} targets (max_targets = {self._max_targets}): "
                        f"stop one first or re-use its id"))
            if frame.shape is not None:
                validate_box(box, frame.shape)
                check_box_margin(box, frame.shape, self._box_margin)
        except InputError as err:
            self._refuse("box", f"init_target '{target_id}': {err}")
            return Answer.refused(jobs.BAD_BOX, f"bad box: {err}")
        return self._submit(Job("init", target_id, box=box, frame=frame))

    def _pending_ids(self) -> set:
        """Ids with an init that may still install them: queued or being run by the worker (under self._cond)."""
        waiting = list(self._jobs) + [self._running_job]
        return {j.target_id for j in waiting if j is not None and j.kind == "init" and not j.finished}

    async def _on_stop_target(self, request, response):
        logged = False  # a refusal is logged once, by _refuse
        try:
            if not self._active:
                self._refuse("inactive", f"stop_target {request.target_id[:64]!r}")
                answer, logged = self._inactive_answer(), True
            elif self.tracker is None:  # no target can be tracked: stopping all of them is done
                answer = Answer(True, jobs.OK, self.tracker_error) if request.target_id == "" else \
                    Answer.refused(jobs.UNAVAILABLE, self.tracker_error)
            elif request.target_id and self._target_id_error(request.target_id):
                answer = Answer.refused(jobs.BAD_ID, self._target_id_error(request.target_id))
                self._refuse("target_id", f"stop_target: {answer.message}")
                logged = True
            else:
                answer = self._submit(Job("stop", request.target_id))
                if isinstance(answer, Job):
                    answer = await self._wait(answer)
        except Exception as err:
            answer = Answer.refused(jobs.FAILED, f"internal error: {type(err).__name__}: {err}")
        if not logged:
            self.get_logger().info(f"stop_target '{request.target_id[:64]}': {answer.message}",
                                   throttle_duration_sec=1.0)
        return _fill(response, answer)

    def _submit(self, job: Job):
        """Queue a job (the Job), or the Answer refusing it (busy when max_queued_requests jobs already wait)."""
        from rclpy.task import Future

        with self._cond:
            if self._stop or not self._active:
                return self._inactive_answer()
            if job.kind == "stop" and job.target_id and job.target_id not in self._target_states \
                    and job.target_id not in self._pending_ids():
                # Nothing to stop and no init of it that could still install it: answered now, so that stops of
                # unknown ids never take the queue's places from requests that need the tracker. The worker changes
                # its target set (_target_states) and its running job under this same lock.
                return Answer.refused(jobs.NOT_TRACKED, no_target_message(job.target_id, self._target_states))
            if job.kind == "init":
                # A new init of an id replaces the older one: cancel it queued, abort its catch-up if running.
                reason = f"superseded by a newer init_target for '{job.target_id}'"
                for other in list(self._jobs) + [self._running_job]:
                    if other is not None and other.kind == "init" and other.target_id == job.target_id:
                        if other.cancel(jobs.SUPERSEDED, reason):
                            self._refuse("superseded", f"init_target '{job.target_id}'")
            waiting = sum(1 for j in self._jobs if not j.finished)
            if waiting >= self._max_queued:
                self._refuse("busy", f"{job.kind}_target '{job.target_id}' with {waiting} requests queued")
                return Answer.refused(jobs.BUSY, (f"busy: {waiting} requests are waiting for the tracker "
                                                  f"(max_queued_requests = {self._max_queued}); try again"))
            job.future = Future()  # completed on an executor thread by _deliver_answers
            job.notify = self._answered_from_any_thread
            self._jobs = collections.deque(j for j in self._jobs if not j.finished)
            self._jobs.append(job)
            job.timer = threading.Timer(self._init_timeout, self._expire, (job,))
            job.timer.daemon = True
            job.timer.start()
            self._cond.notify()
        return job

    async def _wait(self, job: Job) -> Answer:
        if self.executor is None:  # not spun by an executor (direct calls): block
            job.done.wait()
        else:
            await job.future
        return job.answer

    def _answered_from_any_thread(self, job: Job) -> None:
        """A job was answered (worker, timer or service thread): hand it to the executor through the node's guard
        condition, whose trigger() is rclpy's documented thread-safe way to wake a spinning executor."""
        self._answered.append(job)
        try:
            self._answer_guard.trigger()
        except Exception:  # the node is being destroyed: nobody awaits the answer any more
            pass

    def _deliver_answers(self) -> None:
        """Guard-condition callback (an executor thread): complete the futures of the answered jobs; the executor
        then resumes the coroutines that await them."""
        while self._answered:
            job = self._answered.popleft()
            if job.future is not None and not job.future.done():
                job.future.set_result(job.answer)

    def _expire(self, job: Job) -> None:
        message = (f"timed out after {self._init_timeout:g} s waiting for the tracker (init_timeout); the request is "
                   f"cancelled" + (", the target is not installed" if job.kind == "init" else ""))
        if job.cancel(jobs.TIMED_OUT, message):
            self._refuse("timeout", f"{job.kind}_target '{job.target_id}'")
