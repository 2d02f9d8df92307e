"""`siam-tracker latency` / `siam-tracker load`: is the node's latency bounded under a live camera-rate stream?

    siam-tracker latency                      # 60 s of 640x480 at 30 Hz (the built-in sequence, looped)
    siam-tracker latency --frames ../shared/data/train/vot-bag --seconds 120 --json out/latency.json
    siam-tracker latency --depth              # + a registered depth image per frame: the depth input's cost

The frame player streams a 640x480 sequence (`--size`) at `--rate` for `--seconds`, looping it; the tracker node
(the same process layout as `siam-tracker demo`) is initialised on the first frame and tracks throughout. For every
Detection2D the client records the latency from the image stamp (the player's clock at publish time) to its receipt.

Printed: median / p95 / max latency; the median of the first 10 s and of the last 10 s and the latency per 5 s
window (bounded = no growth between them); frames published, answered and dropped (the node drops frames to stay
current when it is slower than the camera: drops, not a growing queue, are the expected answer to overload).
With `--depth` the player also publishes a synthetic 16UC1 depth image and camera_info with every frame (its stamp),
the node's depth input is on, and the report adds the node's depth time per frame (matching, measuring every target,
publishing tracked_objects_3d; from /diagnostics) next to its whole processing time per frame.

    siam-tracker load                         # 4 targets at 30 Hz for 60 s
    siam-tracker load --targets 4 --seconds 60 --json out/load.json

The load run is the same stream with `--targets` targets initialised on the first frame (the ground-truth box and
boxes spread over the image); a frame's latency is from its stamp to the receipt of the last of its targets'
Detection2D. It also samples the node's resident memory (RSS) every 0.5 s and prints it at the start of the stream,
at 10 s and at the end, with the change from 10 s to the end (flat = within 10 %).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from .demo import add_common_arguments, load_sequence_info, run_reporting_errors, session_from_args
from .launcher import DemoError
from .report import (RESOURCES_COLUMNS, add_window_resources, attribute_slowdown, format_attribution,
                     format_node_line, load_average_line, node_counters, percentiles_ms, resources_cell)


def _add_stream_arguments(p: argparse.ArgumentParser, command: str, window: float) -> None:
    add_common_arguments(p)
    p.add_argument("--seconds", type=float, default=60.0, help="length of the stream (default 60)")
    p.add_argument("--size", default="640x480", help="frame size WxH published (default 640x480)")
    p.add_argument("--window", type=float, default=window, help=f"seconds per window of the table over time "
                                                                f"(default {window:g})")
    p.add_argument("--json", metavar="OUT", help="write the figures to this JSON file")
    p.add_argument("--out", default=f"out/{command}", help=f"folder for the logs and stamps (default out/{command})")


def add_latency_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("latency", help="stream at camera rate through the tracker node; latency over time",
                              description=__doc__.splitlines()[0])
    _add_stream_arguments(p, "latency", window=5.0)
    p.add_argument("--depth", action="store_true", help="also stream a registered depth image (+ camera_info) per "
                                                        "frame with the node's depth input on; print its cost")
    p.set_defaults(func=run_latency)
    return p


def add_load_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("load", help="several targets at camera rate through the tracker node: latency and "
                                           "memory over time", description="several targets at camera rate through "
                                                                            "the tracker node")
    _add_stream_arguments(p, "load", window=10.0)
    p.add_argument("--targets", type=int, default=4, help="targets tracked at once (default 4, at most the node's "
                                                          "max_targets)")
    p.set_defaults(func=run_load)
    return p


def spread_boxes(n: int, size: tuple[int, int], side: int = 64) -> list[tuple]:
    """n boxes of side x side pixels spread over a W x H image (a 3 x 3 grid, centre last)."""
    w, h = size
    cells = [(c, r) for r in (1, 3, 2) for c in (1, 3, 2)]
    return [(w * c / 4 - side / 2, h * r / 4 - side / 2, float(side), float(side)) for c, r in cells[:n]]


def load_report(stamps, records, init_stamp: int, targets: list[str], memory: list, window_s: float = 10.0,
                edge_s: float = 10.0, node_diagnostics: dict | None = None, load_average=(), cpu=(),
                diagnostics_history=()) -> dict:
    """Figures of a multi-target run: per frame, latency = stamp -> receipt of the last target's Detection2D; per
    window also who used the CPU and the node's time per frame (`cpu`, `diagnostics_history`: the session's)."""
    by_frame: dict[int, dict] = {}
    for r in records:
        by_frame.setdefault(r.stamp_ns, {}).setdefault(r.target_id, r.receipt_ns)
    streamed = [s for _, _, s in stamps if s != init_stamp]
    if not streamed:
        raise DemoError("no frames were streamed")
    answered = [s for s in streamed if set(targets) <= set(by_frame.get(s, {}))]
    t0 = streamed[0]
    duration = (streamed[-1] - t0) / 1e9
    lat_ns = np.array([max(by_frame[s][t] for t in targets) - s for s in answered], dtype=np.float64)
    t_rel = np.array([(s - t0) / 1e9 for s in answered])
    overall = percentiles_ms(lat_ns)
    windows = []
    for k in range(max(1, int(np.ceil(duration / window_s - 1e-3)))):
        lo, hi = k * window_s, (k + 1) * window_s
        sel = lat_ns[(t_rel >= lo) & (t_rel < hi)] / 1e6
        mem = [m for t, m in memory if lo <= t < hi]
        windows.append({"from_s": lo, "to_s": min(hi, duration), "answered": int(sel.size),
                        "p50_ms": float(np.median(sel)) if sel.size else None,
                        "p95_ms": float(np.percentile(sel, 95)) if sel.size else None,
                        "max_ms": float(sel.max()) if sel.size else None,
                        "rss_mb": float(np.median(mem)) / 1e6 if mem else None})
    add_window_resources(windows, list(cpu), list(diagnostics_history))

    def rss_at(t):  # the sample nearest to t seconds
        return min(memory, key=lambda m: abs(m[0] - t))[1] / 1e6 if memory else None

    mem_start, mem_10, mem_end = rss_at(0.0), rss_at(edge_s), (memory[-1][1] / 1e6 if memory else None)
    return {
        "seconds": duration, "targets": list(targets), "frames_published": len(streamed),
        "frames_answered": len(answered), "frames_dropped": len(streamed) - len(answered),
        "publish_rate_hz": (len(streamed) - 1) / duration if duration > 0 else None,
        "processing_rate_hz": len(answered) / duration if duration > 0 else None,
        "latency": overall,
        "rss_mb": {"start": mem_start, "at_10s": mem_10, "end": mem_end,
                   "peak": max(m for _, m in memory) / 1e6 if memory else None,
                   "change_10s_to_end_pct": 100.0 * (mem_end - mem_10) / mem_10 if memory else None},
        "windows": windows,
        "attribution": attribute_slowdown(windows),
        "node": node_counters(node_diagnostics or {}, len(stamps)),
        "load_average": list(load_average),
    }


def _with_node_and_windows(lines: list[str], rep: dict, columns: str, window_row) -> str:
    """The report's lines, then the node's own counters, the machine's load, one row per time window (with who used
    the CPU and the node's time per frame) and the last window against the first steady one."""
    lines = lines + [f"  node (/diagnostics)    {format_node_line(rep.get('node', {}))}"]
    lines += [f"  {k.ljust(22)} {v}" for k, v in load_average_line(rep)]
    lines.append(f"  over time (window: {columns}; {RESOURCES_COLUMNS}):")
    lines += [f"    {w['from_s']:5.0f}-{w['to_s']:4.0f} s  {window_row(w)}{resources_cell(w)}" for w in rep["windows"]]
    return "\n".join(lines + format_attribution(rep.get("attribution")))


