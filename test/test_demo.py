"""siam-tracker demo / latency: statistics and video (no ROS), then real runs: player + tracker node + client."""
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ros_helpers import REPO_ROOT, neutral_cwd, ros_domain_env  # noqa: E402,F401

from siam_tracker_ros import drawing  # noqa: E402
from siam_tracker_ros.backends import default_weights_path  # noqa: E402
from siam_tracker_ros.data import read_groundtruth  # noqa: E402
from siam_tracker_ros.runs import demo, latency, report  # noqa: E402  (none imports rclpy)
from siam_tracker_ros.runs.client import Record, read_stamps  # noqa: E402
from siam_tracker_ros.runs.session import SessionResult  # noqa: E402


# ------------------------------------------------------------------------------------------------ no ROS

def _session(n=10, answered=(1, 2, 3, 5, 6, 7, 8, 9), lat_ms=20.0, shift=0.0):
    t0 = 1_700_000_000 * 10**9
    stamps = [(i, i, t0 + i * 33_333_333) for i in range(n)]
    gt = np.array([[10.0 + i, 20.0, 40.0, 30.0] for i in range(n)])
    records = [Record(stamps[i][2], stamps[i][2] + int(lat_ms * 1e6) + i * 1000, "default",
                           (gt[i, 0] + shift, gt[i, 1], 40.0, 30.0), 0.9, i == 9) for i in answered]
    return SessionResult(stamps, records, 0, 0, "ok", 0.3, "node.log", "player.log"), gt


def test_analyse_counts_iou_latency():
    session, gt = _session(shift=10.0)
    result = report.analyse(session, gt)
    s = result["summary"]
    assert s["frames_published"] == 10 and s["frames_streamed_after_init"] == 9
    assert s["frames_answered"] == 8 and s["frames_dropped"] == 1  # frame 4 was skipped
    assert s["frames_lost_state"] == 1
    assert s["mean_iou"] == pytest.approx(30 * 30 / (2 * 40 * 30 - 30 * 30))  # boxes shifted by 10 px
    assert s["latency"]["p50_ms"] == pytest.approx(20.0, abs=0.01)
    assert s["publish_rate_hz"] == pytest.approx(30.0, rel=1e-3)
    # frame 4 was dropped: the client still holds frame 3's answer (10 px right of frame 3, 9 px of frame 4)
    held = 31 * 30 / (2 * 40 * 30 - 31 * 30)
    assert s["mean_iou_latest_answer_every_frame"] == pytest.approx((8 * s["mean_iou"] + held) / 9)
    rows = {r["frame"]: r for r in result["frames"]}
    assert rows[0]["init"] and not rows[4]["answered"] and rows[4]["held_box"] == rows[3]["box"]
    table = report.format_table("t", s)
    assert "mean IoU" in table and "p50 20.0 ms" in table


def test_analyse_counts_frames_on_the_distractor():
    session, gt = _session(n=10, answered=range(1, 10))
    distractor = np.full((10, 4), np.nan)
    distractor[5:8] = [[12.0 + i, 20.0, 40.0, 30.0] for i in range(5, 8)]  # a box 2 px right of each answer
    distractor[8] = [200.0, 200.0, 10.0, 10.0]  # present but far from the answer
    result = report.analyse(session, gt, distractors=distractor)
    s = result["summary"]
    # answers sit exactly on the ground truth: closer to it than to the distractor on every frame
    assert s["frames_on_distractor"] == 0 and s["frames_on_distractor_confident"] == []
    shifted, _ = _session(n=10, answered=range(1, 10), shift=12.0)  # answers on the distractor from frame 5 to 7
    s = report.analyse(shifted, gt, distractors=distractor)["summary"]
    assert s["frames_on_distractor"] == 3
    assert s["frames_on_distractor_confident"] == [5, 6, 7]  # score 0.9, not lost
    assert "box on the occluder" in report.format_table("t", s)
    assert "frames_on_distractor" not in report.analyse(shifted, gt)["summary"]


