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
only noted, and the interpreter's exit ignores them, so the exit code is 0 however many Ctrl-C come. The exit of the
`ros2 launch` / `ros2 run` that started the node (killed with SIGTERM) ends the spin the same way.

Engine and adapter. Tracking is the ROS-free `siam_tracker_ros.engine.TrackingEngine`: the frame buffer, the jobs and
the worker thread that alone uses the tracker (docs in engine/engine.py). This node converts and checks messages,
calls the engine (`offer_frame`, `request_init`, `request_stop`) and publishes what the engine's worker hands to
`_publish` (2D output, then depth: ros/depth_input.py's DepthInput, then the state array and the heatmap); the
lifecycle, the parameters (ros/settings.py) and the diagnostics stay here.

Threads. The image callbacks only check the message layout and limits and offer the frame to the engine (its ring
buffer of the last `frame_buffer_seconds`, bounded in frames and bytes, for init-by-stamp, and its one-slot mailbox;
a frame still in the mailbox when a newer one arrives is dropped and counted). Services, images and the diagnostics
timer are in separate callback groups of a MultiThreadedExecutor.

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

import sys
import time

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn
from rclpy.lifecycle import Node as LifecycleNode
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image

from siam_tracker_ros.engine import TIME_JUMP_NS, Answer, Frame, TrackingEngine, jobs
from siam_tracker_ros.msg import TrackedTargetArray
from siam_tracker_ros.srv import InitTarget, StopTarget

from . import diagnostics, messages
from .depth_input import DepthInput
from .diagnostics import Stats
from .heatmap import render_heatmap
from .image_codec import ImageConversionError, ImageTooLarge, check_layout, compressed_size, converter_name
from .lifetime import StopSignals, close_node, say
from .messages import format_stamp, stamp_ns
from .params import PARAMS, descriptor
from .services import TargetServices
from .settings import NodeSettings

NODE_NAME = "tracker_node"


class TrackerNode(LifecycleNode):
    """The ROS adapter of a TrackingEngine: lifecycle, parameters, messages in and out, diagnostics."""

    def __init__(self, node_name: str = NODE_NAME, **kwargs):
        super().__init__(node_name, **kwargs)
        self.tracker_error = ""
        self._param_errors = []
        for p in PARAMS:
            try:
                self.declare_parameter(p.name, p.default, descriptor(p))
            except Exception as err:  # an override of the wrong type or out of range: the default, and an ERROR
                self._param_errors.append(f"parameter {p.name}: {err}")
                self.declare_parameter(p.name, p.default, descriptor(p), ignore_override=True)
        self.settings = NodeSettings(self)
        # Checked in the on-set callback, applied in the post-set one (only once rclpy has set them).
        self.add_on_set_parameters_callback(self.settings.check)
        self.add_post_set_parameters_callback(self.settings.apply)

        self.stats = Stats()
        self.requests = TargetServices(self)  # (Node.services is rclpy's list of services)
        self.engine = TrackingEngine(None, self.settings.limits, on_refuse=self.refuse, on_result=self._publish,
                                     on_skipped=self._skipped, on_error=self._worker_error,
                                     on_queued=self.requests.queued, on_answer=self.requests.answered_from_any_thread,
                                     inactive_answer=self.inactive_answer)
        self._lifecycle_state = "unconfigured"  # for /diagnostics and the services' answers
        self.backend_name = "none"
        self.weights_path = ""
        self._image_sub = self._compressed_sub = None
        self.depth = DepthInput(self)  # topics and state, nothing created yet
        self.det_pub = self.array_pub = self.state_pub = self.heatmap_pub = None

        self._image_group = MutuallyExclusiveCallbackGroup()
        # Reentrant: the service callbacks are coroutines that wait for the worker without holding a thread.
        self._service_group = ReentrantCallbackGroup()
        self._timer_group = MutuallyExclusiveCallbackGroup()
        self.image_topic = self.resolve_topic_name("image")
        self.requests.create_guard(self._service_group)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diag_last = time.monotonic()
        self._image_size = None  # (width, height) of the last tracked frame: a change is logged
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

    # The engine's tracker, frames and condition (DepthInput and the diagnostics read them).
    tracker = property(lambda self: self.engine.tracker)
    frames = property(lambda self: self.engine.frames)
    engine_cond = property(lambda self: self.engine.cond)
    limits = property(lambda self: self.settings.limits)

    def _create_services(self) -> None:
        # KEEP_ALL: a request is never dropped from the queue, however large the burst (DDS flow control holds the
        # client back instead); the coroutines take each request off at once.
        service_qos = QoSProfile(history=HistoryPolicy.KEEP_ALL, reliability=ReliabilityPolicy.RELIABLE)
        self.create_service(InitTarget, "init_target", self.requests.on_init_target, qos_profile=service_qos,
                            callback_group=self._service_group)
        self.create_service(StopTarget, "stop_target", self.requests.on_stop_target, qos_profile=service_qos,
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
        engine's worker. A tracker that cannot be created or warmed up fails the transition (back to unconfigured,
        the reason on /diagnostics and in every service answer)."""
        self._lifecycle_state = "configuring"
        self.tracker_error = ""
        self.settings.read()
        if self._param_errors:
            self.tracker_error = "tracker unavailable: " + "; ".join(self._param_errors)
        if self.tracker_error or not self._create_tracker() or not self._warm_up():
            if self.tracker_error:  # else a shutdown cut the warm-up short
                self.get_logger().error(f"{self.tracker_error}. The node stays up, unconfigured; init_target will "
                                        f"fail until it is configured with a usable configuration.")
            self.engine.close(self.tracker_error or "node is shutting down")
            self._lifecycle_state = "unconfigured"
            return TransitionCallbackReturn.FAILURE
        self.det_pub = self.create_lifecycle_publisher(messages.Detection2D, "tracked_object", 10)
        self.array_pub = self.create_lifecycle_publisher(messages.Detection2DArray, "tracked_objects", 10)
        self.state_pub = self.create_lifecycle_publisher(TrackedTargetArray, "tracked_objects/state", 10)
        self.heatmap_pub = self.create_lifecycle_publisher(Image, "tracked_object/heatmap", 2)
        self.depth.create_publisher(self.create_lifecycle_publisher)
        self.engine.start()
        self._lifecycle_state = "inactive"
        self.get_logger().info(f"configured: backend {self.backend_name}; activate to track images from "
                               f"{self.image_topic}")
        return TransitionCallbackReturn.SUCCESS

    def _create_tracker(self) -> bool:
        from siam_tracker_ros.config import ConfigError, WeightsError

        self.weights_path = str(self.get_parameter("weights").value)
        try:
            tracker, self.backend_name, self.weights_path = self.settings.create_tracker()
        except Exception as err:  # any error of the configuration or the weights: never take the node down
            kind = "" if isinstance(err, (WeightsError, ConfigError, OSError)) else f"{type(err).__name__}: "
            self.tracker_error = f"tracker unavailable: {kind}{err}"
            return False
        self.engine.open(tracker)
        return True

    def _warm_up(self) -> bool:
        """Build and run every graph the tracker can use while the node is configured, so nothing is exported or
        built in the middle of tracking; False when it failed (tracker_error says why) or a shutdown cut it short."""
        t0 = time.monotonic()
        try:
            calls = self.engine.warm_up(self.settings.start_max_targets)
        except Exception as err:  # a backend that cannot run its graphs cannot track: ERROR, stay up
            if self.engine.closed:  # the process is ending (its shutdown released the tracker under the warm-up)
                self.get_logger().info("warm-up abandoned: the node is shutting down")
            else:
                self.tracker_error = f"tracker unavailable: warm-up failed: {type(err).__name__}: {err}"
            return False
        self.get_logger().info(f"warmed up {calls} graph calls (up to {self.settings.start_max_targets} targets) in "
                               f"{time.monotonic() - t0:.1f} s")
        return not self.engine.closed

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Subscriptions on, publishers on, services served."""
        self._lifecycle_state = "activating"
        depth = int(self.get_parameter("qos_depth").value)
        if self.get_parameter("reliable_qos").value:
            image_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                                   reliability=ReliabilityPolicy.RELIABLE)
        else:
            sensor = {k: getattr(qos_profile_sensor_data, k) for k in ("history", "reliability", "durability")}
            image_qos = QoSProfile(**sensor, depth=depth)
        result = super().on_activate(state)  # the lifecycle publishers
        self._image_sub = self.create_subscription(Image, "image", self._on_image, image_qos,
                                                   callback_group=self._image_group)
        if self.get_parameter("use_compressed").value:
            self._compressed_sub = self.create_subscription(
                CompressedImage, self.image_topic + "/compressed", self._on_compressed, image_qos,
                callback_group=self._image_group)
        self.depth.create_subscriptions(image_qos)
        self.engine.activate()
        self._lifecycle_state = "active"
        self.get_logger().info(
            f"active: tracking images from {self.image_topic}{' (+ /compressed)' if self._compressed_sub else ''}, "
            f"{'reliable' if self.get_parameter('reliable_qos').value else 'sensor-data'} QoS; "
            f"backend {self.backend_name}; image converter {converter_name()}")
        return result

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop consuming images and serving requests; the model and the targets are kept."""
        self._lifecycle_state = "deactivating"
        self._go_inactive("node deactivated")
        result = super().on_deactivate(state)
        self._lifecycle_state = "inactive"
        self.get_logger().info(f"inactive: {len(self.engine.target_states)} target(s) and the model kept")
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
        self.shutdown()
        self._lifecycle_state = "finalized"
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._go_inactive("node error")
        self._release("node error")
        self._lifecycle_state = "unconfigured"
        return TransitionCallbackReturn.SUCCESS

    def shutdown(self) -> None:
        """The end of the process (close_node): stop serving and the worker (at most 5 s), answer what waits."""
        self._go_inactive("node is shutting down")
        self._release("node is shutting down")

    def _go_inactive(self, reason: str) -> None:
        """Stop serving (services answer 'node inactive'), destroy the image subscriptions, answer what is queued."""
        self.engine.deactivate(reason)
        self.depth.destroy_subscriptions()
        for sub in (self._image_sub, self._compressed_sub):
            if sub is not None:
                self.destroy_subscription(sub)
        self._image_sub = self._compressed_sub = None

    def _release(self, reason: str) -> None:
        """Stop the worker and free the tracker, its targets, the frames and the publishers (configure undone)."""
        if not self.engine.close(reason):
            self.get_logger().warning("the tracker worker did not stop within 5 s")
        self.depth.clear()
        for name in ("det_pub", "array_pub", "state_pub", "heatmap_pub"):
            pub = getattr(self, name)
            if pub is not None:
                self.destroy_lifecycle_publisher(pub)
                setattr(self, name, None)
        if self.depth.pub is not None:
            self.destroy_lifecycle_publisher(self.depth.pub)
            self.depth.pub = None

    def inactive_answer(self) -> Answer:
        """A request outside the active state: unavailable when configuring failed (the message says why), else
        inactive."""
        why = f"; {self.tracker_error}" if self.tracker_error else ""
        return Answer.refused(jobs.UNAVAILABLE if self.tracker_error else jobs.INACTIVE, (
            f"node inactive ({self._lifecycle_state}): init_target and stop_target are served only while the node "
            f"is active{why}"))

    # ------------------------------------------------------------------ refusals
    def refuse(self, kind: str, message: str) -> None:
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
        limits = self.limits
        try:
            check_layout(msg, limits.max_image_pixels, limits.max_image_bytes)
            self._offer(Frame(self.frame_key(msg.header), msg.header, msg, compressed=False, nbytes=len(msg.data),
                              limits=(limits.max_image_pixels, limits.max_image_bytes)))
        except Exception as err:  # ImageConversionError, or anything odd about the message: skip it
            self._conversion_error(err)

    def _on_compressed(self, msg: CompressedImage) -> None:
        limits = self.limits
        try:
            if len(msg.data) == 0:
                raise ImageConversionError("compressed image has no data")
            if len(msg.data) > limits.max_image_bytes:
                raise ImageTooLarge(f"compressed image of {len(msg.data)} bytes is over the limit of "
                                    f"{limits.max_image_bytes} bytes (parameter max_image_bytes)")
            declared = compressed_size(msg.data)  # PNG / JPEG header: refused now rather than when decoded
            if declared is not None and declared[0] * declared[1] > limits.max_image_pixels:
                raise ImageTooLarge(f"compressed image declares {declared[0]}x{declared[1]} pixels, over the limit "
                                    f"of {limits.max_image_pixels} (parameter max_image_pixels)")
            self._offer(Frame(self.frame_key(msg.header), msg.header, msg, compressed=True, nbytes=len(msg.data),
                              limits=(limits.max_image_pixels, limits.max_image_bytes)))
        except Exception as err:
            self._conversion_error(err)

    def frame_key(self, header) -> int:
        """The frame's stamp in ns; a frame without a stamp (driver leaves it zero) gets its arrival time."""
        return stamp_ns(header.stamp) or self.get_clock().now().nanoseconds

    def _offer(self, frame: Frame) -> None:
        with self.engine.cond:
            newest = self.frames.newest_ns if len(self.frames) else None
        accepted, dropped = self.engine.offer_frame(frame)
        if not accepted:
            return
        if newest is not None and frame.stamp_ns < newest - TIME_JUMP_NS:
            self.get_logger().warning(f"image stamps jumped back from {format_stamp(newest)} to "
                                      f"{format_stamp(frame.stamp_ns)}: frame buffer cleared",
                                      throttle_duration_sec=5.0)
        with self.stats.lock:
            self.stats.received += 1
            self.stats.received_times.append(time.monotonic())
            self.stats.dropped += int(dropped)

    def _conversion_error(self, err: Exception, received: bool = True) -> None:
        """Count and log (throttled) an image that cannot be used; `received`: not counted as received yet."""
        with self.stats.lock:
            self.stats.received += int(received)
            self.stats.conversion_errors += 1
            self.stats.last_conversion_error = str(err)[:300]
        self.refuse("image_too_large" if isinstance(err, ImageTooLarge) else "image_invalid", f"image: {err}")

    # ------------------------------------------------------------------ output (the engine's worker thread)
    def _skipped(self, frame: Frame) -> None:
        with self.stats.lock:
            self.stats.dropped += 1

    def _worker_error(self, err: Exception) -> None:
        if isinstance(err, ImageConversionError):  # the frame taken to track could not be decoded
            self._conversion_error(err, received=False)
            return
        if not self.context.ok():
            return  # shutting down: the publishers are gone
        with self.stats.lock:
            self.stats.tracker_errors += 1
            self.stats.last_tracker_error = f"{type(err).__name__}: {err}"
        self.get_logger().error(f"tracker error: {type(err).__name__}: {err}", throttle_duration_sec=5.0)

    def _publish(self, step) -> dict:
        """One tracked frame's output: Detection2D per target and the array; then depth (never before the 2D output);
        then the state array and the heatmap; the per-target /diagnostics fields of depth."""
        header, results = step.frame.header, step.results
        t_publish = time.monotonic()
        size = (step.image.shape[1], step.image.shape[0])
        if self._image_size is not None and size != self._image_size:
            self.get_logger().warning(
                f"image size changed from {self._image_size[0]}x{self._image_size[1]} to {size[0]}x{size[1]}: each "
                f"target's box scaled to it, reported lost until found again")
        self._image_size = size
        class_id = str(self.get_parameter("class_id").value)
        dets = [messages.detection_from_result(header, r, class_id) for r in results.values()]
        for det in dets:
            self.det_pub.publish(det)
        self.array_pub.publish(messages.make_detection_array(header, dets))
        latency = (self.get_clock().now().nanoseconds - step.frame.stamp_ns) * 1e-9
        t_depth = time.monotonic()
        depth = self.depth.step(step, class_id)  # {} when off
        t_state = time.monotonic()
        self.state_pub.publish(messages.make_state_array(header, [
            messages.make_target_state(header, tid, r.box, r.confidence, r.lost, step.lost_frames[tid], depth.get(tid),
                                       step.reacquisitions.get(tid, 0))
            for tid, r in results.items()]))
        t_heatmap = time.monotonic()
        if self.get_parameter("publish_heatmap").value and self.heatmap_pub.get_subscription_count() > 0:
            from .image_codec import bgr_to_imgmsg

            distances = {tid: t and t.distance for tid, (t, _) in depth.items()} if self.depth.on else None
            alpha = float(self.get_parameter("heatmap_alpha").value)
            self.heatmap_pub.publish(bgr_to_imgmsg(render_heatmap(step.image, results.values(), alpha,
                                                                  distances=distances), header))
            with self.stats.lock:
                self.stats.heatmaps += 1
        done = time.monotonic()
        stage_s = {**step.stage_s, "publish": (t_depth - t_publish) + (t_heatmap - t_state),
                   "depth": t_state - t_depth, "heatmap": done - t_heatmap}
        with self.stats.lock:
            for stage, seconds in stage_s.items():
                self.stats.stage_total_s[stage] = self.stats.stage_total_s.get(stage, 0.0) + seconds
            self.stats.processed += 1
            self.stats.processed_times.append(done)
            self.stats.latencies.append(latency)
            self.stats.proc_times.append(done - step.started)
        return {tid: self.depth.fields(depth, tid) for tid in results}

    # ------------------------------------------------------------------ diagnostics
    def _publish_diagnostics(self) -> None:
        try:
            self._publish_diagnostics_unguarded()
        except Exception as err:
            self.get_logger().error(f"diagnostics failed: {type(err).__name__}: {err}", throttle_duration_sec=10.0)

    def _publish_diagnostics_unguarded(self) -> None:
        now = time.monotonic()
        period, self._diag_last = max(now - self._diag_last, 1e-3), now
        state, targets = self._lifecycle_state, dict(self.engine.target_states)
        if self.tracker_error:
            level, message = DiagnosticStatus.ERROR, f"{state}: {self.tracker_error}"
        elif state == "active":
            level, message = None, ""  # from the targets' states (diagnostics.build)
        elif state == "configuring":
            level, message = DiagnosticStatus.OK, "configuring: loading the weights, warming up every graph"
        elif state == "inactive":
            level, message = DiagnosticStatus.OK, (f"inactive: model loaded, {len(targets)} target(s) kept, not "
                                                   f"consuming images")
        else:
            level, message = DiagnosticStatus.OK, f"{state}: no model loaded"
        frames = self.frames
        values = {"lifecycle_state": state, "backend": self.backend_name, "weights": self.weights_path,
                  "image_topic": self.image_topic, "image_converter": converter_name(),
                  "frame_buffer_frames": str(len(frames)), "frame_buffer_bytes": str(frames.nbytes),
                  "frame_buffer_span_s": f"{frames.span_ns() / 1e9:.2f}",
                  "queued_requests": str(sum(1 for j in list(self.engine.jobs) if not j.finished)),
                  **self.depth.diag_values()}
        arr = diagnostics.build(self.get_fully_qualified_name(), self.backend_name, self.stats, period, targets,
                                values, level, message)
        arr.header.stamp = self.get_clock().now().to_msg()
        self.diag_pub.publish(arr)


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
        while not stop_signals.poll() and rclpy.ok():
            executor.spin_once(timeout_sec=0.1)
    except ExternalShutdownException:
        pass
    finally:
        stop_signals.requested = True  # from here on a signal only says that the node is already stopping
        close_node(node, executor)
        say(f"{NODE_NAME}: shut down")
        stop_signals.ignore()
    return 0


if __name__ == "__main__":
    sys.exit(main())
