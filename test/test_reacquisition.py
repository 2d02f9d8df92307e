"""The re-acquisition set and its scores: the camera-cut splice on real frames, the scores on hand-made boxes, and
one spliced real track run with the shipped tracker."""
from __future__ import annotations

import json

import numpy as np
import pytest

from siam_tracker_ros.data import Sequence, data_root, read_folder_sequence, read_frame
from siam_tracker_ros.data.splice import (SPLICE_FILE, build_reacquisition_set, has_own_absence, plan_cuts,
                                          splice_cut)
from siam_tracker_ros.evaluation.reacquisition import ReacquisitionRun, score_reacquisition

DATA = data_root()
HOST, DONOR = DATA / "train" / "vot-car1", DATA / "train" / "uav-car16"  # 640x480 host, 640x360 donor
needs_data = pytest.mark.skipif(not ((HOST / "groundtruth.txt").is_file() and (DONOR / "groundtruth.txt").is_file()),
                                reason=f"real sequences {HOST} and {DONOR} not found (set SIAM_DATA_DIR)")


def _first(seq: Sequence, n: int) -> Sequence:
    return Sequence(seq.name, seq.frame_paths[:n], seq.boxes[:n])


# ------------------------------------------------------------------------------------------------------ the splice

@needs_data
def test_splice_inserts_resized_donor_frames_with_absent_rows(tmp_path):
    host, donor = _first(read_folder_sequence(HOST), 10), read_folder_sequence(DONOR)
    out = splice_cut(host, donor, at=4, n_frames=3, out_dir=tmp_path / "cut", donor_start=5)
    assert len(out) == 13 and out.name == "cut"
    assert out.meta["cut"] == {"host": "vot-car1", "donor": "uav-car16", "at": 4, "n_frames": 3, "donor_start": 5}
    absent = ~out.valid
    assert list(np.flatnonzero(absent)) == [4, 5, 6]
    np.testing.assert_allclose(out.boxes[:4], host.boxes[:4], atol=1e-3)
    np.testing.assert_allclose(out.boxes[7:], host.boxes[4:], atol=1e-3)
    # host frames are the host's files, byte for byte, in order
    for spliced, original in zip(out.frame_paths[:4] + out.frame_paths[7:], host.frame_paths):
        assert open(spliced, "rb").read() == open(original, "rb").read()
    # donor frames 5, 6, 7 at the host's size (640x480 from 640x360), close to the resized originals (JPEG)
    import cv2

    for spliced, original in zip(out.frame_paths[4:7], donor.frame_paths[5:8]):
        img = read_frame(spliced)
        assert img.shape == read_frame(host.frame_paths[0]).shape
        resized = cv2.resize(read_frame(original), (640, 480))
        assert np.abs(img.astype(float) - resized).mean() < 4.0
    assert json.loads((tmp_path / "cut" / SPLICE_FILE).read_text())["frame_size"] == [640, 480]
    with pytest.raises(ValueError, match="not empty"):
        splice_cut(host, donor, 4, 3, tmp_path / "cut")
    with pytest.raises(ValueError, match="outside"):
        splice_cut(host, donor, 0, 3, tmp_path / "at0")
    with pytest.raises(ValueError, match="cannot take"):
        splice_cut(host, donor, 4, 3, tmp_path / "short", donor_start=len(donor) - 2)


def _named(name: str, n: int, absent=()) -> Sequence:
    boxes = np.tile([10.0, 10.0, 20.0, 20.0], (n, 1))
    boxes[list(absent)] = np.nan
    return Sequence(name, [f"{name}/{i:05d}.jpg" for i in range(n)], boxes)


