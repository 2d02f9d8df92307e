"""`siam-tracker bench`: speed and memory of every available backend on real frames, next to OpenCV's CSRT.

Each (model, backend) is measured in a fresh child process, so peak memory is that backend's own and one backend's
thread pools or allocator never skew the next. Frames are resized to 640x480 (the size the speed target is stated for).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

FRAME_SIZE = (640, 480)
PAPER_MODEL = {"width": 1.0, "use_se": True, "use_fusion": True, "use_gam": True}


def add_bench_parser(sub) -> None:
    p = sub.add_parser("bench", help="time every backend per stage, 1 and 4 targets, against OpenCV CSRT")
    p.add_argument("--weights", help="also time this weights file (a .pt, a pretrained .npz, a converted NanoTrack "
                                     "file or the folder of a NanoTrack ONNX pair), as model 'custom'")
    p.add_argument("--data", help="a sequence folder (frames + groundtruth.txt); default: one from ../shared/data, "
                                  "else the built-in synthetic sequence")
    p.add_argument("--frames", type=int, default=60, help="frames timed per run (default 60)")
    p.add_argument("--backends", default="auto-all", help="comma list of torch, onnxruntime, torch-cuda, "
                                                          "onnxruntime-cuda, tensorrt (default: all available)")
    p.add_argument("--models", default="small,large", help="comma list of the shipped models (small, large), "
                                                          "nanotrack_v2 / nanotrack_v3 (the user's files in "
                                                          "$SIAM_PEERS_DIR or ../shared/peers) and/or paper (width "
                                                          "1.0, all modules, random weights: speed only); default: "
                                                          "both shipped models")
    p.add_argument("--threads", type=int, default=0, help="CPU threads per backend (0 = library default)")
    p.add_argument("--load", type=int, default=0, metavar="N",
                   help="run N CPU-bound processes beside the measurement (started and stopped here): the figures "
                        "a robot gets, where a camera driver and other nodes want the cores too")
    p.add_argument("--spinning", default="off,on",
                   help="ONNX Runtime thread spin-wait for the onnxruntime backends: off, on or off,on (default: "
                        "both, each in its own process; backend.onnx_allow_spinning is off by default)")
    p.add_argument("--no-csrt", action="store_true")
    p.add_argument("--against-nano", action="store_true",
                   help="also time NanoTrack v2 in this package's tracker and OpenCV's TrackerNano on the same "
                        "frames in one process, interleaved frame by frame (both see the same machine load); needs "
                        "the user's nanotrack_v2 files ($SIAM_PEERS_DIR or ../shared/peers)")
    p.add_argument("--json", help="write all figures here")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.set_defaults(func=run_bench)


# ----------------------------------------------------------------------------------------------- frames
def load_frames(data: str | None, n: int) -> tuple[list[np.ndarray], np.ndarray, str]:
    import cv2

    from .data import find_sequence, load_sequence

    seq = Path(data) if data else find_sequence()
    if seq is not None:
        frames, boxes = load_sequence(seq, n)
        source = str(seq)
    else:
        from .synthetic import make_sequence
        frames, boxes = make_sequence(n_frames=n)
        source = "built-in synthetic sequence"
    h, w = frames[0].shape[:2]
    sx, sy = FRAME_SIZE[0] / w, FRAME_SIZE[1] / h
    frames = [cv2.resize(f, FRAME_SIZE, interpolation=cv2.INTER_LINEAR) for f in frames]
    boxes = np.asarray(boxes, dtype=np.float64) * [sx, sy, sx, sy]
    return frames, boxes, source


def _first_valid(boxes: np.ndarray) -> np.ndarray:
    ok = np.all(np.isfinite(boxes), axis=1)
    return boxes[int(np.argmax(ok))]


# ----------------------------------------------------------------------------------------------- worker
def _backend_config(spec: str, threads: int, spinning: bool = False):
    from .config import BackendConfig

    name, _, device = spec.partition("-")
    return BackendConfig(name=name, device=device or "cpu", fp16=True, num_threads=threads,
                         onnx_allow_spinning=spinning)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def rss_mb() -> float:
    """The process's resident memory now (Linux /proc; the peak where /proc is absent)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return _peak_rss_mb()


class CpuLoad:
    """N child processes that each keep one core busy (a pure-Python loop) while the measurement runs."""

    def __init__(self, n: int):
        self.n = n
        self._procs: list[subprocess.Popen] = []

    def __enter__(self) -> "CpuLoad":
        for _ in range(self.n):
            self._procs.append(subprocess.Popen([sys.executable, "-c", "while True: pass"],
                                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL))
        return self

    def __exit__(self, *exc) -> None:
        for proc in self._procs:
            proc.terminate()
        for proc in self._procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._procs.clear()


