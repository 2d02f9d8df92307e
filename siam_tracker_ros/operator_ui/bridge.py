"""The operator page's rclpy node: what the page shows (the newest image or heatmap as JPEG, the targets' states, the
tracker node's input counts from /diagnostics) and what it asks (init_target with the stamp of the frame shown,
stop_target). It lives in the web server's process, so a click reaches the tracker without a command-line start-up.

All names are relative, like the tracker node's: run both in one namespace and remap `image` the same way.
The executor spins in a thread of its own (`OperatorBridge.start`); the web server's coroutines call in from
another thread, so everything they read is guarded by `self._lock`.
"""
from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass

import cv2
import numpy as np
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data

NODE_NAME = "operator_ui"
HEATMAP_IDLE_S = 3.0  # the heatmap subscription (which makes the tracker render heatmaps) ends this long after the
# page last asked for one
DIAG_STALE_S = 5.0  # /diagnostics older than this: the tracker node is reported silent
RECENT_FRAMES = 30  # images kept to show the frame the newest tracked boxes belong to (1 s at 30 Hz)


@dataclass(frozen=True)
class Shown:
    """A frame as the page gets it: JPEG bytes and the image's stamp and size."""

    jpeg: bytes
    stamp_ns: int
    width: int
    height: int
    targets: tuple = ()  # the tracked targets' states on this very frame (empty when none are known for it)


class Stream:
    """The newest messages of one image topic by stamp; the one shown is JPEG-encoded once, when a page first asks."""

    def __init__(self):
        self.recent: "collections.OrderedDict[int, object]" = collections.OrderedDict()
        self.stamp_ns = 0  # of the newest
        self.count = 0
        self.times: list[float] = []  # arrival times of the last second (rate)
        self.shown: Shown | None = None


def stamp_ns(stamp) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def format_stamp(ns: int) -> str:
    return f"{ns // 1_000_000_000}.{ns % 1_000_000_000:09d}"


def parse_stamp(text: str) -> int:
    """The stamp "sec.nanosec" (as the page gets it) -> ns, exactly (no float on the way)."""
    sec, _, nsec = str(text).strip().partition(".")
    if not sec.isdigit() or (nsec and not nsec.isdigit()) or len(nsec) > 9:
        raise ValueError(f"stamp must be 'sec.nanosec', got {text!r}")
    return int(sec) * 1_000_000_000 + int(nsec.ljust(9, "0") or 0)


