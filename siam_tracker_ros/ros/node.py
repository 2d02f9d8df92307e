"""tracker_node: the Siamese tracker as a ROS 2 node.

Run: `ros2 run siam_tracker_ros tracker_node --ros-args -r image:=/camera/image_raw --params-file config/tracker.yaml`
(or `python -m siam_tracker_ros.ros.node ...`). The README's "ROS API" section documents topics, services, parameters
and the lost-state convention; this docstring is about how the node is built.

Threads. The image callbacks only check the message layout and limits and put it into a one-slot mailbox (plus a ring
buffer of the last `frame_buffer_seconds`, bounded in frames and bytes, for init-by-stamp); a frame still in the
mailbox when a newer one arrives is dropped and counted. One worker thread owns the tracker (it is not thread-safe):
it warms up every graph first, then runs queued jobs (init/stop requests, before any frame) and the newest frame.
Services, images and the diagnostics timer are in separate callback groups of a MultiThreadedExecutor.

Requests. The service callbacks are coroutines (reentrant group): a refused request is answered at once; an accepted
one becomes a job for the worker and its callback awaits an rclpy Future that the worker (or the job's timer) sets,
so the executor keeps taking requests meanwhile and none waits in the DDS queue. At most `max_queued_requests` jobs
wait: one more is answered "busy" at once. A job not done within `init_timeout` is answered "timed out" and
cancelled: the worker checks, under the job's lock, that it is still wanted before it installs a target (an init
claims its job before the target is renamed to its own id, a timer that finds it claimed leaves it alone). A new init_target for an id cancels
that id's queued init and aborts its running catch-up.

Init on a past frame. `init_target` names the frame the box was drawn on by its stamp. The worker initializes the
target on that buffered frame under a provisional id and, when the other targets have already been tracked past it,
tracks the new target alone (`tracker.update(frame, ids=[provisional])`) through the buffered frames up to the last
processed one; once its job is claimed it gets its own id (`tracker.rename`), so that all targets then continue
together from the newest frame. The tracker holds every target's state; the node keeps only the snapshot of the
last processed frame that /diagnostics reports.

Failure policy. Bad input never stops the node: malformed or oversized images are logged (throttled), counted in
diagnostics and skipped; bad requests get success=false and a reason, counted per kind (`refused_*`). If the tracker
cannot be created or warmed up at start-up (missing or incompatible weights file, a weights file asking for a model
out of range, unusable backend, bad config file or parameter of any type or range), the node stays up: it logs the
error naming the file, reports it as an ERROR on /diagnostics and answers every init_target with success=false and
that reason.
"""
from __future__ import annotations

import collections
import re
import threading
import time
from pathlib import Path

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image

from siam_tracker_ros.msg import TrackedTargetArray
from siam_tracker_ros.tracking.tracker import DEFAULT_TARGET
from siam_tracker_ros.srv import InitTarget, StopTarget

from . import diagnostics, messages
from .diagnostics import Stats
from .frame_buffer import TIME_JUMP_NS, Frame, FrameBuffer
from .heatmap import render_heatmap
from .image_codec import ImageConversionError, ImageTooLarge, check_layout, compressed_size, converter_name
from .jobs import Job
from .messages import format_stamp, stamp_ns
from .params import PARAMS, TRACKING_PARAMS, descriptor

NODE_NAME = "tracker_node"
# A target being initialised lives in the tracker under this prefix + its id until its job is claimed (not a valid id:
# no request can name it).
PROVISIONAL_PREFIX = " init "
SERVICE_QUEUE_DEPTH = 100
TARGET_ID_PATTERN = re.compile(r"[A-Za-z0-9_.:/-]+")


