"""tracker_node under hostile input and load, over real DDS (README "Reliability" matrix: one test per row).

A node process is shared by the tests of this module (they run in file order and leave no target behind); the start-up
failures and the warm-up each start a node of their own. The fuzz test (500 random Image messages) comes last.
Frames come from the built-in sequence (node_helpers.built_in_frames); the weights are node_helpers' small random
network (the tracker's output is compared with the offline tracker, not with the ground truth).
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from node_helpers import (NUM_FRAMES, assert_alive, iou, log_lines, node_config, sequence,  # noqa: F401
                          shared_node_args, stop_all_targets, tracker_node, weights)
from ros_helpers import ros_env


# ---------------------------------------------------------------------------------------------------- helpers
def proc_memory(pid: int) -> dict:
    """VmRSS and VmHWM (peak RSS) of a process, in bytes."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(rest.split()[0]) * 1024
    return out


@pytest.fixture(scope="module")
def rel(sequence, weights, tmp_path_factory):  # noqa: F811
    """(client, node process, log path): one tracker node for the module, its frame buffer 20 s deep."""
    with tracker_node(tmp_path_factory.mktemp("node") / "tracker_node.log", *shared_node_args(weights),
                      "-p", "frame_buffer_seconds:=20.0") as node:
        yield node


@pytest.fixture(autouse=True)
def _no_target_left(request):
    yield
    stop_all_targets(request, "rel")


def refused(client, kind: str) -> int:
    return int(client.latest_diag(timeout=5)[f"refused_{kind}"])


def wait_refused(client, kind: str, above: int, what: str) -> dict:
    return client.wait_for(lambda: (lambda d: int(d[f"refused_{kind}"]) > above and d)(
        client.latest_diag(timeout=5)), 20, what)


def catch_up_setup(client, frames, gt, n: int = 25):
    """Track the default target over n frames; the stamp of the first of them, which an init on it must catch up
    from (the node tracked the others past it). Each frame waits for its detections: image QoS is best effort, and
    a frame dropped on a loaded machine would shorten the catch-up (or, the first one, make its stamp unknown)."""
    stamp = client.publish(frames[0])
    assert client.init(gt[0], stamp=stamp).success
    stamps = [client.publish_and_track(frames[1 + i % (NUM_FRAMES - 1)])[0] for i in range(n)]
    return stamps[0]


def init_async(client, box, stamp, target_id):
    from siam_tracker_ros.ros.messages import box_to_bbox

    req = client.InitTarget.Request()
    req.header.stamp = stamp
    req.target_id = target_id
    req.bbox = box_to_bbox(box)
    return client.init_client.call_async(req)


def stop_async(client, target_id):
    return client.stop_client.call_async(client.StopTarget.Request(target_id=target_id))


def bbox(cx, cy, sx, sy):
    from vision_msgs.msg import BoundingBox2D

    b = BoundingBox2D()
    b.center.position.x, b.center.position.y, b.size_x, b.size_y = float(cx), float(cy), float(sx), float(sy)
    return b


# ---------------------------------------------------------------------------------------------------- images
def test_huge_declared_step_is_refused_without_allocating(rel, sequence):  # noqa: F811
    """Image height 1, 24 bytes of data, step 3e8 (and 2^32 - 1): refused and counted; the node's peak memory does
    not grow by the declared size (it used to pad the data to step x height: +286 MB)."""
    from sensor_msgs.msg import Image

    client, proc, _ = rel
    frames, gt = sequence
    stamp = client.publish(frames[0])
    assert client.init(gt[0], stamp=stamp).success  # a tracked target: every accepted frame is decoded
    before = proc_memory(proc.pid)["VmHWM"]
    for step in (300_000_000, 2 ** 32 - 1):
        n0 = refused(client, "image_invalid")
        msg = Image(height=1, width=8, encoding="bgr8", step=step, data=bytes(24))
        msg.header.stamp = client.stamp()
        client.publish_raw(msg)
        diag = wait_refused(client, "image_invalid", n0, f"the step {step} image refused")
        assert "row padding" in diag["last_conversion_error"], diag["last_conversion_error"]
    client.publish_and_track(frames[1])
    assert proc_memory(proc.pid)["VmHWM"] - before < 100e6
    assert_alive(rel)


