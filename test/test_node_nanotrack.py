"""tracker_node with a NanoTrack v2 network the user supplies (the ONNX pair's folder as `weights`), over real DDS:
four targets tracked together (one initialised on a past frame and caught up), the heatmap, and a camera cut to
another scene reported LOST while the host scene is away, then TRACKED again when it comes back.

Needs the NanoTrack v2 pair (../shared/peers/nanotrack_v2, or $SIAM_PEERS_DIR) and two real tracks of
../shared/data (the host and the scene the camera cuts to); skipped, saying which is missing, without them.
"""
from __future__ import annotations

import numpy as np
import pytest

from camera_cut import CUT_FRAMES, WITHIN_1_S, back_on_target, describe, load_cut_scene, lost_flags, play
from node_helpers import iou, tracker_node

from siam_tracker_ros.evaluation.runner import nanotrack_missing

HOST, CUT_TO = "vot-car1", "davis-cows"


@pytest.fixture(scope="module")
def cut_scene():
    why = nanotrack_missing()
    if why:
        pytest.skip(why)
    return load_cut_scene(HOST, CUT_TO, 50)


def test_nanotrack_v2_tracks_four_targets_and_reports_a_camera_cut_lost(cut_scene, tmp_path):
    from siam_tracker_ros.data import peers_root

    frames, boxes, other = cut_scene.frames, cut_scene.boxes, cut_scene.other
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

        before = play(client, frames[5:20], "car", ids)
        ious = [iou(s.box, boxes[5 + i]) for i, s in enumerate(before)]
        assert np.mean(ious) >= 0.5 and not any(lost_flags(before)), describe(before, boxes[5:20])

        lost = lost_flags(play(client, other, "car", ids))
        assert len(lost) == CUT_FRAMES
        first_lost = lost.index(True) if True in lost else None
        assert first_lost is not None and first_lost < WITHIN_1_S, f"not LOST within 1 s of the cut: {lost}"
        assert all(lost[first_lost:]), f"reported TRACKED on the other scene after it was lost: {lost}"

        after = play(client, frames[20:50], "car", ids)
        back = back_on_target(after, boxes[20:50])
        assert back is not None and back < WITHIN_1_S, describe(after, boxes[20:50])
        assert after[-1].reacquisitions == 1
        heatmap = client.wait_for(lambda: client.heatmaps and client.heatmaps[-1], 10.0, "a heatmap")
        assert heatmap.width == w and heatmap.height == h, (heatmap.width, heatmap.height)
        diag = client.latest_diag()
        assert "nanotrack" in diag.get("backend", "").lower(), diag
        assert proc.poll() is None
