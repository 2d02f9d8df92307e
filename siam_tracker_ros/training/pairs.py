"""Training pairs: (exemplar crop, search crop, where the target is in the search crop), sampled and augmented as
SiamFC and the paper do.

Sampling. A sequence is drawn uniformly, then a template frame among its usable frames and a search frame at most
`max_frame_gap` frames away (another frame when the track has one). With probability `negative_pair_prob` the search
frame comes from another sequence instead: a different object, whose label map is all -1, so the response learns to
say "not here".

Crops. Both crops are centred on their frame's own target box with SiamFC's context: the exemplar region is
s_z = sqrt((w + p)(h + p)), p = context * (w + h), and a region of side s_z maps to 127 network pixels ("canonical
pixels" below). The search crop is s_x = s_z * 255 / 127. Both are one cv2.warpAffine each from the full frame, padded
with the frame's per-channel mean, with the tracker's centre convention (box centre x + w/2 maps to pixel
(out - 1) / 2, as tracking/crops.py does).

Multi-scale training (paper sec. 4.2, S1 in [127, 255], S2 in [255, 383]). Our reading: S1 and S2 are the crop
extents measured in canonical pixels (the frame resampled so that s_z is 127 px), and each crop is then resized to
the fixed network input, 127 for the exemplar and 255 for the search image; a larger extent shows more context at a
lower resolution. Drawn independently (or both from one t), the target looks larger in the search image than in
the exemplar by 2.008 * S1 / S2, up to 2x and ~1.2x on average: measured on held-out pairs, networks trained so
preferred zoomed-in search crops, i.e. the tracker's scale search is biased and blunt. So by default
(`multi_scale_mode: matched`) S2 is drawn in [255, 383] and S1 = S2 * 127 / 255 (in [127, 191]): both crops at one
resolution, whatever it is; `independent` keeps the literal reading for ablations. A fraction `multi_scale_prob` of
the pairs is multi-scale, the rest use 127 / 255.

Augmentation. Random stretch (isotropic scale +-`stretch`, aspect +-`stretch`/2) of each crop; for the box head,
a wider change of the search crop alone (`search_scale`, `search_aspect`: log-uniform, so the target is larger or
smaller, wider or taller in the search crop than in the exemplar, as it becomes between two frames); a random shift of
the search centre of up to `max_shift` search pixels in x and y (the target is off-centre by that much and the label map
follows it); colour jitter (brightness, contrast, saturation, per-channel gain) and Gaussian blur per crop; grey
pairs (both crops); horizontal flip of both crops (the shift is mirrored).

Patch pairs (`patch_pair_prob`, off unless set): the exemplar is a random box of a random training frame and the
search crop is cut around the same box of the same frame, resized by up to +-`patch_scale` before the usual
augmentations. 54 tracks are few objects; a random box is a new "object" each time, meant to teach the generic
matching of a patch against its own surroundings. Measured at 30% of the pairs it did not help the held-out tracking
figures (docs/training.md), hence off by default.

Every pair is a pure function of (seed, pair index): training is reproducible and resumes exactly whatever the
number of DataLoader workers.
"""
from __future__ import annotations

import dataclasses
import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Mapping

import cv2
import numpy as np
import torch

from ..tracking.crops import channel_mean, crop_rect, exemplar_region
from .datasets import Sequence


@dataclass
class AugmentConfig:
    """Pair sampling / augmentation settings beyond TrainingConfig (the `augment:` section of a training YAML)."""

    exemplar_size: int = 127
    instance_size: int = 255
    context: float = 0.5
    template_range: tuple = (127, 255)  # S1 of the paper, canonical pixels
    search_range: tuple = (255, 383)  # S2 of the paper, canonical pixels
    multi_scale_prob: float = 0.5  # fraction of pairs cropped at a drawn (S1, S2) when multi_scale_train is on
    # "matched": S2 drawn, S1 = S2 * 127 / 255 (template and search at one resolution: no scale bias);
    # "independent": S1 and S2 drawn independently (the literal reading; biases the scale search, see above)
    multi_scale_mode: str = "matched"
    stretch: float = 0.05  # isotropic scale jitter of each crop (+-), aspect jitter is half of it
    max_shift: float = 32.0  # search-pixel shift of the target from the search centre (x and y each, uniform)
    # The search crop's extent times exp(U(-search_scale, search_scale)) and its aspect times exp(U(-a, a)), a =
    # search_aspect: the box head must read a size and ratio other than the exemplar's (0: off, the pyramid's recipe).
    search_scale: float = 0.0
    search_aspect: float = 0.0
    brightness: float = 0.15  # +- fraction of 255
    contrast: float = 0.25  # +- fraction
    saturation: float = 0.3  # +- fraction
    channel_gain: float = 0.06  # +- per-channel multiplicative noise
    blur_prob: float = 0.15
    blur_sigma: tuple = (0.5, 2.0)
    image_cache: int = 96  # decoded frames kept per worker
    # Self-supervised "patch pairs": a random box of a random frame matched against itself under the augmentations
    # plus an extra size change. Many more distinct "objects" than the tracks have (see the module notes).
    patch_pair_prob: float = 0.0
    patch_side: tuple = (0.08, 0.4)  # box side as a fraction of the frame's shorter side
    patch_scale: float = 0.15  # extra +- size change of the search patch's box

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "AugmentConfig":
        data = dict(data or {})
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown key(s) augment.{', augment.'.join(unknown)}; known: {', '.join(sorted(names))}")
        for key in ("template_range", "search_range", "blur_sigma", "patch_side"):
            if key in data:
                data[key] = tuple(float(v) for v in data[key])
        if data.get("multi_scale_mode", "matched") not in ("matched", "independent"):
            raise ValueError(f"augment.multi_scale_mode = {data['multi_scale_mode']!r}: expected matched or "
                             "independent")
        return cls(**data)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


