"""tracker_node as a managed (lifecycle) node over real DDS: a node started with autostart false, driven through
configure -> activate -> deactivate -> activate -> cleanup -> shutdown with lifecycle_msgs' ChangeState and GetState,
as a lifecycle manager (Nav2's, launch_ros' LifecycleNode, `ros2 lifecycle set`) does. Images are consumed only
while active, the targets survive a deactivate, and the services answer clearly in every state."""
from __future__ import annotations

import time

import pytest

from node_helpers import TOPIC, sequence, shared_node_args, tracker_node, weights  # noqa: F401


class Lifecycle:
    """ChangeState / GetState clients on the test's own node."""

    def __init__(self, client, node_name="/tracker_node"):
        from lifecycle_msgs.srv import ChangeState, GetState

        self.client = client
        self.change = client.node.create_client(ChangeState, f"{node_name}/change_state")
        self.get = client.node.create_client(GetState, f"{node_name}/get_state")
        assert self.change.wait_for_service(timeout_sec=30) and self.get.wait_for_service(timeout_sec=30)
        self.ChangeState, self.GetState = ChangeState, GetState

    def state(self) -> str:
        return self.client.call(self.get, self.GetState.Request()).current_state.label

    def set(self, transition_id: int) -> bool:
        req = self.ChangeState.Request()
        req.transition.id = transition_id
        return self.client.call(self.change, req, timeout=180).success


def fresh_diag(client) -> dict:
    """A /diagnostics status published after this call (so it reflects the state just reached)."""
    return client.latest_diag(timeout=10, newer_than=len(client.diags))


def assert_services_refuse(client, state: str):
    res = client.init([10, 10, 20, 20], retry_unknown_stamp=False)
    assert not res.success and res.message.startswith(f"node inactive ({state})"), res.message
    res = client.stop("")
    assert not res.success and res.message.startswith(f"node inactive ({state})"), res.message
    res = client.stop("someone")
    assert not res.success and "node inactive" in res.message, res.message


def no_detection_for(client, stamp, seconds=2.0) -> bool:
    time.sleep(seconds)
    with client.lock:
        return not any(a.header.stamp == stamp for a in client.arrays)