def test_video_written(tmp_path):
    session, gt = _session()
    rows = report.analyse(session, gt)["frames"]
    frames = (np.full((120, 160, 3), 60, np.uint8) for _ in range(10))
    path = drawing.write_video(tmp_path / "demo", frames, rows, 30.0)
    assert path is not None and Path(path).stat().st_size > 0
    cap = cv2.VideoCapture(path)
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 10


def test_latency_report_windows():
    t0 = 10**18
    stamps = [(i, i % 50, t0 + i * 33_333_333) for i in range(30 * 30)]  # 30 s at 30 Hz
    records = [Record(s, s + 25_000_000, "default", (0, 0, 1, 1), 1.0, False) for _, _, s in stamps[1::2]]
    rep = latency.latency_report(stamps, records, stamps[0][2], window_s=5.0)
    assert rep["frames_published"] == 899 and rep["frames_answered"] == 450 and rep["frames_dropped"] == 449
    assert rep["latency"]["p50_ms"] == pytest.approx(25.0)
    assert rep["first_10s_p50_ms"] == pytest.approx(25.0) and rep["growth_ms"] == pytest.approx(0.0)
    assert len(rep["windows"]) == 6
    assert "median first 10 s" in latency.format_report("t", rep)


def test_load_report_latency_of_the_last_target_and_memory():
    t0 = 10**18
    stamps = [(i, i, t0 + i * 33_333_333) for i in range(30 * 20)]  # 20 s at 30 Hz
    records = []
    for _, _, s in stamps[1::3]:
        for k, tid in enumerate(("default", "t1", "t2", "t3")):
            records.append(Record(s, s + (40 + 5 * k) * 1_000_000, tid, (0, 0, 1, 1), 1.0, False))
    records = [r for r in records if not (r.target_id == "t3" and r.stamp_ns == stamps[1][2])]  # one incomplete
    memory = [(t * 0.5, 500e6 + (10e6 if t * 0.5 >= 10 else 0)) for t in range(40)]
    rep = latency.load_report(stamps, records, stamps[0][2], ["default", "t1", "t2", "t3"], memory)
    assert rep["frames_published"] == 599 and rep["frames_answered"] == 199
    assert rep["latency"]["p50_ms"] == pytest.approx(55.0) and rep["latency"]["max_ms"] == pytest.approx(55.0)
    assert rep["rss_mb"]["start"] == pytest.approx(500) and rep["rss_mb"]["at_10s"] == pytest.approx(510)
    assert rep["rss_mb"]["change_10s_to_end_pct"] == pytest.approx(0.0) and len(rep["windows"]) == 2
    text = latency.format_load_report("t", rep)
    assert "p95 55.0 ms" in text and "start 500 MB" in text
    assert latency.spread_boxes(3, (640, 480))[0] == (128.0, 88.0, 64.0, 64.0)


def _window(k, answered, p50, other, track_ms, width=10.0):
    return {"from_s": k * width, "to_s": (k + 1) * width, "answered": answered, "p50_ms": p50,
            "cpu_cores": {"node": 0.9, "player": 0.05, "client": 0.05, "other": other},
            "node_ms": {"decode": 0.2, "track": track_ms, "publish": 2.0}}


def test_attribute_slowdown_names_what_took_the_cpu():
    steady = [_window(k, 200, 70.0, 0.1, 45.0) for k in range(4)]
    # the first window (start-up) is not the reference; a last sliver of a window is left out
    flat = report.attribute_slowdown([_window(0, 100, 200.0, 0.1, 45.0)] + steady[1:] + [_window(4, 20, 300.0, 1.5,
                                                                                                  90.0, width=1.0)])
    assert flat["within_tolerance"] and flat["causes"] == [] and flat["last_window"] == [30.0, 40.0]
    faster = report.attribute_slowdown(steady + [_window(4, 240, 60.0, 0.0, 40.0)])  # the machine got quieter
    assert faster["within_tolerance"] and faster["answered_change"] == pytest.approx(0.2)
    busy = report.attribute_slowdown(steady + [_window(4, 110, 105.0, 0.9, 46.0)])
    assert not busy["within_tolerance"] and busy["answered_change"] == pytest.approx(-0.45)
    assert busy["causes"] == ["other processes took +0.80 cores"]
    ours = report.attribute_slowdown(steady + [_window(4, 120, 100.0, 0.1, 80.0)])
    assert ours["causes"] == ["the node's track time per frame grew +35.0 ms"]
    text = "\n".join(report.format_attribution(busy))
    assert "answered frames -45 %" in text and "outside 10 %" in text and "other 0.10 -> 0.90" in text
    assert report.attribute_slowdown(steady[:2]) is None


