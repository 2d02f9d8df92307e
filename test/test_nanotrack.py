"""The NanoTrack family on real frames: the batched graphs give the files' own outputs, the tracker follows a real
track with several targets in one call, reports a camera cut as lost; the converter; the builder; ONNX Runtime's
spin-wait option; the ONNX Runtime path without torch."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from siam_tracker_ros import data
from siam_tracker_ros.backends import default_weights_path
from siam_tracker_ros.config import Config, ConfigError
from siam_tracker_ros.tracking import DEFAULT_TARGET, SiamTracker, iou
from siam_tracker_ros.tracking.crops import channel_mean, crop_square, exemplar_region, to_tensor_layout

REPO = Path(__file__).resolve().parents[1]
DATA = data.data_root()
PEERS = data.peers_root()
FOLDERS = {"nanotrack_v2": PEERS / "nanotrack_v2", "nanotrack_v3": PEERS / "nanotrack_v3"}
FILES = {"nanotrack_v2": ("nanotrack_backbone_sim.onnx", "nanotrack_head_sim.onnx"),
         "nanotrack_v3": ("nanotrack_backbone.onnx", "nanotrack_head.onnx")}


def _missing(family: str) -> str | None:
    absent = [str(FOLDERS[family] / f) for f in FILES[family] if not (FOLDERS[family] / f).is_file()]
    return f"NanoTrack files absent (user-supplied; SIAM_PEERS_DIR): {', '.join(absent)}" if absent else None


needs_data = pytest.mark.skipif(not (DATA / "train").is_dir(), reason=f"real sequences not found at {DATA}/train")
needs_v2 = pytest.mark.skipif(_missing("nanotrack_v2") is not None, reason=str(_missing("nanotrack_v2")))
needs_v3 = pytest.mark.skipif(_missing("nanotrack_v3") is not None, reason=str(_missing("nanotrack_v3")))
FAMILIES = [pytest.param("nanotrack_v2", marks=needs_v2), pytest.param("nanotrack_v3", marks=needs_v3)]
SHIPPED = default_weights_path("small")


def _sequence(name: str, n: int | None = None):
    return data.load_sequence(DATA / "train" / name, n)


def _tracker(family: str):
    from siam_tracker_ros.tracking.build import build_tracker

    config = Config()
    config.backend.num_threads = 2
    return build_tracker(config, FOLDERS[family])


@needs_data
@pytest.mark.parametrize("family", FAMILIES)
def test_batched_graphs_give_the_files_own_outputs_on_real_crops(family):
    import onnxruntime as ort

    from siam_tracker_ros.backends.nanotrack import NanoTrackOnnxBackend

    frames, gt = _sequence("vot-car1", 12)
    backend = NanoTrackOnnxBackend(FOLDERS[family], num_threads=2)
    pad = channel_mean(frames[0])
    x0, y0, w, h = gt[0]
    s_z = exemplar_region(w, h, 0.5)
    z = to_tensor_layout([crop_square(frames[0], x0 + w / 2, y0 + h / 2, s_z, 127, pad)] * 3)
    kernels = backend.template(z)
    crops = to_tensor_layout([crop_square(frames[k], gt[k][0] + gt[k][2] / 2, gt[k][1] + gt[k][3] / 2,
                                          s_z * 255 / 127, 255, channel_mean(frames[k])) for k in (4, 8, 11)])
    batched = backend.search(crops, kernels)
    # The unmodified files (batch 1, 255 px input) on each crop: the same maps, from the batch and from one crop
    # alone (the joined search graph for both families; v3's batch goes through its two graphs).
    backbone = ort.InferenceSession(str(FOLDERS[family] / FILES[family][0]), providers=["CPUExecutionProvider"])
    head = ort.InferenceSession(str(FOLDERS[family] / FILES[family][1]), providers=["CPUExecutionProvider"])
    for i in range(3):
        xf = backbone.run(None, {"input": crops[i:i + 1]})[0]
        cls, box = head.run(None, {"input1": kernels[i:i + 1], "input2": xf})
        for out in (batched[i], backend.search(crops[i:i + 1], kernels[i:i + 1])[0]):
            np.testing.assert_allclose(out[:2], cls[0], atol=1e-3 * max(1.0, np.abs(cls).max()))
            np.testing.assert_allclose(out[2:], box[0], rtol=1e-4, atol=1e-3)
    # The target is on the crop's centre: the network finds it there.
    prob = 1.0 / (1.0 + np.exp(batched[:, 0] - batched[:, 1]))
    n = prob.shape[1]
    for p in prob:
        by, bx = np.unravel_index(int(np.argmax(p)), p.shape)
        assert abs(by - n // 2) <= 2 and abs(bx - n // 2) <= 2


@needs_data
@pytest.mark.parametrize("family", FAMILIES)
def test_follows_a_real_track_with_several_targets_in_one_call(family):
    frames, gt = _sequence("vot-car1", 40)
    tracker = _tracker(family)
    calls = []
    search = tracker.backend.search
    tracker.backend.search = lambda x, k: calls.append(len(x)) or search(x, k)
    tracker.init(frames[0], gt[0], "a")
    shifted = gt[0] + [0.1 * gt[0][2], 0.1 * gt[0][3], 0, 0]
    tracker.init(frames[0], shifted, "b")
    alone = _tracker(family)
    alone.init(frames[0], gt[0], "a")
    ious = []
    for frame, truth in zip(frames[1:], gt[1:]):
        results = tracker.update(frame)
        single = alone.update(frame)["a"]
        # Batched with another target or alone: the same box.
        np.testing.assert_allclose(results["a"].box, single.box, atol=1e-2)
        ious.append(iou(results["a"].box, truth))
        assert not results["a"].lost and results["a"].confidence > 0.5
        heat = results["a"].response
        assert heat.dtype == np.float32 and heat.ndim == 2 and 0.0 <= heat.min() <= heat.max() <= 1.0
    assert calls == [2] * (len(frames) - 1)  # both targets in one search call per frame
    assert np.mean(ious) > 0.6
    assert tracker.targets == ["a", "b"]
    tracker.rename("b", "c")
    assert tracker.remove("c") and tracker.targets == ["a"]
    assert set(tracker.state("a")) == {"box", "lost", "lost_frames", "reacquisitions", "redetections"}
    assert tracker.state("a")["reacquisitions"] == 0  # tracked throughout


@needs_data
@needs_v2
def test_camera_cut_is_reported_lost_and_the_box_does_not_wander():
    """30 frames of another track spliced into a real one (2 s at 15 frames/s): reported lost within the first few
    of them and on most; tracked before the cut; the frozen box stays where the target was."""
    frames, gt = _sequence("davis-scooter-black")
    other, _ = _sequence("uav-bike1", 30)
    h, w = frames[0].shape[:2]
    cut = 15
    spliced = frames[:cut] + [cv2.resize(f, (w, h)) for f in other] + frames[cut:]
    tracker = _tracker("nanotrack_v2")
    tracker.init(spliced[0], gt[0])
    lost, boxes = [], []
    for frame in spliced[1:]:
        r = tracker.update(frame)[DEFAULT_TARGET]
        lost.append(r.lost)
        boxes.append(r.box)
    before, during = lost[:cut - 1], lost[cut - 1:cut - 1 + 30]
    assert not any(before)
    assert any(during[:15])  # within 1 s
    assert np.mean(during) >= 0.8
    # While lost, the box does not follow the other scene.
    box_at_cut = boxes[cut - 2]
    for box, is_lost in zip(boxes[cut - 1:cut - 1 + 30], during):
        if is_lost:
            assert iou(box, box_at_cut) > 0.5


@needs_v2
def test_converter_writes_a_card_and_the_file_tracks_like_the_folder(tmp_path, monkeypatch):
    from siam_tracker_ros.backends.nanotrack_convert import convert

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    out = tmp_path / "v2.pt"
    card = convert(FOLDERS["nanotrack_v2"], out)
    assert card["family"] == "nanotrack_v2" and card["licence"] == "Apache-2.0"
    assert json.loads(Path(str(out) + ".json").read_text())["origin"].startswith("NanoTrack")
    frames, gt = _sequence("vot-car1", 8) if (DATA / "train").is_dir() else (None, None)
    if frames is None:
        pytest.skip(f"real sequences not found at {DATA}/train")
    from siam_tracker_ros.tracking.build import build_tracker

    from_file, from_folder = build_tracker(Config(), out), _tracker("nanotrack_v2")
    for t in (from_file, from_folder):
        t.init(frames[0], gt[0])
    for frame in frames[1:]:
        np.testing.assert_allclose(from_file.update(frame)[DEFAULT_TARGET].box,
                                   from_folder.update(frame)[DEFAULT_TARGET].box, atol=1e-3)


@pytest.mark.skipif(not SHIPPED.is_file(), reason=f"shipped weights {SHIPPED} not present")
def test_converter_refuses_what_is_not_a_nanotrack_checkpoint(tmp_path):
    from siam_tracker_ros.backends.nanotrack_convert import ConvertError, convert

    with pytest.raises(ConvertError, match="is not a NanoTrack checkpoint: it is a siam_tracker_ros weights file"):
        convert(SHIPPED, tmp_path / "x.pt")
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint\n")
    with pytest.raises(ConvertError, match="is not a NanoTrack checkpoint: PyTorch cannot read it"):
        convert(text, tmp_path / "x.pt")
    import torch

    other = tmp_path / "other.pth"
    torch.save({"state_dict": {"conv.weight": torch.zeros(3, 3)}}, other)
    with pytest.raises(ConvertError, match="its tensors are not those of NanoTrack v2 or v3"):
        convert(other, tmp_path / "x.pt")
    with pytest.raises(ConvertError, match="holds no NanoTrack ONNX pair"):
        convert(tmp_path, tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists()
    # The siam_tracker_ros CLI says the same and exits 2.
    proc = subprocess.run([sys.executable, "-m", "siam_tracker_ros.cli", "convert-nanotrack", str(other),
                           str(tmp_path / "x.pt")], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2 and "is not a NanoTrack checkpoint" in proc.stderr


@needs_v2
def test_builder_picks_the_tracker_class_from_the_model_family(tmp_path, monkeypatch):
    from siam_tracker_ros.backends.base import BackendError
    from siam_tracker_ros.tracking.build import build_tracker, model_family
    from siam_tracker_ros.tracking.nanotrack import NanoTracker

    config = Config()
    assert isinstance(build_tracker(config, FOLDERS["nanotrack_v2"]), NanoTracker)
    monkeypatch.setenv("SIAM_PEERS_DIR", str(PEERS))
    config.backend.model = "nanotrack_v2"
    assert model_family(config) == "nanotrack_v2"
    assert isinstance(build_tracker(config), NanoTracker)
    monkeypatch.setenv("SIAM_PEERS_DIR", str(tmp_path))
    with pytest.raises(BackendError, match="no nanotrack_v2 ONNX pair in"):
        build_tracker(config)
    with pytest.raises(BackendError, match="holds no NanoTrack ONNX pair"):
        build_tracker(Config(), tmp_path)
    if SHIPPED.is_file():
        assert isinstance(build_tracker(Config(), SHIPPED), SiamTracker)


def test_onnx_spin_wait_is_off_by_default_and_configurable():
    import onnxruntime as ort

    from siam_tracker_ros.backends.onnx_backend import session_options

    assert Config().backend.onnx_allow_spinning is False
    off, on = session_options(ort), session_options(ort, 2, allow_spinning=True)
    for key in ("session.intra_op.allow_spinning", "session.inter_op.allow_spinning"):
        assert off.get_session_config_entry(key) == "0" and on.get_session_config_entry(key) == "1"
    with pytest.raises(ConfigError, match="backend.onnx_allow_spinning"):
        Config.from_dict({"backend": {"onnx_allow_spinning": "yes"}})


@pytest.mark.skipif(not SHIPPED.is_file(), reason=f"shipped weights {SHIPPED} not present")
def test_onnx_runtime_path_runs_without_torch_once_the_graphs_are_there(tmp_path):
    """First start: the weights are read (torch) and the graphs exported; the next start finds them by the weights
    file's bytes and imports no torch."""
    script = ("import sys; from siam_tracker_ros.config import Config; "
              "from siam_tracker_ros.tracking.build import build_tracker; "
              "c = Config(); c.backend.name = 'onnxruntime'; c.backend.device = 'cpu'; "
              f"t = build_tracker(c, {str(SHIPPED)!r}); t.warm_up(1); print('torch' in sys.modules)")
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path), PYTHONPATH=str(REPO))
    runs = [subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path)
            for _ in range(2)]
    for run in runs:
        assert run.returncode == 0, run.stderr
    assert [r.stdout.strip().splitlines()[-1] for r in runs] == ["True", "False"]


