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

Re-detection (redetection.py's GlobalScan, the same scan as SiamTracker's): once a frozen target has been lost for
`redetect_after` frames, search windows of its tracked search's size tile the frame and `redetect_windows` of them
join each frame's batch, correlated with the target's one template (its first). A window's peak is the target logit
(background and target logits' difference) at its best point and its place the regressed box's centre there; the
best peak is taken when its probability reaches `found_threshold` and its logit `redetect_threshold` x the track's
typical logit (the running average of the chosen point's logit on the frames reported tracked, from the first update
on; the floor is logit 0, probability 0.5): the box moves there at its last size and the target is reported tracked
again. The logit, not the probability, because the probability saturates: on the validation tracks' camera cuts the
other scene keeps it at 0.85-0.97 on 5 of 11 tracks where the target's own is 0.98-1.00, while its logit falls to
0.3-0.7 of the track's typical one. With `scene_cut`, a camera cut (scene_cut.py) freezes every target at once, and
(with re-detection on) its own search then finds it again only on a peak that verifies the same way; a box frozen by
a falling confidence is found again by its own search as before (verifying that too lowered the validation tracks'
one-pass AUC from 0.598 to 0.576-0.589).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..config import Config, NanoTrackConfig
from .crops import FramePad, SquareCropper, exemplar_region, to_tensor_layout
from .geometry import from_center, to_center
from .localisers import Search
from .redetection import GlobalScan, typical_ratio, update_typical
from .scene_cut import SceneCutDetector
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
    searching: bool = False  # box frozen: the confidence fell below freeze_threshold (the scan's word)
    after_cut: bool = False  # frozen by a camera cut: its own search must verify too
    lost_frames: int = 0
    reacquisitions: int = 0  # LOST -> TRACKED transitions
    redetections: int = 0  # of them, those found by the scan
    scan_index: int = 0  # the scan's next window
    typical: float | None = None  # running average of the chosen point's logit while tracked; from the first update
    floor: float = 0.0  # the verification's floor: logit 0 (probability 0.5)
    frame_size: tuple = (0, 0)  # (height, width) of the last frame it was on


def _softmax_target(cls: np.ndarray) -> np.ndarray:
    """(B, 2, n, n) logits (background, target) -> the target's probability maps (B, n, n)."""
    m = np.maximum(cls[:, 0], cls[:, 1])
    e0, e1 = np.exp(cls[:, 0] - m), np.exp(cls[:, 1] - m)
    return e1 / (e0 + e1)


@dataclass(frozen=True)
class _ScanPlan:
    """What GlobalScan reads of a search plan: the windows' (exemplar, search) input sizes."""

    lost_key: tuple[int, int] = (EXEMPLAR_SIZE, INSTANCE_SIZE)


class _Scan(GlobalScan):
    """GlobalScan over NanoTrack's outputs: a window's peak is its best point's target logit, its place the centre of
    the box regressed there."""

    def locate(self, s: Search, output: np.ndarray) -> tuple[float, float, float]:
        logits = output[1].astype(np.float64) - output[0]
        n = logits.shape[0]
        by, bx = divmod(int(np.argmax(logits)), n)
        left, top, right, bottom = (float(v) for v in output[2:6, by, bx])
        step = s.region / s.key[1]  # image pixels per search-crop pixel
        return (float(logits[by, bx]), s.cx + ((bx - n // 2) * STRIDE + (right - left) / 2.0) * step,
                s.cy + ((by - n // 2) * STRIDE + (bottom - top) / 2.0) * step)

    def verifies(self, t: _Target, peak_logit: float) -> bool:
        """Whether a peak passes the verification (always, with re-detection off): its logit relative to the track's
        typical one reaches redetect_threshold (the probability saturates: another scene's match may score 0.9)."""
        return self.cfg.redetect_after <= 0 or typical_ratio(t, peak_logit) >= self.cfg.redetect_threshold


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
        self._crops = SquareCropper()
        self._grids: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.scan = _Scan(cfg, _ScanPlan())
        self.scene_cuts = SceneCutDetector() if cfg.scene_cut else None
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
                "reacquisitions": t.reacquisitions, "redetections": t.redetections}

    # ------------------------------------------------------------------ crops
    def _layout(self, crops: list[np.ndarray]) -> np.ndarray:
        return to_tensor_layout(crops, self.cfg.channel_order)

    def _search_region(self, t: _Target) -> float:
        return exemplar_region(t.w, t.h, self.cfg.context) * INSTANCE_SIZE / EXEMPLAR_SIZE

    # ------------------------------------------------------------------ init
    def init(self, frame, box, target_id: str = DEFAULT_TARGET) -> None:
        """Start (or restart) tracking `target_id` at `box` (x, y, w, h) on `frame`."""
        frame = prepare_frame(frame)
        cx, cy, w, h = to_center(validate_box(box, frame.shape))
        pad = FramePad(frame)
        t0 = time.perf_counter()
        s_z = exemplar_region(w, h, self.cfg.context)
        z = self._layout([self._crops.crop(frame, cx, cy, s_z, EXEMPLAR_SIZE, pad)])
        t1 = time.perf_counter()
        kernel = self.backend.template(z)
        self.timings["crop"] += t1 - t0
        self.timings["template"] += time.perf_counter() - t1
        target = _Target(cx=cx, cy=cy, w=w, h=h, kernel=kernel, frame_size=tuple(frame.shape[:2]))
        self._targets[target_id] = target
        if self.scene_cuts is not None:
            self.scene_cuts.reset(frame)

    # ------------------------------------------------------------------ update
    def update(self, frame, ids=None) -> dict[str, TrackResult]:
        """Track every target (or only those of `ids`) one frame further; returns a result per target id tracked."""
        targets = self._targets if ids is None else {i: self._targets[i] for i in ids if i in self._targets}
        if not targets:
            return {}
        frame = prepare_frame(frame)
        t0 = time.perf_counter()
        resized = self.follow_frame_size(targets, frame.shape)
        for t in resized:
            self._clamp(t, frame.shape)
        cut = self.scene_cuts is not None and self.scene_cuts.is_cut(frame)
        # Another scene (every target) or another frame size: nothing is the target until a peak is verified.
        for t in (targets.values() if cut else resized):
            t.lost, t.searching, t.after_cut = True, True, True
        shares = self.scan.shares([tid for tid, t in targets.items() if self.scan.active(t)])
        scans = {tid: self.scan.searches(targets[tid], frame.shape, n) for tid, n in shares.items() if n}
        pad = FramePad(frame)
        regions = np.array([self._search_region(t) for t in targets.values()])
        crops = [(t.cx, t.cy, region) for t, region in zip(targets.values(), regions)]
        crops += [(w.cx, w.cy, w.region) for windows in scans.values() for w in windows]
        x = self._layout([self._crops.crop(frame, cx, cy, region, INSTANCE_SIZE, pad) for cx, cy, region in crops])
        kernels = [t.kernel for t in targets.values()]
        kernels += [targets[tid].kernel for tid, windows in scans.items() for _ in windows]
        kernel = np.concatenate(kernels, axis=0)
        t1 = time.perf_counter()
        out = self.backend.search(x, kernel)
        t2 = time.perf_counter()
        results = self._locate(targets, out[:len(targets)], regions, frame.shape)
        first = len(targets)
        for tid, windows in scans.items():
            self._redetect(targets[tid], results, tid, windows, out[first:first + len(windows)], frame.shape)
            first += len(windows)
        t3 = time.perf_counter()
        self.timings["crop"] += t1 - t0
        self.timings["search"] += t2 - t1
        self.timings["post"] += t3 - t2
        return results

    def _redetect(self, t: _Target, results: dict, tid: str, windows: list[Search], outputs, frame_shape) -> None:
        """A frozen target still lost after its own search: taken at the scan's best peak when it verifies."""
        if not t.searching:
            return
        candidate = self.scan.best(windows, list(outputs))
        if candidate is None:
            return
        probability = 1.0 / (1.0 + np.exp(-candidate.peak_logit))
        if not self.scan.verifies(t, candidate.peak_logit) or probability < self.cfg.found_threshold:
            return
        t.cx, t.cy = candidate.cx, candidate.cy
        self._clamp(t, frame_shape)
        t.lost, t.searching, t.after_cut, t.lost_frames = False, False, False, 0
        t.reacquisitions += 1
        t.redetections += 1
        update_typical(t, candidate.peak_logit)
        old = results[tid]
        box = np.array(from_center(t.cx, t.cy, t.w, t.h))
        results[tid] = TrackResult(tid, box, float(probability), False, old.response_logits, old.response_region)

    def _grid(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The n x n grid's point offsets from the crop's centre (search-crop pixels) and its cosine window."""
        grid = self._grids.get(n)
        if grid is None:
            h = np.hanning(n)
            grid = self._grids[n] = (np.arange(n) - n // 2) * STRIDE, np.outer(h, h)
        return grid

    def _locate(self, targets: dict, out: np.ndarray, regions: np.ndarray, frame_shape) -> dict[str, TrackResult]:
        """Every target's point on its map at once (the module notes), then each target's state and box."""
        cfg = self.cfg
        out = out.astype(np.float64)
        batch, n = len(out), out.shape[-1]
        points, window = self._grid(n)
        score = _softmax_target(out[:, :2])
        scale = INSTANCE_SIZE / regions  # search-crop pixels per image pixel, per target
        x1, y1 = points[None, None, :] - out[:, 2], points[None, :, None] - out[:, 3]
        x2, y2 = points[None, None, :] + out[:, 4], points[None, :, None] + out[:, 5]
        width, height = np.maximum(x2 - x1, 1e-3), np.maximum(y2 - y1, 1e-3)
        w0 = np.array([t.w for t in targets.values()]) * scale
        h0 = np.array([t.h for t in targets.values()]) * scale
        size_change = _change(_context_size(width, height) / _context_size(w0, h0)[:, None, None])
        ratio_change = _change((w0 / h0)[:, None, None] / (width / height))
        penalty = np.exp(-(size_change * ratio_change - 1.0) * cfg.penalty_k)
        pscore = penalty * score * (1.0 - cfg.window_influence) + window * cfg.window_influence
        best = np.argmax(pscore.reshape(batch, -1), axis=1)
        results = {}
        for k, (tid, t) in enumerate(targets.items()):
            by, bx = divmod(int(best[k]), n)
            confidence = float(score[k, by, bx])
            s = float(scale[k])
            # the heatmap's square: the search crop's centre (before the move), the n x 16 crop pixels of the grid
            response_region = (t.cx, t.cy, n * STRIDE / s)
            logit = float(out[k, 1, by, bx] - out[k, 0, by, bx])
            if t.typical is None:
                t.typical = logit
            if self._follows(t, confidence, logit):
                lr = float(penalty[k, by, bx] * score[k, by, bx]) * cfg.lr
                t.cx += float((x1[k, by, bx] + x2[k, by, bx]) / 2.0) / s
                t.cy += float((y1[k, by, bx] + y2[k, by, bx]) / 2.0) / s
                t.w = t.w * (1.0 - lr) + float(width[k, by, bx]) / s * lr
                t.h = t.h * (1.0 - lr) + float(height[k, by, bx]) / s * lr
                self._clamp(t, frame_shape)
            if not t.lost:
                update_typical(t, logit)
            # The heatmap: the target probability as logits (TrackResult.response applies the sigmoid), one value per
            # grid point (the heatmap warps the map onto the image; no upsampling per frame).
            logits = (out[k, 1] - out[k, 0]).astype(np.float32)
            box = np.array(from_center(t.cx, t.cy, t.w, t.h))
            results[tid] = TrackResult(tid, box, confidence, t.lost, logits, response_region)
        return results

    # ------------------------------------------------------------------ confidence
    def _follows(self, t: _Target, confidence: float, logit: float) -> bool:
        """The reported state (with hysteresis) and whether the box follows this frame's match (`logit`: the chosen
        point's, for the verification)."""
        cfg = self.cfg
        was_lost = t.lost
        # a frozen box is found again by its own search only on a peak that also verifies (with re-detection on)
        found = confidence >= cfg.found_threshold and (not t.after_cut or self.scan.verifies(t, logit))
        t.lost = not found if t.lost else confidence < cfg.lost_threshold
        t.reacquisitions += was_lost and not t.lost
        t.lost_frames = t.lost_frames + 1 if t.lost else 0
        if confidence < min(cfg.freeze_threshold, cfg.lost_threshold):
            t.searching = True
        elif found:
            t.searching = t.after_cut = False
        return not t.searching

    def _clamp(self, t: _Target, frame_shape) -> None:
        height, width = frame_shape[:2]
        t.cx = min(max(t.cx, 0.0), width - 1.0)
        t.cy = min(max(t.cy, 0.0), height - 1.0)
        t.w = min(max(t.w, MIN_SIZE), float(width))
        t.h = min(max(t.h, MIN_SIZE), float(height))

    # ------------------------------------------------------------------ timing, warm-up
    def reset_timings(self) -> None:
        for k in self.timings:
            self.timings[k] = 0.0

    def warm_up(self, max_targets: int) -> list[tuple[str, int, int]]:
        """Every backend call `update` can make with up to `max_targets` targets (one search crop each, and the
        scan's windows)."""
        rng = np.random.default_rng(0)
        z = rng.uniform(0, 255, (1, 3, EXEMPLAR_SIZE, EXEMPLAR_SIZE)).astype(np.float32)
        kernel = self.backend.template(z)
        calls = [("template", EXEMPLAR_SIZE, 1)]
        windows = self.cfg.redetect_windows if self.cfg.redetect_after > 0 else 0
        for batch in range(1, max_targets + windows + 1):
            x = rng.uniform(0, 255, (batch, 3, INSTANCE_SIZE, INSTANCE_SIZE)).astype(np.float32)
            self.backend.search(x, np.repeat(kernel, batch, axis=0))
            calls.append(("search", INSTANCE_SIZE, batch))
        return calls
