"""The operator page's rclpy node: what the page shows (the newest image or heatmap as JPEG, the targets' states, the
tracker node's input counts from /diagnostics) and what it asks (init_target with the stamp of the frame shown,
stop_target). It lives in the web server's process, so a click reaches the tracker without a command-line start-up.

All names are relative, like the tracker node's: run both in one namespace and remap `image` the same way.
The executor spins in a thread of its own (`OperatorBridge.start`); the web server's coroutines call in from the
event loop's thread, so everything they read is guarded by `self._lock`. A waiting page costs no thread: the ROS
callbacks wake the loop (`call_soon_threadsafe`), which sets an asyncio event the waiting coroutines await.
"""
from __future__ import annotations

import asyncio
import collections
import concurrent.futures
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
STREAM_GAP_S = 2.0  # a pause this long between images: the camera (re)started
INPUT_CHECK_AFTER_S = 5.0  # the node's input rate is compared with this process's only once the camera has streamed
# this long before a /diagnostics message: discovery and the node's first rate window would otherwise read as loss
STATES_STALLED_S = 0.5  # no state array for this long: the tracker's /diagnostics say which targets remain
SHOWN_DIAGNOSTICS = ("lifecycle_state", "received", "processed", "dropped", "input_rate_hz", "processing_rate_hz",
                     "frame_buffer_span_s", "frame_buffer_frames", "frame_buffer_bytes", "targets", "_message")
# the tracker's /diagnostics values the page shows (not the others: file paths stay off the web)


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
        self.started = 0.0  # arrival time of the first image after a pause of STREAM_GAP_S
        self.shown: Shown | None = None
        self.encoding: tuple[int, asyncio.Future] | None = None  # (stamp, the encoder's future) of the frame shown


def stamp_ns(stamp) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def format_stamp(ns: int) -> str:
    return f"{ns // 1_000_000_000}.{ns % 1_000_000_000:09d}"


def parse_stamp(text: str) -> int:
    """The stamp "sec.nanosec" (as the page gets it) -> ns, exactly (no float on the way)."""
    if not isinstance(text, str):
        raise ValueError(f"stamp must be a string 'sec.nanosec', got {type(text).__name__}")
    sec, _, nsec = text.strip().partition(".")
    if not sec.isascii() or not sec.isdigit() or not nsec.isascii() or (nsec and not nsec.isdigit()) or \
            len(nsec) > 9:
        raise ValueError(f"stamp must be 'sec.nanosec' (digits), got {text[:40]!r}")
    if len(sec) > 10 or int(sec) >= 2 ** 31:  # builtin_interfaces/Time.sec is an int32
        raise ValueError(f"stamp seconds must be below 2^31, got {sec[:40]}")
    return int(sec) * 1_000_000_000 + int(nsec.ljust(9, "0") or 0)


