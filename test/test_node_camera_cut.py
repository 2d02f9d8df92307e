"""tracker_node with the shipped default tracker (the CPU's small network, ONNX Runtime, the default tracking
settings: re-detection and the camera-cut check on) over real DDS: the camera cuts away for 2 s to another real
track and comes back.

LOST on every frame of the other scene (the cut is reported on its first frame, and nothing there is taken for the
target), TRACKED again with the box on the target within 1 s of the return, and the re-acquisition counted on
tracked_objects/state. Deadlines are counted in frames (camera_cut.py). Needs the two real tracks of ../shared/data;
skipped, saying which is missing, without them.
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from camera_cut import CUT_FRAMES, WITHIN_1_S, back_on_target, describe, load_cut_scene, lost_flags, play
from node_helpers import iou, tracker_node

# The host track, the track the camera cuts to, and the host frame the cut comes after.
HOST, CUT_TO, CUT_AFTER = "davis-car-roundabout", "davis-cows", 20
TARGET = "car"
NODE_ARGS = ["-p", "backend:=onnxruntime", "-p", "num_threads:=1", "-p", "reliable_qos:=true", "-p", "qos_depth:=10"]


def start_on_first_frame(client, frames, boxes) -> None:
    """The target started on the host track's first frame, named by its stamp."""
    first = client.publish(frames[0])
    res = client.init(boxes[0], stamp=first, target_id=TARGET)
    assert res.success, res.message


@pytest.fixture(scope="module")
def cut_scene():
    return load_cut_scene(HOST, CUT_TO, CUT_AFTER + WITHIN_1_S)


def test_default_tracker_reports_a_camera_cut_lost_and_finds_the_target_again(cut_scene, tmp_path):
    frames, boxes, other = cut_scene.frames, cut_scene.boxes, cut_scene.other
    with tracker_node(tmp_path / "node.log", *NODE_ARGS) as (client, proc, log):
        start_on_first_frame(client, frames, boxes)

        before = play(client, frames[1:CUT_AFTER], TARGET)
        ious = [iou(s.box, truth) for s, truth in zip(before, boxes[1:CUT_AFTER])]
        assert np.mean(ious) >= 0.5 and not before[-1].lost, describe(before, boxes[1:CUT_AFTER])

        during = play(client, other, TARGET)
        assert len(during) == CUT_FRAMES
        assert all(lost_flags(during)), f"reported TRACKED on the other scene: {lost_flags(during)}"

        after = play(client, frames[CUT_AFTER:], TARGET)
        back = back_on_target(after, boxes[CUT_AFTER:])
        assert back is not None and back < WITHIN_1_S, describe(after, boxes[CUT_AFTER:])
        assert after[back].reacquisitions == before[-1].reacquisitions + 1, (
            before[-1].reacquisitions, [s.reacquisitions for s in after])
        diag = client.latest_diag()
        assert "onnx" in diag.get("backend", "").lower(), diag
        assert proc.poll() is None


def test_a_camera_that_halves_its_resolution_is_followed_at_the_new_size(cut_scene, tmp_path):
    """The same track, its resolution halved after 20 frames (a driver set to another mode): the node logs the
    change; the target is verified again before it is TRACKED (LOST on the first smaller frame, or found there and
    counted as a re-acquisition), TRACKED within 1 s with the box on the car in the new pixels, and never TRACKED
    off it."""
    frames, boxes = cut_scene.frames, cut_scene.boxes
    h, w = frames[0].shape[:2]
    small = [cv2.resize(f, (w // 2, h // 2), interpolation=cv2.INTER_AREA) for f in frames[CUT_AFTER:]]
    with tracker_node(tmp_path / "node.log", *NODE_ARGS) as (client, proc, log):
        start_on_first_frame(client, frames, boxes)
        before = play(client, frames[1:CUT_AFTER], TARGET)
        assert not before[-1].lost, describe(before, boxes[1:CUT_AFTER])
        after = play(client, small, TARGET)
        truth = boxes[CUT_AFTER:] * 0.5
        # Verified again before it is tracked: LOST on the first smaller frame, or found there by the verified search
        # (counted as a re-acquisition).
        assert after[0].lost or after[0].reacquisitions == before[-1].reacquisitions + 1, describe(after, truth)
        back = back_on_target(after, truth)
        assert back is not None and back < WITHIN_1_S, describe(after, truth)
        off = [i for i, (s, t) in enumerate(zip(after, truth)) if not s.lost and iou(s.box, t) < 0.5]
        assert not off, describe(after, truth)
        client.wait_for(lambda: f"image size changed from {w}x{h} to {w // 2}x{h // 2}" in log.read_text(), 10,
                        "the node's warning")
        assert proc.poll() is None
