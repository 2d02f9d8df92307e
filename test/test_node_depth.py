"""tracker_node's depth input over real DDS: a node process with depth on, the colour frames of the built-in
sequence streamed from this process, each with a depth image rendered for it (a tilted plane whose distance changes
every frame, with holes and out-of-range readings; test/depth_scene.py) and the camera_info of a known camera.

The truth of a target is computed here from the scene: the point where the ray through the centre of the box the
node published (Detection2D) meets the plane of that frame. The node's Detection3D must lie within 2 % of that
point's distance, for 16UC1 (millimetres) and 32FC1 (metres). The plane moves by more than 2 % per frame, so a
depth image matched to the wrong colour frame fails too.
"""
from __future__ import annotations

import time

import numpy as np
import pytest

from depth_scene import encode, plane_depth, render_plane, spoil
from node_helpers import (NUM_FRAMES, Client, assert_alive, iou, node_config, sequence,  # noqa: F401
                          shared_node_args, stop_all_targets, tracker_node, weights)

DEPTH_TOPIC = "/camera/aligned_depth_to_color/image_raw"
INFO_TOPIC = "/camera/aligned_depth_to_color/camera_info"  # not remapped: the node derives it from DEPTH_TOPIC
OPTICAL_FRAME = "camera_color_optical_frame"
NORMAL = np.array([0.3, -0.15, 1.0]) / np.linalg.norm([0.3, -0.15, 1.0])
HOLE = (slice(0, 140), slice(0, 200))  # rows, cols without any reading: a target inside it has no depth
HOLE_BOX = [20.0, 20.0, 60.0, 50.0]  # on the built-in sequence the small random network keeps it in the corner
# Never reported lost unless a test asks (the small random network's confidence is low): every frame is measured.
THRESHOLDS = {"lost_threshold": 0.0, "freeze_threshold": 0.0}


def _intrinsics():
    from siam_tracker_ros.depth import Intrinsics

    return Intrinsics(fx=520.0, fy=530.0, cx=331.5, cy=172.0, width=640, height=360)


@pytest.fixture(scope="module")
def dnode(sequence, weights, tmp_path_factory):  # noqa: F811
    args = shared_node_args(weights) + ["-r", f"depth_image:={DEPTH_TOPIC}", "-p", "max_targets:=2",
                                        "-p", "depth_wait:=0.5"]
    for k, v in THRESHOLDS.items():
        args += ["-p", f"{k}:={v}"]
    with tracker_node(tmp_path_factory.mktemp("node") / "tracker_node.log", *args) as (client, proc, log):
        yield DepthClient(client), proc, log


@pytest.fixture(autouse=True)
def _no_target_left(request):
    yield
    if "dnode" in request.fixturenames:
        try:
            request.getfixturevalue("dnode")[0].stop("")
        except AssertionError:
            pass


class DepthClient:
    """The node tests' Client plus a depth image and camera_info publisher and a tracked_objects_3d recorder."""

    def __init__(self, client: Client):
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CameraInfo, Image
        from vision_msgs.msg import Detection3DArray

        self.c = client
        self.arrays3d = []
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.depth_pub = client.node.create_publisher(Image, DEPTH_TOPIC, reliable)
        self.info_pub = client.node.create_publisher(CameraInfo, INFO_TOPIC, reliable)
        client.node.create_subscription(Detection3DArray, "/tracked_objects_3d",
                                        lambda m: client._add(self.arrays3d, m), 100)
        client.wait_for(lambda: self.depth_pub.get_subscription_count() and self.info_pub.get_subscription_count(),
                        30, "the node's depth_image and camera_info subscriptions")
        # As a camera driver does, camera_info again until the node has it: the node's subscription may match this
        # publisher a while after the publisher matched it (on a loaded machine), and what was sent before is lost.
        deadline = time.monotonic() + 60
        while not client.latest_diag(timeout=30, newer_than=len(client.diags)).get("camera_info", "").startswith("fx"):
            assert time.monotonic() < deadline, "the node never had the camera_info"
            self.publish_info()

    def __getattr__(self, name):
        return getattr(self.c, name)

    def publish_info(self, k=None, stamp=None, width=640, height=360):
        from sensor_msgs.msg import CameraInfo

        i = _intrinsics()
        msg = CameraInfo(width=width, height=height, distortion_model="plumb_bob")
        msg.header.frame_id = OPTICAL_FRAME
        msg.header.stamp = stamp or self.c.stamp()
        msg.k = [float(v) for v in (k if k is not None else [i.fx, 0, i.cx, 0, i.fy, i.cy, 0, 0, 1])]
        self.info_pub.publish(msg)

    def publish_depth(self, z, encoding, stamp, step=None, width=None):
        from sensor_msgs.msg import Image

        raw = encode(z, encoding) if encoding in ("16UC1", "32FC1") else np.asarray(z)
        msg = Image(height=raw.shape[0], width=width or raw.shape[1], encoding=encoding, is_bigendian=0,
                    step=step or raw.strides[0])
        msg.header.frame_id = OPTICAL_FRAME
        msg.header.stamp = stamp
        msg.data = raw.tobytes()
        self.depth_pub.publish(msg)

    def array3d_for(self, stamp, timeout=20.0):
        return self.c.wait_for(lambda: next((a for a in reversed(self.arrays3d) if a.header.stamp == stamp), None),
                               timeout, f"tracked_objects_3d for frame {stamp.sec}.{stamp.nanosec:09d}")


