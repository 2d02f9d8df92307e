"""The built-in sequence (siam_tracker_ros.synthetic): deterministic, sane boxes, the object really is at its box."""
import time

import cv2
import numpy as np
import pytest

pytest.importorskip("skimage", reason="the built-in sequence renders scikit-image's sample photographs")

from siam_tracker_ros import synthetic  # noqa: E402


@pytest.fixture(scope="module")
def sequence():
    start = time.perf_counter()
    frames, boxes, info = synthetic.make_sequence(return_info=True)
    return frames, boxes, info, time.perf_counter() - start


def test_shape_and_speed(sequence):
    frames, boxes, info, seconds = sequence
    assert len(frames) == synthetic.DEFAULT_FRAMES == 150
    assert boxes.shape == (150, 4)
    for f in frames:
        assert f.shape == (480, 640, 3) and f.dtype == np.uint8
    assert seconds < 10.0, f"rendering took {seconds:.1f} s"  # ~1-2 s on a loaded 2-core machine


def test_deterministic():
    frames, boxes = synthetic.make_sequence(n_frames=40)
    frames2, boxes2 = synthetic.make_sequence(n_frames=40)
    np.testing.assert_array_equal(boxes, boxes2)
    for a, b in zip(frames, frames2):
        np.testing.assert_array_equal(a, b)
    other, _ = synthetic.make_sequence(n_frames=40, seed=1)
    assert not np.array_equal(other[10], frames[10])  # the seed changes camera path and noise


def test_boxes_inside_frame_and_story(sequence):
    frames, boxes, info, _ = sequence
    visible = np.all(np.isfinite(boxes), axis=1)
    assert visible.all()  # the object never leaves the image completely
    x, y, w, h = boxes.T
    assert (x >= 0).all() and (y >= 0).all() and (x + w <= 640).all() and (y + h <= 480).all()
    assert (w >= 20).all() and (h >= 20).all()
    # smooth motion: no box centre jumps more than 20 px between frames
    centres = boxes[:, :2] + boxes[:, 2:] / 2
    assert np.linalg.norm(np.diff(centres, axis=0), axis=1).max() < 20
    # the story: partial occlusion for a stretch, partly out of the image for a few frames, scale change, rotation
    assert 0.3 < info["occlusion"].max() < 0.8 and (info["occlusion"] > 0.2).sum() >= 10
    assert info["in_frame"].min() < 0.7 and (info["in_frame"] < 0.99).sum() >= 5
    assert info["scale"].max() / info["scale"].min() > 1.4
    assert np.abs(info["angle"]).max() > 5


def test_object_pixels_are_at_the_box(sequence):
    """Template-match the object's appearance from frame 0 in later clean frames: the peak is at the box centre."""
    frames, boxes, info, _ = sequence
    x, y, w, h = boxes[0]
    inner = frames[0][int(y + 0.2 * h):int(y + 0.8 * h), int(x + 0.2 * w):int(x + 0.8 * w)]
    clean = [i for i in range(0, 150, 5) if info["occlusion"][i] == 0 and info["in_frame"][i] > 0.97]
    assert len(clean) >= 15
    for i in clean:
        s = info["scale"][i] / info["scale"][0]
        template = cv2.resize(inner, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        score = cv2.matchTemplate(frames[i], template, cv2.TM_CCOEFF_NORMED)
        _, peak, _, (px, py) = cv2.minMaxLoc(score)
        found = np.array([px + template.shape[1] / 2, py + template.shape[0] / 2])
        bx, by, bw, bh = boxes[i]
        truth = np.array([bx + bw / 2, by + bh / 2])
        assert np.linalg.norm(found - truth) < 0.1 * bw, f"frame {i}: object found at {found}, box centre {truth}"
        assert peak > 0.5, f"frame {i}: weak match {peak:.2f}"


def test_write_sequence(tmp_path):
    folder = synthetic.write_sequence(tmp_path / "seq", n_frames=5, size=(320, 240))
    names = sorted(p.name for p in folder.glob("*.jpg"))
    assert names == [f"{i:05d}.jpg" for i in range(1, 6)]
    assert cv2.imread(str(folder / "00001.jpg")).shape == (240, 320, 3)
    lines = (folder / "groundtruth.txt").read_text().splitlines()
    assert len(lines) == 5
    _, boxes = synthetic.make_sequence(n_frames=5, size=(320, 240))
    np.testing.assert_allclose(np.array([[float(v) for v in line.split(",")] for line in lines]), boxes)


def test_bad_arguments():
    with pytest.raises(ValueError):
        synthetic.make_sequence(n_frames=0)
    with pytest.raises(ValueError):
        synthetic.make_sequence(size=(10, 10))


def test_occluder_box_where_the_occluder_is(sequence):
    frames, boxes, info, _ = sequence
    occ = info["occluder_box"]
    present = np.all(np.isfinite(occ), axis=1)
    assert present.any() and not present.all()
    assert present[info["occlusion"] > 0].all()  # covering the object means being in view
    i = int(np.argmax(info["occlusion"]))
    x, y, w, h = occ[i].astype(int)
    # the box holds the occluder's pixels: the astronaut's white suit differs from the frame outside it
    assert w > 10 and h > 50 and frames[i][y:y + h, x:x + w].std() > 10
    heavy = info["occlusion"] > 0.5
    gx, gy = boxes[heavy, 0] + boxes[heavy, 2] / 2, boxes[heavy, 1] + boxes[heavy, 3] / 2
    assert np.all((gx > occ[heavy, 0] - boxes[heavy, 2]) & (gx < occ[heavy, 0] + occ[heavy, 2] + boxes[heavy, 2]))
    assert np.all(np.isfinite(gy))
