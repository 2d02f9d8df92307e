"""Streaming evaluation (`eval --realtime`): a real tracker whose processing times are injected skips exactly the
frames the node's newest-frame policy skips, and every frame is scored with the box finished by its arrival."""
from __future__ import annotations

import json

import numpy as np
import pytest

from siam_tracker_ros.data import data_root, read_folder_sequence, read_frame

DATA = data_root()
SEQUENCE = DATA / "train" / "vot-car1"
needs_data = pytest.mark.skipif(not (SEQUENCE / "groundtruth.txt").is_file(),
                                reason=f"real sequence {SEQUENCE} not found (set SIAM_DATA_DIR)")


class Recorder:
    """A real OpenCV tracker that records which frames it was given (by their pixels) and the box it returned."""

    def __init__(self, frames):
        from siam_tracker_ros.evaluation.runner import make_peer

        self.inner = make_peer("kcf")
        self.name = "recorded"
        self.frames = frames
        self.seen, self.returned = [], {}

    def _index(self, frame):
        return next(i for i, f in enumerate(self.frames) if np.array_equal(f, frame))

    def init(self, frame, box):
        self.seen.append(self._index(frame))
        self.inner.init(frame, box)

    def update(self, frame):
        i = self._index(frame)
        box = self.inner.update(frame)
        self.seen.append(i)
        self.returned[i] = box.copy()
        self.tracked = self.inner.tracked
        return box


@pytest.fixture(scope="module")
def seq():
    if not (SEQUENCE / "groundtruth.txt").is_file():
        pytest.skip(f"real sequence {SEQUENCE} not found (set SIAM_DATA_DIR)")
    return read_folder_sequence(SEQUENCE)


@needs_data
def test_slow_tracker_skips_to_the_newest_frame_and_is_scored_late(seq):
    """10 Hz camera, init 0.05 s, every update 0.27 s. By hand: frame 1 arrives at 0.1 (the tracker waits for it),
    done at 0.37; then frame 3 (arrived 0.3), done 0.64; 6 (0.6) 0.91; 9 (0.9) 1.18; 11 (1.1) 1.45; 14 1.72;
    17 1.99; 19 2.26. Frame i (arriving i/10 s) is scored with the last of those finished by then."""
    from siam_tracker_ros.evaluation.streaming import play

    frames = [read_frame(p) for p in seq.frame_paths[:20]]
    tracker = Recorder(frames)
    p = play(tracker, seq, hz=10, max_frames=20, cost=lambda i, measured: 0.05 if i == 0 else 0.27)
    assert p.processed == [0, 1, 3, 6, 9, 11, 14, 17, 19] == tracker.seen
    np.testing.assert_allclose(p.finished, [0.05, 0.37, 0.64, 0.91, 1.18, 1.45, 1.72, 1.99, 2.26])
    assert p.skipped == 11 and p.frames == 20
    source = [0] * 4 + [1] * 3 + [3] * 3 + [6] * 2 + [9] * 3 + [11] * 3 + [14] * 2  # frame i -> its box's frame
    for i, k in enumerate(source):
        expected = seq.boxes[0] if k == 0 else tracker.returned[k]
        np.testing.assert_array_equal(p.boxes[i], expected, err_msg=f"frame {i} scored with frame {k}'s box")
    assert p.seconds == pytest.approx(0.05 + 8 * 0.27)


