"""SiamFC tracking with the paper's network: `init(frame, box)` once per target, `update(frame)` every frame.

The loop here holds the targets and their state; where a target is on a frame is a localiser's job (localisers.py):
the scale pyramid, the box head's one crop (box mode: a network with the box head and `box_regression`), or the wide
search while the box is frozen. Per frame, every target's localiser names its search crops; all crops of one input size
go through the backend's search branch as one batch (the search plan, search_plan.py, lists every such call). The
template branch runs only in `init`.

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

Three options, each off by its own setting (TrackingConfig): the template memory (memory.py: the search correlates
with a blend of the first template and up to `memory_size` gated later ones), the motion prior (motion.py: a Kalman
filter's prediction centres the search and weighs the peak) and re-detection (redetection.py: after `redetect_after`
frozen frames, windows over the whole frame join the batch; a frozen target is found again only on a verified peak).
With re-detection on, the drift check (`drift_check`) scans for a target reported lost whose box still follows a match
(confidence between freeze_threshold and lost_threshold, often a look-alike, which never freezes the box): the box
jumps to the scan's best candidate when it verifies and its confidence beats the followed peak's by `drift_margin`.
With `scene_cut`, a camera cut (scene_cut.py) freezes every target, reports it lost at once and sends it away: until a
frame shows the scene it was seen in again (the search then starts where it was), a candidate needs the stricter
verification of an away target, confirmed over frames.
Every lost -> tracked transition is counted in the target's `state` (`reacquisitions`; `redetections`: those the
scan found).

A frame of another size than the target's last (the camera changed its resolution, or a topic switched cameras): its
box is scaled to the new size (TargetSet.follow_frame_size) and frozen as after a camera cut, reported lost until a
verified peak finds it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import Config, TrackingConfig
from .crops import channel_mean, crop_square, exemplar_region, to_tensor_layout
from .geometry import from_center, to_center
from .localisers import BoxHead, Localiser, ScalePyramid, WideSearch
from .memory import MemoryGates, TemplateMemory
from .motion import LOST_VELOCITY_FADE, BoxKalman
from .profiling import StageTimes
from .redetection import Candidate, GlobalScan, Verifier, confidence, update_typical
from .scene_cut import SceneCutDetector, SceneSignature, shows_home
from .response import sigmoid
from .search_plan import SearchPlan, uses_box_head
from .validation import prepare_frame, validate_box

DEFAULT_TARGET = "default"
MIN_CONFIDENCE_SPREAD = 0.5  # logits


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
        return sigmoid(self.response_logits).astype(np.float32)


@dataclass
class Target:
    """One target's state: its box (centre and size), templates, confidence scale and lost state."""

    cx: float
    cy: float
    w: float
    h: float
    memory: TemplateMemory | None = None  # its templates: kernels (exemplar size -> (1, C, k, k)) and the first
    reference: float = 1.0  # peak logit of the target on its init frame
    floor: float = 0.0  # median logit of that response: the background level
    typical: float = 1.0  # running average of the tracked peak logit (re-detection's verification)
    lost: bool = False  # reported state
    searching: bool = False  # box frozen, wide search (confidence fell below freeze_threshold)
    lost_frames: int = 0
    growth: float = 1.0  # the wide search's area, relative to the tracked search's
    motion: BoxKalman | None = None  # the motion prior, when on
    scan_index: int = 0  # re-detection: the next window of the frame's scan
    candidate: Candidate | None = None  # re-detection: the frozen target's candidate waiting for confirmation
    # The camera-cut check: the scenes the target belongs to, each a frame's signature and the target's centre there
    home: tuple | None = None  # the last frame before a cut sent it away (every frame while it is not away)
    seen: tuple | None = None  # the last frame it was reported tracked on
    origin: tuple | None = None  # its home when the away verification last found it in another scene
    away: bool = False  # a cut showed another scene, and no frame since has shown either of them
    reacquisitions: int = 0  # lost -> tracked transitions
    redetections: int = 0  # of them, those found by the re-detection's scan
    frame_size: tuple = (0, 0)  # (height, width) of the last frame it was on

    @property
    def kernels(self) -> dict:
        return self.memory.kernels

    def kernel(self, template: str, z_size: int) -> np.ndarray:
        return (self.memory.first if template == "first" else self.memory.kernels)[z_size]


