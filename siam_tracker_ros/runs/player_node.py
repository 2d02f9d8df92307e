"""The `frame_player` node: publishes a FrameSource as sensor_msgs/Image at a set rate from a thread of its own (the
command line, its options and the parameters are documented in player.py)."""
from __future__ import annotations

import threading
import time
from pathlib import Path

from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image

from ..data.frames import FrameSource, fit_size
from ..ros.image_codec import bgr_to_imgmsg

NODE_NAME = "frame_player"
HELD_FRAME_RESEND_S = 0.5  # --hold-first: how often the held first frame is sent again


class Pacer:
    """Absolute deadlines start + k / rate, so the rate does not drift; a frame late by more than one period restarts
    the schedule (published late, none skipped). `restart()` after a pause."""

    def __init__(self):
        self.start, self.k = None, 0

    def restart(self) -> None:
        self.start = None

    def wait(self, rate: float, stop: threading.Event) -> None:
        if rate <= 0:
            return
        period, now = 1.0 / rate, time.monotonic()
        if self.start is None or now - (self.start + self.k * period) > period:
            self.start, self.k = now, 0
        target = self.start + self.k * period
        while not stop.is_set() and (wait := target - time.monotonic()) > 0:
            time.sleep(min(wait, 0.05))
        self.k += 1
        if self.k > 1000:
            self.start, self.k = target, 1


class FramePlayer(Node):
    def __init__(self, source: FrameSource, args):
        super().__init__(NODE_NAME)
        self.source, self.args = source, args
        self._declare_parameters(source, args)
        self._resume = threading.Event()
        if not self.get_parameter("paused").value:
            self._resume.set()
        self.add_on_set_parameters_callback(self._on_params)
        qos = (QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5, reliability=ReliabilityPolicy.RELIABLE)
               if args.reliable else qos_profile_sensor_data)
        self.pub = self.create_publisher(Image, args.topic, qos)
        self.depth = None
        if getattr(args, "depth_topic", None):
            self.depth = SyntheticDepth(self, args.depth_topic, qos)
        self.published = 0
        self.stop = threading.Event()
        self.done = threading.Event()
        self.error: BaseException | None = None
        self._stamps = None
        if args.stamps_out:
            Path(args.stamps_out).parent.mkdir(parents=True, exist_ok=True)
            self._stamps = open(args.stamps_out, "w", buffering=1)
            self._stamps.write("seq,frame,sec,nanosec\n")
        self._thread = threading.Thread(target=self._run_guarded, name="frame_player", daemon=True)

    # parameters --------------------------------------------------------------------------------------------------
    def _declare_parameters(self, source: FrameSource, args) -> None:
        rate = args.rate if args.rate is not None else (source.native_rate or 30.0)
        self.declare_parameter("frame_id", args.frame_id, ParameterDescriptor(description="header.frame_id"))
        # dynamic typing: `-p rate:=10` (an integer) is as good as `rate:=10.0`; anything else is refused
        self.declare_parameter("rate", float(rate),
                               ParameterDescriptor(description="frames per second; <= 0: as fast as possible",
                                                   dynamic_typing=True))
        r = self.get_parameter("rate").value
        if isinstance(r, bool) or not isinstance(r, (int, float)):
            raise ValueError(f"parameter rate must be a number, got {r!r}")
        self.declare_parameter("loop", bool(args.loop), ParameterDescriptor(description="restart at the end"))
        self.declare_parameter("paused", bool(args.paused),
                               ParameterDescriptor(description="while true nothing is published"))

    def _on_params(self, params):
        for p in params:
            if p.name == "rate" and (isinstance(p.value, bool) or not isinstance(p.value, (int, float))):
                return SetParametersResult(successful=False, reason="rate must be a number")
            if p.name == "paused":
                if p.value:
                    self._resume.clear()
                else:
                    self._resume.set()
        return SetParametersResult(successful=True)

    # publishing --------------------------------------------------------------------------------------------------
    def start(self):
        self._thread.start()

    def _run_guarded(self):
        try:
            if self._wait_subscribers():
                self._run()
        except BaseException as err:  # noqa: BLE001 - reported by run_play()
            self.error = err
        finally:
            self._close_stamps()
            self.done.set()

    def _wait_subscribers(self) -> bool:
        need = int(self.args.wait_subscribers or 0)
        if need <= 0:
            return True
        self.get_logger().info(f"waiting for {need} subscriber(s) on {self.pub.topic_name}")
        deadline = time.monotonic() + float(self.args.wait_timeout)
        while not self.stop.is_set():
            if self.pub.get_subscription_count() >= need:
                time.sleep(0.2)  # let discovery settle on both sides
                return True
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {need} subscriber(s) on {self.pub.topic_name} after "
                                   f"{self.args.wait_timeout:.0f} s")
            time.sleep(0.05)
        return False

    def _run(self):
        limit, pacer = self.args.count, Pacer()
        played, last_tick = 0.0, None  # --duration counts playing time: from the first frame, not while paused
        frame_index = 0
        held, held_sent = None, 0.0  # --hold-first: the first frame, sent again while held
        while not self.stop.is_set() and (limit is None or self.published < limit):
            now = time.monotonic()
            if last_tick is not None and self._resume.is_set():
                played += now - last_tick
            last_tick = now if self.published else None
            if self.args.duration and played >= self.args.duration:
                break
            if not self._resume.is_set():
                self._resume.wait(0.1)
                pacer.restart()
                if held is not None and time.monotonic() - held_sent >= HELD_FRAME_RESEND_S:
                    # Best effort: a subscriber that matched this writer only after the first frame went out never
                    # got it. The same message again (same stamp) is a no-op for one that did.
                    self.pub.publish(held)
                    held_sent = time.monotonic()
                continue
            held = None
            img, frame_index = self._next_frame(frame_index)
            if img is None:
                break
            pacer.wait(float(self.get_parameter("rate").value), self.stop)
            if self.stop.is_set():
                break
            msg = self._publish(fit_size(img, self.args.size), frame_index)
            if self.args.hold_first and self.published == 1:
                held, held_sent = msg, time.monotonic()
            frame_index += 1

    def _next_frame(self, frame_index: int):
        """(image, its index in the source), rewinding for `loop`; (None, index) at the end."""
        img = self.source.read()
        if img is None and self.get_parameter("loop").value and self.source.rewind():
            frame_index = 0
            img = self.source.read()
        return img, frame_index

    def _publish(self, img, frame_index: int):
        stamp = self.get_clock().now().to_msg()
        msg = bgr_to_imgmsg(img, encoding=self.args.encoding)
        msg.header.stamp = stamp
        msg.header.frame_id = str(self.get_parameter("frame_id").value)
        if self.args.hold_first and self.published == 0:
            # pause before publishing, so a client that sees the first frame can only un-pause after this
            self.set_parameters([Parameter("paused", value=True)])
            self.get_logger().info("publishing the first frame, then holding until parameter paused is false")
        if self._stamps is not None:  # written (and flushed) before the frame goes out
            self._stamps.write(f"{self.published},{frame_index},{stamp.sec},{stamp.nanosec}\n")
        self.pub.publish(msg)
        if self.depth is not None:  # after the colour frame, as a driver that registers depth to colour does
            self.depth.publish(msg.header, img.shape)
        self.published += 1
        return msg

    def _close_stamps(self) -> None:
        if self._stamps is not None:
            self._stamps.close()
            self._stamps = None

    def shutdown(self):
        self.stop.set()
        self._resume.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)
        self._close_stamps()
        self.source.close()


