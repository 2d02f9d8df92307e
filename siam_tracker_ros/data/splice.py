"""Camera cuts: another track's frames spliced into a host track, the target marked absent there (the one place a
cut is made), and the re-acquisition set built from them.

A cut inserts `n_frames` consecutive frames of another track (the donor) between the host's frames ``at - 1`` and
``at``: every host frame is kept, so the target comes back where it left the picture, after the camera has shown
another scene. The donor frames are resized to the host's frame size; the ground truth has a NaN row (absent) for
each of them. The result is written as a sequence folder of the ../shared/data layout (frames ``00001.*`` ...,
``groundtruth.txt``, and ``splice.json`` recording what was spliced), so every command that reads sequences reads
it; host frames are copied byte for byte.

The tracks are taken to run at CUT_RATE_HZ frames per second: a cut of 1-3 s is 30-90 frames.
"""
from __future__ import annotations

import json
import random
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from .frames import fit_size, read_frame
from .sequences import Sequence, format_box_lines, read_folder_sequence

CUT_RATE_HZ = 30.0  # the camera rate the cut lengths (and the re-acquisition window) are counted in
CUT_SECONDS = (1.0, 3.0)  # a cut lasts between these many seconds
SPLICE_FILE = "splice.json"


@dataclass(frozen=True)
class Cut:
    """One planned cut: `n_frames` of `donor` from `donor_start` inserted before the host's frame `at`."""

    host: str
    donor: str
    at: int
    n_frames: int
    donor_start: int


def splice_cut(host: Sequence, other: Sequence, at: int, n_frames: int, out_dir: str | Path,
               donor_start: int = 0, name: str | None = None) -> Sequence:
    """Write `host` with frames ``donor_start .. donor_start + n_frames - 1`` of `other` inserted before host frame
    `at` to the sequence folder `out_dir` (created; must not hold frames already) and return it as read back.

    Host frames keep their files; the donor frames are resized to the host's first frame's size and stored as JPEG.
    The ground truth is the host's, with a NaN row for every inserted frame. ValueError when a host side of the cut
    would be empty or the donor has too few frames."""
    if not 0 < at < len(host):
        raise ValueError(f"cut position {at} outside 1..{len(host) - 1}: host {host.name} has {len(host)} frames "
                         "and keeps at least one on each side")
    if n_frames < 1 or donor_start < 0 or donor_start + n_frames > len(other):
        raise ValueError(f"donor {other.name} has {len(other)} frames: cannot take {n_frames} from {donor_start}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if any(out_dir.iterdir()):
        raise ValueError(f"{out_dir} is not empty")
    first = read_frame(host.frame_paths[0])
    size = (first.shape[1], first.shape[0])  # (width, height)
    index = 0

    def next_name(suffix: str) -> Path:
        nonlocal index
        index += 1
        return out_dir / f"{index:05d}{suffix}"

    for path in host.frame_paths[:at]:
        shutil.copyfile(path, next_name(Path(path).suffix.lower()))
    for path in other.frame_paths[donor_start:donor_start + n_frames]:
        cv2.imwrite(str(next_name(".jpg")), fit_size(read_frame(path), size), [cv2.IMWRITE_JPEG_QUALITY, 95])
    for path in host.frame_paths[at:]:
        shutil.copyfile(path, next_name(Path(path).suffix.lower()))
    boxes = np.concatenate([host.boxes[:at], np.full((n_frames, 4), np.nan), host.boxes[at:]])
    (out_dir / "groundtruth.txt").write_text(format_box_lines(boxes))
    cut = Cut(host.name, other.name, int(at), int(n_frames), int(donor_start))
    (out_dir / SPLICE_FILE).write_text(json.dumps({"cut": asdict(cut), "frame_size": list(size)}, indent=1))
    seq = read_folder_sequence(out_dir, name or out_dir.name)
    seq.meta["cut"] = asdict(cut)
    return seq


def collection(name: str) -> str:
    """The source collection of a ../shared/data track: the name's prefix (``uav-car16`` -> ``uav``)."""
    return name.split("-", 1)[0]


def has_own_absence(seq: Sequence) -> bool:
    """Whether the target leaves and comes back within the track (a present frame after an absent one after the
    first present frame)."""
    present = seq.valid
    seen = np.flatnonzero(present)
    if len(seen) == 0:
        return False
    after = present[seen[0]:]
    return bool(np.any(~after[:-1] & after[1:]))


def plan_cuts(hosts: list[Sequence], donors: list[Sequence], seed: int, rate_hz: float = CUT_RATE_HZ,
              seconds: tuple[float, float] = CUT_SECONDS) -> list[Cut]:
    """One cut per host, in the hosts' order, drawn with random.Random(seed): its length (seconds, uniform, at
    `rate_hz`), its donor (a track of another collection, so not the host's scene, with enough frames), the donor's
    first frame and the position in the host (from a quarter of the host in, leaving at least 1 s of host after the
    return when the host is that long)."""
    rng = random.Random(seed)
    by_name = sorted(donors, key=lambda s: s.name)
    plans = []
    for host in hosts:
        n_frames = int(round(rng.uniform(*seconds) * rate_hz))
        pool = [d for d in by_name if collection(d.name) != collection(host.name) and len(d) >= n_frames]
        if not pool:
            raise ValueError(f"no donor for {host.name}: no track of another collection has {n_frames} frames")
        donor = rng.choice(pool)
        donor_start = rng.randint(0, len(donor) - n_frames)
        if len(host) < 2:
            raise ValueError(f"host {host.name} has {len(host)} frame(s): a cut needs 2")
        lo = max(1, len(host) // 4)
        hi = max(lo, min(len(host) - 1, len(host) - int(round(rate_hz))))
        plans.append(Cut(host.name, donor.name, rng.randint(lo, hi), n_frames, donor_start))
    return plans


def build_reacquisition_set(tracks: list[Sequence], donors: list[Sequence], out_dir: str | Path, seed: int = 27,
                            rate_hz: float = CUT_RATE_HZ) -> list[Sequence]:
    """The re-acquisition set of `tracks`: a cut copy of each (``<name>+cut``, plan_cuts(seed), written under
    `out_dir`), then, unchanged, those whose own ground truth has the target leave and come back (has_own_absence).
    `donors` is where the cut frames are taken from (any tracks; those of a host's collection are never used)."""
    out_dir = Path(out_dir)
    by_name = {s.name: s for s in donors}
    by_name.update({s.name: s for s in tracks})
    hosts = {s.name: s for s in tracks}
    out = []
    for cut in plan_cuts(tracks, donors, seed, rate_hz):
        name = f"{cut.host}+cut"
        out.append(splice_cut(hosts[cut.host], by_name[cut.donor], cut.at, cut.n_frames, out_dir / name,
                              cut.donor_start, name))
    out.extend(s for s in tracks if has_own_absence(s))
    return out
