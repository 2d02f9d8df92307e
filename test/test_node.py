"""tracker_node over real DDS: a node subprocess, frames of the built-in sequence published from this process (the node,
the client and the fixtures: node_helpers.py).

One node process is shared by the tests of this module (they run in file order and leave no target behind); a
second, short-lived node checks the missing-weights start-up and the default sensor-data QoS.
"""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from node_helpers import (NUM_FRAMES, PARAMS_FILE, TOPIC, assert_alive, iou, node_config, sequence,  # noqa: F401
                          shared_node_args, stop_all_targets, tracker_node, weights)


@pytest.fixture(scope="module")
def ros(sequence, weights, tmp_path_factory):  # noqa: F811
    """(client, node process, log path): one tracker node for the whole module."""
    with tracker_node(tmp_path_factory.mktemp("node") / "tracker_node.log", *shared_node_args(weights)) as node:
        yield node


@pytest.fixture(autouse=True)
def _no_target_left(request):
    yield
    stop_all_targets(request, "ros")


# ---------------------------------------------------------------------------------------------------- tests
def test_no_frames_yet(ros):
    client, _, _ = ros
    res = client.init([10, 10, 20, 20], retry_unknown_stamp=False)
    assert not res.success and res.reason == res.REASON_UNKNOWN_STAMP and "no frames received yet" in res.message
    assert res.target_id == "default"


def test_stream_matches_offline_tracker(ros, sequence, weights):
    from siam_tracker_ros.ros import messages
    from siam_tracker_ros.tracking import SiamTracker

    client, _, _ = ros
    frames, gt = sequence
    stamp0 = client.publish(frames[0])
    res = client.init(gt[0], stamp=stamp0)
    assert res.success, res.message
    assert res.target_id == "default"

    stamps, boxes = [], []
    for frame in frames[1:]:
        stamp, arr = client.publish_and_track(frame)
        stamps.append(stamp)
        det = arr.detections[0]
        assert det.header.stamp == stamp and det.header.frame_id == "camera"
        boxes.append(messages.bbox_to_box(det.bbox))

    # Every frame gave exactly one Detection2D on tracked_object, with the frame's stamp.
    client.wait_for(lambda: any(d.header.stamp == stamps[-1] for d in client.dets), 5, "the last Detection2D")
    with client.lock:
        singles = [d for d in client.dets if d.id == "default"]
    assert [d.header.stamp for d in singles] == stamps
    for d in singles:
        assert d.results[0].hypothesis.class_id == "target"
        assert 0.0 <= d.results[0].hypothesis.score <= 1.0
        assert len(d.results) == 1  # the state is not a second "class" hypothesis
        assert d.bbox.center.theta == 0.0

    # The offline tracker on the same frames with the same weights.
    tracker = SiamTracker.from_config(node_config(), weights)
    tracker.init(frames[0], gt[0])
    offline = [tracker.update(f)["default"] for f in frames[1:]]
    ious = [iou(a, b.box) for a, b in zip(boxes, offline)]
    assert np.mean(ious) >= 0.98, ious
    scores = [d.results[0].hypothesis.score for d in singles]
    np.testing.assert_allclose(scores, [r.confidence for r in offline], atol=0.02)
    states = [client.state_for(stamp) for stamp in stamps]  # typed state on tracked_objects/state
    assert [messages.is_lost(st) for st in states] == [r.lost for r in offline]
    np.testing.assert_allclose([st.confidence for st in states], scores, atol=1e-6)
    assert all(st.header.frame_id == "camera" and st.id == "default" for st in states)

    diag = client.latest_diag()
    assert int(diag["processed"]) >= NUM_FRAMES - 1
    assert float(diag["latency_median_ms"]) > 0
    assert diag["_targets"]["default"]["state"] in ("tracked", "lost")
    assert int(diag["heatmaps_published"]) == 0  # nobody subscribed: never computed
    assert client.stop("").success


