"""The tracker node's optional depth input: a registered depth image and its camera_info in, one
`vision_msgs/Detection3D` per tracked target with a valid depth out on `tracked_objects_3d`. `DepthInput`, owned by
TrackerNode (node.py), a consumer of the engine's StepResult; the measuring itself is the ROS-free
`siam_tracker_ros/depth.py`.

On when `use_depth` is true or `depth_image` is remapped. `camera_info` defaults to the depth image's sibling topic
(`/camera/aligned_depth_to_color/image_raw` -> `/camera/aligned_depth_to_color/camera_info`, as image_transport's
camera subscriber does); remap `camera_info` to name another. Both use the colour image's QoS.

Threads. The depth and camera_info callbacks (their own callback group) check the message and keep it: the depth
frame as a zero-copy view in a small `DepthBuffer` (under the engine's condition, which they notify), the intrinsics
of the latest valid camera_info. The worker, after it has published a frame's Detection2D / Detection2DArray (the 2D
output is never held back), takes the depth frame of that stamp (or the nearest within `depth_stamp_tolerance`). A
driver that registers depth to colour publishes it a few ms after the colour frame, so when no depth frame that new
has arrived yet and the depth stream is live, the worker waits for it up to `depth_wait` seconds, and no longer
than until the next colour frame or request arrives. It then measures every tracked target, publishes the
Detection3DArray (possibly empty) and lets the frame's TrackedTargetArray say, per target, why there is no depth
(`depth_status`). Refusals: depth_encoding, depth_invalid, depth_size, depth_stamp, camera_info
(counted and logged by the node's `refuse`, like its other refusals).
"""
from __future__ import annotations

import collections
import threading
import time

from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from .. import depth as D
from . import messages

DEPTH_REFUSALS = ("depth_encoding", "depth_invalid", "depth_size", "depth_stamp", "camera_info")


