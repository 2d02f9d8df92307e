"""Where a target is on this frame: the strategies the tracker's loop delegates one target's localisation to.

A localiser says which search crops it wants (`searches`), reads the backend's outputs for them (`measure`: the peak
logit the confidence is measured on, the upsampled response, what `move` needs) and, when the loop lets the box follow,
moves the target (`move`: centre and size; the loop clamps them to the image). The loop owns the target's state
(confidence, lost, freeze, found) and chooses the localiser per target: the tracked search of the configuration
(ScalePyramid or BoxHead) or, while the box is frozen, WideSearch. A new localiser is one more class with these three
methods, and the search plan (search_plan.py) the place its crops are sized and counted. The template memory, the
motion prior and re-detection sit beside them (memory.py, motion.py, redetection.py): they change which kernel a
Search correlates with (`template`), where it is centred, and what happens while the box is frozen.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from ..config import TrackingConfig
from .box_decoding import change_penalty, decode_head_boxes, decode_head_size, sample_bilinear
from .crops import exemplar_region
from .response import locate, peak_window, sigmoid, to_image, upsample
from .search_plan import SearchPlan

if TYPE_CHECKING:
    from .tracker import Target


@dataclass
class Search:
    """One search crop: the (exemplar size, search size) graph it goes through and the image square it covers."""

    key: tuple[int, int]
    cx: float
    cy: float
    region: float  # side, image pixels
    template: str = "search"  # the target's kernel it correlates with: "search" (memory's blend) or "first"


@dataclass
class Measurement:
    """A localiser's reading of its search outputs."""

    peak_logit: float  # what the confidence is measured on
    response_logits: np.ndarray  # the upsampled logit map shown as the heatmap
    region_side: float  # image pixels that map covers, around the target's centre before the move
    detail: tuple  # the localiser's own: what its move needs


class Localiser(ABC):
    def __init__(self, cfg: TrackingConfig, plan: SearchPlan):
        self.cfg, self.plan = cfg, plan

    @abstractmethod
    def searches(self, t: Target) -> list[Search]:
        """The crops this target needs on this frame."""

    @abstractmethod
    def measure(self, t: Target, searches: list[Search], outputs: list[np.ndarray]) -> Measurement:
        """Read the backend's outputs, (channels, H, W) each, in the order of `searches`."""

    @abstractmethod
    def move(self, t: Target, m: Measurement) -> None:
        """Set the target's centre and size from the measurement."""

    def _search_region(self, t: Target, z_size: int, x_size: int) -> float:
        """The image square of a search input: the exemplar's area with context, scaled by the input sizes."""
        return exemplar_region(t.w, t.h, self.cfg.context) * x_size / z_size


