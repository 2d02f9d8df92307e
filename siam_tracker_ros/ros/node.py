"""tracker_node: the Siamese tracker as a ROS 2 node.

Run: `ros2 run siam_tracker_ros tracker_node --ros-args -r image:=/camera/image_raw --params-file config/tracker.yaml`
(or `python -m siam_tracker_ros.ros.node ...`). The README's "ROS API" section documents topics, services, parameters
and the lost-state convention; this docstring is about how the node is built.

Threads. The image callbacks only check the message layout and put it into a one-slot mailbox (plus a ring buffer of
the last `frame_buffer_seconds`, for init-by-stamp); a frame still in the mailbox when a newer one arrives is dropped
and counted. One worker thread owns the tracker (it is not thread-safe): it runs queued jobs (init/stop requests,
before any frame) and then the newest frame. Services, images and the diagnostics timer are in separate callback
groups of a MultiThreadedExecutor, so a service call is answered while a frame is being processed.

Init on a past frame. `init_target` names the frame the box was drawn on by its stamp. The worker initializes the
target on that buffered frame and, when the other targets have already been tracked past it, tracks the new target
alone through the buffered frames up to the last processed one (a second tracker on the same backend), so that all
targets then continue together from the newest frame.

Failure policy. Bad input never stops the node: malformed images are logged (throttled), counted in diagnostics and
skipped; bad requests get success=false and a reason. If the tracker cannot be created at start-up (missing or
incompatible weights file, unusable backend, bad config file), the node stays up: it logs the error naming the file,
reports it as an ERROR on /diagnostics and answers every init_target with success=false and that reason.
"""
from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image

from siam_tracker_ros.srv import InitTarget, StopTarget

from . import messages
from .heatmap import render_heatmap
from .image_codec import ImageConversionError, check_layout, compressed_to_bgr, converter_name, imgmsg_to_bgr

NODE_NAME = "tracker_node"
DEFAULT_TARGET = "default"
INIT_TIMEOUT_S = 30.0
LATENCY_SAMPLES = 300
TIME_JUMP_NS = 1_000_000_000  # an image stamp this far behind the newest one means the clock was reset
SERVICE_QUEUE_DEPTH = 100


# ---------------------------------------------------------------------------------------------------- parameters
@dataclass(frozen=True)
class Param:
    name: str
    default: object
    description: str
    read_only: bool = False
    range: tuple | None = None  # (from, to) for numbers
    choices: tuple | None = None  # allowed strings (checked by the node; documented in the descriptor)


PARAMS: tuple[Param, ...] = (
    Param("weights", "", "Tracker weights file (.pt). Empty: the shipped weights (weights/siam_default.pt, "
          "overridden by $SIAM_TRACKER_WEIGHTS).", read_only=True),
    Param("config_file", "", "YAML file of tracker hyper-parameters (siam_tracker_ros Config: tracking/backend "
          "sections). Empty: built-in defaults. Parameters of this node override the same keys.", read_only=True),
    Param("backend", "auto", "Inference backend: auto (fastest available), torch, onnxruntime or tensorrt.",
          read_only=True, choices=("auto", "torch", "onnxruntime", "tensorrt")),
    Param("device", "auto", "Inference device: auto (CUDA when available), cpu or cuda.", read_only=True,
          choices=("auto", "cpu", "cuda")),
    Param("num_threads", 0, "CPU threads of the backend; 0 = the library default.", read_only=True, range=(0, 256)),
    Param("fp16", True, "Half precision on CUDA (ignored on CPU).", read_only=True),
    Param("max_targets", 4, "Most targets tracked at once; init_target for one more fails.", range=(1, 64)),
    Param("lost_threshold", 0.35, "Confidence below which a target is reported lost (must be <= "
          "found_threshold).", range=(0.0, 1.0)),
    Param("found_threshold", 0.5, "Confidence above which a lost target is re-acquired.", range=(0.0, 1.0)),
    Param("window_influence", 0.176, "Weight of the cosine window (motion prior) on the response map.",
          range=(0.0, 1.0)),
    Param("reliable_qos", False, "Subscribe to images with RELIABLE QoS; false = sensor-data QoS (best effort).",
          read_only=True),
    Param("qos_depth", 2, "History depth of the image subscriptions.", read_only=True, range=(1, 100)),
    Param("use_compressed", False, "Also subscribe to <image>/compressed (sensor_msgs/CompressedImage, decoded "
          "with OpenCV).", read_only=True),
    Param("frame_buffer_seconds", 2.0, "How far back init_target may name a frame by its stamp (ring buffer of "
          "received frames).", range=(0.0, 30.0)),
    Param("frame_buffer_max_frames", 120, "Most frames kept in the ring buffer (bounds memory).", range=(1, 2000)),
    Param("class_id", "target", "results[0].hypothesis.class_id of the published detections."),
    Param("publish_heatmap", True, "Publish tracked_object/heatmap while it has subscribers (computed only then)."),
    Param("heatmap_alpha", 0.5, "Opacity of the coloured response map in the heatmap image.", range=(0.0, 1.0)),
    Param("diagnostics_period", 1.0, "Seconds between /diagnostics messages.", read_only=True, range=(0.1, 60.0)),
)
TRACKING_PARAMS = ("lost_threshold", "found_threshold", "window_influence")


