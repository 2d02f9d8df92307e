"""A streaming session: the tracker node and the frame player as child processes, the client in this one; init on the
player's first (held) frame, stream, record, stop everything (also on errors and Ctrl-C). The demo, `latency` and
`load` are each one session and a report."""
from __future__ import annotations

import contextlib
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..tracking.tracker import DEFAULT_TARGET
from .client import Client, read_stamps
from .launcher import (DEPTH_TOPIC, IMAGE_TOPIC, PACKAGE, PLAYER_NODE, TRACKER_NODE, Child, DemoError,
                       ensure_interfaces, node_arguments, setup_ros_environment)


@dataclass
class SessionResult:
    stamps: list  # [(seq, frame, stamp ns)]
    records: list  # [Record]
    init_seq: int
    init_frame: int
    init_message: str
    stream_seconds: float
    node_log: str
    player_log: str
    node_diagnostics: dict = field(default_factory=dict)  # the node's last /diagnostics values (counters)
    load_average: tuple = ()  # 1-minute load average of this machine at the start and at the end
    memory: list = field(default_factory=list)  # [(seconds since the stream started, node RSS bytes)]
    targets: list = field(default_factory=list)  # ids initialised on the first frame
    # [(seconds since the stream started, {"node"|"player"|"client"|"machine_busy"|"machine_total": CPU seconds})]
    cpu: list = field(default_factory=list)
    diagnostics_history: list = field(default_factory=list)  # [(seconds since the stream started, the node's values)]