def run_worker(spec: dict) -> dict:
    """Time one (model, backend): per-stage ms, update fps for 1 and 4 targets, memory. The tracker comes from
    tracking.build.build_tracker, as in the node: a NanoTrack model gets its own tracker, and the ONNX Runtime path
    imports torch only where it must (the `torch` column)."""
    from .config import Config
    from .tracking.build import build_tracker

    frames, boxes, _ = load_frames(spec["data"], spec["frames"])
    config = Config()
    config.backend = _backend_config(spec["backend"], spec["threads"], spec.get("spinning", False))
    model = None
    if spec["model"] == "paper":
        import torch

        from .backends import create_backend
        from .config import ModelConfig
        from .model import build_model

        torch.manual_seed(0)
        model = build_model(ModelConfig(**PAPER_MODEL)).eval()
        backend = create_backend(config.backend, model=model)
    else:
        backend = build_tracker(config, spec["weights"]).backend
    box = _first_valid(boxes)
    out = {"backend": backend.describe(), "model": spec["model"], "spinning": _spinning(spec)}
    for n_targets in (1, 4):
        tracker = build_tracker(config, backend=backend)
        for k in range(n_targets):
            # Extra targets: the same object shifted, so every target has real texture and stays tracked.
            shifted = box + [k * 0.1 * box[2], k * 0.1 * box[3], 0, 0]
            tracker.init(frames[0], shifted, f"t{k}")
        for frame in frames[1:4]:  # warm-up: lazy graph creation, allocator, cudnn autotune
            tracker.update(frame)
        tracker.reset_timings()
        start = time.perf_counter()
        timed = frames[4:]
        for frame in timed:
            tracker.update(frame)
        elapsed = time.perf_counter() - start
        per_frame = {k: v * 1000.0 / len(timed) for k, v in tracker.timings.items()}
        out[f"targets_{n_targets}"] = {"fps": len(timed) / elapsed, "ms_per_update": elapsed * 1000 / len(timed),
                                       "ms_crop": per_frame["crop"], "ms_search": per_frame["search"],
                                       "ms_post": per_frame["post"]}
        if n_targets == 1:
            # The template branch runs once per init: time it on its own.
            z = np.zeros((1, 3, 127, 127), np.float32)
            backend.template(z)
            t0 = time.perf_counter()
            for _ in range(10):
                backend.template(z)
            out["ms_template"] = (time.perf_counter() - t0) * 100.0
            # The search branch alone on one target's three scales (crops already in memory).
            x = np.random.default_rng(0).uniform(0, 255, (3, 3, 255, 255)).astype(np.float32)
            kernel = np.repeat(backend.template(z), 3, axis=0)
            for _ in range(3):
                backend.search(x, kernel)
            reps = max(10, spec["frames"])
            t0 = time.perf_counter()
            for _ in range(reps):
                backend.search(x, kernel)
            out["search_3_scales_fps"] = reps / (time.perf_counter() - t0)
            out["ms_head"] = _box_head_ms(spec, model or getattr(backend, "model", None), backend, reps)
    out["peak_rss_mb"] = _peak_rss_mb()
    out["rss_mb"] = rss_mb()
    out["torch_imported"] = "torch" in sys.modules
    if "cuda" in spec["backend"] or spec["backend"] == "tensorrt":
        import torch

        out["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
    return out


def _search_ms(backend, reps: int) -> float:
    """ms of one search call on one 255 crop (one target in box mode)."""
    z = np.zeros((1, 3, 127, 127), np.float32)
    kernel = backend.template(z)
    x = np.random.default_rng(1).uniform(0, 255, (1, 3, 255, 255)).astype(np.float32)
    for _ in range(3):
        backend.search(x, kernel)
    t0 = time.perf_counter()
    for _ in range(reps):
        backend.search(x, kernel)
    return (time.perf_counter() - t0) * 1000.0 / reps


def _box_head_ms(spec: dict, model, backend, reps: int) -> float | None:
    """The box head's share of one search call: the network's search time on one crop minus that of the same
    network without the head (its other weights copied), on the same kind of backend. None without a head."""
    if model is None or getattr(model, "box_head", None) is None:
        return None
    import dataclasses

    from .backends import create_backend
    from .model import build_model

    plain = build_model(dataclasses.replace(model.config, box_head=False)).eval()
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("box_head.")})
    headless = create_backend(_backend_config(spec["backend"], spec["threads"], spec.get("spinning", False)),
                              model=plain)
    with_head, without = _search_ms(backend, reps), _search_ms(headless, reps)
    return with_head - without


