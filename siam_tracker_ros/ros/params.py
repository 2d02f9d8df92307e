"""The tracker node's parameters: name, default, description, read-only flag, range or choices, in one table.

A parameter that sets a value of the tracker's configuration (siam_tracker_ros.config: its backend and tracking
sections) takes its default from there (`config_key`). config/tracker.yaml is written from this table
(`python -m siam_tracker_ros.ros.params > config/tracker.yaml`), and the README's parameter table has its rows
(`--readme`); test/test_params_table.py checks that both agree with it.
"""
from __future__ import annotations

import json
import math
import sys
import textwrap
from dataclasses import dataclass

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

from siam_tracker_ros.config import BACKEND_NAMES, DEVICES, MAX_BOX_MARGIN, MODEL_NAMES, Config

from .image_codec import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS

_CONFIG_DEFAULTS = Config()


@dataclass(frozen=True)
class Param:
    name: str
    default: object
    description: str
    read_only: bool = False
    range: tuple | None = None  # (from, to) for numbers
    choices: tuple | None = None  # allowed strings (checked by the node; documented in the descriptor)
    config_key: str = ""  # "section.field" of the Config value this parameter sets


def configured(name: str, config_key: str, description: str, **kwargs) -> Param:
    """A parameter that sets the Config value `config_key` ("backend.max_targets"), with that value's default."""
    section, field = config_key.split(".")
    default = getattr(getattr(_CONFIG_DEFAULTS, section), field)
    return Param(name, default, description, config_key=config_key, **kwargs)


