"""`siam-tracker demo`: the whole ROS 2 pipeline on one sequence, with an annotated video and a summary.

    siam-tracker demo                                   # the built-in sequence (scikit-image photographs)
    siam-tracker demo --frames ../shared/data/train/vot-bag
    siam-tracker demo --video clip.mp4 --init-box 120,80,60,90
    siam-tracker demo --weights my.pt --backend onnxruntime --rate 15 --out out/demo

What happens (three processes over DDS, all on this machine, in a ROS domain of their own):

1. the tracker node starts (`python -m siam_tracker_ros.ros.node`, image topic remapped to the player's);
   the demo waits for its `init_target` service (and stops with the node's log if it exits or never comes up);
2. the frame player starts (`python -m siam_tracker_ros.runs.player --hold-first`): it waits until the node has
   subscribed, publishes the first frame and pauses;
3. the demo's client calls `init_target` with that frame's stamp and its ground-truth box, then un-pauses the player
   (parameter `paused`), which streams the remaining frames at `--rate`;
4. the client records every `tracked_object` (vision_msgs/Detection2D) with its receipt time until the stream has
   ended and the node has answered the last frame;
5. everything is stopped; the demo writes `demo.mp4` (or `.avi`: ground truth green, tracker box orange while
   tracked / red while lost, with its score; "dropped" where the node skipped a frame), `summary.json`, and prints a
   table: frames published / answered / dropped, processing rate, mean IoU against the ground truth, latency
   (image stamp -> receipt of the detection) p50/p95/max.

Deterministic: the node initialises on exactly the first frame and sees every later frame as new. The node keeps up
with the camera by dropping frames when it is slower than `--rate`; those show up as dropped, not as delay.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from ..data import read_groundtruth
from ..drawing import write_video
from .launcher import DemoError, find_params_file, sigterm_as_interrupt
from .report import analyse, format_table
from .session import run_session


def init_box_source(init_box, gt):
    """`box(frame_index)` for run_session: the --init-box when given, else that frame's ground truth."""
    def box_for(frame_index: int):
        b = init_box if init_box is not None else (gt[frame_index] if frame_index < len(gt) else None)
        if b is None or not np.all(np.isfinite(b)):
            raise DemoError(f"no ground-truth box for frame {frame_index + 1}: give --init-box")
        return tuple(float(v) for v in b)
    return box_for


def run_reporting_errors(command: str, body):
    """Run `body()` (starting the ROS processes); the expected failures become a message and an exit code.

    Returns (body's result, None) or (None, exit code).
    """
    try:
        return body(), None
    except DemoError as err:
        print(f"siam-tracker {command}: error: {err}", file=sys.stderr)
        return None, 1
    except ImportError as err:
        print(f"siam-tracker {command}: error: ROS 2 Python packages are missing ({err}): run `make bootstrap` and "
              "`source .ros/env.sh`, or source a ROS 2 installation", file=sys.stderr)
        return None, 1
    except KeyboardInterrupt:
        print(f"siam-tracker {command}: interrupted; child processes stopped", file=sys.stderr)
        return None, 130


def parse_box(text: str) -> tuple:
    try:
        vals = tuple(float(v) for v in text.replace(" ", ",").split(",") if v != "")
    except ValueError:
        vals = ()
    if len(vals) != 4:
        raise argparse.ArgumentTypeError(f"a box is x,y,w,h (four numbers), got {text!r}")
    return vals


def frame_reader(args):
    """A fresh iterator over the sequence's frames (the same frames the player publishes)."""
    from ..data import open_source

    if args.frames is None and args.video is None:
        src = open_source(builtin=True, builtin_frames=args.builtin_frames)
    else:
        src = open_source(frames=args.frames, video=args.video)
    try:
        while True:
            img = src.read()
            if img is None:
                return
            yield img
    finally:
        src.close()


def add_common_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_argument_group("sequence (default: the built-in synthetic sequence)")
    src.add_argument("--frames", metavar="DIR", help="folder of frames (with groundtruth.txt for IoU and the init box)")
    src.add_argument("--video", metavar="FILE", help="video file (give --init-box, or --groundtruth)")
    src.add_argument("--builtin-frames", type=int, default=None, help="length of the built-in sequence (150)")
    src.add_argument("--groundtruth", metavar="FILE", help="ground-truth boxes x,y,w,h per line (default: "
                                                            "DIR/groundtruth.txt)")
    src.add_argument("--init-box", type=parse_box, metavar="X,Y,W,H", help="box on the first frame (default: the "
                                                                           "ground truth's)")
    node = p.add_argument_group("tracker node")
    node.add_argument("--weights", help="weights file (default: the node's: weights/siam_small.pt / siam_large.pt or "
                                        "$SIAM_TRACKER_WEIGHTS)")
    node.add_argument("--backend", help="auto, torch, onnxruntime or tensorrt (default: the parameters file's)")
    node.add_argument("--params-file", help="node parameters (default: config/tracker.yaml)")
    node.add_argument("-p", "--param", action="append", default=[], metavar="NAME:=VALUE",
                      help="extra node parameter (repeatable)")
    node.add_argument("--node-timeout", type=float, default=120.0,
                      help="seconds to wait for the node's init_target service (default 120)")
    p.add_argument("--rate", type=float, default=30.0, help="frames per second of the player (default 30)")
    p.add_argument("--domain-id", type=int, default=None, help="ROS_DOMAIN_ID (default: $ROS_DOMAIN_ID or a free one)")