class ScalePyramid(Localiser):
    """SiamFC: num_scales crops of the target's area around its centre (per input-size pair with the multi-scale
    test, whose maps are fused); the scale with the best penalised peak wins; the centre moves to that map's windowed
    peak and the size moves towards that scale by scale_lr."""

    def __init__(self, cfg: TrackingConfig, plan: SearchPlan):
        super().__init__(cfg, plan)
        n = plan.crops_per_pair
        self.scale_factors = cfg.scale_step ** (np.arange(n) - n // 2)

    def searches(self, t: Target) -> list[Search]:
        s_z = exemplar_region(t.w, t.h, self.cfg.context)
        return [Search((z_size, x_size), t.cx, t.cy, s_z * x_size / z_size * f)
                for z_size, x_size in self.plan.pairs for f in self.scale_factors]

    def measure(self, t: Target, searches: list[Search], outputs: list[np.ndarray]) -> Measurement:
        cfg, n = self.cfg, len(self.scale_factors)
        maps, peaks, scores = [], [], []
        for i in range(n):
            up, peak = self._fused_map([outputs[p * n + i][0] for p in range(len(self.plan.pairs))])
            # SiamFC multiplies each off-centre scale's peak score by the penalty. The score here is the peak logit
            # above the target's own background level (`floor`): independent of the network's logit offset, and
            # equal to SiamFC's raw score for a network without one. It is negative when every peak is below the
            # floor: there it is divided by the penalty, so an off-centre scale always scores lower, whatever the sign.
            penalty = cfg.scale_penalty if i != n // 2 else 1.0
            margin = float(up.max()) - t.floor
            scores.append(margin * penalty if margin >= 0.0 else margin / penalty)
            maps.append(up)
            peaks.append(peak)
        best = int(np.argmax(scores))
        region, x0 = searches[best].region, self.plan.pairs[0][1]
        return Measurement(peaks[best], maps[best], to_image(cfg, maps[best].shape[0], region, x0), (best, region))

    def move(self, t: Target, m: Measurement) -> None:
        cfg = self.cfg
        best, region = m.detail
        x0 = self.plan.pairs[0][1]
        motion = None
        if t.motion is not None:  # the prior's std in upsampled pixels of this map
            motion = (cfg.motion_weight, t.motion.position_std() / to_image(cfg, 1.0, region, x0))
        dx, dy = locate(m.response_logits, cfg.window_influence, motion)
        t.cx += to_image(cfg, dx, region, x0)
        t.cy += to_image(cfg, dy, region, x0)
        factor = (1.0 - cfg.scale_lr) + cfg.scale_lr * self.scale_factors[best]
        t.w, t.h = t.w * factor, t.h * factor

    def _fused_map(self, logit_maps: list[np.ndarray]) -> tuple[np.ndarray, float]:
        """Upsampled logit map of one scale (multi-scale test: the input sizes' maps fused), peak logit."""
        first = logit_maps[0]
        peak = float(first.max())  # the confidence is measured on the first (reference) input size
        up = upsample(self.cfg, first)
        if len(logit_maps) == 1:
            return up, peak
        # Other input sizes see the exemplar at z / z0 times the resolution: resample their maps onto the first grid.
        total, count = up.copy(), np.ones_like(up)
        size = up.shape[0]
        c = (size - 1) / 2.0
        z0 = self.plan.pairs[0][0]
        for (z_size, _), logits in zip(self.plan.pairs[1:], logit_maps[1:]):
            other = upsample(self.cfg, logits)
            s = z0 / z_size
            oc = (other.shape[0] - 1) / 2.0
            m = np.array([[s, 0, c - s * oc], [0, s, c - s * oc]], dtype=np.float64)
            total += cv2.warpAffine(other, m, (size, size), flags=cv2.INTER_LINEAR, borderValue=0)
            count += cv2.warpAffine(np.ones_like(other), m, (size, size), flags=cv2.INTER_NEAREST, borderValue=0)
        return total / count, peak


class BoxHead(Localiser):
    """Box mode (a network with the box head): one search crop. `box_position` "head" chooses the cell on the
    response (min-max normalised) x centre-ness x change penalty, blended with a cosine window, and takes the head's
    centre there (SiamRPN's and SiamFC++'s post-processing); "response" finds the centre as ScalePyramid does on its
    middle scale and reads the head's size there. The size moves towards the regressed one by box_lr x the change
    penalty x the score."""

    def searches(self, t: Target) -> list[Search]:
        z_size, x_size = self.plan.pairs[0]
        return [Search((z_size, x_size), t.cx, t.cy, self._search_region(t, z_size, x_size))]

    def measure(self, t: Target, searches: list[Search], outputs: list[np.ndarray]) -> Measurement:
        out = outputs[0].astype(np.float64)
        up = upsample(self.cfg, out[0])
        region = searches[0].region
        side = to_image(self.cfg, up.shape[0], region, self.plan.pairs[0][1])
        return Measurement(float(out[0].max()), up, side, (out, region))

    def move(self, t: Target, m: Measurement) -> None:
        out, region = m.detail
        scale = self.plan.pairs[0][1] / region  # search-crop pixels per image pixel
        # The head's boxes (model/box_head.py) are relative to the box the crop was cut for, the current one.
        anchor = (t.w * scale, t.h * scale)
        if self.cfg.box_position == "response":
            dx, dy, width, height, lr = self._box_at_response_peak(out, m.response_logits, anchor)
        else:
            dx, dy, width, height, lr = self._box_at_head_cell(out, anchor)
        t.cx += dx / scale
        t.cy += dy / scale
        t.w = t.w * (1.0 - lr) + width / scale * lr
        t.h = t.h * (1.0 - lr) + height / scale * lr

    def _box_at_response_peak(self, out, up, anchor):
        """ScalePyramid's localisation on the one crop (peak of the upsampled response with its window); the head's
        size, centre-ness and change penalty read there (bilinear between cells). Returns the centre's displacement
        and the box size in search-crop pixels, and the size's learning rate."""
        cfg = self.cfg
        dx, dy = locate(up, cfg.window_influence)  # upsampled response pixels from the centre
        n_y, n_x = out.shape[1:]
        # Upsampled pixel -> cell: cv2.resize maps the centre of the map onto the centre, 1 cell = upsample pixels.
        quality, sw, sh = sample_bilinear(out[[1, 4, 5]], (n_x - 1) / 2.0 + dx / cfg.response_upsample,
                                          (n_y - 1) / 2.0 + dy / cfg.response_upsample)
        width, height = decode_head_size(sw, sh, anchor)
        lr = float(change_penalty(width, height, anchor, cfg.box_penalty_k) * sigmoid(quality)) * cfg.box_lr
        step = cfg.total_stride / cfg.response_upsample
        return dx * step, dy * step, float(width), float(height), lr

    def _box_at_head_cell(self, out, anchor):
        """SiamFC++'s post-processing: the cell chosen on the response (min-max normalised) x centre-ness x change
        penalty, blended with a cosine window; centre and size both regressed at that cell."""
        cfg = self.cfg
        cls, quality = out[0], out[1]
        n_y, n_x = cls.shape
        cx, cy, width, height = decode_head_boxes(out[2:6], anchor, cfg.total_stride)
        penalty = change_penalty(width, height, anchor, cfg.box_penalty_k)
        score = (cls - cls.min()) / max(float(cls.max() - cls.min()), 1e-9) * sigmoid(quality)
        wi = cfg.box_window_influence
        pscore = (1.0 - wi) * score * penalty + wi * peak_window(n_y)
        by, bx = np.unravel_index(int(np.argmax(pscore)), pscore.shape)
        lr = float(penalty[by, bx] * score[by, bx]) * cfg.box_lr
        return float(cx[by, bx]), float(cy[by, bx]), float(width[by, bx]), float(height[by, bx]), lr


class WideSearch(Localiser):
    """The lost search (the box frozen): one crop at the lost-mode input size (the same resolution, a wider area,
    growing by the target's `growth` per frame it is not found); on re-acquisition the centre jumps to the response's
    peak without a window (the target may be anywhere in the area). The size stays."""

    def searches(self, t: Target) -> list[Search]:
        z_size, x_size = self.plan.lost_key
        return [Search((z_size, x_size), t.cx, t.cy, self._search_region(t, z_size, x_size) * t.growth)]

    def measure(self, t: Target, searches: list[Search], outputs: list[np.ndarray]) -> Measurement:
        r = outputs[0][0]
        up = upsample(self.cfg, r)
        region = searches[0].region
        return Measurement(float(r.max()), up, to_image(self.cfg, up.shape[0], region, self.plan.lost_key[1]),
                           (region,))

    def peak(self, t: Target, m: Measurement) -> tuple[float, float]:
        """The response's peak in image coordinates (no window: the target may be anywhere in the area)."""
        (region,) = m.detail
        dx, dy = locate(m.response_logits, 0.0)
        return (t.cx + to_image(self.cfg, dx, region, self.plan.lost_key[1]),
                t.cy + to_image(self.cfg, dy, region, self.plan.lost_key[1]))

    def move(self, t: Target, m: Measurement) -> None:
        t.cx, t.cy = self.peak(t, m)