def process_rss(pid: int) -> int | None:
    """Resident memory of a process in bytes (Linux /proc), None when unknown."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system, all threads) a process has used, in seconds (Linux /proc), None when unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS  # utime, stime: the stat fields 14 and 15
    except (OSError, ValueError, IndexError):
        return None


def machine_cpu_seconds() -> tuple[float, float] | None:
    """(busy, total) CPU seconds of the whole machine, all cores, since boot (Linux /proc/stat), None when unknown."""
    try:
        ticks = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return None
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    total = sum(ticks[:8])  # user nice system idle iowait irq softirq steal (guest time is inside user)
    return (total - idle) / _CLOCK_TICKS, total / _CLOCK_TICKS


class _ProcessSampler(threading.Thread):
    """Every `period` s (from start() until stop()): the node's RSS, and the CPU seconds used so far by each process
    of `pids` (name -> pid) and by the whole machine, so that a report can say who took the CPU in each window."""

    def __init__(self, node_pid: int, pids: dict[str, int], period: float = 0.5):
        super().__init__(name="process_sampler", daemon=True)
        self.node_pid, self.pids, self.period = node_pid, dict(pids), period
        self.memory: list = []  # [(seconds, node RSS bytes)]
        self.cpu: list = []  # [(seconds, {name: CPU seconds, "machine_busy": s, "machine_total": s})]
        self._halt = threading.Event()
        self.t0 = time.monotonic()

    def sample(self) -> None:
        t = time.monotonic() - self.t0
        rss = process_rss(self.node_pid)
        if rss is not None:
            self.memory.append((t, rss))
        used = {name: process_cpu_seconds(pid) for name, pid in self.pids.items()}
        machine = machine_cpu_seconds()
        if machine is not None and all(v is not None for v in used.values()):
            self.cpu.append((t, {**used, "machine_busy": machine[0], "machine_total": machine[1]}))

    def run(self):
        while not self._halt.is_set():
            self.sample()
            self._halt.wait(self.period)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=2.0)
        self.sample()  # the end of the stream


def run_session(out_dir: Path, player_args: list[str], init_box_for_frame, *, rate: float, weights=None,
                backend=None, params_file=None, node_params=None, domain_id=None, node_timeout: float = 90.0,
                stream_timeout: float | None = None, log=None, extra_targets=(), depth: bool = False) -> SessionResult:
    """Start the node and the player (held on its first frame), init on that frame with `init_box_for_frame(index)`,
    stream, record; stop everything (also on errors and Ctrl-C).

    extra_targets: [(target id, box)] initialised on the same first frame as well; depth: the player also publishes a
    synthetic registered depth image and camera_info per frame, and the node's depth input is on. From the start of
    the stream, the node's RSS and the CPU time of the node, the player, this process (the client) and the machine are
    sampled every 0.5 s, and the node's /diagnostics kept (SessionResult.memory, .cpu, .diagnostics_history)."""
    log = log or (lambda text: print(text, flush=True))
    out_dir = Path(out_dir).resolve()  # the children run in another working directory
    out_dir.mkdir(parents=True, exist_ok=True)
    env = setup_ros_environment(domain_id)
    ensure_interfaces()
    stamps_path = out_dir / "stamps.csv"
    with contextlib.suppress(FileNotFoundError):
        stamps_path.unlink()
    node = player = client = None
    try:
        load_start = os.getloadavg()[0]
        log(f"ROS_DOMAIN_ID={env['ROS_DOMAIN_ID']}  discovery {env.get('ROS_AUTOMATIC_DISCOVERY_RANGE')}  "
            f"load average {load_start:.1f} on {os.cpu_count()} CPUs")
        client = Client()
        node = _start_node(client, env, out_dir, params_file, weights, backend, node_params, node_timeout, log,
                           DEPTH_TOPIC if depth else None)
        player = Child(PLAYER_NODE, f"{PACKAGE}.runs.player",
                       player_args + (["--depth-topic", DEPTH_TOPIC] if depth else [])
                       + ["--topic", IMAGE_TOPIC, "--rate", f"{rate:g}", "--hold-first",
                                      "--wait-subscribers", "1", "--stamps-out", str(stamps_path)],
                       env, out_dir / "player.log")
        init_seq, init_frame, init_stamp = _first_frame(stamps_path, node, player)
        message, targets = _init_targets(client, node, init_stamp, init_frame, init_box_for_frame(init_frame),
                                         extra_targets, log)
        t_stream, stream_seconds, sampler = _stream(client, node, player, stream_timeout)
        stamps = read_stamps(stamps_path)
        _wait_for_answers(client, {s for _, _, s in stamps if s != init_stamp}, t_stream + stream_seconds)
        history = [(t - t_stream, values) for t, values in client.diagnostics_history if t >= t_stream]
        return SessionResult(stamps, client.recorder.snapshot(), init_seq, init_frame, message, stream_seconds,
                             str(node.log_path), str(player.log_path), dict(client.diagnostics),
                             (load_start, os.getloadavg()[0]), sampler.memory, targets, sampler.cpu, history)
    finally:
        for child in (player, node):
            if child is not None:
                child.stop()
        if client is not None:
            client.close()


def _start_node(client, env, out_dir, params_file, weights, backend, node_params, timeout, log,
                depth_topic=None) -> Child:
    """The tracker node, once it serves init_target (DemoError with its log when it exits or never does)."""
    node = Child(TRACKER_NODE, f"{PACKAGE}.ros.node",
                 node_arguments(IMAGE_TOPIC, params_file, weights, backend, node_params, depth_topic), env,
                 out_dir / "node.log")
    log(f"started the tracker node (pid {node.proc.pid}); waiting for init_target ...")
    t0 = time.monotonic()
    if not client.wait_for_service(client.init_client, timeout, alive=node.running):
        if not node.running():
            raise DemoError(f"the tracker node exited (code {node.proc.returncode}) before serving "
                            f"init_target; its log ({node.log_path}):\n{node.tail()}")
        raise DemoError(f"the tracker node did not serve init_target within {timeout:.0f} s; its log "
                        f"({node.log_path}):\n{node.tail()}")
    log(f"node up after {time.monotonic() - t0:.1f} s")
    return node