def test_transitions_over_dds(sequence, weights, tmp_path):  # noqa: F811
    from lifecycle_msgs.msg import Transition
    from rclpy.qos import ReliabilityPolicy

    import cv2

    # Half-size frames: the node keeps its default sensor-data (best effort) QoS here, and small messages are not
    # fragmented (large best-effort frames are lost on a loaded machine; the other node tests use reliable_qos).
    frames = [cv2.resize(f, (f.shape[1] // 2, f.shape[0] // 2), interpolation=cv2.INTER_AREA) for f in sequence[0]]
    gt = [[v / 2 for v in box] for box in sequence[1]]
    args = ["-p", f"weights:={weights}", "-p", "backend:=torch", "-p", "device:=cpu", "-p", "num_threads:=1",
            "-p", "autostart:=false"]  # default image QoS: sensor data
    with tracker_node(tmp_path / "node.log", *args, managed=True) as (client, proc, log):
        lc = Lifecycle(client)

        # unconfigured: no model, no image subscription, services refuse
        assert lc.state() == "unconfigured"
        diag = fresh_diag(client)
        assert diag["lifecycle_state"] == "unconfigured" and diag["backend"] == "none" and diag["_level"] == 0
        assert_services_refuse(client, "unconfigured")
        assert not client.node.get_subscriptions_info_by_topic(TOPIC)
        assert not lc.set(Transition.TRANSITION_ACTIVATE)  # not a transition of this state
        assert lc.state() == "unconfigured"

        # configure: weights loaded and every graph warmed up, still not consuming
        assert lc.set(Transition.TRANSITION_CONFIGURE)
        assert lc.state() == "inactive"
        text = log.read_text()
        assert "warmed up" in text and "configured: backend torch" in text
        diag = fresh_diag(client)
        assert diag["lifecycle_state"] == "inactive" and diag["backend"].startswith("torch")
        assert_services_refuse(client, "inactive")
        assert not client.node.get_subscriptions_info_by_topic(TOPIC)
        client.publish(frames[0])
        time.sleep(1.0)
        assert fresh_diag(client)["received"] == "0"

        # activate: the image subscription (sensor-data QoS by default) and the services
        assert lc.set(Transition.TRANSITION_ACTIVATE)
        assert lc.state() == "active"
        infos = client.wait_for(lambda: client.node.get_subscriptions_info_by_topic(TOPIC), 10,
                                "the node's image subscription")
        assert all(i.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT for i in infos)
        # best effort: a frame published before the subscription matched may be lost, so publish until one lands
        for _ in range(20):
            res = client.init(gt[0], stamp=client.publish(frames[0]))
            if res.success:
                break
        assert res.success, res.message
        for i in range(1, 4):
            s = client.publish(frames[i])
            try:
                client.array_for(s, ids=["default"])
            except AssertionError:
                raise AssertionError(f"{fresh_diag(client)}") from None
        # A parameter set at run time is applied (post-set callback) to the next frame's detections.
        assert client.set_param("class_id", "ball").successful
        array = client.array_for(client.publish(frames[4]), ids=["default"])
        assert array.detections[0].results[0].hypothesis.class_id == "ball"
        diag = fresh_diag(client)
        assert diag["lifecycle_state"] == "active" and "default" in diag["_targets"]
        received = int(diag["received"])
        assert received >= 4

        # deactivate: no images consumed, services refuse, the target and the model are kept
        assert lc.set(Transition.TRANSITION_DEACTIVATE)
        assert lc.state() == "inactive"
        assert_services_refuse(client, "inactive")
        stamp = client.publish(frames[6])
        assert no_detection_for(client, stamp)
        diag = fresh_diag(client)
        assert int(diag["received"]) == received
        assert diag["lifecycle_state"] == "inactive" and "1 target(s) kept" in diag["_message"]
        assert "default" in diag["_targets"]
        client.wait_for(lambda: not client.node.get_subscriptions_info_by_topic(TOPIC), 10,
                        "the image subscription gone")

        # activate again: the same target goes on being tracked without a new init_target
        assert lc.set(Transition.TRANSITION_ACTIVATE)
        assert lc.state() == "active"
        client.wait_for(lambda: client.node.get_subscriptions_info_by_topic(TOPIC), 10, "the image subscription")
        for _ in range(10):  # best effort: until a frame reaches the new subscription
            try:
                client.array_for(client.publish(frames[5]), timeout=3, ids=["default"])
                break
            except AssertionError:
                continue
        else:
            raise AssertionError("no detections of the kept target after re-activation")

        # deactivate + cleanup: model and targets released
        assert lc.set(Transition.TRANSITION_DEACTIVATE)
        assert lc.set(Transition.TRANSITION_CLEANUP)
        assert lc.state() == "unconfigured"
        assert_services_refuse(client, "unconfigured")
        diag = fresh_diag(client)
        assert diag["lifecycle_state"] == "unconfigured" and diag["_targets"] == {}
        assert "model and targets released" in log.read_text()

        # shutdown: finalized, services still answer
        assert lc.set(Transition.TRANSITION_UNCONFIGURED_SHUTDOWN)
        assert lc.state() == "finalized"
        assert_services_refuse(client, "finalized")
        assert fresh_diag(client)["lifecycle_state"] == "finalized"
        assert proc.poll() is None


def test_configure_failure_leaves_the_node_unconfigured_and_says_why(sequence, tmp_path):  # noqa: F811
    from lifecycle_msgs.msg import Transition

    missing = tmp_path / "no_such_weights.pt"
    with tracker_node(tmp_path / "node.log", "-p", f"weights:={missing}", "-p", "autostart:=false",
                      managed=True) as (client, proc, log):
        lc = Lifecycle(client)
        assert not lc.set(Transition.TRANSITION_CONFIGURE)
        assert lc.state() == "unconfigured"
        diag = fresh_diag(client)
        assert diag["_level"] == 2 and str(missing) in diag["_message"]
        res = client.init([10, 10, 20, 20], retry_unknown_stamp=False)
        assert not res.success and "node inactive (unconfigured)" in res.message and str(missing) in res.message
        assert proc.poll() is None


@pytest.mark.parametrize("gap", [0.05, 0.4, 1.5])
def test_second_sigint_during_shutdown_still_closes_cleanly(sequence, tmp_path, gap):  # noqa: F811
    """Ctrl-C, then Ctrl-C again `gap` seconds later while the node waits for its worker (busy with a frame of four
    targets on the full-width network) or destroys itself: the node, the executor and rclpy are still shut down,
    the exit code is 0 and no traceback is printed."""
    import signal
    import threading

    from node_helpers import Client, start_node
    from ros_helpers import release_domain_id, ros_env
    from siam_tracker_ros.backends import default_weights_path

    large = default_weights_path("large", False)
    if not large.is_file():
        pytest.skip(f"shipped weights {large} not present")
    frames, gt = sequence
    env = ros_env()
    domain = int(env["ROS_DOMAIN_ID"])
    log = tmp_path / "node.log"
    proc = start_node(env, "-p", f"weights:={large}", "-p", "backend:=torch", "-p", "device:=cpu",
                      "-p", "num_threads:=1", "-p", "reliable_qos:=true", log_path=log)
    client = Client(domain)
    stop = threading.Event()
    try:
        assert client.init_client.wait_for_service(timeout_sec=60)
        client.wait_for(lambda: client.diags and client.latest_diag(timeout=5)["lifecycle_state"] == "active", 180,
                        "the node active")
        stamp = client.publish(frames[0])
        x, y, w, h = gt[0]
        for k, (dx, dy) in enumerate([(0, 0), (60, 0), (0, 60), (60, 60)]):
            assert client.init([x + dx, y + dy, w, h], stamp=stamp, target_id=f"t{k}").success

        def stream():
            i = 1
            while not stop.is_set():
                client.publish(frames[i % len(frames)])
                i += 1
                time.sleep(0.1)

        streamer = threading.Thread(target=stream, daemon=True)
        streamer.start()
        client.wait_for(lambda: len(client.arrays) >= 1, 60, "a tracked frame")
        time.sleep(0.5)  # the worker is in the middle of a frame (each takes about a second here)
        proc.send_signal(signal.SIGINT)
        time.sleep(gap)
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=30)
    finally:
        stop.set()
        client.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        release_domain_id(domain)
    text = log.read_text()
    print(text[-3000:])
    assert code == 0, text[-3000:]
    assert "Traceback" not in text and "KeyboardInterrupt" not in text, text[-3000:]
    assert "tracker_node: shut down" in text


def test_launch_file_has_the_managed_argument():
    """launch/launch_ros are not installable here (the launch test in test_ros_foundation.py runs where they are):
    the launch file is checked as source, with no import of launch."""
    import ast
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "launch" / "tracker.launch.py"
    tree = ast.parse(path.read_text())
    declared = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "DeclareLaunchArgument":
            name = node.args[0].value
            declared[name] = {k.arg: ast.literal_eval(k.value) for k in node.keywords
                              if k.arg in ("default_value", "choices") and isinstance(k.value, (ast.Constant,
                                                                                                 ast.List))}
    assert declared["managed"] == {"default_value": "false", "choices": ["true", "false"]}
    imports = {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module == "launch_ros.actions"
               for a in n.names}
    assert imports == {"LifecycleNode", "Node"}
    source = path.read_text()
    assert 'overrides["autostart"] = not managed' in source
    assert "node_class = LifecycleNode if managed else Node" in source