def test_images_over_the_pixel_and_byte_limits(rel, sequence):  # noqa: F811
    client, _, _ = rel
    frames, gt = sequence
    h, w = frames[0].shape[:2]
    try:
        assert client.set_param("max_image_pixels", h * w - 1).successful
        n0 = refused(client, "image_too_large")
        client.publish(frames[0])
        diag = wait_refused(client, "image_too_large", n0, "the image over max_image_pixels refused")
        assert "max_image_pixels" in diag["last_conversion_error"]
        assert client.set_param("max_image_pixels", h * w).successful
        assert client.set_param("max_image_bytes", h * w * 3 - 1).successful
        client.publish(frames[0])
        diag = wait_refused(client, "image_too_large", n0 + 1, "the image over max_image_bytes refused")
        assert "max_image_bytes" in diag["last_conversion_error"]
    finally:
        assert client.set_param("max_image_pixels", 33177600).successful
        assert client.set_param("max_image_bytes", 268435456).successful
    stamp = client.publish(frames[0])
    assert client.init(gt[0], stamp=stamp).success
    client.publish_and_track(frames[1])


def test_compressed_image_declaring_a_huge_size_is_refused_before_decoding(rel, sequence):  # noqa: F811
    """A small PNG whose header claims 100000 x 100000 pixels (use_compressed)."""
    import cv2

    client, _, _ = rel
    frames, _ = sequence
    png = bytearray(cv2.imencode(".png", frames[0][:64, :64])[1].tobytes())
    png[16:24] = (100000).to_bytes(4, "big") + (100000).to_bytes(4, "big")
    n0 = refused(client, "image_too_large")
    client.publish_compressed(frames[0], fmt="png", data=bytes(png))
    diag = wait_refused(client, "image_too_large", n0, "the PNG bomb refused")
    assert "declares 100000x100000" in diag["last_conversion_error"]
    assert_alive(rel)


def test_ring_buffer_is_bounded_in_bytes(rel, sequence):  # noqa: F811
    client, _, _ = rel
    frames, gt = sequence
    frame_bytes = frames[0].size  # bgr8
    limit = 1024 * 1024
    assert frame_bytes < limit < 2 * frame_bytes
    try:
        assert client.set_param("frame_buffer_max_bytes", limit).successful
        stamps = [client.publish(frames[i]) for i in range(6)]
        time.sleep(1.0)
        diag = client.wait_for(lambda: (lambda d: int(d["frame_buffer_frames"]) == 1 and d)(
            client.latest_diag(timeout=5)), 15, "a one-frame buffer")
        assert int(diag["frame_buffer_bytes"]) <= limit
        res = client.init(gt[0], stamp=stamps[0], retry_unknown_stamp=False)
        assert not res.success and res.reason == res.REASON_UNKNOWN_STAMP and "no frame with stamp" in res.message
        assert client.init(gt[5], stamp=stamps[5]).success  # the newest frame is always kept
    finally:
        assert client.set_param("frame_buffer_max_bytes", 256 * 1024 * 1024).successful


