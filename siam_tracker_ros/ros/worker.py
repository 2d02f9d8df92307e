"""The tracker node's worker thread, the only user of the tracker: warm-up, then queued jobs (init / stop) before
frames, and the newest frame. A new target is initialised under a provisional id, caught up alone over the buffered
frames the others were already tracked on (`tracker.update(frame, ids=[...])`) and renamed to its own id only when its
job is still wanted. A mixin of TrackerNode (node.py)."""
from __future__ import annotations

import threading
import time

import numpy as np

from . import messages
from .frame_buffer import Frame
from .heatmap import render_heatmap
from .image_codec import ImageConversionError
from . import jobs
from .jobs import Answer, Job
from .messages import format_stamp
from .requests import no_target_message

# A target being initialised lives in the tracker under this prefix + its id until its job is claimed (not a valid id:
# no request can name it).
PROVISIONAL_PREFIX = " init "


class WorkerMixin:
    def _worker_loop(self) -> None:
        me = threading.current_thread()
        while True:
            with self._cond:
                # Stops on cleanup / shutdown; a worker left behind by a cleanup that could not wait for it is no
                # longer the node's worker once it is configured again.
                while not self._stop and self._worker is me and not self._jobs and self._frames.mailbox is None:
                    self._cond.wait(0.5)
                if self._stop or self._worker is not me:
                    for job in self._jobs:
                        job.finish(Answer.refused(jobs.INACTIVE, "node is shutting down"))
                    return
                job = self._jobs.popleft() if self._jobs else None
                frame = None
                if job is None:
                    frame = self._frames.take()
                elif job.finished:  # cancelled (timed out, superseded) while queued
                    continue
                self._running_job = job
            try:
                if job is not None:
                    self._run_job(job)
                else:
                    self._process(frame)
            except Exception as err:  # the worker must survive anything
                if job is not None:
                    job.finish(Answer.refused(jobs.FAILED, f"tracker error: {type(err).__name__}: {err}"))
                if self._stop or not self.context.ok():
                    continue  # shutting down: the publishers are gone
                with self.stats.lock:
                    self.stats.tracker_errors += 1
                    self.stats.last_tracker_error = f"{type(err).__name__}: {err}"
                self.get_logger().error(f"tracker error: {type(err).__name__}: {err}", throttle_duration_sec=5.0)
            finally:
                with self._cond:
                    self._running_job = None

    def _warm_up(self) -> None:
        """Build and run every graph the tracker can use (each scale set, the lost-mode search, every batch size up to
        max_targets) while the node is configured, so nothing is exported or built in the middle of tracking."""
        if self.tracker is not None:
            t0 = time.monotonic()
            try:
                rng = np.random.default_rng(0)
                img = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
                self.tracker.init(img, (140, 100, 40, 40), "__warmup__")
                self.tracker.update(img)
                self.tracker.remove("__warmup__")
                calls = self.tracker.warm_up(self._start_max_targets)
                self.get_logger().info(f"warmed up {len(calls)} graph calls (up to {self._start_max_targets} targets) "
                                       f"in {time.monotonic() - t0:.1f} s")
            except Exception as err:  # a backend that cannot run its graphs cannot track: ERROR, stay up
                if self._stop:  # the process is ending (its shutdown released the tracker under the warm-up)
                    self.get_logger().info("warm-up abandoned: the node is shutting down")
                    self.tracker = None
                    return
                self.tracker_error = f"tracker unavailable: warm-up failed: {type(err).__name__}: {err}"
                self.get_logger().error(f"{self.tracker_error}. The node stays up, unconfigured.")
                self.tracker = None
            finally:
                if self.tracker is not None:
                    self.tracker.remove("__warmup__")
                    self.tracker.reset_timings()

    def _run_job(self, job: Job) -> None:
        if self.tracker is None:
            stop_all = job.kind == "stop" and job.target_id == ""  # with no tracker no target is left
            job.finish(Answer(True, jobs.OK, self.tracker_error) if stop_all
                       else Answer.refused(jobs.UNAVAILABLE, self.tracker_error))
            return
        if job.kind == "stop":
            if not job.claim():
                return
            ids = self.tracker.targets if job.target_id == "" else [job.target_id]
            stopped = [tid for tid in ids if self.tracker.remove(tid)]
            with self._cond:  # the services read the target set under this lock (stop of an unknown id)
                for tid in stopped:
                    self._target_states.pop(tid, None)
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
        from siam_tracker_ros.tracking import InputError
        from siam_tracker_ros.tracking.validation import check_box_margin

        tid = job.target_id
        if tid not in self.tracker.targets and len(self.tracker.targets) >= self._max_targets:
            self._refuse("max_targets", f"init_target '{tid}'")
            job.finish(Answer.refused(jobs.TOO_MANY_TARGETS, f"already tracking {len(self.tracker.targets)} targets "
                                                             f"(max_targets = {self._max_targets})"))
            return
        try:
            img = job.frame.decode()
        except ImageConversionError as err:
            message = f"cannot use the frame {format_stamp(job.frame.stamp_ns)}: {err}"
            self._refuse("frame", f"init_target '{tid}': {message}")
            job.finish(Answer.refused(jobs.BAD_FRAME, message))
            return
        s = job.frame.stamp_ns
        with self._cond:
            last = self._last_processed_ns
            catch_up = self._frames.between(s, last) if last is not None else []
        # The new target is initialised (and caught up) under a provisional id and installed under its own only if its
        # request is still wanted: a timed-out or superseded init never installs anything.
        provisional = PROVISIONAL_PREFIX + tid
        try:
            check_box_margin(job.box, img.shape, self._box_margin)
            self.tracker.init(img, job.box, provisional)
            done = 0
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
            self._refuse("box", f"init_target '{tid}': {err}")
            job.finish(Answer.refused(jobs.BAD_BOX, f"bad box: {err}"))
            return
        finally:
            self.tracker.remove(provisional)
        with self._cond:
            if last is None or s > last:
                self._last_processed_ns = s  # frames up to the init frame must not move the new target
            # Still the running job here (it is answered below): a stop of this id meanwhile is queued, not refused.
            self._target_states[tid] = {"state": "initialized", "confidence": 1.0, "box": list(job.box),
                                        "stamp": format_stamp(s), "lost_frames": 0}
        x, y, w, h = job.box
        job.finish(Answer(True, jobs.OK, f"tracking '{tid}' from box ({x:.1f}, {y:.1f}, {w:.1f} x {h:.1f}) on frame "
                                         f"{format_stamp(s)}" + (f", caught up over {done} buffered frames" if catch_up
                                                                 else ""), caught_up_frames=done))

    def _process(self, frame: Frame) -> None:
        with self._cond:
            last = self._last_processed_ns
            if last is not None and frame.stamp_ns <= last:
                # Not newer than what the targets have seen (a target was just initialized on a newer frame, or
                # frames arrived out of order): tracking on it would move the targets back in time.
                with self.stats.lock:
                    self.stats.dropped += 1
                return
            if self.tracker is None or not self.tracker.targets:
                self._last_processed_ns = frame.stamp_ns
                return
        t0 = time.monotonic()
        try:
            img = frame.decode()
        except ImageConversionError as err:
            self._conversion_error(err, received=False)
            return
        results = self.tracker.update(img)
        with self._cond:
            self._last_processed_ns = frame.stamp_ns
        header = frame.header
        dets = [messages.detection_from_result(header, r, self._class_id) for r in results.values()]
        for det in dets:
            self.det_pub.publish(det)
        self.array_pub.publish(messages.make_detection_array(header, dets))
        latency = (self.get_clock().now().nanoseconds - frame.stamp_ns) * 1e-9
        # Depth input (depth_input.py): after the 2D output, never before it; {} when off.
        depth = self._depth_step(frame, img.shape, results)
        lost_frames = {tid: self.tracker.state(tid)["lost_frames"] for tid in results}
        self.state_pub.publish(messages.make_state_array(header, [
            messages.make_target_state(header, tid, r.box, r.confidence, r.lost, lost_frames[tid], depth.get(tid))
            for tid, r in results.items()]))
        if self._publish_heatmap and self.heatmap_pub.get_subscription_count() > 0:
            from .image_codec import bgr_to_imgmsg

            distances = {tid: t and t.distance for tid, (t, _) in depth.items()} if self._depth_on else None
            self.heatmap_pub.publish(bgr_to_imgmsg(render_heatmap(img, results.values(), self._heatmap_alpha,
                                                                  distances=distances), header))
            with self.stats.lock:
                self.stats.heatmaps += 1
        done = time.monotonic()
        states = {tid: {"state": messages.STATE_LOST if r.lost else messages.STATE_TRACKED,
                        "confidence": round(float(r.confidence), 3), "box": [round(float(v), 1) for v in r.box],
                        "stamp": format_stamp(frame.stamp_ns), "lost_frames": lost_frames[tid],
                        **self._depth_fields(depth, tid)}
                  for tid, r in results.items()}
        with self._cond:
            self._target_states = states
        with self.stats.lock:
            self.stats.processed += 1
            self.stats.processed_times.append(done)
            self.stats.latencies.append(latency)
            self.stats.proc_times.append(done - t0)
