"""The in-process rclpy client of a run: calls init_target, un-pauses the player, records every Detection2D (with its
receipt time) and the targets' typed states, keeps the tracker node's latest /diagnostics. rclpy is imported only
when a Client is made, so the records can be read and analysed without ROS."""
from __future__ import annotations

import contextlib
import csv
import threading
import time
from dataclasses import dataclass, field

from .launcher import PLAYER_NODE, TRACKER_NODE, DemoError, ensure_interfaces


def read_stamps(path) -> list[tuple[int, int, int]]:
    """The player's --stamps-out file: [(seq, frame index, stamp ns)], in publish order (partial lines skipped)."""
    out = []
    try:
        with open(path) as f:
            for row in csv.DictReader(f):
                try:
                    out.append((int(row["seq"]), int(row["frame"]),
                                int(row["sec"]) * 1_000_000_000 + int(row["nanosec"])))
                except (TypeError, ValueError, KeyError):
                    continue
    except FileNotFoundError:
        pass
    return out


@dataclass
class Record:
    stamp_ns: int
    receipt_ns: int
    target_id: str
    box: tuple  # (x, y, w, h)
    score: float
    lost: bool


@dataclass
class Recorder:
    """Collects Detection2D messages and the targets' typed states (tracked_objects/state); thread-safe."""

    records: list = field(default_factory=list)
    lost: dict = field(default_factory=dict)  # (stamp ns, target id) -> lost, from TrackedTargetArray
    lock: threading.Lock = field(default_factory=threading.Lock)
    last_receipt: float = 0.0  # time.monotonic() of the last message

    def callback(self, msg) -> None:
        receipt = time.time_ns()
        from ..ros.messages import bbox_to_box, confidence, stamp_ns

        rec = Record(stamp_ns(msg.header.stamp), receipt, msg.id, bbox_to_box(msg.bbox), confidence(msg), False)
        with self.lock:
            self.records.append(rec)
            self.last_receipt = time.monotonic()

    def state_callback(self, msg) -> None:
        from ..ros.messages import is_lost, stamp_ns

        stamp = stamp_ns(msg.header.stamp)
        with self.lock:
            for t in msg.targets:
                self.lost[(stamp, t.id)] = is_lost(t)

    def snapshot(self) -> list:
        with self.lock:
            return [Record(r.stamp_ns, r.receipt_ns, r.target_id, r.box, r.score,
                           self.lost.get((r.stamp_ns, r.target_id), r.lost)) for r in self.records]


class Client:
    """rclpy node of the demo: init_target client, player parameter client, tracked_object recorder.

    The executor spins in a thread of its own, so receipt times are taken as messages arrive."""

    def __init__(self, name: str = "siam_tracker_demo"):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
        from rclpy.signals import SignalHandlerOptions
        from diagnostic_msgs.msg import DiagnosticArray
        from rcl_interfaces.srv import SetParameters
        from vision_msgs.msg import Detection2D

        ensure_interfaces()
        from siam_tracker_ros.srv import InitTarget

        self.rclpy = rclpy
        self.context = rclpy.context.Context()
        rclpy.init(context=self.context, signal_handler_options=SignalHandlerOptions.NO)
        self.node = rclpy.create_node(name, context=self.context)
        self.recorder = Recorder()
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=200, reliability=ReliabilityPolicy.RELIABLE)
        self.node.create_subscription(Detection2D, "tracked_object", self.recorder.callback, qos)
        from siam_tracker_ros.msg import TrackedTargetArray
        self.node.create_subscription(TrackedTargetArray, "tracked_objects/state", self.recorder.state_callback, qos)
        self.diagnostics: dict = {}  # key -> value of the tracker node's latest main status
        self.diagnostics_time = 0.0  # time.monotonic() of its arrival
        self.diagnostics_history: list = []  # [(time.monotonic(), values)]: every main status (about 1 Hz)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)
        self.InitTarget = InitTarget
        self.init_client = self.node.create_client(InitTarget, "init_target")
        self.param_client = self.node.create_client(SetParameters, f"/{PLAYER_NODE}/set_parameters")
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, name="demo_client", daemon=True)
        self._thread.start()

    def _on_diagnostics(self, msg) -> None:
        for status in msg.status:
            if TRACKER_NODE in status.name and status.name.endswith(": tracker"):
                self.diagnostics = {kv.key: kv.value for kv in status.values}
                self.diagnostics_time = time.monotonic()
                self.diagnostics_history.append((self.diagnostics_time, self.diagnostics))

    def _spin(self):
        while not self._stop.is_set() and self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:  # noqa: BLE001 - shutting down
                if self._stop.is_set() or not self.context.ok():
                    break
                raise

    def wait_for_service(self, client, timeout: float, alive=lambda: True) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if client.service_is_ready():
                return True
            if not alive():
                return False
            time.sleep(0.1)
        return client.service_is_ready()

    def call(self, client, request, timeout: float = 15.0):
        future = client.call_async(request)
        deadline = time.monotonic() + timeout
        while not future.done():
            if time.monotonic() > deadline:
                future.cancel()
                raise DemoError(f"no answer from {client.srv_name} within {timeout:.0f} s")
            time.sleep(0.01)
        if future.exception() is not None:
            raise DemoError(f"{client.srv_name} failed: {future.exception()}")
        return future.result()

    def init_target(self, stamp_ns: int, box, target_id: str = "", timeout: float = 30.0):
        from ..ros.messages import box_to_bbox

        req = self.InitTarget.Request()
        req.header.stamp.sec, req.header.stamp.nanosec = divmod(int(stamp_ns), 1_000_000_000)
        req.target_id = target_id
        req.bbox = box_to_bbox(box)
        return self.call(self.init_client, req, timeout)

    def set_player_paused(self, paused: bool, timeout: float = 10.0) -> None:
        from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
        from rcl_interfaces.srv import SetParameters

        if not self.wait_for_service(self.param_client, timeout):
            raise DemoError(f"the frame player's parameter service /{PLAYER_NODE}/set_parameters is not available")
        req = SetParameters.Request()
        req.parameters = [Parameter(name="paused", value=ParameterValue(type=ParameterType.PARAMETER_BOOL,
                                                                      bool_value=bool(paused)))]
        res = self.call(self.param_client, req, timeout)
        if not res.results or not res.results[0].successful:
            raise DemoError(f"could not set the player's paused parameter: {res.results}")

    def close(self):
        self._stop.set()
        self._thread.join(timeout=2.0)
        with contextlib.suppress(Exception):
            self.executor.shutdown(timeout_sec=1.0)
        with contextlib.suppress(Exception):
            self.node.destroy_node()
        with contextlib.suppress(Exception):
            self.rclpy.shutdown(context=self.context)