# ---------------------------------------------------------------------------------------------------- requests
def test_box_far_outside_the_image_is_refused(rel, sequence):  # noqa: F811
    client, _, _ = rel
    frames, gt = sequence
    stamp = client.publish(frames[0])
    assert client.init(gt[0], stamp=stamp).success
    n0 = refused(client, "box")
    for box in [(-5e307, 100.0, 1e308, 20.0), (100.0, 100.0, 1e7, 20.0)]:
        x, y, w, h = box
        res = client.init(bbox=bbox(x + w / 2, y + h / 2, w, h), stamp=stamp, target_id="huge",
                          retry_unknown_stamp=False)
        assert not res.success and res.reason == res.REASON_BAD_BOX and "outside" in res.message, res.message
    wait_refused(client, "box", n0 + 1, "two refused boxes counted")
    stamp, arr = client.publish_and_track(frames[1])
    assert [d.id for d in arr.detections] == ["default"]
    # a box partly off the image (within box_margin) is still fine
    h, w = frames[0].shape[:2]
    assert client.init([w - 30.0, 40.0, 60.0, 40.0], stamp=stamp, target_id="edge").success


def test_target_id_length_and_characters(rel, sequence):  # noqa: F811
    client, _, _ = rel
    frames, gt = sequence
    stamp = client.publish(frames[0])
    n0 = refused(client, "target_id")
    res = client.init(gt[0], stamp=stamp, target_id="x" * 1000)
    assert not res.success and res.reason == res.REASON_BAD_ID and "too long" in res.message and res.target_id == ""
    res = client.init(gt[0], stamp=stamp, target_id="bad id\n[ERROR] forged log line")
    assert not res.success and res.reason == res.REASON_BAD_ID and "characters" in res.message
    assert res.target_id == ""
    res = client.stop("y" * 1000)
    assert not res.success and res.reason == res.REASON_BAD_ID and "too long" in res.message
    wait_refused(client, "target_id", n0 + 2, "three refused ids counted")
    res = client.init(gt[0], stamp=stamp, target_id="cam-1/ball.2")
    assert res.success and res.target_id == "cam-1/ball.2"
    client.publish_and_track(frames[1], ids=["cam-1/ball.2"])


def test_full_request_queue_answers_busy_at_once(rel, sequence):  # noqa: F811
    """max_queued_requests = 2 while inits catch up over buffered frames: every request is answered; the ones that
    find the queue full with success=false ("busy") without waiting for the tracker. A stop of an id whose init is
    pending takes a place and stops the target once installed; stops of ids neither tracked nor pending are answered
    at once "no target" and take no place (they used to fill the queue and turn valid inits away as "busy")."""
    client, _, _ = rel
    frames, gt = sequence
    early = catch_up_setup(client, frames, gt)
    try:
        assert client.set_param("max_queued_requests", 2).successful
        n0 = refused(client, "busy")
        # "first" runs (a catch-up), "second" waits: the first place; the stop of "second" the other. The services'
        # callbacks run on a thread pool, so requests sent together may be taken in any order: 0.2 s apart (the
        # catch-ups take seconds), or an init sent with the stop can take the second place first (seen on CI).
        first = init_async(client, gt[0], early, "first")
        time.sleep(0.2)
        second = init_async(client, gt[0], early, "second")
        time.sleep(0.2)
        stop_second = stop_async(client, "second")  # pending: the second place
        time.sleep(0.2)
        inits = [init_async(client, gt[0], early, f"q{k}") for k in range(10)]
        ghosts = [stop_async(client, f"ghost{k}") for k in range(20)]
        answered = {}  # future -> seconds after the last request went out
        t0 = time.monotonic()
        for f in [first, second] + inits + ghosts:
            f.add_done_callback(lambda done, t0=t0: answered.setdefault(done, time.monotonic() - t0))
        # (rclpy may run done-callbacks as executor tasks, a moment after done(): wait for the times themselves.)
        client.wait_for(lambda: all(f in answered for f in inits + ghosts), 60, "30 answers")
        client.wait_for(lambda: first in answered and second in answered and stop_second.done(), 60,
                        "the queued requests")
        assert first.result().success and second.result().success, (first.result().message,
                                                                     second.result().message)
        # "At once": all 30 answered before the job ahead of them in the queue ("second", whose catch-up of 25 frames
        # starts when first's ends) was done: none of them waited for the tracker.
        last_answer = max(answered[f] for f in inits + ghosts)
        assert last_answer < answered[second], (last_answer, answered[first], answered[second])
        results = [f.result() for f in inits]
        busy = [r for r in results if not r.success and r.reason == r.REASON_BUSY]
        assert len(busy) == len(inits), [r.message for r in results]  # both places taken before they came
        assert all(r.message.startswith("busy") for r in busy), [r.message for r in busy]
        answers = [f.result() for f in ghosts]
        assert all(not r.success and r.reason == r.REASON_NOT_TRACKED and r.message.startswith(f"no target 'ghost{k}'")
                   for k, r in enumerate(answers)), [r.message for r in answers]
        stopped = stop_second.result()
        assert stopped.success and stopped.reason == stopped.REASON_OK and stopped.message == "stopped second", \
            stopped.message
        wait_refused(client, "busy", n0 + len(busy) - 1, "busy answers counted")
        assert refused(client, "busy") == n0 + len(busy)  # the stops were not
    finally:
        assert client.set_param("max_queued_requests", 10).successful
    assert_alive(rel)