def format_load_report(title: str, rep: dict) -> str:
    def f(v, fmt="{:.1f}"):
        return "n/a" if v is None else fmt.format(v)

    lat, mem = rep["latency"], rep["rss_mb"]
    lines = [title,
             f"  stream                 {rep['seconds']:.1f} s, {rep['frames_published']} frames published "
             f"({f(rep['publish_rate_hz'])} Hz), {len(rep['targets'])} targets ({', '.join(rep['targets'])})",
             f"  answered / dropped     {rep['frames_answered']} / {rep['frames_dropped']} (a frame is answered when "
             f"every target's Detection2D came); {f(rep['processing_rate_hz'])} frames/s",
             f"  latency stamp->last detection of the frame: p50 {f(lat['p50_ms'])} ms, p95 {f(lat['p95_ms'])} ms, "
             f"max {f(lat['max_ms'])} ms",
             f"  node memory (RSS)      start {f(mem['start'], '{:.0f}')} MB, at 10 s {f(mem['at_10s'], '{:.0f}')} MB, "
             f"end {f(mem['end'], '{:.0f}')} MB (10 s -> end {f(mem['change_10s_to_end_pct'], '{:+.1f}')} %), "
             f"peak {f(mem['peak'], '{:.0f}')} MB"]
    return _with_node_and_windows(lines, rep, "answered, p50 / p95 / max ms, RSS MB", lambda w: (
        f"{w['answered']:4d}  {f(w['p50_ms']):>7} {f(w['p95_ms']):>7} {f(w['max_ms']):>7}  "
        f"{f(w['rss_mb'], '{:.0f}'):>5}"))