def test_init_on_past_frame_two_targets_and_stop(ros, sequence, weights):
    from siam_tracker_ros.ros import messages
    from siam_tracker_ros.tracking import SiamTracker

    client, _, _ = ros
    frames, gt = sequence
    # No target: frames are only buffered. The box is drawn on frame 2 while frames 3..9 stream on.
    stamps = []
    for i in range(10):
        stamps.append(client.publish(frames[i]))
        time.sleep(0.05)
    time.sleep(0.5)
    res = client.init(gt[2], stamp=stamps[2], target_id="ball")
    assert res.success, res.message
    assert res.target_id == "ball"
    _, arr = client.publish_and_track(frames[10], ids=["ball"])
    node_box = messages.bbox_to_box(arr.detections[0].bbox)

    tracker = SiamTracker.from_config(node_config(), weights)
    tracker.init(frames[2], gt[2], "ball")
    for f in frames[3:11]:
        r = tracker.update(f)["ball"]
    assert iou(node_box, r.box) >= 0.98, (node_box, r.box)

    # A second target (zero stamp: the latest frame), tracked alongside the first.
    other = [40.0, 40.0, 60.0, 50.0]
    res = client.init(other, target_id="corner")
    assert res.success, res.message
    for i in range(11, 14):
        stamp, arr = client.publish_and_track(frames[i], ids=["ball", "corner"])
        # ... and one Detection2D per target on tracked_object (a separate topic: may arrive a little later)
        singles = client.wait_for(lambda: (lambda ids: len(ids) >= 2 and ids)(
            sorted(d.id for d in client.dets if d.header.stamp == stamp)), 5, "both Detection2D messages")
        assert singles == ["ball", "corner"]

    res = client.stop("corner")
    assert res.success and res.reason == res.REASON_OK and "corner" in res.message
    client.publish_and_track(frames[14], ids=["ball"])
    res = client.stop("nobody")
    assert not res.success and res.reason == res.REASON_NOT_TRACKED and "nobody" in res.message
    res = client.stop("")
    assert res.success and "ball" in res.message
    stamp = client.publish(frames[15])
    time.sleep(1.0)
    with client.lock:
        assert not any(a.header.stamp == stamp for a in client.arrays)


def test_lost_state_is_machine_readable_within_one_frame(ros, sequence, weights):
    """A frame without the target: the very next Detection2D says "lost"; the target back: "tracked" again."""
    from siam_tracker_ros.ros import messages
    from siam_tracker_ros.tracking import SiamTracker

    client, _, _ = ros
    frames, gt = sequence
    gray = np.full_like(frames[0], 128)
    seq = [frames[1], gray, gray, frames[0], frames[1]]
    tracker = SiamTracker.from_config(node_config(), weights)
    tracker.init(frames[0], gt[0])
    expected = [tracker.update(f)["default"] for f in seq]
    assert expected[1].lost, "the offline tracker should lose the target on a uniform frame"

    stamp = client.publish(frames[0])
    assert client.init(gt[0], stamp=stamp).success
    states, scores = [], []
    for i, f in enumerate(seq):
        stamp, arr = client.publish_and_track(f)
        det = arr.detections[0]
        st = client.state_for(stamp)
        states.append(messages.is_lost(st))
        assert (st.lost_frames >= 1) if messages.is_lost(st) else (st.lost_frames == 0)
        assert len(det.results) == 1 and det.results[0].hypothesis.class_id == "target"
        scores.append(messages.confidence(det))
        if i == 2:
            diag = client.latest_diag()
            assert diag["_level"] == 1 and "lost" in diag["_message"]  # WARN while lost
            assert diag["_targets"]["default"]["state"] == "lost"
    assert states == [r.lost for r in expected]
    assert client.state_for(stamp).reacquisitions == 1  # lost on the grey frames, tracked again on the object
    np.testing.assert_allclose(scores, [r.confidence for r in expected], atol=0.02)
    assert client.stop("").success


def test_compressed_input(ros, sequence):
    client, _, _ = ros
    frames, gt = sequence
    stamp = client.publish_compressed(frames[0])
    assert client.init(gt[0], stamp=stamp).success
    stamp = client.publish_compressed(frames[1])
    arr = client.array_for(stamp)
    assert arr.header.stamp == stamp and arr.detections[0].id == "default"
    errors0 = int(client.latest_diag()["conversion_errors"])
    client.publish_compressed(frames[2], fmt="jpeg", data=b"\xff\xd8 certainly not a JPEG")
    client.wait_for(lambda: int(client.latest_diag(timeout=5)["conversion_errors"]) > errors0, 15,
                    "the corrupt compressed frame counted")
    stamp = client.publish_compressed(frames[3], fmt="jpg")
    client.array_for(stamp)
    assert_alive(ros)
    assert client.stop("").success


