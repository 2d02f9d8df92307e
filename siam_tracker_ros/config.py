"""One dataclass tree for every hyper-parameter: model, tracking, backend and training.

Loaded from and saved to YAML; unknown keys and out-of-range values are errors that name the key, so a typo in a
config file never silently falls back to a default.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping


class ConfigError(ValueError):
    """A configuration value is unknown, of the wrong type or out of range."""


class WeightsError(RuntimeError):
    """A weights file is missing, corrupt, of another format, or for another model configuration. Here, not in
    model/, so that code which only reports it (the node) need not import torch."""


MAX_FUSED_CHANNELS = 2048  # f_final width at width 1.0 (the paper uses 256)
MAX_INPUT_SIZE = 1023  # largest exemplar / search input side in pixels
# The box head's log size change (model/box_head.py) is clipped to this when decoded, in training and tracking: a box
# at most e^2 = 7.4 times larger or smaller than the one the search crop was cut for.
MAX_LOG_SIZE_CHANGE = 2.0
# The loosest tracking.box_margin: a box given to init reaches at most one image width / height past the image.
MAX_BOX_MARGIN = 1.0


@dataclass
class ModelConfig:
    """Network architecture. Each paper module is a switch, so the ablations are configurations.

    plain SiamFC:        use_se=False, use_fusion=False, use_gam=False
    paper -MLFF-GAM:     use_se=True,  use_fusion=False, use_gam=False
    paper +MLFF-GAM:     use_se=True,  use_fusion=True,  use_gam=False
    paper +MLFF+GAM:     use_se=True,  use_fusion=True,  use_gam=True   (the full model)
    """

    width: float = 0.5  # channel multiplier of the AlexNet backbone (1.0 = paper size)
    # Explicit conv1..conv5 channel counts; empty = derived from `width`. Set for backbones initialised from the
    # public SiamFC weights (model/pretrained.py), whose distilled widths are not multiples of 8.
    channels: list = field(default_factory=list)
    use_se: bool = True  # squeeze-excitation subnetwork (second response map)
    use_fusion: bool = True  # multi-layer feature fusion of conv3/4/5 (eq. 1-2)
    use_gam: bool = True  # global attention module on the fused features (eq. 3-6)
    fused_channels: int = 256  # width of f_final at width 1.0 (eq. 2), scaled by `width`
    gam_reduction: int = 4  # r in eq. 3-4
    se_reduction: int = 16  # SENet's reduction ratio
    response_scale: float = 0.001  # SiamFC's adjust: keeps initial logits in a sane range
    # Separately trained networks of this configuration whose logits are averaged (1 = the paper's single network;
    # more only in ensembles made by `siam-tracker ensemble`). Trained on 54 tracks, single networks differ from seed
    # to seed by more than the paper's modules do; their average tracks more steadily (docs/training.md).
    members: int = 1
    # Anchor-free box head (model/box_head.py): per response cell a centre-ness logit and the distances to
    # the box's four sides, so the tracker measures the box from one search instead of a 3-scale pyramid.
    box_head: bool = False
    box_head_channels: int = 64  # width of its projections and tower
    box_head_depth: int = 2  # 3x3 conv + BN + ReLU layers of the tower

    def validate(self) -> None:
        _check(0.1 <= self.width <= 2.0, "model.width", self.width, "in [0.1, 2.0]")
        _check(self.fused_channels >= 8, "model.fused_channels", self.fused_channels, ">= 8")
        _check(not self.channels or (len(self.channels) == 5 and all(
            isinstance(c, int) and not isinstance(c, bool) and 2 <= c <= 1024 and c % 2 == 0
            for c in self.channels)), "model.channels", self.channels,
            "empty or five even integers in [2, 1024] (conv1..conv5)")
        _check(self.gam_reduction >= 1, "model.gam_reduction", self.gam_reduction, ">= 1")
        _check(self.se_reduction >= 1, "model.se_reduction", self.se_reduction, ">= 1")
        _check(self.response_scale > 0, "model.response_scale", self.response_scale, "> 0")
        _check(isinstance(self.members, int) and 1 <= self.members <= 16, "model.members", self.members,
               "in [1, 16]")
        # Every size is bounded too: a weights file's config is validated before the network is built, so a small
        # file cannot ask for a model of many GB (load_weights builds the model only after this check).
        _check(_is_int(self.fused_channels) and self.fused_channels <= MAX_FUSED_CHANNELS, "model.fused_channels",
               self.fused_channels, f"an integer in [8, {MAX_FUSED_CHANNELS}]")
        _check(_is_int(self.gam_reduction) and self.gam_reduction <= 64, "model.gam_reduction", self.gam_reduction,
               "an integer in [1, 64]")
        _check(_is_int(self.se_reduction) and self.se_reduction <= 64, "model.se_reduction", self.se_reduction,
               "an integer in [1, 64]")
        _check(_is_number(self.response_scale) and self.response_scale <= 1e3, "model.response_scale",
               self.response_scale, "in (0, 1000]")
        _check(not isinstance(self.members, bool), "model.members", self.members, "an integer in [1, 16]")
        _check(isinstance(self.box_head, bool), "model.box_head", self.box_head, "true or false")
        _check(_is_int(self.box_head_channels) and 4 <= self.box_head_channels <= 1024, "model.box_head_channels",
               self.box_head_channels, "an integer in [4, 1024]")
        _check(_is_int(self.box_head_depth) and 0 <= self.box_head_depth <= 8, "model.box_head_depth",
               self.box_head_depth, "an integer in [0, 8]")


BOX_POSITIONS = ("response", "head")


@dataclass
class TrackingConfig:
    """SiamFC inference hyper-parameters (Bertinetto et al. 2016 defaults) plus the confidence / lost logic."""

    exemplar_size: int = 127
    instance_size: int = 255
    context: float = 0.5  # context margin around the target, as a fraction of (w + h)
    num_scales: int = 3
    scale_step: float = 1.08  # SiamFC: 1.0375; tuned on the training tracks (docs/training.md)
    scale_penalty: float = 0.9745
    scale_lr: float = 0.59  # damping of the size update
    window_influence: float = 0.176  # cosine window weight
    response_upsample: int = 16
    total_stride: int = 8
    min_size: float = 4.0  # smallest tracked box side in pixels
    # The paper's multi-scale test: (exemplar, instance) input sizes whose responses are fused. Off by default.
    multi_scale_test: bool = False
    test_sizes: list = field(default_factory=lambda: [[127, 255], [191, 319], [255, 383]])
    # Confidence in [0, 1] and the lost / re-acquire state.
    lost_threshold: float = 0.5  # below this the target is reported lost (its box still follows the best match)
    found_threshold: float = 0.55  # a lost target is reported tracked again above this
    freeze_threshold: float = 0.35  # below this (and lost_threshold) the box freezes and a wider area is searched
    lost_search_growth: float = 1.5  # the search area grows by this per lost frame ...
    lost_search_max: float = 3.0  # ... up to this factor
    # A network with the box head (model.box_head): one search crop per target and the regressed box (true), or the
    # scale pyramid above on its response alone (false; the comparison, and every network without a head).
    box_regression: bool = True
    box_window_influence: float = 0.2  # cosine window weight on the head's score map (max-normalised, 0-1)
    box_penalty_k: float = 0.06  # penalty on a change of size and aspect ratio: exp(-k * (change - 1))
    box_lr: float = 0.5  # how far the box size moves to the regressed one, times the chosen cell's score
    # Where box mode puts the centre: "head" (the cell chosen on score x centre-ness x change penalty and the head's
    # offset there, SiamFC++'s way) or "response" (the pyramid's own peak on the upsampled response with its window;
    # the head gives only the size, read at that point). "head" won on the validation tracks over 3 seeds
    # (docs/training.md).
    box_position: str = "head"
    # How far a box given to init may reach past the image, as a fraction of the image's width / height: every edge
    # within it (tracking/validation.py). Bounds the coordinates themselves, not only the overlap.
    box_margin: float = 0.5
    # Template memory (tracking/memory.py): up to `memory_size` templates besides the first (0: off), each taken on
    # a frame whose confidence is at least `memory_score_gate`, that is far enough from every kept template
    # (appearance: cosine similarity of the kernels at most `memory_max_similarity`) and still like the first one (at
    # least `memory_min_similarity`: a drifting track does not poison it), at most once per `memory_interval` frames.
    # The search correlates with their blend: the first template's weight `memory_first_weight`, the rest shared.
    memory_size: int = 0
    memory_score_gate: float = 0.8
    memory_max_similarity: float = 0.9
    memory_min_similarity: float = 0.5
    memory_interval: int = 10
    memory_first_weight: float = 0.5
    # Motion prior (tracking/motion.py): a constant-velocity Kalman filter per target; the search centred on its
    # prediction, the peak chosen on the windowed response times (1 - motion_weight) + motion_weight x the
    # prediction's likelihood. While the box is frozen the prediction moves the search for `motion_lost_frames`
    # frames, its velocity fading, then stops.
    motion_prior: bool = False
    motion_weight: float = 0.1
    motion_lost_frames: int = 10
    # Re-detection (tracking/redetection.py): after `redetect_after` frozen frames (0: off, and no verification)
    # the whole frame is scanned, `redetect_windows` search windows per frame in the same batch. A frozen target's
    # candidate is verified when its score with the first template reaches `redetect_threshold` of the track's own
    # typical score (and found_threshold of its init frame's). While the target is away (a camera cut showed another
    # scene) the candidate's score must also reach `redetect_away_threshold` of its init frame's, on
    # `redetect_away_frames` frames in a row at a consistent position.
    redetect_after: int = 5
    redetect_windows: int = 4
    redetect_threshold: float = 0.8
    redetect_away_threshold: float = 0.85
    redetect_away_frames: int = 2
    # The drift check (tracking/tracker.py): while a target is reported lost but its box still follows the best match
    # (confidence between freeze_threshold and lost_threshold: often a look-alike), the re-detection scan's windows
    # run too (within the same `redetect_windows` per frame), and the box jumps to the scan's best candidate when it
    # verifies as re-detection's do and its confidence beats the followed peak's by `drift_margin`. Needs
    # re-detection (redetect_after > 0); costs nothing on a frame that starts with the target reported tracked.
    # Chosen on the validation tracks (docs/results.md): margin 0.1 jumped to a look-alike, 0.2 did not.
    drift_check: bool = True
    drift_margin: float = 0.2
    # Camera cuts (tracking/scene_cut.py): a frame unlike the one before it (structure and colours) freezes every
    # target and reports it lost, until a verified peak finds it again.
    scene_cut: bool = True

    def validate(self) -> None:
        # Types and ranges: every value the tracker sizes arrays or loops with is bounded, and NaN / inf fail.
        _check(_is_int(self.exemplar_size) and 63 <= self.exemplar_size <= MAX_INPUT_SIZE, "tracking.exemplar_size",
               self.exemplar_size, f"an integer in [63, {MAX_INPUT_SIZE}]")
        _check(_is_int(self.instance_size) and self.exemplar_size < self.instance_size <= MAX_INPUT_SIZE,
               "tracking.instance_size", self.instance_size, f"an integer > exemplar_size and <= {MAX_INPUT_SIZE}")
        _check(_is_number(self.context) and 0.0 <= self.context <= 2.0, "tracking.context", self.context, "in [0, 2]")
        _check(_is_int(self.num_scales) and 1 <= self.num_scales <= 15 and self.num_scales % 2 == 1,
               "tracking.num_scales", self.num_scales, "an odd integer in [1, 15]")
        _check(_is_number(self.scale_step) and 1.0 <= self.scale_step <= 2.0, "tracking.scale_step", self.scale_step,
               "in [1, 2]")
        _check(_is_number(self.scale_penalty) and 0.0 < self.scale_penalty <= 1.0, "tracking.scale_penalty",
               self.scale_penalty, "in (0, 1]")
        _check(_is_number(self.scale_lr) and 0.0 <= self.scale_lr <= 1.0, "tracking.scale_lr", self.scale_lr,
               "in [0, 1]")
        _check(_is_number(self.window_influence) and 0.0 <= self.window_influence <= 1.0,
               "tracking.window_influence", self.window_influence, "in [0, 1]")
        _check(_is_int(self.response_upsample) and 1 <= self.response_upsample <= 32, "tracking.response_upsample",
               self.response_upsample, "an integer in [1, 32]")
        _check(_is_int(self.total_stride) and 1 <= self.total_stride <= 64, "tracking.total_stride",
               self.total_stride, "an integer in [1, 64]")
        _check(_is_number(self.min_size) and 1.0 <= self.min_size <= 1000.0, "tracking.min_size", self.min_size,
               "in [1, 1000] pixels")
        _check(isinstance(self.multi_scale_test, bool), "tracking.multi_scale_test", self.multi_scale_test,
               "true or false")
        _check(_is_number(self.lost_threshold) and _is_number(self.found_threshold)
               and 0.0 <= self.lost_threshold <= self.found_threshold <= 1.0, "tracking.lost_threshold",
               self.lost_threshold, "<= found_threshold, both in [0, 1]")
        _check(_is_number(self.freeze_threshold) and 0.0 <= self.freeze_threshold <= 1.0, "tracking.freeze_threshold",
               self.freeze_threshold, "in [0, 1]")
        _check(_is_number(self.lost_search_growth) and 1.0 <= self.lost_search_growth <= 10.0,
               "tracking.lost_search_growth", self.lost_search_growth, "in [1, 10]")
        _check(_is_number(self.lost_search_max) and 1.0 <= self.lost_search_max <= 10.0, "tracking.lost_search_max",
               self.lost_search_max, "in [1, 10]")
        _check(isinstance(self.box_regression, bool), "tracking.box_regression", self.box_regression,
               "true or false")
        _check(_is_number(self.box_window_influence) and 0.0 <= self.box_window_influence <= 1.0,
               "tracking.box_window_influence", self.box_window_influence, "in [0, 1]")
        _check(_is_number(self.box_penalty_k) and 0.0 <= self.box_penalty_k <= 10.0, "tracking.box_penalty_k",
               self.box_penalty_k, "in [0, 10]")
        _check(_is_number(self.box_lr) and 0.0 <= self.box_lr <= 1.0, "tracking.box_lr", self.box_lr, "in [0, 1]")
        _check(self.box_position in BOX_POSITIONS, "tracking.box_position", self.box_position,
               " or ".join(map(repr, BOX_POSITIONS)))
        _check(_is_number(self.box_margin) and 0.0 <= self.box_margin <= MAX_BOX_MARGIN, "tracking.box_margin",
               self.box_margin, f"in [0, {MAX_BOX_MARGIN:g}]")
        _check(_is_int(self.memory_size) and 0 <= self.memory_size <= 16, "tracking.memory_size", self.memory_size,
               "an integer in [0, 16]")
        for key in ("memory_score_gate", "memory_max_similarity", "memory_min_similarity", "memory_first_weight",
                    "motion_weight", "redetect_threshold", "redetect_away_threshold", "drift_margin"):
            value = getattr(self, key)
            _check(_is_number(value) and 0.0 <= value <= 1.0, f"tracking.{key}", value, "in [0, 1]")
        _check(self.memory_min_similarity <= self.memory_max_similarity, "tracking.memory_min_similarity",
               self.memory_min_similarity, "<= memory_max_similarity")
        for key, top in (("memory_interval", 10000), ("motion_lost_frames", 10000), ("redetect_after", 10000),
                         ("redetect_windows", 64), ("redetect_away_frames", 30)):
            value = getattr(self, key)
            low = 1 if key in ("memory_interval", "redetect_windows", "redetect_away_frames") else 0
            _check(_is_int(value) and low <= value <= top, f"tracking.{key}", value, f"an integer in [{low}, {top}]")
        _check(isinstance(self.motion_prior, bool), "tracking.motion_prior", self.motion_prior, "true or false")
        _check(isinstance(self.scene_cut, bool), "tracking.scene_cut", self.scene_cut, "true or false")
        _check(isinstance(self.drift_check, bool), "tracking.drift_check", self.drift_check, "true or false")
        pairs_ok = isinstance(self.test_sizes, (list, tuple)) and 1 <= len(self.test_sizes) <= 8 and all(
            isinstance(p, (list, tuple)) and len(p) == 2 and all(_is_int(v) for v in p)
            and 63 <= p[0] < p[1] <= MAX_INPUT_SIZE for p in self.test_sizes)
        _check(pairs_ok, "tracking.test_sizes", self.test_sizes,
               f"a list of 1 to 8 [exemplar, instance] integer pairs, 63 <= exemplar < instance <= {MAX_INPUT_SIZE}")


CHANNEL_ORDERS = ("rgb", "bgr")


@dataclass
class NanoTrackConfig:
    """Tracking constants of the NanoTrack-family tracker (tracking/nanotrack.py), chosen on the validation tracks
    of config/finetune.yaml (README, NanoTrack)."""

    # Measured both ways on the validation tracks: BGR (the networks' training convention) 0.03-0.04 AUC above RGB
    # for v2 and v3 alike
    channel_order: str = "bgr"  # the crops' channel order fed to the network
    context: float = 0.5  # context margin around the target, as a fraction of (w + h)
    window_influence: float = 0.2  # cosine window weight on the score map
    penalty_k: float = 0.02  # penalty on a change of size and aspect ratio: exp(-k * (change - 1))
    lr: float = 0.65  # how far the box size moves to the regressed one, times the chosen point's score
    # Confidence in [0, 1] (the module notes of tracking/nanotrack.py) and the lost / re-acquire state. On the
    # validation tracks with 30 frames of another track spliced in: 73-77 % of the absent frames reported lost, 1 %
    # of the present ones; freezing the box lifted their AUC from 0.49 to 0.58
    lost_threshold: float = 0.6
    found_threshold: float = 0.7
    freeze_threshold: float = 0.35  # below this (and lost_threshold) the box freezes while the target is away
    # Re-detection (tracking/nanotrack.py, redetection.py): after `redetect_after` lost frames of a frozen box (0: off)
    # the frame is scanned, `redetect_windows` windows per frame in the same batch; the best peak is taken when its
    # probability reaches found_threshold and its logit `redetect_threshold` x the track's typical logit. With
    # `scene_cut`, a camera cut (tracking/scene_cut.py) freezes every target and reports it lost; its own search finds
    # it again only on a peak that verifies the same way. Chosen on the validation tracks' cut set (README, NanoTrack):
    # re-acquired within 1 s 73 -> 91 % of the returns, tracked on absent frames 45 -> 20 %, one-pass AUC unchanged
    redetect_after: int = 10
    redetect_windows: int = 4
    redetect_threshold: float = 0.7
    scene_cut: bool = True

    def validate(self) -> None:
        _check(self.channel_order in CHANNEL_ORDERS, "nanotrack.channel_order", self.channel_order, "rgb or bgr")
        _check(_is_number(self.context) and 0.0 <= self.context <= 2.0, "nanotrack.context", self.context,
               "in [0, 2]")
        _check(_is_number(self.window_influence) and 0.0 <= self.window_influence <= 1.0,
               "nanotrack.window_influence", self.window_influence, "in [0, 1]")
        _check(_is_number(self.penalty_k) and 0.0 <= self.penalty_k <= 10.0, "nanotrack.penalty_k", self.penalty_k,
               "in [0, 10]")
        _check(_is_number(self.lr) and 0.0 <= self.lr <= 1.0, "nanotrack.lr", self.lr, "in [0, 1]")
        _check(_is_number(self.lost_threshold) and _is_number(self.found_threshold)
               and 0.0 <= self.lost_threshold <= self.found_threshold <= 1.0, "nanotrack.lost_threshold",
               self.lost_threshold, "<= found_threshold, both in [0, 1]")
        _check(_is_number(self.freeze_threshold) and 0.0 <= self.freeze_threshold <= 1.0,
               "nanotrack.freeze_threshold", self.freeze_threshold, "in [0, 1]")
        _check(_is_int(self.redetect_after) and 0 <= self.redetect_after <= 10000, "nanotrack.redetect_after",
               self.redetect_after, "an integer in [0, 10000] (0: off)")
        _check(_is_int(self.redetect_windows) and 1 <= self.redetect_windows <= 64, "nanotrack.redetect_windows",
               self.redetect_windows, "an integer in [1, 64]")
        _check(_is_number(self.redetect_threshold) and 0.0 <= self.redetect_threshold <= 1.0,
               "nanotrack.redetect_threshold", self.redetect_threshold, "in [0, 1]")
        _check(isinstance(self.scene_cut, bool), "nanotrack.scene_cut", self.scene_cut, "true or false")


# The NanoTrack families backend.model can name; their ONNX pairs are the user's (README: where the public files are)
NANOTRACK_MODELS = ("nanotrack_v2", "nanotrack_v3")
BACKEND_NAMES = ("auto", "torch", "onnxruntime", "tensorrt")
DEVICES = ("auto", "cpu", "cuda")
# auto, the shipped weights (backends/select.py) and the NanoTrack families (the user's files)
MODEL_NAMES = ("auto", "small", "large", "small_box") + NANOTRACK_MODELS


@dataclass
class BackendConfig:
    name: str = "auto"  # BACKEND_NAMES
    device: str = "auto"  # DEVICES
    fp16: bool = True  # on CUDA only
    num_threads: int = 0  # 0 = library default
    # ONNX Runtime's worker threads busy-wait for work between calls when true (its own default). On a machine where
    # other processes want the cores (a robot: camera driver, other nodes) that spinning takes their time and the
    # tracker's: off here (`siam-tracker bench --load 1` shows the difference).
    onnx_allow_spinning: bool = False
    onnx_dir: str = ""  # where exported graphs are kept; empty = $XDG_CACHE_HOME or ~/.cache, siam_tracker_ros/onnx
    engine_cache_dir: str = ""  # TensorRT engines; empty = ~/.cache/siam_tracker_ros/engines
    max_targets: int = 4
    # Shipped weights when none are named (MODEL_NAMES): auto (large on CUDA, small on CPU) | small | large |
    # small_box (the small network with the box head: one search per frame) | nanotrack_v2 | nanotrack_v3 (the
    # user's NanoTrack files, found in $SIAM_PEERS_DIR/<model> or ../shared/peers/<model> when no weights are named)
    model: str = "auto"

    def validate(self) -> None:
        _check(self.name in BACKEND_NAMES, "backend.name", self.name, "one of " + ", ".join(BACKEND_NAMES))
        _check(self.device in DEVICES, "backend.device", self.device, "one of " + ", ".join(DEVICES))
        _check(self.num_threads >= 0, "backend.num_threads", self.num_threads, ">= 0")
        _check(self.model in MODEL_NAMES, "backend.model", self.model, "one of " + ", ".join(MODEL_NAMES))
        _check(self.max_targets >= 1, "backend.max_targets", self.max_targets, ">= 1")
        _check(isinstance(self.onnx_allow_spinning, bool), "backend.onnx_allow_spinning", self.onnx_allow_spinning,
               "true or false")
        _check(_is_int(self.num_threads) and self.num_threads <= 256, "backend.num_threads", self.num_threads,
               "an integer in [0, 256]")
        _check(_is_int(self.max_targets) and self.max_targets <= 64, "backend.max_targets", self.max_targets,
               "an integer in [1, 64]")


@dataclass
class TrainingConfig:
    data_dirs: list = field(default_factory=lambda: ["../shared/data/train"])
    val_sequences: list = field(default_factory=list)  # held out: never trained on; choices are made on them
    # Held out and never looked at for a choice (seeds, constants, recipes): the tracks quality is reported on.
    test_sequences: list = field(default_factory=list)
    epochs: int = 20
    pairs_per_epoch: int = 4000
    batch_size: int = 8
    lr_start: float = 1e-2
    lr_end: float = 1e-5
    optimizer: str = "sgd"  # sgd (momentum) | adam (AdamW: a new head learns faster than with SGD on few pairs)
    momentum: float = 0.9
    weight_decay: float = 5e-4
    max_frame_gap: int = 100
    negative_pair_prob: float = 0.2
    gray_prob: float = 0.1
    flip_prob: float = 0.2
    radius: float = 16.0  # R of eq. 9 in search-image pixels
    multi_scale_train: bool = True  # exemplar side drawn in [127, 255], search in [255, 383] (paper sec. 4.2)
    seed: int = 1234
    num_workers: int = 0
    # Fine-tuning a pretrained backbone: its learning rate is lr * backbone_lr_scale, and with freeze_bn every
    # BatchNorm keeps its statistics (what the backbone learned on a million frames is easy to lose on a few thousand).
    backbone_lr_scale: float = 1.0  # 0: the backbone is frozen (no gradient is computed for it)
    freeze_bn: bool = False
    box_loss_weight: float = 1.0  # with the box head: weight of its (GIoU + quality) loss next to the response's

    def validate(self) -> None:
        _check(self.epochs >= 1, "training.epochs", self.epochs, ">= 1")
        _check(self.batch_size >= 1, "training.batch_size", self.batch_size, ">= 1")
        _check(self.lr_start >= self.lr_end > 0, "training.lr_start", self.lr_start, ">= lr_end > 0")
        _check(0 <= self.negative_pair_prob <= 1, "training.negative_pair_prob", self.negative_pair_prob,
               "in [0, 1]")
        _check(0 <= self.backbone_lr_scale <= 1, "training.backbone_lr_scale", self.backbone_lr_scale, "in [0, 1]")
        _check(self.optimizer in ("sgd", "adam"), "training.optimizer", self.optimizer, "sgd or adam")
        _check(_is_number(self.box_loss_weight) and self.box_loss_weight >= 0, "training.box_loss_weight",
               self.box_loss_weight, ">= 0")


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    backend: BackendConfig = field(default_factory=BackendConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    nanotrack: NanoTrackConfig = field(default_factory=NanoTrackConfig)

    def validate(self) -> "Config":
        self.model.validate()
        self.tracking.validate()
        self.backend.validate()
        self.nanotrack.validate()
        self.training.validate()
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "Config":
        return _build(cls, data or {}, "").validate()

    @classmethod
    def load(cls, path: str | Path) -> "Config":
        import yaml

        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except yaml.YAMLError as err:
            raise ConfigError(f"config file {path} is not valid YAML: {err}") from None
        if not isinstance(data, Mapping):
            raise ConfigError(f"config file {path} must hold a mapping, not {type(data).__name__}")
        try:
            return cls.from_dict(data)
        except ConfigError as err:
            raise ConfigError(f"{path}: {err}") from None

    def save(self, path: str | Path) -> None:
        import yaml

        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))


def model_config_from_dict(data: Mapping[str, Any]) -> ModelConfig:
    cfg = _build(ModelConfig, data, "model.")
    cfg.validate()
    return cfg


def _build(cls, data: Mapping[str, Any], prefix: str):
    if not isinstance(data, Mapping):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'} must be a mapping, not {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(prefix + k for k in unknown)}; "
                          f"known: {', '.join(sorted(fields))}")
    defaults = cls()
    kwargs = {}
    for name, value in data.items():
        default = getattr(defaults, name)
        if dataclasses.is_dataclass(default):
            kwargs[name] = _build(type(default), value, f"{prefix}{name}.")
        else:
            kwargs[name] = _coerce(value, default, prefix + name)
    return cls(**kwargs)


def _coerce(value, default, key):
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, not {value!r}")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} must be an integer, not {value!r}")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key} must be a number, not {value!r}")
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a string, not {value!r}")
        return value
    if isinstance(default, list):
        if not isinstance(value, list):
            raise ConfigError(f"{key} must be a list, not {value!r}")
        return value
    return value


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    """A finite int or float (not a bool): NaN and infinities are out of every range."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check(ok: bool, key: str, value, expected: str) -> None:
    if not ok:
        raise ConfigError(f"{key} = {value!r} is out of range: expected {expected}")
