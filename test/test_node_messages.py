"""The Detection2D layout and the typed tracking state of the node's output (siam_tracker_ros.ros.messages)."""
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("vision_msgs.msg", reason="vision_msgs (ROS 2) is not importable: source .ros/env.sh")

from siam_tracker_ros.ros import messages  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def _interfaces():
    """The package's generated msg types live in the colcon install: make them importable here."""
    from node_helpers import use_installed_srv

    use_installed_srv()
    pytest.importorskip("siam_tracker_ros.msg", reason="siam_tracker_ros msg types not built: run make bootstrap")


def _header():
    from std_msgs.msg import Header

    h = Header(frame_id="cam")
    h.stamp.sec, h.stamp.nanosec = 5, 6
    return h


@pytest.mark.parametrize("lost", [False, True])
def test_detection_layout(lost):
    """One hypothesis: the configured class with the tracker's confidence; the state is never a class."""
    r = SimpleNamespace(target_id="t1", box=np.array([10.0, 20.0, 30.0, 40.0]), confidence=0.25 if lost else 0.8,
                        lost=lost)
    det = messages.detection_from_result(_header(), r, "person")
    assert det.header.frame_id == "cam" and det.header.stamp.sec == 5 and det.header.stamp.nanosec == 6
    assert det.id == "t1"
    assert (det.bbox.center.position.x, det.bbox.center.position.y) == (25.0, 40.0)
    assert (det.bbox.size_x, det.bbox.size_y, det.bbox.center.theta) == (30.0, 40.0, 0.0)
    assert len(det.results) == 1
    assert det.results[0].hypothesis.class_id == "person"
    assert det.results[0].hypothesis.score == pytest.approx(r.confidence)
    assert messages.confidence(det) == pytest.approx(r.confidence)
    # a consumer taking the best hypothesis reads the class, whatever the state
    assert max(det.results, key=lambda h: h.hypothesis.score).hypothesis.class_id == "person"


@pytest.mark.parametrize("lost", [False, True])
def test_tracking_state_message(lost):
    from siam_tracker_ros.msg import TrackedTarget

    st = messages.make_target_state(_header(), "t1", (10.0, 20.0, 30.0, 40.0), 0.25 if lost else 0.8, lost,
                                    3 if lost else 0)
    assert st.state == (TrackedTarget.LOST if lost else TrackedTarget.TRACKED)
    assert messages.is_lost(st) is lost and messages.state_name(st) == ("lost" if lost else "tracked")
    assert st.id == "t1" and st.header.stamp.sec == 5 and st.lost_frames == (3 if lost else 0)
    assert st.confidence == pytest.approx(0.25 if lost else 0.8)
    assert (st.bbox.center.position.x, st.bbox.size_y) == (25.0, 40.0)
    arr = messages.make_state_array(_header(), [st])
    assert arr.targets[0].id == "t1" and arr.header.frame_id == "cam"


def test_score_is_clipped_and_finite():
    det = messages.make_detection(_header(), "a", (0, 0, 4, 4), float("nan"), "x")
    assert det.results[0].hypothesis.score == 0.0
    det = messages.make_detection(_header(), "a", (0, 0, 4, 4), 1.7, "x")
    assert det.results[0].hypothesis.score == 1.0
    st = messages.make_target_state(_header(), "a", (0, 0, 4, 4), float("inf"), False, 0)
    assert st.confidence == 0.0


def test_bbox_round_trip_and_array():
    box = (1.5, 2.5, 10.0, 20.0)
    assert messages.bbox_to_box(messages.box_to_bbox(box)) == box
    dets = [messages.make_detection(_header(), i, box, 0.5, "x") for i in ("a", "b")]
    arr = messages.make_detection_array(_header(), dets)
    assert [d.id for d in arr.detections] == ["a", "b"] and arr.header.frame_id == "cam"


def test_detection3d_layout_and_depth_state():
    """Detection3D: the 2D one's id and single hypothesis, centre and size in metres; the state's depth fields."""
    from siam_tracker_ros import depth as D
    from siam_tracker_ros.msg import TrackedTarget

    k = D.Intrinsics(500.0, 500.0, 320.0, 240.0)
    t = D.locate("t1", (300.0, 200.0, 40.0, 80.0), 2.0, k)
    det = messages.make_detection3d(_header(), t, 0.8, "person")
    assert det.id == "t1" and det.header.frame_id == "cam" and det.header.stamp.nanosec == 6
    c = det.bbox.center
    assert (c.position.x, c.position.y, c.position.z) == pytest.approx(t.centre)
    assert (c.orientation.x, c.orientation.y, c.orientation.z, c.orientation.w) == (0.0, 0.0, 0.0, 1.0)
    assert (det.bbox.size.x, det.bbox.size.y, det.bbox.size.z) == pytest.approx((0.16, 0.32, 0.16))
    assert len(det.results) == 1 and det.results[0].hypothesis.class_id == "person"
    assert det.results[0].hypothesis.score == pytest.approx(0.8)
    assert det.results[0].pose.pose.position.z == pytest.approx(2.0)
    assert messages.make_detection3d_array(_header(), [det]).detections[0].id == "t1"
    # The message's constants are the depth module's statuses.
    for name in ("DEPTH_OFF", "DEPTH_OK", "DEPTH_NO_IMAGE", "DEPTH_NO_READINGS", "DEPTH_NO_CAMERA_INFO",
                 "DEPTH_TARGET_LOST"):
        assert getattr(TrackedTarget, name) == getattr(D, name), name
    st = messages.make_target_state(_header(), "t1", (300.0, 200.0, 40.0, 80.0), 0.8, False, 0, (t, D.DEPTH_OK))
    assert st.depth_status == TrackedTarget.DEPTH_OK and st.distance == pytest.approx(2.0)
    st = messages.make_target_state(_header(), "t1", (0, 0, 4, 4), 0.8, False, 0, (None, D.DEPTH_NO_READINGS))
    assert st.depth_status == TrackedTarget.DEPTH_NO_READINGS and np.isnan(st.distance)
    st = messages.make_target_state(_header(), "t1", (0, 0, 4, 4), 0.8, False, 0)
    assert st.depth_status == TrackedTarget.DEPTH_OFF and np.isnan(st.distance)