def run_against_nano(frames: list[np.ndarray], boxes: np.ndarray, threads: int, spinning: bool) -> dict:
    """NanoTrack v2 in this package (ONNX Runtime, `threads`) and OpenCV's TrackerNano (its own thread count) on the
    same frames, updated alternately in one process (the order swapped every frame): update frames/s of each."""
    import cv2

    from .config import Config
    from .data import peers_root
    from .evaluation.runner import NanoTrackAdapter
    from .tracking.build import build_tracker

    config = Config()
    config.backend = _backend_config("onnxruntime", threads, spinning)
    ours = build_tracker(config, peers_root() / "nanotrack_v2")
    nano = NanoTrackAdapter()
    box = _first_valid(boxes)
    ours.init(frames[0], box)
    nano.init(frames[0], box)
    seconds = {"ours": 0.0, "nano": 0.0}
    calls = {"ours": lambda f: ours.update(f), "nano": nano.update}
    for i, frame in enumerate(frames[1:]):
        for name in (("ours", "nano") if i % 2 == 0 else ("nano", "ours")):
            t0 = time.perf_counter()
            calls[name](frame)
            seconds[name] += time.perf_counter() - t0
    n = len(frames) - 1
    return {"frames": n, "threads": threads, "spinning": "on" if spinning else "off",
            "opencv_threads": cv2.getNumThreads(), "fps_ours": n / seconds["ours"], "fps_nano": n / seconds["nano"],
            "ratio": seconds["nano"] / seconds["ours"]}


def run_csrt(frames: list[np.ndarray], boxes: np.ndarray) -> dict:
    import cv2

    box = tuple(int(round(v)) for v in _first_valid(boxes))
    tracker = cv2.TrackerCSRT_create()
    tracker.init(frames[0], box)
    for frame in frames[1:4]:
        tracker.update(frame)
    start = time.perf_counter()
    for frame in frames[4:]:
        tracker.update(frame)
    elapsed = time.perf_counter() - start
    return {"fps": (len(frames) - 4) / elapsed, "ms_per_update": elapsed * 1000 / (len(frames) - 4)}


def _spinning(spec: dict) -> str | None:
    """Say "on" / "off" for an ONNX Runtime run, None where spinning does not apply."""
    if not spec["backend"].startswith("onnxruntime"):
        return None
    return "on" if spec.get("spinning") else "off"


# ----------------------------------------------------------------------------------------------- driver
def available_backends() -> list[str]:
    specs = []
    try:
        import torch
        specs.append("torch")
        cuda = torch.cuda.is_available()
    except ImportError:
        cuda = False
    from .backends.onnx_backend import available_providers
    providers = available_providers()
    if providers:
        specs.append("onnxruntime")
    if cuda:
        specs.append("torch-cuda")
        if "CUDAExecutionProvider" in providers:
            specs.append("onnxruntime-cuda")
        try:
            import tensorrt  # noqa: F401
            specs.append("tensorrt")
        except ImportError:
            pass
    return specs


def run_bench(args) -> int:
    if args.worker:
        print(json.dumps(run_worker(json.loads(args.worker))))
        return 0
    from .backends import default_weights_path

    from .config import NANOTRACK_MODELS
    from .data import peers_root

    models = {}
    for m in (m for m in args.models.split(",") if m):
        if m == "paper":
            models[m] = None
        elif m in NANOTRACK_MODELS:
            models[m] = str(peers_root() / m)  # the user's files (README, NanoTrack)
        else:
            models[m] = str(default_weights_path(m))
    if args.weights:
        models["custom"] = args.weights
    for m, weights in list(models.items()):
        if weights is not None and not Path(weights).exists():
            print(f"bench: weights file {weights} of model {m} does not exist: skipped", file=sys.stderr)
            del models[m]
    spinning = [s.strip() for s in args.spinning.split(",") if s.strip()]
    if not spinning or any(s not in ("on", "off") for s in spinning):
        print(f"bench: --spinning {args.spinning!r}: expected off, on or off,on", file=sys.stderr)
        return 2
    if args.load < 0:
        print("bench: --load must be >= 0", file=sys.stderr)
        return 2
    frames, boxes, source = load_frames(args.data, args.frames)
    backends = available_backends() if args.backends == "auto-all" else args.backends.split(",")
    report = {"frames": len(frames), "frame_size": list(FRAME_SIZE), "source": source, "cpu_count": os.cpu_count(),
              "threads": args.threads, "load_processes": args.load, "loadavg_before": list(os.getloadavg()),
              "runs": []}
    print(f"siam-tracker bench: {len(frames)} frames of {source} at {FRAME_SIZE[0]}x{FRAME_SIZE[1]}, "
          f"{os.cpu_count()} CPUs, {args.load} CPU-bound load process(es) beside it, load average "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())} before")
    with CpuLoad(args.load):
        for model, weights in models.items():
            for backend in backends:
                for spin in (spinning if backend.startswith("onnxruntime") else ["off"]):
                    spec = {"model": model, "backend": backend, "weights": weights, "spinning": spin == "on",
                            "data": args.data, "frames": args.frames, "threads": args.threads}
                    report["runs"].append(_run_worker_process(spec))
        if not args.no_csrt:
            import cv2
            if hasattr(cv2, "TrackerCSRT_create"):
                report["csrt"] = run_csrt(frames, boxes)
            else:
                print("  OpenCV CSRT unavailable (needs opencv-contrib): no ratio column")
        if args.against_nano:
            report["against_nano"] = run_against_nano(frames, boxes, args.threads, spinning[0] == "on")
        report["loadavg_after"] = list(os.getloadavg())
    print_table(report)
    if "against_nano" in report:
        a = report["against_nano"]
        print(f"NanoTrack v2, interleaved frame by frame over {a['frames']} frames: this package "
              f"{a['fps_ours']:.1f} fps ({a['threads'] or 'default'} threads, spin-wait {a['spinning']}), OpenCV "
              f"TrackerNano {a['fps_nano']:.1f} fps ({a['opencv_threads']} threads): {a['ratio']:.2f}x")
    print(f"load average (1, 5, 15 min) {' '.join(f'{v:.2f}' for v in report['loadavg_after'])} at the end, with "
          f"{args.load} load process(es) of ours; the rest is other work on this machine")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
        print(f"figures written to {args.json}")
    return 0