class OperatorBridge(Node):
    def __init__(self):
        super().__init__(NODE_NAME)
        p = self.declare_parameter
        p("host", "127.0.0.1", ParameterDescriptor(
            description="Address the page is served on; 127.0.0.1: this machine only. 0.0.0.0: every interface "
                        "(no authentication: whoever reaches it steers the tracking).", read_only=True))
        p("port", 8080, ParameterDescriptor(description="TCP port of the page (0: any free port, logged).",
                                            read_only=True))
        p("stream_rate", 15.0, ParameterDescriptor(description="Most frames per second sent to each page."))
        p("jpeg_quality", 80, ParameterDescriptor(description="JPEG quality of the frames sent to the page."))
        p("use_compressed", False, ParameterDescriptor(
            description="Show <image>/compressed (sensor_msgs/CompressedImage) instead of the raw image topic.",
            read_only=True))
        p("tracker_node", "tracker_node", ParameterDescriptor(
            description="Name of the tracker node (in this namespace) whose /diagnostics status the page shows.",
            read_only=True))
        p("service_timeout", 30.0, ParameterDescriptor(description="Seconds to wait for an init/stop answer."))

        from sensor_msgs.msg import CompressedImage, Image
        from diagnostic_msgs.msg import DiagnosticArray
        from siam_tracker_ros.msg import TrackedTargetArray
        from siam_tracker_ros.srv import InitTarget, StopTarget

        self.InitTarget, self.StopTarget, self._Image = InitTarget, StopTarget, Image
        self._lock = threading.Lock()
        self._new_frame = threading.Condition(self._lock)
        self.streams = {"image": Stream(), "heatmap": Stream()}
        self.targets: dict[str, dict] = {}  # id -> latest state
        self.targets_stamp_ns = 0
        self.targets_time = 0.0
        self.diagnostics: dict = {}
        self.diagnostics_time = 0.0
        self._heatmap_sub = None
        self._heatmap_wanted_until = 0.0

        self.image_topic = self.resolve_topic_name("image")
        if self.get_parameter("use_compressed").value:
            self.image_topic += "/compressed"
            self.create_subscription(CompressedImage, self.image_topic, lambda m: self._on_image("image", m),
                                     qos_profile_sensor_data)
        else:
            self.create_subscription(Image, "image", lambda m: self._on_image("image", m), qos_profile_sensor_data)
        self.create_subscription(TrackedTargetArray, "tracked_objects/state", self._on_states, 10)
        self.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)
        self.init_client = self.create_client(InitTarget, "init_target")
        self.stop_client = self.create_client(StopTarget, "stop_target")
        self.init_service = self.resolve_service_name("init_target")
        self.stop_service = self.resolve_service_name("stop_target")
        ns = self.get_namespace().rstrip("/")
        self.tracker_status_name = f"{ns}/{self.get_parameter('tracker_node').value}: tracker"
        self.create_timer(0.5, self._manage_heatmap)
        self._executor = None
        self._thread = None

    # ------------------------------------------------------------------ ROS side (executor thread)
    def _on_image(self, which: str, msg) -> None:
        now = time.monotonic()
        with self._lock:
            s = self.streams[which]
            s.stamp_ns, s.count = stamp_ns(msg.header.stamp), s.count + 1
            s.recent[s.stamp_ns] = msg
            while len(s.recent) > RECENT_FRAMES:
                s.recent.popitem(last=False)
            s.times = [t for t in s.times if t > now - 1.0] + [now]
            self._new_frame.notify_all()

    def _on_states(self, msg) -> None:
        from siam_tracker_ros.ros.messages import bbox_to_box, state_name

        targets = {t.id: {"id": t.id, "state": state_name(t), "confidence": round(float(t.confidence), 3),
                          "box": [round(v, 1) for v in bbox_to_box(t.bbox)], "lost_frames": int(t.lost_frames),
                          "stamp": format_stamp(stamp_ns(t.header.stamp))} for t in msg.targets}
        with self._lock:
            self.targets, self.targets_stamp_ns = targets, stamp_ns(msg.header.stamp)
            self.targets_time = time.monotonic()
            self._new_frame.notify_all()

    def _on_diagnostics(self, msg) -> None:
        for status in msg.status:
            if status.name == self.tracker_status_name:
                with self._lock:
                    self.diagnostics = {kv.key: kv.value for kv in status.values}
                    self.diagnostics["_message"] = status.message
                    self.diagnostics_time = time.monotonic()

    def _manage_heatmap(self) -> None:
        """Subscribe to the heatmap only while a page shows it: the tracker renders heatmaps only for subscribers."""
        wanted = time.monotonic() < self._heatmap_wanted_until
        if wanted and self._heatmap_sub is None:
            self._heatmap_sub = self.create_subscription(self._Image, "tracked_object/heatmap",
                                                         lambda m: self._on_image("heatmap", m), 2)
        elif not wanted and self._heatmap_sub is not None:
            self.destroy_subscription(self._heatmap_sub)
            self._heatmap_sub = None
            with self._lock:
                self.streams["heatmap"] = Stream()

    def start(self) -> None:
        from rclpy.executors import MultiThreadedExecutor

        self._executor = MultiThreadedExecutor(num_threads=2, context=self.context)
        self._executor.add_node(self)
        self._thread = threading.Thread(target=self._spin, name="operator_ui_ros", daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        from rclpy.executors import ExternalShutdownException

        try:
            self._executor.spin()
        except ExternalShutdownException:
            pass

    def shutdown(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(timeout_sec=2.0)
        if self._thread is not None:
            self._thread.join(timeout=3.0)

    # ------------------------------------------------------------------ web side (any thread)
    def _choice(self, which: str) -> tuple[int, object, tuple]:
        """(stamp, message) to show (under the lock): while targets are tracked, the frame of their newest boxes, so
        that boxes and image match (the tracker skips frames to stay current: the newest image is often a few
        frames ahead of its newest boxes, and a moving camera shifts the scene by many pixels in that time); else
        the newest frame. The third item: the targets' states on that frame, when known."""
        s = self.streams[which]
        if which == "image" and self.targets and self.targets_stamp_ns in s.recent \
                and time.monotonic() - self.targets_time < 1.0:
            targets = tuple(sorted(self.targets.values(), key=lambda t: t["id"]))
            return self.targets_stamp_ns, s.recent[self.targets_stamp_ns], targets
        return s.stamp_ns, s.recent.get(s.stamp_ns), ()

    def frame(self, which: str, after_ns: int, timeout: float) -> Shown | None:
        """The frame to show of `which` ("image" or "heatmap") if its stamp differs from `after_ns`, waiting up to
        `timeout` s for one; None when none came. Encoded once per frame, whatever the number of pages."""
        if which == "heatmap":
            self._heatmap_wanted_until = time.monotonic() + HEATMAP_IDLE_S
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                ns, msg, targets = self._choice(which)
                if msg is not None and ns != after_ns:
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._new_frame.wait(left)
            s = self.streams[which]
            if s.shown is not None and s.shown.stamp_ns == ns:
                return s.shown
        shown = self._encode(msg, ns, targets)
        with self._lock:
            self.streams[which].shown = shown
        return shown

    def _encode(self, msg, ns: int, targets: tuple = ()) -> Shown:
        from siam_tracker_ros.ros.image_codec import imgmsg_to_bgr

        if not hasattr(msg, "encoding"):  # CompressedImage
            img = cv2.imdecode(np.frombuffer(bytes(msg.data), np.uint8), cv2.IMREAD_COLOR)
            if img is None:
                raise ValueError(f"cannot decode a {msg.format!r} CompressedImage")
            if "jpeg" in msg.format.lower() or "jpg" in msg.format.lower():
                return Shown(bytes(msg.data), ns, img.shape[1], img.shape[0], targets)  # sent on as it came
        else:
            img = imgmsg_to_bgr(msg)
        quality = int(self.get_parameter("jpeg_quality").value)
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, min(max(quality, 10), 100)])
        if not ok:
            raise ValueError("JPEG encoding failed")
        return Shown(buf.tobytes(), ns, img.shape[1], img.shape[0], targets)

    def status(self) -> dict:
        """What the page's target list and status bar show."""
        now = time.monotonic()
        with self._lock:
            image = self.streams["image"]
            diag = dict(self.diagnostics) if now - self.diagnostics_time < DIAG_STALE_S else {}
            return {
                "image_topic": self.image_topic,
                "frames_here": image.count,
                "rate_here_hz": len([t for t in image.times if t > now - 1.0]),
                "targets": sorted(self.targets.values(), key=lambda t: t["id"]),
                "targets_stamp": format_stamp(self.targets_stamp_ns) if self.targets_stamp_ns else "",
                "targets_age_s": round(now - self.targets_time, 2) if self.targets_time else None,
                "tracker": diag,
                "tracker_status": self.tracker_status_name,
                "init_service": self.init_service,
                "init_service_ready": self.init_client.service_is_ready(),
            }

    def forget(self, target_id: str) -> None:
        """A stopped target leaves the list at once (no state array follows the last target's stop)."""
        with self._lock:
            if target_id:
                self.targets.pop(target_id, None)
            else:
                self.targets.clear()

    def init_request(self, stamp: int, box, target_id: str):
        from siam_tracker_ros.ros.messages import box_to_bbox

        req = self.InitTarget.Request()
        req.header.stamp.sec, req.header.stamp.nanosec = divmod(int(stamp), 1_000_000_000)
        req.header.frame_id = ""
        req.target_id = target_id
        req.bbox = box_to_bbox(box)
        return req

    def stop_request(self, target_id: str):
        return self.StopTarget.Request(target_id=target_id)