class OperatorBridge(Node):
    def __init__(self):
        super().__init__(NODE_NAME)
        p = self.declare_parameter
        p("host", "127.0.0.1", ParameterDescriptor(
            description="Address the page is served on; 127.0.0.1: this machine only. Another address (0.0.0.0: "
                        "every interface) needs the token (require_token) and should be behind TLS.", read_only=True))
        p("require_token", True, ParameterDescriptor(
            description="Ask for the token (logged in the page's URL) on every request. false: no token, allowed "
                        "only when host is a loopback address.", read_only=True))
        p("token", "", ParameterDescriptor(
            description="A fixed token (at least 16 characters); empty: a random one at each start. Prefer "
                        "token_file: parameters can be read by anyone on the ROS graph.", read_only=True))
        p("token_file", "", ParameterDescriptor(
            description="File holding a fixed token (first line), e.g. one per fleet; empty: none.", read_only=True))
        p("allowed_hosts", [""], ParameterDescriptor(
            description="More names the page answers to (Host header, any port) besides 127.0.0.1, localhost and "
                        "[::1] at its port: the robot's DNS name or IP when host is not loopback, a reverse "
                        "proxy's name.", read_only=True))
        p("tls_certfile", "", ParameterDescriptor(
            description="PEM certificate chain: serve HTTPS (with tls_keyfile); empty: plain HTTP.", read_only=True))
        p("tls_keyfile", "", ParameterDescriptor(description="PEM private key of tls_certfile.", read_only=True))
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
        self._loop: asyncio.AbstractEventLoop | None = None  # the web server's (attach_loop)
        self._changed: asyncio.Event | None = None  # set (and replaced) on the loop when an image or states came
        self._wake_pending = False
        self._encoder = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="operator_ui_jpeg")
        self.streams = {"image": Stream(), "heatmap": Stream()}
        self.targets: dict[str, dict] = {}  # id -> latest state
        self.targets_stamp_ns = 0
        self.targets_time = 0.0
        # Stopped here: id -> the newest stamp known when the stop was answered. A state array of that stamp or
        # older was on its way before the stop and must not bring the target back; the first array without the id
        # (or newer than the mark) ends the memory. "" : stop all (ids started since are in _started_since_stop_all)
        self._stopped: dict[str, int] = {}
        self._started_since_stop_all: set[str] = set()
        self.diagnostics: dict = {}
        self.diagnostics_time = 0.0
        self.diagnostics_targets: set[str] = set()
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
        self._stopping = threading.Event()

    # ------------------------------------------------------------------ ROS side (executor thread)
    def _on_image(self, which: str, msg) -> None:
        now = time.monotonic()
        with self._lock:
            s = self.streams[which]
            if not s.times or now - s.times[-1] > STREAM_GAP_S:
                s.started = now
            s.stamp_ns, s.count = stamp_ns(msg.header.stamp), s.count + 1
            s.recent[s.stamp_ns] = msg
            while len(s.recent) > RECENT_FRAMES:
                s.recent.popitem(last=False)
            s.times = [t for t in s.times if t > now - 1.0] + [now]
            self._wake_locked()

    def _on_states(self, msg) -> None:
        from siam_tracker_ros.ros.messages import bbox_to_box, state_name

        targets = {t.id: {"id": t.id, "state": state_name(t), "confidence": round(float(t.confidence), 3),
                          "box": [round(v, 1) for v in bbox_to_box(t.bbox)], "lost_frames": int(t.lost_frames),
                          "stamp": format_stamp(stamp_ns(t.header.stamp))} for t in msg.targets}
        ns = stamp_ns(msg.header.stamp)
        with self._lock:
            for tid, mark in list(self._stopped.items()):
                if ns > mark:
                    del self._stopped[tid]  # the node's state after the stop: whatever it says now holds
                elif tid == "":
                    hidden = [i for i in targets if i not in self._started_since_stop_all]
                    for i in hidden:
                        del targets[i]
                    if not hidden:
                        del self._stopped[tid]
                elif tid in targets:
                    del targets[tid]  # an array sent before the stop took effect
                else:
                    del self._stopped[tid]
            self.targets, self.targets_stamp_ns = targets, ns
            self.targets_time = time.monotonic()
            self._wake_locked()

    def _on_diagnostics(self, msg) -> None:
        prefix = self.tracker_status_name.removesuffix("tracker") + "target "
        for status in msg.status:
            if status.name == self.tracker_status_name:
                with self._lock:
                    self.diagnostics = {kv.key: kv.value for kv in status.values}
                    self.diagnostics["_message"] = status.message
                    self.diagnostics_time = time.monotonic()
                    self.diagnostics_targets = {s.name[len(prefix):] for s in msg.status
                                                if s.name.startswith(prefix)}
                    if self.diagnostics_time - self.targets_time > STATES_STALLED_S:
                        # no state array comes once the last target is gone (stopped by anyone): the node's own
                        # list of targets says which rows remain
                        self.targets = {i: t for i, t in self.targets.items() if i in self.diagnostics_targets}

    def _wake_locked(self) -> None:
        """Wake the coroutines waiting for a frame (called under the lock, from the executor's thread)."""
        if self._loop is not None and not self._wake_pending:
            try:
                self._loop.call_soon_threadsafe(self._on_wake)
                self._wake_pending = True
            except RuntimeError:  # the loop is closed: the server has stopped
                self._loop = None

    def _on_wake(self) -> None:
        """On the loop: every waiter of the current event wakes; later waiters wait on a fresh one."""
        with self._lock:
            self._wake_pending = False
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def attach_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """The web server's event loop, on which `frame` is awaited (call from that loop)."""
        self._changed = asyncio.Event()
        with self._lock:
            self._loop = loop

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
        """Spin until `shutdown` asks; the executor is shut down here, in its own thread: shut down from another
        thread, it destroys its guard condition while this one may still be waiting on it (InvalidHandle)."""
        from rclpy.executors import ExternalShutdownException

        try:
            while not self._stopping.is_set():
                self._executor.spin_once(timeout_sec=0.1)
        except ExternalShutdownException:
            pass
        finally:
            self._executor.shutdown(timeout_sec=2.0)

    def shutdown(self) -> None:
        with self._lock:
            self._loop = None
        self._encoder.shutdown(wait=False, cancel_futures=True)
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)

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

    async def frame(self, which: str, after_ns: int, timeout: float) -> Shown | None:
        """The frame to show of `which` ("image" or "heatmap") if its stamp differs from `after_ns`, waiting up to
        `timeout` s for one; None when none came. Awaited on the attached loop; a waiting page holds no thread.
        Encoded once per frame (in one encoder thread), whatever the number of pages asking."""
        if which == "heatmap":
            self._heatmap_wanted_until = time.monotonic() + HEATMAP_IDLE_S
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            with self._lock:
                ns, msg, targets = self._choice(which)
                stream = self.streams[which]
            changed = self._changed  # replaced on this loop only: no wake-up between the read and the wait is lost
            if msg is not None and ns != after_ns:
                break
            left = deadline - loop.time()
            if left <= 0:
                return None
            try:
                await asyncio.wait_for(changed.wait(), left)
            except asyncio.TimeoutError:
                return None
        if stream.shown is not None and stream.shown.stamp_ns == ns:
            return stream.shown
        if stream.encoding is None or stream.encoding[0] != ns:
            stream.encoding = (ns, loop.run_in_executor(self._encoder, self._encode, msg, ns, targets))
        shown = await asyncio.shield(stream.encoding[1])
        if stream.shown is None or stream.shown.stamp_ns != ns:
            stream.shown = shown
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
            fresh = now - self.diagnostics_time < DIAG_STALE_S
            diag = {k: v for k, v in self.diagnostics.items() if k in SHOWN_DIAGNOSTICS} if fresh else {}
            rate_here = len([t for t in image.times if t > now - 1.0])
            return {
                "image_topic": self.image_topic,
                "frames_here": image.count,
                "rate_here_hz": rate_here,
                "input_shortfall": self._input_shortfall(diag, image, rate_here),
                "targets": sorted(self.targets.values(), key=lambda t: t["id"]),
                "targets_stamp": format_stamp(self.targets_stamp_ns) if self.targets_stamp_ns else "",
                "targets_age_s": round(now - self.targets_time, 2) if self.targets_time else None,
                "tracker": diag,
                "tracker_status": self.tracker_status_name,
                "init_service": self.init_service,
                "init_service_ready": self.init_client.service_is_ready(),
            }

    def _input_shortfall(self, diag: dict, image: Stream, rate_here: int) -> bool:
        """Whether the active tracker node receives clearly fewer frames than this process does (under the lock):
        judged only on a /diagnostics message whose rate window lies INPUT_CHECK_AFTER_S into the stream, so that
        the node matching the camera's publisher later than this process does, and its first partial rate window,
        do not read as frames lost in transport."""
        if not diag or diag.get("lifecycle_state", "active") != "active" or rate_here < 5 or not image.times:
            return False
        if self.diagnostics_time - image.started < INPUT_CHECK_AFTER_S:
            return False
        try:
            return float(diag.get("input_rate_hz", "0")) < 0.8 * rate_here
        except ValueError:
            return False

    def forget(self, target_id: str) -> None:
        """A target stopped from the page leaves the list at once (no state array follows the last target's stop)
        and stays out: a state array sent before the stop took effect does not bring it back. "" : all."""
        with self._lock:
            mark = max(self.targets_stamp_ns, *(s.stamp_ns for s in self.streams.values()))
            if target_id:
                self.targets.pop(target_id, None)
            else:
                self.targets.clear()
                self._started_since_stop_all.clear()
            self._stopped[target_id] = mark

    def started(self, target_id: str) -> None:
        """A target started from the page: its states show even if an earlier stop of that id is remembered."""
        with self._lock:
            self._stopped.pop(target_id, None)
            self._started_since_stop_all.add(target_id)

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