def test_burst_of_300_calls_from_one_client_is_all_answered(rel, sequence):  # noqa: F811
    """300 init_target calls sent at once by one client (three times the services' former queue depth of 100, which
    lost the oldest of a burst for good): every call is answered, "busy" and "superseded" being answers."""
    client, _, _ = rel
    frames, gt = sequence
    stamp = client.publish(frames[0])
    assert client.init(gt[0], stamp=stamp).success  # the frame is in the node's buffer
    n = 300
    futures = [init_async(client, gt[0], stamp, f"burst{k % 3}") for k in range(n)]
    t0 = time.monotonic()
    try:
        client.wait_for(lambda: all(f.done() for f in futures), 180, f"{n} answers")
    except AssertionError as err:
        raise AssertionError(f"{err}: {sum(f.done() for f in futures)} answered") from None
    elapsed = time.monotonic() - t0
    results = [f.result() for f in futures]
    kinds = {"ok": 0, "busy": 0, "superseded": 0}
    for r in results:
        if r.reason not in kinds or r.success != (r.reason == r.REASON_OK):
            raise AssertionError(f"unexpected answer: {r.success} {r.reason}: {r.message}")
        kinds[r.reason] += 1
    print(f"{n} calls answered in {elapsed:.1f} s: {kinds}")
    assert kinds["ok"] >= 1 and sum(kinds.values()) == n
    assert_alive(rel)


def test_timed_out_init_does_not_install_its_target(rel, sequence):  # noqa: F811
    client, _, _ = rel
    frames, gt = sequence
    early = catch_up_setup(client, frames, gt, n=30)
    try:
        assert client.set_param("init_timeout", 0.2).successful
        res = client.init(gt[0], stamp=early, target_id="late", retry_unknown_stamp=False)
        assert not res.success and res.reason == res.REASON_TIMED_OUT, res.message
        assert "not installed" in res.message, res.message
    finally:
        assert client.set_param("init_timeout", 30.0).successful
    # The worker finishes (or abandons) the catch-up meanwhile: "late" never shows up.
    deadline = time.monotonic() + 6.0
    i = 0
    while time.monotonic() < deadline:
        _, arr = client.publish_and_track(frames[i % NUM_FRAMES])
        assert [d.id for d in arr.detections] == ["default"]
        i += 1
    assert "late" not in client.latest_diag()["_targets"]
    assert int(client.latest_diag()["refused_timeout"]) >= 1