def _scene(i, rng):
    """Frame i's depth (metres, NaN = no reading): the plane at 1.5 + 0.08 i m, spoiled, with the hole."""
    offset = 1.5 + 0.08 * i
    z = spoil(render_plane((360, 640), _intrinsics(), NORMAL, offset), rng, holes=0.25, too_far=0.05, too_near=0.05)
    z[HOLE] = np.nan
    return z, offset


def _truth(det2d, offset):
    """The scene point at the centre of a published 2D box, and the box's metric width and height there."""
    k = _intrinsics()
    u, v = det2d.bbox.center.position.x, det2d.bbox.center.position.y
    z = float(plane_depth(u, v, k, NORMAL, offset))
    return np.array([(u - k.cx) * z / k.fx, (v - k.cy) * z / k.fy, z]), (det2d.bbox.size_x * z / k.fx,
                                                                         det2d.bbox.size_y * z / k.fy)


def _inner_in_hole(det2d):
    """True / False when the box's inner half lies wholly inside / outside the hole; None when it straddles it."""
    cx, cy, w, h = det2d.bbox.center.position.x, det2d.bbox.center.position.y, det2d.bbox.size_x, det2d.bbox.size_y
    x0, x1, y0, y1 = cx - w / 4, cx + w / 4, cy - h / 4, cy + h / 4
    hx, hy = HOLE[1].stop, HOLE[0].stop
    if x1 < hx - 1 and y1 < hy - 1:
        return True
    if x0 > hx + 1 or y0 > hy + 1:
        return False
    return None


