"""Frames per second while the target is tracked, for several tracking settings on the same frames.

usage: python tools/tracked_speed.py DATA_DIR --split test [--row NAME=KEY=VALUE,KEY=VALUE ...] [--json OUT]

Every row is one SiamTracker (the default weights and backend of this machine, on the CPU) with its `tracking.`
overrides; the rows take turns frame by frame on the same decoded frames, so they share the machine's load. Only
`update` calls are timed; "tracked" counts the frames a row reported tracked (not lost), "all" every frame.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from siam_tracker_ros.config import Config
from siam_tracker_ros.data import load_sequences, read_frame
from siam_tracker_ros.evaluation.cli import SPLIT_CONFIG, SPLITS
from siam_tracker_ros.resources import shipped_file
from siam_tracker_ros.tracking import SiamTracker
from siam_tracker_ros.training.trainer import load_train_config


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data_dir")
    p.add_argument("--split", choices=SPLITS, default="test")
    p.add_argument("--row", action="append", default=[], metavar="NAME=KEY=VALUE,...")
    p.add_argument("--json")
    args = p.parse_args()
    names = getattr(load_train_config(shipped_file(SPLIT_CONFIG))[0].training, SPLITS[args.split])
    rows = {}
    for spec in args.row or ["default="]:
        name, _, overrides = spec.partition("=")
        cfg = Config()
        cfg.backend.device = "cpu"
        for item in filter(None, overrides.split(",")):
            key, _, value = item.partition("=")
            default = getattr(cfg.tracking, key)
            setattr(cfg.tracking, key, type(default)(json.loads(value)) if not isinstance(default, bool)
                    else value.lower() == "true")
        rows[name] = SiamTracker.from_config(cfg)
    seqs = {s.name: s for s in load_sequences(args.data_dir)}
    times = {name: {"tracked": [], "all": []} for name in rows}
    for seq_name in names:
        frames, boxes = [read_frame(p) for p in seqs[seq_name].frame_paths], seqs[seq_name].boxes
        for tracker in rows.values():
            tracker.clear()
            tracker.init(frames[0], boxes[0])
        for frame in frames[1:]:
            for name, tracker in rows.items():
                start = time.perf_counter()
                (result,) = tracker.update(frame).values()
                elapsed = time.perf_counter() - start
                times[name]["all"].append(elapsed)
                if not result.lost:
                    times[name]["tracked"].append(elapsed)
    out = {name: {kind: {"frames": len(v), "fps": len(v) / max(sum(v), 1e-9),
                         "median_ms": 1000 * float(np.median(v)) if v else None} for kind, v in t.items()}
           for name, t in times.items()}
    print(f"{'row':<12}{'fps tracked':>12}{'frames':>8}{'fps all':>10}{'frames':>8}")
    for name, o in out.items():
        print(f"{name:<12}{o['tracked']['fps']:>12.1f}{o['tracked']['frames']:>8}{o['all']['fps']:>10.1f}"
              f"{o['all']['frames']:>8}")
    if args.json:
        Path(args.json).write_text(json.dumps({"split": args.split, "sequences": names, "rows": args.row,
                                               "figures": out}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