def test_reinit_supersedes_the_pending_catch_up(rel, sequence):  # noqa: F811
    client, _, _ = rel
    frames, gt = sequence
    early = catch_up_setup(client, frames, gt)
    n0 = refused(client, "superseded")
    # "Newer" is the order the node takes the requests in: sent in one burst, the executor's threads may start their
    # coroutines in any order, so the three go out 0.2 s apart (a loaded machine can hold one back for tens of ms; the
    # first one's catch-up takes seconds).
    futures = []
    for _ in range(3):
        futures.append(init_async(client, gt[0], early, "again"))
        time.sleep(0.2)
    client.wait_for(lambda: all(f.done() for f in futures), 60, "3 answers")
    results = [f.result() for f in futures]
    assert all(not r.success and r.reason == r.REASON_SUPERSEDED and "newer init_target for 'again'" in r.message
               for r in results[:2]), [r.message for r in results]
    assert results[2].success, results[2].message
    wait_refused(client, "superseded", n0 + 1, "two superseded inits counted")
    client.publish_and_track(frames[3], ids=["again", "default"])


def test_max_targets_cannot_rise_above_the_warmed_up_value(rel):
    client, _, _ = rel
    res = client.set_param("max_targets", 5)
    assert not res.successful and "start-up value 4" in res.reason
    assert client.set_param("max_targets", 3).successful
    assert client.set_param("max_targets", 4).successful


# ---------------------------------------------------------------------------------------------------- refusal log
def test_nan_box_refusal_is_logged_once(rel, sequence):  # noqa: F811
    client, _, log = rel
    frames, _ = sequence
    stamp = client.publish(frames[0])
    res = client.init(bbox=bbox(50, 50, float("nan"), 20), stamp=stamp, target_id="nan_size_once")
    assert not res.success and res.reason == res.REASON_BAD_BOX and "NaN" in res.message
    lines = log_lines(log, "nan_size_once")
    assert len(lines) == 1 and "refused (box)" in lines[0], lines


def test_unknown_stamp_refusal_is_logged_once(rel, sequence):  # noqa: F811
    from builtin_interfaces.msg import Time

    client, _, log = rel
    frames, gt = sequence
    stamp = client.publish(frames[0])
    res = client.init(gt[0], stamp=Time(sec=stamp.sec - 100, nanosec=stamp.nanosec), target_id="stale_stamp_once",
                      retry_unknown_stamp=False)
    assert not res.success and "no frame with stamp" in res.message and "older than" in res.message
    lines = log_lines(log, "stale_stamp_once")
    assert len(lines) == 1 and "refused (frame)" in lines[0], lines


def test_too_long_id_refusal_is_logged_right_after_another_refusal(rel, sequence):  # noqa: F811
    """Refusals of different kinds in a row each get their line (the log's flood limit is per kind)."""
    client, _, log = rel
    frames, gt = sequence
    stamp = client.publish(frames[0])
    assert not client.init(bbox=bbox(50, 50, 20, float("inf")), stamp=stamp, target_id="inf_before_id").success
    res = client.init(gt[0], stamp=stamp, target_id="z" * 777)
    assert not res.success and "too long" in res.message
    lines = log_lines(log, "target_id of 777 characters")
    assert len(lines) == 1 and "refused (target_id)" in lines[0] and "z" * 33 not in lines[0], lines
    assert len(log_lines(log, "inf_before_id", settle=0)) == 1


# ---------------------------------------------------------------------------------------------------- fuzz
ENCODINGS = ["bgr8", "rgb8", "bgra8", "rgba8", "mono8", "mono16", "bgr16", "rgba16", "yuv422", "yuv422_yuy2",
             "bayer_rggb8", "8UC1", "16UC1", "32FC1", "", "jpeg", "bgr8" * 40]
BPP = {"bgr8": 3, "rgb8": 3, "bgra8": 4, "rgba8": 4, "mono8": 1, "mono16": 2, "bgr16": 6, "rgba16": 8, "yuv422": 2,
       "yuv422_yuy2": 2, "bayer_rggb8": 1, "8UC1": 1, "16UC1": 2}


