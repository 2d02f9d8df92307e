"""The balanced logistic loss of SiamFC and the paper (eq. 7-9).

Label map (eq. 9): a response cell u is +1 when k * ||u - c|| <= R, -1 otherwise, with k the total stride (8) and c
the cell under the target's centre. The target is wherever the pair sampler put it (the search crop is shifted), so
c = centre cell + offset / k. Response cell u covers search pixel (out - 1) / 2 + k * (u - (H - 1) / 2).
A negative pair (template and search from different objects) is -1 everywhere.

Distillation (optional, not in the paper): the same balanced logistic loss with a teacher network's probabilities as
soft targets, mixed with the label loss.

Loss (eq. 7-8) ell(y, v) = log(1 + exp(-y v)), averaged over the map with SiamFC's balancing: positives and
negatives each carry half of a pair's weight (a negative pair puts all of it on its negatives), then the mean over
the batch.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..config import MAX_LOG_SIZE_CHANGE


def make_labels(offsets: torch.Tensor, positive: torch.Tensor, size: tuple[int, int], stride: int = 8,
                radius: float = 16.0) -> torch.Tensor:
    """(B, 2) target offsets in search pixels and (B,) positive flags -> (B, 1, H, W) labels in {-1, +1}."""
    h, w = size
    dev = offsets.device
    ys = (torch.arange(h, device=dev, dtype=torch.float32) - (h - 1) / 2.0) * stride
    xs = (torch.arange(w, device=dev, dtype=torch.float32) - (w - 1) / 2.0) * stride
    dx = xs[None, None, :] - offsets[:, 0, None, None]
    dy = ys[None, :, None] - offsets[:, 1, None, None]
    inside = (dx * dx + dy * dy) <= radius * radius
    inside = inside & (positive[:, None, None] > 0.5)
    return (inside.float() * 2.0 - 1.0)[:, None]


def balanced_weights(labels: torch.Tensor) -> torch.Tensor:
    """Per-cell weights: each map sums to 1, split half/half between positives and negatives when both exist."""
    pos = (labels > 0).float()
    neg = 1.0 - pos
    n_pos = pos.sum(dim=(1, 2, 3), keepdim=True)
    n_neg = neg.sum(dim=(1, 2, 3), keepdim=True)
    both = (n_pos > 0) & (n_neg > 0)
    w_pos = torch.where(both, 0.5 / n_pos.clamp(min=1), 1.0 / n_pos.clamp(min=1))
    w_neg = torch.where(both, 0.5 / n_neg.clamp(min=1), 1.0 / n_neg.clamp(min=1))
    return pos * w_pos + neg * w_neg


def _balanced_mean(per_cell: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-cell losses weighted by `balanced_weights(labels)`, summed per map, averaged over the batch."""
    return (per_cell * balanced_weights(labels)).sum(dim=(1, 2, 3)).mean()


def balanced_logistic_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of the balanced, per-map-averaged logistic loss."""
    return _balanced_mean(F.softplus(-labels * logits.float()), labels)  # log(1 + exp(-y v)), numerically stable


def _labels_for(logits: torch.Tensor, offsets: torch.Tensor, positive: torch.Tensor, stride: int,
                radius: float) -> torch.Tensor:
    return make_labels(offsets, positive, (logits.shape[-2], logits.shape[-1]), stride, radius)


def pair_loss(logits: torch.Tensor, offsets: torch.Tensor, positive: torch.Tensor, stride: int = 8,
              radius: float = 16.0) -> torch.Tensor:
    return balanced_logistic_loss(logits, _labels_for(logits, offsets, positive, stride, radius))


def distillation_loss(logits: torch.Tensor, teacher_logits: torch.Tensor, offsets: torch.Tensor,
                      positive: torch.Tensor, stride: int = 8, radius: float = 16.0) -> torch.Tensor:
    """Logistic loss against the teacher's probabilities sigmoid(teacher) instead of the +-1 labels, balanced like
    the label loss (the labels only set the weights). Smallest where the student's logits equal the teacher's."""
    target = torch.sigmoid(teacher_logits.float())
    per_cell = F.binary_cross_entropy_with_logits(logits.float(), target, reduction="none")
    return _balanced_mean(per_cell, _labels_for(logits, offsets, positive, stride, radius))


def cell_points(size: tuple[int, int], stride: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(ys (H,), xs (W,)): each response cell's point in search pixels from the crop's centre (the label maps'
    convention above)."""
    h, w = size
    ys = (torch.arange(h, device=device, dtype=torch.float32) - (h - 1) / 2.0) * stride
    xs = (torch.arange(w, device=device, dtype=torch.float32) - (w - 1) / 2.0) * stride
    return ys, xs


def box_targets(target: torch.Tensor, size: tuple[int, int], stride: int = 8) -> torch.Tensor:
    """(B, >=4) target boxes (dx, dy, w, h) in search pixels from the crop's centre -> (B, 4, H, W) distances l, t,
    r, b from each response cell's point to the box's sides; negative outside the box."""
    ys, xs = cell_points(size, stride, target.device)
    dx, dy, bw, bh = (target[:, k, None, None] for k in range(4))
    left = xs[None, None, :] - (dx - bw / 2)
    right = (dx + bw / 2) - xs[None, None, :]
    top = ys[None, :, None] - (dy - bh / 2)
    bottom = (dy + bh / 2) - ys[None, :, None]
    shape = (target.shape[0], size[0], size[1])
    return torch.stack([left.expand(shape), top.expand(shape), right.expand(shape), bottom.expand(shape)], dim=1)


