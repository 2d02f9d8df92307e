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