class TrackerNode(Node):
    def __init__(self, node_name: str = NODE_NAME, **kwargs):
        super().__init__(node_name, **kwargs)
        self.tracker = None
        self.tracker_error = ""
        param_errors = []
        for p in PARAMS:
            try:
                self.declare_parameter(p.name, p.default, descriptor(p))
            except Exception as err:  # an override of the wrong type or out of range: the default, and an ERROR
                param_errors.append(f"parameter {p.name}: {err}")
                self.declare_parameter(p.name, p.default, descriptor(p), ignore_override=True)
        self._read_params()
        self._start_max_targets = self._max_targets  # what the graphs are built for
        self.add_on_set_parameters_callback(self._on_set_parameters)

        self.stats = Stats()
        self._cond = threading.Condition()
        self._frames = FrameBuffer()  # guarded by self._cond
        self._jobs: collections.deque[Job] = collections.deque()
        self._running_job: Job | None = None
        self._stop = False
        # Stamp of the newest frame the targets have been brought to; frames not newer are stale and skipped.
        self._last_processed_ns: int | None = None
        self._target_states: dict[str, dict] = {}
        self._ready = False

        # Tracker (may fail: the node then stays up and says why).
        self.backend_name = "none"
        self.weights_path = ""
        if param_errors:
            self.tracker_error = "tracker unavailable: " + "; ".join(param_errors)
            self.get_logger().error(f"{self.tracker_error}. The node stays up; init_target will fail until it is "
                                    f"restarted with usable parameters.")
        else:
            self._create_tracker()

        # Interfaces.
        self._image_group = MutuallyExclusiveCallbackGroup()
        # Reentrant: the service callbacks are coroutines that wait for the worker without holding a thread.
        self._service_group = ReentrantCallbackGroup()
        self._timer_group = MutuallyExclusiveCallbackGroup()
        if self.get_parameter("reliable_qos").value:
            image_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=self._qos_depth,
                                   reliability=ReliabilityPolicy.RELIABLE)
        else:
            image_qos = QoSProfile(**{k: getattr(qos_profile_sensor_data, k) for k in ("history", "reliability",
                                                                                        "durability")},
                                   depth=self._qos_depth)
        self.image_topic = self.resolve_topic_name("image")
        self._image_sub = self.create_subscription(Image, "image", self._on_image, image_qos,
                                                   callback_group=self._image_group)
        self._compressed_sub = None
        if self.get_parameter("use_compressed").value:
            self._compressed_sub = self.create_subscription(
                CompressedImage, self.image_topic + "/compressed", self._on_compressed, image_qos,
                callback_group=self._image_group)
        self.det_pub = self.create_publisher(messages.Detection2D, "tracked_object", 10)
        self.array_pub = self.create_publisher(messages.Detection2DArray, "tracked_objects", 10)
        self.state_pub = self.create_publisher(TrackedTargetArray, "tracked_objects/state", 10)
        self.heatmap_pub = self.create_publisher(Image, "tracked_object/heatmap", 2)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        # A deep request queue: a burst of calls (several clients, a GUI) must not lose requests while one init runs.
        service_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=SERVICE_QUEUE_DEPTH,
                                 reliability=ReliabilityPolicy.RELIABLE)
        self.create_service(InitTarget, "init_target", self._on_init_target, qos_profile=service_qos,
                            callback_group=self._service_group)
        self.create_service(StopTarget, "stop_target", self._on_stop_target, qos_profile=service_qos,
                            callback_group=self._service_group)
        self._diag_last = time.monotonic()
        self.create_timer(float(self.get_parameter("diagnostics_period").value), self._publish_diagnostics,
                          callback_group=self._timer_group)

        self._worker = threading.Thread(target=self._worker_loop, name="tracker_worker", daemon=True)
        self._worker.start()
        self.get_logger().info(
            f"tracking images from {self.image_topic}"
            f"{' (+ /compressed)' if self._compressed_sub else ''}, "
            f"{'reliable' if self.get_parameter('reliable_qos').value else 'sensor-data'} QoS; "
            f"backend {self.backend_name}; image converter {converter_name()}")

    # ------------------------------------------------------------------ parameters
    def _read_params(self) -> None:
        g = lambda name: self.get_parameter(name).value  # noqa: E731
        self._qos_depth = int(g("qos_depth"))
        self._max_targets = int(g("max_targets"))
        self._buffer_ns = int(float(g("frame_buffer_seconds")) * 1e9)
        self._buffer_max = int(g("frame_buffer_max_frames"))
        self._buffer_max_bytes = int(g("frame_buffer_max_bytes"))
        self._max_pixels = int(g("max_image_pixels"))
        self._max_bytes = int(g("max_image_bytes"))
        self._box_margin = float(g("box_margin"))
        self._max_id_length = int(g("max_target_id_length"))
        self._max_queued = int(g("max_queued_requests"))
        self._init_timeout = float(g("init_timeout"))
        self._class_id = str(g("class_id"))
        self._publish_heatmap = bool(g("publish_heatmap"))
        self._heatmap_alpha = float(g("heatmap_alpha"))

    def _on_set_parameters(self, params) -> SetParametersResult:
        values = {p.name: p.value for p in params}
        spec = {p.name: p for p in PARAMS}
        for name, value in values.items():
            p = spec.get(name)
            if p is not None and p.choices and value not in p.choices:
                return SetParametersResult(successful=False, reason=f"{name} must be one of {', '.join(p.choices)}")
        if "max_targets" in values and hasattr(self, "_start_max_targets") \
                and int(values["max_targets"]) > self._start_max_targets:
            return SetParametersResult(successful=False, reason=(
                f"max_targets can be lowered at run time, not raised above its start-up value "
                f"{self._start_max_targets} (every graph and batch size is built for it): restart the node"))
        lost = values.get("lost_threshold", self.get_parameter("lost_threshold").value)
        found = values.get("found_threshold", self.get_parameter("found_threshold").value)
        if lost > found:
            return SetParametersResult(successful=False,
                                       reason=f"lost_threshold ({lost}) must not exceed found_threshold ({found})")
        # Apply (rclpy has range-checked the values already). Plain attribute writes: the worker reads them per frame.
        tracker = getattr(self, "tracker", None)
        if tracker is not None:
            for name in TRACKING_PARAMS:
                if name in values:
                    setattr(tracker.cfg, name, float(values[name]))
        attrs = {"max_targets": ("_max_targets", int), "frame_buffer_max_frames": ("_buffer_max", int),
                 "frame_buffer_max_bytes": ("_buffer_max_bytes", int), "max_image_pixels": ("_max_pixels", int),
                 "max_image_bytes": ("_max_bytes", int), "box_margin": ("_box_margin", float),
                 "max_target_id_length": ("_max_id_length", int), "max_queued_requests": ("_max_queued", int),
                 "init_timeout": ("_init_timeout", float), "class_id": ("_class_id", str),
                 "publish_heatmap": ("_publish_heatmap", bool), "heatmap_alpha": ("_heatmap_alpha", float)}
        for name, value in values.items():
            if name == "frame_buffer_seconds":
                self._buffer_ns = int(float(value) * 1e9)
            elif name in attrs:
                attr, cast = attrs[name]
                setattr(self, attr, cast(value))
        return SetParametersResult(successful=True)

    def _create_tracker(self) -> None:
        from siam_tracker_ros.backends import default_weights_path
        from siam_tracker_ros.config import Config, ConfigError
        from siam_tracker_ros.model import WeightsError
        from siam_tracker_ros.tracking import SiamTracker

        g = lambda name: self.get_parameter(name).value  # noqa: E731
        weights = str(g("weights")) or str(default_weights_path())
        self.weights_path = weights
        try:
            for p in PARAMS:
                if p.choices and g(p.name) not in p.choices:
                    raise ConfigError(f"parameter {p.name} = {g(p.name)!r}: expected one of {', '.join(p.choices)}")
            cfg = Config.load(g("config_file")) if g("config_file") else Config()
            cfg.backend.name = str(g("backend"))
            cfg.backend.device = str(g("device"))
            cfg.backend.num_threads = int(g("num_threads"))
            cfg.backend.fp16 = bool(g("fp16"))
            cfg.backend.max_targets = self._max_targets  # the batch limit of fixed-range backends (TensorRT)
            for name in TRACKING_PARAMS:
                setattr(cfg.tracking, name, float(g(name)))
            cfg.validate()
            if not Path(weights).is_file():
                raise WeightsError(f"weights file {weights} does not exist (set the 'weights' parameter or "
                                   f"$SIAM_TRACKER_WEIGHTS to a trained .pt file)")
            t0 = time.monotonic()
            self.tracker = SiamTracker.from_config(cfg, weights)
            self.backend_name = self.tracker.backend.describe()
            self.get_logger().info(f"loaded {weights} on {self.backend_name} in {time.monotonic() - t0:.1f} s")
        except Exception as err:  # any error of the configuration or the weights: never take the node down
            self.tracker = None
            kind = "" if isinstance(err, (WeightsError, ConfigError, OSError)) else f"{type(err).__name__}: "
            self.tracker_error = f"tracker unavailable: {kind}{err}"
            self.get_logger().error(f"{self.tracker_error}. The node stays up; init_target will fail until it is "
                                    f"restarted with a usable configuration.")

    # ------------------------------------------------------------------ refusals
    def _refuse(self, kind: str, message: str) -> None:
        """Count a refused input or request in /diagnostics and log it (throttled: a flood costs one line per 5 s)."""
        with self.stats.lock:
            self.stats.refused[kind] = self.stats.refused.get(kind, 0) + 1
            self.stats.last_refusal = f"{kind}: {message}"[:300]
        self.get_logger().warning(f"refused ({kind}): {message[:300]}", throttle_duration_sec=5.0)

    def _target_id_error(self, target_id: str) -> str | None:
        if len(target_id) > self._max_id_length:
            return (f"target_id of {len(target_id)} characters is too long (max_target_id_length = "
                    f"{self._max_id_length})")
        if not TARGET_ID_PATTERN.fullmatch(target_id):
            return (f"target_id {target_id[:32]!r} has characters other than A-Z a-z 0-9 _ . : / - (ids name "
                    f"diagnostics statuses and log lines)")
        return None

    # ------------------------------------------------------------------ image input
    def _on_image(self, msg: Image) -> None:
        try:
            check_layout(msg, self._max_pixels, self._max_bytes)
            self._store(Frame(self._frame_key(msg.header), msg.header, msg, compressed=False,
                               nbytes=len(msg.data), limits=(self._max_pixels, self._max_bytes)))
        except Exception as err:  # ImageConversionError, or anything odd about the message: skip it
            self._conversion_error(err)

    def _on_compressed(self, msg: CompressedImage) -> None:
        try:
            if len(msg.data) == 0:
                raise ImageConversionError("compressed image has no data")
            if len(msg.data) > self._max_bytes:
                raise ImageTooLarge(f"compressed image of {len(msg.data)} bytes is over the limit of "
                                    f"{self._max_bytes} bytes (parameter max_image_bytes)")
            declared = compressed_size(msg.data)  # PNG / JPEG header: refused now rather than when decoded
            if declared is not None and declared[0] * declared[1] > self._max_pixels:
                raise ImageTooLarge(f"compressed image declares {declared[0]}x{declared[1]} pixels, over the limit "
                                    f"of {self._max_pixels} (parameter max_image_pixels)")
            self._store(Frame(self._frame_key(msg.header), msg.header, msg, compressed=True,
                               nbytes=len(msg.data), limits=(self._max_pixels, self._max_bytes)))
        except Exception as err:
            self._conversion_error(err)

    def _frame_key(self, header) -> int:
        """The frame's stamp in ns; a frame without a stamp (driver leaves it zero) gets its arrival time."""
        return stamp_ns(header.stamp) or self.get_clock().now().nanoseconds

    def _conversion_error(self, err: Exception, received: bool = True) -> None:
        """Count and log (throttled) an image that cannot be used; `received`: not counted as received yet."""
        with self.stats.lock:
            self.stats.received += int(received)
            self.stats.conversion_errors += 1
            self.stats.last_conversion_error = str(err)[:300]
        self._refuse("image_too_large" if isinstance(err, ImageTooLarge) else "image_invalid", f"image: {err}")

    def _store(self, frame: Frame) -> None:
        with self._cond:
            if frame.stamp_ns in self._frames:
                return  # the same frame again (raw and compressed both subscribed, or a publisher's resend)
            with self.stats.lock:
                self.stats.received += 1
                self.stats.received_times.append(time.monotonic())
            if len(self._frames) and frame.stamp_ns < self._frames.newest_ns - TIME_JUMP_NS:
                # Time jumped back (bag loop, simulator reset): start over.
                self.get_logger().warning(
                    f"image stamps jumped back from {format_stamp(self._frames.newest_ns)} to "
                    f"{format_stamp(frame.stamp_ns)}: frame buffer cleared", throttle_duration_sec=5.0)
                self._frames.clear()
                self._last_processed_ns = None
            if self._frames.add(frame, self._buffer_max, self._buffer_max_bytes, self._buffer_ns):
                with self.stats.lock:
                    self.stats.dropped += 1
            self._cond.notify()

    # ------------------------------------------------------------------ services
    async def _on_init_target(self, request, response):
        target_id = request.target_id or DEFAULT_TARGET
        try:
            bad_id = self._target_id_error(target_id)
            if bad_id:
                self._refuse("target_id", f"init_target: {bad_id}")
                response.success, response.message, response.target_id = False, bad_id, ""
                return response
            response.target_id = target_id
            result = self._init_target(request, target_id)
            if isinstance(result, Job):
                result = await self._wait(result)
            ok, message = result
        except Exception as err:  # never let a request take the node down
            ok, message = False, f"internal error: {type(err).__name__}: {err}"
        response.success, response.message = ok, message
        if ok:
            self.get_logger().info(f"init_target '{target_id}': {message}", throttle_duration_sec=1.0)
        else:
            self.get_logger().warning(f"init_target '{target_id}' refused: {message}", throttle_duration_sec=1.0)
        return response

    def _init_target(self, request, target_id: str):
        """(False, reason) for a request refused at once, else the queued Job."""
        from siam_tracker_ros.tracking import InputError, validate_box
        from siam_tracker_ros.tracking.tracker import check_box_margin

        if self.tracker is None:
            return False, self.tracker_error
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
                    return False, f"no frames received yet on {self.image_topic}"
                frame = self._frames.get(want)
                if frame is None:
                    oldest, newest = self._frames.oldest_ns, self._frames.newest_ns
                    why = ("newer than the newest frame received: not received (yet)" if want > newest else
                           "older than frame_buffer_seconds, or never received")
                    self._refuse("frame", f"init_target on unknown stamp {format_stamp(want)}")
                    return False, (f"no frame with stamp {format_stamp(want)} in the buffer of the last "
                                   f"{len(self._frames)} frames (stamps {format_stamp(oldest)} .. "
                                   f"{format_stamp(newest)}): {why}")
                if target_id not in self._target_states and target_id not in self._pending_ids() \
                        and len(self._target_states) >= self._max_targets:
                    self._refuse("max_targets", f"init_target '{target_id}'")
                    return False, (f"already tracking {len(self._target_states)} targets (max_targets = "
                                   f"{self._max_targets}): stop one first or re-use its id")
            if frame.shape is not None:
                validate_box(box, frame.shape)
                check_box_margin(box, frame.shape, self._box_margin)
        except InputError as err:
            self._refuse("box", f"init_target '{target_id}': {err}")
            return False, f"bad box: {err}"
        return self._submit(Job("init", target_id, box=box, frame=frame))

    def _pending_ids(self) -> set:
        return {j.target_id for j in self._jobs if j.kind == "init" and not j.finished}

    async def _on_stop_target(self, request, response):
        try:
            if self.tracker is None:
                ok, message = (request.target_id == ""), self.tracker_error
            elif request.target_id and self._target_id_error(request.target_id):
                message = self._target_id_error(request.target_id)
                self._refuse("target_id", f"stop_target: {message}")
                ok = False
            else:
                result = self._submit(Job("stop", request.target_id))
                if isinstance(result, Job):
                    result = await self._wait(result)
                ok, message = result
        except Exception as err:
            ok, message = False, f"internal error: {type(err).__name__}: {err}"
        response.success, response.message = ok, message
        self.get_logger().info(f"stop_target '{request.target_id[:64]}': {message}", throttle_duration_sec=1.0)
        return response

    def _submit(self, job: Job):
        """Queue a job (the Job), or (False, "busy ...") when max_queued_requests jobs already wait."""
        from rclpy.task import Future

        with self._cond:
            if self._stop:
                return False, "node is shutting down"
            if job.kind == "init":
                # A new init of an id replaces the older one: cancel it queued, abort its catch-up if running.
                reason = f"superseded by a newer init_target for '{job.target_id}'"
                for other in list(self._jobs) + [self._running_job]:
                    if other is not None and other.kind == "init" and other.target_id == job.target_id:
                        if other.cancel(reason):
                            self._refuse("superseded", f"init_target '{job.target_id}'")
            waiting = sum(1 for j in self._jobs if not j.finished)
            if waiting >= self._max_queued:
                self._refuse("busy", f"{job.kind}_target '{job.target_id}' with {waiting} requests queued")
                return False, (f"busy: {waiting} requests are waiting for the tracker (max_queued_requests = "
                               f"{self._max_queued}); try again")
            executor = self.executor
            job.future = Future(executor=executor)
            job.future.add_done_callback(lambda _f: None)  # wakes the executor, which then resumes the waiting call
            self._jobs = collections.deque(j for j in self._jobs if not j.finished)
            self._jobs.append(job)
            job.timer = threading.Timer(self._init_timeout, self._expire, (job,))
            job.timer.daemon = True
            job.timer.start()
            self._cond.notify()
        return job

    async def _wait(self, job: Job) -> tuple[bool, str]:
        if self.executor is None:  # not spun by an executor (direct calls): block
            job.done.wait()
        else:
            await job.future
        return job.success, job.message

    def _expire(self, job: Job) -> None:
        if job.cancel(f"timed out after {self._init_timeout:g} s waiting for the tracker (init_timeout); "
                             f"the request is cancelled" + (", the target is not installed" if job.kind == "init"
                                                            else "")):
            self._refuse("timeout", f"{job.kind}_target '{job.target_id}'")

    # ------------------------------------------------------------------ worker
    def _worker_loop(self) -> None:
        self._warm_up()
        while True:
            with self._cond:
                while not self._stop and not self._jobs and self._frames.mailbox is None:
                    self._cond.wait(0.5)
                if self._stop:
                    for job in self._jobs:
                        job.finish(False, "node is shutting down")
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
                    job.finish(False, f"tracker error: {type(err).__name__}: {err}")
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
        max_targets) before the first request, so nothing is exported or built in the middle of tracking."""
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
                self.tracker_error = f"tracker unavailable: warm-up failed: {type(err).__name__}: {err}"
                self.get_logger().error(f"{self.tracker_error}. The node stays up; init_target will fail.")
                self.tracker = None
            finally:
                if self.tracker is not None:
                    self.tracker.remove("__warmup__")
                    self.tracker.reset_timings()
        self._ready = True

    def _run_job(self, job: Job) -> None:
        if self.tracker is None:
            job.finish(job.kind == "stop" and job.target_id == "", self.tracker_error)
            return
        if job.kind == "stop":
            if not job.claim():
                return
            ids = self.tracker.targets if job.target_id == "" else [job.target_id]
            stopped = [tid for tid in ids if self.tracker.remove(tid)]
            for tid in stopped:
                self._target_states.pop(tid, None)
            if job.target_id == "":
                job.finish(True, f"stopped {', '.join(stopped)}" if stopped else "no targets were tracked")
            elif stopped:
                job.finish(True, f"stopped {job.target_id}")
            else:
                job.finish(False, f"no target '{job.target_id}' (tracked: "
                                         f"{', '.join(self.tracker.targets) or 'none'})")
            return
        self._run_init(job)

    def _run_init(self, job: Job) -> None:
        from siam_tracker_ros.tracking import InputError
        from siam_tracker_ros.tracking.tracker import check_box_margin

        tid = job.target_id
        if tid not in self.tracker.targets and len(self.tracker.targets) >= self._max_targets:
            self._refuse("max_targets", f"init_target '{tid}'")
            job.finish(False, f"already tracking {len(self.tracker.targets)} targets "
                                     f"(max_targets = {self._max_targets})")
            return
        try:
            img = job.frame.decode()
        except ImageConversionError as err:
            job.finish(False, f"cannot use the frame {format_stamp(job.frame.stamp_ns)}: {err}")
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
            job.finish(False, f"bad box: {err}")
            return
        finally:
            self.tracker.remove(provisional)
        with self._cond:
            if last is None or s > last:
                self._last_processed_ns = s  # frames up to the init frame must not move the new target
        self._target_states[tid] = {"state": "initialized", "confidence": 1.0, "box": list(job.box),
                                    "stamp": format_stamp(s), "lost_frames": 0}
        x, y, w, h = job.box
        job.finish(True, f"tracking '{tid}' from box ({x:.1f}, {y:.1f}, {w:.1f} x {h:.1f}) on frame "
                                f"{format_stamp(s)}" + (f", caught up over {done} buffered frames" if catch_up
                                                        else ""))

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
        lost_frames = {tid: self.tracker.state(tid)["lost_frames"] for tid in results}
        self.state_pub.publish(messages.make_state_array(header, [
            messages.make_target_state(header, tid, r.box, r.confidence, r.lost, lost_frames[tid])
            for tid, r in results.items()]))
        latency = (self.get_clock().now().nanoseconds - frame.stamp_ns) * 1e-9
        if self._publish_heatmap and self.heatmap_pub.get_subscription_count() > 0:
            from .image_codec import bgr_to_imgmsg

            self.heatmap_pub.publish(bgr_to_imgmsg(render_heatmap(img, results.values(), self._heatmap_alpha),
                                                   header))
            with self.stats.lock:
                self.stats.heatmaps += 1
        done = time.monotonic()
        self._target_states = {
            tid: {"state": messages.STATE_LOST if r.lost else messages.STATE_TRACKED,
                  "confidence": round(float(r.confidence), 3), "box": [round(float(v), 1) for v in r.box],
                  "stamp": format_stamp(frame.stamp_ns), "lost_frames": lost_frames[tid]}
            for tid, r in results.items()}
        with self.stats.lock:
            self.stats.processed += 1
            self.stats.processed_times.append(done)
            self.stats.latencies.append(latency)
            self.stats.proc_times.append(done - t0)

    # ------------------------------------------------------------------ diagnostics
    def _publish_diagnostics(self) -> None:
        try:
            self._publish_diagnostics_unguarded()
        except Exception as err:
            self.get_logger().error(f"diagnostics failed: {type(err).__name__}: {err}", throttle_duration_sec=10.0)

    def _publish_diagnostics_unguarded(self) -> None:
        now = time.monotonic()
        period, self._diag_last = max(now - self._diag_last, 1e-3), now
        if self.tracker is None:
            level, message = DiagnosticStatus.ERROR, self.tracker_error
        elif not self._ready:
            level, message = DiagnosticStatus.OK, "warming up"
        else:
            level, message = None, ""
        values = {"backend": self.backend_name, "weights": self.weights_path, "image_topic": self.image_topic,
                  "image_converter": converter_name(), "frame_buffer_frames": str(len(self._frames)),
                  "frame_buffer_bytes": str(self._frames.nbytes),
                  "queued_requests": str(sum(1 for j in list(self._jobs) if not j.finished))}
        arr = diagnostics.build(self.get_fully_qualified_name(), self.backend_name, self.stats, period,
                                dict(self._target_states), values, level, message)
        arr.header.stamp = self.get_clock().now().to_msg()
        self.diag_pub.publish(arr)

    # ------------------------------------------------------------------ shutdown
    def shutdown(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._worker.join(timeout=5.0)
        for job in list(self._jobs):
            job.finish(False, "node is shutting down")


def main(args=None) -> int:
    rclpy.init(args=args)
    node = None
    try:
        node = TrackerNode()
        executor = MultiThreadedExecutor(num_threads=4)
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.shutdown()
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
