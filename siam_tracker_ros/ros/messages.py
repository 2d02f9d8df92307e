"""vision_msgs output of the tracker node, and the lost-state convention in one place.

Every `vision_msgs/Detection2D` the node publishes (alone on `tracked_object`, or inside the `Detection2DArray` on
`tracked_objects`) carries:

    header                    the camera image's header (stamp and frame_id), unchanged
    id                        the target id ("default" unless init_target named one)
    bbox.center.position.x/y  box centre in image pixels; bbox.center.theta = 0
    bbox.size_x / size_y      box width / height in pixels
    results[0].hypothesis     class_id = the node's `class_id` parameter, score = tracker confidence in [0, 1]
    results[1].hypothesis     class_id = "tracked" or "lost" (STATE_TRACKED / STATE_LOST), score = 1.0

So the lost state is in every message, machine-readable without thresholds: `results[1].hypothesis.class_id == "lost"`
(`is_lost(det)`). While lost the box is the last confident one (frozen) and the tracker searches a wider area around
it; the state returns to "tracked" on the first frame the target is re-acquired. The poses of the hypotheses are
unused (zero).
"""
from __future__ import annotations

import math

from vision_msgs.msg import BoundingBox2D, Detection2D, Detection2DArray, ObjectHypothesisWithPose

STATE_TRACKED = "tracked"
STATE_LOST = "lost"


def box_to_bbox(box) -> BoundingBox2D:
    """(x, y, w, h) top-left box in pixels -> BoundingBox2D (centre + size)."""
    x, y, w, h = (float(v) for v in box)
    bbox = BoundingBox2D()
    bbox.center.position.x = x + w / 2.0
    bbox.center.position.y = y + h / 2.0
    bbox.center.theta = 0.0
    bbox.size_x = w
    bbox.size_y = h
    return bbox


def bbox_to_box(bbox: BoundingBox2D) -> tuple[float, float, float, float]:
    """BoundingBox2D (centre + size) -> (x, y, w, h) top-left box in pixels."""
    w, h = float(bbox.size_x), float(bbox.size_y)
    return (float(bbox.center.position.x) - w / 2.0, float(bbox.center.position.y) - h / 2.0, w, h)


def _hypothesis(class_id: str, score: float) -> ObjectHypothesisWithPose:
    hyp = ObjectHypothesisWithPose()
    hyp.hypothesis.class_id = class_id
    hyp.hypothesis.score = score
    return hyp


def make_detection(header, target_id: str, box, confidence: float, lost: bool, class_id: str) -> Detection2D:
    det = Detection2D()
    det.header = header
    det.id = target_id
    det.bbox = box_to_bbox(box)
    score = float(confidence)
    if not math.isfinite(score):
        score = 0.0
    det.results = [_hypothesis(class_id, min(max(score, 0.0), 1.0)),
                   _hypothesis(STATE_LOST if lost else STATE_TRACKED, 1.0)]
    return det


def detection_from_result(header, result, class_id: str) -> Detection2D:
    """Detection2D of a tracker TrackResult."""
    return make_detection(header, result.target_id, result.box, result.confidence, result.lost, class_id)


def make_detection_array(header, detections) -> Detection2DArray:
    arr = Detection2DArray()
    arr.header = header
    arr.detections = list(detections)
    return arr


def is_lost(det: Detection2D) -> bool:
    """True when the node reported the target lost in this detection."""
    return len(det.results) > 1 and det.results[1].hypothesis.class_id == STATE_LOST


def confidence(det: Detection2D) -> float:
    return float(det.results[0].hypothesis.score) if det.results else 0.0