PARAMS: tuple[Param, ...] = (
    Param("autostart", True, "Configure and activate at start-up (unmanaged). false: stay unconfigured until a "
          "lifecycle manager (or `ros2 lifecycle set`) drives the node.", read_only=True),
    Param("weights", "", "Tracker weights file (.pt). Empty: the shipped model named by 'model' "
          "(weights/siam_small.pt or siam_large.pt; $SIAM_TRACKER_WEIGHTS overrides).", read_only=True),
    configured("model", "backend.model", "Model when 'weights' is empty: auto (large on a CUDA device, small on "
               "the CPU), small, large, small_box (the small network with the box head: one search per frame), or "
               "nanotrack_v2 / nanotrack_v3 (the user's NanoTrack ONNX pair, found in $SIAM_PEERS_DIR/<model>; "
               "'weights' may also name the pair's folder).", read_only=True, choices=MODEL_NAMES),
    Param("config_file", "", "YAML file of tracker hyper-parameters (siam_tracker_ros Config: tracking/backend "
          "sections). Empty: built-in defaults. A parameter of this node set explicitly (-p, a params file, launch) "
          "overrides the same key; config/tracker.yaml leaves those commented out, so that the file's values "
          "apply.", read_only=True),
    configured("backend", "backend.name", "Inference backend: auto (fastest available), torch, onnxruntime or "
               "tensorrt.", read_only=True, choices=BACKEND_NAMES),
    configured("device", "backend.device", "Inference device: auto (CUDA when available), cpu or cuda.",
               read_only=True, choices=DEVICES),
    configured("num_threads", "backend.num_threads", "CPU threads of the backend; 0 = the library default.",
               read_only=True, range=(0, 256)),
    configured("fp16", "backend.fp16", "Half precision on CUDA (ignored on CPU).", read_only=True),
    configured("max_targets", "backend.max_targets", "Most targets tracked at once; init_target for one more fails. "
               "Every graph and batch size is built for it at start-up: it can be lowered at run time, raised only "
               "up to its start-up value.", range=(1, 64)),
    configured("lost_threshold", "tracking.lost_threshold", "Confidence below which a target is reported lost (must "
               "be <= found_threshold); its box still follows the best match.", range=(0.0, 1.0)),
    configured("found_threshold", "tracking.found_threshold", "Confidence above which a lost target is reported "
               "tracked again.", range=(0.0, 1.0)),
    configured("freeze_threshold", "tracking.freeze_threshold", "Confidence below which (and below lost_threshold) "
               "the box freezes and a wider area is searched until found_threshold is reached.", range=(0.0, 1.0)),
    configured("window_influence", "tracking.window_influence", "Weight of the cosine window (motion prior) on the "
               "response map.", range=(0.0, 1.0)),
    Param("reliable_qos", False, "Subscribe to images with RELIABLE QoS; false = sensor-data QoS (best effort).",
          read_only=True),
    Param("qos_depth", 2, "History depth of the image subscriptions.", read_only=True, range=(1, 100)),
    Param("use_compressed", False, "Also subscribe to <image>/compressed (sensor_msgs/CompressedImage, decoded "
          "with OpenCV).", read_only=True),
    Param("frame_buffer_seconds", 10.0, "How far back init_target may name a frame by its stamp (ring buffer of "
          "received frames): long enough for a person reading a stamp and calling from the command line.",
          range=(0.0, 30.0)),
    Param("frame_buffer_max_frames", 600, "Most frames kept in the ring buffer (bounds memory).", range=(1, 2000)),
    Param("frame_buffer_max_bytes", 256 * 1024 * 1024, "Most bytes of image data kept in the ring buffer (the oldest "
          "frames go first; the newest frame is always kept).", range=(1024 * 1024, 16 * 1024 ** 3)),
    Param("frame_buffer_raw_frames", 10, "Newest frames kept in the ring buffer as received; older raw images are "
          "kept JPEG-encoded (quality 90, about a tenth of the bytes).", range=(1, 2000)),
    Param("max_image_pixels", DEFAULT_MAX_PIXELS, "Largest image accepted, in pixels (width x height; default 8K "
          "UHD); larger ones are refused and counted (`refused_image_too_large`).", range=(64, 1_000_000_000)),
    Param("max_image_bytes", DEFAULT_MAX_BYTES, "Largest image accepted, in bytes (declared step x height and data "
          "sent); larger ones are refused and counted.", range=(1024, 4 * 1024 ** 3)),
    configured("box_margin", "tracking.box_margin", "How far an init_target box may reach past the image, as a "
               "fraction of the image width / height.", range=(0.0, MAX_BOX_MARGIN)),
    Param("max_target_id_length", 64, "Longest target_id accepted (characters A-Z a-z 0-9 _ . : / -).",
          range=(1, 256)),
    Param("max_queued_requests", 10, "Most init/stop requests waiting for the tracker; one more is answered at once "
          "with success=false (busy).", range=(1, 100)),
    Param("init_timeout", 30.0, "Seconds a request may wait for the tracker; then it is answered 'timed out' and "
          "cancelled (a timed-out init never installs its target).", range=(0.1, 300.0)),
    Param("class_id", "target", "results[0].hypothesis.class_id of the published detections."),
    Param("publish_heatmap", True, "Publish tracked_object/heatmap while it has subscribers (computed only then)."),
    Param("heatmap_alpha", 0.5, "Opacity of the coloured response map in the heatmap image.", range=(0.0, 1.0)),
    Param("use_depth", False, "Subscribe to depth_image (registered to the colour image: 16UC1 millimetres or 32FC1 "
          "metres) and camera_info, and publish tracked_objects_3d. Also on when depth_image is remapped.",
          read_only=True),
    Param("depth_stamp_tolerance", 0.02, "Seconds a depth image's stamp may differ from the colour frame's (the "
          "nearest within it is used; 0 = the same stamp only).", range=(0.0, 1.0)),
    Param("depth_wait", 0.05, "Seconds the worker waits, after publishing a frame's 2D output, for that frame's depth "
          "image (a newer colour frame ends the wait); then its depth is reported missing.", range=(0.0, 1.0)),
    Param("depth_buffer_frames", 10, "Most depth images kept for matching by stamp.", read_only=True,
          range=(1, 100)),
    Param("depth_percentile", 50.0, "Percentile of the valid depth readings in a box's inner part taken as its "
          "distance (50 = median; lower favours the nearest surface).", range=(0.0, 100.0)),
    Param("depth_inner_fraction", 0.5, "Central fraction of a box's width and height whose depth readings are "
          "used.", range=(0.05, 1.0)),
    Param("depth_min", 0.1, "Depth readings nearer than this (metres) are no readings.", range=(0.0, 1000.0)),
    Param("depth_max", 20.0, "Depth readings farther than this (metres) are no readings.", range=(0.001, 1000.0)),
    Param("depth_min_valid_fraction", 0.1, "Fraction of a box's inner part that must hold valid readings for a "
          "distance.", range=(0.0, 1.0)),
    Param("diagnostics_period", 1.0, "Seconds between /diagnostics messages.", read_only=True, range=(0.1, 60.0)),
)
# The parameters that are values of the tracker's Config: name -> (section, field).
CONFIG_FIELDS = {p.name: tuple(p.config_key.split(".")) for p in PARAMS if p.config_key}
# Those of its tracking section (same names), which the node also applies to a running tracker when they are set.
TRACKING_PARAMS = tuple(name for name, (section, _) in CONFIG_FIELDS.items() if section == "tracking")