def add_demo_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("demo", help="run player + tracker node + client on a sequence; annotated video "
                                           "and summary", description=__doc__.splitlines()[0])
    add_common_arguments(p)
    p.add_argument("--out", default="out/demo", help="output folder (default out/demo)")
    p.add_argument("--max-frames", type=int, default=None, help="publish at most this many frames")
    p.add_argument("--no-video", action="store_true", help="skip the annotated video")
    p.set_defaults(func=run_demo)
    return p


def load_sequence_info(args) -> tuple[str, np.ndarray | None, tuple | None, list[str], np.ndarray | None]:
    """(description, ground truth or None, init box or None, player source arguments, per-frame occluder boxes of the
    built-in sequence or None)."""
    if args.frames and args.video:
        raise DemoError("give either --frames or --video, not both")
    gt, occluder = None, None
    if args.groundtruth:
        gt = read_groundtruth(args.groundtruth)
    if args.frames:
        folder = Path(args.frames)
        if not folder.is_dir():
            raise DemoError(f"frames folder {folder} does not exist")
        if gt is None and (folder / "groundtruth.txt").is_file():
            gt = read_groundtruth(folder / "groundtruth.txt")
        desc, source = str(folder), ["--frames", str(folder.resolve())]
    elif args.video:
        if not Path(args.video).is_file():
            raise DemoError(f"video file {args.video} does not exist")
        desc, source = str(args.video), ["--video", str(Path(args.video).resolve())]
    else:
        from .. import synthetic

        n = args.builtin_frames or synthetic.DEFAULT_FRAMES
        args.builtin_frames = n
        _, gt, info = synthetic.make_sequence(n_frames=n, return_info=True)
        occluder = info["occluder_box"]
        desc, source = f"built-in sequence ({n} frames, 640x480)", ["--builtin", "--builtin-frames", str(n)]
    return desc, gt, args.init_box, source, occluder


def session_from_args(args, out, player_args, init_box, gt, **options):
    """run_session with the command line's rate and node options (weights, backend, parameters file, -p, domain id,
    node timeout); Ctrl-C and SIGTERM stop the children."""
    with sigterm_as_interrupt():
        return run_session(out, player_args, init_box_source(init_box, gt), rate=args.rate, weights=args.weights,
                           backend=args.backend, params_file=args.params_file or find_params_file(),
                           node_params=args.param, domain_id=args.domain_id, node_timeout=args.node_timeout,
                           **options)


def run_demo(args) -> int:
    out = Path(args.out)

    def start():
        desc, gt, init_box, source, occluder = load_sequence_info(args)
        if init_box is None and gt is None:
            raise DemoError("no ground truth for this sequence: give --init-box X,Y,W,H (or --groundtruth FILE)")
        player_args = list(source)
        if args.max_frames:
            player_args += ["--count", str(args.max_frames)]
        print(f"siam-tracker demo: {desc} at {args.rate:g} Hz -> {out}/", flush=True)
        return desc, gt, occluder, session_from_args(args, out, player_args, init_box, gt)

    started, code = run_reporting_errors("demo", start)
    if code is not None:
        return code
    desc, gt, occluder, session = started

    result = analyse(session, gt, distractors=occluder)
    s = result["summary"]
    extra = []
    video = None
    if not args.no_video:
        rows = sorted(result["frames"], key=lambda r: r["seq"])
        video = write_video(out / "demo", frame_reader(args), rows, args.rate)
        extra.append(("video", video or "not written (OpenCV could not open an mp4 or avi writer)"))
    s.update(sequence=desc, rate_hz=args.rate, video=video, node_log=session.node_log, player_log=session.player_log,
             init_message=session.init_message, weights=args.weights, backend=args.backend)
    summary_path = out / "summary.json"
    summary_path.write_text(json.dumps(result, indent=1))
    extra.append(("summary", str(summary_path)))
    print(format_table(f"siam-tracker demo: {desc}", s, extra))
    return 0 if s["frames_answered"] > 0 else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m siam_tracker_ros.runs.demo")
    sub = parser.add_subparsers(dest="command")
    add_demo_parser(sub)
    sys.exit(run_demo(parser.parse_args(["demo"] + sys.argv[1:])))
