"""tracker_node as a managed (lifecycle) node over real DDS: a node started with autostart false, driven through
configure -> activate -> deactivate -> activate -> cleanup -> shutdown with lifecycle_msgs' ChangeState and GetState,
as a lifecycle manager (Nav2's, launch_ros' LifecycleNode, `ros2 lifecycle set`) does. Images are consumed only
while active, the targets survive a deactivate, and the services answer clearly in every state. Then the start-up a
client script sees with autostart (served once the service is there), config_file against explicit parameters, and
repeated Ctrl-C."""
from __future__ import annotations

import time

import pytest
import yaml

from node_helpers import TOPIC, log_lines, sequence, shared_node_args, tracker_node, weights  # noqa: F401


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
    assert not res.success and res.reason == res.REASON_INACTIVE, res.message
    assert res.message.startswith(f"node inactive ({state})"), res.message
    res = client.stop("")
    assert not res.success and res.reason == res.REASON_INACTIVE, res.message
    assert res.message.startswith(f"node inactive ({state})"), res.message
    res = client.stop("someone")
    assert not res.success and res.reason == res.REASON_INACTIVE, res.message


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
        # a refused stop_target is logged once, as a refusal
        assert not client.stop("stop_while_unconfigured").success
        lines = log_lines(log, "stop_while_unconfigured")
        assert len(lines) == 1 and "refused (inactive)" in lines[0], lines
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
        assert not res.success and res.reason == res.REASON_UNAVAILABLE
        assert "node inactive (unconfigured)" in res.message and str(missing) in res.message
        assert proc.poll() is None