@pytest.mark.parametrize("encoding,offset_ns", [("16UC1", 0), ("32FC1", 4_000_000)])
def test_3d_centre_matches_the_rendered_scene(dnode, sequence, encoding, offset_ns):
    """Depth stamps equal to the colour stamps (16UC1) or 4 ms later (32FC1, matched within the tolerance); each
    depth image published after its colour frame (as a registering driver does)."""
    from builtin_interfaces.msg import Time
    from siam_tracker_ros.msg import TrackedTarget

    client, _, _ = dnode
    frames, gt = sequence
    rng = np.random.default_rng(7)
    client.publish_info()
    stamp0 = client.publish(frames[0])
    assert client.init(gt[0], stamp=stamp0, target_id="ball").success
    assert client.init(HOLE_BOX, stamp=stamp0, target_id="hole").success
    measured, no_readings = 0, 0
    for i in range(1, 9):
        z, offset = _scene(i, rng)
        client.publish_info()
        stamp = client.publish(frames[i])
        time.sleep(0.005)
        ns = stamp.sec * 10 ** 9 + stamp.nanosec + offset_ns
        client.publish_depth(z, encoding, Time(sec=ns // 10 ** 9, nanosec=ns % 10 ** 9))
        arr2d = client.array_for(stamp, ids=["ball", "hole"])
        arr3d = client.array3d_for(stamp)
        states = {tid: client.state_for(stamp, tid) for tid in ("ball", "hole")}
        assert arr3d.header.frame_id == OPTICAL_FRAME and arr3d.header.stamp == stamp  # the colour frame's stamp
        dets3d = {d.id: d for d in arr3d.detections}
        for det2d in arr2d.detections:
            st, tid = states[det2d.id], det2d.id
            in_hole = _inner_in_hole(det2d)
            if in_hole is None:
                continue
            if in_hole:
                assert st.depth_status == TrackedTarget.DEPTH_NO_READINGS and np.isnan(st.distance), (i, tid)
                assert tid not in dets3d
                no_readings += 1
                continue
            assert st.depth_status == TrackedTarget.DEPTH_OK, (i, tid, st.depth_status)
            d3 = dets3d[tid]
            centre = np.array([d3.bbox.center.position.x, d3.bbox.center.position.y, d3.bbox.center.position.z])
            truth, (sx, sy) = _truth(det2d, offset)
            err = np.linalg.norm(centre - truth)
            assert err <= 0.02 * truth[2], (i, tid, centre, truth)
            assert st.distance == pytest.approx(centre[2], rel=1e-6)
            assert d3.bbox.size.x == pytest.approx(sx, rel=0.02) and d3.bbox.size.y == pytest.approx(sy, rel=0.02)
            assert d3.bbox.size.z == pytest.approx(min(d3.bbox.size.x, d3.bbox.size.y))
            assert len(d3.results) == 1 and d3.results[0].hypothesis.class_id == "target"
            assert d3.results[0].hypothesis.score == pytest.approx(det2d.results[0].hypothesis.score)
            measured += 1
    assert measured >= 6 and no_readings >= 1, (measured, no_readings)

    # A lost target (a uniform frame, the node's default thresholds) gets no Detection3D and says so.
    for name, value in (("lost_threshold", 0.5), ("freeze_threshold", 0.35)):
        assert client.set_param(name, value).successful
    try:
        z, _ = _scene(9, rng)
        stamp = client.publish(np.full_like(frames[9], 128))
        client.publish_depth(z, encoding, stamp)
        assert "ball" not in [d.id for d in client.array3d_for(stamp).detections]
        st = client.state_for(stamp, "ball")
        assert st.state == TrackedTarget.LOST and st.depth_status == TrackedTarget.DEPTH_TARGET_LOST
        assert np.isnan(st.distance)
    finally:
        for name, value in THRESHOLDS.items():
            client.set_param(name, value)
    diag = client.latest_diag()
    assert diag["depth"] == "on" and diag["camera_info"].startswith("fx 520.0 fy 530.0")
    assert int(diag["depth_matched"]) >= 9 and float(diag["depth_time_median_ms"]) > 0
    assert diag["_targets"]["ball"]["depth"] in ("ok", "target lost")


def test_2d_output_continues_unchanged_when_the_depth_stream_stops(dnode, sequence, weights):
    from siam_tracker_ros.msg import TrackedTarget
    from siam_tracker_ros.ros import messages
    from siam_tracker_ros.tracking import SiamTracker

    client, _, _ = dnode
    frames, gt = sequence
    rng = np.random.default_rng(3)
    n_depth, n = 6, 16
    stamp0 = client.publish(frames[0])
    assert client.init(gt[0], stamp=stamp0).success
    boxes, states, received = [], [], []
    for i in range(1, n):
        stamp = client.publish(frames[i])
        if i <= n_depth:
            client.publish_info()
            client.publish_depth(_scene(i, rng)[0], "16UC1", stamp)
        arr = client.array_for(stamp)
        received.append(time.monotonic())
        boxes.append(messages.bbox_to_box(arr.detections[0].bbox))
        states.append(client.state_for(stamp))
    cfg = node_config()
    for k, v in THRESHOLDS.items():
        setattr(cfg.tracking, k, v)
    tracker = SiamTracker.from_config(cfg, weights)
    tracker.init(frames[0], gt[0])
    offline = [tracker.update(f)["default"].box for f in frames[1:n]]
    ious = [iou(a, b) for a, b in zip(boxes, offline)]
    assert np.mean(ious) >= 0.98 and min(ious) >= 0.9, ious  # the same 2D boxes with and without depth
    status = [s.depth_status for s in states]
    assert status[:n_depth] == [TrackedTarget.DEPTH_OK] * n_depth, status
    assert status[n_depth:] == [TrackedTarget.DEPTH_NO_IMAGE] * (n - 1 - n_depth), status
    assert all(np.isnan(s.distance) for s in states[n_depth:])


def test_each_depth_refusal_is_counted_and_the_node_keeps_going(dnode, sequence):
    from builtin_interfaces.msg import Time
    from siam_tracker_ros.msg import TrackedTarget

    client, _, log = dnode
    frames, gt = sequence
    rng = np.random.default_rng(5)
    client.publish_info()
    stamp0 = client.publish(frames[0])
    assert client.init(gt[0], stamp=stamp0).success
    before = client.latest_diag()
    z, _ = _scene(1, rng)
    far = Time(sec=stamp0.sec + 3600, nanosec=stamp0.nanosec)
    client.publish_depth(z[::2, ::2], "16UC1", stamp0)  # 320x180 for 640x360 colour frames
    client.publish_depth(np.zeros((360, 640, 3), np.uint8), "rgb8", stamp0)
    client.publish_depth(z, "32FC1", far)  # an hour away from every colour frame
    client.publish_depth(z, "16UC1", stamp0, step=100)  # a row of 640 x 2 bytes in 100 bytes
    client.publish_info(k=[0.0] * 9)  # an uncalibrated driver's camera_info
    kinds = ("depth_size", "depth_encoding", "depth_stamp", "depth_invalid", "camera_info")

    def counted():
        d = client.latest_diag(timeout=5)
        return d if all(int(d[f"refused_{k}"]) == int(before[f"refused_{k}"]) + 1 for k in kinds) else None
    client.wait_for(counted, 20, "each depth refusal counted once in /diagnostics")
    for k in kinds:  # each kind logged (once: the burst is within 5 s)
        client.wait_for(lambda: log.read_text().count(f"refused ({k})") == 1, 10, f"one log line of the {k} refusal")
    assert_alive(dnode)
    # Still measuring, with the last valid camera_info: the refused one replaced nothing.
    stamp = client.publish(frames[1])
    client.publish_depth(z, "16UC1", stamp)
    assert client.state_for(stamp).depth_status == TrackedTarget.DEPTH_OK
    assert [d.id for d in client.array3d_for(stamp).detections] == ["default"]
