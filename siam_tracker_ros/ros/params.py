"""The tracker node's parameters: name, default, description, read-only flag, range or choices, in one table (the
README's parameter table and config/tracker.yaml follow it; test_node_messages checks they agree)."""
from __future__ import annotations

from dataclasses import dataclass

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

from .image_codec import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS


@dataclass(frozen=True)
class Param:
    name: str
    default: object
    description: str
    read_only: bool = False
    range: tuple | None = None  # (from, to) for numbers
    choices: tuple | None = None  # allowed strings (checked by the node; documented in the descriptor)


PARAMS: tuple[Param, ...] = (
    Param("autostart", True, "Configure and activate at start-up (unmanaged). false: stay unconfigured until a "
          "lifecycle manager (or `ros2 lifecycle set`) drives the node.", read_only=True),
    Param("weights", "", "Tracker weights file (.pt). Empty: the shipped model named by 'model' "
          "(weights/siam_small.pt or siam_large.pt; $SIAM_TRACKER_WEIGHTS overrides).", read_only=True),
    Param("model", "auto", "Shipped model when 'weights' is empty: auto (large on a CUDA device, small on the CPU), "
          "small, large or small_box (the small network with the box head: one search per frame).", read_only=True,
          choices=("auto", "small", "large", "small_box")),
    Param("config_file", "", "YAML file of tracker hyper-parameters (siam_tracker_ros Config: tracking/backend "
          "sections). Empty: built-in defaults. Parameters of this node override the same keys.", read_only=True),
    Param("backend", "auto", "Inference backend: auto (fastest available), torch, onnxruntime or tensorrt.",
          read_only=True, choices=("auto", "torch", "onnxruntime", "tensorrt")),
    Param("device", "auto", "Inference device: auto (CUDA when available), cpu or cuda.", read_only=True,
          choices=("auto", "cpu", "cuda")),
    Param("num_threads", 0, "CPU threads of the backend; 0 = the library default.", read_only=True, range=(0, 256)),
    Param("fp16", True, "Half precision on CUDA (ignored on CPU).", read_only=True),
    Param("max_targets", 4, "Most targets tracked at once; init_target for one more fails. Every graph and batch size "
          "is built for it at start-up: it can be lowered at run time, raised only up to its start-up value.",
          range=(1, 64)),
    Param("lost_threshold", 0.5, "Confidence below which a target is reported lost (must be <= "
          "found_threshold); its box still follows the best match.", range=(0.0, 1.0)),
    Param("found_threshold", 0.55, "Confidence above which a lost target is reported tracked again.",
          range=(0.0, 1.0)),
    Param("freeze_threshold", 0.35, "Confidence below which (and below lost_threshold) the box freezes and a wider "
          "area is searched until found_threshold is reached.", range=(0.0, 1.0)),
    Param("window_influence", 0.176, "Weight of the cosine window (motion prior) on the response map.",
          range=(0.0, 1.0)),
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
    Param("max_image_pixels", DEFAULT_MAX_PIXELS, "Largest image accepted, in pixels (width x height); larger ones "
          "are refused and counted (refused_image_too_large).", range=(64, 1_000_000_000)),
    Param("max_image_bytes", DEFAULT_MAX_BYTES, "Largest image accepted, in bytes (declared step x height and data "
          "sent); larger ones are refused and counted.", range=(1024, 4 * 1024 ** 3)),
    Param("box_margin", 0.5, "How far an init_target box may reach past the image, as a fraction of the image width "
          "/ height.", range=(0.0, 1.0)),
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
TRACKING_PARAMS = ("lost_threshold", "found_threshold", "freeze_threshold", "window_influence")


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
