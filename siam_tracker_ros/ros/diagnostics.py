"""The node's /diagnostics: counters and recent samples (`Stats`, written by the callbacks and the worker, read by the
timer) and the DiagnosticArray built from them: one status for the tracker, one per target."""
from __future__ import annotations

import collections
import threading

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from . import messages

LATENCY_SAMPLES = 300
# Kinds of refusal counted in /diagnostics (refused_<kind>) and logged (throttled).
REFUSALS = ("image_too_large", "image_invalid", "box", "target_id", "busy", "timeout", "superseded", "max_targets",
            "frame", "inactive", "unavailable")
REFUSALS += ("depth_encoding", "depth_invalid", "depth_size", "depth_stamp", "camera_info")  # ros/depth_input.py


class RefusalLog:
    """Decides which refusals get a log line: every one, except in a flood of one kind, where at most `burst`
    lines per `window` seconds are written and the next line says how many were left out. Per kind, so that a
    flood of bad images never hides a refused request. Call under a lock."""

    def __init__(self, burst: int = 5, window: float = 5.0):
        self.burst, self.window = burst, window
        self._times: dict[str, collections.deque] = {}
        self._left_out: dict[str, int] = {}

    def admit(self, kind: str, now: float) -> int | None:
        """None: do not log this one; else the number of this kind's refusals left out since its last line."""
        times = self._times.setdefault(kind, collections.deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        if len(times) >= self.burst:
            self._left_out[kind] = self._left_out.get(kind, 0) + 1
            return None
        times.append(now)
        return self._left_out.pop(kind, 0)


class Stats:
    """Counters and recent samples behind /diagnostics (written by callbacks and worker, read by the timer)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.received = 0
        self.processed = 0  # frames tracked (at least one target)
        self.dropped = 0  # frames replaced in the mailbox before the worker got to them
        self.conversion_errors = 0
        self.tracker_errors = 0
        self.heatmaps = 0  # heatmap images rendered and published (only while subscribed)
        self.last_conversion_error = ""
        self.last_tracker_error = ""
        self.latencies = collections.deque(maxlen=LATENCY_SAMPLES)  # image stamp -> publish, seconds
        self.proc_times = collections.deque(maxlen=LATENCY_SAMPLES)  # tracker.update + publish, seconds
        self.processed_times = collections.deque(maxlen=1000)  # monotonic times of processed frames
        # seconds spent per stage of a processed frame since the start (decode, track, publish, depth, heatmap):
        # a reader of two diagnostics gets each stage's mean per frame in between, over any window
        self.stage_total_s: dict[str, float] = {}
        self.received_times = collections.deque(maxlen=1000)
        self.refused = {kind: 0 for kind in REFUSALS}
        self.last_refusal = ""
        self.refusal_log = RefusalLog()


def _ms(a, q) -> str:
    return f"{np.percentile(a, q) * 1e3:.1f}" if a is not None else "n/a"


def build(name: str, hardware_id: str, s: Stats, period: float, states: dict, values: dict, level=None,
          message: str = "") -> DiagnosticArray:
    """The statuses `<name>: tracker` (level/message when given, else from the targets' states and the conversion
    errors; `values` plus the counters and latencies of `s` over the last `period` seconds) and `<name>: target <id>`
    per target state."""
    import time

    now = time.monotonic()
    with s.lock:
        rate = sum(1 for t in s.processed_times if t > now - period) / period
        in_rate = sum(1 for t in s.received_times if t > now - period) / period
        lat = np.array(s.latencies) if s.latencies else None
        proc = np.array(s.proc_times) if s.proc_times else None
        counts = dict(received=s.received, processed=s.processed, dropped=s.dropped,
                      conversion_errors=s.conversion_errors, tracker_errors=s.tracker_errors,
                      heatmaps_published=s.heatmaps, **{f"refused_{k}": v for k, v in s.refused.items()})
        last_conv, last_err, last_refusal = s.last_conversion_error, s.last_tracker_error, s.last_refusal
        stage_totals = {f"stage_{k}_total_s": f"{v:.6f}" for k, v in s.stage_total_s.items()}
    lost = [tid for tid, st in states.items() if st["state"] == messages.STATE_LOST]
    main = DiagnosticStatus(name=f"{name}: tracker", hardware_id=hardware_id)
    if level is not None:
        main.level, main.message = level, message
    elif lost:
        main.level, main.message = DiagnosticStatus.WARN, "target lost: " + ", ".join(lost)
    elif counts["conversion_errors"] and last_conv:
        main.level, main.message = DiagnosticStatus.WARN, f"skipping images: {last_conv}"
    else:
        main.level = DiagnosticStatus.OK
        main.message = f"tracking {len(states)} target(s)" if states else "idle: no target"
    values = {**values, "processing_rate_hz": f"{rate:.2f}", "input_rate_hz": f"{in_rate:.2f}",
              **{k: str(v) for k, v in counts.items()}, "latency_median_ms": _ms(lat, 50),
              "latency_p95_ms": _ms(lat, 95), "processing_time_median_ms": _ms(proc, 50), "targets": str(len(states)),
              "last_conversion_error": last_conv, "last_tracker_error": last_err, "last_refusal": last_refusal,
              **stage_totals}
    main.values = [KeyValue(key=k, value=v) for k, v in values.items()]
    statuses = [main]
    for tid, st in sorted(states.items()):
        ts = DiagnosticStatus(name=f"{name}: target {tid}", hardware_id=hardware_id)
        ts.level = DiagnosticStatus.WARN if st["state"] == messages.STATE_LOST else DiagnosticStatus.OK
        ts.message = st["state"]
        ts.values = [KeyValue(key=k, value=str(v)) for k, v in st.items()]
        statuses.append(ts)
    return DiagnosticArray(status=statuses)