class _ImageCache:
    def __init__(self, size: int):
        self.size = size
        self.items: OrderedDict[str, np.ndarray] = OrderedDict()

    def get(self, path: str) -> np.ndarray:
        img = self.items.get(path)
        if img is not None:
            self.items.move_to_end(path)
            return img
        img = cv2.imread(path, cv2.IMREAD_COLOR)
        if img is None:
            raise OSError(f"cannot read image {path}")
        if self.size > 0:
            self.items[path] = img
            while len(self.items) > self.size:
                self.items.popitem(last=False)
        return img


class PairDataset(torch.utils.data.Dataset):
    """Map-style dataset: item i is the pair generated from rng(seed, i).

    Returns (z uint8 (3, 127, 127), x uint8 (3, 255, 255), target float32 (dx, dy, w, h, anchor w, anchor h): the
    target box's centre offset from the search crop's centre and its size, and the size of the box the crop was cut
    for (the box head's anchor: the target's size before the crop's jitter), in search pixels, positive float32 (1 =
    same object, 0 = negative pair)). Pixel values 0-255, BGR.
    """

    def __init__(self, sequences: list[Sequence], length: int, seed: int, training=None,
                 augment: AugmentConfig | None = None, train: bool = True):
        from ..config import TrainingConfig

        self.training = training or TrainingConfig()
        self.aug = augment or AugmentConfig()
        self.train = train
        self.length = int(length)
        self.seed = int(seed)
        self.sequences = [s for s in sequences if len(s.valid_indices) >= 1]
        if not self.sequences:
            raise ValueError("no sequence with a usable box to sample pairs from")
        self.valid = [s.valid_indices for s in self.sequences]
        self._cache = None

    def __len__(self) -> int:
        return self.length

    def _image(self, path: str) -> np.ndarray:
        if self._cache is None:  # created lazily, so each DataLoader worker has its own
            self._cache = _ImageCache(self.aug.image_cache)
        return self._cache.get(path)

    def _pick_frames(self, rng: np.random.Generator):
        tc = self.training
        si = int(rng.integers(len(self.sequences)))
        valid = self.valid[si]
        i = int(valid[rng.integers(len(valid))])
        negative = len(self.sequences) > 1 and rng.random() < tc.negative_pair_prob
        if negative:
            sj = int(rng.integers(len(self.sequences) - 1))
            sj = sj + 1 if sj >= si else sj
            vj = self.valid[sj]
            j = int(vj[rng.integers(len(vj))])
        else:
            sj = si
            near = valid[(np.abs(valid - i) <= tc.max_frame_gap) & (valid != i)]
            j = int(near[rng.integers(len(near))]) if len(near) else i
        return si, i, sj, j, negative

    def __getitem__(self, index: int):
        rng = np.random.default_rng([self.seed, int(index)])
        tc, aug = self.training, self.aug
        si, i, sj, j, negative = self._pick_frames(rng)
        seq_z, seq_x = self.sequences[si], self.sequences[sj]
        img_z, img_x = self._image(seq_z.frame_paths[i]), self._image(seq_x.frame_paths[j])
        box_z, box_x = seq_z.boxes[i], seq_x.boxes[j]
        if self.train and not negative and aug.patch_pair_prob > 0 and rng.random() < aug.patch_pair_prob:
            img_x = img_z
            box_z, box_x = self._patch_boxes(img_z.shape, rng)

        s1, s2 = float(aug.exemplar_size), float(aug.instance_size)
        if self.train and tc.multi_scale_train and rng.random() < aug.multi_scale_prob:
            s2 = rng.uniform(*aug.search_range)
            if aug.multi_scale_mode == "independent":
                s1 = rng.uniform(*aug.template_range)
            else:  # "matched": the template at the search crop's resolution (S1 = S2 * 127 / 255)
                s1 = float(np.clip(s2 * aug.exemplar_size / aug.instance_size, *aug.template_range))

        def jitter():
            if not self.train or aug.stretch <= 0:
                return 1.0, 1.0
            scale = 1.0 + rng.uniform(-aug.stretch, aug.stretch)
            aspect = 1.0 + rng.uniform(-aug.stretch / 2, aug.stretch / 2)
            return scale * aspect, scale / aspect

        # exemplar: centred, side s_z * S1 / 127 image pixels
        sz = exemplar_region(box_z[2], box_z[3], aug.context)
        fx, fy = jitter()
        side_z = sz * s1 / aug.exemplar_size
        z = crop_rect(img_z, box_z[0] + box_z[2] / 2, box_z[1] + box_z[3] / 2, side_z * fx, side_z * fy,
                      aug.exemplar_size, channel_mean(img_z))

        # search: side s_z(search box) * S2 / 127, target shifted by (dx, dy) search pixels from the centre
        sx_ = exemplar_region(box_x[2], box_x[3], aug.context) * s2 / aug.exemplar_size
        fx, fy = jitter()
        if self.train and (aug.search_scale > 0 or aug.search_aspect > 0):
            grow = math.exp(rng.uniform(-aug.search_scale, aug.search_scale))
            ratio = math.exp(rng.uniform(-aug.search_aspect, aug.search_aspect))
            fx, fy = fx * grow * math.sqrt(ratio), fy * grow / math.sqrt(ratio)
        side_x, side_y = sx_ * fx, sx_ * fy
        dx, dy = (rng.uniform(-aug.max_shift, aug.max_shift, size=2) if aug.max_shift > 0 else (0.0, 0.0))
        out = aug.instance_size
        tcx, tcy = box_x[0] + box_x[2] / 2, box_x[1] + box_x[3] / 2
        x = crop_rect(img_x, tcx - dx * side_x / out, tcy - dy * side_y / out, side_x, side_y, out,
                      channel_mean(img_x))

        if self.train:
            if rng.random() < tc.gray_prob:
                z = cv2.cvtColor(cv2.cvtColor(z, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
                x = cv2.cvtColor(cv2.cvtColor(x, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
            z = self._photometric(z, rng)
            x = self._photometric(x, rng)
            if rng.random() < tc.flip_prob:
                z, x, dx = z[:, ::-1], x[:, ::-1], -dx
        z = torch.from_numpy(np.ascontiguousarray(z.transpose(2, 0, 1)))
        x = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))
        size = (box_x[2] * out / side_x, box_x[3] * out / side_y)
        # The box the crop was cut for (before its jitter), as the tracker cuts its crop for its current box: the
        # box head's anchor.
        anchor = (box_x[2] * out / sx_, box_x[3] * out / sx_)
        return (z, x, torch.tensor([dx, dy, *size, *anchor], dtype=torch.float32),
                torch.tensor(0.0 if negative else 1.0))

    def _patch_boxes(self, shape, rng: np.random.Generator):
        """A random box inside the frame and the same box, resized by up to +-patch_scale, for a patch pair."""
        aug = self.aug
        height, width = shape[:2]
        side = rng.uniform(*aug.patch_side) * min(height, width)
        aspect = math.exp(rng.uniform(-0.7, 0.7))
        w, h = side * math.sqrt(aspect), side / math.sqrt(aspect)
        x0 = rng.uniform(0, max(width - w, 1.0))
        y0 = rng.uniform(0, max(height - h, 1.0))
        k = 1.0 + rng.uniform(-aug.patch_scale, aug.patch_scale)
        cx, cy = x0 + w / 2, y0 + h / 2
        return (np.array([x0, y0, w, h], dtype=np.float64),
                np.array([cx - k * w / 2, cy - k * h / 2, k * w, k * h], dtype=np.float64))

    def _photometric(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Saturation, contrast, per-channel gain and brightness folded into one 3x4 affine colour transform
        (one cv2.transform pass on uint8, saturating), then an optional Gaussian blur."""
        aug = self.aug
        sat = 1.0 + rng.uniform(-aug.saturation, aug.saturation) if aug.saturation > 0 else 1.0
        con = 1.0 + rng.uniform(-aug.contrast, aug.contrast) if aug.contrast > 0 else 1.0
        gain = (1.0 + rng.uniform(-aug.channel_gain, aug.channel_gain, size=3) if aug.channel_gain > 0
                else np.ones(3))
        bright = 255.0 * rng.uniform(-aug.brightness, aug.brightness) if aug.brightness > 0 else 0.0
        blur = aug.blur_prob > 0 and rng.random() < aug.blur_prob
        sigma = rng.uniform(*aug.blur_sigma) if blur else 0.0
        # f -> grey + sat * (f - grey)  (grey = channel mean: preserves the image mean)
        m_sat = sat * np.eye(3) + (1.0 - sat) / 3.0 * np.ones((3, 3))
        mu = float(np.mean(cv2.mean(img)[:3]))
        # -> con * (f - mu) + mu -> gain * f -> + bright
        m = con * (gain[:, None] * m_sat)
        offset = gain * (1.0 - con) * mu + bright
        out = cv2.transform(img, np.hstack([m, offset[:, None]]).astype(np.float32))
        if blur:
            out = cv2.GaussianBlur(out, (0, 0), sigma)
        return out


def collate_to(batch, device: torch.device | str = "cpu", non_blocking: bool = False):
    """Batch of uint8 crops -> float32 tensors on `device` (conversion after the transfer: 4x less to copy)."""
    z, x, target, positive = batch
    z = z.to(device, non_blocking=non_blocking).float()
    x = x.to(device, non_blocking=non_blocking).float()
    return z, x, target.to(device), positive.to(device)