def _descriptor(p: Param) -> ParameterDescriptor:
    d = ParameterDescriptor(description=p.description, read_only=p.read_only)
    if p.choices:
        d.additional_constraints = "one of: " + ", ".join(p.choices)
    if p.range is not None:
        lo, hi = p.range
        if isinstance(p.default, float):
            d.floating_point_range = [FloatingPointRange(from_value=float(lo), to_value=float(hi), step=0.0)]
        else:
            d.integer_range = [IntegerRange(from_value=int(lo), to_value=int(hi), step=1)]
    return d


# ---------------------------------------------------------------------------------------------------- internals
def stamp_ns(stamp) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def format_stamp(ns: int) -> str:
    return f"{ns // 1_000_000_000}.{ns % 1_000_000_000:09d}"


@dataclass
class _Frame:
    stamp_ns: int
    header: object
    msg: object
    compressed: bool

    def decode(self) -> np.ndarray:
        return compressed_to_bgr(self.msg) if self.compressed else imgmsg_to_bgr(self.msg)

    @property
    def shape(self):
        """(height, width) from the message, or None for a compressed frame (known only after decoding)."""
        return None if self.compressed else (int(self.msg.height), int(self.msg.width))


@dataclass
class _Job:
    kind: str  # "init" | "stop"
    target_id: str
    box: tuple | None = None
    frame: _Frame | None = None
    done: threading.Event = field(default_factory=threading.Event)
    cancelled: bool = False
    success: bool = False
    message: str = ""