def _run_worker_process(spec: dict) -> dict:
    """One (model, backend, spinning) measured in a fresh child process; an error row where it cannot run."""
    # `python -m siam_tracker_ros.bench`, not the CLI: the CLI's parser imports every sub-command (training imports
    # torch), and the RSS measured should be the tracker's own
    proc = subprocess.run([sys.executable, "-m", "siam_tracker_ros.bench", "--worker", json.dumps(spec)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        err = (proc.stderr.strip().splitlines() or ["failed"])[-1]
        print(f"  {spec['model']:8s} {spec['backend']:18s} unavailable: {err}")
        return {"model": spec["model"], "backend": spec["backend"], "error": err}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def print_table(report: dict) -> None:
    header = (f"{'model':12s} {'backend':22s} {'spin':>4s} {'crop':>6s} {'templ':>6s} {'search':>7s} {'head':>6s} "
              f"{'post':>6s} {'fps 1':>7s} {'fps 4':>7s} {'srch/s':>7s} {'peak MB':>8s} {'RSS MB':>7s} {'torch':>5s} "
              f"{'x CSRT':>7s}")
    print(header)
    print("-" * len(header))
    csrt = report.get("csrt", {}).get("fps")
    for run in report["runs"]:
        if "error" in run:
            continue
        one, four = run["targets_1"], run["targets_4"]
        ratio = f"{one['fps'] / csrt:7.1f}" if csrt else f"{'-':>7s}"
        mem = run.get("peak_cuda_mb") or run["peak_rss_mb"]
        head = f"{run['ms_head']:6.2f}" if run.get("ms_head") is not None else f"{'-':>6s}"
        srch = f"{run['search_3_scales_fps']:7.1f}" if run.get("search_3_scales_fps") is not None else f"{'-':>7s}"
        print(f"{run['model']:12s} {run['backend']:22s} {run.get('spinning') or '-':>4s} {one['ms_crop']:6.2f} "
              f"{run['ms_template']:6.2f} {one['ms_search']:7.2f} {head} {one['ms_post']:6.2f} {one['fps']:7.1f} "
              f"{four['fps']:7.1f} {srch} {mem:8.0f} {run['rss_mb']:7.0f} "
              f"{'yes' if run['torch_imported'] else 'no':>5s} {ratio}")
    if csrt:
        print(f"{'':12s} {'OpenCV CSRT':22s} {'':4s} {'':6s} {'':6s} {'':7s} {'':6s} {'':6s} {csrt:7.1f}")
    print("(stage columns: ms per update with one target; spin: ONNX Runtime's thread spin-wait; head: the box "
          "head's part of one search call, the network's search time minus that of the same network without the "
          "head; fps: whole update() for 1 and 4 targets; srch/s: the search branch alone on 3 scales; peak MB: GPU "
          "memory on CUDA, else the process's peak RSS; RSS MB: its RSS at the end; torch: whether the process "
          "imported torch)")


if __name__ == "__main__":  # the measuring child process: `python -m siam_tracker_ros.bench --worker SPEC`
    if len(sys.argv) != 3 or sys.argv[1] != "--worker":
        sys.exit("usage: python -m siam_tracker_ros.bench --worker SPEC (started by `siam-tracker bench`)")
    print(json.dumps(run_worker(json.loads(sys.argv[2]))))
