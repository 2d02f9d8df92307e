"""OTB metrics on hand-made boxes, and `eval` on two short real sequences."""
from __future__ import annotations

import numpy as np
import pytest

from siam_tracker_ros.evaluation import metrics as m
from siam_tracker_ros.data import data_root
from siam_tracker_ros.evaluation.runner import nanotrack_missing


def _gt(n=10):
    return np.array([[10.0 + i, 20.0, 40.0, 20.0] for i in range(n)])


def test_perfect_track():
    gt = _gt()
    s = m.score_sequence("p", gt.copy(), gt)
    # IoU = 1 exceeds every threshold but t = 1 itself: 20 of 21
    assert s.auc == pytest.approx(20 / 21)
    assert s.precision20 == 1.0 and s.mean_iou == pytest.approx(1.0)
    assert s.frames == 10
    # fractional boxes too: (x + w) - x != w in floating point must not push an IoU over 1 (and past t = 1)
    frac = np.array([[191.09, 80.94, 17.29, 9.96], [243.98, 273.83, 186.99, 223.85], [258.95, 162.44, 94.91, 131.81]])
    assert m.score_sequence("f", frac.copy(), frac).auc == pytest.approx(20 / 21, abs=1e-12)


def test_constant_offset():
    gt = _gt()
    pred = gt.copy()
    pred[:, 0] += 10.0  # shift by a quarter of the width: IoU = 30*20 / (50*20) = 0.6
    s = m.score_sequence("o", pred, gt)
    np.testing.assert_allclose(m.iou(pred, gt), 0.6)
    # thresholds 0, .05, ..., .55 are exceeded (12 of 21)
    assert s.auc == pytest.approx(12 / 21)
    assert s.precision20 == 1.0
    pred[:, 1] += 30.0  # centre error sqrt(10^2 + 30^2) = 31.6 px > 20
    s = m.score_sequence("o2", pred, gt)
    assert s.precision20 == 0.0
    assert s.precision[32] == 1.0 and s.precision[31] == 0.0


def test_total_loss():
    gt = _gt()
    pred = gt + [500, 500, 0, 0]
    s = m.score_sequence("l", pred, gt)
    assert s.auc == 0.0 and s.precision20 == 0.0
    nan_pred = np.full_like(gt, np.nan)
    s = m.score_sequence("n", nan_pred, gt)
    assert s.auc == 0.0 and s.precision20 == 0.0


def test_absent_frames_excluded_and_equal_weights():
    gt = _gt(4)
    gt[1] = np.nan
    pred = gt.copy()
    pred[3] += [500, 0, 0, 0]  # one wrong frame of the 3 scored
    s = m.score_sequence("a", pred, gt)
    assert s.frames == 3
    assert s.precision20 == pytest.approx(2 / 3)
    perfect = m.score_sequence("b", _gt(100), _gt(100))
    total = m.overall([s, perfect])
    assert total.precision20 == pytest.approx((2 / 3 + 1) / 2)  # sequences weighted equally, not frames


# ---------------------------------------------------------------------------------------------- eval on real data

DATA = data_root()


@pytest.mark.skipif(not (DATA / "train").is_dir(), reason=f"real sequences not found at {DATA}/train "
                                                            "(set SIAM_DATA_DIR)")
def test_eval_cli_writes_json_and_png(tmp_path):
    import json

    import cv2
    import torch

    from siam_tracker_ros.config import ModelConfig
    from siam_tracker_ros.evaluation.cli import main
    from siam_tracker_ros.model import build_model, save_weights

    torch.manual_seed(0)
    torch.set_num_threads(1)
    weights = tmp_path / "w.pt"
    save_weights(build_model(ModelConfig(width=0.125)), weights, metadata={"steps": 0})
    out_json, out_png = tmp_path / "eval.json", tmp_path / "eval.png"
    rc = main([str(DATA / "train"), "--weights", str(weights), "--sequences", "vot-ball1,scbt-Bowl",
               "--max-frames", "12", "--peers", "csrt", "--json", str(out_json), "--plot", str(out_png),
               "--device", "cpu", "--quiet"])
    assert rc == 0
    data = json.loads(out_json.read_text())
    assert set(data["trackers"]) == {"siam", "csrt"}
    for run in data["trackers"].values():
        o = run["overall"]
        assert 0.0 <= o["auc"] <= 20 / 21 + 1e-9 and 0.0 <= o["precision20"] <= 1.0
        assert o["sequences"] == 2 and o["frames"] == 24 and o["fps"] > 0
        assert set(run["sequences"]) == {"vot-ball1", "scbt-Bowl"}
        assert len(o["success_curve"]) == 21
    img = cv2.imread(str(out_png))
    assert img is not None and img.shape[0] > 100


@pytest.mark.skipif(not (DATA / "train").is_dir(), reason=f"real sequences not found at {DATA}/train "
                                                            "(set SIAM_DATA_DIR)")
