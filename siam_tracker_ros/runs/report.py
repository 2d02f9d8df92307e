"""Figures of a session: per-frame rows (answer, IoU against the ground truth, latency), the summary numbers and the
printed table; shared by the demo, `latency` and `load`. No ROS."""
from __future__ import annotations

import os

import numpy as np

from ..tracking.geometry import iou, on_distractor

# A box on the distractor counts against the demo only when the tracker vouches for it (the lost threshold).
CONFIDENT_SCORE = 0.5


def percentiles_ms(values_ns) -> dict:
    v = np.asarray(values_ns, dtype=np.float64) / 1e6
    if v.size == 0:
        return {"count": 0, "p50_ms": None, "p95_ms": None, "max_ms": None, "mean_ms": None}
    return {"count": int(v.size), "p50_ms": float(np.percentile(v, 50)), "p95_ms": float(np.percentile(v, 95)),
            "max_ms": float(v.max()), "mean_ms": float(v.mean())}


def analyse(session, groundtruth: np.ndarray | None, target_id: str = "", distractors: np.ndarray | None = None) -> dict:
    """Per-frame table and summary numbers of a session. `distractors`: per-frame boxes of something the tracker must
    not follow (the built-in sequence's occluder; NaN rows where there is none): frames whose answer lies on it are
    counted, and those the tracker reported with a score above CONFIDENT_SCORE and not lost are listed."""
    by_stamp = {}
    for r in session.records:
        if target_id and r.target_id != target_id:
            continue
        by_stamp.setdefault(r.stamp_ns, r)  # first answer per frame
    init_stamp = session.stamps[0][2] if session.stamps else None
    rows, latencies, ious, held_ious = [], [], [], []
    held = None  # the latest answer so far: what a controller holds while the node skips frames
    for seq, frame, stamp in session.stamps:
        r = by_stamp.get(stamp)
        row = {"seq": seq, "frame": frame, "stamp_ns": stamp, "init": stamp == init_stamp, "answered": r is not None}
        if r is None and held is not None:
            row["held_box"] = [float(v) for v in held.box]
        if r is not None:
            held = r
            row.update(box=[float(v) for v in r.box], score=float(r.score), lost=bool(r.lost),
                       latency_ms=(r.receipt_ns - stamp) / 1e6)
            if stamp != init_stamp:
                latencies.append(r.receipt_ns - stamp)
        if groundtruth is not None and frame < len(groundtruth):
            gt = groundtruth[frame]
            row["gt"] = [float(v) for v in gt]
            if r is not None and stamp != init_stamp and np.all(np.isfinite(gt)):
                row["iou"] = float(iou(np.asarray(r.box), gt)[0])
                ious.append(row["iou"])
                held_ious.append(row["iou"])
            elif r is None and row.get("held_box") is not None and np.all(np.isfinite(gt)):
                held_ious.append(float(iou(np.asarray(row["held_box"]), gt)[0]))
            if distractors is not None and r is not None and stamp != init_stamp and frame < len(distractors):
                row["on_distractor"] = bool(on_distractor(np.asarray(r.box), gt, distractors[frame])[0])
        rows.append(row)
    streamed = [row for row in rows if not row["init"]]
    answered = [row for row in streamed if row["answered"]]
    receipts = sorted(by_stamp[row["stamp_ns"]].receipt_ns for row in answered)
    rate = (len(receipts) - 1) / ((receipts[-1] - receipts[0]) / 1e9) if len(receipts) > 2 and \
        receipts[-1] > receipts[0] else None
    pub_stamps = [row["stamp_ns"] for row in streamed]
    pub_rate = (len(pub_stamps) - 1) / ((pub_stamps[-1] - pub_stamps[0]) / 1e9) if len(pub_stamps) > 2 and \
        pub_stamps[-1] > pub_stamps[0] else None
    summary = {
        "frames_published": len(session.stamps),
        "frames_streamed_after_init": len(streamed),
        "frames_answered": len(answered),
        "frames_dropped": len(streamed) - len(answered),
        "frames_lost_state": sum(1 for row in answered if row.get("lost")),
        "publish_rate_hz": pub_rate,
        "processing_rate_hz": rate,
        "mean_iou": float(np.mean(ious)) if ious else None,
        "iou_frames": len(ious),
        # what a controller holds: the latest answer on every streamed frame, dropped ones included
        "mean_iou_latest_answer_every_frame": float(np.mean(held_ious)) if held_ious else None,
        "success_rate_iou_0.5": float(np.mean(np.asarray(ious) > 0.5)) if ious else None,
        "latency": percentiles_ms(latencies),
        "init_frame": session.init_frame,
        "stream_seconds": session.stream_seconds,
        "node": node_counters(session.node_diagnostics, len(session.stamps)),
        "load_average": list(session.load_average),
    }
    if distractors is not None:
        on = [row for row in answered if row.get("on_distractor")]
        summary["frames_on_distractor"] = len(on)
        summary["frames_on_distractor_confident"] = [
            row["frame"] for row in on if row["score"] > CONFIDENT_SCORE and not row["lost"]]
    return {"summary": summary, "frames": rows}


