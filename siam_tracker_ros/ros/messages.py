"""vision_msgs output of the tracker node and its typed tracking state, in one place.

Every `vision_msgs/Detection2D` the node publishes (alone on `tracked_object`, or inside the `Detection2DArray` on
`tracked_objects`) carries:

    header                    the camera image's header (stamp and frame_id), unchanged
    id                        the target id ("default" unless init_target named one)
    bbox.center.position.x/y  box centre in image pixels; bbox.center.theta = 0
    bbox.size_x / size_y      box width / height in pixels
    results                   ONE hypothesis: class_id = the node's `class_id` parameter, score = the tracker's
                              confidence in [0, 1] (its pose is unused, zero)

The tracking state is not a class: it goes, typed, to `siam_tracker_ros/TrackedTargetArray` on
`tracked_objects/state` (one `TrackedTarget` per target and processed frame: header, id, state TRACKED / LOST,
confidence, box, lost_frames), published with the same header as the Detection2DArray of that frame. `is_lost(msg)`
reads it. LOST from the first frame the confidence falls below `lost_threshold`; while it stays at or above
`freeze_threshold` the box still follows the best match, below it the box is frozen at its last position and the
tracker searches a wider area around it. The state returns to TRACKED on the first frame the confidence exceeds
`found_threshold`.

With a depth input (ros/depth_input.py), `tracked_objects_3d` carries a `vision_msgs/Detection3DArray` per processed
frame: header = the colour frame's stamp and the camera's optical frame id (the depth image's, else its
camera_info's); one `Detection3D` per target with a valid depth: id, the same single hypothesis as its Detection2D
(class_id, score; its pose = the box centre), bbox.center = the 3D centre in metres (orientation identity),
bbox.size = metric width, height and depth (siam_tracker_ros/depth.py). Each TrackedTarget then says `depth_status`
(DEPTH_OK or why not) and `distance` (metres along the optical axis, NaN without one).
"""
from __future__ import annotations

import math
import re

from vision_msgs.msg import (BoundingBox2D, Detection2D, Detection2DArray, Detection3D, Detection3DArray,
                             ObjectHypothesisWithPose)

from ..engine.frame_buffer import format_stamp  # noqa: F401  (stamps in answers, logs and the operator page)
from ..tracking.geometry import from_center, to_center

# What a target id may be (ids name /diagnostics statuses and log lines); the operator page checks the same.
TARGET_ID_PATTERN = re.compile(r"[A-Za-z0-9_.:/-]+")

STATE_TRACKED = "tracked"  # names of the states in /diagnostics
STATE_LOST = "lost"


def stamp_ns(stamp) -> int:
    """builtin_interfaces/Time -> integer nanoseconds (the key of frames and records)."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def box_to_bbox(box) -> BoundingBox2D:
    """(x, y, w, h) top-left box in pixels -> BoundingBox2D (centre + size)."""
    cx, cy, w, h = to_center(box)
    bbox = BoundingBox2D()
    bbox.center.position.x, bbox.center.position.y = cx, cy
    bbox.center.theta = 0.0
    bbox.size_x = w
    bbox.size_y = h
    return bbox


def bbox_to_box(bbox: BoundingBox2D) -> tuple[float, float, float, float]:
    """BoundingBox2D (centre + size) -> (x, y, w, h) top-left box in pixels."""
    return from_center(float(bbox.center.position.x), float(bbox.center.position.y), float(bbox.size_x),
                       float(bbox.size_y))


def _hypothesis(class_id: str, score: float) -> ObjectHypothesisWithPose:
    hyp = ObjectHypothesisWithPose()
    hyp.hypothesis.class_id = class_id
    hyp.hypothesis.score = score
    return hyp


def _score(confidence) -> float:
    score = float(confidence)
    return min(max(score, 0.0), 1.0) if math.isfinite(score) else 0.0


def make_detection(header, target_id: str, box, confidence: float, class_id: str) -> Detection2D:
    det = Detection2D()
    det.header = header
    det.id = target_id
    det.bbox = box_to_bbox(box)
    det.results = [_hypothesis(class_id, _score(confidence))]
    return det


def detection_from_result(header, result, class_id: str) -> Detection2D:
    """Detection2D of a tracker TrackResult."""
    return make_detection(header, result.target_id, result.box, result.confidence, class_id)


def make_detection_array(header, detections) -> Detection2DArray:
    arr = Detection2DArray()
    arr.header = header
    arr.detections = list(detections)
    return arr


def make_target_state(header, target_id: str, box, confidence: float, lost: bool, lost_frames: int,
                      depth=None, reacquisitions: int = 0):
    """siam_tracker_ros/TrackedTarget of one target on one frame; `depth`: (Target3D or None, DEPTH_* status) when
    the depth input is on (else DEPTH_OFF, distance NaN)."""
    from siam_tracker_ros.msg import TrackedTarget

    msg = TrackedTarget()
    msg.header = header
    msg.id = target_id
    msg.state = TrackedTarget.LOST if lost else TrackedTarget.TRACKED
    msg.confidence = _score(confidence)
    msg.bbox = box_to_bbox(box)
    msg.lost_frames = max(0, min(int(lost_frames), 2 ** 32 - 1))
    msg.reacquisitions = max(0, min(int(reacquisitions), 2 ** 32 - 1))
    target3d, msg.depth_status = depth if depth is not None else (None, TrackedTarget.DEPTH_OFF)
    msg.distance = float(target3d.distance) if target3d is not None else math.nan
    return msg


def make_detection3d(header, target3d, confidence: float, class_id: str) -> Detection3D:
    """Detection3D of a located target (siam_tracker_ros.depth.Target3D) in the optical frame of `header`."""
    det = Detection3D()
    det.header = header
    det.id = target3d.target_id
    c = det.bbox.center
    c.position.x, c.position.y, c.position.z = (float(v) for v in target3d.centre)
    c.orientation.w = 1.0
    det.bbox.size.x, det.bbox.size.y, det.bbox.size.z = (float(v) for v in target3d.size)
    hyp = _hypothesis(class_id, _score(confidence))
    pose = hyp.pose.pose  # the object's pose: the box centre (a copy, not the bbox's message)
    pose.position.x, pose.position.y, pose.position.z = (float(v) for v in target3d.centre)
    pose.orientation.w = 1.0
    det.results = [hyp]
    return det


def make_detection3d_array(header, detections) -> Detection3DArray:
    arr = Detection3DArray()
    arr.header = header
    arr.detections = list(detections)
    return arr


def make_state_array(header, states):
    from siam_tracker_ros.msg import TrackedTargetArray

    arr = TrackedTargetArray()
    arr.header = header
    arr.targets = list(states)
    return arr


def is_lost(msg) -> bool:
    """True when the node reported the target lost: a siam_tracker_ros/TrackedTarget (tracked_objects/state)."""
    return int(msg.state) == int(type(msg).LOST)


def state_name(msg) -> str:
    """The state of a TrackedTarget as a word: "tracked" or "lost"."""
    return STATE_LOST if is_lost(msg) else STATE_TRACKED


def confidence(det) -> float:
    """The tracker's confidence of a Detection2D (its single hypothesis' score) or of a TrackedTarget."""
    if hasattr(det, "results"):
        return float(det.results[0].hypothesis.score) if det.results else 0.0
    return float(det.confidence)