def _first_frame(stamps_path: Path, node: Child, player: Child, timeout: float = 60.0) -> tuple[int, int, int]:
    """(seq, frame index, stamp ns) of the player's first (held) frame, from its stamps file."""
    deadline = time.monotonic() + timeout
    while not (stamps := read_stamps(stamps_path)):
        if not player.running() and not read_stamps(stamps_path):
            raise DemoError(f"the frame player exited (code {player.proc.returncode}) before publishing; "
                            f"its log:\n{player.tail()}")
        if not node.running():
            raise DemoError(f"the tracker node exited (code {node.proc.returncode}); its log:\n{node.tail()}")
        if time.monotonic() > deadline:
            raise DemoError(f"the frame player published nothing within {timeout:.0f} s; its log:\n{player.tail()}")
        time.sleep(0.02)
    return stamps[0]


def _init_targets(client, node: Child, init_stamp: int, init_frame: int, box, extra_targets, log):
    """init_target for the default target and `extra_targets` on the first frame: (first answer, target ids)."""
    # The node may not have received the frame yet when its line appears: retry for a while (the player sends the
    # held frame again, for a node whose subscription matched only after it first went out).
    res, give_up = None, time.monotonic() + 15.0
    while True:
        res = client.init_target(init_stamp, box)
        if res.success or time.monotonic() > give_up or "no frame" not in res.message:
            break
        time.sleep(0.1)
    if not res.success and ("no frame" in res.message):
        res = client.init_target(0, box)
    if not res.success:
        raise DemoError(f"init_target refused: {res.message}\nnode log:\n{node.tail()}")
    log(f"init_target on frame {init_frame} (stamp {init_stamp / 1e9:.3f}), box "
        f"{', '.join(f'{v:.0f}' for v in box)}: {res.message or 'ok'}")
    targets = [DEFAULT_TARGET]
    for tid, extra_box in extra_targets:
        extra = client.init_target(init_stamp, extra_box, target_id=tid)
        if not extra.success:
            raise DemoError(f"init_target {tid} refused: {extra.message}\nnode log:\n{node.tail()}")
        targets.append(tid)
        log(f"init_target {tid}: {extra.message}")
    return res.message, targets


def _stream(client, node: Child, player: Child, timeout: float | None):
    """Un-pause the player and wait for it to finish, sampling the processes: (start time, seconds, the sampler)."""
    sampler = _ProcessSampler(node.proc.pid, {"node": node.proc.pid, "player": player.proc.pid,
                                              "client": os.getpid()})
    client.set_player_paused(False)
    t_stream = time.monotonic()
    sampler.t0 = t_stream
    sampler.start()
    try:
        while player.running():
            if not node.running():
                raise DemoError(f"the tracker node exited during the stream (code {node.proc.returncode}); "
                                f"its log:\n{node.tail()}")
            if timeout is not None and time.monotonic() - t_stream > timeout:
                raise DemoError(f"the stream did not end within {timeout:.0f} s; player log:\n{player.tail()}")
            time.sleep(0.05)
    finally:
        sampler.stop()
    stream_seconds = time.monotonic() - t_stream
    if player.proc.returncode not in (0, None):
        raise DemoError(f"the frame player failed (code {player.proc.returncode}); its log:\n{player.tail()}")
    return t_stream, stream_seconds, sampler


def _wait_for_answers(client, wanted: set, stream_end: float) -> None:
    """The node's answers to the last frames (until all came or 2 s of silence, at most 15 s), then its counters as of
    after the last answer (it publishes /diagnostics about once a second)."""
    end = time.monotonic() + 15.0
    while time.monotonic() < end:
        got = {r.stamp_ns for r in client.recorder.snapshot()}
        if wanted <= got or time.monotonic() - max(client.recorder.last_receipt, stream_end) > 2.0:
            break
        time.sleep(0.05)
    settled = max(client.recorder.last_receipt, stream_end)
    end = time.monotonic() + 3.0
    while client.diagnostics_time <= settled and time.monotonic() < end:
        time.sleep(0.05)