class _Stats:
    """Counters and recent samples behind /diagnostics (written by callbacks and worker, read by the timer)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.received = 0
        self.processed = 0  # frames tracked (at least one target)
        self.dropped = 0  # frames replaced in the mailbox before the worker got to them
        self.conversion_errors = 0
        self.tracker_errors = 0
        self.heatmaps = 0  # heatmap images rendered and published (only while subscribed)
        self.last_conversion_error = ""
        self.last_tracker_error = ""
        self.latencies = collections.deque(maxlen=LATENCY_SAMPLES)  # image stamp -> publish, seconds
        self.proc_times = collections.deque(maxlen=LATENCY_SAMPLES)  # tracker.update + publish, seconds
        self.processed_times = collections.deque(maxlen=1000)  # monotonic times of processed frames
        self.received_times = collections.deque(maxlen=1000)


# ---------------------------------------------------------------------------------------------------- node
class TrackerNode(Node):
    def __init__(self, node_name: str = NODE_NAME, **kwargs):
        super().__init__(node_name, **kwargs)
        for p in PARAMS:
            self.declare_parameter(p.name, p.default, _descriptor(p))
        self._read_params()
        self.add_on_set_parameters_callback(self._on_set_parameters)

        self.stats = _Stats()
        self._cond = threading.Condition()
        self._mailbox: _Frame | None = None
        self._buffer: "collections.OrderedDict[int, _Frame]" = collections.OrderedDict()
        self._jobs: collections.deque[_Job] = collections.deque()
        self._stop = False
        # Stamp of the newest frame the targets have been brought to; frames not newer are stale and skipped.
        self._last_processed_ns: int | None = None
        self._target_states: dict[str, dict] = {}
        self._ready = False

        # Tracker (may fail: the node then stays up and says why).
        self.tracker = None
        self.tracker_error = ""
        self.backend_name = "none"
        self.weights_path = ""
        self._create_tracker()

        # Interfaces.
        self._image_group = MutuallyExclusiveCallbackGroup()
        self._service_group = MutuallyExclusiveCallbackGroup()
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
        for name, value in values.items():
            if name == "max_targets":
                self._max_targets = int(value)
            elif name == "frame_buffer_seconds":
                self._buffer_ns = int(float(value) * 1e9)
            elif name == "frame_buffer_max_frames":
                self._buffer_max = int(value)
            elif name == "class_id":
                self._class_id = str(value)
            elif name == "publish_heatmap":
                self._publish_heatmap = bool(value)
            elif name == "heatmap_alpha":
                self._heatmap_alpha = float(value)
        return SetParametersResult(successful=True)

    def _create_tracker(self) -> None:
        from siam_tracker_ros.backends import BackendError, default_weights_path
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
        except (WeightsError, BackendError, ConfigError, OSError, ValueError) as err:
            self.tracker = None
            self.tracker_error = f"tracker unavailable: {err}"
            self.get_logger().error(f"{self.tracker_error}. The node stays up; init_target will fail until it is "
                                    f"restarted with a usable configuration.")

    # ------------------------------------------------------------------ image input
    def _on_image(self, msg: Image) -> None:
        try:
            check_layout(msg)
            self._store(_Frame(self._frame_key(msg.header), msg.header, msg, compressed=False))
        except Exception as err:  # ImageConversionError, or anything odd about the message: skip it
            self._conversion_error(err)

    def _on_compressed(self, msg: CompressedImage) -> None:
        try:
            if len(msg.data) == 0:
                raise ImageConversionError("compressed image has no data")
            self._store(_Frame(self._frame_key(msg.header), msg.header, msg, compressed=True))
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
            self.stats.last_conversion_error = str(err)
        self.get_logger().warning(f"skipping image: {err}", throttle_duration_sec=5.0)

    def _store(self, frame: _Frame) -> None:
        with self._cond:
            if frame.stamp_ns in self._buffer:
                return  # the same frame again (raw and compressed both subscribed, or a publisher's resend)
            with self.stats.lock:
                self.stats.received += 1
                self.stats.received_times.append(time.monotonic())
            if self._buffer:
                newest = next(reversed(self._buffer))
                if frame.stamp_ns < newest - TIME_JUMP_NS:
                    # Time jumped back (bag loop, simulator reset): start over.
                    self.get_logger().warning(
                        f"image stamps jumped back from {format_stamp(newest)} to {format_stamp(frame.stamp_ns)}: "
                        f"frame buffer cleared")
                    self._buffer.clear()
                    self._last_processed_ns = None
            self._buffer[frame.stamp_ns] = frame
            if frame.stamp_ns < next(reversed(self._buffer)):  # out of order: keep the buffer sorted by stamp
                self._buffer = collections.OrderedDict(sorted(self._buffer.items()))
            newest = next(reversed(self._buffer))
            while self._buffer and (len(self._buffer) > self._buffer_max
                                    or next(iter(self._buffer)) < newest - self._buffer_ns):
                if len(self._buffer) == 1:
                    break
                self._buffer.popitem(last=False)
            if self._mailbox is not None:
                with self.stats.lock:
                    self.stats.dropped += 1
            self._mailbox = frame
            self._cond.notify()

    # ------------------------------------------------------------------ services
    def _on_init_target(self, request, response):
        target_id = request.target_id or DEFAULT_TARGET
        response.target_id = target_id
        try:
            ok, message = self._init_target(request, target_id)
        except Exception as err:  # never let a request take the node down
            ok, message = False, f"internal error: {type(err).__name__}: {err}"
        response.success, response.message = ok, message
        if ok:
            self.get_logger().info(f"init_target '{target_id}': {message}")
        else:
            self.get_logger().warning(f"init_target '{target_id}' refused: {message}", throttle_duration_sec=1.0)
        return response

    def _init_target(self, request, target_id: str) -> tuple[bool, str]:
        from siam_tracker_ros.tracking import InputError, validate_box

        if self.tracker is None:
            return False, self.tracker_error
        try:
            b = request.bbox
            values = [b.center.position.x, b.center.position.y, b.size_x, b.size_y, b.center.theta]
            if not all(np.isfinite(values)):
                return False, f"bbox has NaN or infinite values: centre ({values[0]}, {values[1]}), " \
                              f"size {values[2]} x {values[3]}, theta {values[4]}"
            if abs(b.center.theta) > 1e-6:
                return False, f"bbox.center.theta = {b.center.theta}: only axis-aligned boxes (theta 0) are supported"
            box = messages.bbox_to_box(b)
            want = stamp_ns(request.header.stamp)
            with self._cond:
                if not self._buffer:
                    return False, f"no frames received yet on {self.image_topic}"
                if want == 0:
                    frame = self._buffer[next(reversed(self._buffer))]
                else:
                    frame = self._buffer.get(want)
                    if frame is None:
                        oldest, newest = next(iter(self._buffer)), next(reversed(self._buffer))
                        why = ("newer than the newest frame received: not received (yet)" if want > newest else
                               "older than frame_buffer_seconds, or never received")
                        return False, (f"no frame with stamp {format_stamp(want)} in the buffer of the last "
                                       f"{len(self._buffer)} frames (stamps {format_stamp(oldest)} .. "
                                       f"{format_stamp(newest)}): {why}")
                if target_id not in self._target_states and target_id not in self._pending_ids() \
                        and len(self._target_states) >= self._max_targets:
                    return False, (f"already tracking {len(self._target_states)} targets (max_targets = "
                                   f"{self._max_targets}): stop one first or re-use its id")
            if frame.shape is not None:
                validate_box(box, frame.shape)
            job = _Job("init", target_id, box=box, frame=frame)
            return self._submit(job)
        except InputError as err:
            return False, f"bad box: {err}"
        except Exception as err:  # never let a request take the node down
            return False, f"internal error: {type(err).__name__}: {err}"

    def _pending_ids(self) -> set:
        return {j.target_id for j in self._jobs if j.kind == "init"}

    def _on_stop_target(self, request, response):
        if self.tracker is None:
            response.success, response.message = (request.target_id == ""), self.tracker_error
            return response
        try:
            ok, message = self._submit(_Job("stop", request.target_id))
        except Exception as err:
            ok, message = False, f"internal error: {type(err).__name__}: {err}"
        response.success, response.message = ok, message
        self.get_logger().info(f"stop_target '{request.target_id}': {message}", throttle_duration_sec=1.0)
        return response

    def _submit(self, job: _Job) -> tuple[bool, str]:
        with self._cond:
            self._jobs.append(job)
            self._cond.notify()
        if not job.done.wait(INIT_TIMEOUT_S):
            job.cancelled = True
            return False, f"timed out after {INIT_TIMEOUT_S:.0f} s waiting for the tracker"
        return job.success, job.message

    # ------------------------------------------------------------------ worker
    def _worker_loop(self) -> None:
        self._warm_up()
        while True:
            with self._cond:
                while not self._stop and not self._jobs and self._mailbox is None:
                    self._cond.wait(0.5)
                if self._stop:
                    for job in self._jobs:
                        job.success, job.message = False, "node is shutting down"
                        job.done.set()
                    return
                job = self._jobs.popleft() if self._jobs else None
                frame = None
                if job is None:
                    frame, self._mailbox = self._mailbox, None
            try:
                if job is not None:
                    if not job.cancelled:
                        self._run_job(job)
                    job.done.set()
                else:
                    self._process(frame)
            except Exception as err:  # the worker must survive anything
                if job is not None:
                    job.success, job.message = False, f"tracker error: {type(err).__name__}: {err}"
                    job.done.set()
                if self._stop or not self.context.ok():
                    continue  # shutting down: the publishers are gone
                with self.stats.lock:
                    self.stats.tracker_errors += 1
                    self.stats.last_tracker_error = f"{type(err).__name__}: {err}"
                self.get_logger().error(f"tracker error: {type(err).__name__}: {err}", throttle_duration_sec=5.0)

    def _warm_up(self) -> None:
        """One init + update on a synthetic frame, so the first real request does not pay for lazy set-up."""
        if self.tracker is not None:
            try:
                rng = np.random.default_rng(0)
                img = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
                self.tracker.init(img, (140, 100, 40, 40), "__warmup__")
                self.tracker.update(img)
            except Exception as err:
                self.get_logger().warning(f"warm-up failed: {err}")
            finally:
                self.tracker.remove("__warmup__")
                self.tracker.reset_timings()
        self._ready = True

    def _run_job(self, job: _Job) -> None:
        if job.kind == "stop":
            ids = self.tracker.targets if job.target_id == "" else [job.target_id]
            stopped = [tid for tid in ids if self.tracker.remove(tid)]
            for tid in stopped:
                self._target_states.pop(tid, None)
            if job.target_id == "":
                job.success = True
                job.message = f"stopped {', '.join(stopped)}" if stopped else "no targets were tracked"
            elif stopped:
                job.success, job.message = True, f"stopped {job.target_id}"
            else:
                job.success = False
                job.message = f"no target '{job.target_id}' (tracked: {', '.join(self.tracker.targets) or 'none'})"
            return
        self._run_init(job)

    def _run_init(self, job: _Job) -> None:
        from siam_tracker_ros.tracking import InputError, SiamTracker

        tid = job.target_id
        if tid not in self.tracker.targets and len(self.tracker.targets) >= self._max_targets:
            job.success, job.message = False, (f"already tracking {len(self.tracker.targets)} targets "
                                               f"(max_targets = {self._max_targets})")
            return
        try:
            img = job.frame.decode()
        except ImageConversionError as err:
            job.success, job.message = False, f"cannot use the frame {format_stamp(job.frame.stamp_ns)}: {err}"
            return
        s = job.frame.stamp_ns
        with self._cond:
            last = self._last_processed_ns
            catch_up = [f for ns, f in self._buffer.items() if last is not None and s < ns <= last]
        try:
            if not catch_up:
                self.tracker.init(img, job.box, tid)
            else:
                # Track the new target alone through the frames the others have already been tracked on.
                side = SiamTracker(self.tracker.backend, self.tracker.cfg)
                side.init(img, job.box, tid)
                for f in catch_up:
                    try:
                        side.update(f.decode())
                    except ImageConversionError:
                        continue
                self.tracker.adopt(tid, side)  # hand the caught-up state over
        except InputError as err:
            job.success, job.message = False, f"bad box: {err}"
            return
        with self._cond:
            if last is None or s > last:
                self._last_processed_ns = s  # frames up to the init frame must not move the new target
        self._target_states[tid] = {"state": "initialized", "confidence": 1.0, "box": list(job.box),
                                    "stamp": format_stamp(s), "lost_frames": 0}
        x, y, w, h = job.box
        job.success = True
        job.message = (f"tracking '{tid}' from box ({x:.1f}, {y:.1f}, {w:.1f} x {h:.1f}) on frame "
                       f"{format_stamp(s)}" + (f", caught up over {len(catch_up)} buffered frames" if catch_up
                                               else ""))

    def _process(self, frame: _Frame) -> None:
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
                  "stamp": format_stamp(frame.stamp_ns), "lost_frames": self.tracker.state(tid)["lost_frames"]}
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
        period = max(now - self._diag_last, 1e-3)
        self._diag_last = now
        s = self.stats
        with s.lock:
            rate = sum(1 for t in s.processed_times if t > now - period) / period
            in_rate = sum(1 for t in s.received_times if t > now - period) / period
            lat = np.array(s.latencies) if s.latencies else None
            proc = np.array(s.proc_times) if s.proc_times else None
            counts = dict(received=s.received, processed=s.processed, dropped=s.dropped,
                          conversion_errors=s.conversion_errors, tracker_errors=s.tracker_errors,
                          heatmaps_published=s.heatmaps)
            last_conv, last_err = s.last_conversion_error, s.last_tracker_error
        states = dict(self._target_states)
        name = self.get_fully_qualified_name()

        main = DiagnosticStatus(name=f"{name}: tracker", hardware_id=self.backend_name)
        if self.tracker is None:
            main.level, main.message = DiagnosticStatus.ERROR, self.tracker_error
        elif not self._ready:
            main.level, main.message = DiagnosticStatus.OK, "warming up"
        elif any(st["state"] == messages.STATE_LOST for st in states.values()):
            main.level, main.message = DiagnosticStatus.WARN, "target lost: " + ", ".join(
                tid for tid, st in states.items() if st["state"] == messages.STATE_LOST)
        elif counts["conversion_errors"] and last_conv:
            main.level, main.message = DiagnosticStatus.WARN, f"skipping images: {last_conv}"
        else:
            main.level = DiagnosticStatus.OK
            main.message = f"tracking {len(states)} target(s)" if states else "idle: no target"

        def ms(a, q):
            return f"{np.percentile(a, q) * 1e3:.1f}" if a is not None else "n/a"

        values = {
            "backend": self.backend_name, "weights": self.weights_path, "image_topic": self.image_topic,
            "image_converter": converter_name(), "processing_rate_hz": f"{rate:.2f}",
            "input_rate_hz": f"{in_rate:.2f}", **{k: str(v) for k, v in counts.items()},
            "latency_median_ms": ms(lat, 50), "latency_p95_ms": ms(lat, 95),
            "processing_time_median_ms": ms(proc, 50), "targets": str(len(states)),
            "frame_buffer_frames": str(len(self._buffer)),
            "last_conversion_error": last_conv, "last_tracker_error": last_err,
        }
        main.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        statuses = [main]
        for tid, st in sorted(states.items()):
            ts = DiagnosticStatus(name=f"{name}: target {tid}", hardware_id=self.backend_name)
            ts.level = DiagnosticStatus.WARN if st["state"] == messages.STATE_LOST else DiagnosticStatus.OK
            ts.message = st["state"]
            ts.values = [KeyValue(key=k, value=str(v)) for k, v in st.items()]
            statuses.append(ts)
        arr = DiagnosticArray(status=statuses)
        arr.header.stamp = self.get_clock().now().to_msg()
        self.diag_pub.publish(arr)

    # ------------------------------------------------------------------ shutdown
    def shutdown(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._worker.join(timeout=5.0)


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