@needs_data
def test_a_box_ready_on_the_arrival_scores_that_frame_and_a_fast_tracker_is_one_frame_late(seq):
    """Updates of exactly one frame period: every frame is processed (the tracker is free as the next one
    arrives) and, the clock counting whole nanoseconds, frame i is scored with frame i - 1's box. Offline (no rate)
    the same tracker is scored with its own box on every frame, and its tracked flags are kept."""
    from siam_tracker_ros.evaluation.streaming import play

    n = 12
    frames = [read_frame(p) for p in seq.frame_paths[:n]]
    for period_cost in (0.1, 0.003):
        tracker = Recorder(frames)
        p = play(tracker, seq, hz=10, max_frames=n, cost=lambda i, measured, c=period_cost: c)
        assert p.processed == list(range(n)) and p.skipped == 0
        np.testing.assert_array_equal(p.boxes[1], seq.boxes[0])
        for i in range(2, n):
            np.testing.assert_array_equal(p.boxes[i], tracker.returned[i - 1])
    tracker = Recorder(frames)
    p = play(tracker, seq, max_frames=n)
    assert p.processed == list(range(n))
    for i in range(1, n):
        np.testing.assert_array_equal(p.boxes[i], tracker.returned[i])
    assert p.seconds > 0 and p.tracked[0]
    assert p.tracked.dtype == bool and len(p.tracked) == n


@needs_data
def test_realtime_cli_side_by_side_with_a_multi_target_load(tmp_path):
    """`eval --realtime 30 --targets 2` with our tracker (small random network) and KCF: offline and streaming
    figures for both in the JSON, the load recorded, and at most every frame processed."""
    import torch

    from siam_tracker_ros.config import ModelConfig
    from siam_tracker_ros.evaluation.cli import main
    from siam_tracker_ros.model import build_model, save_weights

    torch.manual_seed(0)
    torch.set_num_threads(1)
    weights = tmp_path / "w.pt"
    save_weights(build_model(ModelConfig(width=0.125)), weights, metadata={"steps": 0})
    out = tmp_path / "rt.json"
    rc = main([str(DATA / "train"), "--weights", str(weights), "--sequences", "vot-car1", "--max-frames", "10",
               "--peers", "kcf", "--realtime", "30", "--targets", "2", "--device", "cpu", "--json", str(out),
               "--quiet"])
    assert rc == 0
    data = json.loads(out.read_text())
    assert set(data["trackers"]) == set(data["streaming"]) == {"siam", "kcf"}
    assert data["realtime_hz"] == 30 and data["targets"]["count"] == 2
    assert "one update call" in data["targets"]["load"]
    assert len(data["load_average"]["start"]) == 3
    for name, run in data["streaming"].items():
        assert run["frames"] == 10 and 2 <= run["processed"] <= 10
        assert 0.0 <= run["overall"]["auc"] <= 20 / 21 + 1e-9
        assert run["mean_latency_ms"] > 0
        assert data["trackers"][name]["overall"]["frames"] == 10


@needs_data
def test_multi_target_loads_track_every_copy(seq):
    """--targets: ours holds K target ids in one tracker and updates them in one call; a peer runs K instances."""
    from siam_tracker_ros.config import Config
    from siam_tracker_ros.evaluation.runner import SiamAdapter, make_peer
    from siam_tracker_ros.evaluation.targets import PeerCopies, SiamTargets, with_targets
    from siam_tracker_ros.tracking import SiamTracker

    frame = read_frame(seq.frame_paths[0])
    cfg = Config()
    cfg.backend.device = "cpu"
    ours = with_targets(SiamAdapter(SiamTracker.from_config(cfg)), 3)
    assert isinstance(ours, SiamTargets)
    ours.init(frame, seq.boxes[0])
    assert ours.tracker.targets == ["copy0", "copy1", "copy2"]
    box = ours.update(read_frame(seq.frame_paths[1]))
    assert box.shape == (4,) and isinstance(ours.tracked, bool)
    peers = with_targets(make_peer("kcf"), 3)
    assert isinstance(peers, PeerCopies) and len({id(c) for c in peers.copies}) == 3
    peers.init(frame, seq.boxes[0])
    box = peers.update(read_frame(seq.frame_paths[1]))
    np.testing.assert_array_equal(box, peers.copies[1]._last)  # the same target, the same tracker: the same box
    with pytest.raises(ValueError):
        with_targets(make_peer("kcf"), 0)