def test_unstamped_frames_are_tracked(ros, sequence):
    """A driver that leaves header.stamp zero: frames are told apart by arrival time, output keeps the zero stamp."""
    from builtin_interfaces.msg import Time

    client, _, _ = ros
    frames, gt = sequence
    client.publish(frames[0], stamp=Time())
    assert client.init(gt[0]).success  # zero stamp: the latest frame
    for i in range(1, 4):
        with client.lock:
            n = sum(a.header.stamp == Time() for a in client.arrays)
        client.publish(frames[i], stamp=Time())
        client.wait_for(lambda: sum(a.header.stamp == Time() for a in client.arrays) > n, 20,
                        f"detections for unstamped frame {i}")
    assert client.stop("").success


def test_max_targets(ros, sequence):
    client, _, _ = ros
    frames, gt = sequence
    stamp = client.publish(frames[0])
    assert client.set_param("max_targets", 2).successful
    try:
        assert client.init(gt[0], stamp=stamp, target_id="one").success
        assert client.init([50.0, 50.0, 40.0, 40.0], stamp=stamp, target_id="two").success
        res = client.init([150.0, 50.0, 40.0, 40.0], stamp=stamp, target_id="three")
        assert not res.success and res.reason == res.REASON_TOO_MANY_TARGETS and "max_targets = 2" in res.message
        assert client.init([60.0, 60.0, 40.0, 40.0], stamp=stamp, target_id="two").success  # re-init: allowed
        client.publish_and_track(frames[1], ids=["one", "two"])
    finally:
        assert client.set_param("max_targets", 4).successful
    assert client.stop("").success


def test_heatmap_only_while_subscribed(ros, sequence):
    client, _, _ = ros
    frames, gt = sequence
    stamp = client.publish(frames[0])
    assert client.init(gt[0], stamp=stamp).success
    before = int(client.latest_diag()["heatmaps_published"])
    client.publish_and_track(frames[1])
    client.subscribe_heatmap()
    try:
        for i in range(2, 20):  # until the node has discovered the subscription
            stamp, _ = client.publish_and_track(frames[i])
            with client.lock:
                if client.heatmaps:
                    break
        msg = client.wait_for(lambda: client.heatmaps and client.heatmaps[-1], 5.0, "a heatmap")
        assert msg.encoding == "bgr8" and (msg.height, msg.width) == frames[0].shape[:2]
        assert msg.step == msg.width * 3 and len(msg.data) == msg.step * msg.height
        assert msg.header.frame_id == "camera"
        assert int(client.latest_diag()["heatmaps_published"]) > before
    finally:
        client.unsubscribe_heatmap()
    # Once the subscription is gone, the node stops rendering (after DDS notices).

    def stopped():
        n0 = int(client.latest_diag(timeout=5)["heatmaps_published"])
        client.publish_and_track(frames[20])
        client.publish_and_track(frames[21])
        return int(client.latest_diag(timeout=5)["heatmaps_published"]) == n0
    assert any(stopped() for _ in range(5))
    assert client.stop("").success


