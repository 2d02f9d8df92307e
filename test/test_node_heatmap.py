"""Heatmap rendering (pure numpy/OpenCV; the node publishes it on tracked_object/heatmap)."""
from types import SimpleNamespace

import numpy as np

from siam_tracker_ros.ros.heatmap import blend_response, render_heatmap


def _peak_map(size=64, at=(40, 20)):
    yy, xx = np.mgrid[0:size, 0:size]
    return np.exp(-((xx - at[0]) ** 2 + (yy - at[1]) ** 2) / 20.0).astype(np.float32)


def _hot(img, ref):
    """Centre of the pixels changed most by the blend."""
    diff = np.abs(img.astype(int) - ref.astype(int)).sum(axis=2)
    ys, xs = np.nonzero(diff >= diff.max() * 0.9)
    return xs.mean(), ys.mean()


def test_response_lands_on_its_region():
    frame = np.full((240, 320, 3), 128, np.uint8)
    # region: 128-px square centred at (160, 100): response pixel (40, 20) of 64 -> image (96 + 80.5, 36 + 40.5)
    out = blend_response(frame.copy(), _peak_map(), (160, 100, 128))
    x, y = _hot(out, frame)
    assert abs(x - 176.5) < 3 and abs(y - 76.5) < 3
    untouched = np.ones(frame.shape[:2], bool)
    untouched[36:164, 96:224] = False
    assert (out[untouched] == 128).all()  # nothing drawn outside the region


def test_region_partly_off_image_is_clipped():
    frame = np.zeros((100, 100, 3), np.uint8)
    out = blend_response(frame.copy(), _peak_map(), (5, 95, 80))
    assert out.shape == frame.shape and out.any()
    assert not blend_response(frame.copy(), _peak_map(), (500, 500, 80)).any()  # fully outside: unchanged
    assert not blend_response(frame.copy(), _peak_map(), (np.nan, 5, 80)).any()


def test_render_draws_boxes_without_touching_input():
    frame = np.full((120, 160, 3), 50, np.uint8)
    results = [SimpleNamespace(target_id="a", box=(10, 10, 30, 20), confidence=0.9, lost=False,
                               response=_peak_map(), response_region=(25, 20, 60)),
               SimpleNamespace(target_id="b", box=(100, 60, 30, 30), confidence=0.1, lost=True,
                               response=_peak_map(), response_region=(115, 75, 90))]
    out = render_heatmap(frame, results)
    assert (frame == 50).all() and out.dtype == np.uint8 and out.shape == frame.shape
    assert tuple(out[60, 115]) != (50, 50, 50)
    assert tuple(out[70, 100]) == (0, 0, 255)  # lost box edge drawn red


def test_distance_is_written_beside_each_box_when_depth_is_on():
    frame = np.full((120, 200, 3), 50, np.uint8)
    results = [SimpleNamespace(target_id="a", box=(10, 10, 30, 20), confidence=0.9, lost=False, response=None,
                               response_region=(25, 20, 60)),
               SimpleNamespace(target_id="b", box=(150, 60, 45, 30), confidence=0.9, lost=False, response=None,
                               response_region=(170, 75, 90))]
    plain = render_heatmap(frame, results)
    out = render_heatmap(frame, results, distances={"a": 2.43, "b": None})
    changed = np.abs(out.astype(int) - plain.astype(int)).sum(axis=2) > 0
    assert changed[8:30, 42:110].any()  # right of box a
    assert changed[60:90, 80:148].any()  # box b at the right edge: its "-- m" goes left of it
    assert not changed[95:].any() and not changed[:, 196:].any()  # only beside the boxes
    assert (render_heatmap(frame, results, distances=None) == plain).all()  # depth off: unchanged
