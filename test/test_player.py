"""siam-tracker play: frame sources (no ROS) and a real player process -> a real subscriber process over DDS."""
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ros_helpers import REPO_ROOT, neutral_cwd, ros_domain_env, start_python, stop  # noqa: E402,F401

from siam_tracker_ros.data import fit_size, read_frame  # noqa: E402
from siam_tracker_ros.runs import player  # noqa: E402  (imports no rclpy)


# ------------------------------------------------------------------------------------------------ sources, no ROS

def test_folder_source_order_loop_and_errors(tmp_path):
    for i in (3, 1, 2):
        cv2.imwrite(str(tmp_path / f"{i:05d}.png"), np.full((20, 30, 3), i * 10, np.uint8))
    (tmp_path / "groundtruth.txt").write_text("1,2,3,4\n")
    (tmp_path / "00004.jpg").write_bytes(b"not an image")
    src = player.open_source(frames=tmp_path)
    assert src.length == 4
    values = []
    while (img := src.read()) is not None:
        values.append(int(img[0, 0, 0]))
    assert values == [10, 20, 30]  # file-name order; the unreadable file is skipped
    assert src.rewind() and int(src.read()[0, 0, 0]) == 10
    with pytest.raises(FileNotFoundError):
        player.open_source(frames=tmp_path / "missing")
    with pytest.raises(ValueError):
        player.open_source(frames=tmp_path, builtin=True)
    with pytest.raises(ValueError):
        player.open_source()


def test_video_source(tmp_path):
    path = str(tmp_path / "clip.avi")
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (64, 48))
    assert writer.isOpened()
    for i in range(7):
        writer.write(np.full((48, 64, 3), 30 * i, np.uint8))
    writer.release()
    src = player.open_source(video=path)
    assert src.native_rate == pytest.approx(25.0)
    n = 0
    while (img := src.read()) is not None:
        assert img.shape == (48, 64, 3)
        n += 1
    assert n == 7
    assert src.rewind() and src.read() is not None
    src.close()
    with pytest.raises(FileNotFoundError):
        player.open_source(video=tmp_path / "none.mp4")


def test_size_helpers():
    assert player.parse_size("640x480") == (640, 480)
    with pytest.raises(Exception):
        player.parse_size("640")
    img = np.zeros((100, 200, 3), np.uint8)
    assert fit_size(img, (64, 32)).shape == (32, 64, 3)
    assert fit_size(img, None) is img


# ------------------------------------------------------------------------------------------------ real processes

SUBSCRIBER = r"""
import json, sys, time, threading, rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy, HistoryPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Image
rclpy.init()
node = rclpy.create_node("test_image_subscriber")
got = []
def cb(m):
    import numpy as np, zlib
    data = bytes(m.data)
    got.append({"sec": m.header.stamp.sec, "nanosec": m.header.stamp.nanosec, "frame_id": m.header.frame_id,
                "w": m.width, "h": m.height, "enc": m.encoding, "step": m.step, "crc": zlib.crc32(data),
                "n": len(data)})
qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=50, reliability=ReliabilityPolicy.RELIABLE) \
    if sys.argv[1] == "reliable" else qos_profile_sensor_data
node.create_subscription(Image, "/test/image", cb, qos)
ex = SingleThreadedExecutor(); ex.add_node(node)
threading.Thread(target=ex.spin, daemon=True).start()
print("READY", flush=True)
want, end = int(sys.argv[2]), time.time() + float(sys.argv[3])
while time.time() < end and len(got) < want:
    time.sleep(0.05)
time.sleep(0.3)
print(json.dumps(got), flush=True)
"""


def _play(env, args, timeout=60):
    return subprocess.run([sys.executable, "-m", "siam_tracker_ros.runs.player"] + args, env=env, cwd=neutral_cwd(),
                          capture_output=True, text=True, timeout=timeout)


def _source_env(env):
    """Children import this checkout's package (the player needs no generated interfaces)."""
    env = dict(env)
    env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _subscribe(env, qos, want, seconds):
    sub = start_python(SUBSCRIBER.replace("sys.argv[1]", repr(qos)).replace("sys.argv[2]", repr(str(want)))
                       .replace("sys.argv[3]", repr(str(seconds))), env)
    assert sub.stdout.readline().strip() == "READY", sub.stderr.read()
    return sub


