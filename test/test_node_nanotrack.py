"""tracker_node with a NanoTrack v2 network the user supplies (the ONNX pair's folder as `weights`), over real DDS:
four targets tracked together (one initialised on a past frame and caught up), the heatmap, and a camera cut to
another scene reported LOST while the host scene is away, then TRACKED again when it comes back.

Needs the NanoTrack v2 pair (../shared/peers/nanotrack_v2, or $SIAM_PEERS_DIR) and two real tracks of
../shared/data (the host and the scene the camera cuts to); skipped, saying which is missing, without them.
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from node_helpers import iou, tracker_node

from siam_tracker_ros.data.frames import find_sequence, load_sequence
from siam_tracker_ros.evaluation.runner import nanotrack_missing

HOST, CUT_TO = "vot-car1", "davis-cows"
CAMERA_HZ = 30
CUT_FRAMES = 2 * CAMERA_HZ  # the camera shows the other scene for 2 s


@pytest.fixture(scope="module")
def cut_sequence():
    """(host frames, host boxes, frames of the other scene at the host's size)."""
    why = nanotrack_missing()
    if why:
        pytest.skip(why)
    folders = {name: find_sequence(name) for name in (HOST, CUT_TO)}
    missing = [name for name, folder in folders.items() if folder is None]
    if missing:
        pytest.skip(f"real tracks {', '.join(missing)} not found (../shared/data or $SIAM_DATA_DIR)")
    frames, boxes = load_sequence(folders[HOST], 50)
    other, _ = load_sequence(folders[CUT_TO], CUT_FRAMES)
    h, w = frames[0].shape[:2]
    return frames, boxes, [cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in other]


def test_nanotrack_v2_tracks_four_targets_and_reports_a_camera_cut_lost(cut_sequence, tmp_path):
    from siam_tracker_ros.data import peers_root
    from siam_tracker_ros.ros import messages

    frames, boxes, other = cut_sequence
    h, w = frames[0].shape[:2]
    args = ["-p", f"weights:={peers_root() / 'nanotrack_v2'}", "-p", "backend:=onnxruntime", "-p", "num_threads:=1",
            "-p", "reliable_qos:=true", "-p", "qos_depth:=10", "-p", "max_targets:=4"]
    with tracker_node(tmp_path / "node.log", *args) as (client, proc, log):
        client.subscribe_heatmap()
        first = client.publish(frames[0])
        # three targets on frame 0, tracked over frames 1-4; then the car, drawn on frame 0: the node initialises it
        # there and catches it up over frames 1-4 alone; from then on every frame tracks all four in one update
        others = {"left": (20, h / 2 - 30, 60, 60), "right": (w - 80, h / 2 - 30, 60, 60),
                  "top": (w / 2 - 30, 20, 60, 60)}
        for tid, box in others.items():
            res = client.init(box, stamp=first, target_id=tid)
            assert res.success, res.message
        for frame in frames[1:5]:
            client.publish_and_track(frame, ids=list(others), timeout=30.0)
        res = client.init(boxes[0], stamp=first, target_id="car")
        assert res.success, res.message
        ids = ["car", *others]

        def play(sequence):
            """Publish each frame, wait for the four targets' detections on it; the car's (box, lost) per frame."""
            out = []
            for frame in sequence:
                stamp, array = client.publish_and_track(frame, ids=ids, timeout=30.0)
                car = next(d for d in array.detections if d.id == "car")
                out.append((messages.bbox_to_box(car.bbox), messages.is_lost(client.state_for(stamp, "car"))))
            return out

        before = play(frames[5:20])
        ious = [iou(box, boxes[5 + i]) for i, (box, _) in enumerate(before)]
        assert np.mean(ious) >= 0.5 and not any(lost for _, lost in before), (ious, [lost for _, lost in before])

        during = play(other)
        lost = [lost for _, lost in during]
        first_lost = lost.index(True) if True in lost else None
        assert first_lost is not None and first_lost < CAMERA_HZ, f"not LOST within 1 s of the cut: {lost}"
        assert all(lost[first_lost:]), f"reported TRACKED on the other scene after it was lost: {lost}"

        after = play(frames[20:50])
        back = next((i for i, (box, lost) in enumerate(after) if not lost and iou(box, boxes[20 + i]) >= 0.5), None)
        assert back is not None and back < CAMERA_HZ, [(round(iou(b, boxes[20 + i]), 2), lost)
                                                       for i, (b, lost) in enumerate(after)]
        assert client.state_for(client.states[-1].header.stamp, "car").reacquisitions == 1
        heatmap = client.wait_for(lambda: client.heatmaps and client.heatmaps[-1], 10.0, "a heatmap")
        assert heatmap.width == w and heatmap.height == h, (heatmap.width, heatmap.height)
        diag = client.latest_diag()
        assert "nanotrack" in diag.get("backend", "").lower(), diag
        assert proc.poll() is None
