"""The tracker node's parameters at work (the table is params.py): what a change may be (on-set check), where it goes
(post-set: the engine's Limits, the tracker's thresholds), and the tracker's configuration at configure
(config_file's values unless a parameter is set explicitly, CONFIG_FIELDS) with the tracker built from it."""
from __future__ import annotations

import time
from pathlib import Path

from rcl_interfaces.msg import SetParametersResult

from siam_tracker_ros.engine import Limits

from .params import CONFIG_FIELDS, PARAMS, TRACKING_PARAMS

# Parameters that are fields of the engine's Limits under the same name, and their types.
LIMIT_PARAMS = {"max_targets": int, "max_queued_requests": int, "init_timeout": float, "box_margin": float,
                "frame_buffer_seconds": float, "frame_buffer_max_frames": int, "frame_buffer_max_bytes": int,
                "frame_buffer_raw_frames": int, "max_image_pixels": int, "max_image_bytes": int}


class NodeSettings:
    """The parameters of `node` (a TrackerNode) turned into the engine's Limits and the tracker's Config."""

    def __init__(self, node):
        self.node = node
        # Parameters set explicitly (start-up overrides: --ros-args -p, a params file, launch; or set at run time):
        # they win over config_file's values. rclpy keeps the start-up overrides in _parameter_overrides (no public
        # accessor).
        self.explicit = set(getattr(node, "_parameter_overrides", {}))
        self.syncing = False  # configure writing config_file's values into the parameters: not explicit
        self.limits = Limits()
        self.read()
        self.start_max_targets = self.limits.max_targets  # what the graphs are built for (set again by configure)

    def value(self, name: str):
        return self.node.get_parameter(name).value

    def read(self) -> None:
        for name, cast in LIMIT_PARAMS.items():
            setattr(self.limits, name, cast(self.value(name)))

    def check(self, params) -> SetParametersResult:
        """On-set callback: accept or refuse a change (rclpy has checked types and ranges); changes nothing."""
        values = {p.name: p.value for p in params}
        spec = {p.name: p for p in PARAMS}
        for name, value in values.items():
            p = spec.get(name)
            if p is not None and p.choices and value not in p.choices:
                return SetParametersResult(successful=False, reason=f"{name} must be one of {', '.join(p.choices)}")
        if "max_targets" in values and self.node.tracker is not None \
                and int(values["max_targets"]) > self.start_max_targets:
            return SetParametersResult(successful=False, reason=(
                f"max_targets can be lowered at run time, not raised above its start-up value "
                f"{self.start_max_targets} (every graph and batch size is built for it): clean up and configure "
                f"the node again, or restart it"))
        lost = values.get("lost_threshold", self.value("lost_threshold"))
        found = values.get("found_threshold", self.value("found_threshold"))
        if lost > found:
            return SetParametersResult(successful=False,
                                       reason=f"lost_threshold ({lost}) must not exceed found_threshold ({found})")
        return SetParametersResult(successful=True)

    def apply(self, params) -> None:
        """Post-set callback: take the values rclpy has just set. Plain attribute writes: the worker reads them per
        frame."""
        values = {p.name: p.value for p in params}
        if not self.syncing:
            self.explicit.update(values)
        tracker = self.node.tracker
        if tracker is not None:
            for name in TRACKING_PARAMS:
                if name in values and hasattr(tracker.cfg, name):  # the NanoTrack tracker has no box_margin
                    setattr(tracker.cfg, name, float(values[name]))
        for name, value in values.items():
            if name in LIMIT_PARAMS:
                setattr(self.limits, name, LIMIT_PARAMS[name](value))

    def create_tracker(self):
        """(tracker, backend description, weights path) from the parameters and config_file; raises on any error of
        the configuration or the weights."""
        from siam_tracker_ros.backends import default_weights_path
        from siam_tracker_ros.backends.select import cuda_available
        from siam_tracker_ros.config import NANOTRACK_MODELS, ConfigError, WeightsError
        from siam_tracker_ros.tracking.build import build_tracker

        weights = str(self.value("weights"))
        for p in PARAMS:
            if p.choices and self.value(p.name) not in p.choices:
                raise ConfigError(f"parameter {p.name} = {self.value(p.name)!r}: expected one of "
                                  f"{', '.join(p.choices)}")
        cfg = self.tracker_config()
        self.limits.max_targets = self.start_max_targets = cfg.backend.max_targets
        if not weights and cfg.backend.model not in NANOTRACK_MODELS:  # those: the user's files (tracking/build.py)
            device = cfg.backend.device
            cuda = device == "cuda" or (device == "auto" and cuda_available())
            weights = str(default_weights_path(cfg.backend.model, cuda))
        if weights and not Path(weights).exists():
            raise WeightsError(f"weights path {weights} does not exist (set the 'weights' parameter or "
                               f"$SIAM_TRACKER_WEIGHTS to a trained .pt file, or a NanoTrack ONNX pair's folder)")
        t0 = time.monotonic()
        # The tracking parameters set explicitly also apply to the NanoTrack tracker's own constants (its defaults
        # were chosen for its confidence; the paper network's do not fit it). Unused by the paper's network; a
        # NanoTracker validates them when it is built.
        for name in TRACKING_PARAMS:
            if name in self.explicit and hasattr(cfg.nanotrack, name):
                setattr(cfg.nanotrack, name, getattr(cfg.tracking, name))
        tracker = build_tracker(cfg, weights or None)
        weights = weights or str(getattr(tracker.backend, "source", cfg.backend.model))
        backend = tracker.backend.describe()
        self.node.get_logger().info(f"loaded {weights} on {backend} in {time.monotonic() - t0:.1f} s")
        self.show_config_values(cfg)
        return tracker, backend, weights

    def tracker_config(self):
        """The tracker's Config: config_file's (or the built-in defaults), each field a parameter of the node names
        (CONFIG_FIELDS) taken from the parameter when it was set explicitly or there is no config_file. Validated."""
        from siam_tracker_ros.config import Config

        path = str(self.value("config_file"))
        cfg = Config.load(path) if path else Config()
        in_file = set()
        if path:  # the keys the file sets (Config.load has checked that it is a mapping of sections)
            import yaml

            data = yaml.safe_load(Path(path).read_text()) or {}
            in_file = {(section, key) for section, keys in data.items() if isinstance(keys, dict) for key in keys}
        overridden = []
        for name, (section, field) in CONFIG_FIELDS.items():
            value = self.value(name)
            if (section, field) in in_file and name in self.explicit \
                    and value != getattr(getattr(cfg, section), field):
                overridden.append(f"{section}.{field} = {getattr(getattr(cfg, section), field)!r} by parameter "
                                  f"{name} = {value!r}")
            if not path or name in self.explicit:
                setattr(getattr(cfg, section), field, value)
        cfg.validate()
        if overridden:
            self.node.get_logger().info(f"config_file {path}: set explicitly, parameters win over "
                                        f"{'; '.join(overridden)}")
        return cfg

    def show_config_values(self, cfg) -> None:
        """Write config_file's values into the parameters that took them (not read-only ones: those say what was
        asked, the diagnostics' backend says what runs), so that `ros2 param get` shows the values in use. Not an
        explicit setting: a new configure reads config_file again."""
        from rclpy.parameter import Parameter

        spec = {p.name: p for p in PARAMS}
        taken = {name: getattr(getattr(cfg, section), field) for name, (section, field) in CONFIG_FIELDS.items()
                 if self.value(name) != getattr(getattr(cfg, section), field)}
        if not taken:
            return
        self.node.get_logger().info(f"config_file {self.value('config_file')}: "
                                    + ", ".join(f"{name} = {value!r}" for name, value in taken.items()))
        shown = [Parameter(name, value=type(spec[name].default)(value)) for name, value in taken.items()
                 if not spec[name].read_only]
        self.syncing = True
        try:
            results = self.node.set_parameters(shown)
        finally:
            self.syncing = False
        for param, result in zip(shown, results):
            if not result.successful:
                self.node.get_logger().warning(
                    f"parameter {param.name} left at {self.node.get_parameter(param.name).value!r} (the tracker "
                    f"uses {param.value!r}): {result.reason}")