def _report(command: str, args, start, formatter) -> int:
    """Run `start()` (-> description, session, report), print the report and write it to --json."""
    started, code = run_reporting_errors(command, start)
    if code is not None:
        return code
    desc, session, rep = started
    rep.update(sequence=desc, size=args.size, rate_hz=args.rate, weights=args.weights, backend=args.backend,
               node_log=session.node_log)
    print(formatter(f"siam-tracker {command}: {desc}, {args.size} at {args.rate:g} Hz", rep))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rep, indent=1))
        print(f"  figures written to {args.json}")
    return 0 if rep["frames_answered"] > 0 else 1


def resized_sequence(args):
    """load_sequence_info for a stream resized to --size: (description, ground truth scaled to that size, init box,
    player source arguments, (width, height))."""
    desc, gt, init_box, source, _ = load_sequence_info(args)
    if init_box is None and gt is None:
        raise DemoError("no ground truth for this sequence: give --init-box X,Y,W,H")
    size = tuple(int(v) for v in args.size.lower().split("x"))
    if gt is not None and init_box is None and args.frames:  # boxes follow the resize of the frames
        from ..data import list_images, read_frame

        h0, w0 = read_frame(list_images(args.frames)[0]).shape[:2]
        gt = gt * np.array([size[0] / w0, size[1] / h0, size[0] / w0, size[1] / h0])
    return desc, gt, init_box, source, size


def run_load(args) -> int:
    out = Path(args.out)

    def start():
        if args.targets < 1:
            raise DemoError("--targets must be at least 1")
        desc, gt, init_box, source, size = resized_sequence(args)
        extra = [(f"t{k}", box) for k, box in enumerate(spread_boxes(args.targets - 1, size), start=1)]
        player_args = list(source) + ["--loop", "--size", args.size, "--duration", f"{args.seconds:g}"]
        print(f"siam-tracker load: {desc} as {args.size} at {args.rate:g} Hz for {args.seconds:g} s, "
              f"{args.targets} targets")
        session = session_from_args(args, out, player_args, init_box, gt, stream_timeout=args.seconds + 60.0,
                                    extra_targets=extra)
        rep = load_report(session.stamps, session.records, session.stamps[0][2], session.targets, session.memory,
                          window_s=args.window, node_diagnostics=session.node_diagnostics,
                          load_average=session.load_average, cpu=session.cpu,
                          diagnostics_history=session.diagnostics_history)
        return desc, session, rep

    return _report("load", args, start, format_load_report)


