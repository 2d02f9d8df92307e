"""What the tracker sends to a backend: input sizes, crops per target, the lost search's size and every batch.

One plan, read by the tracker's localisers (which crops they cut), its warm-up (every call it can make), the ONNX
export (every graph) and the TensorRT profiles (the largest batch): `SearchPlan.max_batch` is the one batch limit.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..config import TrackingConfig

# Pixels added to the search input while a target is lost: 383 for 255, 1.5x the area's side at the same resolution,
# so the template still matches in scale.
LOST_SEARCH_EXTRA = 128


def uses_box_head(cfg: TrackingConfig, backend) -> bool:
    """Box mode: the network has the box head (its search gives more than the response) and box_regression is on."""
    return bool(cfg.box_regression) and getattr(backend, "output_channels", 1) > 1


@dataclass(frozen=True)
class SearchPlan:
    """The search calls of a tracker with configuration `cfg`; `box_mode`: one crop per target (the box head's)."""

    cfg: TrackingConfig
    box_mode: bool = False

    @property
    def pairs(self) -> list[tuple[int, int]]:
        """The (exemplar size, search size) pairs of a tracked target's search: the multi-scale test's sizes, or the
        one pair (always in box mode: the regressed box replaces the multi-scale search)."""
        if self.cfg.multi_scale_test and not self.box_mode:
            return [tuple(p) for p in self.cfg.test_sizes]
        return [(self.cfg.exemplar_size, self.cfg.instance_size)]

    @property
    def crops_per_pair(self) -> int:
        """Crops a tracked target sends per input-size pair: the scale pyramid's, or one in box mode."""
        return 1 if self.box_mode else self.cfg.num_scales

    @property
    def lost_key(self) -> tuple[int, int]:
        """(exemplar size, search size) of the lost search: the first pair's search input LOST_SEARCH_EXTRA larger."""
        z_size, x_size = self.pairs[0]
        return z_size, x_size + LOST_SEARCH_EXTRA

    @property
    def template_sizes(self) -> list[int]:
        """The exemplar sizes a target keeps a template kernel for."""
        return sorted({z for z, _ in self.pairs})

    def graph_pairs(self) -> list[tuple[int, int]]:
        """Every (exemplar size, search size) graph a tracker of this configuration can use, in either mode."""
        plans = (SearchPlan(self.cfg), SearchPlan(self.cfg, box_mode=True))
        return sorted({key for plan in plans for key in (*plan.pairs, plan.lost_key)})

    def lost_batches(self, lost: int, tracked: int = 0) -> range:
        """Crops at lost_key with `lost` frozen targets and `tracked` others: a wide search per frozen target, and
        with re-detection on, 0 to redetect_windows scan windows shared by the frozen targets and (with the drift
        check) the tracked ones reported lost (fewer when the frame needs fewer)."""
        scanning = lost > 0 or (tracked > 0 and self.cfg.drift_check)
        windows = self.cfg.redetect_windows if self.cfg.redetect_after > 0 and scanning else 0
        return range(lost, lost + 1 + windows)

    def search_calls(self, max_targets: int) -> list[tuple[int, int, int]]:
        """Every (exemplar size, search size, batch) `update` can send with up to `max_targets` targets.

        Tracked targets send crops_per_pair crops per pair, and lost_batches crops go at lost_key (frozen targets'
        wide searches, scan windows); any split of the targets between the states can happen, and a lost key equal
        to a pair shares its calls. `init` measures the new target's reference with one crop of the first pair.
        """
        calls = {(*self.pairs[0], 1)}
        for tracked in range(max_targets + 1):
            for lost in range(max_targets + 1 - tracked):
                for lost_batch in self.lost_batches(lost, tracked):
                    batches: dict[tuple, int] = {}
                    for key in self.pairs:
                        batches[key] = batches.get(key, 0) + self.crops_per_pair * tracked
                    batches[self.lost_key] = batches.get(self.lost_key, 0) + lost_batch
                    calls.update((z, x, b) for (z, x), b in batches.items() if b > 0)
        return sorted(calls)

    def max_batch(self, max_targets: int) -> int:
        """The largest batch one search call can get with up to `max_targets` targets: the backends' batch limit."""
        return max(b for _, _, b in self.search_calls(max_targets))