def descriptor(p: Param) -> ParameterDescriptor:
    d = ParameterDescriptor(description=p.description, read_only=p.read_only)
    if p.choices:
        d.additional_constraints = "one of: " + ", ".join(p.choices)
    if p.range is not None:
        lo, hi = p.range
        if isinstance(p.default, float):
            d.floating_point_range = [FloatingPointRange(from_value=float(lo), to_value=float(hi), step=0.0)]
        else:
            d.integer_range = [IntegerRange(from_value=int(lo), to_value=int(hi), step=1)]
    return d


# ---------------------------------------------------------------------------------------- the table as documents
YAML_HEADER = """\
# Parameters of tracker_node (siam_tracker_ros), written from siam_tracker_ros/ros/params.py
# (`python -m siam_tracker_ros.ros.params > config/tracker.yaml`). Every parameter the node declares is listed here with
# its default; `ros2 param describe /tracker_node <name>` shows the description and allowed range.
# Read-only parameters (marked [ro]) are read once at start-up. The parameters that set a value of the tracker's
# configuration are commented out: the value of config_file (when one is given), else the default shown, applies;
# uncomment one to set it here (a parameter set explicitly overrides config_file's key).
tracker_node:
  ros__parameters:
"""


def type_name(p: Param) -> str:
    return {bool: "bool", int: "int", float: "double", str: "string"}[type(p.default)]


def _number_text(value, default) -> str:
    """A range end as the documents write it: floats as Python does, large integers in GiB / MiB or as 1eN."""
    if isinstance(default, float):
        return repr(float(value))
    for unit, size in (("GiB", 1024 ** 3), ("MiB", 1024 ** 2)):
        if value >= size and value % size == 0:
            return f"{value // size} {unit}"
    if value >= 10 ** 6 and 10 ** round(math.log10(value)) == value:
        return f"1e{round(math.log10(value))}"
    return str(value)


def range_text(p: Param) -> str:
    lo, hi = p.range
    return f"[{_number_text(lo, p.default)}, {_number_text(hi, p.default)}]"


def _value_text(value) -> str:
    return json.dumps(value)  # true / false, numbers, "quoted strings": YAML and the README alike


def yaml_text(params=PARAMS) -> str:
    """config/tracker.yaml: every parameter with its default, the description, range and [ro] as comments."""
    lines = [YAML_HEADER]
    for p in params:
        # A range is not broken across lines: its spaces are held as NUL while the comment is wrapped.
        kept = (" Range " + range_text(p).replace(" ", "\0") + ".") if p.range else ""
        comment = p.description + kept + (" [ro]" if p.read_only else "")
        lines.append(textwrap.fill(comment, width=120, initial_indent="    # ", subsequent_indent="    # ",
                                   break_long_words=False, break_on_hyphens=False).replace("\0", " ") + "\n")
        commented = "# " if p.config_key else ""  # so that config_file's value applies unless set here
        lines.append(f"    {commented}{p.name}: {_value_text(p.default)}\n")
    return "".join(lines)


def readme_row(p: Param) -> str:
    """One row of the README's parameter table: | name | type | default | range / values | description |."""
    values = range_text(p) if p.range else " \\| ".join(p.choices) if p.choices else ""
    description = p.description + (" Read-only." if p.read_only else "")
    return f"| `{p.name}` | {type_name(p)} | `{_value_text(p.default)}` | {values} | {description} |"


def main(argv=None) -> int:
    """Print config/tracker.yaml, or with --readme the README table's rows."""
    argv = sys.argv[1:] if argv is None else argv
    print("\n".join(readme_row(p) for p in PARAMS) if "--readme" in argv else yaml_text(), end="\n" if argv else "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
