"""`ros2 launch siam_tracker_ros tracker.launch.py ...` and the other `ros2` commands, run as a user runs them, for the
launch tests (test_launch.py, test_readme_commands.py).

- A launch is a `ros2 launch` process in its own process group, as in a terminal, where Ctrl-C reaches the whole group
  (`Launch.interrupt` sends SIGINT to the group), on a ROS domain of its own (ros_helpers.ros_env: a free
  ROS_DOMAIN_ID held by a file lock, LOCALHOST discovery), its output in a log file, ROS's log files in the test's
  folder.
- The `ros2` commands of a domain start a ros2 daemon there; `close_domain` stops it and releases the domain.
- `Camera` streams a sequence of frames (and, when asked, a registered depth image of a plane at a known distance with
  its camera_info) from the test's own rclpy node, as a camera driver would.

`ros2`, `launch` and `launch_ros` are not on PyPI: tools/ros_env/bootstrap.sh installs them from ../shared/ros2 (or
$SIAM_ROS2_DIR) when that folder is there; without them `require_ros2_cli` skips the test, saying so.
"""
from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from ros_helpers import install_prefix, neutral_cwd, release_domain_id, require_rclpy, ros_env

PKG = "siam_tracker_ros"
LAUNCH_FILE = "tracker.launch.py"
# Names outside a node's namespace by ROS's design (rosout, parameter events) or by the package's (diagnostics).
GLOBAL_NAMES = {"/rosout", "/parameter_events", "/diagnostics"}


@functools.lru_cache(maxsize=None)
def ros2_cli_missing() -> str | None:
    """Why `ros2 launch` cannot run here (None when it can)."""
    if shutil.which("ros2") is None:
        return "no `ros2` command on the PATH"
    probe = subprocess.run([sys.executable, "-c", "import launch_ros.actions, ros2launch, ros2lifecycle, ros2topic"],
                           cwd=neutral_cwd(), capture_output=True, text=True, timeout=120)
    if probe.returncode != 0:
        return (probe.stderr.strip().splitlines() or [f"exit code {probe.returncode}"])[-1]
    if not (install_prefix() / "share" / PKG / "launch" / LAUNCH_FILE).is_file():
        return f"no colcon install of {PKG} at {install_prefix()} (run tools/ros_env/bootstrap.sh)"
    return None


def require_ros2_cli() -> None:
    require_rclpy()
    missing = ros2_cli_missing()
    if missing:
        pytest.skip(f"the ROS 2 command line and launch system are not installed ({missing}): "
                    f"tools/ros_env/bootstrap.sh installs them from ../shared/ros2 (or $SIAM_ROS2_DIR) when that "
                    f"folder is there; a robot's ROS 2 install has them")


def launch_env(log_dir: Path) -> dict:
    """A fresh domain's environment for `ros2` processes; ROS's own log files go to `log_dir`."""
    return ros_env(ROS_LOG_DIR=str(log_dir), RCUTILS_COLORIZED_OUTPUT="0")


def ros2(args: list[str], env: dict, timeout: float = 120.0) -> subprocess.CompletedProcess:
    """A `ros2` command run to its end (stdout and stderr together in .stdout)."""
    return subprocess.run(["ros2", *args], env=env, cwd=neutral_cwd(), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout)


def close_domain(env: dict) -> None:
    """Stop the ros2 daemon the domain's commands started, release the domain."""
    with contextlib.suppress(Exception):
        ros2(["daemon", "stop"], env, timeout=60)
    release_domain_id(int(env["ROS_DOMAIN_ID"]))


