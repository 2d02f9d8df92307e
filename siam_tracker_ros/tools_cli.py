"""`siam-tracker export` (weights -> ONNX graphs) and `siam-tracker track` (offline tracking of frames or a video)."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", help="weights file (default: the shipped weights)")
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

    cfg = _load_config(args.config)
    model = load_weights(args.weights or default_weights_path())
    t = cfg.tracking
    pairs = {(t.exemplar_size, t.instance_size), (t.exemplar_size, t.instance_size + 128)}  # + the lost-mode search
    if t.multi_scale_test:
        pairs |= {tuple(p) for p in t.test_sizes}
    for path in export_all(model, args.out, sorted(pairs)):
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
    p.add_argument("--output", default="boxes.txt", help="where to write x,y,w,h,confidence,lost per frame")
    p.add_argument("--video", help="also write an annotated video here (.mp4 or .avi)")
    p.set_defaults(func=run_track)


def iter_frames(source: str):
    """Frames (BGR uint8) of a folder of images or a video file."""
    import cv2

    path = Path(source)
    if path.is_dir():
        files = sorted(f for f in path.iterdir() if f.suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp"))
        if not files:
            raise FileNotFoundError(f"no images in {path}")
        for f in files:
            frame = cv2.imread(str(f))
            if frame is None:
                raise ValueError(f"cannot read image {f}")
            yield frame
        return
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise FileNotFoundError(f"cannot open video {path}")
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            yield frame
    finally:
        cap.release()


def run_track(args) -> int:
    import cv2

    from .tracking import DEFAULT_TARGET, InputError, SiamTracker

    cfg = _load_config(args.config)
    if args.backend:
        cfg.backend.name = args.backend
    if args.box:
        box = [float(v) for v in args.box.split(",")]
    else:
        gt = Path(args.source) / "groundtruth.txt"
        if not gt.is_file():
            print("siam-tracker track: give --box x,y,w,h (no groundtruth.txt next to the frames)", file=sys.stderr)
            return 2
        box = [float(v) for v in gt.read_text().splitlines()[0].replace("\t", ",").split(",")[:4]]
    tracker = SiamTracker.from_config(cfg, args.weights)
    writer = None
    rows = []
    start = time.perf_counter()
    try:
        for i, frame in enumerate(iter_frames(args.source)):
            if i == 0:
                tracker.init(frame, box)
                b, conf, lost = np.asarray(box), 1.0, False
            else:
                r = tracker.update(frame)[DEFAULT_TARGET]
                b, conf, lost = r.box, r.confidence, r.lost
            rows.append(f"{b[0]:.2f},{b[1]:.2f},{b[2]:.2f},{b[3]:.2f},{conf:.4f},{int(lost)}")
            if args.video:
                if writer is None:
                    fourcc = cv2.VideoWriter_fourcc(*("mp4v" if args.video.endswith(".mp4") else "MJPG"))
                    writer = cv2.VideoWriter(args.video, fourcc, 30.0, (frame.shape[1], frame.shape[0]))
                colour = (0, 0, 255) if lost else (0, 255, 255)
                p1 = (int(b[0]), int(b[1]))
                cv2.rectangle(frame, p1, (int(b[0] + b[2]), int(b[1] + b[3])), colour, 2)
                cv2.putText(frame, f"{conf:.2f}", (p1[0], max(12, p1[1] - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                            colour, 1)
                writer.write(frame)
    except (InputError, FileNotFoundError, ValueError) as err:
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