def node_counters(diag: dict, published: int) -> dict:
    """The node's own view from /diagnostics: frames received / processed / skipped, backend, processing time."""
    def num(key):
        try:
            return int(diag[key])
        except (KeyError, ValueError):
            return None

    out = {"received": num("received"), "processed": num("processed"), "skipped": num("dropped"),
           "backend": diag.get("backend"), "processing_time_median_ms": diag.get("processing_time_median_ms"),
           "latency_median_ms": diag.get("latency_median_ms")}
    if diag.get("depth") == "on":  # the depth input's share of the processing time (ros/depth_input.py)
        out.update({k: diag.get(k) for k in ("depth_time_median_ms", "depth_received", "depth_matched",
                                              "depth_unmatched", "detections_3d")})
    out["lost_in_transport"] = (published - out["received"]) if out["received"] is not None else None
    return out


def format_node_line(n: dict) -> str:
    if not n or n.get("received") is None:
        return "n/a (no /diagnostics from the node)"
    return (f"received {n['received']}, processed {n['processed']}, skipped {n['skipped']} to stay current; "
            f"lost in transport {n['lost_in_transport']}; {n['backend']}, "
            f"{n['processing_time_median_ms']} ms per frame (median)")


def load_average_line(figures: dict) -> list[tuple[str, str]]:
    """[("machine load average", "... at start, ... at end (N CPUs)")], or [] when the run did not record it."""
    load = figures.get("load_average", ())
    if len(load) != 2:
        return []
    return [("machine load average", f"{load[0]:.1f} at start, {load[1]:.1f} at end ({os.cpu_count()} CPUs)")]


def format_table(title: str, s: dict, extra: list[tuple[str, str]] = ()) -> str:
    lat = s["latency"]

    def f(v, fmt="{:.1f}", none="n/a"):
        return none if v is None else fmt.format(v)

    lines = [
        ("frames published", f"{s['frames_published']} (1 init frame + {s['frames_streamed_after_init']} streamed)"),
        ("frames answered", f"{s['frames_answered']} Detection2D received"),
        ("frames dropped", f"{s['frames_dropped']} (skipped by the node to stay current, or lost on the way)"),
        ("publish rate", f"{f(s['publish_rate_hz'])} Hz"),
        ("processing rate", f"{f(s['processing_rate_hz'])} Hz (answers per second)"),
        ("mean IoU vs ground truth", f"{f(s['mean_iou'], '{:.3f}')} over {s['iou_frames']} answered frames"
                                     f" (success@0.5 {f(s['success_rate_iou_0.5'], '{:.2f}')}); latest answer on "
                                     f"every frame: {f(s.get('mean_iou_latest_answer_every_frame'), '{:.3f}')}"),
        ("frames reported lost", str(s["frames_lost_state"])),
    ] + ([("box on the occluder", _distractor_line(s))] if "frames_on_distractor" in s else []) + [
        ("latency stamp->receipt", f"p50 {f(lat['p50_ms'])} ms, p95 {f(lat['p95_ms'])} ms, max {f(lat['max_ms'])} ms"),
        ("node (its /diagnostics)", format_node_line(s.get("node", {}))),
    ] + load_average_line(s)
    lines += list(extra)
    width = max(len(k) for k, _ in lines)
    return "\n".join([title] + [f"  {k.ljust(width)}  {v}" for k, v in lines])


def _distractor_line(s: dict) -> str:
    confident = s["frames_on_distractor_confident"]
    return (f"{s['frames_on_distractor']} frames, {len(confident)} of them with score > {CONFIDENT_SCORE:g} and not "
            f"lost" + (f" (frames {', '.join(map(str, confident))})" if confident else ""))


# The node's per-frame stages in /diagnostics (stage_<name>_total_s): decode the image, track (tracker.update), publish
# the 2D output and the state array, depth (matching, measuring, 3D output), heatmap (rendering and publishing).
NODE_STAGES = ("decode", "track", "publish", "depth", "heatmap")


def _nearest(samples: list, t: float):
    return min(samples, key=lambda s: abs(s[0] - t)) if samples else None


def window_resources(lo: float, hi: float, cpu: list, diagnostics_history: list) -> dict:
    """Who used the CPU between lo and hi seconds of the stream, and the node's time per frame in each stage.

    cpu: [(t, {process: CPU seconds so far, "machine_busy", "machine_total"})] (session sampler);
    diagnostics_history: [(t, the node's /diagnostics values)] with the cumulative stage_<name>_total_s counters.
    Returns {"cpu_cores": {process: cores, "other": the rest of the machine's busy time}, "node_ms": {stage: ms
    per processed frame}} (either empty where the samples do not cover the window)."""
    out = {"cpu_cores": {}, "node_ms": {}}
    a, b = _nearest(cpu, lo), _nearest(cpu, hi)
    if a is not None and b[0] - a[0] > 0.25 * (hi - lo):
        dt = b[0] - a[0]
        cores = {k: (b[1][k] - a[1][k]) / dt for k in b[1] if not k.startswith("machine")}
        busy = (b[1]["machine_busy"] - a[1]["machine_busy"]) / dt
        out["cpu_cores"] = {**cores, "other": max(0.0, busy - sum(cores.values()))}
    inside = [(t, v) for t, v in diagnostics_history if lo <= t <= hi]
    if len(inside) >= 2:
        (_, first), (_, last) = inside[0], inside[-1]
        try:
            frames = int(last["processed"]) - int(first["processed"])
            if frames > 0:
                out["node_ms"] = {stage: 1e3 * (float(last[key]) - float(first.get(key, 0.0))) / frames
                                  for stage in NODE_STAGES if (key := f"stage_{stage}_total_s") in last}
        except (KeyError, ValueError):
            pass
    return out