class SyntheticDepth:
    """A stand-in RGB-D camera's depth: per colour frame, a 16UC1 depth image of its size and stamp (a tilted plane,
    1.5 to 3 m away, rendered once per size) and camera_info (fx = fy = the width, principal point at the centre)."""

    def __init__(self, node: Node, topic: str, qos):
        self.pub = node.create_publisher(Image, topic, qos)
        self.info_pub = node.create_publisher(CameraInfo, topic.rsplit("/", 1)[0] + "/camera_info", qos)
        self._cache = {}

    def _render(self, height: int, width: int):
        import numpy as np

        if (height, width) not in self._cache:
            cols = np.linspace(1500.0, 3000.0, width, dtype=np.float32)  # mm, farther to the right
            rows = np.linspace(0.0, 300.0, height, dtype=np.float32)[:, None]
            depth = (cols[None, :] + rows).astype(np.uint16)
            depth[::7, ::5] = 0  # holes
            info = CameraInfo(width=width, height=height, distortion_model="plumb_bob")
            info.k = [float(width), 0.0, width / 2.0, 0.0, float(width), height / 2.0, 0.0, 0.0, 1.0]
            self._cache = {(height, width): (depth.tobytes(), info)}
        return self._cache[(height, width)]

    def publish(self, header, shape) -> None:
        height, width = int(shape[0]), int(shape[1])
        data, info = self._render(height, width)
        msg = Image(height=height, width=width, encoding="16UC1", is_bigendian=0, step=width * 2)
        msg.header.stamp, msg.header.frame_id = header.stamp, "camera_color_optical_frame"
        msg.data = data
        info.header = msg.header
        self.info_pub.publish(info)
        self.pub.publish(msg)
