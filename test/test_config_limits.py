"""Bounds of the configuration, the weights file's model sizes, boxes and the tracker's warm-up (no ROS).

The node turns each of these errors into its ERROR status (test/test_node_reliability.py checks that over DDS).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from siam_tracker_ros.config import Config, ConfigError, ModelConfig, TrackingConfig
from siam_tracker_ros.model import WeightsError, build_model, load_weights, save_weights
from siam_tracker_ros.model.weights import FORMAT_NAME, FORMAT_VERSION


@pytest.mark.parametrize("section,key,value,match", [
    ("tracking", "test_sizes", [1, 2], "tracking.test_sizes"),
    ("tracking", "test_sizes", [[127, 255], [383, "x"]], "tracking.test_sizes"),
    ("tracking", "test_sizes", [], "tracking.test_sizes"),
    ("tracking", "test_sizes", [[127, 100000]], "tracking.test_sizes"),
    ("tracking", "response_upsample", 100000, "tracking.response_upsample"),
    ("tracking", "scale_step", math.inf, "tracking.scale_step"),
    ("tracking", "scale_step", math.nan, "tracking.scale_step"),
    ("tracking", "total_stride", 0, "tracking.total_stride"),
    ("tracking", "min_size", -5, "tracking.min_size"),
    ("tracking", "num_scales", 101, "tracking.num_scales"),
    ("tracking", "instance_size", 100000, "tracking.instance_size"),
    ("tracking", "context", math.nan, "tracking.context"),
    ("tracking", "lost_search_max", math.inf, "tracking.lost_search_max"),
    ("tracking", "box_position", "centre", "tracking.box_position"),
    ("tracking", "box_position", ["head"], "tracking.box_position"),
    ("tracking", "drift_margin", 1.5, "tracking.drift_margin"),
    ("tracking", "drift_check", "yes", "tracking.drift_check"),
    ("backend", "max_targets", 100000, "backend.max_targets"),
    ("model", "fused_channels", 10 ** 7, "model.fused_channels"),
    ("model", "gam_reduction", 0, "model.gam_reduction"),
])
def test_out_of_range_and_mistyped_values_are_config_errors(section, key, value, match, tmp_path):
    import yaml

    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({section: {key: value}}))
    with pytest.raises(ConfigError, match=match):
        Config.load(path)


def test_defaults_are_valid():
    Config().validate()
    TrackingConfig(multi_scale_test=True).validate()


def test_validation_rejects_wrong_types_set_in_code():
    cfg = TrackingConfig()
    cfg.num_scales = True  # a bool is not a count
    with pytest.raises(ConfigError, match="num_scales"):
        cfg.validate()
    cfg = TrackingConfig()
    cfg.test_sizes = [1, 2]
    with pytest.raises(ConfigError, match="test_sizes"):  # not a TypeError
        cfg.validate()


def _payload(model_config: dict) -> dict:
    return {"format": FORMAT_NAME, "version": FORMAT_VERSION, "model_config": model_config, "state_dict": {},
            "metadata": {}}


@pytest.mark.parametrize("field,value", [("fused_channels", 10 ** 6), ("width", 50.0), ("members", 1000),
                                         ("se_reduction", 0)])
def test_a_small_weights_file_cannot_ask_for_a_huge_model(tmp_path, field, value):
    """The model config in a weights file is range-checked before the network is built (no allocation)."""
    path = tmp_path / "tiny.pt"
    torch.save(_payload({"width": 0.25, field: value}), path)
    assert path.stat().st_size < 10_000
    with pytest.raises(WeightsError, match=f"model.{field}"):
        load_weights(path)


def test_valid_weights_still_load(tmp_path):
    path = tmp_path / "ok.pt"
    save_weights(build_model(ModelConfig(width=0.25)), path)
    assert load_weights(path).config.width == 0.25


# ---------------------------------------------------------------------------------------------------- boxes
@pytest.mark.parametrize("box", [(-5e307, 100, 1e308, 20), (10, -1e9, 20, 2e9), (600, 400, 1e6, 30),
                                 (-400, 10, 420, 20)])
def test_boxes_far_outside_the_image_are_refused(box):
    from siam_tracker_ros.tracking import InputError, validate_box

    with pytest.raises(InputError, match="outside"):
        validate_box(box, (480, 640), TrackingConfig().box_margin)


@pytest.mark.parametrize("box,margin", [((-20, -20, 60, 60), 0.5), ((600, 440, 80, 80), 0.5), ((0, 0, 640, 480), 0.0),
                                        ((-300, 10, 320, 20), 0.5), ((-600, 10, 620, 20), 1.0)])
def test_boxes_partly_off_the_image_are_still_allowed(box, margin):
    from siam_tracker_ros.tracking import validate_box

    validate_box(box, (480, 640), margin)


def test_without_a_margin_a_box_is_bounded_by_the_loosest_one():
    from siam_tracker_ros.tracking import InputError, validate_box

    validate_box((-600, 10, 620, 20), (480, 640))
    for box in ((-5e307, 100, 1e308, 20), (-700, 10, 720, 20)):
        with pytest.raises(InputError, match="outside"):
            validate_box(box, (480, 640))


def test_tracker_init_checks_the_configured_box_margin():
    """One margin: TrackingConfig.box_margin (the node's box_margin parameter) bounds every box init takes."""
    from siam_tracker_ros.backends import create_backend
    from siam_tracker_ros.config import BackendConfig
    from siam_tracker_ros.tracking import InputError, SiamTracker

    backend = create_backend(BackendConfig(name="torch", device="cpu"), model=build_model(ModelConfig(width=0.25)))
    tracker = SiamTracker(backend)
    frame = np.zeros((240, 320, 3), np.uint8)
    for box in ((-5e307, 100, 1e308, 20), (-200, 10, 220, 20)):  # the second reaches 0.625 x the width past it
        with pytest.raises(InputError, match="outside"):
            tracker.init(frame, box)
    assert tracker.targets == []
    wide = SiamTracker(backend, TrackingConfig(box_margin=1.0))
    wide.init(frame, (-200, 10, 220, 20))
    assert wide.targets == ["default"]


# ---------------------------------------------------------------------------------------------------- warm-up
def test_warm_up_runs_every_graph_and_batch_the_tracker_can_use():
    """Every scale set, the lost-mode search and every batch size up to max_targets, through the real backend."""
    from recording_backend import RecordingBackend
    from siam_tracker_ros.tracking import SiamTracker

    from siam_tracker_ros.backends import create_backend
    from siam_tracker_ros.config import BackendConfig

    inner = create_backend(BackendConfig(name="torch", device="cpu"), model=build_model(ModelConfig(width=0.25)))
    backend = RecordingBackend(inner)  # the real torch backend, with its calls recorded
    tracker = SiamTracker(backend, TrackingConfig())
    tracker.warm_up(2)
    warm = set(backend.calls)
    # 255 x 1: init's reference; 383: one or two frozen targets' wide searches and 0 to 4 scan windows between them.
    assert warm == {("template", 127, 1), ("search", 255, 1), ("search", 255, 3), ("search", 255, 6),
                    *(("search", 383, b) for b in range(1, 7))}
    # Whatever two targets do afterwards (tracked, lost, both lost), no call is new.
    frame = np.random.default_rng(1).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    tracker.init(frame, (100, 100, 40, 40), "a")
    tracker.init(frame, (200, 60, 40, 40), "b")
    backend.calls.clear()
    tracker.update(frame)
    grey = np.full_like(frame, 128)
    for _ in range(3):
        tracker.update(grey)
    tracker.update(frame)
    assert backend.calls <= warm | {("template", 127, 1)}, backend.calls - warm
