"""tracker_node: the Siamese tracker as a ROS 2 node.

Run: `ros2 run siam_tracker_ros tracker_node --ros-args -r image:=/camera/image_raw --params-file config/tracker.yaml`
(or `python -m siam_tracker_ros.ros.node ...`). The README's "ROS API" section documents topics, services, parameters
and the lost-state convention; this docstring is about how the node is built.

Lifecycle. A managed node (rclpy.lifecycle.Node): configure reads the parameters, creates the tracker and warms up
every graph, creates the publishers (lifecycle publishers, off until activated) and starts the worker; activate
creates the image subscriptions and enables the publishers and services; deactivate undoes that but keeps the model
and the targets; cleanup stops the worker and frees the model; shutdown does both. The diagnostics and the lifecycle
services exist in every state; outside active, init_target and stop_target answer "node inactive (<state>)" at once.

When the services appear. With the `autostart` parameter (default true) a one-shot timer configures and activates the
node once it spins, and only then creates init_target and stop_target (or, when the configuration fails, creates
them to answer with the reason). So `wait_for_service('/init_target')` means what a client takes it to mean: the node
is active and subscribed to its images, and a call made at once is served. A request that waits during the warm-up
instead would hold a client for as long as the warm-up takes (a TensorRT build: minutes) behind a service that looks
ready. With `autostart` false (managed by a lifecycle manager) the services exist from the start, in every state: the
manager, not the service's presence, says when the node serves.

Parameters and config_file. The parameters that are fields of the tracker's Config (CONFIG_FIELDS: the thresholds,
window_influence, backend, device, num_threads, fp16, model, max_targets) take config_file's value unless they are
set explicitly (a start-up override: -p, a params file, launch; or a set at run time); configure then writes the
values in use into the parameters that are not read-only.

Shutdown. main() handles SIGINT / SIGTERM itself (lifetime.StopSignals): the first ends the spin, any later one is
only noted, and the interpreter's exit ignores them, so the exit code is 0 however many Ctrl-C come.

Threads. The image callbacks only check the message layout and limits and put it into a one-slot mailbox (plus a ring
buffer of the last `frame_buffer_seconds`, bounded in frames and bytes, for init-by-stamp); a frame still in the
mailbox when a newer one arrives is dropped and counted. One worker thread owns the tracker (it is not thread-safe):
it warms up every graph first, then runs queued jobs (init/stop requests, before any frame) and the newest frame.
Services, images and the diagnostics timer are in separate callback groups of a MultiThreadedExecutor.

Requests. The service callbacks are coroutines (reentrant group): a refused request is answered at once; an accepted
one becomes a job for the worker and its callback awaits an rclpy Future. Whoever answers the job (the worker, its
timer, a superseding request) triggers the node's guard condition; its callback, on an executor thread, completes
the future, and the executor resumes the coroutine. The executor keeps taking requests meanwhile, and the services'
KEEP_ALL queues never drop one. At most `max_queued_requests` jobs
wait: one more is answered "busy" at once. A job not done within `init_timeout` is answered "timed out" and
cancelled: the worker checks, under the job's lock, that it is still wanted before it installs a target (an init
claims its job before the target is renamed to its own id, a timer that finds it claimed leaves it alone). A new
init_target for an id cancels
that id's queued init and aborts its running catch-up.

Init on a past frame. `init_target` names the frame the box was drawn on by its stamp. The worker initializes the
target on that buffered frame under a provisional id and, when the other targets have already been tracked past it,
tracks the new target alone (`tracker.update(frame, ids=[provisional])`) through the buffered frames up to the last
processed one; once its job is claimed it gets its own id (`tracker.rename`), so that all targets then continue
together from the newest frame. The tracker holds every target's state; the node keeps only the snapshot of the
last processed frame that /diagnostics reports.

Failure policy. Bad input never stops the node: malformed or oversized images are logged (throttled), counted in
diagnostics and skipped; bad requests get success=false and a reason, counted per kind (`refused_*`). If the tracker
cannot be created or warmed up in configure (missing or incompatible weights file, a weights file asking for a model
out of range, unusable backend, bad config file or parameter of any type or range), the transition fails and the
node stays up, unconfigured: it logs the error naming the file, reports it as an ERROR on /diagnostics and answers
every init_target with success=false and that reason.
"""
from __future__ import annotations

