"""`siam-tracker play`: publish a folder of frames, a video file, a camera or the built-in sequence as
`sensor_msgs/Image` at a set rate, stamped with the node clock at publish time, like a camera driver would.

    siam-tracker play --frames ../shared/data/train/vot-bag --rate 30 --loop
    siam-tracker play --video clip.mp4 --topic /camera/image_raw --frame-id camera
    siam-tracker play --camera 0
    siam-tracker play --builtin --stamps-out stamps.csv
    ros2 run siam_tracker_ros frame_player --builtin --ros-args -p frame_id:=cam -r __node:=player

Node `frame_player` (rename with `--ros-args -r __node:=...`). Parameters (the command-line options are their
defaults; `--ros-args -p name:=value` overrides):

    frame_id  (string)  header.frame_id of every image               (--frame-id, default "camera")
    rate      (double)  frames per second; <= 0: as fast as possible (--rate, default 30; a camera: its own rate)
    loop      (bool)    start again at the end of a folder/video     (--loop)
    paused    (bool)    while true nothing is published; `ros2 param set /frame_player paused false` resumes.
                        `--hold-first` publishes the first frame and then sets it (the demo initialises the tracker
                        on that frame, then resumes the stream); while held, that frame is sent again (same
                        stamp) every 0.5 s, for subscribers that matched too late to get it.

The publisher QoS is the sensor-data profile (best effort, keep last 5) unless `--reliable`. Each published frame's
stamp and source index can be recorded (`--stamps-out FILE`, CSV `seq,frame,sec,nanosec`; a line is written and
flushed before its frame is published, so a reader that sees an image has its line).

Frames are paced against absolute deadlines (start + k / rate), so the rate does not drift; a frame that is late by
more than one period restarts the schedule (it is published late, none is skipped).
"""
from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from ..data.frames import FrameSource, open_source  # noqa: F401 (open_source: part of this module's API)

DEFAULT_TOPIC = "/camera/image_raw"
NODE_NAME = "frame_player"
HELD_FRAME_RESEND_S = 0.5  # --hold-first: how often the held first frame is sent again


