"""A target's template memory: the first template always, up to K more taken on confident frames that look different.

Gates (a template is added only when all hold): the frame's confidence is at least the score gate; the candidate is
far enough from every kept template (cosine similarity of the kernels at most `max_similarity`: nothing is gained by
keeping a copy); it still resembles the first template (at least `min_similarity`: a track drifting onto the
background produces kernels unlike the first, and the confidence of a drifting track can stay high for a while);
at least `interval` frames since the last addition. A full memory drops its oldest added template.

The search correlates with one blended kernel: the first template's weight `first_weight`, the added ones sharing
the rest. The response (channel 0) is affine in the kernel (a correlation, a scale and a bias), so the blended
kernel's response is exactly the same blend of the K responses, for the cost of one correlation: no extra search
crops. (The backend contract, search(x, kernel) with one kernel per crop, would otherwise need K copies of every crop
in the batch, one backbone pass each.) With the box head, only the response is exact; the head reads the blend.

Used through `kernels` (what the search correlates with), `first` (the verification's template) and `consider`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def kernel_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two kernels (any shape, same size), in [-1, 1]."""
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))


@dataclass
class MemoryGates:
    size: int  # templates kept besides the first
    score_gate: float
    max_similarity: float
    min_similarity: float
    interval: int
    first_weight: float

    @classmethod
    def from_config(cls, cfg) -> "MemoryGates":
        return cls(cfg.memory_size, cfg.memory_score_gate, cfg.memory_max_similarity, cfg.memory_min_similarity,
                   cfg.memory_interval, cfg.memory_first_weight)


@dataclass
class TemplateMemory:
    """One target's templates: `first` (exemplar size -> kernel) and the added ones, oldest first."""

    first: dict
    gates: MemoryGates
    added: list = field(default_factory=list)  # [exemplar size -> kernel]
    frames_since_added: int = 0
    kernels: dict = field(init=False)  # the blend the search correlates with

    def __post_init__(self):
        self.kernels = dict(self.first)

    def due(self, confidence: float) -> bool:
        """Whether this frame may offer a template (checked before the candidate's template is computed)."""
        self.frames_since_added += 1
        return (self.gates.size > 0 and confidence >= self.gates.score_gate
                and self.frames_since_added >= self.gates.interval)

    def consider(self, candidate: dict, confidence: float) -> str:
        """Add `candidate` (exemplar size -> kernel of the frame's box) if every gate passes. Returns "added" or the
        gate that refused it: "score", "like_memory", "unlike_first"."""
        if confidence < self.gates.score_gate:
            return "score"
        size = min(candidate)
        c = candidate[size]
        if kernel_similarity(c, self.first[size]) < self.gates.min_similarity:
            return "unlike_first"
        if any(kernel_similarity(c, k[size]) > self.gates.max_similarity for k in (self.first, *self.added)):
            return "like_memory"
        self.added.append(dict(candidate))
        del self.added[:-self.gates.size]
        self.frames_since_added = 0
        self._blend()
        return "added"

    def _blend(self) -> None:
        if not self.added:
            self.kernels = dict(self.first)
            return
        w = self.gates.first_weight
        rest = (1.0 - w) / len(self.added)
        self.kernels = {size: (w * k + rest * sum(a[size] for a in self.added)).astype(np.float32)
                        for size, k in self.first.items()}