import collections
import sys
import threading
import time
from pathlib import Path

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn
from rclpy.lifecycle import Node as LifecycleNode
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image

from siam_tracker_ros.msg import TrackedTargetArray
from siam_tracker_ros.srv import InitTarget, StopTarget

from . import diagnostics, jobs, messages
from .depth_input import DepthMixin
from .diagnostics import Stats
from .frame_buffer import TIME_JUMP_NS, Frame, FrameBuffer
from .image_codec import ImageConversionError, ImageTooLarge, check_layout, compressed_size, converter_name
from .jobs import Answer, Job
from .lifetime import StopSignals, close_node
from .messages import format_stamp, stamp_ns
from .params import CONFIG_FIELDS, PARAMS, TRACKING_PARAMS, descriptor
from .requests import RequestsMixin
from .worker import WorkerMixin

NODE_NAME = "tracker_node"


class TrackerNode(RequestsMixin, WorkerMixin, DepthMixin, LifecycleNode):
    """The node: lifecycle, parameters, interfaces, image input and diagnostics here; the service side in
    requests.py, the worker thread (which alone uses the tracker) in worker.py, the optional depth input in
    depth_input.py."""

    def __init__(self, node_name: str = NODE_NAME, **kwargs):
        super().__init__(node_name, **kwargs)
        self.tracker = None
        self.tracker_error = ""
        self._param_errors = []
        for p in PARAMS:
            try:
                self.declare_parameter(p.name, p.default, descriptor(p))
            except Exception as err:  # an override of the wrong type or out of range: the default, and an ERROR
                self._param_errors.append(f"parameter {p.name}: {err}")
                self.declare_parameter(p.name, p.default, descriptor(p), ignore_override=True)
        # Parameters set explicitly (start-up overrides: --ros-args -p, a params file, launch; or set at run time):
        # they win over config_file's values. rclpy keeps the start-up overrides in _parameter_overrides (no public
        # accessor).
        self._explicit_params = set(getattr(self, "_parameter_overrides", {}))
        self._syncing_params = False  # configure writing config_file's values into the parameters: not explicit
        self._read_params()
        self._start_max_targets = self._max_targets  # what the graphs are built for (set again by configure)
        # Checked in the on-set callback, applied in the post-set one (only once rclpy has set them).
        self.add_on_set_parameters_callback(self._check_parameters)
        self.add_post_set_parameters_callback(self._apply_parameters)

        self.stats = Stats()
        self._cond = threading.Condition()
        self._frames = FrameBuffer()  # guarded by self._cond
        self._jobs: collections.deque[Job] = collections.deque()
        self._running_job: Job | None = None
        self._stop = False
        self._active = False  # guarded by self._cond: services and images are served only while active
        self._lifecycle_state = "unconfigured"  # for /diagnostics and the services' answers
        # Stamp of the newest frame the targets have been brought to; frames not newer are stale and skipped.
        self._last_processed_ns: int | None = None
        self._target_states: dict[str, dict] = {}
        self._worker: threading.Thread | None = None
        self.backend_name = "none"
        self.weights_path = ""
        self._image_sub = self._compressed_sub = None
        self._depth_setup()  # depth_input.py: topics and state, nothing created yet
        self.det_pub = self.array_pub = self.state_pub = self.heatmap_pub = None

        # The diagnostics exist in every state (they say the state); the services once the node can answer them
        # (_create_services).
        self._image_group = MutuallyExclusiveCallbackGroup()
        # Reentrant: the service callbacks are coroutines that wait for the worker without holding a thread.
        self._service_group = ReentrantCallbackGroup()
        self._timer_group = MutuallyExclusiveCallbackGroup()
        self.image_topic = self.resolve_topic_name("image")
        # Answered jobs are handed to the executor through this guard condition: the worker (or a job's timer)
        # triggers it, its callback completes the waiting coroutines' futures on an executor thread.
        self._answered: collections.deque[Job] = collections.deque()
        self._answer_guard = self.create_guard_condition(self._deliver_answers, callback_group=self._service_group)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diag_last = time.monotonic()
        self.create_timer(float(self.get_parameter("diagnostics_period").value), self._publish_diagnostics,
                          callback_group=self._timer_group)
        self._autostart_timer = None
        if self.get_parameter("autostart").value:
            # Configured and activated from the executor (the node already spins, so its diagnostics say
            # "configuring" meanwhile); in the lifecycle services' group, so a ChangeState request waits for it.
            # The services come up only then (see _autostart).
            self._autostart_timer = self.create_timer(0.0, self._autostart)
        else:
            # Managed: the lifecycle manager decides when the node serves; the services exist in every state and
            # refuse at once outside active, with the state.
            self._create_services()
            self.get_logger().info("autostart is false: unconfigured, waiting for a lifecycle manager "
                                   "(configure, then activate)")

    def _create_services(self) -> None:
        # KEEP_ALL: a request is never dropped from the queue, however large the burst (DDS flow control holds the
        # client back instead); the coroutines take each request off at once (see requests.py).
        service_qos = QoSProfile(history=HistoryPolicy.KEEP_ALL, reliability=ReliabilityPolicy.RELIABLE)
        self.create_service(InitTarget, "init_target", self._on_init_target, qos_profile=service_qos,
                            callback_group=self._service_group)
        self.create_service(StopTarget, "stop_target", self._on_stop_target, qos_profile=service_qos,
                            callback_group=self._service_group)

    # ------------------------------------------------------------------ lifecycle
    def _autostart(self) -> None:
        """Configure, activate, and only then create the services: a client's wait_for_service returns once the
        node is active and subscribed to its images (its first call is served), or once the configuration has
        failed (its first call gets the reason)."""
        self.destroy_timer(self._autostart_timer)
        if self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
            self.trigger_activate()
        self._create_services()

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Parameters, weights, backend and warm-up of every graph; the publishers (off until activated) and the
        worker thread. A tracker that cannot be created or warmed up fails the transition (back to unconfigured,
        the reason on /diagnostics and in every service answer)."""
        self._lifecycle_state = "configuring"
        self.tracker_error = ""
        with self._cond:
            self._stop = False  # set again by a shutdown that comes during the warm-up
        self._read_params()
        self._start_max_targets = self._max_targets
        if self._param_errors:
            self.tracker_error = "tracker unavailable: " + "; ".join(self._param_errors)
            self.get_logger().error(f"{self.tracker_error}. The node stays up, unconfigured; restart it with "
                                    f"usable parameters.")
        else:
            self._create_tracker()
            if self.tracker is not None:
                self._warm_up()
        if self.tracker is None:
            self._lifecycle_state = "unconfigured"
            return TransitionCallbackReturn.FAILURE
        self.det_pub = self.create_lifecycle_publisher(messages.Detection2D, "tracked_object", 10)
        self.array_pub = self.create_lifecycle_publisher(messages.Detection2DArray, "tracked_objects", 10)
        self.state_pub = self.create_lifecycle_publisher(TrackedTargetArray, "tracked_objects/state", 10)
        self.heatmap_pub = self.create_lifecycle_publisher(Image, "tracked_object/heatmap", 2)
        self._create_depth_publisher(self.create_lifecycle_publisher)
        self._worker = threading.Thread(target=self._worker_loop, name="tracker_worker", daemon=True)
        self._worker.start()
        self._lifecycle_state = "inactive"
        self.get_logger().info(f"configured: backend {self.backend_name}; activate to track images from "
                               f"{self.image_topic}")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Subscriptions on, publishers on, services served."""
        self._lifecycle_state = "activating"
        if self.get_parameter("reliable_qos").value:
            image_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=self._qos_depth,
                                   reliability=ReliabilityPolicy.RELIABLE)
        else:
            image_qos = QoSProfile(**{k: getattr(qos_profile_sensor_data, k) for k in ("history", "reliability",
                                                                                        "durability")},
                                   depth=self._qos_depth)
        result = super().on_activate(state)  # the lifecycle publishers
        self._image_sub = self.create_subscription(Image, "image", self._on_image, image_qos,
                                                   callback_group=self._image_group)
        if self.get_parameter("use_compressed").value:
            self._compressed_sub = self.create_subscription(
                CompressedImage, self.image_topic + "/compressed", self._on_compressed, image_qos,
                callback_group=self._image_group)
        self._create_depth_subscriptions(image_qos)
        with self._cond:
            self._active = True
        self._lifecycle_state = "active"
        self.get_logger().info(
            f"active: tracking images from {self.image_topic}"
            f"{' (+ /compressed)' if self._compressed_sub else ''}, "
            f"{'reliable' if self.get_parameter('reliable_qos').value else 'sensor-data'} QoS; "
            f"backend {self.backend_name}; image converter {converter_name()}")
        return result

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop consuming images and serving requests; the model and the targets are kept."""
        self._lifecycle_state = "deactivating"
        self._go_inactive("node deactivated")
        result = super().on_deactivate(state)
        self._lifecycle_state = "inactive"
        self.get_logger().info(f"inactive: {len(self._target_states)} target(s) and the model kept")
        return result

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Free the model, the targets and the frames; back to unconfigured."""
        self._lifecycle_state = "cleaningup"
        self._release("node cleaned up")
        self._lifecycle_state = "unconfigured"
        self.get_logger().info("unconfigured: model and targets released")
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._lifecycle_state = "shuttingdown"
        self._go_inactive("node is shutting down")
        self._release("node is shutting down")
        self._lifecycle_state = "finalized"
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._go_inactive("node error")
        self._release("node error")
        self._lifecycle_state = "unconfigured"
        return TransitionCallbackReturn.SUCCESS

    def _go_inactive(self, reason: str) -> None:
        """Stop serving (services answer 'node inactive'), destroy the image subscriptions, drop the frame waiting
        in the mailbox and answer the requests still queued."""
        with self._cond:
            self._active = False
            self._frames.take()
            queued = list(self._jobs)
        for job in queued:
            job.cancel(jobs.INACTIVE, f"node inactive: {reason} before the request was served")
        self._destroy_depth_subscriptions()
        for sub in (self._image_sub, self._compressed_sub):
            if sub is not None:
                self.destroy_subscription(sub)
        self._image_sub = self._compressed_sub = None

    def _release(self, reason: str, join_timeout: float = 5.0) -> None:
        """Stop the worker (waiting at most join_timeout s) and free the tracker, its targets, the frames and the
        publishers (configure's work undone)."""
        with self._cond:
            self._active = False
            self._stop = True
            self._cond.notify_all()
        worker = self._worker
        if worker is not None and worker is not threading.current_thread():
            worker.join(timeout=join_timeout)
            if worker.is_alive():
                self.get_logger().warning(f"the tracker worker did not stop within {join_timeout:g} s")
        self._worker = None
        for job in list(self._jobs):
            job.finish(Answer.refused(jobs.INACTIVE, reason))
        with self._cond:
            self._jobs.clear()
            self._frames.clear()
            self._frames.take()
            self._target_states = {}
            self._last_processed_ns = None
            self._depth.clear()
        self.tracker = None
        for name in ("det_pub", "array_pub", "state_pub", "heatmap_pub", "det3d_pub"):
            pub = getattr(self, name)
            if pub is not None:
                self.destroy_lifecycle_publisher(pub)
                setattr(self, name, None)

    def _inactive_answer(self) -> Answer:
        """A request outside the active state: refused as unavailable when configuring failed (the message says why),
        else as inactive."""
        return Answer.refused(jobs.UNAVAILABLE if self.tracker_error else jobs.INACTIVE, self._inactive_message())

    def _inactive_message(self) -> str:
        why = f"; {self.tracker_error}" if self.tracker_error else ""
        return (f"node inactive ({self._lifecycle_state}): init_target and stop_target are served only while the "
                f"node is active{why}")

    # ------------------------------------------------------------------ parameters
    def _read_params(self) -> None:
        g = lambda name: self.get_parameter(name).value  # noqa: E731
        self._qos_depth = int(g("qos_depth"))
        self._max_targets = int(g("max_targets"))
        self._buffer_ns = int(float(g("frame_buffer_seconds")) * 1e9)
        self._buffer_max = int(g("frame_buffer_max_frames"))
        self._buffer_max_bytes = int(g("frame_buffer_max_bytes"))
        self._buffer_raw = int(g("frame_buffer_raw_frames"))
        self._max_pixels = int(g("max_image_pixels"))
        self._max_bytes = int(g("max_image_bytes"))
        self._box_margin = float(g("box_margin"))
        self._max_id_length = int(g("max_target_id_length"))
        self._max_queued = int(g("max_queued_requests"))
        self._init_timeout = float(g("init_timeout"))
        self._class_id = str(g("class_id"))
        self._publish_heatmap = bool(g("publish_heatmap"))
        self._heatmap_alpha = float(g("heatmap_alpha"))

    def _check_parameters(self, params) -> SetParametersResult:
        """On-set callback: accept or refuse a change (rclpy has checked types and ranges); changes nothing."""
        values = {p.name: p.value for p in params}
        spec = {p.name: p for p in PARAMS}
        for name, value in values.items():
            p = spec.get(name)
            if p is not None and p.choices and value not in p.choices:
                return SetParametersResult(successful=False, reason=f"{name} must be one of {', '.join(p.choices)}")
        if "max_targets" in values and self.tracker is not None \
                and int(values["max_targets"]) > self._start_max_targets:
            return SetParametersResult(successful=False, reason=(
                f"max_targets can be lowered at run time, not raised above its start-up value "
                f"{self._start_max_targets} (every graph and batch size is built for it): clean up and configure "
                f"the node again, or restart it"))
        lost = values.get("lost_threshold", self.get_parameter("lost_threshold").value)
        found = values.get("found_threshold", self.get_parameter("found_threshold").value)
        if lost > found:
            return SetParametersResult(successful=False,
                                       reason=f"lost_threshold ({lost}) must not exceed found_threshold ({found})")
        return SetParametersResult(successful=True)

    def _apply_parameters(self, params) -> None:
        """Post-set callback: the node takes the values rclpy has just set. Plain attribute writes: the worker reads
        them per frame."""
        values = {p.name: p.value for p in params}
        if not self._syncing_params:
            self._explicit_params.update(values)
        tracker = self.tracker
        if tracker is not None:
            for name in TRACKING_PARAMS:
                if name in values:
                    setattr(tracker.cfg, name, float(values[name]))
        attrs = {"max_targets": ("_max_targets", int), "frame_buffer_max_frames": ("_buffer_max", int),
                 "frame_buffer_max_bytes": ("_buffer_max_bytes", int), "frame_buffer_raw_frames": ("_buffer_raw", int),
                 "max_image_pixels": ("_max_pixels", int),
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

    def _create_tracker(self) -> None:
        from siam_tracker_ros.backends import default_weights_path
        from siam_tracker_ros.backends.select import cuda_available
        from siam_tracker_ros.config import ConfigError
        from siam_tracker_ros.model import WeightsError
        from siam_tracker_ros.tracking import SiamTracker

        g = lambda name: self.get_parameter(name).value  # noqa: E731
        weights = str(g("weights"))
        self.weights_path = weights
        try:
            for p in PARAMS:
                if p.choices and g(p.name) not in p.choices:
                    raise ConfigError(f"parameter {p.name} = {g(p.name)!r}: expected one of {', '.join(p.choices)}")
            cfg = self._tracker_config()
            self._max_targets = self._start_max_targets = cfg.backend.max_targets
            if not weights:
                device = cfg.backend.device
                cuda = device == "cuda" or (device == "auto" and cuda_available())
                weights = self.weights_path = str(default_weights_path(cfg.backend.model, cuda))
            if not Path(weights).is_file():
                raise WeightsError(f"weights file {weights} does not exist (set the 'weights' parameter or "
                                   f"$SIAM_TRACKER_WEIGHTS to a trained .pt file)")
            t0 = time.monotonic()
            self.tracker = SiamTracker.from_config(cfg, weights)
            self.backend_name = self.tracker.backend.describe()
            self.get_logger().info(f"loaded {weights} on {self.backend_name} in {time.monotonic() - t0:.1f} s")
            self._show_config_values(cfg)
        except Exception as err:  # any error of the configuration or the weights: never take the node down
            self.tracker = None
            kind = "" if isinstance(err, (WeightsError, ConfigError, OSError)) else f"{type(err).__name__}: "
            self.tracker_error = f"tracker unavailable: {kind}{err}"
            self.get_logger().error(f"{self.tracker_error}. The node stays up, unconfigured; init_target will fail "
                                    f"until it is configured with a usable configuration.")

    def _tracker_config(self):
        """The tracker's Config: config_file's (or the built-in defaults), each field a parameter of this node names
        (CONFIG_FIELDS) taken from the parameter when it was set explicitly or there is no config_file. Validated."""
        from siam_tracker_ros.config import Config

        path = str(self.get_parameter("config_file").value)
        cfg = Config.load(path) if path else Config()
        in_file = set()
        if path:  # the keys the file sets (Config.load has checked that it is a mapping of sections)
            import yaml

            data = yaml.safe_load(Path(path).read_text()) or {}
            in_file = {(section, key) for section, keys in data.items() if isinstance(keys, dict) for key in keys}
        overridden = []
        for name, (section, field) in CONFIG_FIELDS.items():
            value = self.get_parameter(name).value
            if (section, field) in in_file and name in self._explicit_params \
                    and value != getattr(getattr(cfg, section), field):
                overridden.append(f"{section}.{field} = {getattr(getattr(cfg, section), field)!r} by parameter "
                                  f"{name} = {value!r}")
            if not path or name in self._explicit_params:
                setattr(getattr(cfg, section), field, value)
        cfg.validate()
        if overridden:
            self.get_logger().info(f"config_file {path}: set explicitly, parameters win over "
                                   f"{'; '.join(overridden)}")
        return cfg

    def _show_config_values(self, cfg) -> None:
        """Write config_file's values into the parameters that took them (not read-only ones: those say what was
        asked, the diagnostics' backend says what runs), so that `ros2 param get` shows the values in use. Not an
        explicit setting: a new configure reads config_file again."""
        from rclpy.parameter import Parameter

        spec = {p.name: p for p in PARAMS}
        taken = {name: getattr(getattr(cfg, section), field) for name, (section, field) in CONFIG_FIELDS.items()
                 if self.get_parameter(name).value != getattr(getattr(cfg, section), field)}
        if not taken:
            return
        self.get_logger().info(f"config_file {self.get_parameter('config_file').value}: "
                               + ", ".join(f"{name} = {value!r}" for name, value in taken.items()))
        shown = [Parameter(name, value=type(spec[name].default)(value)) for name, value in taken.items()
                 if not spec[name].read_only]
        self._syncing_params = True
        try:
            results = self.set_parameters(shown)
        finally:
            self._syncing_params = False
        for param, result in zip(shown, results):
            if not result.successful:
                self.get_logger().warning(f"parameter {param.name} left at {self.get_parameter(param.name).value!r} "
                                          f"(the tracker uses {param.value!r}): {result.reason}")

    # ------------------------------------------------------------------ refusals
    def _refuse(self, kind: str, message: str) -> None:
        """Count a refused input or request in /diagnostics and log it: the one log line of every refusal (a flood
        of one kind costs at most 5 lines per 5 s, diagnostics.RefusalLog)."""
        with self.stats.lock:
            self.stats.refused[kind] = self.stats.refused.get(kind, 0) + 1
            self.stats.last_refusal = f"{kind}: {message}"[:300]
            left_out = self.stats.refusal_log.admit(kind, time.monotonic())
        if left_out is not None:
            more = f" ({left_out} more '{kind}' refusals not logged before this one)" if left_out else ""
            self.get_logger().warning(f"refused ({kind}): {message[:500]}{more}")

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
            if not self._active:
                return  # a callback that was already running when the node was deactivated
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
            older = self._frames.to_compact(self._buffer_raw)
        # JPEG-encode the frames that left the newest few, outside the lock (a few ms each for 640x480).
        for old in older:
            try:
                small = old.compacted()
            except Exception:  # an image the worker could not use either: keep it as it came
                continue
            with self._cond:
                self._frames.replace(old, small)

    # ------------------------------------------------------------------ diagnostics
    def _publish_diagnostics(self) -> None:
        try:
            self._publish_diagnostics_unguarded()
        except Exception as err:
            self.get_logger().error(f"diagnostics failed: {type(err).__name__}: {err}", throttle_duration_sec=10.0)

    def _publish_diagnostics_unguarded(self) -> None:
        now = time.monotonic()
        period, self._diag_last = max(now - self._diag_last, 1e-3), now
        state = self._lifecycle_state
        if self.tracker_error:
            level, message = DiagnosticStatus.ERROR, f"{state}: {self.tracker_error}"
        elif state == "active":
            level, message = None, ""  # from the targets' states (diagnostics.build)
        elif state == "configuring":
            level, message = DiagnosticStatus.OK, "configuring: loading the weights, warming up every graph"
        elif state == "inactive":
            level, message = DiagnosticStatus.OK, (f"inactive: model loaded, {len(self._target_states)} target(s) "
                                                   f"kept, not consuming images")
        else:
            level, message = DiagnosticStatus.OK, f"{state}: no model loaded"
        values = {"lifecycle_state": state, "backend": self.backend_name, "weights": self.weights_path,
                  "image_topic": self.image_topic,
                  "image_converter": converter_name(), "frame_buffer_frames": str(len(self._frames)),
                  "frame_buffer_bytes": str(self._frames.nbytes),
                  "frame_buffer_span_s": f"{self._frames.span_ns() / 1e9:.2f}",
                  "queued_requests": str(sum(1 for j in list(self._jobs) if not j.finished)),
                  **self._depth_diag_values()}
        arr = diagnostics.build(self.get_fully_qualified_name(), self.backend_name, self.stats, period,
                                dict(self._target_states), values, level, message)
        arr.header.stamp = self.get_clock().now().to_msg()
        self.diag_pub.publish(arr)

    # ------------------------------------------------------------------ shutdown
    def shutdown(self) -> None:
        """The end of the process (close_node): stop serving and the worker (at most 5 s), answer what waits."""
        self._go_inactive("node is shutting down")
        self._release("node is shutting down")


def main(args=None) -> int:
    """The node's process: spin until Ctrl-C / SIGTERM (or rclpy's context is shut down), then close it. Exit code
    0 however many more signals come meanwhile (lifetime.StopSignals)."""
    from rclpy.signals import SignalHandlerOptions

    stop_signals = StopSignals(NODE_NAME).install()
    node = executor = None
    try:
        rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
        node = TrackerNode()
        executor = MultiThreadedExecutor(num_threads=4)
        executor.add_node(node)
        # Short waits: the signal handler runs in this thread, between two of them.
        while not stop_signals.requested and rclpy.ok():
            executor.spin_once(timeout_sec=0.1)
    except ExternalShutdownException:
        pass
    finally:
        stop_signals.requested = True  # from here on a signal only says that the node is already stopping
        close_node(node, executor)
        print(f"{NODE_NAME}: shut down", file=sys.stderr, flush=True)
        stop_signals.ignore()
    return 0


if __name__ == "__main__":
    sys.exit(main())