def test_a_client_that_waits_for_the_service_is_served_at_once(sequence, weights, tmp_path):  # noqa: F811
    """The idiomatic client script: start the node (autostart, the default sensor-data image QoS), wait for
    /init_target, start streaming and call init_target at once: served, because with autostart the services come up
    only once the node is active and subscribed to its images. No look at /diagnostics first."""
    import threading

    import cv2

    frames = [cv2.resize(f, (f.shape[1] // 2, f.shape[0] // 2), interpolation=cv2.INTER_AREA) for f in sequence[0]]
    box = [v / 2 for v in sequence[1][0]]
    args = ["-p", f"weights:={weights}", "-p", "backend:=torch", "-p", "device:=cpu", "-p", "num_threads:=1"]
    # tracker_node hands the client over as soon as wait_for_service returned.
    with tracker_node(tmp_path / "node.log", *args, params_file=None) as (client, proc, log):
        assert client.node.get_subscriptions_info_by_topic(TOPIC), "the service is up but the image subscription not"
        stop, first = threading.Event(), threading.Event()

        def stream():
            i = 0
            while not stop.is_set():
                client.publish(frames[i % len(frames)])
                first.set()
                i += 1
                stop.wait(1 / 15)

        streamer = threading.Thread(target=stream, daemon=True)
        streamer.start()
        try:
            assert first.wait(10)
            # Stamp zero: the newest frame. The request may still overtake the first frame on its way: the helper
            # asks again after a "no frames received yet" only; any other refusal ("node inactive") is final.
            res = client.init(box)
            assert res.success, res.message
            client.wait_for(lambda: any(a.detections for a in client.arrays), 30, "detections of the stream")
        finally:
            stop.set()
            streamer.join()
        assert "active: tracking images" in log.read_text()


def test_config_file_values_apply_unless_the_parameter_is_set(sequence, weights, tmp_path):  # noqa: F811
    """config_file's tracking.* and backend.* values are the tracker's unless the same parameter is set explicitly
    (here on the command line); the parameters then say the values in use."""
    from rcl_interfaces.srv import GetParameters
    from rclpy.parameter import parameter_value_to_python

    cfg = tmp_path / "tracking.yaml"
    cfg.write_text(yaml.safe_dump({"tracking": {"lost_threshold": 0.2, "window_influence": 0.3},
                                   "backend": {"max_targets": 2}}))
    args = ["-p", f"weights:={weights}", "-p", "backend:=torch", "-p", "device:=cpu", "-p", "num_threads:=1",
            "-p", "reliable_qos:=true", "-p", f"config_file:={cfg}", "-p", "window_influence:=0.25"]
    with tracker_node(tmp_path / "node.log", *args, params_file=None) as (client, proc, log):
        get = client.node.create_client(GetParameters, "/tracker_node/get_parameters")
        assert get.wait_for_service(timeout_sec=30)
        names = ["lost_threshold", "window_influence", "found_threshold", "max_targets"]
        values = client.call(get, GetParameters.Request(names=names)).values
        assert dict(zip(names, map(parameter_value_to_python, values))) == {
            "lost_threshold": 0.2, "window_influence": 0.25, "found_threshold": 0.55, "max_targets": 2}
        # backend.max_targets: the graphs are built for 2 targets, a third is refused
        frames, gt = sequence
        stamp = client.publish(frames[0])
        assert client.init(gt[0], stamp=stamp, target_id="a").success
        assert client.init(gt[0], stamp=stamp, target_id="b").success
        res = client.init(gt[0], stamp=stamp, target_id="c")
        assert not res.success and res.reason == res.REASON_TOO_MANY_TARGETS, res.message
        assert "max_targets = 2" in res.message, res.message
        res = client.set_param("max_targets", 3)
        assert not res.successful and "start-up value 2" in res.reason
        text = log.read_text()
        assert "(up to 2 targets)" in text
        assert "parameters win over tracking.window_influence = 0.3 by parameter window_influence = 0.25" in text


@pytest.mark.parametrize("delays", [(0.05,), (0.4,), (1.0,), (0.05, 0.05), (0.2, 0.5), ("shut down", 0.02, 0.02)],
                         ids=str)
def test_repeated_ctrl_c_exits_cleanly(sequence, tmp_path, delays):  # noqa: F811
    """Ctrl-C, then one or two more after `delays`, sent to the node's process group while the worker is busy with
    a frame of four targets on the full-width network, during the shutdown, or after it printed "shut down": exit
    code 0, no traceback, the node, the executor and rclpy shut down."""
    import os
    import threading

    from node_helpers import Client, start_node
    from ros_helpers import release_domain_id, ros_env, sigint_process_group
    from siam_tracker_ros.backends import default_weights_path

    large = default_weights_path("large", False)
    if not large.is_file():
        pytest.skip(f"shipped weights {large} not present")
    frames, gt = sequence
    env = ros_env()
    domain = int(env["ROS_DOMAIN_ID"])
    log = tmp_path / "node.log"
    # A session of its own: the node alone in its process group, as in a terminal.
    proc = start_node(env, "-p", f"weights:={large}", "-p", "backend:=torch", "-p", "device:=cpu",
                      "-p", "num_threads:=1", "-p", "reliable_qos:=true", log_path=log, start_new_session=True)
    client = Client(domain)
    stop = threading.Event()
    try:
        assert client.init_client.wait_for_service(timeout_sec=180), log.read_text()[-3000:]
        stamp = client.publish(frames[0])
        x, y, w, h = gt[0]
        for k, (dx, dy) in enumerate([(0, 0), (60, 0), (0, 60), (60, 60)]):
            res = client.init([x + dx, y + dy, w, h], stamp=stamp, target_id=f"t{k}")
            assert res.success, res.message

        def stream():
            i = 1
            while not stop.is_set():
                client.publish(frames[i % len(frames)])
                i += 1
                stop.wait(0.1)

        streamer = threading.Thread(target=stream, daemon=True)
        streamer.start()
        n = len(client.arrays)
        client.wait_for(lambda: len(client.arrays) >= n + 2, 60, "two tracked frames")  # the worker is mid-frame
        sigint_process_group(proc, delays, lambda: "tracker_node: shut down" in log.read_text())
        code = proc.wait(timeout=60)
    finally:
        stop.set()
        client.close()
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
            proc.wait()
        release_domain_id(domain)
    text = log.read_text()
    print(text[-3000:])
    assert code == 0, text[-3000:]
    assert "Traceback" not in text and "KeyboardInterrupt" not in text, text[-3000:]
    assert "tracker_node: shut down" in text


def test_ctrl_c_during_the_warm_up_exits_cleanly(tmp_path):
    """Ctrl-C twice while the node warms up the full-width network (before its services exist): exit code 0, no
    traceback, and no "warm-up failed" error for a warm-up the shutdown cut short."""
    from node_helpers import start_node
    from ros_helpers import release_domain_id, ros_env, sigint_process_group
    from siam_tracker_ros.backends import default_weights_path

    large = default_weights_path("large", False)
    if not large.is_file():
        pytest.skip(f"shipped weights {large} not present")
    env = ros_env()
    log = tmp_path / "node.log"
    proc = start_node(env, "-p", f"weights:={large}", "-p", "backend:=torch", "-p", "device:=cpu",
                      "-p", "num_threads:=1", log_path=log, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while "loaded" not in log.read_text() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert "loaded" in log.read_text() and "warmed up" not in log.read_text(), log.read_text()
        sigint_process_group(proc, (0.3,))
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        release_domain_id(int(env["ROS_DOMAIN_ID"]))
    text = log.read_text()
    assert code == 0, text[-3000:]
    assert "Traceback" not in text and "warm-up failed" not in text, text[-3000:]
    assert "tracker_node: shut down" in text
