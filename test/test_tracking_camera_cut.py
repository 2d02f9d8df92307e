"""A camera cut and the target's own scene (tracking/scene_cut.py), and the stricter verification of a target that is
away (tracking/redetection.py), with the shipped network on real frames of ../shared/data."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from siam_tracker_ros import data
from siam_tracker_ros.backends import default_weights_path
from siam_tracker_ros.backends.onnx_backend import OnnxBackend
from siam_tracker_ros.config import TrackingConfig
from siam_tracker_ros.data.splice import splice_cut
from siam_tracker_ros.model import load_weights
from siam_tracker_ros.tracking import DEFAULT_TARGET, SiamTracker
from siam_tracker_ros.tracking.geometry import iou
from siam_tracker_ros.tracking.redetection import Candidate, Verifier
from siam_tracker_ros.tracking.scene_cut import another_scene, shows_home, signature
from siam_tracker_ros.tracking.tracker import Target

DATA = data.data_root() / "train"
WEIGHTS = default_weights_path()
needs_data = pytest.mark.skipif(not DATA.is_dir() or not WEIGHTS.is_file(),
                                reason=f"real sequences ({DATA}) or the shipped weights ({WEIGHTS}) not present")
# A host track, the track the camera cuts to (a real 2 s cut: 60 frames), the host frame the cut comes after.
HOST, OTHER, CUT_AFTER = "davis-car-roundabout", "davis-cows", 20


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    return OnnxBackend(load_weights(WEIGHTS), onnx_dir=tmp_path_factory.mktemp("onnx"))


@pytest.fixture(scope="module")
def cut():
    """(host frames, host boxes, 60 frames of the other track at the host's size)."""
    if not DATA.is_dir():
        pytest.skip(f"real sequences not found at {DATA}")
    frames, boxes = data.load_sequence(DATA / HOST, CUT_AFTER + 30)
    other, _ = data.load_sequence(DATA / OTHER, 60)
    h, w = frames[0].shape[:2]
    return frames, boxes, [cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in other]


@needs_data
def test_a_frame_shows_home_only_in_the_scene_itself(cut):
    """Every next host frame shows the host frame before it as home; no frame of the other track shows a host frame
    as home, and the cut between the two is a cut."""
    frames, _, other = cut
    host = [signature(f) for f in frames]
    assert all(shows_home(a, b) for a, b in zip(host, host[1:]))
    elsewhere = [signature(f) for f in other]
    assert not any(shows_home(h, o) for h in host[::5] for o in elsewhere)
    assert another_scene(host[CUT_AFTER - 1], elsewhere[0]) and another_scene(elsewhere[-1], host[CUT_AFTER])


@needs_data
def test_the_camera_coming_back_searches_where_the_target_was_seen(backend, cut):
    """Away on every frame of the other scene (LOST from its first frame), and on the first frame back the search is
    centred where the car was last tracked; TRACKED on it again within 1 s."""
    frames, boxes, other = cut
    tracker = SiamTracker(backend, TrackingConfig())
    tracker.init(frames[0], boxes[0])
    for frame in frames[1:CUT_AFTER]:
        tracker.update(frame)
    t = tracker._targets[DEFAULT_TARGET]
    assert not t.lost
    seen = (t.cx, t.cy)
    during = [tracker.update(frame)[DEFAULT_TARGET] for frame in other]
    assert all(r.lost for r in during) and t.away
    back = tracker.update(frames[CUT_AFTER])[DEFAULT_TARGET]
    assert not t.away
    np.testing.assert_allclose(back.response_region[:2], seen)
    after = [back] + [tracker.update(frame)[DEFAULT_TARGET] for frame in frames[CUT_AFTER + 1:]]
    on_target = [not r.lost and iou(r.box[None], truth[None])[0] >= 0.5 for r, truth in zip(after, boxes[CUT_AFTER:])]
    assert any(on_target), [(round(float(iou(r.box[None], g[None])[0]), 2), r.lost) for r, g in zip(after, boxes)]


def test_an_away_candidate_is_taken_only_once_confirmed():
    """Away: a candidate verified on one frame waits; the next one within a target size confirms it, one farther
    away starts over. In the target's own scene a verified candidate is taken at once."""
    verifier = Verifier(TrackingConfig(redetect_away_frames=2))
    t = Target(cx=100.0, cy=100.0, w=40.0, h=20.0, away=True)
    assert not verifier.confirm(t, Candidate(300.0, 200.0, 5.0))
    assert not verifier.confirm(t, Candidate(300.0 + 41.0, 200.0, 5.0))  # moved more than its larger side
    assert verifier.confirm(t, Candidate(300.0 + 41.0 + 30.0, 200.0, 5.0, scanned=True))
    home = Target(cx=100.0, cy=100.0, w=40.0, h=20.0)
    assert verifier.confirm(home, Candidate(300.0, 200.0, 5.0))


@needs_data
def test_an_away_target_takes_no_match_in_the_other_scene(backend, tmp_path):
    """tir-horse with 2 s of vot-tiger spliced in: the other scene holds matches that pass the verification of the
    target's own scene (with the away rule off they are taken, and the target reported TRACKED there); with the
    default rule, no absent frame is reported TRACKED."""
    host = data.read_folder_sequence(DATA / "tir-horse")
    donor = data.read_folder_sequence(DATA / "vot-tiger")
    spliced = splice_cut(host, donor, at=44, n_frames=61, out_dir=tmp_path / "cut", donor_start=19)
    absent = ~spliced.valid

    def tracked_on_absent(cfg: TrackingConfig) -> int:
        tracker = SiamTracker(backend, cfg)
        tracker.init(data.read_frame(spliced.frame_paths[0]), spliced.boxes[0])
        tracked = [not tracker.update(data.read_frame(p))[DEFAULT_TARGET].lost for p in spliced.frame_paths[1:]]
        return int(np.sum(np.array(tracked) & absent[1:]))

    assert tracked_on_absent(TrackingConfig(redetect_away_threshold=0.0, redetect_away_frames=1)) > 0
    assert tracked_on_absent(TrackingConfig()) == 0


@needs_data
def test_a_look_alike_found_while_away_does_not_cost_the_target_its_own_scene(backend, tmp_path):
    """uav-car16 (a car of 11 x 8 pixels) with 76 frames of davis-cows spliced in: a cow passes the away
    verification and is taken for the car, so the cows' scene becomes the target's. The camera cutting back to the
    car's scene brings the target back to where it was there, and it is TRACKED on the car again within 1 s. (Without
    the drift check: its scan windows change the order in which the scan visits the cows' frames, and with it on no
    cow is taken here.)"""
    host = data.read_folder_sequence(DATA / "uav-car16")
    donor = data.read_folder_sequence(DATA / "davis-cows")
    spliced = splice_cut(host, donor, at=53, n_frames=76, out_dir=tmp_path / "cut", donor_start=21)
    tracker = SiamTracker(backend, TrackingConfig(drift_check=False))
    tracker.init(data.read_frame(spliced.frame_paths[0]), spliced.boxes[0])
    t = tracker._targets[DEFAULT_TARGET]
    back = 53 + 76  # the first frame of the car's scene again
    for path in spliced.frame_paths[1:back]:
        tracker.update(data.read_frame(path))
    assert not t.away and not t.lost, "the scenario: a cow was taken for the car during the cut"
    results = [tracker.update(data.read_frame(p))[DEFAULT_TARGET] for p in spliced.frame_paths[back:back + 30]]
    on_car = [not r.lost and iou(r.box[None], truth[None])[0] >= 0.5
              for r, truth in zip(results, spliced.boxes[back:back + 30])]
    assert any(on_car), "tracked on the car again within 1 s of the cut back"
