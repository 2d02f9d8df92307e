"""NanoTrack's lost search on real frames and the real ONNX Runtime: a camera cut is reported lost on the other
scene, the scan finds the target where it came back, and warm-up covers the scan's batches."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from siam_tracker_ros import data
from siam_tracker_ros.config import Config, ConfigError, NanoTrackConfig
from siam_tracker_ros.data.splice import splice_cut
from siam_tracker_ros.tracking import DEFAULT_TARGET, iou

from recording_backend import RecordingBackend

DATA = data.data_root()
PAIR = data.peers_root() / "nanotrack_v2"
needs_files = pytest.mark.skipif(
    not (DATA / "train").is_dir() or not (PAIR / "nanotrack_backbone_sim.onnx").is_file(),
    reason=f"real sequences ({DATA}/train) or the user's NanoTrack v2 pair ({PAIR}) not present")
RATE_HZ = 30  # the re-acquisition set's camera rate: 1 s = 30 frames


def _tracker(**nanotrack):
    from siam_tracker_ros.tracking.build import build_tracker

    config = Config()
    config.backend.num_threads = 2
    for key, value in nanotrack.items():
        setattr(config.nanotrack, key, value)
    return build_tracker(config, PAIR)


def _run(tracker, frames, first_box):
    """(tracked flags, boxes) of every frame after the first."""
    tracker.init(frames[0], first_box)
    tracked, boxes = [], []
    for frame in frames[1:]:
        result = tracker.update(frame)[DEFAULT_TARGET]
        tracked.append(not result.lost)
        boxes.append(result.box)
    return np.array(tracked), np.array(boxes)


def _away_and_moved():
    """vot-tiger, 2 s of uav-car16 (resized) after its frame 22, then vot-tiger again from frame 63: while the
    camera looked away the tiger moved about 180 px, out of reach of the search where it was last seen. Returns
    frames, the truth (None on the other scene's frames) and the index of the first frame back."""
    frames, gt = data.load_sequence(DATA / "train" / "vot-tiger")
    other, _ = data.load_sequence(DATA / "train" / "uav-car16", 2 * RATE_HZ)
    h, w = frames[0].shape[:2]
    at, skipped = 23, 40
    sequence = frames[:at] + [cv2.resize(f, (w, h)) for f in other] + frames[at + skipped:]
    truth = list(gt[:at]) + [None] * len(other) + list(gt[at + skipped:])
    return sequence, truth, at + len(other)


@needs_files
def test_the_scan_finds_the_target_where_it_came_back_after_a_camera_cut():
    frames, truth, back = _away_and_moved()
    absent = np.array([b is None for b in truth[1:]])
    returned = slice(back - 1, back - 1 + RATE_HZ)  # the first second back, in update indices
    found = {}
    for label, settings in (("scan", {}), ("no scan", {"redetect_after": 0})):
        tracker = _tracker(**settings)
        tracked, boxes = _run(tracker, frames, truth[0])
        assert not tracked[absent].any(), f"{label}: the other scene's frames are never reported tracked"
        truth_back = np.array(truth[back:back + RATE_HZ])
        found[label] = tracked[returned] & (iou(boxes[returned], truth_back) >= 0.5)
        if label == "scan":
            assert tracker.state(DEFAULT_TARGET)["redetections"] >= 1
    assert found["scan"].any(), "tracked on the tiger again within 1 s of its return"
    assert not found["no scan"].any(), "without the scan the search where it was lost does not find it"


@needs_files
def test_a_cut_to_a_scene_the_network_likes_as_much_is_reported_lost_and_the_target_found_again(tmp_path):
    """tir-horse with 2 s of uav-person11 spliced in: the network's probability stays high on the other scene (about
    0.9, the horse's 1.0), so without the cut check and the verification the box follows the other scene."""
    host = data.read_folder_sequence(DATA / "train" / "tir-horse")
    donor = data.read_folder_sequence(DATA / "train" / "uav-person11")
    cut = splice_cut(host, donor, at=35, n_frames=2 * RATE_HZ, out_dir=tmp_path / "cut", donor_start=2)
    frames = [data.read_frame(p) for p in cut.frame_paths]
    absent = ~cut.valid[1:]
    back = int(np.flatnonzero(absent)[-1]) + 1
    within = slice(back, back + RATE_HZ)
    tracked, boxes = _run(_tracker(), frames, cut.boxes[0])
    assert not tracked[absent].any()
    assert (tracked[within] & (iou(boxes[within], cut.boxes[1:][within]) >= 0.5)).any()
    tracked, _ = _run(_tracker(redetect_after=0, scene_cut=False), frames, cut.boxes[0])
    assert tracked[absent].mean() > 0.5, "the probability alone does not report this cut lost"


@needs_files
def test_warm_up_covers_the_scans_batches():
    """Two targets over the cut (tracked, frozen, scanning, found again): after warm-up no call of a new batch."""
    from siam_tracker_ros.tracking.nanotrack import NanoTracker

    frames, truth, _ = _away_and_moved()
    recording = RecordingBackend(_tracker().backend)
    tracker = NanoTracker(recording, NanoTrackConfig())
    warmed = set(tracker.warm_up(max_targets=2))
    recording.calls.clear()
    tracker.init(frames[0], truth[0], "tiger")
    tracker.init(frames[0], np.asarray(truth[0]) * [1, 1, 0.8, 0.8] + [8, 8, 0, 0], "part")
    scanned = False
    for frame in frames[1:]:
        tracker.update(frame)
        scanned |= any(tracker.scan.active(tracker._targets[i]) for i in ("tiger", "part"))
    assert scanned, "the run reached the scan"
    assert recording.calls <= warmed, f"not warmed up: {sorted(recording.calls - warmed)}"
    assert max(batch for branch, _, batch in warmed if branch == "search") == 2 + NanoTrackConfig().redetect_windows


@pytest.mark.parametrize("key,value", [("redetect_after", -1), ("redetect_after", 2.5), ("redetect_windows", 0),
                                       ("redetect_threshold", 1.5), ("scene_cut", "yes")])
def test_bad_lost_search_settings_are_refused_by_name(key, value):
    with pytest.raises(ConfigError, match=f"nanotrack.{key}"):
        NanoTrackConfig(**{key: value}).validate()


@needs_files
def test_a_new_image_size_scales_the_box_and_reports_lost_until_found():
    """NanoTrack on vot-car1, the camera's resolution halved after 20 frames: the box scaled with the image and
    verified again (NanoTrack's own search verifies on that frame), tracked within 10 frames, never tracked off the
    car."""
    frames, gt = data.load_sequence(DATA / "train" / "vot-car1", 50)
    h, w = frames[0].shape[:2]
    frames = frames[:20] + [cv2.resize(f, (w // 2, h // 2), interpolation=cv2.INTER_AREA) for f in frames[20:]]
    truth = np.concatenate([gt[:20], gt[20:] * 0.5])
    tracker = _tracker()
    tracker.init(frames[0], gt[0])
    results = [tracker.update(f)[DEFAULT_TARGET] for f in frames[1:]]
    before, after = results[18], results[19:]
    assert not before.lost and iou(before.box[None], truth[19][None])[0] >= 0.5
    overlaps = iou(np.array([r.box for r in after]), truth[20:])
    tracked = np.array([not r.lost for r in after])
    assert tracked[:10].any(), "found again within 10 frames of the new size"
    assert (overlaps[tracked] >= 0.5).all(), list(zip(tracked, overlaps.round(2)))