def test_player_publishes_folder_frames_with_real_stamps(ros_domain_env, tmp_path):
    from siam_tracker_ros import synthetic

    folder = synthetic.write_sequence(tmp_path / "seq", n_frames=12, size=(320, 240))
    env = _source_env(ros_domain_env)
    sub = _subscribe(env, "reliable", 12, 45)
    stamps_csv = tmp_path / "stamps.csv"
    try:
        res = _play(env, ["--frames", str(folder), "--topic", "/test/image", "--rate", "30", "--reliable",
                          "--wait-subscribers", "1", "--stamps-out", str(stamps_csv),
                          "--ros-args", "-p", "frame_id:=test_cam"])
        assert res.returncode == 0, res.stdout + res.stderr
        out, err = sub.communicate(timeout=60)
    finally:
        stop(sub)
    got = json.loads(out.strip().splitlines()[-1])
    assert len(got) == 12, err
    stamps = [g["sec"] * 10**9 + g["nanosec"] for g in got]
    assert all(b > a for a, b in zip(stamps, stamps[1:])), "stamps must increase"
    gaps = np.diff(stamps) / 1e9
    assert 0.02 < np.median(gaps) < 0.06, f"about 30 Hz expected, median gap {np.median(gaps):.3f} s"
    rows = [line.split(",") for line in stamps_csv.read_text().splitlines()[1:]]
    assert [int(r[2]) * 10**9 + int(r[3]) for r in rows] == stamps  # the CSV records exactly what was published
    assert [int(r[1]) for r in rows] == list(range(12))
    first = read_frame(folder / "00001.jpg")
    import zlib

    assert got[0]["crc"] == zlib.crc32(first.tobytes())  # bgr8 pixels unchanged
    for g in got:
        assert (g["w"], g["h"], g["enc"], g["step"], g["frame_id"]) == (320, 240, "bgr8", 960, "test_cam")