def test_cut_plans_are_seeded_and_take_another_collection():
    hosts = [_named("vot-a", 100), _named("uav-b", 53)]
    donors = hosts + [_named("vot-c", 100), _named("uav-d", 100), _named("davis-e", 40)]
    plans = plan_cuts(hosts, donors, seed=3)
    assert plans == plan_cuts(hosts, donors, seed=3)
    assert plans != plan_cuts(hosts, donors, seed=4)
    for cut, host in zip(plans, hosts):
        donor = next(d for d in donors if d.name == cut.donor)
        assert cut.donor.split("-")[0] != cut.host.split("-")[0] and cut.host == host.name
        assert 30 <= cut.n_frames <= 90 and cut.donor_start + cut.n_frames <= len(donor)
        assert len(host) // 4 <= cut.at <= len(host) - 30
    assert has_own_absence(_named("x", 10, absent=[4, 5]))
    assert not has_own_absence(_named("x", 10, absent=[0, 1]))  # absent before the first present frame only
    assert not has_own_absence(_named("x", 10, absent=[8, 9]))  # leaves and never comes back


# -------------------------------------------------------------------------------------- scores on hand-made boxes

def _gt(n=100, absent=range(20, 50)):
    gt = np.array([[100.0 + i, 50.0, 30.0, 20.0] for i in range(n)])
    gt[list(absent)] = np.nan
    return gt


def test_return_reacquired_on_time_with_a_tracked_box_on_the_target():
    gt = _gt()
    pred = np.where(np.isnan(gt), 0.0, gt)
    tracked = ~np.isnan(gt).any(axis=1)
    s = score_reacquisition("ok", pred, tracked, gt)
    assert s.returns == [50] and s.reacquired_at == [50] and s.reacquired == 1
    assert s.absent == 30 and s.tracked_absent == 0
    assert s.present.auc == pytest.approx(20 / 21) and s.present.frames == 70
    tracked[[20, 21, 22, 30, 40, 49]] = True  # 6 of the 30 absent frames reported as tracked
    s = score_reacquisition("false", pred, tracked, gt)
    assert s.tracked_absent == 6 and s.to_dict()["tracked_absent_frames"] == 6


def test_one_second_window_iou_and_tracked_flag_all_count():
    gt = _gt()
    pred = np.where(np.isnan(gt), 0.0, gt)
    tracked = np.zeros(len(gt), dtype=bool)
    tracked[:20] = True
    tracked[80:] = True  # first tracked 30 frames = 1 s after the return at 50: still within
    s = score_reacquisition("late", pred, tracked, gt, rate_hz=30)
    assert s.reacquired_at == [80] and s.to_dict(30)["reacquire_delay_s"] == [pytest.approx(1.0)]
    tracked[80] = False  # first at 81: too late
    assert score_reacquisition("too late", pred, tracked, gt, rate_hz=30).reacquired_at == [None]
    tracked[50:] = True
    off = pred.copy()
    off[50:, 0] += 10.0  # IoU 20*20 / (40*20) = 0.5 exactly: counts
    assert score_reacquisition("iou .5", off, tracked, gt).reacquired_at == [50]
    off[50:60, 0] += 1.0  # IoU 19/41 < 0.5 on frames 50..59
    assert score_reacquisition("iou .46", off, tracked, gt).reacquired_at == [60]
    wrong = pred.copy()
    wrong[50:] += [200.0, 0, 0, 0]  # tracked, but on something else
    assert score_reacquisition("wrong", wrong, tracked, gt).reacquired_at == [None]


def test_frames_before_the_start_do_not_count_and_the_set_pools_frames():
    gt = _gt(60, absent=list(range(0, 5)) + list(range(20, 30)))
    pred = np.where(np.isnan(gt), 0.0, gt)
    tracked = np.ones(60, dtype=bool)
    a = score_reacquisition("a", pred, tracked, gt, start=5)
    assert a.returns == [30] and a.absent == 10 and a.tracked_absent == 10  # frames 0..4: before the init frame
    gt_b = _gt(60, absent=range(40, 45))
    b = score_reacquisition("b", np.where(np.isnan(gt_b), 0.0, gt_b), ~np.isnan(gt_b).any(axis=1), gt_b)
    assert b.returns == [45] and b.absent == 5 and b.tracked_absent == 0
    run = ReacquisitionRun("t", [a, b])
    summary = run.summary()
    assert summary["returns"] == 2 and summary["reacquired_fraction"] == 1.0
    assert summary["tracked_absent_fraction"] == pytest.approx(10 / 15)  # pooled frames, not a mean of fractions
    with pytest.raises(ValueError):
        score_reacquisition("bad", pred, tracked[:10], gt)