def random_image(rng, stamp):
    """A random sensor_msgs/Image: plausible ones (some valid), and ones declaring huge sizes with little data."""
    from sensor_msgs.msg import Image

    msg = Image()
    msg.header.stamp = stamp
    msg.header.frame_id = "fuzz"
    msg.encoding = str(rng.choice(ENCODINGS))
    msg.is_bigendian = bool(rng.integers(0, 2))
    kind = int(rng.choice(4, p=[0.4, 0.3, 0.05, 0.25]))
    big = [0, 1, 2 ** 16, 2 ** 31 - 1, 2 ** 32 - 1, 300_000_000]
    if kind == 0:  # consistent layout: valid when the encoding is known
        w, h = int(rng.integers(1, 400)) * 2, int(rng.integers(1, 400))
        row = w * BPP.get(msg.encoding, 3)
        step = row + int(rng.choice([0, 0, 1, 16, 4096, 5000]))
        n = step * (h - 1) + row - int(rng.choice([0, 0, 0, 1, row]))
    elif kind == 1:  # huge declared width / height / step, little data
        w, h, step = (int(rng.choice(big)) if rng.random() < 0.5 else int(rng.integers(0, 5000)) for _ in range(3))
        n = int(rng.integers(0, 50_000))
    elif kind == 2:  # the case: 1 row, 24 bytes, a 300 MB step
        w, h, step, n = 8, 1, int(rng.choice([300_000_000, 2 ** 32 - 1])), 24
        msg.encoding = "bgr8"
    else:  # random everything
        w, h, step = (int(rng.integers(0, 2 ** 32)) for _ in range(3))
        n = int(rng.integers(0, 200_000))
    msg.width, msg.height, msg.step = w, h, step
    msg.data = rng.integers(0, 256, max(0, min(n, 2_000_000)), dtype=np.uint8).tobytes()
    return msg, kind


def test_fuzz_500_random_images_then_tracks_a_sequence(rel, sequence, weights):  # noqa: F811
    """500 random Image messages (sizes, encodings, steps, data lengths, huge declared sizes) while a target is
    tracked; the node stays up, its memory stays bounded, and it then tracks the sequence as the offline
    tracker does."""
    from siam_tracker_ros.ros import messages
    from siam_tracker_ros.tracking import SiamTracker

    client, proc, _ = rel
    frames, gt = sequence
    stamp = client.publish(frames[0])
    assert client.init(gt[0], stamp=stamp).success
    client.publish_and_track(frames[1])
    # The ring buffer keeps what it is allowed to (here 32 MiB of the accepted frames); the rest must not grow.
    assert client.set_param("frame_buffer_max_bytes", 32 * 1024 * 1024).successful
    mem0 = proc_memory(proc.pid)
    diag0 = client.latest_diag()
    rng = np.random.default_rng(2026)
    for i in range(500):
        msg, kind = random_image(rng, client.stamp())
        client.publish_raw(msg)
        # Paced near the node's rate, so most messages get past the mailbox to the worker; after the case
        # (a 24-byte image declaring a 300 MB step) the worker gets time to convert it, as it would if it were not
        # refused.
        time.sleep(0.3 if kind == 2 else 0.03)
        if i % 100 == 99:
            assert_alive(rel)
    time.sleep(2.0)
    assert_alive(rel)
    diag = client.latest_diag()
    refusals = sum(int(diag[k]) - int(diag0[k]) for k in diag if k.startswith("refused_image"))
    assert refusals >= 100, {k: v for k, v in diag.items() if k.startswith("refused")}
    assert int(diag["conversion_errors"]) - int(diag0["conversion_errors"]) == refusals
    mem1 = proc_memory(proc.pid)
    print(f"node memory before / after the fuzz: RSS {mem0['VmRSS'] / 1e6:.0f} / {mem1['VmRSS'] / 1e6:.0f} MB, "
          f"peak {mem0['VmHWM'] / 1e6:.0f} / {mem1['VmHWM'] / 1e6:.0f} MB; {refusals} images refused")
    assert mem1["VmHWM"] - mem0["VmHWM"] < 150e6, (mem0, mem1)
    assert mem1["VmRSS"] - mem0["VmRSS"] < 120e6, (mem0, mem1)
    assert int(diag["frame_buffer_bytes"]) <= 32 * 1024 * 1024
    assert client.set_param("frame_buffer_max_bytes", 256 * 1024 * 1024).successful

    # ... and it still tracks the sequence like the offline tracker.
    assert client.stop("").success
    stamp = client.publish(frames[0])
    assert client.init(gt[0], stamp=stamp).success
    boxes = []
    for f in frames[1:12]:
        _, arr = client.publish_and_track(f)
        boxes.append(messages.bbox_to_box(arr.detections[0].bbox))
    tracker = SiamTracker.from_config(node_config(), weights)
    tracker.init(frames[0], gt[0])
    offline = [tracker.update(f)["default"].box for f in frames[1:12]]
    ious = [iou(a, b) for a, b in zip(boxes, offline)]
    assert np.mean(ious) >= 0.98, ious
    assert client.stop("").success