def test_helpers(tmp_path):
    assert demo.parse_box("1,2,3,4") == (1.0, 2.0, 3.0, 4.0)
    with pytest.raises(Exception):
        demo.parse_box("1,2")
    (tmp_path / "gt.txt").write_text("1,2,3,4\nnan,nan,nan,nan\n5\t6\t7\t8\n")
    gt = read_groundtruth(tmp_path / "gt.txt")
    assert gt.shape == (3, 4) and np.isnan(gt[1]).all() and gt[2, 3] == 8


# ------------------------------------------------------------------------------------------------ real processes

@pytest.fixture(scope="module")
def test_weights(tmp_path_factory):
    from siam_tracker_ros.config import ModelConfig
    from siam_tracker_ros.model import build_model, save_weights

    path = tmp_path_factory.mktemp("weights") / "w025.pt"
    save_weights(build_model(ModelConfig(width=0.25)), path)
    return path


def _demo_cmd(out, *args, cli=False):
    """`siam-tracker demo` through the CLI, or through the module directly (skips importing the other commands)."""
    prefix = ["siam_tracker_ros.cli", "demo"] if cli else ["siam_tracker_ros.runs.demo"]
    return [sys.executable, "-m", *prefix, "--out", str(out), *args]


def _env(env):
    env = dict(env)  # this checkout's package; the demo adds the built service types (demo.ensure_interfaces)
    env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


SHIPPED_WEIGHTS = default_weights_path()
# Mean IoU of the shipped weights' answers against the built-in sequence's exact ground truth (60 frames at 15 Hz).
# Measured 0.77 with the shipped small network, 0.76-0.77 also when the node skips 5 or 35 of the 59 frames (the
# player at 40 or 80 Hz on a loaded 2-core machine); random weights (width 0.25) score 0.26 (the box drifts off the cat
# within a few frames). The 30-frame story of earlier versions moved the cat 5x as far per frame as the default
# 150: a CI machine slow enough to skip 6 frames lost it (0.46).
DEMO_FRAMES = 60
DEMO_IOU_FLOOR = 0.5


@pytest.mark.skipif(not SHIPPED_WEIGHTS.is_file(), reason=f"the shipped weights {SHIPPED_WEIGHTS} are not present")
def test_demo_short_run_writes_video_and_summary(ros_domain_env, tmp_path):
    out = tmp_path / "demo"
    res = subprocess.run(_demo_cmd(out, "--builtin-frames", str(DEMO_FRAMES), "--rate", "15", cli=True),
                         env=_env(ros_domain_env), cwd=neutral_cwd(), capture_output=True, text=True, timeout=150)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    s = summary["summary"]
    assert s["frames_published"] == DEMO_FRAMES
    assert s["frames_answered"] >= 1 and s["frames_answered"] + s["frames_dropped"] == DEMO_FRAMES - 1
    assert s["latency"]["p50_ms"] is not None and 0 < s["latency"]["p50_ms"] < 10_000
    assert s["mean_iou"] is not None and s["mean_iou"] >= DEMO_IOU_FLOOR, s
    assert len(summary["frames"]) == DEMO_FRAMES and summary["frames"][0]["init"]
    # every answer belongs to a published frame (stamps are the images'), and the boxes are finite
    answered = [r for r in summary["frames"] if r["answered"] and not r["init"]]
    assert all(np.isfinite(r["box"]).all() for r in answered)
    video = Path(s["video"])
    assert video.is_file() and video.stat().st_size > 10_000
    cap = cv2.VideoCapture(str(video))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == DEMO_FRAMES
    assert "mean IoU vs ground truth" in res.stdout and "latency stamp->receipt" in res.stdout