def test_player_builtin_sensor_qos_paused_and_count(ros_domain_env, tmp_path):
    """Default (sensor-data) QoS to a best-effort subscriber; --hold-first publishes one frame and holds it; --count."""
    env = _source_env(ros_domain_env)
    sub = _subscribe(env, "sensor", 10, 45)
    try:
        res = _play(env, ["--builtin", "--builtin-frames", "10", "--topic", "/test/image", "--rate", "50",
                          "--wait-subscribers", "1", "--count", "10", "--size", "320x240"])
        assert res.returncode == 0, res.stdout + res.stderr
        out, _ = sub.communicate(timeout=60)
    finally:
        stop(sub)
    got = json.loads(out.strip().splitlines()[-1])
    # best effort over shared memory on one machine: nothing should be lost, allow one frame under heavy load
    assert len(got) >= 9
    assert all(g["w"] == 320 and g["h"] == 240 for g in got)

    # hold-first: one frame, then only that frame again (same stamp) while paused (--duration counts playing time
    # only); Ctrl-C ends it
    sub = _subscribe(env, "reliable", 4, 7)
    play = subprocess.Popen([sys.executable, "-m", "siam_tracker_ros.runs.player", "--builtin", "--builtin-frames",
                             "5", "--topic", "/test/image", "--reliable", "--wait-subscribers", "1", "--hold-first",
                             "--duration", "1"], env=env, cwd=neutral_cwd(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = sub.communicate(timeout=60)
        assert play.poll() is None, "the held player must still be running"
    finally:
        stop(sub)
        play_out, _ = stop(play)
    held = json.loads(out.strip().splitlines()[-1])
    assert len(held) >= 2, "the held frame is sent again for late subscribers"
    assert len({(g["sec"], g["nanosec"], g["crc"]) for g in held}) == 1, held
    assert play.returncode == 0 and "holding" in play_out, play_out


@pytest.mark.parametrize("delays", [(0.0,), (0.01, 0.01), (0.05,), (0.2, 0.2), (0.5,)], ids=str)
def test_player_repeated_ctrl_c_exits_cleanly(ros_domain_env, tmp_path, delays):
    """Ctrl-C to the player's process group while it publishes, then once or twice more after `delays` (during its
    shutdown or the interpreter's exit): exit code 0, no traceback."""
    from ros_helpers import sigint_process_group

    log = tmp_path / "player.log"
    play = subprocess.Popen([sys.executable, "-m", "siam_tracker_ros.runs.player", "--builtin", "--builtin-frames",
                             "5", "--topic", "/test/image", "--loop", "--rate", "30", "--size", "320x240"],
                            env=_source_env(ros_domain_env), cwd=neutral_cwd(), stdout=open(log, "w"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while "publishing" not in log.read_text() and play.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "publishing" in log.read_text(), log.read_text()
        sigint_process_group(play, delays)
        code = play.wait(timeout=30)
    finally:
        if play.poll() is None:
            play.kill()
            play.wait()
    text = log.read_text()
    assert code == 0, text
    assert "Traceback" not in text and "KeyboardInterrupt" not in text, text


def test_player_errors_without_ros(tmp_path, capsys):
    import argparse

    parser = argparse.ArgumentParser()
    player.add_arguments(parser)
    assert player.run_play(parser.parse_args(["--frames", str(tmp_path / "no")])) == 2
    assert "does not exist" in capsys.readouterr().err
    assert player.run_play(parser.parse_args(["--frames", str(tmp_path), "--builtin"])) == 2


def test_shared_memory_segment_is_sized_to_what_dev_shm_has_free():
    from siam_tracker_ros.runs.fastdds import MIN_SEGMENT_MESSAGES, shm_segment_plan

    vga, mib = 640 * 480 * 4, 2 ** 20
    segment, message = shm_segment_plan(vga, None)  # free space unknown: room for 16 images
    assert message >= 2 * vga and segment >= 16 * message
    segment, message = shm_segment_plan(vga, 64 * mib)  # a container's default /dev/shm
    assert segment <= 32 * mib and segment >= MIN_SEGMENT_MESSAGES * message >= MIN_SEGMENT_MESSAGES * vga
    assert shm_segment_plan(3840 * 2160 * 4, 64 * mib) is None  # 4K images do not fit: no profile at all


DRIVER_IN_SMALL_SHM = r"""
import json, os, subprocess, sys, time
size = sys.argv[1]
player = subprocess.Popen([sys.executable, "-m", "siam_tracker_ros.runs.player", "--builtin", "--builtin-frames",
                           "10", "--size", size, "--topic", "/test/image", "--rate", "10", "--loop", "--duration",
                           "30"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
largest, deadline = 0, time.monotonic() + 20
while time.monotonic() < deadline and player.poll() is None:
    for name in os.listdir("/dev/shm"):
        if name.startswith("fastdds_"):
            largest = max(largest, os.path.getsize(os.path.join("/dev/shm", name)))
    if largest > 8 << 20:
        break
    time.sleep(0.1)
player.send_signal(2)
log = player.communicate(timeout=30)[0]
print(json.dumps({"largest": largest, "log": log}))
"""


@pytest.mark.parametrize("size, fits", [("640x480", True), ("3840x2160", False)])
def test_player_images_take_shared_memory_in_a_container_sized_dev_shm(ros_domain_env, size, fits):
    """Inside a 64 MiB /dev/shm (a container's default) the player's Fast DDS participant maps a shared-memory
    segment for its VGA images; 4K images do not fit and the player says so and what to do. Fast DDS cannot map a
    segment larger than what is free, and then sends every image over UDP."""
    unshare = shutil.which("unshare")
    if os.geteuid() != 0 or not unshare:
        pytest.skip("needs root and unshare(1) to give the player its own 64 MiB /dev/shm")
    mount = "mount -t tmpfs -o size=64m tmpfs /dev/shm"
    probe = subprocess.run([unshare, "-m", "sh", "-c", mount], capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:  # a container without the capability to make mount namespaces
        pytest.skip(f"cannot mount a tmpfs on /dev/shm in a new mount namespace here: {probe.stderr.strip()[-300:]}")
    env = _source_env(ros_domain_env)
    res = subprocess.run([unshare, "-m", "sh", "-c", f"{mount} && exec {sys.executable} -c \"$0\" {size}",
                          DRIVER_IN_SMALL_SHM], env=env, cwd=neutral_cwd(), capture_output=True, text=True, timeout=90)
    assert res.returncode == 0, res.stdout + res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    if fits:
        assert out["largest"] > 8 << 20, out  # a segment for several images (Fast DDS's own is 512 KiB)
        assert "shared memory free" not in out["log"], out["log"]
    else:
        assert out["largest"] < 8 << 20, out
        assert "shared memory free in /dev/shm" in out["log"] and "--shm-size" in out["log"], out["log"]