def decode_boxes(box: torch.Tensor, anchor: torch.Tensor, stride: int = 8) -> torch.Tensor:
    """The box head's (B, 4, H, W) ox, oy, sw, sh and (B, 2) anchor sizes -> (B, 4, H, W) boxes cx, cy, w, h in
    search pixels from the crop's centre (model/box_head.py): centre = cell + stride * (ox, oy), size = anchor *
    exp(sw, sh)."""
    ys, xs = cell_points((box.shape[-2], box.shape[-1]), stride, box.device)
    cx = xs[None, None, :] + stride * box[:, 0]
    cy = ys[None, :, None] + stride * box[:, 1]
    size = torch.exp(box[:, 2:4].clamp(-MAX_LOG_SIZE_CHANGE, MAX_LOG_SIZE_CHANGE)) * anchor[:, :, None, None]
    return torch.stack([cx.expand_as(box[:, 0]), cy.expand_as(box[:, 0]), size[:, 0], size[:, 1]], dim=1)


def centreness(sides: torch.Tensor) -> torch.Tensor:
    """FCOS's centre-ness of (B, 4, H, W) positive distances l, t, r, b: sqrt(min(l, r) / max(l, r) * min(t, b) /
    max(t, b)), 1 at the box's centre, 0 on its edge."""
    left, top, right, bottom = sides.unbind(dim=1)
    lr = torch.minimum(left, right) / torch.maximum(left, right).clamp(min=1e-6)
    tb = torch.minimum(top, bottom) / torch.maximum(top, bottom).clamp(min=1e-6)
    return torch.sqrt((lr * tb).clamp(min=0.0))


def giou_loss(pred: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """1 - generalised IoU of (N, 4) boxes cx, cy, w, h (positive sizes)."""
    def corners(b):
        return b[:, 0] - b[:, 2] / 2, b[:, 1] - b[:, 3] / 2, b[:, 0] + b[:, 2] / 2, b[:, 1] + b[:, 3] / 2

    px0, py0, px1, py1 = corners(pred)
    tx0, ty0, tx1, ty1 = corners(truth)
    iw = (torch.minimum(px1, tx1) - torch.maximum(px0, tx0)).clamp(min=0)
    ih = (torch.minimum(py1, ty1) - torch.maximum(py0, ty0)).clamp(min=0)
    inter = iw * ih
    union = pred[:, 2] * pred[:, 3] + truth[:, 2] * truth[:, 3] - inter
    enclosing = ((torch.maximum(px1, tx1) - torch.minimum(px0, tx0))
                 * (torch.maximum(py1, ty1) - torch.minimum(py0, ty0)))
    iou = inter / union.clamp(min=1e-6)
    return 1.0 - (iou - (enclosing - union) / enclosing.clamp(min=1e-6))


def box_loss(head: torch.Tensor, target: torch.Tensor, positive: torch.Tensor,
             stride: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """(GIoU loss of the boxes, logistic loss of the quality) of the box head's output (B, 5, H, W): quality logit,
    ox, oy, sw, sh, for (B, 6) targets (dx, dy, w, h, anchor w, anchor h). Taken on the cells of positive pairs
    whose point lies inside the target box, the boxes' loss weighted by the true centre-ness (FCOS), so the cells
    near the centre, which the tracker picks, count most. Zero (and no gradient) for a batch without such a cell."""
    size = (head.shape[-2], head.shape[-1])
    sides = box_targets(target, size, stride)
    inside = (sides.min(dim=1).values > 0) & (positive[:, None, None] > 0.5)  # (B, H, W)
    if not bool(inside.any()):
        zero = head.sum() * 0.0
        return zero, zero
    quality = centreness(sides)[inside]  # (N,): the true centre-ness of each cell inside the box
    boxes = decode_boxes(head[:, 1:5].float(), target[:, 4:6], stride).permute(0, 2, 3, 1)[inside]  # (N, 4)
    truth = target[:, None, None, :4].expand(-1, size[0], size[1], -1)[inside]
    box = (giou_loss(boxes, truth) * quality).sum() / quality.sum().clamp(min=1e-6)
    quality_loss = F.binary_cross_entropy_with_logits(head[:, 0].float()[inside], quality)
    return box, quality_loss


def training_loss(output: torch.Tensor, target: torch.Tensor, positive: torch.Tensor, radius: float,
                  teacher_logits: torch.Tensor | None = None, distill_weight: float = 0.5,
                  box_weight: float = 1.0, stride: int = 8) -> torch.Tensor:
    """The loss of one batch of the network's search output (B, 1 or 6, H, W): the response's logistic loss (mixed
    with the teacher's when given), plus, with the box head, `box_weight` x (sides' GIoU + quality) loss."""
    logits = output[:, :1].float()
    loss = pair_loss(logits, target, positive, stride, radius)
    if teacher_logits is not None:
        soft = distillation_loss(logits, teacher_logits[:, :1], target, positive, stride, radius)
        loss = (1.0 - distill_weight) * loss + distill_weight * soft
    if output.shape[1] > 1:
        sides, quality = box_loss(output[:, 1:], target, positive, stride)
        loss = loss + box_weight * (sides + quality)
    return loss
