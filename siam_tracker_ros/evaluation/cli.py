"""`siam-tracker eval DATA_DIR [--weights W] [--sequences a,b | --split val|test] [--peers csrt,kcf,mil,nano]
[--realtime HZ] [--targets K] [--reacquisition] [--json OUT] [--plot OUT.png] [--config cfg.yaml]`: registered by
siam_tracker_ros/cli.py."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

SPLIT_CONFIG = "config/finetune.yaml"  # --split's list of tracks when no --config is given (a shipped file)
HELD_OUT_CONFIG = "config/train_default.yaml"  # --held-out's
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
                            f"of --config (default {SPLIT_CONFIG})")
    split.add_argument("--held-out", action="store_true",
                       help="another name for --split val: training.val_sequences of --config, default "
                            f"{HELD_OUT_CONFIG} (the same 11 tracks)")
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
    p.add_argument("--realtime", type=float, metavar="HZ",
                   help="also score every tracker on a simulated camera at HZ frames/s (evaluation/streaming.py: the "
                        "newest frame when free, each frame scored with the last box finished by its arrival); "
                        "offline and streaming figures side by side")
    p.add_argument("--targets", type=int, default=1, metavar="K",
                   help="a multi-target load: K copies of the sequence's target (ours: K ids in one update call; "
                        "OpenCV peers: K instances one after another); the first copy is scored")
    p.add_argument("--reacquisition", action="store_true",
                   help="score on the re-acquisition set of the selected tracks instead (data/splice.py: a camera "
                        "cut spliced into each, and tracks with their own absent frames): re-acquired within 1 s, "
                        "tracked on absent frames, AUC on present frames")
    p.add_argument("--reacq-dir", metavar="DIR",
                   help="write the re-acquisition set's sequence folders here and keep them (default: a temporary "
                        "folder, removed at the end); DIR must not hold them already")
    p.add_argument("--reacq-seed", type=int, default=27, metavar="N",
                   help="seed of the cuts' lengths, positions and donors (default 27)")
    p.add_argument("--quiet", action="store_true")


def run_from_args(args: argparse.Namespace) -> int:
    import cv2

    from ..resources import shipped_file
    from ..training.trainer import apply_overrides, load_train_config
    from .plots import plot_runs
    from .runner import SiamAdapter, evaluate, make_peer, report, summary_table

    config_path = args.config
    if config_path is None and args.held_out:
        config_path = shipped_file(HELD_OUT_CONFIG)
    if config_path is None and args.split:
        config_path = shipped_file(SPLIT_CONFIG)
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
    if args.realtime is not None and not args.realtime > 0:
        print("--realtime must be > 0 frames/s", file=sys.stderr)
        return 2
    if args.targets != 1:
        from .targets import load_description, with_targets

        try:
            trackers = [with_targets(t, args.targets) for t in trackers]
        except (FileNotFoundError, ValueError) as err:
            print(f"--targets {args.targets}: {err}", file=sys.stderr)
            return 2
        extra["targets"] = {"count": args.targets, "load": load_description(args.targets)}
        say(f"--targets {args.targets}: {load_description(args.targets)}")
    if args.reacquisition:
        return _reacquisition(args, trackers, names, extra, say)
    load_start = _load_average()
    runs = evaluate(args.data_dir, trackers, names or None, args.max_frames, progress=say, restarts=args.restarts)
    print(summary_table(runs), flush=True)
    print(f"split: {split or '-'} ({len(next(iter(runs.values())).sequences)} sequences); OpenCV {opencv['version']}, "
          f"cv2.getNumThreads() = {opencv['threads']}", flush=True)
    if args.realtime is not None:
        from ..data import load_sequences
        from .runner import select_sequences
        from .streaming import side_by_side, stream

        seqs = select_sequences(load_sequences(args.data_dir), names or None)
        streaming = stream(trackers, seqs, args.realtime, args.max_frames, progress=say)
        print(side_by_side(runs, streaming), flush=True)
        extra["streaming"] = {name: run.to_dict() for name, run in streaming.items()}
        extra["realtime_hz"] = args.realtime
    extra["load_average"] = {"start": load_start, "end": _load_average(),
                             "note": "os.getloadavg() (1, 5, 15 min): frames/s and streaming figures depend on it"}
    if args.realtime is not None:
        print(f"load average (1, 5, 15 min) at start {load_start}, at end {extra['load_average']['end']}: the "
              "streaming figures depend on the machine's load", flush=True)
    if args.json_out:
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        data = report(runs, args.data_dir, extra, with_boxes=args.boxes)
        Path(args.json_out).write_text(json.dumps(data, indent=1, default=_json_default))
        say(f"figures written to {args.json_out}")
    if args.plot:
        plot_runs(runs, args.plot, title=f"{args.data_dir}" + (f" ({len(names)} sequences)" if names else ""))
        say(f"plots written to {args.plot}")
    return 0


def _load_average():
    from .streaming import load_average

    return load_average()


def _reacquisition(args, trackers, names, extra, say) -> int:
    """`eval --reacquisition`: build the set from the selected tracks (donors: every track of DATA_DIR), run, report."""
    import tempfile

    from ..data import load_sequences
    from ..data.splice import CUT_RATE_HZ, CUT_SECONDS, build_reacquisition_set
    from .reacquisition import REACQUIRE_IOU, REACQUIRE_WITHIN_S, reacquisition_table, run_reacquisition
    from .runner import _warm_up, select_sequences

    if args.realtime is not None or args.restarts != 1 or args.plot or args.max_frames:
        print("--reacquisition runs one offline pass over whole tracks: without --realtime, --restarts, --plot, "
              "--max-frames", file=sys.stderr)
        return 2
    everything = load_sequences(args.data_dir)
    tracks = select_sequences(everything, names or None)
    load_start = _load_average()
    with tempfile.TemporaryDirectory(prefix="reacquisition-") as tmp:
        out_dir = Path(args.reacq_dir) if args.reacq_dir else Path(tmp)
        try:
            seqs = build_reacquisition_set(tracks, everything, out_dir, seed=args.reacq_seed)
        except ValueError as err:
            print(f"--reacquisition: {err}", file=sys.stderr)
            return 2
        say(f"re-acquisition set: {len(seqs)} sequences in {out_dir} "
            f"({sum(1 for s in seqs if 'cut' in s.meta)} with a camera cut, "
            f"{sum(1 for s in seqs if 'cut' not in s.meta)} with their own absent frames)")
        _warm_up(trackers, seqs[0])
        runs = run_reacquisition(trackers, seqs, CUT_RATE_HZ, progress=say)
    print(reacquisition_table(runs), flush=True)
    load_end = _load_average()
    if args.json_out:
        data = {"protocol": f"re-acquisition: a return is re-acquired when, within {REACQUIRE_WITHIN_S:g} s "
                            f"({CUT_RATE_HZ:g} frames/s) of the first present frame after an absence, the box has "
                            f"IoU >= {REACQUIRE_IOU} with the truth on a present frame and the tracker reports it "
                            "tracked; tracked on absent = absent frames reported tracked / absent frames (pooled); "
                            "AUC on present frames (OTB, sequences weighted equally)",
                "data_dir": str(args.data_dir), "seed": args.reacq_seed, "cut_rate_hz": CUT_RATE_HZ,
                "cut_seconds": list(CUT_SECONDS),
                "set": [{"name": s.name, "frames": len(s), "cut": s.meta.get("cut"),
                         "own_absent_frames": None if "cut" in s.meta else int((~s.valid).sum())} for s in seqs],
                "trackers": {name: run.to_dict(CUT_RATE_HZ) for name, run in runs.items()},
                "load_average": {"start": load_start, "end": load_end}, **extra}
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(json.dumps(data, indent=1, default=_json_default))
        say(f"figures written to {args.json_out}")
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