def add_window_resources(windows: list[dict], cpu: list, diagnostics_history: list) -> None:
    """window_resources into each window dict (from_s, to_s)."""
    for w in windows:
        w.update(window_resources(w["from_s"], w["to_s"], cpu, diagnostics_history))


def resources_cell(w: dict) -> str:
    """One window's CPU use (cores) and the node's ms per frame, for a report row."""
    c, ms = w.get("cpu_cores", {}), w.get("node_ms", {})
    cpu = " ".join(f"{c[k]:4.2f}" if k in c else " n/a" for k in ("node", "player", "client", "other"))
    stages = " ".join(f"{ms[k]:5.1f}" if k in ms else "  n/a" for k in ("decode", "track", "publish"))
    return f"  {cpu}   {stages}"


RESOURCES_COLUMNS = "CPU cores node / player / client / other processes, node ms per frame decode / track / publish"


def attribute_slowdown(windows: list[dict], key: str = "answered", tolerance: float = 0.10) -> dict | None:
    """The last window against the first steady one (the second; the first holds the start): the change in answered
    frames and median latency (within `tolerance` = at most that many fewer answers and that much more latency), and
    what changed in who used the CPU and in the node's time per frame. A last window
    shorter than half of the others is left out. None with fewer than 3 windows."""
    full = [w for w in windows if w["to_s"] - w["from_s"] >= 0.5 * (windows[0]["to_s"] - windows[0]["from_s"])]
    if len(full) < 3:
        return None
    first, last = full[1], full[-1]

    def change(a, b):
        return None if a in (None, 0) or b is None else (b - a) / a

    answered, latency = change(first[key], last[key]), change(first["p50_ms"], last["p50_ms"])
    c0, c1 = first.get("cpu_cores", {}), last.get("cpu_cores", {})
    cpu = {k: (c0[k], c1[k]) for k in c0 if k in c1}
    m0, m1 = first.get("node_ms", {}), last.get("node_ms", {})
    node_ms = {k: (m0[k], m1[k]) for k in m0 if k in m1}
    # slower = fewer frames answered or a higher median latency; more answers or a lower latency are no slowdown
    within = answered is not None and latency is not None and answered >= -tolerance and latency <= tolerance
    causes = []
    if not within:
        if "other" in cpu and cpu["other"][1] - cpu["other"][0] > 0.2:
            causes.append(f"other processes took {cpu['other'][1] - cpu['other'][0]:+.2f} cores")
        grown = [(k, b - a) for k, (a, b) in node_ms.items() if b - a > max(1.0, 0.1 * a)]
        causes += [f"the node's {k} time per frame grew {d:+.1f} ms" for k, d in grown]
        for name in ("player", "client"):
            if name in cpu and cpu[name][1] - cpu[name][0] > 0.1:
                causes.append(f"the {name} took {cpu[name][1] - cpu[name][0]:+.2f} cores")
        if not causes:
            causes.append("no process took more CPU and the node's stages did not grow")
    return {"first_window": [first["from_s"], first["to_s"]], "last_window": [last["from_s"], last["to_s"]],
            "answered_change": answered, "p50_change": latency, "within_tolerance": within, "tolerance": tolerance,
            "cpu_cores": cpu, "node_ms": node_ms, "causes": causes}


def format_attribution(att: dict | None) -> list[str]:
    if att is None:
        return []

    def pct(v):
        return "n/a" if v is None else f"{100 * v:+.0f} %"

    (a0, a1), (b0, b1) = att["first_window"], att["last_window"]
    lines = [f"  last window ({b0:.0f}-{b1:.0f} s) against the first steady one ({a0:.0f}-{a1:.0f} s): answered "
             f"frames {pct(att['answered_change'])}, median latency {pct(att['p50_change'])}: "
             + (f"within {100 * att['tolerance']:.0f} %" if att["within_tolerance"]
                else f"outside {100 * att['tolerance']:.0f} %; " + "; ".join(att["causes"]))]
    if att["cpu_cores"]:
        lines.append("    CPU cores " + ", ".join(f"{k} {a:.2f} -> {b:.2f}" for k, (a, b) in att["cpu_cores"].items()))
    if att["node_ms"]:
        lines.append("    node ms per frame " + ", ".join(f"{k} {a:.1f} -> {b:.1f}" for k, (a, b) in
                                                         att["node_ms"].items()))
    return lines
