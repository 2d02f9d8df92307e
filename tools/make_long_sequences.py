#!/usr/bin/env python3
"""Long camera-rate test sequences from the tracks that were never thinned: each played forward, back, forward, ...

`python tools/make_long_sequences.py [--src ../shared/data/train] [--out /tmp/long_sequences] [--laps 6]`, then
`siam-tracker eval folder:/tmp/long_sequences --weights W`.

The tracks of ../shared/data were thinned to at most 100 frames, so those with fewer are at the camera's frame rate
(20 of the 65). They are short; a robot's stream is not. Played back and forth they become sequences of several
hundred frames at that rate, in which the target keeps moving like a filmed one and comes back to every pose it had:
a check that the tracker does not drift or lose the target as time goes on (docs/results.md, "Long sequences").
Frames are symbolic links to the source images (`--copy` copies them); each folder gets a groundtruth.txt in the same
order, so the result reads as the ../shared/data layout.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from siam_tracker_ros.data import data_root, format_box_lines, load_sequences  # noqa: E402


def ping_pong_order(n: int, laps: int) -> list[int]:
    """Frame indices of `laps` passes over n frames, alternating direction, without repeating the turning frame."""
    order = list(range(n))
    for lap in range(1, laps):
        order += list(range(n - 2, -1, -1) if lap % 2 else range(1, n))
    return order


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", default=None, help="source sequences (default: ../shared/data/train)")
    ap.add_argument("--out", default="/tmp/long_sequences")
    ap.add_argument("--laps", type=int, default=6, help="passes over each track (default 6)")
    ap.add_argument("--below", type=int, default=100,
                    help="use the tracks with fewer frames than this, i.e. those not thinned (default 100)")
    ap.add_argument("--sequences", default=None, help="comma-separated names instead of --below")
    ap.add_argument("--copy", action="store_true", help="copy the frames instead of linking them")
    args = ap.parse_args(argv)
    if args.laps < 1:
        ap.error("--laps must be at least 1")
    src = Path(args.src) if args.src else data_root() / "train"
    seqs = load_sequences(src)
    if args.sequences:
        names = set(args.sequences.split(","))
        seqs = [s for s in seqs if s.name in names]
        missing = names - {s.name for s in seqs}
        if missing:
            ap.error(f"not in {src}: {', '.join(sorted(missing))}")
    else:
        seqs = [s for s in seqs if len(s) < args.below]
    if not seqs:
        ap.error(f"no sequences selected from {src}")
    out = Path(args.out)
    total = 0
    for seq in seqs:
        folder = out / seq.name
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        order = ping_pong_order(len(seq), args.laps)
        for k, i in enumerate(order):
            source = Path(seq.frame_paths[i]).resolve()
            target = folder / f"{k + 1:05d}{source.suffix}"
            if args.copy:
                shutil.copyfile(source, target)
            else:
                os.symlink(source, target)
        # Absent rows stay absent: the evaluation skips them as in the source.
        (folder / "groundtruth.txt").write_text(format_box_lines(seq.boxes[order]))
        total += len(order)
    print(f"{len(seqs)} sequences, {total} frames in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
