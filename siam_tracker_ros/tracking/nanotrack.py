"""Tracking with a NanoTrack-family network (backends/nanotrack.py): the same public API as SiamTracker.

Per frame every target sends one 255 px search crop (side 255/127 of its exemplar region); all targets' crops go
through the backend as one batch. The network gives per point of an n x n grid (stride 16, centred on the crop) two
class logits and the distances to the box's four sides. Post-processing: the target probability (softmax), times a
penalty on the change of size and aspect ratio against the current box (exp(-k (change - 1))), blended with a cosine
window; the best point's box moves the centre there and the size towards the regressed one by lr x penalty x score.
Constants and the input channel order are config.NanoTrackConfig, chosen on the validation tracks.

Confidence. The network's target probability (softmax of the two class logits) at the chosen point. With these
constants and BGR input it stays at 0.8-1 while the target is in view on the validation tracks and falls to 0.1-0.6
on most frames of another scene spliced in (not on all: a scene holding an object much like the target keeps it
high). The cosine similarity of the backbone features under the box against the template's was measured too:
it is too sensitive to sub-cell shifts to separate present from absent (README, NanoTrack).

Lost state. Below `lost_threshold` the target is reported lost; it is reported tracked again above `found_threshold`.
Below `freeze_threshold` the box stops moving (it would follow whatever the other scene holds) and keeps its last
size; the search stays where the target was last seen until the confidence is back above `found_threshold`. There
is no wider search as in SiamTracker's lost mode: the ONNX heads are built for a 16 x 16 search map.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..config import Config, NanoTrackConfig
from .crops import channel_mean, crop_square, exemplar_region, to_tensor_layout
from .geometry import from_center, to_center
from .tracker import DEFAULT_TARGET, TargetSet, TrackResult
from .validation import prepare_frame, validate_box

EXEMPLAR_SIZE = 127
INSTANCE_SIZE = 255
STRIDE = 16
MIN_SIZE = 4.0  # smallest tracked box side in pixels


@dataclass
class _Target:
    cx: float
    cy: float
    w: float
    h: float
    kernel: np.ndarray  # (1, C, 8, 8) template features
    lost: bool = False
    frozen: bool = False
    lost_frames: int = 0
    reacquisitions: int = 0  # LOST -> TRACKED transitions


def _softmax_target(cls: np.ndarray) -> np.ndarray:
    """(2, n, n) logits (background, target) -> the target's probability map (n, n)."""
    m = np.maximum(cls[0], cls[1])
    e0, e1 = np.exp(cls[0] - m), np.exp(cls[1] - m)
    return e1 / (e0 + e1)


def _change(r):
    return np.maximum(r, 1.0 / r)


def _context_size(w, h):
    p = (w + h) * 0.5
    return np.sqrt((w + p) * (h + p))