def latency_report(stamps, records, init_stamp: int, window_s: float = 5.0, edge_s: float = 10.0,
                   node_diagnostics: dict | None = None, load_average=(), cpu=(), diagnostics_history=()) -> dict:
    """Figures of one run: stamps = [(seq, frame, stamp ns)] published, records = received detections; per window
    also who used the CPU and the node's time per frame (`cpu`, `diagnostics_history`: the session's)."""
    first = {}
    for r in records:
        first.setdefault(r.stamp_ns, r)
    streamed = [s for _, _, s in stamps if s != init_stamp]
    answered = [s for s in streamed if s in first]
    if not streamed:
        raise DemoError("no frames were streamed")
    t0 = streamed[0]
    t_rel = np.array([(s - t0) / 1e9 for s in answered])
    lat_ms = np.array([(first[s].receipt_ns - s) / 1e6 for s in answered])
    duration = (streamed[-1] - t0) / 1e9
    windows = []
    n_windows = max(1, int(np.ceil(duration / window_s - 1e-3)))  # a last sliver (< 0.1 % of a window) joins in
    pub_rel = np.array([(s - t0) / 1e9 for s in streamed])
    for k in range(n_windows):
        lo, hi = k * window_s, ((k + 1) * window_s if k < n_windows - 1 else np.inf)
        sel = lat_ms[(t_rel >= lo) & (t_rel < hi)]
        pub = int(((pub_rel >= lo) & (pub_rel < hi)).sum())
        windows.append({"from_s": lo, "to_s": min(hi, duration), "published": pub, "answered": int(sel.size),
                        "p50_ms": float(np.median(sel)) if sel.size else None,
                        "max_ms": float(sel.max()) if sel.size else None})
    add_window_resources(windows, list(cpu), list(diagnostics_history))

    def median_between(lo, hi):
        sel = lat_ms[(t_rel >= lo) & (t_rel < hi)]
        return float(np.median(sel)) if sel.size else None

    first10 = median_between(0.0, edge_s)
    last10 = median_between(duration - edge_s, duration + 1.0)
    receipts = sorted(first[s].receipt_ns for s in answered)
    overall = percentiles_ms(np.array([first[s].receipt_ns - s for s in answered]))
    return {
        "seconds": duration,
        "frames_published": len(streamed),
        "frames_answered": len(answered),
        "frames_dropped": len(streamed) - len(answered),
        "publish_rate_hz": (len(streamed) - 1) / duration if duration > 0 else None,
        "processing_rate_hz": (len(receipts) - 1) / ((receipts[-1] - receipts[0]) / 1e9)
        if len(receipts) > 2 and receipts[-1] > receipts[0] else None,
        "latency": overall,
        "first_10s_p50_ms": first10,
        "last_10s_p50_ms": last10,
        "growth_ms": (last10 - first10) if first10 is not None and last10 is not None else None,
        "windows": windows,
        "attribution": attribute_slowdown(windows),
        "node": node_counters(node_diagnostics or {}, len(stamps)),
        "load_average": list(load_average),
        "per_frame": [{"t_s": float(t), "latency_ms": float(v)} for t, v in zip(t_rel, lat_ms)],
    }


def format_report(title: str, rep: dict) -> str:
    def f(v, fmt="{:.1f}"):
        return "n/a" if v is None else fmt.format(v)

    lat = rep["latency"]
    lines = [title,
             f"  stream                 {rep['seconds']:.1f} s, {rep['frames_published']} frames published "
             f"({f(rep['publish_rate_hz'])} Hz)",
             f"  answered / dropped     {rep['frames_answered']} / {rep['frames_dropped']} "
             f"({100.0 * rep['frames_dropped'] / max(rep['frames_published'], 1):.1f} % dropped); processing "
             f"{f(rep['processing_rate_hz'])} Hz",
             f"  latency stamp->receipt median {f(lat['p50_ms'])} ms, p95 {f(lat['p95_ms'])} ms, "
             f"max {f(lat['max_ms'])} ms",
             f"  median first 10 s      {f(rep['first_10s_p50_ms'])} ms",
             f"  median last 10 s       {f(rep['last_10s_p50_ms'])} ms  (growth {f(rep['growth_ms'], '{:+.1f}')} ms)"]
    node = rep.get("node", {})
    if node.get("depth_time_median_ms") is not None:
        lines.append(f"  depth input            {node['depth_time_median_ms']} ms per frame (median) of the node's "
                     f"{node['processing_time_median_ms']} ms; {node['depth_matched']} frames matched to a depth "
                     f"image, {node['depth_unmatched']} not; {node['detections_3d']} Detection3D published")
    return _with_node_and_windows(lines, rep, "published / answered, median, max ms", lambda w: (
        f"{w['published']:4d} / {w['answered']:4d}  {f(w['p50_ms']):>7}  {f(w['max_ms']):>7}"))


def run_latency(args) -> int:
    out = Path(args.out)

    def start():
        desc, gt, init_box, source, size = resized_sequence(args)
        player_args = list(source) + ["--loop", "--size", args.size, "--duration", f"{args.seconds:g}"]
        print(f"siam-tracker latency: {desc} as {args.size} at {args.rate:g} Hz for {args.seconds:g} s")
        session = session_from_args(args, out, player_args, init_box, gt, stream_timeout=args.seconds + 60.0,
                                    depth=args.depth)
        rep = latency_report(session.stamps, session.records, session.stamps[0][2], window_s=args.window,
                             node_diagnostics=session.node_diagnostics, load_average=session.load_average,
                             cpu=session.cpu, diagnostics_history=session.diagnostics_history)
        return desc, session, rep

    return _report("latency", args, start, format_report)


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(prog="python -m siam_tracker_ros.runs.latency")
    _sub = _parser.add_subparsers(dest="command")
    add_latency_parser(_sub)
    add_load_parser(_sub)
    _args = _parser.parse_args(sys.argv[1:] if sys.argv[1:2] in (["latency"], ["load"]) else
                               ["latency"] + sys.argv[1:])
    sys.exit(_args.func(_args))
