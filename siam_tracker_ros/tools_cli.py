"""`siam-tracker export` (weights -> ONNX graphs) and `siam-tracker track` (offline tracking of frames or a video)."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", help="weights file (default: the shipped weights); for `track` also a converted "
                                     "NanoTrack file or the folder of a NanoTrack ONNX pair")
    p.add_argument("--config", help="YAML config (tracking / backend sections)")


def _load_config(path):
    from .config import Config
    return Config.load(path) if path else Config()


def add_export_parser(sub) -> None:
    p = sub.add_parser("export", help="export the template and search graphs to ONNX")
    _add_common(p)
    p.add_argument("--out", default="onnx", help="output folder (default: onnx)")
    p.set_defaults(func=run_export)


def run_export(args) -> int:
    from .backends import default_weights_path
    from .backends.export import export_all
    from .model import load_weights
    from .tracking.search_plan import SearchPlan

    cfg = _load_config(args.config)
    model = load_weights(args.weights or default_weights_path())
    for path in export_all(model, args.out, SearchPlan(cfg.tracking).graph_pairs()):
        print(path)
    return 0


def add_ensemble_parser(sub) -> None:
    p = sub.add_parser("ensemble", help="combine separately trained weights of one configuration into an ensemble")
    p.add_argument("weights", nargs="+", help="two or more weights files (model.members = 1, same configuration)")
    p.add_argument("--out", required=True, help="the ensemble's weights file")
    p.set_defaults(func=run_ensemble)


def run_ensemble(args) -> int:
    from .model.weights import combine_weights, save_weights

    model, metadata = combine_weights(args.weights)
    save_weights(model, args.out, metadata=metadata)
    print(f"{args.out}: {len(args.weights)} members, {sum(p.numel() for p in model.parameters())} parameters")
    return 0


def add_track_parser(sub) -> None:
    p = sub.add_parser("track", help="track one target through a folder of frames or a video file")
    _add_common(p)
    p.add_argument("source", help="folder of frames (sorted by name) or a video file")
    p.add_argument("--box", help="x,y,w,h of the target in the first frame (default: first line of "
                                 "groundtruth.txt in the folder)")
    p.add_argument("--backend", help="torch | onnxruntime | tensorrt | auto")
    p.add_argument("--model", help="backend.model: small | large | small_box | nanotrack_v2 | nanotrack_v3 (the "
                                   "user's NanoTrack files in $SIAM_PEERS_DIR/<model> or ../shared/peers/<model>)")
    p.add_argument("--output", default="boxes.txt", help="where to write x,y,w,h,confidence,lost per frame")
    p.add_argument("--video", help="also write an annotated video here (.mp4 or .avi)")
    p.set_defaults(func=run_track)


def run_track(args) -> int:
    from .data import open_path, read_groundtruth
    from .drawing import STATE_COLOURS, draw_box, draw_label, open_video_writer
    from .tracking import DEFAULT_TARGET, InputError
    from .tracking.build import build_tracker

    cfg = _load_config(args.config)
    if args.backend:
        cfg.backend.name = args.backend
    if args.model:
        from .config import ConfigError

        cfg.backend.model = args.model
        try:
            cfg.validate()
        except ConfigError as err:
            print(f"siam-tracker track: {err}", file=sys.stderr)
            return 2
    if args.box:
        box = [float(v) for v in args.box.split(",")]
    else:
        gt = Path(args.source) / "groundtruth.txt"
        if not gt.is_file():
            print("siam-tracker track: give --box x,y,w,h (no groundtruth.txt next to the frames)", file=sys.stderr)
            return 2
        box = read_groundtruth(gt)[0].tolist()
    tracker = build_tracker(cfg, args.weights)
    writer = None
    rows = []
    start = time.perf_counter()
    try:
        for i, frame in enumerate(open_path(args.source)):
            if i == 0:
                tracker.init(frame, box)
                b, conf, lost = np.asarray(box), 1.0, False
            else:
                r = tracker.update(frame)[DEFAULT_TARGET]
                b, conf, lost = r.box, r.confidence, r.lost
            rows.append(f"{b[0]:.2f},{b[1]:.2f},{b[2]:.2f},{b[3]:.2f},{conf:.4f},{int(lost)}")
            if args.video:
                if writer is None:
                    writer, _ = open_video_writer(args.video, (frame.shape[1], frame.shape[0]), 30.0)
                    if writer is None:
                        raise ValueError(f"OpenCV cannot write the video {args.video} (use .mp4 or .avi)")
                state = "lost" if lost else "tracked"
                draw_box(frame, b, STATE_COLOURS[state])
                draw_label(frame, f"{state} {conf:.2f}", (max(0, int(b[0])), max(12, int(b[1]) - 6)),
                           STATE_COLOURS[state])
                writer.write(frame)
    except (InputError, OSError, RuntimeError, ValueError) as err:
        print(f"siam-tracker track: {err}", file=sys.stderr)
        return 2
    finally:
        if writer is not None:
            writer.release()
    elapsed = time.perf_counter() - start
    Path(args.output).write_text("\n".join(rows) + "\n")
    print(f"{len(rows)} frames, {len(rows) / max(elapsed, 1e-9):.1f} fps ({tracker.backend.describe()}); "
          f"boxes in {args.output}" + (f", video in {args.video}" if args.video else ""))
    return 0