def test_restarts_score_every_start_from_its_own_frame():
    """--restarts: an oracle that returns the ground truth scores perfectly from every start; a tracker that freezes
    its init box scores better from later starts only if it is scored from its own init frame, not from frame 0."""
    from siam_tracker_ros.evaluation.runner import evaluate, summary_table
    from siam_tracker_ros.data import load_sequences

    names = ["vot-ball1", "scbt-Bowl"]
    gts = {s.name: s.boxes for s in load_sequences(DATA / "train") if s.name in names}

    class Oracle:
        name = "oracle"

        def init(self, frame, box):
            self.seq, self.i = next((n, int(i)) for n, g in gts.items()
                                    for i in np.flatnonzero(np.isclose(g, box).all(axis=1)))

        def update(self, frame):
            self.i += 1
            return gts[self.seq][self.i]

    class Frozen:
        name = "frozen"

        def init(self, frame, box):
            self.box = np.array(box, float)

        def update(self, frame):
            return self.box

    runs = evaluate(DATA / "train", [Oracle(), Frozen()], names, max_frames=30, warmup=False, restarts=3)
    oracle = runs["oracle"]
    assert [s.name for s in oracle.segments] == ["vot-ball1@10", "vot-ball1@20", "scbt-Bowl@10", "scbt-Bowl@20"]
    assert all(s.frames == 30 - int(s.name.split("@")[1]) for s in oracle.segments)
    assert oracle.overall_restarts().auc == pytest.approx(20 / 21) and oracle.overall_restarts().sequences == 6
    frozen = runs["frozen"].segments
    assert all(s.success[0] > 0 for s in frozen)  # the init frame of each start is scored (IoU 1 > 0)
    assert "all starts" in summary_table(runs)
    assert "restarts" in runs["frozen"].to_dict()


# ------------------------------------------------------------------------- peers (NanoTrack) and --split val|test

@pytest.mark.skipif(not (DATA / "train").is_dir(), reason=f"real sequences not found at {DATA}/train "
                                                            "(set SIAM_DATA_DIR)")
@pytest.mark.skipif(nanotrack_missing() is not None, reason=f"NanoTrack peer files absent: {nanotrack_missing()}")
def test_nanotrack_follows_a_real_track():
    """30 frames of otb-Football1 (a 26x43 px player running ~70 px left): NanoTrack measured 0.79 mean IoU there
    (OpenCV 5.0); holding the first box scores 0.11, so > 0.5 means it follows the target, with room for other
    OpenCV builds."""
    from siam_tracker_ros.data import find_sequence, read_folder_sequence
    from siam_tracker_ros.evaluation.runner import NanoTrackAdapter, track

    folder = find_sequence("otb-Football1")
    if folder is None:
        pytest.skip(f"otb-Football1 not found under {DATA}/train")
    seq = read_folder_sequence(folder)
    nano = NanoTrackAdapter()
    pred, frames, seconds = track(nano, seq, max_frames=30)
    gt = seq.boxes[:30]
    scored = ~np.isnan(gt).any(axis=1)
    scored[0] = False  # the init frame is the given box
    assert frames == 30 and seconds > 0
    frozen_iou = m.iou(np.repeat(gt[:1], 30, axis=0)[scored], gt[scored]).mean()
    nano_iou = m.iou(pred[scored], gt[scored]).mean()
    assert frozen_iou < 0.5, "the track no longer moves the target away from its first box: pick another"
    assert nano_iou > 0.5, f"NanoTrack mean IoU {nano_iou:.3f} on the first 30 frames of otb-Football1"
    assert 0.0 <= nano.score <= 1.0
    # re-initialised (not re-created) for the next run: the same boxes again
    again, _, _ = track(nano, seq, max_frames=30)
    np.testing.assert_allclose(again, pred)


def test_nanotrack_missing_files_name_the_path_and_the_variable(tmp_path, monkeypatch, capsys):
    from siam_tracker_ros.data import peers_root
    from siam_tracker_ros.evaluation.cli import main
    from siam_tracker_ros.evaluation.runner import NanoTrackAdapter

    monkeypatch.setenv("SIAM_PEERS_DIR", str(tmp_path))
    assert peers_root() == tmp_path
    with pytest.raises(FileNotFoundError) as err:
        NanoTrackAdapter()
    assert str(tmp_path / "nanotrack_v2" / "nanotrack_backbone_sim.onnx") in str(err.value)
    assert "SIAM_PEERS_DIR" in str(err.value)
    # the command line stops before reading any frame, with the same message
    assert main([str(tmp_path), "--no-siam", "--peers", "csrt,nano"]) == 2
    assert "SIAM_PEERS_DIR" in capsys.readouterr().err


@pytest.mark.skipif(not (DATA / "train").is_dir(), reason=f"real sequences not found at {DATA}/train "
                                                            "(set SIAM_DATA_DIR)")
def test_split_selects_the_config_tracks(tmp_path):
    """--split test runs exactly training.test_sequences of config/finetune.yaml, in order, and records it;
    --split val and --held-out name the same tracks."""
    import json

    from siam_tracker_ros.evaluation.cli import main
    from siam_tracker_ros.resources import shipped_file
    from siam_tracker_ros.training.trainer import load_train_config

    cfg, _ = load_train_config(shipped_file("config/finetune.yaml"))
    held_out, _ = load_train_config(shipped_file("config/train_default.yaml"))
    test_names, val_names = list(cfg.training.test_sequences), list(cfg.training.val_sequences)
    assert test_names and not set(test_names) & set(val_names)
    figures = {}
    for flags in (["--split", "test"], ["--split", "val"], ["--held-out"]):
        out = tmp_path / f"{flags[-1]}.json"
        # KCF on 2 frames: the cheapest real tracker, only the selection matters here
        assert main([str(DATA / "train"), *flags, "--no-siam", "--peers", "kcf", "--max-frames", "2",
                     "--json", str(out), "--quiet"]) == 0
        figures[flags[-1]] = json.loads(out.read_text())
    assert figures["test"]["sequences"] == test_names and figures["test"]["split"] == "test"
    assert list(figures["test"]["trackers"]["kcf"]["sequences"]) == test_names
    assert figures["val"]["sequences"] == val_names and figures["val"]["split"] == "val"
    assert set(figures["--held-out"]["sequences"]) == set(held_out.training.val_sequences) == set(val_names)
    assert figures["--held-out"]["split"] == "val"
    assert figures["test"]["opencv"]["threads"] >= 1
    assert main([str(DATA / "train"), "--split", "test", "--sequences", test_names[0], "--no-siam",
                 "--peers", "kcf"]) == 2