class NanoTracker(TargetSet):
    """init / update / remove / rename / state / targets / warm_up / reset_timings / from_config, as SiamTracker."""

    def __init__(self, backend, config: NanoTrackConfig | None = None):
        self.backend = backend
        self.cfg = cfg = config or NanoTrackConfig()
        cfg.validate()
        self._targets: dict[str, _Target] = {}
        self._windows: dict[int, np.ndarray] = {}
        self.timings = {"crop": 0.0, "template": 0.0, "search": 0.0, "post": 0.0}

    @classmethod
    def from_config(cls, config: Config | None = None, weights=None, backend=None) -> "NanoTracker":
        from .build import create_nanotrack_backend

        config = config or Config()
        if backend is None:
            backend = create_nanotrack_backend(config.backend, weights)
        return cls(backend, config.nanotrack)

    def state(self, target_id: str) -> dict:
        t = self._targets[target_id]
        return {"box": list(from_center(t.cx, t.cy, t.w, t.h)), "lost": t.lost, "lost_frames": t.lost_frames,
                "reacquisitions": t.reacquisitions}

    # ------------------------------------------------------------------ crops
    def _layout(self, crops: list[np.ndarray]) -> np.ndarray:
        x = to_tensor_layout(crops)
        return x[:, ::-1] if self.cfg.channel_order == "rgb" else x

    def _search_region(self, t: _Target) -> float:
        return exemplar_region(t.w, t.h, self.cfg.context) * INSTANCE_SIZE / EXEMPLAR_SIZE

    # ------------------------------------------------------------------ init
    def init(self, frame, box, target_id: str = DEFAULT_TARGET) -> None:
        """Start (or restart) tracking `target_id` at `box` (x, y, w, h) on `frame`."""
        frame = prepare_frame(frame)
        cx, cy, w, h = to_center(validate_box(box, frame.shape))
        pad = channel_mean(frame)
        t0 = time.perf_counter()
        s_z = exemplar_region(w, h, self.cfg.context)
        z = self._layout([crop_square(frame, cx, cy, s_z, EXEMPLAR_SIZE, pad)])
        t1 = time.perf_counter()
        kernel = self.backend.template(z)
        self.timings["crop"] += t1 - t0
        self.timings["template"] += time.perf_counter() - t1
        target = _Target(cx=cx, cy=cy, w=w, h=h, kernel=kernel)
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
        regions = {tid: self._search_region(t) for tid, t in targets.items()}
        x = self._layout([crop_square(frame, t.cx, t.cy, regions[tid], INSTANCE_SIZE, pad)
                          for tid, t in targets.items()])
        kernel = np.concatenate([t.kernel for t in targets.values()], axis=0)
        t1 = time.perf_counter()
        out = self.backend.search(x, kernel)
        t2 = time.perf_counter()
        results = {tid: self._update_one(tid, t, out[k], regions[tid], frame.shape)
                   for k, (tid, t) in enumerate(targets.items())}
        t3 = time.perf_counter()
        self.timings["crop"] += t1 - t0
        self.timings["search"] += t2 - t1
        self.timings["post"] += t3 - t2
        return results

    def _window(self, n: int) -> np.ndarray:
        w = self._windows.get(n)
        if w is None:
            h = np.hanning(n)
            self._windows[n] = w = np.outer(h, h)
        return w

    def _update_one(self, tid, t: _Target, out: np.ndarray, region: float, frame_shape) -> TrackResult:
        cfg = self.cfg
        out = out.astype(np.float64)
        score = _softmax_target(out[:2])
        n = score.shape[0]
        scale = INSTANCE_SIZE / region  # search-crop pixels per image pixel
        points = (np.arange(n) - n // 2) * STRIDE
        left, top, right, bottom = out[2:6]
        x1, y1 = points[None, :] - left, points[:, None] - top
        x2, y2 = points[None, :] + right, points[:, None] + bottom
        width, height = np.maximum(x2 - x1, 1e-3), np.maximum(y2 - y1, 1e-3)
        cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
        w0, h0 = t.w * scale, t.h * scale
        size_change = _change(_context_size(width, height) / _context_size(w0, h0))
        ratio_change = _change((w0 / h0) / (width / height))
        penalty = np.exp(-(size_change * ratio_change - 1.0) * cfg.penalty_k)
        pscore = penalty * score * (1.0 - cfg.window_influence) + self._window(n) * cfg.window_influence
        by, bx = np.unravel_index(int(np.argmax(pscore)), pscore.shape)
        confidence = float(score[by, bx])
        if self._follows(t, confidence):
            lr = float(penalty[by, bx] * score[by, bx]) * cfg.lr
            t.cx += float(cx[by, bx]) / scale
            t.cy += float(cy[by, bx]) / scale
            t.w = t.w * (1.0 - lr) + float(width[by, bx]) / scale * lr
            t.h = t.h * (1.0 - lr) + float(height[by, bx]) / scale * lr
            self._clamp(t, frame_shape)
        # The heatmap: the target probability as logits (TrackResult.response applies the sigmoid), one value per
        # grid point over the n x 16 pixels of the search crop the grid covers (the heatmap warps it onto the image;
        # no upsampling per frame).
        logits = (out[1] - out[0]).astype(np.float32)
        response_region = (t.cx, t.cy, n * STRIDE / scale)
        box = np.array(from_center(t.cx, t.cy, t.w, t.h))
        return TrackResult(tid, box, confidence, t.lost, logits, response_region)

    # ------------------------------------------------------------------ confidence
    def _follows(self, t: _Target, confidence: float) -> bool:
        """The reported state (with hysteresis) and whether the box follows this frame's match."""
        cfg = self.cfg
        was_lost = t.lost
        t.lost = confidence < (cfg.found_threshold if t.lost else cfg.lost_threshold)
        t.reacquisitions += was_lost and not t.lost
        t.lost_frames = t.lost_frames + 1 if t.lost else 0
        if confidence < min(cfg.freeze_threshold, cfg.lost_threshold):
            t.frozen = True
        elif confidence >= cfg.found_threshold:
            t.frozen = False
        return not t.frozen

    def _clamp(self, t: _Target, frame_shape) -> None:
        height, width = frame_shape[:2]
        t.cx = float(np.clip(t.cx, 0, width - 1))
        t.cy = float(np.clip(t.cy, 0, height - 1))
        t.w = float(np.clip(t.w, MIN_SIZE, width))
        t.h = float(np.clip(t.h, MIN_SIZE, height))

    # ------------------------------------------------------------------ timing, warm-up
    def reset_timings(self) -> None:
        for k in self.timings:
            self.timings[k] = 0.0

    def warm_up(self, max_targets: int) -> list[tuple[str, int, int]]:
        """Every backend call `update` can make with up to `max_targets` targets (one search crop each)."""
        rng = np.random.default_rng(0)
        z = rng.uniform(0, 255, (1, 3, EXEMPLAR_SIZE, EXEMPLAR_SIZE)).astype(np.float32)
        kernel = self.backend.template(z)
        calls = [("template", EXEMPLAR_SIZE, 1)]
        for batch in range(1, max_targets + 1):
            x = rng.uniform(0, 255, (batch, 3, INSTANCE_SIZE, INSTANCE_SIZE)).astype(np.float32)
            self.backend.search(x, np.repeat(kernel, batch, axis=0))
            calls.append(("search", INSTANCE_SIZE, batch))
        return calls