# ---------------------------------------------------------------------------------------------------- start-up
def _tiny_weights_asking_for_a_huge_model(path: Path) -> Path:
    import torch

    from siam_tracker_ros.model.weights import FORMAT_NAME, FORMAT_VERSION

    torch.save({"format": FORMAT_NAME, "version": FORMAT_VERSION, "state_dict": {}, "metadata": {},
                "model_config": {"width": 0.25, "fused_channels": 10 ** 6}}, path)
    return path


@pytest.mark.parametrize("case", ["config_test_sizes", "config_scale_step_inf", "param_out_of_range",
                                  "weights_fused_channels"])
def test_bad_configuration_or_weights_leave_the_node_up_with_an_error(case, sequence, weights, tmp_path):  # noqa: F811
    """Each start-up error becomes the ERROR status and success=false answers; the node keeps running."""
    args, expect = ["-p", f"weights:={weights}"], ""
    if case.startswith("config_"):
        cfg = tmp_path / "bad.yaml"
        tracking = {"test_sizes": [1, 2]} if case == "config_test_sizes" else {"scale_step": float("inf")}
        cfg.write_text(yaml.safe_dump({"tracking": tracking}))
        args += ["-p", f"config_file:={cfg}"]
        expect = "tracking.test_sizes" if case == "config_test_sizes" else "tracking.scale_step"
    elif case == "param_out_of_range":
        args += ["-p", "max_targets:=1000"]
        expect = "max_targets"
    else:
        args = ["-p", f"weights:={_tiny_weights_asking_for_a_huge_model(tmp_path / 'tiny.pt')}"]
        expect = "model.fused_channels"
    with tracker_node(tmp_path / "node.log", "-p", "backend:=torch", "-p", "device:=cpu", *args) as (client, proc, _):
        frames, gt = sequence
        stamp = client.publish(frames[0])
        res = client.init(gt[0], stamp=stamp)
        assert not res.success and expect in res.message, res.message
        diag = client.latest_diag(timeout=10)
        assert diag["_level"] == 2 and expect in diag["_message"], diag["_message"]
        assert proc.poll() is None


def test_every_graph_is_built_at_start_up(sequence, weights, tmp_path):  # noqa: F811
    """With ONNX Runtime (graphs exported on first use), the node exports the lost-mode search graph and runs every
    batch size before its first request: the first loss exports nothing in the middle of tracking."""
    with tracker_node(tmp_path / "node.log", "-p", f"weights:={weights}", "-p", "backend:=onnxruntime",
                      "-p", "device:=cpu", "-p", "max_targets:=2",
                      env=ros_env(XDG_CACHE_HOME=str(tmp_path / "cache"))) as (client, _, log):
        assert client.latest_diag()["_level"] == 0
        graphs = sorted(p.name for p in (tmp_path / "cache").rglob("*.onnx"))
        assert graphs == ["search_x255_k6.onnx", "search_x383_k6.onnx", "template_z127.onnx"], graphs
        assert "warmed up" in log.read_text() and "(up to 2 targets)" in log.read_text()