def test_demo_node_does_not_come_up(ros_domain_env, tmp_path):
    env = _env(ros_domain_env)
    # the node cannot start (its parameters file does not exist): the demo says so and shows the node's log
    bad = tmp_path / "missing.yaml"
    res = subprocess.run(_demo_cmd(tmp_path / "a", "--builtin-frames", "5", "--params-file", str(bad)), env=env,
                         cwd=neutral_cwd(), capture_output=True, text=True, timeout=120)
    assert res.returncode == 1
    assert "tracker node exited" in res.stderr or "did not serve" in res.stderr, res.stderr[-2000:]


def test_demo_needs_a_box(tmp_path, capsys):
    """A folder without groundtruth.txt and no --init-box: a clear message before anything starts."""
    import argparse

    folder = tmp_path / "frames"
    folder.mkdir()
    cv2.imwrite(str(folder / "00001.jpg"), np.zeros((48, 64, 3), np.uint8))
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    demo.add_demo_parser(sub)
    args = parser.parse_args(["demo", "--frames", str(folder), "--out", str(tmp_path / "c")])
    assert args.func(args) == 1
    assert "--init-box" in capsys.readouterr().err


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"  # a zombie has exited


def test_demo_ctrl_c_stops_children(ros_domain_env, tmp_path, test_weights):
    proc = subprocess.Popen(_demo_cmd(tmp_path / "d", "--builtin-frames", "100", "--rate", "10",
                                      "--weights", str(test_weights)),
                            env=_env(ros_domain_env), cwd=neutral_cwd(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    node_pid = None
    deadline = time.time() + 120
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            m = re.search(r"tracker node \(pid (\d+)\)", line)
            if m:
                node_pid = int(m.group(1))
            if line.startswith("init_target on frame") or time.time() > deadline:
                break
        assert node_pid is not None, "".join(lines)
        stamps, end = tmp_path / "d" / "stamps.csv", time.monotonic() + 60
        while len(read_stamps(stamps)) < 5 and time.monotonic() < end:  # streaming now
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=40)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, "".join(lines) + proc.stderr.read()[-2000:]
    end = time.monotonic() + 10
    while _alive(node_pid) and time.monotonic() < end:
        time.sleep(0.05)
    assert not _alive(node_pid), "the tracker node outlived the demo"
    player_log = (tmp_path / "d" / "player.log").read_text()
    assert "published" in player_log or "publishing" in player_log


def test_load_run_reports_cpu_and_node_stages_per_window(ros_domain_env, tmp_path, test_weights):
    """A real `siam-tracker load` run: every window says how much CPU the node, the player and the client used and
    how long the node's stages took per frame (from its /diagnostics), and the report compares the last window with
    the first steady one."""
    out = tmp_path / "load.json"
    res = subprocess.run([sys.executable, "-m", "siam_tracker_ros.cli", "load", "--builtin-frames", "40",
                          "--targets", "2", "--seconds", "12", "--window", "3", "--rate", "10",
                          "--weights", str(test_weights), "--out", str(tmp_path / "load"), "--json", str(out)],
                         env=_env(ros_domain_env), cwd=neutral_cwd(), capture_output=True, text=True, timeout=240)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    rep = json.loads(out.read_text())
    windows = [w for w in rep["windows"] if w["answered"] > 0]
    assert len(windows) >= 3, rep["windows"]
    for w in windows:
        assert set(w["cpu_cores"]) == {"node", "player", "client", "other"}, w
        assert w["cpu_cores"]["node"] > 0.0 and min(w["cpu_cores"].values()) >= 0.0, w
        assert w["node_ms"]["track"] > 0.0 and w["node_ms"]["decode"] >= 0.0 and w["node_ms"]["publish"] > 0.0, w
    assert rep["attribution"] is not None and "cpu_cores" in rep["attribution"]
    assert "CPU cores node" in res.stdout and "node ms per frame" in res.stdout
