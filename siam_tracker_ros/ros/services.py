"""The tracker node's services, init_target and stop_target: the checks of the message (id, box) and the engine's
request; a request the engine queued is awaited by its coroutine on an rclpy Future, completed on an executor thread
through the node's guard condition once the job is answered (by the worker, its timer or a superseding request)."""
from __future__ import annotations

import collections

import numpy as np

from siam_tracker_ros.engine import Answer, Job, jobs
from siam_tracker_ros.tracking.tracker import DEFAULT_TARGET

from . import messages
from .messages import TARGET_ID_PATTERN, stamp_ns


class TargetServices:
    """The service side of `node` (a TrackerNode: its engine, parameters, logger and refusal count)."""

    def __init__(self, node):
        self.node = node
        self._answered: collections.deque[Job] = collections.deque()
        self._answer_guard = None

    def create_guard(self, group) -> None:
        """Answered jobs are handed to the executor through this guard condition: the worker (or a job's timer)
        triggers it, its callback completes the waiting coroutines' futures on an executor thread."""
        self._answer_guard = self.node.create_guard_condition(self._deliver_answers, callback_group=group)

    def target_id_error(self, target_id: str) -> str | None:
        limit = int(self.node.get_parameter("max_target_id_length").value)
        if len(target_id) > limit:
            return f"target_id of {len(target_id)} characters is too long (max_target_id_length = {limit})"
        if not TARGET_ID_PATTERN.fullmatch(target_id):
            return (f"target_id {target_id[:32]!r} has characters other than A-Z a-z 0-9 _ . : / - (ids name "
                    f"diagnostics statuses and log lines)")
        return None

    async def on_init_target(self, request, response):
        target_id = request.target_id or DEFAULT_TARGET
        response.target_id = target_id
        try:
            bad_id = self.target_id_error(target_id)
            if bad_id:
                response.target_id = ""
                answer = self._refused(jobs.BAD_ID, "target_id", f"init_target: {bad_id}", bad_id)
            elif self.node.tracker is None and self.node.engine.active:
                answer = self._refused(jobs.UNAVAILABLE, "unavailable", f"init_target '{target_id}'",
                                       self.node.tracker_error)
            else:
                answer = self._request_init(request, target_id)
            if isinstance(answer, Job):
                answer = await self._wait(answer)
        except Exception as err:  # never let a request take the node down
            answer = Answer.refused(jobs.FAILED, f"internal error: {type(err).__name__}: {err}")
            self.node.get_logger().error(f"init_target '{target_id}': {answer.message}")
        # A refusal was logged once where it was decided (refuse); a success is logged here, with the frame's stamp.
        if answer.success:
            self.node.get_logger().info(f"init_target '{target_id}': {answer.message}")
        return _fill(response, answer)

    def _request_init(self, request, target_id: str):
        """The message's box checked (finite, axis-aligned), then the engine's request."""
        b = request.bbox
        values = [b.center.position.x, b.center.position.y, b.size_x, b.size_y, b.center.theta]
        if self.node.engine.active and not all(np.isfinite(values)):
            why = (f"bbox has NaN or infinite values: centre ({values[0]}, {values[1]}), size {values[2]} x "
                   f"{values[3]}, theta {values[4]}")
        elif self.node.engine.active and abs(b.center.theta) > 1e-6:
            why = f"bbox.center.theta = {b.center.theta}: only axis-aligned boxes (theta 0) are supported"
        else:
            return self.node.engine.request_init(target_id, messages.bbox_to_box(b), stamp_ns(request.header.stamp))
        return self._refused(jobs.BAD_BOX, "box", f"init_target '{target_id}': {why}", f"bad box: {why}")

    async def on_stop_target(self, request, response):
        target_id = request.target_id
        try:
            bad_id = target_id and self.target_id_error(target_id)
            if not self.node.engine.active:
                answer = self._refused(None, "inactive", f"stop_target {target_id[:64]!r}",
                                       self.node.inactive_answer())
            elif bad_id:
                answer = self._refused(jobs.BAD_ID, "target_id", f"stop_target: {bad_id}", bad_id)
            else:
                answer = self.node.engine.request_stop(target_id)
                if isinstance(answer, Job):
                    answer = await self._wait(answer)
                self.node.get_logger().info(f"stop_target '{target_id[:64]}': {answer.message}",
                                            throttle_duration_sec=1.0)
        except Exception as err:
            answer = Answer.refused(jobs.FAILED, f"internal error: {type(err).__name__}: {err}")
        return _fill(response, answer)

    def _refused(self, reason, kind: str, log: str, message) -> Answer:
        """Count and log a refusal and answer it (`message`: the text, or the Answer itself)."""
        self.node.refuse(kind, log)
        return message if isinstance(message, Answer) else Answer.refused(reason, message)

    @staticmethod
    def queued(job: Job) -> None:
        from rclpy.task import Future

        job.future = Future()  # completed on an executor thread by _deliver_answers

    async def _wait(self, job: Job) -> Answer:
        if self.node.executor is None:  # not spun by an executor (direct calls): block
            job.done.wait()
        else:
            await job.future
        return job.answer

    def answered_from_any_thread(self, job: Job) -> None:
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


def _fill(response, answer: Answer):
    """The service response of an Answer (InitTarget's or StopTarget's)."""
    response.success, response.reason, response.message = answer.success, answer.reason, answer.message
    if hasattr(response, "caught_up_frames"):
        response.caught_up_frames = answer.caught_up_frames
    return response
