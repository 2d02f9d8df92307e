"""The tracker node's tests over real DDS (test_node.py, test_node_reliability.py, ...): the frames (the package's
built-in sequence, synthetic.py: no data folder needed, so the suite runs on a robot) and the small random network
they use, a node subprocess (`tracker_node`: started, its services awaited, stopped and checked) and
`Client`, the tests' own rclpy node that publishes frames, calls the services and records what the tracker publishes.

The node runs the working tree's sources. The generated service types only exist in the colcon install
(.ros/install, made by tools/ros_env/bootstrap.sh), so both this process and the node process add the installed
package folder to `siam_tracker_ros.__path__` (see `use_installed_srv`).
"""
from __future__ import annotations

import contextlib
import functools
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from ros_helpers import REPO_ROOT, install_prefix, release_domain_id, require_rclpy, ros_env

NUM_FRAMES = 30
# The first NUM_FRAMES frames of the built-in sequence at its own length (its gentle start: a photographed object
# panning and growing, before the occluder and the image edge), at a 640 x 360 camera's size.
SCRIPT_FRAMES = 150
FRAME_SIZE = (640, 360)
TOPIC = "/camera/image_raw"
PARAMS_FILE = REPO_ROOT / "config" / "tracker.yaml"


def _installed_pkg_dir() -> Path | None:
    for p in sorted(install_prefix().glob("lib/python3*/site-packages/siam_tracker_ros")):
        if (p / "srv" / "__init__.py").is_file():
            return p
    return None


def use_installed_srv() -> None:
    """Make `siam_tracker_ros.srv` (generated, installed) importable next to the source package."""
    import siam_tracker_ros

    pkg = _installed_pkg_dir()
    if pkg is not None and str(pkg) not in siam_tracker_ros.__path__:
        siam_tracker_ros.__path__.append(str(pkg))


def _skip_reasons() -> str | None:
    require_rclpy()
    try:
        import rclpy  # noqa: F401
        import vision_msgs.msg  # noqa: F401
        use_installed_srv()
        import siam_tracker_ros.srv  # noqa: F401
    except ImportError as err:
        return f"ROS 2 environment incomplete ({err}): run tools/ros_env/bootstrap.sh and source .ros/env.sh"
    return None


def require_node_pieces() -> None:
    """Skip the calling test, with the reason, without the ROS 2 pieces a node test needs."""
    reason = _skip_reasons()
    if reason:
        pytest.skip(reason)


@functools.lru_cache(maxsize=1)
def built_in_frames() -> tuple[list, list]:
    """The node tests' frames and ground-truth boxes (rendered once per test process)."""
    from siam_tracker_ros.synthetic import make_sequence

    frames, boxes = make_sequence(SCRIPT_FRAMES, size=FRAME_SIZE)
    return frames[:NUM_FRAMES], [[float(v) for v in box] for box in boxes[:NUM_FRAMES]]


NODE_CODE = (
    "import sys, siam_tracker_ros; siam_tracker_ros.__path__.append(sys.argv.pop(1)); "
    "from siam_tracker_ros.ros.node import main; sys.exit(main(sys.argv))"
)


def start_node(env: dict, *ros_args: str, log_path: Path, params_file: Path | None = PARAMS_FILE,
               **popen_kw) -> subprocess.Popen:
    """`python -m siam_tracker_ros.ros.node --ros-args -r image:=/camera/image_raw [--params-file ...] <ros_args>`
    (`params_file` None: only the node's defaults and `ros_args`)."""
    env = dict(env)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")])
    params = ["--params-file", str(params_file)] if params_file is not None else []
    cmd = [sys.executable, "-c", NODE_CODE, str(_installed_pkg_dir()), "--ros-args", "-r", f"image:={TOPIC}",
           *params, *ros_args]
    return subprocess.Popen(cmd, env=env, cwd=str(REPO_ROOT), stdout=open(log_path, "w"), stderr=subprocess.STDOUT,
                            **popen_kw)


def stop_node(proc: subprocess.Popen) -> int:
    if proc.poll() is None:
        proc.send_signal(2)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    return inter / (aw * ah + bw * bh - inter)