def parse_size(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be WIDTHxHEIGHT, e.g. 640x480, got {text!r}") from None
    if w < 8 or h < 8:
        raise argparse.ArgumentTypeError(f"size {text} is too small")
    return w, h


def fit_size(img: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    if size is None or (img.shape[1], img.shape[0]) == tuple(size):
        return img
    interp = cv2.INTER_AREA if size[0] < img.shape[1] else cv2.INTER_LINEAR
    return cv2.resize(img, tuple(size), interpolation=interp)


# --------------------------------------------------------------------------------------------------------------
# The node

def _make_node_class():
    """Build the rclpy node class lazily, so importing this module (for the CLI) does not need rclpy."""
    from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, qos_profile_sensor_data, ReliabilityPolicy, HistoryPolicy
    from sensor_msgs.msg import Image

    from .image_codec import bgr_to_imgmsg

    class FramePlayer(Node):
        def __init__(self, source: FrameSource, args):
            super().__init__(NODE_NAME)
            self.source = source
            self.args = args
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
            self._resume = threading.Event()
            if not self.get_parameter("paused").value:
                self._resume.set()
            self.add_on_set_parameters_callback(self._on_params)
            if args.reliable:
                qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5, reliability=ReliabilityPolicy.RELIABLE)
            else:
                qos = qos_profile_sensor_data
            self.pub = self.create_publisher(Image, args.topic, qos)
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

        # parameters ------------------------------------------------------------------------------------------
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

        # publishing ------------------------------------------------------------------------------------------
        def start(self):
            self._thread.start()

        def _run_guarded(self):
            try:
                self._run()
            except BaseException as err:  # noqa: BLE001 - reported by main()
                self.error = err
            finally:
                self.done.set()

        def _wait_subscribers(self):
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
            if not self._wait_subscribers():
                return
            limit = self.args.count
            # --duration counts playing time: the clock starts at the first frame and stops while paused
            played, last_tick = 0.0, None
            frame_index = 0
            next_t = None
            k = 0
            held, held_sent = None, 0.0  # --hold-first: the first frame, sent again while held
            while not self.stop.is_set():
                if limit is not None and self.published >= limit:
                    break
                now = time.monotonic()
                if last_tick is not None and self._resume.is_set():
                    played += now - last_tick
                last_tick = now if self.published else None
                if self.args.duration and played >= self.args.duration:
                    break
                if not self._resume.is_set():
                    self._resume.wait(0.1)
                    next_t = None  # restart the schedule after a pause
                    if held is not None and time.monotonic() - held_sent >= HELD_FRAME_RESEND_S:
                        # Best effort: a subscriber that matched this writer only after the first frame went out
                        # never got it. The same message again (same stamp) is a no-op for one that did.
                        self.pub.publish(held)
                        held_sent = time.monotonic()
                    continue
                held = None
                img = self.source.read()
                if img is None:
                    if self.get_parameter("loop").value and self.source.rewind():
                        frame_index = 0
                        img = self.source.read()
                    if img is None:
                        break
                img = fit_size(img, self.args.size)
                rate = float(self.get_parameter("rate").value)
                now = time.monotonic()
                if rate > 0:
                    period = 1.0 / rate
                    if next_t is None or now - (next_t + k * period) > period:
                        next_t, k = now, 0  # first frame, or late by more than a period: restart the schedule
                    target = next_t + k * period
                    while not self.stop.is_set():
                        wait = target - time.monotonic()
                        if wait <= 0:
                            break
                        time.sleep(min(wait, 0.05))
                    if self.stop.is_set():
                        break
                    k += 1
                    if k > 1000:
                        next_t, k = target, 1
                header_stamp = self.get_clock().now().to_msg()
                msg = bgr_to_imgmsg(img, encoding=self.args.encoding)
                msg.header.stamp = header_stamp
                msg.header.frame_id = str(self.get_parameter("frame_id").value)
                if self.args.hold_first and self.published == 0:
                    # pause before publishing, so a client that sees the first frame can only un-pause after this
                    self.set_parameters([_param("paused", True)])
                    self.get_logger().info("publishing the first frame, then holding until parameter paused is false")
                    held, held_sent = msg, time.monotonic()
                if self._stamps is not None:
                    self._stamps.write(f"{self.published},{frame_index},{header_stamp.sec},{header_stamp.nanosec}\n")
                self.pub.publish(msg)
                self.published += 1
                frame_index += 1
            if self._stamps is not None:
                self._stamps.close()
                self._stamps = None

        def shutdown(self):
            self.stop.set()
            self._resume.set()
            if self._thread.is_alive():
                self._thread.join(timeout=2.0)
            if self._stamps is not None:
                self._stamps.close()
                self._stamps = None
            self.source.close()

    return FramePlayer


def _param(name, value):
    from rclpy.parameter import Parameter

    return Parameter(name, value=value)


# --------------------------------------------------------------------------------------------------------------
# Command line

def add_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_argument_group("source (choose one)")
    src.add_argument("--frames", metavar="DIR", help="folder of images, played in file-name order")
    src.add_argument("--video", metavar="FILE", help="video file (anything OpenCV reads)")
    src.add_argument("--camera", metavar="INDEX", type=int, help="camera device index (cv2.VideoCapture)")
    src.add_argument("--builtin", action="store_true", help="the built-in synthetic sequence (scikit-image photos)")
    src.add_argument("--builtin-frames", type=int, default=None, help="length of the built-in sequence (150)")
    parser.add_argument("--topic", default=DEFAULT_TOPIC, help=f"image topic (default {DEFAULT_TOPIC})")
    parser.add_argument("--frame-id", default="camera", help="header.frame_id (parameter frame_id)")
    parser.add_argument("--rate", type=float, default=None,
                        help="frames per second (default 30; a video or camera: its own rate); <= 0: unthrottled")
    parser.add_argument("--loop", action="store_true", help="restart at the end of a folder or video")
    parser.add_argument("--reliable", action="store_true", help="reliable QoS (default: sensor-data, best effort)")
    parser.add_argument("--encoding", default="bgr8", help="image encoding (bgr8, rgb8, mono8, ...; default bgr8)")
    parser.add_argument("--size", type=parse_size, default=None, metavar="WxH", help="resize every frame, e.g. 640x480")
    parser.add_argument("--count", type=int, default=None, help="stop after publishing this many frames")
    parser.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    parser.add_argument("--stamps-out", metavar="FILE", help="CSV of every published frame: seq,frame,sec,nanosec")
    parser.add_argument("--wait-subscribers", type=int, default=0, metavar="N",
                        help="publish only once N subscribers are matched on the topic")
    parser.add_argument("--wait-timeout", type=float, default=60.0, help="seconds to wait for subscribers (60)")
    parser.add_argument("--paused", action="store_true", help="start paused (set parameter paused:=false to play)")
    parser.add_argument("--hold-first", action="store_true",
                        help="publish the first frame, then pause until parameter paused is set to false")
    parser.add_argument("--no-shm-profile", action="store_true",
                        help="do not give Fast DDS a larger shared-memory segment for the images (see "
                             "use_large_shm_segment)")
    parser.add_argument("--linger", type=float, default=0.5,
                        help="seconds to keep the node alive after the last frame (default 0.5)")


def add_play_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("play", help="publish frames (folder, video, camera, built-in) as sensor_msgs/Image",
                              description=__doc__.splitlines()[0])
    add_arguments(p)
    p.set_defaults(func=run_play)
    return p


def run_play(args, ros_args: list[str] | None = None) -> int:
    """Run the player until the source ends (or --count/--duration, or Ctrl-C). Returns an exit code."""
    try:
        source = open_source(args.frames, args.video, args.camera, args.builtin, args.builtin_frames)
    except (ValueError, FileNotFoundError, RuntimeError, ImportError) as err:
        print(f"siam-tracker play: {err}", file=sys.stderr)
        return 2

    profile = None
    if not args.no_shm_profile:
        w, h = args.size if args.size else (1920, 1080)  # size unknown before the first frame: assume up to 1080p
        profile = use_large_shm_segment(w * h * 4)

    import rclpy
    import rclpy.exceptions
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

    rclpy.init(args=["siam-tracker-play"] + list(ros_args or []), signal_handler_options=_no_signal_handlers())
    node = None
    stop_signal = threading.Event()

    def on_signal(signum, frame):  # SIGINT/SIGTERM: stop publishing, shut down cleanly
        stop_signal.set()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    code = 0
    try:
        node = _make_node_class()(source, args)
        rate = node.get_parameter("rate").value
        node.get_logger().info(
            f"publishing {source.name} on {node.pub.topic_name} at "
            f"{'max rate' if rate <= 0 else f'{rate:g} Hz'} ({'reliable' if args.reliable else 'sensor-data QoS'}"
            f"{', loop' if args.loop else ''})")
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        node.start()
        while not node.done.is_set() and not stop_signal.is_set():
            executor.spin_once(timeout_sec=0.05)
        if node.error is not None:
            raise node.error
        linger_end = time.monotonic() + max(0.0, args.linger)
        while time.monotonic() < linger_end and not stop_signal.is_set():
            executor.spin_once(timeout_sec=0.05)
        node.get_logger().info(f"published {node.published} frames")
    except TimeoutError as err:
        print(f"siam-tracker play: {err}", file=sys.stderr)
        code = 3
    except (ValueError, TypeError, rclpy.exceptions.ParameterException) as err:
        print(f"siam-tracker play: bad parameter: {err}", file=sys.stderr)
        code = 2
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.shutdown()
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
        for s, h in old.items():
            signal.signal(s, h)
        if profile:
            with contextlib.suppress(OSError):
                os.unlink(profile)
    return code


_FASTDDS_PROFILE = """<?xml version="1.0" encoding="UTF-8" ?>
<!-- written by siam-tracker play: a shared-memory segment large enough for whole camera images -->
<profiles xmlns="http://www.eprosima.com">
  <transport_descriptors>
    <transport_descriptor>
      <transport_id>siam_player_shm</transport_id>
      <type>SHM</type>
      <segment_size>{segment}</segment_size>
      <maxMessageSize>{message}</maxMessageSize>
    </transport_descriptor>
    <transport_descriptor>
      <transport_id>siam_player_udp</transport_id>
      <type>UDPv4</type>
    </transport_descriptor>
  </transport_descriptors>
  <participant profile_name="siam_player_participant" is_default_profile="true">
    <rtps>
      <userTransports>
        <transport_id>siam_player_shm</transport_id>
        <transport_id>siam_player_udp</transport_id>
      </userTransports>
      <useBuiltinTransports>false</useBuiltinTransports>
    </rtps>
  </participant>
</profiles>
"""


def use_large_shm_segment(frame_bytes: int) -> str | None:
    """Fast DDS's default shared-memory segment (512 KiB) is smaller than one 640x480 bgr8 image (900 KiB), so
    images go over fragmented UDP instead, and best-effort (sensor-data) subscribers lose most of them as soon as
    the machine is busy. With Fast DDS and no user profile, give this process's participant a shared-memory
    segment of 16 frames (at least 32 MiB): the segment is the writer's, so every local subscriber benefits.
    Returns the profile path written, or None when left alone."""
    rmw = os.environ.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
    if "fastrtps" not in rmw and "fastdds" not in rmw:
        return None
    if os.environ.get("FASTDDS_DEFAULT_PROFILES_FILE") or os.environ.get("FASTRTPS_DEFAULT_PROFILES_FILE"):
        return None
    message = max(4 << 20, 2 * int(frame_bytes) + (64 << 10))
    segment = max(32 << 20, 16 * message)
    import tempfile

    fd, path = tempfile.mkstemp(prefix="siam_player_fastdds_", suffix=".xml")
    with os.fdopen(fd, "w") as f:
        f.write(_FASTDDS_PROFILE.format(segment=segment, message=message))
    os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = path
    return path


def _no_signal_handlers():
    from rclpy.signals import SignalHandlerOptions

    return SignalHandlerOptions.NO


def main(argv: list[str] | None = None) -> int:
    """`frame_player` executable (lib/siam_tracker_ros/frame_player): player options, then optional --ros-args."""
    from rclpy.utilities import remove_ros_args

    argv = list(sys.argv[1:] if argv is None else argv)
    ros_args = []
    if "--ros-args" in argv:
        i = argv.index("--ros-args")
        ros_args = argv[i:]
        argv = remove_ros_args(["x"] + argv)[1:]
    parser = argparse.ArgumentParser(prog=os.path.basename(sys.argv[0]) or NODE_NAME,
                                     description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    if not any([args.frames, args.video, args.camera is not None, args.builtin]):
        args.builtin = True  # a bare `ros2 run siam_tracker_ros frame_player` plays the built-in sequence
    return run_play(args, ros_args)


if __name__ == "__main__":
    sys.exit(main())
