"""SiamFC tracking with the paper's network: `init(frame, box)` once per target, `update(frame)` every frame.

Per frame, every tracked target contributes `num_scales` search crops (and one wider crop per lost target); all crops
of one input size go through the backend's search branch as one batch. The template branch runs only in `init`.

Box mode. A network with the box head (model/box_head.py) gives, per response cell, a centre-ness logit, the
target's centre offset and its log size change. With `box_regression` (the default for such a network) each target
sends one search crop, not a pyramid. `box_position` says where the centre comes from: "head" (default) chooses the
cell on the response (min-max normalised) times the centre-ness, penalised for a change of size and aspect ratio and
blended with a cosine window, and takes the head's centre there (SiamRPN's and SiamFC++'s post-processing);
"response" finds it exactly as the pyramid does on its middle scale (the upsampled response's peak with the cosine
window) and reads the head's size there. Either way the size moves towards the regressed one by `box_lr` times the
change penalty and the score. Confidence, lost state and the lost mode's wide search read the response exactly as
the pyramid does.

Confidence. Raw SiamFC peaks hardly move when the target disappears, because the response is read after
normalisation, and their scale differs from target to target. Read as logits they do drop. On the init frame each
target records its own scale: the peak logit on itself (`reference`) and the median logit of that response (`floor`,
the level of "background"). The confidence of a later peak is (peak - floor) / (reference - floor), clipped to [0, 1]:
about 0.6-1 while the target is in view, 0.3-0.5 when the camera shows another scene (the pretrained networks still
find some texture to match there), near 0 when only flat background is left.

Two levels act on it. Below `lost_threshold` the target is *reported* lost (a controller must not steer by it) but
the box keeps following the best match, so a target that only looks different for a while is not given up; it is
reported tracked again above `found_threshold`. Below `freeze_threshold` (the lower of the two) the box freezes and
the tracker searches a wider area (a larger input at the same resolution, so the template still matches in scale)
until the confidence climbs back over `found_threshold`. Measured on the training tracks: freezing at 0.5 instead
of 0.35 costs 0.06 success AUC, while reporting at 0.5 flags 30 of 30 frames after camera cuts on two of three
tests (docs/design.md).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from ..config import MAX_LOG_SIZE_CHANGE, Config, TrackingConfig
from .crops import channel_mean, crop_square, exemplar_region, to_tensor_layout
from .geometry import from_center, to_center

DEFAULT_TARGET = "default"
MIN_CONFIDENCE_SPREAD = 0.5  # logits
LOST_SEARCH_EXTRA = 128  # pixels added to the search input while a target is lost (lost_search_key)
# How far a box may reach past the image, as a fraction of the image's width / height (validate_box).
BOX_MARGIN = 1.0


class InputError(ValueError):
    """A frame or box the tracker cannot use; the message says what is wrong."""


@dataclass
class TrackResult:
    target_id: str
    box: np.ndarray  # (x, y, w, h), top-left corner, image pixels
    confidence: float  # [0, 1]
    lost: bool
    response_logits: np.ndarray  # upsampled logit map of the chosen scale, float32
    response_region: tuple  # (cx, cy, side): the square of the image the response map covers

    @property
    def response(self) -> np.ndarray:
        """The response as a probability map, float32 in [0, 1]: computed on demand (the heatmap), not per frame."""
        return _sigmoid(self.response_logits).astype(np.float32)


@dataclass
class _Target:
    cx: float
    cy: float
    w: float
    h: float
    kernels: dict = field(default_factory=dict)  # exemplar size -> (1, C, k, k)
    reference: float = 1.0  # peak logit of the target on its init frame
    floor: float = 0.0  # median logit of that response: the background level
    lost: bool = False  # reported state
    searching: bool = False  # box frozen, wide search (confidence fell below freeze_threshold)
    lost_frames: int = 0
    growth: float = 1.0


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


def prepare_frame(frame) -> np.ndarray:
    """Return an (H, W, 3) uint8 BGR frame, converting grey and 4-channel frames; reject anything else clearly."""
    if not isinstance(frame, np.ndarray):
        raise InputError(f"frame must be a numpy array, not {type(frame).__name__}")
    if frame.dtype != np.uint8:
        raise InputError(f"frame must be uint8 (8-bit BGR), got dtype {frame.dtype}")
    if frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] == 1):
        frame = cv2.cvtColor(frame.reshape(frame.shape[:2]), cv2.COLOR_GRAY2BGR)
    elif frame.ndim == 3 and frame.shape[2] == 4:
        frame = cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    elif frame.ndim != 3 or frame.shape[2] != 3:
        raise InputError(f"frame must be HxW (grey), HxWx3 (BGR) or HxWx4 (BGRA), got shape {frame.shape}")
    if frame.shape[0] < 8 or frame.shape[1] < 8:
        raise InputError(f"frame of {frame.shape[1]}x{frame.shape[0]} pixels is too small")
    return frame


def validate_box(box, frame_shape) -> np.ndarray:
    """(x, y, w, h) as floats, or InputError naming what is wrong (NaN, too small, off the image)."""
    try:
        b = np.asarray(box, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise InputError(f"box must be four numbers (x, y, w, h), got {box!r}") from None
    if b.size != 4:
        raise InputError(f"box must be four numbers (x, y, w, h), got {b.size}")
    if not np.all(np.isfinite(b)):
        raise InputError(f"box {b.tolist()} has NaN or infinite values")
    x, y, w, h = b
    if w <= 0 or h <= 0:
        raise InputError(f"box {b.tolist()} is empty: width and height must be positive")
    if w < 2 or h < 2:
        raise InputError(f"box {b.tolist()} is too small to track: at least 2x2 pixels")
    height, width = frame_shape[:2]
    if x >= width or y >= height or x + w <= 0 or y + h <= 0:
        raise InputError(f"box {b.tolist()} lies outside the {width}x{height} image")
    check_box_margin(b, frame_shape, BOX_MARGIN)
    return b


def check_box_margin(box, frame_shape, margin: float) -> None:
    """InputError unless the box stays within `margin` x the image size of the image on every side.

    Bounds the coordinates themselves: (-5e307, 100, 1e308, 20) overlaps the image but is not a box to track.
    """
    x, y, w, h = (float(v) for v in box)
    height, width = frame_shape[:2]
    mx, my = margin * width, margin * height
    if not (x >= -mx and y >= -my and x + w <= width + mx and y + h <= height + my):
        raise InputError(f"box {[x, y, w, h]} reaches too far outside the {width}x{height} image: every edge must "
                         f"lie within {margin:g} x the image size of it (x in [{-mx:g}, {width + mx:g}], "
                         f"y in [{-my:g}, {height + my:g}])")


class SiamTracker:
    def __init__(self, backend, config: TrackingConfig | None = None):
        self.backend = backend
        self.cfg = cfg = config or TrackingConfig()
        cfg.validate()
        self.box_mode = uses_box_head(cfg, backend)
        n = 1 if self.box_mode else cfg.num_scales
        self.scale_factors = cfg.scale_step ** (np.arange(n) - n // 2)
        self.pairs = input_pairs(cfg, self.box_mode)
        self.lost_instance_size = lost_search_key(cfg)[1]
        self._targets: dict[str, _Target] = {}
        self._windows: dict[int, np.ndarray] = {}
        self._box_windows: dict[int, np.ndarray] = {}
        self.timings = {"crop": 0.0, "template": 0.0, "search": 0.0, "post": 0.0}

    @classmethod
    def from_config(cls, config: Config | None = None, weights=None, backend=None) -> "SiamTracker":
        from ..backends import create_backend

        config = config or Config()
        if backend is None:
            backend = create_backend(config.backend, weights, expected_model=None,
                                     max_batch=max_search_batch(config.tracking, config.backend.max_targets))
        return cls(backend, config.tracking)

    # ------------------------------------------------------------------ targets
    @property
    def targets(self) -> list[str]:
        return list(self._targets)

    def remove(self, target_id: str) -> bool:
        return self._targets.pop(target_id, None) is not None

    def clear(self) -> None:
        self._targets.clear()

    def rename(self, old_id: str, new_id: str) -> None:
        """Give target `old_id` (its whole state) the id `new_id`, replacing any target of that id (the ROS node
        initialises and catches up a new target under a provisional id, then installs it under its own)."""
        self._targets[new_id] = self._targets.pop(old_id)

    def state(self, target_id: str) -> dict:
        t = self._targets[target_id]
        return {"box": list(from_center(t.cx, t.cy, t.w, t.h)), "lost": t.lost, "lost_frames": t.lost_frames}

    # ------------------------------------------------------------------ init
    def init(self, frame, box, target_id: str = DEFAULT_TARGET) -> None:
        """Start (or restart) tracking `target_id` at `box` (x, y, w, h) on `frame`."""
        frame = prepare_frame(frame)
        cx, cy, w, h = to_center(validate_box(box, frame.shape))
        target = _Target(cx=cx, cy=cy, w=w, h=h)
        pad = channel_mean(frame)
        s_z = exemplar_region(w, h, self.cfg.context)
        for z_size in sorted({p[0] for p in self.pairs}):
            t0 = time.perf_counter()
            z = to_tensor_layout([crop_square(frame, target.cx, target.cy, s_z, z_size, pad)])
            t1 = time.perf_counter()
            target.kernels[z_size] = self.backend.template(z)
            self.timings["crop"] += t1 - t0
            self.timings["template"] += time.perf_counter() - t1
        # The target's own score on its init frame is the reference the confidence is measured against.
        z_size, x_size = self.pairs[0]
        crop = to_tensor_layout([crop_square(frame, target.cx, target.cy, s_z * x_size / z_size, x_size, pad)])
        logits = self.backend.search(crop, target.kernels[z_size])[0, 0]  # channel 0: the response
        target.reference = float(logits.max())
        # A flat response (a target much like its surroundings) would make the ratio noisy: keep a minimum spread.
        target.floor = float(min(np.median(logits), target.reference - MIN_CONFIDENCE_SPREAD))
        self._targets[target_id] = target

    # ------------------------------------------------------------------ update
    def update(self, frame, ids=None) -> dict[str, TrackResult]:
        """Track every target (or only those of `ids`) one frame further; returns a result per target id tracked."""
        targets = self._targets if ids is None else {i: self._targets[i] for i in ids if i in self._targets}
        if not targets:
            return {}
        frame = prepare_frame(frame)
        t0 = time.perf_counter()
        pad = channel_mean(frame)
        # Requests: (z_size, x_size) -> list of (target id, scale index, region side, crop)
        groups: dict[tuple, list] = {}
        for tid, t in targets.items():
            s_z = exemplar_region(t.w, t.h, self.cfg.context)
            if t.searching:
                z_size = self.pairs[0][0]
                x_size = self.lost_instance_size
                region = s_z * x_size / z_size * t.growth
                crop = crop_square(frame, t.cx, t.cy, region, x_size, pad)
                groups.setdefault((z_size, x_size), []).append((tid, 0, region, crop))
                continue
            for z_size, x_size in self.pairs:
                for i, f in enumerate(self.scale_factors):
                    region = s_z * x_size / z_size * f
                    crop = crop_square(frame, t.cx, t.cy, region, x_size, pad)
                    groups.setdefault((z_size, x_size), []).append((tid, i, region, crop))
        t1 = time.perf_counter()
        self.timings["crop"] += t1 - t0

        outputs: dict[tuple, np.ndarray] = {}  # (tid, z_size, x_size, scale) -> (output channels, H, W)
        regions: dict[tuple, float] = {}
        search_time = 0.0
        for (z_size, x_size), items in groups.items():
            x = to_tensor_layout([it[3] for it in items])
            kernel = np.concatenate([targets[it[0]].kernels[z_size] for it in items], axis=0)
            ts = time.perf_counter()
            out = self.backend.search(x, kernel)
            search_time += time.perf_counter() - ts
            for (tid, i, region, _), r in zip(items, out):
                outputs[(tid, z_size, x_size, i)] = r
                regions[(tid, z_size, x_size, i)] = region
        self.timings["search"] += search_time
        t2 = time.perf_counter()
        self.timings["crop"] += (t2 - t1) - search_time  # stacking crops into the batch

        results = {}
        for tid, t in targets.items():
            if t.searching:
                results[tid] = self._update_lost(tid, t, outputs, regions, frame.shape)
            elif self.box_mode:
                results[tid] = self._update_box(tid, t, outputs, regions, frame.shape)
            else:
                results[tid] = self._update_tracked(tid, t, outputs, regions, frame.shape)
        self.timings["post"] += time.perf_counter() - t2
        return results

    # ------------------------------------------------------------------ post-processing
    def _window(self, size: int) -> np.ndarray:
        w = self._windows.get(size)
        if w is None:
            h = np.hanning(size)
            w = np.outer(h, h)
            self._windows[size] = w = (w / w.sum()).astype(np.float32)
        return w

    def _upsample(self, logits: np.ndarray) -> np.ndarray:
        # Logits, not probabilities: a confident network's peak logits (8-12 for the pretrained SiamFC weights)
        # saturate the sigmoid into a flat plateau on which the peak's position is lost.
        size = logits.shape[0] * self.cfg.response_upsample
        return cv2.resize(logits.astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)

    def _fused_maps(self, tid: str, outputs, scale: int) -> tuple[np.ndarray, float]:
        """Upsampled logit map of one scale (multi-scale test: the input sizes' maps fused), peak logit."""
        z0, x0 = self.pairs[0]
        first = outputs[(tid, z0, x0, scale)][0]
        peak = float(first.max())  # the confidence is measured on the first (reference) input size
        up = self._upsample(first)
        if len(self.pairs) == 1:
            return up, peak
        # Other input sizes see the exemplar at z / z0 times the resolution: resample their maps onto the first grid.
        total, count = up.copy(), np.ones_like(up)
        size = up.shape[0]
        c = (size - 1) / 2.0
        for z_size, x_size in self.pairs[1:]:
            other = self._upsample(outputs[(tid, z_size, x_size, scale)][0])
            s = z0 / z_size
            oc = (other.shape[0] - 1) / 2.0
            m = np.array([[s, 0, c - s * oc], [0, s, c - s * oc]], dtype=np.float64)
            total += cv2.warpAffine(other, m, (size, size), flags=cv2.INTER_LINEAR, borderValue=0)
            count += cv2.warpAffine(np.ones_like(other), m, (size, size), flags=cv2.INTER_NEAREST, borderValue=0)
        return total / count, peak

    def _locate(self, up: np.ndarray, window_influence: float) -> tuple[float, float]:
        r = up - up.min()
        r /= r.sum() + 1e-12
        r = (1.0 - window_influence) * r + window_influence * self._window(r.shape[0])
        py, px = np.unravel_index(int(np.argmax(r)), r.shape)
        c = (r.shape[0] - 1) / 2.0
        return px - c, py - c  # displacement in upsampled response pixels

    def _to_image(self, disp: float, region: float, x_size: int) -> float:
        return disp * self.cfg.total_stride / self.cfg.response_upsample * region / x_size

    def _update_tracked(self, tid, t: _Target, outputs, regions, frame_shape) -> TrackResult:
        cfg = self.cfg
        z0, x0 = self.pairs[0]
        maps, peaks, scores = [], [], []
        for i in range(len(self.scale_factors)):
            up, peak = self._fused_maps(tid, outputs, i)
            # SiamFC multiplies each off-centre scale's peak score by the penalty. The score here is the peak logit
            # above the target's own background level (`floor`): independent of the network's logit offset, and
            # equal to SiamFC's raw score for a network without one. It is negative when every peak is below the
            # floor: there it is divided by the penalty, so an off-centre scale always scores lower, whatever the sign.
            penalty = cfg.scale_penalty if i != len(self.scale_factors) // 2 else 1.0
            margin = float(up.max()) - t.floor
            scores.append(margin * penalty if margin >= 0.0 else margin / penalty)
            maps.append(up)
            peaks.append(peak)
        best = int(np.argmax(scores))
        up = maps[best]
        region = regions[(tid, z0, x0, best)]
        confidence = self._confidence(t, peaks[best])
        response_region = (t.cx, t.cy, up.shape[0] * cfg.total_stride / cfg.response_upsample * region / x0)
        if self._follows(t, confidence):
            dx, dy = self._locate(up, cfg.window_influence)
            t.cx += self._to_image(dx, region, x0)
            t.cy += self._to_image(dy, region, x0)
            factor = (1.0 - cfg.scale_lr) + cfg.scale_lr * self.scale_factors[best]
            t.w, t.h = t.w * factor, t.h * factor
            self._clamp(t, frame_shape)
        return self._result(tid, t, confidence, up, response_region)

    def _follows(self, t: _Target, confidence: float) -> bool:
        """The state change of a tracked target's frame; whether its box follows the best match (False: frozen)."""
        cfg = self.cfg
        if confidence < min(cfg.freeze_threshold, cfg.lost_threshold):
            # Freeze the box rather than follow a distractor; search wider from the next frame on.
            t.lost, t.searching, t.growth = True, True, 1.0
            t.lost_frames += 1
            return False
        # Reported state with hysteresis; the box follows the best match either way.
        t.lost = confidence < (cfg.found_threshold if t.lost else cfg.lost_threshold)
        t.lost_frames = t.lost_frames + 1 if t.lost else 0
        return True

    def _box_window(self, size: int) -> np.ndarray:
        """Box mode's cosine window: peak 1 (the score map is max-normalised), unlike the pyramid's (sum 1)."""
        w = self._box_windows.get(size)
        if w is None:
            h = np.hanning(size + 2)[1:-1]  # no zero rows: an edge cell can still win on a strong score
            self._box_windows[size] = w = np.outer(h, h).astype(np.float32)
        return w

    def _update_box(self, tid, t: _Target, outputs, regions, frame_shape) -> TrackResult:
        """Box mode (module notes): one search crop; the centre from the head's best cell (`box_position` "head")
        or from the response's peak ("response"), the size from the head's box there."""
        cfg = self.cfg
        z0, x0 = self.pairs[0]
        out = outputs[(tid, z0, x0, 0)].astype(np.float64)
        region = regions[(tid, z0, x0, 0)]
        confidence = self._confidence(t, float(out[0].max()))
        up = self._upsample(out[0])
        response_region = (t.cx, t.cy, up.shape[0] * cfg.total_stride / cfg.response_upsample * region / x0)
        if self._follows(t, confidence):
            scale = x0 / region  # search-crop pixels per image pixel
            # The head's boxes (model/box_head.py) are relative to the box the crop was cut for, the current one.
            anchor = (t.w * scale, t.h * scale)
            if cfg.box_position == "response":
                dx, dy, width, height, lr = self._box_at_response_peak(out, up, anchor)
            else:
                dx, dy, width, height, lr = self._box_at_head_cell(out, anchor)
            t.cx += dx / scale
            t.cy += dy / scale
            t.w = t.w * (1.0 - lr) + width / scale * lr
            t.h = t.h * (1.0 - lr) + height / scale * lr
            self._clamp(t, frame_shape)
        return self._result(tid, t, confidence, up, response_region)

    def _box_change_penalty(self, width, height, anchor):
        """SiamRPN's penalty on a change of size and aspect ratio against the current box, in (0, 1]."""
        w0, h0 = anchor
        size_change = _change(_context_size(width, height) / _context_size(w0, h0))
        ratio_change = _change((w0 / h0) / (width / height))
        return np.exp(-(size_change * ratio_change - 1.0) * self.cfg.box_penalty_k)

    def _box_at_response_peak(self, out, up, anchor):
        """The pyramid's localisation on the one crop (peak of the upsampled response with its window); the head's
        size, centre-ness and change penalty read there (bilinear between cells). Returns the centre's displacement
        and the box size in search-crop pixels, and the size's learning rate."""
        cfg = self.cfg
        dx, dy = self._locate(up, cfg.window_influence)  # upsampled response pixels from the centre
        n_y, n_x = out.shape[1:]
        # Upsampled pixel -> cell: cv2.resize maps the centre of the map onto the centre, 1 cell = upsample pixels.
        quality, sw, sh = _sample_bilinear(out[[1, 4, 5]], (n_x - 1) / 2.0 + dx / cfg.response_upsample,
                                           (n_y - 1) / 2.0 + dy / cfg.response_upsample)
        width, height = decode_head_size(sw, sh, anchor)
        lr = float(self._box_change_penalty(width, height, anchor) * _sigmoid(quality)) * cfg.box_lr
        step = cfg.total_stride / cfg.response_upsample
        return dx * step, dy * step, float(width), float(height), lr

    def _box_at_head_cell(self, out, anchor):
        """SiamFC++'s post-processing: the cell chosen on the response (min-max normalised) x centre-ness x change
        penalty, blended with a cosine window; centre and size both regressed at that cell."""
        cfg = self.cfg
        cls, quality = out[0], out[1]
        n_y, n_x = cls.shape
        cx, cy, width, height = decode_head_boxes(out[2:6], anchor, cfg.total_stride)
        penalty = self._box_change_penalty(width, height, anchor)
        score = (cls - cls.min()) / max(float(cls.max() - cls.min()), 1e-9) * _sigmoid(quality)
        wi = cfg.box_window_influence
        pscore = (1.0 - wi) * score * penalty + wi * self._box_window(n_y)
        by, bx = np.unravel_index(int(np.argmax(pscore)), pscore.shape)
        lr = float(penalty[by, bx] * score[by, bx]) * cfg.box_lr
        return float(cx[by, bx]), float(cy[by, bx]), float(width[by, bx]), float(height[by, bx]), lr

    def _update_lost(self, tid, t: _Target, outputs, regions, frame_shape) -> TrackResult:
        cfg = self.cfg
        z0 = self.pairs[0][0]
        key = (tid, z0, self.lost_instance_size, 0)
        r = outputs[key][0]
        region = regions[key]
        confidence = self._confidence(t, float(r.max()))
        up = self._upsample(r)
        response_region = (t.cx, t.cy, up.shape[0] * cfg.total_stride / cfg.response_upsample * region
                           / self.lost_instance_size)
        if confidence >= cfg.found_threshold:
            dx, dy = self._locate(up, 0.0)  # no motion prior: the target may be anywhere in the wide area
            t.cx += self._to_image(dx, region, self.lost_instance_size)
            t.cy += self._to_image(dy, region, self.lost_instance_size)
            t.lost, t.searching, t.lost_frames, t.growth = False, False, 0, 1.0
            self._clamp(t, frame_shape)
        else:
            t.lost_frames += 1
            t.growth = min(t.growth * cfg.lost_search_growth, cfg.lost_search_max)
        return self._result(tid, t, confidence, up, response_region)

    @staticmethod
    def _confidence(t: _Target, peak_logit: float) -> float:
        return float(np.clip((peak_logit - t.floor) / (t.reference - t.floor), 0.0, 1.0))

    def _clamp(self, t: _Target, frame_shape) -> None:
        height, width = frame_shape[:2]
        t.cx = float(np.clip(t.cx, 0, width - 1))
        t.cy = float(np.clip(t.cy, 0, height - 1))
        t.w = float(np.clip(t.w, self.cfg.min_size, width))
        t.h = float(np.clip(t.h, self.cfg.min_size, height))

    @staticmethod
    def _result(tid, t: _Target, confidence, up, response_region) -> TrackResult:
        box = np.array(from_center(t.cx, t.cy, t.w, t.h))
        return TrackResult(tid, box, confidence, t.lost, up, response_region)

    def reset_timings(self) -> None:
        for k in self.timings:
            self.timings[k] = 0.0

    def warm_up(self, max_targets: int) -> list[tuple[str, int, int]]:
        """Run every backend call `update` can make with up to `max_targets` targets, so none is built lazily later.

        Each template size, and each search graph (every input size of the scale set, the lost-mode search) at every
        batch size it can get. Returns the (branch, input size, batch) calls made.
        """
        calls = []
        rng = np.random.default_rng(0)
        kernels = {}
        for z_size in sorted({p[0] for p in self.pairs}):
            z = rng.uniform(0, 255, (1, 3, z_size, z_size)).astype(np.float32)
            kernels[z_size] = self.backend.template(z)
            calls.append(("template", z_size, 1))
        for z_size, x_size, batch in search_calls(self.cfg, max_targets, self.box_mode):
            x = rng.uniform(0, 255, (batch, 3, x_size, x_size)).astype(np.float32)
            self.backend.search(x, np.repeat(kernels[z_size], batch, axis=0))
            calls.append(("search", x_size, batch))
        return calls


def decode_head_size(sw, sh, anchor) -> tuple[np.ndarray, np.ndarray]:
    """The box head's log size changes -> width, height in search pixels: anchor * exp(clipped change)."""
    return (anchor[0] * np.exp(np.clip(sw, -MAX_LOG_SIZE_CHANGE, MAX_LOG_SIZE_CHANGE)),
            anchor[1] * np.exp(np.clip(sh, -MAX_LOG_SIZE_CHANGE, MAX_LOG_SIZE_CHANGE)))


def decode_head_boxes(box: np.ndarray, anchor, stride: float) -> tuple[np.ndarray, ...]:
    """One map of the box head's (4, H, W) ox, oy, sw, sh and the anchor (w, h) -> cx, cy, w, h maps in search
    pixels from the crop's centre: centre = cell + stride * offset, size = anchor * exp(change). The NumPy twin of
    training/loss.py decode_boxes (the tracker imports no torch); test_training checks that the two agree."""
    ox, oy, sw, sh = box
    n_y, n_x = ox.shape
    cx = (np.arange(n_x) - (n_x - 1) / 2.0)[None, :] * stride + stride * ox
    cy = (np.arange(n_y) - (n_y - 1) / 2.0)[:, None] * stride + stride * oy
    width, height = decode_head_size(sw, sh, anchor)
    return cx, cy, width, height


def _sample_bilinear(maps: np.ndarray, x: float, y: float) -> np.ndarray:
    """Values of maps (C, H, W) at the fractional cell (x, y), clamped into the map."""
    n_y, n_x = maps.shape[1:]
    x, y = float(np.clip(x, 0, n_x - 1)), float(np.clip(y, 0, n_y - 1))
    x0, y0 = min(int(x), n_x - 2), min(int(y), n_y - 2)
    fx, fy = x - x0, y - y0
    top = maps[:, y0, x0] * (1 - fx) + maps[:, y0, x0 + 1] * fx
    bottom = maps[:, y0 + 1, x0] * (1 - fx) + maps[:, y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def _change(r):
    return np.maximum(r, 1.0 / r)


def _context_size(w, h):
    """SiamFC's size of a box with its context, sqrt((w + p)(h + p)), p = (w + h) / 2: the size penalty's measure."""
    p = (w + h) * 0.5
    return np.sqrt((w + p) * (h + p))


def uses_box_head(cfg: TrackingConfig, backend) -> bool:
    """Box mode: the network has the box head (its search gives more than the response) and box_regression is on."""
    return bool(cfg.box_regression) and getattr(backend, "output_channels", 1) > 1


def input_pairs(cfg: TrackingConfig, box_mode: bool = False) -> list[tuple[int, int]]:
    """The (exemplar size, search size) pairs of a tracked target's search: the test sizes, or the one pair (always
    in box mode: the regressed box replaces the multi-scale search)."""
    if cfg.multi_scale_test and not box_mode:
        return [tuple(p) for p in cfg.test_sizes]
    return [(cfg.exemplar_size, cfg.instance_size)]


def lost_search_key(cfg: TrackingConfig) -> tuple[int, int]:
    """(exemplar size, search size) of the lost-mode search: the first pair's search input LOST_SEARCH_EXTRA larger
    (e.g. 383 for 255: 1.5x the area side at the same resolution, so the template still matches in scale)."""
    z_size, x_size = input_pairs(cfg)[0]  # the same in box mode
    return z_size, x_size + LOST_SEARCH_EXTRA


def search_calls(cfg: TrackingConfig, max_targets: int, box_mode: bool = False) -> list[tuple[int, int, int]]:
    """Every (exemplar size, search size, batch) `update` can send to the backend with up to `max_targets` targets.

    Tracked targets send num_scales crops per input-size pair (one crop in box mode), lost ones one wider crop
    (pairs[0]'s exemplar size at the lost-mode size); any split of the targets between the two states can happen.
    """
    pairs = input_pairs(cfg, box_mode)
    crops = 1 if box_mode else cfg.num_scales
    lost_key = lost_search_key(cfg)
    calls = set()
    for tracked in range(max_targets + 1):
        for lost in range(max_targets + 1 - tracked):
            groups: dict[tuple, int] = {}
            for key in pairs:
                groups[key] = groups.get(key, 0) + crops * tracked
            groups[lost_key] = groups.get(lost_key, 0) + lost
            calls.update((z, x, b) for (z, x), b in groups.items() if b > 0)
    return sorted(calls)


def max_search_batch(cfg: TrackingConfig, max_targets: int) -> int:
    """The largest batch one search call can get: num_scales crops for each of `max_targets` tracked targets."""
    return max(b for _, _, b in search_calls(cfg, max_targets))


def track_sequence(tracker: SiamTracker, frames, init_box) -> tuple[np.ndarray, np.ndarray]:
    """Track one target over an iterable of frames (the first gets `init_box`); boxes (N, 4) and confidences (N,)."""
    boxes, confidences = [], []
    for i, frame in enumerate(frames):
        if i == 0:
            tracker.init(frame, init_box, DEFAULT_TARGET)
            boxes.append(np.asarray(init_box, dtype=np.float64))
            confidences.append(1.0)
            continue
        r = tracker.update(frame)[DEFAULT_TARGET]
        boxes.append(r.box)
        confidences.append(r.confidence)
    return np.array(boxes), np.array(confidences)