class DepthInput:
    """The depth side of a TrackerNode `node` (its parameters, topics, clock, logger, `refuse`, and its `engine`,
    whose condition guards the depth frames too)."""

    def __init__(self, node) -> None:
        """Topics and state; nothing subscribed yet."""
        self.node = node
        self.depth_topic = node.resolve_topic_name("depth_image")
        remapped = self.depth_topic != node.resolve_topic_name("depth_image", only_expand=True)
        self.on = bool(node.get_parameter("use_depth").value) or remapped
        self.camera_info_topic = node.resolve_topic_name("camera_info")
        if self.camera_info_topic == node.resolve_topic_name("camera_info", only_expand=True):
            self.camera_info_topic = self.depth_topic.rsplit("/", 1)[0] + "/camera_info"
        self._depth = D.DepthBuffer(int(node.get_parameter("depth_buffer_frames").value))  # under self._cond
        self._intrinsics: D.Intrinsics | None = None  # under self._cond
        self._camera_info_frame = ""
        self._colour_shape = None  # (height, width) of the last decoded colour frame
        self._depth_sub = self._camera_info_sub = None
        self.pub = None
        self._group = None
        self._lock = threading.Lock()
        self._counts = {"depth_received": 0, "depth_matched": 0, "depth_unmatched": 0, "detections_3d": 0}
        self._times = collections.deque(maxlen=300)

    @property
    def _cond(self) -> threading.Condition:
        return self.node.engine_cond

    def create_publisher(self, create) -> None:
        """tracked_objects_3d, with `create` (create_publisher or create_lifecycle_publisher), when depth is on."""
        if self.on:
            self.pub = create(messages.Detection3DArray, "tracked_objects_3d", 10)

    def create_subscriptions(self, qos) -> None:
        if not self.on:
            return
        from rclpy.callback_groups import MutuallyExclusiveCallbackGroup

        self._group = self._group or MutuallyExclusiveCallbackGroup()
        self._depth_sub = self.node.create_subscription(Image, self.depth_topic, self._on_depth, qos,
                                                        callback_group=self._group)
        self._camera_info_sub = self.node.create_subscription(CameraInfo, self.camera_info_topic,
                                                              self._on_camera_info, qos, callback_group=self._group)
        self.node.get_logger().info(f"depth on: {self.depth_topic} + {self.camera_info_topic} -> tracked_objects_3d")

    def destroy_subscriptions(self) -> None:
        for sub in (self._depth_sub, self._camera_info_sub):
            if sub is not None:
                self.node.destroy_subscription(sub)
        self._depth_sub = self._camera_info_sub = None

    def clear(self) -> None:
        with self._cond:
            self._depth.clear()

    # ------------------------------------------------------------------ input
    def _on_depth(self, msg: Image) -> None:
        node = self.node
        try:
            stamp = node.frame_key(msg.header)
            values, scale = D.depth_view(msg.data, msg.encoding, msg.width, msg.height, msg.step,
                                         bool(msg.is_bigendian), node.limits.max_image_pixels,
                                         node.limits.max_image_bytes)
            frames = node.frames
            with self._cond:
                newest = frames.get(0) if len(frames) else None
                colour = (newest.shape if newest is not None else None) or self._colour_shape
                if colour is not None:
                    D.check_same_size(values.shape, colour)
                D.check_stamp_near(stamp, list(frames.frames), now_ns=node.get_clock().now().nanoseconds)
                if self._depth.newest_ns is not None and stamp < self._depth.newest_ns - D.FAR_NS:
                    self._depth.clear()  # time jumped back (bag loop, simulator reset), as for the colour frames
                self._depth.add(D.DepthImage(stamp, str(msg.header.frame_id), values, scale))
                self._cond.notify_all()
            with self._lock:
                self._counts["depth_received"] += 1
        except D.DepthRefused as err:
            node.refuse(err.kind, f"depth image on {self.depth_topic}: {err}")
        except Exception as err:  # anything odd about the message: refused, never a crash
            node.refuse("depth_invalid", f"depth image on {self.depth_topic}: {type(err).__name__}: {err}")

    def _on_camera_info(self, msg: CameraInfo) -> None:
        try:
            intrinsics = D.Intrinsics.from_k(msg.k, msg.width, msg.height)
            colour = self._colour_shape
            if colour is not None and not intrinsics.fits(colour[1], colour[0]):
                raise D.DepthRefused("camera_info", f"camera_info is for {msg.width}x{msg.height} images, the colour "
                                                    f"and depth images are {colour[1]}x{colour[0]}")
            with self._cond:
                self._intrinsics = intrinsics
                self._camera_info_frame = str(msg.header.frame_id)
        except D.DepthRefused as err:
            self.node.refuse(err.kind, f"{self.camera_info_topic}: {err}")
        except Exception as err:
            self.node.refuse("camera_info", f"{self.camera_info_topic}: {type(err).__name__}: {err}")

    # ------------------------------------------------------------------ worker side
    def _settings(self) -> D.Settings:
        g = lambda name: float(self.node.get_parameter(name).value)  # noqa: E731  (run-time parameters: per frame)
        return D.Settings(percentile=g("depth_percentile"), inner=g("depth_inner_fraction"), min_m=g("depth_min"),
                          max_m=g("depth_max"), min_valid_fraction=g("depth_min_valid_fraction"))

    def _match(self, stamp_ns: int) -> D.DepthImage | None:
        """The depth frame of a colour stamp (exact, else nearest within depth_stamp_tolerance). Waits up to
        depth_wait for one while none as new as the colour frame has come and the depth stream is live, unless a
        newer colour frame, a request or shutdown comes first (the engine has work)."""
        node = self.node
        tolerance = int(float(node.get_parameter("depth_stamp_tolerance").value) * 1e9)
        deadline = time.monotonic() + float(node.get_parameter("depth_wait").value)
        engine = node.engine
        with self._cond:
            while True:
                found = self._depth.nearest(stamp_ns, tolerance)
                newest = self._depth.newest_ns
                if (found is not None and found.stamp_ns == stamp_ns) or newest is None or newest >= stamp_ns \
                        or newest < stamp_ns - D.FAR_NS:  # decided, or no live stream to wait for
                    return found
                left = deadline - time.monotonic()
                if left <= 0 or engine is None or engine.has_work():
                    return found
                self._cond.wait(left)

    def step(self, step, class_id: str) -> dict:
        """After a frame's 2D output (an engine StepResult): {target id: (Target3D or None, DEPTH_* status)} and its
        Detection3DArray published; {} when depth is off."""
        if not self.on:
            return {}
        frame, shape, results = step.frame, step.image.shape, step.results
        self._colour_shape = tuple(shape[:2])
        found = self._match(frame.stamp_ns)
        t0 = time.monotonic()
        with self._cond:
            intrinsics, info_frame = self._intrinsics, self._camera_info_frame
        if found is not None and found.shape != tuple(shape[:2]):
            self.node.refuse("depth_size", f"depth image {found.shape[1]}x{found.shape[0]} for a colour image "
                                           f"{shape[1]}x{shape[0]}")
            found = None
        settings = self._settings()
        measured = {tid: (None, D.DEPTH_TARGET_LOST) if r.lost else D.measure(tid, r.box, found, intrinsics, settings)
                    for tid, r in results.items()}
        header = Header(stamp=frame.header.stamp,
                        frame_id=(found.frame_id if found is not None else "") or info_frame or frame.header.frame_id)
        dets = [messages.make_detection3d(header, t, results[tid].confidence, class_id)
                for tid, (t, _) in measured.items() if t is not None]
        if self.pub is not None:
            self.pub.publish(messages.make_detection3d_array(header, dets))
        with self._lock:
            self._counts["depth_matched" if found is not None else "depth_unmatched"] += 1
            self._counts["detections_3d"] += len(dets)
            self._times.append(time.monotonic() - t0)
        return measured

    @staticmethod
    def fields(measured: dict, tid: str) -> dict:
        """The per-target /diagnostics fields: depth status and distance."""
        if tid not in measured:
            return {}
        t, status = measured[tid]
        return {"depth": D.STATUS_NAMES[status], "distance_m": round(t.distance, 3) if t is not None else "n/a"}

    def diag_values(self) -> dict:
        if not self.on:
            return {"depth": "off"}
        with self._lock:
            counts = dict(self._counts)
            times = sorted(self._times)
        k = self._intrinsics
        return {"depth": "on", "depth_topic": self.depth_topic, "camera_info_topic": self.camera_info_topic,
                "camera_info": (f"fx {k.fx:.1f} fy {k.fy:.1f} cx {k.cx:.1f} cy {k.cy:.1f}" if k is not None
                                else "none yet"),
                "depth_buffer_frames": str(len(self._depth)), **{k: str(v) for k, v in counts.items()},
                "depth_time_median_ms": f"{times[len(times) // 2] * 1e3:.2f}" if times else "n/a"}