def test_bad_requests_and_images_leave_node_running(ros, sequence):
    from sensor_msgs.msg import Image
    from vision_msgs.msg import BoundingBox2D

    client, _, _ = ros
    frames, gt = sequence
    h, w = frames[0].shape[:2]
    stamp = client.publish(frames[0])
    assert client.init(gt[0], stamp=stamp).success  # make sure the frame arrived

    def bbox(cx, cy, sx, sy, theta=0.0):
        b = BoundingBox2D()
        # floats only: this rclpy build stores a Python int given to a float64 field as garbage
        b.center.position.x, b.center.position.y, b.center.theta, b.size_x, b.size_y = (
            float(cx), float(cy), float(theta), float(sx), float(sy))
        return b

    cases = {
        "NaN": bbox(float("nan"), 50, 20, 20),
        "empty": bbox(50, 50, 0, 20),
        "outside": bbox(w + 100, 50, 20, 20),
        "too small": bbox(50, 50, 1, 1),
        "axis-aligned": bbox(50, 50, 20, 20, theta=0.3),
    }
    for expect, b in cases.items():
        res = client.init(bbox=b, stamp=stamp, target_id="bad", retry_unknown_stamp=False)
        assert not res.success and res.reason == res.REASON_BAD_BOX and expect in res.message, (expect, res.message)
    from builtin_interfaces.msg import Time

    res = client.init(gt[0], stamp=Time(sec=12, nanosec=345), retry_unknown_stamp=False)
    assert not res.success and res.reason == res.REASON_UNKNOWN_STAMP
    assert "no frame with stamp 12.000000345" in res.message

    from siam_tracker_ros.ros.image_codec import bgr_to_imgmsg

    def expect_conversion_error(msg, match):
        # One at a time: the image subscription keeps only the newest qos_depth messages (never lag).
        errors0 = int(client.latest_diag()["conversion_errors"])
        msg.header.stamp = client.stamp()
        client.publish_raw(msg)
        diag = client.wait_for(lambda: (lambda d: int(d["conversion_errors"]) > errors0 and d)(
            client.latest_diag(timeout=5)), 15, f"a conversion error ({match}) in /diagnostics")
        assert match in diag["last_conversion_error"], diag["last_conversion_error"]
        assert_alive(ros)

    expect_conversion_error(Image(height=h, width=w, encoding="32FC1", step=w * 4, data=bytes(w * h * 4)),
                            "unsupported image encoding '32FC1'")
    msg = bgr_to_imgmsg(frames[1])
    msg.data = bytes(msg.data)[: len(msg.data) // 3]
    expect_conversion_error(msg, "truncated")
    msg = bgr_to_imgmsg(frames[1])
    msg.step = w
    expect_conversion_error(msg, "step")
    assert_alive(ros)
    # Still tracking valid frames, other encodings included.
    client.publish_and_track(frames[1])
    stamp = client.publish(frames[2], encoding="rgb8")
    client.array_for(stamp)
    stamp = client.publish(frames[3], encoding="yuv422")
    client.array_for(stamp)
    assert_alive(ros)
    assert client.stop("").success


def test_burst_of_service_calls_while_streaming(ros, sequence):
    from siam_tracker_ros.ros.messages import box_to_bbox
    from builtin_interfaces.msg import Time

    client, _, _ = ros
    frames, gt = sequence
    stamp = client.publish(frames[0])
    assert client.init(gt[0], stamp=stamp).success
    stop = threading.Event()

    def stream():
        i = 1
        while not stop.is_set():
            client.publish(frames[i % NUM_FRAMES])
            i += 1
            time.sleep(1 / 15)  # faster than the tracker on this machine: frames get dropped

    streamer = threading.Thread(target=stream, daemon=True)
    streamer.start()
    try:
        futures = []
        for k in range(100):
            kind = k % 5
            if kind == 3:
                req = client.StopTarget.Request(target_id=f"ghost{k}")
                futures.append(("stop", client.stop_client.call_async(req)))
                continue
            req = client.InitTarget.Request()
            req.target_id = f"burst{k % 2}" if kind == 4 else "burst_bad"
            if kind == 0:
                req.bbox = box_to_bbox([0, 0, 0, 0])  # empty
            elif kind == 1:
                req.bbox = box_to_bbox([10, 10, 20, 20])
                req.header.stamp = Time(sec=1, nanosec=1)  # unknown stamp
            elif kind == 2:
                req.bbox = box_to_bbox([1e6, 1e6, 20, 20])  # off the image
            else:
                req.bbox = box_to_bbox(gt[0])  # valid, on the latest frame
            futures.append(("init" if kind != 4 else "valid", client.init_client.call_async(req)))
        t0 = time.monotonic()
        # The last init of each id goes out 0.2 s after the burst: the services' callbacks run on a thread pool, so
        # requests sent together may be taken in any order, and "last" must mean last for the node too.
        time.sleep(0.2)
        finals = []
        for tid in ("burst0", "burst1"):
            req = client.InitTarget.Request(target_id=tid)
            req.bbox = box_to_bbox(gt[0])
            finals.append(client.init_client.call_async(req))
        client.wait_for(lambda: all(f.done() for _, f in futures) and all(f.done() for f in finals), 120,
                        "102 service answers")
        elapsed = time.monotonic() - t0
        results = [(kind, f.result()) for kind, f in futures]
        assert all(not r.success for kind, r in results if kind in ("init", "stop"))
        valid = [r for kind, r in results if kind == "valid"]
        # A re-init of an id supersedes its older, not yet installed init: those answer so at once; the last
        # request of each id (the finals) is installed.
        assert all(r.reason == (r.REASON_OK if r.success else r.REASON_SUPERSEDED) for r in valid), \
            [(r.reason, r.message) for r in valid if not r.success]
        assert all(f.result().success for f in finals), [f.result().message for f in finals]
        print(f"102 service calls answered in {elapsed:.1f} s while streaming")
        # The stream is still being tracked, the burst's targets with the default one.
        client.wait_for(lambda: any(sorted(d.id for d in a.detections) == ["burst0", "burst1", "default"]
                                    for a in list(client.arrays)[-3:]), 20, "detections of the three targets")
    finally:
        stop.set()
        streamer.join()
    assert_alive(ros)
    diag = client.latest_diag()
    assert int(diag["dropped"]) > 0  # the 15 Hz stream outran the tracker: frames were dropped, not queued
    assert client.stop("").success


def test_parameters_file_matches_declared_parameters(ros):
    from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
    from rcl_interfaces.srv import DescribeParameters, GetParameters, ListParameters, SetParameters
    from rclpy.parameter import parameter_dict_from_yaml_file, parameter_value_to_python

    from siam_tracker_ros.ros.params import CONFIG_FIELDS, PARAMS

    client, _, _ = ros
    from_file = parameter_dict_from_yaml_file(str(PARAMS_FILE), target_nodes=["tracker_node"])
    lp = client.node.create_client(ListParameters, "/tracker_node/list_parameters")
    gp = client.node.create_client(GetParameters, "/tracker_node/get_parameters")
    dp = client.node.create_client(DescribeParameters, "/tracker_node/describe_parameters")
    sp = client.node.create_client(SetParameters, "/tracker_node/set_parameters")
    for c in (lp, gp, dp, sp):
        assert c.wait_for_service(timeout_sec=10)
    declared = set(client.call(lp, ListParameters.Request()).result.names)
    assert set(from_file) <= declared, set(from_file) - declared
    # ... and the file lists every parameter of the node (apart from rclpy's own), the Config-backed ones commented
    # out (so that a config_file's value applies): those run with the table's default.
    commented = set(CONFIG_FIELDS)
    assert not commented & set(from_file), commented & set(from_file)
    assert declared - set(from_file) - commented <= {"use_sim_time", "start_type_description_service"}
    expected = {**{p.name: p.default for p in PARAMS if p.name in commented},
                **{name: parameter_value_to_python(v.value) for name, v in from_file.items()}}
    names = sorted(expected)
    values = client.call(gp, GetParameters.Request(names=names)).values
    overridden = {"weights", "backend", "device", "num_threads", "reliable_qos", "use_compressed", "qos_depth"}
    for name, value in zip(names, values):
        if name not in overridden:
            assert parameter_value_to_python(value) == expected[name], name
    for d in client.call(dp, DescribeParameters.Request(names=names)).descriptors:
        assert d.description, d.name

    def set_param(name, py_value):
        if isinstance(py_value, float):
            v = ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=py_value)
        else:
            v = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=py_value)
        return client.call(sp, SetParameters.Request(parameters=[Parameter(name=name, value=v)])).results[0]

    assert not set_param("weights", "/elsewhere.pt").successful  # read-only
    assert not set_param("lost_threshold", 0.9).successful  # above found_threshold
    assert not set_param("heatmap_alpha", 3.0).successful  # out of range
    assert set_param("lost_threshold", 0.3).successful
    assert set_param("lost_threshold", float(expected["lost_threshold"])).successful
    assert_alive(ros)


def test_missing_weights_stays_up_and_explains(sequence, tmp_path):
    """A node without usable weights stays up, reports ERROR and refuses init_target with the file named."""
    missing = tmp_path / "no_such_weights.pt"
    with tracker_node(tmp_path / "node.log", "-p", f"weights:={missing}") as (client, proc, log):
        frames, gt = sequence
        stamp = client.publish(frames[0])
        res = client.init(gt[0], stamp=stamp)
        assert not res.success and res.reason == res.REASON_UNAVAILABLE
        assert str(missing) in res.message and "does not exist" in res.message
        diag = client.latest_diag(timeout=10)
        assert diag["_level"] == 2 and str(missing) in diag["_message"]
        # The configure transition failed: unconfigured, so no image subscription (the default sensor-data QoS is
        # checked on an active node: test_node_lifecycle.py).
        assert diag["lifecycle_state"] == "unconfigured"
        assert not client.node.get_subscriptions_info_by_topic(TOPIC)
        assert proc.poll() is None
        assert str(missing) in log.read_text()