class Background:
    """A command in its own process group (as a terminal job), its output in a log file."""

    def __init__(self, argv: list[str], env: dict, log_path: Path):
        self.argv, self.log_path = list(argv), Path(log_path)
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(self.argv, env=env, cwd=neutral_cwd(), stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def tail(self, chars: int = 4000) -> str:
        return f"--- {' '.join(self.argv)} (log {self.log_path}) ---\n{self.text()[-chars:]}"

    def running(self) -> bool:
        return self.proc.poll() is None

    def wait_for_output(self, predicate, timeout: float, what: str) -> str:
        """Wait until predicate(output so far) holds; fail with the output when it does not in time or the process
        ends first."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.text()
            if predicate(text):
                return text
            if not self.running():
                pytest.fail(f"{what}: the process ended first (exit {self.proc.returncode})\n{self.tail()}")
            if time.monotonic() > deadline:
                pytest.fail(f"{what}: not within {timeout:.0f} s\n{self.tail()}")
            time.sleep(0.2)

    def interrupt(self) -> None:
        """Ctrl-C in the terminal: SIGINT to the whole process group."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGINT)

    def wait(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout: float = 60.0) -> int:
        """Ctrl-C, then SIGTERM and SIGKILL to the group if it does not end; the exit code."""
        if self.running():
            self.interrupt()
            if self.wait(timeout) is None:
                for sig in (signal.SIGTERM, signal.SIGKILL):
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(self.proc.pid, sig)
                    if self.wait(10) is not None:
                        break
        with contextlib.suppress(ProcessLookupError):  # anything of the group left behind
            os.killpg(self.proc.pid, signal.SIGKILL)
        self._log.close()
        return self.proc.returncode


class Launch(Background):
    """`ros2 launch siam_tracker_ros tracker.launch.py <arguments>`."""

    def __init__(self, arguments: list[str], env: dict, log_path: Path):
        super().__init__(["ros2", "launch", PKG, LAUNCH_FILE, *arguments], env, log_path)

    def assert_clean_exit(self, code) -> None:
        """What the README promises for Ctrl-C: exit 0, every process ended by itself, no traceback."""
        text = self.text()
        assert code == 0, f"ros2 launch exited with {code}\n{self.tail()}"
        assert "process has died" not in text, self.tail()
        assert "Traceback" not in text, self.tail()


def wait_until_active(client, node: str = "/tracker_node", timeout: float = 180.0) -> None:
    """As a user who waits for the launch to be up: the node's lifecycle state is 'active'."""
    from lifecycle_msgs.srv import GetState

    get = client.node.create_client(GetState, f"{node}/get_state")
    try:
        assert get.wait_for_service(timeout_sec=timeout), f"{node}/get_state never appeared"
        deadline = time.monotonic() + timeout
        while True:
            label = client.call(get, GetState.Request()).current_state.label
            if label == "active":
                return
            assert time.monotonic() < deadline, f"{node} is still {label} after {timeout:.0f} s"
            time.sleep(0.3)
    finally:
        client.node.destroy_client(get)


def half_size(frames, boxes):
    """Frames at half size (a 320x180 bgr8 image is one unfragmented message for a best-effort subscriber: the
    launch's defaults use the sensor-data QoS) and their boxes."""
    import cv2

    small = [cv2.resize(f, (f.shape[1] // 2, f.shape[0] // 2), interpolation=cv2.INTER_AREA) for f in frames]
    return small, [[v / 2 for v in box] for box in boxes]


class Camera:
    """A camera driver stand-in on a test Client's node: publishes `frames` in a loop (each stamped now) on
    `image_topic` at `rate` Hz from a thread; with `depth_topic`, after each colour frame also a 16UC1 depth image of a
    plane facing the camera at `distance` metres (registered: same size and stamp) and camera_info on `info_topic`.
    `stamps` maps each published stamp (ns) to the index of its frame."""

    FX, FY = 260.0, 265.0

    def __init__(self, client, frames, image_topic: str, rate: float = 10.0, depth_topic: str | None = None,
                 info_topic: str | None = None, distance: float = 1.5):
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CameraInfo, Image

        self.client, self.frames, self.period = client, frames, 1.0 / rate
        self.distance = distance
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.image_pub = client.node.create_publisher(Image, image_topic, reliable)
        self.depth_pub = client.node.create_publisher(Image, depth_topic, reliable) if depth_topic else None
        self.info_pub = client.node.create_publisher(CameraInfo, info_topic, reliable) if depth_topic else None
        self.stamps: dict[int, int] = {}
        self.index = 0  # the frame published next (the loop restarts at 0 after the last one)
        self.hold = None  # a frame index to publish again and again (a still scene) instead of the sequence
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.wait(self.period):
            i = self.hold if self.hold is not None else self.index
            self.publish(i)
            if self.hold is None:
                self.index = (self.index + 1) % len(self.frames)

    def publish(self, i: int):
        from siam_tracker_ros.ros.image_codec import bgr_to_imgmsg
        from std_msgs.msg import Header

        header = Header(frame_id="camera_color_optical_frame")
        header.stamp = self.client.stamp()
        self.image_pub.publish(bgr_to_imgmsg(self.frames[i], header, encoding="bgr8"))
        self.stamps[header.stamp.sec * 10 ** 9 + header.stamp.nanosec] = i
        if self.depth_pub is not None:
            self._publish_depth(header)
        return header.stamp

    def _publish_depth(self, header):
        from sensor_msgs.msg import CameraInfo, Image

        h, w = self.frames[0].shape[:2]
        mm = np.full((h, w), round(self.distance * 1000), np.uint16)
        msg = Image(header=header, height=h, width=w, encoding="16UC1", is_bigendian=0, step=2 * w,
                    data=mm.tobytes())
        self.depth_pub.publish(msg)
        info = CameraInfo(header=header, width=w, height=h, distortion_model="plumb_bob")
        info.k = [self.FX, 0.0, (w - 1) / 2, 0.0, self.FY, (h - 1) / 2, 0.0, 0.0, 1.0]
        self.info_pub.publish(info)

    def close(self):
        self._stop.set()
        self._thread.join(timeout=10)


def start_target(client, camera, call, timeout=60.0):
    """As an operator who draws a box on the frame on screen: a still scene (frame 0 again and again), then
    call(stamp in ns) -> (success, reason, message) on the newest frame published, again while the node has not
    received that frame yet (reason unknown_stamp); afterwards the camera plays the sequence on from frame 1."""
    camera.hold = 0
    deadline = time.monotonic() + timeout
    while True:
        stamp_ns = client.wait_for(lambda: max(camera.stamps, default=None), 30, "a published frame")
        success, reason, message = call(stamp_ns)
        if success or reason != "unknown_stamp" or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert success, message
    camera.index, camera.hold = 1, None


def service_init(client, box, target_id=""):
    """call(stamp_ns) for start_target: the init_target service of the test's client."""
    from builtin_interfaces.msg import Time

    def call(stamp_ns):
        res = client.init(box, stamp=Time(sec=stamp_ns // 10 ** 9, nanosec=stamp_ns % 10 ** 9), target_id=target_id,
                          retry_unknown_stamp=False)
        return res.success, res.reason, res.message
    return call
