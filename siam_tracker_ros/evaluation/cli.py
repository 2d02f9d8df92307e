"""`siam-tracker eval DATA_DIR [--weights W] [--sequences a,b | --split val|test] [--peers csrt,kcf,mil,nano]
[--json OUT] [--plot OUT.png] [--config cfg.yaml]`: registered by siam_tracker_ros/cli.py."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SPLIT_CONFIG = REPO_ROOT / "config" / "finetune.yaml"  # --split's list of tracks when no --config is given
SPLITS = {"val": "val_sequences", "test": "test_sequences"}


def add_eval_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "eval", help="OTB one-pass evaluation of the tracker (and OpenCV peers) on a folder of sequences",
        description="Success AUC (IoU > t over 21 thresholds), precision at 20 px and FPS, per sequence and "
                    "overall (sequences weighted equally).")
    add_arguments(p)
    p.set_defaults(func=run_from_args)
    return p


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("data_dir", help="folder of sequences (../shared/data layout, or LAYOUT:PATH)")
    p.add_argument("--weights", help="weights file (default: the backend's default weights), a converted NanoTrack "
                                     "file (siam-tracker convert-nanotrack) or the folder of a NanoTrack ONNX pair")
    p.add_argument("--config", help="YAML with the tracking/backend settings (a training YAML works too)")
    p.add_argument("--sequences", help="comma-separated sequence names (default: all)")
    split = p.add_mutually_exclusive_group()
    split.add_argument("--split", choices=SPLITS,
                       help="only the validation or the test tracks: training.val_sequences / training.test_sequences "
                            f"of --config (default {SPLIT_CONFIG.relative_to(REPO_ROOT)})")
    split.add_argument("--held-out", action="store_true",
                       help="older spelling of --split val: training.val_sequences of --config, default "
                            "config/train_default.yaml (the same 11 tracks)")
    p.add_argument("--peers", default="",
                   help="OpenCV trackers to run on the same frames: csrt, kcf, mil (runner.OPENCV_TRACKERS) or nano "
                        "(NanoTrack v2, the ONNX pair in $SIAM_PEERS_DIR or ../shared/peers/nanotrack_v2), "
                        "e.g. csrt,nano")
    p.add_argument("--siam", action="append", default=[], metavar="NAME=WEIGHTS[:KEY=VALUE...]",
                   help="one more of our trackers in the same run (repeatable), e.g. "
                        "'plain=runs/a.pt:tracking.window_influence=0.3'; all rows see the same frames")
    p.add_argument("--no-siam", action="store_true", help="run only the peers and the --siam rows")
    p.add_argument("--name", default="siam", help="label of our tracker in tables, JSON and plots")
    p.add_argument("--max-frames", type=int, help="only the first N frames of each sequence")
    p.add_argument("--restarts", type=int, default=1, metavar="K",
                   help="also start every tracker afresh at k/K of each sequence (k = 1..K-1) and report the figures "
                        "over all starts next to the one-pass ones (steadier on few sequences)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="override backend.device")
    p.add_argument("--json", dest="json_out", help="write all figures to this JSON file")
    p.add_argument("--boxes", action="store_true", help="include every predicted box in the JSON")
    p.add_argument("--plot", help="write the success and precision plots to this PNG")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set tracking.scale_penalty=0.99")
    p.add_argument("--quiet", action="store_true")


def run_from_args(args: argparse.Namespace) -> int:
    import cv2

    from ..training.trainer import apply_overrides, load_train_config
    from .plots import plot_runs
    from .runner import SiamAdapter, evaluate, make_peer, report, summary_table

    config_path = args.config
    if config_path is None and args.held_out:
        config_path = REPO_ROOT / "config" / "train_default.yaml"
    if config_path is None and args.split:
        config_path = SPLIT_CONFIG
    if args.split and args.sequences:
        print("--split and --sequences: give one or the other", file=sys.stderr)
        return 2
    cfg, augment = load_train_config(config_path)
    cfg, _ = apply_overrides(cfg, augment, args.set)
    if args.device:
        cfg.backend.device = args.device
    names = [n for n in (args.sequences or "").split(",") if n]
    if args.held_out:
        names = names or list(cfg.training.val_sequences)
    split = "val" if args.held_out and not args.sequences else args.split
    if args.split:
        names = list(getattr(cfg.training, SPLITS[args.split]))
        if not names:
            print(f"--split {args.split}: {config_path} has no training.{SPLITS[args.split]}", file=sys.stderr)
            return 2
    trackers = []
    # our rows run on the configured backend; OpenCV's peers with OpenCV's own thread count, recorded here
    opencv = {"version": cv2.__version__, "threads": cv2.getNumThreads()}
    extra = {"config": cfg.to_dict(), "siam": {}, "split": split,
             "split_config": str(config_path) if split else None, "opencv": opencv}
    rows = [] if args.no_siam else [(args.name, args.weights, cfg)]
    for spec in args.siam:
        name, sep, rest = spec.partition("=")
        if not sep or not name:
            print(f"--siam {spec!r}: expected NAME=WEIGHTS[:KEY=VALUE...]", file=sys.stderr)
            return 2
        weights, *overrides = rest.split(":")
        row_cfg, _ = apply_overrides(cfg, augment, overrides)
        if args.device:
            row_cfg.backend.device = args.device
        rows.append((name, weights or None, row_cfg))
    for name, weights, row_cfg in rows:
        from ..tracking.build import build_tracker

        tracker = build_tracker(row_cfg, weights=weights)
        trackers.append(SiamAdapter(tracker, name))
        family = getattr(getattr(tracker.backend, "family", None), "name", "siam")
        extra["siam"][name] = {"weights": weights, "family": family, "backend": tracker.backend.describe(),
                               "tracking": row_cfg.to_dict()["nanotrack" if family != "siam" else "tracking"],
                               "weights_metadata": _metadata(weights)}
    for peer in [p.strip() for p in args.peers.split(",") if p.strip()]:
        try:
            trackers.append(make_peer(peer))
        except (FileNotFoundError, ValueError) as err:
            print(f"--peers {peer}: {err}", file=sys.stderr)
            return 2
    if not trackers:
        print("nothing to run: --no-siam and no --peers", file=sys.stderr)
        return 2
    say = (lambda s: None) if args.quiet else (lambda s: print(s, flush=True))
    if args.restarts < 1:
        print("--restarts must be >= 1", file=sys.stderr)
        return 2
    runs = evaluate(args.data_dir, trackers, names or None, args.max_frames, progress=say, restarts=args.restarts)
    print(summary_table(runs), flush=True)
    print(f"split: {split or '-'} ({len(next(iter(runs.values())).sequences)} sequences); OpenCV {opencv['version']}, "
          f"cv2.getNumThreads() = {opencv['threads']}", flush=True)
    if args.json_out:
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        data = report(runs, args.data_dir, extra, with_boxes=args.boxes)
        Path(args.json_out).write_text(json.dumps(data, indent=1, default=_json_default))
        say(f"figures written to {args.json_out}")
    if args.plot:
        plot_runs(runs, args.plot, title=f"{args.data_dir}" + (f" ({len(names)} sequences)" if names else ""))
        say(f"plots written to {args.plot}")
    return 0


def _metadata(weights: str | None) -> dict | None:
    if not weights:
        return None
    if Path(weights).is_dir():
        return {"folder": str(weights)}  # a NanoTrack ONNX pair: no card inside
    try:
        from ..model.weights import weights_metadata

        meta = weights_metadata(weights)
    except Exception as err:  # the figures matter more than the metadata
        return {"error": str(err)}
    out = {k: meta.get(k) for k in ("origin", "steps", "pairs", "date", "complete", "held_out_sequences",
                                    "best_val_loss")}
    out.update({k: meta[k] for k in ("family", "licence", "source_files") if k in meta})  # a converted NanoTrack
    return out


def _json_default(obj):
    import numpy as np

    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m siam_tracker_ros.evaluation.cli")
    add_arguments(parser)
    return run_from_args(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