# ----------------------------------------------------------------------------------- a real run with the shipped one

@needs_data
def test_shipped_tracker_on_one_spliced_track(tmp_path):
    """vot-car1's first 60 frames with 1 s of uav-car16 spliced in after frame 30, the shipped default tracker
    (CPU): one return, 30 absent frames, every figure in range, and the car followed before the cut (mean IoU 0.75
    and tracked on 29 of 30 frames measured; a box held still from the first frame has mean IoU 0.32 there)."""
    from siam_tracker_ros.config import Config
    from siam_tracker_ros.evaluation.metrics import iou
    from siam_tracker_ros.evaluation.reacquisition import run_reacquisition
    from siam_tracker_ros.evaluation.runner import SiamAdapter
    from siam_tracker_ros.tracking import SiamTracker

    host, donor = _first(read_folder_sequence(HOST), 60), read_folder_sequence(DONOR)
    (planned,) = build_reacquisition_set([host], [host, donor], tmp_path / "set", seed=0)
    assert planned.meta["cut"]["donor"] == "uav-car16" and planned.name == "vot-car1+cut"
    cut = splice_cut(host, donor, at=30, n_frames=30, out_dir=tmp_path / "fixed", donor_start=0)
    cfg = Config()
    cfg.backend.device = "cpu"
    tracker = SiamAdapter(SiamTracker.from_config(cfg))
    runs = run_reacquisition([tracker], [cut])
    s = runs["siam"].summary()
    assert s["returns"] == 1 and s["absent_frames"] == 30 and s["sequences"] == 1 and s["frames"] == 90
    assert 0 <= s["tracked_absent_frames"] <= 30 and s["reacquired"] in (0, 1)
    assert 0.0 < s["auc_present"] <= 20 / 21 and s["fps"] > 0
    (score,) = runs["siam"].sequences
    assert score.returns == [60] and score.present.frames == 60
    from siam_tracker_ros.evaluation.streaming import play

    p = play(tracker, cut)  # the same pass again (deterministic on the CPU), to look at its boxes before the cut
    before = slice(1, 30)
    assert iou(p.boxes[before], cut.boxes[before]).mean() > 0.5
    assert iou(np.tile(cut.boxes[0], (29, 1)), cut.boxes[before]).mean() < 0.4
    assert p.tracked[before].mean() > 0.8


@needs_data
def test_reacquisition_cli_builds_the_seeded_set_and_writes_the_figures(tmp_path):
    """`eval --reacquisition` on one track with KCF: the cut of plan_cuts(seed) is written where asked, the JSON has
    the set and the pooled figures; a folder that already holds the set is refused."""
    from siam_tracker_ros.data import load_sequences
    from siam_tracker_ros.evaluation.cli import main

    out, folder = tmp_path / "rq.json", tmp_path / "set"
    args = [str(DATA / "train"), "--sequences", "vot-car1", "--no-siam", "--peers", "kcf", "--reacquisition",
            "--reacq-dir", str(folder), "--reacq-seed", "5", "--quiet"]
    assert main(args + ["--json", str(out)]) == 0
    data = json.loads(out.read_text())
    everything = load_sequences(DATA / "train")
    (plan,) = plan_cuts([s for s in everything if s.name == "vot-car1"], everything, seed=5)
    assert [s["name"] for s in data["set"]] == ["vot-car1+cut"] and data["seed"] == 5
    assert data["set"][0]["cut"] == {"host": plan.host, "donor": plan.donor, "at": plan.at,
                                     "n_frames": plan.n_frames, "donor_start": plan.donor_start}
    assert (folder / "vot-car1+cut" / "groundtruth.txt").is_file()
    o = data["trackers"]["kcf"]["overall"]
    assert o["returns"] == 1 and o["absent_frames"] == plan.n_frames
    assert 0.0 <= o["tracked_absent_fraction"] <= 1.0 and o["reacquired"] in (0, 1)
    assert 0.0 <= o["auc_present"] <= 20 / 21 and len(data["load_average"]["start"]) == 3
    assert main(args) == 2  # the set's folder is there already