class TargetSet:
    """The targets of a tracker by id (SiamTracker, NanoTracker): each class keeps its own per-target state in
    `_targets`; these calls are the same for every tracker."""

    _targets: dict

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

    @staticmethod
    def follow_frame_size(targets: dict, frame_shape) -> list:
        """Scale the box of each target last seen on a frame of another size to this frame's size (the same view at
        another resolution keeps the box on the target); the targets whose size changed, which the caller freezes and
        reports lost until a verified peak finds them (the view may not be the same)."""
        size = tuple(frame_shape[:2])
        changed = []
        for t in targets.values():
            if t.frame_size != size:
                if t.frame_size != (0, 0):
                    sy, sx = size[0] / t.frame_size[0], size[1] / t.frame_size[1]
                    t.cx, t.cy, t.w, t.h = t.cx * sx, t.cy * sy, t.w * sx, t.h * sy
                    changed.append(t)
                t.frame_size = size
        return changed


class SiamTracker(TargetSet):
    def __init__(self, backend, config: TrackingConfig | None = None):
        self.backend = backend
        self.cfg = cfg = config or TrackingConfig()
        cfg.validate()
        self.box_mode = uses_box_head(cfg, backend)
        self.plan = SearchPlan(cfg, self.box_mode)
        self.pairs = self.plan.pairs
        self.tracked_search: Localiser = (BoxHead if self.box_mode else ScalePyramid)(cfg, self.plan)
        self.wide_search: Localiser = WideSearch(cfg, self.plan)
        self.global_scan = GlobalScan(cfg, self.plan)
        self.verifier = Verifier(cfg)
        self.scene_cuts = SceneCutDetector() if cfg.scene_cut else None
        self._targets: dict[str, Target] = {}
        self.timings = StageTimes()

    @classmethod
    def from_config(cls, config: Config | None = None, weights=None, backend=None) -> "SiamTracker":
        from ..backends import create_backend

        config = config or Config()
        if backend is None:  # sized for the pyramid, which sends more crops than box mode
            max_batch = SearchPlan(config.tracking).max_batch(config.backend.max_targets)
            backend = create_backend(config.backend, weights, expected_model=None, max_batch=max_batch)
        return cls(backend, config.tracking)

    def state(self, target_id: str) -> dict:
        t = self._targets[target_id]
        return {"box": list(from_center(t.cx, t.cy, t.w, t.h)), "lost": t.lost, "lost_frames": t.lost_frames,
                "reacquisitions": t.reacquisitions, "redetections": t.redetections,
                "templates": 1 + len(t.memory.added)}

    def reset_timings(self) -> None:
        self.timings.reset()

    # ------------------------------------------------------------------ init
    def init(self, frame, box, target_id: str = DEFAULT_TARGET) -> None:
        """Start (or restart) tracking `target_id` at `box` (x, y, w, h) on `frame`."""
        frame = prepare_frame(frame)
        cx, cy, w, h = to_center(validate_box(box, frame.shape, self.cfg.box_margin))
        target = Target(cx=cx, cy=cy, w=w, h=h, frame_size=tuple(frame.shape[:2]))
        pad = channel_mean(frame)
        s_z = exemplar_region(w, h, self.cfg.context)
        target.memory = TemplateMemory(self._templates(frame, target, pad), MemoryGates.from_config(self.cfg))
        if self.cfg.motion_prior:
            target.motion = BoxKalman(cx, cy, w, h)
        # The target's own score on its init frame is the reference the confidence is measured against.
        z_size, x_size = self.pairs[0]
        crop = to_tensor_layout([crop_square(frame, target.cx, target.cy, s_z * x_size / z_size, x_size, pad)])
        logits = self.backend.search(crop, target.kernels[z_size])[0, 0]  # channel 0: the response
        target.reference = float(logits.max())
        # A flat response (a target much like its surroundings) would make the ratio noisy: keep a minimum spread.
        target.floor = float(min(np.median(logits), target.reference - MIN_CONFIDENCE_SPREAD))
        target.typical = target.reference
        self._targets[target_id] = target
        if self.scene_cuts is not None:
            self.scene_cuts.reset(frame)
            target.home = target.seen = (self.scene_cuts.last, (cx, cy))

    def _templates(self, frame, t: Target, pad) -> dict:
        """The target's template kernels at its current box, one per exemplar size."""
        s_z = exemplar_region(t.w, t.h, self.cfg.context)
        kernels = {}
        for z_size in self.plan.template_sizes:
            with self.timings.stage("crop"):
                z = to_tensor_layout([crop_square(frame, t.cx, t.cy, s_z, z_size, pad)])
            with self.timings.stage("template"):
                kernels[z_size] = self.backend.template(z)
        return kernels

    # ------------------------------------------------------------------ update
    def update(self, frame, ids=None) -> dict[str, TrackResult]:
        """Track every target (or only those of `ids`) one frame further; returns a result per target id tracked."""
        targets = self._targets if ids is None else {i: self._targets[i] for i in ids if i in self._targets}
        if not targets:
            return {}
        frame = prepare_frame(frame)
        for t in self.follow_frame_size(targets, frame.shape):
            self._resized(t, frame.shape)
        if self.scene_cuts is not None:
            cut = self.scene_cuts.is_cut(frame)
            for t in targets.values():
                self._follow_scene(t, cut, self.scene_cuts.last)
        for t in targets.values():
            self._predict(t, frame.shape)
        localisers = {tid: self.wide_search if t.searching else self.tracked_search for tid, t in targets.items()}
        searches = {tid: localisers[tid].searches(t) for tid, t in targets.items()}
        shares = self.global_scan.shares([tid for tid, t in targets.items()
                                          if self.global_scan.active(t) or self._drifting(t)])
        scans = {tid: self.global_scan.searches(t, frame.shape, shares[tid]) if shares.get(tid) else []
                 for tid, t in targets.items()}
        outputs = self._search(frame, targets, {tid: searches[tid] + scans[tid] for tid in targets})
        results = {}
        pad = None
        for tid, t in targets.items():
            with self.timings.stage("post"):
                n = len(searches[tid])
                m = localisers[tid].measure(t, searches[tid], outputs[tid][:n])
                peak_logit = m.peak_logit
                score = confidence(t, peak_logit)
                response_region = (t.cx, t.cy, m.region_side)
                was_lost = t.lost
                scanned = self.global_scan.best(scans[tid], outputs[tid][n:])  # None: no scan for it this frame
                if t.searching:
                    wide = Candidate(*self.wide_search.peak(t, m), m.peak_logit)
                    self._find(t, wide, scanned, frame.shape)
                elif self._follow(t, score):
                    localisers[tid].move(t, m)
                    if self._drifted(t, score, scanned):
                        peak_logit, score = scanned.peak_logit, confidence(t, scanned.peak_logit)
                    self._clamp(t, frame.shape)
                    if t.motion is not None:
                        t.motion.update(t.cx, t.cy, t.w, t.h)
                if was_lost and not t.lost:
                    t.reacquisitions += 1
                if not t.lost:
                    update_typical(t, peak_logit)
            if self.scene_cuts is not None:
                self._remember_scene(t, self.scene_cuts.last)
            if not t.lost and t.memory.due(score):
                pad = channel_mean(frame) if pad is None else pad
                t.memory.consider(self._templates(frame, t, pad), score)
            box = np.array(from_center(t.cx, t.cy, t.w, t.h))
            results[tid] = TrackResult(tid, box, score, t.lost, m.response_logits, response_region)
        return results

    def _follow_scene(self, t: Target, cut: bool, scene: SceneSignature) -> None:
        """The camera-cut check for one target: a cut freezes it and sends it away (nothing in another scene is the
        target until the stricter verification of an away target says so). A frame that shows the scene it was last
        tracked in, the one the camera cut away from, or the one it was in before the away verification last found
        it elsewhere (that finding may have been a look-alike) brings it back, looked for where it was there."""
        if cut and not t.away:
            t.away, t.candidate = True, None
            t.lost, t.searching, t.growth = True, True, 1.0
        if t.away:
            scenes = (s for s in (t.seen, t.home, t.origin) if s is not None)
            back = next((centre for signature, centre in scenes if shows_home(signature, scene)), None)
            if back is not None:
                t.away, t.growth, t.candidate = False, 1.0, None
                t.cx, t.cy = back

    def _resized(self, t: Target, frame_shape) -> None:
        """A target whose box was just scaled to a new frame size: frozen and reported lost, as after a camera cut
        (its scenes' centres were in the old size: forgotten, the new frame becomes its home)."""
        t.lost, t.searching, t.growth, t.candidate = True, True, 1.0, None
        t.away, t.home, t.seen, t.origin = False, None, None, None
        self._clamp(t, frame_shape)
        self._restart_motion(t)

    @staticmethod
    def _restart_motion(t: Target) -> None:
        """After a jump of the box (a new frame size, a candidate of the scan): the motion prior, when on, starts
        again there, since the old velocity says nothing of the new place."""
        if t.motion is not None:
            t.motion = BoxKalman(t.cx, t.cy, t.w, t.h)

    @staticmethod
    def _remember_scene(t: Target, scene: SceneSignature) -> None:
        """After a frame: its scene and the target's centre there, as its home (unless it is away) and as where it
        was last seen (when it is tracked)."""
        if not t.away:
            t.home = (scene, (t.cx, t.cy))
        if not t.lost:
            t.seen = (scene, (t.cx, t.cy))

    def _predict(self, t: Target, frame_shape) -> None:
        """The motion prior: the search centred on the predicted centre; while frozen, for motion_lost_frames
        frames with a fading velocity, then the search stays."""
        if t.motion is None:
            return
        if not t.searching:
            t.cx, t.cy = (float(v) for v in t.motion.predict()[:2])
        elif t.lost_frames <= self.cfg.motion_lost_frames:
            t.cx, t.cy = (float(v) for v in t.motion.predict(LOST_VELOCITY_FADE)[:2])
        else:
            return
        self._clamp(t, frame_shape)

    def _find(self, t: Target, wide: Candidate, scanned: Candidate | None, frame_shape) -> None:
        """A frozen target's frame: found again at the wide search's peak or the scan's best, the first that passes
        (with re-detection off: the wide search's peak above found_threshold, nothing more). With re-detection on,
        a verified candidate that is not yet confirmed takes the frozen box (still lost), so that the next frame's
        wide search looks there; no candidate: the wide search grows."""
        cfg = self.cfg
        if cfg.redetect_after <= 0:
            chosen, confirmed = (wide, True) if confidence(t, wide.peak_logit) >= cfg.found_threshold else (None, False)
        else:
            chosen = next((c for c in (wide, scanned) if self.verifier.verified(t, c)), None)
            confirmed = chosen is not None and self.verifier.confirm(t, chosen)
        if chosen is None:
            t.candidate = None
        t.cx, t.cy = (chosen.cx, chosen.cy) if chosen is not None else (t.cx, t.cy)
        self._clamp(t, frame_shape)
        if not confirmed:
            t.lost_frames += 1
            t.growth = 1.0 if chosen is not None else min(t.growth * cfg.lost_search_growth, cfg.lost_search_max)
            return
        if t.away:  # found in another scene: the scene it came from stays one of its own
            t.origin = t.home
        t.lost, t.searching, t.lost_frames, t.growth, t.away, t.candidate = False, False, 0, 1.0, False, None
        if chosen.scanned:
            t.redetections += 1
            self._restart_motion(t)
        if t.motion is not None:
            t.motion.update(t.cx, t.cy, t.w, t.h)

    def _drifting(self, t: Target) -> bool:
        """Whether the drift check scans for `t` on this frame: reported lost, its box still following (not frozen)."""
        return self.cfg.drift_check and self.cfg.redetect_after > 0 and t.lost and not t.searching

    def _drifted(self, t: Target, score: float, scanned: Candidate | None) -> bool:
        """The drift check on a followed frame of confidence `score`: when the scan's best candidate verifies and
        beats the followed peak by drift_margin, the box (its size kept) jumps there and the target is tracked."""
        if scanned is None or not self.verifier.verified(t, scanned):
            return False
        if confidence(t, scanned.peak_logit) < score + self.cfg.drift_margin:
            return False
        t.cx, t.cy = scanned.cx, scanned.cy
        t.lost, t.lost_frames = False, 0
        t.redetections += 1
        self._restart_motion(t)
        return True

    def _search(self, frame, targets: dict, searches: dict) -> dict[str, list[np.ndarray]]:
        """Cut every search crop, run the crops of each input size as one batch; each target's outputs in the order
        of its searches."""
        with self.timings.stage("crop"):
            pad = channel_mean(frame)
            groups: dict[tuple, list] = {}  # (z_size, x_size) -> [(target id, search index, crop)]
            for tid, target_searches in searches.items():
                for i, s in enumerate(target_searches):
                    crop = crop_square(frame, s.cx, s.cy, s.region, s.key[1], pad)
                    groups.setdefault(s.key, []).append((tid, i, crop))
        outputs = {tid: [None] * len(s) for tid, s in searches.items()}
        for (z_size, _), items in groups.items():
            with self.timings.stage("crop"):  # stacking the crops into the batch
                x = to_tensor_layout([crop for _, _, crop in items])
                kernel = np.concatenate([targets[tid].kernel(searches[tid][i].template, z_size)
                                         for tid, i, _ in items], axis=0)
            with self.timings.stage("search"):
                out = self.backend.search(x, kernel)
            for (tid, i, _), r in zip(items, out):
                outputs[tid][i] = r
        return outputs

    def _follow(self, t: Target, score: float) -> bool:
        """A target that is not frozen: its state after a frame of confidence `score`, and whether its box follows
        the localiser (False: it freezes here)."""
        cfg = self.cfg
        if score < min(cfg.freeze_threshold, cfg.lost_threshold):
            # Freeze the box rather than follow a distractor; search wider from the next frame on.
            t.lost, t.searching, t.growth = True, True, 1.0
            t.lost_frames += 1
            return False
        # Reported state with hysteresis; the box follows the best match either way.
        t.lost = score < (cfg.found_threshold if t.lost else cfg.lost_threshold)
        t.lost_frames = t.lost_frames + 1 if t.lost else 0
        return True

    def _clamp(self, t: Target, frame_shape) -> None:
        height, width = frame_shape[:2]
        t.cx = float(np.clip(t.cx, 0, width - 1))
        t.cy = float(np.clip(t.cy, 0, height - 1))
        t.w = float(np.clip(t.w, self.cfg.min_size, width))
        t.h = float(np.clip(t.h, self.cfg.min_size, height))

    def warm_up(self, max_targets: int) -> list[tuple[str, int, int]]:
        """Run every backend call `update` can make with up to `max_targets` targets, so none is built lazily later.

        Each template size, and each search call of the search plan (every input size, the lost search, every batch
        size it can get). Returns the (branch, input size, batch) calls made.
        """
        calls = []
        rng = np.random.default_rng(0)
        kernels = {}
        for z_size in self.plan.template_sizes:
            z = rng.uniform(0, 255, (1, 3, z_size, z_size)).astype(np.float32)
            kernels[z_size] = self.backend.template(z)
            calls.append(("template", z_size, 1))
        for z_size, x_size, batch in self.plan.search_calls(max_targets):
            x = rng.uniform(0, 255, (batch, 3, x_size, x_size)).astype(np.float32)
            self.backend.search(x, np.repeat(kernels[z_size], batch, axis=0))
            calls.append(("search", x_size, batch))
        return calls