@pytest.fixture(scope="module")
def sequence():
    """(frames, boxes) to publish; skips without the ROS 2 pieces the node tests need."""
    require_node_pieces()
    frames, gt = built_in_frames()
    assert len(frames) == NUM_FRAMES and all(np.isfinite(gt).all(axis=1))
    return frames, gt


@pytest.fixture(scope="module")
def weights(tmp_path_factory, sequence):
    import torch
    from siam_tracker_ros.config import ModelConfig
    from siam_tracker_ros.model import build_model, save_weights

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "test_w025.pt"
    save_weights(build_model(ModelConfig(width=0.25)), path)
    return path


def node_config():
    """The tracker configuration the node builds from config/tracker.yaml (+ the overrides the tests pass)."""
    from siam_tracker_ros.config import Config

    cfg = Config()
    p = yaml.safe_load(PARAMS_FILE.read_text())["tracker_node"]["ros__parameters"]
    for k in ("lost_threshold", "found_threshold", "freeze_threshold", "window_influence"):
        if k in p:  # the file leaves the Config-backed parameters commented out: then Config's default applies
            setattr(cfg.tracking, k, float(p[k]))
    cfg.backend.name, cfg.backend.device, cfg.backend.num_threads = "torch", "cpu", 1
    return cfg


class Client:
    """The test's own rclpy node: publishes frames, calls the services, records what the tracker publishes."""

    def __init__(self, domain_id: int):
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image
        from siam_tracker_ros.srv import InitTarget, StopTarget
        from vision_msgs.msg import Detection2D, Detection2DArray

        self.rclpy = rclpy
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node("tracker_node_test", context=self.context)
        self.lock = threading.Condition()
        self.dets, self.arrays, self.heatmaps, self.diags, self.states = [], [], [], [], []
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.image_pub = self.node.create_publisher(Image, TOPIC, reliable)
        from sensor_msgs.msg import CompressedImage
        self.compressed_pub = self.node.create_publisher(CompressedImage, TOPIC + "/compressed", reliable)
        self.node.create_subscription(Detection2D, "/tracked_object", lambda m: self._add(self.dets, m), 100)
        self.node.create_subscription(Detection2DArray, "/tracked_objects", lambda m: self._add(self.arrays, m), 100)
        from siam_tracker_ros.msg import TrackedTargetArray
        self.node.create_subscription(TrackedTargetArray, "/tracked_objects/state",
                                      lambda m: self._add(self.states, m), 100)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", lambda m: self._add(self.diags, m), 10)
        # Deep queues: the burst tests send up to 300 requests at once (a client's own request and response queues
        # must hold its burst: the node cannot make up for a client that drops its own requests).
        service_qos = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
        self.init_client = self.node.create_client(InitTarget, "/init_target", qos_profile=service_qos)
        self.stop_client = self.node.create_client(StopTarget, "/stop_target", qos_profile=service_qos)
        self.InitTarget, self.StopTarget = InitTarget, StopTarget
        self.heatmap_sub = None
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._closing = threading.Event()
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _spin(self):
        # Our own loop, not executor.spin(): close() must know the thread has left the executor before it destroys
        # anything (rclpy's Executor.shutdown does not wait for a spinning thread; destroying the node under it
        # deadlocked a CI run, that thread holding the GIL).
        while not self._closing.is_set():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:
                if self._closing.is_set() or not self.context.ok():
                    break
                raise

    def _add(self, store, msg):
        with self.lock:
            store.append(msg)
            self.lock.notify_all()

    def wait_for(self, predicate, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        with self.lock:
            while True:
                value = predicate()
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
                self.lock.wait(min(left, 0.2))

    def subscribe_heatmap(self):
        from sensor_msgs.msg import Image

        self.heatmap_sub = self.node.create_subscription(Image, "/tracked_object/heatmap",
                                                         lambda m: self._add(self.heatmaps, m), 10)

    def unsubscribe_heatmap(self):
        self.node.destroy_subscription(self.heatmap_sub)
        self.heatmap_sub = None

    # -- frames
    def stamp(self):
        return self.node.get_clock().now().to_msg()

    def publish(self, frame, stamp=None, encoding="bgr8"):
        from siam_tracker_ros.ros.image_codec import bgr_to_imgmsg
        from std_msgs.msg import Header

        header = Header(frame_id="camera")
        header.stamp = stamp or self.stamp()
        msg = bgr_to_imgmsg(frame, header, encoding=encoding)
        self.image_pub.publish(msg)
        return header.stamp

    def publish_raw(self, msg):
        self.image_pub.publish(msg)

    def publish_compressed(self, frame, fmt="png", data=None):
        import cv2
        from sensor_msgs.msg import CompressedImage

        msg = CompressedImage(format=fmt)
        msg.header.frame_id = "camera"
        msg.header.stamp = self.stamp()
        msg.data = data if data is not None else cv2.imencode("." + fmt, frame)[1].tobytes()
        self.compressed_pub.publish(msg)
        return msg.header.stamp

    def state_for(self, stamp, target_id="default", timeout=20.0):
        """The TrackedTarget the tracker published on tracked_objects/state for `target_id` on the frame `stamp`."""
        def find():
            for a in reversed(self.states):
                if a.header.stamp == stamp:
                    return next((t for t in a.targets if t.id == target_id), None)
            return None
        return self.wait_for(find, timeout, f"the state of {target_id} on frame {stamp.sec}.{stamp.nanosec:09d}")

    def array_for(self, stamp, timeout=20.0, ids=None):
        """The Detection2DArray the tracker published for the frame with `stamp` (and, optionally, these ids)."""
        def find():
            for a in reversed(self.arrays):
                if a.header.stamp == stamp and (ids is None or sorted(d.id for d in a.detections) == sorted(ids)):
                    return a
            return None
        return self.wait_for(find, timeout, f"detections for frame {stamp.sec}.{stamp.nanosec:09d}")

    def publish_and_track(self, frame, ids=("default",), timeout=20.0):
        stamp = self.publish(frame)
        return stamp, self.array_for(stamp, timeout, ids)

    # -- services
    def call(self, client, request, timeout=40.0):
        # As a user's script: a request sent before the service is discovered is lost (the node creates its
        # services when it is active, and discovery of a new service takes its time on a loaded machine).
        assert client.wait_for_service(timeout_sec=timeout), f"service {client.srv_name} did not appear in {timeout} s"
        future = client.call_async(request)
        done = threading.Event()
        future.add_done_callback(lambda f: done.set())
        assert done.wait(timeout), f"service {client.srv_name} did not answer within {timeout} s"
        return future.result()

    def init(self, box_xywh=None, stamp=None, target_id="", bbox=None, timeout=40.0, retry_unknown_stamp=True):
        from siam_tracker_ros.ros.messages import box_to_bbox

        req = self.InitTarget.Request()
        if stamp is not None:
            req.header.stamp = stamp
        req.target_id = target_id
        req.bbox = bbox if bbox is not None else box_to_bbox(box_xywh)
        deadline = time.monotonic() + 5.0
        while True:
            res = self.call(self.init_client, req, timeout)
            # A frame just published may not have reached the node yet: retry "unknown stamp" briefly.
            if res.success or not retry_unknown_stamp or time.monotonic() > deadline or \
                    res.reason != res.REASON_UNKNOWN_STAMP:
                return res
            time.sleep(0.1)

    def set_param(self, name, value):
        """Set one of the node's parameters through its set_parameters service; the SetParametersResult."""
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter

        if not hasattr(self, "_set_client"):
            self._set_client = self.node.create_client(SetParameters, "/tracker_node/set_parameters")
            assert self._set_client.wait_for_service(timeout_sec=10)
        req = SetParameters.Request(parameters=[Parameter(name, value=value).to_parameter_msg()])
        return self.call(self._set_client, req).results[0]

    def stop(self, target_id=""):
        req = self.StopTarget.Request()
        req.target_id = target_id
        return self.call(self.stop_client, req)

    def latest_diag(self, timeout=10.0, newer_than=None):
        """The tracker's main status values (dict) from a /diagnostics message received after `newer_than`."""
        start = len(self.diags) if newer_than is None else newer_than
        msg = self.wait_for(lambda: self.diags[start:] and self.diags[-1], timeout, "/diagnostics")
        main = next(s for s in msg.status if s.name.endswith(": tracker"))
        values = {kv.key: kv.value for kv in main.values}
        values["_level"] = int.from_bytes(main.level, "little") if isinstance(main.level, bytes) else int(main.level)
        values["_message"] = main.message
        values["_targets"] = {s.name.split(": target ", 1)[1]: {kv.key: kv.value for kv in s.values}
                              for s in msg.status if ": target " in s.name}
        return values

    def close(self):
        self._closing.set()
        self.thread.join(timeout=30)
        if self.thread.is_alive():  # stuck in a callback: leave its node be (a daemon thread) rather than deadlock
            print("test client: the executor thread did not stop; its node is not destroyed")
            return
        self.executor.shutdown(timeout_sec=2)
        self.node.destroy_node()
        self.rclpy.try_shutdown(context=self.context)


def shared_node_args(weights) -> list[str]:
    """The parameters of the node a test module shares (test_node's `ros`, test_node_reliability's `rel`)."""
    return ["-p", f"weights:={weights}", "-p", "backend:=torch", "-p", "device:=cpu", "-p", "num_threads:=1",
            "-p", "reliable_qos:=true", "-p", "use_compressed:=true",
            # the tests publish bursts (frames to init on later) faster than a loaded CI machine may spin the node's
            # executor: a deeper history keeps them (the node still tracks only the newest)
            "-p", "qos_depth:=10"]


@contextlib.contextmanager
def tracker_node(log: Path, *ros_args: str, env: dict | None = None, managed: bool = False,
                 params_file: Path | None = PARAMS_FILE):
    """(client, node process, log path): a tracker node started with `ros_args` on a domain of its own (`env`, else
    a fresh ros_env()) and a Client on it, as soon as its init_target service is up, as a client script would: with
    autostart the services come up once the node is active (weights loaded, every graph warmed up, images
    subscribed) or its configuration failed; with `managed` (autostart false: the test drives the lifecycle) they are
    up in every state.
    Afterwards the client is closed, the node stopped and the domain released; unless the body failed, the node must
    have exited cleanly, without a Traceback in its log."""
    env = ros_env() if env is None else env
    domain = int(env["ROS_DOMAIN_ID"])
    proc = start_node(env, *ros_args, log_path=log, params_file=params_file)
    client = Client(domain)
    try:
        # The warm-up of every graph comes before the services: generous on a loaded machine.
        if not client.init_client.wait_for_service(timeout_sec=180.0):
            pytest.fail(f"init_target never appeared; node log:\n{log.read_text()[-3000:]}")
        yield client, proc, log
    finally:
        client.close()
        code = stop_node(proc)
        release_domain_id(domain)
    text = log.read_text()
    print(f"--- tracker_node log (exit {code}) ---\n{text[-6000:]}")
    assert code in (0, -2), f"node exited with {code}:\n{text[-3000:]}"
    assert "Traceback" not in text, text[-6000:]


def stop_all_targets(request, fixture: str) -> None:
    """After a test on a module's shared node (the fixture named `fixture`): stop every target, so that one failure
    does not cascade."""
    if fixture in request.fixturenames:
        try:
            request.getfixturevalue(fixture)[0].stop("")
        except AssertionError:
            pass


def log_lines(log: Path, needle: str, settle: float = 1.0) -> list[str]:
    """The node log's lines holding `needle`, once one is there and `settle` s more have passed (for a second)."""
    deadline = time.monotonic() + 10
    while not any(needle in line for line in log.read_text().splitlines()) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(settle)
    return [line for line in log.read_text().splitlines() if needle in line]


def assert_alive(node):
    client, proc, log = node
    assert proc.poll() is None, f"tracker_node died (exit {proc.returncode}):\n{log.read_text()[-3000:]}"