@needs_data
@pytest.mark.parametrize("family", FAMILIES)
def test_pytorch_module_loads_the_checkpoint_and_matches_the_onnx_pair_on_real_crops(family):
    from siam_tracker_ros.tracking.build import build_tracker

    if not any(FOLDERS[family].glob("*.pth")):
        pytest.skip(f"no {family} checkpoint (.pth) in {FOLDERS[family]}")
    frames, gt = _sequence("vot-car1", 12)
    trackers = {}
    for name in ("onnxruntime", "torch"):
        config = Config()
        config.backend.name, config.backend.num_threads = name, 2
        trackers[name] = build_tracker(config, FOLDERS[family])
        trackers[name].init(frames[0], gt[0], "a")
        trackers[name].init(frames[0], gt[0] + [8, 4, 0, 0], "b")
    onnx, torch_ = trackers["onnxruntime"], trackers["torch"]
    assert torch_.backend.describe() == f"{family} torch on cpu"
    kernel = np.concatenate([onnx._targets[t].kernel for t in ("a", "b")])
    np.testing.assert_allclose(np.concatenate([torch_._targets[t].kernel for t in ("a", "b")]), kernel,
                               atol=1e-3 * np.abs(kernel).max())
    pad = channel_mean(frames[6])
    crops = onnx._layout([crop_square(frames[6], gt[6][0] + gt[6][2] / 2 + d, gt[6][1] + gt[6][3] / 2, 300.0, 255,
                                      pad) for d in (0.0, 20.0)])
    a, b = onnx.backend.search(crops, kernel), torch_.backend.search(crops, kernel)  # two pairs in one call
    np.testing.assert_allclose(b[:, :2], a[:, :2], atol=1e-3)
    np.testing.assert_allclose(b[:, 2:], a[:, 2:], rtol=1e-4, atol=1e-2)
    # Tracking: the same boxes for the first frames (float rounding then feeds back through the crops).
    for frame in frames[1:5]:
        ra, rb = onnx.update(frame), torch_.update(frame)
        for t in ("a", "b"):
            np.testing.assert_allclose(rb[t].box, ra[t].box, atol=0.5)
